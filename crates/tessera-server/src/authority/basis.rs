//! What a grant gives before a token exists ([`Basis`]), and the rules
//! every grant narrows scope and audience by.

use serde_json::{Map, Value};

use super::params::Target;
use super::presented::OwnToken;
use super::session::Session;
use super::{Authority, OAuthError};
use crate::clients::Client;

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
    pub(super) session: Option<Session>,
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
    pub(super) parents: Vec<OwnToken>,
    /// The acting party of a delegation (RFC 8693 §4.1): server-owned.
    pub(super) act: Option<Value>,
}

impl Authority {
    /// A user's login (a jwt-bearer assertion, a federated token): the
    /// user and the claims the client may pass on, the scope and audience
    /// asked for, and a refresh-token family when the client may have one.
    pub(crate) fn user_login(
        &self,
        client: &Client,
        (sub, claims): (String, Map<String, Value>),
        scope: Option<&str>,
        target: Target<'_>,
        now: i64,
    ) -> Result<Basis, OAuthError> {
        let scope = granted_scope(client, scope)?;
        let audience = granted_audience(client, target)?;
        let session = self.start_session(client, &sub, &scope, &audience, &claims, now);
        Ok(Basis {
            subject: Some(sub),
            claims,
            scope,
            audience,
            session,
            exchange: None,
        })
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
