//! Opaque access tokens (`tso_` handles): stored only as a hash, with the
//! claims that introspection answers with.

use serde_json::{Map, Value};
use sqlx::Row as _;
use tessera_jose::UnixTime;

use super::revocations;
use super::{Store, StoreError};

/// An opaque access token to store.
#[derive(Debug, Clone, Copy)]
pub struct NewOpaque<'a> {
    /// SHA-256 of the handle, base64url (the handle itself is never stored).
    pub hash: &'a str,
    /// The client it is issued to.
    pub client_id: &'a str,
    /// Its claims, as introspection will answer with them.
    pub claims: &'a Map<String, Value>,
    /// When it is issued.
    pub now: UnixTime,
    /// Its exp.
    pub expires_at: UnixTime,
}

/// An opaque access token as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct OpaqueRow {
    /// The client it was issued to.
    pub client_id: String,
    /// Its claims.
    pub claims: Map<String, Value>,
    /// Its exp.
    pub expires_at: UnixTime,
}

impl Store {
    /// Stores an opaque access token (its hash) with its claims. One issued
    /// with a refresh-token family is stored with the family instead (see
    /// [`FamilyAccess::Opaque`](super::FamilyAccess::Opaque)), so that
    /// revoking the family deletes it.
    ///
    /// # Errors
    /// On database failure (a hash stored before is a conflict).
    pub async fn insert_opaque(&self, token: &NewOpaque<'_>) -> Result<(), StoreError> {
        insert(&self.pool, token, None).await
    }

    /// The opaque token with this hash.
    ///
    /// # Errors
    /// On database failure, or [`StoreError::Corrupt`] when its claims are
    /// not a JSON object.
    pub async fn opaque(&self, hash: &str) -> Result<Option<OpaqueRow>, StoreError> {
        let row = sqlx::query(
            "SELECT client_id, claims, expires_at FROM opaque_tokens WHERE token_hash = $1",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        Ok(Some(OpaqueRow {
            client_id: r.try_get(0)?,
            claims: super::json_object(&r, 1, "opaque token claims")?,
            expires_at: super::time(&r, 2)?,
        }))
    }

    /// Deletes an opaque token if `client_id` owns it, with every token
    /// exchanged from it: None when unknown, Some(false) when another
    /// client's. Its claims are not read, so even a corrupt row can be
    /// revoked.
    ///
    /// # Errors
    /// On database failure.
    pub async fn delete_opaque(
        &self,
        hash: &str,
        client_id: &str,
        now: UnixTime,
    ) -> Result<Option<bool>, StoreError> {
        let owner = sqlx::query("SELECT client_id FROM opaque_tokens WHERE token_hash = $1")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        let Some(owner) = owner else {
            return Ok(None);
        };
        if owner.try_get::<String, _>(0)? != client_id {
            return Ok(Some(false));
        }
        let mut tx = self.write_tx().await?;
        revocations::lock_revocations(&mut tx, self.sqlite).await?;
        delete(&mut tx, OpaqueBy::Hash(hash), now).await?;
        tx.commit().await?;
        Ok(Some(true))
    }

    /// Deletes the opaque tokens expired before `now`.
    ///
    /// # Errors
    /// On database failure.
    pub async fn purge_opaque(&self, now: UnixTime) -> Result<u64, StoreError> {
        Ok(
            sqlx::query("DELETE FROM opaque_tokens WHERE expires_at < $1")
                .bind(now.secs())
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }
}

/// Stores `token` through `exec` (the pool, or the transaction of the
/// refresh-token `family` it is issued with).
pub(super) async fn insert<'e, E>(
    exec: E,
    token: &NewOpaque<'_>,
    family: Option<&str>,
) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query("INSERT INTO opaque_tokens (token_hash, client_id, family, claims, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(token.hash)
        .bind(token.client_id)
        .bind(family)
        .bind(super::object_text(token.claims)?)
        .bind(token.now.secs())
        .bind(token.expires_at.secs())
        .execute(exec)
        .await?;
    Ok(())
}

/// Which opaque tokens [`delete`] deletes.
#[derive(Debug, Clone, Copy)]
pub(super) enum OpaqueBy<'a> {
    /// One token, by its hash.
    Hash(&'a str),
    /// A refresh-token family's.
    Family(&'a str),
    /// A client's.
    Client(&'a str),
}

impl<'a> OpaqueBy<'a> {
    /// The column of `opaque_tokens` it selects by, and the value.
    fn column(self) -> (&'static str, &'a str) {
        match self {
            Self::Hash(hash) => ("token_hash", hash),
            Self::Family(family) => ("family", family),
            Self::Client(client_id) => ("client_id", client_id),
        }
    }
}

/// Deletes opaque access tokens inside the caller's transaction and lists
/// every token exchanged from them (the phantom-token pattern's JWTs):
/// (deleted, newly listed). Exactly the rows deleted are walked: a token
/// exchange recording a derived token holds its opaque parent until it
/// commits.
pub(super) async fn delete(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    by: OpaqueBy<'_>,
    now: UnixTime,
) -> Result<(u64, u64), StoreError> {
    let (column, value) = by.column();
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

#[cfg(test)]
mod tests;
