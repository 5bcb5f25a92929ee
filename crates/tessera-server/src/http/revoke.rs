//! Revocation (RFC 7009), introspection (RFC 7662), and the deny-list feed
//! that verifiers follow (`GET /revocations?since=SEQ`).

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::with_status;
use super::extract::{basic_credentials_of, ClientAuth, Refusal};
use super::Shared;
use crate::authority::deny_list::PageRequest;
use crate::authority::OAuthError;

/// `POST /revoke`: the client authenticates as at the token endpoint.
pub(super) async fn revoke(
    State(st): State<Shared>,
    request: Result<ClientAuth, Refusal>,
) -> Result<Response, Refusal> {
    let ClientAuth { client, params } = request?;
    let token = params.required("token")?;
    st.authority.revoke(&client, token).await?;
    Ok(no_store(StatusCode::OK.into_response()))
}

/// `POST /introspect` (RFC 7662).
pub(super) async fn introspect(
    State(st): State<Shared>,
    request: Result<ClientAuth, Refusal>,
) -> Result<Response, Refusal> {
    let ClientAuth { client, params } = request?;
    let token = params.required("token")?;
    let answer = st.authority.introspect(&client, token).await?;
    Ok(no_store(axum::Json(answer).into_response()))
}

fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `GET /revocations?since=SEQ[&limit=N][&wait=S]`, HTTP Basic client
/// authentication of a client registered with the `revocations:read`
/// permission.
pub(super) async fn feed(
    State(st): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if !headers.contains_key(header::AUTHORIZATION) {
        return OAuthError::invalid_client("the feed needs HTTP Basic client authentication", true)
            .into_response();
    }
    let basic = basic_credentials_of(&headers);
    match st.authority.authenticate_any_secret(basic).await {
        Ok(client) if client.may(crate::clients::REVOCATIONS_READ) => {}
        Ok(client) => {
            // The feed names revoked subjects and client ids.
            tracing::info!(client_id = %client.id, "deny-list feed refused: no revocations:read");
            return with_status(
                OAuthError::unauthorized_client(
                    "this client may not read the deny-list feed: register it with the permission revocations:read",
                ),
                StatusCode::FORBIDDEN,
            );
        }
        Err(e) => return e.into_response(),
    }
    let ask = match page_request(&query) {
        Ok(ask) => ask,
        Err(e) => return e.into_response(),
    };
    match st
        .authority
        .deny_list()
        .page(ask, st.stopping.clone())
        .await
    {
        Ok(page) => no_store(axum::Json(page).into_response()),
        Err(e) => OAuthError::from(e).into_response(),
    }
}

/// `since` (default 0), `limit` (1 to 10000, default 1000) and `wait` (0 to
/// 30 seconds, default 0).
fn page_request(query: &HashMap<String, String>) -> Result<PageRequest, OAuthError> {
    let since = match query.get("since").map(|s| s.parse::<i64>()) {
        None => 0,
        Some(Ok(n)) if n >= 0 => n,
        Some(_) => {
            return Err(OAuthError::invalid_request(
                "since must be a sequence number",
            ))
        }
    };
    let limit = match query.get("limit").map(|s| s.parse::<i64>()) {
        None => 1000,
        Some(Ok(n)) if (1..=10_000).contains(&n) => n,
        Some(_) => return Err(OAuthError::invalid_request("limit must be 1 to 10000")),
    };
    let wait = match query.get("wait").map(|s| s.parse::<u64>()) {
        None => 0,
        Some(Ok(n)) if n <= 30 => n,
        Some(_) => return Err(OAuthError::invalid_request("wait must be 0 to 30 seconds")),
    };
    Ok(PageRequest {
        since,
        limit,
        wait: Duration::from_secs(wait),
    })
}
