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
use crate::store::{KeyTx, Store, StoreError, Transition};

mod ring;

pub(crate) use ring::{jwks_version, ActiveKey, KeyRing};

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
            (None, next) => {
                // First start (no key at all), or recovery: nothing signs;
                // the published pending key takes over.
                self.switch(&mut tx, alg, next, now).await?;
                changed = true;
            }
            (Some(a), Some(p)) => {
                let at = self.scheduled(a, p);
                if at <= now {
                    if at < p.activate_at {
                        // The rotation period was shortened since `p` was
                        // made, and the earlier time has passed: the row
                        // says when it became due, so no key is ever
                        // recorded as signing before its `activate_at`.
                        expect(tx.bring_forward(&p.kid, at).await?)?;
                    }
                    self.retire(&mut tx, a, now).await?;
                    self.switch(&mut tx, alg, Some(p), now).await?;
                    changed = true;
                } else if at < p.activate_at {
                    // The rotation period was shortened since `p` was made.
                    expect(tx.bring_forward(&p.kid, at).await?)?;
                    changed = true;
                }
            }
            (Some(a), None) => {
                // The pending key was compromised, or the table predates
                // the always-published next key. Published at least
                // `prepublish` before it signs, even when that is later
                // than the rotation period asks.
                let due = activated(a).saturating_add(self.settings.rotation_period);
                let at = due.max(now.saturating_add(self.settings.prepublish));
                self.publish_next(&mut tx, alg, now, at).await?;
                changed = true;
            }
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

    /// Manual rotation of `alg`. `immediate`: the pending key (published
    /// since its predecessor started signing) signs now, the active key
    /// retires, and the next key is published. Otherwise the scheduled
    /// switch is brought forward to the earliest moment the prepublish
    /// promise allows: `prepublish` after the pending key was made, at once
    /// if that has passed; asked again, the same answer.
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
        let earliest = pending.map(|p| {
            let published = p.created_at.saturating_add(self.settings.prepublish);
            p.activate_at.min(published.max(now))
        });
        let rotation = match (pending, earliest) {
            (Some(p), Some(at)) if !immediate && at > now => {
                if at < p.activate_at {
                    expect(tx.bring_forward(&p.kid, at).await?)?;
                    tx.audit("key_brought_forward", &p.kid).await?;
                }
                Rotation {
                    alg: alg.name(),
                    kid: p.kid.clone(),
                    activate_at: at.secs(),
                    retired: None,
                }
            }
            (None, _) if !immediate => {
                // Only when the pending key was compromised since the last
                // tick (or the table predates the always-published next
                // key): a new key signs after `prepublish`.
                let at = now.saturating_add(self.settings.prepublish);
                let kid = self.publish_next(&mut tx, alg, now, at).await?;
                Rotation {
                    alg: alg.name(),
                    kid,
                    activate_at: at.secs(),
                    retired: None,
                }
            }
            // Immediate, or the pending key has been published long enough:
            // the switch a scheduled rotation would make, now.
            _ => {
                if let Some(p) = pending.filter(|p| !immediate && p.activate_at > now) {
                    // Brought forward to now, as the answer says: the row
                    // must not show a key that signed before it was due.
                    expect(tx.bring_forward(&p.kid, now).await?)?;
                    tx.audit("key_brought_forward", &p.kid).await?;
                }
                let mut retired = None;
                if let Some(a) = active {
                    self.retire(&mut tx, a, now).await?;
                    retired = Some(a.kid.clone());
                }
                let kid = self.switch(&mut tx, alg, pending, now).await?;
                Rotation {
                    alg: alg.name(),
                    kid,
                    activate_at: now.secs(),
                    retired,
                }
            }
        };
        tx.commit().await?;
        Ok(rotation)
    }

    /// Marks `kid` compromised: it leaves the JWKS and, if it was signing,
    /// its successor (the pending key, already published) becomes active
    /// and the key after it is published; if it was the pending key,
    /// another is published in its place. All in one transaction.
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
        if self.settings.algorithms.contains(&key.alg) {
            match key.state {
                KeyState::Active => {
                    // The pending key has been in every verifier's JWKS
                    // since this one started signing.
                    let pending = keys
                        .iter()
                        .find(|k| k.alg == key.alg && k.state == KeyState::Pending);
                    successor = Some(self.switch(&mut tx, key.alg, pending, now).await?);
                }
                KeyState::Pending => {
                    // The next key leaked before it signed: another takes
                    // its place on its schedule, published at least
                    // `prepublish` before it signs.
                    let at = key
                        .activate_at
                        .max(now.saturating_add(self.settings.prepublish));
                    self.publish_next(&mut tx, key.alg, now, at).await?;
                }
                _ => {}
            }
        }
        tx.commit().await?;
        Ok(successor)
    }

    /// When the scheduled rotation activates `next`: its `activate_at`, or
    /// earlier when the rotation period was shortened since it was made,
    /// but never less than `prepublish` after it was published.
    fn scheduled(&self, active: &KeyRow, next: &KeyRow) -> UnixTime {
        let due = activated(active).saturating_add(self.settings.rotation_period);
        let published = next.created_at.saturating_add(self.settings.prepublish);
        next.activate_at.min(due.max(published))
    }

    /// active -> retired, published for the grace period.
    async fn retire(
        &self,
        tx: &mut KeyTx,
        active: &KeyRow,
        now: UnixTime,
    ) -> Result<(), LifecycleError> {
        let until = now.saturating_add(self.settings.grace);
        expect(tx.retire(&active.kid, until).await?)?;
        tx.audit("key_retired", &active.kid).await?;
        Ok(())
    }

    /// Makes `next` (the pending key; a fresh key only when none exists)
    /// sign `alg` from `now`, and publishes the key after it in the same
    /// transaction, due one rotation period later. So the next key always
    /// exists and is published: a compromise or an immediate rotation
    /// switches to a key every verifier already holds. Its kid.
    async fn switch(
        &self,
        tx: &mut KeyTx,
        alg: Algorithm,
        next: Option<&KeyRow>,
        now: UnixTime,
    ) -> Result<String, LifecycleError> {
        let kid = match next {
            Some(p) => {
                expect(tx.activate(&p.kid).await?)?;
                tx.audit("key_activated", &p.kid).await?;
                p.kid.clone()
            }
            None => {
                let row = self.new_key(alg, KeyState::Active, now, now)?;
                insert(tx, &row).await?;
                tx.audit("key_created_active", &row.kid).await?;
                row.kid
            }
        };
        // `rotation_period > prepublish` (checked at start): the key after
        // it is published long enough before it is due.
        let due = now.saturating_add(self.settings.rotation_period);
        self.publish_next(tx, alg, now, due).await?;
        Ok(kid)
    }

    /// A new pending key of `alg`, due at `activate_at`. Its kid.
    async fn publish_next(
        &self,
        tx: &mut KeyTx,
        alg: Algorithm,
        now: UnixTime,
        activate_at: UnixTime,
    ) -> Result<String, LifecycleError> {
        let row = self.new_key(alg, KeyState::Pending, now, activate_at)?;
        insert(tx, &row).await?;
        tx.audit("key_created_pending", &row.kid).await?;
        Ok(row.kid)
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

async fn insert(tx: &mut KeyTx, row: &KeyRow) -> Result<(), LifecycleError> {
    tx.insert(row).await.map_err(|e| {
        if e.is_conflict() {
            LifecycleError::Raced
        } else {
            e.into()
        }
    })
}

/// When `key` started signing (when it was made, if its row does not say).
fn activated(key: &KeyRow) -> UnixTime {
    key.activated_at.unwrap_or(key.created_at)
}

fn expect(updated: bool) -> Result<(), LifecycleError> {
    if updated {
        Ok(())
    } else {
        Err(LifecycleError::Raced)
    }
}
