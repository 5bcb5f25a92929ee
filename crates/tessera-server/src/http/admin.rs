//! The admin API, behind the admin bearer token (compared as SHA-256 in
//! constant time): clients, keys, and revoking everything of a subject,
//! client or key.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tessera_jose::{Algorithm, UnixTime};

use super::OAuthError;
use crate::clients::{Metadata, Registration};
use crate::lifecycle::LifecycleError;
use crate::server::AppState;
use crate::store::{AuditEntry, Party, RevokeAll, RuleKind};

const ACTOR: &str = "admin";

fn authorize(st: &AppState, headers: &HeaderMap) -> Result<(), OAuthError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(OAuthError::admin_unauthorized)?;
    if tessera_verify::token_hash::matches(presented, &st.admin_hash) {
        Ok(())
    } else {
        Err(OAuthError::admin_unauthorized())
    }
}

/// serde_json's message without an echoed input value.
fn describe(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.split_once(": ") {
        Some((head, _)) if head.starts_with("invalid") => head.to_owned(),
        _ => text,
    }
}

fn client_json(client_id: &str, created_at: i64, metadata: &Metadata) -> Value {
    let mut v = serde_json::to_value(metadata).unwrap_or_else(|_| json!({}));
    if let Some(map) = v.as_object_mut() {
        map.insert("client_id".into(), json!(client_id));
        map.insert("client_id_issued_at".into(), json!(created_at));
    }
    v
}

pub(super) async fn create_client(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    authorize(&st, &headers)?;
    let registration: Registration = serde_json::from_slice(&body).map_err(|e| {
        OAuthError::invalid_client_metadata(format!(
            "body is not valid client metadata JSON: {}",
            describe(&e)
        ))
    })?;
    let metadata = registration
        .validate(&st.config.tokens)
        .map_err(|e| OAuthError::invalid_client_metadata(e.0))?;
    if let Some(conflict) = crate::clients::federation_conflict(&metadata, &st.config.federation) {
        return Err(OAuthError::invalid_client_metadata(conflict));
    }
    let (row, secret) = st.register(&metadata, ACTOR).await?;
    tracing::info!(client_id = %row.client_id, "client registered");
    let mut out = client_json(&row.client_id, row.created_at.secs(), &metadata);
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
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    authorize(&st, &headers)?;
    let rows = st.store.clients().await?;
    let mut out = Vec::new();
    for row in rows {
        let metadata =
            Metadata::deserialize(&row.metadata).map_err(|e| OAuthError::internal(&e))?;
        out.push(client_json(
            &row.client_id,
            row.created_at.secs(),
            &metadata,
        ));
    }
    Ok(Json(json!({ "clients": out })).into_response())
}

pub(super) async fn delete_client(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, OAuthError> {
    authorize(&st, &headers)?;
    if !st.clients.load().contains_key(&id) {
        // Perhaps registered on another node since this one last looked.
        st.reload_clients().await?;
        if !st.clients.load().contains_key(&id) {
            return Err(OAuthError::not_found("no client with that id"));
        }
    }
    // Its tokens stop working first, all of them: client ids are never
    // reused, so the rule has no bound and also covers tokens other nodes
    // issue before they reload their clients. A failure here leaves the
    // client in place for a retry.
    revoke_everything(&st, Party::Client, &id, None).await?;
    let deleted = st.store.delete_client(&id).await?;
    if !deleted {
        return Err(OAuthError::not_found("no client with that id"));
    }
    let now = st.clock.now();
    let entry = AuditEntry {
        at: UnixTime::from_secs(now),
        actor: ACTOR,
        action: "client_deleted",
        subject: &id,
    };
    st.store.audit(&entry).await?;
    st.reload_clients().await?;
    tracing::info!(client_id = %id, "client deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn list_keys(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    authorize(&st, &headers)?;
    let rows = st.store.keys().await?;
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
        other => OAuthError::internal(&other),
    }
}

pub(super) async fn rotate(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    authorize(&st, &headers)?;
    let req: RotateRequest = if body.is_empty() {
        RotateRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| OAuthError::invalid_request(format!("body: {}", describe(&e))))?
    };
    let algs: Vec<Algorithm> = match req.alg {
        Some(name) => vec![Algorithm::from_name(&name)
            .ok_or_else(|| OAuthError::invalid_request("alg is not a JWS algorithm"))?],
        None => st.config.keys.algorithms.clone(),
    };
    let mut out = Vec::new();
    let mut failed = None;
    for alg in algs {
        match st.lifecycle.rotate(alg, req.immediate, ACTOR).await {
            Ok(r) => out.push(r),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    // What did happen is served at once, even when a later algorithm failed.
    st.reload_keys().await?;
    tracing::info!(rotations = ?out, "manual rotation");
    if let Some(e) = failed {
        return Err(lifecycle_error(e));
    }
    Ok(Json(json!({ "rotations": out })).into_response())
}

pub(super) async fn compromised(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(kid): Path<String>,
) -> Result<Response, OAuthError> {
    authorize(&st, &headers)?;
    let successor = st
        .lifecycle
        .compromise(&kid, ACTOR)
        .await
        .map_err(lifecycle_error)?;
    st.reload_keys().await?;
    st.revocations.notify_waiters();
    tracing::warn!(kid = %kid, successor = ?successor, "key marked compromised");
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
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    authorize(&st, &headers)?;
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
        _ => return compromised(State(st), headers, Path(target.clone())).await,
    };
    let done = revoke_everything(&st, party, target, Some(st.clock.now())).await?;
    Ok(Json(done).into_response())
}

/// Revokes everything of a subject or client issued up to and including
/// the second `up_to` (None: ever); the answer says what went.
async fn revoke_everything(
    st: &AppState,
    party: Party,
    target: &str,
    up_to: Option<i64>,
) -> Result<Value, OAuthError> {
    let kind = party.rule_kind();
    let now = st.clock.now();
    // A token issued later in the same second is covered too: iat has
    // one-second resolution, and this errs on the safe side. The rule
    // lasts as long as the longest token it covers can (other nodes may
    // issue until they next reload).
    let not_before = up_to.map_or(i64::MAX, |t| t.saturating_add(1));
    let until = now
        .saturating_add(crate::clock::secs(st.config.tokens.max_access_token_ttl))
        .saturating_add(crate::clock::secs(st.config.tokens.leeway))
        .saturating_add(crate::clock::secs(st.config.keys.refresh_interval));
    let done = st
        .store
        .revoke_all(&RevokeAll {
            party,
            target,
            not_before: UnixTime::from_secs(not_before),
            expires_at: UnixTime::from_secs(until),
            actor: ACTOR,
            now: UnixTime::from_secs(now),
        })
        .await?;
    st.revocations.notify_waiters();
    tracing::warn!(
        kind = kind.name(),
        target,
        seq = done.seq,
        families = done.families,
        "everything revoked"
    );
    Ok(json!({
        kind.name(): target,
        "seq": done.seq,
        "not_before": not_before,
        "refresh_families": done.families,
        "opaque_tokens": done.opaque_tokens,
        "access_tokens": done.access_tokens,
        "exchanged_tokens": done.exchanged_tokens,
    }))
}
