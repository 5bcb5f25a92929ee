//! The verified-token cache: real clients resend the same token for its
//! whole life, and an ES256 check costs far more than an HTTP request.
//!
//! Keyed by the SHA-256 of the token (the token itself is not kept), an
//! entry never outlives the token's `exp` and is valid only for the key-set
//! generation it was verified under, so a key removed from the JWKS (a
//! compromise) takes its tokens' entries with it at the next refresh.
//! (The revocation deny-list, when it comes, is consulted on every hit.)

use crate::expiring::ExpiringCache;
use crate::layer::VerifiedToken;

/// Token digest -> the verified token, until its `exp`, tagged with the
/// key-set generation it was verified under.
pub(crate) type TokenCache = ExpiringCache<[u8; 32], VerifiedToken, u64>;
