//! Recognising this issuer's own JWTs (revocation, introspection,
//! exchange) on a node that may not have loaded the key that signed them
//! yet.
//!
//! Another node can start signing with a key this node has not read: a
//! manual `rotate --immediate`, a compromise's successor, or a scheduled
//! activation a refresh interval ahead of this node's. A token with our
//! `iss` and a `kid` the ring lacks is therefore not "not ours" until the
//! ring has been read from the store *after* the token was presented:
//! then, and only then, an unknown kid means a key that no node publishes
//! (removed after its grace, compromised and listed in the deny-list feed,
//! or never ours), which no verifier accepts, and RFC 7009 §2.2 lets
//! revocation answer 200 for it. Revocation never answers 200 for such a
//! token without that reload: when the store cannot be read it answers 503
//! (the client retries). Its `jti` is not listed unverified: nobody may
//! revoke a token they have not shown to be theirs (RFC 7009 §2.1), and a
//! forged token could name anyone's `jti`.
//!
//! Reloads for unknown kids run one at a time and at most one per
//! [`COOLDOWN`]; requests that arrive meanwhile wait for the next reload
//! and share it, so made-up kids cost a key-table read per cooldown, not
//! one per request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tessera_jose::{ErrorKind, UnixTime, Validation, Verified};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::OAuthError;
use crate::server::AppState;

/// The shortest time between two reloads for unknown kids.
pub(crate) const COOLDOWN: Duration = Duration::from_millis(500);

/// The single-flight gate of reloads for unknown kids.
#[derive(Debug, Default)]
pub(crate) struct KidReloads {
    state: Mutex<Gate>,
    done: AtomicU64,
}

#[derive(Debug, Default)]
struct Gate {
    /// When the last reload was started, successful or not (the cooldown).
    attempted: Option<Instant>,
    /// When the last successful reload was started: requests that arrived
    /// before it have seen the store as it was after they arrived.
    succeeded: Option<Instant>,
}

impl KidReloads {
    /// Reloads for unknown kids done by this node (a test and metric hook).
    pub(crate) fn count(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Returns once the ring has been read from the store after `asked`:
    /// at once when a reload that started after it succeeded, else after
    /// the next reload, which this call runs (waiting out the cooldown) if
    /// no other does.
    async fn since(&self, st: &AppState, asked: Instant) -> Result<(), crate::StartError> {
        let mut gate = self.state.lock().await;
        if gate.succeeded.is_some_and(|s| s >= asked) {
            return Ok(());
        }
        if let Some(last) = gate.attempted {
            tokio::time::sleep_until(last + COOLDOWN).await;
        }
        let started = Instant::now();
        gate.attempted = Some(started);
        st.reload_keys().await?;
        gate.succeeded = Some(started);
        self.done.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Verifies `token` as one of this issuer's own under `validation`, with
/// the key ring read again once if its kid is unknown here and its `iss`
/// is ours (see the module documentation), with the version of the key
/// set that verified it. `None`: not a valid token of this issuer.
///
/// # Errors
/// 503 `temporarily_unavailable` when the ring had to be read again and
/// the store could not be read.
pub(super) async fn verify_own(
    st: &AppState,
    token: &str,
    validation: &Validation,
    now: i64,
) -> Result<Option<(Verified<Value>, Arc<str>)>, OAuthError> {
    let asked = Instant::now();
    let verify = || {
        let ring = st.ring.load();
        tessera_jose::verify_at::<Value>(
            token,
            &ring.verify_keys,
            validation,
            UnixTime::from_secs(now),
        )
        .map(|v| (v, Arc::clone(&ring.version)))
    };
    match verify() {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == ErrorKind::UnknownKid && names_us_with_a_kid(st, token) => {
            if let Err(e) = st.kid_reloads.since(st, asked).await {
                tracing::warn!(error = %e, "a token of this issuer names a key not loaded here, and the keys could not be read again");
                return Err(OAuthError::unavailable(
                    "the token's signing key is not loaded on this node yet; try again",
                ));
            }
            Ok(verify().ok())
        }
        Err(_) => Ok(None),
    }
}

/// Whether a token (not verified) says it is ours and names a key: only
/// such a token is worth reading the key table again for.
fn names_us_with_a_kid(st: &AppState, token: &str) -> bool {
    tessera_jose::decode_unverified(token, tessera_jose::DEFAULT_MAX_SIZE).is_ok_and(|t| {
        t.registered.iss.as_deref() == Some(st.config.issuer.as_str())
            && t.header.get("kid").is_some_and(Value::is_string)
    })
}
