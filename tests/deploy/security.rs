//! What a security or platform reviewer checks before admitting the install: the opt-in NetworkPolicy
//! (config/network-policy), the spread of the two replicas, and the release overlay (config/release)
//! that pins the image by digest, with the script that updates it.

use super::*;

const IMAGE: &str = "ghcr.io/support-operator/support-operator";

/// `to` relative to `from` (both directories), as kustomize wants it (it refuses absolute paths).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let from = from.canonicalize().unwrap();
    let to = to.canonicalize().unwrap();
    let common = from.components().zip(to.components()).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in from.components().skip(common) {
        rel.push("..");
    }
    to.components().skip(common).for_each(|c| rel.push(c));
    rel
}

/// Builds a kustomization written into a fresh directory; `{root}` in it is the repository root.
fn kustomize_overlay(name: &str, kustomization: &str) -> Vec<Value> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let root = relative(&dir, root());
    std::fs::write(dir.join("kustomization.yaml"), kustomization.replace("{root}", &root.to_string_lossy())).unwrap();
    let text = run(Command::new("kubectl").arg("kustomize").arg(&dir)).unwrap_or_else(|e| panic!("{e}"));
    yaml_documents(&text, name)
}

fn pod_labels(deploy: &Value) -> &serde_json::Map<String, Value> {
    deploy["spec"]["template"]["metadata"]["labels"].as_object().expect("pod template labels")
}

/// A matchLabels-only selector selects these labels.
fn selects(selector: &Value, labels: &serde_json::Map<String, Value>) -> bool {
    assert!(selector.get("matchExpressions").is_none(), "only matchLabels selectors are shipped: {selector}");
    let wanted = selector["matchLabels"].as_object().expect("matchLabels");
    !wanted.is_empty() && wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn ports(rule: &Value) -> BTreeSet<String> {
    rule["ports"]
        .as_array()
        .unwrap_or_else(|| panic!("every rule names its ports (no all-ports rule): {rule}"))
        .iter()
        .map(|p| {
            format!(
                "{}/{}",
                p["port"].as_str().map(str::to_owned).unwrap_or_else(|| p["port"].to_string()),
                p["protocol"].as_str().unwrap_or("TCP")
            )
        })
        .collect()
}

#[test]
fn network_policy_is_opt_in_and_admits_only_dns_the_api_server_and_monitoring() {
    if !have_tools("network_policy_is_opt_in_and_admits_only_dns_the_api_server_and_monitoring", &["kubectl"]) {
        return;
    }
    assert!(!default_install().iter().any(|d| d["kind"] == "NetworkPolicy"), "config/default has no NetworkPolicy");
    let docs = kustomize_overlay(
        "deploy-network-policy",
        "resources: ['{root}/config/default']\ncomponents: ['{root}/config/network-policy']\n",
    );
    let policies: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "NetworkPolicy").collect();
    assert_eq!(policies.len(), 1, "one NetworkPolicy");
    let np = policies[0];
    assert_eq!(np["metadata"]["namespace"], NAMESPACE);
    let deploy = find(&docs, "Deployment", "support-operator");
    assert!(selects(&np["spec"]["podSelector"], pod_labels(deploy)), "the policy selects the operator's pods");
    let mut types = strs(&np["spec"]["policyTypes"]);
    types.sort();
    assert_eq!(types, ["Egress", "Ingress"], "both directions are default-deny for the pods");

    // Ingress: the metrics port only, from the monitoring namespace only.
    let ingress = np["spec"]["ingress"].as_array().expect("ingress rules");
    assert_eq!(ingress.len(), 1, "one ingress rule");
    let from = ingress[0]["from"].as_array().expect("ingress has a `from` (not from everywhere)");
    assert_eq!(from.len(), 1);
    assert_eq!(from[0]["namespaceSelector"]["matchLabels"], json!({"kubernetes.io/metadata.name": "monitoring"}));
    assert!(from[0].get("ipBlock").is_none());
    assert_eq!(ports(&ingress[0]), BTreeSet::from(["https-metrics/TCP".to_owned()]));
    let container = &deploy["spec"]["template"]["spec"]["containers"][0];
    let metrics_port = container["ports"].as_array().unwrap().iter().find(|p| p["name"] == "https-metrics");
    assert!(metrics_port.is_some(), "the named port exists on the container");
    let service = find(&docs, "Service", "support-operator-metrics");
    assert!(
        service["spec"]["ports"].as_array().unwrap().iter().all(|p| p["targetPort"] == "https-metrics"),
        "the Service reaches the pods only on the port the policy admits"
    );

    // Egress: DNS to kube-dns, and the API server's ports; nothing else, no open-ended rule.
    let egress = np["spec"]["egress"].as_array().expect("egress rules");
    assert_eq!(egress.len(), 2, "two egress rules: DNS and the API server");
    let dns = egress.iter().find(|r| ports(r).contains("53/UDP")).expect("a DNS rule");
    assert_eq!(ports(dns), BTreeSet::from(["53/TCP".to_owned(), "53/UDP".to_owned()]));
    let to = dns["to"].as_array().expect("DNS goes to kube-dns only");
    assert_eq!(to.len(), 1);
    assert_eq!(to[0]["namespaceSelector"]["matchLabels"], json!({"kubernetes.io/metadata.name": "kube-system"}));
    assert_eq!(to[0]["podSelector"]["matchLabels"], json!({"k8s-app": "kube-dns"}));
    let api = egress.iter().find(|r| !ports(r).contains("53/UDP")).unwrap();
    assert_eq!(ports(api), BTreeSet::from(["443/TCP".to_owned(), "6443/TCP".to_owned()]));
    for block in api["to"].as_array().into_iter().flatten() {
        assert_ne!(block["ipBlock"]["cidr"], "0.0.0.0/0", "no rule to everywhere");
    }
}

#[test]
fn the_two_replicas_are_spread_over_nodes_and_kept_through_drains() {
    if !have_tools("the_two_replicas_are_spread_over_nodes_and_kept_through_drains", &["kubectl"]) {
        return;
    }
    let docs = default_install();
    let deploy = find(docs, "Deployment", "support-operator");
    assert_eq!(deploy["spec"]["replicas"], 2);
    let labels = pod_labels(deploy);
    let pod = &deploy["spec"]["template"]["spec"];
    // A hard rule: a topology spread constraint per node that refuses to schedule, or required
    // pod anti-affinity per node.
    let spread = pod["topologySpreadConstraints"].as_array().into_iter().flatten().find(|c| {
        c["topologyKey"] == "kubernetes.io/hostname"
            && c["whenUnsatisfiable"] == "DoNotSchedule"
            && c["maxSkew"] == 1
            && selects(&c["labelSelector"], labels)
    });
    let anti_affinity = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["topologyKey"] == "kubernetes.io/hostname" && selects(&t["labelSelector"], labels));
    assert!(spread.is_some() || anti_affinity.is_some(), "no required spread of the replicas over nodes: {pod}");
    if let Some(c) = spread {
        // Old and new ReplicaSets spread independently during a rollout.
        assert_eq!(strs(&c["matchLabelKeys"]), ["pod-template-hash"]);
    }
    let pdb = find(docs, "PodDisruptionBudget", "support-operator");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert!(selects(&pdb["spec"]["selector"], labels), "the PDB covers the replicas");
}

fn images(docs: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for d in docs {
        let pod = &d["spec"]["template"]["spec"];
        for key in ["containers", "initContainers", "ephemeralContainers"] {
            for c in pod[key].as_array().into_iter().flatten() {
                out.push(c["image"].as_str().expect("image").to_owned());
            }
        }
    }
    out
}

fn is_pinned(image: &str) -> bool {
    image.split_once("@sha256:").is_some_and(|(name, hex)| {
        !name.is_empty() && hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[test]
fn release_overlay_pins_every_image_by_digest_and_changes_nothing_else() {
    if !have_tools("release_overlay_pins_every_image_by_digest_and_changes_nothing_else", &["kubectl"]) {
        return;
    }
    let text = run(Command::new("kubectl").arg("kustomize").arg(root().join("config/release")))
        .unwrap_or_else(|e| panic!("{e}"));
    let release = yaml_documents(&text, "kubectl kustomize config/release");
    let pinned = images(&release);
    assert!(!pinned.is_empty());
    for image in &pinned {
        assert!(is_pinned(image), "{image} is not pinned by digest");
        assert!(image.starts_with(&format!("{IMAGE}@")), "{image}: not the operator's image");
    }
    // Same objects as config/default, but for the image reference.
    let strip = |docs: &[Value]| -> Vec<Value> {
        docs.iter()
            .map(|d| {
                let mut d = d.clone();
                if let Some(cs) = d["spec"]["template"]["spec"]["containers"].as_array_mut() {
                    cs.iter_mut().for_each(|c| c["image"] = Value::Null);
                }
                d
            })
            .collect()
    };
    assert_eq!(strip(&release), strip(default_install()), "config/release differs from config/default");
    assert!(images(default_install()).iter().all(|i| !is_pinned(i)), "the default install follows the tag");
    assert!(!is_pinned("x@sha256:abc") && !is_pinned("x:1.0") && is_pinned(&format!("x@sha256:{}", "0a".repeat(32))));
}

/// A copy of config/ and crds/ (the relative paths between them kept) to let the script edit.
fn scratch_repo(name: &str) -> PathBuf {
    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                copy_dir(&e.path(), &to.join(e.file_name()));
            } else {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["config", "crds"] {
        copy_dir(&root().join(sub), &dir.join(sub));
    }
    dir
}

#[test]
fn pin_script_updates_the_digest_and_refuses_anything_else() {
    if !have_tools("pin_script_updates_the_digest_and_refuses_anything_else", &["kubectl"]) {
        return;
    }
    let repo = scratch_repo("deploy-pin-digest");
    let overlay = repo.join("config/release");
    let file = overlay.join("kustomization.yaml");
    let script = root().join("scripts/pin-image-digest.sh");
    let pin = |args: &[&str]| Command::new("bash").arg(&script).args(args).env("OVERLAY", &overlay).output().unwrap();

    let digest = format!("sha256:{}", "5e".repeat(32));
    let out = pin(&[&digest]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let built = run(Command::new("kubectl").arg("kustomize").arg(&overlay)).unwrap();
    assert_eq!(images(&yaml_documents(&built, "pinned")), [format!("{IMAGE}@{digest}")]);
    let pinned = std::fs::read_to_string(&file).unwrap();
    let original = std::fs::read_to_string(root().join("config/release/kustomization.yaml")).unwrap();
    let changed: Vec<_> = original.lines().zip(pinned.lines()).filter(|(a, b)| a != b).collect();
    assert_eq!(changed.len(), 1, "only the digest line changes: {changed:?}");
    assert_eq!(original.lines().count(), pinned.lines().count());

    // From a digest file (what `buildah push --digestfile` writes), and again: idempotent.
    let next = format!("sha256:{}", "0f".repeat(32));
    let digest_file = repo.join("digest");
    std::fs::write(&digest_file, format!("{next}\n")).unwrap();
    for _ in 0..2 {
        let out = pin(&["--digestfile", digest_file.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let built = run(Command::new("kubectl").arg("kustomize").arg(&overlay)).unwrap();
    assert_eq!(images(&yaml_documents(&built, "re-pinned")), [format!("{IMAGE}@{next}")]);

    // Bad input: exit 2, a message naming the problem, the file untouched.
    let before = std::fs::read_to_string(&file).unwrap();
    for (args, reason) in [
        (vec!["sha256:1234"], "is not a digest"),
        (vec![&*format!("sha256:{}", "AB".repeat(32))], "is not a digest"),
        (vec![&*format!("sha512:{}", "ab".repeat(32))], "is not a digest"),
        (vec!["--digestfile", "/nonexistent/digest"], "cannot read"),
        (vec![], "Pins the operator image"),
    ] {
        let out = pin(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(reason), "{args:?}: expected {reason:?} in {stderr}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), before, "{args:?} changed the file");
    }
    let out = Command::new("bash")
        .arg(&script)
        .arg(&next)
        .env("OVERLAY", &overlay)
        .env("IMAGE", "example.com/other")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 images: entries named example.com/other"));
    assert!(std::fs::read_dir(&overlay).unwrap().count() == 1, "no temporary file left behind");
}
