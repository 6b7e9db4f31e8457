//! The operator's scenarios, written against a `kube::Client` only, so that the same code runs
//! against the in-process API emulator (`tests/operator.rs`) and against a real cluster from
//! KUBECONFIG (`tests/e2e.rs`, `make e2e`). Scenarios that need fault injection take the
//! emulator and are skipped on a real cluster.
//!
//! Every scenario names its objects after a run id and selects only its own nodes (label
//! `support-e2e/run`), so it never sees or touches anything else in the cluster. Each waits on
//! conditions with a timeout; none sleeps for a fixed time to let something happen.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{json, Value};
use support_operator::controller::clock::ShiftedClock;
use support_operator::controller::{self, RunError, Settings};
use support_operator::crd::v1alpha1::{SupportPolicy, SupportStatus, Verdict};
use support_operator::k8s::leader::LeaderConfig;
use tokio::sync::watch;
use tokio::task::JoinHandle;

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

/// Polls `cond` until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A running operator, in this process.
pub struct Operator {
    pub clock: ShiftedClock,
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    handle: Option<JoinHandle<Result<(), RunError>>>,
}

impl Operator {
    /// Starts an operator; `leader` gives (identity, namespace) to elect a leader.
    pub async fn start(client: Client, clock: ShiftedClock, leader: Option<(&str, &str)>) -> Operator {
        // `TEST_LOG=debug cargo test …` shows the operator's logs.
        if let Ok(filter) = std::env::var("TEST_LOG") {
            support_operator::telemetry::init(support_operator::cli::LogFormat::Plain, &filter);
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let settings = Settings {
            metrics_addr: "127.0.0.1:0".parse().unwrap(),
            leader: leader.map(|(identity, ns)| LeaderConfig {
                namespace: ns.into(),
                name: "support-operator-test-leader".into(),
                identity: identity.into(),
                duration: Duration::from_secs(3),
            }),
            resync: Duration::from_secs(3600),
            discovery_interval: Duration::from_secs(600),
            identity: leader.map(|(i, _)| i.to_string()).unwrap_or_else(|| "test".into()),
            report_addr: Some(tx),
        };
        let (stop, stop_rx) = watch::channel(false);
        let handle = tokio::spawn(controller::run(client, settings, Arc::new(clock.clone()), stop_rx));
        let addr = tokio::time::timeout(WAIT, rx.recv()).await.expect("the operator serves metrics").expect("address");
        Operator { clock, addr, stop, handle: Some(handle) }
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

    /// GET a path of the operator's HTTP server: (status code, body).
    pub async fn get(&self, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(self.addr).await.expect("connect");
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

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Everything a scenario works with.
pub struct Cluster {
    pub client: Client,
    /// A short id unique to this scenario run.
    pub run: String,
}

impl Cluster {
    pub fn new(client: Client, scenario: &str) -> Self {
        let run = format!("{scenario}-{}", std::process::id() % 100_000);
        Cluster { client, run }
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
    let end = support_operator::time::parse_rfc3339(&format!("{}T00:00:00Z", day(10))).unwrap();
    c.create_node("a", &day(-1), true, now() - TimeDelta::days(1)).await;
    let policy = c.policy(
        "p",
        json!({"kubernetesVersion": {"releases": [{"minor": minor, "released": day(-300), "endOfSupport": end.format("%Y-%m-%d").to_string()}],
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
    let s = c
        .wait_status("p", "Unsupported after the deadline passed", |s| {
            s.status.as_ref().is_some_and(|st| st.verdict == Some(Verdict::Unsupported))
        })
        .await;
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

    let s = c
        .wait_status("bad", "Unknown", |s| s.status.as_ref().is_some_and(|st| st.verdict == Some(Verdict::Unknown)))
        .await;
    let valid = s.status.as_ref().unwrap().conditions.iter().find(|c| c.type_ == "PolicyValid").unwrap();
    assert_eq!(valid.status, "False");
    assert!(valid.message.contains("spec.nodeImage.datePattern"), "{}", valid.message);
    c.wait_status("good", "Supported", |s| s.status.as_ref().is_some_and(|st| st.verdict == Some(Verdict::Supported)))
        .await;

    // A change in the cluster reaches the valid policy.
    c.set_ready("a", false, now() - TimeDelta::days(9)).await;
    c.wait_status("good", "AtRisk", |s| s.status.as_ref().is_some_and(|st| st.verdict == Some(Verdict::AtRisk))).await;
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
