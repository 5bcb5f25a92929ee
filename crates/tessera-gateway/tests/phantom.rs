//! Phantom-token mode against a real `tessera serve`: an opaque token at
//! the edge, an internal JWT toward the upstream.
#![allow(clippy::unwrap_used)] // test set-up: a failure should stop the test

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use tessera_gateway::{Gateway, GatewayConfig, GatewayOverrides};
use tessera_jose::{Algorithm, Signer, SigningKey};
use tessera_testkit::{backends, eventually, TestServer};
use tessera_verify::{handle, Verifier};

const ISS: &str = "https://auth.test";

#[tokio::test]
async fn an_opaque_token_reaches_the_upstream_as_an_internal_jwt() {
    for b in backends().await {
        let auth = TestServer::start_live(&b).await;
        let issuer = auth.issuer.clone();
        let http = auth.http.clone();
        let (app, app_secret) = auth
            .basic_client(
                json!({"client_name": "app", "token_format": "opaque", "audiences": ["orders-api"]}),
            )
            .await;
        let (gw_id, gw_secret) = auth
            .basic_client(json!({"client_name": "gateway", "grant_types": ["urn:ietf:params:oauth:grant-type:token-exchange"], "introspection_audiences": ["orders-api"], "permissions": ["revocations:read"]}))
            .await;

        // The upstream echoes what it was given.
        let app_router =
            axum::Router::new().fallback(|headers: axum::http::HeaderMap| async move {
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
        assert!(handle::Handle::parse(&opaque).is_ok_and(|h| h.kind() == handle::Kind::Opaque));

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

        // A made-up handle is malformed; a well-formed one the authority never
        // issued is inactive; a revoked one is refused after the cache.
        for (bearer, code) in [
            (format!("tso_{}", "Q".repeat(51)), "malformed"),
            ("tso_unknown".to_owned(), "malformed"),
            (handle::mint(handle::Kind::Opaque), "inactive"),
        ] {
            let resp = http
                .get(format!("http://{addr}/orders"))
                .bearer_auth(&bearer)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 401);
            let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
            assert!(
                challenge.contains("invalid_token") && challenge.contains(code),
                "{bearer}: {challenge}"
            );
        }
        let resp = http
            .post(format!("{issuer}/revoke"))
            .basic_auth(&app, Some(&app_secret))
            .form(&[("token", opaque.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        // Admitted from the cache until the feed brings the entry; then
        // refused as revoked, and never any other way.
        let (http, opaque) = (&http, &opaque);
        eventually(
            "the gateway refuses the revoked opaque token",
            || async move {
                let resp = http
                    .get(format!("http://{addr}/orders"))
                    .bearer_auth(opaque)
                    .send()
                    .await
                    .unwrap();
                if resp.status() == 200 {
                    return None;
                }
                assert_eq!(resp.status(), 401);
                let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
                assert!(challenge.contains("revoked"), "{challenge}");
                Some(())
            },
        )
        .await;
        auth.stop().await;
    }
}

/// A stand-in for the authority's token endpoint: counts exchanges,
/// reports each arrival, holds it until `gate` gives a permit, then
/// answers with a JWT signed by `signer`.
struct FakeExchange {
    url: String,
    count: Arc<AtomicUsize>,
    arrivals: tokio::sync::mpsc::UnboundedReceiver<()>,
    gate: Arc<tokio::sync::Semaphore>,
}

async fn fake_exchange(signer: Arc<Signer>, open: bool) -> FakeExchange {
    let count = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(if open {
        tokio::sync::Semaphore::MAX_PERMITS
    } else {
        0
    }));
    let (tx, arrivals) = tokio::sync::mpsc::unbounded_channel();
    let (c, g) = (Arc::clone(&count), Arc::clone(&gate));
    let app = axum::Router::new().route(
        "/token",
        axum::routing::post(move || {
            let (c, g, tx, signer) = (Arc::clone(&c), Arc::clone(&g), tx.clone(), Arc::clone(&signer));
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                let _ = tx.send(());
                let _permit = g.acquire().await.unwrap();
                let now = tessera_jose::UnixTime::now().secs();
                let jwt = signer
                    .sign(&json!({"iss": ISS, "sub": "svc-1", "aud": "orders-api", "exp": now + 300, "iat": now}))
                    .unwrap();
                axum::Json(json!({"access_token": jwt, "token_type": "Bearer", "expires_in": 300}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    FakeExchange {
        url,
        count,
        arrivals,
        gate,
    }
}

/// A gateway in phantom mode with static keys, exchanging at `exchange_url`,
/// in front of an upstream that answers "ok"; its base URL.
async fn phantom_gateway(signer: &Signer, exchange_url: &str, max_in_flight: usize) -> String {
    let app = axum::Router::new().fallback(|| async { "ok" });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("gw.secret");
    std::fs::write(&secret, "tcs_not-checked-by-the-fake").unwrap();
    let file = dir.path().join("gw.toml");
    std::fs::write(
        &file,
        format!(
            "phantom_max_in_flight = {max_in_flight}\n[phantom]\nurl = \"{exchange_url}\"\nclient_id = \"tc_gw\"\nclient_secret_file = \"{}\"\n",
            secret.display()
        ),
    )
    .unwrap();
    let config = GatewayConfig::load(
        Some(&file),
        &GatewayOverrides {
            listen: Some("127.0.0.1:0".into()),
            upstream: Some(upstream),
            issuer: Some(ISS.into()),
            audience: Some("orders-api".into()),
            ..GatewayOverrides::default()
        },
    )
    .unwrap();
    let jwks = json!({"keys": [serde_json::to_value(signer.key().public_jwk().unwrap()).unwrap()]})
        .to_string();
    let v = Verifier::from_jwks(jwks)
        .issuer(ISS)
        .audience("orders-api")
        .build()
        .await
        .unwrap();
    let verifiers = HashMap::from([("orders-api".to_owned(), Arc::new(v))]);
    let (addr, _task) = Gateway::with_verifiers(config, verifiers)
        .unwrap()
        .serve(std::future::pending())
        .await
        .unwrap();
    format!("http://{addr}")
}

fn signer() -> Arc<Signer> {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let kid = key.thumbprint();
    Arc::new(Signer::new(key.with_kid(kid)).typ("at+jwt"))
}

async fn get(http: &reqwest::Client, base: &str, bearer: &str) -> reqwest::Response {
    http.get(format!("{base}/orders"))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_made_up_handle_is_refused_without_asking_the_authority() {
    let signer = signer();
    let fake = fake_exchange(Arc::clone(&signer), true).await;
    let base = phantom_gateway(&signer, &fake.url, 8).await;
    let http = reqwest::Client::new();

    let genuine = handle::mint(handle::Kind::Opaque);
    let mut altered = genuine.clone().into_bytes();
    altered[20] = if altered[20] == b'A' { b'B' } else { b'A' };
    let forged = [
        // Right prefix and length, random body, wrong check value.
        format!("tso_{}", "Q".repeat(51)),
        String::from_utf8(altered).unwrap(),
        // A refresh token is never a bearer token.
        handle::mint(handle::Kind::Refresh),
        // A genuine handle relabelled.
        format!("tsr_{}", &genuine[4..]),
        "tso_".to_owned(),
    ];
    for bearer in &forged {
        let resp = get(&http, &base, bearer).await;
        assert_eq!(resp.status(), 401, "{bearer}");
        let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.contains("error=\"invalid_token\"")
                && challenge.contains("error_description=\"malformed\""),
            "{bearer}: {challenge}"
        );
    }
    assert_eq!(
        fake.count.load(Ordering::SeqCst),
        0,
        "no exchange was asked for"
    );

    // Positive control: a well-formed handle is exchanged, once (then
    // cached), and the request reaches the upstream.
    for _ in 0..3 {
        let resp = get(&http, &base, &genuine).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), "ok");
    }
    assert_eq!(fake.count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn exchanges_in_flight_are_bounded_and_the_excess_is_refused_at_once() {
    let signer = signer();
    let mut fake = fake_exchange(Arc::clone(&signer), false).await;
    let base = phantom_gateway(&signer, &fake.url, 2).await;
    let http = reqwest::Client::new();

    // Two exchanges take both slots and are held at the fake authority.
    let held: Vec<_> = (0..2)
        .map(|_| {
            let (http, base) = (http.clone(), base.clone());
            let bearer = handle::mint(handle::Kind::Opaque);
            tokio::spawn(async move { get(&http, &base, &bearer).await.status() })
        })
        .collect();
    for _ in 0..2 {
        fake.arrivals.recv().await.unwrap();
    }

    // A third new handle is refused at once, not queued.
    let resp = get(&http, &base, &handle::mint(handle::Kind::Opaque)).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(
        fake.count.load(Ordering::SeqCst),
        2,
        "the excess never left the gateway"
    );

    // Released: the held ones complete, and a slot is free again.
    fake.gate
        .add_permits(tokio::sync::Semaphore::MAX_PERMITS >> 1);
    for h in held {
        assert_eq!(h.await.unwrap(), 200);
    }
    let resp = get(&http, &base, &handle::mint(handle::Kind::Opaque)).await;
    assert_eq!(resp.status(), 200, "capacity is back");
    assert_eq!(fake.count.load(Ordering::SeqCst), 3);
}

/// Authz mode (here Envoy's shape: the original request line, no
/// `path_prefix`): the opaque token is exchanged as in proxy mode, and the
/// answer hands the proxy the internal JWT as the upstream's
/// `Authorization`; a public route's answer has Envoy remove the client's.
#[tokio::test]
async fn in_authz_mode_the_answer_carries_the_internal_jwt() {
    let signer = signer();
    let fake = fake_exchange(Arc::clone(&signer), true).await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("gw.secret");
    std::fs::write(&secret, "tcs_not-checked-by-the-fake").unwrap();
    let file = dir.path().join("gw.toml");
    std::fs::write(
        &file,
        format!(
            "mode = \"authz\"\n[authz]\nflavor = \"envoy\"\n[phantom]\nurl = \"{}\"\nclient_id = \"tc_gw\"\nclient_secret_file = \"{}\"\n[[routes]]\nprefix = \"/public\"\npublic = true\n",
            fake.url,
            secret.display()
        ),
    )
    .unwrap();
    let config = GatewayConfig::load(
        Some(&file),
        &GatewayOverrides {
            listen: Some("127.0.0.1:0".into()),
            issuer: Some(ISS.into()),
            audience: Some("orders-api".into()),
            ..GatewayOverrides::default()
        },
    )
    .unwrap();
    let jwks = json!({"keys": [serde_json::to_value(signer.key().public_jwk().unwrap()).unwrap()]})
        .to_string();
    let v = Verifier::from_jwks(jwks)
        .issuer(ISS)
        .audience("orders-api")
        .build()
        .await
        .unwrap();
    let verifiers = HashMap::from([("orders-api".to_owned(), Arc::new(v))]);
    let (addr, _task) = Gateway::with_verifiers(config, verifiers)
        .unwrap()
        .serve(std::future::pending())
        .await
        .unwrap();
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();

    let opaque = handle::mint(handle::Kind::Opaque);
    let resp = get(&http, &base, &opaque).await;
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert_eq!(h["x-tessera-subject"], "svc-1");
    let internal = h["authorization"].to_str().unwrap();
    let jwt = internal.strip_prefix("Bearer ").unwrap();
    let claims = tessera_jose::decode_unverified(jwt, 8192).unwrap().claims;
    assert_eq!(claims["aud"], "orders-api");
    assert_eq!(h["x-envoy-auth-headers-to-remove"], "x-tessera-token");
    assert_eq!(fake.count.load(Ordering::SeqCst), 1);

    // A made-up handle: refused without an exchange.
    let resp = get(&http, &base, &format!("tso_{}", "Q".repeat(51))).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(fake.count.load(Ordering::SeqCst), 1);

    // A public route: no identity, and the client's Authorization removed
    // (upstream, it is only ever the gateway's internal JWT).
    let resp = http
        .get(format!("{base}/public/x"))
        .bearer_auth(&opaque)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("authorization").is_none());
    assert_eq!(
        resp.headers()["x-envoy-auth-headers-to-remove"],
        "x-tessera-subject, x-tessera-claims, x-tessera-token, authorization"
    );
}
