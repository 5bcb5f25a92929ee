//! The admin API, behind the admin bearer token ([`AdminAuth`]): clients,
//! keys, and revoking everything of a subject, client or key.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tessera_jose::Algorithm;

use super::extract::AdminAuth;
use super::Shared;
use crate::authority::OAuthError;
use crate::clients::Registration;
use crate::lifecycle::LifecycleError;
use crate::store::{Party, RuleKind};

/// Who the audit log says acted.
const ACTOR: &str = "admin";

/// serde_json's message without an echoed input value.
fn describe(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.split_once(": ") {
        Some((head, _)) if head.starts_with("invalid") => head.to_owned(),
        _ => text,
    }
}

pub(super) async fn create_client(
    State(st): State<Shared>,
    _: AdminAuth,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let registration: Registration = serde_json::from_slice(&body).map_err(|e| {
        OAuthError::invalid_client_metadata(format!(
            "body is not valid client metadata JSON: {}",
            describe(&e)
        ))
    })?;
    let metadata = st.authority.admit(registration)?;
    let (row, secret) = st.authority.register(&metadata, ACTOR).await?;
    tracing::info!(client_id = %row.client_id, "client registered");
    let mut out = crate::authority::client_json(&row.client_id, row.created_at.secs(), &metadata);
    if let (Some(map), Some(secret)) = (out.as_object_mut(), secret) {
        map.insert("client_secret".into(), json!(secret.as_str()));
        map.insert("client_secret_expires_at".into(), json!(0));
    }
    let mut resp = (StatusCode::CREATED, Json(out)).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}

pub(super) async fn list_clients(
    State(st): State<Shared>,
    _: AdminAuth,
) -> Result<Response, OAuthError> {
    let out = st.authority.list_clients().await?;
    Ok(Json(json!({ "clients": out })).into_response())
}

pub(super) async fn delete_client(
    State(st): State<Shared>,
    _: AdminAuth,
    Path(id): Path<String>,
) -> Result<Response, OAuthError> {
    st.authority.delete_client(&id, ACTOR).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn list_keys(
    State(st): State<Shared>,
    _: AdminAuth,
) -> Result<Response, OAuthError> {
    let rows = st.authority.keys().rows().await?;
    let keys: Vec<Value> = rows
        .iter()
        .map(|k| {
            json!({
                "kid": k.kid,
                "alg": k.alg.name(),
                "state": k.state.name(),
                "created_at": k.created_at,
                "activate_at": k.activate_at,
                "activated_at": k.activated_at,
                "retired_at": k.retired_at,
                "remove_at": k.remove_at,
                "removed_at": k.removed_at,
                "compromised_at": k.compromised_at,
            })
        })
        .collect();
    Ok(Json(json!({ "keys": keys })).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateRequest {
    alg: Option<String>,
    #[serde(default)]
    immediate: bool,
}

fn lifecycle_error(e: LifecycleError) -> OAuthError {
    match e {
        LifecycleError::UnknownKid(_) => OAuthError::not_found(e.to_string()),
        LifecycleError::NotConfigured(_) => OAuthError::invalid_request(e.to_string()),
        LifecycleError::Raced => OAuthError::conflict(e.to_string()),
        LifecycleError::Store(e) => OAuthError::from(e),
        other => OAuthError::internal(&other),
    }
}

pub(super) async fn rotate(
    State(st): State<Shared>,
    _: AdminAuth,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let req: RotateRequest = if body.is_empty() {
        RotateRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| OAuthError::invalid_request(format!("body: {}", describe(&e))))?
    };
    let algs: Vec<Algorithm> = match req.alg {
        Some(name) => vec![Algorithm::from_name(&name)
            .ok_or_else(|| OAuthError::invalid_request("alg is not a JWS algorithm"))?],
        None => st.authority.config().keys.algorithms.clone(),
    };
    // A rotation times the next switch by this node's clock. (Marking a
    // key compromised is never refused: it must work whatever the clock.)
    st.authority.clock_trusted()?;
    match st
        .authority
        .keys()
        .rotate(&algs, req.immediate, ACTOR)
        .await
    {
        Ok(out) => {
            tracing::info!(rotations = ?out, "manual rotation");
            Ok(Json(json!({ "rotations": out })).into_response())
        }
        Err((out, e)) => {
            tracing::info!(rotations = ?out, "manual rotation");
            Err(lifecycle_error(e))
        }
    }
}

pub(super) async fn compromised(
    State(st): State<Shared>,
    _: AdminAuth,
    Path(kid): Path<String>,
) -> Result<Response, OAuthError> {
    compromise(&st, kid).await
}

async fn compromise(st: &Shared, kid: String) -> Result<Response, OAuthError> {
    let successor = st
        .authority
        .compromise(&kid, ACTOR)
        .await
        .map_err(lifecycle_error)?;
    Ok(Json(json!({ "kid": kid, "state": "compromised", "successor": successor })).into_response())
}

/// `POST /admin/revoke` names exactly one of these.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    sub: Option<String>,
    client_id: Option<String>,
    kid: Option<String>,
}

/// `POST /admin/revoke`: everything of a subject (logout everywhere) or a
/// client, or every token a key signed (the key is marked compromised).
pub(super) async fn revoke_all(
    State(st): State<Shared>,
    _: AdminAuth,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let req: RevokeRequest = serde_json::from_slice(&body)
        .map_err(|e| OAuthError::invalid_request(format!("body: {}", describe(&e))))?;
    let named: Vec<(RuleKind, String)> = [
        (RuleKind::Subject, req.sub),
        (RuleKind::Client, req.client_id),
        (RuleKind::Kid, req.kid),
    ]
    .into_iter()
    .filter_map(|(kind, v)| v.map(|v| (kind, v)))
    .collect();
    let [(kind, target)] = &named[..] else {
        return Err(OAuthError::invalid_request(
            "name exactly one of sub, client_id or kid",
        ));
    };
    if target.is_empty() {
        return Err(OAuthError::invalid_request(format!(
            "{} is empty",
            kind.name()
        )));
    }
    let party = match kind {
        RuleKind::Subject => Party::Subject,
        RuleKind::Client => Party::Client,
        // A kid: the key is marked compromised (a jti is never named here).
        _ => return compromise(&st, target.clone()).await,
    };
    let up_to = Some(st.authority.now());
    let done = st
        .authority
        .revoke_everything(party, target, up_to, ACTOR)
        .await?;
    Ok(Json(done).into_response())
}
