//! Realistic clusters for benchmarks and scale tests: Nodes as a managed platform writes them
//! (labels and annotations of AKS, managedFields of the kubelet and the controllers,
//! `status.images` with 25 images), about 10 KB of JSON each, grouped in pools. Deterministic:
//! node `i` of a cluster is always the same object, so the CLI benchmark (a List file) and the
//! API server (loaded objects) see the same cluster.

use serde_json::{json, Value};

/// The shape of a generated cluster.
#[derive(Debug, Clone)]
pub struct ClusterShape {
    /// Number of nodes.
    pub nodes: usize,
    /// Number of node pools (nodes are spread round-robin).
    pub pools: usize,
    /// One node in `not_ready_every` is not Ready (0: none).
    pub not_ready_every: usize,
    /// One pool in `stale_every` runs an outdated image and kubelet (0: none).
    pub stale_every: usize,
    /// The instant of the heartbeats and the newest transitions (RFC 3339).
    pub now: String,
}

impl ClusterShape {
    /// `nodes` nodes in pools of about 500 (at least 3 pools, at most 1,000: GKE's and AKS'
    /// pool limits), 1 % not Ready, one pool in 7 outdated, as of 2026-11-25T12:00:00Z.
    pub fn new(nodes: usize) -> Self {
        ClusterShape {
            nodes,
            pools: nodes.div_ceil(500).clamp(3, 1000),
            not_ready_every: 100,
            stale_every: 7,
            now: "2026-11-25T12:00:00Z".into(),
        }
    }

    /// The pool of node `i`.
    pub fn pool(&self, i: usize) -> String {
        format!("pool{:03}", i % self.pools.max(1))
    }

    /// The name of node `i`.
    pub fn name(&self, i: usize) -> String {
        format!("aks-{}-{:08}-vmss{:06}", self.pool(i), 38_211_574 + i % self.pools.max(1), i)
    }

    /// Node `i`, as the API server serves it.
    pub fn node(&self, i: usize) -> Value {
        let pool = self.pool(i);
        let p = i % self.pools.max(1);
        let name = self.name(i);
        // A pool runs one image and one kubelet, except while it is being upgraded (every 7th:
        // half its nodes on the next image and kubelet). A maintained fleet: one pool in
        // `stale_every` runs an image months old and a kubelet out of support; the others an
        // image of the last three weeks and a supported kubelet.
        let stale = self.stale_every > 0 && p % self.stale_every == self.stale_every / 2;
        let upgrading = p.is_multiple_of(7) && i.is_multiple_of(2);
        let (month, day) = if stale { (1 + p % 8, 1 + p % 28) } else { (11, 1 + p % 21) };
        let image = format!(
            "AKSUbuntu-2204gen2containerd-2026{:02}.{:02}.{}",
            if upgrading && stale { month + 1 } else { month },
            if upgrading && !stale { day + 1 } else { day },
            p % 3
        );
        let kubelet = if stale { "v1.33.5" } else { ["v1.34.2", "v1.35.3"][(p + usize::from(upgrading)) % 2] };
        let ready = self.not_ready_every == 0 || i % self.not_ready_every != self.not_ready_every - 1;
        let created = format!("2026-{:02}-{:02}T{:02}:{:02}:00Z", 1 + p % 10, 1 + i % 28, i % 24, i % 60);
        let since = if ready { created.clone() } else { format!("2026-11-{:02}T08:00:00Z", 1 + i % 20) };
        let (ready_status, ready_reason, ready_message) = if ready {
            ("True", "KubeletReady", "kubelet is posting ready status")
        } else {
            ("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
        };
        let condition = |type_: &str, status: &str, reason: &str, message: &str, transition: &str| {
            json!({"type": type_, "status": status, "lastHeartbeatTime": self.now,
                   "lastTransitionTime": transition, "reason": reason, "message": message})
        };
        let images: Vec<Value> = (0..25)
            .map(|k| {
                let repo = IMAGES[k % IMAGES.len()];
                json!({
                    "names": [
                        format!("mcr.microsoft.com/{repo}@sha256:{}", hex(i as u64 * 64 + k as u64, 64)),
                        format!("mcr.microsoft.com/{repo}:v{}.{}.{}", 1 + k % 3, k % 20, (i + k) % 9),
                    ],
                    "sizeBytes": 10_000_000 + (k as u64 * 7_919_993) % 400_000_000,
                })
            })
            .collect();
        json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "uid": uuid(i as u64),
                "resourceVersion": (100_000 + i).to_string(),
                "creationTimestamp": created,
                "labels": {
                    "agentpool": pool,
                    "beta.kubernetes.io/arch": "amd64",
                    "beta.kubernetes.io/instance-type": "Standard_D8ds_v5",
                    "beta.kubernetes.io/os": "linux",
                    "failure-domain.beta.kubernetes.io/region": "westeurope",
                    "failure-domain.beta.kubernetes.io/zone": format!("westeurope-{}", 1 + i % 3),
                    "kubernetes.azure.com/agentpool": pool,
                    "kubernetes.azure.com/cluster": "MC_rg-prod_aks-prod_westeurope",
                    "kubernetes.azure.com/consolidated-additional-properties": hex(p as u64, 40),
                    "kubernetes.azure.com/kubelet-identity-client-id": uuid(7),
                    "kubernetes.azure.com/mode": if p == 0 { "system" } else { "user" },
                    "kubernetes.azure.com/node-image-version": image,
                    "kubernetes.azure.com/nodepool-type": "VirtualMachineScaleSets",
                    "kubernetes.azure.com/os-sku": "Ubuntu",
                    "kubernetes.azure.com/role": "agent",
                    "kubernetes.azure.com/storageprofile": "managed",
                    "kubernetes.azure.com/storagetier": "Premium_LRS",
                    "kubernetes.io/arch": "amd64",
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/role": "agent",
                    "node-role.kubernetes.io/agent": "",
                    "node.kubernetes.io/instance-type": "Standard_D8ds_v5",
                    "storageprofile": "managed",
                    "storagetier": "Premium_LRS",
                    "topology.disk.csi.azure.com/zone": format!("westeurope-{}", 1 + i % 3),
                    "topology.kubernetes.io/region": "westeurope",
                    "topology.kubernetes.io/zone": format!("westeurope-{}", 1 + i % 3),
                },
                "annotations": {
                    "csi.volume.kubernetes.io/nodeid":
                        format!("{{\"disk.csi.azure.com\":\"{name}\",\"file.csi.azure.com\":\"{name}\"}}"),
                    "node.alpha.kubernetes.io/ttl": "0",
                    "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                },
                "managedFields": [
                    {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": created,
                     "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:annotations": {".": {},
                        "f:volumes.kubernetes.io/controller-managed-attach-detach": {}},
                        "f:labels": {".": {}, "f:agentpool": {}, "f:beta.kubernetes.io/arch": {},
                        "f:beta.kubernetes.io/os": {}, "f:kubernetes.azure.com/agentpool": {},
                        "f:kubernetes.azure.com/cluster": {}, "f:kubernetes.azure.com/mode": {},
                        "f:kubernetes.azure.com/node-image-version": {}, "f:kubernetes.azure.com/role": {},
                        "f:kubernetes.io/arch": {}, "f:kubernetes.io/hostname": {}, "f:kubernetes.io/os": {}}},
                        "f:spec": {"f:providerID": {}}}},
                    {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
                     "time": created, "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:annotations":
                        {"f:node.alpha.kubernetes.io/ttl": {}}}, "f:spec": {"f:podCIDR": {}, "f:podCIDRs":
                        {".": {}, "v:\"10.244.0.0/24\"": {}}}}},
                    {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": self.now,
                     "subresource": "status", "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {
                        "f:allocatable": {"f:cpu": {}, "f:ephemeral-storage": {}, "f:memory": {}},
                        "f:capacity": {"f:cpu": {}, "f:ephemeral-storage": {}, "f:memory": {}},
                        "f:conditions": {"k:{\"type\":\"DiskPressure\"}": {"f:lastHeartbeatTime": {}},
                            "k:{\"type\":\"MemoryPressure\"}": {"f:lastHeartbeatTime": {}},
                            "k:{\"type\":\"PIDPressure\"}": {"f:lastHeartbeatTime": {}},
                            "k:{\"type\":\"Ready\"}": {"f:lastHeartbeatTime": {}, "f:lastTransitionTime": {},
                                "f:message": {}, "f:reason": {}, "f:status": {}}},
                        "f:images": {}, "f:nodeInfo": {"f:bootID": {}, "f:kubeletVersion": {}}}}},
                ],
            },
            "spec": {
                "podCIDR": format!("10.244.{}.0/24", i % 256),
                "podCIDRs": [format!("10.244.{}.0/24", i % 256)],
                "providerID": format!(
                    "azure:///subscriptions/{}/resourceGroups/mc_rg-prod_aks-prod_westeurope/providers/Microsoft.Compute/virtualMachineScaleSets/aks-{pool}-{:08}-vmss/virtualMachines/{i}",
                    uuid(3),
                    38_211_574 + p
                ),
            },
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": format!("10.224.{}.{}", (i / 250) % 256, 4 + i % 250)},
                    {"type": "Hostname", "address": name},
                ],
                "allocatable": {"cpu": "7820m", "ephemeral-storage": "119703055367", "hugepages-1Gi": "0",
                                "hugepages-2Mi": "0", "memory": "28353228Ki", "pods": "110"},
                "capacity": {"cpu": "8", "ephemeral-storage": "129886128Ki", "hugepages-1Gi": "0",
                             "hugepages-2Mi": "0", "memory": "32864972Ki", "pods": "110"},
                "conditions": [
                    condition("KernelDeadlock", "False", "KernelHasNoDeadlock", "kernel has no deadlock", &created),
                    condition("FilesystemCorruptionProblem", "False", "FilesystemIsOK", "Filesystem is healthy", &created),
                    condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available", &created),
                    condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure", &created),
                    condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available", &created),
                    condition("Ready", ready_status, ready_reason, ready_message, &since),
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "images": images,
                "nodeInfo": {
                    "architecture": "amd64",
                    "bootID": uuid(i as u64 + 1_000_000),
                    "containerRuntimeVersion": "containerd://1.7.27-1",
                    "kernelVersion": "5.15.0-1089-azure",
                    "kubeProxyVersion": kubelet,
                    "kubeletVersion": kubelet,
                    "machineID": hex(i as u64 + 2_000_000, 32),
                    "operatingSystem": "linux",
                    "osImage": "Ubuntu 22.04.5 LTS",
                    "systemUUID": uuid(i as u64 + 3_000_000),
                },
            },
        })
    }

    /// Node `i` after its kubelet's heartbeat at `at` (RFC 3339): only the conditions'
    /// `lastHeartbeatTime` differ from [`ClusterShape::node`].
    pub fn heartbeat(&self, i: usize, at: &str) -> Value {
        let mut node = self.node(i);
        for c in node["status"]["conditions"].as_array_mut().expect("conditions") {
            c["lastHeartbeatTime"] = json!(at);
        }
        node
    }

    /// Writes the cluster as a kubectl List (`kubectl get nodes -o json`) to `out`, one node at a
    /// time (never the whole cluster in memory).
    pub fn write_list(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        out.write_all(b"{\"apiVersion\":\"v1\",\"kind\":\"List\",\"metadata\":{\"resourceVersion\":\"\"},\"items\":[")?;
        for i in 0..self.nodes {
            if i > 0 {
                out.write_all(b",")?;
            }
            serde_json::to_writer(&mut *out, &self.node(i))?;
        }
        out.write_all(b"]}\n")
    }
}

const IMAGES: [&str; 12] = [
    "oss/kubernetes/kube-proxy",
    "oss/kubernetes-csi/azuredisk-csi",
    "oss/kubernetes-csi/azurefile-csi",
    "oss/kubernetes-csi/csi-node-driver-registrar",
    "oss/kubernetes-csi/livenessprobe",
    "containernetworking/azure-cns",
    "containernetworking/azure-ip-masq-agent",
    "oss/kubernetes/pause",
    "oss/v2/kubernetes/coredns",
    "aks/aks-app-routing-operator",
    "azuremonitor/containerinsights/ciprod",
    "oss/kubernetes/apiserver-network-proxy/agent",
];

/// `len` hex digits derived from `n` (a cheap, deterministic stand-in for digests and ids).
fn hex(n: u64, len: usize) -> String {
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut s = String::with_capacity(len);
    while s.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(&format!("{x:016x}"));
    }
    s.truncate(len);
    s
}

fn uuid(n: u64) -> String {
    let h = hex(n, 32);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_about_ten_kilobytes_and_deterministic() {
        let shape = ClusterShape::new(1000);
        let sizes: Vec<usize> = (0..50).map(|i| serde_json::to_vec(&shape.node(i)).unwrap().len()).collect();
        let mean = sizes.iter().sum::<usize>() / sizes.len();
        assert!((8_000..14_000).contains(&mean), "mean node size {mean} bytes");
        assert_eq!(shape.node(17), shape.node(17));
        assert_ne!(shape.node(17)["metadata"]["name"], shape.node(18)["metadata"]["name"]);
    }

    #[test]
    fn one_pool_in_seven_is_outdated() {
        let shape = ClusterShape::new(10_000);
        assert_eq!(shape.pools, 20);
        let stale: Vec<usize> =
            (0..shape.pools).filter(|&p| shape.node(p)["status"]["nodeInfo"]["kubeletVersion"] == "v1.33.5").collect();
        assert_eq!(stale, [3, 10, 17]);
        let image = shape.node(3)["metadata"]["labels"]["kubernetes.azure.com/node-image-version"].clone();
        assert!(!image.as_str().unwrap().contains("202611."), "{image}");
    }

    #[test]
    fn the_list_is_valid_json_with_every_node() {
        let shape = ClusterShape::new(250);
        let mut buf = Vec::new();
        shape.write_list(&mut buf).unwrap();
        let v: Value = serde_json::from_slice(&buf).unwrap();
        let items = v["items"].as_array().unwrap();
        assert_eq!(items.len(), 250);
        let not_ready = items.iter().filter(|n| n["status"]["conditions"][5]["status"] != "True").count();
        assert_eq!(not_ready, 2, "1 in 100 is not Ready");
        let mut beat = shape.heartbeat(3, "2026-11-25T12:00:10Z");
        assert_eq!(beat["status"]["conditions"][5]["lastHeartbeatTime"], "2026-11-25T12:00:10Z");
        for c in beat["status"]["conditions"].as_array_mut().unwrap() {
            c["lastHeartbeatTime"] = json!(shape.now);
        }
        assert_eq!(beat, shape.node(3), "a heartbeat changes nothing else");
    }
}
