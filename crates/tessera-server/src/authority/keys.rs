//! The key lifecycle as the authority uses it: the signing state (a
//! [`KeyRing`] swapped whole, read without a lock), transitions, and
//! recognising this issuer's own JWTs (revocation, introspection,
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

use arc_swap::{ArcSwap, Guard};
use serde_json::Value;
use tessera_jose::{Algorithm, ErrorKind, UnixTime, Validation, Verified};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{OAuthError, StartError};
use crate::lifecycle::{KeyRing, Lifecycle, LifecycleError, Rotation};
use crate::store::Store;

/// The shortest time between two reloads for unknown kids.
pub(crate) const COOLDOWN: Duration = Duration::from_millis(500);

/// Keys: the lifecycle that drives their transitions, and the ring this
/// node signs and verifies with.
#[derive(Debug)]
pub(crate) struct Keys {
    lifecycle: Lifecycle,
    ring: ArcSwap<KeyRing>,
    /// Serializes reloads.
    reload: Mutex<()>,
    /// Reloads of the ring for tokens whose kid is unknown here.
    kid_reloads: KidReloads,
    /// This issuer: a token naming it with an unknown kid may be ours.
    issuer: String,
    store: Store,
}

impl Keys {
    /// Keys driven by `lifecycle`, serving `ring`.
    pub(crate) fn new(lifecycle: Lifecycle, ring: KeyRing, issuer: String, store: Store) -> Self {
        Self {
            lifecycle,
            ring: ArcSwap::from_pointee(ring),
            reload: Mutex::new(()),
            kid_reloads: KidReloads::default(),
            issuer,
            store,
        }
    }

    /// The current ring (signing keys, published keys, JWKS).
    pub(crate) fn ring(&self) -> Guard<Arc<KeyRing>> {
        self.ring.load()
    }

    /// Every key row, oldest first (the admin API's list).
    ///
    /// # Errors
    /// On storage failure.
    pub(crate) async fn rows(&self) -> Result<Vec<crate::store::KeyRow>, OAuthError> {
        Ok(self.store.keys().await?)
    }

    /// Performs every transition that is due now.
    ///
    /// # Errors
    /// On storage or key failures.
    pub(crate) async fn tick(&self) -> Result<(), LifecycleError> {
        self.lifecycle.tick().await.map(|_| ())
    }

    /// Re-reads the key table.
    ///
    /// # Errors
    /// On storage or key failures.
    pub(crate) async fn reload(&self) -> Result<(), StartError> {
        let _guard = self.reload.lock().await;
        let previous = self.ring.load_full();
        let ring = self.lifecycle.load(Some(&previous)).await?;
        self.ring.store(Arc::new(ring));
        Ok(())
    }

    /// Rotates each of `algs` (stopping at the first failure), then serves
    /// what did happen at once, even when a later algorithm failed.
    ///
    /// # Errors
    /// The failure, with the rotations done before it.
    pub(crate) async fn rotate(
        &self,
        algs: &[Algorithm],
        immediate: bool,
        actor: &str,
    ) -> Result<Vec<Rotation>, (Vec<Rotation>, LifecycleError)> {
        let mut out = Vec::new();
        let mut failed = None;
        for alg in algs {
            match self.lifecycle.rotate(*alg, immediate, actor).await {
                Ok(r) => out.push(r),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Err(e) = self.reload().await {
            return Err((out, LifecycleError::Key(e.to_string())));
        }
        match failed {
            Some(e) => Err((out, e)),
            None => Ok(out),
        }
    }

    /// Marks `kid` compromised (its successor, if any, signs at once) and
    /// serves the new ring.
    ///
    /// # Errors
    /// [`LifecycleError::UnknownKid`] and storage failures.
    pub(crate) async fn compromise(
        &self,
        kid: &str,
        actor: &str,
    ) -> Result<Option<String>, LifecycleError> {
        let successor = self.lifecycle.compromise(kid, actor).await?;
        self.reload()
            .await
            .map_err(|e| LifecycleError::Key(e.to_string()))?;
        Ok(successor)
    }

    /// How many times this node read its keys again because a token of this
    /// issuer named a kid it had not loaded.
    #[cfg(feature = "test-util")]
    pub(crate) fn unknown_kid_reloads(&self) -> u64 {
        self.kid_reloads.count()
    }

    /// Verifies `token` as one of this issuer's own under `validation`, with
    /// the key ring read again once if its kid is unknown here and its `iss`
    /// is ours (see the module documentation), with the version of the key
    /// set that verified it. `None`: not a valid token of this issuer.
    ///
    /// # Errors
    /// 503 `temporarily_unavailable` when the ring had to be read again and
    /// the store could not be read.
    pub(crate) async fn verify_own(
        &self,
        token: &str,
        validation: &Validation,
        now: i64,
    ) -> Result<Option<(Verified<Value>, Arc<str>)>, OAuthError> {
        let asked = Instant::now();
        let verify = || {
            let ring = self.ring.load();
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
            Err(e) if e.kind() == ErrorKind::UnknownKid && self.names_us_with_a_kid(token) => {
                if let Err(e) = self.kid_reloads.since(self, asked).await {
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
    fn names_us_with_a_kid(&self, token: &str) -> bool {
        tessera_jose::decode_unverified(token, tessera_jose::DEFAULT_MAX_SIZE).is_ok_and(|t| {
            t.registered.iss.as_deref() == Some(self.issuer.as_str())
                && t.header.get("kid").is_some_and(Value::is_string)
        })
    }
}

/// The single-flight gate of reloads for unknown kids.
#[derive(Debug, Default)]
struct KidReloads {
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
    /// Reloads for unknown kids done by this node (a test hook).
    #[cfg(feature = "test-util")]
    fn count(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Returns once the ring has been read from the store after `asked`:
    /// at once when a reload that started after it succeeded, else after
    /// the next reload, which this call runs (waiting out the cooldown) if
    /// no other does.
    async fn since(&self, keys: &Keys, asked: Instant) -> Result<(), StartError> {
        let mut gate = self.state.lock().await;
        if gate.succeeded.is_some_and(|s| s >= asked) {
            return Ok(());
        }
        if let Some(last) = gate.attempted {
            tokio::time::sleep_until(last + COOLDOWN).await;
        }
        let started = Instant::now();
        gate.attempted = Some(started);
        keys.reload().await?;
        gate.succeeded = Some(started);
        self.done.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
