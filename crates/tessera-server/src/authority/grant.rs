//! A token request: the grant its parameters name (parsed once), whether
//! this client may use it, what it gives ([`Basis`], one module per grant
//! in `grants/`), and the token [`super::issue`] makes of that.

use serde_json::Map;

use super::basis::{granted_audience, granted_scope, Basis};
use super::grants::{exchange, federation, jwt_bearer, refresh};
use super::issue::Issued;
use super::params::{Params, Target};
use super::{Authority, OAuthError};
use crate::clients::{Client, GrantType};

/// A grant, parsed once from the request: what the client presents.
pub(crate) enum Grant<'a> {
    /// RFC 6749 §4.4: the client itself.
    ClientCredentials {
        scope: Option<&'a str>,
        target: Target<'a>,
    },
    /// RFC 7523 §2.1: a user named by the client's assertion.
    JwtBearer(jwt_bearer::Request<'a>),
    /// RFC 6749 §6: a refresh token of a user's session.
    RefreshToken(refresh::Request<'a>),
    /// RFC 8693: a Tessera access token, exchanged.
    TokenExchange(exchange::Request<'a>),
    /// RFC 8693 with an upstream issuer's JWT: federation.
    Federation(federation::Request<'a>),
}

impl<'a> Grant<'a> {
    /// The grant `grant_type` names, with its parameters.
    ///
    /// # Errors
    /// `invalid_request` for a missing parameter; the grant's own refusals
    /// of its token types.
    pub(crate) fn parse(grant_type: GrantType, params: &'a Params) -> Result<Self, OAuthError> {
        let scope = params.get("scope");
        let target = Target::of(params);
        Ok(match grant_type {
            GrantType::ClientCredentials => Self::ClientCredentials { scope, target },
            GrantType::JwtBearer => Self::JwtBearer(jwt_bearer::Request::parse(params)?),
            GrantType::RefreshToken => Self::RefreshToken(refresh::Request::parse(params)?),
            GrantType::TokenExchange if federation::Request::is_named(params) => {
                Self::Federation(federation::Request::parse(params)?)
            }
            GrantType::TokenExchange => Self::TokenExchange(exchange::Request::parse(params)?),
        })
    }
}

impl Authority {
    /// The token endpoint: the grant the request names, if this client
    /// may use it, and the token it gives.
    ///
    /// # Errors
    /// The RFC 6749 §5.2 error of the first check that fails.
    pub(crate) async fn token(
        &self,
        client: &Client,
        params: &Params,
    ) -> Result<Issued, OAuthError> {
        // No token carries a time from a clock that is not trusted.
        self.clock_trusted()?;
        let name = params.required("grant_type")?;
        let grant_type = GrantType::from_name(name).ok_or_else(|| {
            OAuthError::unsupported_grant_type(format!(
                "grant_type {:?} is not supported here; supported: {}",
                name.chars().take(60).collect::<String>(),
                GrantType::supported()
            ))
        })?;
        if !client.metadata.grant_types.contains(&grant_type) {
            return Err(OAuthError::unauthorized_client(
                "this client is not registered for that grant",
            ));
        }
        if let Some(reason) = &client.refusal {
            tracing::warn!(client_id = %client.id, "static claims break the sensitive-claim policy: refused");
            return Err(OAuthError::invalid_request(format!(
                "no token is issued to this client: {reason}"
            )));
        }
        let now = self.now();
        let grant = Grant::parse(grant_type, params)?;
        let basis = self.basis(client, grant, now).await?;
        self.issue(client, grant_type, basis, now).await
    }

    /// What `grant` gives `client`.
    async fn basis(
        &self,
        client: &Client,
        grant: Grant<'_>,
        now: i64,
    ) -> Result<Basis, OAuthError> {
        match grant {
            Grant::ClientCredentials { scope, target } => Ok(Basis {
                subject: None,
                claims: Map::new(),
                scope: granted_scope(client, scope)?,
                audience: granted_audience(client, target)?,
                session: None,
                exchange: None,
            }),
            Grant::JwtBearer(r) => self.jwt_bearer_grant(client, r, now).await,
            Grant::RefreshToken(r) => self.refresh_grant(client, r, now).await,
            Grant::TokenExchange(r) => self.exchange_grant(client, r, now).await,
            Grant::Federation(r) => self.federation_grant(client, r, now).await,
        }
    }
}
