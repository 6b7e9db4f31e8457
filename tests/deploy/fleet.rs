//! A fleet in one Prometheus: every series carries the `cluster` label that federation, Thanos or
//! Mimir adds. The alerts keep it through every aggregation, and the dashboard filters and groups by it.

use super::*;

/// Two clusters of the replay, with identical series.
const FLEET: [&str; 2] = ["eu-1", "us-1"];
/// Alerts that are about the whole fleet, not one cluster (see the rule's comment).
const FLEET_WIDE_ALERTS: &[&str] = &["SupportOperatorAbsent"];

/// `name{a="b"}` → `name{cluster="eu-1", a="b"}`.
fn with_cluster(series: &str, cluster: &str) -> String {
    match series.split_once('{') {
        Some((name, rest)) if rest.trim_start().starts_with('}') => format!("{name}{{cluster=\"{cluster}\"{rest}"),
        Some((name, rest)) => format!("{name}{{cluster=\"{cluster}\", {rest}"),
        None => format!("{series}{{cluster=\"{cluster}\"}}"),
    }
}

/// A promtool test file replayed over [`FLEET`]: every input series once per cluster, every expected
/// alert once per cluster with its `cluster` label (fleet-wide alerts unchanged, quiet cases quiet).
fn as_fleet(doc: &Value, file: &str) -> Value {
    let mut doc = doc.clone();
    for test in doc["tests"].as_array_mut().unwrap_or_else(|| panic!("{file}: tests")) {
        assert!(test.get("promql_expr_test").is_none(), "{file}: the fleet replay handles alert tests only");
        let series = test["input_series"].as_array_mut().unwrap_or_else(|| panic!("{file}: input_series"));
        *series = series
            .iter()
            .flat_map(|s| {
                FLEET.iter().map(move |c| {
                    let mut s = s.clone();
                    s["series"] = Value::String(with_cluster(s["series"].as_str().expect("series"), c));
                    s
                })
            })
            .collect();
        for case in test["alert_rule_test"].as_array_mut().into_iter().flatten() {
            if FLEET_WIDE_ALERTS.contains(&case["alertname"].as_str().unwrap()) {
                continue;
            }
            if let Some(expected) = case["exp_alerts"].as_array_mut() {
                *expected = expected
                    .iter()
                    .flat_map(|a| {
                        FLEET.iter().map(move |c| {
                            let mut a = a.clone();
                            a["exp_labels"]["cluster"] = Value::String((*c).into());
                            a
                        })
                    })
                    .collect();
            }
        }
    }
    doc
}

#[test]
fn the_series_rewrite_adds_the_cluster_label() {
    assert_eq!(with_cluster(r#"up{job="x"}"#, "eu-1"), r#"up{cluster="eu-1", job="x"}"#);
    assert_eq!(with_cluster("support_leader", "eu-1"), r#"support_leader{cluster="eu-1"}"#);
    assert_eq!(with_cluster("support_leader{}", "eu-1"), r#"support_leader{cluster="eu-1"}"#);
}

/// Every promtool case of tests/prometheus, replayed with two clusters whose series are identical:
/// each alert fires once per cluster, labelled with it, with the same value and text as for one
/// cluster; quiet cases stay quiet. An aggregation that drops `cluster` gives one unlabelled alert
/// (or a doubled count, or a sum of two leaders) and fails here.
#[test]
fn every_alert_case_holds_per_cluster_in_a_fleet() {
    if !have_tools("every_alert_case_holds_per_cluster_in_a_fleet", &["kubectl", "promtool"]) {
        return;
    }
    let dir = promtool_dir("deploy-prometheus-fleet");
    let mut replayed = Vec::new();
    for file in promtool_test_files() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&file).unwrap();
        if text.contains("cluster=") {
            continue; // already a fleet (fleet.yml)
        }
        let doc = &yaml_documents(&text, &name)[0];
        let fleet_name = format!("fleet-{name}");
        std::fs::write(dir.join(&fleet_name), support_operator::yaml::to_string(&as_fleet(doc, &name)).unwrap())
            .unwrap();
        replayed.push(fleet_name);
    }
    assert!(replayed.len() >= 3, "the single-cluster test files were replayed: {replayed:?}");
    let out = run(Command::new("promtool").args(["test", "rules"]).args(&replayed).current_dir(&dir))
        .unwrap_or_else(|e| panic!("{e}\n(files in {})", dir.display()));
    eprintln!("{out}");
}

/// The `by (…)` and `on (…)` label lists of an expression.
fn grouping_lists(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for keyword in ["by", "on", "without", "ignoring"] {
        let mut from = 0;
        while let Some(pos) = expr[from..].find(keyword).map(|p| p + from) {
            from = pos + keyword.len();
            let word_start = pos == 0 || !expr.as_bytes()[pos - 1].is_ascii_alphanumeric();
            let rest = expr[from..].trim_start();
            if let (true, Some(list)) = (word_start, rest.strip_prefix('(')) {
                let list = list.split(')').next().unwrap_or_default();
                out.push(format!("{keyword} ({list})"));
            }
        }
    }
    out
}

#[test]
fn every_grouping_in_rules_and_dashboard_keeps_cluster() {
    let mut exprs = alert_exprs();
    let mut queries = Vec::new();
    collect_exprs(&dashboard(), &mut queries);
    exprs.extend(queries.into_iter().map(|q| ("dashboard".to_owned(), q)));
    let mut groupings = 0;
    for (origin, expr) in &exprs {
        for list in grouping_lists(expr) {
            groupings += 1;
            assert!(!list.starts_with("without") && !list.starts_with("ignoring"), "{origin}: {list} in {expr}");
            let labels: Vec<&str> = list.split(['(', ')', ',']).skip(1).map(str::trim).collect();
            assert!(labels.contains(&"cluster"), "{origin}: `{list}` drops the cluster label: {expr}");
        }
        // An aggregation without a label list (`sum(x)`) merges the clusters too; only `count(...)`
        // of the fleet overview and `absent`/`vector` may.
        for agg in ["sum(", "max(", "min(", "avg(", "count(", "group("] {
            let bare = expr.match_indices(agg).any(|(i, _)| i == 0 || !expr.as_bytes()[i - 1].is_ascii_alphanumeric());
            let allowed = agg == "count(" && origin == "dashboard" && expr.ends_with("or vector(0)");
            assert!(!bare || allowed, "{origin}: `{agg}…)` without `by (cluster, …)`: {expr}");
        }
    }
    assert!(groupings > 30, "the scanner found the groupings ({groupings})");
    assert_eq!(grouping_lists("max by (a, b) (x) unless on(c) y"), ["by (a, b)", "on (c)"]);
}

fn template<'a>(dash: &'a Value, name: &str) -> &'a Value {
    dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("dashboard variable {name}"))
}

fn panel<'a>(dash: &'a Value, title: &str) -> &'a Value {
    dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["title"] == title)
        .unwrap_or_else(|| panic!("dashboard panel {title:?}"))
}

#[test]
fn dashboard_has_a_cluster_variable_and_filters_every_query_by_it() {
    let dash = dashboard();
    let cluster = template(&dash, "cluster");
    assert_eq!(cluster["definition"], "label_values(support_verdict, cluster)");
    // "All" matches every cluster, and series without the label (one cluster per Prometheus).
    assert_eq!(cluster["includeAll"], true);
    assert_eq!(cluster["allValue"], ".*");
    assert_eq!(cluster["multi"], true);
    assert_eq!(
        template(&dash, "policy")["definition"],
        r#"label_values(support_verdict{cluster=~"$cluster"}, policy)"#
    );
    let names: Vec<&str> =
        dash["templating"]["list"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["datasource", "cluster", "policy"], "cluster is chosen before policy");

    let mut queries = Vec::new();
    collect_exprs(&dash, &mut queries);
    for q in &queries {
        for metric in support_metrics(q).into_iter().chain(q.contains("up{").then(|| "up".to_owned())) {
            let selectors = q.match_indices(&format!("{metric}{{")).count();
            let filtered = q.match_indices(&format!("{metric}{{cluster=~\"$cluster\"")).count()
                + q.match_indices(r#"up{job="support-operator", cluster=~"$cluster""#).count();
            assert!(selectors > 0 && filtered == selectors, "{metric} is not filtered by $cluster in: {q}");
        }
    }
}

/// The fleet overview, evaluated by promtool on two clusters: eu-1 Unsupported, us-1 with one
/// Supported and one AtRisk policy.
#[test]
fn fleet_overview_answers_per_cluster() {
    if !have_tools("fleet_overview_answers_per_cluster", &["kubectl", "promtool"]) {
        return;
    }
    let dash = dashboard();
    let rows: Vec<&str> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "row")
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(rows.first(), Some(&"Fleet"), "the fleet overview comes first");
    let query = |title: &str, ref_id: &str| -> String {
        let p = panel(&dash, title);
        let t = p["targets"].as_array().unwrap().iter().find(|t| t["refId"] == ref_id).unwrap();
        t["expr"].as_str().unwrap().replace("$cluster", ".*").replace("$policy", ".*")
    };
    let by_verdict = |legend: &str| -> String {
        let p = panel(&dash, "Clusters by verdict");
        let t = p["targets"].as_array().unwrap().iter().find(|t| t["legendFormat"] == legend).unwrap();
        t["expr"].as_str().unwrap().replace("$cluster", ".*").replace("$policy", ".*")
    };
    let day = 86_400;
    let series = |labels: &str, value: i64| json!({"series": format!("{labels}"), "values": format!("{value}+0x10")});
    let verdicts = |cluster: &str, policy: &str, verdict: &str| -> Vec<Value> {
        VERDICTS
            .iter()
            .map(|v| {
                series(
                    &format!(r#"support_verdict{{cluster="{cluster}", policy="{policy}", verdict="{v}"}}"#),
                    i64::from(*v == verdict),
                )
            })
            .collect()
    };
    let mut input = Vec::new();
    input.extend(verdicts("eu-1", "prod", "Unsupported"));
    input.extend(verdicts("us-1", "prod", "Supported"));
    input.extend(verdicts("us-1", "edge", "AtRisk"));
    input.push(series(
        r#"support_next_deadline_timestamp_seconds{cluster="eu-1", policy="prod", rule="NodeImageOutdated"}"#,
        3 * day,
    ));
    input.push(series(
        r#"support_next_deadline_timestamp_seconds{cluster="us-1", policy="edge", rule="NodeImageOutdated"}"#,
        10 * day,
    ));
    let eos = "support_kubernetes_version_end_of_support_timestamp_seconds";
    input.push(series(
        &format!(r#"{eos}{{cluster="eu-1", policy="prod", component="control-plane", minor="1.34"}}"#),
        5 * day,
    ));
    input.push(series(&format!(r#"{eos}{{cluster="eu-1", policy="prod", component="kubelet", minor="1.33"}}"#), 0));
    input.push(series(
        &format!(r#"{eos}{{cluster="us-1", policy="prod", component="control-plane", minor="1.35"}}"#),
        100 * day,
    ));

    let sample = |labels: &str, value: f64| json!({"labels": labels, "value": value});
    let expect = |expr: String, samples: Vec<Value>| json!({"expr": expr, "eval_time": "0m", "exp_samples": samples});
    let tests = vec![
        expect(
            query("Verdict per cluster", "A"),
            vec![
                sample(r#"{cluster="eu-1", policy="prod"}"#, 3.0),
                sample(r#"{cluster="us-1", policy="edge"}"#, 2.0),
                sample(r#"{cluster="us-1", policy="prod"}"#, 0.0),
            ],
        ),
        // The worst policy of each cluster counts: us-1 is AtRisk.
        expect(by_verdict("Unsupported"), vec![sample("{}", 1.0)]),
        expect(by_verdict("AtRisk"), vec![sample("{}", 1.0)]),
        expect(by_verdict("Unknown"), vec![sample("{}", 0.0)]),
        expect(by_verdict("Supported"), vec![sample("{}", 0.0)]),
        expect(
            query("Deadlines ahead across the fleet", "B"),
            vec![
                sample(r#"{cluster="eu-1", policy="prod", rule="NodeImageOutdated"}"#, 3.0),
                sample(r#"{cluster="us-1", policy="edge", rule="NodeImageOutdated"}"#, 10.0),
            ],
        ),
        expect(
            query("Control-plane end of support across the fleet", "B"),
            vec![
                sample(r#"{cluster="eu-1", policy="prod", minor="1.34"}"#, 5.0),
                sample(r#"{cluster="us-1", policy="prod", minor="1.35"}"#, 100.0),
            ],
        ),
    ];
    let file = json!({
        "rule_files": ["prometheus-rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": input, "promql_expr_test": tests}],
    });
    let dir = promtool_dir("deploy-fleet-dashboard");
    std::fs::write(dir.join("fleet-dashboard.yml"), support_operator::yaml::to_string(&file).unwrap()).unwrap();
    run(Command::new("promtool").args(["test", "rules", "fleet-dashboard.yml"]).current_dir(&dir))
        .unwrap_or_else(|e| panic!("{e}\n(files in {})", dir.display()));
}
