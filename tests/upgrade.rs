//! Upgrade and uninstall, as the README's "Upgrade and uninstall" section describes them, with the
//! real `kubectl` against the API emulator (with CustomResourceDefinitions on: a custom resource
//! exists only while its CRD does, a CRD cannot drop a stored version, deleting a CRD deletes its
//! objects).
//!
//! - Upgrade: `kubectl apply --server-side -k crds` of the next version's CRDs over the current ones
//!   keeps every SupportPolicy and SupportStatus as it was (same uid, same resourceVersion: not even
//!   rewritten) and the running operator keeps working; a next version that dropped v1alpha1 is
//!   refused by the API server and changes nothing.
//! - Uninstall: with the operator gone, the SupportStatus objects stay readable (their last status,
//!   no longer updated) and carry no finalizer, so deleting a policy still removes its status (garbage
//!   collection, no operator needed); deleting the CRDs removes every policy and status.

mod scenarios;
mod tools;

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use scenarios::{eventually, now, Operator, WAIT};
use serde_json::{json, Value};
use support_operator::controller::clock::ShiftedClock;
use support_operator::crd::v1alpha1::{SupportPolicy, SupportStatus, Verdict};
use test_apiserver::{ApiServer, Gvr};

const GROUP: &str = "support.compliance.dev";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `kubectl` with a kubeconfig pointing at the emulator and a discovery cache of its own.
struct Kubectl {
    dir: PathBuf,
}

struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    fn new(server: &ApiServer, name: &str) -> Kubectl {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        server.write_kubeconfig(&dir.join("kubeconfig"));
        Kubectl { dir }
    }

    async fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("kubectl");
        cmd.args(args)
            .current_dir(root())
            .env("KUBECONFIG", self.dir.join("kubeconfig"))
            .env("KUBECACHEDIR", self.dir.join("cache"));
        let out = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().expect("kubectl runs");
        Output {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(out.ok, "kubectl {args:?} failed:\n{}{}", out.stdout, out.stderr);
        out.stdout
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all).await).expect("kubectl -o json")
    }
}

/// The CRDs of crds/, as parsed YAML documents.
fn current_crds() -> Vec<Value> {
    let text = std::fs::read_to_string(root().join("crds/support-operator.yaml")).unwrap();
    support_operator::yaml::documents(&text).unwrap()
}

/// A directory with these CRDs and a kustomization listing them, as crds/ is laid out.
fn write_crds(dir: &Path, crds: &[Value]) -> String {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let text: Vec<String> = crds.iter().map(|c| support_operator::yaml::to_string(c).unwrap()).collect();
    std::fs::write(dir.join("support-operator.yaml"), text.join("---\n")).unwrap();
    std::fs::write(dir.join("kustomization.yml"), "resources:\n  - support-operator.yaml\n").unwrap();
    dir.to_string_lossy().into_owned()
}

fn crd_mut<'a>(crds: &'a mut [Value], plural: &str) -> &'a mut Value {
    crds.iter_mut().find(|c| c["spec"]["names"]["plural"] == plural).expect("the CRD")
}

/// The next version's CRDs, as an additive release would generate them: a new optional policy
/// field, a new status field and printer column.
fn next_crds() -> Vec<Value> {
    let mut crds = current_crds();
    let policy = crd_mut(&mut crds, "supportpolicies");
    policy["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["planHorizonDays"] = json!({"type": "integer", "minimum": 1, "maximum": 3650, "description": "Days a plan keeps the cluster supported."});
    let status = crd_mut(&mut crds, "supportstatuses");
    let v = &mut status["spec"]["versions"][0];
    v["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["planSteps"] =
        json!({"type": "integer", "description": "Steps of the upgrade plan."});
    v["additionalPrinterColumns"]
        .as_array_mut()
        .expect("printer columns")
        .push(json!({"name": "Plan-Steps", "type": "integer", "jsonPath": ".status.planSteps"}));
    crds
}

/// The emulator with CRDs on, the aks-neglected nodes, the CRDs and two example policies applied
/// with kubectl, and the operator running (leader-elected, as installed) until both have a status.
async fn installed(name: &str) -> Option<(ApiServer, Kubectl, Operator)> {
    if !tools::have_tools(name, &["kubectl"]) {
        return None;
    }
    let server = ApiServer::builder().custom_resources_from_crds().git_version("v1.34.2").start().await;
    let snapshot: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("examples/snapshots/aks-neglected.json")).unwrap())
            .unwrap();
    for item in snapshot["items"].as_array().unwrap() {
        server.apply_object(item.clone());
    }
    let kubectl = Kubectl::new(&server, name);
    kubectl.ok(&["apply", "--server-side", "-k", "crds"]).await;
    kubectl
        .ok(&["apply", "--server-side", "-f", "examples/policies/aks.yaml", "-f", "examples/policies/upstream.yaml"])
        .await;
    let op =
        Operator::start(server.client(), ShiftedClock::at(now()), Some(("replica-a", "support-operator-system"))).await;
    let statuses: Api<SupportStatus> = Api::all(server.client());
    eventually(WAIT, "both policies have a status", || {
        let statuses = statuses.clone();
        async move {
            let list = statuses.list(&Default::default()).await.map(|l| l.items).unwrap_or_default();
            list.len() == 2 && list.iter().all(|s| s.status.as_ref().is_some_and(|st| st.verdict.is_some()))
        }
    })
    .await;
    Some((server, kubectl, op))
}

fn uid_and_version(v: &Value) -> (String, String) {
    (v["metadata"]["uid"].as_str().unwrap().to_owned(), v["metadata"]["resourceVersion"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_crds_applied_server_side_keep_every_object_and_the_operator_working() {
    let Some((server, kubectl, op)) = installed("upgrade-crds").await else { return };
    let before_policy = kubectl.json(&["get", "spol", "aks"]).await;
    let before_status = kubectl.json(&["get", "sst", "aks"]).await;
    assert_eq!(before_status["status"]["verdict"], "Unsupported");
    let win_outdated = |status: &Value| {
        status["status"]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == "NodeImageOutdated" && f["subject"] == "NodePool/win")
    };
    assert!(win_outdated(&before_status), "the example starts with the win pool outdated");
    let crd_generation = |v: &Value| v["metadata"]["generation"].as_i64().unwrap();
    let before_crd = kubectl.json(&["get", "crd", &format!("supportstatuses.{GROUP}")]).await;

    // The upgrade: the next version's CRDs over the current ones.
    let dir = write_crds(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("upgrade-crds/next"), &next_crds());
    let out = kubectl.ok(&["apply", "--server-side", "-k", &dir]).await;
    assert!(out.contains(&format!("supportstatuses.{GROUP} serverside-applied")), "{out}");
    let after_crd = kubectl.json(&["get", "crd", &format!("supportstatuses.{GROUP}")]).await;
    assert_eq!(crd_generation(&after_crd), crd_generation(&before_crd) + 1, "the CRD changed");
    assert_eq!(after_crd["status"]["storedVersions"], json!(["v1alpha1"]));

    // Every object is still there, untouched: same uid, same resourceVersion.
    let after_policy = kubectl.json(&["get", "spol", "aks"]).await;
    let after_status = kubectl.json(&["get", "sst", "aks"]).await;
    assert_eq!(uid_and_version(&after_policy), uid_and_version(&before_policy));
    assert_eq!(uid_and_version(&after_status), uid_and_version(&before_status));
    assert_eq!(after_status["status"], before_status["status"]);
    assert_eq!(kubectl.json(&["get", "sst"]).await["items"].as_array().unwrap().len(), 2);

    // The operator carries on: a node change after the upgrade reaches the status.
    let nodes: Api<Node> = Api::all(server.client());
    let fresh = json!({"metadata": {"labels": {"kubernetes.azure.com/node-image-version":
        "AKSWindows-2022-containerd-20348.4171.261120"}}});
    for name in ["akswin000000", "akswin000001"] {
        nodes.patch(name, &PatchParams::default(), &Patch::Merge(&fresh)).await.unwrap();
    }
    let statuses: Api<SupportStatus> = Api::all(server.client());
    let win_image = |s: &SupportStatus| {
        s.status
            .iter()
            .flat_map(|st| &st.findings)
            .any(|f| f.rule == "NodeImageOutdated" && f.subject == "NodePool/win")
    };
    eventually(WAIT, "the fixed win pool's image finding goes", || {
        let statuses = statuses.clone();
        async move { !win_image(&statuses.get("aks").await.unwrap()) }
    })
    .await;

    // A "next version" that dropped v1alpha1 (objects are stored at it) is refused, and changes nothing.
    let mut dropped = next_crds();
    for crd in &mut dropped {
        crd["spec"]["versions"][0]["name"] = json!("v1beta1");
    }
    let dir = write_crds(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("upgrade-crds/dropped"), &dropped);
    let out = kubectl.run(&["apply", "--server-side", "-k", &dir]).await;
    assert!(!out.ok, "dropping a stored version must fail:\n{}", out.stdout);
    assert!(
        out.stderr.contains(r#"status.storedVersions[0]: Invalid value: "v1alpha1": must appear in spec.versions"#),
        "{}",
        out.stderr
    );
    assert_eq!(kubectl.json(&["get", "sst"]).await["items"].as_array().unwrap().len(), 2, "still readable");
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstall_leaves_statuses_readable_until_the_crds_go() {
    let Some((server, kubectl, op)) = installed("uninstall").await else { return };
    let last = kubectl.json(&["get", "sst", "aks"]).await;

    // The operator is deleted (its Deployment): the statuses stay, with their last content.
    op.stop().await;
    let after = kubectl.json(&["get", "sst", "aks"]).await;
    assert_eq!(after["status"], last["status"]);
    assert_eq!(after["status"]["verdict"], "Unsupported");
    for kind in ["spol", "sst"] {
        for item in kubectl.json(&["get", kind]).await["items"].as_array().unwrap() {
            assert!(item["metadata"].get("finalizers").is_none(), "{kind} with a finalizer blocks deletion");
        }
    }

    // Without the operator, deleting a policy still removes its status (ownerReference).
    kubectl.ok(&["delete", "spol", "aks"]).await;
    assert!(server.get::<SupportStatus>(None, "aks").is_none(), "the status went with its policy");
    let remaining = server.get::<SupportStatus>(None, "upstream").expect("the other status stays");
    assert!(remaining.status.and_then(|s| s.verdict).is_some_and(|v| v != Verdict::Unknown));

    // Deleting the CRDs (what `kubectl delete -k config/default` does) removes every object.
    kubectl.ok(&["delete", "-k", "crds"]).await;
    assert!(server.list_objects(&Gvr::support_policies(), None).is_empty());
    assert!(server.list_objects(&Gvr::support_statuses(), None).is_empty());
    let out = kubectl.run(&["get", "sst"]).await;
    assert!(!out.ok, "sst is no longer a resource type:\n{}", out.stdout);
    assert!(server.get::<SupportPolicy>(None, "upstream").is_none());
}
