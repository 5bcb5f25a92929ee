//! Rotating refresh tokens (RFC 6749 §6, RFC 9700 §4.14.2): a user's login
//! starts a family of refresh tokens, every use rotates it, and a spent
//! token presented again revokes the family.
//!
//! Nothing is spent before the access token it pays for exists. A refresh
//! is checked first (the token, the scope asked for), then issuance mints
//! the access token and holds it to the size budget, and only then is the
//! presented token rotated, in the transaction that stores the access
//! token with its family ([`Authority::store_session`]). A refusal at any
//! step leaves the presented token as it was: RFC 6749 §6 retires the old
//! refresh token only when a new one is issued. A new family likewise is
//! stored only together with the access token it was started for, so a
//! refused login leaves nothing behind.

use serde_json::{Map, Value};
use tessera_jose::UnixTime;
use tessera_verify::handle::{self, Kind};
use tessera_verify::token_hash;
use zeroize::Zeroizing;

use crate::authority::grant::{narrowed_scope, Basis, Params};
use crate::authority::presented::PresentedToken;
use crate::authority::{Authority, OAuthError};
use crate::clients::{Client, GrantType};
use crate::store::{FamilyAccess, FamilyStart, Issue, Presented, RefreshOutcome, RefreshRow};

/// What the KEK seals a successor kept for the reuse interval under.
const SUCCESSOR_CONTEXT: &str = "refresh-successor";

/// The grant's parameters.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    token: &'a str,
    scope: Option<&'a str>,
}

impl<'a> Request<'a> {
    /// # Errors
    /// `invalid_request` without a `refresh_token`.
    pub(crate) fn parse(params: &'a Params) -> Result<Self, OAuthError> {
        Ok(Self {
            token: params.required("refresh_token")?,
            scope: params.get("scope"),
        })
    }
}

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

    /// The refresh_token grant up to the rotation: the presented token must
    /// be this client's, unspent (or spent within the reuse interval: a
    /// retry) and live, and the scope asked for within the one first
    /// granted. Nothing is written, except for reuse: a token spent before
    /// is refused and its family revoked, whatever else the request asks.
    pub(crate) async fn refresh_grant(
        &self,
        client: &Client,
        request: Request<'_>,
        now: i64,
    ) -> Result<Basis, OAuthError> {
        // A made-up or mistyped token is refused before any lookup.
        let PresentedToken::Refresh(token) = PresentedToken::recognise(request.token) else {
            return Err(self.refusal(client, RefreshOutcome::Unknown));
        };
        let hash = token_hash::encoded(token);
        let interval = self.config.tokens.refresh_reuse_interval;
        let row = self.store.refresh_token(&hash).await?;
        let Some(row) = row.filter(|r| r.client_id == client.id) else {
            return Err(self.refusal(client, RefreshOutcome::Unknown));
        };
        let at = UnixTime::from_secs(now);
        if !row.is_spendable(at) && row.retry_successor(at, interval).is_none() {
            // Spent (reuse), revoked or expired: nothing will be issued.
            let outcome = if row.spent_at.is_some() {
                self.store
                    .refresh_reused(&self.presented(client, &hash, now))
                    .await?
            } else if row.revoked_at.is_some() {
                RefreshOutcome::Revoked
            } else {
                RefreshOutcome::Expired
            };
            return Err(self.refusal(client, outcome));
        }
        // A refresh may ask for less than was granted, never more.
        let scope = narrowed_scope(
            &row.scope,
            request.scope,
            "a refresh cannot widen the scope first granted",
        )?;
        let (successor, successor_hash) = new_refresh_token();
        // Kept sealed for the reuse interval only when there is one.
        let sealed = if crate::clock::secs(interval) > 0 {
            Some(self.kek.seal(SUCCESSOR_CONTEXT, successor.as_bytes())?)
        } else {
            None
        };
        Ok(Basis {
            subject: Some(row.subject),
            claims: row.claims,
            scope,
            audience: row.audience,
            session: Some(Session(Pending::Rotate {
                presented: hash,
                successor,
                successor_hash,
                sealed,
            })),
            exchange: None,
        })
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

    fn presented<'a>(&self, client: &'a Client, hash: &'a str, now: i64) -> Presented<'a> {
        Presented {
            hash,
            client_id: &client.id,
            reuse_interval: self.config.tokens.refresh_reuse_interval,
            idle: self.config.tokens.refresh_idle_timeout,
            now: UnixTime::from_secs(now),
        }
    }

    /// The answer to a refresh that issues nothing.
    fn refusal(&self, client: &Client, outcome: RefreshOutcome) -> OAuthError {
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
