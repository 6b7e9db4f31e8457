//! A fleet to try `check --all-contexts` on, without a cluster: one in-process API emulator
//! per example snapshot (`examples/snapshots/`), each holding its nodes, Leases and the example
//! policy of its platform (`examples/policies/`), plus a context whose server is down. Writes
//! the kubeconfig and serves until Ctrl-C:
//!
//! ```sh
//! cargo run --example fleet-demo -- target/fleet-demo.kubeconfig &
//! KUBECONFIG=target/fleet-demo.kubeconfig cargo run -- check --all-contexts --policy in-cluster
//! ```

use std::path::Path;

use serde_json::Value;
use test_apiserver::ApiServer;

/// (context, snapshot, policy, control-plane version), as in the README's examples.
const CLUSTERS: [(&str, &str, &str, &str); 4] = [
    ("aks-prod-westeurope", "aks-healthy", "aks", "v1.35.3"),
    ("aks-prod-northeurope", "aks-neglected", "aks", "v1.34.2"),
    ("eks-prod-us-east-1", "eks-node-creation", "eks", "v1.34.1-eks-2d5f260"),
    ("aks-arc-store-0042", "aks-arc-stopped", "aks-arc", "v1.32.6"),
];

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::main]
async fn main() {
    let out = std::env::args().nth(1).unwrap_or_else(|| "target/fleet-demo.kubeconfig".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut servers = Vec::new();
    let mut contexts = Vec::new();
    for (context, snapshot, policy, version) in CLUSTERS {
        let server = ApiServer::builder().git_version(version).start().await;
        let list: Value = serde_json::from_str(&read(&root.join(format!("snapshots/{snapshot}.json")))).unwrap();
        for item in list["items"].as_array().into_iter().flatten() {
            server.apply_object(item.clone());
        }
        let policy: Value = serde_saphyr::from_str(&read(&root.join(format!("policies/{policy}.yaml")))).unwrap();
        server.apply_object(policy);
        contexts.push((context, server.url()));
        servers.push(server);
    }
    // A cluster whose API server is down: a port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    contexts.push(("gke-lab", format!("http://{}", closed.local_addr().unwrap())));
    drop(closed);

    let contexts: Vec<(&str, &str)> = contexts.iter().map(|(n, u)| (*n, u.as_str())).collect();
    let text = test_apiserver::kubeconfig(&contexts);
    std::fs::write(&out, text).unwrap_or_else(|e| panic!("{out}: {e}"));
    eprintln!("{} clusters (one down) in {out}; Ctrl-C to stop", contexts.len());
    let _ = tokio::signal::ctrl_c().await;
}
