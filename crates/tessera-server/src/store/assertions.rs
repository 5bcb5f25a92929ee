//! The jtis of client assertions already used (RFC 7523 §3: a jti is
//! accepted once), kept until the assertion expires.

use tessera_jose::UnixTime;

use super::{Store, StoreError};

/// A client assertion's jti, presented now.
#[derive(Debug, Clone, Copy)]
pub struct UsedAssertion<'a> {
    /// The client that signed it.
    pub client_id: &'a str,
    /// Its jti (as the caller namespaces it).
    pub jti: &'a str,
    /// Until when a replay must be refused: its exp plus the leeway.
    pub expires_at: UnixTime,
    /// Now: entries expired before it are purged on the way.
    pub now: UnixTime,
}

impl Store {
    /// Records a client assertion's jti; false when it was seen before (a
    /// replay). Expired entries are purged on the way (by the index on
    /// their expiry, migration 0008).
    ///
    /// # Errors
    /// On database failure.
    pub async fn use_assertion(&self, used: &UsedAssertion<'_>) -> Result<bool, StoreError> {
        sqlx::query("DELETE FROM used_assertions WHERE expires_at < $1")
            .bind(used.now.secs())
            .execute(&self.pool)
            .await?;
        let done = sqlx::query(
            "INSERT INTO used_assertions (client_id, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(used.client_id)
        .bind(used.jti)
        .bind(used.expires_at.secs())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests;
