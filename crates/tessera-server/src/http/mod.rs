//! The HTTP surface: it only adapts. Each handler takes its input through
//! an extractor ([`extract`]: the OAuth form, the authenticated client,
//! the admin token), calls the authority, and answers; the authority's
//! errors become RFC 6749/6750/7009/7662 answers in one place
//! ([`error`]).

mod admin;
mod discovery;
mod error;
pub(crate) mod extract;
mod jwks;
mod revoke;
mod token;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use serde_json::json;
use tokio::sync::watch;

pub(crate) use discovery::Discovery;

use crate::authority::Authority;

/// Largest form or JSON body accepted.
const BODY_LIMIT: usize = 64 * 1024;

/// What the handlers share: the authority, and what only HTTP needs.
pub(crate) struct AppState {
    authority: Arc<Authority>,
    discovery: Discovery,
    /// SHA-256 of the admin token.
    admin_hash: Vec<u8>,
    /// Becomes true when the node stops: long polls end at once, so a
    /// graceful shutdown does not wait for them.
    stopping: watch::Receiver<bool>,
}

impl AppState {
    /// The state of one node's listeners.
    pub(crate) fn new(
        authority: Arc<Authority>,
        discovery: Discovery,
        admin_hash: Vec<u8>,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        Self {
            authority,
            discovery,
            admin_hash,
            stopping,
        }
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the admin token's hash.
        f.debug_struct("AppState")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

type Shared = Arc<AppState>;

/// The router of one node.
pub(crate) fn app(state: Shared) -> Router {
    Router::new()
        .route("/.well-known/jwks.json", get(discovery::jwks))
        .route(
            "/.well-known/openid-configuration",
            get(discovery::openid_configuration),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::oauth_metadata),
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
pub(crate) fn metrics_app(state: Shared) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
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

/// Ready when the database answers, an active key is loaded and the
/// node's clock is trusted.
async fn readyz(State(st): State<Shared>) -> Response {
    if st.authority.keys().ring().primary().is_none() {
        return (StatusCode::SERVICE_UNAVAILABLE, "no active signing key\n").into_response();
    }
    if let Some(skew) = st.authority.clock_skew() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("clock not trusted: {skew}\n"),
        )
            .into_response();
    }
    let ping = st.authority.store().ping();
    match tokio::time::timeout(std::time::Duration::from_secs(2), ping).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n").into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n").into_response()
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database timed out\n").into_response(),
    }
}

async fn metrics(State(st): State<Shared>) -> Response {
    let now = st.authority.now();
    let metrics = st.authority.metrics();
    for key in st.authority.keys().ring().signers.values() {
        let age = now.saturating_sub(key.activated_at).max(0);
        #[allow(clippy::cast_precision_loss)] // ages are far below 2^53 seconds
        metrics.key_age(key.alg.name()).set(age as f64);
    }
    let mut resp = metrics.render().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    resp
}
