//! Federation (RFC 8693 with `subject_token_type` jwt): a token of a
//! configured upstream issuer, verified by tessera-verify with that
//! issuer's key set and policy (its `iss`, our audience), becomes a Tessera
//! token for its subject in that upstream's namespace
//! (`<subject_prefix>|<sub>`), with the claims the mapping names. Not
//! capped by the upstream token: a Tessera token of its own, with a
//! refresh token when the client may have one (RFC 8693 §2.2.1): the
//! upstream login becomes a Tessera session.

use serde_json::{Map, Value};
use tessera_jose::UnixTime;

use crate::authority::basis::{Basis, Exchange};
use crate::authority::params::{Params, Target, JWT_TOKEN_TYPE};
use crate::authority::{Authority, OAuthError};
use crate::clients::Client;

/// The grant's parameters.
pub(crate) struct Request<'a> {
    subject_token: &'a str,
    scope: Option<&'a str>,
    target: Target<'a>,
}

impl<'a> Request<'a> {
    /// Whether a token exchange is federation: its subject token is an
    /// upstream's JWT.
    pub(crate) fn is_named(params: &Params) -> bool {
        params.get("subject_token_type") == Some(JWT_TOKEN_TYPE)
    }

    /// # Errors
    /// `invalid_request` without a `subject_token`.
    pub(crate) fn parse(params: &'a Params) -> Result<Self, OAuthError> {
        Ok(Self {
            subject_token: params.required("subject_token")?,
            scope: params.get("scope"),
            target: Target::of(params),
        })
    }
}

impl Authority {
    /// The upstream user as a Tessera subject, with the mapped claims.
    pub(crate) async fn federation_grant(
        &self,
        client: &Client,
        request: Request<'_>,
        now: i64,
    ) -> Result<Basis, OAuthError> {
        let user = self.federated(request.subject_token, now).await?;
        let mut basis = self.user_login(client, user, request.scope, request.target, now)?;
        basis.exchange = Some(Exchange::default());
        Ok(basis)
    }

    /// The upstream's token verified at `now`, the server's clock (as every
    /// other token and assertion it judges), not the system's.
    async fn federated(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(String, Map<String, Value>), OAuthError> {
        let unverified = tessera_jose::decode_unverified(token, tessera_jose::DEFAULT_MAX_SIZE)
            .map_err(|e| OAuthError::invalid_request(format!("subject_token: {}", e.code())))?;
        let iss = unverified.registered.iss.as_deref().unwrap_or_default();
        let Some((upstream, verifier)) = self.upstreams.iter().find(|(u, _)| u.issuer == iss)
        else {
            return Err(OAuthError::invalid_request(
                "subject_token: issuer_mismatch (not a configured upstream issuer)",
            ));
        };
        let verified = verifier
            .verify_at::<Value>(token, UnixTime::from_secs(now))
            .await
            .map_err(|e| OAuthError::invalid_request(format!("subject_token: {}", e.code())))?;
        let upstream_sub = verified.registered().sub.unwrap_or_default();
        if upstream_sub.is_empty() {
            return Err(OAuthError::invalid_request(
                "subject_token: missing_claim (sub)",
            ));
        }
        // Two upstreams may both have an "alice": each gets its own
        // namespace.
        let sub = upstream.subject(&upstream_sub);
        // An upstream token issued before its subject was signed out
        // everywhere here does not sign them back in.
        let facts = crate::store::TokenFacts {
            jti: None,
            sub: Some(&sub),
            client_id: None,
            iat: verified.registered().iat.map(UnixTime::secs),
            kid: None,
        };
        if self.store.is_refused(facts).await? {
            return Err(OAuthError::invalid_request(
                "subject_token: revoked (issued before its subject's tokens were revoked)",
            ));
        }
        let mut claims = Map::new();
        for (from, to) in &upstream.claims {
            if let Some(v) = verified.claims.get(from) {
                claims.insert(to.clone(), v.clone());
            }
        }
        if let Some(f) = tessera_jose::lint::sensitive_claims(&claims).first() {
            return Err(OAuthError::invalid_request(format!(
                "subject_token: {}",
                f.message
            )));
        }
        Ok((sub, claims))
    }
}
