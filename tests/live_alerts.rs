//! The shipped alerts, proven by a real Prometheus server end to end: the operator runs in this
//! process against the API emulator loaded with the aks-neglected example; `prometheus` (Debian's
//! package, from `scripts/install-tools.sh`) scrapes it and evaluates config/prometheus's rules; the
//! alerts are read from Prometheus' own `/api/v1/alerts`. Then a node image is fixed in the cluster and
//! its alert resolves.
//!
//! Time: Prometheus' `time()` is the real clock, so the operator runs on the real clock too and the
//! example is moved in time to now: every timestamp shifts by (now − the example's instant), every node
//! image date by the same number of days. Alerts that read the embedded release calendar (end of
//! support, deadlines) depend on today's date and are left out of the comparison; all the others are
//! compared exactly, so the test passes the same way any day.
//!
//! The secure path, end to end: `/metrics` is HTTPS with a certificate the test issues from its own
//! CA (as cert-manager would, for the Service's DNS name) and mounts as `--metrics-cert-dir`;
//! Prometheus verifies it against that CA and sends a bearer token, which the operator checks with a
//! TokenReview and a SubjectAccessReview against the shipped `support-operator-metrics-reader`
//! ClusterRole (bound to that token's user in the emulator).
//!
//! Speed: scrape and evaluation every second, and each alert's `for:` cut to 2 s in the copy of the
//! rules Prometheus loads (the promtool tests in tests/prometheus pin the real `for:` durations).
//! Without the binary the test prints SKIPPED, unless `CI` is set, where it fails.

mod scenarios;
mod tools;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use regex::Regex;
use scenarios::{eventually, with_metrics_reader, Operator, OPERATOR_AGENT, SCRAPE_TOKEN};
use serde_json::{json, Value};
use support_operator::controller::clock::ShiftedClock;
use support_operator::crd::v1alpha1::SupportPolicy;
use support_operator::server::{MetricsSecurity, SecureMetrics};
use test_apiserver::ApiServer;

/// The instant the example describes (its golden files are evaluated there).
const EXAMPLE_NOW: &str = "2026-11-25T12:00:00Z";
const IMAGE_LABEL: &str = "kubernetes.azure.com/node-image-version";
/// The `cluster` label the scrape adds, as a fleet's Prometheus would.
const CLUSTER: &str = "aks-neglected";
/// Alerts whose truth depends on today's date against the embedded calendar.
const CALENDAR_ALERTS: &[&str] =
    &["SupportDeadlineApproaching", "SupportKubernetesVersionEndOfSupportSoon", "SupportKubernetesVersionEndOfSupport"];
/// Long enough for Prometheus to start, scrape, evaluate twice and hold `for:` on a loaded machine.
const ALERT_WAIT: Duration = Duration::from_secs(60);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------------------------
// The example, moved in time

/// A node image version with its release date moved by `days`: the AKS Linux form
/// `…-YYYYMM.DD.rev` and the Windows form `…-build.UBR.YYMMDD`.
fn shift_image(version: &str, days: i64) -> String {
    let linux = Regex::new(r"-(\d{4})(\d{2})\.(\d{2})\.(\d+)$").unwrap();
    let windows = Regex::new(r"\.(\d{2})(\d{2})(\d{2})$").unwrap();
    let moved = |y: i32, m: u32, d: u32| NaiveDate::from_ymd_opt(y, m, d).expect("a date") + TimeDelta::days(days);
    if let Some(c) = linux.captures(version) {
        let date = moved(c[1].parse().unwrap(), c[2].parse().unwrap(), c[3].parse().unwrap());
        return linux
            .replace(version, format!("-{}.{}.{}", date.format("%Y%m"), date.format("%d"), &c[4]))
            .into_owned();
    }
    if let Some(c) = windows.captures(version) {
        let date = moved(2000 + c[1].parse::<i32>().unwrap(), c[2].parse().unwrap(), c[3].parse().unwrap());
        return windows.replace(version, format!(".{}", date.format("%y%m%d"))).into_owned();
    }
    panic!("{version}: not an AKS node image version this test knows how to move");
}

/// Every RFC 3339 timestamp moved by `shift`, every node image date by `days`.
fn shift_object(v: &mut Value, shift: TimeDelta, days: i64) {
    match v {
        Value::String(s) => {
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                *s = (t.with_timezone(&Utc) + shift).format("%Y-%m-%dT%H:%M:%SZ").to_string();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| shift_object(i, shift, days)),
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                match val {
                    Value::String(s) if k == IMAGE_LABEL => *s = shift_image(s, days),
                    _ => shift_object(val, shift, days),
                }
            }
        }
        _ => {}
    }
}

#[test]
fn the_example_moves_in_time_consistently() {
    assert_eq!(
        shift_image("AKSUbuntu-2204gen2containerd-202609.20.0", 100),
        "AKSUbuntu-2204gen2containerd-202612.29.0"
    );
    assert_eq!(
        shift_image("AKSWindows-2022-containerd-20348.4052.260815", 400),
        "AKSWindows-2022-containerd-20348.4052.270919"
    );
    let mut node = json!({"metadata": {"creationTimestamp": "2026-11-12T07:41:00Z",
        "labels": {IMAGE_LABEL: "AKSUbuntu-2204gen2containerd-202611.10.0", "other": "2026-11-12T07:41:00Z"}}});
    shift_object(&mut node, TimeDelta::days(2) + TimeDelta::hours(1), 2);
    assert_eq!(node["metadata"]["creationTimestamp"], "2026-11-14T08:41:00Z");
    assert_eq!(node["metadata"]["labels"][IMAGE_LABEL], "AKSUbuntu-2204gen2containerd-202611.12.0");
}

// ---------------------------------------------------------------------------------------------------
// Prometheus

/// The name Prometheus verifies the operator's certificate for: the metrics Service's DNS name.
const SERVER_NAME: &str = "support-operator-metrics.support-operator-system.svc";

/// Issues a CA and a serving certificate for [`SERVER_NAME`] into `dir`: `ca.crt` for Prometheus,
/// `tls.crt` and `tls.key` for the operator (the layout of a cert-manager Secret).
fn issue_certificates(dir: &Path) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    };
    std::fs::create_dir_all(dir).unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name.push(rcgen::DnType::CommonName, "live-alerts test CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let mut leaf = CertificateParams::new(vec![SERVER_NAME.to_string()]).unwrap();
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &ca).unwrap();
    std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
    std::fs::write(dir.join("tls.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("tls.key"), key.serialize_pem()).unwrap();
}

/// A `prometheus` process, killed on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The shipped rule groups, each alert's `for:` cut to 2 s.
fn rules_for_a_fast_prometheus() -> Value {
    let path = root().join("config/prometheus/prometheus_rule.yaml");
    let rule: Value = support_operator::yaml::documents(&std::fs::read_to_string(&path).unwrap())
        .expect("the PrometheusRule")
        .remove(0);
    let mut spec = rule["spec"].clone();
    for group in spec["groups"].as_array_mut().expect("groups") {
        for r in group["rules"].as_array_mut().expect("rules") {
            if r.get("for").is_some() {
                r["for"] = json!("2s");
            }
        }
    }
    spec
}

impl Prometheus {
    /// Prometheus scraping the operator's HTTPS `/metrics` at `operator`, verifying its certificate
    /// against `ca` and sending `token`.
    async fn start(dir: &Path, operator: SocketAddr, ca: &Path, token: &str) -> Prometheus {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("token"), token).unwrap();
        std::fs::write(
            dir.join("rules.yaml"),
            support_operator::yaml::to_string(&rules_for_a_fast_prometheus()).unwrap(),
        )
        .unwrap();
        // job="support-operator" as the ServiceMonitor's jobLabel sets it; namespace and pod as the
        // Prometheus Operator adds them; cluster as a fleet's external label would.
        let config = json!({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": ["rules.yaml"],
            "scrape_configs": [{
                "job_name": "support-operator",
                "scheme": "https",
                "authorization": {"type": "Bearer", "credentials_file": dir.join("token")},
                "tls_config": {"ca_file": ca, "server_name": SERVER_NAME, "insecure_skip_verify": false},
                "static_configs": [{"targets": [operator.to_string()], "labels": {
                    "cluster": CLUSTER, "namespace": "support-operator-system", "pod": "support-operator-a"}}],
            }],
        });
        std::fs::write(dir.join("prometheus.yml"), support_operator::yaml::to_string(&config).unwrap()).unwrap();
        let log = dir.join("prometheus.log");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.join("prometheus.err")).unwrap())
            .spawn()
            .expect("prometheus starts");
        let prometheus = Prometheus { child, addr, log };
        let ready = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if matches!(http_get(addr, "/-/ready").await, Ok((200, _))) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        assert!(ready.is_ok(), "prometheus is not ready after 30 s:\n{}", prometheus.logs());
        prometheus
    }

    fn logs(&self) -> String {
        let err = self.log.with_file_name("prometheus.err");
        format!(
            "{}{}",
            std::fs::read_to_string(&self.log).unwrap_or_default(),
            std::fs::read_to_string(err).unwrap_or_default()
        )
    }

    /// The firing alerts: their labels, with the value in `$value`.
    async fn firing(&self) -> BTreeSet<BTreeMap<String, String>> {
        let (code, body) = http_get(self.addr, "/api/v1/alerts").await.expect("GET /api/v1/alerts");
        assert_eq!(code, 200, "{body}");
        let answer: Value = serde_json::from_str(&body).expect("JSON");
        answer["data"]["alerts"]
            .as_array()
            .expect("data.alerts")
            .iter()
            .filter(|a| a["state"] == "firing")
            .map(|a| {
                let mut labels: BTreeMap<String, String> = serde_json::from_value(a["labels"].clone()).unwrap();
                labels.insert(
                    "$value".into(),
                    a["value"].as_str().unwrap_or_default().parse::<f64>().unwrap().to_string(),
                );
                labels
            })
            .collect()
    }

    /// The firing alerts that do not depend on the calendar.
    async fn firing_off_calendar(&self) -> BTreeSet<BTreeMap<String, String>> {
        self.firing().await.into_iter().filter(|a| !CALENDAR_ALERTS.contains(&a["alertname"].as_str())).collect()
    }
}

/// A plain HTTP/1.0 GET: (status, body).
async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).await?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await?;
    let code = buf.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((code, buf.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()))
}

fn alert(name: &str, severity: &str, value: f64, labels: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut a: BTreeMap<String, String> = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    a.insert("alertname".into(), name.into());
    a.insert("severity".into(), severity.into());
    a.insert("cluster".into(), CLUSTER.into());
    a.insert("policy".into(), "aks".into());
    a.insert("$value".into(), value.to_string());
    a
}

// ---------------------------------------------------------------------------------------------------
// The test

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_alerts_fire_and_resolve_in_a_real_prometheus() {
    if !tools::have_tools("shipped_alerts_fire_and_resolve_in_a_real_prometheus", &["prometheus"]) {
        return;
    }
    // The example at this instant: now, on the real clock.
    let now = Utc::now();
    let example_now = support_operator::time::parse_rfc3339(EXAMPLE_NOW).unwrap();
    let shift = now - example_now;
    let days = (now.date_naive() - example_now.date_naive()).num_days();

    let server = with_metrics_reader(ApiServer::builder().git_version("v1.34.2")).start().await;
    let snapshot: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("examples/snapshots/aks-neglected.json")).unwrap())
            .unwrap();
    for item in snapshot["items"].as_array().expect("a List") {
        let mut item = item.clone();
        shift_object(&mut item, shift, days);
        server.apply_object(item);
    }
    let text = std::fs::read_to_string(root().join("examples/policies/aks.yaml")).unwrap();
    let policy: SupportPolicy =
        serde_json::from_value(support_operator::yaml::documents(&text).unwrap().remove(0)).expect("the aks policy");
    let policies: Api<SupportPolicy> = Api::all(server.client());
    policies.create(&PostParams::default(), &policy).await.expect("create the aks policy");

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("live-alerts");
    let certs = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("live-alerts-certs");
    issue_certificates(&certs);
    let operator_client = kube::Client::try_from(scenarios::operator_config(server.config())).unwrap();
    let op = Operator::start_with(
        operator_client,
        ShiftedClock::default(),
        Some(("support-operator-a", "support-operator-system")),
        |s| {
            s.metrics_security =
                MetricsSecurity::Secure(SecureMetrics { cert_dir: Some(certs.clone()), ..Default::default() })
        },
    )
    .await;
    let started = std::time::Instant::now();
    let prometheus = Prometheus::start(&dir, op.addr, &certs.join("ca.crt"), SCRAPE_TOKEN).await;

    // The example's problems, as Prometheus sees them: the Unsupported verdict; node images 30 days
    // old or more in pools user (4 nodes) and win (2), 90 days or more in win; one node of user not
    // Ready for 24 days. Not the operator's health: it is up, scraped and leads.
    let pool = |p: &'static str| [("pool", p)];
    let expected: BTreeSet<_> = [
        alert("SupportPolicyUnsupported", "critical", 1.0, &[]),
        alert("SupportNodeImageOutdated", "warning", 4.0, &pool("user")),
        alert("SupportNodeImageOutdated", "warning", 2.0, &pool("win")),
        alert("SupportNodeImageUnsupported", "critical", 2.0, &pool("win")),
        alert("SupportNodeNotReady", "warning", 1.0, &pool("user")),
    ]
    .into();
    let mut last = BTreeSet::new();
    let fired = tokio::time::timeout(ALERT_WAIT, async {
        loop {
            last = prometheus.firing_off_calendar().await;
            if last == expected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(
        fired.is_ok(),
        "firing after {ALERT_WAIT:?}:\n{last:#?}\nexpected:\n{expected:#?}\nprometheus:\n{}",
        prometheus.logs()
    );

    // The Windows pool gets a node image released two days ago: its two image alerts resolve, the
    // others stay.
    let nodes: Api<Node> = Api::all(server.client());
    let fresh = format!("AKSWindows-2022-containerd-20348.4171.{}", (now - TimeDelta::days(2)).format("%y%m%d"));
    for name in ["akswin000000", "akswin000001"] {
        let patch = json!({"metadata": {"labels": {IMAGE_LABEL: fresh}}});
        nodes.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch the node image");
    }
    let remaining: BTreeSet<_> =
        expected.iter().filter(|a| a.get("pool").map(String::as_str) != Some("win")).cloned().collect();
    eventually(ALERT_WAIT, "the win pool's image alerts resolve in Prometheus", || {
        let prometheus = &prometheus;
        let remaining = &remaining;
        async move {
            let firing = prometheus.firing_off_calendar().await;
            // The verdict may stay Unsupported for calendar reasons (kubelet 1.33): compare the rest.
            firing.into_iter().filter(|a| a["alertname"] != "SupportPolicyUnsupported").collect::<BTreeSet<_>>()
                == remaining.iter().filter(|a| a["alertname"] != "SupportPolicyUnsupported").cloned().collect()
        }
    })
    .await;
    // Prometheus scraped every second all along; the operator asked the API server about its token
    // once per cache lifetime (a minute for the TokenReview, five for the SubjectAccessReview).
    let minutes = started.elapsed().as_secs() as usize / 60;
    let reviews = |resource: &'static str| {
        server.count(move |r| r.resource == resource && r.user_agent.as_deref() == Some(OPERATOR_AGENT))
    };
    assert!(reviews("tokenreviews") >= 1 && reviews("tokenreviews") <= 1 + minutes, "{}", reviews("tokenreviews"));
    assert!(reviews("subjectaccessreviews") >= 1 && reviews("subjectaccessreviews") <= 1 + minutes / 5);
    drop(prometheus);
    op.stop().await;
}
