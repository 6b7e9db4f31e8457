//! Reading a policy file and snapshot files for `check`. Every error names the file, the field
//! and the reason in one line; garbage inside one object is a warning and a finding, not an error.

use std::path::{Path, PathBuf};

use serde_json::Value;

use kube::Resource;

use crate::crd::v1alpha1::{Platform, SupportPolicy, SupportPolicySpec};
use crate::policy::Policy;
use crate::snapshot::{ClusterSnapshot, LeaseInfo, NodeInfo};

/// Input that cannot be used: `check` exits 2 with this one line.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A file cannot be read.
    #[error("{file}: cannot read: {reason}")]
    Read { file: String, reason: String },
    /// A file is not valid JSON/YAML.
    #[error("{file}: not valid {format}: {reason}")]
    Syntax { file: String, format: &'static str, reason: String },
    /// A field is wrong.
    #[error("{file}: {field}: {reason}")]
    Field { file: String, field: String, reason: String },
    /// The file holds something else.
    #[error("{file}: {reason}")]
    Content { file: String, reason: String },
}

/// Preset names accepted by `--policy`.
pub const PRESET_NAMES: [(&str, Platform); 5] = [
    ("aks", Platform::Aks),
    ("aks-arc", Platform::AksArc),
    ("eks", Platform::Eks),
    ("gke", Platform::Gke),
    ("upstream", Platform::Upstream),
];

/// A policy for a preset name (`aks`, `aks-arc`, …), named after the preset.
pub fn preset_policy(name: &str) -> Option<SupportPolicy> {
    let (_, platform) = PRESET_NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))?;
    Some(SupportPolicy::new(name, SupportPolicySpec { platform: *platform, ..Default::default() }))
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

fn read(path: &Path) -> Result<String, InputError> {
    std::fs::read_to_string(path).map_err(|e| InputError::Read { file: display(path), reason: e.to_string() })
}

/// Reads one SupportPolicy from a YAML (or JSON) file and checks it as the operator would.
pub fn load_policy(path: &Path) -> Result<SupportPolicy, InputError> {
    let file = display(path);
    let text = read(path)?;
    let mut docs = crate::yaml::documents(&text).map_err(|e| InputError::Syntax {
        file: file.clone(),
        format: "YAML",
        reason: e.to_string(),
    })?;
    let doc = match docs.len() {
        1 => docs.remove(0),
        0 => return Err(InputError::Content { file, reason: "holds no document (expected one SupportPolicy)".into() }),
        n => {
            return Err(InputError::Content {
                file,
                reason: format!("holds {n} documents (expected one SupportPolicy)"),
            })
        }
    };
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    let api_version = doc.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let (want_api_version, want_kind) = (SupportPolicy::api_version(&()), SupportPolicy::kind(&()));
    if kind != want_kind || api_version != want_api_version {
        return Err(InputError::Content {
            file,
            reason: format!(
                "expected apiVersion {want_api_version}, kind {want_kind}; found {} {}",
                if api_version.is_empty() { "no apiVersion," } else { api_version },
                if kind.is_empty() { "no kind" } else { kind }
            ),
        });
    }
    let policy: SupportPolicy = serde_path_to_error::deserialize(doc).map_err(|e| InputError::Field {
        file: file.clone(),
        field: e.path().to_string(),
        reason: e.inner().to_string(),
    })?;
    if let Err(errors) = Policy::resolve(&policy.spec) {
        let e = &errors[0];
        let more = if errors.len() > 1 { format!(" (and {} more)", errors.len() - 1) } else { String::new() };
        return Err(InputError::Field { file, field: e.field.clone(), reason: format!("{}{more}", e.reason) });
    }
    Ok(policy)
}

/// A problem inside one object of a snapshot: printed as a warning, evaluation goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning(pub String);

/// Reads snapshot files (`kubectl get nodes,leases -A -o json`, a multi-document YAML of Nodes
/// and Leases, or `kubectl version -o json` for the server version) into one snapshot.
pub fn load_snapshots(paths: &[PathBuf]) -> Result<(ClusterSnapshot, Vec<Warning>), InputError> {
    let mut snapshot = ClusterSnapshot::default();
    let mut warnings = Vec::new();
    for path in paths {
        let file = display(path);
        let text = read(path)?;
        for (doc_index, doc) in documents(&file, &text)?.into_iter().enumerate() {
            let at = |field: &str| {
                if doc_index == 0 {
                    field.to_string()
                } else {
                    format!("document {}: {field}", doc_index + 1)
                }
            };
            if doc.is_null() {
                continue;
            }
            if let Some(v) = doc.pointer("/serverVersion/gitVersion").and_then(Value::as_str) {
                snapshot.server_version = Some(v.to_string());
                continue;
            }
            let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
            let items: Vec<(String, &Value)> = match (kind, doc.get("items")) {
                (k, Some(Value::Array(items))) if k.ends_with("List") => {
                    items.iter().enumerate().map(|(i, item)| (at(&format!("items[{i}]")), item)).collect()
                }
                (k, Some(_)) if k.ends_with("List") => {
                    return Err(InputError::Field { file, field: at("items"), reason: "not a list".into() })
                }
                ("Node" | "Lease", _) => vec![(at("$"), &doc)],
                ("", _) => {
                    return Err(InputError::Content {
                        file,
                        reason: format!(
                            "{}has no kind: expected a List of Nodes and Leases (kubectl get nodes,leases -A -o json)",
                            if doc_index == 0 { String::new() } else { format!("document {}: ", doc_index + 1) }
                        ),
                    })
                }
                (other, _) => {
                    return Err(InputError::Content {
                        file,
                        reason: format!(
                            "{}is a {other}, not a List of Nodes and Leases",
                            if doc_index == 0 { String::new() } else { format!("document {}: ", doc_index + 1) }
                        ),
                    })
                }
            };
            for (where_, item) in items {
                let item_kind = item.get("kind").and_then(Value::as_str).unwrap_or(if kind == "NodeList" {
                    "Node"
                } else if kind == "LeaseList" {
                    "Lease"
                } else {
                    ""
                });
                match item_kind {
                    "Node" => match NodeInfo::from_value(item) {
                        Ok(node) => {
                            for p in &node.problems {
                                warnings.push(Warning(format!(
                                    "{file}: {where_} (Node {}): {}: {}",
                                    node.name, p.field, p.reason
                                )));
                            }
                            if snapshot.nodes.iter().any(|n| n.name == node.name) {
                                warnings.push(Warning(format!(
                                    "{file}: {where_}: Node {} appears twice; the last one counts",
                                    node.name
                                )));
                                snapshot.nodes.retain(|n| n.name != node.name);
                            }
                            snapshot.nodes.push(node.into());
                        }
                        Err(e) => warnings.push(Warning(format!("{file}: {where_}.{e}: the node was skipped"))),
                    },
                    "Lease" => match LeaseInfo::from_value(item) {
                        Ok(lease) => {
                            if let Some(p) = &lease.problem {
                                warnings.push(Warning(format!(
                                    "{file}: {where_} (Lease {}/{}): {p}",
                                    lease.namespace, lease.name
                                )));
                            }
                            snapshot.leases.insert((lease.namespace.clone(), lease.name.clone()), lease);
                        }
                        Err(e) => warnings.push(Warning(format!("{file}: {where_}.{e}: the lease was skipped"))),
                    },
                    other => warnings.push(Warning(format!(
                        "{file}: {where_}: a {} is neither a Node nor a Lease; ignored",
                        if other.is_empty() { "an object without kind" } else { other }
                    ))),
                }
            }
        }
    }
    Ok((snapshot, warnings))
}

/// JSON (one value) or YAML (one or more documents).
fn documents(file: &str, text: &str) -> Result<Vec<Value>, InputError> {
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(InputError::Content { file: file.into(), reason: "is empty".into() });
    }
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        return serde_json::from_str::<Value>(text).map(|v| vec![v]).map_err(|e| InputError::Syntax {
            file: file.into(),
            format: "JSON",
            reason: e.to_string(),
        });
    }
    crate::yaml::documents(text).map_err(|e| InputError::Syntax {
        file: file.into(),
        format: "YAML",
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(content: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content.as_bytes()).unwrap();
        f
    }

    fn policy_err(content: &str) -> String {
        let f = file(content);
        load_policy(f.path()).unwrap_err().to_string().replace(&f.path().display().to_string(), "FILE")
    }

    const HEAD: &str = "apiVersion: support.compliance.dev/v1alpha1\nkind: SupportPolicy\nmetadata: {name: p}\n";

    #[test]
    fn policy_errors_name_file_field_and_reason() {
        assert!(policy_err("{ not: yaml: [").starts_with("FILE: not valid YAML: "));
        assert_eq!(
            policy_err(&format!("{HEAD}spec: {{platform: AKS, colour: blue}}")),
            "FILE: spec.colour: unknown field `colour`, expected one of `platform`, `nodeSelector`, \
             `kubernetesVersion`, `nodeImage`, `stoppedNodes`, `heartbeats`, `attestations`, `alphaApis`, \
             `systemMetadata`, `planHorizonDays`"
        );
        assert_eq!(
            policy_err(&format!("{HEAD}spec: {{platform: AKS, nodeImage: {{warnAfterDays: soon}}}}")),
            "FILE: spec.nodeImage.warnAfterDays: invalid type: string \"soon\", expected u32"
        );
        assert_eq!(
            policy_err(&format!("{HEAD}spec: {{platform: AKS, nodeImage: {{warnAfterDays: 120}}}}")),
            "FILE: spec.nodeImage.warnAfterDays: 120 exceeds unsupportedAfterDays (90)"
        );
        assert_eq!(
            policy_err(&format!("{HEAD}spec: {{platform: AKS, nodeImage: {{datePattern: '(?P<year>\\d+)'}}}}")),
            "FILE: spec.nodeImage.datePattern: lacks the named group 'month' (needs year, month and day)"
        );
        assert!(policy_err(&format!("{HEAD}spec: {{platform: Azure}}"))
            .starts_with("FILE: spec.platform: unknown variant `Azure`"));
        assert!(policy_err("kind: Pod\napiVersion: v1\n").contains("found v1 Pod"));
        assert!(policy_err("").contains("holds no document"));
    }

    #[test]
    fn snapshot_errors_for_unusable_files() {
        let err = |content: &str| {
            let f = file(content);
            load_snapshots(&[f.path().to_path_buf()])
                .unwrap_err()
                .to_string()
                .replace(&f.path().display().to_string(), "FILE")
        };
        assert!(err("{\"kind\": \"List\", \"items\": [").starts_with("FILE: not valid JSON: EOF while parsing"));
        assert_eq!(err("{\"kind\": \"Pod\"}"), "FILE: is a Pod, not a List of Nodes and Leases");
        assert_eq!(err("{\"kind\": \"List\", \"items\": 3}"), "FILE: items: not a list");
        assert_eq!(
            err("[1, 2]"),
            "FILE: has no kind: expected a List of Nodes and Leases (kubectl get nodes,leases -A -o json)"
        );
        assert_eq!(err(""), "FILE: is empty");
    }

    #[test]
    fn garbage_inside_a_node_is_a_warning_and_other_nodes_still_count() {
        let f = file(
            r#"{"kind": "List", "items": [
                {"kind": "Node", "metadata": {"name": "good"}},
                {"kind": "Node", "metadata": {"name": "bad", "labels": "x"},
                 "status": {"nodeInfo": {"kubeletVersion": 7}}},
                {"kind": "Node", "metadata": {}},
                {"kind": "Lease", "metadata": {"name": "hb", "namespace": "arc"},
                 "spec": {"renewTime": "2026-01-01T00:00:00Z"}},
                {"kind": "Pod", "metadata": {"name": "p"}}
            ]}"#,
        );
        let (snap, warnings) = load_snapshots(&[f.path().to_path_buf()]).unwrap();
        assert_eq!(snap.nodes.len(), 2);
        assert_eq!(snap.leases.len(), 1);
        let w: Vec<String> = warnings.iter().map(|w| w.0.replace(&f.path().display().to_string(), "FILE")).collect();
        assert_eq!(
            w,
            [
                "FILE: items[1] (Node bad): metadata.labels: not a map of strings: \"x\"",
                "FILE: items[1] (Node bad): status.nodeInfo.kubeletVersion: not a string: 7",
                "FILE: items[2].metadata.name: missing or not a string: the node was skipped",
                "FILE: items[4]: a Pod is neither a Node nor a Lease; ignored",
            ]
        );
    }

    #[test]
    fn yaml_documents_and_kubectl_version_output() {
        let f = file("kind: Node\nmetadata: {name: a}\n---\nkind: Node\nmetadata: {name: b}\n");
        let v = file(r#"{"clientVersion": {}, "serverVersion": {"gitVersion": "v1.31.4"}}"#);
        let (snap, warnings) = load_snapshots(&[f.path().to_path_buf(), v.path().to_path_buf()]).unwrap();
        assert_eq!(snap.nodes.len(), 2);
        assert_eq!(snap.server_version.as_deref(), Some("v1.31.4"));
        assert!(warnings.is_empty());
    }

    #[test]
    fn deep_nesting_and_alias_bombs_are_refused_by_both_loaders() {
        let deep = format!("{HEAD}spec: {{platform: AKS, x: {}{}}}\n", "[".repeat(100_000), "]".repeat(100_000));
        let mut bomb = format!("{HEAD}a: &a [x, x, x, x, x, x, x, x, x]\n");
        for (prev, next) in
            ["a", "b", "c", "d", "e", "f", "g", "h"].iter().zip(["b", "c", "d", "e", "f", "g", "h", "i"])
        {
            bomb.push_str(&format!("{next}: &{next} [{}]\n", vec![format!("*{prev}"); 9].join(", ")));
        }
        for (content, reason) in [(deep, "nested deeper than 64 levels"), (bomb, "an alias bomb")] {
            let f = file(&content);
            let policy = load_policy(f.path()).unwrap_err().to_string();
            let snapshot = load_snapshots(&[f.path().to_path_buf()]).unwrap_err().to_string();
            for err in [policy, snapshot] {
                assert!(err.contains("not valid YAML") && err.contains(reason), "{err}");
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

        /// A policy or snapshot file with arbitrary content ends in a value or an error, never a panic.
        #[test]
        fn loaders_never_panic(body in "\\PC{0,200}", spec in "[ -~\n]{0,200}") {
            let f = file(&body);
            let _ = load_policy(f.path());
            let _ = load_snapshots(&[f.path().to_path_buf()]);
            let g = file(&format!("{HEAD}spec:\n{spec}"));
            let _ = load_policy(g.path());
        }
    }
}
