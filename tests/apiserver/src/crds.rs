//! CustomResourceDefinitions (`apiextensions.k8s.io/v1`), when enabled with
//! [`ApiServerBuilder::custom_resources_from_crds`](crate::ApiServerBuilder::custom_resources_from_crds):
//!
//! - a custom resource registered in the emulator is served (requests, discovery, OpenAPI) only while
//!   a CRD named `<plural>.<group>` lists its version with `served: true`; otherwise its paths answer
//!   404, as on a real server;
//! - a CRD write is validated as the API server does for what matters on upgrades: the name is
//!   `<plural>.<group>`, exactly one version is the storage version, and every version in
//!   `status.storedVersions` is still in `spec.versions` (a CRD cannot drop a version objects may be
//!   stored at: 422);
//! - the status the apiextensions controllers would set is set in the same write: `acceptedNames`,
//!   the `NamesAccepted` and `Established` conditions, and the storage version appended to
//!   `storedVersions`;
//! - deleting a CRD deletes every object of its resources first (the real server's
//!   `customresourcecleanup` finalizer does it asynchronously; here it is synchronous), then the CRD.
//!
//! Not modelled: schema validation and pruning, conversion between versions (a CRD can only serve
//! versions registered in the emulator), renaming a resource's names, the `Terminating` condition.

use serde_json::{json, Value};

use crate::errors::{ApiError, Cause, Subject};
use crate::resources::ResourceDef;

/// The group of the CRD resource.
pub(crate) const GROUP: &str = "apiextensions.k8s.io";

/// The CRD resource itself.
pub(crate) fn definition() -> ResourceDef {
    ResourceDef::cluster(GROUP, "v1", "customresourcedefinitions", "CustomResourceDefinition")
        .short_names(&["crd", "crds"])
        .categories(&["api-extensions"])
        .status_subresource()
        .tracks_generation(true)
}

/// Whether `def` is the CRD resource.
pub(crate) fn is_crd(def: &ResourceDef) -> bool {
    def.group == GROUP && def.plural == "customresourcedefinitions"
}

/// The name of the CRD that defines a custom resource.
pub(crate) fn crd_name(def: &ResourceDef) -> String {
    format!("{}.{}", def.plural, def.group)
}

/// Whether the stored CRD (if any) serves `def`'s version.
pub(crate) fn serves(crd: Option<&Value>, def: &ResourceDef) -> bool {
    let Some(crd) = crd else { return false };
    crd.pointer("/metadata/deletionTimestamp").is_none()
        && crd["spec"]["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|v| v["name"] == def.version.as_str() && v["served"] == true)
}

/// The group and plural a CRD defines.
pub(crate) fn defines(crd: &Value) -> (String, String) {
    let spec = &crd["spec"];
    (
        spec["group"].as_str().unwrap_or_default().to_owned(),
        spec["names"]["plural"].as_str().unwrap_or_default().to_owned(),
    )
}

fn cause(field: &str, reason: &str, message: String) -> Cause {
    Cause { field: field.to_owned(), reason: reason.to_owned(), message }
}

/// Validates a CRD about to be stored (`old`: the stored one, on updates) and sets its status.
pub(crate) fn admit(subject: Subject, old: Option<&Value>, new: &mut Value) -> Result<(), ApiError> {
    let mut causes = Vec::new();
    let (group, plural) = defines(new);
    let name = new.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
    if name != format!("{plural}.{group}") {
        causes.push(cause(
            "metadata.name",
            "FieldValueInvalid",
            format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let versions: Vec<&Value> = new["spec"]["versions"].as_array().into_iter().flatten().collect();
    let storage: Vec<&str> =
        versions.iter().filter(|v| v["storage"] == true).filter_map(|v| v["name"].as_str()).collect();
    if storage.len() != 1 {
        causes.push(cause(
            "spec.versions",
            "FieldValueInvalid",
            format!("Invalid value: {:?}: must have exactly one version marked as storage version", storage),
        ));
    }
    let mut stored: Vec<String> = old
        .and_then(|o| o["status"]["storedVersions"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    for (i, v) in stored.iter().enumerate() {
        if !versions.iter().any(|s| s["name"] == v.as_str()) {
            causes.push(cause(
                &format!("status.storedVersions[{i}]"),
                "FieldValueInvalid",
                format!("Invalid value: {v:?}: must appear in spec.versions"),
            ));
        }
    }
    if !causes.is_empty() {
        return Err(ApiError::Invalid { subject, causes });
    }
    if !stored.iter().any(|v| v == storage[0]) {
        stored.push(storage[0].to_owned());
    }
    let mut accepted = new["spec"]["names"].clone();
    if let Some(names) = accepted.as_object_mut() {
        let kind = names.get("kind").and_then(Value::as_str).unwrap_or_default().to_owned();
        names.entry("singular").or_insert_with(|| json!(kind.to_lowercase()));
        names.entry("listKind").or_insert_with(|| json!(format!("{kind}List")));
    }
    let since = old
        .and_then(|o| o["status"]["conditions"].as_array())
        .and_then(|c| c.iter().find(|c| c["type"] == "Established"))
        .and_then(|c| c["lastTransitionTime"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(crate::meta::now_rfc3339);
    new["status"] = json!({
        "acceptedNames": accepted,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": since},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": since},
        ],
        "storedVersions": stored,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(versions: Value) -> Value {
        json!({"metadata": {"name": "things.example.com"},
               "spec": {"group": "example.com", "names": {"plural": "things", "kind": "Thing"}, "versions": versions}})
    }

    fn subject() -> Subject {
        Subject {
            group: GROUP.into(),
            kind: "CustomResourceDefinition".into(),
            qualified: "x".into(),
            name: "x".into(),
        }
    }

    #[test]
    fn status_records_every_storage_version_and_refuses_to_drop_one() {
        let mut v1 = crd(json!([{"name": "v1alpha1", "served": true, "storage": true}]));
        admit(subject(), None, &mut v1).unwrap();
        assert_eq!(v1["status"]["storedVersions"], json!(["v1alpha1"]));
        assert_eq!(v1["status"]["acceptedNames"]["listKind"], "ThingList");

        let mut v2 = crd(json!([{"name": "v1alpha1", "served": true, "storage": false},
                                {"name": "v1beta1", "served": true, "storage": true}]));
        admit(subject(), Some(&v1), &mut v2).unwrap();
        assert_eq!(v2["status"]["storedVersions"], json!(["v1alpha1", "v1beta1"]));

        let mut v3 = crd(json!([{"name": "v1beta1", "served": true, "storage": true}]));
        let err = admit(subject(), Some(&v2), &mut v3).unwrap_err();
        assert!(
            err.to_string()
                .contains(r#"status.storedVersions[0]: Invalid value: "v1alpha1": must appear in spec.versions"#),
            "{err}"
        );

        let mut two = crd(
            json!([{"name": "a", "served": true, "storage": true}, {"name": "b", "served": true, "storage": true}]),
        );
        assert!(admit(subject(), None, &mut two).unwrap_err().to_string().contains("exactly one version"));
        let mut misnamed = crd(json!([{"name": "v1", "served": true, "storage": true}]));
        misnamed["metadata"]["name"] = json!("other.example.com");
        assert!(admit(subject(), None, &mut misnamed).unwrap_err().to_string().contains("spec.names.plural"));
    }

    #[test]
    fn only_served_versions_of_a_live_crd_are_served() {
        let def = ResourceDef::crd("example.com", "v1alpha1", "things", "Thing", false);
        let mut c = crd(json!([{"name": "v1alpha1", "served": true, "storage": true}]));
        assert!(serves(Some(&c), &def));
        assert!(!serves(None, &def));
        c["spec"]["versions"][0]["served"] = json!(false);
        assert!(!serves(Some(&c), &def));
        c["spec"]["versions"][0]["served"] = json!(true);
        c["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert!(!serves(Some(&c), &def));
    }
}
