//! Leader election with a `coordination.k8s.io/v1` Lease, as client-go does it: acquire a Lease
//! whose holder has not renewed it for its duration, renew it every third of the duration, and
//! update it only with the resourceVersion read (a lost race is a 409, never two leaders).
//!
//! Leadership is fenced in time: a replica counts itself leader only until `duration` after its
//! last successful renewal began, so a replica that cannot renew stops writing within the lease
//! duration even if it never hears from the API server again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;

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

/// The shared view of leadership: readers ask `is_leader()` before every write.
#[derive(Clone, Debug)]
pub struct Leadership {
    valid_until: Arc<Mutex<Option<Instant>>>,
    always: bool,
    changes: Arc<watch::Sender<bool>>,
}

impl Leadership {
    /// Leadership of a replica running without election: always the leader.
    pub fn always() -> Self {
        Self { valid_until: Arc::new(Mutex::new(None)), always: true, changes: Arc::new(watch::channel(true).0) }
    }

    /// Leadership decided by an elector, initially not the leader.
    pub fn elected() -> Self {
        Self { valid_until: Arc::new(Mutex::new(None)), always: false, changes: Arc::new(watch::channel(false).0) }
    }

    /// True while this replica holds a Lease it renewed less than a duration ago.
    pub fn is_leader(&self) -> bool {
        self.always || self.valid_until.lock().unwrap_or_else(|e| e.into_inner()).is_some_and(|t| t > Instant::now())
    }

    /// Changes of `is_leader`, as the elector observes them.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.changes.subscribe()
    }

    fn set(&self, valid_until: Option<Instant>) {
        *self.valid_until.lock().unwrap_or_else(|e| e.into_inner()) = valid_until;
        self.publish();
    }

    fn publish(&self) {
        let now = self.is_leader();
        self.changes.send_if_modified(|v| std::mem::replace(v, now) != now);
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

/// Runs the election until `shutdown` turns true; then releases the Lease if held.
pub async fn run(
    api: Api<Lease>,
    cfg: LeaderConfig,
    leadership: Leadership,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), LeaderError> {
    if cfg.duration < Duration::from_secs(2) {
        return Err(LeaderError::Config(format!("lease duration {:?} is under 2s", cfg.duration)));
    }
    if cfg.identity.is_empty() {
        return Err(LeaderError::Config("empty identity".into()));
    }
    let retry = cfg.duration / 3;
    let mut observed: Option<Observed> = None;
    loop {
        let started = Instant::now();
        match try_acquire_or_renew(&api, &cfg, &mut observed).await {
            Ok(true) => {
                if !leadership.is_leader() {
                    tracing::info!(identity = %cfg.identity, lease = %cfg.name, "became the leader");
                }
                leadership.set(Some(started + cfg.duration));
            }
            Ok(false) => {
                if leadership.is_leader() {
                    tracing::warn!(identity = %cfg.identity, "lost the leader Lease");
                }
                leadership.set(None);
            }
            Err(e) => {
                // Keep the fence: leadership expires on its own at `valid_until`.
                tracing::warn!(error = %e, "cannot renew the leader Lease");
                leadership.publish();
            }
        }
        let stop = tokio::select! {
            _ = tokio::time::sleep(retry) => false,
            _ = shutdown.wait_for(|stop| *stop) => true, // stop also when the sender is gone
        };
        if stop {
            if leadership.is_leader() {
                release(&api, &cfg).await;
            }
            leadership.set(None);
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
async fn release(api: &Api<Lease>, cfg: &LeaderConfig) {
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
        let l = Leadership::elected();
        assert!(!l.is_leader());
        l.set(Some(Instant::now() + Duration::from_secs(15)));
        assert!(l.is_leader());
        tokio::time::advance(Duration::from_secs(16)).await;
        assert!(!l.is_leader(), "a leader that stopped renewing stops writing within the lease duration");
        assert!(Leadership::always().is_leader());
    }
}
