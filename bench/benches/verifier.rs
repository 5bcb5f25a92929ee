//! tessera-verify in process against the core it wraps: the library's
//! key-set cache and policy should add under 5% to `tessera_jose::verify`.
//!
//! `cargo bench -p tessera-bench --bench verifier` (interleaved rounds,
//! thread CPU time, median ns/op; ~10 s). Rows per algorithm:
//! - `core`: `tessera_jose::verify` with a `KeySet` and `Validation` built once;
//! - `verifier (static)`: `Verifier::verify` over the same JWKS document;
//! - `verifier (remote)`: `Verifier::verify` over a `RemoteKeySet` fetched
//!   from a local HTTP server (the hot path: an `ArcSwap` load, no await);
//! - `verifier (cache hit)`: `Verifier::verify_token` with the verified-token
//!   cache, the token seen before (SHA-256 and a shard lookup).

use std::future::Future;
use std::hint::black_box;
use std::task::{Context, Poll, Waker};

use serde::Deserialize;
use serde_json::json;
use tessera_bench::{measure, Op};
use tessera_jose::{Algorithm, JwkSet, KeySet, Signer, SigningKey, Validation};
use tessera_verify::Verifier;

#[derive(Deserialize)]
#[allow(dead_code)] // read by serde only
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: i64,
    iat: i64,
    jti: String,
    tenant_id: String,
    email: String,
}

/// Polls a future that must complete without waiting (the verify hot path).
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the hot path awaited"),
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let rounds = 25;
    println!("| alg | core ns/op | verifier (static) | verifier (remote) | verifier (cache hit) | remote / core |");
    println!("|---|---|---|---|---|---|");
    for alg in [
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
        Algorithm::RS256,
        Algorithm::PS256,
    ] {
        let key = SigningKey::generate(alg)
            .expect("key")
            .with_kid("key-2024-01");
        let jwks =
            json!({"keys": [serde_json::to_value(key.public_jwk().expect("jwk")).expect("json")]})
                .to_string();
        let signer = Signer::new(key);
        let now = tessera_jose::UnixTime::now().secs();
        let token = signer
            .sign(&json!({
                "iss": "https://auth.example.com", "sub": "user_abc123", "aud": "orders-api",
                "exp": now + 900, "iat": now, "jti": "3f2c1a8e-9b7d-4c6e-8a5f-1d2e3f4a5b6c",
                "tenant_id": "acme", "email": "a@example.com"
            }))
            .expect("sign");
        let keys = KeySet::from_jwks(&JwkSet::parse(&jwks).expect("jwks"), &[]).expect("keyset");
        let validation = Validation::new()
            .issuer("https://auth.example.com")
            .audience("orders-api");

        let body = jwks.clone();
        let url = runtime.block_on(async move {
            let app =
                axum::Router::new().route("/jwks", axum::routing::get(move || async move { body }));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let url = format!("http://{}/jwks", listener.local_addr().expect("addr"));
            tokio::spawn(async move { axum::serve(listener, app).await });
            url
        });
        let build = |b: tessera_verify::VerifierBuilder| {
            runtime
                .block_on(
                    b.issuer("https://auth.example.com")
                        .audience("orders-api")
                        .build(),
                )
                .expect("verifier")
        };
        let stat = build(Verifier::from_jwks(jwks.clone()));
        let remote = build(Verifier::from_jwks_url(url.clone()));
        let cached = build(Verifier::from_jwks_url(url).cache(1024));

        let mut ops: Vec<Op<'_>> = vec![
            (
                "core",
                Box::new(|| {
                    black_box(
                        tessera_jose::verify::<Claims>(black_box(&token), &keys, &validation)
                            .expect("core"),
                    );
                }),
            ),
            (
                "static",
                Box::new(|| {
                    black_box(ready(stat.verify::<Claims>(black_box(&token))).expect("static"));
                }),
            ),
            (
                "remote",
                Box::new(|| {
                    black_box(ready(remote.verify::<Claims>(black_box(&token))).expect("remote"));
                }),
            ),
            (
                "cached",
                Box::new(|| {
                    black_box(ready(cached.verify_token(black_box(&token))).expect("cached"));
                }),
            ),
        ];
        let ns = measure(&mut ops, rounds);
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.3}x |",
            alg.name(),
            ns[0],
            ns[1],
            ns[2],
            ns[3],
            ns[2] / ns[0]
        );
    }
}
