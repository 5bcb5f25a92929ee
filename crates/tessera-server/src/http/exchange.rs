//! Token exchange (RFC 8693) at the token endpoint: a Tessera access token
//! exchanged for a narrower one (downscoping, delegation, the phantom-token
//! pattern), and federation, an upstream issuer's token exchanged for a
//! Tessera one.

use std::collections::HashMap;

use serde_json::{Map, Value};
use tessera_jose::UnixTime;
use tessera_verify::token_hash;

use super::token::{is_handle, narrowed_scope, own_token_validation};
use super::OAuthError;
use crate::clients::Client;
use crate::server::AppState;

pub(super) const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// What a token exchange grants.
pub(super) struct Exchanged {
    pub(super) subject: String,
    pub(super) claims: Map<String, Value>,
    pub(super) scope: String,
    pub(super) audience: Value,
    pub(super) exp: i64,
    /// `act` (RFC 8693 §4.1): the acting party, with the prior chain.
    pub(super) act: Option<Value>,
    /// The subject token, and the actor token of a delegation: recorded as
    /// the new token's parents.
    pub(super) parents: Vec<OwnToken>,
}

/// A Tessera access token (JWT or opaque), valid and unrevoked.
pub(super) struct OwnToken {
    pub(super) claims: Map<String, Value>,
    /// Its jti, or `tso:` and the hash of an opaque token: what tokens
    /// exchanged from it are recorded under.
    pub(super) key: String,
    /// The key that signed it (none for an opaque token).
    pub(super) kid: Option<String>,
}

async fn own_access_token(
    st: &AppState,
    token: &str,
    now: i64,
) -> Result<Option<OwnToken>, OAuthError> {
    // A made-up `tso_` handle fails as a JWT below, without a lookup.
    let found = if is_handle(token, tessera_verify::handle::Kind::Opaque) {
        let hash = token_hash::encoded(token);
        let row = st.store.opaque(&hash).await?;
        match row {
            Some(row) if row.expires_at.secs() > now => Some(OwnToken {
                claims: row.claims,
                key: crate::store::opaque_parent(&hash),
                kid: None,
            }),
            _ => None,
        }
    } else {
        let validation = own_token_validation(st, std::time::Duration::ZERO);
        match super::own::verify_own(st, token, &validation, now).await? {
            Some((v, _)) => match (v.registered().jti.map(|j| j.into_owned()), v.claims) {
                (Some(jti), Value::Object(claims)) => Some(OwnToken {
                    claims,
                    key: jti,
                    kid: v.header.kid.as_deref().map(str::to_owned),
                }),
                _ => None,
            },
            None => None,
        }
    };
    match found {
        Some(t) if !super::revoke::refused(st, &t.claims, t.kid.as_deref()).await? => Ok(Some(t)),
        _ => Ok(None),
    }
}

fn audiences_of(aud: Option<&Value>) -> Vec<String> {
    match aud {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// RFC 8693: a Tessera access token (JWT, or opaque: the phantom-token
/// pattern) exchanged for a JWT with the same or a narrower audience and
/// scope, never wider and never longer-lived; with an `actor_token` (the
/// exchanging client's own access token) the new token names the actor in
/// `act` (§4.1). The caller must be the token's client or a resource it was
/// issued for (its `introspection_audiences`).
pub(super) async fn exchange(
    st: &AppState,
    client: &Client,
    params: &HashMap<String, String>,
    now: i64,
) -> Result<Exchanged, OAuthError> {
    let subject_token = params
        .get("subject_token")
        .ok_or_else(|| OAuthError::invalid_request("subject_token is missing"))?;
    let kind = params
        .get("subject_token_type")
        .ok_or_else(|| OAuthError::invalid_request("subject_token_type is missing"))?;
    if kind != ACCESS_TOKEN_TYPE {
        return Err(OAuthError::unsupported_token_type(
            "subject_token_type must be urn:ietf:params:oauth:token-type:access_token (a Tessera access token)",
        ));
    }
    if let Some(t) = params.get("requested_token_type") {
        if t != ACCESS_TOKEN_TYPE && t != "urn:ietf:params:oauth:token-type:jwt" {
            return Err(OAuthError::invalid_request(
                "requested_token_type: only access tokens (JWT) are issued",
            ));
        }
    }
    let parent = own_access_token(st, subject_token, now)
        .await?
        .ok_or_else(|| {
            OAuthError::invalid_request("subject_token is not a valid access token of this issuer")
        })?;
    let mut claims = parent.claims.clone();
    let owner = claims
        .get("client_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let granted_aud = audiences_of(claims.get("aud"));
    let visible = owner == client.id
        || granted_aud.iter().any(|a| {
            client
                .metadata
                .introspection_audiences
                .iter()
                .any(|x| x == a)
        });
    if !visible {
        return Err(OAuthError::invalid_grant(
            "this client may not exchange that token",
        ));
    }
    // Audience: one of the granted ones (never another).
    let audience = match params.get("audience").or_else(|| params.get("resource")) {
        Some(a) if granted_aud.contains(a) => Value::String(a.clone()),
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
        .unwrap_or_default()
        .to_owned();
    let scope = narrowed_scope(
        &granted_scope,
        params.get("scope"),
        "an exchange cannot widen the scope",
    )?;
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(now);
    // Delegation: the actor proves itself with its own access token.
    let mut parents = vec![parent];
    let act = match (params.get("actor_token"), params.get("actor_token_type")) {
        (None, None) => claims.get("act").cloned(),
        (Some(actor), Some(t)) if t == ACCESS_TOKEN_TYPE => {
            let actor = own_access_token(st, actor, now).await?.ok_or_else(|| {
                OAuthError::invalid_request(
                    "actor_token is not a valid access token of this issuer",
                )
            })?;
            if actor.claims.get("client_id").and_then(Value::as_str) != Some(client.id.as_str()) {
                return Err(OAuthError::invalid_request(
                    "actor_token must be the exchanging client's own token",
                ));
            }
            // Revoking the actor's token reaches the delegated one too.
            parents.push(actor);
            let mut act = Map::new();
            act.insert("sub".into(), Value::String(client.id.clone()));
            if let Some(prior) = claims.get("act") {
                act.insert("act".into(), prior.clone());
            }
            Some(Value::Object(act))
        }
        (Some(_), _) => {
            return Err(OAuthError::unsupported_token_type(
                "actor_token_type must be an access token",
            ))
        }
        (None, Some(_)) => {
            return Err(OAuthError::invalid_request(
                "actor_token_type without actor_token",
            ))
        }
    };
    // Carry the user's claims; the server sets the registered ones anew,
    // and the exchanging client's static claims replace the subject
    // token's (http/claims.rs).
    for name in crate::clients::RESERVED_CLAIMS {
        claims.remove(name);
    }
    for name in client.metadata.claims.keys() {
        claims.remove(name);
    }
    Ok(Exchanged {
        subject,
        claims,
        scope,
        audience,
        exp,
        act,
        parents,
    })
}

pub(super) const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// Federation (RFC 8693 with `subject_token_type` jwt): a token of a
/// configured upstream issuer, verified by tessera-verify with that
/// issuer's key set and policy (its `iss`, our audience), becomes a Tessera
/// token for its subject in that upstream's namespace
/// (`<subject_prefix>|<sub>`), with the claims the mapping names.
pub(super) async fn federated(
    st: &AppState,
    params: &HashMap<String, String>,
) -> Result<(String, Map<String, Value>), OAuthError> {
    let token = params
        .get("subject_token")
        .ok_or_else(|| OAuthError::invalid_request("subject_token is missing"))?;
    let unverified = tessera_jose::decode_unverified(token, tessera_jose::DEFAULT_MAX_SIZE)
        .map_err(|e| OAuthError::invalid_request(format!("subject_token: {}", e.code())))?;
    let iss = unverified.registered.iss.as_deref().unwrap_or_default();
    let Some((upstream, verifier)) = st.upstreams.iter().find(|(u, _)| u.issuer == iss) else {
        return Err(OAuthError::invalid_request(
            "subject_token: issuer_mismatch (not a configured upstream issuer)",
        ));
    };
    let verified = verifier
        .verify::<Value>(token)
        .await
        .map_err(|e| OAuthError::invalid_request(format!("subject_token: {}", e.code())))?;
    let upstream_sub = verified.registered().sub.unwrap_or_default();
    if upstream_sub.is_empty() {
        return Err(OAuthError::invalid_request(
            "subject_token: missing_claim (sub)",
        ));
    }
    // Two upstreams may both have an "alice": each gets its own namespace.
    let sub = upstream.subject(&upstream_sub);
    // An upstream token issued before its subject was signed out everywhere
    // here does not sign them back in.
    let facts = crate::store::TokenFacts {
        jti: None,
        sub: Some(&sub),
        client_id: None,
        iat: verified.registered().iat.map(UnixTime::secs),
        kid: None,
    };
    if st.store.is_refused(facts).await? {
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
