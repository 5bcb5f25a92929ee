//! Extractors: what every OAuth and admin handler needs from a request,
//! parsed once. [`OAuthForm`] is the form (RFC 6749 §3.2), [`ClientAuth`]
//! the form and the client it authenticates, [`AdminAuth`] the admin
//! bearer token (compared as SHA-256 in constant time).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use zeroize::Zeroizing;

use super::error::with_status;
use super::Shared;
use crate::authority::{Credentials, OAuthError, Params};
use crate::clients::Client;

/// A refused request: the authority's error, with the status HTTP chose
/// when it is not the code's own (413 for an oversize body).
#[derive(Debug)]
pub(super) struct Refusal {
    error: OAuthError,
    status: Option<StatusCode>,
}

impl Refusal {
    /// The error code (for the error counter).
    pub(super) fn code(&self) -> &'static str {
        self.error.code()
    }
}

impl From<OAuthError> for Refusal {
    fn from(error: OAuthError) -> Self {
        Self {
            error,
            status: None,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self.status {
            Some(status) => with_status(self.error, status),
            None => self.error.into_response(),
        }
    }
}

/// The form of an OAuth request: `application/x-www-form-urlencoded`, each
/// parameter at most once.
#[derive(Debug)]
pub(super) struct OAuthForm(pub(super) Params);

impl FromRequest<Shared> for OAuthForm {
    type Rejection = Refusal;

    async fn from_request(req: Request, state: &Shared) -> Result<Self, Refusal> {
        let form_type = is_form(req.headers());
        let body = Bytes::from_request(req, state).await.map_err(|e| Refusal {
            // Over the body limit, or a body that could not be read: still
            // an RFC 6749 §5.2 answer, with the status axum chose (413...).
            error: OAuthError::invalid_request("the request body is too large or unreadable"),
            status: Some(e.status()),
        })?;
        if !form_type {
            return Err(OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            )
            .into());
        }
        Ok(Self(form_params(&body)?))
    }
}

/// The parameters of a form body (RFC 6749 §3.2: each at most once, one
/// sent without a value omitted).
pub(crate) fn form_params(body: &[u8]) -> Result<Params, OAuthError> {
    Params::from_pairs(form_urlencoded::parse(body)).map_err(|name| {
        OAuthError::invalid_request(format!(
            "parameter {:?} is repeated",
            name.chars().take(40).collect::<String>()
        ))
    })
}

/// Whether the body is declared a form.
fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// The form and the client it authenticates (exactly one method: HTTP
/// Basic, `client_secret`, or a `client_assertion`).
#[derive(Debug)]
pub(super) struct ClientAuth {
    pub(super) client: Arc<Client>,
    pub(super) params: Params,
}

impl FromRequest<Shared> for ClientAuth {
    type Rejection = Refusal;

    async fn from_request(req: Request, state: &Shared) -> Result<Self, Refusal> {
        let basic = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(basic_credentials);
        let OAuthForm(params) = OAuthForm::from_request(req, state).await?;
        let creds = Credentials {
            basic,
            params: &params,
        };
        let client = state.authority.authenticate(&creds).await?;
        Ok(Self { client, params })
    }
}

/// A request that carries the admin token (RFC 6750 §2.1).
#[derive(Debug)]
pub(super) struct AdminAuth;

impl FromRequestParts<Shared> for AdminAuth {
    type Rejection = OAuthError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, OAuthError> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(OAuthError::admin_unauthorized)?;
        if tessera_verify::token_hash::matches(presented, &state.admin_hash) {
            Ok(Self)
        } else {
            Err(OAuthError::admin_unauthorized())
        }
    }
}

/// The decoded Basic credentials of a request, if any.
pub(super) fn basic_credentials_of(headers: &HeaderMap) -> Option<(String, Zeroizing<String>)> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(basic_credentials)
}

/// `Authorization: Basic` with form-encoded id and secret (RFC 6749 §2.3.1).
pub(crate) fn basic_credentials(value: &HeaderValue) -> Option<(String, Zeroizing<String>)> {
    let text = value.to_str().ok()?;
    let (scheme, rest) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    use base64::Engine as _;
    let raw = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?,
    );
    let raw = std::str::from_utf8(&raw).ok()?;
    let (id, secret) = raw.split_once(':')?;
    // application/x-www-form-urlencoded: '+' is a space, %XX a byte; the
    // whole part, nothing cut at '&' or '='.
    let decode = |s: &str| -> Option<String> {
        let spaced = s.replace('+', " ");
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8()
            .ok()
            .map(|c| c.into_owned())
    };
    Some((decode(id)?, Zeroizing::new(decode(secret)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_parameters_are_read_once_each_and_empty_ones_omitted() {
        let p = form_params(b"grant_type=client_credentials&scope=&client_id=a%2Bb+c").unwrap();
        assert_eq!(p.get("grant_type"), Some("client_credentials"));
        assert_eq!(p.get("client_id"), Some("a+b c"));
        assert!(!p.contains("scope"));
        // Repeated, but once without a value: that one is omitted.
        assert!(form_params(b"scope=&scope=b").is_ok());
        let e = form_params(b"scope=a&scope=b").unwrap_err();
        assert_eq!(e.code(), "invalid_request");
        assert!(
            e.description().contains("\"scope\" is repeated"),
            "{}",
            e.description()
        );
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        use base64::Engine as _;
        let header = |raw: &str| {
            let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
            HeaderValue::from_str(&format!("Basic {b64}")).unwrap()
        };
        let (id, secret) = basic_credentials(&header("we%3Ab:s+3%25c:x")).unwrap();
        assert_eq!((id.as_str(), secret.as_str()), ("we:b", "s 3%c:x"));
        assert!(basic_credentials(&header("no-colon")).is_none());
        assert!(basic_credentials(&header("a:%FF")).is_none());
        assert!(basic_credentials(&HeaderValue::from_static("Bearer d2ViOnM=")).is_none());
        assert!(basic_credentials(&HeaderValue::from_static("Basic !!")).is_none());
    }
}
