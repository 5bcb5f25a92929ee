//! The verified-token cache: real clients resend the same token for its
//! whole life, and an ES256 check costs far more than an HTTP request.
//!
//! Keyed by the SHA-256 of the token (the token itself is not kept), an
//! entry never outlives the token's `exp` and is valid only for the key-set
//! generation it was verified under, so a key removed from the JWKS (a
//! compromise) takes its tokens' entries with it at the next refresh.
//! (The revocation deny-list, when it comes, is consulted on every hit.)

use std::collections::HashMap;
use std::sync::Mutex;

use crate::layer::VerifiedToken;

const SHARDS: usize = 16;

struct Entry {
    token: VerifiedToken,
    exp: i64,
    generation: u64,
}

/// A sharded map; each shard is locked only for a lookup or an insert.
pub(crate) struct TokenCache {
    shards: Vec<Mutex<HashMap<[u8; 32], Entry>>>,
    per_shard: usize,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("capacity", &(self.per_shard * SHARDS))
            .finish_non_exhaustive()
    }
}

pub(crate) fn digest(token: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl TokenCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, key: &[u8; 32]) -> &Mutex<HashMap<[u8; 32], Entry>> {
        &self.shards[usize::from(key[0]) % SHARDS]
    }

    pub(crate) fn get(&self, key: &[u8; 32], now: i64, generation: u64) -> Option<VerifiedToken> {
        let shard = self.shard(key).lock().ok()?;
        let e = shard.get(key)?;
        (e.exp > now && e.generation == generation).then(|| e.token.clone())
    }

    pub(crate) fn put(
        &self,
        key: [u8; 32],
        token: &VerifiedToken,
        exp: i64,
        generation: u64,
        now: i64,
    ) {
        let Ok(mut shard) = self.shard(&key).lock() else {
            return;
        };
        if shard.len() >= self.per_shard {
            shard.retain(|_, e| e.exp > now && e.generation == generation);
            if shard.len() >= self.per_shard {
                // Still full of live tokens: start over rather than grow.
                shard.clear();
            }
        }
        shard.insert(
            key,
            Entry {
                token: token.clone(),
                exp,
                generation,
            },
        );
    }
}
