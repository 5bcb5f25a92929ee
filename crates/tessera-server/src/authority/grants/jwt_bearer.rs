//! The JWT bearer grant for users (RFC 7523 §2.1): the client's assertion,
//! signed with a key it registered, names the user in `sub`.

use serde_json::{Map, Value};
use tessera_jose::{Claim, UnixTime, Validation};

use crate::authority::basis::Basis;
use crate::authority::client_auth::MAX_ASSERTION_LIFETIME;
use crate::authority::params::{Params, Target};
use crate::authority::{Authority, OAuthError};
use crate::clients::Client;

/// The grant's parameters.
pub(crate) struct Request<'a> {
    assertion: &'a str,
    scope: Option<&'a str>,
    target: Target<'a>,
}

impl<'a> Request<'a> {
    /// # Errors
    /// `invalid_request` without an `assertion`.
    pub(crate) fn parse(params: &'a Params) -> Result<Self, OAuthError> {
        Ok(Self {
            assertion: params.required("assertion")?,
            scope: params.get("scope"),
            target: Target::of(params),
        })
    }
}

impl Authority {
    /// The user the assertion names, with the claims the client may pass
    /// on, the scope and audience asked for, and a refresh-token family
    /// when the client may have one.
    pub(crate) async fn jwt_bearer_grant(
        &self,
        client: &Client,
        request: Request<'_>,
        now: i64,
    ) -> Result<Basis, OAuthError> {
        let user = self.user_assertion(client, request.assertion, now).await?;
        self.user_login(client, user, request.scope, request.target, now)
    }

    /// RFC 7523 §2.1 and §3: `aud` is the token endpoint or the issuer
    /// (draft-ietf-oauth-rfc7523bis §4 keeps both for authorization grants:
    /// the client itself chose where to send its assertion), `exp` at most
    /// an hour ahead, `jti` never used before. The user's `sub` is neither
    /// a client id nor a federated subject
    /// ([`crate::clients::user_subject_refusal`]). Returns the user and the
    /// assertion claims the client may pass on. Any failure is
    /// `invalid_grant`.
    async fn user_assertion(
        &self,
        client: &Client,
        assertion: &str,
        now: i64,
    ) -> Result<(String, Map<String, Value>), OAuthError> {
        let bad = |why: &str| OAuthError::invalid_grant(format!("assertion rejected: {why}"));
        let keys = client
            .assertion_keys
            .as_ref()
            .ok_or_else(|| bad("the client has no registered keys"))?;
        let validation = self.grant_assertion_validation(&client.id);
        let verified = tessera_jose::verify_at::<Value>(
            assertion,
            keys,
            &validation,
            UnixTime::from_secs(now),
        )
        .map_err(|e| bad(e.code()))?;
        let reg = verified.registered();
        let sub = reg.sub.as_deref().unwrap_or_default().to_owned();
        if sub.is_empty() || sub.len() > 255 {
            return Err(bad("sub must name the user (1 to 255 bytes)"));
        }
        if let Some(why) = crate::clients::user_subject_refusal(&sub) {
            return Err(bad(&why));
        }
        let exp = reg.exp.map_or(now, UnixTime::secs);
        if exp > now.saturating_add(MAX_ASSERTION_LIFETIME) {
            return Err(bad("exp is more than an hour ahead"));
        }
        let mut passed = Map::new();
        for name in &client.metadata.assertion_claims {
            if let Some(v) = verified.claims.get(name) {
                passed.insert(name.clone(), v.clone());
            }
        }
        // Values are checked per token (names were checked at registration).
        if let Some(f) = tessera_jose::lint::sensitive_claims(&passed).first() {
            return Err(bad(&f.message));
        }
        let jti = reg.jti.as_deref().unwrap_or_default();
        self.spend_assertion(&client.id, &format!("grant:{jti}"), exp, now)
            .await?
            .map_err(bad)?;
        Ok((sub, passed))
    }

    /// The policy of a jwt-bearer grant's assertion (RFC 7523 §2.1, §3):
    /// issued by the client, for the token endpoint or the issuer, with
    /// `sub` and `jti`.
    fn grant_assertion_validation(&self, client_id: &str) -> Validation {
        Validation::new()
            .issuer(client_id.to_owned())
            .audience(self.config.token_endpoint())
            .audience(self.config.issuer.clone())
            .require(Claim::Sub)
            .require(Claim::Jti)
            .leeway(self.config.tokens.leeway)
    }
}
