use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::calendar::preset;
use crate::crd::v1alpha1::KubernetesVersionSpec;

fn fixture(product: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/endoflife/{product}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn import(v: &Value, platform: Platform) -> Result<Imported, ImportError> {
    import_endoflife(&serde_json::to_vec(v).unwrap(), platform)
}

/// A minimal product of the API with the given releases.
fn product(name: &str, releases: Value) -> Value {
    json!({"schema_version": "1.1.0", "last_modified": "2026-08-22T05:51:09+00:00",
           "result": {"name": name, "releases": releases}})
}

fn field_of(e: ImportError) -> (String, String) {
    match e {
        ImportError::Field { field, reason } => (field, reason),
        other => panic!("expected a field error, got {other:?}"),
    }
}

const PLATFORMS: [(Platform, &str); 4] = [
    (Platform::Aks, "azure-kubernetes-service"),
    (Platform::Eks, "amazon-eks"),
    (Platform::Gke, "google-kubernetes-engine"),
    (Platform::Upstream, "kubernetes"),
];

#[test]
fn each_product_maps_eol_to_end_of_support_and_eoes_to_lts() {
    let eks = import_endoflife(&fixture("amazon-eks"), Platform::Eks).unwrap();
    assert_eq!(eks.product, "amazon-eks");
    assert_eq!(eks.releases.len(), 19);
    assert_eq!(eks.left_out, 0);
    let find = |i: &Imported, m: &str| i.releases.iter().find(|r| r.minor == m).cloned().unwrap();
    let r = find(&eks, "1.34");
    assert_eq!(r.released.to_string(), "2025-10-06");
    assert_eq!(r.end_of_support.unwrap().to_string(), "2026-12-02");
    assert_eq!(r.lts_end_of_support.unwrap().to_string(), "2027-12-02");
    assert_eq!(find(&eks, "1.20").lts_end_of_support, None, "isEoes null: not eligible to extended support");
    // Oldest first, whatever the order of the API (newest first).
    assert_eq!(eks.releases.first().unwrap().minor, "1.18");
    assert_eq!(eks.releases.last().unwrap().minor, "1.36");

    let aks = import_endoflife(&fixture("azure-kubernetes-service"), Platform::Aks).unwrap();
    assert_eq!(find(&aks, "1.31").lts_end_of_support.unwrap().to_string(), "2026-11-30");
    assert_eq!(find(&aks, "1.26").lts_end_of_support, None);
    let upstream = import_endoflife(&fixture("kubernetes"), Platform::Upstream).unwrap();
    assert!(upstream.releases.iter().all(|r| r.lts_end_of_support.is_none()), "no extended support upstream");
    assert_eq!(find(&upstream, "1.31").end_of_support.unwrap().to_string(), "2025-11-11", "eolFrom, not eoasFrom");
    let gke = import_endoflife(&fixture("google-kubernetes-engine"), Platform::Gke).unwrap();
    assert_eq!(find(&gke, "1.33").end_of_support.unwrap().to_string(), "2026-08-03", "eolFrom, not eoasFrom");
    assert_eq!(gke.last_modified.unwrap().to_rfc3339(), "2026-08-22T05:51:09+00:00");
}

/// The fixtures hold the dates of the embedded calendars: importing them gives back each
/// preset's entries, so the importer reads the source the way the presets were written.
#[test]
fn importing_the_source_of_a_preset_gives_its_calendar_back() {
    for (platform, product) in PLATFORMS {
        let imported = import_endoflife(&fixture(product), platform).unwrap();
        for r in preset(platform).unwrap().releases.iter().filter(|r| !r.planned) {
            let got = imported.releases.iter().find(|i| i.minor == r.minor.to_string());
            let got = got.unwrap_or_else(|| panic!("{product}: {} missing", r.minor));
            assert_eq!(got.released, r.released, "{product} {}", r.minor);
            assert_eq!(got.end_of_support, r.end_of_support, "{product} {}", r.minor);
            assert_eq!(got.lts_end_of_support, r.lts_end_of_support, "{product} {}", r.minor);
        }
    }
}

#[test]
fn a_product_of_another_platform_is_refused() {
    let (field, reason) = field_of(import_endoflife(&fixture("amazon-eks"), Platform::Aks).unwrap_err());
    assert_eq!(field, "result.name");
    assert_eq!(reason, "'amazon-eks' is not the endoflife.date product of AKS (azure-kubernetes-service)");
    let (field, reason) = field_of(import_endoflife(&fixture("kubernetes"), Platform::AksArc).unwrap_err());
    assert_eq!(field, "--platform");
    assert!(reason.contains("no calendar for AKSArc"), "{reason}");
}

#[test]
fn every_error_names_its_field_and_reason() {
    let release = |extra: Value| {
        let mut r = json!({"name": "1.31", "releaseDate": "2024-09-26", "eolFrom": "2025-11-26"});
        r.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        r
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            product("kubernetes", json!([release(json!({"eolFrom": "soon"}))])),
            "result.releases[0].eolFrom",
            "input contains invalid characters",
        ),
        (
            product("kubernetes", json!([release(json!({"eolFrom": true}))])),
            "result.releases[0].eolFrom",
            "invalid type: boolean `true`",
        ),
        (
            product("kubernetes", json!([release(json!({"name": "1.31.4"}))])),
            "result.releases[0].name",
            "'1.31.4' is not a Kubernetes minor",
        ),
        (
            product("kubernetes", json!([release(json!({"eolFrom": "2024-09-26"}))])),
            "result.releases[0].eolFrom",
            "2024-09-26 is not after releaseDate (2024-09-26)",
        ),
        (
            product("kubernetes", json!([release(json!({"eoesFrom": "2025-01-01"}))])),
            "result.releases[0].eoesFrom",
            "2025-01-01 is before eolFrom (2025-11-26)",
        ),
        (
            product("kubernetes", json!([release(json!({})), release(json!({}))])),
            "result.releases[1].name",
            "1.31 is listed twice (also result.releases[0])",
        ),
        (product("kubernetes", json!([{"name": "1.31"}])), "result.releases[0]", "missing field `releaseDate`"),
        (product("kubernetes", json!([])), "result.releases", "lists no release cycle"),
        (product("kubernetes", json!({})), "result.releases", "invalid type: map"),
        (
            json!({"schema_version": "2.0.0", "result": {"name": "kubernetes", "releases": []}}),
            "schema_version",
            "'2.0.0' is not an endoflife.date API v1 schema",
        ),
        (
            json!({"schema_version": "1.0.0", "last_modified": "yesterday", "result": {}}),
            "last_modified",
            "input contains invalid characters",
        ),
        (json!({"result": {"name": "kubernetes", "releases": []}}), ".", "missing field `schema_version`"),
    ];
    for (input, want_field, want_reason) in cases {
        let err = import(&input, Platform::Upstream).unwrap_err();
        let text = err.to_string();
        match err {
            ImportError::Field { field, reason } => {
                assert_eq!(field, want_field, "{input}");
                assert!(reason.starts_with(want_reason), "{input}: {reason}");
            }
            ImportError::Syntax(reason) if want_field == "." => assert!(reason.starts_with(want_reason), "{reason}"),
            other => panic!("{input}: {other:?}"),
        }
        assert!(!text.contains('\n'), "one line: {text}");
    }
}

#[test]
fn syntax_errors_and_hostile_nesting_are_refused_at_once() {
    assert!(matches!(import_endoflife(b"{\"schema_version\": ", Platform::Eks), Err(ImportError::Syntax(_))));
    assert!(matches!(import_endoflife(b"{} {}", Platform::Eks), Err(ImportError::Syntax(_))));
    // Nesting is refused where a value is read, and read past without recursion elsewhere.
    let deep = "[".repeat(100_000);
    assert!(import_endoflife(deep.as_bytes(), Platform::Eks).is_err());
    let mut v = product("amazon-eks", json!([{"name": "1.31", "releaseDate": "2024-09-26"}]));
    v["unknown"] = json!("HOLE");
    let text = serde_json::to_string(&v).unwrap();
    let text = text.replace("\"HOLE\"", &format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)));
    assert_eq!(import_endoflife(text.as_bytes(), Platform::Eks).unwrap().releases.len(), 1);
}

#[test]
fn input_size_is_bounded_at_max_input_bytes() {
    let mut at_bound =
        serde_json::to_vec(&product("kubernetes", json!([{"name": "1.31", "releaseDate": "2024-08-13"}]))).unwrap();
    at_bound.resize(MAX_INPUT_BYTES, b' ');
    assert_eq!(import_endoflife(&at_bound, Platform::Upstream).unwrap().releases.len(), 1);
    at_bound.push(b' ');
    assert_eq!(
        import_endoflife(&at_bound, Platform::Upstream).unwrap_err(),
        ImportError::TooLarge { max: MAX_INPUT_BYTES }
    );
}

#[test]
fn release_count_is_bounded_and_the_newest_are_kept() {
    let cycles = |n: usize| -> Value {
        (0..n).map(|m| json!({"name": format!("1.{m}"), "releaseDate": "2020-01-01"})).collect::<Vec<_>>().into()
    };
    let imported = import(&product("kubernetes", cycles(MAX_INPUT_RELEASES)), Platform::Upstream).unwrap();
    assert_eq!(imported.releases.len(), MAX_RELEASES);
    assert_eq!(imported.left_out, MAX_INPUT_RELEASES - MAX_RELEASES);
    assert_eq!(imported.releases.first().unwrap().minor, format!("1.{}", MAX_INPUT_RELEASES - MAX_RELEASES));
    assert_eq!(imported.releases.last().unwrap().minor, format!("1.{}", MAX_INPUT_RELEASES - 1));
    assert!(render(&imported, Platform::Upstream, None).contains("# 900 older release cycles left out"));
    let (field, reason) =
        field_of(import(&product("kubernetes", cycles(MAX_INPUT_RELEASES + 1)), Platform::Upstream).unwrap_err());
    assert_eq!((field.as_str(), reason.as_str()), ("result.releases", "1001 release cycles, more than 1000"));
}

/// What `render` prints reads back as the `kubernetesVersion` section of a policy, with the
/// same releases.
fn reads_back(text: &str, policy: Option<(&str, Platform)>) -> Vec<ReleaseSpec> {
    let doc: Value = serde_saphyr::from_str(text).unwrap();
    let section = match policy {
        Some((name, platform)) => {
            assert_eq!(doc["kind"], "SupportPolicy");
            assert_eq!(doc["metadata"]["name"], name);
            assert_eq!(doc["spec"]["platform"], platform.as_str());
            doc["spec"]["kubernetesVersion"].clone()
        }
        None => doc["kubernetesVersion"].clone(),
    };
    serde_json::from_value::<KubernetesVersionSpec>(section).unwrap().releases
}

#[test]
fn the_block_reads_back_as_a_policy_section() {
    for (platform, product) in PLATFORMS {
        let imported = import_endoflife(&fixture(product), platform).unwrap();
        let text = render(&imported, platform, None);
        assert_eq!(reads_back(&text, None), imported.releases, "{text}");
        assert_eq!(reads_back(&render(&imported, platform, Some("edge")), Some(("edge", platform))), imported.releases);
    }
    let eks = import_endoflife(&fixture("amazon-eks"), Platform::Eks).unwrap();
    let text = render(&eks, Platform::Eks, None);
    assert!(text.contains(
        "\n    - {minor: \"1.34\", released: \"2025-10-06\", endOfSupport: \"2026-12-02\", ltsEndOfSupport: \"2027-12-02\"}\n"
    ));
    assert!(text.starts_with("# kubernetesVersion.releases for a SupportPolicy with platform EKS, from endoflife.date product amazon-eks (last modified 2026-08-22T05:51:09+00:00).\n"), "{text}");
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}".prop_map(Value::String),
        "1\\.[0-9]{1,2}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let key = prop_oneof![
            Just("schema_version".to_string()),
            Just("last_modified".to_string()),
            Just("result".to_string()),
            Just("name".to_string()),
            Just("releases".to_string()),
            Just("releaseDate".to_string()),
            Just("eolFrom".to_string()),
            Just("eoesFrom".to_string()),
            "[a-z]{1,6}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A product whose releases have random, often wrong, fields.
fn release_like() -> impl Strategy<Value = Value> {
    let date =
        prop_oneof!["20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])".prop_map(Value::String), Just(Value::Null)];
    let name = prop_oneof!["1\\.[0-9]{1,2}".prop_map(Value::String), "\\PC{0,8}".prop_map(Value::String)];
    (name, date.clone(), date.clone(), date).prop_map(|(name, released, eol, eoes)| {
        json!({"name": name, "releaseDate": released, "eolFrom": eol, "eoesFrom": eoes, "isLts": false})
    })
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_json(v in json_value(), platform in prop::sample::select(Platform::ALL.to_vec())) {
        let _ = import(&v, platform);
        let wrapped = json!({"schema_version": "1.0.0", "result": {"name": "kubernetes", "releases": [v]}});
        let _ = import(&wrapped, Platform::Upstream);
    }

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = import_endoflife(&bytes, Platform::Eks);
    }

    /// Whatever is accepted is a calendar a policy accepts: sorted, unique minors, ends after
    /// the release, within the CRD's bound, and what is printed reads back the same.
    #[test]
    fn whatever_is_accepted_is_a_valid_policy_calendar(releases in prop::collection::vec(release_like(), 1..30)) {
        if let Ok(imported) = import(&product("amazon-eks", Value::Array(releases)), Platform::Eks) {
            prop_assert!(imported.releases.len() <= MAX_RELEASES);
            let minors: Vec<Minor> = imported.releases.iter().map(|r| r.minor.parse().unwrap()).collect();
            prop_assert!(minors.windows(2).all(|w| w[0] < w[1]));
            for r in &imported.releases {
                prop_assert!(r.end_of_support.is_none_or(|e| e > r.released));
                prop_assert!(r.lts_end_of_support.is_none_or(|e| e > r.released));
            }
            let spec = crate::crd::v1alpha1::SupportPolicySpec {
                platform: Platform::Eks,
                kubernetes_version: Some(KubernetesVersionSpec { releases: imported.releases.clone(), ..Default::default() }),
                ..Default::default()
            };
            prop_assert!(crate::policy::Policy::resolve(&spec).is_ok());
            prop_assert_eq!(reads_back(&render(&imported, Platform::Eks, None), None), imported.releases);
        }
    }
}
