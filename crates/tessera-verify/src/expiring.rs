//! One bounded cache whose entries expire: the shape shared by the
//! verifier's verified-token cache, the authority's cache of its own
//! verified JWTs and the gateway's phantom-token exchanges.
//!
//! - Keyed by a digest of the token (the token itself is not kept); the
//!   shard is picked by the key's first byte, which is uniform for a hash.
//! - Each entry holds a value, the time it may be served until (exclusive:
//!   an entry whose `until` is `now` or earlier is never served) and a tag,
//!   such as the key-set generation it was verified under; a lookup with
//!   another tag misses, so entries made under a key set that is gone are
//!   not served.
//! - Bounded: a shard that is full first drops its expired and mistagged
//!   entries and, if still full of live ones, starts over rather than grow.
//!
//! A hit takes one shard lock and clones the value; keep values cheap to
//! clone (`Arc`s).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

const SHARDS: usize = 16;

struct Entry<V, G> {
    value: V,
    until: i64,
    tag: G,
}

type Shard<K, V, G> = Mutex<HashMap<K, Entry<V, G>>>;

/// A sharded map from a digest to a value served until a time and only
/// under the tag it was stored with; each shard is locked only for a lookup
/// or an insert. `G` is `()` where no tag applies.
pub struct ExpiringCache<K, V, G = ()> {
    shards: Box<[Shard<K, V, G>]>,
    per_shard: usize,
}

impl<K, V, G> std::fmt::Debug for ExpiringCache<K, V, G> {
    /// The capacity only: values may be tokens or claims.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExpiringCache")
            .field("capacity", &(self.per_shard * SHARDS))
            .finish_non_exhaustive()
    }
}

fn shard_of(key: &[u8]) -> usize {
    key.first().map_or(0, |b| usize::from(*b)) % SHARDS
}

impl<K, V, G> ExpiringCache<K, V, G>
where
    K: Hash + Eq + AsRef<[u8]>,
    V: Clone,
    G: PartialEq,
{
    /// Room for about `capacity` entries (rounded up to a multiple of the
    /// shard count, at least one per shard).
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    /// The value stored under `key` with `tag`, if `now` is before its
    /// `until`. A poisoned shard misses.
    pub fn get<Q>(&self, key: &Q, now: i64, tag: &G) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + AsRef<[u8]> + ?Sized,
    {
        let shard = self.shards[shard_of(key.as_ref())].lock().ok()?;
        let e = shard.get(key)?;
        (e.until > now && e.tag == *tag).then(|| e.value.clone())
    }

    /// Stores `value` until `until` (exclusive) under `tag`, replacing what
    /// `key` held. A full shard first drops the entries `now` or `tag` rule
    /// out, then, if still full, all of them. A poisoned shard stores
    /// nothing.
    pub fn put(&self, key: K, value: V, until: i64, tag: G, now: i64) {
        let Ok(mut shard) = self.shards[shard_of(key.as_ref())].lock() else {
            return;
        };
        if shard.len() >= self.per_shard {
            shard.retain(|_, e| e.until > now && e.tag == tag);
            if shard.len() >= self.per_shard {
                // Still full of live entries: start over rather than grow.
                shard.clear();
            }
        }
        shard.insert(key, Entry { value, until, tag });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.len()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key in shard `shard`, distinct per `n`.
    fn key(shard: u8, n: u8) -> [u8; 32] {
        let mut k = [0u8; 32];
        k[0] = shard;
        k[1] = n;
        k
    }

    #[test]
    fn served_until_its_time_and_never_after() {
        let c: ExpiringCache<[u8; 32], &str> = ExpiringCache::new(16);
        c.put(key(0, 0), "v", 100, (), 50);
        assert_eq!(c.get(&key(0, 0), 50, &()), Some("v"));
        assert_eq!(c.get(&key(0, 0), 99, &()), Some("v"));
        assert_eq!(c.get(&key(0, 0), 100, &()), None);
        assert_eq!(c.get(&key(0, 0), 1_000, &()), None);
    }

    #[test]
    fn already_expired_is_never_served() {
        let c: ExpiringCache<[u8; 32], &str> = ExpiringCache::new(16);
        c.put(key(0, 0), "v", 10, (), 50);
        assert_eq!(c.get(&key(0, 0), 50, &()), None);
    }

    #[test]
    fn another_tag_misses() {
        let c: ExpiringCache<[u8; 32], &str, u64> = ExpiringCache::new(16);
        c.put(key(0, 0), "v", 100, 7, 0);
        assert_eq!(c.get(&key(0, 0), 1, &7), Some("v"));
        assert_eq!(c.get(&key(0, 0), 1, &8), None);
    }

    #[test]
    fn unknown_key_misses_and_put_replaces() {
        let c: ExpiringCache<[u8; 32], &str> = ExpiringCache::new(16);
        assert_eq!(c.get(&key(0, 0), 0, &()), None);
        c.put(key(0, 0), "a", 100, (), 0);
        c.put(key(0, 0), "b", 100, (), 0);
        assert_eq!(c.get(&key(0, 0), 0, &()), Some("b"));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn borrowed_lookup_for_string_keys() {
        let c: ExpiringCache<String, u32> = ExpiringCache::new(16);
        c.put("abc".to_owned(), 1, 100, (), 0);
        assert_eq!(c.get("abc", 0, &()), Some(1));
        assert_eq!(c.get("", 0, &()), None);
    }

    #[test]
    fn full_shard_drops_expired_and_mistagged_first() {
        // 32 entries: two per shard.
        let c: ExpiringCache<[u8; 32], u8, u64> = ExpiringCache::new(32);
        c.put(key(3, 0), 0, 10, 1, 0); // expired by now = 20
        c.put(key(3, 1), 1, 100, 1, 0); // live
        c.put(key(3, 2), 2, 100, 1, 20);
        assert_eq!(c.get(&key(3, 0), 5, &1), None);
        assert_eq!(c.get(&key(3, 1), 20, &1), Some(1));
        assert_eq!(c.get(&key(3, 2), 20, &1), Some(2));
        // Full again; the generation moves on: both old entries go.
        c.put(key(3, 3), 3, 100, 2, 20);
        assert_eq!(c.len(), 1);
        assert_eq!(c.get(&key(3, 3), 20, &2), Some(3));
    }

    #[test]
    fn full_of_live_entries_starts_over_and_stays_bounded() {
        let c: ExpiringCache<[u8; 32], u8> = ExpiringCache::new(32);
        for n in 0..=255 {
            c.put(key(5, n), n, 100, (), 0);
            assert!(c.len() <= 2);
        }
        assert_eq!(c.get(&key(5, 255), 0, &()), Some(255));
        // Other shards are untouched.
        c.put(key(6, 0), 0, 100, (), 0);
        assert_eq!(c.get(&key(6, 0), 0, &()), Some(0));
        assert_eq!(c.get(&key(5, 255), 0, &()), Some(255));
    }

    #[test]
    fn capacity_is_bounded_across_shards() {
        let c: ExpiringCache<[u8; 32], u8> = ExpiringCache::new(100);
        for s in 0..=255u8 {
            for n in 0..20 {
                c.put(key(s, n), n, 100, (), 0);
            }
        }
        // 100 rounded up to 7 per shard.
        assert!(c.len() <= 7 * SHARDS);
        assert!(format!("{c:?}").contains("capacity: 112"));
    }

    #[test]
    fn a_zero_capacity_still_holds_one_per_shard() {
        let c: ExpiringCache<[u8; 32], u8> = ExpiringCache::new(0);
        c.put(key(0, 0), 1, 100, (), 0);
        assert_eq!(c.get(&key(0, 0), 0, &()), Some(1));
    }
}
