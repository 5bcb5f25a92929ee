//! The one error type of the core. Its [`ErrorKind`] is one of the stable
//! codes (docs/ARCHITECTURE.md, "Verification"), so callers, metrics and the
//! CLI speak the same words.

use std::borrow::Cow;
use std::fmt;

/// What went wrong, as a stable code.
///
/// The first group are *rejections*: the token (the peer's input) is bad.
/// The second group are faults of the caller or of local configuration: a
/// key that cannot be used, a weak key, an internal cryptographic failure.
/// A bad token is never reported as a bad configuration, and vice versa.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Not a well-formed compact JWS, bad base64url, bad JSON, duplicate
    /// member names, wrong claim types, out-of-range dates.
    Malformed,
    /// Larger than the policy's maximum size (checked before any decoding).
    TooLarge,
    /// The header `alg` is not allowed: `none`, unknown, outside the
    /// allow-list, or not the algorithm the selected key is bound to.
    AlgNotAllowed,
    /// No key (or more than one key) matches the token's `kid`/algorithm.
    UnknownKid,
    /// The signature does not verify.
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// `iss` is not one of the accepted issuers.
    IssuerMismatch,
    /// `aud` names none of the accepted audiences.
    AudienceMismatch,
    /// A required claim is absent.
    MissingClaim,
    /// The header `typ` is not the expected one.
    TypeMismatch,
    /// The header `crit` names an extension this verifier does not
    /// understand, or asks for an unencoded payload (`b64: false`).
    UnsupportedCrit,
    /// The token was revoked (its `jti` is on the deny-list).
    Revoked,
    /// A key cannot be parsed or used as asked (configuration fault).
    InvalidKey,
    /// A key is below the minimum strength (RSA < 2048 bits, short HMAC secret).
    WeakKey,
    /// The cryptographic library failed while signing (internal fault).
    Crypto,
}

impl ErrorKind {
    /// The stable code, as shown to users and in metrics.
    pub fn code(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::TooLarge => "too_large",
            Self::AlgNotAllowed => "alg_not_allowed",
            Self::UnknownKid => "unknown_kid",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuerMismatch => "issuer_mismatch",
            Self::AudienceMismatch => "audience_mismatch",
            Self::MissingClaim => "missing_claim",
            Self::TypeMismatch => "type_mismatch",
            Self::UnsupportedCrit => "unsupported_crit",
            Self::Revoked => "revoked",
            Self::InvalidKey => "invalid_key",
            Self::WeakKey => "weak_key",
            Self::Crypto => "crypto_failure",
        }
    }

    /// True when the error rejects a token (the peer's fault), false when it
    /// is a local configuration or API-use fault.
    pub fn is_rejection(self) -> bool {
        !matches!(self, Self::InvalidKey | Self::WeakKey | Self::Crypto)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// An error with a stable [`ErrorKind`] and a human message.
///
/// The message never contains key material, secrets or token contents
/// beyond short, public identifiers (algorithm names, `kid`, claim names).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Error {
    kind: ErrorKind,
    message: Cow<'static, str>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn malformed(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Malformed, message)
    }

    pub(crate) fn invalid_key(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::InvalidKey, message)
    }

    /// A `revoked` rejection: the token verified but its `jti` is on the
    /// issuer's deny-list. The core keeps no deny-list; verifiers that
    /// follow one (tessera-verify) report it with this.
    pub fn revoked() -> Self {
        Self::new(ErrorKind::Revoked, "the token was revoked by its issuer")
    }

    /// The stable kind of this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The stable code of this error (`kind().code()`).
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// The human-readable explanation, without the code.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_starts_with_stable_code() {
        let e = Error::new(ErrorKind::UnknownKid, "no key with kid \"a\"");
        assert_eq!(e.to_string(), "unknown_kid: no key with kid \"a\"");
        assert_eq!(e.code(), "unknown_kid");
        assert!(e.kind().is_rejection());
        assert!(!ErrorKind::WeakKey.is_rejection());
    }
}
