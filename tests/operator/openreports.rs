//! `--openreports` against the emulator with the upstream ClusterReport CRD (vendored in
//! tests/openreports): nothing while the CRD is absent, a report per policy once it appears, the
//! status's findings as results, writes only on change (not on heartbeats, not after a restart),
//! deleted with the policy, paused while the CRD is gone.

use super::*;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, PostParams};
use kube::CustomResourceExt;
use support_operator::crd::v1alpha1::{Severity, SupportStatus};
use support_operator::k8s::openreports::{ClusterReport, Outcome};
use test_apiserver::ResourceDef;

/// The upstream ClusterReport CRD, as vendored.
pub(crate) fn cluster_report_crd() -> CustomResourceDefinition {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openreports/openreports.io_clusterreports.yaml");
    let doc = support_operator::yaml::documents(&std::fs::read_to_string(path).unwrap()).unwrap().remove(0);
    serde_json::from_value(doc).expect("the vendored ClusterReport CRD")
}

/// `builder` serving ClusterReports as the upstream CRD defines them.
pub(crate) fn with_cluster_reports(mut builder: test_apiserver::ApiServerBuilder) -> test_apiserver::ApiServerBuilder {
    for def in ResourceDef::from_crd(&cluster_report_crd()) {
        builder = builder.resource(def);
    }
    builder
}

fn report_requests(r: &RequestRecord) -> bool {
    r.resource == "clusterreports" && r.user_agent.as_deref() == Some(OPERATOR_AGENT)
}

/// The results of a report as (rule, subject kind/name, outcome), in order.
fn results(r: &ClusterReport) -> Vec<(String, String, Outcome)> {
    r.results
        .iter()
        .map(|x| {
            let s = &x.subjects[0];
            let subject = format!("{}/{}", s.kind.clone().unwrap_or_default(), s.name.clone().unwrap_or_default());
            (x.rule.clone().unwrap_or_default(), subject, x.result.unwrap())
        })
        .collect()
}

/// What the report must hold for this status.
fn expected(s: &SupportStatus) -> Vec<(String, String, Outcome)> {
    let outcome = |sev| match sev {
        Severity::Unsupported => Outcome::Fail,
        Severity::Warning => Outcome::Warn,
        Severity::Info => Outcome::Pass,
    };
    s.status
        .as_ref()
        .unwrap()
        .findings
        .iter()
        .map(|f| (f.rule.clone(), f.subject.clone(), outcome(f.severity)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_reports_follow_the_status_only_on_change_and_go_with_the_policy() {
    let builder = ApiServer::builder().custom_resources_from_crds().git_version("v1.35.3");
    let server = with_cluster_reports(builder).start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(server.client());
    for crd in [SupportPolicy::crd(), SupportStatus::crd()] {
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    let c = Cluster::new(server.config(), "openreports");
    let start = || {
        Operator::start_with(c.operator.clone(), ShiftedClock::at(now()), None, |s| {
            s.openreports = true;
            s.discovery_interval = Duration::from_millis(200);
        })
    };
    let op = start().await;
    let since = now() - TimeDelta::days(3);
    c.create_node("a", &day(-40), true, since).await;
    c.create_node("b", &day(-2), true, since).await;
    c.apply_policy(&c.policy("p", json!({}))).await;
    c.wait_verdict("p", Verdict::AtRisk, "the 40-day-old image").await;
    eventually(WAIT, "ready", || async { op.get("/readyz").await.0 == 200 }).await;
    assert_eq!(server.count(report_requests), 0, "no ClusterReport CRD: nothing asked");

    // The CRD appears: the next discovery finds it and the report is written.
    crds.create(&PostParams::default(), &cluster_report_crd()).await.unwrap();
    let reports: Api<ClusterReport> = Api::all(c.client.clone());
    let name = c.name("p");
    let report = || async { reports.get_opt(&name).await.ok().flatten() };
    eventually(WAIT, "the ClusterReport", || async { report().await.is_some() }).await;
    let status = c.status("p").await.unwrap();
    let first = report().await.unwrap();
    assert_eq!(results(&first), expected(&status));
    assert_eq!(results(&first)[0], ("NodeImageOutdated".into(), format!("Node/{}", c.name("a")), Outcome::Warn));
    assert_eq!((first.summary.warn, first.summary.fail, first.summary.pass), (1, 0, 0));
    let owner = &first.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("SupportPolicy", name.as_str()));
    assert!(first.results.iter().all(|r| r.source == "support-operator" && r.policy == name));
    let managers: Vec<_> = first.metadata.managed_fields.iter().flatten().filter_map(|m| m.manager.clone()).collect();
    assert_eq!(managers, ["support-operator"], "server-side apply with the operator's field manager");

    // An hour later, heartbeats change nothing; a node turning NotReady adds a result, written once,
    // dated now; the other result keeps its date.
    let writes = || server.count(|r| report_requests(r) && r.method == "PATCH");
    let evaluated = op.settled(|| op.evaluations()).await;
    let later = now() + TimeDelta::hours(1);
    op.clock.set(later);
    eventually(WAIT, "an evaluation an hour later", || async { op.evaluations().await > evaluated }).await;
    let settled = {
        let mut last = writes();
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if writes() == last {
                break last;
            }
            last = writes();
        }
    };
    for i in 0..60 {
        c.heartbeat(["a", "b"][i % 2], since, now() + TimeDelta::seconds(i as i64)).await;
    }
    c.set_ready("b", false, now() - TimeDelta::hours(1)).await;
    eventually(WAIT, "the NotReady node in the report", || async {
        report().await.is_some_and(|r| r.results.iter().any(|x| x.rule.as_deref() == Some("NodeNotReady")))
    })
    .await;
    assert_eq!(writes() - settled, 1, "an hour, 60 heartbeats and one change: one write");
    let second = report().await.unwrap();
    assert_eq!(results(&second), expected(&c.status("p").await.unwrap()));
    assert_eq!(second.results[0].timestamp, first.results[0].timestamp, "an unchanged result keeps its date");
    let new = second.results.iter().find(|x| x.rule.as_deref() == Some("NodeNotReady")).unwrap();
    assert_eq!(new.timestamp.seconds, later.timestamp(), "a new result is dated when found");
    assert_eq!(second.summary.pass, 1);
    op.clock.set(now());

    // A restart reads the report once and writes nothing.
    op.stop().await;
    let before = server.requests().len();
    let op = start().await;
    let policy = name.clone();
    eventually(WAIT, "the policy evaluated again", || async {
        op.sample("support_verdict", &[("policy", &policy), ("verdict", "AtRisk")]).await == Some(1.0)
    })
    .await;
    eventually(WAIT, "the report read", || async { server.requests()[before..].iter().any(report_requests) }).await;
    let after: Vec<String> = server.requests()[before..]
        .iter()
        .filter(|r| report_requests(r))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(after, [format!("GET /apis/openreports.io/v1alpha1/clusterreports/{name}")]);

    // The CRD goes: the reports with it, and the operator pauses; it comes back: written again.
    crds.delete("clusterreports.openreports.io", &DeleteParams::default()).await.unwrap();
    c.set_ready("b", true, now()).await;
    c.wait_status("p", "b Ready again", |s| {
        s.status.as_ref().is_some_and(|st| st.nodes.as_ref().unwrap().not_ready == 0)
    })
    .await;
    crds.create(&PostParams::default(), &cluster_report_crd()).await.unwrap();
    eventually(WAIT, "the report written again", || async {
        report().await.is_some_and(|r| !r.results.iter().any(|x| x.rule.as_deref() == Some("NodeNotReady")))
    })
    .await;

    // Owned by the policy: deleted with it.
    c.delete_policy("p").await;
    eventually(WAIT, "the report garbage-collected", || async { report().await.is_none() }).await;
    assert_eq!(op.sample("support_reconcile_errors_total", &[("category", "api")]).await, Some(0.0));
    op.stop().await;
    c.cleanup(&[]).await;
}

/// Without `--openreports` nothing is asked about ClusterReports, even with the CRD installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_flag_no_report_is_written() {
    let server = with_cluster_reports(ApiServer::builder().git_version("v1.35.3")).start().await;
    let c = Cluster::new(server.config(), "no-openreports");
    let op = c.start_operator().await;
    c.create_node("a", &day(-40), true, now() - TimeDelta::days(3)).await;
    c.apply_policy(&c.policy("p", json!({}))).await;
    c.wait_verdict("p", Verdict::AtRisk, "AtRisk").await;
    assert_eq!(server.count(report_requests), 0);
    op.stop().await;
}

/// A ClusterReport of the policy's name that another producer wrote is left alone; a report of
/// this operator deleted by someone is put back within the resync interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_reports_are_left_alone_and_deleted_ones_put_back() {
    let server = with_cluster_reports(ApiServer::builder().git_version("v1.35.3")).start().await;
    let c = Cluster::new(server.config(), "foreign-report");
    let reports: Api<ClusterReport> = Api::all(c.client.clone());
    let foreign: ClusterReport = serde_json::from_value(json!({
        "metadata": {"name": c.name("theirs"), "labels": {"app.kubernetes.io/managed-by": "kyverno"}},
        "source": "kyverno", "summary": {"pass": 3},
    }))
    .unwrap();
    server.put(&foreign);
    let op = Operator::start_with(c.operator.clone(), ShiftedClock::at(now()), None, |s| {
        s.openreports = true;
        s.resync = Duration::from_secs(1);
    })
    .await;
    c.create_node("a", &day(-40), true, now() - TimeDelta::days(3)).await;
    c.apply_policy(&c.policy("theirs", json!({}))).await;
    c.apply_policy(&c.policy("ours", json!({}))).await;
    c.wait_verdict("theirs", Verdict::AtRisk, "AtRisk").await;
    let ours = c.name("ours");
    eventually(WAIT, "our report", || async { reports.get_opt(&ours).await.unwrap().is_some() }).await;
    let theirs = reports.get(&c.name("theirs")).await.unwrap();
    assert_eq!((theirs.source.as_str(), theirs.summary.pass), ("kyverno", 3), "left as it was");
    assert!(theirs.results.is_empty());
    let patched = |name: String| {
        server
            .count(move |r| r.resource == "clusterreports" && r.method == "PATCH" && r.name.as_deref() == Some(&*name))
    };
    assert_eq!(patched(c.name("theirs")), 0);

    reports.delete(&ours, &kube::api::DeleteParams::default()).await.unwrap();
    eventually(WAIT, "our report put back", || async { reports.get_opt(&ours).await.unwrap().is_some() }).await;
    assert_eq!(patched(c.name("theirs")), 0, "still left alone after resyncs");
    op.stop().await;
}
