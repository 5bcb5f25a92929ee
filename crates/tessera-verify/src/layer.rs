//! The tower layer: verifies the bearer token of every request, answers
//! RFC 6750 §3 errors itself, and hands the verified claims to the inner
//! service in the request extensions.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use http::{header, HeaderValue, Request, Response, StatusCode};
use serde_json::Value;
use tessera_jose::Header;
use tower_layer::Layer;
use tower_service::Service;

use crate::Verifier;

/// What the layer puts in the request extensions.
#[derive(Clone, Debug)]
pub struct VerifiedToken {
    /// The token's header.
    pub header: Header,
    /// The verified claims.
    pub claims: Arc<Value>,
    /// The claims as base64url JSON, made on first use and shared by every
    /// cache hit of the same token, as a header value (base64url is
    /// always a valid one): a gateway sets it on each request without
    /// copying or checking it again.
    encoded: Arc<std::sync::OnceLock<HeaderValue>>,
}

impl VerifiedToken {
    pub(crate) fn new(header: Header, claims: Value) -> Self {
        Self {
            header,
            claims: Arc::new(claims),
            encoded: Arc::default(),
        }
    }

    /// The verified claims as base64url JSON (what the gateway forwards in
    /// `X-Tessera-Claims`), serialized once per verified token.
    pub fn claims_base64url(&self) -> &str {
        self.claims_header_value().to_str().unwrap_or_default()
    }

    /// [`VerifiedToken::claims_base64url`] as a header value, shared (a
    /// clone is a reference count).
    pub fn claims_header_value(&self) -> &HeaderValue {
        self.encoded.get_or_init(|| {
            let text =
                tessera_jose::b64::encode(serde_json::to_vec(&*self.claims).unwrap_or_default());
            HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static(""))
        })
    }

    /// The scopes of the RFC 9068 `scope` claim.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.claims["scope"]
            .as_str()
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty())
    }
}

/// Verifies bearer tokens in front of a service.
#[derive(Clone, Debug)]
pub struct VerifyLayer {
    verifier: Arc<Verifier>,
    scopes: Arc<[String]>,
    realm: Arc<str>,
}

impl VerifyLayer {
    /// A layer over `verifier`, requiring no scope.
    pub fn new(verifier: Arc<Verifier>) -> Self {
        Self {
            verifier,
            scopes: Arc::from(Vec::new()),
            realm: Arc::from("tessera"),
        }
    }

    /// Requires a scope in the token's `scope` claim (call again to require
    /// several); a token without it is refused with 403 `insufficient_scope`.
    #[must_use]
    pub fn require_scope(mut self, scope: impl Into<String>) -> Self {
        let mut v = self.scopes.to_vec();
        v.push(scope.into());
        self.scopes = Arc::from(v);
        self
    }

    /// The `realm` of `WWW-Authenticate` (default `tessera`).
    #[must_use]
    pub fn realm(mut self, realm: &str) -> Self {
        self.realm = Arc::from(realm);
        self
    }
}

impl<S> Layer<S> for VerifyLayer {
    type Service = VerifyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        VerifyService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`VerifyLayer`] wraps around the inner one.
#[derive(Clone, Debug)]
pub struct VerifyService<S> {
    inner: S,
    layer: VerifyLayer,
}

/// Why a request was refused, per RFC 6750 §3.1.
#[derive(Debug)]
pub enum Refusal {
    /// No bearer credentials at all: 401 without an error code.
    Missing,
    /// Credentials in a form RFC 6750 does not allow (two headers...): 400.
    InvalidRequest(&'static str),
    /// The token did not verify: 401 `invalid_token`, with the stable code
    /// of `tessera_jose` (`expired`, `bad_signature`...) as description.
    InvalidToken(&'static str),
    /// A required scope is missing: 403.
    InsufficientScope,
}

impl Refusal {
    /// The RFC 6750 answer: status and `WWW-Authenticate` challenge.
    pub fn response(&self, realm: &str, scopes: &[String]) -> Response<Body> {
        let (status, challenge) = match self {
            Self::Missing => (StatusCode::UNAUTHORIZED, format!("Bearer realm=\"{realm}\"")),
            Self::InvalidRequest(d) => (
                StatusCode::BAD_REQUEST,
                format!("Bearer realm=\"{realm}\", error=\"invalid_request\", error_description=\"{d}\""),
            ),
            Self::InvalidToken(code) => (
                StatusCode::UNAUTHORIZED,
                format!("Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{code}\""),
            ),
            Self::InsufficientScope => (
                StatusCode::FORBIDDEN,
                format!(
                    "Bearer realm=\"{realm}\", error=\"insufficient_scope\", scope=\"{}\"",
                    scopes.join(" ")
                ),
            ),
        };
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = status;
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        resp
    }
}

/// The bearer token of a request (RFC 6750 §2.1).
fn bearer<B>(req: &Request<B>) -> Result<&str, Refusal> {
    bearer_token(req.headers())
}

/// The bearer token in `Authorization` (RFC 6750 §2.1): exactly one header,
/// scheme `Bearer` (any case), one token.
///
/// # Errors
/// [`Refusal::Missing`] or [`Refusal::InvalidRequest`].
pub fn bearer_token(headers: &http::HeaderMap) -> Result<&str, Refusal> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(Refusal::Missing);
    };
    if values.next().is_some() {
        return Err(Refusal::InvalidRequest(
            "more than one Authorization header",
        ));
    }
    let text = value
        .to_str()
        .map_err(|_| Refusal::InvalidRequest("Authorization is not ASCII"))?;
    let Some((scheme, token)) = text.split_once(' ') else {
        return Err(Refusal::Missing);
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        // Another scheme is no bearer credential at all.
        return Err(Refusal::Missing);
    }
    let token = token.trim_matches(' ');
    if token.is_empty() || token.contains(' ') {
        return Err(Refusal::InvalidRequest("malformed Bearer credentials"));
    }
    Ok(token)
}

/// Verifies a request's token (from [`bearer_token`]) and checks that the
/// `scope` claim holds every one of `scopes`.
///
/// # Errors
/// The [`Refusal`] to answer with.
pub async fn check(
    verifier: &Verifier,
    scopes: &[String],
    token: Result<String, Refusal>,
) -> Result<VerifiedToken, Refusal> {
    let token = token?;
    let out = verifier
        .verify_token(&token)
        .await
        .map_err(|e| Refusal::InvalidToken(e.code()))?;
    if !scopes.iter().all(|s| out.scopes().any(|t| t == s)) {
        return Err(Refusal::InsufficientScope);
    }
    Ok(out)
}

impl<S, B> Service<Request<B>> for VerifyService<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // Call the service that was polled ready, leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        let token = bearer(&req).map(str::to_owned);
        Box::pin(async move {
            match check(&layer.verifier, &layer.scopes, token).await {
                Ok(token) => {
                    req.extensions_mut().insert(token);
                    inner.call(req).await
                }
                Err(refusal) => {
                    tracing::debug!(?refusal, "request refused");
                    Ok(refusal.response(&layer.realm, &layer.scopes))
                }
            }
        })
    }
}
