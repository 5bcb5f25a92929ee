//! Token exchange (RFC 8693): a Tessera access token (JWT, or opaque: the
//! phantom-token pattern) exchanged for a JWT with the same or a narrower
//! audience and scope, never wider and never longer-lived; with an
//! `actor_token` (the exchanging client's own access token) the new token
//! names the actor in `act` (§4.1). The caller must be the token's client
//! or a resource it was issued for (its `introspection_audiences`).

use serde_json::{Map, Value};

use crate::authority::basis::{narrowed_scope, Basis, Exchange};
use crate::authority::params::{Params, ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE};
use crate::authority::{Authority, OAuthError};
use crate::clients::Client;

/// The grant's parameters.
pub(crate) struct Request<'a> {
    subject_token: &'a str,
    scope: Option<&'a str>,
    /// `audience`, else `resource`: one of the granted audiences.
    audience: Option<&'a str>,
    actor_token: Option<&'a str>,
    actor_token_type: Option<&'a str>,
}

impl<'a> Request<'a> {
    /// # Errors
    /// `invalid_request` without a subject token or its type, or asking for
    /// a token type other than an access token; `unsupported_token_type`
    /// for a subject token that is not an access token.
    pub(crate) fn parse(params: &'a Params) -> Result<Self, OAuthError> {
        let subject_token = params.required("subject_token")?;
        if params.required("subject_token_type")? != ACCESS_TOKEN_TYPE {
            return Err(OAuthError::unsupported_token_type(
                "subject_token_type must be urn:ietf:params:oauth:token-type:access_token (a Tessera access token)",
            ));
        }
        if let Some(t) = params.get("requested_token_type") {
            if t != ACCESS_TOKEN_TYPE && t != JWT_TOKEN_TYPE {
                return Err(OAuthError::invalid_request(
                    "requested_token_type: only access tokens (JWT) are issued",
                ));
            }
        }
        Ok(Self {
            subject_token,
            scope: params.get("scope"),
            audience: params.get("audience").or_else(|| params.get("resource")),
            actor_token: params.get("actor_token"),
            actor_token_type: params.get("actor_token_type"),
        })
    }
}

impl Authority {
    /// What exchanging the subject token gives `client`.
    pub(crate) async fn exchange_grant(
        &self,
        client: &Client,
        request: Request<'_>,
        now: i64,
    ) -> Result<Basis, OAuthError> {
        let parent = self
            .unrevoked_access_token(request.subject_token, now)
            .await?
            .ok_or_else(|| {
                OAuthError::invalid_request(
                    "subject_token is not a valid access token of this issuer",
                )
            })?;
        if !parent.visible_to(client) {
            return Err(OAuthError::invalid_grant(
                "this client may not exchange that token",
            ));
        }
        let mut claims = parent.claims.clone();
        // Audience: one of the granted ones (never another).
        let audience = match request.audience {
            Some(a) if parent.audiences().iter().any(|g| g == a) => Value::String(a.to_owned()),
            Some(_) => {
                return Err(OAuthError::invalid_target(
                    "an exchange cannot widen the audience",
                ))
            }
            None => claims.get("aud").cloned().unwrap_or(Value::Null),
        };
        // Scope: a subset of the granted one.
        let granted_scope = claims
            .get("scope")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let scope = narrowed_scope(
            granted_scope,
            request.scope,
            "an exchange cannot widen the scope",
        )?;
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(now);
        let mut parents = vec![parent];
        let act = self
            .actor(client, &request, &claims, &mut parents, now)
            .await?;
        // Carry the user's claims; the server sets the registered ones
        // anew, and the exchanging client's static claims replace the
        // subject token's (claims.rs).
        for name in crate::vocabulary::RESERVED_CLAIMS {
            claims.remove(name);
        }
        for name in client.metadata.claims.keys() {
            claims.remove(name);
        }
        Ok(Basis {
            subject: Some(subject),
            claims,
            scope,
            audience,
            session: None,
            exchange: Some(Exchange {
                cap: Some(exp),
                parents,
                act,
            }),
        })
    }

    /// Delegation: the actor proves itself with its own access token, which
    /// joins `parents` (revoking it reaches the delegated token too). The
    /// new `act` names the exchanging client, with the prior chain; without
    /// an actor token the subject token's `act` carries over.
    async fn actor(
        &self,
        client: &Client,
        request: &Request<'_>,
        claims: &Map<String, Value>,
        parents: &mut Vec<crate::authority::presented::OwnToken>,
        now: i64,
    ) -> Result<Option<Value>, OAuthError> {
        match (request.actor_token, request.actor_token_type) {
            (None, None) => Ok(claims.get("act").cloned()),
            (Some(actor), Some(ACCESS_TOKEN_TYPE)) => {
                let actor = self
                    .unrevoked_access_token(actor, now)
                    .await?
                    .ok_or_else(|| {
                        OAuthError::invalid_request(
                            "actor_token is not a valid access token of this issuer",
                        )
                    })?;
                if actor.owner() != client.id {
                    return Err(OAuthError::invalid_request(
                        "actor_token must be the exchanging client's own token",
                    ));
                }
                parents.push(actor);
                let mut act = Map::new();
                act.insert("sub".into(), Value::String(client.id.clone()));
                if let Some(prior) = claims.get("act") {
                    act.insert("act".into(), prior.clone());
                }
                Ok(Some(Value::Object(act)))
            }
            (Some(_), _) => Err(OAuthError::unsupported_token_type(
                "actor_token_type must be an access token",
            )),
            (None, Some(_)) => Err(OAuthError::invalid_request(
                "actor_token_type without actor_token",
            )),
        }
    }

    /// A live access token of this issuer that the deny-list does not
    /// refuse.
    async fn unrevoked_access_token(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Option<crate::authority::presented::OwnToken>, OAuthError> {
        match self.own_access_token(token, now).await? {
            Some(t) if !self.refuses(&t).await? => Ok(Some(t)),
            _ => Ok(None),
        }
    }
}
