//! `authentication.k8s.io/v1` TokenReview and `authorization.k8s.io/v1` SubjectAccessReview, as a
//! real API server answers them to a delegating authenticator/authorizer (controller-runtime's
//! metrics filter, kube-rbac-proxy): create only, nothing stored, the request echoed back with a
//! computed `status` (201 Created).
//!
//! - **TokenReview**: the tokens a test configures ([`ApiServerBuilder::token`](super::ApiServerBuilder::token))
//!   authenticate as their user; any other token is `authenticated: false` with an `error`. An
//!   empty `spec.token` is a 400, as on a real server. `spec.audiences` empty means the server's
//!   own audiences; otherwise the token must be valid for one of them, and `status.audiences`
//!   lists those it is valid for.
//! - **SubjectAccessReview**: exactly one of `resourceAttributes` and `nonResourceAttributes`,
//!   and a user or a group (422 otherwise, as on a real server). Non-resource requests are
//!   allowed by the rules a test configures
//!   ([`ApiServerBuilder::allow_non_resource`](super::ApiServerBuilder::allow_non_resource)),
//!   matched as RBAC matches `nonResourceURLs` (exact, a trailing `*` prefix, or `*`) and verbs
//!   (exact or `*`); members of `system:masters` are allowed everything. Resource requests are
//!   never allowed (the emulator has no RBAC for resources). A denial carries no reason, as RBAC's.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use super::errors::ApiError;

/// The audience of tokens when none is asked for (what a kubeadm cluster uses).
pub const DEFAULT_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

/// Who a token authenticates as (`status.user` of a TokenReview).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// `username`, e.g. `system:serviceaccount:monitoring:prometheus`.
    pub username: String,
    /// `uid`.
    pub uid: String,
    /// `groups`, e.g. `system:serviceaccounts`, `system:authenticated`.
    pub groups: Vec<String>,
    /// `extra`.
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// A service account's identity, with the groups a real server gives it.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        UserInfo {
            username: format!("system:serviceaccount:{namespace}:{name}"),
            uid: format!("uid-{namespace}-{name}"),
            groups: vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".to_owned(),
            ],
            extra: BTreeMap::new(),
        }
    }
}

/// Whom an RBAC rule is bound to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RbacSubject {
    /// A user name.
    User(String),
    /// A group name.
    Group(String),
}

/// A rule on non-resource URLs (`nonResourceURLs` and `verbs` of a ClusterRole) bound to a subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NonResourceRule {
    pub(crate) subject: RbacSubject,
    pub(crate) verbs: Vec<String>,
    pub(crate) urls: Vec<String>,
}

/// The tokens and rules the reviews answer from.
#[derive(Clone, Debug, Default)]
pub(crate) struct Reviews {
    pub(crate) tokens: HashMap<String, (UserInfo, Vec<String>)>,
    pub(crate) rules: Vec<NonResourceRule>,
}

fn invalid(kind: &str, field: &str, reason: &str, message: &str) -> ApiError {
    ApiError::invalid_field("authorization.k8s.io", kind, field, reason, message)
}

/// The request as echoed back: apiVersion, kind, metadata, spec.
fn echo(body: &Value, api_version: &str, kind: &str) -> Result<Value, ApiError> {
    if body.get("kind").and_then(Value::as_str).is_some_and(|k| k != kind) {
        return Err(ApiError::BadRequest(format!("the body of the request was of kind {}, not {kind}", body["kind"])));
    }
    if body.pointer("/metadata/namespace").and_then(Value::as_str).is_some_and(|ns| !ns.is_empty()) {
        return Err(ApiError::BadRequest("namespace is not allowed on this type".to_owned()));
    }
    let mut metadata = body.get("metadata").cloned().filter(Value::is_object).unwrap_or_else(|| json!({}));
    metadata["creationTimestamp"] = Value::Null;
    Ok(json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": metadata,
        "spec": body.get("spec").cloned().unwrap_or_else(|| json!({})),
    }))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
}

impl Reviews {
    /// Answers a TokenReview.
    pub(crate) fn token_review(&self, body: &Value) -> Result<Value, ApiError> {
        let mut review = echo(body, "authentication.k8s.io/v1", "TokenReview")?;
        let token = review.pointer("/spec/token").and_then(Value::as_str).unwrap_or_default();
        if token.is_empty() {
            return Err(ApiError::BadRequest("token is required for TokenReview in authentication.k8s.io".to_owned()));
        }
        let wanted = strings(&review["spec"]["audiences"]);
        let unauthenticated = |error: &str| json!({"user": {}, "error": error});
        review["status"] = match self.tokens.get(token) {
            None => unauthenticated("invalid bearer token"),
            Some((user, audiences)) => {
                let granted: Vec<&String> = if wanted.is_empty() {
                    audiences.iter().filter(|a| a.as_str() == DEFAULT_AUDIENCE).collect()
                } else {
                    audiences.iter().filter(|a| wanted.contains(a)).collect()
                };
                if granted.is_empty() {
                    unauthenticated("token audiences are invalid for the target audiences")
                } else {
                    let mut u = json!({"username": user.username, "uid": user.uid, "groups": user.groups});
                    if !user.extra.is_empty() {
                        u["extra"] = json!(user.extra);
                    }
                    json!({"authenticated": true, "user": u, "audiences": granted})
                }
            }
        };
        Ok(review)
    }

    /// Answers a SubjectAccessReview.
    pub(crate) fn subject_access_review(&self, body: &Value) -> Result<Value, ApiError> {
        const KIND: &str = "SubjectAccessReview";
        let mut review = echo(body, "authorization.k8s.io/v1", KIND)?;
        let spec = &review["spec"];
        let (resource, non_resource) = (spec.get("resourceAttributes"), spec.get("nonResourceAttributes"));
        match (resource.is_some(), non_resource.is_some()) {
            (false, false) => {
                return Err(invalid(
                    KIND,
                    "spec.resourceAttributes",
                    "FieldValueRequired",
                    "Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
                ))
            }
            (true, true) => {
                return Err(invalid(
                    KIND,
                    "spec.nonResourceAttributes",
                    "FieldValueInvalid",
                    "Invalid value: \"\": cannot be specified in combination with resourceAttributes",
                ))
            }
            _ => {}
        }
        let user = spec["user"].as_str().unwrap_or_default().to_owned();
        let groups = strings(&spec["groups"]);
        if user.is_empty() && groups.is_empty() {
            return Err(invalid(
                KIND,
                "spec.user",
                "FieldValueInvalid",
                "Invalid value: \"\": at least one of user or group must be specified",
            ));
        }
        let allowed_by = if groups.iter().any(|g| g == "system:masters") {
            Some("allowed: member of system:masters".to_owned())
        } else if let Some(attrs) = non_resource {
            let (path, verb) = (attrs["path"].as_str().unwrap_or_default(), attrs["verb"].as_str().unwrap_or_default());
            self.rules
                .iter()
                .find(|r| {
                    let bound = match &r.subject {
                        RbacSubject::User(u) => *u == user,
                        RbacSubject::Group(g) => groups.contains(g),
                    };
                    bound
                        && r.verbs.iter().any(|v| v == "*" || v == verb)
                        && r.urls.iter().any(|u| url_matches(u, path))
                })
                .map(|r| format!("RBAC: allowed by the emulator's rule for {:?}", r.subject))
        } else {
            None
        };
        review["status"] = match allowed_by {
            Some(reason) => json!({"allowed": true, "reason": reason}),
            None => json!({"allowed": false}),
        };
        Ok(review)
    }
}

/// RBAC's `nonResourceURLs` matching: `*`, a prefix ending in `*`, or the exact path.
fn url_matches(rule: &str, path: &str) -> bool {
    match rule.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => rule == path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reviews() -> Reviews {
        let mut r = Reviews::default();
        let prom = UserInfo::service_account("monitoring", "prometheus");
        r.tokens.insert("good".into(), (prom, vec![DEFAULT_AUDIENCE.to_owned()]));
        r.tokens.insert("other-aud".into(), (UserInfo::default(), vec!["vault".to_owned()]));
        r.rules.push(NonResourceRule {
            subject: RbacSubject::User("system:serviceaccount:monitoring:prometheus".into()),
            verbs: vec!["get".into()],
            urls: vec!["/metrics".into(), "/debug/*".into()],
        });
        r
    }

    fn sar(user: &str, groups: &[&str], verb: &str, path: &str) -> Value {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
               "spec": {"user": user, "groups": groups, "nonResourceAttributes": {"verb": verb, "path": path}}})
    }

    #[test]
    fn tokens_authenticate_as_their_user_for_their_audiences() {
        let r = reviews();
        let review = |token: &str, auds: Value| {
            r.token_review(&json!({"kind": "TokenReview", "spec": {"token": token, "audiences": auds}})).unwrap()
        };
        let ok = review("good", json!([]));
        assert_eq!(ok["status"]["authenticated"], true);
        assert_eq!(ok["status"]["user"]["username"], "system:serviceaccount:monitoring:prometheus");
        assert_eq!(ok["status"]["audiences"], json!([DEFAULT_AUDIENCE]));
        assert_eq!(ok["spec"]["token"], "good", "the request is echoed back");
        let unknown = review("nope", json!([]));
        assert_eq!(unknown["status"].get("authenticated"), None);
        assert!(unknown["status"]["error"].is_string());
        assert_eq!(review("other-aud", json!([]))["status"].get("authenticated"), None);
        assert_eq!(review("other-aud", json!(["vault"]))["status"]["authenticated"], true);
        assert!(matches!(r.token_review(&json!({"spec": {}})), Err(ApiError::BadRequest(_))));
    }

    #[test]
    fn access_reviews_follow_the_rules_as_rbac_matches_them() {
        let r = reviews();
        let allowed = |v: Value| r.subject_access_review(&v).unwrap()["status"]["allowed"] == true;
        let prom = "system:serviceaccount:monitoring:prometheus";
        assert!(allowed(sar(prom, &[], "get", "/metrics")));
        assert!(allowed(sar(prom, &[], "get", "/debug/pprof")));
        assert!(!allowed(sar(prom, &[], "post", "/metrics")));
        assert!(!allowed(sar(prom, &[], "get", "/metricsz")));
        assert!(!allowed(sar("someone", &["system:authenticated"], "get", "/metrics")));
        assert!(allowed(sar("admin", &["system:masters"], "delete", "/anything")));
        let denied = r.subject_access_review(&sar("someone", &[], "get", "/metrics")).unwrap();
        assert_eq!(denied["status"], json!({"allowed": false}), "RBAC gives no reason for a denial");
        let resource = json!({"spec": {"user": prom, "resourceAttributes": {"verb": "get", "resource": "nodes"}}});
        assert!(!allowed(resource));
    }

    #[test]
    fn malformed_access_reviews_are_invalid() {
        let r = reviews();
        for (spec, field) in [
            (json!({"user": "u"}), "spec.resourceAttributes"),
            (json!({"user": "u", "resourceAttributes": {}, "nonResourceAttributes": {}}), "spec.nonResourceAttributes"),
            (json!({"nonResourceAttributes": {"verb": "get", "path": "/metrics"}}), "spec.user"),
        ] {
            match r.subject_access_review(&json!({"spec": spec})) {
                Err(ApiError::Invalid { causes, .. }) => assert_eq!(causes[0].field, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }
}
