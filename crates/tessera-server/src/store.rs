//! Storage: one set of queries and migrations for SQLite and PostgreSQL,
//! through sqlx's `Any` driver, chosen by the database URL.
//!
//! Only TEXT and BIGINT columns and `$N` placeholders (which both engines
//! read, numbered in order of first use) keep the SQL portable.

use std::fmt;
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Row as _};

use crate::lifecycle::{KeyRow, KeyState};

mod refresh;
mod revocations;

pub use refresh::{FamilyAccess, Issue, Presented, RefreshOutcome, RefreshRow};
pub use revocations::{opaque_parent, Derived, FeedEntry, RevokedAll, RuleKind, TokenFacts};

/// A database failure. The detail is for the log, never for a client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or the query failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A row holds a value this version cannot read.
    #[error("database row: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the failure is a unique-constraint violation (another node
    /// did the same thing first).
    pub fn is_conflict(&self) -> bool {
        match self {
            Self::Db(sqlx::Error::Database(e)) => {
                e.is_unique_violation()
                    // SQLite: SQLITE_BUSY, BUSY_RECOVERY, BUSY_SNAPSHOT (a
                    // write after another connection's commit);
                    // PostgreSQL: serialization failure, deadlock.
                    || matches!(e.code().as_deref(), Some("5" | "261" | "517" | "40001" | "40P01"))
            }
            _ => false,
        }
    }
}

/// The connection pool.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    sqlite: bool,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: never printed.
        f.debug_struct("Store")
            .field("backend", &if self.sqlite { "sqlite" } else { "postgres" })
            .finish_non_exhaustive()
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// One registered client as stored.
#[derive(Debug, Clone)]
pub struct ClientRow {
    /// The client id.
    pub client_id: String,
    /// Metadata JSON.
    pub metadata: String,
    /// SHA-256 of the secret, base64url.
    pub secret_hash: Option<String>,
    /// Registration time.
    pub created_at: i64,
}

impl Store {
    /// Connects and brings the schema up to date.
    ///
    /// # Errors
    /// When the database cannot be reached or migrated.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        let options = AnyConnectOptions::from_str(url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if sqlite {
                        // WAL lets readers run beside the writer; the busy
                        // timeout queues writers instead of failing them.
                        sqlx::query("PRAGMA busy_timeout = 5000")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool, sqlite })
    }

    /// Whether this is the SQLite backend.
    pub fn is_sqlite(&self) -> bool {
        self.sqlite
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A trivial query: is the database there?
    ///
    /// # Errors
    /// When it is not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    // ---- keys ----

    /// Every key row, oldest first.
    ///
    /// # Errors
    /// On database failure or an unreadable row.
    pub async fn keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        let rows = sqlx::query(KEY_SELECT).fetch_all(&self.pool).await?;
        rows.iter().map(key_row).collect()
    }

    /// Starts a transaction for a key transition.
    ///
    /// # Errors
    /// On database failure.
    pub async fn begin(&self) -> Result<KeyTx, StoreError> {
        Ok(KeyTx {
            tx: self.write_tx().await?,
            sqlite: self.sqlite,
        })
    }

    /// A transaction that will write. On SQLite it takes the write lock at
    /// once (`BEGIN IMMEDIATE`), so concurrent writers queue on the busy
    /// timeout instead of failing when a read lock cannot be upgraded.
    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        Ok(if self.sqlite {
            self.pool.begin_with("BEGIN IMMEDIATE").await?
        } else {
            self.pool.begin().await?
        })
    }

    // ---- clients ----

    /// Registers a client.
    ///
    /// # Errors
    /// On database failure (a duplicate id is a conflict).
    pub async fn insert_client(&self, row: &ClientRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO clients (client_id, metadata, secret_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&row.client_id)
        .bind(&row.metadata)
        .bind(row.secret_hash.as_deref())
        .bind(row.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every client, oldest first.
    ///
    /// # Errors
    /// On database failure.
    pub async fn clients(&self) -> Result<Vec<ClientRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT client_id, metadata, secret_hash, created_at FROM clients ORDER BY created_at, client_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ClientRow {
                    client_id: r.try_get(0)?,
                    metadata: r.try_get(1)?,
                    secret_hash: r.try_get(2)?,
                    created_at: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Deletes a client; false when there was none.
    ///
    /// # Errors
    /// On database failure.
    pub async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM clients WHERE client_id = $1")
            .bind(client_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a private_key_jwt assertion's jti; false when it was seen
    /// before (a replay). Expired entries are purged on the way (by the
    /// index on their expiry, migration 0008).
    ///
    /// # Errors
    /// On database failure.
    pub async fn use_assertion(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        sqlx::query("DELETE FROM used_assertions WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        let done = sqlx::query(
            "INSERT INTO used_assertions (client_id, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(client_id)
        .bind(jti)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    // ---- opaque access tokens ----

    /// Stores an opaque access token (its hash) with its claims. One issued
    /// with a refresh-token family is stored with the family instead (see
    /// [`FamilyAccess::Opaque`]), so that revoking the family deletes it.
    ///
    /// # Errors
    /// On database failure.
    pub async fn insert_opaque(
        &self,
        hash: &str,
        client_id: &str,
        claims: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO opaque_tokens (token_hash, client_id, claims, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(hash)
            .bind(client_id)
            .bind(claims)
            .bind(now)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// An opaque token's (client_id, claims JSON, expires_at).
    ///
    /// # Errors
    /// On database failure.
    pub async fn opaque(&self, hash: &str) -> Result<Option<(String, String, i64)>, StoreError> {
        let row = sqlx::query(
            "SELECT client_id, claims, expires_at FROM opaque_tokens WHERE token_hash = $1",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => Some((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)),
            None => None,
        })
    }

    /// Deletes an opaque token if `client_id` owns it: None when unknown,
    /// Some(false) when another client's.
    ///
    /// # Errors
    /// On database failure.
    pub async fn delete_opaque(
        &self,
        hash: &str,
        client_id: &str,
        now: i64,
    ) -> Result<Option<bool>, StoreError> {
        let Some((owner, _, _)) = self.opaque(hash).await? else {
            return Ok(None);
        };
        if owner != client_id {
            return Ok(Some(false));
        }
        let mut tx = self.write_tx().await?;
        revocations::lock_revocations(&mut tx, self.sqlite).await?;
        revocations::delete_opaque(&mut tx, revocations::OpaqueBy::Hash, hash, now).await?;
        tx.commit().await?;
        Ok(Some(true))
    }

    /// Deletes expired opaque tokens.
    ///
    /// # Errors
    /// On database failure.
    pub async fn purge_opaque(&self, now: i64) -> Result<u64, StoreError> {
        Ok(
            sqlx::query("DELETE FROM opaque_tokens WHERE expires_at < $1")
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    /// Deletes what has expired: deny-list entries, ended refresh families
    /// and the records of their access tokens, opaque tokens, and audit
    /// entries older than `audit_retention` seconds. The periodic refresh
    /// of every node runs it.
    ///
    /// # Errors
    /// On database failure (what was purged before it stays purged).
    pub async fn purge_expired(&self, now: i64, audit_retention: i64) -> Result<(), StoreError> {
        self.purge_revocations(now).await?;
        self.purge_refresh(now).await?;
        self.purge_opaque(now).await?;
        self.purge_audit(now.saturating_sub(audit_retention))
            .await?;
        Ok(())
    }

    // ---- settings and audit ----

    /// A setting's value.
    ///
    /// # Errors
    /// On database failure.
    pub async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }

    /// Sets a setting unless it is already set; true when this call set it.
    ///
    /// # Errors
    /// On database failure.
    pub async fn set_setting_once(&self, name: &str, value: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Appends to the audit log (who did what to which kid or client).
    ///
    /// # Errors
    /// On database failure.
    pub async fn audit(
        &self,
        at: i64,
        actor: &str,
        action: &str,
        subject: &str,
    ) -> Result<(), StoreError> {
        audit(&self.pool, at, actor, action, subject).await
    }

    /// Deletes audit entries older than `before`.
    ///
    /// # Errors
    /// On database failure.
    pub async fn purge_audit(&self, before: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM audit_log WHERE at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// The newest audit entries, newest first: (at, actor, action, subject).
    ///
    /// # Errors
    /// On database failure.
    pub async fn audit_log(
        &self,
        limit: i64,
    ) -> Result<Vec<(i64, String, String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, actor, action, subject FROM audit_log ORDER BY at DESC, id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
            .collect()
    }
}

async fn audit<'e, E>(
    exec: E,
    at: i64,
    actor: &str,
    action: &str,
    subject: &str,
) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO audit_log (id, at, actor, action, subject) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(crate::random_id(16))
    .bind(at)
    .bind(actor)
    .bind(action)
    .bind(subject)
    .execute(exec)
    .await?;
    Ok(())
}

const KEY_SELECT: &str = "SELECT kid, alg, state, public_jwk, private_sealed, created_at, activate_at, activated_at, retired_at, remove_at, removed_at, compromised_at FROM signing_keys ORDER BY created_at, kid";

fn key_row(r: &sqlx::any::AnyRow) -> Result<KeyRow, StoreError> {
    let alg: String = r.try_get(1)?;
    let state: String = r.try_get(2)?;
    Ok(KeyRow {
        kid: r.try_get(0)?,
        alg: tessera_jose::Algorithm::from_name(&alg)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown algorithm {alg:?}")))?,
        state: KeyState::from_name(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown key state {state:?}")))?,
        public_jwk: r.try_get(3)?,
        private_sealed: r.try_get(4)?,
        created_at: r.try_get(5)?,
        activate_at: r.try_get(6)?,
        activated_at: r.try_get(7)?,
        retired_at: r.try_get(8)?,
        remove_at: r.try_get(9)?,
        removed_at: r.try_get(10)?,
        compromised_at: r.try_get(11)?,
    })
}

/// A transaction over the key table: every key transition is one of these,
/// so a node that loses a race changes nothing.
#[derive(Debug)]
pub struct KeyTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    sqlite: bool,
}

impl KeyTx {
    /// Every key row, as this transaction sees them.
    ///
    /// # Errors
    /// On database failure.
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
        .bind(&row.public_jwk)
        .bind(row.private_sealed.as_deref())
        .bind(row.created_at)
        .bind(row.activate_at)
        .bind(row.activated_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// pending -> active. False when the key was no longer pending.
    ///
    /// # Errors
    /// On database failure or a conflicting active key.
    pub async fn activate(&mut self, kid: &str, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE signing_keys SET state = 'active', activated_at = $1 WHERE kid = $2 AND state = 'pending'",
        )
        .bind(now)
        .bind(kid)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// active -> retired until `remove_at`. False when it was not active.
    ///
    /// # Errors
    /// On database failure.
    pub async fn retire(
        &mut self,
        kid: &str,
        now: i64,
        remove_at: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE signing_keys SET state = 'retired', retired_at = $1, remove_at = $2 WHERE kid = $3 AND state = 'active'",
        )
        .bind(now)
        .bind(remove_at)
        .bind(kid)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// retired or pending -> removed, destroying the private part.
    ///
    /// # Errors
    /// On database failure.
    pub async fn remove(&mut self, kid: &str, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE signing_keys SET state = 'removed', removed_at = $1, private_sealed = NULL WHERE kid = $2 AND state IN ('retired', 'pending')",
        )
        .bind(now)
        .bind(kid)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// `from` (a published state) -> compromised, destroying the private
    /// part. False when the key is no longer in state `from`.
    ///
    /// # Errors
    /// On database failure.
    pub async fn compromise(
        &mut self,
        kid: &str,
        from: KeyState,
        now: i64,
    ) -> Result<bool, StoreError> {
        if !from.is_published() {
            return Ok(false);
        }
        let done = sqlx::query(
            "UPDATE signing_keys SET state = 'compromised', compromised_at = $1, private_sealed = NULL WHERE kid = $2 AND state = $3",
        )
        .bind(now)
        .bind(kid)
        .bind(from.name())
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
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
    pub async fn revoke_kid(
        &mut self,
        kid: &str,
        actor: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<i64, StoreError> {
        let (seq, _) = revocations::list(
            &mut self.tx,
            RuleKind::Kid,
            kid,
            actor,
            None,
            expires_at,
            now,
        )
        .await?;
        let parents = revocations::derived_by(&mut self.tx, "parent_kid", kid).await?;
        revocations::revoke_derived(&mut self.tx, parents, now).await?;
        Ok(seq)
    }

    /// Appends to the audit log inside the transaction.
    ///
    /// # Errors
    /// On database failure.
    pub async fn audit(
        &mut self,
        at: i64,
        actor: &str,
        action: &str,
        subject: &str,
    ) -> Result<(), StoreError> {
        audit(&mut *self.tx, at, actor, action, subject).await
    }

    /// Commits.
    ///
    /// # Errors
    /// On database failure (a serialization failure means another node won).
    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }
}
