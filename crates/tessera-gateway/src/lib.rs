//! `tessera gateway`: a verifying reverse proxy (the Cloudflare Access
//! model) for services in any language.
//!
//! Every request's path is first rewritten into one canonical form, which
//! the routes are matched on and which is what the upstream receives
//! ([`CanonicalPath`]; what has no unambiguous form is refused with 400).
//! The client's hop-by-hop headers and every incoming header that could
//! pass for one the gateway sets (`X-Tessera-*`, also spelled with `_`)
//! are removed; unless its route is public the request must carry a valid
//! bearer token for the route's audience and scopes, and then reaches the
//! upstream with
//! `X-Tessera-Subject`, `X-Tessera-Claims` (the verified claims as
//! base64url JSON) and, if configured, `X-Tessera-Token`; the
//! `Authorization` header it verified is not passed on. Bodies stream in
//! both directions; upstream connections are kept alive; a request id is
//! propagated; an upstream that is down answers 502, one that is slow 504.
//!
//! In authz mode ([`Mode::Authz`], [`authz`]) it forwards nothing: it is
//! the decision endpoint of a proxy already in front of the service (nginx,
//! Traefik, Envoy), answering with the same rules whether a request may
//! pass and as whom.

pub mod authz;
pub mod config;
mod headers;
pub mod path;
mod phantom;
pub mod routes;

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tessera_verify::{Refusal, VerifiedToken, Verifier};

pub use authz::Flavor;
pub use config::{ConfigError, FeedClient, GatewayConfig, GatewayOverrides, Mode};
pub use headers::{CLAIMS, REQUEST_ID, SUBJECT, TOKEN};
pub use path::{BadTarget, CanonicalPath};
pub use routes::{Matching, Route, Routes, Rule};

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
    upstream: Uri,
    phantom: Option<phantom::Phantom>,
    /// The followed deny-list (shared by the verifiers).
    denylist: Option<Arc<tessera_verify::DenyList>>,
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
        // A feed that cannot be read to its end within the catch-up time
        // does not keep the gateway from starting: the list says it is not
        // caught up (and the log warns) until it is.
        let denylist = match &config.revocations {
            Some(feed) => Some(
                tessera_verify::DenyList::follow(
                    &feed.url,
                    &feed.client_id,
                    &feed.client_secret,
                    &tessera_verify::FeedOptions {
                        catch_up_time: config.revocations_catch_up,
                        ..tessera_verify::FeedOptions::default()
                    },
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
                // The floors the authority's prepublish was checked against.
                .floors(config.jwks_floors)
                .build()
                .await?;
        let keys = first.remote().cloned();
        let mut verifiers = HashMap::new();
        verifiers.insert(config.audience.clone(), Arc::new(first));
        for route in config.routes.iter() {
            if let Rule::Protected { audience, .. } = &route.rule {
                if verifiers.contains_key(audience) {
                    continue;
                }
                let builder = match &keys {
                    Some(k) => Verifier::from_remote(Arc::clone(k)),
                    None => Verifier::from_issuer(config.issuer.clone()).floors(config.jwks_floors),
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
        let mut gateway = Self::with_verifiers(config, verifiers)?;
        gateway.denylist = denylist;
        Ok(gateway)
    }

    /// Whether the deny-list it follows has been read to its end (None
    /// without a `[revocations]` section). A gateway that started before
    /// the feed could be read in full serves, refusing what it has read so
    /// far, and catches up in the background.
    pub fn revocations_caught_up(&self) -> Option<bool> {
        self.denylist.as_ref().map(|l| l.caught_up())
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
        let upstream: Uri = match config.mode {
            Mode::Proxy => config.upstream.parse().map_err(|_| ConfigError {
                setting: "upstream".into(),
                message: "not a URI".into(),
            })?,
            // Authz mode forwards nothing: the proxy in front does.
            Mode::Authz(_) => Uri::default(),
        };
        let phantom = match &config.phantom {
            Some(c) => Some(
                phantom::Phantom::new(
                    c.clone(),
                    config.phantom_cache,
                    config.phantom_max_in_flight,
                )
                .map_err(|e| ConfigError {
                    setting: "phantom".into(),
                    message: e.to_string(),
                })?,
            ),
            None => None,
        };
        Ok(Self {
            config,
            verifiers,
            upstream,
            phantom,
            denylist: None,
        })
    }

    /// An upstream connection pool, for one worker thread: its
    /// connections are driven on that thread's runtime.
    fn upstream_client(&self) -> Client<HttpConnector, Body> {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(self.config.connect_timeout));
        connector.set_nodelay(true);
        Client::builder(TokioExecutor::new()).build(connector)
    }

    /// Binds and serves until `shutdown` resolves, under the configured
    /// connection limits (`tessera_http`), on `workers` threads of its own
    /// (each with its own upstream connection pool); the task ends once the
    /// shutdown is done, at the latest `shutdown_timeout` after `shutdown`
    /// resolved.
    ///
    /// # Errors
    /// When the address cannot be bound or the threads cannot start.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), StartError> {
        let addr = self.config.listen;
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|error| StartError::Listen { addr, error })?;
        let bound = listener
            .local_addr()
            .map_err(|error| StartError::Listen { addr, error })?;
        let limits = self.config.connections;
        let workers = self.config.workers;
        let gw = Arc::new(self);
        // Each worker thread gets its own upstream pool (none in authz
        // mode, which forwards nothing). The service is called directly,
        // not through a router: every path is the gateway's.
        let app = move || {
            let edge = Arc::new(Edge {
                client: match gw.config.mode {
                    Mode::Proxy => Some(gw.upstream_client()),
                    Mode::Authz(_) => None,
                },
                gw: Arc::clone(&gw),
            });
            tower::service_fn(move |req: Request<Body>| {
                let edge = Arc::clone(&edge);
                async move {
                    Ok::<_, std::convert::Infallible>(match &edge.client {
                        Some(client) => proxy(&edge.gw, client, req).await,
                        None => authz::decide(Arc::clone(&edge.gw), req).await,
                    })
                }
            })
        };
        let served = tessera_http::serve_threaded(listener, app, workers, limits, shutdown)
            .map_err(|error| StartError::Listen { addr, error })?;
        Ok((bound, tokio::spawn(served)))
    }
}

/// What one worker thread serves with: the gateway, and the upstream
/// connection pool of that thread (proxy mode).
struct Edge {
    gw: Arc<Gateway>,
    client: Option<Client<HttpConnector, Body>>,
}

pub(crate) fn plain(status: StatusCode, text: impl Into<Body>) -> Response<Body> {
    let mut r = Response::new(text.into());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn proxy(
    gw: &Gateway,
    client: &Client<HttpConnector, Body>,
    mut req: Request<Body>,
) -> Response<Body> {
    let rid = headers::request_id(req.headers());
    let mut resp = forward(gw, client, &mut req, &rid).await;
    resp.headers_mut().insert(REQUEST_ID, rid);
    resp
}

/// 400 for a request target with no unambiguous canonical form.
pub(crate) fn bad_target(bad: BadTarget, rid: &HeaderValue) -> Response<Body> {
    tracing::debug!(code = bad.code(), request_id = ?rid, "request target refused");
    plain(
        StatusCode::BAD_REQUEST,
        format!("bad request target: {}\n", bad.code()),
    )
}

/// What each audience requires: the rules' scopes, merged per audience.
fn requirements<'a>(rules: &[&'a Rule]) -> Vec<(&'a str, Cow<'a, [String]>)> {
    let mut out: Vec<(&str, Cow<'_, [String]>)> = Vec::with_capacity(rules.len());
    for rule in rules {
        let Rule::Protected { audience, scopes } = rule else {
            continue;
        };
        match out.iter_mut().find(|(a, _)| a == audience) {
            Some((_, have)) => {
                for s in scopes {
                    if !have.contains(s) {
                        have.to_mut().push(s.clone());
                    }
                }
            }
            None => out.push((audience, Cow::Borrowed(scopes))),
        }
    }
    out
}

/// Verifies the bearer token against every rule that governs the path
/// (see [`Routes::rules_for`]); the verified token, and in phantom mode the
/// internal JWT the opaque token was exchanged for.
pub(crate) async fn admit(
    gw: &Gateway,
    rules: &[&Rule],
    token: Result<String, Refusal>,
    rid: &HeaderValue,
) -> Result<(VerifiedToken, Option<String>), Response<Body>> {
    let required = requirements(rules);
    let first_scopes = required.first().map_or(&[][..], |(_, s)| &s[..]);
    let mut token = match token {
        Ok(t) => t,
        Err(refusal) => return Err(refusal.response("tessera", first_scopes)),
    };
    // Phantom token: an opaque token becomes the internal JWT it is
    // exchanged for, which is then verified like any other.
    let mut internal = None;
    if let Some(phantom) = &gw.phantom {
        match phantom.resolve(&token).await {
            phantom::Outcome::NotOpaque => {}
            phantom::Outcome::Exchanged(jwt) => {
                internal = Some(jwt.clone());
                token = jwt;
            }
            phantom::Outcome::Refused(code) => {
                return Err(Refusal::InvalidToken(code).response("tessera", first_scopes))
            }
            phantom::Outcome::Busy => return Err(phantom::busy()),
        }
    }
    let mut verified = None;
    for (audience, scopes) in &required {
        let Some(verifier) = gw.verifiers.get(*audience) else {
            tracing::error!(%audience, "no verifier for a configured audience");
            return Err(plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "gateway misconfigured\n",
            ));
        };
        match tessera_verify::check(verifier, scopes, Ok(token.clone())).await {
            Ok(v) => {
                verified.get_or_insert(v);
            }
            Err(refusal) => {
                tracing::debug!(?refusal, request_id = ?rid, "refused");
                return Err(refusal.response("tessera", scopes));
            }
        }
    }
    match verified {
        Some(v) => Ok((v, internal)),
        None => Err(plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "gateway misconfigured\n",
        )),
    }
}

/// Who a request was admitted as, in the headers the gateway sets toward
/// the upstream: on the request in proxy mode, on its answer in authz mode.
pub(crate) struct Identity {
    /// `X-Tessera-Subject`: the token's `sub`.
    pub(crate) subject: HeaderValue,
    /// `X-Tessera-Claims`: the verified claims, base64url JSON.
    pub(crate) claims: HeaderValue,
    /// `X-Tessera-Token`: the token itself, with `forward_token` only.
    pub(crate) token: Option<HeaderValue>,
    /// Phantom mode: `Bearer <internal JWT>`, the upstream's `Authorization`.
    pub(crate) authorization: Option<HeaderValue>,
}

/// Admits the bearer token under `rules` ([`admit`]) and gives the identity
/// it carries; a token without a `sub` (or one that cannot be a header) is
/// refused `missing_claim`.
pub(crate) async fn identify(
    gw: &Gateway,
    rules: &[&Rule],
    token: Result<String, Refusal>,
    rid: &HeaderValue,
) -> Result<Identity, Response<Body>> {
    // The token itself is kept only when it is to be forwarded.
    let raw = token
        .as_ref()
        .ok()
        .filter(|_| gw.config.forward_token)
        .cloned();
    let (verified, internal) = admit(gw, rules, token, rid).await?;
    let subject = verified.claims["sub"]
        .as_str()
        .and_then(|s| HeaderValue::from_str(s).ok());
    let Some(subject) = subject else {
        return Err(Refusal::InvalidToken("missing_claim").response("tessera", &[]));
    };
    Ok(Identity {
        subject,
        claims: verified.claims_header_value().clone(),
        token: raw.and_then(|t| HeaderValue::from_str(&t).ok()),
        authorization: internal
            .and_then(|jwt| HeaderValue::from_str(&format!("Bearer {jwt}")).ok()),
    })
}

async fn forward(
    gw: &Gateway,
    client: &Client<HttpConnector, Body>,
    req: &mut Request<Body>,
    rid: &HeaderValue,
) -> Response<Body> {
    // TRACE has the upstream echo the request back, with what the gateway
    // adds to it (identity, in phantom mode the internal JWT the client
    // must never see): not forwarded, in any letter case an upstream may
    // read as TRACE (RFC 9110 §9.3.8).
    if req.method().as_str().eq_ignore_ascii_case("TRACE") {
        return plain(StatusCode::NOT_IMPLEMENTED, "TRACE is not forwarded\n");
    }
    // One canonical path: the routes are matched on it and the upstream
    // receives exactly it.
    if let Err(bad) = path::check_authority(
        req.method(),
        req.uri(),
        req.headers().get(header::HOST),
        &gw.config.public_authorities,
    ) {
        return bad_target(bad, rid);
    }
    let path = match CanonicalPath::parse(req.uri().path()) {
        Ok(p) => p,
        Err(bad) => return bad_target(bad, rid),
    };
    let rules = gw.config.routes.rules_for(&path);

    // The client's headers are cleaned before the gateway adds any of its
    // own, so nothing the client sends (`Connection` naming a header, a
    // look-alike name) can remove or shadow what the gateway sets.
    let headers = req.headers_mut();
    headers::strip_hop_by_hop(headers, &[header::AUTHORIZATION]);
    let token = tessera_verify::bearer_token(headers).map(str::to_owned);
    headers::strip_impersonations(headers, gw.phantom.is_some());

    if !rules.is_empty() {
        let id = match identify(gw, &rules, token, rid).await {
            Ok(id) => id,
            Err(refused) => return refused,
        };
        let headers = req.headers_mut();
        headers.insert(SUBJECT, id.subject);
        headers.insert(CLAIMS, id.claims);
        // The gateway consumed the token: the upstream gets the verified
        // identity, the token itself only when asked, and in phantom mode
        // the internal JWT as its `Authorization`.
        headers.remove(header::AUTHORIZATION);
        if let Some(v) = id.authorization {
            headers.insert(header::AUTHORIZATION, v);
        }
        if let Some(v) = id.token {
            headers.insert(TOKEN, v);
        }
    }
    req.headers_mut().insert(REQUEST_ID, rid.clone());
    // The query is forwarded as it came: routes never look at it.
    let target = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path.as_str().to_owned(),
    };
    let mut parts = gw.upstream.clone().into_parts();
    parts.path_and_query = target.parse().ok();
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
    match tokio::time::timeout(gw.config.upstream_timeout, client.request(outgoing)).await {
        Err(_) => {
            tracing::warn!(request_id = ?rid, "upstream timed out");
            plain(StatusCode::GATEWAY_TIMEOUT, "upstream timed out\n")
        }
        Ok(Err(e)) => {
            tracing::warn!(request_id = ?rid, error = %e, "upstream unreachable");
            plain(StatusCode::BAD_GATEWAY, "upstream unreachable\n")
        }
        Ok(Ok(resp)) => {
            // The upstream's hop-by-hop headers stop here too; the request
            // id is set on the answer after this.
            let (mut parts, body) = resp.into_parts();
            headers::strip_hop_by_hop(&mut parts.headers, &[]);
            Response::from_parts(parts, Body::new(body))
        }
    }
}
