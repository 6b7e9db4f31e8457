//! One-shot reads of the cluster for `check` (the operator reads its caches instead).

use std::sync::Arc;

use kube::api::{Api, ListParams};
use kube::Client;

use super::objects::{CachedLease, CachedNode};
use crate::crd::v1alpha1::LeaseReference;
use crate::policy::Policy;
use crate::snapshot::{ClusterSnapshot, Interner, NodeKeys};

/// Page size of node lists.
const PAGE: u32 = 500;

/// The group-versions the API server serves (`v1`, `apps/v1`, `resource.k8s.io/v1alpha3`),
/// from legacy discovery, which every API server answers.
pub async fn served_api_versions(client: &Client) -> Result<Vec<String>, kube::Error> {
    let mut out: Vec<String> = client.list_core_api_versions().await?.versions;
    for group in client.list_api_groups().await?.groups {
        out.extend(group.versions.into_iter().map(|v| v.group_version));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Reads everything `policy` needs from the cluster: `/version`, discovery, every node (paged)
/// and the Leases its heartbeats name. `progress` is told what is being read.
pub async fn live_snapshot(
    client: &Client,
    policy: &Policy,
    progress: &dyn Fn(&str),
) -> Result<ClusterSnapshot, kube::Error> {
    live_snapshot_reading(client, &policy.leases(), &policy.node_keys(), progress).await
}

/// Reads `/version`, discovery, every node (paged, keeping the labels and annotations of
/// `keys`) and the named Leases (several policies evaluated against one read of the cluster
/// pass what they read together).
pub async fn live_snapshot_reading(
    client: &Client,
    wanted: &[LeaseReference],
    keys: &NodeKeys,
    progress: &dyn Fn(&str),
) -> Result<ClusterSnapshot, kube::Error> {
    progress("reading the API server version");
    let server_version = Some(client.apiserver_version().await?.git_version);
    progress("reading API discovery");
    let api_versions = Some(served_api_versions(client).await?);

    let nodes_api: Api<CachedNode> = Api::all(client.clone());
    let mut nodes = Vec::new();
    // Each page is trimmed to what the policy reads before the next is read.
    let mut interner = Interner::default();
    let mut params = ListParams::default().limit(PAGE);
    loop {
        progress(&format!("listing nodes ({} so far)", nodes.len()));
        let page = nodes_api.list(&params).await?;
        // An API server serves no nameless node: one would be left out.
        nodes.extend(
            page.items.into_iter().filter_map(|n| n.info.ok()).map(|n| Arc::new(n.trimmed(keys, &mut interner))),
        );
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }

    let mut leases = std::collections::BTreeMap::new();
    for lease in wanted {
        progress(&format!("reading Lease {}/{}", lease.namespace, lease.name));
        let api: Api<CachedLease> = Api::namespaced(client.clone(), &lease.namespace);
        if let Some(found) = api.get_opt(&lease.name).await? {
            leases.insert((lease.namespace.clone(), lease.name.clone()), found.info);
        }
    }
    Ok(ClusterSnapshot { server_version, nodes, leases, api_versions })
}
