//! What the hot path reads: the signing key per algorithm and the published
//! key set, built from the key table by `Lifecycle::load` and swapped whole.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use tessera_jose::{Algorithm, Signer};

/// The signing key of one algorithm.
pub(crate) struct ActiveKey {
    /// Its kid.
    pub kid: String,
    /// Its algorithm.
    pub alg: Algorithm,
    /// When it started signing.
    pub activated_at: i64,
    /// The signer (header `typ: at+jwt`, `kid`).
    pub signer: Signer,
}

impl fmt::Debug for ActiveKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActiveKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Names a published key set: the base64url of the first 16 bytes of the
/// SHA-256 of its JSON document. Two rings with equal versions publish the
/// same document (the HTTP layer quotes it as the JWKS's strong ETag).
pub(crate) fn jwks_version(document: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, document);
    tessera_jose::b64::encode(&digest.as_ref()[..16])
}

/// What the hot path reads: swapped whole, never locked.
pub(crate) struct KeyRing {
    /// The published keys, to verify this server's own tokens.
    pub verify_keys: tessera_jose::KeySet,
    /// Active key per algorithm.
    pub signers: HashMap<Algorithm, Arc<ActiveKey>>,
    /// The algorithm access tokens are signed with.
    pub primary: Option<Algorithm>,
    /// The published key set, `{"keys": [...]}` as JSON (public keys only).
    pub jwks: Arc<[u8]>,
    /// [`jwks_version`] of `jwks`: what caches of this key set are keyed by.
    pub version: Arc<str>,
    /// The earliest scheduled transition, if any.
    pub next_change: Option<i64>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("verify_keys", &self.verify_keys)
            .field("signers", &self.signers)
            .field("primary", &self.primary)
            .field("version", &self.version)
            .field("next_change", &self.next_change)
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// The key access tokens are signed with now.
    pub(crate) fn primary(&self) -> Option<&Arc<ActiveKey>> {
        self.primary.and_then(|alg| self.signers.get(&alg))
    }
}

#[cfg(test)]
mod tests {
    use super::jwks_version;

    #[test]
    fn version_is_base64url_of_a_sha256_prefix() {
        // base64url(SHA-256(`{"keys":[]}`)[..16]), computed independently.
        assert_eq!(jwks_version(br#"{"keys":[]}"#), "ljjRGRRzXQByAC3U1nxzSg");
        let v = jwks_version(b"any document");
        assert_eq!(v.len(), 22);
        assert!(v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(v, jwks_version(b"any document "));
    }
}
