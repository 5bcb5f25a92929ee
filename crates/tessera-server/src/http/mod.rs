//! The HTTP surface: `fn app(state) -> Router`.

mod admin;
mod claims;
mod error;
mod exchange;
mod jwks;
pub(crate) mod own;
mod refresh;
mod revoke;
pub(crate) mod token;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use serde_json::json;

pub use error::OAuthError;

use crate::clients::{AuthMethod, GrantType, ASSERTION_ALGS};
use crate::config::Config;
use crate::server::AppState;

/// Largest form or JSON body accepted.
const BODY_LIMIT: usize = 64 * 1024;

/// The router of one node.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route(
            "/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth_metadata),
        )
        .route("/authorize", get(authorize).post(authorize))
        .route("/token", post(token::token).fallback(token::not_post))
        .route("/revoke", post(revoke::revoke))
        .route("/introspect", post(revoke::introspect))
        .route("/revocations", get(revoke::feed))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route(
            "/admin/clients",
            post(admin::create_client).get(admin::list_clients),
        )
        .route("/admin/clients/{id}", delete(admin::delete_client))
        .route("/admin/keys", get(admin::list_keys))
        .route("/admin/keys/rotate", post(admin::rotate))
        .route("/admin/keys/{kid}/compromised", post(admin::compromised))
        .route("/admin/revoke", post(admin::revoke_all))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// The router of the metrics listener (`server.metrics_listen`): only
/// `GET /metrics`. It is never on the public port, whose `/metrics` is 404:
/// the counters' labels name every client.
pub fn metrics_app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// The discovery documents and the cache header, built once at start, and
/// the JWKS response, built once per published key set.
#[derive(Debug)]
pub struct Discovery {
    oidc: axum::body::Bytes,
    oauth: axum::body::Bytes,
    cache_control: HeaderValue,
    jwks: jwks::JwksCache,
}

impl Discovery {
    /// Builds both documents from the settings.
    pub fn new(config: &Config) -> Self {
        let issuer = &config.issuer;
        let signing: Vec<&str> = config.keys.algorithms.iter().map(|a| a.name()).collect();
        let mut assertion: Vec<&str> = ASSERTION_ALGS.iter().map(|a| a.name()).collect();
        // RFC 9864's fully specified name for EdDSA over Ed25519, which
        // current clients (openid-client) write.
        assertion.push("Ed25519");
        let mut doc = json!({
            "issuer": issuer,
            // Tessera authenticates services, not people: this endpoint
            // exists because RFC 8414 and OpenID Connect Discovery require
            // it, and it answers every request with an error.
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
            "grant_types_supported": GrantType::ALL,
            // `none` (OAuth 2.0 Multiple Response Type Encoding Practices):
            // nothing is ever returned from the authorization endpoint.
            "response_types_supported": ["none"],
            "token_endpoint_auth_methods_supported": AuthMethod::ALL,
            "token_endpoint_auth_signing_alg_values_supported": assertion,
            "revocation_endpoint": format!("{issuer}/revoke"),
            "introspection_endpoint": format!("{issuer}/introspect"),
            "introspection_endpoint_auth_methods_supported": AuthMethod::ALL,
            "introspection_endpoint_auth_signing_alg_values_supported": assertion,
            "revocation_endpoint_auth_methods_supported": AuthMethod::ALL,
            // RFC 8414 §2: required where private_key_jwt is listed.
            "revocation_endpoint_auth_signing_alg_values_supported": assertion,
            // Tessera's deny-list feed: GET with HTTP Basic, ?since=SEQ.
            "tessera_revocation_feed_endpoint": format!("{issuer}/revocations"),
            "access_token_signing_alg_values_supported": signing,
        });
        let oauth = serde_json::to_vec(&doc).unwrap_or_default().into();
        if let Some(map) = doc.as_object_mut() {
            map.insert("subject_types_supported".into(), json!(["public"]));
            // Required by OpenID Connect Discovery even though Tessera
            // issues no ID tokens; RS256 is listed because the spec says it
            // MUST be, and strict clients check it.
            let mut id_algs = signing.clone();
            if !id_algs.contains(&"RS256") {
                id_algs.push("RS256");
            }
            map.insert(
                "id_token_signing_alg_values_supported".into(),
                json!(id_algs),
            );
        }
        let oidc = serde_json::to_vec(&doc).unwrap_or_default().into();
        let max_age = config.jwks_max_age.as_secs();
        let cache_control = HeaderValue::from_str(&format!("public, max-age={max_age}"))
            .unwrap_or_else(|_| HeaderValue::from_static("no-cache"));
        Self {
            oidc,
            oauth,
            cache_control,
            jwks: jwks::JwksCache::default(),
        }
    }
}

fn cached_json(body: axum::body::Bytes, cache_control: &HeaderValue) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, cache_control.clone());
    resp
}

async fn openid_configuration(State(st): State<Arc<AppState>>) -> Response {
    cached_json(st.discovery.oidc.clone(), &st.discovery.cache_control)
}

async fn oauth_metadata(State(st): State<Arc<AppState>>) -> Response {
    cached_json(st.discovery.oauth.clone(), &st.discovery.cache_control)
}

/// The JWKS, from memory: a strong ETag, and 304 when it matches.
async fn jwks(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    st.metrics.jwks_requests.increment(1);
    let served = st.discovery.jwks.for_ring(&st.ring.load());
    let etag = served.etag.as_bytes();
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .any(|t| {
            let t = t.trim_ascii();
            t == etag || t == b"*"
        });
    let mut resp = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        cached_json(served.body.clone(), &st.discovery.cache_control)
    };
    let h = resp.headers_mut();
    h.insert(header::ETAG, served.etag.clone());
    h.insert(header::CACHE_CONTROL, st.discovery.cache_control.clone());
    resp
}

async fn authorize() -> Response {
    let body = json!({
        "error": "unsupported_response_type",
        "error_description": "Tessera has no interactive authorization endpoint: tokens come from POST /token (client_credentials, jwt-bearer, refresh_token, token-exchange)",
    });
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when the database answers and an active key is loaded.
async fn readyz(State(st): State<Arc<AppState>>) -> Response {
    if st.ring.load().primary().is_none() {
        return (StatusCode::SERVICE_UNAVAILABLE, "no active signing key\n").into_response();
    }
    match tokio::time::timeout(std::time::Duration::from_secs(2), st.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n").into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n").into_response()
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database timed out\n").into_response(),
    }
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    let now = st.clock.now();
    for key in st.ring.load().signers.values() {
        let age = now.saturating_sub(key.activated_at).max(0);
        #[allow(clippy::cast_precision_loss)] // ages are far below 2^53 seconds
        st.metrics.key_age(key.alg.name()).set(age as f64);
    }
    let mut resp = st.metrics.render().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    resp
}
