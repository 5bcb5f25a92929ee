//! The JWS algorithms Tessera implements (RFC 7518 §3, RFC 8037).

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, ErrorKind};

/// A JWS signature algorithm. A key is bound to exactly one of these.
///
/// `none` is deliberately absent: it cannot be named, so it cannot verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum Algorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    ES512,
    EdDSA,
}

/// The key family an algorithm needs (the JWK `kty`, plus the curve).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Shared secret (`kty: oct`).
    Hmac,
    /// RSA (`kty: RSA`), PKCS#1 v1.5 or PSS.
    Rsa,
    /// ECDSA on the named curve (`kty: EC`).
    Ec(Curve),
    /// Ed25519 (`kty: OKP`, `crv: Ed25519`).
    Ed25519,
}

/// The elliptic curves of ES256/ES384/ES512.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    /// NIST P-256 (ES256).
    P256,
    /// NIST P-384 (ES384).
    P384,
    /// NIST P-521 (ES512).
    P521,
}

impl Curve {
    /// The JWK `crv` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
            Self::P521 => "P-521",
        }
    }

    /// Size in bytes of one coordinate (and of `r` and `s`).
    pub fn coordinate_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
            Self::P521 => 66,
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name {
            "P-256" => Some(Self::P256),
            "P-384" => Some(Self::P384),
            "P-521" => Some(Self::P521),
            _ => None,
        }
    }
}

impl Algorithm {
    /// Every algorithm, in a stable order.
    pub const ALL: [Algorithm; 13] = [
        Self::HS256,
        Self::HS384,
        Self::HS512,
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
        Self::ES512,
        Self::EdDSA,
    ];

    /// The `alg` name (RFC 7518 §3.1, RFC 8037 §3.1).
    pub fn name(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::ES512 => "ES512",
            Self::EdDSA => "EdDSA",
        }
    }

    /// Parses an `alg` name exactly (case-sensitive, RFC 7515 §4.1.1).
    /// `none` and every unknown name return `None`. `Ed25519`, the fully
    /// specified name RFC 9864 gives EdDSA over Ed25519 (the only EdDSA
    /// curve here), reads as [`Algorithm::EdDSA`]; signing still writes
    /// `EdDSA`, which every verifier knows.
    pub fn from_name(name: &str) -> Option<Self> {
        if name == "Ed25519" {
            return Some(Self::EdDSA);
        }
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The key family this algorithm needs.
    pub fn family(self) -> Family {
        match self {
            Self::HS256 | Self::HS384 | Self::HS512 => Family::Hmac,
            Self::RS256 | Self::RS384 | Self::RS512 | Self::PS256 | Self::PS384 | Self::PS512 => {
                Family::Rsa
            }
            Self::ES256 => Family::Ec(Curve::P256),
            Self::ES384 => Family::Ec(Curve::P384),
            Self::ES512 => Family::Ec(Curve::P521),
            Self::EdDSA => Family::Ed25519,
        }
    }

    /// True for the HMAC (shared-secret) algorithms.
    pub fn is_symmetric(self) -> bool {
        self.family() == Family::Hmac
    }

    /// Minimum HMAC secret length in bytes (RFC 7518 §3.2: at least the
    /// hash output size), or `None` for asymmetric algorithms.
    pub fn min_secret_len(self) -> Option<usize> {
        match self {
            Self::HS256 => Some(32),
            Self::HS384 => Some(48),
            Self::HS512 => Some(64),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::from_name(s).ok_or_else(|| {
            Error::new(
                ErrorKind::AlgNotAllowed,
                format!("unsupported algorithm {:?}", truncate(s)),
            )
        })
    }
}

/// Shortens attacker-controlled text before it goes into a message.
pub(crate) fn truncate(s: &str) -> &str {
    match s.char_indices().nth(32) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9864_ed25519_is_eddsa() {
        assert_eq!(Algorithm::from_name("Ed25519"), Some(Algorithm::EdDSA));
        assert_eq!(Algorithm::from_name("ed25519"), None);
        assert_eq!(Algorithm::from_name("Ed448"), None);
    }

    #[test]
    fn names_round_trip_and_none_is_never_an_algorithm() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(alg.name()), Some(alg));
        }
        for none in [
            "none", "None", "NONE", "nOnE", "", "hs256", "es256", "EDDSA",
        ] {
            assert_eq!(Algorithm::from_name(none), None, "{none}");
            assert_eq!(
                none.parse::<Algorithm>().unwrap_err().kind(),
                ErrorKind::AlgNotAllowed
            );
        }
    }
}
