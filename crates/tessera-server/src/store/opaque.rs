//! Opaque access tokens (`tso_` handles): stored only as a hash, with the
//! claims that introspection answers with.

use sqlx::Row as _;

use super::revocations;
use super::{Store, StoreError};

impl Store {
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
        delete(&mut tx, OpaqueBy::Hash, hash, now).await?;
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
}

/// Which opaque tokens [`delete`] deletes.
#[derive(Debug, Clone, Copy)]
pub(super) enum OpaqueBy {
    /// One token, by its hash.
    Hash,
    /// A refresh-token family's.
    Family,
    /// A client's.
    Client,
}

/// Deletes opaque access tokens inside the caller's transaction and lists
/// every token exchanged from them (the phantom-token pattern's JWTs):
/// (deleted, newly listed). Exactly the rows deleted are walked: a token
/// exchange recording a derived token holds its opaque parent until it
/// commits.
pub(super) async fn delete(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    by: OpaqueBy,
    value: &str,
    now: i64,
) -> Result<(u64, u64), StoreError> {
    let column = match by {
        OpaqueBy::Hash => "token_hash",
        OpaqueBy::Family => "family",
        OpaqueBy::Client => "client_id",
    };
    let parents: Vec<String> = sqlx::query(&format!(
        "DELETE FROM opaque_tokens WHERE {column} = $1 RETURNING token_hash"
    ))
    .bind(value)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| Ok::<_, StoreError>(revocations::opaque_parent(&r.try_get::<String, _>(0)?)))
    .collect::<Result<_, _>>()?;
    let deleted = parents.len() as u64;
    Ok((
        deleted,
        revocations::revoke_derived(tx, parents, now).await?,
    ))
}
