//! Signing keys: the rows of the key table, and the transaction every key
//! transition runs in ([`KeyTx`]). Which transition is due is decided in
//! `lifecycle.rs`; here each one is an update conditional on the state it
//! read, and the schema's partial unique indexes allow one active and one
//! pending key per algorithm, so a node that loses a race changes nothing.

use std::fmt;

use serde_json::Value;
use sqlx::Row as _;
use tessera_jose::{Algorithm, UnixTime};

use super::revocations::{self, DerivedBy, Listing, RuleKind};
use super::settings::{audit, AuditEntry};
use super::{Store, StoreError};

/// Where a key is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// Published in the JWKS, not signing yet.
    Pending,
    /// Signing (one per algorithm) and published.
    Active,
    /// Published for the grace period, no longer signing.
    Retired,
    /// Gone from the JWKS; private part destroyed.
    Removed,
    /// Gone from the JWKS at once; private part destroyed.
    Compromised,
}

impl KeyState {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Retired => "retired",
            Self::Removed => "removed",
            Self::Compromised => "compromised",
        }
    }

    /// Parses a stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "pending" => Self::Pending,
            "active" => Self::Active,
            "retired" => Self::Retired,
            "removed" => Self::Removed,
            "compromised" => Self::Compromised,
            _ => return None,
        })
    }

    /// Whether keys in this state are in the JWKS.
    pub fn is_published(self) -> bool {
        matches!(self, Self::Pending | Self::Active | Self::Retired)
    }
}

/// One row of the key table.
#[derive(Clone)]
pub struct KeyRow {
    /// RFC 7638 thumbprint.
    pub kid: String,
    /// The one algorithm the key is bound to.
    pub alg: Algorithm,
    /// Lifecycle state.
    pub state: KeyState,
    /// Public JWK (with kid, alg, use).
    pub public_jwk: Value,
    /// The sealed private JWK, or None once destroyed.
    pub private_sealed: Option<String>,
    /// Created.
    pub created_at: UnixTime,
    /// When it starts (or started) signing.
    pub activate_at: UnixTime,
    /// When it did start signing.
    pub activated_at: Option<UnixTime>,
    /// When it stopped signing.
    pub retired_at: Option<UnixTime>,
    /// When it leaves the JWKS.
    pub remove_at: Option<UnixTime>,
    /// When it left the JWKS.
    pub removed_at: Option<UnixTime>,
    /// When it was marked compromised.
    pub compromised_at: Option<UnixTime>,
}

impl fmt::Debug for KeyRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRow")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("state", &self.state)
            .field("activate_at", &self.activate_at)
            .finish_non_exhaustive()
    }
}

/// Who makes a key transition, and when: what its updates and audit
/// entries record.
#[derive(Debug, Clone, Copy)]
pub struct Transition<'a> {
    /// `scheduler`, `admin`, ...
    pub actor: &'a str,
    /// Now.
    pub now: UnixTime,
}

impl Store {
    /// Every key row, oldest first.
    ///
    /// # Errors
    /// On database failure or an unreadable row ([`StoreError::Corrupt`]:
    /// an unknown algorithm or state, a public key that is not JSON).
    pub async fn keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        let rows = sqlx::query(KEY_SELECT).fetch_all(&self.pool).await?;
        rows.iter().map(key_row).collect()
    }

    /// Starts the transaction of a key transition.
    ///
    /// # Errors
    /// On database failure.
    pub async fn begin(&self, by: Transition<'_>) -> Result<KeyTx, StoreError> {
        Ok(KeyTx {
            tx: self.write_tx().await?,
            sqlite: self.sqlite,
            changed: false,
            actor: by.actor.to_owned(),
            now: by.now,
        })
    }
}

const KEY_SELECT: &str = "SELECT kid, alg, state, public_jwk, private_sealed, created_at, activate_at, activated_at, retired_at, remove_at, removed_at, compromised_at FROM signing_keys ORDER BY created_at, kid";

fn key_row(r: &sqlx::any::AnyRow) -> Result<KeyRow, StoreError> {
    let kid: String = r.try_get(0)?;
    let alg: String = r.try_get(1)?;
    let state: String = r.try_get(2)?;
    Ok(KeyRow {
        alg: Algorithm::from_name(&alg)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown algorithm {alg:?}")))?,
        state: KeyState::from_name(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown key state {state:?}")))?,
        public_jwk: super::json(r, 3, &format!("stored public key {kid}"))?,
        private_sealed: r.try_get(4)?,
        created_at: super::time(r, 5)?,
        activate_at: super::time(r, 6)?,
        activated_at: super::maybe_time(r, 7)?,
        retired_at: super::maybe_time(r, 8)?,
        remove_at: super::maybe_time(r, 9)?,
        removed_at: super::maybe_time(r, 10)?,
        compromised_at: super::maybe_time(r, 11)?,
        kid,
    })
}

/// A transaction over the key table: every key transition is one of these,
/// so a node that loses a race changes nothing. What it writes happens at
/// its [`Transition`]'s time, by its actor.
#[derive(Debug)]
pub struct KeyTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    sqlite: bool,
    /// Whether a key row was written: the commit then tells the other
    /// nodes (see [`KeyTx::commit`]).
    changed: bool,
    actor: String,
    now: UnixTime,
}

impl KeyTx {
    /// Every key row, as this transaction sees them.
    ///
    /// # Errors
    /// On database failure or an unreadable row.
    pub async fn keys(&mut self) -> Result<Vec<KeyRow>, StoreError> {
        let rows = sqlx::query(KEY_SELECT).fetch_all(&mut *self.tx).await?;
        rows.iter().map(key_row).collect()
    }

    /// Inserts a new key (pending or active).
    ///
    /// # Errors
    /// A conflict when the algorithm already has a key in that state.
    pub async fn insert(&mut self, row: &KeyRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, state, public_jwk, private_sealed, created_at, activate_at, activated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&row.kid)
        .bind(row.alg.name())
        .bind(row.state.name())
        .bind(row.public_jwk.to_string())
        .bind(row.private_sealed.as_deref())
        .bind(row.created_at.secs())
        .bind(row.activate_at.secs())
        .bind(row.activated_at.map(UnixTime::secs))
        .execute(&mut *self.tx)
        .await?;
        self.changed = true;
        Ok(())
    }

    /// pending -> active, now. False when the key was no longer pending.
    ///
    /// # Errors
    /// On database failure or a conflicting active key.
    pub async fn activate(&mut self, kid: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE signing_keys SET state = 'active', activated_at = $1 WHERE kid = $2 AND state = 'pending'",
        )
        .bind(self.now.secs())
        .bind(kid)
        .execute(&mut *self.tx)
        .await?;
        Ok(self.wrote(done.rows_affected()))
    }

    /// Brings a pending key's activation forward to `activate_at` (a
    /// manual rotation, or a shortened rotation period); never later.
    /// False when the key is no longer pending or already due by then.
    ///
    /// # Errors
    /// On database failure.
    pub async fn bring_forward(
        &mut self,
        kid: &str,
        activate_at: UnixTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE signing_keys SET activate_at = $1 WHERE kid = $2 AND state = 'pending' AND activate_at > $1",
        )
        .bind(activate_at.secs())
        .bind(kid)
        .execute(&mut *self.tx)
        .await?;
        // A change other nodes must hear of: it moves their next wake-up.
        Ok(self.wrote(done.rows_affected()))
    }

    /// active -> retired now, published until `remove_at`. False when it
    /// was not active.
    ///
    /// # Errors
    /// On database failure.
    pub async fn retire(&mut self, kid: &str, remove_at: UnixTime) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE signing_keys SET state = 'retired', retired_at = $1, remove_at = $2 WHERE kid = $3 AND state = 'active'",
        )
        .bind(self.now.secs())
        .bind(remove_at.secs())
        .bind(kid)
        .execute(&mut *self.tx)
        .await?;
        Ok(self.wrote(done.rows_affected()))
    }

    /// retired or pending -> removed now, destroying the private part.
    ///
    /// # Errors
    /// On database failure.
    pub async fn remove(&mut self, kid: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE signing_keys SET state = 'removed', removed_at = $1, private_sealed = NULL WHERE kid = $2 AND state IN ('retired', 'pending')",
        )
        .bind(self.now.secs())
        .bind(kid)
        .execute(&mut *self.tx)
        .await?;
        Ok(self.wrote(done.rows_affected()))
    }

    /// `from` (a published state) -> compromised, destroying the private
    /// part. False when the key is no longer in state `from`.
    ///
    /// # Errors
    /// On database failure.
    pub async fn compromise(&mut self, kid: &str, from: KeyState) -> Result<bool, StoreError> {
        if !from.is_published() {
            return Ok(false);
        }
        let done = sqlx::query(
            "UPDATE signing_keys SET state = 'compromised', compromised_at = $1, private_sealed = NULL WHERE kid = $2 AND state = $3",
        )
        .bind(self.now.secs())
        .bind(kid)
        .bind(from.name())
        .execute(&mut *self.tx)
        .await?;
        Ok(self.wrote(done.rows_affected()))
    }

    /// Takes the revocation lock: first, in a transaction that will revoke
    /// (see [`KeyTx::revoke_kid`]), before any key row.
    ///
    /// # Errors
    /// On database failure.
    pub async fn lock_revocations(&mut self) -> Result<(), StoreError> {
        revocations::lock_revocations(&mut self.tx, self.sqlite).await
    }

    /// Lists every token signed by `kid` on the deny-list until
    /// `expires_at` (followers refuse them at once, without waiting for
    /// their key set to drop the key), with every token exchanged from
    /// them; returns the entry's sequence number.
    ///
    /// # Errors
    /// On database failure.
    pub async fn revoke_kid(&mut self, kid: &str, expires_at: UnixTime) -> Result<i64, StoreError> {
        let listing = Listing {
            kind: RuleKind::Kid,
            target: kid,
            actor: &self.actor,
            not_before: None,
            expires_at,
            now: self.now,
        };
        let (seq, _) = revocations::list(&mut self.tx, &listing).await?;
        let parents = revocations::derived_by(&mut self.tx, DerivedBy::Kid(kid)).await?;
        revocations::revoke_derived(&mut self.tx, parents, self.now).await?;
        Ok(seq)
    }

    /// Records `action` on `subject` (a kid) in the audit log, inside the
    /// transaction.
    ///
    /// # Errors
    /// On database failure.
    pub async fn audit(&mut self, action: &str, subject: &str) -> Result<(), StoreError> {
        let entry = AuditEntry {
            at: self.now,
            actor: &self.actor,
            action,
            subject,
        };
        audit(&mut *self.tx, &entry).await
    }

    /// Whether one row was updated; remembers that a key changed.
    fn wrote(&mut self, rows: u64) -> bool {
        self.changed |= rows > 0;
        rows == 1
    }

    /// Commits. On PostgreSQL a transaction that changed a key row also
    /// sends a notification to the nodes listening on this schema
    /// (`key_changes`), inside the transaction: PostgreSQL delivers it at
    /// the commit and not at all after a rollback, so no node reloads
    /// before the change is visible, nor for a change that did not happen.
    ///
    /// # Errors
    /// On database failure (a serialization failure means another node won).
    pub async fn commit(mut self) -> Result<(), StoreError> {
        if self.changed && !self.sqlite {
            super::key_changes::notify(&mut self.tx).await?;
        }
        self.tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
