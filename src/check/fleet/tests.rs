use chrono::{DateTime, Utc};
use kube::config::{Kubeconfig, NamedContext};

use super::render::{entries, first_plan_step, printable, summary, table};
use super::*;
use crate::crd::v1alpha1::{ControlPlaneStatus, NodeCounts, SupportReport, SupportStatusSpec, Transition};

fn now() -> DateTime<Utc> {
    crate::time::parse_rfc3339("2026-11-25T12:00:00Z").unwrap()
}

fn config(names: &[String]) -> Kubeconfig {
    Kubeconfig {
        contexts: names
            .iter()
            .map(|n| NamedContext { name: n.clone(), context: None, other: Default::default() })
            .collect(),
        ..Default::default()
    }
}

fn opts(contexts: &[&str], all: bool) -> FleetOptions {
    FleetOptions {
        contexts: contexts.iter().map(|c| c.to_string()).collect(),
        all_contexts: all,
        policy: "aks".into(),
        now: None,
        output: Output::Table,
        fail_on: None,
        color: Color::Never,
        concurrency: 8,
        cluster_timeout: Duration::from_secs(60),
    }
}

#[test]
fn contexts_keep_the_order_given_once_each() {
    let kc = config(&["a".into(), "b".into(), "c".into()]);
    assert_eq!(contexts(&kc, &opts(&["c", "a", "c"], false)).unwrap(), ["c", "a"]);
    assert_eq!(contexts(&kc, &opts(&[], true)).unwrap(), ["a", "b", "c"], "the kubeconfig's order");
    let err = contexts(&kc, &opts(&["a", "x\u{1b}[2J"], false)).unwrap_err();
    assert_eq!(err.to_string(), "--context x\\u{1b}[2J: no such context in the kubeconfig (it has: a, b, c)");
    assert!(matches!(contexts(&config(&[]), &opts(&[], true)), Err(FleetError::NoContexts)));
}

#[test]
fn contexts_are_bounded_at_max_contexts() {
    let names: Vec<String> = (0..=MAX_CONTEXTS).map(|i| format!("c{i}")).collect();
    let at_bound = config(&names[..MAX_CONTEXTS]);
    assert_eq!(contexts(&at_bound, &opts(&[], true)).unwrap().len(), MAX_CONTEXTS);
    let over = config(&names);
    let err = contexts(&over, &opts(&[], true)).unwrap_err();
    assert_eq!(err.to_string(), "1001 contexts, more than 1000 at once");
    // The list of known contexts in an error is cut.
    let err = contexts(&over, &opts(&["nope"], false)).unwrap_err().to_string();
    assert!(err.ends_with(", c19, … 981 more)"), "{err}");
}

#[test]
fn the_policy_argument_says_where_policies_come_from() {
    assert!(matches!(policy_source(IN_CLUSTER), Ok(PolicySource::InCluster)));
    assert!(matches!(policy_source("eks"), Ok(PolicySource::Given(p)) if p.metadata.name.as_deref() == Some("eks")));
    assert!(matches!(policy_source("prod-policy"), Ok(PolicySource::Named(n)) if n == "prod-policy"));
    let err = policy_source("missing/policy.yaml").unwrap_err();
    assert_eq!(err.to_string(), "missing/policy.yaml: cannot read: no such file");
}

fn evaluated(context: &str, verdict: Verdict, deadline: Option<&str>) -> Row {
    let report = SupportReport {
        verdict: Some(verdict),
        control_plane: Some(ControlPlaneStatus { version: Some("v1.34.2".into()), ..Default::default() }),
        nodes: Some(NodeCounts { total: 9, ..Default::default() }),
        findings_total: 7,
        next_deadline: deadline.map(|d| Transition {
            at: crate::time::parse_rfc3339(d).unwrap(),
            rule: "KubeletVersionEndOfSupport".into(),
            subject: "NodePool/system".into(),
            severity: crate::crd::v1alpha1::Severity::Unsupported,
        }),
        ..Default::default()
    };
    let mut status = SupportStatus::new("aks", SupportStatusSpec { policy: "aks".into() });
    status.status = Some(report);
    Row { context: context.into(), policy: Some("aks".into()), status: Some(status), error: None }
}

#[test]
fn the_table_aligns_figures_and_puts_errors_after_the_verdict() {
    let rows = vec![
        evaluated("prod-westeurope-1", Verdict::Unsupported, Some("2026-11-30T00:00:00Z")),
        Row::failed("lab\u{1b}]0;pwned\u{7}", None, "cannot read the cluster: a\nb".into()),
        evaluated("dev", Verdict::Supported, None),
    ];
    let text = table(&rows, now(), false);
    let want = "\
CONTEXT                 POLICY  VERDICT      VERSION  NODES  FINDINGS  NEXT DEADLINE           FIRST PLAN STEP
prod-westeurope-1       aks     Unsupported  v1.34.2  9      7         2026-11-30 (in 4 days)  -
lab\\u{1b}]0;pwned\\u{7}  -       Unknown      error: cannot read the cluster: a\\nb
dev                     aks     Supported    v1.34.2  9      7         -                       -
";
    assert_eq!(text, want);
    assert!(!text.contains('\u{1b}'), "no escape from a context name or an error reaches the terminal");
    // Coloured, the verdicts only are painted and the columns do not move.
    let coloured = table(&rows, now(), true);
    let plain: String = anstream::adapter::strip_str(&coloured).to_string();
    assert_eq!(plain, want);
    assert_eq!(coloured.matches("\u{1b}[0m").count(), 3, "{coloured}");
}

#[test]
fn the_summary_counts_clusters_by_their_worst_policy() {
    let mut second = evaluated("prod", Verdict::AtRisk, Some("2026-12-01T00:00:00Z"));
    second.policy = Some("other".into());
    let rows = vec![
        evaluated("prod", Verdict::Supported, Some("2026-12-20T00:00:00Z")),
        second,
        evaluated("dev", Verdict::Supported, None),
        Row::failed("lab", None, "no SupportPolicy in this cluster".into()),
    ];
    assert_eq!(
        summary(&rows, now()),
        "3 clusters: 1 Supported, 1 AtRisk, 1 Unknown (each by its worst policy; 1 not evaluated). Next deadline \
         2026-12-01 (in 5 days) in prod, policy other."
    );
    assert_eq!(
        summary(&[evaluated("dev", Verdict::Supported, None)], now()),
        "1 cluster: 1 Supported (each by its worst policy). No deadline ahead."
    );
}

#[test]
fn json_entries_carry_the_context_and_the_status() {
    let rows = vec![evaluated("prod", Verdict::AtRisk, None), Row::failed("lab", Some("p".into()), "down".into())];
    let v = serde_json::to_value(entries(&rows)).unwrap();
    assert_eq!(v[0]["context"], "prod");
    assert_eq!(v[0]["verdict"], "AtRisk");
    assert_eq!(v[0]["supportStatus"]["kind"], "SupportStatus");
    assert_eq!(v[0]["supportStatus"]["status"]["verdict"], "AtRisk");
    assert!(v[0].get("error").is_none());
    assert_eq!(v[1], serde_json::json!({"context": "lab", "policy": "p", "verdict": "Unknown", "error": "down"}));
}

#[test]
fn without_a_plan_in_the_report_the_plan_column_is_a_dash() {
    assert_eq!(first_plan_step(&SupportReport::default(), now()), None);
    let text = table(&[evaluated("prod", Verdict::Supported, None)], now(), false);
    assert!(text.lines().nth(1).unwrap().ends_with("  -"), "{text}");
}

#[test]
fn the_plan_column_shows_the_first_step_and_its_date() {
    use crate::crd::v1alpha1::{PlanAction, PlanReason, PlanStep};
    let step = |by: &str| PlanStep {
        action: PlanAction::UpgradeControlPlane,
        subject: "ControlPlane/kube-apiserver".into(),
        from: Some("1.34".into()),
        to: Some("1.35".into()),
        by: Some(crate::time::parse_rfc3339(by).unwrap()),
        prevents: PlanReason {
            rule: "KubernetesVersionEndOfSupport".into(),
            subject: "ControlPlane/kube-apiserver".into(),
            at: None,
        },
        redeploy: false,
        message: "m".into(),
    };
    let report = |by: &str| SupportReport { plan: vec![step(by), step("2027-01-01T00:00:00Z")], ..Default::default() };
    assert_eq!(
        first_plan_step(&report("2026-11-30T00:00:00Z"), now()).as_deref(),
        Some("UpgradeControlPlane ControlPlane/kube-apiserver 1.34→1.35 by 2026-11-30")
    );
    assert_eq!(
        first_plan_step(&report("2026-11-20T00:00:00Z"), now()).as_deref(),
        Some("UpgradeControlPlane ControlPlane/kube-apiserver 1.34→1.35 overdue")
    );
}

#[test]
fn printable_escapes_control_characters_only() {
    assert_eq!(printable("prod-1 ✓"), "prod-1 ✓");
    assert_eq!(printable("a\u{1b}[31mb\r\n"), "a\\u{1b}[31mb\\r\\n");
}
