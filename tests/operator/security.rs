//! The secure `/metrics` endpoint against the emulator's TokenReview and SubjectAccessReview: who
//! gets in, what is cached, what a failing API server answers, and the certificate.

use super::*;
use scenarios::https;
use support_operator::server::{AuthCache, MetricsSecurity, SecureMetrics};
use test_apiserver::UserInfo;

const STRANGER_TOKEN: &str = "app-token";

async fn secure_emulator(scenario: &str) -> (ApiServer, Cluster) {
    let builder =
        ApiServer::builder().git_version("v1.35.3").token(STRANGER_TOKEN, UserInfo::service_account("default", "app"));
    let server = with_metrics_reader(builder).start().await;
    let cluster = Cluster::new(server.config(), scenario);
    (server, cluster)
}

async fn secure_operator(c: &Cluster, secure: SecureMetrics) -> Operator {
    Operator::start_with(c.operator.clone(), ShiftedClock::at(now()), None, |s| {
        s.metrics_security = MetricsSecurity::Secure(secure)
    })
    .await
}

/// Review calls the operator made.
fn reviews(server: &ApiServer) -> (usize, usize) {
    let by_operator = |resource: &'static str| {
        server.count(move |r| {
            r.user_agent.as_deref() == Some(OPERATOR_AGENT) && r.resource == resource && r.verb == "create"
        })
    };
    (by_operator("tokenreviews"), by_operator("subjectaccessreviews"))
}

/// No token → 401, a token the API server does not know → 401, a token without the right → 403,
/// the token of the shipped metrics-reader role → 200 with the metrics; every answer is cached
/// (one TokenReview per token, one SubjectAccessReview per user), and the health endpoints stay
/// plain HTTP on their own port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_a_token_the_api_server_authenticates_and_allows() {
    let (server, c) = secure_emulator("secure").await;
    let op = secure_operator(&c, SecureMetrics::default()).await;
    let get = |token: Option<&'static str>| https::get(op.addr, "/metrics", token);

    for _ in 0..5 {
        let none = get(None).await;
        assert_eq!(none.code, 401, "{}", none.body);
        assert!(!none.body.contains("support_"), "nothing leaks without a token");
        assert_eq!(get(Some("guessed")).await.code, 401);
        let stranger = get(Some(STRANGER_TOKEN)).await;
        assert_eq!(stranger.code, 403);
        assert!(stranger.body.contains("system:serviceaccount:default:app"), "{}", stranger.body);
        let ok = get(Some(SCRAPE_TOKEN)).await;
        assert_eq!(ok.code, 200, "{}", ok.body);
        assert!(ok.body.contains("support_leader"), "{}", ok.body);
    }
    // 20 refused or allowed scrapes: one TokenReview per token, one SubjectAccessReview per user.
    assert_eq!(reviews(&server), (3, 2), "the reviews are cached");
    let sar = server.requests().into_iter().find(|r| r.resource == "subjectaccessreviews").unwrap();
    let body: Value = serde_json::from_str(&sar.body).unwrap();
    assert_eq!(body["spec"]["nonResourceAttributes"], json!({"path": "/metrics", "verb": "get"}));

    // The metrics port speaks only TLS; the health port only plain HTTP, with no token.
    assert_eq!(op.get("/healthz").await.0, 200);
    eventually(WAIT, "ready", || async { op.get("/readyz").await.0 == 200 }).await;
    let plain = plain_get(op.addr, "/metrics").await;
    assert!(!plain.starts_with("HTTP/1.1 200") && !plain.contains("support_leader"), "{plain}");
    op.stop().await;
}

async fn plain_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes()).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// Cached answers expire: once their time is up, the next scrape asks again. A review the API
/// server fails to answer is a 500 and is not cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_answers_expire_and_failures_are_not_cached() {
    let (server, c) = secure_emulator("secure-ttl").await;
    let short = Duration::from_millis(300);
    let cache = AuthCache { token_ttl: short, allowed_ttl: short, denied_ttl: short, capacity: 16 };
    let op = secure_operator(&c, SecureMetrics { cache, ..Default::default() }).await;
    assert_eq!(https::get(op.addr, "/metrics", Some(SCRAPE_TOKEN)).await.code, 200);
    assert_eq!(reviews(&server), (1, 1));
    eventually(WAIT, "both reviews asked again after they expired", || async {
        assert_eq!(https::get(op.addr, "/metrics", Some(SCRAPE_TOKEN)).await.code, 200);
        reviews(&server) >= (2, 2)
    })
    .await;

    let is_review = |r: &RequestRecord| r.resource == "tokenreviews";
    server.fail_next(1, Fault::InternalError, is_review);
    let failed = https::get(op.addr, "/metrics", Some(STRANGER_TOKEN)).await;
    assert_eq!(failed.code, 500, "{}", failed.body);
    assert_eq!(https::get(op.addr, "/metrics", Some(STRANGER_TOKEN)).await.code, 403, "the failure was not cached");
    op.stop().await;
}

fn write_pair(dir: &std::path::Path, name: &str) -> Vec<u8> {
    let pair = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    std::fs::write(dir.join("tls.crt"), pair.cert.pem()).unwrap();
    std::fs::write(dir.join("tls.key"), pair.signing_key.serialize_pem()).unwrap();
    pair.cert.der().to_vec()
}

/// Without a certificate directory, a certificate is generated at start; with one, its files
/// are served, and a rotation of the files is served without a restart. Unreadable files stop
/// the operator at start, naming them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_certificate_is_generated_or_mounted_and_reloaded() {
    let (_server, c) = secure_emulator("secure-cert").await;
    let generated = secure_operator(&c, SecureMetrics::default()).await;
    let first = https::get(generated.addr, "/metrics", None).await.certificate;
    assert!(!first.is_empty());
    assert_eq!(https::get(generated.addr, "/metrics", None).await.certificate, first, "one certificate per start");
    generated.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let mounted = write_pair(dir.path(), "support-operator-metrics.support-operator-system.svc");
    let secure = SecureMetrics {
        cert_dir: Some(dir.path().to_path_buf()),
        reload_interval: Duration::from_millis(100),
        ..Default::default()
    };
    let op = secure_operator(&c, secure).await.with_token(SCRAPE_TOKEN);
    assert_eq!(https::get(op.addr, "/metrics", None).await.certificate, mounted);
    let rotated = write_pair(dir.path(), "support-operator-metrics.support-operator-system.svc");
    eventually(WAIT, "the rotated certificate is served", || async {
        https::get(op.addr, "/metrics", None).await.certificate == rotated
    })
    .await;
    assert_eq!(op.get("/metrics").await.0, 200, "scrapes go on across the rotation");
    op.stop().await;

    let empty = tempfile::tempdir().unwrap();
    let missing = SecureMetrics { cert_dir: Some(empty.path().to_path_buf()), ..Default::default() };
    let settings = support_operator::controller::Settings {
        metrics_security: MetricsSecurity::Secure(missing),
        ..scenarios::test_settings(None)
    };
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let clock = std::sync::Arc::new(ShiftedClock::at(now()));
    let run = support_operator::controller::run(c.operator.clone(), settings, clock, stop_rx);
    let err = tokio::time::timeout(WAIT, run).await.expect("stops at once").unwrap_err().to_string();
    assert!(err.contains("metrics server") && err.contains("tls.crt"), "{err}");
}
