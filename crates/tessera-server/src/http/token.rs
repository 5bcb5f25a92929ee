//! The token endpoint: `client_credentials` (RFC 6749 §4.4), the JWT
//! bearer grant for users (RFC 7523 §2.1), rotating refresh tokens, and
//! token exchange (RFC 8693, in `exchange.rs`), with `client_secret_basic`,
//! `client_secret_post` and `private_key_jwt` (RFC 7523) client
//! authentication; access tokens per RFC 9068, or opaque.
//!
//! The hot path reads the client and the signing key from memory (no
//! database read, no lock); only `private_key_jwt` writes, to remember the
//! assertion's `jti`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use tessera_jose::{Claim, UnixTime, Validation};
use tessera_verify::{handle, token_hash};

use super::claims::{access_claims, checked_json, ServerClaims};
use super::exchange::{exchange, federated, OwnToken, ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE};
use super::{refresh, OAuthError};
use crate::clients::{AuthMethod, Client, GrantType, TokenFormat};
use crate::config::AssertionAudience;
use crate::server::AppState;
use crate::store::{FamilyAccess, NewOpaque, UsedAssertion};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long ahead an assertion's `exp` may be: its `jti` is remembered
/// until then.
const MAX_ASSERTION_LIFETIME: i64 = 3600;

pub(super) async fn token(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            // Over the body limit, or a body that could not be read: still
            // an RFC 6749 §5.2 answer, with the status axum chose (413...).
            st.metrics.error("invalid_request");
            return OAuthError::invalid_request("the request body is too large or unreadable")
                .with_status(e.status())
                .into_response();
        }
    };
    match issue(&st, &headers, &body).await {
        Ok(resp) => resp,
        Err(e) => {
            st.metrics.error(e.code());
            e.into_response()
        }
    }
}

/// The form, each parameter at most once (RFC 6749 §3.2).
pub(super) fn parse_form(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<HashMap<String, String>, OAuthError> {
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let mut params = HashMap::new();
    for (name, value) in form_urlencoded::parse(body) {
        // RFC 6749 §3.2: a parameter sent without a value is omitted.
        if value.is_empty() {
            continue;
        }
        if params
            .insert(name.to_string(), value.into_owned())
            .is_some()
        {
            return Err(OAuthError::invalid_request(format!(
                "parameter {:?} is repeated",
                name.chars().take(40).collect::<String>()
            )));
        }
    }
    Ok(params)
}

async fn issue(st: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Response, OAuthError> {
    let params = parse_form(headers, body)?;
    let client = authenticate(st, headers, &params).await?;

    let grant = params
        .get("grant_type")
        .ok_or_else(|| OAuthError::invalid_request("grant_type is missing"))?;
    let grant = GrantType::from_name(grant).ok_or_else(|| {
        OAuthError::unsupported_grant_type(format!(
            "grant_type {:?} is not supported here; supported: {}",
            grant.chars().take(60).collect::<String>(),
            GrantType::supported()
        ))
    })?;
    if !client.metadata.grant_types.contains(&grant) {
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
    let now = st.clock.now();
    // Whom the token is for and what it grants: the client itself; the
    // user a jwt-bearer assertion names (with the claims the client may
    // pass on); or the user of a refresh token, as first granted. A
    // refresh-token family started or rotated here is stored only with the
    // access token (see refresh.rs).
    let mut session: Option<refresh::Session> = None;
    // An exchanged token never outlives the token it was exchanged for.
    let mut exp_cap: Option<i64> = None;
    // The tokens an exchange was granted on (subject, and actor).
    let mut parents: Vec<OwnToken> = Vec::new();
    // The acting party of a delegation (RFC 8693 §4.1): server-owned.
    let mut act: Option<Value> = None;
    let (subject, user_claims, scope, audience) = match grant {
        GrantType::JwtBearer => {
            let (sub, claims) = user_assertion(st, &client, &params).await?;
            let scope = granted_scope(&client, params.get("scope").map(String::as_str))?;
            let audience = granted_audience(&client, &params)?;
            session = refresh::start(st, &client, &sub, &scope, &audience, &claims, now);
            (Some(sub), claims, scope, audience)
        }
        GrantType::RefreshToken => {
            let (presented, granted) = refresh::present(st, &client, &params, now).await?;
            session = Some(presented);
            (
                Some(granted.subject),
                granted.claims,
                granted.scope,
                granted.audience,
            )
        }
        GrantType::TokenExchange
            if params.get("subject_token_type").map(String::as_str) == Some(JWT_TOKEN_TYPE) =>
        {
            let (sub, claims) = federated(st, &params).await?;
            let scope = granted_scope(&client, params.get("scope").map(String::as_str))?;
            let audience = granted_audience(&client, &params)?;
            // Not capped by the upstream token: a Tessera token of its own,
            // with a refresh token when the client may have one (RFC 8693
            // §2.2.1): the upstream login becomes a Tessera session.
            exp_cap = Some(i64::MAX);
            session = refresh::start(st, &client, &sub, &scope, &audience, &claims, now);
            (Some(sub), claims, scope, audience)
        }
        GrantType::TokenExchange => {
            let x = exchange(st, &client, &params, now).await?;
            exp_cap = Some(x.exp);
            parents = x.parents;
            act = x.act;
            (Some(x.subject), x.claims, x.scope, x.audience)
        }
        GrantType::ClientCredentials => {
            let scope = granted_scope(&client, params.get("scope").map(String::as_str))?;
            let audience = granted_audience(&client, &params)?;
            (None, Map::new(), scope, audience)
        }
    };

    let ring = st.ring.load();
    let key = ring
        .primary()
        .ok_or_else(|| OAuthError::unavailable("no active signing key yet"))?;
    // Capped by today's maximum: keys.grace was checked against it, so a
    // token never outlives the retired key that signed it.
    let max_ttl = st.config.tokens.max_access_token_ttl.as_secs();
    let ttl = i64::try_from(client.metadata.access_token_ttl.min(max_ttl)).unwrap_or(900);
    let ttl = exp_cap.map_or(ttl, |cap| ttl.min(cap.saturating_sub(now)).max(0));
    let jti = crate::random_id(16);
    let exp = now.saturating_add(ttl);
    let claims = access_claims(
        &ServerClaims {
            iss: &st.config.issuer,
            sub: subject.as_deref().unwrap_or(&client.id),
            aud: &audience,
            exp,
            iat: now,
            jti: &jti,
            client_id: &client.id,
            scope: &scope,
            act: act.as_ref(),
        },
        &client.metadata.claims,
        &user_claims,
    );
    checked_json(&claims)?;
    // Token exchange always answers with a JWT: that is what the phantom
    // token pattern exchanges an opaque token for.
    if client.metadata.token_format == TokenFormat::Opaque && exp_cap.is_none() {
        // The Stripe model: a random handle; the claims stay here and are
        // read through introspection.
        let opaque = zeroize::Zeroizing::new(handle::mint(handle::Kind::Opaque));
        let hash = token_hash::encoded(&opaque);
        let refresh_token = match session {
            Some(session) => {
                let access = FamilyAccess::Opaque {
                    hash: &hash,
                    claims: &claims,
                    expires_at: UnixTime::from_secs(exp),
                };
                Some(session.store(st, &client, access, now).await?)
            }
            None => {
                st.store
                    .insert_opaque(&NewOpaque {
                        hash: &hash,
                        client_id: &client.id,
                        claims: &claims,
                        now: UnixTime::from_secs(now),
                        expires_at: UnixTime::from_secs(exp),
                    })
                    .await?;
                None
            }
        };
        return Ok(token_response(
            &client,
            grant,
            opaque.to_string(),
            ttl,
            scope,
            refresh_token,
        ));
    }
    let token = key
        .signer
        .sign(&claims)
        .map_err(|e| OAuthError::internal(&e))?;
    let budget = st.config.tokens.size_budget;
    if token.len() > budget {
        tracing::warn!(client_id = %client.id, bytes = token.len(), budget, "token over the size budget: refused");
        return Err(OAuthError::invalid_request(format!(
            "the access token would be {} bytes, over the server's {budget}-byte budget; ask for fewer scopes or one audience",
            token.len()
        )));
    }
    for parent in &parents {
        // Revoking the subject or actor token (or everything of its client
        // or key) reaches this one through the deny-list feed.
        let derived = crate::store::Derived {
            jti: &jti,
            expires_at: UnixTime::from_secs(exp).saturating_add(st.config.tokens.leeway),
            parent: parent.key.clone(),
            parent_client: parent
                .claims
                .get("client_id")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            parent_kid: parent.kid.as_deref(),
        };
        let recorded = st
            .store
            .record_derived(
                &derived,
                crate::store::TokenFacts::from_claims(&parent.claims),
            )
            .await?;
        if !recorded {
            // Revoked between the check and now.
            return Err(OAuthError::invalid_request(
                "subject_token or actor_token is no longer valid",
            ));
        }
    }
    // Last: the refresh token presented is spent (or the family started)
    // only now that the access token it pays for is issued.
    let refresh_token = match session {
        Some(session) => {
            let access = FamilyAccess::Jwt {
                jti: &jti,
                expires_at: UnixTime::from_secs(exp).saturating_add(st.config.tokens.leeway),
            };
            Some(session.store(st, &client, access, now).await?)
        }
        None => None,
    };
    let mut resp = token_response(&client, grant, token, ttl, scope, refresh_token);
    if exp_cap.is_some() {
        // RFC 8693 §2.2.1: say what was issued.
        resp = with_issued_token_type(resp).await;
    }
    Ok(resp)
}

async fn with_issued_token_type(resp: Response) -> Response {
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let mut v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if let Some(map) = v.as_object_mut() {
        map.insert(
            "issued_token_type".into(),
            Value::String(ACCESS_TOKEN_TYPE.into()),
        );
    }
    Response::from_parts(parts, axum::body::Body::from(v.to_string()))
}

/// The token endpoint's success answer (RFC 6749 §5.1), counted.
fn token_response(
    client: &Client,
    issued_by: GrantType,
    token: String,
    ttl: i64,
    scope: String,
    refresh_token: Option<zeroize::Zeroizing<String>>,
) -> Response {
    client.issued.count(issued_by);
    let mut body = serde_json::json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": ttl,
    });
    if !scope.is_empty() {
        body["scope"] = Value::String(scope);
    }
    if let Some(token) = refresh_token {
        body["refresh_token"] = Value::String(token.to_string());
    }
    let mut resp = axum::Json(body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// The requested scope if every part is allowed; all allowed scopes when
/// none is requested.
fn granted_scope(client: &Client, requested: Option<&str>) -> Result<String, OAuthError> {
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
fn granted_audience(
    client: &Client,
    params: &HashMap<String, String>,
) -> Result<Value, OAuthError> {
    let asked = match (params.get("audience"), params.get("resource")) {
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

/// Finds and authenticates the client by exactly one method, the one it
/// registered.
pub(super) async fn authenticate(
    st: &AppState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<Arc<Client>, OAuthError> {
    let basic = headers.get(header::AUTHORIZATION).map(basic_credentials);
    let assertion =
        params.contains_key("client_assertion") || params.contains_key("client_assertion_type");
    let post = params.contains_key("client_secret");
    let methods = usize::from(basic.is_some()) + usize::from(assertion) + usize::from(post);
    if methods > 1 {
        return Err(OAuthError::invalid_request(
            "use exactly one client authentication method",
        ));
    }
    let clients = st.clients.load();
    let unknown = |basic| OAuthError::invalid_client("client authentication failed", basic);

    if let Some(parsed) = basic {
        let (id, secret) = parsed.ok_or_else(|| {
            OAuthError::invalid_client("Authorization header is not valid Basic credentials", true)
        })?;
        if params.get("client_id").is_some_and(|c| *c != id) {
            return Err(OAuthError::invalid_request(
                "client_id differs from the authenticated client",
            ));
        }
        let client = clients.get(&id).ok_or_else(|| unknown(true))?;
        if client.metadata.token_endpoint_auth_method != AuthMethod::ClientSecretBasic
            || !client.secret_matches(&secret)
        {
            return Err(unknown(true));
        }
        return Ok(Arc::clone(client));
    }
    if post {
        let id = params
            .get("client_id")
            .ok_or_else(|| OAuthError::invalid_request("client_secret needs client_id"))?;
        let secret = params
            .get("client_secret")
            .map(String::as_str)
            .unwrap_or_default();
        let client = clients.get(id).ok_or_else(|| unknown(false))?;
        if client.metadata.token_endpoint_auth_method != AuthMethod::ClientSecretPost
            || !client.secret_matches(secret)
        {
            return Err(unknown(false));
        }
        return Ok(Arc::clone(client));
    }
    if assertion {
        return private_key_jwt(st, &clients, params).await;
    }
    Err(OAuthError::invalid_client(
        "no client authentication: use HTTP Basic, client_secret or a client_assertion",
        false,
    ))
}

/// `Authorization: Basic` with form-encoded id and secret (RFC 6749 §2.3.1).
fn basic_credentials(value: &HeaderValue) -> Option<(String, zeroize::Zeroizing<String>)> {
    let text = value.to_str().ok()?;
    let (scheme, rest) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    use base64::Engine as _;
    let raw = zeroize::Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?,
    );
    let raw = std::str::from_utf8(&raw).ok()?;
    let (id, secret) = raw.split_once(':')?;
    // application/x-www-form-urlencoded: '+' is a space, %XX a byte; the
    // whole part, nothing cut at '&' or '='.
    let decode = |s: &str| -> Option<String> {
        let spaced = s.replace('+', " ");
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8()
            .ok()
            .map(|c| c.into_owned())
    };
    Some((decode(id)?, zeroize::Zeroizing::new(decode(secret)?)))
}

/// RFC 7523 §3 client authentication.
async fn private_key_jwt(
    st: &AppState,
    clients: &crate::clients::ClientTable,
    params: &HashMap<String, String>,
) -> Result<Arc<Client>, OAuthError> {
    if params.get("client_assertion_type").map(String::as_str) != Some(ASSERTION_TYPE) {
        return Err(OAuthError::invalid_request(format!(
            "client_assertion_type must be {ASSERTION_TYPE}"
        )));
    }
    let assertion = params
        .get("client_assertion")
        .ok_or_else(|| OAuthError::invalid_request("client_assertion is missing"))?;
    let failed =
        |why: &str| OAuthError::invalid_client(format!("client assertion rejected: {why}"), false);
    // The issuer names the client; read it before verifying to pick its keys.
    let unverified = tessera_jose::decode_unverified(assertion, tessera_jose::DEFAULT_MAX_SIZE)
        .map_err(|e| failed(e.code()))?;
    let iss = unverified
        .registered
        .iss
        .as_deref()
        .ok_or_else(|| failed("no iss"))?
        .to_owned();
    if params.get("client_id").is_some_and(|c| *c != iss) {
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
    let policy = st.config.tokens.private_key_jwt_audience;
    let validation = client_assertion_validation(st, &iss, policy);
    let now = st.clock.now();
    let verified =
        tessera_jose::verify_at::<Value>(assertion, keys, &validation, UnixTime::from_secs(now))
            .map_err(|e| failed(e.code()))?;
    let reg = verified.registered();
    if reg.sub.as_deref() != Some(iss.as_str()) {
        return Err(failed("sub must equal iss (the client_id)"));
    }
    if policy == AssertionAudience::Issuer && reg.aud.as_ref().map(|a| a.iter().count()) != Some(1)
    {
        return Err(failed(
            "aud must be the issuer identifier alone (draft-ietf-oauth-rfc7523bis)",
        ));
    }
    let exp = reg.exp.map_or(now, UnixTime::secs);
    if exp > now.saturating_add(MAX_ASSERTION_LIFETIME) {
        return Err(failed("exp is more than an hour ahead"));
    }
    let jti = reg.jti.as_deref().unwrap_or_default();
    let leeway = crate::clock::secs(st.config.tokens.leeway);
    let fresh = st
        .store
        .use_assertion(&UsedAssertion {
            client_id: &client.id,
            jti,
            expires_at: UnixTime::from_secs(exp.saturating_add(leeway)),
            now: UnixTime::from_secs(now),
        })
        .await?;
    if !fresh {
        return Err(failed("jti was already used"));
    }
    Ok(Arc::clone(client))
}

/// Any method but POST on the token endpoint (RFC 6749 §3.2: POST only).
pub(super) async fn not_post() -> Response {
    let mut resp = OAuthError::invalid_request("the token endpoint takes POST only")
        .with_status(axum::http::StatusCode::METHOD_NOT_ALLOWED)
        .into_response();
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    resp
}

/// The decoded Basic credentials of a request, if any.
pub(super) fn basic_credentials_of(
    headers: &HeaderMap,
) -> Option<(String, zeroize::Zeroizing<String>)> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(basic_credentials)
}

/// RFC 7523 §2.1 and §3: the client's assertion, signed with a key it
/// registered, names the user in `sub`; `aud` is the token endpoint or the
/// issuer (draft-ietf-oauth-rfc7523bis §4 keeps both for authorization
/// grants: the client itself chose where to send its assertion), `exp` at
/// most an hour ahead, `jti` never used before. The user's `sub` is
/// neither a client id nor a federated subject
/// ([`crate::clients::user_subject_refusal`]). Returns the user and the
/// assertion claims the client may pass on. Any failure is
/// `invalid_grant`.
async fn user_assertion(
    st: &AppState,
    client: &Client,
    params: &HashMap<String, String>,
) -> Result<(String, Map<String, Value>), OAuthError> {
    let assertion = params
        .get("assertion")
        .ok_or_else(|| OAuthError::invalid_request("assertion is missing"))?;
    let bad = |why: &str| OAuthError::invalid_grant(format!("assertion rejected: {why}"));
    let keys = client
        .assertion_keys
        .as_ref()
        .ok_or_else(|| bad("the client has no registered keys"))?;
    let validation = grant_assertion_validation(st, &client.id);
    let now = st.clock.now();
    let verified =
        tessera_jose::verify_at::<Value>(assertion, keys, &validation, UnixTime::from_secs(now))
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
    let leeway = crate::clock::secs(st.config.tokens.leeway);
    let fresh = st
        .store
        .use_assertion(&UsedAssertion {
            client_id: &client.id,
            jti: &format!("grant:{jti}"),
            expires_at: UnixTime::from_secs(exp.saturating_add(leeway)),
            now: UnixTime::from_secs(now),
        })
        .await?;
    if !fresh {
        return Err(bad("jti was already used"));
    }
    Ok((sub, passed))
}

/// A new refresh token (a `tsr_` handle: 256 random bits and a check
/// value) and its stored hash.
pub(super) fn new_refresh_token() -> (zeroize::Zeroizing<String>, String) {
    let token = zeroize::Zeroizing::new(handle::mint(handle::Kind::Refresh));
    let hash = token_hash::encoded(&token);
    (token, hash)
}

/// Whether `token` is a well-formed handle of `kind` (its check value
/// holds): only those are worth a lookup.
pub(crate) fn is_handle(token: &str, kind: handle::Kind) -> bool {
    handle::Handle::parse(token).is_ok_and(|h| h.kind() == kind)
}

/// The scope asked for when it is within `granted` (all of `granted` when
/// none is asked for); `invalid_scope` with `refusal` otherwise.
pub(super) fn narrowed_scope(
    granted: &str,
    asked: Option<&String>,
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
    Ok(asked.clone())
}

/// The policy of a `private_key_jwt` client assertion (RFC 7523 §2.2, §3):
/// issued by the client, with `sub` and `jti`, for the issuer identifier
/// (the caller also checks it is the sole audience), or with
/// `issuer_or_token_endpoint` for either of them.
fn client_assertion_validation(
    st: &AppState,
    client_id: &str,
    policy: AssertionAudience,
) -> Validation {
    let validation = Validation::new()
        .issuer(client_id.to_owned())
        .audience(st.config.issuer.clone())
        .require(Claim::Sub)
        .require(Claim::Jti)
        .leeway(st.config.tokens.leeway);
    match policy {
        AssertionAudience::Issuer => validation,
        AssertionAudience::IssuerOrTokenEndpoint => validation.audience(st.config.token_endpoint()),
    }
}

/// The policy of a jwt-bearer grant's assertion (RFC 7523 §2.1, §3): issued
/// by the client, for the token endpoint or the issuer, with `sub` and
/// `jti`.
fn grant_assertion_validation(st: &AppState, client_id: &str) -> Validation {
    Validation::new()
        .issuer(client_id.to_owned())
        .audience(st.config.token_endpoint())
        .audience(st.config.issuer.clone())
        .require(Claim::Sub)
        .require(Claim::Jti)
        .leeway(st.config.tokens.leeway)
}

/// The policy that recognises this issuer's own access tokens, whatever
/// their audience (revocation, introspection, exchange).
pub(crate) fn own_token_validation(st: &AppState, leeway: std::time::Duration) -> Validation {
    Validation::new()
        .issuer(st.config.issuer.clone())
        .ignore_audience()
        .typ("at+jwt")
        .leeway(leeway)
}
