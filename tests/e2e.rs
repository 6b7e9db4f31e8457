//! `make e2e`: the scenarios of `tests/operator.rs` against a real cluster from KUBECONFIG.
//!
//! Runs only with `SUPPORT_E2E=1` (set by `make e2e`) and a reachable cluster; otherwise each
//! test prints why it is skipped. It installs the CRDs (server-side apply), runs the operator in
//! this process against the cluster, and creates and deletes its own Node objects (labelled
//! `support-e2e/run`) and Leases in `default` (named after the run), so it needs cluster-admin on
//! a disposable cluster (kind, k3d, …). Node
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

async fn cluster() -> Option<kube::Config> {
    if std::env::var("SUPPORT_E2E").as_deref() != Ok("1") {
        eprintln!("SKIPPED: set SUPPORT_E2E=1 (make e2e) to run against the cluster of KUBECONFIG");
        return None;
    }
    let config = match kube::Config::infer().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("SKIPPED: no cluster from KUBECONFIG: {e}");
            return None;
        }
    };
    let client = Client::try_from(config.clone()).expect("a client for the cluster of KUBECONFIG");
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
    Some(config)
}

macro_rules! e2e {
    ($name:ident, |$c:ident, $op:ident| $body:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let Some(config) = cluster().await else { return };
            let $c = Cluster::new(config, stringify!($name));
            let $op = $c.start_operator().await;
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

/// Scenarios that start their own operator (after creating what it must find at its start).
macro_rules! e2e_own_operator {
    ($name:ident, $scenario:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let Some(config) = cluster().await else { return };
            $scenario(&Cluster::new(config, stringify!($name))).await;
        }
    };
}

e2e_own_operator!(node_deleted_untouched_since_start_e2e, node_deleted_untouched_since_start);
e2e_own_operator!(first_heartbeats_after_start_evaluate_nothing_e2e, first_heartbeats_after_start_evaluate_nothing);
e2e_own_operator!(named_lease_is_followed_e2e, named_lease_is_followed);
e2e_own_operator!(long_event_notes_fit_the_api_limit_e2e, long_event_notes_fit_the_api_limit);
e2e_own_operator!(tampered_status_is_restored_without_an_event_e2e, tampered_status_is_restored_without_an_event);
