//! A set of verifying keys and the rule that picks one for a token.

use crate::alg::Algorithm;
use crate::error::{Error, ErrorKind, Result};
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
}

impl KeySet {
    /// A key set of these keys.
    pub fn new(keys: Vec<VerifyingKey>) -> Self {
        Self { keys }
    }

    /// Imports a JWK Set for verification.
    ///
    /// Keys whose `use`/`key_ops` forbid verification are skipped (RFC 7517
    /// §4.2-4.3). A key is bound to its own `alg`; when `allowed` is not
    /// empty, that `alg` must be in it or the key is skipped. A key without
    /// `alg` is bound to each algorithm of `allowed` that fits its type and
    /// curve, and is an error when `allowed` is empty.
    ///
    /// # Errors
    /// `invalid_key`/`weak_key` for a key that cannot be used.
    pub fn from_jwks(set: &JwkSet, allowed: &[Algorithm]) -> Result<Self> {
        let mut keys = Vec::new();
        for jwk in set.keys.iter().filter(|j| j.allows_verification()) {
            match jwk.alg_name() {
                Some(name) => {
                    let own = Algorithm::from_name(name);
                    if allowed.is_empty() || own.is_some_and(|a| allowed.contains(&a)) {
                        keys.push(jwk.to_verifying_key(None)?);
                    }
                }
                None if allowed.is_empty() => {
                    return Err(Error::invalid_key(format!(
                        "JWK{} has no \"alg\"; name the algorithms to accept",
                        jwk.kid()
                            .map(|k| format!(" {:?}", crate::alg::truncate(k)))
                            .unwrap_or_default()
                    )))
                }
                None => {
                    for &alg in allowed.iter().filter(|&&a| jwk.fits(a)) {
                        keys.push(jwk.to_verifying_key(Some(alg))?);
                    }
                }
            }
        }
        Ok(Self { keys })
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
