//! Following an authority's deny-list feed (`GET /revocations?since=SEQ`,
//! long-polled): revoked jtis are rejected with `revoked` until their
//! tokens expire.
//!
//! Memory stays bounded: an entry lives only until its token's `exp` (plus
//! the issuer's leeway), and is kept as a 64-bit keyed hash of the jti and
//! that time, not the jti itself (a false match needs a 2^-64 collision
//! under a per-process random key). When the authority is unreachable the
//! list is kept and the follower catches up from its last sequence number.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::Deserialize;

use crate::remote::{self, RemoteOptions};
use crate::BuildError;

/// The followed deny-list.
pub struct DenyList {
    entries: RwLock<HashMap<u64, i64>>,
    hasher: RandomState,
    seq: AtomicI64,
    /// Feed requests that failed.
    pub failures: AtomicU64,
    /// Feed answers applied.
    pub updates: AtomicU64,
}

impl std::fmt::Debug for DenyList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DenyList")
            .field("seq", &self.seq.load(Ordering::Relaxed))
            .field("entries", &self.len())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct FeedPage {
    seq: i64,
    more: bool,
    entries: Vec<FeedEntry>,
}

#[derive(Deserialize)]
struct FeedEntry {
    seq: i64,
    jti: String,
    exp: i64,
}

impl Default for DenyList {
    fn default() -> Self {
        Self::new()
    }
}

impl DenyList {
    /// An empty list (fill it with [`DenyList::insert`], or follow a feed
    /// with [`DenyList::follow`]).
    pub fn new() -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            hasher: RandomState::new(),
            seq: AtomicI64::new(0),
            failures: AtomicU64::new(0),
            updates: AtomicU64::new(0),
        }
    }

    fn key(&self, jti: &str) -> u64 {
        self.hasher.hash_one(jti)
    }

    /// Lists `jti` until `exp`.
    pub fn insert(&self, jti: &str, exp: i64) {
        if let Ok(mut map) = self.entries.write() {
            map.insert(self.key(jti), exp);
        }
    }

    /// Whether `jti` is listed (and not yet expired at `now`).
    pub fn contains(&self, jti: &str, now: i64) -> bool {
        self.entries
            .read()
            .map(|map| map.get(&self.key(jti)).is_some_and(|exp| *exp >= now))
            .unwrap_or(true) // a poisoned lock fails closed
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.read().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The last sequence number applied.
    pub fn seq(&self) -> i64 {
        self.seq.load(Ordering::Relaxed)
    }

    /// Drops entries whose tokens have expired.
    pub fn purge(&self, now: i64) {
        if let Ok(mut map) = self.entries.write() {
            map.retain(|_, exp| *exp >= now);
        }
    }

    fn apply(&self, page: &FeedPage) {
        let Ok(mut map) = self.entries.write() else {
            return;
        };
        // Nothing is cleared on a snapshot: entries older than the purge
        // horizon expire here by their own exp (see `purge`).
        for e in &page.entries {
            map.insert(self.key(&e.jti), e.exp);
        }
        let last = page.entries.last().map_or(page.seq, |e| e.seq);
        let next = if page.more { last } else { page.seq.max(last) };
        self.seq.store(next, Ordering::Relaxed);
        self.updates.fetch_add(1, Ordering::Relaxed);
    }

    /// Follows the feed at `url` (from the issuer's discovery document,
    /// `tessera_revocation_feed_endpoint`) as client `client_id`, in the
    /// background for as long as the returned list lives. The first page
    /// is read before this returns.
    ///
    /// # Errors
    /// A bad URL, or a first request that fails.
    pub async fn follow(
        url: &str,
        client_id: &str,
        client_secret: &str,
        options: &RemoteOptions,
    ) -> Result<Arc<Self>, BuildError> {
        let url = remote::check_url(url)?;
        // Long polls hold up to 25 s: the timeout covers that.
        let mut long = options.clone();
        long.timeout = options.timeout + Duration::from_secs(25);
        let http = remote::http_client(&long)?;
        let follower = Follower {
            url,
            http,
            id: client_id.to_owned(),
            secret: client_secret.to_owned(),
            limit: options.max_response_bytes.max(64 * 1024) * 16,
        };
        let list = Arc::new(Self::new());
        follower.poll(&list, 0).await.map_err(|e| {
            BuildError::Fetch(format!(
                "revocation feed {}: {e}",
                remote::redacted(&follower.url)
            ))
        })?;
        let weak = Arc::downgrade(&list);
        tokio::spawn(async move { follower.run(weak).await });
        Ok(list)
    }
}

struct Follower {
    url: Url,
    http: reqwest::Client,
    id: String,
    secret: String,
    limit: usize,
}

impl Follower {
    async fn poll(&self, list: &DenyList, wait: u64) -> Result<(), String> {
        loop {
            let mut url = self.url.clone();
            url.query_pairs_mut()
                .append_pair("since", &list.seq().to_string())
                .append_pair("wait", &wait.to_string());
            let resp = self
                .http
                .get(url)
                .basic_auth(&self.id, Some(&self.secret))
                .send()
                .await
                .map_err(|e| e.without_url().to_string())?;
            if resp.status() != StatusCode::OK {
                return Err(format!("HTTP {}", resp.status()));
            }
            if resp.content_length().is_some_and(|n| n > self.limit as u64) {
                return Err("answer too large".into());
            }
            let body = resp
                .bytes()
                .await
                .map_err(|e| e.without_url().to_string())?;
            let page: FeedPage =
                serde_json::from_slice(&body).map_err(|_| "not a feed page".to_owned())?;
            list.apply(&page);
            if !page.more {
                return Ok(());
            }
        }
    }

    async fn run(self, weak: Weak<DenyList>) {
        let mut backoff = Duration::from_millis(500);
        loop {
            let Some(list) = weak.upgrade() else { return };
            list.purge(tessera_jose::UnixTime::now().secs());
            match self.poll(&list, 25).await {
                Ok(()) => backoff = Duration::from_millis(500),
                Err(e) => {
                    list.failures.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("tessera_verify_denylist_failures_total").increment(1);
                    tracing::warn!(url = %remote::redacted(&self.url), error = %e, "revocation feed unreachable; keeping the list");
                    drop(list);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}
