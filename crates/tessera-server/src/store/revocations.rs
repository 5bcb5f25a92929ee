//! The deny-list behind `GET /revocations`: revoked jtis, and rules that
//! revoke many tokens at once (everything of a subject, of a client, or
//! signed by a key), plus the record of tokens exchanged from other tokens
//! so that revoking a token reaches what was exchanged from it.
//!
//! Here: the entries, the revocation lock and the revocation of one jti;
//! `derived.rs`: tokens exchanged from others; `feed.rs`: the feed and the
//! purge of what has expired. Revoking everything of a subject or client
//! (its rule, and its families and opaque tokens with it) is
//! `revoke_all.rs`.
//!
//! Other aggregates call into this module (to take the lock, to list a jti,
//! to walk what was exchanged from a token); it calls none of them back,
//! so the store's modules depend on one another one way only.
//!
//! Every entry takes its sequence number from one row updated with
//! `RETURNING`. That row stays locked until the transaction commits, so
//! entries become visible in sequence order on every node.
//!
//! Lock order: a transaction that revokes anything takes the revocation
//! lock first ([`lock_revocations`]: on PostgreSQL an advisory lock), before
//! any token or key row, so two revocations never deadlock. Writes that a
//! revocation must not miss hold it shared ([`share_revocations`]), also
//! before any row: a token exchange recording a derived token
//! ([`Store::record_derived`]), a new refresh family and a rotation (each
//! with the access token issued with it, see `refresh.rs`). Each either
//! sees a revocation that committed first or is seen by one that starts
//! after. A transaction holding it shared never asks for it exclusively
//! (reuse detection rolls back first, then revokes in a new transaction).

use sqlx::Row as _;
use tessera_jose::UnixTime;

use super::settings::{audit, AuditEntry};
use super::{Store, StoreError};

mod derived;
mod feed;

pub(super) use derived::{derived_by, revoke_derived, DerivedBy};
pub use derived::{opaque_parent, Derived};

/// What a deny-list entry covers; its [name](RuleKind::name) is the
/// `kind` stored, and the member that carries the target in the feed.
pub use tessera_verify::feed_format::RuleKind;

/// One entry of the feed, as the feed serves it.
use tessera_verify::feed_format::Entry as FeedEntry;

/// What the deny-list reads of a token: the same facts a following
/// verifier reads (a token without `iat` counts as issued at 0 here, so
/// every subject or client rule covers it).
pub use tessera_verify::TokenFacts;

/// Whether an entry refuses a token: its jti, its key, or a subject or
/// client rule whose bound is after its iat.
const REFUSED: &str = "SELECT seq FROM revocations WHERE (kind = 'jti' AND target = $1) OR (kind = 'sub' AND target = $2 AND not_before > $4) OR (kind = 'client_id' AND target = $3 AND not_before > $4) OR (kind = 'kid' AND target = $5) LIMIT 1";

fn refused_query(
    token: TokenFacts<'_>,
) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
    sqlx::query(REFUSED)
        .bind(token.jti.unwrap_or_default())
        .bind(token.sub.unwrap_or_default())
        .bind(token.client_id.unwrap_or_default())
        .bind(token.iat.unwrap_or(0))
        .bind(token.kid.unwrap_or_default())
}

/// An access token to put on the deny-list by its jti.
#[derive(Debug, Clone, Copy)]
pub struct JtiRevocation<'a> {
    /// Its jti.
    pub jti: &'a str,
    /// The client that revokes it (its own token).
    pub client_id: &'a str,
    /// Until when any verifier could still accept it: its exp plus the
    /// leeway.
    pub expires_at: UnixTime,
    /// Now.
    pub now: UnixTime,
}

/// The PostgreSQL advisory lock behind revocations. Its lock manager
/// queues fairly: a revocation waiting for it holds back exchanges and
/// logins that ask after it, so a steady stream of them cannot starve
/// revocations (a row lock taken FOR SHARE would).
const REVOCATION_LOCK: i64 = 0x7e55_e7a0;

/// Takes the revocation lock for this transaction, exclusively: the first
/// lock any revoking transaction takes (see the module notes). SQLite's
/// write transactions already exclude each other.
pub(super) async fn lock_revocations(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    sqlite: bool,
) -> Result<(), StoreError> {
    revocation_lock(tx, sqlite, "pg_advisory_xact_lock").await
}

/// Takes the revocation lock shared: for writes that a revocation must
/// either see or come after (a derived token's record, a new refresh
/// family, an opaque token of a family). They do not wait for each other.
pub(super) async fn share_revocations(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    sqlite: bool,
) -> Result<(), StoreError> {
    revocation_lock(tx, sqlite, "pg_advisory_xact_lock_shared").await
}

/// `function` (an advisory-lock function) on [`REVOCATION_LOCK`], held to
/// the end of the transaction; nothing on SQLite.
async fn revocation_lock(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    sqlite: bool,
    function: &'static str,
) -> Result<(), StoreError> {
    if !sqlite {
        sqlx::query(&format!("SELECT CAST({function}($1) AS TEXT)"))
            .bind(REVOCATION_LOCK)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

impl Store {
    /// Puts a jti on the deny-list until `expires_at`, with every token
    /// exchanged from it; returns its sequence number (the existing one
    /// when the jti is already listed).
    ///
    /// # Errors
    /// On database failure.
    pub async fn revoke_jti(&self, revocation: &JtiRevocation<'_>) -> Result<i64, StoreError> {
        let r = revocation;
        let mut tx = self.write_tx().await?;
        lock_revocations(&mut tx, self.sqlite).await?;
        let listing = Listing {
            kind: RuleKind::Jti,
            target: r.jti,
            actor: r.client_id,
            not_before: None,
            expires_at: r.expires_at,
            now: r.now,
        };
        let (seq, new) = list(&mut tx, &listing).await?;
        if new {
            let entry = AuditEntry {
                at: r.now,
                actor: r.client_id,
                action: "jti_revoked",
                subject: r.jti,
            };
            audit(&mut *tx, &entry).await?;
            revoke_derived(&mut tx, vec![r.jti.to_owned()], r.now).await?;
        }
        tx.commit().await?;
        Ok(seq)
    }

    /// Whether the deny-list refuses a token: its jti or its key is
    /// listed, or a rule for its subject or client covers its `iat`.
    ///
    /// # Errors
    /// On database failure.
    pub async fn is_refused(&self, token: TokenFacts<'_>) -> Result<bool, StoreError> {
        Ok(refused_query(token)
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }
}

/// A deny-list entry to add.
#[derive(Debug, Clone, Copy)]
pub(super) struct Listing<'a> {
    /// What it covers.
    pub(super) kind: RuleKind,
    /// The jti, subject, client id or kid.
    pub(super) target: &'a str,
    /// Who lists it.
    pub(super) actor: &'a str,
    /// For a subject or client rule: tokens issued before it are refused.
    pub(super) not_before: Option<UnixTime>,
    /// Until when it is kept.
    pub(super) expires_at: UnixTime,
    /// Now.
    pub(super) now: UnixTime,
}

/// Adds an entry inside the caller's transaction: (its sequence number,
/// whether it is new). A jti listed before keeps its entry; a rule listed
/// again moves to a new sequence number with the new bounds, so followers
/// learn of them.
pub(super) async fn list(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    entry: &Listing<'_>,
) -> Result<(i64, bool), StoreError> {
    let Listing { kind, target, .. } = *entry;
    if kind == RuleKind::Jti {
        if let Some(row) =
            sqlx::query("SELECT seq FROM revocations WHERE kind = 'jti' AND target = $1")
                .bind(target)
                .fetch_optional(&mut **tx)
                .await?
        {
            return Ok((row.try_get(0)?, false));
        }
    }
    let seq: i64 = sqlx::query(
        "UPDATE sequences SET value = value + 1 WHERE name = 'revocations' RETURNING value",
    )
    .fetch_one(&mut **tx)
    .await?
    .try_get(0)?;
    // The sequence row's lock is held from here to commit, so another
    // node's listing of the same target waits and then sees this one (a
    // jti: nothing to do; a rule: it moves on with newer bounds).
    let on_conflict = if kind == RuleKind::Jti {
        "DO NOTHING"
    } else {
        // Listed again, a rule only ever widens (a node whose clock is
        // behind, or a lowered maximum token life, must not narrow it).
        "DO UPDATE SET seq = excluded.seq, client_id = excluded.client_id, \
         not_before = CASE WHEN excluded.not_before > revocations.not_before THEN excluded.not_before ELSE revocations.not_before END, \
         expires_at = CASE WHEN excluded.expires_at > revocations.expires_at THEN excluded.expires_at ELSE revocations.expires_at END, \
         revoked_at = excluded.revoked_at"
    };
    let inserted = sqlx::query(&format!(
        "INSERT INTO revocations (seq, kind, target, client_id, not_before, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (kind, target) {on_conflict}"
    ))
    .bind(seq)
    .bind(kind.name())
    .bind(target)
    .bind(entry.actor)
    .bind(entry.not_before.map(UnixTime::secs))
    .bind(entry.expires_at.secs())
    .bind(entry.now.secs())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        let row = sqlx::query("SELECT seq FROM revocations WHERE kind = $1 AND target = $2")
            .bind(kind.name())
            .bind(target)
            .fetch_one(&mut **tx)
            .await?;
        return Ok((row.try_get(0)?, false));
    }
    Ok((seq, true))
}

#[cfg(test)]
mod tests;
