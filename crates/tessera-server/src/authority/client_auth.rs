//! Client authentication: exactly one method per request, the one the
//! client registered: `client_secret_basic`, `client_secret_post` or
//! `private_key_jwt` (RFC 7523 §3). Secrets are compared as SHA-256 in
//! constant time ([`Client::secret_matches`]).

use std::sync::Arc;

use serde_json::Value;
use tessera_jose::{Claim, UnixTime, Validation};
use zeroize::Zeroizing;

use super::{Authority, OAuthError, Params};
use crate::clients::{AuthMethod, Client, ClientTable};
use crate::config::AssertionAudience;
use crate::store::UsedAssertion;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long ahead an assertion's `exp` may be: its `jti` is remembered
/// until then.
pub(super) const MAX_ASSERTION_LIFETIME: i64 = 3600;

/// Decoded HTTP Basic credentials: the client id and its secret.
pub(crate) type Basic = (String, Zeroizing<String>);

/// A request's client credentials as HTTP carried them.
#[derive(Debug)]
pub(crate) struct Credentials<'a> {
    /// `Authorization` was sent: its Basic credentials, or None when it is
    /// not valid Basic.
    pub(crate) basic: Option<Option<Basic>>,
    /// The form, with `client_id`, `client_secret`, `client_assertion`...
    pub(crate) params: &'a Params,
}

impl Authority {
    /// Finds and authenticates the client by exactly one method, the one it
    /// registered.
    ///
    /// # Errors
    /// `invalid_client` (with a Basic challenge when Basic was used), or
    /// `invalid_request` for a malformed request.
    pub(crate) async fn authenticate(
        &self,
        creds: &Credentials<'_>,
    ) -> Result<Arc<Client>, OAuthError> {
        let params = creds.params;
        let assertion =
            params.contains("client_assertion") || params.contains("client_assertion_type");
        let post = params.contains("client_secret");
        let methods =
            usize::from(creds.basic.is_some()) + usize::from(assertion) + usize::from(post);
        if methods > 1 {
            return Err(OAuthError::invalid_request(
                "use exactly one client authentication method",
            ));
        }
        let clients = self.clients();
        let unknown = |basic| OAuthError::invalid_client("client authentication failed", basic);
        if let Some(parsed) = &creds.basic {
            let (id, secret) = parsed.as_ref().ok_or_else(|| {
                OAuthError::invalid_client(
                    "Authorization header is not valid Basic credentials",
                    true,
                )
            })?;
            if params.get("client_id").is_some_and(|c| c != id) {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the authenticated client",
                ));
            }
            return by_secret(&clients, id, secret, AuthMethod::ClientSecretBasic)
                .ok_or_else(|| unknown(true));
        }
        if post {
            let id = params
                .get("client_id")
                .ok_or_else(|| OAuthError::invalid_request("client_secret needs client_id"))?;
            let secret = params.get("client_secret").unwrap_or_default();
            return by_secret(&clients, id, secret, AuthMethod::ClientSecretPost)
                .ok_or_else(|| unknown(false));
        }
        if assertion {
            return self.private_key_jwt(&clients, params).await;
        }
        Err(OAuthError::invalid_client(
            "no client authentication: use HTTP Basic, client_secret or a client_assertion",
            false,
        ))
    }

    /// The client of Basic credentials, whatever its registered
    /// token-endpoint method (any client with a secret can authenticate to
    /// the deny-list feed).
    ///
    /// # Errors
    /// `invalid_client` with a Basic challenge.
    pub(crate) async fn authenticate_any_secret(
        &self,
        basic: Option<Basic>,
    ) -> Result<Arc<Client>, OAuthError> {
        let params = Params::default();
        let creds = Credentials {
            basic: Some(basic.clone()),
            params: &params,
        };
        match self.authenticate(&creds).await {
            Ok(client) => Ok(client),
            Err(e) if e.code() == "invalid_client" => {
                // A client_secret_post client presenting Basic: accept its
                // secret.
                let failed = || OAuthError::invalid_client("client authentication failed", true);
                let (id, secret) = basic.ok_or_else(failed)?;
                match self.clients().get(&id) {
                    Some(c) if c.secret_matches(&secret) => Ok(Arc::clone(c)),
                    _ => Err(failed()),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// RFC 7523 §3 client authentication.
    async fn private_key_jwt(
        &self,
        clients: &ClientTable,
        params: &Params,
    ) -> Result<Arc<Client>, OAuthError> {
        if params.get("client_assertion_type") != Some(ASSERTION_TYPE) {
            return Err(OAuthError::invalid_request(format!(
                "client_assertion_type must be {ASSERTION_TYPE}"
            )));
        }
        let assertion = params
            .get("client_assertion")
            .ok_or_else(|| OAuthError::invalid_request("client_assertion is missing"))?;
        let failed = |why: &str| {
            OAuthError::invalid_client(format!("client assertion rejected: {why}"), false)
        };
        // The issuer names the client; read it before verifying to pick its
        // keys.
        let unverified = tessera_jose::decode_unverified(assertion, tessera_jose::DEFAULT_MAX_SIZE)
            .map_err(|e| failed(e.code()))?;
        let iss = unverified
            .registered
            .iss
            .as_deref()
            .ok_or_else(|| failed("no iss"))?
            .to_owned();
        if params.get("client_id").is_some_and(|c| c != iss) {
            return Err(OAuthError::invalid_request(
                "client_id differs from the assertion's iss",
            ));
        }
        // One answer for "no such client" and "a client with a secret": the
        // token endpoint does not tell which client ids exist.
        let not_one = || failed("iss is not a private_key_jwt client");
        let client = clients.get(&iss).ok_or_else(not_one)?;
        let keys = match (
            &client.metadata.token_endpoint_auth_method,
            &client.assertion_keys,
        ) {
            (AuthMethod::PrivateKeyJwt, Some(keys)) => keys,
            _ => return Err(not_one()),
        };
        let policy = self.config.tokens.private_key_jwt_audience;
        let validation = self.client_assertion_validation(&iss, policy);
        let now = self.now();
        let verified = tessera_jose::verify_at::<Value>(
            assertion,
            keys,
            &validation,
            UnixTime::from_secs(now),
        )
        .map_err(|e| failed(e.code()))?;
        let reg = verified.registered();
        if reg.sub.as_deref() != Some(iss.as_str()) {
            return Err(failed("sub must equal iss (the client_id)"));
        }
        if policy == AssertionAudience::Issuer
            && reg.aud.as_ref().map(|a| a.iter().count()) != Some(1)
        {
            return Err(failed(
                "aud must be the issuer identifier alone (draft-ietf-oauth-rfc7523bis)",
            ));
        }
        let exp = reg.exp.map_or(now, UnixTime::secs);
        let jti = reg.jti.as_deref().unwrap_or_default();
        self.spend_assertion(&client.id, jti, exp, now)
            .await?
            .map_err(failed)?;
        Ok(Arc::clone(client))
    }

    /// Remembers an assertion's `jti` (`key`) until its `exp`: Ok(Err(why))
    /// when `exp` is more than an hour ahead or the `jti` was used before.
    ///
    /// # Errors
    /// On storage failure.
    pub(super) async fn spend_assertion(
        &self,
        client_id: &str,
        key: &str,
        exp: i64,
        now: i64,
    ) -> Result<Result<(), &'static str>, OAuthError> {
        if exp > now.saturating_add(MAX_ASSERTION_LIFETIME) {
            return Ok(Err("exp is more than an hour ahead"));
        }
        let leeway = crate::clock::secs(self.config.tokens.leeway);
        let fresh = self
            .store
            .use_assertion(&UsedAssertion {
                client_id,
                jti: key,
                expires_at: UnixTime::from_secs(exp.saturating_add(leeway)),
                now: UnixTime::from_secs(now),
            })
            .await?;
        Ok(if fresh {
            Ok(())
        } else {
            Err("jti was already used")
        })
    }

    /// The policy of a `private_key_jwt` client assertion (RFC 7523 §2.2,
    /// §3): issued by the client, with `sub` and `jti`, for the issuer
    /// identifier (the caller also checks it is the sole audience), or with
    /// `issuer_or_token_endpoint` for either of them.
    fn client_assertion_validation(
        &self,
        client_id: &str,
        policy: AssertionAudience,
    ) -> Validation {
        let validation = Validation::new()
            .issuer(client_id.to_owned())
            .audience(self.config.issuer.clone())
            .require(Claim::Sub)
            .require(Claim::Jti)
            .leeway(self.config.tokens.leeway);
        match policy {
            AssertionAudience::Issuer => validation,
            AssertionAudience::IssuerOrTokenEndpoint => {
                validation.audience(self.config.token_endpoint())
            }
        }
    }
}

/// The client `id` if it registered `method` and `secret` is its secret.
fn by_secret(
    clients: &ClientTable,
    id: &str,
    secret: &str,
    method: AuthMethod,
) -> Option<Arc<Client>> {
    clients
        .get(id)
        .filter(|c| c.metadata.token_endpoint_auth_method == method && c.secret_matches(secret))
        .map(Arc::clone)
}
