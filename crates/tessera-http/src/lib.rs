//! Serving an axum [`Router`] on a public TCP port without letting slow,
//! idle or stalled clients hold the process's file descriptors.
//!
//! `tessera serve` and `tessera gateway` both listen here. [`serve`] speaks
//! HTTP/1.1 (keep-alive, streaming bodies both ways) under [`Limits`]:
//!
//! - **Header-read timeout** (default 10 s): a request head must be complete
//!   within this, counted from accept for a connection's first request and
//!   from the first byte of each later one. A client that sends half a
//!   request line and stops is disconnected when it runs out (slowloris).
//! - **Keep-alive timeout** (default 75 s, above the 60 s idle timeout of
//!   common load balancers, so they do not reuse a connection we are
//!   closing): how long a kept-alive connection may wait for its next
//!   request before it is closed.
//! - **Connection limit** (default 1024): while that many connections are
//!   open, a new one is accepted, answered `503 Service Unavailable`
//!   (`Connection: close`, `Retry-After: 1`) and closed at once. Accepting
//!   and refusing, rather than no longer accepting, keeps the kernel's
//!   listen backlog draining: queued connections get a prompt answer
//!   instead of a silent wait, and a client (or a load balancer) can go
//!   elsewhere. The process never holds more than the limit, plus the one
//!   being refused.
//! - **Shutdown deadline** (default 10 s): when the shutdown future
//!   resolves the listener closes, idle connections close at once,
//!   connections with a request in progress may finish it (keep-alive off),
//!   and whatever is still open when the deadline passes is dropped.
//!
//! No timeout applies while a request is being handled or its response
//! streams: handlers bound their own work (the gateway's upstream timeout).
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok\n" }));
//! let limits = tessera_http::LimitSettings {
//!     header_read_timeout: Some(std::time::Duration::from_secs(5)),
//!     ..Default::default()
//! }
//! .resolve()
//! .expect("valid limits");
//! tessera_http::serve(listener, app, limits, tessera_http::shutdown_signal()).await;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod conn;
pub use conn::App;
pub mod testing;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

/// Largest accepted `max_connections` (file-descriptor limits are far below).
const MAX_CONNECTIONS: usize = 1_000_000;

/// What a connection task is told by its server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// Serve.
    Running,
    /// Finish the request in progress, then close.
    Draining,
    /// The shutdown deadline passed: close now.
    Closing,
}

/// Validated connection limits of one listener. Build them with
/// [`LimitSettings::resolve`]; [`Limits::default`] has the documented
/// defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    header_read_timeout: Duration,
    keep_alive_timeout: Duration,
    max_connections: usize,
    shutdown_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(75),
            max_connections: 1024,
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

impl Limits {
    /// How long a request head may take to arrive.
    pub fn header_read_timeout(&self) -> Duration {
        self.header_read_timeout
    }

    /// How long a kept-alive connection may wait for its next request.
    pub fn keep_alive_timeout(&self) -> Duration {
        self.keep_alive_timeout
    }

    /// How many connections may be open at once.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// How long a shutdown waits for requests in progress.
    pub fn shutdown_timeout(&self) -> Duration {
        self.shutdown_timeout
    }
}

/// Limits as settings give them: `None` takes the default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitSettings {
    /// `header_read_timeout`.
    pub header_read_timeout: Option<Duration>,
    /// `keep_alive_timeout`.
    pub keep_alive_timeout: Option<Duration>,
    /// `max_connections`.
    pub max_connections: Option<usize>,
    /// `shutdown_timeout`.
    pub shutdown_timeout: Option<Duration>,
}

/// A limit that cannot work, named by its setting.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct LimitError {
    /// The setting's name (`header_read_timeout`...).
    pub setting: &'static str,
    /// What is wrong and what would be accepted.
    pub message: String,
}

impl LimitSettings {
    /// The limits, defaults filled in.
    ///
    /// # Errors
    /// A zero timeout (it would close every connection at once; the shutdown
    /// deadline may be zero) or a connection limit outside 1..=1,000,000.
    pub fn resolve(self) -> Result<Limits, LimitError> {
        let d = Limits::default();
        let positive = |setting: &'static str, value: Option<Duration>, default: Duration| {
            let v = value.unwrap_or(default);
            if v.is_zero() {
                return Err(LimitError {
                    setting,
                    message: "must be longer than zero".into(),
                });
            }
            Ok(v)
        };
        let max_connections = self.max_connections.unwrap_or(d.max_connections);
        if !(1..=MAX_CONNECTIONS).contains(&max_connections) {
            return Err(LimitError {
                setting: "max_connections",
                message: format!("must be between 1 and {MAX_CONNECTIONS}"),
            });
        }
        Ok(Limits {
            header_read_timeout: positive(
                "header_read_timeout",
                self.header_read_timeout,
                d.header_read_timeout,
            )?,
            keep_alive_timeout: positive(
                "keep_alive_timeout",
                self.keep_alive_timeout,
                d.keep_alive_timeout,
            )?,
            max_connections,
            shutdown_timeout: self.shutdown_timeout.unwrap_or(d.shutdown_timeout),
        })
    }
}

/// Serves `app` on `listener` under `limits` until `shutdown` resolves,
/// then shuts down within `limits.shutdown_timeout()` (see the crate
/// documentation). Requests carry [`axum::extract::ConnectInfo`] with the
/// peer's address.
///
/// Accept errors never end the loop: a connection that failed during its
/// handshake is skipped, and running out of file descriptors (`EMFILE`) is
/// logged and retried after a pause, as hyper's own server does.
pub async fn serve<F>(listener: TcpListener, app: Router, limits: Limits, shutdown: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopped) = watch::channel(Stop::Running);
    let accepting = tokio::spawn(accept(listener, app, limits, stopped, Arc::clone(&slots)));
    shutdown.await;
    let _ = stop.send(Stop::Draining);
    // New connections are refused by the kernel from here on.
    let _ = accepting.await;
    drain(&stop, &slots, limits).await;
}

/// Serves as [`serve`] does, under the same limits (one connection limit
/// for all threads), on `threads` threads of its own: each runs a
/// single-threaded runtime that accepts from the same listening socket and
/// serves the connections it accepted, with the app `make_app` built for
/// it. A request is then handled from accept to response on one thread,
/// with no hand-over between threads (what a proxy's second exchange would
/// otherwise cost in wake-ups), and per-thread state (a connection pool)
/// needs no lock. The threads are started before this returns; the future
/// it returns waits for `shutdown`, drains, and resolves once every thread
/// has ended.
///
/// # Errors
/// When the socket cannot be shared or a thread or its runtime cannot be
/// started; nothing is left running then.
pub fn serve_threaded<A, S, F>(
    listener: std::net::TcpListener,
    make_app: A,
    threads: std::num::NonZeroUsize,
    limits: Limits,
    shutdown: F,
) -> std::io::Result<impl Future<Output = ()> + Send + 'static>
where
    A: Fn() -> S + Send + Sync + 'static,
    S: App,
    F: Future<Output = ()> + Send + 'static,
{
    listener.set_nonblocking(true)?;
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopped) = watch::channel(Stop::Running);
    let make_app = Arc::new(make_app);
    let mut ended = Vec::with_capacity(threads.get());
    let started = (0..threads.get()).try_for_each(|i| {
        let socket = listener.try_clone()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (done, finished) = tokio::sync::oneshot::channel::<()>();
        let (slots, stopped, make_app) =
            (Arc::clone(&slots), stopped.clone(), Arc::clone(&make_app));
        std::thread::Builder::new()
            .name(format!("edge-{i}"))
            .spawn(move || {
                runtime.block_on(async move {
                    match TcpListener::from_std(socket) {
                        Ok(l) => accept(l, make_app(), limits, stopped.clone(), slots).await,
                        Err(e) => tracing::error!(error = %e, "edge thread could not listen"),
                    }
                    // The connections this thread accepted run on its
                    // runtime: keep it until the drain is over.
                    let mut stopped = stopped;
                    while !matches!(*stopped.borrow_and_update(), Stop::Closing) {
                        if stopped.changed().await.is_err() {
                            break;
                        }
                    }
                });
                drop(runtime);
                let _ = done.send(());
            })?;
        ended.push(finished);
        Ok::<_, std::io::Error>(())
    });
    drop(listener);
    if let Err(e) = started {
        // The threads already started end at once: nothing is accepted.
        let _ = stop.send(Stop::Closing);
        return Err(e);
    }
    Ok(async move {
        shutdown.await;
        let _ = stop.send(Stop::Draining);
        drain(&stop, &slots, limits).await;
        let _ = stop.send(Stop::Closing);
        for e in ended {
            let _ = e.await;
        }
    })
}

/// Accepts until told to stop, each connection in a task of its own on the
/// current runtime; the listener is closed on return.
async fn accept<S: App>(
    listener: TcpListener,
    app: S,
    limits: Limits,
    mut stopped: watch::Receiver<Stop>,
    slots: Arc<Semaphore>,
) {
    let mut refusals = Refusals::default();
    loop {
        let accepted = tokio::select! {
            changed = stopped.changed() => match changed {
                Ok(()) if *stopped.borrow_and_update() == Stop::Running => continue,
                _ => break,
            },
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                tracing::error!(error = %e, "accept failed; retrying in 1s");
                tokio::select! {
                    _ = stopped.changed() => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            refusals.refuse(stream, peer, limits.max_connections);
            continue;
        };
        // Small responses go out at once rather than after Nagle's delay.
        let _ = stream.set_nodelay(true);
        tokio::spawn(conn::run(
            stream,
            peer,
            app.clone(),
            limits,
            stopped.clone(),
            slot,
        ));
    }
}

/// After the listeners closed: connections with a request in progress may
/// finish it until the shutdown deadline, then the rest are closed.
async fn drain(stop: &watch::Sender<Stop>, slots: &Semaphore, limits: Limits) {
    // Every connection holds a slot: all slots free means all closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.shutdown_timeout, slots.acquire_many(all))
        .await
        .is_err()
    {
        let open = limits.max_connections - slots.available_permits();
        tracing::warn!(
            open,
            "shutdown deadline passed; closing the connections still open"
        );
        let _ = stop.send(Stop::Closing);
        // The tasks drop their connections as soon as they are told; this
        // wait only makes sure the sockets are closed when serve returns.
        let _ = tokio::time::timeout(Duration::from_secs(1), slots.acquire_many(all)).await;
    }
}

/// Ctrl-C, or SIGTERM on Unix (what a service manager or Kubernetes sends).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Errors of one connection during its handshake, not of the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Connections refused because the limit was reached, and when that was
/// last logged (at most once a minute: a flood must not flood the log too).
#[derive(Debug, Default)]
struct Refusals {
    since_logged: u64,
    logged_at: Option<tokio::time::Instant>,
}

impl Refusals {
    /// Answers 503 and closes. Best effort and never blocking: the accept
    /// loop must not wait on a client that does not read. The socket's send
    /// buffer is empty, so the short answer fits; what the client already
    /// sent is read first, so that closing does not reset the connection
    /// under the answer (data left unread makes the kernel send RST).
    fn refuse(&mut self, stream: TcpStream, peer: SocketAddr, max: usize) {
        const ANSWER: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\nretry-after: 1\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 20\r\n\r\ntoo many connections";
        let mut sink = [0u8; 4096];
        for _ in 0..4 {
            match stream.try_read(&mut sink) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
        let _ = stream.try_write(ANSWER);
        drop(stream);
        self.since_logged += 1;
        let now = tokio::time::Instant::now();
        if self
            .logged_at
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(60))
        {
            tracing::warn!(
                %peer,
                max_connections = max,
                refused = self.since_logged,
                "connection limit reached: refusing new connections with 503"
            );
            self.logged_at = Some(now);
            self.since_logged = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let l = LimitSettings::default().resolve().unwrap_or_default();
        assert_eq!(l, Limits::default());
        assert_eq!(l.header_read_timeout(), Duration::from_secs(10));
        assert_eq!(l.keep_alive_timeout(), Duration::from_secs(75));
        assert_eq!(l.max_connections(), 1024);
        assert_eq!(l.shutdown_timeout(), Duration::from_secs(10));
    }

    #[test]
    fn limits_that_cannot_work_are_named() {
        let zero = Some(Duration::ZERO);
        let setting = |s: LimitSettings| s.resolve().map_err(|e| e.setting);
        assert_eq!(
            setting(LimitSettings {
                header_read_timeout: zero,
                ..LimitSettings::default()
            }),
            Err("header_read_timeout")
        );
        assert_eq!(
            setting(LimitSettings {
                keep_alive_timeout: zero,
                ..LimitSettings::default()
            }),
            Err("keep_alive_timeout")
        );
        for n in [0, MAX_CONNECTIONS + 1] {
            assert_eq!(
                setting(LimitSettings {
                    max_connections: Some(n),
                    ..LimitSettings::default()
                }),
                Err("max_connections")
            );
        }
        // A zero deadline is a choice: drop everything at once.
        let l = LimitSettings {
            shutdown_timeout: zero,
            max_connections: Some(MAX_CONNECTIONS),
            ..LimitSettings::default()
        }
        .resolve();
        assert_eq!(l.map(|l| l.shutdown_timeout()), Ok(Duration::ZERO));
    }
}
