//! # tessera-jose
//!
//! The strict, pure core of Tessera: base64url (RFC 7515 §2), JWS compact
//! signing and verification, JWK and JWKS (RFC 7517/7518, RFC 8037),
//! thumbprints (RFC 7638), typed claims and their validation (RFC 7519),
//! and a token lint. No I/O, no async.
//!
//! Every key is bound to exactly one [`Algorithm`] when it is created or
//! imported; a token's header can only agree with that binding, never
//! choose it. `none` does not exist here.
//!
//! ```
//! use tessera_jose::{verify_at, Algorithm, KeySet, Signer, SigningKey, UnixTime, Validation};
//!
//! let key = SigningKey::generate(Algorithm::ES256)?;
//! let kid = key.thumbprint();
//! let key = key.with_kid(kid);
//! let keys = KeySet::new(vec![key.verifying_key()?]);
//! let signer = Signer::new(key);
//!
//! let now = UnixTime::now().secs();
//! let token = signer.sign(&serde_json::json!({
//!     "iss": "https://auth.example.com", "aud": "orders-api", "sub": "user_1",
//!     "iat": now, "exp": now + 900,
//! }))?;
//!
//! let policy = Validation::new().issuer("https://auth.example.com").audience("orders-api");
//! let verified = verify_at::<serde_json::Value>(&token, &keys, &policy, UnixTime::now())?;
//! assert_eq!(verified.registered().sub.as_deref(), Some("user_1"));
//!
//! // A single changed character fails verification with a stable code.
//! let mut tampered = token.clone().into_bytes();
//! let at = token.find('.').unwrap() + 2;
//! tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
//! let err = verify_at::<serde_json::Value>(std::str::from_utf8(&tampered).unwrap(), &keys, &policy, UnixTime::now()).unwrap_err();
//! assert!(matches!(err.code(), "bad_signature" | "malformed"));
//! # Ok::<(), tessera_jose::Error>(())
//! ```
#![warn(missing_docs)]

mod alg;
pub mod b64;
mod claims;
mod error;
mod json;
mod jws;
mod key;
mod keyset;
pub mod lint;
mod validation;

pub use alg::{Algorithm, Curve, Family};
pub use claims::{Audience, Claim, RegisteredClaims, UnixTime};
pub use error::{Error, ErrorKind, Result};
pub use json::MAX_DEPTH;
pub use jws::{
    check_claims_json, decode_unverified, verify, verify_at, Header, Signer, Unverified, Verified,
};
pub use key::{Jwk, JwkSet, PublicJwk, SigningKey, VerifyingKey, MIN_RSA_BITS};
pub use keyset::KeySet;
pub use validation::{Validation, DEFAULT_LEEWAY, DEFAULT_MAX_SIZE};
