//! The public listener against slow, idle and surplus clients, shutdown
//! with a stalled request, and `/metrics` on its own listener.

use std::time::{Duration, Instant};

use tessera_http::testing::{self, closed, read_response, PATIENCE};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

use crate::common::{backends, TestServer, METRICS};

const SHORT: &str = "300ms";
const SHORT_D: Duration = Duration::from_millis(300);
const LONG: &str = "60s";

async fn connect(s: &TestServer) -> TcpStream {
    TcpStream::connect(s.running.addr).await.unwrap()
}

#[tokio::test]
async fn a_slow_request_head_is_cut_off_and_keep_alive_still_works() {
    for b in backends().await {
        let s = TestServer::start(
            &b,
            &[
                ("TESSERA_SERVER_HEADER_READ_TIMEOUT", SHORT),
                ("TESSERA_SERVER_KEEP_ALIVE_TIMEOUT", LONG),
            ],
        )
        .await;
        // Control: several requests on one kept-alive connection.
        let mut c = connect(&s).await;
        for path in ["/healthz", "/readyz", "/healthz"] {
            let a = testing::get(&mut c, path).await.unwrap();
            assert_eq!(a.status, 200, "{}: {path}", b.name);
        }
        // Half a request line, then nothing: closed, unanswered.
        let mut slow = connect(&s).await;
        let started = Instant::now();
        slow.write_all(b"POST /tok").await.unwrap();
        assert_eq!(closed(&mut slow).await.unwrap(), b"", "{}", b.name);
        assert!(started.elapsed() >= SHORT_D);
        s.stop().await;
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    for b in backends().await {
        let s = TestServer::start(
            &b,
            &[
                ("TESSERA_SERVER_HEADER_READ_TIMEOUT", LONG),
                ("TESSERA_SERVER_KEEP_ALIVE_TIMEOUT", SHORT),
            ],
        )
        .await;
        let mut c = connect(&s).await;
        // Measured from before the request: the server's idle timer starts
        // when it has written the answer, which is before this client has
        // read it, so a clock started after the read could see less than
        // the timeout on a loaded machine although the server kept it.
        let asked = Instant::now();
        assert_eq!(testing::get(&mut c, "/healthz").await.unwrap().status, 200);
        assert_eq!(closed(&mut c).await.unwrap(), b"", "{}", b.name);
        assert!(asked.elapsed() >= SHORT_D, "{}: closed early", b.name);
        s.stop().await;
    }
}

#[tokio::test]
async fn over_max_connections_a_client_gets_503_until_one_closes() {
    for b in backends().await {
        let s = TestServer::start(&b, &[("TESSERA_SERVER_MAX_CONNECTIONS", "2")]).await;
        let mut held = [connect(&s).await, connect(&s).await];
        for c in &mut held {
            assert_eq!(testing::get(c, "/healthz").await.unwrap().status, 200);
        }
        let mut third = connect(&s).await;
        let answer = String::from_utf8(closed(&mut third).await.unwrap()).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{}: {answer}",
            b.name
        );
        let [first, mut second] = held;
        assert_eq!(
            testing::get(&mut second, "/healthz").await.unwrap().status,
            200
        );
        drop(first);
        let a = testing::until_admitted(s.running.addr, "/healthz")
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{}", b.name);
        drop(second);
        s.stop().await;
    }
}

/// A token request whose body never finishes.
async fn stalled_token_request(s: &TestServer) -> TcpStream {
    let mut c = connect(s).await;
    c.write_all(
        b"POST /token HTTP/1.1\r\nhost: test\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 29\r\n\r\ngrant_type=",
    )
    .await
    .unwrap();
    // Once another request is answered, this one has reached its handler.
    let mut probe = connect(s).await;
    assert_eq!(
        testing::get(&mut probe, "/healthz").await.unwrap().status,
        200
    );
    c
}

#[tokio::test]
async fn stop_drops_a_stalled_request_at_the_shutdown_deadline() {
    for b in backends().await {
        let s = TestServer::start(
            &b,
            &[
                ("TESSERA_SERVER_SHUTDOWN_TIMEOUT", SHORT),
                ("TESSERA_SERVER_HEADER_READ_TIMEOUT", LONG),
                ("TESSERA_SERVER_KEEP_ALIVE_TIMEOUT", LONG),
            ],
        )
        .await;
        let addr = s.running.addr;
        let mut stalled = stalled_token_request(&s).await;
        let started = Instant::now();
        tokio::time::timeout(PATIENCE, s.stop())
            .await
            .unwrap_or_else(|_| panic!("{}: stop waited past the deadline", b.name));
        assert!(started.elapsed() >= SHORT_D, "{}", b.name);
        assert_eq!(closed(&mut stalled).await.unwrap(), b"");
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "no longer listening"
        );
    }
}

#[tokio::test]
async fn stop_lets_a_request_in_progress_finish() {
    for b in backends().await {
        // A deadline far beyond PATIENCE: finishing in time shows that stop
        // waited for the request, not for the deadline.
        let s = TestServer::start(&b, &[("TESSERA_SERVER_SHUTDOWN_TIMEOUT", "10m")]).await;
        let mut busy = stalled_token_request(&s).await;
        let stopping = tokio::spawn(s.stop());
        busy.write_all(b"client_credentials").await.unwrap();
        let a = read_response(&mut busy).await.unwrap();
        // No client credentials: the refusal, answered in full.
        assert_eq!(a.status, 401, "{}: {a:?}", b.name);
        assert!(a.body.contains("invalid_client"), "{a:?}");
        tokio::time::timeout(PATIENCE, stopping)
            .await
            .expect("stop returns once the request is answered")
            .unwrap();
    }
}

#[tokio::test]
async fn metrics_are_served_only_on_their_own_listener() {
    for b in backends().await {
        // Default: no metrics listener, and none on the public port.
        let s = TestServer::start(&b, &[]).await;
        assert_eq!(s.running.metrics_addr, None);
        let resp = s.http.get(s.url("/metrics")).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{}", b.name);
        s.stop().await;

        let s = TestServer::start(&b, &[METRICS]).await;
        let resp = s.http.get(s.url("/metrics")).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{}: public port", b.name);
        let (id, secret) = s.basic_client(serde_json::json!({})).await;
        s.token(&id, &secret).await;
        let metrics = s.metrics().await;
        assert!(
            metrics.contains(&format!("client=\"{id}\"")),
            "{}: {metrics}",
            b.name
        );
        // The metrics port serves nothing else.
        let addr = s.running.metrics_addr.unwrap();
        assert_ne!(addr, s.running.addr);
        let resp = s
            .http
            .get(format!("http://{addr}/.well-known/jwks.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
        s.stop().await;
    }
}
