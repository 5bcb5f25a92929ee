//! One connection: hyper's HTTP/1 state machine, plus the clock that
//! closes it when a request head is too slow or it idles too long.
//!
//! hyper's own `header_read_timeout` also runs while a kept-alive
//! connection waits for its next request, so it cannot give a short
//! header timeout and a longer keep-alive timeout at once. The phases are
//! tracked here instead, from two signals: bytes read from the socket (a
//! head has started) and the request's lifetime, from the service being
//! called to its response body being dropped by hyper (fully written, or
//! the connection gone).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::Instant;
use tower::ServiceExt as _;

use crate::{Limits, Stop};

/// Serves one connection until the client closes it, a timeout runs out,
/// or the server stops. The slot is released when this returns.
pub(crate) async fn run<A: App>(
    stream: TcpStream,
    peer: SocketAddr,
    app: A,
    limits: Limits,
    mut stop: watch::Receiver<Stop>,
    _slot: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new(Instant::now()));
    let io = TokioIo::new(Watched {
        stream,
        activity: Arc::clone(&activity),
    });
    let service = Service {
        app,
        peer,
        activity: Arc::clone(&activity),
    };
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = activity.expired(&limits) => {
                tracing::debug!(%peer, "connection closed: request head too slow or idle too long");
                return;
            }
            changed = stop.changed() => {
                match changed.map(|()| *stop.borrow_and_update()) {
                    Ok(Stop::Running) => {}
                    Ok(Stop::Draining) => {
                        if draining {
                            continue;
                        }
                        draining = true;
                        // Nothing of a request has arrived: nothing to finish.
                        if activity.is_quiet() {
                            return;
                        }
                        // Keep-alive off: close after the response in progress.
                        conn.as_mut().graceful_shutdown();
                    }
                    // Past the deadline, or the server itself is gone.
                    Ok(Stop::Closing) | Err(_) => return,
                }
            }
        }
    }
}

/// Where a connection is between requests.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Waiting for a request head since `since`: the accept for the first
    /// request, else the end of the previous response or, once `started`,
    /// the first byte of this head.
    Waiting {
        since: Instant,
        first: bool,
        started: bool,
    },
    /// Requests in progress (one for HTTP/1; a count to stay correct
    /// whatever order hyper drops things in).
    Busy(usize),
}

/// The connection's phase, shared by the socket (reads), the service
/// (requests) and the clock. Phase changes never touch the clock: the clock
/// wakes at most the shorter timeout after it last looked, and a deadline
/// that arises later (a head starting, a response ending) is never earlier
/// than that wake, so it is seen in time without a timer being moved on
/// every request.
#[derive(Debug)]
struct Activity {
    phase: Mutex<Phase>,
}

impl Activity {
    fn new(accepted: Instant) -> Self {
        Self {
            phase: Mutex::new(Phase::Waiting {
                since: accepted,
                first: true,
                started: false,
            }),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Phase) -> T) -> T {
        // Phase updates cannot panic half-way; a poisoned lock is still valid.
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut phase)
    }

    /// Bytes arrived from the client.
    fn read(&self) {
        self.with(|p| {
            if let Phase::Waiting {
                since,
                first,
                started: started @ false,
            } = p
            {
                *started = true;
                // The first request's head counts from accept.
                if !*first {
                    *since = Instant::now();
                }
            }
        });
    }

    /// hyper has a request head and calls the service.
    fn begin(&self) {
        self.with(|p| {
            *p = match *p {
                Phase::Waiting { .. } => Phase::Busy(1),
                Phase::Busy(n) => Phase::Busy(n + 1),
            }
        });
    }

    /// A response has been written (or abandoned).
    fn end(&self) {
        self.with(|p| {
            *p = match *p {
                Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
                _ => Phase::Waiting {
                    since: Instant::now(),
                    first: false,
                    started: false,
                },
            }
        });
    }

    /// No request in progress and no byte of the next one.
    fn is_quiet(&self) -> bool {
        self.with(|p| matches!(p, Phase::Waiting { started: false, .. }))
    }

    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        self.with(|p| match *p {
            Phase::Waiting {
                since,
                first,
                started,
            } => Some(
                since
                    + if first || started {
                        limits.header_read_timeout
                    } else {
                        limits.keep_alive_timeout
                    },
            ),
            Phase::Busy(_) => None,
        })
    }

    /// Resolves when the connection has waited too long for a request head
    /// or idled too long. Looks at the phase at its deadline, and at the
    /// latest the shorter timeout after it last looked (see [`Activity`]).
    async fn expired(&self, limits: &Limits) {
        let step = limits.header_read_timeout.min(limits.keep_alive_timeout);
        let sleep = tokio::time::sleep(step);
        let mut sleep = std::pin::pin!(sleep);
        loop {
            let now = Instant::now();
            let wake = match self.deadline(limits) {
                Some(at) if at <= now => return,
                Some(at) => at.min(now + step),
                None => now + step,
            };
            sleep.as_mut().reset(wake);
            sleep.as_mut().await;
        }
    }
}

/// The socket, reporting reads to the connection's [`Activity`].
#[derive(Debug)]
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// What a listener serves: an axum `Router`, or any cloneable tower
/// service of the same shape (the gateway's proxy, without a router's
/// layers on a path where it matches nothing).
pub trait App:
    tower::Service<
        Request<Body>,
        Response = Response<Body>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> App for T where
    T: tower::Service<
            Request<Body>,
            Response = Response<Body>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// The app as hyper calls it, marking each request's lifetime.
#[derive(Debug)]
struct Service<A> {
    app: A,
    peer: SocketAddr,
    activity: Arc<Activity>,
}

type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response<Tracked>, Infallible>> + Send>>;

impl<A: App> hyper::service::Service<Request<Incoming>> for Service<A> {
    type Response = Response<Tracked>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        let busy = Busy::new(Arc::clone(&self.activity));
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let response = self.app.clone().oneshot(req.map(Body::new));
        Box::pin(async move {
            let response = match response.await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            Ok(response.map(|body| Tracked { body, _busy: busy }))
        })
    }
}

/// A request in progress; dropping it ends the request.
#[derive(Debug)]
struct Busy(Arc<Activity>);

impl Busy {
    fn new(activity: Arc<Activity>) -> Self {
        activity.begin();
        Self(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// A response body that ends its request when hyper drops it: after the
/// last frame is written, or when the connection goes away.
#[derive(Debug)]
pub(crate) struct Tracked {
    body: Body,
    _busy: Busy,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
