//! The operator's scenarios, written against a `kube::Client` only, so that the same code runs
//! against the in-process API emulator (`tests/operator.rs`) and against a real cluster from
//! KUBECONFIG (`tests/e2e.rs`, `make e2e`). Scenarios that need fault injection take the
//! emulator and are skipped on a real cluster.
//!
//! Every scenario names its objects after a run id and selects only its own nodes (label
//! `support-e2e/run`), so it never sees or touches anything else in the cluster. Each waits on
//! conditions with a timeout; none sleeps for a fixed time to let something happen.

#![allow(dead_code)]

pub mod https;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{json, Value};
use support_operator::controller::clock::ShiftedClock;
use support_operator::controller::{self, RunError, Settings};
use support_operator::crd::v1alpha1::{SupportPolicy, SupportStatus, Verdict};
use support_operator::k8s::leader::LeaderConfig;
use support_operator::server::MetricsSecurity;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use test_apiserver::eventually;

/// The instant the scenarios start at.
pub const NOW: &str = "2026-11-25T12:00:00Z";
/// The label every scenario node carries, with the run id as value.
pub const RUN_LABEL: &str = "support-e2e/run";
/// Long enough for a watch event, a reconcile and a write on a loaded CI machine.
pub const WAIT: Duration = Duration::from_secs(30);

pub fn now() -> DateTime<Utc> {
    support_operator::time::parse_rfc3339(NOW).unwrap()
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    support_operator::time::format(t)
}

/// A `MicroTime` as the API writes it.
pub fn rfc3339_micro(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The settings of the operators tests start: any free ports, plain `/metrics`, a 3 s Lease
/// named `support-operator-test-leader` when `leader` gives (identity, namespace).
pub fn test_settings(leader: Option<(&str, &str)>) -> Settings {
    Settings {
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        metrics_security: MetricsSecurity::Plain,
        health_addr: "127.0.0.1:0".parse().unwrap(),
        openreports: false,
        node_metrics: Default::default(),
        leader: leader.map(|(identity, ns)| LeaderConfig {
            namespace: ns.into(),
            name: "support-operator-test-leader".into(),
            identity: identity.into(),
            duration: Duration::from_secs(3),
        }),
        resync: Duration::from_secs(3600),
        discovery_interval: Duration::from_secs(600),
        identity: leader.map(|(i, _)| i.to_string()).unwrap_or_else(|| "test".into()),
        report_addr: None,
        health: Default::default(),
    }
}

/// A running operator, in this process.
pub struct Operator {
    pub clock: ShiftedClock,
    /// `/metrics`.
    pub addr: SocketAddr,
    /// `/healthz` and `/readyz`.
    pub health: SocketAddr,
    /// `/metrics` is HTTPS with authentication (`MetricsSecurity::Secure`).
    pub secure: bool,
    /// The bearer token `metrics()` sends to a secure endpoint.
    pub token: Option<String>,
    stop: watch::Sender<bool>,
    handle: Option<JoinHandle<Result<(), RunError>>>,
}

impl Operator {
    /// Starts an operator; `leader` gives (identity, namespace) to elect a leader.
    pub async fn start(client: Client, clock: ShiftedClock, leader: Option<(&str, &str)>) -> Operator {
        Self::start_with(client, clock, leader, |_| {}).await
    }

    /// Starts an operator with settings changed by `tweak`.
    pub async fn start_with(
        client: Client,
        clock: ShiftedClock,
        leader: Option<(&str, &str)>,
        tweak: impl FnOnce(&mut Settings),
    ) -> Operator {
        // `TEST_LOG=debug cargo test …` shows the operator's logs.
        if let Ok(filter) = std::env::var("TEST_LOG") {
            support_operator::telemetry::init(support_operator::cli::LogFormat::Plain, &filter);
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let settings = Settings { report_addr: Some(tx), ..test_settings(leader) };
        let mut settings = settings;
        tweak(&mut settings);
        let secure = matches!(settings.metrics_security, MetricsSecurity::Secure(_));
        let (stop, stop_rx) = watch::channel(false);
        let handle = tokio::spawn(controller::run(client, settings, Arc::new(clock.clone()), stop_rx));
        let addrs = tokio::time::timeout(WAIT, rx.recv()).await.expect("the operator serves metrics").expect("address");
        Operator { clock, addr: addrs.metrics, health: addrs.health, secure, token: None, stop, handle: Some(handle) }
    }

    /// Sends `token` with every scrape of a secure `/metrics`.
    pub fn with_token(mut self, token: &str) -> Operator {
        self.token = Some(token.to_string());
        self
    }

    /// Sends SIGTERM's equivalent and waits for a clean exit.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        let handle = self.handle.take().unwrap();
        let result = tokio::time::timeout(WAIT, handle).await.expect("the operator stops").expect("no panic");
        assert!(result.is_ok(), "the operator stopped with {result:?}");
    }

    /// True while the operator task runs.
    pub fn is_running(&self) -> bool {
        self.handle.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// GET a path of the operator's HTTP servers (`/metrics` with the token over HTTPS when
    /// secure; `/healthz`, `/readyz` on the health port): (status code, body).
    pub async fn get(&self, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = if path == "/metrics" { self.addr } else { self.health };
        if self.secure && addr == self.addr {
            let answer = https::get(addr, path, self.token.as_deref()).await;
            return (answer.code, answer.body);
        }
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes()).await.unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).await.unwrap();
        let code = buf.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        (code, body)
    }

    /// The parsed `/metrics`.
    pub async fn metrics(&self) -> prometheus_parse::Scrape {
        let (code, body) = self.get("/metrics").await;
        assert_eq!(code, 200);
        prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text format")
    }

    /// The value of one sample, by metric name and label subset.
    pub async fn sample(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let scrape = self.metrics().await;
        scrape.samples.iter().find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))).map(
            |s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            },
        )
    }
}

impl Operator {
    /// The number of evaluations so far (reconciles that evaluated a policy).
    pub async fn evaluations(&self) -> f64 {
        self.sample("support_reconcile_duration_seconds_count", &[]).await.unwrap_or(0.0)
    }

    /// Waits until `value` stops changing (the same for 300 ms), and returns it: the operator has
    /// finished reacting to what happened before.
    pub async fn settled<F, Fut>(&self, mut value: F) -> f64
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = f64>,
    {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut last = value().await;
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = value().await;
            if now == last {
                return now;
            }
            assert!(tokio::time::Instant::now() < deadline, "still changing after {WAIT:?}");
            last = now;
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Everything a scenario works with.
pub struct Cluster {
    /// The scenario's own client: what it creates, changes and reads.
    pub client: Client,
    /// The client operators started by scenarios use: the same cluster, with the user agent
    /// [`OPERATOR_AGENT`], so that the emulator's request log tells the operator's calls apart.
    pub operator: Client,
    /// A short id unique to this scenario run.
    pub run: String,
}

/// The user agent of the operators the scenarios start.
pub const OPERATOR_AGENT: &str = "support-operator-under-test";

/// The bearer token a test's Prometheus scrapes a secure `/metrics` with.
pub const SCRAPE_TOKEN: &str = "prometheus-token";

/// Who [`SCRAPE_TOKEN`] authenticates as.
pub fn prometheus() -> test_apiserver::UserInfo {
    test_apiserver::UserInfo::service_account("monitoring", "prometheus")
}

/// `builder` with [`SCRAPE_TOKEN`] and the shipped ClusterRole `support-operator-metrics-reader`
/// (config/rbac/metrics_reader_role.yaml) bound to its user, as SubjectAccessReviews see it.
pub fn with_metrics_reader(builder: test_apiserver::ApiServerBuilder) -> test_apiserver::ApiServerBuilder {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/rbac/metrics_reader_role.yaml");
    let role: Value = support_operator::yaml::documents(&std::fs::read_to_string(path).unwrap())
        .expect("the metrics reader role")
        .remove(0);
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
    };
    let mut builder = builder.token(SCRAPE_TOKEN, prometheus());
    for rule in role["rules"].as_array().expect("rules") {
        let (verbs, urls) = (strings(&rule["verbs"]), strings(&rule["nonResourceURLs"]));
        let verbs: Vec<&str> = verbs.iter().map(String::as_str).collect();
        let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
        let user = test_apiserver::RbacSubject::User(prometheus().username);
        builder = builder.allow_non_resource(user, &verbs, &urls);
    }
    builder
}

/// `/metrics` as the operator serves it by default: HTTPS, a generated certificate, reviews.
pub fn secure_metrics() -> MetricsSecurity {
    MetricsSecurity::Secure(support_operator::server::SecureMetrics::default())
}

/// `config` with the operator's user agent.
pub fn operator_config(mut config: kube::Config) -> kube::Config {
    let agent = http::HeaderValue::from_static(OPERATOR_AGENT);
    config.headers.push((http::header::USER_AGENT, agent));
    config
}

impl Cluster {
    pub fn new(config: kube::Config, scenario: &str) -> Self {
        // Names must be DNS labels: `long_name_e2e` becomes `long-name-e2e`.
        let run = format!("{}-{}", scenario.replace('_', "-"), std::process::id() % 100_000);
        let client = Client::try_from(config.clone()).expect("a client");
        let operator = Client::try_from(operator_config(config)).expect("a client");
        Cluster { client, operator, run }
    }

    /// Starts an operator (no leader election) on the operator's client.
    pub async fn start_operator(&self) -> Operator {
        Operator::start(self.operator.clone(), ShiftedClock::at(now()), None).await
    }

    pub fn name(&self, n: &str) -> String {
        format!("{}-{n}", self.run)
    }

    /// Creates a node of this run, Ready since `ready_since` (or not Ready since it), with a
    /// dated image label.
    pub async fn create_node(&self, name: &str, image_date: &str, ready: bool, since: DateTime<Utc>) -> Node {
        let api: Api<Node> = Api::all(self.client.clone());
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": self.name(name), "labels": {
                RUN_LABEL: self.run, "kubernetes.azure.com/agentpool": "pool1",
                "example.com/image": format!("img-{image_date}")}},
        }))
        .unwrap();
        let created = api.create(&PostParams::default(), &node).await.expect("create node");
        self.set_ready(name, ready, since).await;
        created
    }

    /// Sets the Ready condition of a node.
    pub async fn set_ready(&self, name: &str, ready: bool, since: DateTime<Utc>) {
        let api: Api<Node> = Api::all(self.client.clone());
        let status = json!({"status": {
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                "reason": if ready { "KubeletReady" } else { "KubeletNotReady" },
                "lastHeartbeatTime": rfc3339(now()), "lastTransitionTime": rfc3339(since)}],
            "nodeInfo": {"kubeletVersion": "v1.35.3", "architecture": "amd64", "bootID": "", "containerRuntimeVersion": "containerd://2.0.0",
                "kernelVersion": "6.1", "kubeProxyVersion": "", "machineID": "", "operatingSystem": "linux", "osImage": "test", "systemUUID": ""}
        }});
        api.patch_status(&self.name(name), &PatchParams::default(), &Patch::Merge(status))
            .await
            .expect("patch node status");
    }

    /// Updates only the heartbeat of a node's Ready condition (what a kubelet does).
    pub async fn heartbeat(&self, name: &str, ready_since: DateTime<Utc>, beat: DateTime<Utc>) {
        let api: Api<Node> = Api::all(self.client.clone());
        let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
            "lastHeartbeatTime": rfc3339(beat), "lastTransitionTime": rfc3339(ready_since)}]}});
        api.patch_status(&self.name(name), &PatchParams::default(), &Patch::Merge(status)).await.expect("heartbeat");
    }

    pub async fn label_node(&self, name: &str, key: &str, value: &str) {
        let api: Api<Node> = Api::all(self.client.clone());
        api.patch(
            &self.name(name),
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {key: value}}})),
        )
        .await
        .expect("label node");
    }

    pub async fn delete_node(&self, name: &str) {
        let api: Api<Node> = Api::all(self.client.clone());
        api.delete(&self.name(name), &DeleteParams::default()).await.expect("delete node");
    }

    /// Creates or replaces the Lease `namespace/name` (named after the run), last renewed at `renewed`.
    pub async fn put_lease(&self, namespace: &str, name: &str, renewed: DateTime<Utc>) {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), namespace);
        let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": self.name(name), "namespace": namespace},
            "spec": {"holderIdentity": "agent", "renewTime": rfc3339_micro(renewed)}});
        api.patch(&self.name(name), &PatchParams::apply("scenario").force(), &Patch::Apply(lease))
            .await
            .expect("apply lease");
    }

    pub async fn delete_lease(&self, namespace: &str, name: &str) {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), namespace);
        api.delete(&self.name(name), &DeleteParams::default()).await.expect("delete lease");
    }

    pub async fn delete_nodes(&self) {
        let api: Api<Node> = Api::all(self.client.clone());
        let lp = kube::api::ListParams::default().labels(&format!("{RUN_LABEL}={}", self.run));
        let _ = api.delete_collection(&DeleteParams::default(), &lp).await;
    }

    /// A Custom policy selecting this run's nodes: image age from `example.com/image`
    /// (warn 30 days, unsupported 90), nodes not Ready (warn 7 days), plus `extra` spec fields.
    pub fn policy(&self, name: &str, extra: Value) -> SupportPolicy {
        let mut spec = json!({
            "platform": "Custom",
            "nodeSelector": {"matchLabels": {RUN_LABEL: self.run}},
            "nodeImage": {"label": "example.com/image", "datePattern": r"img-(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})$",
                          "warnAfterDays": 30, "unsupportedAfterDays": 90},
            "stoppedNodes": {"warnAfterDays": 7, "clusterUnsupportedAfterDays": 30},
        });
        if let (Some(base), Value::Object(more)) = (spec.as_object_mut(), extra) {
            base.extend(more);
        }
        serde_json::from_value(json!({
            "apiVersion": "support.compliance.dev/v1alpha1", "kind": "SupportPolicy",
            "metadata": {"name": self.name(name)}, "spec": spec
        }))
        .expect("a valid policy")
    }

    pub async fn apply_policy(&self, policy: &SupportPolicy) {
        let api: Api<SupportPolicy> = Api::all(self.client.clone());
        let mut body = serde_json::to_value(policy).unwrap();
        body["metadata"] = json!({"name": policy.name_any()});
        api.patch(&policy.name_any(), &PatchParams::apply("scenario").force(), &Patch::Apply(body))
            .await
            .expect("apply policy");
    }

    pub async fn delete_policy(&self, name: &str) {
        let api: Api<SupportPolicy> = Api::all(self.client.clone());
        let _ = api.delete(&self.name(name), &DeleteParams::default()).await;
    }

    pub async fn status(&self, name: &str) -> Option<SupportStatus> {
        let api: Api<SupportStatus> = Api::all(self.client.clone());
        api.get_opt(&self.name(name)).await.ok().flatten()
    }

    pub async fn verdict(&self, name: &str) -> Option<Verdict> {
        self.status(name).await.and_then(|s| s.status).and_then(|s| s.verdict)
    }

    /// Waits until the status of `name` satisfies `pred`, and returns it.
    pub async fn wait_status(&self, name: &str, what: &str, pred: impl Fn(&SupportStatus) -> bool) -> SupportStatus {
        let mut last = None;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(s) = self.status(name).await {
                if pred(&s) {
                    return s;
                }
                last = Some(s);
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("timed out waiting for {name}: {what}; last status: {:#?}", last.and_then(|s| s.status));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until the verdict of `name` is `verdict`, and returns the status.
    pub async fn wait_verdict(&self, name: &str, verdict: Verdict, what: &str) -> SupportStatus {
        self.wait_status(name, what, |s| s.status.as_ref().is_some_and(|st| st.verdict == Some(verdict))).await
    }

    /// Events recorded about a policy (events.k8s.io/v1, namespace `default` for cluster-scoped objects).
    pub async fn events_about(&self, name: &str) -> Vec<k8s_openapi::api::events::v1::Event> {
        let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(self.client.clone(), "default");
        let list = api.list(&Default::default()).await.map(|l| l.items).unwrap_or_default();
        list.into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(self.name(name).as_str()))
            .collect()
    }

    pub async fn cleanup(&self, policies: &[&str]) {
        for p in policies {
            self.delete_policy(p).await;
        }
        self.delete_nodes().await;
    }
}

pub fn finding<'a>(
    s: &'a SupportStatus,
    rule: &str,
    subject: &str,
) -> Option<&'a support_operator::crd::v1alpha1::Finding> {
    s.status.as_ref()?.findings.iter().find(|f| f.rule == rule && f.subject == subject)
}

pub fn day(offset_days: i64) -> String {
    (now() + TimeDelta::days(offset_days)).format("%Y-%m-%d").to_string()
}

// ----- Scenarios ------------------------------------------------------------------------------

/// Applying a policy creates its SupportStatus with the expected verdict; deleting the policy
/// removes the status (owner reference) and every metric series of the policy.
pub async fn policy_lifecycle(c: &Cluster, op: &Operator) {
    let since = now() - TimeDelta::days(20);
    c.create_node("a", &day(-10), true, since).await;
    c.create_node("b", &day(-40), true, since).await;
    c.apply_policy(&c.policy("p", json!({}))).await;

    let s = c
        .wait_status("p", "verdict AtRisk with 2 nodes", |s| {
            s.status.as_ref().is_some_and(|st| {
                st.verdict == Some(Verdict::AtRisk) && st.nodes.as_ref().is_some_and(|n| n.total == 2)
            })
        })
        .await;
    let owners = s.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owners.len(), 1);
    assert_eq!((owners[0].kind.as_str(), owners[0].name.as_str()), ("SupportPolicy", c.name("p").as_str()));
    let f = finding(&s, "NodeImageOutdated", &format!("Node/{}", c.name("b"))).expect("the old image is reported");
    assert_eq!(f.deadline, Some(support_operator::time::parse_rfc3339(&format!("{}T00:00:00Z", day(50))).unwrap()));
    let policy = c.name("p");
    eventually(WAIT, "the verdict metric", || async {
        op.sample("support_verdict", &[("policy", &policy), ("verdict", "AtRisk")]).await == Some(1.0)
    })
    .await;

    c.delete_policy("p").await;
    eventually(WAIT, "the SupportStatus is garbage-collected", || async { c.status("p").await.is_none() }).await;
    eventually(WAIT, "every series of the policy is gone", || async {
        op.metrics().await.samples.iter().all(|s| s.labels.get("policy") != Some(policy.as_str()))
    })
    .await;
    c.cleanup(&[]).await;
}

/// A node turning NotReady updates counts and findings; when the last node stops, the
/// cluster is stopped.
pub async fn nodes_stop(c: &Cluster) {
    let since = now() - TimeDelta::days(30);
    c.create_node("a", &day(-1), true, since).await;
    c.create_node("b", &day(-1), true, since).await;
    c.apply_policy(&c.policy("p", json!({}))).await;
    c.wait_status("p", "Supported with 2 Ready nodes", |s| {
        s.status
            .as_ref()
            .is_some_and(|st| st.verdict == Some(Verdict::Supported) && st.nodes.as_ref().is_some_and(|n| n.ready == 2))
    })
    .await;

    c.set_ready("a", false, now() - TimeDelta::days(10)).await;
    let a = format!("Node/{}", c.name("a"));
    let s = c
        .wait_status("p", "one node not Ready for 10 days", |s| {
            s.status.as_ref().is_some_and(|st| st.nodes.as_ref().is_some_and(|n| n.not_ready == 1))
                && finding(s, "NodeNotReady", &a).is_some()
        })
        .await;
    assert_eq!(finding(&s, "NodeNotReady", &a).unwrap().severity, support_operator::crd::v1alpha1::Severity::Warning);
    assert_eq!(s.status.as_ref().unwrap().verdict, Some(Verdict::AtRisk));

    c.set_ready("b", false, now() - TimeDelta::days(1)).await;
    let s = c.wait_status("p", "ClusterStopped", |s| finding(s, "ClusterStopped", "Cluster/cluster").is_some()).await;
    let f = finding(&s, "ClusterStopped", "Cluster/cluster").unwrap();
    assert_eq!(f.deadline, Some(now() - TimeDelta::days(1) + TimeDelta::days(30)));
    c.cleanup(&["p"]).await;
}

/// With no object changing, the verdict flips at its deadline (the operator requeues at it)
/// and the flip is recorded as an Event.
pub async fn deadline_passes(c: &Cluster, op: &Operator) {
    let version = c.client.apiserver_version().await.expect("/version");
    let minor = format!("{}.{}", version.major, version.minor.trim_end_matches('+'));
    // The next minor has an end too, so the calendar is not stale (CalendarStale).
    let next = format!("{}.{}", version.major, version.minor.trim_end_matches('+').parse::<u32>().unwrap_or(0) + 1);
    let end = support_operator::time::parse_rfc3339(&format!("{}T00:00:00Z", day(10))).unwrap();
    c.create_node("a", &day(-1), true, now() - TimeDelta::days(1)).await;
    let policy = c.policy(
        "p",
        json!({"kubernetesVersion": {"releases": [
                {"minor": minor, "released": day(-300), "endOfSupport": end.format("%Y-%m-%d").to_string()},
                {"minor": next, "released": day(-30), "endOfSupport": day(400)}],
            "warnBeforeDays": 0, "maxKubeletSkewMinors": 10}}),
    );
    c.apply_policy(&policy).await;
    let s = c
        .wait_status("p", "Supported with the end of support as next deadline", |s| {
            s.status.as_ref().is_some_and(|st| {
                st.verdict == Some(Verdict::Supported) && st.next_deadline.as_ref().is_some_and(|d| d.at == end)
            })
        })
        .await;
    let upcoming = s.status.unwrap().upcoming;
    assert!(upcoming.iter().any(|t| t.at == end
        && t.rule == "KubernetesVersionEndOfSupport"
        && t.subject == "ControlPlane/kube-apiserver"));

    // Three seconds before the deadline: nothing changes now, the requeue flips it.
    op.clock.set(end - TimeDelta::seconds(3));
    let s = c.wait_verdict("p", Verdict::Unsupported, "Unsupported after the deadline passed").await;
    let flipped =
        s.status.unwrap().conditions.into_iter().find(|c| c.type_ == "Supported").unwrap().last_transition_time;
    assert!(support_operator::time::from_k8s(&flipped) >= end, "the verdict flipped at the deadline, not before");
    eventually(WAIT, "an Event records the flip", || async {
        c.events_about("p")
            .await
            .iter()
            .any(|e| e.reason.as_deref() == Some("VerdictUnsupported") && e.type_.as_deref() == Some("Warning"))
    })
    .await;
    op.clock.set(now());
    c.cleanup(&["p"]).await;
}

/// Heartbeats and unrelated label changes cause no status write; a real change causes one.
pub async fn heartbeats_do_not_write(c: &Cluster, op: &Operator, beats: usize) {
    let since = now() - TimeDelta::days(5);
    for n in ["a", "b", "c"] {
        c.create_node(n, &day(-3), true, since).await;
    }
    c.apply_policy(&c.policy("p", json!({}))).await;
    c.wait_status("p", "3 nodes", |s| {
        s.status.as_ref().is_some_and(|st| st.nodes.as_ref().is_some_and(|n| n.ready == 3))
    })
    .await;
    // Let the write of the first status settle: the count must then stay put.
    let writes = || async { op.sample("support_status_writes_total", &[]).await.unwrap_or(0.0) };
    let mut settled = writes().await;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let again = writes().await;
        if again == settled {
            break;
        }
        settled = again;
    }

    for i in 0..beats {
        let n = ["a", "b", "c"][i % 3];
        c.heartbeat(n, since, now() + TimeDelta::seconds(i as i64)).await;
    }
    c.label_node("a", "team", "payments").await;
    // A meaningful change after all of them: once it is reflected, every heartbeat was seen.
    c.set_ready("c", false, now() - TimeDelta::hours(1)).await;
    c.wait_status("p", "the NotReady node", |s| {
        s.status.as_ref().is_some_and(|st| st.nodes.as_ref().is_some_and(|n| n.not_ready == 1))
    })
    .await;
    let after = writes().await;
    assert_eq!(
        after - settled,
        1.0,
        "{beats} heartbeats and a label change caused {} status writes",
        after - settled - 1.0
    );
    c.cleanup(&["p"]).await;
}

/// An invalid policy next to a valid one: the invalid one is Unknown with the reason and is
/// not retried; the valid one is unaffected.
pub async fn invalid_policy_is_isolated(c: &Cluster) {
    c.create_node("a", &day(-1), true, now() - TimeDelta::days(2)).await;
    let mut bad = c.policy("bad", json!({}));
    bad.spec.node_image.as_mut().unwrap().date_pattern = Some(r"img-(?P<year>\d{4})".into());
    c.apply_policy(&bad).await;
    c.apply_policy(&c.policy("good", json!({}))).await;

    let s = c.wait_verdict("bad", Verdict::Unknown, "Unknown").await;
    let valid = s.status.as_ref().unwrap().conditions.iter().find(|c| c.type_ == "PolicyValid").unwrap();
    assert_eq!(valid.status, "False");
    assert!(valid.message.contains("spec.nodeImage.datePattern"), "{}", valid.message);
    c.wait_verdict("good", Verdict::Supported, "Supported").await;

    // A change in the cluster reaches the valid policy.
    c.set_ready("a", false, now() - TimeDelta::days(9)).await;
    c.wait_verdict("good", Verdict::AtRisk, "AtRisk").await;
    assert_eq!(c.verdict("bad").await, Some(Verdict::Unknown));
    c.cleanup(&["bad", "good"]).await;
}

/// `/metrics` parses as Prometheus text and agrees with the status.
pub async fn metrics_match_status(c: &Cluster, op: &Operator) {
    c.create_node("a", &day(-45), true, now() - TimeDelta::days(3)).await;
    c.create_node("b", &day(-5), false, now() - TimeDelta::days(8)).await;
    c.apply_policy(&c.policy("p", json!({}))).await;
    let s = c
        .wait_status("p", "2 nodes", |s| {
            s.status.as_ref().is_some_and(|st| st.nodes.as_ref().is_some_and(|n| n.total == 2))
        })
        .await;
    let st = s.status.unwrap();
    let policy = c.name("p");
    let verdict = st.verdict.unwrap();
    eventually(WAIT, "metrics of the policy", || async {
        op.sample("support_verdict", &[("policy", &policy), ("verdict", verdict.as_str())]).await == Some(1.0)
    })
    .await;
    let scrape = op.metrics().await;
    let of = |name: &'static str| -> Vec<&prometheus_parse::Sample> {
        scrape.samples.iter().filter(|s| s.metric == name && s.labels.get("policy") == Some(policy.as_str())).collect()
    };
    let value = |s: &prometheus_parse::Sample| match s.value {
        prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v)
        | prometheus_parse::Value::Counter(v) => v,
        _ => f64::NAN,
    };
    assert_eq!(of("support_verdict").into_iter().map(value).sum::<f64>(), 1.0, "exactly one verdict is 1");
    assert_eq!(of("support_findings").into_iter().map(value).sum::<f64>(), f64::from(st.findings_total));
    let images = of("support_node_image_release_timestamp_seconds");
    assert_eq!(images.len(), 2, "one image series per node");
    let a = images.iter().find(|s| s.labels.get("node") == Some(c.name("a").as_str())).unwrap();
    assert_eq!(
        value(a),
        support_operator::time::parse_rfc3339(&format!("{}T00:00:00Z", day(-45))).unwrap().timestamp() as f64
    );
    let not_ready = of("support_node_not_ready_since_timestamp_seconds");
    assert_eq!(not_ready.len(), 1);
    assert_eq!(value(not_ready[0]), (now() - TimeDelta::days(8)).timestamp() as f64);
    let next = st.next_deadline.unwrap();
    let deadline = of("support_next_deadline_timestamp_seconds")
        .into_iter()
        .find(|s| s.labels.get("rule") == Some(next.rule.as_str()))
        .expect("next deadline series");
    assert_eq!(value(deadline), next.at.timestamp() as f64);
    c.cleanup(&["p"]).await;
}

/// A node that has not changed since the operator started (it came with the first list) is
/// noticed when it is deleted: the status and the metrics drop it at once, not at the next resync.
pub async fn node_deleted_untouched_since_start(c: &Cluster) {
    let since = now() - TimeDelta::days(2);
    c.create_node("a", &day(-1), true, since).await;
    c.create_node("b", &day(-1), false, since).await;
    c.apply_policy(&c.policy("p", json!({}))).await;
    let op = c.start_operator().await;
    c.wait_status("p", "both nodes", |s| {
        s.status.as_ref().is_some_and(|st| st.nodes.as_ref().is_some_and(|n| n.total == 2 && n.not_ready == 1))
    })
    .await;
    let (policy, b) = (c.name("p"), c.name("b"));
    let series_of_b =
        || async { op.metrics().await.samples.iter().filter(|s| s.labels.get("node") == Some(b.as_str())).count() };
    // Its not-Ready series (a node that is not Ready is exported on its own; its image series
    // only with a finding at Warning or worse, or with --node-metrics=all).
    eventually(WAIT, "the series of node b", || async { series_of_b().await == 1 }).await;

    c.delete_node("b").await;
    c.wait_status("p", "node b gone", |s| {
        s.status.as_ref().is_some_and(|st| st.nodes.as_ref().is_some_and(|n| n.total == 1 && n.not_ready == 0))
    })
    .await;
    eventually(WAIT, "no series of node b", || async { series_of_b().await == 0 }).await;
    assert!(
        op.sample("support_verdict", &[("policy", &policy), ("verdict", "Supported")]).await == Some(1.0),
        "the verdict without the NotReady node"
    );
    op.stop().await;
    c.cleanup(&["p"]).await;
}

/// The first heartbeat of every node after the operator started (nodes from the first list)
/// causes no evaluation: the operator knows what it read in the list.
pub async fn first_heartbeats_after_start_evaluate_nothing(c: &Cluster) {
    let since = now() - TimeDelta::days(5);
    for n in ["a", "b", "c"] {
        c.create_node(n, &day(-3), true, since).await;
    }
    // The selector reads label `team` (and selects every node whatever it holds but `none`).
    let selector = json!({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["none"]}]});
    c.apply_policy(&c.policy("p", json!({"nodeSelector": selector}))).await;
    let op = c.start_operator().await;
    c.wait_status("p", "3 nodes", |s| {
        s.status.as_ref().is_some_and(|st| st.nodes.as_ref().is_some_and(|n| n.ready == 3))
    })
    .await;
    let settled = op.settled(|| op.evaluations()).await;
    for n in ["a", "b", "c"] {
        c.heartbeat(n, since, now() + TimeDelta::seconds(1)).await;
    }
    // A label no policy reads changes nothing the rules read.
    c.label_node("b", "unread", "x").await;
    // A change the rules read (the selector's label), after the heartbeats on the same watch,
    // that changes nothing in the status: once it is evaluated, every event before it has been
    // seen.
    c.label_node("a", "team", "payments").await;
    eventually(WAIT, "the label change evaluated", || async { op.evaluations().await > settled }).await;
    let after = op.settled(|| op.evaluations()).await;
    assert_eq!(
        after - settled,
        1.0,
        "3 heartbeats, an unread label and one change caused {} evaluations",
        after - settled
    );
    op.stop().await;
    c.cleanup(&["p"]).await;
}

/// A Lease a policy names: its deletion is noticed although it has not changed since the
/// operator started, and its renewal reaches the status.
pub async fn named_lease_is_followed(c: &Cluster) {
    let ns = "default";
    c.put_lease(ns, "hb", now() - TimeDelta::days(25)).await;
    c.create_node("a", &day(-1), true, now() - TimeDelta::days(1)).await;
    let heartbeat = json!([{"name": "agent", "lease": {"namespace": ns, "name": c.name("hb")},
                            "warnAfterDays": 20, "unsupportedAfterDays": 30}]);
    c.apply_policy(&c.policy("p", json!({"heartbeats": heartbeat}))).await;
    let op = c.start_operator().await;
    let stale = |s: &SupportStatus, needle: &str| {
        finding(s, "HeartbeatStale", "Heartbeat/agent").is_some_and(|f| f.message.contains(needle))
    };
    c.wait_status("p", "the heartbeat renewed 25 days ago", |s| stale(s, "was last renewed on")).await;

    c.delete_lease(ns, "hb").await;
    c.wait_status("p", "the deleted heartbeat Lease", |s| stale(s, "does not exist")).await;

    c.put_lease(ns, "hb", now() - TimeDelta::hours(1)).await;
    c.wait_status("p", "the heartbeat renewed an hour ago", |s| {
        s.status.is_some() && finding(s, "HeartbeatStale", "Heartbeat/agent").is_none()
    })
    .await;
    op.stop().await;
    c.delete_lease(ns, "hb").await;
    c.cleanup(&["p"]).await;
}

/// Events about verdict changes: a note over 1 KiB (bytes, not characters: messages hold `…`)
/// is cut to fit, so the API server accepts it.
pub async fn long_event_notes_fit_the_api_limit(c: &Cluster) {
    // Three nodes with long names and a non-ASCII image in an annotation: the finding's message
    // names them all, and its `…` and `ä` are several bytes each.
    let api: Api<Node> = Api::all(c.client.clone());
    let image = format!("{}-{}", "ä".repeat(70), day(-100));
    for i in 0..3 {
        // A DNS subdomain of 250 characters, in labels of at most 63.
        let mut name = c.name(&format!("n{i}"));
        while name.len() < 250 {
            let label = "l".repeat((249 - name.len()).min(62));
            name = format!("{name}.{label}");
        }
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {RUN_LABEL: c.run, "kubernetes.azure.com/agentpool": "pool1"},
                         "annotations": {"example.com/image": image}},
        }))
        .unwrap();
        api.create(&PostParams::default(), &node).await.expect("create node");
    }
    let policy = c.policy(
        "p",
        json!({"nodeImage": {"annotation": "example.com/image",
                             "datePattern": r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})$",
                             "warnAfterDays": 30, "unsupportedAfterDays": 90}}),
    );
    c.apply_policy(&policy).await;
    let op = c.start_operator().await;
    let s = c.wait_verdict("p", Verdict::Unsupported, "Unsupported").await;
    assert_eq!(s.status.unwrap().findings[0].rule, "NodeImageOutdated");
    eventually(WAIT, "the verdict Event", || async { !c.events_about("p").await.is_empty() }).await;
    let note = c.events_about("p").await[0].note.clone().unwrap_or_default();
    assert!(note.len() <= 1024, "{} bytes", note.len());
    assert!(note.ends_with('…'), "the note was cut: {note}");
    op.stop().await;
    c.cleanup(&["p"]).await;
}

/// A status someone else changed is put back, and putting it back is not a verdict change: no Event.
pub async fn tampered_status_is_restored_without_an_event(c: &Cluster) {
    c.create_node("a", &day(-40), true, now() - TimeDelta::days(3)).await;
    c.apply_policy(&c.policy("p", json!({}))).await;
    let op = c.start_operator().await;
    c.wait_verdict("p", Verdict::AtRisk, "AtRisk").await;
    eventually(WAIT, "the first verdict Event", || async { !c.events_about("p").await.is_empty() }).await;
    let events =
        || async { c.events_about("p").await.iter().map(|e| e.series.as_ref().map_or(1, |s| s.count)).sum::<i32>() };
    let before = events().await;
    let writes = op.settled(|| async { op.sample("support_status_writes_total", &[]).await.unwrap_or(0.0) }).await;

    let api: Api<SupportStatus> = Api::all(c.client.clone());
    api.patch_status(&c.name("p"), &PatchParams::default(), &Patch::Merge(json!({"status": {"verdict": "Supported"}})))
        .await
        .unwrap();
    c.wait_verdict("p", Verdict::AtRisk, "AtRisk again").await;
    let restored = op.settled(|| async { op.sample("support_status_writes_total", &[]).await.unwrap_or(0.0) }).await;
    assert_eq!(restored - writes, 1.0, "the status is written back once");
    assert_eq!(events().await, before, "putting the status back recorded a verdict Event");
    op.stop().await;
    c.cleanup(&["p"]).await;
}
