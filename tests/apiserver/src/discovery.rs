//! Discovery documents: `/version`, `/api`, `/apis`, group-version resource lists, and the
//! aggregated discovery (`apidiscovery.k8s.io/v2`) variants of `/api` and `/apis`.

use serde_json::{json, Value};

use super::resources::{Registry, ResourceDef};

/// The media type of aggregated discovery responses.
pub(crate) const AGGREGATED_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
const AGGREGATED_V2BETA1: &str = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// The aggregated discovery version the `Accept` header asks for first (`v2` or `v2beta1`),
/// or `None` when its first acceptable type is plain JSON.
pub(crate) fn wants_aggregated(accept: &str) -> Option<&'static str> {
    for media in accept.split(',') {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        let has = |p: &str| params.contains(&p);
        if has("as=APIGroupDiscoveryList") && has("g=apidiscovery.k8s.io") {
            if has("v=v2") {
                return Some("v2");
            }
            if has("v=v2beta1") {
                return Some("v2beta1");
            }
            continue;
        }
        if params.first().is_some_and(|t| *t == "application/json" || *t == "*/*") {
            return None;
        }
    }
    None
}

/// The response content type of an aggregated discovery version.
pub(crate) fn aggregated_content_type(version: &str) -> &'static str {
    if version == "v2beta1" {
        AGGREGATED_V2BETA1
    } else {
        AGGREGATED_V2
    }
}

/// `version.Info` for a `gitVersion` such as `v1.31.4` or `v1.30.2-eks-1234`.
pub(crate) fn version_info(git_version: &str) -> Value {
    let numbers: Vec<String> = git_version
        .trim_start_matches('v')
        .split(['.', '-', '+'])
        .take(2)
        .map(|s| s.chars().take_while(char::is_ascii_digit).collect())
        .collect();
    let major = numbers.first().cloned().unwrap_or_default();
    let minor = numbers.get(1).cloned().unwrap_or_default();
    json!({
        "major": major,
        "minor": minor,
        "gitVersion": git_version,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2024-12-10T00:00:00Z",
        "goVersion": "go1.22.9",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `GET /api`.
pub(crate) fn core_versions(registry: &Registry, server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": registry.core_versions(),
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_json(name: &str, versions: &[String]) -> Value {
    let gvs: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v})).collect();
    json!({
        "name": name,
        "versions": gvs,
        "preferredVersion": gvs.first().cloned().unwrap_or(Value::Null),
    })
}

/// `GET /apis`.
pub(crate) fn group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> = registry.groups().iter().map(|(name, versions)| group_json(name, versions)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/{group}`.
pub(crate) fn group(registry: &Registry, group: &str) -> Option<Value> {
    let groups = registry.groups();
    let (name, versions) = groups.iter().find(|(g, _)| g == group)?;
    let mut g = group_json(name, versions);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

/// `GET /api/{version}` or `GET /apis/{group}/{version}`.
pub(crate) fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let defs = registry.in_group_version(group, version);
    if defs.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for def in defs {
        let mut r = json!({
            "name": def.plural,
            "singularName": def.singular,
            "namespaced": def.namespaced,
            "kind": def.kind,
            "verbs": def.verbs(),
        });
        if !def.short_names.is_empty() {
            r["shortNames"] = json!(def.short_names);
        }
        if !def.categories.is_empty() {
            r["categories"] = json!(def.categories);
        }
        resources.push(r);
        if def.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", def.plural),
                "singularName": "",
                "namespaced": def.namespaced,
                "kind": def.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": super::resources::api_version(group, version),
        "resources": resources,
    }))
}

fn resource_discovery(def: &ResourceDef) -> Value {
    let gvk = json!({"group": def.group, "version": def.version, "kind": def.kind});
    let mut r = json!({
        "resource": def.plural,
        "responseKind": gvk,
        "scope": if def.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": def.singular,
        "verbs": def.verbs(),
    });
    if !def.short_names.is_empty() {
        r["shortNames"] = json!(def.short_names);
    }
    if !def.categories.is_empty() {
        r["categories"] = json!(def.categories);
    }
    if def.status_subresource {
        r["subresources"] = json!([{
            "subresource": "status",
            "responseKind": gvk,
            "verbs": ["get", "patch", "update"],
        }]);
    }
    r
}

fn group_discovery(registry: &Registry, name: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            let resources: Vec<Value> =
                registry.in_group_version(name, v).into_iter().map(|d| resource_discovery(d)).collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": {"name": name}, "versions": versions})
}

/// Aggregated `GET /apis` (`core: false`) or `GET /api` (`core: true`).
pub(crate) fn aggregated(registry: &Registry, core: bool, version: &str) -> Value {
    let items: Vec<Value> = if core {
        let versions = registry.core_versions();
        if versions.is_empty() {
            Vec::new()
        } else {
            vec![group_discovery(registry, "", &versions)]
        }
    } else {
        registry.groups().iter().map(|(name, versions)| group_discovery(registry, name, versions)).collect()
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation() {
        assert_eq!(wants_aggregated("application/json"), None);
        assert_eq!(
            wants_aggregated("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"),
            Some("v2")
        );
        assert_eq!(
            wants_aggregated("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"),
            Some("v2beta1")
        );
    }

    #[test]
    fn version_numbers() {
        let v = version_info("v1.31.4");
        assert_eq!((v["major"].as_str(), v["minor"].as_str()), (Some("1"), Some("31")));
        let v = version_info("v1.30.2-eks-1234");
        assert_eq!(v["minor"], "30");
    }
}
