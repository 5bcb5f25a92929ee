//! Tokens exchanged from other tokens (RFC 8693), recorded at the exchange
//! so that revoking a token, or everything of its client or key, lists
//! what was exchanged from it too, and from those, and so on.

use sqlx::Row as _;
use tessera_jose::UnixTime;

use super::{list, refused_query, share_revocations, Listing, RuleKind, TokenFacts};
use crate::store::{time, Store, StoreError};

/// A token exchanged from another, as recorded at the exchange.
#[derive(Debug, Clone)]
pub struct Derived<'a> {
    /// The new token's jti.
    pub jti: &'a str,
    /// Until when it could be accepted: its exp plus the leeway.
    pub expires_at: UnixTime,
    /// The subject token: its jti, or `tso:` and the hash of an opaque one.
    pub parent: String,
    /// The subject token's client.
    pub parent_client: &'a str,
    /// The key that signed the subject token (none for an opaque one).
    pub parent_kid: Option<&'a str>,
}

impl Store {
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
            .bind(derived.expires_at.secs())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// How the `parent` of tokens exchanged from an opaque token starts (the
/// hash of the opaque token follows).
const OPAQUE_PARENT: &str = "tso:";

/// The `parent` of tokens exchanged from the opaque token with this hash.
pub fn opaque_parent(hash: &str) -> String {
    format!("{OPAQUE_PARENT}{hash}")
}

/// What [`derived_by`] finds tokens exchanged from: tokens of a client,
/// or signed by a key.
#[derive(Debug, Clone, Copy)]
pub(in crate::store) enum DerivedBy<'a> {
    /// The parent tokens' client.
    Client(&'a str),
    /// The key that signed the parent tokens.
    Kid(&'a str),
}

impl<'a> DerivedBy<'a> {
    /// The column of `derived_tokens` it selects by, and the value.
    fn column(self) -> (&'static str, &'a str) {
        match self {
            Self::Client(client_id) => ("parent_client", client_id),
            Self::Kid(kid) => ("parent_kid", kid),
        }
    }
}

/// The distinct parents of tokens exchanged from the tokens `by` names:
/// where a walk that lists them starts.
pub(in crate::store) async fn derived_by(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    by: DerivedBy<'_>,
) -> Result<Vec<String>, StoreError> {
    let (column, value) = by.column();
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
pub(in crate::store) async fn revoke_derived(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    mut parents: Vec<String>,
    now: UnixTime,
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
            let listing = Listing {
                kind: RuleKind::Jti,
                target: &jti,
                actor: &client,
                not_before: None,
                expires_at: time(r, 2)?,
                now,
            };
            let (_, new) = list(tx, &listing).await?;
            if new {
                listed += 1;
                parents.push(jti);
            }
        }
    }
    Ok(listed)
}
