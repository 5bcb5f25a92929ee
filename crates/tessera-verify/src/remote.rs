//! A key set fetched from a JWKS URL and kept fresh: `Cache-Control`
//! within bounds, `If-None-Match` revalidation, background refresh before
//! expiry, single-flight refresh on an unknown kid with a cooldown, and
//! stale-if-error when the authority is down or answers garbage.
//!
//! The hot path reads an [`ArcSwap`] snapshot: no lock, no await.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use reqwest::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH};
use reqwest::{StatusCode, Url};
use tessera_jose::{Algorithm, JwkSet, KeySet};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::rule::{self, Floors};
use crate::BuildError;

/// How the remote key set is fetched and cached.
#[derive(Clone, Debug)]
pub struct RemoteOptions {
    /// Shortest cache lifetime honoured (a smaller `max-age` is raised to
    /// it): one of the [`Floors`] the authority's prepublish must cover
    /// ([`crate::rule`]).
    pub min_cache_ttl: Duration,
    /// Longest cache lifetime honoured (a larger `max-age` is lowered to it).
    pub max_max_age: Duration,
    /// Cache lifetime when the response has no `max-age`.
    pub default_max_age: Duration,
    /// After a refresh caused by an unknown kid, how long further unknown
    /// kids are rejected without a fetch: the other of the [`Floors`].
    pub unknown_kid_cooldown: Duration,
    /// How long the last good key set keeps serving while fetches fail.
    pub stale_if_error: Duration,
    /// Timeout of one fetch (connect, send, read).
    pub timeout: Duration,
    /// Largest JWKS (or discovery) response read, in bytes.
    pub max_response_bytes: usize,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        Self {
            min_cache_ttl: rule::DEFAULT_MIN_CACHE_TTL,
            max_max_age: Duration::from_secs(24 * 3600),
            default_max_age: Duration::from_secs(300),
            unknown_kid_cooldown: rule::DEFAULT_UNKNOWN_KID_COOLDOWN,
            stale_if_error: Duration::from_secs(24 * 3600),
            timeout: Duration::from_secs(5),
            max_response_bytes: 256 * 1024,
        }
    }
}

impl RemoteOptions {
    /// The floors these options keep, for [`rule::min_prepublish`].
    pub fn floors(&self) -> Floors {
        Floors {
            min_cache_ttl: self.min_cache_ttl,
            unknown_kid_cooldown: self.unknown_kid_cooldown,
        }
    }

    /// These options with `floors` (what the authority's prepublish was
    /// checked against).
    #[must_use]
    pub fn with_floors(mut self, floors: Floors) -> Self {
        self.min_cache_ttl = floors.min_cache_ttl;
        self.unknown_kid_cooldown = floors.unknown_kid_cooldown;
        self
    }

    /// The cache lifetime of a response with `max_age` (`None`: no
    /// `max-age`): within the bounds, the floor winning over the ceiling
    /// if they cross, since the floor is what the prepublish rule counts on.
    fn lifetime(&self, max_age: Option<Duration>) -> Duration {
        max_age
            .unwrap_or(self.default_max_age)
            .min(self.max_max_age)
            .max(self.min_cache_ttl)
    }
}

/// Counters of a remote key set (also exported through the `metrics` crate).
#[derive(Debug, Default)]
pub struct Stats {
    /// Fetches sent (including revalidations).
    pub fetches: AtomicU64,
    /// Revalidations answered `304 Not Modified`.
    pub not_modified: AtomicU64,
    /// Fetches that failed (unreachable, timeout, HTTP error, too large, not a JWKS).
    pub failures: AtomicU64,
    /// Fetches caused by an unknown kid (also counted in `fetches`): a
    /// verifier whose authority keeps the prepublish rule needs none after
    /// a scheduled rotation.
    pub unknown_kid_fetches: AtomicU64,
    /// Unknown-kid tokens rejected during the cooldown, without a fetch.
    pub cooldown_rejections: AtomicU64,
    /// Times a verification used a key set older than its cache lifetime
    /// because fetches were failing.
    pub stale_uses: AtomicU64,
}

impl Stats {
    fn bump(counter: &AtomicU64, name: &'static str) {
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(name).increment(1);
    }
}

/// What the hot path reads.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) keys: Arc<KeySet>,
    etag: Option<String>,
    /// Until when the set is fresh (cache lifetime).
    fresh_until: Instant,
    /// The last time the authority confirmed this set (200 or 304).
    confirmed_at: Instant,
    /// Bumped whenever the key set changes.
    pub(crate) generation: u64,
}

/// The remote key set.
pub struct RemoteKeySet {
    url: Url,
    http: reqwest::Client,
    options: RemoteOptions,
    algorithms: Vec<Algorithm>,
    current: ArcSwap<Snapshot>,
    /// Single flight: one fetch at a time; holds when the last unknown-kid
    /// fetch started.
    fetching: Mutex<Option<Instant>>,
    empty: Arc<KeySet>,
    stats: Stats,
}

impl fmt::Debug for RemoteKeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteKeySet")
            .field("url", &redacted(&self.url))
            .field("generation", &self.current.load().generation)
            .finish_non_exhaustive()
    }
}

/// The URL without credentials or query, for messages.
pub(crate) fn redacted(url: &Url) -> String {
    format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.port().map(|p| format!(":{p}")).unwrap_or_default()
    ) + url.path()
}

/// HTTPS, or plain HTTP to a loopback address only.
pub(crate) fn check_url(text: &str) -> Result<Url, BuildError> {
    let url = Url::parse(text).map_err(|e| BuildError::Url(format!("{text:?}: {e}")))?;
    if crate::url_policy::allows(&url) {
        Ok(url)
    } else {
        Err(BuildError::Url(format!(
            "{}: HTTPS is required (plain HTTP only to a loopback address)",
            redacted(&url)
        )))
    }
}

/// An HTTP client with the fetch rules: timeout, no redirects.
pub(crate) fn http_client(options: &RemoteOptions) -> Result<reqwest::Client, BuildError> {
    reqwest::Client::builder()
        .timeout(options.timeout)
        .connect_timeout(options.timeout)
        // A redirect could lead a verifier to keys an attacker serves.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| BuildError::Fetch(format!("HTTP client: {e}")))
}

/// GET with a size limit; the body only when the status is 200.
pub(crate) async fn get_limited(
    http: &reqwest::Client,
    url: &Url,
    etag: Option<&str>,
    limit: usize,
) -> Result<(StatusCode, reqwest::header::HeaderMap, Vec<u8>), String> {
    let mut req = http.get(url.clone()).header("accept", "application/json");
    if let Some(tag) = etag {
        req = req.header(IF_NONE_MATCH, tag);
    }
    let resp = req.send().await.map_err(|e| e.without_url().to_string())?;
    let status = resp.status();
    let headers = resp.headers().clone();
    if status != StatusCode::OK {
        return Ok((status, headers, Vec::new()));
    }
    let body = body_limited(resp, limit).await?;
    Ok((status, headers, body))
}

/// A response body of at most `limit` bytes, counted as the chunks arrive
/// (a chunked answer has no `Content-Length` to check first): past the
/// limit the connection is dropped, never buffered.
pub(crate) async fn body_limited(
    mut resp: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, String> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(format!("response is over {limit} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| e.without_url().to_string())?
    {
        if body.len() + chunk.len() > limit {
            return Err(format!("response is over {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `max-age` of a `Cache-Control` header, if any (`no-cache`/`no-store`: 0).
fn max_age(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(CACHE_CONTROL)?.to_str().ok()?;
    let mut out = None;
    for directive in value.split(',') {
        let d = directive.trim();
        if d.eq_ignore_ascii_case("no-cache") || d.eq_ignore_ascii_case("no-store") {
            return Some(Duration::ZERO);
        }
        if let Some((name, v)) = d.split_once('=') {
            if name.trim().eq_ignore_ascii_case("max-age") {
                out = v
                    .trim()
                    .trim_matches('"')
                    .parse()
                    .ok()
                    .map(Duration::from_secs);
            }
        }
    }
    out
}

impl RemoteKeySet {
    /// Fetches `url` once (it must succeed) and keeps the set fresh in the
    /// background for as long as the returned value lives. `algorithms`
    /// binds keys that carry no `alg` (empty: such keys are skipped).
    ///
    /// # Errors
    /// A bad URL, or a first fetch that fails or is not a usable JWKS.
    pub async fn fetch(
        url: &str,
        options: RemoteOptions,
        algorithms: Vec<Algorithm>,
    ) -> Result<Arc<Self>, BuildError> {
        let url = check_url(url)?;
        let http = http_client(&options)?;
        let now = Instant::now();
        let set = Arc::new(Self {
            url,
            http,
            options,
            algorithms,
            current: ArcSwap::from_pointee(Snapshot {
                keys: Arc::new(KeySet::new(Vec::new())),
                etag: None,
                fresh_until: now,
                confirmed_at: now,
                generation: 0,
            }),
            fetching: Mutex::new(None),
            empty: Arc::new(KeySet::new(Vec::new())),
            stats: Stats::default(),
        });
        set.refresh()
            .await
            .map_err(|e| BuildError::Fetch(format!("{}: {e}", redacted(&set.url))))?;
        let weak = Arc::downgrade(&set);
        tokio::spawn(async move { background(weak).await });
        Ok(set)
    }

    /// The current key set's generation (bumped when it changes).
    pub(crate) fn generation(&self) -> u64 {
        self.current.load().generation
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The cache lifetime given to the current key set: its `max-age`
    /// within the bounds, never under the configured minimum.
    pub fn cache_lifetime(&self) -> Duration {
        let snap = self.current.load();
        snap.fresh_until
            .saturating_duration_since(snap.confirmed_at)
    }

    /// The floors this key set keeps ([`crate::rule`]).
    pub fn floors(&self) -> Floors {
        self.options.floors()
    }

    /// The key set to verify with now, and its generation. Past its cache
    /// lifetime it still serves (stale-if-error) until `stale_if_error`
    /// after the authority last confirmed it; then nothing verifies.
    pub(crate) fn keys(&self) -> (Arc<KeySet>, u64) {
        let snap = self.current.load();
        let now = Instant::now();
        if now > snap.fresh_until {
            if now.duration_since(snap.confirmed_at) > self.options.stale_if_error {
                return (Arc::clone(&self.empty), snap.generation);
            }
            Stats::bump(
                &self.stats.stale_uses,
                "tessera_verify_jwks_stale_uses_total",
            );
        }
        (Arc::clone(&snap.keys), snap.generation)
    }

    /// Called when a token names a kid the set (of `generation`) lacks:
    /// at most one fetch at a time, and at most one per cooldown. True when
    /// a different key set is now in place (worth one more try).
    pub(crate) async fn refresh_for_unknown_kid(&self, generation: u64) -> bool {
        let mut last = self.fetching.lock().await;
        if self.current.load().generation != generation {
            // Someone else's fetch, which we waited for, changed the set.
            return true;
        }
        if last.is_some_and(|t| t.elapsed() < self.options.unknown_kid_cooldown) {
            Stats::bump(
                &self.stats.cooldown_rejections,
                "tessera_verify_unknown_kid_cooldown_total",
            );
            return false;
        }
        *last = Some(Instant::now());
        Stats::bump(
            &self.stats.unknown_kid_fetches,
            "tessera_verify_jwks_unknown_kid_fetches_total",
        );
        match self.refresh_locked().await {
            Ok(()) => self.current.load().generation != generation,
            Err(e) => {
                tracing::warn!(url = %redacted(&self.url), error = %e, "JWKS fetch for an unknown kid failed");
                false
            }
        }
    }

    /// One fetch (waiting for any fetch in flight first).
    async fn refresh(&self) -> Result<(), String> {
        let _guard = self.fetching.lock().await;
        self.refresh_locked().await
    }

    async fn refresh_locked(&self) -> Result<(), String> {
        Stats::bump(&self.stats.fetches, "tessera_verify_jwks_fetches_total");
        let result = self.fetch_once().await;
        if result.is_err() {
            Stats::bump(&self.stats.failures, "tessera_verify_jwks_failures_total");
        }
        result
    }

    async fn fetch_once(&self) -> Result<(), String> {
        let old = self.current.load_full();
        let (status, headers, body) = get_limited(
            &self.http,
            &self.url,
            old.etag.as_deref(),
            self.options.max_response_bytes,
        )
        .await?;
        let now = Instant::now();
        let lifetime = self.options.lifetime(max_age(&headers));
        if status == StatusCode::NOT_MODIFIED && old.etag.is_some() {
            Stats::bump(
                &self.stats.not_modified,
                "tessera_verify_jwks_not_modified_total",
            );
            self.current.store(Arc::new(Snapshot {
                keys: Arc::clone(&old.keys),
                etag: old.etag.clone(),
                fresh_until: now + lifetime,
                confirmed_at: now,
                generation: old.generation,
            }));
            return Ok(());
        }
        if status != StatusCode::OK {
            return Err(format!("HTTP {status}"));
        }
        let keys = parse_jwks(&body, &self.algorithms)?;
        let etag = headers
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.current.store(Arc::new(Snapshot {
            keys: Arc::new(keys),
            etag,
            fresh_until: now + lifetime,
            confirmed_at: now,
            generation: old.generation + 1,
        }));
        Ok(())
    }
}

/// The keys of a JWKS response body: UTF-8, a JWK Set, and at least one
/// key usable with `algorithms` (see [`KeySet::from_jwks`]).
pub(crate) fn parse_jwks(body: &[u8], algorithms: &[Algorithm]) -> Result<KeySet, String> {
    let text = std::str::from_utf8(body).map_err(|_| "response is not UTF-8".to_owned())?;
    let set = JwkSet::parse(text).map_err(|e| format!("not a JWKS: {}", e.message()))?;
    let keys = KeySet::from_jwks(&set, algorithms)
        .map_err(|e| format!("unusable JWKS: {}", e.message()))?;
    if keys.is_empty() {
        // An authority always publishes its active key: an empty set is a
        // broken response, and must not wipe the good one.
        return Err("the JWKS holds no usable signature key".to_owned());
    }
    Ok(keys)
}

/// Refreshes ahead of expiry (at 80% of the cache lifetime) so no request
/// waits on a fetch; after a failure, retries with backoff (1 s doubling to
/// a minute, never past the cache lifetime's end by more than needed).
async fn background(weak: Weak<RemoteKeySet>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let wait = {
            let Some(set) = weak.upgrade() else { return };
            let snap = set.current.load();
            let lifetime = snap
                .fresh_until
                .saturating_duration_since(snap.confirmed_at);
            let at = snap.confirmed_at + lifetime.mul_f64(0.8);
            at.saturating_duration_since(Instant::now())
        };
        tokio::time::sleep(wait.max(Duration::from_millis(10))).await;
        let Some(set) = weak.upgrade() else { return };
        match set.refresh().await {
            Ok(()) => backoff = Duration::from_secs(1),
            Err(e) => {
                tracing::warn!(url = %redacted(&set.url), error = %e, retry_in = ?backoff, "JWKS refresh failed; serving the last good key set");
                drop(set);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_except_loopback() {
        assert!(check_url("https://auth.example.com/jwks").is_ok());
        assert!(check_url("http://127.0.0.1:8080/jwks").is_ok());
        assert!(check_url("http://[::1]:8080/jwks").is_ok());
        assert!(check_url("http://localhost/jwks").is_ok());
        for bad in [
            "http://auth.example.com/jwks",
            "ftp://127.0.0.1/x",
            "not a url",
            "file:///etc/passwd",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        let e = check_url("http://user:pw@auth.example.com/x").unwrap_err();
        assert!(!e.to_string().contains("pw"), "{e}");
    }

    #[test]
    fn the_floor_raises_max_age_and_wins_over_the_ceiling() {
        let o = RemoteOptions::default().with_floors(Floors {
            min_cache_ttl: Duration::from_secs(2),
            unknown_kid_cooldown: Duration::from_secs(1),
        });
        assert_eq!(o.lifetime(Some(Duration::ZERO)), Duration::from_secs(2));
        assert_eq!(
            o.lifetime(Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(o.lifetime(None), Duration::from_secs(300));
        let crossed = RemoteOptions {
            max_max_age: Duration::from_secs(1),
            ..o.clone()
        };
        assert_eq!(
            crossed.lifetime(Some(Duration::from_secs(9))),
            Duration::from_secs(2)
        );
        assert_eq!(o.floors().unknown_kid_cooldown, Duration::from_secs(1));
        assert_eq!(RemoteOptions::default().floors(), Floors::DEFAULT);
    }

    #[test]
    fn cache_control_max_age() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(max_age(&h), None);
        h.insert(CACHE_CONTROL, "public, max-age=300".parse().unwrap());
        assert_eq!(max_age(&h), Some(Duration::from_secs(300)));
        h.insert(CACHE_CONTROL, "no-store".parse().unwrap());
        assert_eq!(max_age(&h), Some(Duration::ZERO));
        h.insert(CACHE_CONTROL, "max-age=abc".parse().unwrap());
        assert_eq!(max_age(&h), None);
    }
}
