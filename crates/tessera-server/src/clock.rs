//! The server's clock, injectable so tests can run a year of key rotations
//! in milliseconds.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Seconds since the Unix epoch, as the server sees them.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Now, in whole seconds since the epoch.
    fn now(&self) -> i64;

    /// The wall clock in Unix milliseconds and a monotonic clock in
    /// milliseconds, read together, for a clock that can step (the
    /// system's); `None` for one that is not to be judged (the tests').
    fn reading(&self) -> Option<(i64, i64)> {
        None
    }
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        tessera_jose::UnixTime::now().secs()
    }

    fn reading(&self) -> Option<(i64, i64)> {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let mono = START.get_or_init(std::time::Instant::now).elapsed();
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        Some((
            i64::try_from(wall.as_millis()).ok()?,
            i64::try_from(mono.as_millis()).ok()?,
        ))
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock reading `start`.
    pub fn new(start: i64) -> Self {
        Self(Arc::new(AtomicI64::new(start)))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let secs = i64::try_from(by.as_secs()).unwrap_or(i64::MAX);
        self.0.fetch_add(secs, Ordering::SeqCst);
    }

    /// Sets the clock.
    pub fn set(&self, now: i64) {
        self.0.store(now, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A duration in whole seconds, saturating.
pub(crate) fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}
