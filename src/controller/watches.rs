//! Watches that survive a struggling API server: exponential backoff that really grows, errors
//! counted by kind and logged once per change, and their state reported for `/readyz`.
//!
//! kube-runtime's `default_backoff()` resets its backoff on every successful event, and a failing
//! relist emits `Init` before each failed list, so under a persistent error each watch relisted
//! about once a second forever. Here the delay grows from 0.8 s to 30 s and resets only once the
//! watch has gone [`HEALTHY_AFTER`] without an error.

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::runtime::reflector;
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;
use rand::Rng;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::health::Health;
use crate::metrics::Metrics;

/// The first delay after an error.
const INITIAL: Duration = Duration::from_millis(800);
/// The longest delay.
const MAX: Duration = Duration::from_secs(30);
/// A watch without an error for this long starts over from the first delay (and a new error
/// is logged again, whatever its kind).
pub(super) const HEALTHY_AFTER: Duration = Duration::from_secs(120);

/// The backoff of one watch.
#[derive(Debug, Default)]
pub(super) struct Backoff {
    failures: u32,
    last_error: Option<Instant>,
}

impl Backoff {
    /// The delay before retrying after an error at `now`, scaled by `jitter` (0.75 to 1.25).
    pub(super) fn next_delay(&mut self, now: Instant, jitter: f64) -> Duration {
        if self.last_error.is_some_and(|t| now.duration_since(t) >= HEALTHY_AFTER) {
            self.failures = 0;
        }
        self.last_error = Some(now);
        let delay = INITIAL.saturating_mul(1 << self.failures.min(6)).min(MAX);
        self.failures = self.failures.saturating_add(1);
        delay.mul_f64(jitter)
    }
}

/// Accounts for the errors of one watch: counted by `kind`, logged once per change of their
/// cause (not per retry), reported to `/readyz` under `name`.
pub(super) struct WatchReport {
    kind: &'static str,
    name: String,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    /// The cause last logged, and when it last happened.
    logged: Option<(String, Instant)>,
}

impl WatchReport {
    /// Reports of the watch `name` of objects of `kind`.
    pub(super) fn new(kind: &'static str, name: String, metrics: Arc<Metrics>, health: Arc<Health>) -> Self {
        Self { kind, name, metrics, health, logged: None }
    }

    fn failed(&mut self, error: &watcher::Error, retry_in: Duration) {
        self.metrics.watch_errors.with_label_values(&[self.kind]).inc();
        self.health.watch_failed(&self.name, retry_in);
        let now = Instant::now();
        let cause = cause(error);
        let repeated = self
            .logged
            .as_ref()
            .is_some_and(|(logged, at)| *logged == cause && now.duration_since(*at) < HEALTHY_AFTER);
        if repeated {
            tracing::debug!(watch = %self.name, error = %error, ?retry_in, "watch error");
        } else {
            tracing::warn!(watch = %self.name, error = %error, ?retry_in, "watch error; retrying with backoff (logged again when the cause changes)");
        }
        self.logged = Some((cause, now));
    }

    fn ok<K>(&mut self, event: &Event<K>) {
        if matches!(event, Event::InitDone | Event::Apply(_) | Event::Delete(_)) {
            self.health.watch_ok(&self.name);
            if self.logged.take().is_some() {
                tracing::info!(watch = %self.name, "watch recovered");
            }
        }
    }
}

/// What caused a watch error, in a few words (a status code, or the kind of failure): equal
/// causes are logged once.
fn cause(error: &watcher::Error) -> String {
    let client = |e: &kube::Error| match e {
        kube::Error::Api(s) => format!("HTTP {} {}", s.code, s.reason),
        other => format!("{:?}", std::mem::discriminant(other)),
    };
    match error {
        watcher::Error::InitialListFailed(e) => format!("list: {}", client(e)),
        watcher::Error::WatchStartFailed(e) => format!("watch: {}", client(e)),
        watcher::Error::WatchFailed(e) => format!("stream: {}", client(e)),
        watcher::Error::WatchError(s) => format!("watch: HTTP {} {}", s.code, s.reason),
        watcher::Error::NoResourceVersion => "no resourceVersion".into(),
    }
}

/// The events of `events`, with its errors accounted for by `report` and each followed by the
/// backoff delay before the watch is polled (and so retried) again.
pub(super) fn resilient<K, S>(events: S, report: WatchReport) -> impl Stream<Item = Event<K>> + Send
where
    K: Send + 'static,
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
{
    let state = (events.boxed(), report, Backoff::default());
    futures::stream::unfold(state, |(mut events, mut report, mut backoff)| async move {
        loop {
            match events.next().await? {
                Ok(event) => {
                    report.ok(&event);
                    return Some((event, (events, report, backoff)));
                }
                Err(error) => {
                    let delay = backoff.next_delay(Instant::now(), rand::rng().random_range(0.75..1.25));
                    report.failed(&error, delay);
                    tokio::time::sleep(delay).await;
                }
            }
        }
    })
}

/// Bits of the caches' first complete lists, for readiness.
pub(super) const SYNCED_POLICIES: u8 = 1;
pub(super) const SYNCED_NODES: u8 = 2;
pub(super) const SYNCED_STATUSES: u8 = 4;
pub(super) const SYNCED_ALL: u8 = 7;

/// A watch of `api` (every object), with its errors accounted for and backed off.
pub(super) fn watch_all<K>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    kind: &'static str,
    metrics: &Arc<Metrics>,
    health: &Arc<Health>,
    synced: (Arc<watch::Sender<u8>>, u8),
) -> impl Stream<Item = Event<K>> + Send
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let report = WatchReport::new(kind, kind.to_string(), metrics.clone(), health.clone());
    let events = watcher(api, watcher::Config::default().any_semantic()).reflect(writer);
    resilient(events, report).inspect(move |event| {
        if matches!(event, Event::InitDone) {
            let (tx, bit) = &synced;
            tx.send_if_modified(|m| std::mem::replace(m, *m | bit) != *m | bit);
        }
    })
}

/// The objects a watch applied, as the controller takes them.
pub(super) fn applied<K>(event: Event<K>) -> Option<Result<K, watcher::Error>> {
    match event {
        Event::Apply(o) | Event::InitApply(o) => Some(Ok(o)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::HealthSettings;

    #[test]
    fn the_delay_doubles_to_its_ceiling_and_resets_only_after_a_healthy_while() {
        let mut b = Backoff::default();
        let t0 = Instant::now();
        let delays: Vec<u128> =
            (0..8u32).map(|i| b.next_delay(t0 + Duration::from_secs(u64::from(i)), 1.0).as_millis()).collect();
        assert_eq!(delays, [800, 1600, 3200, 6400, 12800, 25600, 30000, 30000]);
        // Errors 30 s apart (a watch that keeps failing at the ceiling) never reset it.
        assert_eq!(b.next_delay(t0 + Duration::from_secs(37), 1.0), MAX);
        // Two minutes without an error: the next one starts over.
        assert_eq!(b.next_delay(t0 + Duration::from_secs(37) + HEALTHY_AFTER, 1.0), INITIAL);
        assert_eq!(b.next_delay(t0 + Duration::from_secs(200), 1.25), INITIAL.mul_f64(2.0 * 1.25));
    }

    fn api_error(code: u16) -> watcher::Error {
        let status = kube::core::Status { code, reason: "Forbidden".into(), ..Default::default() };
        watcher::Error::InitialListFailed(kube::Error::Api(Box::new(status)))
    }

    /// A failing relist yields `Init` then the error, over and over: the delay still grows, and
    /// every error is counted under its kind.
    #[tokio::test(start_paused = true)]
    async fn a_failing_relist_backs_off_and_is_counted() {
        let metrics = Arc::new(Metrics::new());
        let health = Arc::new(Health::new(HealthSettings::default()));
        let attempts: Vec<Result<Event<()>, watcher::Error>> =
            (0..5).flat_map(|_| [Ok(Event::Init), Err(api_error(403))]).collect();
        let polled = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = polled.clone();
        let source = futures::stream::iter(attempts).inspect(move |_| log.lock().unwrap().push(Instant::now()));
        let report = WatchReport::new("Node", "Node".into(), metrics.clone(), health);
        let start = Instant::now();
        let yielded: Vec<Event<()>> = resilient(source, report).collect().await;
        assert_eq!(yielded.len(), 5, "the Init events pass, the errors do not");
        let times: Vec<Duration> = polled.lock().unwrap().iter().map(|t| t.duration_since(start)).collect();
        // Each Init comes after the backoff of the error before it.
        let gaps: Vec<f64> =
            times.chunks(2).map(|c| c[0].as_secs_f64()).collect::<Vec<_>>().windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(gaps.len(), 4);
        for (gap, expected) in gaps.iter().zip([0.8, 1.6, 3.2, 6.4]) {
            assert!(*gap >= expected * 0.75 && *gap < expected * 1.25, "{gaps:?}");
        }
        assert_eq!(metrics.watch_errors.with_label_values(&["Node"]).get(), 5);
    }

    /// Captured log lines.
    #[derive(Clone, Default)]
    struct Lines(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_persistent_error_is_logged_once_per_change_of_cause() {
        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber =
            tracing_subscriber::fmt().with_max_level(tracing::Level::WARN).with_writer(move || sink.clone()).finish();
        let metrics = Arc::new(Metrics::new());
        let mut report = WatchReport::new("SupportPolicy", "SupportPolicy".into(), metrics.clone(), Arc::default());
        tracing::subscriber::with_default(subscriber, || {
            for code in [403, 403, 403, 403, 500, 500, 403] {
                report.failed(&api_error(code), Duration::from_secs(30));
            }
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 3, "403, then 500, then 403 again:\n{text}");
        assert_eq!(metrics.watch_errors.with_label_values(&["SupportPolicy"]).get(), 7, "every error is counted");
    }

    #[test]
    fn equal_causes_are_one_cause() {
        assert_eq!(cause(&api_error(403)), cause(&api_error(403)));
        assert_ne!(cause(&api_error(403)), cause(&api_error(500)));
    }
}
