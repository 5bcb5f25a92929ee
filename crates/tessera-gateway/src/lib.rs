//! `tessera gateway`: a verifying reverse proxy (the Cloudflare Access
//! model) for services in any language.
//!
//! Every request loses any incoming `X-Tessera-*` identity header; unless
//! its route is public it must carry a valid bearer token for the route's
//! audience and scopes, and then reaches the upstream with
//! `X-Tessera-Subject`, `X-Tessera-Claims` (the verified claims as
//! base64url JSON) and, if configured, `X-Tessera-Token`; the
//! `Authorization` header it verified is not passed on. Bodies stream in
//! both directions; upstream connections are kept alive; a request id is
//! propagated; an upstream that is down answers 502, one that is slow 504.

pub mod config;
mod phantom;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tessera_verify::{Refusal, Verifier};

pub use config::{ConfigError, FeedClient, GatewayConfig, GatewayOverrides, Route, Rule};

/// Identity headers the gateway sets; any incoming copy is removed.
pub const SUBJECT: HeaderName = HeaderName::from_static("x-tessera-subject");
/// The verified claims, base64url JSON.
pub const CLAIMS: HeaderName = HeaderName::from_static("x-tessera-claims");
/// The original token (only with `forward_token`).
pub const TOKEN: HeaderName = HeaderName::from_static("x-tessera-token");
/// The request id, kept when the client sends a sane one, else generated.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Hop-by-hop headers (RFC 9110 §7.6.1): never forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Settings.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The issuer's keys could not be fetched.
    #[error("issuer: {0}")]
    Verifier(#[from] tessera_verify::BuildError),
    /// The listener.
    #[error("listen {addr}: {error}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The error.
        error: std::io::Error,
    },
}

/// The gateway's shared state.
pub struct Gateway {
    config: GatewayConfig,
    /// One verifier per audience, all on one remote key set.
    verifiers: HashMap<String, Arc<Verifier>>,
    client: Client<HttpConnector, Body>,
    upstream: Uri,
    phantom: Option<phantom::Phantom>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("upstream", &self.config.upstream)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Builds the gateway: one verifier per audience named by the routes,
    /// all sharing the key set found through the issuer's discovery.
    ///
    /// # Errors
    /// When the issuer's keys cannot be fetched.
    pub async fn new(config: GatewayConfig) -> Result<Self, StartError> {
        let denylist = match &config.revocations {
            Some(feed) => Some(
                tessera_verify::DenyList::follow(
                    &feed.url,
                    &feed.client_id,
                    &feed.client_secret,
                    &tessera_verify::RemoteOptions::default(),
                )
                .await?,
            ),
            None => None,
        };
        let cached = |b: tessera_verify::VerifierBuilder| {
            let b = match &denylist {
                Some(list) => b.revocations(Arc::clone(list)),
                None => b,
            };
            match config.token_cache {
                0 => b,
                n => b.cache(n),
            }
        };
        let first =
            cached(Verifier::from_issuer(config.issuer.clone()).audience(config.audience.clone()))
                .build()
                .await?;
        let keys = first.remote().cloned();
        let mut verifiers = HashMap::new();
        verifiers.insert(config.audience.clone(), Arc::new(first));
        for route in &config.routes {
            if let Rule::Protected { audience, .. } = &route.rule {
                if verifiers.contains_key(audience) {
                    continue;
                }
                let builder = match &keys {
                    Some(k) => Verifier::from_remote(Arc::clone(k)),
                    None => Verifier::from_issuer(config.issuer.clone()),
                };
                // The same deny-list and token cache as the first.
                let v = cached(
                    builder
                        .issuer(config.issuer.clone())
                        .audience(audience.clone()),
                )
                .build()
                .await?;
                verifiers.insert(audience.clone(), Arc::new(v));
            }
        }
        Self::with_verifiers(config, verifiers)
    }

    /// Builds the gateway around given verifiers (by audience); tests use
    /// static key sets this way.
    ///
    /// # Errors
    /// When the upstream URL does not parse.
    pub fn with_verifiers(
        config: GatewayConfig,
        verifiers: HashMap<String, Arc<Verifier>>,
    ) -> Result<Self, StartError> {
        let upstream: Uri = config.upstream.parse().map_err(|_| ConfigError {
            setting: "upstream".into(),
            message: "not a URI".into(),
        })?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let phantom = match &config.phantom {
            Some(c) => Some(
                phantom::Phantom::new(c.clone(), config.phantom_cache).map_err(|e| {
                    ConfigError {
                        setting: "phantom".into(),
                        message: e.to_string(),
                    }
                })?,
            ),
            None => None,
        };
        Ok(Self {
            config,
            verifiers,
            client,
            upstream,
            phantom,
        })
    }

    /// Binds and serves until `shutdown` resolves.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>), StartError> {
        let addr = self.config.listen;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|error| StartError::Listen { addr, error })?;
        let bound = listener
            .local_addr()
            .map_err(|error| StartError::Listen { addr, error })?;
        let app = axum::Router::new()
            .fallback(proxy)
            .with_state(Arc::new(self));
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        });
        Ok((bound, task))
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::from(text));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// A client's request id if it is short and printable, else a new one.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(&REQUEST_ID)
        .filter(|v| {
            !v.is_empty() && v.len() <= 128 && v.as_bytes().iter().all(|b| b.is_ascii_graphic())
        })
        .cloned()
        .unwrap_or_else(|| {
            let mut buf = [0u8; 12];
            let _ = aws_lc_rs::rand::fill(&mut buf);
            HeaderValue::from_str(&tessera_jose::b64::encode(buf))
                .unwrap_or_else(|_| HeaderValue::from_static("-"))
        })
}

fn strip(headers: &mut HeaderMap) {
    // Headers named by Connection are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in HOP_BY_HOP {
        headers.remove(n);
    }
}

async fn proxy(State(gw): State<Arc<Gateway>>, mut req: Request<Body>) -> Response<Body> {
    let rid = request_id(req.headers());
    let mut resp = forward(&gw, &mut req, &rid).await;
    resp.headers_mut().insert(REQUEST_ID, rid);
    resp
}

async fn forward(gw: &Gateway, req: &mut Request<Body>, rid: &HeaderValue) -> Response<Body> {
    let headers = req.headers_mut();
    // Whatever the route: a client can never set its own identity.
    for h in [&SUBJECT, &CLAIMS, &TOKEN] {
        headers.remove(h);
    }
    if let Rule::Protected { audience, scopes } = gw.config.rule_for(req.uri().path()) {
        let Some(verifier) = gw.verifiers.get(audience) else {
            tracing::error!(%audience, "no verifier for a configured audience");
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "gateway misconfigured\n");
        };
        let mut token = tessera_verify::bearer_token(req.headers()).map(str::to_owned);
        let raw = token.as_ref().ok().cloned();
        // Phantom token: an opaque token becomes the internal JWT it is
        // exchanged for, which is then verified like any other.
        let mut internal = None;
        if let (Some(phantom), Ok(t)) = (&gw.phantom, &token) {
            if t.starts_with("tso_") {
                match phantom.exchange(t).await {
                    Some(jwt) => {
                        internal = Some(jwt.clone());
                        token = Ok(jwt);
                    }
                    None => return Refusal::InvalidToken("inactive").response("tessera", scopes),
                }
            }
        }
        match tessera_verify::check(verifier, scopes, token).await {
            Ok(verified) => {
                let sub = verified.claims["sub"]
                    .as_str()
                    .and_then(|s| HeaderValue::from_str(s).ok());
                let Some(sub) = sub else {
                    return Refusal::InvalidToken("missing_claim").response("tessera", scopes);
                };
                let headers = req.headers_mut();
                headers.insert(SUBJECT, sub);
                if let Ok(v) = HeaderValue::from_str(verified.claims_base64url()) {
                    headers.insert(CLAIMS, v);
                }
                // The gateway consumed the token: the upstream gets the
                // verified identity, and the token itself only when asked.
                headers.remove(header::AUTHORIZATION);
                if let Some(v) =
                    internal.and_then(|jwt| HeaderValue::from_str(&format!("Bearer {jwt}")).ok())
                {
                    // Phantom mode: the upstream sees the internal JWT.
                    headers.insert(header::AUTHORIZATION, v);
                }
                if gw.config.forward_token {
                    if let Some(v) = raw.and_then(|t| HeaderValue::from_str(&t).ok()) {
                        headers.insert(TOKEN, v);
                    }
                }
            }
            Err(refusal) => {
                tracing::debug!(?refusal, request_id = ?rid, "refused");
                return refusal.response("tessera", scopes);
            }
        }
    }
    strip(req.headers_mut());
    req.headers_mut().insert(REQUEST_ID, rid.clone());
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut parts = gw.upstream.clone().into_parts();
    parts.path_and_query = path.parse().ok();
    let Ok(uri) = Uri::from_parts(parts) else {
        return plain(StatusCode::BAD_REQUEST, "bad request target\n");
    };
    *req.uri_mut() = uri;
    if let Some(authority) = gw
        .upstream
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        req.headers_mut().insert(header::HOST, authority);
    }
    let outgoing = std::mem::replace(req, Request::new(Body::empty()));
    match tokio::time::timeout(gw.config.upstream_timeout, gw.client.request(outgoing)).await {
        Err(_) => {
            tracing::warn!(request_id = ?rid, "upstream timed out");
            plain(StatusCode::GATEWAY_TIMEOUT, "upstream timed out\n")
        }
        Ok(Err(e)) => {
            tracing::warn!(request_id = ?rid, error = %e, "upstream unreachable");
            plain(StatusCode::BAD_GATEWAY, "upstream unreachable\n")
        }
        Ok(Ok(resp)) => {
            let (mut parts, body) = resp.into_parts();
            strip(&mut parts.headers);
            Response::from_parts(parts, Body::new(body))
        }
    }
}
