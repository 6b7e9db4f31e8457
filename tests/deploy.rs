//! Checks the install manifests in `config/` and the shipped Prometheus alerts.
//!
//! - `kubectl kustomize config/default` builds, and holds the two CRDs, the Deployment (probes, downward
//!   API, restricted security context) and the RBAC the operator needs.
//! - The PrometheusRule's groups pass `promtool check rules` and the unit tests in `tests/prometheus/`
//!   (`promtool test rules`); every alert has a severity, a summary, a description, a runbook link and
//!   a firing and a quiet test case.
//! - Rules and dashboard only use metric names (and `rule`/`verdict`/`component`/`severity` label
//!   values) that the product contract defines.
//! - The samples follow the generated CRD schema.
//! - Security (`deploy/security.rs`): the opt-in NetworkPolicy, the spread of the replicas, the release
//!   overlay pinned by digest and the script that pins it.
//! - Fleets (`deploy/fleet.rs`): every alert case holds per cluster with a `cluster` label, every
//!   aggregation keeps it, the dashboard filters by it and its fleet overview answers per cluster.
//!
//! `kubectl` and `promtool` come from `scripts/install-tools.sh`. When one is missing a test that needs
//! it fails if `CI` is set, and otherwise prints a skip notice and passes.

mod tools;

#[path = "deploy/fleet.rs"]
mod fleet;
#[path = "deploy/security.rs"]
mod security;

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use tools::have_tools;

const NAMESPACE: &str = "support-operator-system";
const GROUP: &str = "support.compliance.dev";
const RUNBOOK_URL: &str = "https://github.com/support-operator/support-operator/blob/main/README.md#alerts";

/// Metric names of the product contract (`shared/design/product.md`, Metrics), plus the controller's
/// `support_leader`, `support_watch_objects_skipped_total` and `support_watch_errors_total`, and the
/// per-pool series that bound `/metrics` at fleet scale (`support_pool_*`).
const CONTRACT_METRICS: &[&str] = &[
    "support_verdict",
    "support_findings",
    "support_next_deadline_timestamp_seconds",
    "support_kubernetes_version_end_of_support_timestamp_seconds",
    "support_node_image_release_timestamp_seconds",
    "support_node_not_ready_since_timestamp_seconds",
    "support_cluster_stopped_since_timestamp_seconds",
    "support_heartbeat_timestamp_seconds",
    "support_pool_nodes",
    "support_pool_nodes_not_ready",
    "support_pool_node_images",
    "support_pool_node_image_release_timestamp_seconds",
    "support_reconcile_duration_seconds",
    "support_reconcile_errors_total",
    "support_status_writes_total",
    "support_watch_objects_skipped_total",
    "support_watch_errors_total",
    "support_leader",
];
/// The histogram's series.
const HISTOGRAMS: &[&str] = &["support_reconcile_duration_seconds"];
const HISTOGRAM_SUFFIXES: &[&str] = &["_bucket", "_sum", "_count"];

/// Label values the contract fixes.
const RULE_IDS: &[&str] = &[
    "KubernetesVersionEndOfSupport",
    "KubernetesVersionUnknown",
    "KubeletVersionEndOfSupport",
    "KubeletVersionSkew",
    "NodeImageOutdated",
    "NodeImageUnknown",
    "NodeNotReady",
    "ClusterStopped",
    "ClusterNotUpgradable",
    "HeartbeatStale",
    "AttestationExpired",
    "AlphaApiServed",
    "PolicyInvalid",
];
const VERDICTS: &[&str] = &["Supported", "AtRisk", "Unsupported", "Unknown"];
const FINDING_SEVERITIES: &[&str] = &["Unsupported", "Warning", "Info"];
const COMPONENTS: &[&str] = &["control-plane", "kubelet"];
const PRESETS: &[&str] = &["AKS", "AKSArc", "EKS", "GKE", "Upstream"];

// ---------------------------------------------------------------------------------------------------
// Tools and files

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| format!("cannot run {shown}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!("{shown} failed ({}):\n{stdout}\n{stderr}", out.status))
    }
}

fn yaml_documents(text: &str, what: &str) -> Vec<Value> {
    support_operator::yaml::documents(text).unwrap_or_else(|e| panic!("{what}: invalid YAML: {e}"))
}

fn read_yaml(rel: &str) -> Vec<Value> {
    let path = root().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    yaml_documents(&text, rel)
}

/// `kubectl kustomize config/default`, built once per test binary.
fn default_install() -> &'static [Value] {
    static OUT: OnceLock<Vec<Value>> = OnceLock::new();
    OUT.get_or_init(|| {
        let text = run(Command::new("kubectl").arg("kustomize").arg(root().join("config/default")))
            .unwrap_or_else(|e| panic!("{e}\n(does crds/ exist? `make crds` generates it)"));
        yaml_documents(&text, "kubectl kustomize config/default")
    })
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the output"))
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

/// The PrometheusRule as shipped (the source file; the kustomize output is checked by promtool).
fn shipped_rules() -> Value {
    let docs = read_yaml("config/prometheus/prometheus_rule.yaml");
    docs.into_iter().find(|d| d["kind"] == "PrometheusRule").expect("a PrometheusRule")
}

fn alerts(rule: &Value) -> Vec<&Value> {
    rule["spec"]["groups"]
        .as_array()
        .expect("spec.groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("group rules"))
        .filter(|r| r.get("alert").is_some())
        .collect()
}

fn dashboard() -> Value {
    let path = root().join("config/grafana/support-operator.json");
    let text = std::fs::read_to_string(&path).expect("dashboard JSON");
    serde_json::from_str(&text).expect("dashboard is valid JSON")
}

fn promtool_test_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("tests/prometheus"))
        .expect("tests/prometheus")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no promtool test files in tests/prometheus");
    files
}

// ---------------------------------------------------------------------------------------------------
// The install

#[test]
fn default_install_has_crds_rbac_and_a_hardened_deployment() {
    if !have_tools("default_install_has_crds_rbac_and_a_hardened_deployment", &["kubectl"]) {
        return;
    }
    let docs = default_install();

    // CRDs, both cluster-scoped.
    for plural in ["supportpolicies", "supportstatuses"] {
        let crd = find(docs, "CustomResourceDefinition", &format!("{plural}.{GROUP}"));
        assert_eq!(crd["spec"]["group"], GROUP);
        assert_eq!(crd["spec"]["scope"], "Cluster", "{plural} must be cluster-scoped");
        assert!(
            crd["spec"]["versions"].as_array().unwrap().iter().any(|v| v["name"] == "v1alpha1"),
            "{plural} serves v1alpha1"
        );
    }
    assert!(!docs.iter().any(|d| d["kind"] == "SupportPolicy"), "samples must not be part of config/default");

    // Everything namespaced lands in the operator's namespace.
    find(docs, "Namespace", NAMESPACE);
    for d in docs {
        let kind = d["kind"].as_str().unwrap();
        let cluster_scoped =
            matches!(kind, "Namespace" | "CustomResourceDefinition" | "ClusterRole" | "ClusterRoleBinding");
        if !cluster_scoped {
            assert_eq!(d["metadata"]["namespace"], NAMESPACE, "{kind} {} namespace", d["metadata"]["name"]);
        }
    }

    // The Deployment.
    let deploy = find(docs, "Deployment", "support-operator");
    assert_eq!(deploy["spec"]["replicas"], 2);
    let pod = &deploy["spec"]["template"]["spec"];
    let sa = pod["serviceAccountName"].as_str().expect("serviceAccountName");
    find(docs, "ServiceAccount", sa);
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let argv: Vec<&str> = strs(&c["command"]).into_iter().chain(strs(&c["args"])).collect();
    assert_eq!(argv, ["support-operator", "run", "--leader-elect", "--openreports"], "container command line");

    let env: BTreeMap<&str, &Value> =
        c["env"].as_array().unwrap().iter().map(|e| (e["name"].as_str().unwrap(), e)).collect();
    assert_eq!(env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name");
    assert_eq!(env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.namespace");

    // /metrics on 8443 (HTTPS), the probes on a port of their own (plain HTTP).
    let port = |name: &str| c["ports"].as_array().unwrap().iter().find(|p| p["name"] == name).cloned();
    assert_eq!(port("https-metrics").expect("port https-metrics")["containerPort"], 8443);
    assert_eq!(port("health").expect("port health")["containerPort"], 8081);
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe} path");
        assert_eq!(get["port"], "health", "{probe} port");
        assert!(get.get("scheme").is_none() || get["scheme"] == "HTTP", "{probe}: the health port is plain HTTP");
    }

    let psc = &pod["securityContext"];
    let csc = &c["securityContext"];
    assert!(psc["runAsNonRoot"] == true || csc["runAsNonRoot"] == true, "runAsNonRoot");
    assert_eq!(csc["readOnlyRootFilesystem"], true);
    assert_eq!(csc["allowPrivilegeEscalation"], false);
    assert_eq!(strs(&csc["capabilities"]["drop"]), ["ALL"]);
    assert!(
        psc["seccompProfile"]["type"] == "RuntimeDefault" || csc["seccompProfile"]["type"] == "RuntimeDefault",
        "seccomp RuntimeDefault"
    );
    for kind in ["requests", "limits"] {
        for res in ["cpu", "memory"] {
            assert!(c["resources"][kind][res].is_string(), "resources.{kind}.{res}");
        }
    }

    // The metrics Service reaches the pods and the ServiceMonitor reaches the Service.
    let pod_labels = deploy["spec"]["template"]["metadata"]["labels"].as_object().unwrap();
    let svc = docs.iter().find(|d| d["kind"] == "Service").expect("a Service");
    for (k, v) in svc["spec"]["selector"].as_object().expect("service selector") {
        assert_eq!(pod_labels.get(k), Some(v), "Service selector {k} matches the pods");
    }
    let svc_ports = svc["spec"]["ports"].as_array().unwrap();
    assert_eq!(svc_ports.len(), 1, "the Service exposes /metrics only, not the health port");
    assert_eq!((&svc_ports[0]["name"], &svc_ports[0]["port"]), (&json!("https-metrics"), &json!(8443)));
    let sm = docs.iter().find(|d| d["kind"] == "ServiceMonitor").expect("a ServiceMonitor");
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    let svc_labels = svc["metadata"]["labels"].as_object().unwrap();
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().expect("ServiceMonitor selector") {
        assert_eq!(svc_labels.get(k), Some(v), "ServiceMonitor selector {k} matches the Service");
    }
    // Prometheus scrapes over HTTPS with its ServiceAccount token (the operator reviews it).
    let endpoints = sm["spec"]["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1);
    let e = &endpoints[0];
    assert_eq!((&e["port"], &e["scheme"], &e["path"]), (&json!("https-metrics"), &json!("https"), &json!("/metrics")));
    assert_eq!(e["bearerTokenFile"], "/var/run/secrets/kubernetes.io/serviceaccount/token");
    assert_eq!(e["tlsConfig"]["insecureSkipVerify"], true, "the generated certificate cannot be verified");
    // The alerts on `up` select job="support-operator": the ServiceMonitor must produce that job name.
    let job_label = sm["spec"]["jobLabel"].as_str().expect("ServiceMonitor jobLabel");
    assert_eq!(svc_labels.get(job_label).and_then(Value::as_str), Some("support-operator"));

    let pr = docs.iter().find(|d| d["kind"] == "PrometheusRule").expect("a PrometheusRule");
    assert_eq!(pr["apiVersion"], "monitoring.coreos.com/v1");

    let cm = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["labels"]["grafana_dashboard"] == "1")
        .expect("a ConfigMap labelled grafana_dashboard=\"1\"");
    let json = cm["data"].as_object().unwrap().values().next().and_then(Value::as_str).expect("dashboard data");
    let _: Value = serde_json::from_str(json).expect("the dashboard in the ConfigMap is JSON");

    // RBAC.
    let sa_subject = |binding: &Value| {
        binding["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["kind"] == "ServiceAccount" && s["name"] == sa && s["namespace"] == NAMESPACE)
    };
    let crb = docs.iter().find(|d| d["kind"] == "ClusterRoleBinding").expect("a ClusterRoleBinding");
    assert!(sa_subject(crb), "ClusterRoleBinding binds the ServiceAccount");
    assert_eq!(crb["roleRef"]["kind"], "ClusterRole");
    let cluster_role = find(docs, "ClusterRole", crb["roleRef"]["name"].as_str().unwrap());
    // (Exactly what the operator calls: tests/operator.rs `rbac_grants_exactly_what_the_operator_calls`.)
    let required: &[(&str, &str, &[&str])] = &[
        ("", "nodes", &["list", "watch"]),
        ("coordination.k8s.io", "leases", &["list", "watch"]),
        (GROUP, "supportpolicies", &["list", "watch"]),
        (GROUP, "supportstatuses", &["list", "watch", "create", "patch"]),
        (GROUP, "supportstatuses/status", &["patch"]),
        ("events.k8s.io", "events", &["create", "patch"]),
        ("authentication.k8s.io", "tokenreviews", &["create"]),
        ("authorization.k8s.io", "subjectaccessreviews", &["create"]),
        ("openreports.io", "clusterreports", &["get", "create", "patch"]),
    ];
    for (group, resource, verbs) in required {
        for verb in *verbs {
            assert!(
                allows(cluster_role, group, resource, verb),
                "ClusterRole must allow {verb} {resource} ({group:?})"
            );
        }
    }
    assert!(!allows(cluster_role, "", "secrets", "get"), "the ClusterRole must not read Secrets");
    assert!(!allows(cluster_role, "", "nodes", "patch"), "the ClusterRole must not modify Nodes");
    for rule in cluster_role["rules"].as_array().unwrap() {
        for field in ["apiGroups", "resources", "verbs"] {
            assert!(!strs(&rule[field]).contains(&"*"), "no wildcard {field} in the ClusterRole: {rule}");
        }
    }

    let rb = docs.iter().find(|d| d["kind"] == "RoleBinding").expect("a RoleBinding");
    assert!(sa_subject(rb), "RoleBinding binds the ServiceAccount");
    assert_eq!(rb["roleRef"]["kind"], "Role");
    let role = find(docs, "Role", rb["roleRef"]["name"].as_str().unwrap());
    for verb in ["create", "get", "update"] {
        assert!(allows(role, "coordination.k8s.io", "leases", verb), "leader-election Role must allow {verb} leases");
    }

    // What a Prometheus must hold to scrape: get on /metrics, nothing else, bound to nobody by the
    // install (the operator's own identity never reads its metrics).
    let reader = find(docs, "ClusterRole", "support-operator-metrics-reader");
    assert_eq!(reader["rules"], json!([{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]));
    assert!(
        !docs.iter().any(|d| d["roleRef"]["name"] == "support-operator-metrics-reader"),
        "the metrics reader role is bound by whoever runs Prometheus"
    );
}

fn allows(role: &Value, group: &str, resource: &str, verb: &str) -> bool {
    role["rules"].as_array().into_iter().flatten().any(|r| {
        let has = |field: &str, want: &str| strs(&r[field]).iter().any(|v| *v == want || *v == "*");
        has("apiGroups", group) && has("resources", resource) && has("verbs", verb)
    })
}

// ---------------------------------------------------------------------------------------------------
// Alerts

/// The PrometheusRule as `kubectl kustomize config/default` installs it.
fn installed_rules() -> &'static Value {
    default_install().iter().find(|d| d["kind"] == "PrometheusRule").expect("a PrometheusRule")
}

/// A fresh directory under the test target dir holding the installed rules as `prometheus-rules.yaml`
/// (promtool reads plain rule files: the PrometheusRule's spec, `{groups: [...]}`), the name the test
/// files in tests/prometheus give it.
fn promtool_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let rules = support_operator::yaml::to_string(&installed_rules()["spec"]).unwrap();
    std::fs::write(dir.join("prometheus-rules.yaml"), rules).unwrap();
    dir
}

#[test]
fn alert_rules_pass_promtool_check_and_unit_tests() {
    if !have_tools("alert_rules_pass_promtool_check_and_unit_tests", &["kubectl", "promtool"]) {
        return;
    }
    let pr = installed_rules();
    let dir = promtool_dir("deploy-prometheus");
    let mut tests = Vec::new();
    for f in promtool_test_files() {
        let name = f.file_name().unwrap().to_owned();
        std::fs::copy(&f, dir.join(&name)).unwrap();
        tests.push(name);
    }

    let check = run(Command::new("promtool").args(["check", "rules", "prometheus-rules.yaml"]).current_dir(&dir))
        .unwrap_or_else(|e| panic!("{e}"));
    let expected = format!("SUCCESS: {} rules found", alerts(pr).len());
    assert!(check.contains(&expected), "promtool check rules: expected {expected:?} in:\n{check}");

    let out = run(Command::new("promtool").args(["test", "rules"]).args(&tests).current_dir(&dir))
        .unwrap_or_else(|e| panic!("{e}\n(files in {})", dir.display()));
    eprintln!("{out}");
}

/// Every dashboard query is valid PromQL: promtool checks them as recording rules, with the Grafana
/// variables replaced by values.
#[test]
fn dashboard_queries_are_valid_promql() {
    if !have_tools("dashboard_queries_are_valid_promql", &["promtool"]) {
        return;
    }
    let mut exprs = Vec::new();
    collect_exprs(&dashboard(), &mut exprs);
    assert!(exprs.len() >= 10, "the dashboard has queries");
    let rules: Vec<Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let e = e.replace("$__rate_interval", "5m").replace("$policy", ".*").replace("$cluster", ".*");
            serde_json::json!({"record": format!("dashboard:query_{i}"), "expr": e})
        })
        .collect();
    let file = serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]});
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("deploy-dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("dashboard-queries.yaml"), support_operator::yaml::to_string(&file).unwrap()).unwrap();
    run(Command::new("promtool").args(["check", "rules", "dashboard-queries.yaml"]).current_dir(&dir))
        .unwrap_or_else(|e| panic!("{e}"));
}

fn collect_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, val) in map {
                match (k.as_str(), val) {
                    ("expr", Value::String(s)) => out.push(s.clone()),
                    _ => collect_exprs(val, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_exprs(i, out)),
        _ => {}
    }
}

#[test]
fn every_alert_is_labelled_documented_and_unique() {
    let rule = shipped_rules();
    let all = alerts(&rule);
    assert!(!all.is_empty());
    let mut names = BTreeSet::new();
    for a in all {
        let name = a["alert"].as_str().unwrap();
        assert!(names.insert(name), "duplicate alert {name}");
        assert!(name.starts_with("Support"), "{name}: alert names start with Support");
        assert!(a["expr"].as_str().is_some_and(|e| !e.trim().is_empty()), "{name}: expr");
        let for_ = a["for"].as_str().unwrap_or_else(|| panic!("{name}: every alert has a `for:`"));
        let minutes = for_.strip_suffix('m').and_then(|m| m.parse::<u32>().ok());
        assert!(minutes.is_some_and(|m| (1..=60).contains(&m)), "{name}: for {for_} (between 1m and 60m)");
        let severity = a["labels"]["severity"].as_str().unwrap_or_else(|| panic!("{name}: severity label"));
        assert!(matches!(severity, "warning" | "critical"), "{name}: severity {severity}");
        for key in ["summary", "description"] {
            let text = a["annotations"][key].as_str().unwrap_or_else(|| panic!("{name}: {key} annotation"));
            assert!(text.trim().len() > 20, "{name}: {key} too short");
            assert!(!text.contains('\n'), "{name}: {key} is one line (folded)");
        }
        assert_eq!(a["annotations"]["runbook_url"], RUNBOOK_URL, "{name}: runbook_url points into the README");
    }
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_promtool_case() {
    let rule = shipped_rules();
    let mut firing = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for file in promtool_test_files() {
        let rel = file.strip_prefix(root()).unwrap().to_string_lossy().into_owned();
        let doc = &read_yaml(&rel)[0];
        assert_eq!(strs(&doc["rule_files"]), ["prometheus-rules.yaml"], "{rel}: rule_files");
        for test in doc["tests"].as_array().unwrap_or_else(|| panic!("{rel}: tests")) {
            for case in test["alert_rule_test"].as_array().into_iter().flatten() {
                let name = case["alertname"].as_str().unwrap().to_owned();
                match case["exp_alerts"].as_array() {
                    Some(a) if !a.is_empty() => firing.insert(name),
                    _ => quiet.insert(name),
                };
            }
        }
    }
    let names: BTreeSet<String> = alerts(&rule).iter().map(|a| a["alert"].as_str().unwrap().to_owned()).collect();
    let no_fire: Vec<_> = names.difference(&firing).collect();
    let no_quiet: Vec<_> = names.difference(&quiet).collect();
    assert!(no_fire.is_empty(), "alerts without a test where they fire: {no_fire:?}");
    assert!(no_quiet.is_empty(), "alerts without a test where they stay quiet: {no_quiet:?}");
    let unknown: Vec<_> = firing.union(&quiet).filter(|n| !names.contains(*n)).collect();
    assert!(unknown.is_empty(), "tests name alerts that do not exist: {unknown:?}");
}

// ---------------------------------------------------------------------------------------------------
// Metric names

/// Identifiers outside quoted strings that start with `support_`.
fn support_metrics(expr: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut chars = expr.chars().peekable();
    let mut word = String::new();
    let mut flush = |word: &mut String| {
        if word.starts_with("support_") {
            found.insert(std::mem::take(word));
        }
        word.clear();
    };
    while let Some(c) = chars.next() {
        if c == '"' || c == '\'' || c == '`' {
            flush(&mut word);
            // Skip the string literal (backslash escapes included).
            while let Some(d) = chars.next() {
                if d == '\\' {
                    chars.next();
                } else if d == c {
                    break;
                }
            }
        } else if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
        } else {
            flush(&mut word);
        }
    }
    flush(&mut word);
    found
}

/// Values matched by `label="…"` or `label=~"…"` (alternatives split on `|`).
fn label_values(expr: &str, label: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = expr.as_bytes();
    let mut from = 0;
    while let Some(pos) = expr[from..].find(label).map(|p| p + from) {
        from = pos + label.len();
        let before_ok = pos == 0 || !(bytes[pos - 1].is_ascii_alphanumeric() || bytes[pos - 1] == b'_');
        let rest = expr[from..].trim_start();
        let rest = rest.strip_prefix("=~").or_else(|| rest.strip_prefix('=')).map(str::trim_start);
        if let (true, Some(rest)) = (before_ok, rest) {
            if let Some(value) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) {
                out.extend(value.split('|').map(str::to_owned));
            }
        }
    }
    out
}

fn known_metric(name: &str) -> bool {
    CONTRACT_METRICS.contains(&name)
        || HISTOGRAMS.iter().any(|h| HISTOGRAM_SUFFIXES.iter().any(|s| name == format!("{h}{s}")))
}

/// Every `expr`, `query` and `definition` string in the dashboard.
fn dashboard_queries(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, val) in map {
                match (k.as_str(), val) {
                    ("expr" | "definition" | "query", Value::String(s)) => out.push(s.clone()),
                    _ => dashboard_queries(val, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| dashboard_queries(i, out)),
        _ => {}
    }
}

/// `("alert <name>", expr)` of every shipped alert.
fn alert_exprs() -> Vec<(String, String)> {
    alerts(&shipped_rules())
        .iter()
        .map(|a| (format!("alert {}", a["alert"].as_str().unwrap()), a["expr"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn rules_and_dashboard_use_only_contract_metrics_and_label_values() {
    let mut sources = alert_exprs();
    let mut queries = Vec::new();
    dashboard_queries(&dashboard(), &mut queries);
    assert!(queries.len() >= 10, "the dashboard has queries");
    let mut dashboard_metrics = BTreeSet::new();
    for q in queries {
        dashboard_metrics.extend(support_metrics(&q));
        sources.push(("dashboard".into(), q));
    }

    let allowed_values: &[(&str, &[&str])] =
        &[("rule", RULE_IDS), ("verdict", VERDICTS), ("component", COMPONENTS), ("severity", FINDING_SEVERITIES)];
    for (origin, expr) in &sources {
        for metric in support_metrics(expr) {
            assert!(known_metric(&metric), "{origin}: {metric} is not a metric of the contract: {expr}");
        }
        for (label, allowed) in allowed_values {
            for value in label_values(expr, label) {
                assert!(
                    allowed.contains(&value.as_str()) || value.starts_with('$'),
                    "{origin}: {label}=\"{value}\" is not one of {allowed:?}"
                );
            }
        }
    }

    // The dashboard shows every metric the operator exports.
    let shown: BTreeSet<String> = dashboard_metrics
        .iter()
        .map(|m| HISTOGRAM_SUFFIXES.iter().fold(m.clone(), |m, s| m.strip_suffix(s).map(str::to_owned).unwrap_or(m)))
        .collect();
    let missing: Vec<_> = CONTRACT_METRICS.iter().filter(|m| !shown.contains(**m)).collect();
    assert!(missing.is_empty(), "metrics missing from the dashboard: {missing:?}");
}

#[test]
fn metric_and_label_scanners_work() {
    let expr = r#"max by (policy) (support_verdict{verdict="Unsupported", job=~"support_x"}) or rate(support_reconcile_duration_seconds_bucket[5m])"#;
    let metrics: Vec<String> = support_metrics(expr).into_iter().collect();
    assert_eq!(metrics, ["support_reconcile_duration_seconds_bucket", "support_verdict"]);
    assert_eq!(label_values(expr, "verdict"), ["Unsupported"]);
    assert_eq!(label_values(r#"x{rule=~"A|B", subrule="C"}"#, "rule"), ["A", "B"]);
    assert!(known_metric("support_reconcile_duration_seconds_count"));
    assert!(!known_metric("support_verdicts"));
}

// ---------------------------------------------------------------------------------------------------
// Samples

#[test]
fn samples_cover_every_preset_and_follow_the_crd_schema() {
    // The CRDs as config/crd installs them: the files crds/kustomization.yml lists.
    let listed_crds = read_yaml("crds/kustomization.yml");
    let crds: Vec<Value> =
        strs(&listed_crds[0]["resources"]).iter().flat_map(|f| read_yaml(&format!("crds/{f}"))).collect();
    let crd = crds
        .iter()
        .find(|d| {
            d["kind"] == "CustomResourceDefinition" && d["metadata"]["name"] == format!("supportpolicies.{GROUP}")
        })
        .expect("the SupportPolicy CRD in crds/");
    let version = crd["spec"]["versions"].as_array().unwrap().iter().find(|v| v["name"] == "v1alpha1").unwrap();
    let schema = &version["schema"]["openAPIV3Schema"];

    // config/samples builds examples/policies, the one copy of the example policies.
    let samples = read_yaml("config/samples/kustomization.yaml");
    assert_eq!(strs(&samples[0]["resources"]), ["../../examples/policies"]);
    let listed = read_yaml("examples/policies/kustomization.yml");
    let files = strs(&listed[0]["resources"]);
    let mut platforms = BTreeSet::new();
    for file in &files {
        for doc in read_yaml(&format!("examples/policies/{file}")) {
            assert_eq!(doc["apiVersion"], format!("{GROUP}/v1alpha1"), "{file}");
            assert_eq!(doc["kind"], "SupportPolicy", "{file}");
            let mut errors = Vec::new();
            let body = serde_json::json!({"spec": doc["spec"]});
            validate(schema, &body, "", &mut errors);
            assert!(errors.is_empty(), "{file} does not follow the CRD schema:\n{}", errors.join("\n"));
            platforms.insert(doc["spec"]["platform"].as_str().unwrap().to_owned());
        }
    }
    for preset in PRESETS {
        assert!(platforms.contains(*preset), "no sample for platform {preset}");
    }
    let on_disk = std::fs::read_dir(root().join("examples/policies"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name() != "kustomization.yml")
        .count();
    assert_eq!(files.len(), on_disk, "examples/policies/kustomization.yml lists every policy");
}

/// A structural OpenAPI v3 check: types, properties (no unknown fields), required, enum, bounds.
/// Enough to catch a misspelt or misplaced field in a sample; CEL rules and patterns are not checked.
fn validate(schema: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    if v.is_null() {
        if schema["nullable"] != true {
            errors.push(format!("{path}: null"));
        }
        return;
    }
    if schema["x-kubernetes-preserve-unknown-fields"] == true || schema["x-kubernetes-int-or-string"] == true {
        return;
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(v) {
            errors.push(format!("{path}: {v} not in {allowed:?}"));
        }
    }
    let ty = schema["type"].as_str().unwrap_or("");
    let ok = match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        _ => true,
    };
    if !ok {
        errors.push(format!("{path}: expected {ty}, got {v}"));
        return;
    }
    if let Some(n) = v.as_f64() {
        if schema["minimum"].as_f64().is_some_and(|min| n < min)
            || schema["maximum"].as_f64().is_some_and(|max| n > max)
        {
            errors.push(format!("{path}: {n} out of bounds"));
        }
    }
    match v {
        Value::Object(map) => {
            for req in strs(&schema["required"]) {
                if !map.contains_key(req) {
                    errors.push(format!("{path}: missing required {req}"));
                }
            }
            let props = schema["properties"].as_object();
            for (k, val) in map {
                let child = format!("{path}.{k}");
                match (props.and_then(|p| p.get(k)), schema.get("additionalProperties")) {
                    (Some(s), _) => validate(s, val, &child, errors),
                    (None, Some(s)) if s.is_object() => validate(s, val, &child, errors),
                    _ => errors.push(format!("{child}: unknown field")),
                }
            }
        }
        Value::Array(items) => {
            if schema["maxItems"].as_u64().is_some_and(|max| items.len() as u64 > max) {
                errors.push(format!("{path}: more than maxItems"));
            }
            for (i, item) in items.iter().enumerate() {
                validate(&schema["items"], item, &format!("{path}[{i}]"), errors);
            }
        }
        _ => {}
    }
}
