//! OpenAPI v3 (`/openapi/v3`), as much of it as clients read to decide how to talk to the server.
//!
//! - `GET /openapi/v3`: `{"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=…"}, …}}`,
//!   one entry per served group/version.
//! - `GET /openapi/v3/api/v1`, `/openapi/v3/apis/{group}/{version}`: an OpenAPI 3.0 document with
//!   every path of the served resources, each operation with its `x-kubernetes-action`,
//!   `x-kubernetes-group-version-kind` and query parameters (`dryRun`, `fieldManager`,
//!   `fieldValidation` on writes, `force` on patch, the list and watch parameters on lists). kubectl
//!   reads them to learn that the server validates fields itself (`--validate`, the default, sends
//!   `fieldValidation=Strict` then; the emulator accepts the parameter and does not validate, see the
//!   crate docs).
//! - Schemas: a custom resource whose CRD is stored gets the CRD's `openAPIV3Schema` under
//!   `components.schemas` (as `kubectl explain` reads it); built-in types get none.

use serde_json::{json, Map, Value};

use crate::resources::{Registry, ResourceDef};

/// `api/v1` or `apis/{group}/{version}`.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// A stable hash of a document, for `serverRelativeURL` (FNV-1a, hex).
fn hash(doc: &Value) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in doc.to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016X}")
}

/// Every served group/version, as `(group, version)`.
fn group_versions(registry: &Registry) -> Vec<(String, String)> {
    let mut gvs: Vec<(String, String)> = registry.core_versions().into_iter().map(|v| (String::new(), v)).collect();
    for (group, versions) in registry.groups() {
        gvs.extend(versions.into_iter().map(|v| (group.clone(), v)));
    }
    gvs
}

/// `GET /openapi/v3`.
pub(crate) fn root(registry: &Registry, schema_of: &dyn Fn(&ResourceDef) -> Option<Value>) -> Value {
    let mut paths = Map::new();
    for (group, version) in group_versions(registry) {
        let path = gv_path(&group, &version);
        let doc = group_version(registry, &group, &version, schema_of).unwrap_or_default();
        paths.insert(path.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", hash(&doc))}));
    }
    json!({ "paths": paths })
}

fn param(name: &str, location: &str, ty: &str) -> Value {
    json!({"name": name, "in": location, "schema": {"type": ty, "uniqueItems": true}})
}

fn operation(def: &ResourceDef, action: &str, id: &str, params: &[&str]) -> Value {
    let typed = |p: &&str| match *p {
        "limit" | "timeoutSeconds" => param(p, "query", "integer"),
        "watch" | "allowWatchBookmarks" | "sendInitialEvents" | "force" => param(p, "query", "boolean"),
        _ => param(p, "query", "string"),
    };
    json!({
        "operationId": format!("{id}{}", def.kind),
        "tags": [def.group.clone()],
        "parameters": params.iter().map(typed).collect::<Vec<_>>(),
        "responses": {"200": {"description": "OK"}, "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": def.group, "version": def.version, "kind": def.kind},
    })
}

const WRITE: &[&str] = &["dryRun", "fieldManager", "fieldValidation"];
const PATCH: &[&str] = &["dryRun", "fieldManager", "fieldValidation", "force"];
const LIST: &[&str] = &[
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
];
const DELETE: &[&str] = &["dryRun", "gracePeriodSeconds", "propagationPolicy"];

fn resource_paths(def: &ResourceDef, paths: &mut Map<String, Value>) {
    let prefix = format!("/{}", gv_path(&def.group, &def.version));
    let scope = if def.namespaced { "/namespaces/{namespace}" } else { "" };
    let path_params = |name: bool| {
        let mut p = vec![param("pretty", "query", "string")];
        if def.namespaced {
            p.push(json!({"name": "namespace", "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}}));
        }
        if name {
            p.push(json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}}));
        }
        p
    };
    let collection = format!("{prefix}{scope}/{}", def.plural);
    if def.review.is_some() {
        // Create only, as on a real server.
        paths.insert(
            collection,
            json!({"post": operation(def, "post", "create", WRITE), "parameters": path_params(false)}),
        );
        return;
    }
    paths.insert(
        collection.clone(),
        json!({
            "get": operation(def, "list", "list", LIST),
            "post": operation(def, "post", "create", WRITE),
            "delete": operation(def, "deletecollection", "deleteCollection", LIST),
            "parameters": path_params(false),
        }),
    );
    paths.insert(
        format!("{collection}/{{name}}"),
        json!({
            "get": operation(def, "get", "read", &[]),
            "put": operation(def, "put", "replace", WRITE),
            "patch": operation(def, "patch", "patch", PATCH),
            "delete": operation(def, "delete", "delete", DELETE),
            "parameters": path_params(true),
        }),
    );
    if def.status_subresource {
        paths.insert(
            format!("{collection}/{{name}}/status"),
            json!({
                "get": operation(def, "get", "readStatus", &[]),
                "put": operation(def, "put", "replaceStatus", WRITE),
                "patch": operation(def, "patch", "patchStatus", PATCH),
                "parameters": path_params(true),
            }),
        );
    }
    if def.namespaced {
        paths.insert(
            format!("{prefix}/{}", def.plural),
            json!({"get": operation(def, "list", "listForAllNamespaces", LIST), "parameters": path_params(false)}),
        );
    }
}

/// `GET /openapi/v3/{api/v1 | apis/group/version}`; `None` for a group/version not served.
pub(crate) fn group_version(
    registry: &Registry,
    group: &str,
    version: &str,
    schema_of: &dyn Fn(&ResourceDef) -> Option<Value>,
) -> Option<Value> {
    let defs = registry.in_group_version(group, version);
    if defs.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for def in defs {
        resource_paths(def, &mut paths);
        if let Some(mut schema) = schema_of(def) {
            // The reverse-DNS name real servers use: dev.compliance.support.v1alpha1.SupportPolicy.
            let reversed: Vec<&str> = def.group.split('.').rev().collect();
            schema["x-kubernetes-group-version-kind"] =
                json!([{"group": def.group, "version": def.version, "kind": def.kind}]);
            schemas.insert(format!("{}.{}.{}", reversed.join("."), def.version, def.kind), schema);
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// The group and version of `/openapi/v3/…` segments after `v3`.
pub(crate) fn parse(segs: &[&str]) -> Option<(String, String)> {
    match segs {
        ["api", v] => Some((String::new(), (*v).to_owned())),
        ["apis", g, v] => Some(((*g).to_owned(), (*v).to_owned())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::default_resources;

    #[test]
    fn every_write_declares_field_validation_and_names_its_kind() {
        let mut registry = Registry::default();
        default_resources().into_iter().for_each(|d| registry.register(d));
        let root = root(&registry, &|_| None);
        let url = root["paths"]["apis/support.compliance.dev/v1alpha1"]["serverRelativeURL"].as_str().unwrap();
        assert!(url.starts_with("/openapi/v3/apis/support.compliance.dev/v1alpha1?hash="), "{url}");
        assert!(root["paths"].get("api/v1").is_some());
        let doc = group_version(&registry, "support.compliance.dev", "v1alpha1", &|_| None).unwrap();
        let item = &doc["paths"]["/apis/support.compliance.dev/v1alpha1/supportstatuses/{name}"];
        let patch = &item["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "SupportStatus");
        let names: Vec<&str> =
            patch["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"fieldValidation") && names.contains(&"force"), "{names:?}");
        assert!(doc["paths"].get("/apis/support.compliance.dev/v1alpha1/supportstatuses/{name}/status").is_some());
        assert!(doc["paths"].get("/apis/support.compliance.dev/v1alpha1/supportpolicies/{name}/status").is_none());
        let leases = group_version(&registry, "coordination.k8s.io", "v1", &|_| None).unwrap();
        assert!(leases["paths"].get("/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}").is_some());
        assert!(leases["paths"].get("/apis/coordination.k8s.io/v1/leases").is_some(), "list across namespaces");
        assert!(group_version(&registry, "nope.example.com", "v1", &|_| None).is_none());
        assert_eq!(parse(&["apis", "g", "v1"]), Some(("g".into(), "v1".into())));
        assert_eq!(parse(&["api"]), None);
    }
}
