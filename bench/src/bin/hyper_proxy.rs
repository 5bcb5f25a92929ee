//! The yardstick for the gateway's proxy path: the least a reverse proxy
//! built on hyper does, in the gateway's layout (one single-threaded
//! runtime per core accepting from one socket, a connection pool per
//! thread, mimalloc) and with none of its rules: no canonical path, no
//! header cleaning, no timeouts, no limits, no request id. What the
//! gateway can reach while it stays on hyper's server and client. Run by
//! `bench/gateway.py`; not a proxy anyone should use.
//!
//! Usage: `hyper_proxy LISTEN_ADDR UPSTREAM_ADDR`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: hyper_proxy LISTEN_ADDR UPSTREAM_ADDR");
        std::process::exit(2);
    };
    let listener = std::net::TcpListener::bind(&listen).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let upstream: Arc<str> = Arc::from(upstream);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let socket = listener.try_clone().expect("clone");
            let upstream = Arc::clone(&upstream);
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(serve(socket, upstream));
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
}

async fn serve(socket: std::net::TcpListener, upstream: Arc<str>) {
    let listener = tokio::net::TcpListener::from_std(socket).expect("listener");
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Body> =
        Client::builder(TokioExecutor::new()).build(connector);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (client, upstream) = (client.clone(), Arc::clone(&upstream));
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let (client, upstream) = (client.clone(), Arc::clone(&upstream));
                async move { Ok::<_, Infallible>(forward(&client, &upstream, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn forward(
    client: &Client<HttpConnector, Body>,
    upstream: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(uri) = format!("http://{upstream}{path}").parse::<Uri>() else {
        return status(StatusCode::BAD_REQUEST);
    };
    parts.uri = uri;
    match client
        .request(Request::from_parts(parts, Body::new(body)))
        .await
    {
        Ok(resp) => resp.map(Body::new),
        Err(_) => status(StatusCode::BAD_GATEWAY),
    }
}

fn status(code: StatusCode) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = code;
    r
}
