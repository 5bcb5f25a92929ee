//! A set of verifying keys and the rule that picks one for a token.

use std::sync::OnceLock;

use crate::alg::Algorithm;
use crate::error::{Error, ErrorKind, Result};
use crate::jws::Header;
use crate::key::{JwkSet, VerifyingKey};

/// Verifying keys, each bound to one algorithm.
///
/// The token's `kid` selects keys by id; the token's `alg` must then equal
/// the selected key's binding. The same key material may appear twice,
/// bound to two algorithms (e.g. an RSA key without `alg`, allowed for
/// RS256 and PS256 by the caller).
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
    headers: HeaderCache,
}

/// Parsed headers of tokens that verified, by their base64url text. Every
/// token a key signs carries the same header bytes, so after the first one
/// the header is neither decoded nor parsed again. Lock-free: each slot is
/// written once.
#[derive(Debug, Default)]
struct HeaderCache {
    slots: [OnceLock<(Box<str>, Header)>; HEADER_SLOTS],
}

const HEADER_SLOTS: usize = 8;

impl KeySet {
    /// A key set of these keys.
    pub fn new(keys: Vec<VerifyingKey>) -> Self {
        Self {
            keys,
            headers: HeaderCache::default(),
        }
    }

    /// The parsed header of an earlier verified token with this exact
    /// base64url header text.
    pub(crate) fn cached_header(&self, encoded: &str) -> Option<Header> {
        self.headers
            .slots
            .iter()
            .map_while(OnceLock::get)
            .find(|(text, _)| &**text == encoded)
            .map(|(_, header)| header.clone())
    }

    /// Remembers the parsed header of a verified token, once, while a slot is
    /// free. Slots are never evicted: past eight distinct headers (rotations,
    /// several typ values) newer ones are simply parsed every time.
    pub(crate) fn remember_header(&self, encoded: &str, header: &Header) {
        for slot in &self.headers.slots {
            let held = match slot.get() {
                Some(held) => held,
                // Losing a race to another thread is fine: look at what it wrote.
                None => match slot.set((encoded.into(), header.clone())) {
                    Ok(()) => return,
                    Err(_) => match slot.get() {
                        Some(held) => held,
                        None => return,
                    },
                },
            };
            if &*held.0 == encoded {
                return;
            }
        }
    }

    /// Imports a JWK Set for verification.
    ///
    /// Keys this crate cannot use are ignored, as RFC 7517 §5 asks: keys
    /// whose `use`/`key_ops` forbid verification (§4.2-4.3), whose `alg` is
    /// not a JWS algorithm implemented here (`RSA-OAEP`, `ES256K`...), or
    /// whose `kty`/`crv` is unsupported. A key is bound to its own `alg`;
    /// when `allowed` is not empty, that `alg` must be in it or the key is
    /// left out. A key without `alg` is bound to each algorithm of `allowed`
    /// that fits its type and curve.
    ///
    /// # Errors
    /// `invalid_key`/`weak_key` for a key meant for us that cannot be used:
    /// bad material, RSA under 2048 bits, a short secret, or no `alg` while
    /// `allowed` is empty (the algorithm must come from somewhere).
    pub fn from_jwks(set: &JwkSet, allowed: &[Algorithm]) -> Result<Self> {
        let mut keys = Vec::new();
        for jwk in set.keys.iter().filter(|j| j.allows_verification()) {
            match jwk.alg_name().map(Algorithm::from_name) {
                Some(None) => {}
                Some(Some(own)) => {
                    if allowed.is_empty() || allowed.contains(&own) {
                        keys.push(jwk.to_verifying_key(None)?);
                    }
                }
                None if !Algorithm::ALL.iter().any(|&a| jwk.fits(a)) => {}
                None if allowed.is_empty() => {
                    return Err(Error::invalid_key(format!(
                        "JWK{} has no \"alg\"; name the algorithms to accept",
                        jwk.kid()
                            .map(|k| format!(" {:?}", crate::alg::truncate(k)))
                            .unwrap_or_default()
                    )))
                }
                None => {
                    // A 32-byte secret without alg, with --alg HS256 --alg HS512:
                    // usable for HS256, too short for HS512. Bind it where it
                    // is strong enough; refuse it only if that is nowhere.
                    let mut weak = None;
                    let before = keys.len();
                    for &alg in allowed.iter().filter(|&&a| jwk.fits(a)) {
                        match jwk.to_verifying_key(Some(alg)) {
                            Ok(key) => keys.push(key),
                            Err(e) if e.kind() == ErrorKind::WeakKey => weak = Some(e),
                            Err(e) => return Err(e),
                        }
                    }
                    if let (true, Some(e)) = (keys.len() == before, weak) {
                        return Err(e);
                    }
                }
            }
        }
        Ok(Self::new(keys))
    }

    /// Adds a key.
    pub fn push(&mut self, key: VerifyingKey) {
        self.keys.push(key);
    }

    /// The keys.
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// True when the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Selects the key for a token with header `kid` and `alg`.
    ///
    /// # Errors
    /// `unknown_kid` when no key has the `kid`, or (without `kid`) when
    /// several keys fit the algorithm; `alg_not_allowed` when the key named
    /// by `kid` is bound to another algorithm, or no key is bound to `alg`.
    pub fn select(&self, kid: Option<&str>, alg: Algorithm) -> Result<&VerifyingKey> {
        match kid {
            Some(kid) => {
                let mut named = self.keys.iter().filter(|k| k.kid() == Some(kid)).peekable();
                let Some(first) = named.peek().map(|k| k.alg()) else {
                    return Err(Error::new(
                        ErrorKind::UnknownKid,
                        format!("no key with kid {:?}", crate::alg::truncate(kid)),
                    ));
                };
                named.find(|k| k.alg() == alg).ok_or_else(|| {
                    Error::new(
                        ErrorKind::AlgNotAllowed,
                        format!(
                            "key {:?} is bound to {first}, the token says {alg}",
                            crate::alg::truncate(kid)
                        ),
                    )
                })
            }
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.alg() == alg);
                match (fitting.next(), fitting.next()) {
                    (Some(key), None) => Ok(key),
                    (None, _) => Err(Error::new(
                        ErrorKind::AlgNotAllowed,
                        format!("no key is bound to {alg}"),
                    )),
                    (Some(_), Some(_)) => Err(Error::new(
                        ErrorKind::UnknownKid,
                        format!("token has no kid and several {alg} keys fit"),
                    )),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(keys: &[serde_json::Value]) -> JwkSet {
        JwkSet::parse(&serde_json::json!({ "keys": keys }).to_string()).unwrap()
    }

    #[test]
    fn foreign_keys_are_ignored_not_fatal() {
        let good = crate::SigningKey::generate(Algorithm::ES256)
            .unwrap()
            .with_kid("good");
        let good = serde_json::to_value(good.public_jwk().unwrap()).unwrap();
        let foreign = [
            serde_json::json!({"kty": "RSA", "alg": "RSA-OAEP-256", "n": "AQAB", "e": "AQAB"}),
            serde_json::json!({"kty": "EC", "crv": "secp256k1", "alg": "ES256K", "x": "AA", "y": "AA"}),
            serde_json::json!({"kty": "OKP", "crv": "X25519", "x": "AA"}),
            serde_json::json!({"kty": "PQ", "kid": "future"}),
        ];
        let mut all = foreign.to_vec();
        all.push(good);
        let keys = KeySet::from_jwks(&set(&all), &[]).unwrap();
        assert_eq!(keys.keys().len(), 1);
        assert_eq!(keys.keys()[0].kid(), Some("good"));
    }

    #[test]
    fn broken_or_weak_keys_meant_for_us_are_errors() {
        let weak = serde_json::json!({"kty": "RSA", "alg": "RS256", "n": crate::b64::encode([0xC5u8; 128]), "e": "AQAB"});
        assert_eq!(
            KeySet::from_jwks(&set(&[weak]), &[]).unwrap_err().kind(),
            ErrorKind::WeakKey
        );
        let no_alg = serde_json::json!({"kty": "oct", "k": crate::b64::encode([1u8; 32])});
        assert_eq!(
            KeySet::from_jwks(&set(std::slice::from_ref(&no_alg)), &[])
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidKey
        );
        let bound = KeySet::from_jwks(
            &set(std::slice::from_ref(&no_alg)),
            &[Algorithm::HS256, Algorithm::ES256],
        )
        .unwrap();
        assert_eq!(bound.keys().len(), 1);
        assert_eq!(bound.keys()[0].alg(), Algorithm::HS256);
        // Too short for HS512 but fine for HS256: bound to HS256 only.
        let both = KeySet::from_jwks(
            &set(std::slice::from_ref(&no_alg)),
            &[Algorithm::HS256, Algorithm::HS512],
        )
        .unwrap();
        assert_eq!(
            both.keys().iter().map(|k| k.alg()).collect::<Vec<_>>(),
            [Algorithm::HS256]
        );
        // Too short for everything asked: refused.
        assert_eq!(
            KeySet::from_jwks(&set(&[no_alg]), &[Algorithm::HS384, Algorithm::HS512])
                .unwrap_err()
                .kind(),
            ErrorKind::WeakKey
        );
    }
}
