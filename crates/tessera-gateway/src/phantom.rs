//! Phantom-token mode: an opaque Tessera token (`tso_...`) arriving at the
//! gateway is exchanged at the issuer's token endpoint (RFC 8693) for an
//! internal JWT, which is then verified like any token and replaces the
//! `Authorization` header toward the upstream. Exchanges are remembered by
//! the token's hash for a short while (never past the JWT's exp); failures
//! for one second at most.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;

use crate::config::FeedClient;

/// A cached exchange: the JWT (None for a recent failure) and until when.
type Cached = (Option<String>, i64);

/// The exchanger and its cache.
pub(crate) struct Phantom {
    client: FeedClient,
    http: reqwest::Client,
    ttl: i64,
    /// hash -> (jwt, until), or (None, until) for a recent failure.
    cache: Mutex<HashMap<[u8; 32], Cached>>,
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
    pub(crate) fn new(client: FeedClient, ttl: Duration) -> Result<Self, reqwest::Error> {
        Ok(Self {
            client,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            ttl: i64::try_from(ttl.as_secs()).unwrap_or(30).max(1),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The internal JWT for an opaque token, or None when the issuer says
    /// it is not (or no longer) valid.
    pub(crate) async fn exchange(&self, opaque: &str) -> Option<String> {
        let key: [u8; 32] = {
            let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, opaque.as_bytes());
            let mut k = [0u8; 32];
            k.copy_from_slice(d.as_ref());
            k
        };
        let t = now();
        if let Ok(cache) = self.cache.lock() {
            if let Some((jwt, until)) = cache.get(&key) {
                if *until > t {
                    return jwt.clone();
                }
            }
        }
        let answer = self
            .http
            .post(&self.client.url)
            .basic_auth(&self.client.client_id, Some(&self.client.client_secret))
            .form(&[
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ),
                ("subject_token", opaque),
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
        let entry = match jwt {
            Some(a) => {
                let until = t.saturating_add(self.ttl.min(a.expires_in));
                (Some(a.access_token), until)
            }
            None => (None, t + 1),
        };
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() > 100_000 {
                cache.retain(|_, (_, until)| *until > t);
            }
            cache.insert(key, entry.clone());
        }
        entry.0
    }
}
