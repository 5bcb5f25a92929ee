//! Registered clients: their metadata as stored, and the hash of their
//! secret (never the secret).

use serde_json::Value;
use sqlx::Row as _;
use tessera_jose::UnixTime;

use super::{Store, StoreError};

/// One registered client as stored.
#[derive(Debug, Clone)]
pub struct ClientRow {
    /// The client id.
    pub client_id: String,
    /// Its metadata (what `clients::Metadata` reads), as JSON.
    pub metadata: Value,
    /// SHA-256 of the secret, base64url.
    pub secret_hash: Option<String>,
    /// Registration time.
    pub created_at: UnixTime,
}

impl Store {
    /// Registers a client.
    ///
    /// # Errors
    /// On database failure (a duplicate id is a conflict).
    pub async fn insert_client(&self, row: &ClientRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO clients (client_id, metadata, secret_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&row.client_id)
        .bind(row.metadata.to_string())
        .bind(row.secret_hash.as_deref())
        .bind(row.created_at.secs())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every client, oldest first.
    ///
    /// # Errors
    /// On database failure, or [`StoreError::Corrupt`] when a client's
    /// metadata is not JSON.
    pub async fn clients(&self) -> Result<Vec<ClientRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT client_id, metadata, secret_hash, created_at FROM clients ORDER BY created_at, client_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let client_id: String = r.try_get(0)?;
                Ok(ClientRow {
                    metadata: super::json(r, 1, &format!("client {client_id}: metadata"))?,
                    client_id,
                    secret_hash: r.try_get(2)?,
                    created_at: super::time(r, 3)?,
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
}

#[cfg(test)]
mod tests;
