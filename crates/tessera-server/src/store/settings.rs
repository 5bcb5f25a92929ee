//! Settings (values set once, shared by every node: the KEK check, the
//! admin token's hash) and the audit log.

use sqlx::Row as _;
use tessera_jose::UnixTime;

use super::{Store, StoreError};

/// One entry of the audit log, to append: who did what to which kid or
/// client, and when.
#[derive(Debug, Clone, Copy)]
pub struct AuditEntry<'a> {
    /// When.
    pub at: UnixTime,
    /// Who: a client id, `admin`, `scheduler`, `startup`.
    pub actor: &'a str,
    /// What, e.g. `key_retired`.
    pub action: &'a str,
    /// To which kid, client, jti or family.
    pub subject: &'a str,
}

/// One entry of the audit log, as read back.
#[cfg(any(test, feature = "test-util"))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// When.
    pub at: UnixTime,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// To which kid, client, jti or family.
    pub subject: String,
}

impl Store {
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

    /// Appends to the audit log.
    ///
    /// # Errors
    /// On database failure.
    pub async fn audit(&self, entry: &AuditEntry<'_>) -> Result<(), StoreError> {
        audit(&self.pool, entry).await
    }

    /// Deletes audit entries older than `before`.
    ///
    /// # Errors
    /// On database failure.
    pub async fn purge_audit(&self, before: UnixTime) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM audit_log WHERE at < $1")
            .bind(before.secs())
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// The newest `limit` audit entries, newest first. Only tests read the
    /// log back; operators read the table.
    ///
    /// # Errors
    /// On database failure.
    #[cfg(any(test, feature = "test-util"))]
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, actor, action, subject FROM audit_log ORDER BY at DESC, id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRecord {
                    at: super::time(r, 0)?,
                    actor: r.try_get(1)?,
                    action: r.try_get(2)?,
                    subject: r.try_get(3)?,
                })
            })
            .collect()
    }
}

/// Appends to the audit log through `exec` (the pool or a transaction).
pub(super) async fn audit<'e, E>(exec: E, entry: &AuditEntry<'_>) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO audit_log (id, at, actor, action, subject) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(crate::random_id(16))
    .bind(entry.at.secs())
    .bind(entry.actor)
    .bind(entry.action)
    .bind(entry.subject)
    .execute(exec)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests;
