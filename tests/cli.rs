//! The built binary, run as a user runs it: golden reports of every example, and bad input
//! that must end in one clear line and exit code 2, never a panic.
//!
//! Regenerate the golden files after an intended change with `UPDATE_GOLDEN=1 make test`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_support-operator");
const NOW: &str = "2026-11-25T12:00:00Z";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(root())
        .env_remove("NO_COLOR")
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .output()
        .expect("binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The examples of the README, with the control-plane version of each cluster.
const EXAMPLES: [(&str, &str, &str); 4] = [
    ("aks-neglected", "examples/policies/aks.yaml", "v1.34.2"),
    ("aks-healthy", "examples/policies/aks.yaml", "v1.35.3"),
    ("aks-arc-stopped", "examples/policies/aks-arc.yaml", "v1.32.6"),
    ("eks-node-creation", "examples/policies/eks.yaml", "v1.34.1-eks-2d5f260"),
];

fn golden(name: &str, actual: &str) {
    let path = root().join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing: run UPDATE_GOLDEN=1 make test", path.display()));
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (e, a))| e != a)
            .take(5)
            .map(|(i, (e, a))| format!("line {}:\n  expected: {e}\n  actual:   {a}", i + 1))
            .collect();
        panic!("{name} differs from the golden file (UPDATE_GOLDEN=1 to accept):\n{}", diff.join("\n"));
    }
}

#[test]
fn golden_reports_of_every_example() {
    for (name, policy, version) in EXAMPLES {
        let snapshot = format!("examples/snapshots/{name}.json");
        for (format, ext) in [("table", "txt"), ("json", "json")] {
            let out = run(&[
                "check",
                "--policy",
                policy,
                "--snapshot",
                &snapshot,
                "--server-version",
                version,
                "--now",
                NOW,
                "-o",
                format,
            ]);
            assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out.stderr));
            assert_eq!(text(&out.stderr), "", "{name}: examples hold no garbage");
            golden(&format!("{name}.{ext}"), &text(&out.stdout));
        }
    }
}

#[test]
fn json_output_is_the_supportstatus_object() {
    let neglected = |format: &str| {
        let snapshot = "examples/snapshots/aks-neglected.json";
        run(&[
            "check",
            "--policy",
            "aks",
            "--snapshot",
            snapshot,
            "--server-version",
            "v1.34.2",
            "--now",
            NOW,
            "-o",
            format,
        ])
    };
    let out = neglected("json");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["apiVersion"], "support.compliance.dev/v1alpha1");
    assert_eq!(v["kind"], "SupportStatus");
    assert_eq!(v["metadata"]["name"], "aks");
    assert_eq!(v["status"]["verdict"], "Unsupported");
    assert_eq!(v["status"]["nodes"]["total"], 9);
    assert_eq!(v["status"]["conditions"][0]["type"], "Supported");
    let yaml = neglected("yaml");
    let from_yaml = support_operator::yaml::documents(&text(&yaml.stdout)).unwrap().remove(0);
    assert_eq!(from_yaml, v, "yaml and json print the same object");
}

#[test]
fn table_is_plain_when_piped_and_coloured_on_request() {
    let args = ["check", "--policy", "aks", "--snapshot", "examples/snapshots/aks-neglected.json", "--now", NOW];
    let plain = run(&args);
    assert!(!text(&plain.stdout).contains('\u{1b}'));
    let mut coloured: Vec<&str> = args.to_vec();
    coloured.extend(["--color", "always"]);
    assert!(text(&run(&coloured).stdout).contains("\u{1b}["));
}

#[test]
fn fail_on_gates_by_verdict() {
    let base = ["check", "--policy", "examples/policies/aks.yaml", "--now", NOW];
    let code = |snapshot: &str, version: &str, fail_on: Option<&str>| {
        let mut args: Vec<&str> = base.to_vec();
        args.extend(["--snapshot", snapshot, "--server-version", version]);
        if let Some(f) = fail_on {
            args.extend(["--fail-on", f]);
        }
        run(&args).status.code()
    };
    assert_eq!(code("examples/snapshots/aks-neglected.json", "v1.34.2", None), Some(0));
    assert_eq!(code("examples/snapshots/aks-neglected.json", "v1.34.2", Some("unsupported")), Some(1));
    assert_eq!(code("examples/snapshots/aks-healthy.json", "v1.35.3", Some("warning")), Some(0));
    assert_eq!(code("examples/snapshots/aks-healthy.json", "v1.35.3", Some("unsupported")), Some(0));
}

#[test]
fn time_travel_changes_the_verdict() {
    let verdict = |now: &str| {
        let out = run(&[
            "check",
            "--policy",
            "aks",
            "--snapshot",
            "examples/snapshots/aks-healthy.json",
            "--server-version",
            "v1.35.3",
            "--now",
            now,
            "-o",
            "json",
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["status"]["verdict"].as_str().unwrap().to_string()
    };
    assert_eq!(verdict(NOW), "Supported");
    assert_eq!(verdict("2026-12-20T00:00:00Z"), "AtRisk");
    assert_eq!(verdict("2027-04-01T00:00:00Z"), "Unsupported");
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p.display().to_string()
}

const POLICY_HEAD: &str = "apiVersion: support.compliance.dev/v1alpha1\nkind: SupportPolicy\nmetadata: {name: p}\n";

#[test]
fn bad_input_gives_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let snap = "examples/snapshots/aks-healthy.json";
    let policy = |name: &str, spec: &str| write(d, name, &format!("{POLICY_HEAD}spec: {spec}\n"));
    let cases: Vec<(Vec<String>, String)> = vec![
        (vec!["--policy".into(), write(d, "notyaml.yaml", "spec: [unclosed\n  - : :")], "not valid YAML".into()),
        (
            vec!["--policy".into(), policy("unknown.yaml", "{platform: AKS, nodeImg: {}}")],
            "spec.nodeImg: unknown field `nodeImg`".into(),
        ),
        (
            vec!["--policy".into(), policy("type.yaml", "{platform: AKS, stoppedNodes: {warnAfterDays: -3}}")],
            "spec.stoppedNodes.warnAfterDays: invalid value: integer `-3`, expected u32".into(),
        ),
        (
            vec!["--policy".into(), policy("threshold.yaml", "{platform: AKS, nodeImage: {warnAfterDays: 95}}")],
            "spec.nodeImage.warnAfterDays: 95 exceeds unsupportedAfterDays (90)".into(),
        ),
        (
            vec!["--policy".into(), policy("regex.yaml", "{platform: AKS, nodeImage: {datePattern: '(?P<year>[0-9'}}")],
            "spec.nodeImage.datePattern: does not compile".into(),
        ),
        (
            vec![
                "--policy".into(),
                policy(
                    "groups.yaml",
                    "{platform: AKS, nodeImage: {datePattern: '(?P<year>[0-9]{4})(?P<month>[0-9]{2})'}}",
                ),
            ],
            "spec.nodeImage.datePattern: lacks the named group 'day'".into(),
        ),
        (
            vec!["--policy".into(), "missing/policy.yaml".into()],
            "missing/policy.yaml: cannot read: no such file".into(),
        ),
        (
            vec![
                "--policy".into(),
                "aks".into(),
                "--snapshot".into(),
                write(d, "truncated.json", "{\"kind\": \"List\", \"items\": [{\"kind\": \"Node\", \"metadata\": {\"na"),
            ],
            "not valid JSON: EOF while parsing".into(),
        ),
        (
            vec![
                "--policy".into(),
                "aks".into(),
                "--snapshot".into(),
                write(d, "notlist.json", "{\"kind\": \"ConfigMap\", \"data\": {}}"),
            ],
            "is a ConfigMap, not a List of Nodes and Leases".into(),
        ),
        (
            vec!["--policy".into(), "aks".into(), "--now".into(), "next tuesday".into()],
            "not an RFC 3339 instant".into(),
        ),
    ];
    for (mut args, expected) in cases {
        if !args.iter().any(|a| a == "--snapshot") {
            args.extend(["--snapshot".into(), snap.into()]);
        }
        let mut all = vec!["check".to_string()];
        all.extend(args.clone());
        let out = run(&all.iter().map(String::as_str).collect::<Vec<_>>());
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(&expected), "{args:?}: expected '{expected}' in: {err}");
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        if !expected.contains("RFC 3339") {
            assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: one line expected, got: {err}");
        }
        assert_eq!(text(&out.stdout), "", "{args:?}: nothing on stdout");
    }
}

#[test]
fn garbage_inside_a_node_is_a_warning_and_a_finding() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = write(
        dir.path(),
        "garbage.json",
        r#"{"apiVersion": "v1", "kind": "List", "items": [
            {"kind": "Node", "metadata": {"name": "ok", "creationTimestamp": "2026-11-20T00:00:00Z",
              "labels": {"kubernetes.azure.com/node-image-version": "AKSUbuntu-2204gen2containerd-202611.18.0",
                         "kubernetes.azure.com/agentpool": "nodepool1", "kubernetes.azure.com/cluster": "MC_rg_aks_westeurope",
                         "kubernetes.azure.com/mode": "system", "kubernetes.azure.com/role": "agent"}},
             "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-20T00:00:00Z"}],
                        "nodeInfo": {"kubeletVersion": "v1.35.3"}}},
            {"kind": "Node", "metadata": {"name": "broken", "creationTimestamp": "last week", "labels": ["not", "a", "map"]},
             "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": 12}],
                        "nodeInfo": {"kubeletVersion": "one point thirty"}}}
        ]}"#,
    );
    let out = run(&[
        "check",
        "--policy",
        "aks",
        "--snapshot",
        &snapshot,
        "--server-version",
        "v1.35.3",
        "--now",
        NOW,
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    for field in ["metadata.labels", "metadata.creationTimestamp", "status.conditions[Ready].lastTransitionTime"] {
        assert!(
            err.contains(&format!("garbage.json: items[1] (Node broken): {field}: ")),
            "{field} not named in: {err}"
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"]["nodes"]["total"], 2, "both nodes are evaluated");
    let findings = v["status"]["findings"].as_array().unwrap();
    assert!(findings.iter().any(|f| f["subject"] == "Node/broken" && f["rule"] == "KubernetesVersionUnknown"));
    assert!(findings.iter().all(|f| f["subject"] != "Node/ok"), "the good node has no finding: {findings:?}");
}

#[test]
fn crd_subcommand_prints_the_checked_in_crds() {
    let out = run(&["crd"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), std::fs::read_to_string(root().join("crds/support-operator.yaml")).unwrap());
}

#[test]
fn without_snapshot_or_cluster_the_error_says_what_to_do() {
    let out = run(&["check", "--policy", "aks"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("pass --snapshot FILE to evaluate offline"), "{err}");
}

/// A CI gate must not pass on nothing: a snapshot with no readable node, or a policy that
/// selects none, is a Warning (NoNodesInScope) and `--fail-on warning` exits 1.
#[test]
fn no_node_in_scope_fails_a_warning_gate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let empty = write(d, "empty.json", r#"{"apiVersion": "v1", "kind": "List", "items": []}"#);
    let unreadable = write(
        d,
        "unreadable.json",
        r#"{"apiVersion": "v1", "kind": "List", "items": [{"kind": "Node", "metadata": {}}, {"kind": "Node"}]}"#,
    );
    let selector = write(
        d,
        "selector.yaml",
        &format!("{POLICY_HEAD}spec: {{platform: AKS, nodeSelector: {{matchLabels: {{pool: gpu}}}}}}\n"),
    );
    let healthy = "examples/snapshots/aks-healthy.json";
    for (policy, snapshot, says) in [
        ("aks", empty.as_str(), "No node could be read"),
        ("aks", unreadable.as_str(), "No node could be read"),
        (selector.as_str(), healthy, "selects none of the cluster's 7 nodes"),
    ] {
        let args = ["check", "--policy", policy, "--snapshot", snapshot, "--server-version", "v1.35.3", "--now", NOW];
        let mut gate = args.to_vec();
        gate.extend(["--fail-on", "warning"]);
        let out = run(&gate);
        assert_eq!(out.status.code(), Some(1), "{snapshot}: {}", text(&out.stderr));
        let table = text(&out.stdout);
        assert!(table.contains("NoNodesInScope") && table.contains(says), "{snapshot}: {table}");
        let mut json = args.to_vec();
        json.extend(["-o", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&run(&json).stdout).unwrap();
        assert_eq!(v["status"]["verdict"], "AtRisk", "{snapshot}");
    }
}

/// `check` with `stdin` as standard input.
fn run_with_stdin(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(root())
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("binary runs");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_string();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(stdin.as_bytes());
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn verdict(out: &Output) -> String {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: stdout {} stderr {}", text(&out.stdout), text(&out.stderr)));
    v["status"]["verdict"].as_str().unwrap_or_default().to_string()
}

/// Whatever reads is an input: standard input (`-`), `/dev/stdin`, a FIFO (as a process
/// substitution `<(kubectl get nodes -o json)` is), for the policy and for a snapshot.
#[test]
fn snapshots_and_policies_are_read_from_stdin_fifos_and_devices() {
    let snapshot = std::fs::read_to_string(root().join("examples/snapshots/aks-neglected.json")).unwrap();
    let policy = std::fs::read_to_string(root().join("examples/policies/aks.yaml")).unwrap();
    let args = |policy: &'static str, snapshot: &'static str| {
        ["check", "--policy", policy, "--snapshot", snapshot, "--server-version", "v1.34.2", "--now", NOW, "-o", "json"]
    };
    let expected = verdict(&run(&args("examples/policies/aks.yaml", "examples/snapshots/aks-neglected.json")));
    assert_eq!(expected, "Unsupported");
    assert_eq!(verdict(&run_with_stdin(&args("examples/policies/aks.yaml", "-"), &snapshot, &[])), expected);
    assert_eq!(verdict(&run_with_stdin(&args("examples/policies/aks.yaml", "/dev/stdin"), &snapshot, &[])), expected);
    let from_stdin = run_with_stdin(&args("-", "examples/snapshots/aks-neglected.json"), &policy, &[]);
    assert_eq!(verdict(&from_stdin), expected, "{}", text(&from_stdin.stderr));

    let dir = tempfile::tempdir().unwrap();
    let fifo = |name: &str, content: String| {
        let path = dir.path().join(name);
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string; mkfifo has no other precondition.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
        let writer_path = path.clone();
        std::thread::spawn(move || std::fs::write(writer_path, content).unwrap());
        path.display().to_string()
    };
    let (p, s) = (fifo("policy", policy), fifo("snapshot", snapshot));
    let out =
        run(&["check", "--policy", &p, "--snapshot", &s, "--server-version", "v1.34.2", "--now", NOW, "-o", "json"]);
    assert_eq!(verdict(&out), expected, "{}", text(&out.stderr));
}

/// A path may hold a comma: `--snapshot` takes it whole; only SUPPORT_CHECK_SNAPSHOT is a list.
#[test]
fn snapshot_paths_split_on_commas_only_in_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = std::fs::read_to_string(root().join("examples/snapshots/aks-neglected.json")).unwrap();
    let with_comma = write(dir.path(), "nodes,2026.json", &nodes);
    let version = write(dir.path(), "version.json", r#"{"serverVersion": {"gitVersion": "v1.34.2"}}"#);
    let out = run(&[
        "check",
        "--policy",
        "aks",
        "--snapshot",
        &with_comma,
        "--snapshot",
        &version,
        "--now",
        NOW,
        "-o",
        "json",
    ]);
    assert_eq!(verdict(&out), "Unsupported", "{}", text(&out.stderr));
    let plain = write(dir.path(), "nodes.json", &nodes);
    let list = format!("{plain},{version}");
    let out = run_with_stdin(
        &["check", "--policy", "aks", "--now", NOW, "-o", "json"],
        "",
        &[("SUPPORT_CHECK_SNAPSHOT", &list)],
    );
    assert_eq!(verdict(&out), "Unsupported", "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"]["controlPlane"]["version"], "v1.34.2", "both files of the list are read");
}

/// Hostile input is refused in linear time with the field and the reason, never parsed at
/// length: nesting 100,000 deep, a policy file larger than any API object, a date pattern
/// beyond the CRD's own bound (a regex is compiled only within it), garbage nested deep in a
/// field the rules read.
#[test]
fn hostile_input_is_refused_with_a_named_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let healthy = "examples/snapshots/aks-healthy.json";
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let cases = [
        (write(d, "deep-policy.yaml", &format!("{POLICY_HEAD}spec: {{platform: AKS, x: {deep}}}\n")), healthy.to_string(),
         "nested deeper than 64 levels"),
        ("aks".to_string(), write(d, "deep.yaml", &format!("kind: Node\nmetadata: {{name: a, labels: {deep}}}\n")),
         "nested deeper than 64 levels"),
        ("aks".to_string(), write(d, "deep.json", &format!(r#"{{"kind": "List", "items": [{{"kind": "Node", "metadata": {{"name": "a", "labels": {{"a": {deep}}}}}}}]}}"#)),
         "recursion limit exceeded"),
        (write(d, "huge.yaml", &format!("{POLICY_HEAD}spec:\n  platform: AKS\n  nodeImage:\n    datePattern: '{}'\n", "a".repeat(2 << 20))),
         healthy.to_string(), "is larger than 1 MiB, the limit of a policy"),
        (write(d, "pattern.yaml", &format!("{POLICY_HEAD}spec:\n  platform: AKS\n  nodeImage:\n    datePattern: '(?P<year>\\d{{4}})(?P<month>\\d\\d)(?P<day>\\d\\d){}'\n", "x".repeat(1100))),
         healthy.to_string(), "spec.nodeImage.datePattern: 1143 characters, more than the 1024 the CRD allows"),
    ];
    for (policy, snapshot, says) in &cases {
        let out = run(&["check", "--policy", policy, "--snapshot", snapshot, "--server-version", "v1.35.3"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{policy} {snapshot}: {err}");
        assert!(err.contains(says) && err.lines().count() == 1, "{policy} {snapshot}: {err}");
    }
}

/// Strings from the cluster reach the terminal escaped, in the table and in the warnings.
#[test]
fn control_characters_from_the_cluster_are_escaped_on_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let evil = "\u{1b}]0;owned\u{7}\u{1b}[2J";
    let snapshot = serde_json::json!({"kind": "List", "items": [
        {"kind": "Node", "metadata": {"name": format!("n{evil}"), "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"kubernetes.azure.com/agentpool": format!("p{evil}"), "kubernetes.azure.com/node-image-version": format!("v{evil}")}},
         "status": {"nodeInfo": {"kubeletVersion": format!("v1.35.3{evil}")},
                    "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": format!("never{evil}")}]}}
    ]});
    let file = write(dir.path(), "evil.json", &snapshot.to_string());
    let out = run(&[
        "check",
        "--policy",
        "aks",
        "--snapshot",
        &file,
        "--server-version",
        "v1.35.3",
        "--now",
        NOW,
        "--color",
        "never",
    ]);
    for (what, stream) in [("stdout", text(&out.stdout)), ("stderr", text(&out.stderr))] {
        assert!(!stream.contains('\u{1b}') && !stream.contains('\u{7}'), "{what}: {stream}");
        assert!(stream.contains("\\u{1b}]0;owned\\u{7}"), "{what} shows the escape: {stream}");
    }
}

/// A reader that went away (`check … | head -1` reading one line, a closed pager) ends the
/// output quietly: no panic, no "failed printing to stdout", the exit code of the verdict.
#[test]
fn a_closed_stdout_is_not_a_crash() {
    let (ex, policy, server) = EXAMPLES[0];
    let snapshot = format!("examples/snapshots/{ex}.json");
    for (command, args) in [
        ("check", vec!["check", "--policy", policy, "--snapshot", &snapshot, "--server-version", server, "--now", NOW]),
        ("check -o json", vec!["check", "--policy", policy, "--snapshot", &snapshot, "-o", "json", "--now", NOW]),
        ("crd", vec!["crd"]),
        ("calendar show", vec!["calendar", "show", "--platform", "aks"]),
    ] {
        // A pipe whose reader is closed before the binary writes: every write fails with EPIPE.
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = Command::new(BIN)
            .args(&args)
            .current_dir(root())
            .env("KUBECONFIG", "/nonexistent/kubeconfig")
            .stdout(writer)
            .output()
            .expect("binary runs");
        let err = text(&out.stderr);
        assert!(!err.contains("panicked"), "{command}: {err}");
        assert!(matches!(out.status.code(), Some(0 | 1)), "{command}: {:?} {err}", out.status);
    }
}
