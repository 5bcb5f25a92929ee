//! The jtis of client assertions already used (RFC 7523 §3: a jti is
//! accepted once), kept until the assertion expires.

use super::{Store, StoreError};

impl Store {
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
}
