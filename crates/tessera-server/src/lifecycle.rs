//! Key lifecycle (docs/ARCHITECTURE.md, "Key lifecycle"): pending -> active
//! -> retired -> removed, plus compromised. Every transition is one database
//! transaction whose updates are conditional on the state it read, and the
//! schema allows one active and one pending key per algorithm, so when two
//! nodes race exactly one wins and the other changes nothing.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use tessera_jose::{Algorithm, Jwk, Signer, SigningKey, UnixTime};
use tokio::sync::Mutex;

use crate::clock::Clock;
use crate::config::KeySettings;
use crate::kek::{Kek, KekError};
use crate::store::{KeyRow, KeyState};
use crate::store::{Store, StoreError, Transition};

/// Why a lifecycle operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// Storage.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The key-encryption key.
    #[error(transparent)]
    Kek(#[from] KekError),
    /// Key generation or a stored key that does not parse.
    #[error("key: {0}")]
    Key(String),
    /// The kid is not a published key.
    #[error("no published key has kid {0:?}")]
    UnknownKid(String),
    /// The algorithm is not one this server signs with.
    #[error("{0} is not among keys.algorithms")]
    NotConfigured(Algorithm),
    /// Another node changed the keys at the same moment; nothing was done.
    #[error("another node changed the keys at the same moment; try again")]
    Raced,
}

/// What a rotation did.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Rotation {
    /// Algorithm.
    pub alg: &'static str,
    /// The key that will sign (or signs now).
    pub kid: String,
    /// When it signs.
    pub activate_at: i64,
    /// The key it replaced, when the switch already happened.
    pub retired: Option<String>,
}

/// Drives transitions and builds the signing state from the table.
pub(crate) struct Lifecycle {
    store: Store,
    kek: Arc<Kek>,
    settings: KeySettings,
    clock: Arc<dyn Clock>,
    /// One transition at a time within this node (SQLite has one writer
    /// anyway; on PostgreSQL the database arbitrates between nodes).
    lock: Mutex<()>,
}

impl fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lifecycle")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Lifecycle {
    /// A lifecycle over `store`.
    pub(crate) fn new(
        store: Store,
        kek: Arc<Kek>,
        settings: KeySettings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            kek,
            settings,
            clock,
            lock: Mutex::new(()),
        }
    }

    /// Performs every transition that is due now; true if anything changed.
    ///
    /// # Errors
    /// On storage or key failures. A lost race is not an error.
    pub(crate) async fn tick(&self) -> Result<bool, LifecycleError> {
        let _guard = self.lock.lock().await;
        let mut changed = false;
        for &alg in &self.settings.algorithms {
            match self.step(alg).await {
                Ok(c) => changed |= c,
                // Another node did it (or holds the write lock): its result
                // is read on the next load.
                Err(LifecycleError::Raced) => changed = true,
                Err(LifecycleError::Store(e)) if e.is_conflict() => changed = true,
                Err(e) => return Err(e),
            }
        }
        changed |= self.retire_unconfigured().await?;
        Ok(changed)
    }

    async fn step(&self, alg: Algorithm) -> Result<bool, LifecycleError> {
        let now = UnixTime::from_secs(self.clock.now());
        let by = Transition {
            actor: "scheduler",
            now,
        };
        let mut tx = self.store.begin(by).await?;
        let keys = tx.keys().await?;
        let mut changed = false;
        for key in keys.iter().filter(|k| k.alg == alg) {
            if key.state == KeyState::Retired && key.remove_at.is_some_and(|t| t <= now) {
                changed |= tx.remove(&key.kid).await?;
                tx.audit("key_removed", &key.kid).await?;
            }
        }
        let active = keys
            .iter()
            .find(|k| k.alg == alg && k.state == KeyState::Active);
        let pending = keys
            .iter()
            .find(|k| k.alg == alg && k.state == KeyState::Pending);
        match (active, pending) {
            (None, Some(p)) => {
                // Recovery: nothing signs; the published pending key takes over.
                expect(tx.activate(&p.kid).await?)?;
                tx.audit("key_activated", &p.kid).await?;
                changed = true;
            }
            (None, None) => {
                let row = self.new_key(alg, KeyState::Active, now, now)?;
                insert(&mut tx, &row).await?;
                tx.audit("key_created_active", &row.kid).await?;
                changed = true;
            }
            (Some(a), Some(p)) if p.activate_at <= now => {
                expect(
                    tx.retire(&a.kid, now.saturating_add(self.settings.grace))
                        .await?,
                )?;
                expect(tx.activate(&p.kid).await?)?;
                tx.audit("key_retired", &a.kid).await?;
                tx.audit("key_activated", &p.kid).await?;
                changed = true;
            }
            (Some(a), None) => {
                let since = a.activated_at.unwrap_or(a.created_at);
                let due = since.saturating_add(self.settings.rotation_period);
                let prepublish = self.settings.prepublish;
                if now >= due.saturating_sub(prepublish) {
                    // Published at least `prepublish` before it signs, even
                    // when the node was down when it should have been made.
                    let at = due.max(now.saturating_add(prepublish));
                    let row = self.new_key(alg, KeyState::Pending, now, at)?;
                    insert(&mut tx, &row).await?;
                    tx.audit("key_created_pending", &row.kid).await?;
                    changed = true;
                }
            }
            (Some(_), Some(_)) => {}
        }
        if changed {
            tx.commit().await?;
        }
        Ok(changed)
    }

    /// Active and pending keys of algorithms no longer configured are
    /// retired (kept for the grace period) and removed, respectively.
    async fn retire_unconfigured(&self) -> Result<bool, LifecycleError> {
        let now = UnixTime::from_secs(self.clock.now());
        let by = Transition {
            actor: "scheduler",
            now,
        };
        let mut tx = self.store.begin(by).await?;
        let mut changed = false;
        for key in tx.keys().await? {
            if self.settings.algorithms.contains(&key.alg) {
                continue;
            }
            match key.state {
                KeyState::Active => {
                    let until = now.saturating_add(self.settings.grace);
                    changed |= tx.retire(&key.kid, until).await?;
                }
                KeyState::Pending => changed |= tx.remove(&key.kid).await?,
                KeyState::Retired if key.remove_at.is_some_and(|t| t <= now) => {
                    changed |= tx.remove(&key.kid).await?;
                }
                _ => {}
            }
        }
        if changed {
            tx.commit().await?;
        }
        Ok(changed)
    }

    /// Manual rotation of `alg`. `immediate`: the next key signs now (the
    /// pending key if there is one, else a fresh key; verifiers that have
    /// not seen it fetch the JWKS on the unknown kid). Otherwise a new key
    /// is published now and signs after `prepublish`, like a scheduled
    /// rotation; when one is already pending, that one is reported.
    ///
    /// # Errors
    /// [`LifecycleError::NotConfigured`], storage or key failures, or
    /// [`LifecycleError::Raced`].
    pub(crate) async fn rotate(
        &self,
        alg: Algorithm,
        immediate: bool,
        actor: &str,
    ) -> Result<Rotation, LifecycleError> {
        if !self.settings.algorithms.contains(&alg) {
            return Err(LifecycleError::NotConfigured(alg));
        }
        let _guard = self.lock.lock().await;
        let now = UnixTime::from_secs(self.clock.now());
        let mut tx = self.store.begin(Transition { actor, now }).await?;
        let keys = tx.keys().await?;
        let active = keys
            .iter()
            .find(|k| k.alg == alg && k.state == KeyState::Active);
        let pending = keys
            .iter()
            .find(|k| k.alg == alg && k.state == KeyState::Pending);
        let grace_end = now.saturating_add(self.settings.grace);
        let rotation = if immediate {
            let mut retired = None;
            if let Some(a) = active {
                expect(tx.retire(&a.kid, grace_end).await?)?;
                tx.audit("key_retired", &a.kid).await?;
                retired = Some(a.kid.clone());
            }
            let kid = match pending {
                Some(p) => {
                    expect(tx.activate(&p.kid).await?)?;
                    p.kid.clone()
                }
                None => {
                    let row = self.new_key(alg, KeyState::Active, now, now)?;
                    insert(&mut tx, &row).await?;
                    row.kid
                }
            };
            tx.audit("key_activated", &kid).await?;
            Rotation {
                alg: alg.name(),
                kid,
                activate_at: now.secs(),
                retired,
            }
        } else if let Some(p) = pending {
            return Ok(Rotation {
                alg: alg.name(),
                kid: p.kid.clone(),
                activate_at: p.activate_at.secs(),
                retired: None,
            });
        } else {
            let at = now.saturating_add(self.settings.prepublish);
            let row = self.new_key(alg, KeyState::Pending, now, at)?;
            insert(&mut tx, &row).await?;
            tx.audit("key_created_pending", &row.kid).await?;
            Rotation {
                alg: alg.name(),
                kid: row.kid,
                activate_at: at.secs(),
                retired: None,
            }
        };
        tx.commit().await?;
        Ok(rotation)
    }

    /// Marks `kid` compromised: it leaves the JWKS and, if it was signing,
    /// its successor (the pending key, or a fresh one) becomes active, in
    /// the same transaction.
    ///
    /// # Errors
    /// [`LifecycleError::UnknownKid`] when no published key has that kid;
    /// storage or key failures.
    pub(crate) async fn compromise(
        &self,
        kid: &str,
        actor: &str,
    ) -> Result<Option<String>, LifecycleError> {
        let _guard = self.lock.lock().await;
        let now = UnixTime::from_secs(self.clock.now());
        let mut tx = self.store.begin(Transition { actor, now }).await?;
        // It will list the key on the deny-list: the revocation lock comes
        // before any key row (one lock order for every revocation).
        tx.lock_revocations().await?;
        let keys = tx.keys().await?;
        let key = keys
            .iter()
            .find(|k| k.kid == kid && k.state.is_published())
            .ok_or_else(|| LifecycleError::UnknownKid(kid.to_owned()))?;
        // Conditional on the state read above: if another node changed the
        // key meanwhile (activated it, say), nothing is done and the caller
        // retries, so a successor is never forgotten.
        expect(tx.compromise(kid, key.state).await?)?;
        tx.audit("key_compromised", kid).await?;
        // Its tokens go on the deny-list feed too, for as long as any could
        // be live (the grace period covers the longest token and leeway):
        // followers refuse them within a second, not at their next key-set
        // refresh.
        tx.revoke_kid(kid, now.saturating_add(self.settings.grace))
            .await?;
        let mut successor = None;
        if key.state == KeyState::Active && self.settings.algorithms.contains(&key.alg) {
            let pending = keys
                .iter()
                .find(|k| k.alg == key.alg && k.state == KeyState::Pending);
            let next = match pending {
                Some(p) => {
                    expect(tx.activate(&p.kid).await?)?;
                    p.kid.clone()
                }
                None => {
                    let row = self.new_key(key.alg, KeyState::Active, now, now)?;
                    insert(&mut tx, &row).await?;
                    row.kid
                }
            };
            tx.audit("key_activated", &next).await?;
            successor = Some(next);
        }
        tx.commit().await?;
        Ok(successor)
    }

    fn open_signing_key(&self, row: &KeyRow) -> Result<SigningKey, LifecycleError> {
        let sealed = row.private_sealed.as_deref().ok_or_else(|| {
            LifecycleError::Key(format!("active key {} has no private part", row.kid))
        })?;
        let json = self.kek.open(&row.kid, sealed)?;
        let text = std::str::from_utf8(&json)
            .map_err(|_| LifecycleError::Key(format!("stored key {} is not UTF-8", row.kid)))?;
        Ok(Jwk::parse(text)
            .and_then(|jwk| jwk.to_signing_key(Some(row.alg)))
            .map_err(|e| LifecycleError::Key(format!("stored key {}: {}", row.kid, e.code())))?
            .with_kid(row.kid.clone()))
    }

    fn new_key(
        &self,
        alg: Algorithm,
        state: KeyState,
        now: UnixTime,
        activate_at: UnixTime,
    ) -> Result<KeyRow, LifecycleError> {
        let key = match alg.family() {
            tessera_jose::Family::Rsa => SigningKey::generate_rsa(alg, self.settings.rsa_bits),
            _ => SigningKey::generate(alg),
        }
        .map_err(|e| LifecycleError::Key(e.to_string()))?;
        let kid = key.thumbprint();
        let key = key.with_kid(kid.clone());
        let public = key
            .public_jwk()
            .map_err(|e| LifecycleError::Key(e.to_string()))?;
        let public_jwk =
            serde_json::to_value(&public).map_err(|e| LifecycleError::Key(e.to_string()))?;
        let private = key
            .to_private_jwk_json()
            .map_err(|e| LifecycleError::Key(e.to_string()))?;
        let sealed = self.kek.seal(&kid, private.as_bytes())?;
        Ok(KeyRow {
            kid,
            alg,
            state,
            public_jwk,
            private_sealed: Some(sealed),
            created_at: now,
            activate_at,
            activated_at: (state == KeyState::Active).then_some(now),
            retired_at: None,
            remove_at: None,
            removed_at: None,
            compromised_at: None,
        })
    }

    /// Reads the table and builds what the hot path needs, reusing the
    /// already decrypted signers of `previous` for unchanged kids.
    ///
    /// # Errors
    /// On storage failure or a sealed key that does not open.
    pub(crate) async fn load(&self, previous: Option<&KeyRing>) -> Result<KeyRing, LifecycleError> {
        let rows = self.store.keys().await?;
        let mut signers = HashMap::new();
        let mut published = Vec::new();
        for row in &rows {
            if row.state.is_published() {
                published.push(row.public_jwk.clone());
            }
            if row.state != KeyState::Active {
                continue;
            }
            if let Some(prev) = previous
                .and_then(|p| p.signers.get(&row.alg))
                .filter(|s| s.kid == row.kid)
            {
                signers.insert(row.alg, Arc::clone(prev));
                continue;
            }
            // One key that does not open must not stop the reload: the
            // ring is rebuilt from the table either way, so a key the
            // table no longer calls active never keeps signing here. Its
            // algorithm has no signer until the problem is fixed (the
            // token endpoint answers 503, /readyz fails).
            let key = match self.open_signing_key(row) {
                Ok(key) => key,
                Err(e) => {
                    tracing::error!(kid = %row.kid, error = %e, "active key cannot be loaded; not signing with this algorithm");
                    continue;
                }
            };
            signers.insert(
                row.alg,
                Arc::new(ActiveKey {
                    kid: row.kid.clone(),
                    alg: row.alg,
                    activated_at: row.activated_at.unwrap_or(row.created_at).secs(),
                    signer: Signer::new(key).typ("at+jwt"),
                }),
            );
        }
        let body = serde_json::to_vec(&serde_json::json!({ "keys": published }))
            .map_err(|e| LifecycleError::Key(e.to_string()))?;
        // The server's own view of its published keys, to recognise its
        // tokens (revocation, introspection).
        let verify_keys = std::str::from_utf8(&body)
            .ok()
            .and_then(|text| tessera_jose::JwkSet::parse(text).ok())
            .and_then(|set| tessera_jose::KeySet::from_jwks(&set, &[]).ok())
            .unwrap_or_else(|| tessera_jose::KeySet::new(Vec::new()));
        let version = jwks_version(&body).into();
        let next_change = rows
            .iter()
            .filter_map(|r| match r.state {
                KeyState::Pending => Some(r.activate_at),
                KeyState::Retired => r.remove_at,
                _ => None,
            })
            .min()
            .map(UnixTime::secs);
        Ok(KeyRing {
            verify_keys,
            signers,
            primary: self.settings.algorithms.first().copied(),
            jwks: body.into(),
            version,
            next_change,
        })
    }
}

async fn insert(tx: &mut crate::store::KeyTx, row: &KeyRow) -> Result<(), LifecycleError> {
    tx.insert(row).await.map_err(|e| {
        if e.is_conflict() {
            LifecycleError::Raced
        } else {
            e.into()
        }
    })
}

fn expect(updated: bool) -> Result<(), LifecycleError> {
    if updated {
        Ok(())
    } else {
        Err(LifecycleError::Raced)
    }
}

/// The signing key of one algorithm.
pub(crate) struct ActiveKey {
    /// Its kid.
    pub kid: String,
    /// Its algorithm.
    pub alg: Algorithm,
    /// When it started signing.
    pub activated_at: i64,
    /// The signer (header `typ: at+jwt`, `kid`).
    pub signer: Signer,
}

impl fmt::Debug for ActiveKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActiveKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Names a published key set: the base64url of the first 16 bytes of the
/// SHA-256 of its JSON document. Two rings with equal versions publish the
/// same document (the HTTP layer quotes it as the JWKS's strong ETag).
pub(crate) fn jwks_version(document: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, document);
    tessera_jose::b64::encode(&digest.as_ref()[..16])
}

/// What the hot path reads: swapped whole, never locked.
pub(crate) struct KeyRing {
    /// The published keys, to verify this server's own tokens.
    pub verify_keys: tessera_jose::KeySet,
    /// Active key per algorithm.
    pub signers: HashMap<Algorithm, Arc<ActiveKey>>,
    /// The algorithm access tokens are signed with.
    pub primary: Option<Algorithm>,
    /// The published key set, `{"keys": [...]}` as JSON (public keys only).
    pub jwks: Arc<[u8]>,
    /// [`jwks_version`] of `jwks`: what caches of this key set are keyed by.
    pub version: Arc<str>,
    /// The earliest scheduled transition, if any.
    pub next_change: Option<i64>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("verify_keys", &self.verify_keys)
            .field("signers", &self.signers)
            .field("primary", &self.primary)
            .field("version", &self.version)
            .field("next_change", &self.next_change)
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// The key access tokens are signed with now.
    pub(crate) fn primary(&self) -> Option<&Arc<ActiveKey>> {
        self.primary.and_then(|alg| self.signers.get(&alg))
    }
}

#[cfg(test)]
mod tests {
    use super::jwks_version;

    #[test]
    fn version_is_base64url_of_a_sha256_prefix() {
        // base64url(SHA-256(`{"keys":[]}`)[..16]), computed independently.
        assert_eq!(jwks_version(br#"{"keys":[]}"#), "ljjRGRRzXQByAC3U1nxzSg");
        let v = jwks_version(b"any document");
        assert_eq!(v.len(), 22);
        assert!(v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(v, jwks_version(b"any document "));
    }
}
