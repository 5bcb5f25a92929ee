//! Errors as clients see them: the one place where the authority's error
//! codes become HTTP answers (RFC 6749 §5.2 JSON, RFC 6750 §3 and RFC 7617
//! challenges, the status of each code).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::authority::{ErrorCode, OAuthError};

/// The `Retry-After` of every 503 (RFC 9110 §10.2.3), in seconds: a
/// database that refuses connections, no signing key loaded yet, a key
/// not yet read by this node. Each of these ends within seconds or needs an
/// operator; a client that comes back after one second sees the recovery
/// almost as soon as it happens, and while it lasts each of its requests
/// costs the node at most the pool's acquire timeout (one second), not work.
const RETRY_AFTER_SECS: &str = "1";

/// The status of each code.
fn status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::InvalidRequest
        | ErrorCode::InvalidGrant
        | ErrorCode::UnauthorizedClient
        | ErrorCode::UnsupportedGrantType
        | ErrorCode::UnsupportedTokenType
        | ErrorCode::InvalidScope
        | ErrorCode::InvalidTarget
        | ErrorCode::InvalidClientMetadata => StatusCode::BAD_REQUEST,
    }
}

/// The answer to `e` with another status than its code's (413 for an
/// oversize body, 405 for a method, 403 for a missing permission).
pub(super) fn with_status(e: OAuthError, status: StatusCode) -> Response {
    let mut resp = e.into_response();
    *resp.status_mut() = status;
    resp
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": self.code(),
            "error_description": self.description(),
        });
        let mut resp = (status(self.kind()), axum::Json(body)).into_response();
        let h = resp.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if self.basic_challenge() {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tessera\""),
            );
        } else if self.kind() == ErrorCode::InvalidToken {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tessera-admin\", error=\"invalid_token\""),
            );
        }
        if self.kind() == ErrorCode::TemporarilyUnavailable {
            h.insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::kek::KekError;
    use crate::store::StoreError;

    /// Status and body of an error as a client would see it.
    async fn seen(resp: Response) -> (StatusCode, String) {
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn internal_failures_convert_exactly_like_internal() {
        let expected = seen(OAuthError::internal(&"anything").into_response()).await;
        assert_eq!(expected.0, StatusCode::INTERNAL_SERVER_ERROR);
        let converted = [
            OAuthError::from(StoreError::Corrupt("secret-row-detail".into())),
            OAuthError::from(KekError::Format("/secret/path/kek".into())),
        ];
        for e in converted {
            assert_eq!(e.code(), "server_error");
            let got = seen(e.into_response()).await;
            assert_eq!(got, expected);
            assert!(!got.1.contains("secret"), "{}", got.1);
        }
    }

    #[tokio::test]
    async fn each_code_has_its_status_and_challenge() {
        let basic = OAuthError::invalid_client("no", true).into_response();
        assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            basic.headers()[header::WWW_AUTHENTICATE],
            "Basic realm=\"tessera\""
        );
        let admin = OAuthError::admin_unauthorized().into_response();
        assert_eq!(admin.status(), StatusCode::UNAUTHORIZED);
        assert!(admin.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer "));
        let busy = OAuthError::unavailable("later").into_response();
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(busy.headers()[header::RETRY_AFTER], "1");
        let gone = OAuthError::from(StoreError::Db(sqlx::Error::PoolTimedOut)).into_response();
        let (status, body) = seen(gone).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("\"temporarily_unavailable\""), "{body}");
        // Only a 503 says when to come back.
        let broken = OAuthError::from(StoreError::Corrupt("x".into())).into_response();
        assert!(broken.headers().get(header::RETRY_AFTER).is_none());
        let over = with_status(
            OAuthError::invalid_request("big"),
            StatusCode::PAYLOAD_TOO_LARGE,
        );
        let (status, body) = seen(over).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(body.contains("\"invalid_request\""), "{body}");
    }
}
