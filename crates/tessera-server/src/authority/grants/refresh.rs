//! The refresh_token grant (RFC 6749 §6): the presented token must be this
//! client's, unspent (or spent within the reuse interval: a retry) and
//! live; its rotation is prepared here and stored with the access token it
//! pays for (`session.rs`).

use tessera_jose::UnixTime;
use tessera_verify::token_hash;

use crate::authority::basis::{narrowed_scope, Basis};
use crate::authority::params::Params;
use crate::authority::presented::PresentedToken;
use crate::authority::{Authority, OAuthError};
use crate::clients::Client;
use crate::store::RefreshOutcome;

/// The grant's parameters.
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

impl Authority {
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
        let session = self.rotation(hash)?;
        Ok(Basis {
            subject: Some(row.subject),
            claims: row.claims,
            scope,
            audience: row.audience,
            session: Some(session),
            exchange: None,
        })
    }
}
