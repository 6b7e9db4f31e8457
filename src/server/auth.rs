//! Who may read `/metrics`: the caller's bearer token is checked with a TokenReview and its right
//! to `get` the non-resource URL with a SubjectAccessReview, both answered by the API server
//! (what controller-runtime's `filters.WithAuthenticationAndAuthorization` does, and
//! kube-rbac-proxy before it). Answers are cached for a short time, in bounded caches.
//!
//! No token, or one the API server does not authenticate: 401. Authenticated without the right:
//! 403. A review that fails or does not answer in time: 500 (not cached; the next scrape asks again).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::{Api, PostParams};
use tokio::time::Instant;

use super::cache::{digest, TtlCache};

/// The deadline of one review call.
const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);

/// How long answers are kept, and how many (controller-runtime's lifetimes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthCache {
    /// A TokenReview answer, authenticated or not.
    pub token_ttl: Duration,
    /// A SubjectAccessReview that allowed.
    pub allowed_ttl: Duration,
    /// A SubjectAccessReview that denied.
    pub denied_ttl: Duration,
    /// Entries per cache (tokens; user and request pairs).
    pub capacity: usize,
}

impl Default for AuthCache {
    fn default() -> Self {
        AuthCache {
            token_ttl: Duration::from_secs(60),
            allowed_ttl: Duration::from_secs(300),
            denied_ttl: Duration::from_secs(30),
            capacity: 1024,
        }
    }
}

/// The authenticated caller (`status.user` of the TokenReview).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Caller {
    name: String,
    uid: Option<String>,
    groups: Vec<String>,
    extra: BTreeMap<String, Vec<String>>,
}

/// Why a request is refused.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// 401.
    Unauthenticated,
    /// 403, naming the user.
    Forbidden(String),
    /// 500: a review could not be made.
    Failed(String),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Unauthenticated => {
                (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], "Unauthorized\n").into_response()
            }
            Refusal::Forbidden(user) => {
                (StatusCode::FORBIDDEN, format!("Authorization denied for user {user}\n")).into_response()
            }
            Refusal::Failed(why) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{why}\n")).into_response(),
        }
    }
}

/// Asks the API server who a caller is and what it may do, remembering the answers.
pub struct Reviewer {
    client: kube::Client,
    cache: AuthCache,
    tokens: Mutex<TtlCache<Option<Caller>>>,
    access: Mutex<TtlCache<bool>>,
}

impl Reviewer {
    /// Reviews through `client` (the operator's own identity, which needs `create` on
    /// tokenreviews and subjectaccessreviews).
    pub fn new(client: kube::Client, cache: AuthCache) -> Arc<Reviewer> {
        Arc::new(Reviewer {
            client,
            cache,
            tokens: Mutex::new(TtlCache::new(cache.capacity)),
            access: Mutex::new(TtlCache::new(cache.capacity)),
        })
    }

    async fn check(&self, headers: &HeaderMap, verb: &str, path: &str) -> Result<(), Refusal> {
        let token = bearer(headers).ok_or(Refusal::Unauthenticated)?;
        let caller = self.authenticate(token).await?.ok_or(Refusal::Unauthenticated)?;
        if self.authorize(&caller, verb, path).await? {
            Ok(())
        } else {
            tracing::debug!(user = %caller.name, %path, "metrics: access denied");
            Err(Refusal::Forbidden(caller.name))
        }
    }

    async fn authenticate(&self, token: &str) -> Result<Option<Caller>, Refusal> {
        let key = digest(token.as_bytes());
        if let Some(known) = lock(&self.tokens).get(&key, Instant::now()) {
            return Ok(known);
        }
        let review = TokenReview {
            spec: TokenReviewSpec { token: Some(token.to_string()), ..Default::default() },
            ..Default::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let answer = call(api.create(&PostParams::default(), &review)).await.map_err(|e| {
            tracing::warn!(error = %e, "metrics: TokenReview failed");
            Refusal::Failed("Authentication failed".into())
        })?;
        let status = answer.status.unwrap_or_default();
        let caller = match (status.authenticated, status.user) {
            (Some(true), Some(user)) => Some(Caller {
                name: user.username.unwrap_or_default(),
                uid: user.uid,
                groups: user.groups.unwrap_or_default(),
                extra: user.extra.unwrap_or_default(),
            }),
            _ => None,
        };
        lock(&self.tokens).insert(key, caller.clone(), self.cache.token_ttl, Instant::now());
        Ok(caller)
    }

    async fn authorize(&self, caller: &Caller, verb: &str, path: &str) -> Result<bool, Refusal> {
        let identity = serde_json::json!([caller.name, caller.uid, caller.groups, caller.extra, verb, path]);
        let key = digest(identity.to_string().as_bytes());
        if let Some(known) = lock(&self.access).get(&key, Instant::now()) {
            return Ok(known);
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(caller.name.clone()),
                uid: caller.uid.clone(),
                groups: Some(caller.groups.clone()),
                extra: Some(caller.extra.clone()),
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some(path.to_string()),
                    verb: Some(verb.to_string()),
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = call(api.create(&PostParams::default(), &review)).await.map_err(|e| {
            tracing::warn!(user = %caller.name, error = %e, "metrics: SubjectAccessReview failed");
            Refusal::Failed(format!("Authorization for user {} failed", caller.name))
        })?;
        let allowed = answer.status.is_some_and(|s| s.allowed && s.denied != Some(true));
        let ttl = if allowed { self.cache.allowed_ttl } else { self.cache.denied_ttl };
        lock(&self.access).insert(key, allowed, ttl, Instant::now());
        Ok(allowed)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A review call within its deadline.
async fn call<T>(
    request: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, Box<dyn std::error::Error + Send + Sync>> {
    match tokio::time::timeout(REVIEW_TIMEOUT, request).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(format!("no answer within {REVIEW_TIMEOUT:?}").into()),
    }
}

/// The token of `Authorization: Bearer <token>` (the scheme in any case, as the API server reads it).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The middleware: the request goes on only when the caller may `get` its path.
pub async fn guard(State(reviewer): State<Arc<Reviewer>>, request: Request, next: Next) -> Response {
    let verb = request.method().as_str().to_ascii_lowercase();
    match reviewer.check(request.headers(), &verb, request.uri().path()).await {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_token_is_read_as_the_api_server_reads_it() {
        let headers = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, v.parse().unwrap());
            h
        };
        assert_eq!(bearer(&headers("Bearer abc.def")), Some("abc.def"));
        assert_eq!(bearer(&headers("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(&headers("Basic dXNlcjpwYXNz")), None);
        assert_eq!(bearer(&headers("Bearer ")), None);
        assert_eq!(bearer(&headers("Bearer")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn refusals_answer_401_403_and_500() {
        assert_eq!(Refusal::Unauthenticated.into_response().status(), StatusCode::UNAUTHORIZED);
        assert_eq!(Refusal::Forbidden("u".into()).into_response().status(), StatusCode::FORBIDDEN);
        assert_eq!(Refusal::Failed("x".into()).into_response().status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
