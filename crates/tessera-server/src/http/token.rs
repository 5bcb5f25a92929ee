//! `POST /token` (RFC 6749 §3.2): the authenticated client's grant, issued
//! by the authority, answered per RFC 6749 §5.1 (and RFC 8693 §2.2.1 for
//! an exchange); every refusal is counted by its code.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::error::with_status;
use super::extract::{ClientAuth, Refusal};
use super::Shared;
use crate::authority::{Issued, OAuthError};

pub(super) async fn token(
    State(st): State<Shared>,
    request: Result<ClientAuth, Refusal>,
) -> Response {
    let issued = match request {
        Ok(ClientAuth { client, params }) => st
            .authority
            .token(&client, &params)
            .await
            .map_err(Refusal::from),
        Err(refused) => Err(refused),
    };
    match issued {
        Ok(issued) => answer(issued),
        Err(e) => {
            st.authority.metrics().error(e.code());
            e.into_response()
        }
    }
}

/// The token endpoint's success answer (RFC 6749 §5.1).
fn answer(issued: Issued) -> Response {
    let mut body = serde_json::json!({
        "access_token": issued.access_token.as_str(),
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
    });
    if !issued.scope.is_empty() {
        body["scope"] = Value::String(issued.scope);
    }
    if let Some(token) = issued.refresh_token {
        body["refresh_token"] = Value::String(token.to_string());
    }
    if let Some(kind) = issued.issued_token_type {
        body["issued_token_type"] = Value::String(kind.to_owned());
    }
    let mut resp = axum::Json(body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// Any method but POST on the token endpoint (RFC 6749 §3.2: POST only).
pub(super) async fn not_post() -> Response {
    let mut resp = with_status(
        OAuthError::invalid_request("the token endpoint takes POST only"),
        StatusCode::METHOD_NOT_ALLOWED,
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    resp
}
