//! Reading a policy file and snapshot files for `check`. Every error names the file, the field
//! and the reason in one line; garbage inside one object is a warning and a finding, not an error.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeSeed;
use serde_json::Value;

use kube::Resource;

use crate::crd::v1alpha1::{Platform, SupportPolicy, SupportPolicySpec};
use crate::policy::Policy;
use crate::snapshot::wire::{Ctx, DocRead, Document, ItemRead};
use crate::snapshot::{ClusterSnapshot, Interner, LeaseInfo, NodeInfo, NodeKeys};
use crate::text::{name, snippet};

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

/// The path that names standard input.
pub const STDIN: &str = "-";
/// Largest policy file: a SupportPolicy is an API object (the API server takes at most 3 MiB
/// of request, etcd stores at most 1.5 MiB).
pub const MAX_POLICY_BYTES: u64 = 1 << 20;
/// Largest YAML snapshot file: YAML is parsed whole; JSON (`kubectl get -o json`) is streamed
/// and has no limit.
pub const MAX_YAML_SNAPSHOT_BYTES: u64 = 64 << 20;

fn display(path: &Path) -> String {
    if path.as_os_str() == STDIN {
        "standard input".to_string()
    } else {
        path.display().to_string()
    }
}

/// What an input is read from (each reader has its own type: the JSON reader reads a byte at
/// a time, which must not go through dynamic dispatch).
enum Input {
    File(BufReader<std::fs::File>),
    Stdin(BufReader<std::io::Stdin>),
}

/// Opens a file, a FIFO, a device (`/dev/stdin`, a process substitution) or standard input
/// (`-`): anything that reads; the content is read as it streams.
fn open(path: &Path) -> Result<Input, InputError> {
    const BUFFER: usize = 1 << 18;
    if path.as_os_str() == STDIN {
        return Ok(Input::Stdin(BufReader::with_capacity(BUFFER, std::io::stdin())));
    }
    let file =
        std::fs::File::open(path).map_err(|e| InputError::Read { file: display(path), reason: e.to_string() })?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(InputError::Read { file: display(path), reason: "is a directory".into() });
    }
    Ok(Input::File(BufReader::with_capacity(BUFFER, file)))
}

/// The whole text of `input`, refused in linear time past `limit` bytes (a `what` is never
/// that large).
fn read_text(file: &str, input: impl Read, limit: u64, what: &str) -> Result<String, InputError> {
    let mut bytes = Vec::new();
    input
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| InputError::Read { file: file.to_string(), reason: e.to_string() })?;
    if bytes.len() as u64 > limit {
        return Err(InputError::Content {
            file: file.to_string(),
            reason: format!("is larger than {} MiB, the limit of {what}", limit >> 20),
        });
    }
    String::from_utf8(bytes).map_err(|_| InputError::Read { file: file.into(), reason: "not valid UTF-8".into() })
}

/// Whether a path names something to read rather than a preset or a policy in the cluster:
/// `-` or an existing file, FIFO or device.
pub fn is_readable(path: &str) -> bool {
    path == STDIN || std::fs::metadata(path).is_ok_and(|m| !m.is_dir())
}

/// Reads one SupportPolicy from a YAML (or JSON) file and checks it as the operator would.
pub fn load_policy(path: &Path) -> Result<SupportPolicy, InputError> {
    let file = display(path);
    let text = match open(path)? {
        Input::File(r) => read_text(&file, r, MAX_POLICY_BYTES, "a policy")?,
        Input::Stdin(r) => read_text(&file, r, MAX_POLICY_BYTES, "a policy")?,
    };
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
/// and Leases, or `kubectl version -o json` for the server version) into one snapshot, keeping
/// of each node only the labels and annotations of `keys` (what the policy reads). JSON is
/// read as it streams: memory grows with the nodes' trimmed form, not with the file.
pub fn load_snapshots(paths: &[PathBuf], keys: &NodeKeys) -> Result<(ClusterSnapshot, Vec<Warning>), InputError> {
    if paths.iter().filter(|p| p.as_os_str() == STDIN).count() > 1 {
        return Err(InputError::Read { file: display(Path::new(STDIN)), reason: "named twice".into() });
    }
    let interner = RefCell::new(Interner::default());
    let ctx = Ctx { keys, interner: Some(&interner) };
    let mut loaded = Loaded::default();
    for path in paths {
        let file = display(path);
        let docs = match open(path)? {
            Input::File(r) => documents(&file, r, ctx)?,
            Input::Stdin(r) => documents(&file, r, ctx)?,
        };
        for (index, doc) in docs.into_iter().enumerate() {
            loaded.document(&file, index, doc)?;
        }
    }
    Ok(loaded.finish())
}

/// What the documents read so far hold.
#[derive(Default)]
struct Loaded {
    server_version: Option<String>,
    /// Nodes in the order read; a node read again leaves a hole where it was.
    nodes: Vec<Option<Arc<NodeInfo>>>,
    by_name: HashMap<Arc<str>, usize>,
    leases: BTreeMap<(String, String), LeaseInfo>,
    warnings: Vec<Warning>,
}

impl Loaded {
    fn document(&mut self, file: &str, doc_index: usize, doc: DocRead) -> Result<(), InputError> {
        let at = |field: &str| {
            if doc_index == 0 {
                field.to_string()
            } else {
                format!("document {}: {field}", doc_index + 1)
            }
        };
        let prefix = if doc_index == 0 { String::new() } else { format!("document {}: ", doc_index + 1) };
        if let Some(v) = doc.git_version {
            self.server_version = Some(v.to_string());
            return Ok(());
        }
        let kind = doc.object.kind().unwrap_or_default().to_string();
        let items: Vec<(String, ItemRead)> = match (kind.as_str(), doc.items) {
            (k, Some(Some(items))) if k.ends_with("List") => {
                items.into_iter().enumerate().map(|(i, item)| (at(&format!("items[{i}]")), item)).collect()
            }
            (k, Some(None)) if k.ends_with("List") => {
                return Err(InputError::Field { file: file.into(), field: at("items"), reason: "not a list".into() })
            }
            ("Node" | "Lease", _) => vec![(at("$"), ItemRead::from(doc.object))],
            ("", _) => {
                return Err(InputError::Content {
                    file: file.into(),
                    reason: format!(
                        "{prefix}has no kind: expected a List of Nodes and Leases (kubectl get nodes,leases -A -o json)"
                    ),
                })
            }
            (other, _) => {
                return Err(InputError::Content {
                    file: file.into(),
                    reason: format!("{prefix}is a {}, not a List of Nodes and Leases", snippet(other)),
                })
            }
        };
        for (where_, item) in items {
            let item = match item {
                ItemRead::Kindless(read) => match kind.as_str() {
                    "NodeList" => ItemRead::Node((*read).node()),
                    "LeaseList" => ItemRead::Lease((*read).lease()),
                    _ => ItemRead::Other(String::new()),
                },
                item => item,
            };
            match item {
                ItemRead::Node(Ok(node)) => self.node(file, &where_, node),
                ItemRead::Node(Err(e)) => self.warn(format!("{file}: {where_}.{e}: the node was skipped")),
                ItemRead::Lease(Ok(lease)) => {
                    if let Some(p) = &lease.problem {
                        self.warn(format!(
                            "{file}: {where_} (Lease {}/{}): {p}",
                            name(&lease.namespace),
                            name(&lease.name)
                        ));
                    }
                    self.leases.insert((lease.namespace.clone(), lease.name.clone()), lease);
                }
                ItemRead::Lease(Err(e)) => self.warn(format!("{file}: {where_}.{e}: the lease was skipped")),
                ItemRead::Other(other) => self.warn(format!(
                    "{file}: {where_}: a {} is neither a Node nor a Lease; ignored",
                    if other.is_empty() { "an object without kind".to_string() } else { snippet(&other) }
                )),
                // Resolved above by the List's kind.
                ItemRead::Kindless(_) => self
                    .warn(format!("{file}: {where_}: an object without kind is neither a Node nor a Lease; ignored")),
            }
        }
        Ok(())
    }

    fn node(&mut self, file: &str, where_: &str, node: NodeInfo) {
        for p in &node.problems {
            self.warn(format!("{file}: {where_} (Node {}): {}: {}", name(&node.name), p.field, p.reason));
        }
        let index = self.nodes.len();
        if let Some(before) = self.by_name.insert(node.name.clone(), index) {
            self.warn(format!("{file}: {where_}: Node {} appears twice; the last one counts", name(&node.name)));
            self.nodes[before] = None;
        }
        self.nodes.push(Some(Arc::new(node)));
    }

    fn warn(&mut self, warning: String) {
        self.warnings.push(Warning(warning));
    }

    fn finish(self) -> (ClusterSnapshot, Vec<Warning>) {
        let snapshot = ClusterSnapshot {
            server_version: self.server_version,
            nodes: self.nodes.into_iter().flatten().collect(),
            leases: self.leases,
            api_versions: None,
        };
        (snapshot, self.warnings)
    }
}

/// The documents of a snapshot: one JSON value, streamed, or YAML documents (read whole,
/// within [`MAX_YAML_SNAPSHOT_BYTES`]).
fn documents(file: &str, mut input: impl BufRead, ctx: Ctx<'_>) -> Result<Vec<DocRead>, InputError> {
    let io = |e: std::io::Error| InputError::Read { file: file.to_string(), reason: e.to_string() };
    // The first character that is not white space tells JSON from YAML.
    let first = loop {
        let buf = input.fill_buf().map_err(io)?;
        if buf.is_empty() {
            return Err(InputError::Content { file: file.into(), reason: "is empty".into() });
        }
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => {
                let first = buf[i];
                input.consume(i);
                break first;
            }
            None => {
                let n = buf.len();
                input.consume(n);
            }
        }
    };
    let syntax = |format: &'static str| move |e: String| InputError::Syntax { file: file.into(), format, reason: e };
    if first == b'{' || first == b'[' {
        let mut de = serde_json::Deserializer::from_reader(input);
        let doc = Document(ctx).deserialize(&mut de).and_then(|d| de.end().map(|()| d));
        return doc.map(|d| vec![d]).map_err(|e| syntax("JSON")(e.to_string()));
    }
    let text = read_text(file, input, MAX_YAML_SNAPSHOT_BYTES, "a YAML snapshot (JSON has none: kubectl get -o json)")?;
    let values = crate::yaml::documents(&text).map_err(|e| syntax("YAML")(e.to_string()))?;
    drop(text);
    values.iter().map(|v| Document(ctx).deserialize(v).map_err(|e| syntax("YAML")(e.to_string()))).collect()
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
            load_snapshots(&[f.path().to_path_buf()], &NodeKeys::all())
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
        let (snap, warnings) = load_snapshots(&[f.path().to_path_buf()], &NodeKeys::all()).unwrap();
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
        let (snap, warnings) =
            load_snapshots(&[f.path().to_path_buf(), v.path().to_path_buf()], &NodeKeys::all()).unwrap();
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
            let snapshot = load_snapshots(&[f.path().to_path_buf()], &NodeKeys::all()).unwrap_err().to_string();
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
            let _ = load_snapshots(&[f.path().to_path_buf()], &NodeKeys::all());
            let g = file(&format!("{HEAD}spec:\n{spec}"));
            let _ = load_policy(g.path());
        }
    }
}
