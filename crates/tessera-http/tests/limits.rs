//! The limits against real sockets: slow heads, idle keep-alive, the
//! connection limit and the shutdown deadline, each with a control showing
//! that ordinary traffic (keep-alive, slow bodies, streaming) still works.
#![allow(clippy::unwrap_used)] // test set-up: a failure should stop the test

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use axum::Router;
use tessera_http::testing::{self, closed, read_response, PATIENCE};
use tessera_http::{LimitSettings, Limits};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Short enough to keep the tests quick, long enough that a loaded machine
/// does not trip it by accident.
const SHORT: Duration = Duration::from_millis(300);
/// Longer than any test waits for anything.
const LONG: Duration = Duration::from_secs(60);

fn limits(header: Duration, keep_alive: Duration, max: usize, shutdown: Duration) -> Limits {
    LimitSettings {
        header_read_timeout: Some(header),
        keep_alive_timeout: Some(keep_alive),
        max_connections: Some(max),
        shutdown_timeout: Some(shutdown),
    }
    .resolve()
    .unwrap()
}

fn app() -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        )
        .route("/echo", post(|body: Bytes| async move { body }))
        .route(
            "/stream",
            get(|| async {
                let chunks = futures_util::stream::unfold(0, |n| async move {
                    if n == 3 {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    Some((
                        Ok::<_, std::io::Error>(Bytes::from(format!("chunk{n};"))),
                        n + 1,
                    ))
                });
                Body::from_stream(chunks)
            }),
        )
}

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Server {
    async fn start(limits: Limits) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(tessera_http::serve(listener, app(), limits, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task,
        }
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }

    /// Starts the shutdown; the returned task ends when `serve` returns.
    fn shut_down(&mut self) -> &mut JoinHandle<()> {
        let _ = self.stop.take().unwrap().send(());
        &mut self.task
    }
}

async fn get_on(s: &mut TcpStream, path: &str) -> (u16, String) {
    let a = testing::get(s, path).await.unwrap();
    (a.status, a.body)
}

#[tokio::test]
async fn half_a_request_line_is_cut_off_after_the_header_read_timeout() {
    let s = Server::start(limits(SHORT, LONG, 16, LONG)).await;
    // Control: a whole request in time is answered.
    let mut ok = s.connect().await;
    assert_eq!(get_on(&mut ok, "/").await, (200, "ok".into()));

    let mut slow = s.connect().await;
    let started = Instant::now();
    slow.write_all(b"GET /hel").await.unwrap();
    let answer = closed(&mut slow).await.unwrap();
    assert!(answer.is_empty(), "no response, just closed: {answer:?}");
    assert!(started.elapsed() >= SHORT, "not before the timeout");

    // A connection that sends nothing at all: the same clock, from accept.
    let mut silent = s.connect().await;
    let started = Instant::now();
    assert!(closed(&mut silent).await.unwrap().is_empty());
    assert!(started.elapsed() >= SHORT);
}

#[tokio::test]
async fn a_later_request_head_has_the_same_deadline() {
    let s = Server::start(limits(SHORT, LONG, 16, LONG)).await;
    let mut c = s.connect().await;
    assert_eq!(get_on(&mut c, "/").await.0, 200);
    // Idle, then half a head: the keep-alive timeout (60 s) no longer
    // applies once a byte has arrived; the header timeout does.
    c.write_all(b"GET / HTTP/1.1\r\nhost:").await.unwrap();
    let started = Instant::now();
    assert!(closed(&mut c).await.unwrap().is_empty());
    assert!(started.elapsed() >= SHORT);
}

#[tokio::test]
async fn keep_alive_serves_the_next_request_then_closes_when_idle() {
    // Header timeout long: only the keep-alive timeout can close it in time.
    let s = Server::start(limits(LONG, SHORT, 16, LONG)).await;
    let mut c = s.connect().await;
    for _ in 0..3 {
        assert_eq!(get_on(&mut c, "/").await, (200, "ok".into()));
    }
    let idle_from = Instant::now();
    assert!(closed(&mut c).await.unwrap().is_empty());
    assert!(idle_from.elapsed() >= SHORT);
}

#[tokio::test]
async fn idling_between_requests_is_not_a_slow_head() {
    // hyper's own header timer would also run during the idle wait; ours
    // gives the idle wait the keep-alive timeout.
    let s = Server::start(limits(SHORT, LONG, 16, LONG)).await;
    let mut c = s.connect().await;
    assert_eq!(get_on(&mut c, "/").await.0, 200);
    tokio::time::sleep(SHORT * 3).await;
    assert_eq!(get_on(&mut c, "/").await.0, 200);
}

#[tokio::test]
async fn slow_bodies_and_long_responses_are_not_cut() {
    let tiny = Duration::from_millis(100);
    let s = Server::start(limits(tiny, tiny, 16, LONG)).await;
    let mut c = s.connect().await;
    // A request body that takes longer than both timeouts to arrive.
    c.write_all(b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 10\r\n\r\nhello")
        .await
        .unwrap();
    tokio::time::sleep(tiny * 4).await;
    c.write_all(b"world").await.unwrap();
    let a = read_response(&mut c).await.unwrap();
    assert_eq!((a.status, a.body.as_str()), (200, "helloworld"));
    // A response that streams for longer than both timeouts.
    let (status, body) = get_on(&mut c, "/stream").await;
    assert_eq!(status, 200);
    for n in 0..3 {
        assert!(body.contains(&format!("chunk{n};")), "{body}");
    }
}

#[tokio::test]
async fn handlers_see_the_peer_address() {
    let s = Server::start(Limits::default()).await;
    let mut c = s.connect().await;
    let me = c.local_addr().unwrap().to_string();
    assert_eq!(get_on(&mut c, "/peer").await.1, me);
}

#[tokio::test]
async fn over_the_connection_limit_a_connection_gets_503_until_one_closes() {
    let s = Server::start(limits(LONG, LONG, 2, LONG)).await;
    let mut first = s.connect().await;
    let mut second = s.connect().await;
    assert_eq!(get_on(&mut first, "/").await.0, 200);
    assert_eq!(get_on(&mut second, "/").await.0, 200);

    // The third is answered 503 at once and closed, without being served.
    let mut third = s.connect().await;
    let answer = String::from_utf8(closed(&mut third).await.unwrap()).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{answer}"
    );
    assert!(answer.contains("\r\nretry-after: 1\r\n"), "{answer}");
    // The two held connections still work.
    assert_eq!(get_on(&mut second, "/").await.0, 200);

    // One closes: its slot is free again as soon as the server notices.
    drop(first);
    let a = testing::until_admitted(s.addr, "/").await.unwrap();
    assert_eq!((a.status, a.body.as_str()), (200, "ok"));
}

#[tokio::test]
async fn shutdown_drops_a_stalled_request_at_the_deadline() {
    let mut s = Server::start(limits(LONG, LONG, 16, SHORT)).await;
    let mut stalled = s.connect().await;
    // A request whose body never finishes: the handler waits for it.
    stalled
        .write_all(b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 10\r\n\r\nhel")
        .await
        .unwrap();
    // Let the server get as far as calling the handler.
    let mut probe = s.connect().await;
    assert_eq!(get_on(&mut probe, "/").await.0, 200);

    let started = Instant::now();
    tokio::time::timeout(PATIENCE, s.shut_down())
        .await
        .expect("serve returns by the deadline")
        .unwrap();
    let took = started.elapsed();
    assert!(took >= SHORT, "it waited for the request first: {took:?}");
    assert!(closed(&mut stalled).await.unwrap().is_empty());
    // The listener is gone too.
    assert!(TcpStream::connect(s.addr).await.is_err());
}

#[tokio::test]
async fn shutdown_lets_a_request_in_progress_finish_and_closes_idle_ones_at_once() {
    let mut s = Server::start(limits(LONG, LONG, 16, LONG)).await;
    let mut idle = s.connect().await;
    assert_eq!(get_on(&mut idle, "/").await.0, 200);
    let mut busy = s.connect().await;
    busy.write_all(b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 10\r\n\r\nhello")
        .await
        .unwrap();
    let mut probe = s.connect().await;
    assert_eq!(get_on(&mut probe, "/").await.0, 200);
    drop(probe);

    let serving = s.shut_down();
    // The idle connection is closed without waiting for anything.
    assert!(closed(&mut idle).await.unwrap().is_empty());
    // The request in progress completes, and then its connection closes.
    busy.write_all(b"world").await.unwrap();
    let a = read_response(&mut busy).await.unwrap();
    assert_eq!((a.status, a.body.as_str()), (200, "helloworld"));
    assert!(a
        .head
        .to_ascii_lowercase()
        .contains("\r\nconnection: close\r\n"));
    assert!(closed(&mut busy).await.unwrap().is_empty());
    // Well before the 60 s deadline.
    tokio::time::timeout(PATIENCE, serving)
        .await
        .expect("serve returns once the request is done")
        .unwrap();
}
