//! Leader election with a `coordination.k8s.io/v1` Lease, as client-go does it: acquire a Lease
//! whose holder has not renewed it for its duration, renew it every third of the duration, and
//! update it only with the resourceVersion read (a lost race is a 409, never two leaders).
//!
//! Leadership is fenced in time: a replica counts itself leader only until `duration` after its
//! last successful renewal began, so a replica that cannot renew stops writing within the lease
//! duration even if it never hears from the API server again. Each attempt has a deadline of a
//! third of the duration (a hung request is abandoned, and the next attempt still fits before the
//! fence); the fence's expiry is published at once, even while an attempt hangs; a write may only
//! start while a third of the duration is left (`Leadership::write_budget`).

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::health::Health;

/// The name of the elector's loop in `/healthz`.
const LOOP: &str = "leader-election";

/// Where the Lease is and who we are.
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    /// Lease namespace.
    pub namespace: String,
    /// Lease name.
    pub name: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub duration: Duration,
}

impl LeaderConfig {
    /// The time between two attempts, the deadline of one attempt (renewal or release), and the
    /// least time left on the Lease for a write to start: a third of the duration.
    pub fn period(&self) -> Duration {
        self.duration / 3
    }
}

/// The shared view of leadership: writers ask `write_budget()` before every write, and record
/// metrics through `while_leader`.
#[derive(Clone, Debug)]
pub struct Leadership {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    valid_until: Mutex<Option<Instant>>,
    always: bool,
    margin: Duration,
    changes: watch::Sender<bool>,
}

impl Leadership {
    /// Leadership of a replica running without election: always the leader.
    pub fn always() -> Self {
        Self::new(true, Duration::ZERO)
    }

    /// Leadership decided by an elector, initially not the leader; a write may start while at
    /// least `margin` is left before the fence.
    pub fn elected(margin: Duration) -> Self {
        Self::new(false, margin)
    }

    fn new(always: bool, margin: Duration) -> Self {
        let inner = Inner { valid_until: Mutex::new(None), always, margin, changes: watch::channel(always).0 };
        Self { inner: Arc::new(inner) }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Instant>> {
        self.inner.valid_until.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn leads(&self, valid_until: &Option<Instant>) -> bool {
        self.inner.always || valid_until.is_some_and(|t| t > Instant::now())
    }

    /// True while this replica holds a Lease it renewed less than a duration ago.
    pub fn is_leader(&self) -> bool {
        let valid_until = self.lock();
        self.leads(&valid_until)
    }

    /// The time a write starting now may take: what is left before the fence, if that is at
    /// least the margin; `None` when not the leader or the Lease is about to lapse.
    pub fn write_budget(&self) -> Option<Duration> {
        if self.inner.always {
            return Some(Duration::MAX);
        }
        let left = (*self.lock())?.checked_duration_since(Instant::now())?;
        (left >= self.inner.margin && !left.is_zero()).then_some(left)
    }

    /// Runs `f` if this replica is the leader now, holding the lock that the end of leadership
    /// takes (`unless_leader`): what `f` records is either cleared by the end or not recorded.
    pub fn while_leader<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        let valid_until = self.lock();
        self.leads(&valid_until).then(f)
    }

    /// Runs `f` if this replica is not the leader now, under the same lock as `while_leader`.
    pub fn unless_leader(&self, f: impl FnOnce()) {
        let valid_until = self.lock();
        if !self.leads(&valid_until) {
            f();
        }
    }

    /// Changes of `is_leader`, as the elector observes them (the fence's expiry included).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.inner.changes.subscribe()
    }

    fn set(&self, valid_until: Option<Instant>) {
        *self.lock() = valid_until;
        self.publish();
    }

    fn publish(&self) {
        let now = self.is_leader();
        self.inner.changes.send_if_modified(|v| std::mem::replace(v, now) != now);
    }

    /// Resolves when the fence expires; never while not leading.
    async fn expiry(&self) {
        let until = *self.lock();
        match until.filter(|t| !self.inner.always && *t > Instant::now()) {
            Some(t) => tokio::time::sleep_until(t).await,
            None => std::future::pending().await,
        }
    }

    /// Awaits `fut`, publishing the fence's expiry the moment it happens meanwhile.
    async fn fenced<F: Future>(&self, fut: F) -> F::Output {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                out = &mut fut => return out,
                () = self.expiry() => self.publish(),
            }
        }
    }
}

/// Why the elector stopped.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The configuration cannot work.
    #[error("invalid leader election settings: {0}")]
    Config(String),
}

/// What we last saw of the Lease, and when we first saw it so (clock-skew-free expiry).
struct Observed {
    record: (Option<String>, Option<MicroTime>, Option<i32>),
    at: Instant,
}

/// Runs the election until `release` turns true; then releases the Lease if held (within a
/// deadline) and returns.
pub async fn run(
    api: Api<Lease>,
    cfg: LeaderConfig,
    leadership: Leadership,
    health: Arc<Health>,
    mut release: watch::Receiver<bool>,
) -> Result<(), LeaderError> {
    if cfg.duration < Duration::from_secs(2) {
        return Err(LeaderError::Config(format!("lease duration {:?} is under 2s", cfg.duration)));
    }
    if cfg.identity.is_empty() {
        return Err(LeaderError::Config("empty identity".into()));
    }
    let period = cfg.period();
    let mut observed: Option<Observed> = None;
    let mut held = false;
    loop {
        // A turn: one attempt (at most a period) and one period of sleep.
        health.beat(LOOP, period * 2);
        let started = Instant::now();
        let attempt = tokio::time::timeout(period, try_acquire_or_renew(&api, &cfg, &mut observed));
        match leadership.fenced(attempt).await {
            Ok(Ok(true)) => {
                if !leadership.is_leader() {
                    tracing::info!(identity = %cfg.identity, lease = %cfg.name, "became the leader");
                }
                held = true;
                leadership.set(Some(started + cfg.duration));
            }
            Ok(Ok(false)) => {
                if leadership.is_leader() {
                    tracing::warn!(identity = %cfg.identity, "lost the leader Lease");
                }
                held = false;
                leadership.set(None);
            }
            Ok(Err(e)) => {
                // Keep the fence: leadership expires on its own at `valid_until`.
                tracing::warn!(error = %e, "cannot renew the leader Lease");
                leadership.publish();
            }
            Err(_) => {
                tracing::warn!(deadline = ?period, "the leader Lease renewal did not answer in time; abandoned");
                leadership.publish();
            }
        }
        let stop = tokio::select! {
            () = leadership.fenced(tokio::time::sleep(period)) => false,
            _ = release.wait_for(|stop| *stop) => true, // stop also when the sender is gone
        };
        if stop {
            if held && tokio::time::timeout(period, give_up(&api, &cfg)).await.is_err() {
                tracing::warn!(deadline = ?period, "the release of the leader Lease did not answer in time");
            }
            leadership.set(None);
            health.retire(LOOP);
            return Ok(());
        }
    }
}

fn now_micro() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

async fn try_acquire_or_renew(
    api: &Api<Lease>,
    cfg: &LeaderConfig,
    observed: &mut Option<Observed>,
) -> Result<bool, kube::Error> {
    let duration_secs = i32::try_from(cfg.duration.as_secs()).unwrap_or(i32::MAX);
    let Some(mut lease) = api.get_opt(&cfg.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(cfg.name.clone()),
                namespace: Some(cfg.namespace.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(cfg.identity.clone()),
                lease_duration_seconds: Some(duration_secs),
                acquire_time: Some(now_micro()),
                renew_time: Some(now_micro()),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let record = (spec.holder_identity.clone(), spec.renew_time.clone(), spec.lease_transitions);
    if observed.as_ref().is_none_or(|o| o.record != record) {
        *observed = Some(Observed { record, at: Instant::now() });
    }
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
    let ours = holder.as_deref() == Some(cfg.identity.as_str());
    if let Some(other) = holder.as_deref().filter(|_| !ours) {
        let their_duration = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(duration_secs).max(1) as u64);
        let seen = observed.as_ref().map(|o| o.at).unwrap_or_else(Instant::now);
        if seen + their_duration > Instant::now() {
            tracing::debug!(holder = %other, "the leader Lease is held");
            return Ok(false);
        }
        tracing::info!(holder = %other, "the leader Lease expired; taking it over");
    }
    let mut new_spec = spec.clone();
    new_spec.holder_identity = Some(cfg.identity.clone());
    new_spec.lease_duration_seconds = Some(duration_secs);
    new_spec.renew_time = Some(now_micro());
    if !ours {
        new_spec.acquire_time = Some(now_micro());
        new_spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    lease.spec = Some(new_spec);
    // `replace` carries the resourceVersion we read: a concurrent change is a 409.
    match api.replace(&cfg.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives the Lease up so another replica can take over at once.
async fn give_up(api: &Api<Lease>, cfg: &LeaderConfig) {
    let Ok(Some(mut lease)) = api.get_opt(&cfg.name).await else { return };
    let Some(spec) = lease.spec.as_mut() else { return };
    if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(now_micro());
    match api.replace(&cfg.name, &PostParams::default(), &lease).await {
        Ok(_) => tracing::info!(identity = %cfg.identity, "released the leader Lease"),
        Err(e) => tracing::warn!(error = %e, "cannot release the leader Lease"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn leadership_expires_on_its_own() {
        let l = Leadership::elected(Duration::from_secs(5));
        assert!(!l.is_leader());
        l.set(Some(Instant::now() + Duration::from_secs(15)));
        assert!(l.is_leader());
        tokio::time::advance(Duration::from_secs(16)).await;
        assert!(!l.is_leader(), "a leader that stopped renewing stops writing within the lease duration");
        assert!(Leadership::always().is_leader());
    }

    #[tokio::test(start_paused = true)]
    async fn no_write_starts_within_the_margin_of_the_fence() {
        let l = Leadership::elected(Duration::from_secs(5));
        assert_eq!(l.write_budget(), None, "not the leader");
        l.set(Some(Instant::now() + Duration::from_secs(15)));
        assert_eq!(l.write_budget(), Some(Duration::from_secs(15)));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(l.write_budget(), Some(Duration::from_secs(5)));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(l.write_budget(), None, "less than the margin is left");
        assert_eq!(Leadership::always().write_budget(), Some(Duration::MAX));
    }

    #[tokio::test(start_paused = true)]
    async fn the_fence_publishes_its_expiry_while_an_attempt_hangs() {
        let l = Leadership::elected(Duration::from_secs(5));
        let mut changes = l.subscribe();
        let start = Instant::now();
        l.set(Some(start + Duration::from_secs(15)));
        assert!(*changes.borrow_and_update());
        let hung = l.fenced(std::future::pending::<()>());
        tokio::select! {
            () = hung => unreachable!(),
            _ = changes.changed() => {}
        }
        assert!(!*changes.borrow(), "published at the expiry");
        assert_eq!(start.elapsed(), Duration::from_secs(15));
    }

    #[test]
    fn metrics_recorded_while_leader_are_cleared_by_the_end_and_never_after_it() {
        let l = Leadership::elected(Duration::ZERO);
        let recorded = std::cell::Cell::new(0);
        assert_eq!(l.while_leader(|| recorded.set(1)), None);
        l.set(Some(Instant::now() + Duration::from_secs(60)));
        assert_eq!(l.while_leader(|| recorded.set(2)), Some(()));
        l.unless_leader(|| recorded.set(0));
        assert_eq!(recorded.get(), 2, "still the leader: nothing is cleared");
        l.set(None);
        l.unless_leader(|| recorded.set(0));
        assert_eq!(recorded.get(), 0);
    }
}
