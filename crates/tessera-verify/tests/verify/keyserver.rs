//! A JWKS server whose answers the test controls, counting requests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tessera_jose::{Algorithm, Signer, SigningKey};

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Mode {
    Normal,
    Down,
    Garbage,
    TooLarge,
    Slow,
}

pub(crate) struct Inner {
    pub(crate) keys: Vec<serde_json::Value>,
    pub(crate) mode: Mode,
    pub(crate) max_age: u64,
}

pub(crate) struct KeyServer {
    pub(crate) url: String,
    pub(crate) requests: Arc<AtomicUsize>,
    inner: Arc<Mutex<Inner>>,
}

async fn jwks(
    State((inner, count)): State<(Arc<Mutex<Inner>>, Arc<AtomicUsize>)>,
    headers: HeaderMap,
) -> Response {
    count.fetch_add(1, Ordering::SeqCst);
    let (mode, body, max_age) = {
        let g = inner.lock().unwrap();
        (g.mode, json!({"keys": g.keys}).to_string(), g.max_age)
    };
    let etag = format!(
        "\"{}\"",
        body.len() * 31 + body.bytes().map(usize::from).sum::<usize>()
    );
    match mode {
        Mode::Down => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
        Mode::Garbage => return (StatusCode::OK, "<html>oops</html>").into_response(),
        Mode::TooLarge => {
            let big = json!({"keys": [], "pad": "x".repeat(1_000_000)}).to_string();
            return (StatusCode::OK, big).into_response();
        }
        Mode::Slow => tokio::time::sleep(Duration::from_secs(10)).await,
        Mode::Normal => {}
    }
    let cc = format!("public, max-age={max_age}");
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (header::CACHE_CONTROL, cc)],
        )
            .into_response();
    }
    (
        StatusCode::OK,
        [(header::ETAG, etag), (header::CACHE_CONTROL, cc)],
        body,
    )
        .into_response()
}

impl KeyServer {
    pub(crate) async fn start(keys: &[&Signer]) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            keys: keys.iter().map(|k| public(k)).collect(),
            mode: Mode::Normal,
            // No caching asked for: the verifier's own minimum applies
            // (tests set it to a fraction of a second).
            max_age: 0,
        }));
        let requests = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new()
            .route("/jwks", axum::routing::get(jwks))
            .with_state((Arc::clone(&inner), Arc::clone(&requests)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url,
            requests,
            inner,
        }
    }

    pub(crate) fn set(&self, f: impl FnOnce(&mut Inner)) {
        f(&mut self.inner.lock().unwrap());
    }

    pub(crate) fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

pub(crate) fn public(signer: &Signer) -> serde_json::Value {
    serde_json::to_value(signer.key().public_jwk().unwrap()).unwrap()
}

pub(crate) fn signer(alg: Algorithm) -> Signer {
    let key = SigningKey::generate(alg).unwrap();
    let kid = key.thumbprint();
    Signer::new(key.with_kid(kid)).typ("at+jwt")
}

pub(crate) const ISS: &str = "https://auth.test";
pub(crate) const AUD: &str = "orders-api";

pub(crate) fn token(signer: &Signer, extra: serde_json::Value) -> String {
    let now = tessera_jose::UnixTime::now().secs();
    let mut claims =
        json!({"iss": ISS, "sub": "svc", "aud": AUD, "exp": now + 600, "iat": now, "jti": "j"});
    if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    signer.sign(&claims).unwrap()
}
