//! The tower layer and the axum extractor: RFC 6750 §3 answers.

use std::sync::Arc;

use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use serde::Deserialize;
use serde_json::json;
use tessera_jose::Algorithm;
use tessera_verify::{Claims, Verifier, VerifyLayer};
use tower::ServiceExt as _;

use crate::keyserver::{public, signer, token, AUD, ISS};

#[derive(Deserialize)]
struct Mine {
    sub: String,
    tenant_id: String,
}

async fn app() -> (axum::Router, tessera_jose::Signer) {
    let a = signer(Algorithm::ES256);
    let jwks = json!({"keys": [public(&a)]}).to_string();
    let v = Verifier::from_jwks(jwks)
        .issuer(ISS)
        .audience(AUD)
        .build()
        .await
        .unwrap();
    let router = axum::Router::new()
        .route(
            "/orders",
            get(|Claims(c): Claims<Mine>| async move { format!("{} of {}", c.sub, c.tenant_id) }),
        )
        .layer(VerifyLayer::new(Arc::new(v)).require_scope("orders:read"));
    (router, a)
}

async fn call(app: &axum::Router, auth: &[&str]) -> (StatusCode, String, String) {
    let mut req = Request::get("/orders");
    for a in auth {
        req = req.header("authorization", *a);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, challenge, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn verified_claims_reach_the_handler() {
    let (app, a) = app().await;
    let t = token(
        &a,
        json!({"scope": "orders:read orders:write", "tenant_id": "acme"}),
    );
    let (status, _, body) = call(&app, &[&format!("Bearer {t}")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "svc of acme");
}

#[tokio::test]
async fn each_refusal_has_its_status_and_challenge() {
    let (app, a) = app().await;
    let good = token(&a, json!({"scope": "orders:read", "tenant_id": "acme"}));
    let (s, c, _) = call(&app, &[]).await;
    assert_eq!(
        (s, c.as_str()),
        (StatusCode::UNAUTHORIZED, "Bearer realm=\"tessera\""),
        "no credentials: no error code (RFC 6750 §3.1)"
    );
    let (s, c, _) = call(&app, &["Basic dXNlcjpwdw=="]).await;
    assert_eq!(
        (s, c.as_str()),
        (StatusCode::UNAUTHORIZED, "Bearer realm=\"tessera\"")
    );
    let (s, c, _) = call(&app, &["Bearer not.a.token"]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        c,
        "Bearer realm=\"tessera\", error=\"invalid_token\", error_description=\"malformed\""
    );
    let mut tampered = good.clone().into_bytes();
    let n = tampered.len() - 3;
    tampered[n] = if tampered[n] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let (s, c, _) = call(&app, &[&format!("Bearer {tampered}")]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(
        c.contains("error=\"invalid_token\"") && c.contains("bad_signature"),
        "{c}"
    );
    let expired = token(
        &a,
        json!({"scope": "orders:read", "tenant_id": "acme", "exp": 1000}),
    );
    let (_, c, _) = call(&app, &[&format!("Bearer {expired}")]).await;
    assert!(c.contains("error_description=\"expired\""), "{c}");
    let no_scope = token(&a, json!({"scope": "orders:write", "tenant_id": "acme"}));
    let (s, c, _) = call(&app, &[&format!("Bearer {no_scope}")]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        c,
        "Bearer realm=\"tessera\", error=\"insufficient_scope\", scope=\"orders:read\""
    );
    let (s, c, _) = call(
        &app,
        &[&format!("Bearer {good}"), &format!("Bearer {good}")],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(c.contains("error=\"invalid_request\""), "{c}");
    let (s, _, _) = call(&app, &["Bearer "]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Claims of the wrong shape for the handler's type.
    let shapeless = token(&a, json!({"scope": "orders:read"}));
    let (s, c, _) = call(&app, &[&format!("Bearer {shapeless}")]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(c.contains("invalid_token"), "{c}");
}

#[tokio::test]
async fn claims_without_the_layer_is_a_server_error_not_an_open_door() {
    let app: axum::Router = axum::Router::new().route(
        "/orders",
        get(|Claims(c): Claims<Mine>| async move { c.sub }),
    );
    let (s, _, _) = call(&app, &[]).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
}
