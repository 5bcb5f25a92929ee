//! The gateway's listener against slow, idle and surplus clients, and its
//! shutdown with a stalled request; each with the control that ordinary
//! proxied traffic still flows.
#![allow(clippy::unwrap_used)] // test set-up: a failure should stop the test

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use tessera_gateway::{Gateway, GatewayConfig, GatewayOverrides};
use tessera_http::testing::{self, closed, read_response, PATIENCE};
use tessera_jose::{Algorithm, SigningKey};
use tessera_verify::Verifier;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinHandle;

const SHORT: Duration = Duration::from_millis(300);

/// A permit each time `/public/slow` reaches the upstream.
static SLOW_ARRIVED: Semaphore = Semaphore::const_new(0);
/// What `/public/slow` waits for before it answers.
static SLOW_RELEASED: Semaphore = Semaphore::const_new(0);

/// Answers with the path it saw: `/public/slow` once the test releases it
/// (saying first that it arrived), `/public/upload` once it has the whole
/// request body, others at once.
async fn upstream() -> String {
    let app = axum::Router::new().fallback(|req: Request<Body>| async move {
        let path = req.uri().path().to_owned();
        match path.as_str() {
            "/public/slow" => {
                SLOW_ARRIVED.add_permits(1);
                SLOW_RELEASED.acquire().await.unwrap().forget();
            }
            "/public/upload" => {
                let _ = axum::body::to_bytes(req.into_body(), 1 << 20).await;
            }
            _ => {}
        }
        format!("upstream saw {path}")
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }
}

/// A gateway with `settings` (lines of its config file) and one public
/// route, `/public`: the listener is under test, not the tokens (the rest
/// needs a token for `orders-api`, from a key set no test signs with).
async fn gateway(settings: &str) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.toml");
    std::fs::write(
        &file,
        format!("{settings}\n[[routes]]\nprefix = \"/public\"\npublic = true\n"),
    )
    .unwrap();
    let config = GatewayConfig::load(
        Some(&file),
        &GatewayOverrides {
            listen: Some("127.0.0.1:0".into()),
            upstream: Some(upstream().await),
            issuer: Some("https://auth.test".into()),
            audience: Some("orders-api".into()),
            ..GatewayOverrides::default()
        },
    )
    .unwrap();
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let jwk = serde_json::to_value(key.public_jwk().unwrap()).unwrap();
    let verifier = Verifier::from_jwks(serde_json::json!({ "keys": [jwk] }).to_string())
        .issuer("https://auth.test")
        .audience("orders-api")
        .build()
        .await
        .unwrap();
    let verifiers = HashMap::from([("orders-api".to_owned(), std::sync::Arc::new(verifier))]);
    let gw = Gateway::with_verifiers(config, verifiers).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let (addr, task) = gw
        .serve(async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    Running {
        addr,
        stop: Some(stop),
        task,
    }
}

#[tokio::test]
async fn a_slow_request_head_is_cut_off_and_keep_alive_still_works() {
    let gw = gateway("header_read_timeout = \"300ms\"\nkeep_alive_timeout = \"60s\"").await;
    // Control: proxied requests on one kept-alive connection.
    let mut c = gw.connect().await;
    for path in ["/public/a", "/public/b"] {
        let a = testing::get(&mut c, path).await.unwrap();
        assert_eq!((a.status, a.body), (200, format!("upstream saw {path}")));
    }
    // A protected path without a token is still refused by the gateway.
    assert_eq!(testing::get(&mut c, "/orders").await.unwrap().status, 401);

    let mut slow = gw.connect().await;
    let started = Instant::now();
    slow.write_all(b"GET /public/a HTTP/1.1\r\nHos")
        .await
        .unwrap();
    assert_eq!(closed(&mut slow).await.unwrap(), b"");
    assert!(started.elapsed() >= SHORT);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let gw = gateway("header_read_timeout = \"60s\"\nkeep_alive_timeout = \"300ms\"").await;
    let mut c = gw.connect().await;
    assert_eq!(testing::get(&mut c, "/public/a").await.unwrap().status, 200);
    let idle_from = Instant::now();
    assert_eq!(closed(&mut c).await.unwrap(), b"");
    assert!(idle_from.elapsed() >= SHORT);
}

#[tokio::test]
async fn over_max_connections_a_client_gets_503_until_one_closes() {
    let gw = gateway("max_connections = 2").await;
    let mut first = gw.connect().await;
    let mut second = gw.connect().await;
    for c in [&mut first, &mut second] {
        assert_eq!(testing::get(c, "/public/a").await.unwrap().status, 200);
    }
    let mut third = gw.connect().await;
    let answer = String::from_utf8(closed(&mut third).await.unwrap()).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{answer}"
    );
    assert_eq!(
        testing::get(&mut second, "/public/b").await.unwrap().status,
        200
    );
    drop(first);
    let a = testing::until_admitted(gw.addr, "/public/c").await.unwrap();
    assert_eq!((a.status, a.body.as_str()), (200, "upstream saw /public/c"));
}

#[tokio::test]
async fn shutdown_drops_a_stalled_request_at_the_deadline() {
    let mut gw = gateway("shutdown_timeout = \"300ms\"\nheader_read_timeout = \"60s\"").await;
    // A request whose body never finishes: the upstream waits for it.
    let mut stalled = gw.connect().await;
    stalled
        .write_all(b"POST /public/upload HTTP/1.1\r\nhost: test\r\ncontent-length: 100\r\n\r\npart")
        .await
        .unwrap();
    let mut probe = gw.connect().await;
    assert_eq!(
        testing::get(&mut probe, "/public/a").await.unwrap().status,
        200
    );

    let started = Instant::now();
    let _ = gw.stop.take().unwrap().send(());
    tokio::time::timeout(PATIENCE, &mut gw.task)
        .await
        .expect("the gateway stops by its deadline")
        .unwrap();
    assert!(started.elapsed() >= SHORT);
    assert_eq!(closed(&mut stalled).await.unwrap(), b"");
    assert!(
        TcpStream::connect(gw.addr).await.is_err(),
        "no longer listening"
    );
}

#[tokio::test]
async fn shutdown_lets_a_proxied_request_in_progress_finish() {
    // A deadline far beyond PATIENCE: stopping in time shows that the
    // gateway waited for the request, not for the deadline.
    let mut gw = gateway("shutdown_timeout = \"10m\"").await;
    let mut busy = gw.connect().await;
    busy.write_all(b"GET /public/slow HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    // In progress for certain: the upstream has it, and holds it.
    tokio::time::timeout(PATIENCE, SLOW_ARRIVED.acquire())
        .await
        .expect("the request reaches the upstream")
        .unwrap()
        .forget();

    let _ = gw.stop.take().unwrap().send(());
    SLOW_RELEASED.add_permits(1);
    let a = read_response(&mut busy).await.unwrap();
    assert_eq!(
        (a.status, a.body.as_str()),
        (200, "upstream saw /public/slow")
    );
    assert!(a
        .head
        .to_ascii_lowercase()
        .contains("\r\nconnection: close\r\n"));
    tokio::time::timeout(PATIENCE, &mut gw.task)
        .await
        .expect("the gateway stops once the request is answered")
        .unwrap();
}
