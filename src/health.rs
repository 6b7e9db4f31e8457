//! What `/healthz` and `/readyz` answer.
//!
//! **Liveness**: every supervised loop reports progress. A periodic loop (leader election,
//! discovery) beats at each turn and is stuck when it has not beaten within its bound; the
//! controller marks each reconcile while it runs and is stuck when one has run longer than
//! `stalled_after` (every API call it makes has a deadline, so only a bug gets there).
//!
//! **Readiness**: every cache delivered its first complete list and discovery answered once;
//! after that, the replica is ready unless a watch has kept failing for longer than
//! `unready_after` (its view of the cluster is then stale). A watch keeps failing while errors
//! keep coming: it has recovered at its first event or list, or when a retry was due and no error
//! followed (a watch resumed on a quiet cluster delivers nothing to see).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

/// How long a retry may take to fail before a watch counts as recovered without an event.
const RETRY_SLACK: Duration = Duration::from_secs(10);

/// The bounds of liveness and readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSettings {
    /// A loop making no progress for this long (beyond its own period) is stuck: `/healthz` fails.
    pub stalled_after: Duration,
    /// A watch failing for this long makes `/readyz` fail.
    pub unready_after: Duration,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self { stalled_after: Duration::from_secs(120), unready_after: Duration::from_secs(60) }
    }
}

/// The progress of the loops and the state of the watches.
#[derive(Debug)]
pub struct Health {
    settings: HealthSettings,
    state: Mutex<State>,
    next_id: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// Periodic loops: last progress and how long a turn may take.
    loops: BTreeMap<&'static str, (Instant, Duration)>,
    /// Work in flight, by id: which loop, since when.
    busy: BTreeMap<u64, (&'static str, Instant)>,
    /// Failing watches: since when, and until when a retry may still fail.
    failing: BTreeMap<String, (Instant, Instant)>,
    synced: bool,
}

/// Marks work in flight until dropped.
#[derive(Debug)]
pub struct Busy {
    health: Arc<Health>,
    id: u64,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.health.lock().busy.remove(&self.id);
    }
}

impl Default for Health {
    fn default() -> Self {
        Self::new(HealthSettings::default())
    }
}

impl Health {
    /// No loop, no watch, not synced.
    pub fn new(settings: HealthSettings) -> Self {
        Self { settings, state: Mutex::new(State::default()), next_id: AtomicU64::new(0) }
    }

    /// The bounds.
    pub fn settings(&self) -> HealthSettings {
        self.settings
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The periodic loop `name` made progress; its next turn is due within `period`.
    pub fn beat(&self, name: &'static str, period: Duration) {
        self.lock().loops.insert(name, (Instant::now(), period));
    }

    /// The periodic loop `name` ended as it should (shutdown): no longer watched.
    pub fn retire(&self, name: &'static str) {
        self.lock().loops.remove(name);
    }

    /// Marks work of `name` in flight until the guard drops.
    pub fn busy(self: &Arc<Self>, name: &'static str) -> Busy {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().busy.insert(id, (name, Instant::now()));
        Busy { health: self.clone(), id }
    }

    /// Every cache has synced once and discovery answered.
    pub fn set_synced(&self) {
        self.lock().synced = true;
    }

    /// The watch `name` failed; it retries in `retry_in`.
    pub fn watch_failed(&self, name: &str, retry_in: Duration) {
        let now = Instant::now();
        let mut state = self.lock();
        let quiet_after = now + retry_in + RETRY_SLACK;
        match state.failing.get_mut(name) {
            Some((_, until)) if now <= *until => *until = quiet_after,
            _ => {
                state.failing.insert(name.to_string(), (now, quiet_after));
            }
        }
    }

    /// The watch `name` delivered a list or an event.
    pub fn watch_ok(&self, name: &str) {
        let mut state = self.lock();
        if !state.failing.is_empty() {
            state.failing.remove(name);
        }
    }

    /// The watch `name` is gone (no policy names its Lease any more).
    pub fn forget_watch(&self, name: &str) {
        self.lock().failing.remove(name);
    }

    /// `Ok` with a report when live, `Err` naming the stuck loops.
    pub fn liveness(&self) -> Result<String, String> {
        let now = Instant::now();
        let state = self.lock();
        let mut report = String::new();
        let mut stuck = String::new();
        for (name, (last, period)) in &state.loops {
            let ago = now.duration_since(*last);
            let bound = *period + self.settings.stalled_after;
            let line =
                format!("{name}: last progress {:.1}s ago (bound {:.0}s)\n", ago.as_secs_f64(), bound.as_secs_f64());
            if ago > bound {
                stuck.push_str(&line);
            }
            report.push_str(&line);
        }
        for (name, since) in state.busy.values() {
            let running = now.duration_since(*since);
            if running > self.settings.stalled_after {
                let _ = writeln!(
                    stuck,
                    "{name}: work in flight for {:.1}s (bound {:.0}s)",
                    running.as_secs_f64(),
                    self.settings.stalled_after.as_secs_f64()
                );
            }
        }
        if stuck.is_empty() {
            Ok(format!("ok\n{report}"))
        } else {
            Err(format!("stuck\n{stuck}"))
        }
    }

    /// `Ok` when ready, `Err` saying why not.
    pub fn readiness(&self) -> Result<String, String> {
        let now = Instant::now();
        let state = self.lock();
        if !state.synced {
            return Err("caches not synced\n".into());
        }
        let mut failing = String::new();
        for (name, (since, until)) in &state.failing {
            let for_ = now.duration_since(*since);
            if now <= *until && for_ >= self.settings.unready_after {
                let _ = writeln!(failing, "watch {name} failing for {:.0}s", for_.as_secs_f64());
            }
        }
        if failing.is_empty() {
            Ok("ok\n".into())
        } else {
            Err(failing)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> Arc<Health> {
        Arc::new(Health::new(HealthSettings {
            stalled_after: Duration::from_secs(10),
            unready_after: Duration::from_secs(60),
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn a_loop_that_stops_beating_or_work_that_never_ends_is_stuck() {
        let h = health();
        h.beat("leader-election", Duration::from_secs(5));
        assert!(h.liveness().is_ok());
        tokio::time::advance(Duration::from_secs(15)).await;
        assert!(h.liveness().is_ok(), "at the bound (period 5 s + 10 s)");
        tokio::time::advance(Duration::from_secs(1)).await;
        let err = h.liveness().unwrap_err();
        assert!(err.contains("leader-election"), "{err}");
        h.retire("leader-election");
        assert!(h.liveness().is_ok(), "a loop that ended on shutdown is not stuck");

        let work = h.busy("controller");
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(h.liveness().unwrap_err().contains("controller"));
        drop(work);
        assert!(h.liveness().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn readiness_needs_a_sync_and_no_watch_failing_for_long() {
        let h = health();
        assert_eq!(h.readiness().unwrap_err(), "caches not synced\n");
        h.set_synced();
        assert!(h.readiness().is_ok());
        // Errors every 30 s (the longest backoff) for two minutes: unready after one.
        for _ in 0..4 {
            h.watch_failed("Node", Duration::from_secs(30));
            tokio::time::advance(Duration::from_secs(30)).await;
        }
        assert!(h.readiness().unwrap_err().contains("watch Node failing for 120s"));
        // An event: recovered at once.
        h.watch_ok("Node");
        assert!(h.readiness().is_ok());
        // A retry that did not fail again: recovered once it was due (30 s + slack).
        for _ in 0..3 {
            h.watch_failed("Node", Duration::from_secs(30));
            tokio::time::advance(Duration::from_secs(30)).await;
        }
        assert!(h.readiness().is_err());
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(h.readiness().is_ok());
        // A short failure never makes the replica unready.
        h.watch_failed("Lease default/x", Duration::from_millis(800));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(h.readiness().is_ok());
        h.forget_watch("Lease default/x");
    }
}
