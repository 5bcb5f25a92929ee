//! The node's wall clock, watched: a node whose clock is wrong mints
//! tokens that live hours too long or are expired at birth, and drives key
//! transitions hours early or late for every node (the clocks scenario of
//! docs/RELIABILITY.md). So a node stops issuing and drives no transition
//! while its clock is not to be trusted:
//!
//! - a *step*: the wall clock moved against the monotonic clock by more
//!   than the allowance since it was last vouched for. Seen on every token
//!   request, at the cost of two clock readings;
//! - a *disagreement* with the database's clock (PostgreSQL, the one clock
//!   every node shares), checked at start and on every periodic refresh.
//!
//! A refresh whose reference agrees vouches for the clock again. SQLite has
//! no reference: a step is logged and the new time is taken at the next
//! refresh. Clocks that are not the system's (the tests' manual clocks)
//! give no reading and are never judged.

use std::sync::Mutex;

use crate::clock::Clock;

/// Why the clock is not trusted, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Skew {
    /// The wall clock stepped by this much against the monotonic clock.
    Stepped(i64),
    /// The wall clock is this far ahead of the database's (negative: behind).
    Reference(i64),
}

impl std::fmt::Display for Skew {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stepped(ms) => {
                write!(f, "the wall clock stepped by {:+.1} s", *ms as f64 / 1000.0)
            }
            Self::Reference(ms) => write!(
                f,
                "the wall clock is {:+.1} s off the database's",
                *ms as f64 / 1000.0
            ),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// Wall minus monotonic when the clock was last vouched for.
    offset: Option<i64>,
    skew: Option<Skew>,
}

/// The watch over one node's clock.
#[derive(Debug)]
pub(crate) struct ClockGuard {
    allowance_ms: i64,
    state: Mutex<State>,
}

impl ClockGuard {
    /// A guard allowing `allowance_ms` of step or disagreement.
    pub(crate) fn new(allowance_ms: i64) -> Self {
        Self {
            allowance_ms: allowance_ms.max(1),
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the clock may be used now: no step since it was vouched
    /// for, and no disagreement found.
    pub(crate) fn check(&self, clock: &dyn Clock) -> Result<(), Skew> {
        let Some((wall, mono)) = clock.reading() else {
            return Ok(());
        };
        let offset = wall - mono;
        let mut state = self.state();
        if let Some(skew) = state.skew {
            return Err(skew);
        }
        match state.offset {
            None => {
                state.offset = Some(offset);
                Ok(())
            }
            Some(base) if (offset - base).abs() > self.allowance_ms => {
                let skew = Skew::Stepped(offset - base);
                tracing::warn!("{skew}: no tokens are issued and no key transitions driven until the clock is vouched for again");
                state.skew = Some(skew);
                Err(skew)
            }
            Some(_) => Ok(()),
        }
    }

    /// Compares the clock with `reference` (the database's clock, in Unix
    /// milliseconds, read between `sent` and now on the node's wall clock;
    /// `None`: no reference exists, SQLite) and vouches for it if they
    /// agree.
    pub(crate) fn vouch(
        &self,
        clock: &dyn Clock,
        reference: Option<(i64, i64)>,
    ) -> Result<(), Skew> {
        let Some((wall, mono)) = clock.reading() else {
            return Ok(());
        };
        let offset = wall - mono;
        let mut state = self.state();
        match reference {
            Some((sent, db)) => {
                // The database read its clock about half way.
                let off = (sent + wall) / 2 - db;
                if off.abs() > self.allowance_ms {
                    let skew = Skew::Reference(off);
                    if state.skew != Some(skew) {
                        tracing::warn!("{skew}: no tokens are issued and no key transitions driven until they agree");
                    }
                    state.skew = Some(skew);
                    return Err(skew);
                }
                if let Some(skew) = state.skew.take() {
                    tracing::info!("clock trusted again (was: {skew})");
                }
            }
            None => {
                if let Some(skew @ Skew::Stepped(_)) = state.skew.take() {
                    tracing::warn!(
                        "{skew}; with no reference clock (SQLite) the new time is taken"
                    );
                }
            }
        }
        state.offset = Some(offset);
        Ok(())
    }

    /// Whether the clock is distrusted now (readiness).
    pub(crate) fn skew(&self) -> Option<Skew> {
        self.state().skew
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};

    use super::*;

    /// A clock whose wall and monotonic readings the test sets.
    #[derive(Debug, Default)]
    struct Readings {
        wall: AtomicI64,
        mono: AtomicI64,
    }

    impl Readings {
        fn at(&self, wall: i64, mono: i64) -> &Self {
            self.wall.store(wall, Ordering::SeqCst);
            self.mono.store(mono, Ordering::SeqCst);
            self
        }
    }

    impl Clock for Readings {
        fn now(&self) -> i64 {
            self.wall.load(Ordering::SeqCst) / 1000
        }

        fn reading(&self) -> Option<(i64, i64)> {
            Some((
                self.wall.load(Ordering::SeqCst),
                self.mono.load(Ordering::SeqCst),
            ))
        }
    }

    const T: i64 = 1_800_000_000_000;

    #[test]
    fn a_step_past_the_allowance_is_refused_until_a_reference_vouches() {
        let guard = ClockGuard::new(2_000);
        let c = Readings::default();
        assert_eq!(guard.check(c.at(T, 0)), Ok(()));
        // Time passes on both clocks, with a little drift: fine.
        assert_eq!(guard.check(c.at(T + 60_000 + 1_500, 60_000)), Ok(()));
        // Two hours forward in one step.
        let step = guard.check(c.at(T + 7_200_000 + 61_000, 61_000));
        assert!(
            matches!(step, Err(Skew::Stepped(ms)) if ms > 7_000_000),
            "{step:?}"
        );
        // It stays refused, even once the clock is back...
        assert!(guard.check(c.at(T + 62_000, 62_000)).is_err());
        assert!(guard.skew().is_some());
        // ...until the database's clock agrees.
        assert_eq!(
            guard.vouch(c.at(T + 63_000, 63_000), Some((T + 62_990, T + 63_000))),
            Ok(())
        );
        assert_eq!(guard.check(c.at(T + 64_000, 64_000)), Ok(()));
        assert_eq!(guard.skew(), None);
    }

    #[test]
    fn a_clock_off_the_databases_is_refused_either_way() {
        let guard = ClockGuard::new(2_000);
        let c = Readings::default();
        let ahead = guard.vouch(c.at(T + 7_200_000, 0), Some((T + 7_200_000, T)));
        assert_eq!(ahead, Err(Skew::Reference(7_200_000)));
        assert!(
            guard.check(c.at(T + 7_200_000, 0)).is_err(),
            "issuance refused"
        );
        let behind = guard.vouch(c.at(T - 3_000, 0), Some((T - 3_000, T)));
        assert_eq!(behind, Err(Skew::Reference(-3_000)));
        // Within the allowance: trusted.
        assert_eq!(
            guard.vouch(c.at(T + 1_000, 0), Some((T + 1_000, T))),
            Ok(())
        );
        assert_eq!(guard.check(c.at(T + 1_000, 0)), Ok(()));
    }

    #[test]
    fn without_a_reference_a_step_is_taken_at_the_next_refresh() {
        let guard = ClockGuard::new(2_000);
        let c = Readings::default();
        assert_eq!(guard.check(c.at(T, 0)), Ok(()));
        assert!(guard.check(c.at(T - 3_600_000, 1_000)).is_err());
        assert_eq!(guard.vouch(c.at(T - 3_600_000, 1_000), None), Ok(()));
        assert_eq!(guard.check(c.at(T - 3_599_000, 2_000)), Ok(()));
    }

    #[test]
    fn a_clock_without_readings_is_never_judged() {
        let guard = ClockGuard::new(1);
        let manual = crate::clock::ManualClock::new(0);
        assert_eq!(guard.check(&manual), Ok(()));
        manual.advance(std::time::Duration::from_secs(365 * 86_400));
        assert_eq!(guard.check(&manual), Ok(()));
        assert_eq!(guard.vouch(&manual, Some((0, 1_000_000_000))), Ok(()));
    }
}
