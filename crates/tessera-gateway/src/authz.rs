//! Forward auth (`mode = "authz"`): a decision endpoint for a proxy that
//! is already in front of the service (nginx `auth_request`, Traefik
//! `forwardAuth`, Envoy `ext_authz` over HTTP). The proxy asks, without
//! the request's body, whether the original request may pass and as whom;
//! the gateway answers with the same route rules, canonical paths,
//! verified-token cache, deny-list and phantom exchange as in proxy mode
//! ([`crate::admit`]), and forwards nothing itself.
//!
//! Two rules differ from proxy mode, both because the gateway no longer
//! controls what the upstream receives:
//!
//! - **Each flavour reads only its own headers.** nginx's `auth_request`
//!   passes the client's headers along with the ones it sets, so a flavour
//!   that also looked at another flavour's names (`X-Forwarded-Uri` under
//!   nginx) would let the client name the path decided on. nginx: the
//!   configured method and URI headers (`X-Original-Method`,
//!   `X-Original-URI`); Traefik: `X-Forwarded-Method`, `X-Forwarded-Uri`;
//!   Envoy: the request line itself (Envoy sends the original method and
//!   path, after `path_prefix`). Exactly one of each, or the answer is 500.
//! - **The path must already be canonical.** The proxy forwards the path
//!   as the client wrote it; a decision taken on the canonical form of
//!   `/public/../admin` would be a decision about `/admin` while the
//!   upstream resolves something else. So a path that is not exactly its
//!   own [`CanonicalPath`] is refused (400 `not_canonical`), as is
//!   everything proxy mode refuses (400 with its code).
//!
//! The answers: 200 to let the request pass, with `X-Tessera-Subject`,
//! `X-Tessera-Claims` and (with `forward_token`) `X-Tessera-Token` on a
//! protected route, and in phantom mode `Authorization: Bearer <internal
//! JWT>`, for the proxy to copy onto the upstream request (nginx
//! `auth_request_set`, Traefik `authResponseHeaders`, Envoy
//! `allowed_upstream_headers`); a public route's 200 carries no identity.
//! A refusal is proxy mode's: 401 with `WWW-Authenticate`, 403
//! `insufficient_scope`, 400 for a request target, 501 for `TRACE`. nginx
//! passes 401 and 403 to the client and turns any other status into 500;
//! Traefik and Envoy pass every refusal as it is. Under Envoy, a 200 also
//! lists in `x-envoy-auth-headers-to-remove` the identity headers it does
//! not set, so a client's copy of them never reaches the upstream (Traefik
//! does that itself for every header in `authResponseHeaders`; the nginx
//! example sets each from the answer, empty when absent).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{
    header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode,
};

use crate::config::Mode;
use crate::path::{BadTarget, CanonicalPath};
use crate::{bad_target, headers, identify, plain, Gateway, CLAIMS, SUBJECT, TOKEN};

/// The proxy that asks, and how it names the original request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Flavor {
    /// nginx `auth_request`: the original method and URI in two headers
    /// the configuration sets (`proxy_set_header X-Original-URI
    /// $request_uri`).
    Nginx {
        /// `method_header` (default `X-Original-Method`).
        method: HeaderName,
        /// `uri_header` (default `X-Original-URI`).
        uri: HeaderName,
    },
    /// Traefik `forwardAuth`: `X-Forwarded-Method` and `X-Forwarded-Uri`.
    Traefik,
    /// Envoy `ext_authz` HTTP service: the original method and path, the
    /// path after `path_prefix` (empty: none).
    Envoy {
        /// `path_prefix`, as in Envoy's `http_service.path_prefix`.
        path_prefix: String,
    },
}

impl std::fmt::Display for Flavor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Nginx { .. } => "nginx auth_request",
            Self::Traefik => "Traefik forwardAuth",
            Self::Envoy { .. } => "Envoy ext_authz",
        })
    }
}

/// Envoy's HTTP authorization service lists, in this header of an OK
/// answer, request headers to remove before the request goes upstream.
pub const ENVOY_HEADERS_TO_REMOVE: HeaderName =
    HeaderName::from_static("x-envoy-auth-headers-to-remove");

const FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
const FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");

/// The original request as the proxy describes it.
struct Original<'a> {
    method: Method,
    /// Path and query as the client wrote them (bytes, as nginx passes
    /// them).
    target: &'a [u8],
}

/// Why the proxy's description of the original request is unusable: the
/// proxy is misconfigured (or the request does not come from it), so the
/// answer is 500, which every flavour treats as "do not pass".
#[derive(Debug, thiserror::Error)]
enum Unusable {
    /// The header is absent.
    #[error("no {0} header")]
    Missing(HeaderName),
    /// The header came more than once.
    #[error("{0} came more than once")]
    Repeated(HeaderName),
    /// The method header is not a method.
    #[error("the method header is not a method")]
    BadMethod,
    /// Envoy's request path does not start with `path_prefix` and a `/`,
    /// or is not in origin form.
    #[error("the request path is not path_prefix followed by the original path")]
    NoPrefix,
}

impl Flavor {
    /// Reads the original request from this flavour's own headers, and
    /// from no other.
    fn original<'a>(&self, req: &'a Request<Body>) -> Result<Original<'a>, Unusable> {
        match self {
            Self::Nginx { method, uri } => Ok(Original {
                method: method_of(one(req.headers(), method)?)?,
                target: one(req.headers(), uri)?.as_bytes(),
            }),
            Self::Traefik => Ok(Original {
                method: method_of(one(req.headers(), &FORWARDED_METHOD)?)?,
                target: one(req.headers(), &FORWARDED_URI)?.as_bytes(),
            }),
            Self::Envoy { path_prefix } => {
                let target = req.uri().path_and_query().map_or("", |p| p.as_str());
                let target = target
                    .strip_prefix(path_prefix.as_str())
                    .filter(|rest| rest.starts_with('/'))
                    .ok_or(Unusable::NoPrefix)?;
                // Envoy sends the path in origin form; an absolute-form
                // request line is not Envoy's.
                if req.uri().authority().is_some() {
                    return Err(Unusable::NoPrefix);
                }
                Ok(Original {
                    method: req.method().clone(),
                    target: target.as_bytes(),
                })
            }
        }
    }
}

/// The one value of `name`.
fn one<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<&'a HeaderValue, Unusable> {
    let mut all = headers.get_all(name).iter();
    let first = all.next().ok_or_else(|| Unusable::Missing(name.clone()))?;
    if all.next().is_some() {
        return Err(Unusable::Repeated(name.clone()));
    }
    Ok(first)
}

fn method_of(value: &HeaderValue) -> Result<Method, Unusable> {
    Method::from_bytes(value.as_bytes()).map_err(|_| Unusable::BadMethod)
}

/// The path decided on: the original target's path, which must be in
/// canonical form already (the query is never looked at, as in proxy
/// mode).
///
/// # Errors
/// What proxy mode refuses, and [`BadTarget::NotCanonical`].
fn decided_path(method: &Method, target: &[u8]) -> Result<CanonicalPath, BadTarget> {
    // As in proxy mode: CONNECT names no path the upstream would serve.
    if method == Method::CONNECT {
        return Err(BadTarget::NotOriginForm);
    }
    // Raw bytes outside ASCII are never canonical (the canonical form
    // escapes them); nginx passes them as the client sent them.
    let target = std::str::from_utf8(target).map_err(|_| BadTarget::NotCanonical)?;
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    let canonical = CanonicalPath::parse(path)?;
    if canonical.as_str() != path {
        return Err(BadTarget::NotCanonical);
    }
    Ok(canonical)
}

/// The decision endpoint: every path on the listener answers.
pub(crate) async fn decide(gw: Arc<Gateway>, req: Request<Body>) -> Response<Body> {
    let Mode::Authz(flavor) = &gw.config.mode else {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "not in authz mode\n");
    };
    let rid = headers::request_id(req.headers());
    let original = match flavor.original(&req) {
        Ok(o) => o,
        Err(why) => {
            tracing::warn!(error = %why, request_id = ?rid, "authz: the proxy did not say which request to decide on");
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "authz: no usable original request (check the proxy's configuration)\n",
            );
        }
    };
    // As in proxy mode: the upstream would echo what the proxy adds
    // (identity, in phantom mode the internal JWT).
    if original.method.as_str().eq_ignore_ascii_case("TRACE") {
        return plain(StatusCode::NOT_IMPLEMENTED, "TRACE is not forwarded\n");
    }
    let path = match decided_path(&original.method, original.target) {
        Ok(p) => p,
        Err(bad) => return bad_target(bad, &rid),
    };
    let rules = gw.config.routes.rules_for(&path);
    let phantom = gw.phantom.is_some();
    if rules.is_empty() {
        // A public route: no identity, and in phantom mode no
        // `Authorization` either (the upstream's is only ever the
        // gateway's internal JWT).
        let mut resp = allowed();
        if matches!(flavor, Flavor::Envoy { .. }) {
            let mut remove = vec![SUBJECT, CLAIMS, TOKEN];
            if phantom {
                remove.push(header::AUTHORIZATION);
            }
            envoy_remove(&mut resp, &remove);
        }
        return resp;
    }
    let token = tessera_verify::bearer_token(req.headers()).map(str::to_owned);
    let id = match identify(&gw, &rules, token, &rid).await {
        Ok(id) => id,
        Err(refused) => return refused,
    };
    let mut resp = allowed();
    let h = resp.headers_mut();
    h.insert(SUBJECT, id.subject);
    h.insert(CLAIMS, id.claims);
    // The token was consumed here: the upstream gets the verified identity,
    // and in phantom mode the internal JWT as its `Authorization`. What
    // this answer does not set, Envoy is told to remove.
    let mut remove = Vec::new();
    for (name, value) in [(TOKEN, id.token), (header::AUTHORIZATION, id.authorization)] {
        match value {
            Some(v) => {
                h.insert(name, v);
            }
            None => remove.push(name),
        }
    }
    if matches!(flavor, Flavor::Envoy { .. }) {
        envoy_remove(&mut resp, &remove);
    }
    resp
}

/// 200, to be stored by nothing on the way: in phantom mode it carries the
/// internal JWT.
fn allowed() -> Response<Body> {
    let mut resp = plain(StatusCode::OK, "");
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Envoy's OK answer: the request headers to remove before it goes
/// upstream (what this answer does not set, so that a client's copy does
/// not pass for it).
fn envoy_remove(resp: &mut Response<Body>, names: &[HeaderName]) {
    let list = names
        .iter()
        .map(HeaderName::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if let Ok(v) = HeaderValue::from_str(&list) {
        resp.headers_mut().insert(ENVOY_HEADERS_TO_REMOVE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_paths_are_decided_on() {
        let get = Method::GET;
        for target in [
            "/",
            "/orders",
            "/orders/",
            "/orders?x=/../admin&y=%2e%2e",
            "/a%20b",
            "/caf%C3%A9",
            "/a!$&'()*+,=:@b",
        ] {
            assert_eq!(
                decided_path(&get, target.as_bytes()).map(|p| p.as_str().to_owned()),
                Ok(target.split('?').next().unwrap_or_default().to_owned()),
                "{target}"
            );
        }
        for (target, want) in [
            ("/public/../admin", BadTarget::NotCanonical),
            ("/public/%2e%2e/admin", BadTarget::NotCanonical),
            ("//admin", BadTarget::NotCanonical),
            ("/%61dmin", BadTarget::NotCanonical),
            ("/caf%c3%a9", BadTarget::NotCanonical),
            ("/admin/.", BadTarget::NotCanonical),
            ("/admin#x", BadTarget::NotCanonical),
            ("/a b", BadTarget::NotCanonical),
            ("/a/%2Fb", BadTarget::EncodedSlash),
            ("/admin;x", BadTarget::PathParameter),
            ("/..", BadTarget::AboveRoot),
            ("http://gw/admin", BadTarget::NotOriginForm),
            ("*", BadTarget::NotOriginForm),
            ("", BadTarget::NotOriginForm),
        ] {
            assert_eq!(decided_path(&get, target.as_bytes()), Err(want), "{target}");
        }
        assert_eq!(
            decided_path(&get, b"/caf\xc3\xa9"),
            Err(BadTarget::NotCanonical)
        );
        assert_eq!(decided_path(&get, b"/a\xff"), Err(BadTarget::NotCanonical));
        assert_eq!(
            decided_path(&Method::CONNECT, b"/orders"),
            Err(BadTarget::NotOriginForm)
        );
    }
}
