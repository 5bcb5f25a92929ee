//! Revocation (RFC 7009) and introspection (RFC 7662) of JWT access
//! tokens, and the deny-list feed that verifiers follow
//! (`GET /revocations?since=SEQ`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tessera_jose::UnixTime;
use tessera_verify::handle::{Handle, HandleError, Kind};

use super::token::{authenticate, parse_form};
use super::OAuthError;
use crate::server::AppState;

/// `POST /revoke`: the client authenticates as at the token endpoint.
pub(super) async fn revoke(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let result = match body {
        Ok(body) => revoke_token(&st, &headers, &body).await,
        Err(e) => Err(
            OAuthError::invalid_request("the request body is too large or unreadable")
                .with_status(e.status()),
        ),
    };
    match result {
        Ok(()) => {
            let mut resp = StatusCode::OK.into_response();
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) => e.into_response(),
    }
}

async fn revoke_token(st: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<(), OAuthError> {
    let params = parse_form(headers, body)?;
    let client = authenticate(st, headers, &params).await?;
    let token = params
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    // token_type_hint is only a hint (RFC 7009 §2.1); handles are
    // recognised by their format and JWT access tokens by their signature,
    // whatever it says.
    let now = st.clock.now();
    match Handle::parse(token) {
        Ok(h) if h.kind() == Kind::Opaque => {
            let done = st
                .store
                .delete_opaque(
                    &tessera_verify::token_hash::encoded(token),
                    &client.id,
                    UnixTime::from_secs(now),
                )
                .await?;
            return owned(done);
        }
        Ok(_) => {
            let done = st
                .store
                .revoke_refresh_family(
                    &tessera_verify::token_hash::encoded(token),
                    &client.id,
                    UnixTime::from_secs(now),
                )
                .await?;
            // The family's access tokens are now on the deny-list.
            st.revocations.notify_waiters();
            return owned(done);
        }
        // Made up or mistyped: never issued, nothing to revoke (§2.2).
        Err(HandleError::Malformed(_)) => return Ok(()),
        Err(HandleError::NotAHandle) => {}
    }
    let validation = super::token::own_token_validation(st, st.config.tokens.leeway);
    // A kid this node has not loaded is looked up again first; if the
    // store cannot be read, 503: never a 200 for a token that might be
    // live and is not listed (http/own.rs).
    let Some((verified, _)) = super::own::verify_own(st, token, &validation, now).await? else {
        // Invalid, expired, or not ours: nothing to revoke (RFC 7009 §2.2).
        return Ok(());
    };
    if verified.claims["client_id"].as_str() != Some(client.id.as_str()) {
        return Err(not_issued_to_caller());
    }
    let reg = verified.registered();
    let (Some(jti), Some(exp)) = (reg.jti.as_deref(), reg.exp) else {
        return Ok(());
    };
    // Listed for as long as any verifier could still accept the token.
    let until = exp
        .secs()
        .saturating_add(crate::clock::secs(st.config.tokens.leeway));
    let seq = st
        .store
        .revoke_jti(&crate::store::JtiRevocation {
            jti,
            client_id: &client.id,
            expires_at: UnixTime::from_secs(until),
            now: UnixTime::from_secs(now),
        })
        .await?;
    tracing::info!(client_id = %client.id, jti, seq, "access token revoked");
    st.revocations.notify_waiters();
    Ok(())
}

/// `GET /revocations?since=SEQ[&limit=N]`, HTTP Basic client authentication
/// of a client registered with the `revocations:read` permission.
pub(super) async fn feed(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if !headers.contains_key(header::AUTHORIZATION) {
        return OAuthError::invalid_client("the feed needs HTTP Basic client authentication", true)
            .into_response();
    }
    match authenticate_any(&st, &headers).await {
        Ok(client) if client.may(crate::clients::REVOCATIONS_READ) => {}
        Ok(client) => {
            // The feed names revoked subjects and client ids.
            tracing::info!(client_id = %client.id, "deny-list feed refused: no revocations:read");
            return OAuthError::unauthorized_client(
                "this client may not read the deny-list feed: register it with the permission revocations:read",
            )
            .with_status(StatusCode::FORBIDDEN)
            .into_response();
        }
        Err(e) => return e.into_response(),
    }
    let since = match query.get("since").map(|s| s.parse::<i64>()) {
        None => 0,
        Some(Ok(n)) if n >= 0 => n,
        Some(_) => {
            return OAuthError::invalid_request("since must be a sequence number").into_response()
        }
    };
    let limit = match query.get("limit").map(|s| s.parse::<i64>()) {
        None => 1000,
        Some(Ok(n)) if (1..=10_000).contains(&n) => n,
        Some(_) => return OAuthError::invalid_request("limit must be 1 to 10000").into_response(),
    };
    let wait = match query.get("wait").map(|s| s.parse::<u64>()) {
        None => 0,
        Some(Ok(n)) if n <= 30 => n,
        Some(_) => {
            return OAuthError::invalid_request("wait must be 0 to 30 seconds").into_response()
        }
    };
    // Long poll: with nothing new, hold the request until this node lists a
    // revocation or, for other nodes' revocations, the next look at the
    // database (every 250 ms), up to `wait` seconds.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(wait);
    let mut stopping = st.stopping.subscribe();
    let mut result = st.store.revocations_since(since, limit).await;
    while matches!(&result, Ok(page) if page.latest <= since && !page.snapshot)
        && tokio::time::Instant::now() < deadline
        && !*stopping.borrow()
    {
        let notified = st.revocations.notified();
        tokio::select! {
            _ = tokio::time::timeout(std::time::Duration::from_millis(250), notified) => {}
            _ = stopping.changed() => {}
        }
        result = st.store.revocations_since(since, limit).await;
    }
    match result {
        Ok(crate::store::FeedPage {
            latest,
            snapshot,
            entries,
        }) => {
            let more = i64::try_from(entries.len()).unwrap_or(i64::MAX) == limit;
            let mut resp = axum::Json(tessera_verify::feed_format::Page {
                entries,
                more,
                seq: latest,
                snapshot,
            })
            .into_response();
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) => OAuthError::from(e).into_response(),
    }
}

/// The client of Basic credentials, whatever its registered token-endpoint
/// method (any client with a secret can authenticate here).
async fn authenticate_any(
    st: &AppState,
    headers: &HeaderMap,
) -> Result<Arc<crate::clients::Client>, OAuthError> {
    let mut params = HashMap::new();
    params.insert("grant_type".to_owned(), String::new());
    match authenticate(st, headers, &params).await {
        Ok(client) => Ok(client),
        Err(e) if e.code() == "invalid_client" => {
            // A client_secret_post client presenting Basic: accept its secret.
            let (id, secret) = super::token::basic_credentials_of(headers)
                .ok_or_else(|| OAuthError::invalid_client("client authentication failed", true))?;
            let clients = st.clients.load();
            match clients.get(&id) {
                Some(c) if c.secret_matches(&secret) => Ok(Arc::clone(c)),
                _ => Err(OAuthError::invalid_client(
                    "client authentication failed",
                    true,
                )),
            }
        }
        Err(e) => Err(e),
    }
}

/// `POST /introspect` (RFC 7662): `{"active": true, ...claims}` for a valid,
/// unrevoked access token (or, to its own client, refresh token) of this
/// issuer that the calling client may see
/// (its own, or for one of its `introspection_audiences`); only
/// `{"active": false}` for anything else, whatever the reason.
pub(super) async fn introspect(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let result = match body {
        Ok(body) => introspection(&st, &headers, &body).await,
        Err(e) => Err(
            OAuthError::invalid_request("the request body is too large or unreadable")
                .with_status(e.status()),
        ),
    };
    match result {
        Ok(answer) => {
            let mut resp = axum::Json(answer).into_response();
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) => e.into_response(),
    }
}

async fn introspection(
    st: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, OAuthError> {
    let params = parse_form(headers, body)?;
    let client = authenticate(st, headers, &params).await?;
    let token = params
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    let inactive = json!({"active": false});
    let now = st.clock.now();
    let handle = match Handle::parse(token) {
        Ok(h) => Some(h.kind()),
        // Made up or mistyped: inactive, without a lookup.
        Err(HandleError::Malformed(_)) => return Ok(inactive),
        Err(HandleError::NotAHandle) => None,
    };
    if handle == Some(Kind::Opaque) {
        let found = st
            .store
            .opaque(&tessera_verify::token_hash::encoded(token))
            .await?;
        let Some(found) = found else {
            return Ok(inactive);
        };
        let mut claims = found.claims;
        if found.expires_at.secs() <= now || !may_see(&client, &found.client_id, claims.get("aud"))
        {
            return Ok(inactive);
        }
        if refused(st, &claims, None).await? {
            return Ok(inactive);
        }
        claims.insert("active".into(), json!(true));
        claims.insert("token_type".into(), json!("Bearer"));
        return Ok(Value::Object(claims));
    }
    if handle == Some(Kind::Refresh) {
        return refresh_introspection(st, &client, token, now).await;
    }
    let validation = super::token::own_token_validation(st, std::time::Duration::ZERO);
    // A JWT's signature is checked once per key set: resource servers
    // introspect the same token again and again. The deny-list and the
    // caller's right to see it are checked every time.
    let key = tessera_verify::token_hash::encoded(token);
    let cached = st.verified_jwts.get(&key, now, &st.ring.load().version);
    let jwt = match cached {
        Some(jwt) => jwt,
        None => {
            // A kid this node has not loaded is looked up again first.
            let Some((verified, etag)) =
                super::own::verify_own(st, token, &validation, now).await?
            else {
                return Ok(inactive);
            };
            let exp = verified.registered().exp.map_or(now, UnixTime::secs);
            let jwt = Arc::new(crate::jwtcache::OwnJwt {
                kid: verified.header.kid.clone(),
                claims: verified.claims,
            });
            // Under the key set it was verified with (perhaps just reloaded).
            st.verified_jwts.put(key, Arc::clone(&jwt), exp, etag, now);
            jwt
        }
    };
    let claims = &jwt.claims;
    let owner = claims["client_id"].as_str().unwrap_or_default();
    if !may_see(&client, owner, claims.get("aud")) {
        return Ok(inactive);
    }
    // The key too: another node may list a compromised key before this
    // one reloads its key set.
    match claims.as_object() {
        Some(map) if !refused(st, map, jwt.kid.as_deref()).await? => {}
        _ => return Ok(inactive),
    }
    let mut answer = claims.clone();
    if let Some(map) = answer.as_object_mut() {
        map.insert("active".into(), json!(true));
        map.insert("token_type".into(), json!("Bearer"));
    }
    Ok(answer)
}

/// A refresh token is active until it is used, its family is revoked, or
/// it passes its idle deadline or its family's end. Only the client it was
/// issued to may introspect it: no resource server ever holds one.
async fn refresh_introspection(
    st: &AppState,
    client: &crate::clients::Client,
    token: &str,
    now: i64,
) -> Result<Value, OAuthError> {
    let row = st
        .store
        .refresh_token(&tessera_verify::token_hash::encoded(token))
        .await?;
    let Some(row) = row.filter(|r| {
        r.client_id == client.id
            && r.spent_at.is_none()
            && r.revoked_at.is_none()
            && now <= r.expires_at.secs()
            && now <= r.idle_until.secs()
    }) else {
        return Ok(json!({"active": false}));
    };
    let mut answer = json!({
        "active": true,
        "token_type": "refresh_token",
        "iss": st.config.issuer,
        "sub": row.subject,
        "client_id": row.client_id,
        "exp": row.idle_until.min(row.expires_at),
    });
    answer["aud"] = row.audience;
    if !row.scope.is_empty() {
        answer["scope"] = Value::String(row.scope);
    }
    Ok(answer)
}

/// Whether the deny-list refuses a token with these claims, signed by `kid`
/// (none for an opaque token): its jti, its key, or a revocation of
/// everything of its subject or client.
pub(super) async fn refused(
    st: &AppState,
    claims: &serde_json::Map<String, Value>,
    kid: Option<&str>,
) -> Result<bool, OAuthError> {
    Ok(st
        .store
        .is_refused(crate::store::TokenFacts::from_claims(claims).signed_by(kid))
        .await?)
}

/// A caller may introspect its own tokens, and tokens for an audience in its
/// `introspection_audiences`.
fn may_see(client: &crate::clients::Client, owner: &str, aud: Option<&Value>) -> bool {
    if owner == client.id {
        return true;
    }
    let allowed = &client.metadata.introspection_audiences;
    match aud {
        Some(Value::String(a)) => allowed.iter().any(|x| x == a),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|a| allowed.iter().any(|x| x == a)),
        _ => false,
    }
}

/// RFC 7009 §2.1: a client may revoke only its own tokens. `done` is what
/// the store said: None unknown (fine, §2.2), Some(false) another client's.
fn owned(done: Option<bool>) -> Result<(), OAuthError> {
    match done {
        Some(false) => Err(not_issued_to_caller()),
        _ => Ok(()),
    }
}

fn not_issued_to_caller() -> OAuthError {
    OAuthError::unauthorized_client("the token was not issued to this client")
}
