//! Phantom-token mode against a real `tessera serve`: an opaque token at
//! the edge, an internal JWT toward the upstream.
#![allow(clippy::unwrap_used)] // test set-up: a failure should stop the test

mod common;

use std::time::Duration;

use serde_json::{json, Value};
use tessera_testkit::Authority;

#[tokio::test]
async fn an_opaque_token_reaches_the_upstream_as_an_internal_jwt() {
    let auth = Authority::start().await;
    let issuer = auth.issuer.clone();
    let http = auth.http.clone();
    let (app, app_secret) = auth
        .register(
            json!({"client_name": "app", "token_format": "opaque", "audiences": ["orders-api"]}),
        )
        .await;
    let (gw_id, gw_secret) = auth
        .register(json!({"client_name": "gateway", "grant_types": ["urn:ietf:params:oauth:grant-type:token-exchange"], "introspection_audiences": ["orders-api"]}))
        .await;

    // The upstream echoes what it was given.
    let app_router = axum::Router::new().fallback(|headers: axum::http::HeaderMap| async move {
        let get = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        json!({"authorization": get("authorization"), "subject": get("x-tessera-subject")})
            .to_string()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app_router).await });

    let secret_file = auth.file("gw.secret", &gw_secret);
    // A phantom cache far longer than the test: revocation reaches the
    // cached internal JWT through the feed, not through the cache lapsing.
    let gw_file = auth.file(
        "gw.toml",
        &format!(
            "phantom_cache = \"30s\"\n[phantom]\nclient_id = \"{gw_id}\"\nclient_secret_file = \"{0}\"\n[revocations]\nclient_id = \"{gw_id}\"\nclient_secret_file = \"{0}\"\n",
            secret_file.display()
        ),
    );
    let addr = common::start_gateway(&gw_file, &issuer, "orders-api", upstream).await;

    let body: Value = http
        .post(format!("{issuer}/token"))
        .basic_auth(&app, Some(&app_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let opaque = body["access_token"].as_str().unwrap().to_owned();
    assert!(opaque.starts_with("tso_"));

    let resp = http
        .get(format!("http://{addr}/orders"))
        .bearer_auth(&opaque)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    let internal = seen["authorization"]
        .as_str()
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap()
        .to_owned();
    assert!(
        internal.starts_with("eyJ"),
        "the upstream got a JWT, not the opaque token: {seen}"
    );
    assert_eq!(seen["subject"], app.as_str());
    let claims = tessera_jose::decode_unverified(&internal, 8192)
        .unwrap()
        .claims;
    assert_eq!(claims["sub"], app.as_str());

    // Unknown opaque tokens are refused; a revoked one is after the cache.
    let resp = http
        .get(format!("http://{addr}/orders"))
        .bearer_auth("tso_unknown")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("inactive"));
    let resp = http
        .post(format!("{issuer}/revoke"))
        .basic_auth(&app, Some(&app_secret))
        .form(&[("token", opaque.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let started = std::time::Instant::now();
    loop {
        let resp = http
            .get(format!("http://{addr}/orders"))
            .bearer_auth(&opaque)
            .send()
            .await
            .unwrap();
        if resp.status() == 401 {
            let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
            assert!(challenge.contains("revoked"), "{challenge}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "revoked opaque token still admitted after a second"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    auth.stop().await;
}
