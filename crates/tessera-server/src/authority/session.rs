//! The refresh-token side of a grant (RFC 6749 §6, RFC 9700 §4.14.2): a
//! user's login starts a family of refresh tokens, every use rotates it,
//! and a spent token presented again revokes the family.
//!
//! Nothing is spent before the access token it pays for exists. A
//! [`Session`] is prepared by the grant (a new family, or the rotation of
//! a presented token), then issuance mints the access token and holds it
//! to the size budget, and only then is the session stored, in the
//! transaction that stores the access token with its family
//! ([`Authority::store_session`]). A refusal at any step leaves the
//! presented token as it was: RFC 6749 §6 retires the old refresh token
//! only when a new one is issued. A new family likewise is stored only
//! together with the access token it was started for, so a refused login
//! leaves nothing behind.

use serde_json::{Map, Value};
use tessera_jose::UnixTime;
use tessera_verify::handle::{self, Kind};
use tessera_verify::token_hash;
use zeroize::Zeroizing;

use super::{Authority, OAuthError};
use crate::clients::{Client, GrantType};
use crate::store::{FamilyAccess, FamilyStart, Issue, Presented, RefreshOutcome, RefreshRow};

/// What the KEK seals a successor kept for the reuse interval under.
const SUCCESSOR_CONTEXT: &str = "refresh-successor";

/// The refresh-token side of a grant, not yet stored: it is stored only
/// with the access token issued with it.
pub(crate) struct Session(Pending);

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Holds a refresh token: never printed.
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

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

/// A new refresh token (a `tsr_` handle: 256 random bits and a check
/// value) and its stored hash.
fn new_refresh_token() -> (Zeroizing<String>, String) {
    let token = Zeroizing::new(handle::mint(Kind::Refresh));
    let hash = token_hash::encoded(&token);
    (token, hash)
}

impl Authority {
    /// A new family for a user, when the client's grant types include
    /// `refresh_token`; nothing is stored yet.
    pub(crate) fn start_session(
        &self,
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
        let tokens = &self.config.tokens;
        let (token, hash) = new_refresh_token();
        let expires_at = now.saturating_add(crate::clock::secs(tokens.refresh_token_ttl));
        let idle_until = now.saturating_add(crate::clock::secs(tokens.refresh_idle_timeout));
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

    /// The rotation of the presented token (`presented`, its hash): a
    /// successor, kept sealed for the reuse interval when there is one.
    ///
    /// # Errors
    /// When the KEK cannot seal.
    pub(crate) fn rotation(&self, presented: String) -> Result<Session, OAuthError> {
        let (successor, successor_hash) = new_refresh_token();
        let interval = self.config.tokens.refresh_reuse_interval;
        let sealed = if crate::clock::secs(interval) > 0 {
            Some(self.kek.seal(SUCCESSOR_CONTEXT, successor.as_bytes())?)
        } else {
            None
        };
        Ok(Session(Pending::Rotate {
            presented,
            successor,
            successor_hash,
            sealed,
        }))
    }

    /// Stores the family's side together with `access`, the access token
    /// issued with it: starts the family, or spends the presented token
    /// and stores its successor. Returns the refresh token to hand out.
    ///
    /// # Errors
    /// `invalid_grant` when the presented token was spent, revoked or
    /// expired meanwhile (reuse revokes its family); then neither token is
    /// issued.
    pub(crate) async fn store_session(
        &self,
        session: Session,
        client: &Client,
        access: FamilyAccess<'_>,
        now: i64,
    ) -> Result<Zeroizing<String>, OAuthError> {
        let (presented_hash, successor, successor_hash, sealed) = match session.0 {
            Pending::Start { token, hash, row } => {
                let start = FamilyStart {
                    hash: &hash,
                    row: &row,
                    access,
                    now: UnixTime::from_secs(now),
                };
                self.store.insert_refresh(&start).await?;
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
        let outcome = self
            .store
            .rotate_refresh(&self.presented(client, &presented_hash, now), &issue)
            .await?;
        match outcome {
            RefreshOutcome::Rotated(_) => Ok(successor),
            RefreshOutcome::Retry(sealed, _) => {
                // A retry within the reuse interval: the same successor.
                let plain = self.kek.open(SUCCESSOR_CONTEXT, &sealed)?;
                let text =
                    String::from_utf8(plain.to_vec()).map_err(|e| OAuthError::internal(&e))?;
                Ok(Zeroizing::new(text))
            }
            other => Err(self.refusal(client, other)),
        }
    }

    pub(crate) fn presented<'a>(
        &self,
        client: &'a Client,
        hash: &'a str,
        now: i64,
    ) -> Presented<'a> {
        Presented {
            hash,
            client_id: &client.id,
            reuse_interval: self.config.tokens.refresh_reuse_interval,
            idle: self.config.tokens.refresh_idle_timeout,
            now: UnixTime::from_secs(now),
        }
    }

    /// The answer to a refresh that issues nothing.
    pub(crate) fn refusal(&self, client: &Client, outcome: RefreshOutcome) -> OAuthError {
        match outcome {
            RefreshOutcome::Reused => {
                self.metrics.refresh_reuse.increment(1);
                // Its access tokens are now on the deny-list: wake the feed.
                self.deny_list.listed();
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
}
