//! Keys bound to exactly one algorithm.
//!
//! A [`SigningKey`] or [`VerifyingKey`] is created (generated, imported from
//! a JWK or a PEM file) *for one [`Algorithm`]* and can only ever be used
//! with it. That is what makes the classic confusion attacks impossible: an
//! RSA public key cannot be fed to HMAC, because the token header never
//! chooses how a key is used; it can only agree with the key's binding.
//!
//! Key material is parsed once, when the key is loaded; signing and
//! verifying never re-parse it.

mod der;
mod jwk;
mod pem;

use std::fmt;

use aws_lc_rs::encoding::{AsBigEndian, AsDer};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{self as sig, KeyPair as _, ParsedPublicKey};
use aws_lc_rs::{hmac, rsa};
use zeroize::Zeroizing;

pub use jwk::{Jwk, JwkSet, PublicJwk};

use crate::alg::{Algorithm, Curve, Family};
use crate::b64;
use crate::error::{Error, ErrorKind, Result};

/// Minimum RSA modulus size (RFC 7518 §3.3 and §3.5).
pub const MIN_RSA_BITS: usize = 2048;

/// A private key (or HMAC secret) bound to one algorithm.
///
/// `Debug` prints the algorithm and `kid`, never key material; secrets are
/// zeroized when the key is dropped.
pub struct SigningKey {
    alg: Algorithm,
    kid: Option<String>,
    material: Private,
}

enum Private {
    Hmac {
        key: Box<hmac::Key>,
        secret: Zeroizing<Vec<u8>>,
    },
    Rsa(rsa::KeyPair),
    Ec(sig::EcdsaKeyPair),
    Ed(sig::Ed25519KeyPair),
}

/// A public key (or HMAC secret, for symmetric algorithms) bound to one
/// algorithm, ready to verify.
pub struct VerifyingKey {
    alg: Algorithm,
    kid: Option<String>,
    material: Public,
    params: Option<PublicParams>,
}

enum Public {
    Hmac(Box<hmac::Key>),
    Asymmetric(ParsedPublicKey),
}

/// The public members of an asymmetric key, as unsigned big-endian bytes.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum PublicParams {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    Ec {
        curve: Curve,
        x: Vec<u8>,
        y: Vec<u8>,
    },
    Ed25519 {
        x: Vec<u8>,
    },
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn hmac_algorithm(alg: Algorithm) -> hmac::Algorithm {
    match alg {
        Algorithm::HS384 => hmac::HMAC_SHA384,
        Algorithm::HS512 => hmac::HMAC_SHA512,
        _ => hmac::HMAC_SHA256,
    }
}

fn ecdsa_signing(curve: Curve) -> &'static sig::EcdsaSigningAlgorithm {
    match curve {
        Curve::P256 => &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
        Curve::P384 => &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
        Curve::P521 => &sig::ECDSA_P521_SHA512_FIXED_SIGNING,
    }
}

fn verification(alg: Algorithm) -> &'static dyn sig::VerificationAlgorithm {
    match alg {
        Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        // Fixed-size r||s only (RFC 7518 §3.4); a DER signature never verifies.
        Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
        Algorithm::ES512 => &sig::ECDSA_P521_SHA512_FIXED,
        // HMAC never reaches here; EdDSA is the remaining case.
        _ => &sig::ED25519,
    }
}

fn rsa_params(alg: Algorithm) -> &'static rsa::RsaParameters {
    match alg {
        Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        _ => &sig::RSA_PKCS1_2048_8192_SHA256,
    }
}

fn rsa_padding(alg: Algorithm) -> &'static dyn sig::RsaEncoding {
    match alg {
        Algorithm::RS384 => &sig::RSA_PKCS1_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_SHA512,
        _ => &sig::RSA_PKCS1_SHA256,
    }
}

fn check_secret(alg: Algorithm, secret: &[u8]) -> Result<()> {
    match alg.min_secret_len() {
        None => Err(Error::invalid_key(format!(
            "{alg} is not an HMAC algorithm; a shared secret cannot be used with it"
        ))),
        Some(min) if secret.len() < min => Err(Error::new(
            ErrorKind::WeakKey,
            format!(
                "{alg} secret is {} bytes; RFC 7518 §3.2 requires at least {min}",
                secret.len()
            ),
        )),
        Some(_) => Ok(()),
    }
}

fn check_rsa_bits(n: &[u8]) -> Result<()> {
    let bits = der::bit_len(n);
    if bits < MIN_RSA_BITS {
        return Err(Error::new(
            ErrorKind::WeakKey,
            format!("RSA key is {bits} bits; at least {MIN_RSA_BITS} are required"),
        ));
    }
    if bits > 8192 {
        return Err(Error::invalid_key(format!(
            "RSA key is {bits} bits; at most 8192 are supported"
        )));
    }
    Ok(())
}

/// Refuses public exponents no RSA key has (RFC 8017 §3.1: odd, at least
/// 3). The crypto library would reject every signature under such a key
/// anyway; refusing it at import says why, once, instead of
/// `bad_signature` on every token.
fn check_rsa_exponent(e: &[u8]) -> Result<()> {
    let odd = e.last().is_some_and(|b| b & 1 == 1);
    if !odd || e == [1] {
        return Err(Error::invalid_key(
            "RSA public exponent must be odd and at least 3",
        ));
    }
    Ok(())
}

/// Refuses Ed25519 public keys of small order and non-canonical encodings.
///
/// A small-order key (the identity, or a point of order 2, 4 or 8) makes
/// the verification equation hold for signatures anyone can compute, and
/// aws-lc-rs does not refuse them, so they are refused here, at import.
/// The check is on y (the sign bit of x cleared): canonical means y < p,
/// and the small-order points have y in {0, 1, p - 1} or one of the two y
/// of the order-8 points.
fn check_ed25519_point(x: &[u8]) -> Result<()> {
    let Ok(encoded) = <[u8; 32]>::try_from(x) else {
        return Err(Error::invalid_key("Ed25519 public key must be 32 bytes"));
    };
    let mut y = encoded;
    y[31] &= 0x7f;
    // p = 2^255 - 19, little-endian.
    let mut p = [0xffu8; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    let mut p_minus_1 = p;
    p_minus_1[0] = 0xec;
    let mut one = [0u8; 32];
    one[0] = 1;
    const ORDER_8_Y: [[u8; 32]; 2] = [
        [
            0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10,
            0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77,
            0x92, 0xac, 0x03, 0x7a,
        ],
        [
            0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef,
            0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88,
            0x6d, 0x53, 0xfc, 0x05,
        ],
    ];
    // Compare as big-endian numbers: y >= p is not a canonical encoding.
    let non_canonical = y.iter().rev().cmp(p.iter().rev()) != std::cmp::Ordering::Less;
    let small_order = y == [0u8; 32] || y == one || y == p_minus_1 || ORDER_8_Y.contains(&y);
    if non_canonical || small_order {
        return Err(Error::invalid_key(
            "Ed25519 public key is of small order or not canonical; it would accept forged signatures",
        ));
    }
    Ok(())
}

fn rejected(what: &'static str) -> impl Fn(aws_lc_rs::error::KeyRejected) -> Error {
    move |_| Error::invalid_key(what)
}

fn crypto(_: aws_lc_rs::error::Unspecified) -> Error {
    Error::new(ErrorKind::Crypto, "the cryptographic library failed")
}

impl SigningKey {
    /// Generates a new key for `alg` (RSA keys are 2048 bits; HMAC secrets
    /// are as long as the hash output).
    ///
    /// # Errors
    /// `crypto_failure` if the random generator or key generation fails.
    pub fn generate(alg: Algorithm) -> Result<Self> {
        let material = match alg.family() {
            Family::Hmac => {
                let len = alg.min_secret_len().unwrap_or(64);
                let mut secret = Zeroizing::new(vec![0u8; len]);
                SystemRandom::new().fill(&mut secret).map_err(crypto)?;
                return Self::from_secret(alg, &secret);
            }
            Family::Rsa => {
                Private::Rsa(rsa::KeyPair::generate(rsa::KeySize::Rsa2048).map_err(crypto)?)
            }
            Family::Ec(curve) => {
                Private::Ec(sig::EcdsaKeyPair::generate(ecdsa_signing(curve)).map_err(crypto)?)
            }
            Family::Ed25519 => Private::Ed(sig::Ed25519KeyPair::generate().map_err(crypto)?),
        };
        Ok(Self {
            alg,
            kid: None,
            material,
        })
    }

    /// Generates an RSA key of `bits` (2048, 3072 or 4096) for an RS*/PS* algorithm.
    ///
    /// # Errors
    /// `invalid_key` for a non-RSA algorithm or an unsupported size.
    pub fn generate_rsa(alg: Algorithm, bits: usize) -> Result<Self> {
        if alg.family() != Family::Rsa {
            return Err(Error::invalid_key(format!("{alg} does not use RSA keys")));
        }
        let size = match bits {
            2048 => rsa::KeySize::Rsa2048,
            3072 => rsa::KeySize::Rsa3072,
            4096 => rsa::KeySize::Rsa4096,
            _ => {
                return Err(Error::invalid_key(
                    "RSA key size must be 2048, 3072 or 4096",
                ))
            }
        };
        Ok(Self {
            alg,
            kid: None,
            material: Private::Rsa(rsa::KeyPair::generate(size).map_err(crypto)?),
        })
    }

    /// Binds a shared secret to an HMAC algorithm.
    ///
    /// # Errors
    /// `invalid_key` for a non-HMAC algorithm; `weak_key` when the secret is
    /// shorter than the hash output (RFC 7518 §3.2).
    pub fn from_secret(alg: Algorithm, secret: &[u8]) -> Result<Self> {
        check_secret(alg, secret)?;
        Ok(Self {
            alg,
            kid: None,
            material: Private::Hmac {
                key: Box::new(hmac::Key::new(hmac_algorithm(alg), secret)),
                secret: Zeroizing::new(secret.to_vec()),
            },
        })
    }

    /// Imports a PKCS#8 `PRIVATE KEY` PEM document for `alg`.
    ///
    /// # Errors
    /// `invalid_key` when the PEM is not PKCS#8 or the key does not fit `alg`;
    /// `weak_key` for RSA under 2048 bits.
    pub fn from_pkcs8_pem(pem: &str, alg: Algorithm) -> Result<Self> {
        let der = pem::decode(pem, "PRIVATE KEY")?;
        Self::from_pkcs8_der(&der, alg)
    }

    /// Imports a DER PKCS#8 PrivateKeyInfo for `alg`.
    ///
    /// # Errors
    /// As [`SigningKey::from_pkcs8_pem`].
    pub fn from_pkcs8_der(der: &[u8], alg: Algorithm) -> Result<Self> {
        let (kind, inner) = der::pkcs8(der)?;
        let material = match (kind, alg.family()) {
            (der::KeyType::Rsa, Family::Rsa) => {
                check_rsa_bits(der::rsa_private(inner)?.n)?;
                Private::Rsa(
                    rsa::KeyPair::from_pkcs8(der).map_err(rejected("invalid RSA private key"))?,
                )
            }
            (der::KeyType::Ec(c), Family::Ec(want)) if c == want => Private::Ec(
                sig::EcdsaKeyPair::from_pkcs8(ecdsa_signing(c), der)
                    .map_err(rejected("invalid EC private key"))?,
            ),
            (der::KeyType::Ed25519, Family::Ed25519) => Private::Ed(
                sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                    .map_err(rejected("invalid Ed25519 private key"))?,
            ),
            _ => return Err(mismatch(alg)),
        };
        Ok(Self {
            alg,
            kid: None,
            material,
        })
    }

    /// Sets the key id.
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The algorithm this key is bound to.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The key id, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Signs `message` (the JWS signing input) with the bound algorithm.
    ///
    /// # Errors
    /// `crypto_failure` if the cryptographic library fails.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        Ok(match &self.material {
            Private::Hmac { key, .. } => hmac::sign(key, message).as_ref().to_vec(),
            Private::Rsa(kp) => self.rsa_sign(kp, message)?,
            Private::Ec(kp) => kp
                .sign(&SystemRandom::new(), message)
                .map_err(crypto)?
                .as_ref()
                .to_vec(),
            Private::Ed(kp) => kp.sign(message).as_ref().to_vec(),
        })
    }

    /// Signs the JWS signing input in `token` and appends `.` and the
    /// base64url signature to it. Each signature is encoded where the
    /// library left it: aws-lc-rs's `Signature` is a 4.6 KB value, and
    /// moving it around costs more than an HMAC.
    pub(crate) fn append_signature(&self, token: &mut String) -> Result<()> {
        fn push(token: &mut String, signature: &[u8]) {
            token.push('.');
            b64::encode_into(signature, token);
        }
        match &self.material {
            Private::Hmac { key, .. } => {
                let tag = hmac::sign(key, token.as_bytes());
                push(token, tag.as_ref());
            }
            Private::Rsa(kp) => {
                let signature = self.rsa_sign(kp, token.as_bytes())?;
                push(token, &signature);
            }
            Private::Ec(kp) => {
                let signature = kp
                    .sign(&SystemRandom::new(), token.as_bytes())
                    .map_err(crypto)?;
                push(token, signature.as_ref());
            }
            Private::Ed(kp) => {
                let signature = kp.sign(token.as_bytes());
                push(token, signature.as_ref());
            }
        }
        Ok(())
    }

    fn rsa_sign(&self, kp: &rsa::KeyPair, message: &[u8]) -> Result<Vec<u8>> {
        let mut out = vec![0u8; kp.public_modulus_len()];
        kp.sign(
            rsa_padding(self.alg),
            &SystemRandom::new(),
            message,
            &mut out,
        )
        .map_err(crypto)?;
        Ok(out)
    }

    /// The public parameters, or `None` for an HMAC secret.
    pub(crate) fn public_params(&self) -> Option<PublicParams> {
        match &self.material {
            Private::Hmac { .. } => None,
            Private::Rsa(kp) => {
                let (n, e) = der::rsa_public(kp.public_key().as_ref()).ok()?;
                Some(PublicParams::Rsa {
                    n: n.to_vec(),
                    e: e.to_vec(),
                })
            }
            Private::Ec(kp) => {
                let curve = match self.alg.family() {
                    Family::Ec(c) => c,
                    _ => return None,
                };
                PublicParams::from_point(curve, kp.public_key().as_ref())
            }
            Private::Ed(kp) => Some(PublicParams::Ed25519 {
                x: kp.public_key().as_ref().to_vec(),
            }),
        }
    }

    /// The matching verifying key (same algorithm and kid).
    ///
    /// # Errors
    /// `invalid_key` if the public part cannot be parsed (never for keys
    /// created by this crate).
    pub fn verifying_key(&self) -> Result<VerifyingKey> {
        let vk = match (&self.material, self.public_params()) {
            (Private::Hmac { secret, .. }, _) => VerifyingKey::from_secret(self.alg, secret)?,
            (_, Some(params)) => VerifyingKey::from_params(self.alg, params)?,
            (_, None) => return Err(Error::invalid_key("public key unavailable")),
        };
        Ok(match &self.kid {
            Some(kid) => vk.with_kid(kid.clone()),
            None => vk,
        })
    }

    /// The public JWK (`use: "sig"`, `alg`, `kid`).
    ///
    /// # Errors
    /// `invalid_key` for an HMAC secret, which has no public part.
    pub fn public_jwk(&self) -> Result<PublicJwk> {
        let params = self
            .public_params()
            .ok_or_else(|| Error::invalid_key("an \"oct\" (HMAC) key has no public part"))?;
        Ok(PublicJwk::new(&params, self.alg, self.kid.clone()))
    }

    /// The RFC 7638 thumbprint (base64url SHA-256), the default `kid`.
    pub fn thumbprint(&self) -> String {
        match (&self.material, self.public_params()) {
            (Private::Hmac { secret, .. }, _) => jwk::thumbprint_oct(secret),
            (_, Some(params)) => params.thumbprint(),
            (_, None) => String::new(),
        }
    }

    /// The private JWK as JSON (`kty`, `kid`, `alg`, `use`, private members).
    ///
    /// The result is zeroized on drop; write it only to a file of mode 0600.
    ///
    /// # Errors
    /// `crypto_failure` if the key cannot be exported.
    pub fn to_private_jwk_json(&self) -> Result<Zeroizing<String>> {
        let mut members: Vec<(&str, Zeroizing<String>)> = Vec::new();
        let add = |members: &mut Vec<_>, name, bytes: &[u8]| {
            members.push((name, Zeroizing::new(b64::encode(bytes))))
        };
        let kty = match &self.material {
            Private::Hmac { secret, .. } => {
                add(&mut members, "k", secret);
                "oct"
            }
            Private::Rsa(kp) => {
                let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(kp).map_err(crypto)?;
                let (_, inner) = der::pkcs8(pkcs8.as_ref())?;
                let k = der::rsa_private(inner)?;
                for (name, v) in [
                    ("n", k.n),
                    ("e", k.e),
                    ("d", k.d),
                    ("p", k.p),
                    ("q", k.q),
                    ("dp", k.dp),
                    ("dq", k.dq),
                    ("qi", k.qi),
                ] {
                    add(&mut members, name, v);
                }
                "RSA"
            }
            Private::Ec(kp) => {
                let Some(PublicParams::Ec { curve, x, y }) = self.public_params() else {
                    return Err(Error::invalid_key("EC public key unavailable"));
                };
                let d = kp.private_key().as_be_bytes().map_err(crypto)?;
                members.push(("crv", Zeroizing::new(curve.name().to_owned())));
                add(&mut members, "x", &x);
                add(&mut members, "y", &y);
                add(&mut members, "d", d.as_ref());
                "EC"
            }
            Private::Ed(kp) => {
                let seed = kp.seed().map_err(crypto)?;
                let d = seed.as_be_bytes().map_err(crypto)?;
                members.push(("crv", Zeroizing::new("Ed25519".to_owned())));
                add(&mut members, "x", kp.public_key().as_ref());
                add(&mut members, "d", d.as_ref());
                "OKP"
            }
        };
        // Sized up front so no reallocation leaves private members behind.
        let size = 96
            + self.kid.as_ref().map_or(0, |k| k.len() * 6)
            + members
                .iter()
                .map(|(n, v)| n.len() + v.len() + 6)
                .sum::<usize>();
        let mut out = Zeroizing::new(String::with_capacity(size));
        out.push_str("{\"kty\":\"");
        out.push_str(kty);
        out.push('"');
        if let Some(kid) = &self.kid {
            out.push_str(",\"kid\":");
            out.push_str(&serde_json::Value::from(kid.as_str()).to_string());
        }
        out.push_str(",\"alg\":\"");
        out.push_str(self.alg.name());
        out.push_str("\",\"use\":\"sig\"");
        for (name, value) in &members {
            out.push_str(",\"");
            out.push_str(name);
            out.push_str("\":\"");
            out.push_str(value);
            out.push('"');
        }
        out.push('}');
        Ok(out)
    }
}

fn mismatch(alg: Algorithm) -> Error {
    Error::invalid_key(format!("key type does not fit algorithm {alg}"))
}

/// The SEC 1 uncompressed encoding `04 || x || y` of an EC public key.
pub(crate) fn uncompressed_point(x: &[u8], y: &[u8]) -> Vec<u8> {
    let mut point = Vec::with_capacity(1 + x.len() + y.len());
    point.push(4);
    point.extend_from_slice(x);
    point.extend_from_slice(y);
    point
}

impl PublicParams {
    fn from_point(curve: Curve, point: &[u8]) -> Option<Self> {
        let len = curve.coordinate_len();
        match point.split_first() {
            Some((4, xy)) if xy.len() == 2 * len => Some(Self::Ec {
                curve,
                x: xy[..len].to_vec(),
                y: xy[len..].to_vec(),
            }),
            _ => None,
        }
    }

    fn family(&self) -> Family {
        match self {
            Self::Rsa { .. } => Family::Rsa,
            Self::Ec { curve, .. } => Family::Ec(*curve),
            Self::Ed25519 { .. } => Family::Ed25519,
        }
    }

    pub(crate) fn thumbprint(&self) -> String {
        // RFC 7638 §3.2: required members only, lexicographic order, no spaces.
        let canonical = match self {
            Self::Rsa { n, e } => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                b64::encode(e),
                b64::encode(n)
            ),
            Self::Ec { curve, x, y } => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                curve.name(),
                b64::encode(x),
                b64::encode(y)
            ),
            Self::Ed25519 { x } => format!(
                r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                b64::encode(x)
            ),
        };
        b64::encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            canonical.as_bytes(),
        ))
    }
}

impl VerifyingKey {
    /// Binds a shared secret to an HMAC algorithm for verification.
    ///
    /// # Errors
    /// As [`SigningKey::from_secret`].
    pub fn from_secret(alg: Algorithm, secret: &[u8]) -> Result<Self> {
        check_secret(alg, secret)?;
        Ok(Self {
            alg,
            kid: None,
            material: Public::Hmac(Box::new(hmac::Key::new(hmac_algorithm(alg), secret))),
            params: None,
        })
    }

    pub(crate) fn from_params(alg: Algorithm, params: PublicParams) -> Result<Self> {
        if params.family() != alg.family() {
            return Err(mismatch(alg));
        }
        let parsed = match &params {
            PublicParams::Rsa { n, e } => {
                check_rsa_bits(n)?;
                check_rsa_exponent(e)?;
                rsa::PublicKeyComponents {
                    n: n.as_slice(),
                    e: e.as_slice(),
                }
                .to_parsed_public_key(rsa_params(alg))
                .map_err(rejected("invalid RSA public key"))?
            }
            PublicParams::Ec { x, y, .. } => {
                ParsedPublicKey::new(verification(alg), uncompressed_point(x, y))
                    .map_err(rejected("invalid EC public key (not a point on the curve)"))?
            }
            PublicParams::Ed25519 { x } => {
                check_ed25519_point(x)?;
                ParsedPublicKey::new(verification(alg), x)
                    .map_err(rejected("invalid Ed25519 public key"))?
            }
        };
        Ok(Self {
            alg,
            kid: None,
            material: Public::Asymmetric(parsed),
            params: Some(params),
        })
    }

    /// Imports a SubjectPublicKeyInfo `PUBLIC KEY` PEM document for `alg`.
    ///
    /// # Errors
    /// `invalid_key` when the PEM is not SPKI or the key does not fit `alg`;
    /// `weak_key` for RSA under 2048 bits.
    pub fn from_spki_pem(pem: &str, alg: Algorithm) -> Result<Self> {
        let der = pem::decode(pem, "PUBLIC KEY")?;
        Self::from_spki_der(&der, alg)
    }

    /// Imports a DER SubjectPublicKeyInfo for `alg`.
    ///
    /// # Errors
    /// As [`VerifyingKey::from_spki_pem`].
    pub fn from_spki_der(der: &[u8], alg: Algorithm) -> Result<Self> {
        let (kind, bits) = der::spki(der)?;
        let params = match kind {
            der::KeyType::Rsa => {
                let (n, e) = der::rsa_public(bits)?;
                PublicParams::Rsa {
                    n: n.to_vec(),
                    e: e.to_vec(),
                }
            }
            der::KeyType::Ec(curve) => PublicParams::from_point(curve, bits)
                .ok_or_else(|| Error::invalid_key("EC public key must be an uncompressed point"))?,
            der::KeyType::Ed25519 => PublicParams::Ed25519 { x: bits.to_vec() },
        };
        Self::from_params(alg, params)
    }

    /// Sets the key id.
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The algorithm this key is bound to.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The key id, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The public JWK, or `None` for an HMAC secret.
    pub fn public_jwk(&self) -> Option<PublicJwk> {
        self.params
            .as_ref()
            .map(|p| PublicJwk::new(p, self.alg, self.kid.clone()))
    }

    /// The RFC 7638 thumbprint, or `None` for an HMAC secret.
    pub fn thumbprint(&self) -> Option<String> {
        self.params.as_ref().map(PublicParams::thumbprint)
    }

    /// Verifies `signature` over `message` with the bound algorithm.
    ///
    /// # Errors
    /// `bad_signature` when it does not verify.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<()> {
        let ok = match &self.material {
            // Constant-time tag comparison.
            Public::Hmac(key) => hmac::verify(key, message, signature).is_ok(),
            Public::Asymmetric(key) => key.verify_sig(message, signature).is_ok(),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::BadSignature,
                "signature does not verify",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn ed25519_small_order_and_non_canonical_keys_are_refused() {
        // The eight small-order points and their sign-bit variants, and
        // non-canonical encodings of 0 and 1 (libsodium's blocklist).
        for bad in [
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0000000000000000000000000000000000000000000000000000000000000080",
            "0100000000000000000000000000000000000000000000000000000000000000",
            "0100000000000000000000000000000000000000000000000000000000000080",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
            "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
            "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
            "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        ] {
            let params = PublicParams::Ed25519 { x: hex(bad) };
            let err = VerifyingKey::from_params(Algorithm::EdDSA, params).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidKey, "{bad}");
        }
        for _ in 0..32 {
            SigningKey::generate(Algorithm::EdDSA)
                .unwrap()
                .verifying_key()
                .unwrap();
        }
    }

    #[test]
    fn a_small_order_key_in_a_jwks_is_refused() {
        // With this key (the identity) and the signature R = identity, S = 0,
        // a verifier that accepts small-order keys accepts any message.
        let jwks = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","kid":"weak","x":"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}"#;
        let set = crate::JwkSet::parse(jwks).unwrap();
        assert_eq!(
            crate::KeySet::from_jwks(&set, &[]).unwrap_err().kind(),
            ErrorKind::InvalidKey
        );
    }
}
