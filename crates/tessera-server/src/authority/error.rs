//! The authority's one error: an OAuth error code (RFC 6749 §5.2, RFC 6750
//! §3, RFC 7009 §2.2.1, RFC 8693 §2.2.2, RFC 8707, RFC 7591 §3.2.2) and a
//! description a client may read. Never the internal detail: that goes to
//! the log when the error is made ([`OAuthError::internal`]). The HTTP
//! status and headers are chosen in one place, `http/error.rs`.

use crate::kek::KekError;
use crate::lifecycle::LifecycleError;
use crate::store::StoreError;

use super::StartError;

/// The error codes the authority answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    /// A parameter is missing, repeated, or malformed.
    InvalidRequest,
    /// Client authentication failed.
    InvalidClient,
    /// The grant (assertion, refresh token, subject token) is not valid.
    InvalidGrant,
    /// The client may not do this.
    UnauthorizedClient,
    /// No such grant type here.
    UnsupportedGrantType,
    /// No such token type here.
    UnsupportedTokenType,
    /// A scope the client may not have.
    InvalidScope,
    /// An audience the client may not ask for.
    InvalidTarget,
    /// Registration metadata that cannot be accepted.
    InvalidClientMetadata,
    /// A missing or wrong admin bearer token.
    InvalidToken,
    /// The admin API's "no such thing".
    NotFound,
    /// The admin API's "changed meanwhile".
    Conflict,
    /// The server's own failure.
    ServerError,
    /// Not now (no signing key loaded, the store unreadable); retry.
    TemporarilyUnavailable,
}

impl ErrorCode {
    /// The code as the wire spells it.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::InvalidToken => "invalid_token",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }
}

/// An OAuth error: a code, a description for the client, and whether the
/// client authenticated with HTTP Basic (the answer then carries a
/// matching challenge, RFC 6749 §5.2).
#[derive(Debug)]
pub(crate) struct OAuthError {
    code: ErrorCode,
    description: String,
    basic_challenge: bool,
}

impl OAuthError {
    fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
            basic_challenge: false,
        }
    }

    /// `invalid_request`.
    pub(crate) fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, d)
    }

    /// `invalid_client`; `basic`: the client used HTTP Basic.
    pub(crate) fn invalid_client(d: impl Into<String>, basic: bool) -> Self {
        let mut e = Self::new(ErrorCode::InvalidClient, d);
        e.basic_challenge = basic;
        e
    }

    /// `unsupported_token_type`.
    pub(crate) fn unsupported_token_type(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::UnsupportedTokenType, d)
    }

    /// `invalid_grant`.
    pub(crate) fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidGrant, d)
    }

    /// `unauthorized_client`.
    pub(crate) fn unauthorized_client(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::UnauthorizedClient, d)
    }

    /// `unsupported_grant_type`.
    pub(crate) fn unsupported_grant_type(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::UnsupportedGrantType, d)
    }

    /// `invalid_scope`.
    pub(crate) fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidScope, d)
    }

    /// `invalid_target`.
    pub(crate) fn invalid_target(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidTarget, d)
    }

    /// `invalid_client_metadata`.
    pub(crate) fn invalid_client_metadata(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidClientMetadata, d)
    }

    /// The admin API's missing or wrong bearer token.
    pub(crate) fn admin_unauthorized() -> Self {
        Self::new(
            ErrorCode::InvalidToken,
            "the admin API needs Authorization: Bearer <admin token>",
        )
    }

    /// The admin API's `not_found`.
    pub(crate) fn not_found(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, d)
    }

    /// The admin API's `conflict`.
    pub(crate) fn conflict(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, d)
    }

    /// `server_error`; `detail` is logged, the client sees none of it.
    pub(crate) fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            ErrorCode::ServerError,
            "the server could not complete the request; the log has the detail",
        )
    }

    /// `temporarily_unavailable`.
    pub(crate) fn unavailable(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::TemporarilyUnavailable, d)
    }

    /// The error code.
    pub(crate) fn code(&self) -> &'static str {
        self.code.as_str()
    }

    /// The typed error code.
    pub(crate) fn kind(&self) -> ErrorCode {
        self.code
    }

    /// What the client reads.
    pub(crate) fn description(&self) -> &str {
        &self.description
    }

    /// Whether the answer carries `WWW-Authenticate: Basic`.
    pub(crate) fn basic_challenge(&self) -> bool {
        self.basic_challenge
    }
}

// Failures of the server's own machinery (storage, the key-encryption key,
// re-reading keys or clients) are never the client's fault: `?` turns them
// into `server_error`, the detail going to the log, exactly as
// `OAuthError::internal(&e)` — except a database out of reach
// ([`StoreError::is_unavailable`]), which is `temporarily_unavailable`: the
// request was fine and will succeed once the database is back. Errors that
// can come from what a client sent (JSON, JOSE) deliberately have no
// `From`: each call site names its answer.

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "database unavailable");
            Self::unavailable("the database is unavailable; retry shortly")
        } else {
            Self::internal(&e)
        }
    }
}

impl From<KekError> for OAuthError {
    fn from(e: KekError) -> Self {
        Self::internal(&e)
    }
}

impl From<StartError> for OAuthError {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Store(e) | StartError::Lifecycle(LifecycleError::Store(e)) => Self::from(e),
            other => Self::internal(&other),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn question_mark_converts_a_store_error() {
        fn failing() -> Result<(), OAuthError> {
            Err(StoreError::Corrupt("x".into()))?;
            Ok(())
        }
        assert_eq!(failing().unwrap_err().code(), "server_error");
    }

    #[test]
    fn an_unreachable_database_is_temporarily_unavailable_by_every_path() {
        let gone = || StoreError::Db(sqlx::Error::PoolTimedOut);
        let converted = [
            OAuthError::from(gone()),
            OAuthError::from(StartError::Store(gone())),
            OAuthError::from(StartError::Lifecycle(LifecycleError::Store(gone()))),
        ];
        for e in converted {
            assert_eq!(e.kind(), ErrorCode::TemporarilyUnavailable);
            assert!(!e.description().contains("pool"), "{}", e.description());
        }
        // Control: the same wrappers around a broken row stay 500.
        let broken = StartError::Lifecycle(LifecycleError::Store(StoreError::Corrupt("x".into())));
        assert_eq!(OAuthError::from(broken).kind(), ErrorCode::ServerError);
    }

    #[test]
    fn machinery_failures_never_reach_the_description() {
        let converted = [
            OAuthError::from(StoreError::Corrupt("secret-row-detail".into())),
            OAuthError::from(KekError::Format("/secret/path/kek".into())),
            OAuthError::from(StartError::Client("secret-client-detail".into())),
        ];
        for e in converted {
            assert_eq!(e.kind(), ErrorCode::ServerError);
            assert!(!e.description().contains("secret"), "{}", e.description());
        }
    }
}
