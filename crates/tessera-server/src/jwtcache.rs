//! Signatures of this issuer's own JWTs, checked once: introspection sees
//! the same token many times. An entry holds the verified claims until the
//! token's `exp` and only for the key set it was verified under
//! (`KeyRing::version`, the JWKS ETag without its quotes), so a compromised
//! key's tokens are checked again, and fail, once it is gone. Revocation is not cached here: callers check the deny-list on
//! every use.

use std::sync::Arc;

use serde_json::Value;
use tessera_verify::expiring::ExpiringCache;

/// A verified token: its claims and the kid of the key that signed it.
#[derive(Debug)]
pub struct OwnJwt {
    /// The verified claims.
    pub claims: Value,
    /// The header's kid.
    pub kid: Option<Arc<str>>,
}

/// The cache, keyed by the token's SHA-256 (base64url), each entry until
/// the token's `exp` and tagged with the version of the key set it was
/// verified under.
pub type VerifiedJwts = ExpiringCache<String, Arc<OwnJwt>, Arc<str>>;
