//! `support-operator calendar import | show`, the real binary: a calendar refreshed from the
//! endoflife.date API's JSON into a policy, through a file, standard input and a kustomize
//! overlay, and the effective calendar of a policy with the source of each row.

mod tools;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_support-operator");

fn fixture(product: &str) -> String {
    format!("{}/tests/fixtures/endoflife/{product}.json", env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for var in ["SUPPORT_CALENDAR_PLATFORM", "SUPPORT_CALENDAR_POLICY", "SUPPORT_CALENDAR_POLICY_NAME"] {
        cmd.env_remove(var);
    }
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

/// The block, pasted under a policy's `spec`, is what that policy then evaluates with.
#[test]
fn an_imported_calendar_is_the_one_the_policy_uses() {
    let out = run(&["calendar", "import", "--format", "endoflife", &fixture("amazon-eks"), "--platform", "EKS"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let block = text(&out.stdout);
    assert!(
        block.contains("\n    - {minor: \"1.19\", released: \"2021-02-16\", endOfSupport: \"2022-08-01\"}\n"),
        "{block}"
    );

    let dir = tempfile::tempdir().unwrap();
    let indented: String = block.lines().map(|l| format!("  {l}\n")).collect();
    let policy = format!(
        "apiVersion: support.compliance.dev/v1alpha1\nkind: SupportPolicy\nmetadata: {{name: eks-prod}}\nspec:\n  \
         platform: EKS\n{indented}"
    );
    let path = write(dir.path(), "policy.yaml", &policy);
    let out = run(&["calendar", "show", "--policy", path.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let source = format!("policy {}", path.display());
    assert!(table.starts_with(&format!("Calendar      {source} over the EKS preset\n")), "{table}");
    // 1.19 is not in the preset: the policy added it.
    let row = table.lines().find(|l| l.starts_with("1.19 ")).unwrap();
    assert!(row.starts_with("1.19   2021-02-16  2022-08-01      -"), "{row}");
    assert!(row.ends_with(&source), "{row}");
    // And the policy evaluates with it: a cluster on 1.19 is past its end of support.
    let nodes = write(dir.path(), "nodes.json", r#"{"apiVersion": "v1", "kind": "List", "items": []}"#);
    let out = Command::new(BIN)
        .args(["check", "--policy", path.to_str().unwrap(), "--snapshot", nodes.to_str().unwrap()])
        .args(["--server-version", "v1.19.16-eks-1", "--now", "2026-11-25T12:00:00Z", "-o", "json"])
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["status"]["controlPlane"]["endOfSupport"], "2022-08-01", "{}", text(&out.stderr));
}

/// `-` reads standard input (`curl … | support-operator calendar import …`), within the same
/// bound as a file.
#[test]
fn standard_input_is_read_within_the_bound() {
    let json = std::fs::read(fixture("kubernetes")).unwrap();
    let out = run(&["calendar", "import", "--format", "endoflife", "-", "--platform", "upstream"], Some(&json));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("{minor: \"1.36\", released: \"2026-04-22\", endOfSupport: \"2027-06-28\"}"));

    let mut big = json.clone();
    big.resize(4 * 1024 * 1024 + 1, b' ');
    let out = run(&["calendar", "import", "--format", "endoflife", "-", "--platform", "Upstream"], Some(&big));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out.stderr), "error: -: is larger than 4194304 bytes\n");
}

#[test]
fn bad_input_gives_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad_date = write(
        dir.path(),
        "bad.json",
        r#"{"schema_version": "1.1.0", "result": {"name": "amazon-eks", "releases": [
            {"name": "1.34", "releaseDate": "2025-10-06", "eolFrom": "2026-13-02"}]}}"#,
    );
    let policy = write(dir.path(), "p.yaml", "apiVersion: support.compliance.dev/v1alpha1\nkind: SupportPolicy\nmetadata: {name: p}\nspec: {platform: GKE}\n");
    let (k8s, eks) = (fixture("kubernetes"), fixture("amazon-eks"));
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["calendar", "import", "--format", "endoflife", bad_date.to_str().unwrap(), "--platform", "EKS"],
            format!("error: {}: result.releases[0].eolFrom: input is out of range at line 2 column 81\n", bad_date.display()),
        ),
        (
            vec!["calendar", "import", "--format", "endoflife", &k8s, "--platform", "GKE"],
            format!(
                "error: {}: result.name: 'kubernetes' is not the endoflife.date product of GKE (google-kubernetes-engine)\n",
                k8s
            ),
        ),
        (
            vec!["calendar", "import", "--format", "endoflife", "/no/such.json", "--platform", "EKS"],
            "error: /no/such.json: cannot read: No such file or directory (os error 2)\n".into(),
        ),
        (
            vec!["calendar", "import", "--format", "endoflife", &eks, "--platform", "EKS", "--policy-name", "Prod"],
            "error: --policy-name Prod: not a Kubernetes object name (lowercase letters, digits, '-' and '.', at most 253)\n".into(),
        ),
        (
            vec!["calendar", "show", "--platform", "EKS", "--policy", policy.to_str().unwrap()],
            "error: --platform EKS: the policy is for GKE\n".into(),
        ),
        (vec!["calendar", "show", "--policy", "nothing"], "error: --policy nothing: no such file or preset (aks, aks-arc, eks, gke, upstream)\n".into()),
    ];
    for (args, want) in cases {
        let out = run(&args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(text(&out.stderr), want, "{args:?}");
        assert!(out.stdout.is_empty());
    }
}

/// `--policy-name`: a patch for a kustomize overlay; `kubectl kustomize` applies it over the
/// base policy, whose other fields stay.
#[test]
fn a_policy_patch_refreshes_an_overlay() {
    if !tools::have_tools("a_policy_patch_refreshes_an_overlay", &["kubectl"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "policy.yaml",
        "apiVersion: support.compliance.dev/v1alpha1\nkind: SupportPolicy\nmetadata: {name: aks-prod}\nspec:\n  \
         platform: AKS\n  kubernetesVersion:\n    warnBeforeDays: 90\n    releases:\n      - {minor: \"1.20\", released: \
         2021-06-01}\n",
    );
    let out = run(
        &[
            "calendar",
            "import",
            "--format",
            "endoflife",
            &fixture("azure-kubernetes-service"),
            "--platform",
            "AKS",
            "--policy-name",
            "aks-prod",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    std::fs::write(dir.path().join("calendar.yaml"), &out.stdout).unwrap();
    write(dir.path(), "kustomization.yaml", "resources: [policy.yaml]\npatches: [{path: calendar.yaml}]\n");
    let built = Command::new("kubectl").args(["kustomize", dir.path().to_str().unwrap()]).output().unwrap();
    assert!(built.status.success(), "{}", text(&built.stderr));
    let policy: serde_json::Value = serde_saphyr::from_str(&text(&built.stdout)).unwrap();
    let kv = &policy["spec"]["kubernetesVersion"];
    assert_eq!(kv["warnBeforeDays"], 90, "the base's other fields stay");
    let minors: Vec<&str> = kv["releases"].as_array().unwrap().iter().map(|r| r["minor"].as_str().unwrap()).collect();
    assert_eq!(minors.first(), Some(&"1.24"), "the list is replaced, the base's 1.20 is gone: {minors:?}");
    assert_eq!(minors.len(), 13);
    assert_eq!(kv["releases"][7]["ltsEndOfSupport"], "2026-11-30");
    // The built policy is one `check` accepts.
    let built_path = write(dir.path(), "built.yaml", &text(&built.stdout));
    let out = run(&["calendar", "show", "--policy", built_path.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}
