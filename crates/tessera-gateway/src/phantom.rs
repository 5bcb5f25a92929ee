//! Phantom-token mode: an opaque Tessera token (`tso_...`) arriving at the
//! gateway is exchanged at the issuer's token endpoint (RFC 8693) for an
//! internal JWT, which is then verified like any token and replaces the
//! `Authorization` header toward the upstream. Exchanges are remembered by
//! the token's hash for a short while (never past the JWT's exp); failures
//! for one second at most.
//!
//! Anyone can send a `Bearer tso_...`, and each unknown one would cost a
//! round trip to the authority. Two bounds keep that cost small:
//! - a handle whose check value does not hold (see
//!   [`tessera_verify::handle`]) is refused here, with no exchange, as
//!   `invalid_token` / `malformed`;
//! - at most `phantom_max_in_flight` exchanges run at once; past that a
//!   request needing a new exchange is answered 503 with `Retry-After: 1`
//!   at once rather than queued (cached exchanges need no slot).

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};
use serde::Deserialize;
use tessera_verify::expiring::ExpiringCache;
use tessera_verify::handle::{Handle, HandleError, Kind};
use tokio::sync::Semaphore;

use crate::config::FeedClient;

/// How many exchanges (and recent failures) are remembered.
const CACHED_EXCHANGES: usize = 100_000;

/// What became of a bearer token in phantom mode.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Not a handle (a JWT, perhaps): verify it as it is.
    NotOpaque,
    /// The internal JWT it was exchanged for.
    Exchanged(String),
    /// Refused without reaching the upstream; the stable code for
    /// `invalid_token` (`malformed`: made up, or not an access token;
    /// `inactive`: the issuer does not know it, or no longer).
    Refused(&'static str),
    /// Every exchange slot is taken: answer 503, do not queue.
    Busy,
}

/// 503 with `Retry-After: 1`: every exchange slot is taken (the gateway,
/// not the client, is short of capacity, hence not 429).
pub(crate) fn busy() -> Response<Body> {
    let mut r = crate::plain(
        StatusCode::SERVICE_UNAVAILABLE,
        "token exchanges at capacity; retry\n",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// The exchanger and its cache.
pub(crate) struct Phantom {
    client: FeedClient,
    http: reqwest::Client,
    ttl: i64,
    /// hash -> the JWT, or None for a recent failure, until a time.
    cache: ExpiringCache<[u8; 32], Option<String>>,
    /// One permit per exchange in flight.
    in_flight: Semaphore,
}

#[derive(Deserialize)]
struct Answer {
    access_token: String,
    expires_in: i64,
}

fn now() -> i64 {
    tessera_jose::UnixTime::now().secs()
}

impl Phantom {
    pub(crate) fn new(
        client: FeedClient,
        ttl: Duration,
        max_in_flight: usize,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            client,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            ttl: i64::try_from(ttl.as_secs()).unwrap_or(30).max(1),
            cache: ExpiringCache::new(CACHED_EXCHANGES),
            in_flight: Semaphore::new(max_in_flight.max(1)),
        })
    }

    /// What to verify in place of `token`.
    pub(crate) async fn resolve(&self, token: &str) -> Outcome {
        match Handle::parse(token) {
            Err(HandleError::NotAHandle) => Outcome::NotOpaque,
            Ok(h) if h.kind() == Kind::Opaque => self.exchange(h).await,
            // Made up or mistyped, or a refresh token (never a bearer
            // token): refused here, the authority is not asked.
            Ok(_) | Err(HandleError::Malformed(_)) => Outcome::Refused("malformed"),
        }
    }

    async fn exchange(&self, opaque: Handle<'_>) -> Outcome {
        let key = tessera_verify::token_hash::digest(opaque.as_str());
        let t = now();
        if let Some(jwt) = self.cache.get(&key, t, &()) {
            return jwt.map_or(Outcome::Refused("inactive"), Outcome::Exchanged);
        }
        let Ok(_permit) = self.in_flight.try_acquire() else {
            tracing::debug!("phantom exchanges at capacity: refused");
            return Outcome::Busy;
        };
        let answer = self
            .http
            .post(&self.client.url)
            .basic_auth(&self.client.client_id, Some(&self.client.client_secret))
            .form(&[
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ),
                ("subject_token", opaque.as_str()),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:access_token",
                ),
            ])
            .send()
            .await;
        let jwt = match answer {
            Ok(resp) if resp.status().is_success() => resp.json::<Answer>().await.ok(),
            Ok(resp) => {
                tracing::debug!(status = %resp.status(), "phantom exchange refused");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e.without_url(), "phantom exchange failed");
                None
            }
        };
        let (jwt, until) = match jwt {
            Some(a) => {
                let until = t.saturating_add(self.ttl.min(a.expires_in));
                (Some(a.access_token), until)
            }
            None => (None, t + 1),
        };
        self.cache.put(key, jwt.clone(), until, (), t);
        jwt.map_or(Outcome::Refused("inactive"), Outcome::Exchanged)
    }
}
