//! The deny-list behind `GET /revocations`: revoked jtis, and rules that
//! revoke many tokens at once (everything of a subject, of a client, or
//! signed by a key), plus the record of tokens exchanged from other tokens
//! so that revoking a token reaches what was exchanged from it.
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

use super::opaque::{self, OpaqueBy};
use super::settings::audit;
use super::{Store, StoreError};

/// What a deny-list entry covers; its [name](RuleKind::name) is the
/// `kind` stored, and the member that carries the target in the feed.
pub use tessera_verify::feed_format::RuleKind;

/// One entry of the feed, as the feed serves it.
pub use tessera_verify::feed_format::Entry as FeedEntry;

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

/// What revoking everything of a subject or client did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RevokedAll {
    /// The rule's sequence number in the feed.
    pub seq: i64,
    /// Refresh-token families revoked.
    pub families: u64,
    /// Opaque access tokens deleted.
    pub opaque_tokens: u64,
    /// JWT access tokens of the revoked families listed by jti.
    pub access_tokens: u64,
    /// Exchanged tokens listed by jti (their subject or client differs).
    pub exchanged_tokens: u64,
}

/// A token exchanged from another, as recorded at the exchange.
#[derive(Debug, Clone)]
pub struct Derived<'a> {
    /// The new token's jti.
    pub jti: &'a str,
    /// The new token's exp.
    pub expires_at: i64,
    /// The subject token: its jti, or `tso:` and the hash of an opaque one.
    pub parent: String,
    /// The subject token's client.
    pub parent_client: &'a str,
    /// The key that signed the subject token (none for an opaque one).
    pub parent_kid: Option<&'a str>,
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
    /// Puts `jti` on the deny-list until `expires_at`, with every token
    /// exchanged from it; returns its sequence number (the existing one
    /// when the jti is already listed).
    ///
    /// # Errors
    /// On database failure.
    pub async fn revoke_jti(
        &self,
        jti: &str,
        client_id: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = self.write_tx().await?;
        lock_revocations(&mut tx, self.sqlite).await?;
        let (seq, new) = list(
            &mut tx,
            RuleKind::Jti,
            jti,
            client_id,
            None,
            expires_at,
            now,
        )
        .await?;
        if new {
            audit(&mut *tx, now, client_id, "jti_revoked", jti).await?;
            revoke_derived(&mut tx, vec![jti.to_owned()], now).await?;
        }
        tx.commit().await?;
        Ok(seq)
    }

    /// Revokes everything of a subject or a client (`kind`): a rule that
    /// lists its tokens issued before `not_before` until `expires_at`, its
    /// refresh-token families (with the access tokens they issued, listed by
    /// jti as well), its opaque access tokens (a client's are deleted; a
    /// subject's are refused by the rule), and tokens exchanged from a
    /// client's tokens.
    ///
    /// # Errors
    /// On database failure.
    pub async fn revoke_all(
        &self,
        kind: RuleKind,
        target: &str,
        not_before: i64,
        expires_at: i64,
        actor: &str,
        now: i64,
    ) -> Result<RevokedAll, StoreError> {
        let column = match kind {
            RuleKind::Subject => "subject",
            RuleKind::Client => "client_id",
            RuleKind::Jti | RuleKind::Kid => {
                return Err(StoreError::Corrupt(format!(
                    "revoke_all for {}",
                    kind.name()
                )))
            }
        };
        let mut tx = self.write_tx().await?;
        lock_revocations(&mut tx, self.sqlite).await?;
        let (seq, _) = list(
            &mut tx,
            kind,
            target,
            actor,
            Some(not_before),
            expires_at,
            now,
        )
        .await?;
        let families: Vec<String> = sqlx::query(&format!(
            "SELECT DISTINCT family FROM refresh_tokens WHERE {column} = $1 AND revoked_at IS NULL"
        ))
        .bind(target)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
        let mut out = RevokedAll {
            seq,
            families: families.len() as u64,
            ..RevokedAll::default()
        };
        for family in &families {
            let done = super::refresh::revoke_family(
                &mut tx,
                self.sqlite,
                family,
                actor,
                "refresh_family_revoked",
                now,
            )
            .await?;
            out.opaque_tokens += done.opaque_tokens;
            out.access_tokens += done.access_tokens;
            out.exchanged_tokens += done.exchanged_tokens;
        }
        if kind == RuleKind::Client {
            let (deleted, listed) = opaque::delete(&mut tx, OpaqueBy::Client, target, now).await?;
            out.opaque_tokens += deleted;
            let parents = derived_by(&mut tx, "parent_client", target).await?;
            out.exchanged_tokens += listed + revoke_derived(&mut tx, parents, now).await?;
        }
        let action = match kind {
            RuleKind::Subject => "subject_revoked",
            _ => "client_revoked",
        };
        audit(&mut *tx, now, actor, action, target).await?;
        tx.commit().await?;
        Ok(out)
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

    /// Records a token issued by exchange from `parent`, so that revoking
    /// the parent (or everything of its client or key) lists it too, and
    /// checks the parent again under the revocation lock: a revocation
    /// either committed before (and the exchange is refused: false) or
    /// starts after and sees this row. The lock is shared, so exchanges do
    /// not wait for one another; SQLite has one writer anyway.
    ///
    /// # Errors
    /// On database failure.
    pub async fn record_derived(
        &self,
        derived: &Derived<'_>,
        parent: TokenFacts<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        share_revocations(&mut tx, self.sqlite).await?;
        let shared = if self.sqlite { "" } else { " FOR SHARE" };
        let refused = refused_query(parent.signed_by(derived.parent_kid))
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        // An opaque parent is held too, so that deleting it waits for this
        // record and then lists what it finds.
        let opaque_gone = match derived.parent.strip_prefix(OPAQUE_PARENT) {
            Some(hash) => sqlx::query(&format!(
                "SELECT client_id FROM opaque_tokens WHERE token_hash = $1{shared}"
            ))
            .bind(hash)
            .fetch_optional(&mut *tx)
            .await?
            .is_none(),
            None => false,
        };
        if refused || opaque_gone {
            return Ok(false);
        }
        sqlx::query("INSERT INTO derived_tokens (jti, parent, parent_client, parent_kid, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(derived.jti)
            .bind(&derived.parent)
            .bind(derived.parent_client)
            .bind(derived.parent_kid)
            .bind(derived.expires_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Removes entries whose tokens have all expired, remembering the
    /// highest sequence number removed (a follower behind it needs a
    /// snapshot), and the record of expired exchanged tokens.
    ///
    /// # Errors
    /// On database failure.
    pub async fn purge_revocations(&self, now: i64) -> Result<u64, StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM derived_tokens WHERE expires_at < $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let max: Option<i64> =
            sqlx::query("SELECT MAX(seq) FROM revocations WHERE expires_at < $1")
                .bind(now)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        let Some(max) = max else {
            tx.commit().await?;
            return Ok(0);
        };
        let done = sqlx::query("DELETE FROM revocations WHERE expires_at < $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE sequences SET value = $1 WHERE name = 'revocations_purged' AND value < $1",
        )
        .bind(max)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// The feed after `since`: (latest sequence, whether `since` is older
    /// than the purge horizon, entries in order). From `since` 0 this is
    /// every live entry: a full snapshot.
    ///
    /// # Errors
    /// On database failure.
    pub async fn revocations_since(
        &self,
        since: i64,
        limit: i64,
    ) -> Result<(i64, bool, Vec<FeedEntry>), StoreError> {
        let mut tx = self.pool.begin().await?;
        let latest: i64 = sqlx::query("SELECT value FROM sequences WHERE name = 'revocations'")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let purged: i64 =
            sqlx::query("SELECT value FROM sequences WHERE name = 'revocations_purged'")
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        // Entries are only ever purged once their tokens have expired, so
        // a follower behind the purge horizon lost nothing it needs: every
        // live entry newer than `since` follows, and `snapshot` tells it
        // that what it holds older than the horizon may be dropped.
        let snapshot = since < purged;
        let rows = sqlx::query(
            "SELECT seq, kind, target, not_before, expires_at FROM revocations WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(since)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let entries = rows
            .iter()
            .map(|r| {
                let kind: String = r.try_get(1)?;
                let kind = RuleKind::from_name(&kind)
                    .ok_or_else(|| StoreError::Corrupt(format!("revocation kind {kind:?}")))?;
                Ok(FeedEntry::new(
                    r.try_get(0)?,
                    kind,
                    r.try_get(2)?,
                    r.try_get(3)?,
                    r.try_get(4)?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((latest, snapshot, entries))
    }
}

/// How the `parent` of tokens exchanged from an opaque token starts (the
/// hash of the opaque token follows).
const OPAQUE_PARENT: &str = "tso:";

/// The `parent` of tokens exchanged from the opaque token with this hash.
pub fn opaque_parent(hash: &str) -> String {
    format!("{OPAQUE_PARENT}{hash}")
}

/// Adds an entry inside the caller's transaction: (its sequence number,
/// whether it is new). A jti listed before keeps its entry; a rule listed
/// again moves to a new sequence number with the new bounds, so followers
/// learn of them.
pub(super) async fn list(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    kind: RuleKind,
    target: &str,
    actor: &str,
    not_before: Option<i64>,
    expires_at: i64,
    now: i64,
) -> Result<(i64, bool), StoreError> {
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
    .bind(actor)
    .bind(not_before)
    .bind(expires_at)
    .bind(now)
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

/// The distinct parents of tokens exchanged from tokens whose `column`
/// (parent_client or parent_kid) is `value`: where a walk that lists them
/// starts.
pub(super) async fn derived_by(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    column: &str,
    value: &str,
) -> Result<Vec<String>, StoreError> {
    sqlx::query(&format!(
        "SELECT DISTINCT parent FROM derived_tokens WHERE {column} = $1"
    ))
    .bind(value)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| Ok(r.try_get(0)?))
    .collect()
}

/// Lists every token exchanged from `parents`, and from those, and so on;
/// returns how many were newly listed.
pub(super) async fn revoke_derived(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    mut parents: Vec<String>,
    now: i64,
) -> Result<u64, StoreError> {
    let mut listed = 0;
    while let Some(parent) = parents.pop() {
        let rows = sqlx::query(
            "SELECT jti, parent_client, expires_at FROM derived_tokens WHERE parent = $1",
        )
        .bind(&parent)
        .fetch_all(&mut **tx)
        .await?;
        for r in &rows {
            let jti: String = r.try_get(0)?;
            let client: String = r.try_get(1)?;
            let exp: i64 = r.try_get(2)?;
            let (_, new) = list(tx, RuleKind::Jti, &jti, &client, None, exp, now).await?;
            if new {
                listed += 1;
                parents.push(jti);
            }
        }
    }
    Ok(listed)
}
