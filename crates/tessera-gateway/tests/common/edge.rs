//! The gateway's edge as an attacker sees it: requests written byte for
//! byte on a TCP socket (HTTP clients normalise paths and headers; the
//! gateway must see exactly the attacker's bytes), a recording upstream
//! that reports exactly what reached it, and a gateway with static keys.
// Shared by several test crates, each using a part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tessera_gateway::{Gateway, GatewayConfig, GatewayOverrides};
use tessera_jose::{Algorithm, Signer, SigningKey};
use tessera_verify::Verifier;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The issuer of the static keys.
pub(crate) const ISS: &str = "https://auth.test";

/// One request as the upstream read it.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    /// The request target of the request line.
    pub(crate) target: String,
    /// Header names (lower-cased by the gateway's client) and values, in
    /// order.
    pub(crate) headers: Vec<(String, String)>,
}

impl Seen {
    /// Every value of `name`.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The one value of `name`, if any.
    pub(crate) fn one(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(all.len() <= 1, "{name} arrived {} times", all.len());
        all.first().copied()
    }
}

/// An upstream that records every request and answers 200 `ok`, with
/// `extra` response headers (raw lines, `Name: value`).
#[derive(Clone, Debug)]
pub(crate) struct Upstream {
    /// `http://127.0.0.1:PORT`.
    pub(crate) url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    pub(crate) async fn start(extra: &[&str]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut answer = String::from("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n");
        if !extra
            .iter()
            .any(|h| h.to_ascii_lowercase().starts_with("connection:"))
        {
            answer.push_str("Connection: close\r\n");
        }
        for h in extra {
            answer.push_str(h);
            answer.push_str("\r\n");
        }
        answer.push_str("\r\nok");
        let record = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let record = Arc::clone(&record);
                let answer = answer.clone();
                tokio::spawn(async move {
                    let head = read_head(&mut socket).await;
                    let mut lines = head.split("\r\n");
                    let request_line = lines.next().unwrap_or_default();
                    let target = request_line.split(' ').nth(1).unwrap_or_default();
                    let headers = lines
                        .filter_map(|l| l.split_once(':'))
                        .map(|(n, v)| (n.to_owned(), v.trim().to_owned()))
                        .collect();
                    record.lock().unwrap().push(Seen {
                        target: target.to_owned(),
                        headers,
                    });
                    let _ = socket.write_all(answer.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self { url, seen }
    }

    /// How many requests arrived so far.
    pub(crate) fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// The last request that arrived.
    pub(crate) fn last(&self) -> Seen {
        self.seen.lock().unwrap().last().cloned().unwrap()
    }
}

/// Reads up to the end of a request or response head (no body).
async fn read_head(socket: &mut tokio::net::TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut byte).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&byte[..n]),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// An answer read off the socket.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Answer {
    /// Every value of `name`.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Sends `request_line` (`GET /path`, any bytes) as HTTP/1.1 with a `Host`
/// (`gw.test` unless `headers` has one), `Connection: close` and
/// `headers`, and reads the whole answer.
pub(crate) async fn send(
    addr: SocketAddr,
    request_line: &[u8],
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = request_line.to_vec();
    req.extend_from_slice(b" HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        req.extend_from_slice(b"Host: gw.test\r\n");
    }
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("connection"))
    {
        req.extend_from_slice(b"Connection: close\r\n");
    }
    for (n, v) in headers {
        req.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket.write_all(&req).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(tessera_testkit::PATIENCE, socket.read_to_end(&mut raw))
        .await
        .expect("the gateway answered and closed")
        .unwrap();
    parse_answer(&raw)
}

fn parse_answer(raw: &[u8]) -> Answer {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no answer head: {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = std::str::from_utf8(&raw[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = eol + 2;
        out.extend_from_slice(&raw[start..start + size]);
        raw = &raw[start + size + 2..];
    }
}

/// A gateway with static keys in front of `upstream`, configured by
/// `toml`, with verifiers for `orders-api` (the default audience) and
/// `orders-admin`; its address and the signer of valid tokens.
pub(crate) async fn gateway(
    upstream: &str,
    toml: &str,
    forward_token: bool,
) -> (SocketAddr, Signer) {
    start(
        GatewayOverrides {
            upstream: Some(upstream.to_owned()),
            forward_token,
            ..GatewayOverrides::default()
        },
        toml,
    )
    .await
}

/// The same gateway in authz mode (`toml` has the `[authz]` section): no
/// upstream, a decision endpoint.
pub(crate) async fn authz(toml: &str, forward_token: bool) -> (SocketAddr, Signer) {
    start(
        GatewayOverrides {
            mode: Some("authz".into()),
            forward_token,
            ..GatewayOverrides::default()
        },
        toml,
    )
    .await
}

async fn start(over: GatewayOverrides, toml: &str) -> (SocketAddr, Signer) {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let kid = key.thumbprint();
    let signer = Signer::new(key.with_kid(kid)).typ("at+jwt");
    let jwks = json!({"keys": [serde_json::to_value(signer.key().public_jwk().unwrap()).unwrap()]})
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.toml");
    std::fs::write(&file, toml).unwrap();
    let config = GatewayConfig::load(
        Some(&file),
        &GatewayOverrides {
            listen: Some("127.0.0.1:0".into()),
            issuer: Some(ISS.into()),
            audience: Some("orders-api".into()),
            ..over
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
    let (addr, _task) = Gateway::with_verifiers(config, verifiers)
        .unwrap()
        .serve(std::future::pending())
        .await
        .unwrap();
    (addr, signer)
}

/// A token of subject `svc-1` for `orders-api`, with `claims` added or
/// replaced.
pub(crate) fn token(signer: &Signer, claims: Value) -> String {
    let now = tessera_jose::UnixTime::now().secs();
    let mut c =
        json!({"iss": ISS, "sub": "svc-1", "aud": "orders-api", "exp": now + 600, "iat": now});
    c.as_object_mut()
        .unwrap()
        .extend(claims.as_object().unwrap().clone());
    signer.sign(&c).unwrap()
}
