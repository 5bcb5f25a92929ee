//! Refresh-token families (RFC 6749 §6, RFC 9700 §4.14.2): a user's login
//! starts one, every use spends the token presented and stores its
//! successor, and a spent token presented again revokes the whole family.
//!
//! Every access token issued with a family is stored with it, in the
//! transaction that starts the family or rotates it: a JWT's jti and exp in
//! `family_tokens`, an opaque token in `opaque_tokens` with its family. So
//! a token is never spent (nor a family started) unless the access token it
//! pays for is issued, and revoking the family reaches every access token
//! it issued, and the tokens exchanged from those.
//!
//! Lock order (see `revocations.rs`): starting and rotating a family hold
//! the revocation lock shared, from their first statement, so a family's
//! revocation (which holds it exclusively) either comes after them and
//! finds what they stored, or comes first and makes them fail.

use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};
use sqlx::Row as _;
use tessera_jose::UnixTime;

use super::opaque::{self, NewOpaque};
use super::revocations;
use super::{Store, StoreError};

mod revoke;

pub(super) use revoke::{revoke_family, FamilyRevocation};

/// One refresh token as stored (the token itself is never stored).
#[derive(Clone, PartialEq)]
pub struct RefreshRow {
    /// Family id: every rotation of one login.
    pub family: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The user.
    pub subject: String,
    /// Granted scope.
    pub scope: String,
    /// The access tokens' `aud`.
    pub audience: Value,
    /// The user's claims.
    pub claims: Map<String, Value>,
    /// The family's absolute end.
    pub expires_at: UnixTime,
    /// This token's idle deadline.
    pub idle_until: UnixTime,
    /// When it was used.
    pub spent_at: Option<UnixTime>,
    /// When its family was revoked.
    pub revoked_at: Option<UnixTime>,
    /// Its successor, sealed, kept for the reuse interval.
    pub successor_sealed: Option<String>,
}

impl fmt::Debug for RefreshRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The sealed successor is a refresh token under the KEK, and the
        // claims are the user's: neither is printed.
        f.debug_struct("RefreshRow")
            .field("family", &self.family)
            .field("client_id", &self.client_id)
            .field("expires_at", &self.expires_at)
            .field("idle_until", &self.idle_until)
            .field("spent_at", &self.spent_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

impl RefreshRow {
    /// Its successor (sealed), when it was spent within `reuse_interval`
    /// of `now` and its family stands: presenting it again is then a
    /// client's retry, answered with the same successor, not reuse.
    pub fn retry_successor(&self, now: UnixTime, reuse_interval: Duration) -> Option<&str> {
        if self.revoked_at.is_some() {
            return None;
        }
        let spent = self.spent_at?;
        let sealed = self.successor_sealed.as_deref()?;
        let since = now.secs().saturating_sub(spent.secs());
        (since <= crate::clock::secs(reuse_interval)).then_some(sealed)
    }

    /// Whether it may still be spent at `now`: unspent, its family
    /// standing, within its idle deadline and its family's end.
    pub fn is_spendable(&self, now: UnixTime) -> bool {
        self.spent_at.is_none()
            && self.revoked_at.is_none()
            && now <= self.expires_at
            && now <= self.idle_until
    }
}

/// What presenting a refresh token did.
pub enum RefreshOutcome {
    /// Spent; the successor (already stored) carries these grants.
    Rotated(RefreshRow),
    /// No such token.
    Unknown,
    /// Another client's token.
    Foreign,
    /// Its family was revoked.
    Revoked,
    /// Past its idle deadline or its family's end.
    Expired,
    /// Spent before: the family is now revoked.
    Reused,
    /// Spent within the reuse interval: the same successor again (sealed).
    Retry(String, RefreshRow),
}

impl fmt::Debug for RefreshOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rotated(row) => f.debug_tuple("Rotated").field(row).finish(),
            Self::Unknown => f.write_str("Unknown"),
            Self::Foreign => f.write_str("Foreign"),
            Self::Revoked => f.write_str("Revoked"),
            Self::Expired => f.write_str("Expired"),
            Self::Reused => f.write_str("Reused"),
            // The sealed successor is a refresh token under the KEK.
            Self::Retry(_, row) => f.debug_tuple("Retry").field(row).finish(),
        }
    }
}

/// A refresh token presented at the token endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Presented<'a> {
    /// Its hash.
    pub hash: &'a str,
    /// The authenticated client.
    pub client_id: &'a str,
    /// How long after a spend presenting it again is a retry.
    pub reuse_interval: Duration,
    /// How long the successor may sit unused.
    pub idle: Duration,
    /// Now.
    pub now: UnixTime,
}

/// An access token issued with a refresh-token family, stored with it so
/// that revoking the family revokes the token too.
#[derive(Debug, Clone, Copy)]
pub enum FamilyAccess<'a> {
    /// A JWT: its jti is listed on the deny-list until `expires_at` (its
    /// exp plus the leeway) when the family is revoked.
    Jwt {
        /// Its jti.
        jti: &'a str,
        /// When no verifier accepts it any more.
        expires_at: UnixTime,
    },
    /// An opaque token: stored (only hashed) with its claims, deleted with
    /// the family.
    Opaque {
        /// SHA-256 of the handle, base64url.
        hash: &'a str,
        /// Its claims, as introspection will answer with them.
        claims: &'a Map<String, Value>,
        /// Its exp.
        expires_at: UnixTime,
    },
}

/// What a successful refresh stores: the successor refresh token and the
/// access token issued with it.
#[derive(Clone, Copy)]
pub struct Issue<'a> {
    /// The successor's hash.
    pub successor_hash: &'a str,
    /// The successor, sealed, kept for the reuse interval (when there is one).
    pub successor_sealed: Option<&'a str>,
    /// The access token.
    pub access: FamilyAccess<'a>,
}

impl fmt::Debug for Issue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The sealed successor is a refresh token under the KEK: not printed.
        f.debug_struct("Issue")
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

/// A family to start: its first refresh token, and the access token
/// issued with it.
#[derive(Debug, Clone, Copy)]
pub struct FamilyStart<'a> {
    /// The first refresh token's hash.
    pub hash: &'a str,
    /// The first refresh token (unspent, its family standing).
    pub row: &'a RefreshRow,
    /// The access token issued with it.
    pub access: FamilyAccess<'a>,
    /// Now.
    pub now: UnixTime,
}

impl Store {
    /// Starts a family: stores its first refresh token (its hash) and the
    /// access token issued with it, in one transaction under the shared
    /// revocation lock (a logout everywhere running meanwhile either sees
    /// the family or comes after it).
    ///
    /// # Errors
    /// On database failure.
    pub async fn insert_refresh(&self, start: &FamilyStart<'_>) -> Result<(), StoreError> {
        let FamilyStart {
            hash,
            row,
            access,
            now,
        } = *start;
        let mut tx = self.write_tx().await?;
        revocations::share_revocations(&mut tx, self.sqlite).await?;
        insert_refresh(&mut *tx, hash, row, now).await?;
        insert_access(&mut tx, row, &access, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Spends the refresh token `presented` and stores its successor and
    /// the access token issued with it (`issue`), in one transaction:
    /// exactly one of several concurrent uses rotates. A retry within the
    /// reuse interval stores its access token and gets the same successor.
    /// A spent token presented again revokes its whole family.
    ///
    /// # Errors
    /// On database failure, or [`StoreError::Corrupt`] for a row whose
    /// audience or claims do not decode.
    pub async fn rotate_refresh(
        &self,
        presented: &Presented<'_>,
        issue: &Issue<'_>,
    ) -> Result<RefreshOutcome, StoreError> {
        let p = presented;
        let mut tx = self.write_tx().await?;
        revocations::share_revocations(&mut tx, self.sqlite).await?;
        let Some(row) = refresh_by_hash(&mut *tx, p.hash).await? else {
            return Ok(RefreshOutcome::Unknown);
        };
        if row.client_id != p.client_id {
            return Ok(RefreshOutcome::Foreign);
        }
        if row.revoked_at.is_some() {
            return Ok(RefreshOutcome::Revoked);
        }
        let spend = if row.spent_at.is_some() {
            if let Some(sealed) = row.retry_successor(p.now, p.reuse_interval) {
                let sealed = sealed.to_owned();
                insert_access(&mut tx, &row, &issue.access, p.now).await?;
                tx.commit().await?;
                return Ok(RefreshOutcome::Retry(sealed, row));
            }
            0
        } else if !row.is_spendable(p.now) {
            return Ok(RefreshOutcome::Expired);
        } else {
            sqlx::query("UPDATE refresh_tokens SET spent_at = $1, successor_sealed = $2 WHERE token_hash = $3 AND spent_at IS NULL AND revoked_at IS NULL")
                .bind(p.now.secs())
                .bind(issue.successor_sealed)
                .bind(p.hash)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        };
        if spend != 1 {
            return self.not_spent(tx, &row, p, issue).await;
        }
        let next = RefreshRow {
            idle_until: p.now.saturating_add(p.idle).min(row.expires_at),
            spent_at: None,
            revoked_at: None,
            successor_sealed: None,
            ..row.clone()
        };
        insert_refresh(&mut *tx, issue.successor_hash, &next, p.now).await?;
        insert_access(&mut tx, &row, &issue.access, p.now).await?;
        tx.commit().await?;
        Ok(RefreshOutcome::Rotated(next))
    }

    /// The end of a rotation whose token (`row`, as first read) was not
    /// spent by it: spent before, or (PostgreSQL) by a concurrent use that
    /// committed first. Looks at the token as it stands now.
    async fn not_spent(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Any>,
        row: &RefreshRow,
        p: &Presented<'_>,
        issue: &Issue<'_>,
    ) -> Result<RefreshOutcome, StoreError> {
        if let Some(current) = &refresh_by_hash(&mut *tx, p.hash).await? {
            if current.revoked_at.is_some() {
                tx.rollback().await?;
                return Ok(RefreshOutcome::Revoked);
            }
            // Lost the race within the interval: answer with the winner's
            // successor.
            if row.spent_at.is_none() {
                if let Some(sealed) = current.retry_successor(p.now, p.reuse_interval) {
                    let sealed = sealed.to_owned();
                    insert_access(&mut tx, row, &issue.access, p.now).await?;
                    tx.commit().await?;
                    return Ok(RefreshOutcome::Retry(sealed, current.clone()));
                }
            }
        }
        // Reuse. Nothing was written here: the family is revoked in a
        // transaction of its own, which takes the revocation lock
        // exclusively, before any token row.
        tx.rollback().await?;
        self.revoke_reused(&row.family, p.client_id, p.now).await?;
        Ok(RefreshOutcome::Reused)
    }

    /// A spent refresh token presented again after its reuse interval, by
    /// the client it was issued to, with nothing to issue: its family is
    /// revoked (`Reused`), unless it already was (`Revoked`). Any other
    /// state is reported as it is, and nothing is written.
    ///
    /// # Errors
    /// On database failure or a corrupt row.
    pub async fn refresh_reused(
        &self,
        presented: &Presented<'_>,
    ) -> Result<RefreshOutcome, StoreError> {
        let p = presented;
        let Some(row) = self.refresh_token(p.hash).await? else {
            return Ok(RefreshOutcome::Unknown);
        };
        if row.client_id != p.client_id {
            return Ok(RefreshOutcome::Foreign);
        }
        if row.revoked_at.is_some() {
            return Ok(RefreshOutcome::Revoked);
        }
        if row.spent_at.is_none() || row.retry_successor(p.now, p.reuse_interval).is_some() {
            // Not reuse: a caller that saw it so was mistaken; the token
            // stays as it is.
            return Ok(RefreshOutcome::Expired);
        }
        // spent_at is never cleared: this token stays spent.
        self.revoke_reused(&row.family, p.client_id, p.now).await?;
        Ok(RefreshOutcome::Reused)
    }

    /// Revokes `family` as reuse detection does.
    async fn revoke_reused(
        &self,
        family: &str,
        client_id: &str,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let revocation = FamilyRevocation {
            family,
            actor: client_id,
            action: "refresh_reuse_family_revoked",
            now,
        };
        let mut tx = self.write_tx().await?;
        revocations::lock_revocations(&mut tx, self.sqlite).await?;
        revoke_family(&mut tx, self.sqlite, &revocation).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The refresh token with this hash, as stored.
    ///
    /// # Errors
    /// On database failure, or [`StoreError::Corrupt`] when its audience
    /// or claims do not decode.
    pub async fn refresh_token(&self, hash: &str) -> Result<Option<RefreshRow>, StoreError> {
        refresh_by_hash(&self.pool, hash).await
    }

    /// Revokes the family of the refresh token `hash` if `client_id` owns
    /// it, with every access token it issued: None when unknown,
    /// Some(false) when another client's. Its claims are not read, so even
    /// a corrupt row can be revoked.
    ///
    /// # Errors
    /// On database failure.
    pub async fn revoke_refresh_family(
        &self,
        hash: &str,
        client_id: &str,
        now: UnixTime,
    ) -> Result<Option<bool>, StoreError> {
        let found =
            sqlx::query("SELECT family, client_id FROM refresh_tokens WHERE token_hash = $1")
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?;
        let Some(found) = found else {
            return Ok(None);
        };
        if found.try_get::<String, _>(1)? != client_id {
            return Ok(Some(false));
        }
        let family: String = found.try_get(0)?;
        let revocation = FamilyRevocation {
            family: &family,
            actor: client_id,
            action: "refresh_family_revoked",
            now,
        };
        let mut tx = self.write_tx().await?;
        revocations::lock_revocations(&mut tx, self.sqlite).await?;
        revoke_family(&mut tx, self.sqlite, &revocation).await?;
        tx.commit().await?;
        Ok(Some(true))
    }

    /// Deletes refresh tokens whose family ended before `now`, and the
    /// records of family access tokens expired by then.
    ///
    /// # Errors
    /// On database failure.
    pub async fn purge_refresh(&self, now: UnixTime) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM family_tokens WHERE expires_at < $1")
            .bind(now.secs())
            .execute(&self.pool)
            .await?;
        Ok(
            sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < $1")
                .bind(now.secs())
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }
}

/// Stores an access token issued with the family of `row` (to its client)
/// inside the caller's transaction.
async fn insert_access(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    row: &RefreshRow,
    access: &FamilyAccess<'_>,
    now: UnixTime,
) -> Result<(), StoreError> {
    match *access {
        FamilyAccess::Jwt { jti, expires_at } => {
            sqlx::query("INSERT INTO family_tokens (family, jti, expires_at) VALUES ($1, $2, $3)")
                .bind(&row.family)
                .bind(jti)
                .bind(expires_at.secs())
                .execute(&mut **tx)
                .await?;
        }
        FamilyAccess::Opaque {
            hash,
            claims,
            expires_at,
        } => {
            let token = NewOpaque {
                hash,
                client_id: &row.client_id,
                claims,
                now,
                expires_at,
            };
            opaque::insert(&mut **tx, &token, Some(&row.family)).await?;
        }
    }
    Ok(())
}

const REFRESH_SELECT: &str = "SELECT family, client_id, subject, scope, audience, claims, expires_at, idle_until, spent_at, revoked_at, successor_sealed FROM refresh_tokens";

fn refresh_row(r: &sqlx::any::AnyRow) -> Result<RefreshRow, StoreError> {
    Ok(RefreshRow {
        family: r.try_get(0)?,
        client_id: r.try_get(1)?,
        subject: r.try_get(2)?,
        scope: r.try_get(3)?,
        audience: super::json(r, 4, "refresh token audience")?,
        claims: super::json_object(r, 5, "refresh token claims")?,
        expires_at: super::time(r, 6)?,
        idle_until: super::time(r, 7)?,
        spent_at: super::maybe_time(r, 8)?,
        revoked_at: super::maybe_time(r, 9)?,
        successor_sealed: r.try_get(10)?,
    })
}

/// The refresh token with this hash, through `exec` (the pool or a
/// transaction).
async fn refresh_by_hash<'e, E>(exec: E, hash: &str) -> Result<Option<RefreshRow>, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(&format!("{REFRESH_SELECT} WHERE token_hash = $1"))
        .bind(hash)
        .fetch_optional(exec)
        .await?
        .as_ref()
        .map(refresh_row)
        .transpose()
}

async fn insert_refresh<'e, E>(
    exec: E,
    hash: &str,
    row: &RefreshRow,
    now: UnixTime,
) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, family, client_id, subject, scope, audience, claims, created_at, expires_at, idle_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(hash)
    .bind(&row.family)
    .bind(&row.client_id)
    .bind(&row.subject)
    .bind(&row.scope)
    .bind(row.audience.to_string())
    .bind(super::object_text(&row.claims)?)
    .bind(now.secs())
    .bind(row.expires_at.secs())
    .bind(row.idle_until.secs())
    .execute(exec)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests;
