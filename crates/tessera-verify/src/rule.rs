//! The prepublish rule: how long an authority must publish a key before it
//! signs, so that every verifier already holds it when its first token
//! arrives. The authority checks its settings with [`min_prepublish`] at
//! start, and [`RemoteKeySet`](crate::RemoteKeySet) keeps the [`Floors`]
//! it is given: one rule on both sides (docs/ARCHITECTURE.md §3.5).

use std::time::Duration;

/// The shortest time a verifier keeps a fetched key set, whatever the
/// `max-age` says (a smaller `max-age` is raised to it).
pub const DEFAULT_MIN_CACHE_TTL: Duration = Duration::from_secs(60);

/// After a fetch caused by an unknown kid, how long further unknown kids
/// are refused without a fetch.
pub const DEFAULT_UNKNOWN_KID_COOLDOWN: Duration = Duration::from_secs(30);

/// The two bounds of a verifier that decide how late it can learn a new
/// key: what the authority must assume of every verifier, and what a
/// [`RemoteKeySet`](crate::RemoteKeySet) keeps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Floors {
    /// The shortest cache lifetime a verifier gives a key set.
    pub min_cache_ttl: Duration,
    /// The shortest interval between two fetches for unknown kids.
    pub unknown_kid_cooldown: Duration,
}

impl Floors {
    /// `tessera-verify`'s own: 60 s and 30 s.
    pub const DEFAULT: Self = Self {
        min_cache_ttl: DEFAULT_MIN_CACHE_TTL,
        unknown_kid_cooldown: DEFAULT_UNKNOWN_KID_COOLDOWN,
    };

    /// How long after its last fetch a verifier may still use the key set
    /// that fetch gave it (before a refresh replaces it) or refuse an
    /// unknown kid without looking: the longest of `max_age` as served,
    /// the minimum cache lifetime and the unknown-kid cooldown.
    pub fn keep_time(&self, max_age: Duration) -> Duration {
        max_age
            .max(self.min_cache_ttl)
            .max(self.unknown_kid_cooldown)
    }
}

impl Default for Floors {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The shortest prepublish that keeps the promise "a verifier with these
/// floors holds a key before it signs":
///
/// `propagation + max_age + max(max_age, min_cache_ttl, unknown_kid_cooldown)`
///
/// - `propagation`: how long after a key is published on one node every
///   node serves it (the authority's `keys.refresh_interval`); until then a
///   verifier may fetch a document without it.
/// - `max_age` (the `Cache-Control: public, max-age` served): a shared HTTP
///   cache may hand out a document that old, and a verifier does not
///   subtract its `Age`.
/// - the [`keep_time`](Floors::keep_time): a verifier keeps what it fetched
///   for `max(max_age, min_cache_ttl)` before it refreshes; and a verifier
///   that looked for an unknown kid on an old document does not look again
///   for the cooldown. Covering the cooldown too means that when the key
///   starts signing, no cooldown begun on a document without it is still
///   running: even a verifier whose background refresh failed finds the
///   key at its first token. The cooldown is in the maximum, not added: a
///   look is a full fetch, which restarts the keep time rather than
///   extending it.
pub fn min_prepublish(max_age: Duration, propagation: Duration, floors: &Floors) -> Duration {
    propagation
        .saturating_add(max_age)
        .saturating_add(floors.keep_time(max_age))
}

/// The largest `max-age` (at most `cap`) with which `prepublish` keeps the
/// rule of [`min_prepublish`], or `None` when no `max-age` does (the
/// prepublish is shorter than `propagation` plus the floors).
pub fn max_age_for(
    prepublish: Duration,
    propagation: Duration,
    floors: &Floors,
    cap: Duration,
) -> Option<Duration> {
    let room = prepublish.checked_sub(propagation)?;
    let floor = floors.keep_time(Duration::ZERO);
    // While max_age is under the floors the rule is linear in it; above,
    // it counts max_age twice.
    let best = if room >= floor * 2 {
        room / 2
    } else {
        room.checked_sub(floor)?
    };
    Some(best.min(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn the_rule_counts_propagation_a_shared_cache_and_the_longest_floor() {
        let f = Floors::DEFAULT;
        // max-age under the floors: the 60 s cache floor decides.
        assert_eq!(min_prepublish(s(10), s(5), &f), s(5 + 10 + 60));
        // max-age over the floors: it counts twice.
        assert_eq!(min_prepublish(s(300), s(10), &f), s(10 + 300 + 300));
        // A cooldown longer than the cache floor decides in its place.
        let long_cooldown = Floors {
            min_cache_ttl: s(1),
            unknown_kid_cooldown: s(90),
        };
        assert_eq!(min_prepublish(s(0), s(0), &long_cooldown), s(90));
    }

    #[test]
    fn the_largest_max_age_keeps_the_rule_exactly() {
        let f = Floors::DEFAULT;
        for (prepublish, propagation) in
            [(600, 10), (100, 10), (131, 10), (70, 10), (2 * 86_400, 10)]
        {
            let m = max_age_for(s(prepublish), s(propagation), &f, s(300)).unwrap();
            assert!(
                min_prepublish(m, s(propagation), &f) <= s(prepublish),
                "{prepublish}"
            );
            let more = m + Duration::from_millis(1);
            if m < s(300) {
                assert!(
                    min_prepublish(more, s(propagation), &f) > s(prepublish),
                    "{prepublish}"
                );
            }
        }
        assert_eq!(max_age_for(s(600), s(10), &f, s(300)), Some(s(295)));
        assert_eq!(max_age_for(s(69), s(10), &f, s(300)), None);
        assert_eq!(max_age_for(s(5), s(10), &f, s(300)), None);
    }
}
