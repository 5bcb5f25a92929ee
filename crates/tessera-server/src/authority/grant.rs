//! A token request: its parameters, the grant they name (parsed once), and
//! what each grant gives ([`Basis`]), which [`super::issue`] turns into a
//! token.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::grants::{exchange, federation, jwt_bearer, refresh};
use super::issue::Issued;
use super::{Authority, OAuthError};
use crate::clients::{Client, GrantType};

/// The form parameters of an OAuth request, each at most once (RFC 6749
/// §3.2), empty ones left out.
#[derive(Debug, Default)]
pub(crate) struct Params(HashMap<String, String>);

impl Params {
    /// Parameters from (name, value) pairs; the first name repeated is the
    /// error.
    ///
    /// # Errors
    /// The repeated name.
    pub(crate) fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
    ) -> Result<Self, String> {
        let mut params = HashMap::new();
        for (name, value) in pairs {
            // RFC 6749 §3.2: a parameter sent without a value is omitted.
            if value.is_empty() {
                continue;
            }
            if params
                .insert(name.to_string(), value.into_owned())
                .is_some()
            {
                return Err(name.into_owned());
            }
        }
        Ok(Self(params))
    }

    /// The value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Whether `name` was sent.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The value of `name`, or `invalid_request` naming it.
    ///
    /// # Errors
    /// `invalid_request`: "`name` is missing".
    pub(crate) fn required(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("{name} is missing")))
    }
}

/// `audience` or RFC 8707 `resource`, as sent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub(crate) audience: Option<&'a str>,
    pub(crate) resource: Option<&'a str>,
}

impl<'a> Target<'a> {
    pub(crate) fn of(params: &'a Params) -> Self {
        Self {
            audience: params.get("audience"),
            resource: params.get("resource"),
        }
    }
}

/// A grant, parsed once from the request: what the client presents.
#[derive(Debug)]
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

/// What a grant gives, before a token exists: whom the token is for (None:
/// the client itself), the claims of that user the client may pass on,
/// the scope and audience, and for a user's login or refresh the
/// refresh-token side, stored only with the access token.
#[derive(Debug)]
pub(crate) struct Basis {
    pub(super) subject: Option<String>,
    pub(super) claims: Map<String, Value>,
    pub(super) scope: String,
    pub(super) audience: Value,
    pub(super) session: Option<refresh::Session>,
    /// RFC 8693: the answer names the issued token type, and the token is
    /// always a JWT (what the phantom-token pattern exchanges for).
    pub(super) exchange: Option<Exchange>,
}

/// What an exchange adds to a [`Basis`].
#[derive(Debug, Default)]
pub(crate) struct Exchange {
    /// The exchanged token's `exp`: an exchanged token never outlives it
    /// (None for federation: a Tessera token of its own).
    pub(super) cap: Option<i64>,
    /// The tokens it was granted on (subject, and actor), recorded as the
    /// new token's parents.
    pub(super) parents: Vec<super::presented::OwnToken>,
    /// The acting party of a delegation (RFC 8693 §4.1): server-owned.
    pub(super) act: Option<Value>,
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

/// The requested scope if every part is allowed; all allowed scopes when
/// none is requested.
pub(super) fn granted_scope(
    client: &Client,
    requested: Option<&str>,
) -> Result<String, OAuthError> {
    let Some(requested) = requested else {
        return Ok(client.metadata.scope.clone());
    };
    let mut granted: Vec<&str> = Vec::new();
    for s in requested.split(' ').filter(|s| !s.is_empty()) {
        if !client.scopes.iter().any(|a| a == s) {
            return Err(OAuthError::invalid_scope(format!(
                "scope {:?} is not allowed for this client",
                s.chars().take(60).collect::<String>()
            )));
        }
        if !granted.contains(&s) {
            granted.push(s);
        }
    }
    Ok(granted.join(" "))
}

/// `audience` (or RFC 8707 `resource`) narrows `aud` to one of the
/// client's audiences; without it the token names all of them.
pub(super) fn granted_audience(client: &Client, target: Target<'_>) -> Result<Value, OAuthError> {
    let asked = match (target.audience, target.resource) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "send audience or resource, not both",
            ))
        }
        (Some(a), None) | (None, Some(a)) => Some(a),
        (None, None) => None,
    };
    let all = &client.metadata.audiences;
    match asked {
        Some(a) => all
            .iter()
            .find(|x| *x == a)
            .map(|x| Value::String(x.clone()))
            .ok_or_else(|| {
                OAuthError::invalid_target("that audience is not allowed for this client")
            }),
        None if all.len() == 1 => Ok(Value::String(all[0].clone())),
        None => Ok(Value::from(all.clone())),
    }
}

/// The scope asked for when it is within `granted` (all of `granted` when
/// none is asked for); `invalid_scope` with `refusal` otherwise.
pub(super) fn narrowed_scope(
    granted: &str,
    asked: Option<&str>,
    refusal: &str,
) -> Result<String, OAuthError> {
    let Some(asked) = asked else {
        return Ok(granted.to_owned());
    };
    let granted: Vec<&str> = granted.split(' ').collect();
    if asked
        .split(' ')
        .filter(|s| !s.is_empty())
        .any(|s| !granted.contains(&s))
    {
        return Err(OAuthError::invalid_scope(refusal));
    }
    Ok(asked.to_owned())
}
