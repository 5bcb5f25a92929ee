//! Errors as clients see them: RFC 6749 §5.2 JSON with a status, never the
//! internal detail (that goes to the log).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::kek::KekError;
use crate::server::StartError;
use crate::store::StoreError;

/// An OAuth error response.
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: String,
    basic_challenge: bool,
}

impl OAuthError {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            code,
            description: description.into(),
            basic_challenge: false,
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }

    /// 401 `invalid_client`; `basic`: the client used HTTP Basic, so the
    /// answer carries a matching `WWW-Authenticate` (RFC 6749 §5.2).
    pub fn invalid_client(d: impl Into<String>, basic: bool) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "invalid_client", d);
        e.basic_challenge = basic;
        e
    }

    /// 400 `unsupported_token_type` (RFC 8693 §2.2.2, RFC 7009 §2.2.1).
    pub fn unsupported_token_type(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unsupported_token_type", d)
    }

    /// 400 `invalid_grant`.
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", d)
    }

    /// 400 `unauthorized_client`.
    pub fn unauthorized_client(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unauthorized_client", d)
    }

    /// 400 `unsupported_grant_type`.
    pub fn unsupported_grant_type(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unsupported_grant_type", d)
    }

    /// 400 `invalid_scope`.
    pub fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", d)
    }

    /// 400 `invalid_target` (RFC 8707: an audience the client may not ask for).
    pub fn invalid_target(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_target", d)
    }

    /// 400 `invalid_client_metadata` (RFC 7591 §3.2.2).
    pub fn invalid_client_metadata(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_client_metadata", d)
    }

    /// 401 for the admin API: missing or wrong admin token (RFC 6750 §3).
    pub fn admin_unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the admin API needs Authorization: Bearer <admin token>",
        )
    }

    /// 404 for the admin API.
    pub fn not_found(d: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", d)
    }

    /// 409 for the admin API.
    pub fn conflict(d: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", d)
    }

    /// 500 `server_error`; `detail` is logged, the client sees none of it.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the server could not complete the request; the log has the detail",
        )
    }

    /// 503 `temporarily_unavailable` (no signing key loaded yet).
    pub fn unavailable(d: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            d,
        )
    }

    /// The same error with another status (413 for an oversize body...).
    #[must_use]
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// The error code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

// Failures of the server's own machinery (storage, the key-encryption key,
// re-reading keys or clients) are never the client's fault: `?` turns them
// into `server_error`, the detail going to the log, exactly as
// `OAuthError::internal(&e)`. Errors that can come from what a client sent
// (JSON, JOSE) deliberately have no `From`: each call site names its answer.

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        Self::internal(&e)
    }
}

impl From<KekError> for OAuthError {
    fn from(e: KekError) -> Self {
        Self::internal(&e)
    }
}

impl From<StartError> for OAuthError {
    fn from(e: StartError) -> Self {
        Self::internal(&e)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": self.code,
            "error_description": self.description,
        });
        let mut resp = (self.status, axum::Json(body)).into_response();
        let h = resp.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if self.basic_challenge {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tessera\""),
            );
        } else if self.code == "invalid_token" {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tessera-admin\", error=\"invalid_token\""),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Status and body of an error as a client would see it.
    async fn seen(e: OAuthError) -> (StatusCode, String) {
        let resp = e.into_response();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn internal_failures_convert_exactly_like_internal() {
        let expected = seen(OAuthError::internal(&"anything")).await;
        assert_eq!(expected.0, StatusCode::INTERNAL_SERVER_ERROR);
        let converted = [
            OAuthError::from(StoreError::Corrupt("secret-row-detail".into())),
            OAuthError::from(KekError::Format("/secret/path/kek".into())),
            OAuthError::from(StartError::Client("secret-client-detail".into())),
        ];
        for e in converted {
            assert_eq!(e.code(), "server_error");
            let got = seen(e).await;
            assert_eq!(got, expected);
            assert!(!got.1.contains("secret"), "{}", got.1);
        }
    }

    #[test]
    fn question_mark_converts_a_store_error() {
        fn failing() -> Result<(), OAuthError> {
            Err(StoreError::Corrupt("x".into()))?;
            Ok(())
        }
        assert_eq!(failing().unwrap_err().code(), "server_error");
    }
}
