//! Discovery (RFC 8414, OpenID Connect Discovery) and the JWKS: documents
//! built once at start, the JWKS once per published key set, served from
//! memory with their cache headers and a strong ETag.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{jwks, Shared};
use crate::clients::{AuthMethod, GrantType, ASSERTION_ALGS};
use crate::config::Config;

/// The discovery documents and the cache header, built once at start, and
/// the JWKS response, built once per published key set.
#[derive(Debug)]
pub(crate) struct Discovery {
    oidc: axum::body::Bytes,
    oauth: axum::body::Bytes,
    cache_control: HeaderValue,
    jwks: jwks::JwksCache,
}

impl Discovery {
    /// Builds both documents from the settings.
    pub(crate) fn new(config: &Config) -> Self {
        let issuer = &config.issuer;
        let signing: Vec<&str> = config.keys.algorithms.iter().map(|a| a.name()).collect();
        let mut assertion: Vec<&str> = ASSERTION_ALGS.iter().map(|a| a.name()).collect();
        // RFC 9864's fully specified name for EdDSA over Ed25519, which
        // current clients (openid-client) write.
        assertion.push("Ed25519");
        let mut doc = json!({
            "issuer": issuer,
            // Tessera authenticates services, not people: this endpoint
            // exists because RFC 8414 and OpenID Connect Discovery require
            // it, and it answers every request with an error.
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
            "grant_types_supported": GrantType::ALL,
            // `none` (OAuth 2.0 Multiple Response Type Encoding Practices):
            // nothing is ever returned from the authorization endpoint.
            "response_types_supported": ["none"],
            "token_endpoint_auth_methods_supported": AuthMethod::ALL,
            "token_endpoint_auth_signing_alg_values_supported": assertion,
            "revocation_endpoint": format!("{issuer}/revoke"),
            "introspection_endpoint": format!("{issuer}/introspect"),
            "introspection_endpoint_auth_methods_supported": AuthMethod::ALL,
            "introspection_endpoint_auth_signing_alg_values_supported": assertion,
            "revocation_endpoint_auth_methods_supported": AuthMethod::ALL,
            // RFC 8414 §2: required where private_key_jwt is listed.
            "revocation_endpoint_auth_signing_alg_values_supported": assertion,
            // Tessera's deny-list feed: GET with HTTP Basic, ?since=SEQ.
            "tessera_revocation_feed_endpoint": format!("{issuer}/revocations"),
            "access_token_signing_alg_values_supported": signing,
        });
        let oauth = serde_json::to_vec(&doc).unwrap_or_default().into();
        if let Some(map) = doc.as_object_mut() {
            map.insert("subject_types_supported".into(), json!(["public"]));
            // Required by OpenID Connect Discovery even though Tessera
            // issues no ID tokens; RS256 is listed because the spec says it
            // MUST be, and strict clients check it.
            let mut id_algs = signing.clone();
            if !id_algs.contains(&"RS256") {
                id_algs.push("RS256");
            }
            map.insert(
                "id_token_signing_alg_values_supported".into(),
                json!(id_algs),
            );
        }
        let oidc = serde_json::to_vec(&doc).unwrap_or_default().into();
        let max_age = config.jwks_max_age.as_secs();
        let cache_control = HeaderValue::from_str(&format!("public, max-age={max_age}"))
            .unwrap_or_else(|_| HeaderValue::from_static("no-cache"));
        Self {
            oidc,
            oauth,
            cache_control,
            jwks: jwks::JwksCache::default(),
        }
    }
}

fn cached_json(body: axum::body::Bytes, cache_control: &HeaderValue) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, cache_control.clone());
    resp
}

pub(super) async fn openid_configuration(State(st): State<Shared>) -> Response {
    cached_json(st.discovery.oidc.clone(), &st.discovery.cache_control)
}

pub(super) async fn oauth_metadata(State(st): State<Shared>) -> Response {
    cached_json(st.discovery.oauth.clone(), &st.discovery.cache_control)
}

/// The JWKS, from memory: a strong ETag, and 304 when it matches.
pub(super) async fn jwks(State(st): State<Shared>, headers: HeaderMap) -> Response {
    st.authority.metrics().jwks_requests.increment(1);
    let served = st.discovery.jwks.for_ring(&st.authority.keys().ring());
    let etag = served.etag.as_bytes();
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .any(|t| {
            let t = t.trim_ascii();
            t == etag || t == b"*"
        });
    let mut resp = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        cached_json(served.body.clone(), &st.discovery.cache_control)
    };
    let h = resp.headers_mut();
    h.insert(header::ETAG, served.etag.clone());
    h.insert(header::CACHE_CONTROL, st.discovery.cache_control.clone());
    resp
}
