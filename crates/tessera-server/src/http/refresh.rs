//! The refresh side of the token endpoint (RFC 6749 §6, RFC 9700
//! §4.14.2): a user's login starts a family of refresh tokens, every use
//! rotates it, and a spent token presented again revokes the family.
//!
//! Nothing is spent before the access token it pays for exists. A refresh
//! is checked first (the token, the scope asked for), then the token
//! endpoint mints the access token and holds it to the size budget, and
//! only then is the presented token rotated, in the transaction that
//! stores the access token with its family ([`Session::store`]). A refusal
//! at any step leaves the presented token as it was: RFC 6749 §6 retires
//! the old refresh token only when a new one is issued. A new family
//! likewise is stored only together with the access token it was started
//! for, so a refused login leaves nothing behind.

use std::collections::HashMap;

use serde_json::{Map, Value};
use tessera_jose::UnixTime;
use tessera_verify::token_hash;
use zeroize::Zeroizing;

use super::token::{is_handle, narrowed_scope, new_refresh_token};
use super::OAuthError;
use crate::clients::{Client, GrantType};
use crate::server::AppState;
use crate::store::{FamilyAccess, FamilyStart, Issue, Presented, RefreshOutcome, RefreshRow};

/// What the KEK seals a successor kept for the reuse interval under.
const SUCCESSOR_CONTEXT: &str = "refresh-successor";

/// The refresh-token side of a grant, not yet stored: it is stored only
/// with the access token issued with it.
pub(super) struct Session(Pending);

enum Pending {
    /// A new family: its first token.
    Start {
        token: Zeroizing<String>,
        hash: String,
        row: RefreshRow,
    },
    /// A presented token to spend, and its successor.
    Rotate {
        presented: String,
        successor: Zeroizing<String>,
        successor_hash: String,
        sealed: Option<String>,
    },
}

/// What a refresh grants: the user, with what was first granted (the
/// scope as narrowed by the request).
pub(super) struct Granted {
    pub(super) subject: String,
    pub(super) claims: Map<String, Value>,
    pub(super) scope: String,
    pub(super) audience: Value,
}

/// A new family for a user, when the client's grant types include
/// `refresh_token`; nothing is stored yet.
pub(super) fn start(
    st: &AppState,
    client: &Client,
    sub: &str,
    scope: &str,
    audience: &Value,
    claims: &Map<String, Value>,
    now: i64,
) -> Option<Session> {
    if !client
        .metadata
        .grant_types
        .contains(&GrantType::RefreshToken)
    {
        return None;
    }
    let (token, hash) = new_refresh_token();
    let expires_at = now.saturating_add(crate::clock::secs(st.config.tokens.refresh_token_ttl));
    let idle_until = now.saturating_add(crate::clock::secs(st.config.tokens.refresh_idle_timeout));
    let row = RefreshRow {
        family: crate::random_id(16),
        client_id: client.id.clone(),
        subject: sub.to_owned(),
        scope: scope.to_owned(),
        audience: audience.clone(),
        claims: claims.clone(),
        expires_at: UnixTime::from_secs(expires_at),
        idle_until: UnixTime::from_secs(idle_until.min(expires_at)),
        spent_at: None,
        revoked_at: None,
        successor_sealed: None,
    };
    Some(Session(Pending::Start { token, hash, row }))
}

/// The refresh_token grant up to the rotation: the presented token must
/// be this client's, unspent (or spent within the reuse interval: a
/// retry) and live, and the scope asked for within the one first granted.
/// Nothing is written, except for reuse: a token spent before is refused
/// and its family revoked, whatever else the request asks.
pub(super) async fn present(
    st: &AppState,
    client: &Client,
    params: &HashMap<String, String>,
    now: i64,
) -> Result<(Session, Granted), OAuthError> {
    let token = params
        .get("refresh_token")
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is missing"))?;
    // A made-up or mistyped token is refused before any lookup.
    if !is_handle(token, tessera_verify::handle::Kind::Refresh) {
        return Err(refusal(st, client, RefreshOutcome::Unknown));
    }
    let hash = token_hash::encoded(token);
    let interval = crate::clock::secs(st.config.tokens.refresh_reuse_interval);
    let row = st.store.refresh_token(&hash).await?;
    let Some(row) = row.filter(|r| r.client_id == client.id) else {
        return Err(refusal(st, client, RefreshOutcome::Unknown));
    };
    let at = UnixTime::from_secs(now);
    let reuse_interval = st.config.tokens.refresh_reuse_interval;
    if !row.is_spendable(at) && row.retry_successor(at, reuse_interval).is_none() {
        // Spent (reuse), revoked or expired: nothing will be issued.
        let outcome = if row.spent_at.is_some() {
            st.store
                .refresh_reused(&presented(st, client, &hash, now))
                .await?
        } else if row.revoked_at.is_some() {
            RefreshOutcome::Revoked
        } else {
            RefreshOutcome::Expired
        };
        return Err(refusal(st, client, outcome));
    }
    // A refresh may ask for less than was granted, never more.
    let scope = narrowed_scope(
        &row.scope,
        params.get("scope"),
        "a refresh cannot widen the scope first granted",
    )?;
    let (successor, successor_hash) = new_refresh_token();
    // Kept sealed for the reuse interval only when there is one.
    let sealed = if interval > 0 {
        Some(st.kek.seal(SUCCESSOR_CONTEXT, successor.as_bytes())?)
    } else {
        None
    };
    let session = Session(Pending::Rotate {
        presented: hash,
        successor,
        successor_hash,
        sealed,
    });
    let granted = Granted {
        subject: row.subject,
        claims: row.claims,
        scope,
        audience: row.audience,
    };
    Ok((session, granted))
}

impl Session {
    /// Stores the family's side together with `access`, the access token
    /// issued with it: starts the family, or spends the presented token
    /// and stores its successor. Returns the refresh token to hand out.
    ///
    /// # Errors
    /// `invalid_grant` when the presented token was spent, revoked or
    /// expired meanwhile (reuse revokes its family); then neither token is
    /// issued.
    pub(super) async fn store(
        self,
        st: &AppState,
        client: &Client,
        access: FamilyAccess<'_>,
        now: i64,
    ) -> Result<Zeroizing<String>, OAuthError> {
        let (presented_hash, successor, successor_hash, sealed) = match self.0 {
            Pending::Start { token, hash, row } => {
                let start = FamilyStart {
                    hash: &hash,
                    row: &row,
                    access,
                    now: UnixTime::from_secs(now),
                };
                st.store.insert_refresh(&start).await?;
                return Ok(token);
            }
            Pending::Rotate {
                presented,
                successor,
                successor_hash,
                sealed,
            } => (presented, successor, successor_hash, sealed),
        };
        let issue = Issue {
            successor_hash: &successor_hash,
            successor_sealed: sealed.as_deref(),
            access,
        };
        let outcome = st
            .store
            .rotate_refresh(&presented(st, client, &presented_hash, now), &issue)
            .await?;
        match outcome {
            RefreshOutcome::Rotated(_) => Ok(successor),
            RefreshOutcome::Retry(sealed, _) => {
                // A retry within the reuse interval: the same successor.
                let plain = st.kek.open(SUCCESSOR_CONTEXT, &sealed)?;
                let text =
                    String::from_utf8(plain.to_vec()).map_err(|e| OAuthError::internal(&e))?;
                Ok(Zeroizing::new(text))
            }
            other => Err(refusal(st, client, other)),
        }
    }
}

fn presented<'a>(st: &AppState, client: &'a Client, hash: &'a str, now: i64) -> Presented<'a> {
    Presented {
        hash,
        client_id: &client.id,
        reuse_interval: st.config.tokens.refresh_reuse_interval,
        idle: st.config.tokens.refresh_idle_timeout,
        now: UnixTime::from_secs(now),
    }
}

/// The answer to a refresh that issues nothing.
fn refusal(st: &AppState, client: &Client, outcome: RefreshOutcome) -> OAuthError {
    match outcome {
        RefreshOutcome::Reused => {
            st.metrics.refresh_reuse.increment(1);
            // Its access tokens are now on the deny-list: wake the feed.
            st.revocations.notify_waiters();
            tracing::warn!(client_id = %client.id, "spent refresh token presented again: family revoked");
            OAuthError::invalid_grant(
                "the refresh token was already used; its whole family is now revoked",
            )
        }
        RefreshOutcome::Expired => OAuthError::invalid_grant("the refresh token has expired"),
        RefreshOutcome::Revoked => OAuthError::invalid_grant("the refresh token was revoked"),
        // Rotated and Retry issue; they never reach here.
        RefreshOutcome::Unknown
        | RefreshOutcome::Foreign
        | RefreshOutcome::Rotated(_)
        | RefreshOutcome::Retry(..) => {
            OAuthError::invalid_grant("the refresh token is not valid for this client")
        }
    }
}
