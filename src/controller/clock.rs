//! Time as an input of the operator. Production uses the system clock; tests use a clock they
//! can move, and a move wakes the controller so that deadlines pass with no object changing.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;

/// Where the operator reads the time.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
    /// A channel that changes when the clock jumps (never, for the system clock).
    fn jumps(&self) -> Option<watch::Receiver<()>> {
        None
    }
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The system clock shifted by an offset that tests set: time still flows (so requeues fire
/// in real seconds), and `set` moves it anywhere, waking the controller.
#[derive(Debug, Clone)]
pub struct ShiftedClock {
    offset_ms: Arc<AtomicI64>,
    jumps: Arc<watch::Sender<()>>,
}

impl Default for ShiftedClock {
    fn default() -> Self {
        Self { offset_ms: Arc::new(AtomicI64::new(0)), jumps: Arc::new(watch::channel(()).0) }
    }
}

impl ShiftedClock {
    /// A clock that reads `now` at this moment.
    pub fn at(now: DateTime<Utc>) -> Self {
        let clock = Self::default();
        clock.set(now);
        clock
    }

    /// Makes the clock read `now` from this moment on.
    pub fn set(&self, now: DateTime<Utc>) {
        self.offset_ms.store((now - Utc::now()).num_milliseconds(), Ordering::SeqCst);
        self.jumps.send_replace(());
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + TimeDelta::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }

    fn jumps(&self) -> Option<watch::Receiver<()>> {
        Some(self.jumps.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifted_clock_reads_what_it_was_set_to_and_signals() {
        let t = crate::time::parse_rfc3339("2030-01-01T00:00:00Z").unwrap();
        let clock = ShiftedClock::default();
        let jumps = clock.jumps().unwrap();
        clock.set(t);
        assert!((clock.now() - t).num_seconds().abs() <= 1);
        assert!(jumps.has_changed().unwrap());
    }
}
