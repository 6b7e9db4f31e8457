//! Registration of the API resources the emulator serves.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// Group, version and (plural) resource name: the key of a resource type.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gvr {
    /// API group; empty for the core (legacy) group.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Plural resource name, e.g. `nodes`.
    pub resource: String,
}

impl Gvr {
    /// A group/version/resource triple.
    pub fn new(group: &str, version: &str, resource: &str) -> Self {
        Self { group: group.to_owned(), version: version.to_owned(), resource: resource.to_owned() }
    }

    /// The triple of a typed resource (a k8s-openapi type or a `#[derive(CustomResource)]`).
    pub fn of<K: kube::Resource<DynamicType = ()>>() -> Self {
        Self::new(&K::group(&()), &K::version(&()), &K::plural(&()))
    }

    /// `apiVersion` as written in objects: `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        api_version(&self.group, &self.version)
    }

    /// core/v1 `nodes`.
    pub fn nodes() -> Self {
        Self::new("", "v1", "nodes")
    }

    /// core/v1 `namespaces`.
    pub fn namespaces() -> Self {
        Self::new("", "v1", "namespaces")
    }

    /// core/v1 `events`.
    pub fn core_events() -> Self {
        Self::new("", "v1", "events")
    }

    /// events.k8s.io/v1 `events`.
    pub fn events() -> Self {
        Self::new("events.k8s.io", "v1", "events")
    }

    /// coordination.k8s.io/v1 `leases`.
    pub fn leases() -> Self {
        Self::new("coordination.k8s.io", "v1", "leases")
    }

    /// support.compliance.dev/v1alpha1 `supportpolicies`.
    pub fn support_policies() -> Self {
        Self::new("support.compliance.dev", "v1alpha1", "supportpolicies")
    }

    /// support.compliance.dev/v1alpha1 `supportstatuses`.
    pub fn support_statuses() -> Self {
        Self::new("support.compliance.dev", "v1alpha1", "supportstatuses")
    }

    /// authentication.k8s.io/v1 `tokenreviews`.
    pub fn token_reviews() -> Self {
        Self::new("authentication.k8s.io", "v1", "tokenreviews")
    }

    /// authorization.k8s.io/v1 `subjectaccessreviews`.
    pub fn subject_access_reviews() -> Self {
        Self::new("authorization.k8s.io", "v1", "subjectaccessreviews")
    }
}

impl std::fmt::Display for Gvr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            write!(f, "{}/{}", self.version, self.resource)
        } else {
            write!(f, "{}/{}/{}", self.group, self.version, self.resource)
        }
    }
}

pub(crate) fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

/// A create-only review resource: nothing is stored, the answer carries a computed `status`
/// (see `reviews.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Review {
    /// authentication.k8s.io/v1 TokenReview.
    Token,
    /// authorization.k8s.io/v1 SubjectAccessReview.
    SubjectAccess,
}

/// How object names of a resource are validated on create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain (most resources).
    Subdomain,
    /// RFC 1123 label (namespaces).
    Label,
}

/// A resource type served by the emulator.
///
/// Build one with [`ResourceDef::cluster`] / [`ResourceDef::namespaced`] (built-in semantics)
/// or [`ResourceDef::crd`] / [`ResourceDef::from_crd`] (custom-resource semantics), then adjust
/// it with the builder methods.
#[derive(Clone, Debug)]
pub struct ResourceDef {
    /// API group (empty for core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural name (`nodes`).
    pub plural: String,
    /// Singular name (`node`).
    pub singular: String,
    /// Kind (`Node`).
    pub kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names shown in discovery.
    pub short_names: Vec<String>,
    /// Categories shown in discovery.
    pub categories: Vec<String>,
    /// Whether the resource has a `/status` subresource.
    pub status_subresource: bool,
    /// Whether `metadata.generation` is maintained (set to 1 on create, bumped when anything
    /// outside `metadata` (and `status`, with a status subresource) changes).
    pub tracks_generation: bool,
    /// Custom resource: status is dropped on create when there is a status subresource, and
    /// strategic merge patch is rejected with 415 like a real server does.
    pub custom: bool,
    /// Name validation on create.
    pub name_rule: NameRule,
    /// Whether a PUT without `metadata.resourceVersion` is an unconditional update (built-in
    /// resources) or rejected with 422 (custom resources, as on a real server).
    pub unconditional_update: bool,
    /// Field selector keys supported besides `metadata.name` and `metadata.namespace`
    /// (dotted paths into the object, e.g. `spec.unschedulable`).
    pub field_selectors: Vec<String>,
    /// A review (create only, nothing stored), or a normal resource.
    pub review: Option<Review>,
}

impl ResourceDef {
    fn base(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool) -> Self {
        Self {
            group: group.to_owned(),
            version: version.to_owned(),
            plural: plural.to_owned(),
            singular: kind.to_lowercase(),
            kind: kind.to_owned(),
            namespaced,
            short_names: Vec::new(),
            categories: Vec::new(),
            status_subresource: false,
            tracks_generation: false,
            custom: false,
            name_rule: NameRule::Subdomain,
            field_selectors: Vec::new(),
            unconditional_update: true,
            review: None,
        }
    }

    /// A built-in style cluster-scoped resource (no generation tracking, no status subresource).
    pub fn cluster(group: &str, version: &str, plural: &str, kind: &str) -> Self {
        Self::base(group, version, plural, kind, false)
    }

    /// A built-in style namespaced resource (no generation tracking, no status subresource).
    pub fn namespaced(group: &str, version: &str, plural: &str, kind: &str) -> Self {
        Self::base(group, version, plural, kind, true)
    }

    /// A custom resource: generation is tracked; add `.status_subresource()` if it has one.
    pub fn crd(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool) -> Self {
        Self {
            tracks_generation: true,
            custom: true,
            unconditional_update: false,
            ..Self::base(group, version, plural, kind, namespaced)
        }
    }

    /// One definition per served version of a CustomResourceDefinition, e.g.
    /// `ResourceDef::from_crd(&SupportPolicy::crd())`.
    pub fn from_crd(crd: &CustomResourceDefinition) -> Vec<Self> {
        let spec = &crd.spec;
        let namespaced = spec.scope == "Namespaced";
        spec.versions
            .iter()
            .filter(|v| v.served)
            .map(|v| {
                let mut def = Self::crd(&spec.group, &v.name, &spec.names.plural, &spec.names.kind, namespaced);
                if let Some(singular) = &spec.names.singular {
                    def.singular = singular.clone();
                }
                def.short_names = spec.names.short_names.clone().unwrap_or_default();
                def.categories = spec.names.categories.clone().unwrap_or_default();
                def.status_subresource = v.subresources.as_ref().is_some_and(|s| s.status.is_some());
                def
            })
            .collect()
    }

    /// A create-only review resource (TokenReview, SubjectAccessReview), as every API server
    /// serves them: `create` is its only verb and the answer is computed, never stored.
    pub fn review(group: &str, version: &str, plural: &str, kind: &str, review: Review) -> Self {
        Self { review: Some(review), ..Self::base(group, version, plural, kind, false) }
    }

    /// Adds a `/status` subresource.
    pub fn status_subresource(mut self) -> Self {
        self.status_subresource = true;
        self
    }

    /// Sets whether `metadata.generation` is maintained.
    pub fn tracks_generation(mut self, yes: bool) -> Self {
        self.tracks_generation = yes;
        self
    }

    /// Sets the short names.
    pub fn short_names(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// Sets the categories.
    pub fn categories(mut self, names: &[&str]) -> Self {
        self.categories = names.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// Sets the singular name (default: the lowercased kind).
    pub fn singular(mut self, singular: &str) -> Self {
        self.singular = singular.to_owned();
        self
    }

    /// Sets the extra supported field selector keys.
    pub fn field_selectors(mut self, keys: &[&str]) -> Self {
        self.field_selectors = keys.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// Sets the name validation rule.
    pub fn name_rule(mut self, rule: NameRule) -> Self {
        self.name_rule = rule;
        self
    }

    /// The group/version/resource key.
    pub fn gvr(&self) -> Gvr {
        Gvr::new(&self.group, &self.version, &self.plural)
    }

    /// `apiVersion` of the objects.
    pub fn api_version(&self) -> String {
        api_version(&self.group, &self.version)
    }

    /// `nodes` or `supportpolicies.support.compliance.dev`, as used in error messages.
    pub(crate) fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub(crate) fn verbs(&self) -> Vec<&'static str> {
        if self.review.is_some() {
            return vec!["create"];
        }
        vec!["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
    }
}

/// The default resources: nodes, namespaces, core and events.k8s.io events, leases, the two
/// support.compliance.dev custom resources, and the TokenReview and SubjectAccessReview APIs.
pub fn default_resources() -> Vec<ResourceDef> {
    vec![
        ResourceDef::cluster("", "v1", "namespaces", "Namespace")
            .short_names(&["ns"])
            .status_subresource()
            .name_rule(NameRule::Label),
        ResourceDef::cluster("", "v1", "nodes", "Node")
            .short_names(&["no"])
            .status_subresource()
            .field_selectors(&["spec.unschedulable"]),
        ResourceDef::namespaced("", "v1", "events", "Event").short_names(&["ev"]).field_selectors(&[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "reason",
            "type",
        ]),
        ResourceDef::namespaced("events.k8s.io", "v1", "events", "Event").short_names(&["ev"]).field_selectors(&[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "reason",
            "type",
            "reportingController",
        ]),
        ResourceDef::namespaced("coordination.k8s.io", "v1", "leases", "Lease"),
        ResourceDef::crd("support.compliance.dev", "v1alpha1", "supportpolicies", "SupportPolicy", false)
            .short_names(&["spol"])
            .categories(&["support"]),
        ResourceDef::crd("support.compliance.dev", "v1alpha1", "supportstatuses", "SupportStatus", false)
            .short_names(&["sst"])
            .categories(&["support"])
            .status_subresource(),
        ResourceDef::review("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", Review::Token),
        ResourceDef::review(
            "authorization.k8s.io",
            "v1",
            "subjectaccessreviews",
            "SubjectAccessReview",
            Review::SubjectAccess,
        ),
    ]
}

/// The registered resources, in registration order.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    defs: Vec<Arc<ResourceDef>>,
    by_gvr: HashMap<Gvr, usize>,
}

impl Registry {
    /// Registers a definition; a later registration of the same group/version/resource replaces
    /// the earlier one.
    pub(crate) fn register(&mut self, def: ResourceDef) {
        let gvr = def.gvr();
        match self.by_gvr.get(&gvr) {
            Some(&i) => self.defs[i] = Arc::new(def),
            None => {
                self.by_gvr.insert(gvr, self.defs.len());
                self.defs.push(Arc::new(def));
            }
        }
    }

    /// A registry with the definitions `keep` accepts (for discovery of what is served now).
    pub(crate) fn filtered(&self, keep: impl Fn(&ResourceDef) -> bool) -> Registry {
        let mut out = Registry::default();
        for def in self.defs.iter().filter(|d| keep(d)) {
            out.register((**def).clone());
        }
        out
    }

    pub(crate) fn def(&self, id: usize) -> &Arc<ResourceDef> {
        &self.defs[id]
    }

    pub(crate) fn id(&self, gvr: &Gvr) -> Option<usize> {
        self.by_gvr.get(gvr).copied()
    }

    pub(crate) fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<usize> {
        self.id(&Gvr::new(group, version, plural))
    }

    /// Finds the resource of an `apiVersion` + `kind`.
    pub(crate) fn by_kind(&self, api_version: &str, kind: &str) -> Option<usize> {
        self.defs.iter().position(|d| d.api_version() == api_version && d.kind == kind)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &Arc<ResourceDef>)> {
        self.defs.iter().enumerate()
    }

    /// Non-core groups in registration order, each with its versions sorted by preference.
    pub(crate) fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for def in self.defs.iter().filter(|d| !d.group.is_empty()) {
            match groups.iter_mut().find(|(g, _)| *g == def.group) {
                Some((_, versions)) => {
                    if !versions.contains(&def.version) {
                        versions.push(def.version.clone());
                    }
                }
                None => groups.push((def.group.clone(), vec![def.version.clone()])),
            }
        }
        for (_, versions) in &mut groups {
            versions.sort_by(|a, b| compare_versions(b, a));
        }
        groups
    }

    /// Versions of the core group, sorted by preference.
    pub(crate) fn core_versions(&self) -> Vec<String> {
        let mut versions: Vec<String> = Vec::new();
        for def in self.defs.iter().filter(|d| d.group.is_empty()) {
            if !versions.contains(&def.version) {
                versions.push(def.version.clone());
            }
        }
        versions.sort_by(|a, b| compare_versions(b, a));
        versions
    }

    pub(crate) fn in_group_version(&self, group: &str, version: &str) -> Vec<&Arc<ResourceDef>> {
        self.defs.iter().filter(|d| d.group == group && d.version == version).collect()
    }
}

/// Kubernetes version priority: GA > beta > alpha > anything else, then by numbers.
pub(crate) fn compare_versions(a: &str, b: &str) -> Ordering {
    version_priority(a).cmp(&version_priority(b)).then_with(|| b.cmp(a))
}

fn version_priority(v: &str) -> (u8, u32, u32) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let Ok(major) = digits.parse::<u32>() else {
        return (0, 0, 0);
    };
    let tail = &rest[digits.len()..];
    if tail.is_empty() {
        return (3, major, 0);
    }
    let (stage, num) = if let Some(n) = tail.strip_prefix("beta") {
        (2, n)
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n)
    } else {
        return (0, 0, 0);
    };
    match num.parse::<u32>() {
        Ok(n) => (stage, major, n),
        Err(_) => (0, 0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_order() {
        let mut v = vec!["v1alpha1", "v2", "v1", "v1beta2", "v1beta1", "foo"];
        v.sort_by(|a, b| compare_versions(b, a));
        assert_eq!(v, ["v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]);
    }
}
