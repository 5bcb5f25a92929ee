//! Revoking a refresh-token family, with every access token it issued and
//! every token exchanged from those: for reuse detection, RFC 7009
//! revocation of a refresh token, and a logout everywhere.

use sqlx::Row as _;
use tessera_jose::UnixTime;

use crate::store::opaque::{self, OpaqueBy};
use crate::store::revocations::{self, Listing, RuleKind};
use crate::store::settings::{audit, AuditEntry};
use crate::store::{time, StoreError};

/// A family to revoke, inside a transaction holding the revocation lock.
#[derive(Debug, Clone, Copy)]
pub(in crate::store) struct FamilyRevocation<'a> {
    /// The family id.
    pub(in crate::store) family: &'a str,
    /// Who revokes it.
    pub(in crate::store) actor: &'a str,
    /// Why, as the audit log records it.
    pub(in crate::store) action: &'a str,
    /// Now.
    pub(in crate::store) now: UnixTime,
}

/// What revoking a family did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(in crate::store) struct FamilyRevoked {
    /// Opaque access tokens deleted.
    pub(in crate::store) opaque_tokens: u64,
    /// JWT access tokens listed by jti.
    pub(in crate::store) access_tokens: u64,
    /// Tokens exchanged from them, listed by jti.
    pub(in crate::store) exchanged_tokens: u64,
}

/// Revokes every refresh token of the family, deletes its opaque access
/// tokens and lists its JWT access tokens on the deny-list (each with the
/// tokens exchanged from it), inside the caller's transaction, which holds
/// the revocation lock; and records why.
pub(in crate::store) async fn revoke_family(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    sqlite: bool,
    revocation: &FamilyRevocation<'_>,
) -> Result<FamilyRevoked, StoreError> {
    let FamilyRevocation {
        family,
        actor,
        action,
        now,
    } = *revocation;
    // Until nothing is left. Rotations hold the revocation lock shared, so
    // none is in flight here; the loop stays as the guard it was before
    // they did (on PostgreSQL an UPDATE that waited for a rotation does not
    // see the successor that rotation inserted; the next statement does).
    loop {
        let revoked = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE family = $2 AND revoked_at IS NULL",
        )
        .bind(now.secs())
        .bind(family)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if revoked == 0 || sqlite {
            break;
        }
    }
    let (opaque_tokens, from_opaque) = opaque::delete(tx, OpaqueBy::Family(family), now).await?;
    // The family's JWTs: listed until they expire; the record goes, as no
    // token of a revoked family is ever issued again.
    let issued: Vec<(String, UnixTime)> =
        sqlx::query("DELETE FROM family_tokens WHERE family = $1 RETURNING jti, expires_at")
            .bind(family)
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|r| Ok::<_, StoreError>((r.try_get(0)?, time(r, 1)?)))
            .collect::<Result<_, _>>()?;
    let mut listed = Vec::new();
    for (jti, expires_at) in issued {
        let listing = Listing {
            kind: RuleKind::Jti,
            target: &jti,
            actor,
            not_before: None,
            expires_at,
            now,
        };
        let (_, new) = revocations::list(tx, &listing).await?;
        if new {
            listed.push(jti);
        }
    }
    let access_tokens = listed.len() as u64;
    let from_jwts = revocations::revoke_derived(tx, listed, now).await?;
    let entry = AuditEntry {
        at: now,
        actor,
        action,
        subject: family,
    };
    audit(&mut **tx, &entry).await?;
    Ok(FamilyRevoked {
        opaque_tokens,
        access_tokens,
        exchanged_tokens: from_opaque + from_jwts,
    })
}
