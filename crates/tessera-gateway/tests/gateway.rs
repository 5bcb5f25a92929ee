//! The gateway over loopback: an echo upstream, static keys.
#![allow(clippy::unwrap_used)] // test set-up: a failure should stop the test

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::HeaderMap;
use serde_json::{json, Value};
use tessera_gateway::{Gateway, GatewayConfig, GatewayOverrides};
use tessera_jose::{Algorithm, Signer, SigningKey};
use tessera_verify::Verifier;

const ISS: &str = "https://auth.test";

/// What `/stream` waits for after its first chunk.
static STREAM_RELEASED: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(0);

/// Echoes what it received: path, headers, body length. `/slow` never
/// answers; `/stream` sends a chunk, then two more once the test releases
/// it.
async fn upstream() -> String {
    async fn echo(req: axum::http::Request<Body>) -> axum::response::Response {
        let path = req.uri().path().to_owned();
        if path == "/slow" {
            std::future::pending::<()>().await;
        }
        if path == "/stream" {
            let stream = futures_util::stream::unfold(0u32, |i| async move {
                if i == 3 {
                    return None;
                }
                if i == 1 {
                    STREAM_RELEASED.acquire().await.unwrap().forget();
                }
                Some((Ok::<_, std::io::Error>(format!("chunk{i}\n")), i + 1))
            });
            return axum::response::Response::new(Body::from_stream(stream));
        }
        let headers: HashMap<String, String> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_owned()))
            .collect();
        let body = axum::body::to_bytes(req.into_body(), 64 << 20)
            .await
            .unwrap();
        let text = json!({"path": path, "headers": headers, "body_len": body.len()}).to_string();
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            text,
        )
            .into_response()
    }
    use axum::response::IntoResponse as _;
    let app = axum::Router::new().fallback(echo);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn signer() -> Signer {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let kid = key.thumbprint();
    Signer::new(key.with_kid(kid)).typ("at+jwt")
}

fn token(s: &Signer, claims: Value) -> String {
    let now = tessera_jose::UnixTime::now().secs();
    let mut c =
        json!({"iss": ISS, "sub": "svc-1", "aud": "orders-api", "exp": now + 600, "iat": now});
    c.as_object_mut()
        .unwrap()
        .extend(claims.as_object().unwrap().clone());
    s.sign(&c).unwrap()
}

struct Fixture {
    base: String,
    signer: Signer,
    http: reqwest::Client,
}

async fn gateway(upstream: &str, forward_token: bool, timeout: Duration) -> Fixture {
    let s = signer();
    let jwks =
        json!({"keys": [serde_json::to_value(s.key().public_jwk().unwrap()).unwrap()]}).to_string();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.toml");
    std::fs::write(
        &file,
        "[[routes]]\nprefix = \"/public\"\npublic = true\n[[routes]]\nprefix = \"/admin\"\naudience = \"orders-admin\"\nscopes = [\"orders:admin\"]\n",
    )
    .unwrap();
    let config = GatewayConfig::load(
        Some(&file),
        &GatewayOverrides {
            listen: Some("127.0.0.1:0".into()),
            upstream: Some(upstream.to_owned()),
            issuer: Some(ISS.into()),
            audience: Some("orders-api".into()),
            forward_token,
            upstream_timeout: Some(timeout),
            ..GatewayOverrides::default()
        },
    )
    .unwrap();
    let mut verifiers = HashMap::new();
    for aud in ["orders-api", "orders-admin"] {
        let v = Verifier::from_jwks(jwks.clone())
            .issuer(ISS)
            .audience(aud)
            .build()
            .await
            .unwrap();
        verifiers.insert(aud.to_owned(), Arc::new(v));
    }
    let gw = Gateway::with_verifiers(config, verifiers).unwrap();
    let (addr, _task) = gw.serve(std::future::pending()).await.unwrap();
    Fixture {
        base: format!("http://{addr}"),
        signer: s,
        http: reqwest::Client::new(),
    }
}

async fn get(f: &Fixture, path: &str, headers: &[(&str, &str)]) -> (u16, HeaderMap, String) {
    let mut req = f.http.get(format!("{}{path}", f.base));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    (status, h, resp.text().await.unwrap())
}

fn echoed(body: &str) -> Value {
    serde_json::from_str(body).unwrap()
}

#[tokio::test]
async fn identity_headers_are_set_by_the_gateway_only() {
    let up = upstream().await;
    let f = gateway(&up, false, Duration::from_secs(5)).await;
    let forged = [
        ("x-tessera-subject", "root"),
        ("x-tessera-claims", "e30"),
        ("x-tessera-token", "x"),
    ];
    // Public route: no token needed, forged identity removed.
    let (s, _, body) = get(&f, "/public/logo", &forged).await;
    assert_eq!(s, 200);
    let h = &echoed(&body)["headers"];
    for (name, _) in forged {
        assert!(h.get(name).is_none(), "{name} reached the upstream: {h}");
    }
    // Protected route: the verified identity replaces the forged one.
    let t = token(&f.signer, json!({"tenant_id": "acme"}));
    let auth = format!("Bearer {t}");
    let mut headers = forged.to_vec();
    headers.push(("authorization", &auth));
    let (s, _, body) = get(&f, "/orders?x=1", &headers).await;
    assert_eq!(s, 200);
    let e = echoed(&body);
    assert_eq!(e["path"], "/orders");
    assert_eq!(e["headers"]["x-tessera-subject"], "svc-1");
    let claims =
        tessera_jose::b64::decode(e["headers"]["x-tessera-claims"].as_str().unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&claims).unwrap();
    assert_eq!(claims["tenant_id"], "acme");
    assert!(
        e["headers"].get("x-tessera-token").is_none(),
        "token forwarded without forward_token"
    );

    let f = gateway(&up, true, Duration::from_secs(5)).await;
    let t = token(&f.signer, json!({}));
    let (_, _, body) = get(
        &f,
        "/orders",
        &[
            ("authorization", &format!("Bearer {t}")),
            ("x-tessera-token", "forged"),
        ],
    )
    .await;
    assert_eq!(echoed(&body)["headers"]["x-tessera-token"], t.as_str());
}

#[tokio::test]
async fn each_rejection_has_its_status_and_challenge() {
    let up = upstream().await;
    let f = gateway(&up, false, Duration::from_secs(5)).await;
    let good = token(&f.signer, json!({}));
    let (s, h, _) = get(&f, "/orders", &[]).await;
    assert_eq!(
        (s, h["www-authenticate"].to_str().unwrap()),
        (401, "Bearer realm=\"tessera\"")
    );
    let (s, h, _) = get(&f, "/orders", &[("authorization", "Bearer x.y.z")]).await;
    assert_eq!(s, 401);
    assert!(h["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("error=\"invalid_token\""));
    let other = token(&f.signer, json!({"aud": "billing-api"}));
    let (s, h, _) = get(
        &f,
        "/orders",
        &[("authorization", &format!("Bearer {other}"))],
    )
    .await;
    assert_eq!(s, 401);
    assert!(h["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("audience_mismatch"));
    // /admin needs another audience and a scope.
    let (s, h, _) = get(
        &f,
        "/admin/users",
        &[("authorization", &format!("Bearer {good}"))],
    )
    .await;
    assert_eq!(s, 401, "wrong audience for /admin");
    assert!(h["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("audience_mismatch"));
    let admin_no_scope = token(&f.signer, json!({"aud": "orders-admin"}));
    let (s, h, _) = get(
        &f,
        "/admin/users",
        &[("authorization", &format!("Bearer {admin_no_scope}"))],
    )
    .await;
    assert_eq!(s, 403);
    assert!(h["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("insufficient_scope"));
    let admin = token(
        &f.signer,
        json!({"aud": "orders-admin", "scope": "orders:admin"}),
    );
    let (s, _, _) = get(
        &f,
        "/admin/users",
        &[("authorization", &format!("Bearer {admin}"))],
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, _) = get(
        &f,
        "/orders",
        &[
            ("authorization", &format!("Bearer {good}")),
            ("authorization", &format!("Bearer {good}")),
        ],
    )
    .await;
    assert_eq!(s, 400);
    // A refused request never reaches the upstream: its echo would be JSON.
    let (_, _, body) = get(&f, "/orders", &[]).await;
    assert!(serde_json::from_str::<Value>(&body).is_err());
}

#[tokio::test]
async fn upstream_down_is_502_and_slow_is_504() {
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let f = gateway(&closed, false, Duration::from_secs(5)).await;
    let t = token(&f.signer, json!({}));
    let (s, h, _) = get(&f, "/orders", &[("authorization", &format!("Bearer {t}"))]).await;
    assert_eq!(s, 502);
    assert!(h.contains_key("x-request-id"));

    let up = upstream().await;
    let f = gateway(&up, false, Duration::from_millis(300)).await;
    let t = token(&f.signer, json!({}));
    let started = Instant::now();
    let (s, _, _) = get(&f, "/slow", &[("authorization", &format!("Bearer {t}"))]).await;
    let took = started.elapsed();
    // The upstream never answers: only the timeout ends the request, the
    // one configured (300 ms), not the 30 s default.
    assert_eq!(s, 504);
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(15),
        "{took:?}"
    );
}

#[tokio::test]
async fn request_ids_are_propagated_and_hop_by_hop_headers_dropped() {
    let up = upstream().await;
    let f = gateway(&up, false, Duration::from_secs(5)).await;
    let (_, h, body) = get(
        &f,
        "/public/x",
        &[
            ("x-request-id", "abc-123"),
            ("connection", "x-secret-hop"),
            ("x-secret-hop", "1"),
        ],
    )
    .await;
    assert_eq!(h["x-request-id"], "abc-123");
    let e = echoed(&body);
    assert_eq!(e["headers"]["x-request-id"], "abc-123");
    assert!(e["headers"].get("x-secret-hop").is_none());
    let (_, h, body) = get(&f, "/public/x", &[("x-request-id", "bad id with spaces")]).await;
    let generated = h["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(generated, "bad id with spaces");
    assert_eq!(echoed(&body)["headers"]["x-request-id"], generated.as_str());
}

#[tokio::test]
async fn bodies_stream_both_ways() {
    let up = upstream().await;
    let f = gateway(&up, false, Duration::from_secs(5)).await;
    let t = token(&f.signer, json!({}));
    // Response: the first chunk arrives before the upstream has finished
    // (it finishes only once the test has that chunk).
    let mut resp = f
        .http
        .get(format!("{}/stream", f.base))
        .header("authorization", format!("Bearer {t}"))
        .send()
        .await
        .unwrap();
    let first = resp.chunk().await.unwrap().unwrap();
    assert_eq!(&first[..], b"chunk0\n");
    STREAM_RELEASED.add_permits(1);
    let mut rest = Vec::new();
    while let Some(c) = resp.chunk().await.unwrap() {
        rest.extend_from_slice(&c);
    }
    assert_eq!(rest, b"chunk1\nchunk2\n");
    // Request: a 20 MB upload arrives whole.
    let resp = f
        .http
        .post(format!("{}/upload", f.base))
        .header("authorization", format!("Bearer {t}"))
        .body(vec![7u8; 20 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let e: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(e["body_len"], 20 << 20);
}
