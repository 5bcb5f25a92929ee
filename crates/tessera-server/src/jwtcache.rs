//! Signatures of this issuer's own JWTs, checked once: introspection sees
//! the same token many times. An entry holds the verified claims until the
//! token's `exp` and only for the key set (JWKS ETag) it was verified under,
//! so a compromised key's tokens are checked again, and fail, once it is
//! gone. Revocation is not cached here: callers check the deny-list on
//! every use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::HeaderValue;
use serde_json::Value;

const SHARDS: usize = 16;

/// A verified token: its claims and the kid of the key that signed it.
#[derive(Debug)]
pub struct OwnJwt {
    /// The verified claims.
    pub claims: Value,
    /// The header's kid.
    pub kid: Option<Arc<str>>,
}

type Entry = (Arc<OwnJwt>, i64, HeaderValue);

/// The cache, keyed by the token's SHA-256 (base64url).
pub struct VerifiedJwts {
    shards: Vec<Mutex<HashMap<String, Entry>>>,
    per_shard: usize,
}

impl std::fmt::Debug for VerifiedJwts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedJwts").finish_non_exhaustive()
    }
}

impl VerifiedJwts {
    /// Room for about `capacity` tokens.
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<String, Entry>> {
        let i = key.bytes().next().map_or(0, usize::from) % SHARDS;
        &self.shards[i]
    }

    /// A token verified under `etag`, if still before its exp.
    pub fn get(&self, key: &str, now: i64, etag: &HeaderValue) -> Option<Arc<OwnJwt>> {
        let shard = self.shard(key).lock().ok()?;
        let (claims, exp, tag) = shard.get(key)?;
        (*exp > now && tag == etag).then(|| Arc::clone(claims))
    }

    /// Remembers a verified token.
    pub fn put(&self, key: String, claims: Arc<OwnJwt>, exp: i64, etag: &HeaderValue, now: i64) {
        let Ok(mut shard) = self.shard(&key).lock() else {
            return;
        };
        if shard.len() >= self.per_shard {
            shard.retain(|_, (_, e, t)| *e > now && t == etag);
            if shard.len() >= self.per_shard {
                shard.clear();
            }
        }
        shard.insert(key, (claims, exp, etag.clone()));
    }
}
