//! Revoking everything of a party: a subject's tokens (logout everywhere)
//! or a client's. One transaction, under the revocation lock taken
//! exclusively, lists the rule on the deny-list, revokes the party's
//! refresh-token families (with the access tokens they issued), and for a
//! client deletes its opaque tokens and lists what was exchanged from its
//! tokens.
//!
//! It writes the tables of three aggregates, each through that aggregate's
//! own functions: `revocations` (the rule and the walk of exchanged
//! tokens), `refresh` (a family's revocation), `opaque` (a client's opaque
//! tokens). None of them calls back here, so the dependencies stay one-way:
//! `revocations` <- `opaque` <- `refresh` <- this module.

use sqlx::Row as _;
use tessera_jose::UnixTime;

use super::opaque::{self, OpaqueBy};
use super::refresh::{self, FamilyRevocation};
use super::revocations::{
    derived_by, list, lock_revocations, revoke_derived, DerivedBy, Listing, RuleKind,
};
use super::settings::{audit, AuditEntry};
use super::{Store, StoreError};

/// Whose tokens a rule revokes all of: a subject's (logout everywhere) or
/// a client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// A user: the tokens whose `sub` it is.
    Subject,
    /// A client: the tokens issued to it.
    Client,
}

impl Party {
    /// The kind of the deny-list entry.
    pub fn rule_kind(self) -> RuleKind {
        match self {
            Self::Subject => RuleKind::Subject,
            Self::Client => RuleKind::Client,
        }
    }

    /// The column of `refresh_tokens` that names it.
    fn family_column(self) -> &'static str {
        match self {
            Self::Subject => "subject",
            Self::Client => "client_id",
        }
    }

    /// What the audit log records.
    fn audit_action(self) -> &'static str {
        match self {
            Self::Subject => "subject_revoked",
            Self::Client => "client_revoked",
        }
    }
}

/// Everything of a subject or a client, to revoke.
#[derive(Debug, Clone, Copy)]
pub struct RevokeAll<'a> {
    /// Whose tokens.
    pub party: Party,
    /// The subject or client id.
    pub target: &'a str,
    /// Tokens issued (`iat`) before this are refused.
    pub not_before: UnixTime,
    /// Until when the rule is kept: as long as a token it covers could
    /// live.
    pub expires_at: UnixTime,
    /// Who revokes (recorded with the entry and in the audit log).
    pub actor: &'a str,
    /// Now.
    pub now: UnixTime,
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

impl Store {
    /// Revokes everything of a subject or a client: a rule that lists its
    /// tokens issued before `not_before` until `expires_at`, its
    /// refresh-token families (with the access tokens they issued, listed
    /// by jti as well), its opaque access tokens (a client's are deleted; a
    /// subject's are refused by the rule), and tokens exchanged from a
    /// client's tokens.
    ///
    /// # Errors
    /// On database failure.
    pub async fn revoke_all(&self, revocation: &RevokeAll<'_>) -> Result<RevokedAll, StoreError> {
        let r = revocation;
        let mut tx = self.write_tx().await?;
        lock_revocations(&mut tx, self.sqlite).await?;
        let listing = Listing {
            kind: r.party.rule_kind(),
            target: r.target,
            actor: r.actor,
            not_before: Some(r.not_before),
            expires_at: r.expires_at,
            now: r.now,
        };
        let (seq, _) = list(&mut tx, &listing).await?;
        let mut out = revoke_families(&mut tx, self.sqlite, r).await?;
        out.seq = seq;
        if r.party == Party::Client {
            let (deleted, listed) =
                opaque::delete(&mut tx, OpaqueBy::Client(r.target), r.now).await?;
            out.opaque_tokens += deleted;
            let parents = derived_by(&mut tx, DerivedBy::Client(r.target)).await?;
            out.exchanged_tokens += listed + revoke_derived(&mut tx, parents, r.now).await?;
        }
        let entry = AuditEntry {
            at: r.now,
            actor: r.actor,
            action: r.party.audit_action(),
            subject: r.target,
        };
        audit(&mut *tx, &entry).await?;
        tx.commit().await?;
        Ok(out)
    }
}

/// Revokes every standing refresh-token family of `r.target` inside the
/// caller's transaction, which holds the revocation lock; what they issued
/// is counted in the answer (its `seq` is left at 0).
async fn revoke_families(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    sqlite: bool,
    r: &RevokeAll<'_>,
) -> Result<RevokedAll, StoreError> {
    let column = r.party.family_column();
    let families: Vec<String> = sqlx::query(&format!(
        "SELECT DISTINCT family FROM refresh_tokens WHERE {column} = $1 AND revoked_at IS NULL"
    ))
    .bind(r.target)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|row| row.try_get(0))
    .collect::<Result<_, _>>()?;
    let mut out = RevokedAll {
        families: families.len() as u64,
        ..RevokedAll::default()
    };
    for family in &families {
        let revocation = FamilyRevocation {
            family,
            actor: r.actor,
            action: "refresh_family_revoked",
            now: r.now,
        };
        let done = refresh::revoke_family(tx, sqlite, &revocation).await?;
        out.opaque_tokens += done.opaque_tokens;
        out.access_tokens += done.access_tokens;
        out.exchanged_tokens += done.exchanged_tokens;
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
