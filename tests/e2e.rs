//! `make e2e`: the scenarios of `tests/operator.rs` against a real cluster from KUBECONFIG.
//!
//! Runs only with `SUPPORT_E2E=1` (set by `make e2e`) and a reachable cluster; otherwise each
//! test prints why it is skipped. It installs the CRDs (server-side apply), runs the operator in
//! this process against the cluster, and creates and deletes its own Node objects (labelled
//! `support-e2e/run`), so it needs cluster-admin on a disposable cluster (kind, k3d, …). Node
//! objects without a kubelet are marked NotReady by the node lifecycle controller after its
//! grace period (40 s by default); every scenario finishes well before that.
//! Fault injection, leader-election fencing and raw malformed objects need the emulator and
//! run only in `tests/operator.rs`.

mod scenarios;

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use scenarios::*;
use support_operator::controller::clock::ShiftedClock;

async fn cluster() -> Option<Client> {
    if std::env::var("SUPPORT_E2E").as_deref() != Ok("1") {
        eprintln!("SKIPPED: set SUPPORT_E2E=1 (make e2e) to run against the cluster of KUBECONFIG");
        return None;
    }
    let client = match Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("SKIPPED: no cluster from KUBECONFIG: {e}");
            return None;
        }
    };
    if let Err(e) = tokio::time::timeout(Duration::from_secs(10), client.apiserver_version())
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
    {
        eprintln!("SKIPPED: the cluster of KUBECONFIG does not answer: {e}");
        return None;
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let yaml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/support-operator.yaml")).unwrap();
    for doc in support_operator::yaml::documents(&yaml).unwrap() {
        let crd: CustomResourceDefinition = serde_json::from_value(doc).unwrap();
        let name = crd.metadata.name.clone().unwrap();
        crds.patch(&name, &PatchParams::apply("support-operator-e2e").force(), &Patch::Apply(&crd))
            .await
            .expect("install the CRDs");
    }
    Some(client)
}

macro_rules! e2e {
    ($name:ident, |$c:ident, $op:ident| $body:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let Some(client) = cluster().await else { return };
            let $c = Cluster::new(client.clone(), stringify!($name));
            let $op = Operator::start(client, ShiftedClock::at(now()), None).await;
            $body;
            $op.stop().await;
        }
    };
}

e2e!(policy_lifecycle_e2e, |c, op| policy_lifecycle(&c, &op).await);
e2e!(nodes_stop_e2e, |c, op| {
    let _ = &op;
    nodes_stop(&c).await
});
e2e!(deadline_passes_e2e, |c, op| deadline_passes(&c, &op).await);
e2e!(heartbeats_do_not_write_e2e, |c, op| heartbeats_do_not_write(&c, &op, 200).await);
e2e!(invalid_policy_is_isolated_e2e, |c, op| {
    let _ = &op;
    invalid_policy_is_isolated(&c).await
});
e2e!(metrics_match_status_e2e, |c, op| metrics_match_status(&c, &op).await);
