//! Settings (values set once, shared by every node: the KEK check, the
//! admin token's hash) and the audit log.

use sqlx::Row as _;

use super::{Store, StoreError};

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

/// Appends to the audit log through `exec` (the pool or a transaction).
pub(super) async fn audit<'e, E>(
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
