//! JSON Web Keys (RFC 7517, RFC 7518 §6, RFC 8037) and thumbprints (RFC 7638).

use std::fmt;

use aws_lc_rs::signature as sig;
use aws_lc_rs::{hmac, rsa};
use serde::{Deserialize, Deserializer, Serialize};
use zeroize::Zeroizing;

use super::{
    check_rsa_bits, check_secret, ecdsa_signing, hmac_algorithm, mismatch, uncompressed_point,
    Private, PublicParams,
};
use super::{SigningKey, VerifyingKey};
use crate::alg::{Algorithm, Curve, Family};
use crate::b64;
use crate::error::{Error, ErrorKind, Result};

/// A secret JWK member: zeroized on drop, never printed.
struct Secret(Zeroizing<String>);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d).map(|s| Self(Zeroizing::new(s)))
    }
}

impl Secret {
    fn bytes(&self, name: &str) -> Result<Zeroizing<Vec<u8>>> {
        b64::decode(self.0.as_bytes())
            .map(Zeroizing::new)
            .map_err(|_| {
                Error::invalid_key(format!("JWK member \"{name}\" is not valid base64url"))
            })
    }
}

/// A parsed JSON Web Key, public or private, not yet bound to an algorithm.
///
/// `Debug` shows the public members only.
#[derive(Deserialize)]
pub struct Jwk {
    kty: String,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
    kid: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
    d: Option<Secret>,
    p: Option<Secret>,
    q: Option<Secret>,
    dp: Option<Secret>,
    dq: Option<Secret>,
    qi: Option<Secret>,
    k: Option<Secret>,
    oth: Option<serde::de::IgnoredAny>,
}

impl fmt::Debug for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwk")
            .field("kty", &self.kty)
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("use", &self.use_)
            .field("private", &self.is_private())
            .finish_non_exhaustive()
    }
}

/// A JWK Set (`{"keys":[...]}`).
#[derive(Debug, Deserialize)]
pub struct JwkSet {
    /// The keys, in document order.
    pub keys: Vec<Jwk>,
}

impl JwkSet {
    /// Parses a JWK Set. A single JWK object is accepted as a set of one.
    ///
    /// # Errors
    /// `invalid_key` when the document is not a JWK Set or a JWK.
    pub fn parse(json: &str) -> Result<Self> {
        let mut found = [None];
        crate::json::scan_object(json, &["keys"], &mut found)
            .map_err(|e| Error::invalid_key(format!("JWKS is not valid JSON: {}", e.message())))?;
        if found[0].is_some() {
            serde_json::from_str(json)
                .map_err(|e| Error::invalid_key(format!("invalid JWKS: {}", describe(&e))))
        } else {
            Ok(Self {
                keys: vec![Jwk::parse(json)?],
            })
        }
    }
}

/// serde_json's message without the echoed input value (which may be secret).
fn describe(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.split_once(": ") {
        Some((head, _)) if head.starts_with("invalid type") => head.to_owned(),
        _ => text,
    }
}

fn decode_member(value: &Option<String>, name: &str) -> Result<Vec<u8>> {
    let text = value
        .as_deref()
        .ok_or_else(|| Error::invalid_key(format!("JWK lacks member \"{name}\"")))?;
    b64::decode(text)
        .map_err(|_| Error::invalid_key(format!("JWK member \"{name}\" is not valid base64url")))
}

fn secret_member(value: &Option<Secret>, name: &str) -> Result<Zeroizing<Vec<u8>>> {
    value
        .as_ref()
        .ok_or_else(|| Error::invalid_key(format!("private JWK lacks member \"{name}\"")))?
        .bytes(name)
}

impl Jwk {
    /// Parses one JWK from JSON.
    ///
    /// # Errors
    /// `invalid_key` when the JSON is not a JWK (duplicate members included).
    pub fn parse(json: &str) -> Result<Self> {
        crate::json::scan_object(json, &[], &mut [])
            .map_err(|e| Error::invalid_key(format!("JWK is not valid JSON: {}", e.message())))?;
        serde_json::from_str(json)
            .map_err(|e| Error::invalid_key(format!("invalid JWK: {}", describe(&e))))
    }

    /// The `kty` member.
    pub fn kty(&self) -> &str {
        &self.kty
    }

    /// The `kid` member.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The `alg` member, as written.
    pub fn alg_name(&self) -> Option<&str> {
        self.alg.as_deref()
    }

    /// True when the JWK carries private members (or is a symmetric key).
    pub fn is_private(&self) -> bool {
        self.d.is_some() || self.k.is_some()
    }

    /// True when `use` and `key_ops` allow signature verification
    /// (RFC 7517 §4.2, §4.3): `use` absent or `"sig"`, `key_ops` absent or
    /// containing `"verify"`.
    pub fn allows_verification(&self) -> bool {
        self.allows("verify")
    }

    /// True when `use` and `key_ops` allow signing.
    pub fn allows_signing(&self) -> bool {
        self.allows("sign")
    }

    fn allows(&self, op: &str) -> bool {
        self.use_.as_deref().is_none_or(|u| u == "sig")
            && self
                .key_ops
                .as_ref()
                .is_none_or(|ops| ops.iter().any(|o| o == op))
    }

    /// The algorithm a key must be bound to: the JWK's own `alg` and the
    /// caller's choice must agree; at least one must be given.
    fn bind(&self, requested: Option<Algorithm>) -> Result<Algorithm> {
        let own = match self.alg.as_deref() {
            None => None,
            Some(name) => Some(Algorithm::from_name(name).ok_or_else(|| {
                Error::invalid_key(format!(
                    "JWK alg {:?} is not supported",
                    crate::alg::truncate(name)
                ))
            })?),
        };
        let alg = match (own, requested) {
            (Some(a), Some(b)) if a != b => {
                return Err(Error::new(
                    ErrorKind::AlgNotAllowed,
                    format!("key is for {a}, not {b}"),
                ))
            }
            (Some(a), _) | (None, Some(a)) => a,
            (None, None) => {
                return Err(Error::invalid_key(format!(
                    "JWK{} has no \"alg\"; name the algorithm to use it with",
                    self.kid
                        .as_deref()
                        .map(|k| format!(" {k:?}"))
                        .unwrap_or_default()
                )))
            }
        };
        self.check_family(alg)?;
        Ok(alg)
    }

    /// Checks that kty (and crv) fit `alg`.
    fn check_family(&self, alg: Algorithm) -> Result<()> {
        let fits = match alg.family() {
            Family::Hmac => self.kty == "oct",
            Family::Rsa => self.kty == "RSA",
            Family::Ec(c) => self.kty == "EC" && self.crv.as_deref() == Some(c.name()),
            Family::Ed25519 => self.kty == "OKP" && self.crv.as_deref() == Some("Ed25519"),
        };
        if fits {
            Ok(())
        } else {
            Err(mismatch(alg))
        }
    }

    /// True when this key's type and curve fit `alg`.
    pub fn fits(&self, alg: Algorithm) -> bool {
        self.check_family(alg).is_ok()
    }

    fn public_params(&self) -> Result<PublicParams> {
        match self.kty.as_str() {
            "RSA" => {
                if self.oth.is_some() {
                    return Err(Error::invalid_key("multi-prime RSA keys are not supported"));
                }
                let n = decode_member(&self.n, "n")?;
                let e = decode_member(&self.e, "e")?;
                if n.first() == Some(&0) || e.first() == Some(&0) || e.is_empty() {
                    return Err(Error::invalid_key(
                        "RSA n and e must have no leading zero bytes",
                    ));
                }
                Ok(PublicParams::Rsa { n, e })
            }
            "EC" => {
                let curve = self
                    .crv
                    .as_deref()
                    .and_then(Curve::from_name)
                    .ok_or_else(|| Error::invalid_key("EC JWK needs crv P-256, P-384 or P-521"))?;
                let x = decode_member(&self.x, "x")?;
                let y = decode_member(&self.y, "y")?;
                // RFC 7518 §6.2.1.2: coordinates are full length.
                if x.len() != curve.coordinate_len() || y.len() != curve.coordinate_len() {
                    return Err(Error::invalid_key(format!(
                        "{} coordinates must be {} bytes",
                        curve.name(),
                        curve.coordinate_len()
                    )));
                }
                Ok(PublicParams::Ec { curve, x, y })
            }
            "OKP" => {
                if self.crv.as_deref() != Some("Ed25519") {
                    return Err(Error::invalid_key("OKP JWK needs crv Ed25519"));
                }
                Ok(PublicParams::Ed25519 {
                    x: decode_member(&self.x, "x")?,
                })
            }
            "oct" => Err(Error::invalid_key("an \"oct\" key has no public part")),
            other => Err(Error::invalid_key(format!(
                "unsupported kty {:?}",
                crate::alg::truncate(other)
            ))),
        }
    }

    /// Binds this JWK to an algorithm for verification. Works on public and
    /// private JWKs (only the public members are used; for `oct`, `k`).
    ///
    /// # Errors
    /// `alg_not_allowed` when `alg` differs from the JWK's own `alg`;
    /// `invalid_key` when neither names one, or the key does not fit it;
    /// `weak_key` for short secrets and small RSA moduli.
    pub fn to_verifying_key(&self, alg: Option<Algorithm>) -> Result<VerifyingKey> {
        let alg = self.bind(alg)?;
        let key = if alg.is_symmetric() {
            VerifyingKey::from_secret(alg, &secret_member(&self.k, "k")?)?
        } else {
            VerifyingKey::from_params(alg, self.public_params()?)?
        };
        Ok(match &self.kid {
            Some(kid) => key.with_kid(kid.clone()),
            None => key,
        })
    }

    /// Binds this private JWK to an algorithm for signing.
    ///
    /// # Errors
    /// As [`Jwk::to_verifying_key`], and `invalid_key` for a public JWK.
    pub fn to_signing_key(&self, alg: Option<Algorithm>) -> Result<SigningKey> {
        let alg = self.bind(alg)?;
        if !self.is_private() {
            return Err(Error::invalid_key(
                "JWK has no private members; it cannot sign",
            ));
        }
        let material = match (alg.family(), self.public_params()) {
            (Family::Hmac, _) => {
                let k = secret_member(&self.k, "k")?;
                check_secret(alg, &k)?;
                Private::Hmac {
                    key: Box::new(hmac::Key::new(hmac_algorithm(alg), &k)),
                    secret: k,
                }
            }
            (Family::Rsa, Ok(PublicParams::Rsa { n, e })) => {
                check_rsa_bits(&n)?;
                let (d, p, q) = (
                    secret_member(&self.d, "d")?,
                    secret_member(&self.p, "p")?,
                    secret_member(&self.q, "q")?,
                );
                let (dp, dq, qi) = (
                    secret_member(&self.dp, "dp")?,
                    secret_member(&self.dq, "dq")?,
                    secret_member(&self.qi, "qi")?,
                );
                let components = rsa::KeyPairComponents {
                    public_key: rsa::PublicKeyComponents {
                        n: n.as_slice(),
                        e: e.as_slice(),
                    },
                    d: d.as_slice(),
                    p: p.as_slice(),
                    q: q.as_slice(),
                    dP: dp.as_slice(),
                    dQ: dq.as_slice(),
                    qInv: qi.as_slice(),
                };
                Private::Rsa(
                    rsa::KeyPair::from_components(&components)
                        .map_err(|_| Error::invalid_key("inconsistent RSA private key"))?,
                )
            }
            (Family::Ec(curve), Ok(PublicParams::Ec { x, y, .. })) => {
                let d = secret_member(&self.d, "d")?;
                if d.len() != curve.coordinate_len() {
                    return Err(Error::invalid_key("EC private key d has the wrong length"));
                }
                let point = uncompressed_point(&x, &y);
                Private::Ec(
                    sig::EcdsaKeyPair::from_private_key_and_public_key(
                        ecdsa_signing(curve),
                        &d,
                        &point,
                    )
                    .map_err(|_| Error::invalid_key("inconsistent EC private key"))?,
                )
            }
            (Family::Ed25519, Ok(PublicParams::Ed25519 { x })) => {
                let d = secret_member(&self.d, "d")?;
                Private::Ed(
                    sig::Ed25519KeyPair::from_seed_and_public_key(&d, &x)
                        .map_err(|_| Error::invalid_key("inconsistent Ed25519 private key"))?,
                )
            }
            (_, Err(e)) => return Err(e),
            _ => return Err(mismatch(alg)),
        };
        Ok(SigningKey {
            alg,
            kid: self.kid.clone(),
            material,
        })
    }

    /// The public members of this key as a [`PublicJwk`], keeping its
    /// `kid` and `alg`. The key material is checked: when the JWK names an
    /// `alg`, it is bound to it exactly as for verification.
    ///
    /// # Errors
    /// `invalid_key` for an `oct` key (it has no public part) or invalid
    /// members; `weak_key` for RSA under 2048 bits.
    pub fn to_public(&self) -> Result<PublicJwk> {
        let params = self.public_params()?;
        let alg = match self.alg.as_deref() {
            Some(_) => Some(self.bind(None)?),
            None => None,
        };
        // Check the material whether or not the JWK names its algorithm: a
        // broken key published here would break every verifier that loads it.
        let check_as = alg.unwrap_or(match &params {
            PublicParams::Rsa { .. } => Algorithm::RS256,
            PublicParams::Ec {
                curve: Curve::P256, ..
            } => Algorithm::ES256,
            PublicParams::Ec {
                curve: Curve::P384, ..
            } => Algorithm::ES384,
            PublicParams::Ec {
                curve: Curve::P521, ..
            } => Algorithm::ES512,
            PublicParams::Ed25519 { .. } => Algorithm::EdDSA,
        });
        VerifyingKey::from_params(check_as, params.clone())?;
        let mut jwk = PublicJwk::new(&params, alg.unwrap_or(Algorithm::ES256), self.kid.clone());
        // Keep what the key may be used for exactly as written: an
        // encryption key must not become a signature key by being published.
        jwk.alg = alg.map(Algorithm::name);
        jwk.use_.clone_from(&self.use_);
        jwk.key_ops = self.key_ops.as_ref().map(|ops| {
            let mut public: Vec<String> = Vec::new();
            for op in ops.iter().filter_map(|o| public_op(o)) {
                if !public.iter().any(|p| p == op) {
                    public.push(op.to_owned());
                }
            }
            public
        });
        Ok(jwk)
    }

    /// The RFC 7638 thumbprint of this key.
    ///
    /// # Errors
    /// `invalid_key` when the required members are missing or invalid.
    pub fn thumbprint(&self) -> Result<String> {
        if self.kty == "oct" {
            return Ok(thumbprint_oct(&secret_member(&self.k, "k")?));
        }
        Ok(self.public_params()?.thumbprint())
    }
}

/// The public counterpart of a `key_ops` value (RFC 7517 §4.3): a key that
/// may `sign` publishes a key that may `verify`, and so on; operations with
/// no public counterpart are dropped.
fn public_op(op: &str) -> Option<&'static str> {
    match op {
        "sign" | "verify" => Some("verify"),
        "decrypt" | "encrypt" => Some("encrypt"),
        "unwrapKey" | "wrapKey" => Some("wrapKey"),
        _ => None,
    }
}

pub(crate) fn thumbprint_oct(secret: &[u8]) -> String {
    // Sized up front so the secret is never left behind by a reallocation.
    let mut canonical = Zeroizing::new(String::with_capacity(secret.len() * 4 / 3 + 32));
    canonical.push_str(r#"{"k":""#);
    b64::encode_into(secret, &mut canonical);
    canonical.push_str(r#"","kty":"oct"}"#);
    b64::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        canonical.as_bytes(),
    ))
}

/// The public members of a key, as published in a JWKS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PublicJwk {
    kty: &'static str,
    #[serde(rename = "use", skip_serializing_if = "Option::is_none")]
    use_: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_ops: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alg: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    crv: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    e: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    y: Option<String>,
}

impl PublicJwk {
    pub(crate) fn new(params: &PublicParams, alg: Algorithm, kid: Option<String>) -> Self {
        let mut jwk = Self {
            kty: "",
            use_: Some("sig".to_owned()),
            key_ops: None,
            alg: Some(alg.name()),
            kid,
            crv: None,
            n: None,
            e: None,
            x: None,
            y: None,
        };
        match params {
            PublicParams::Rsa { n, e } => {
                jwk.kty = "RSA";
                jwk.n = Some(b64::encode(n));
                jwk.e = Some(b64::encode(e));
            }
            PublicParams::Ec { curve, x, y } => {
                jwk.kty = "EC";
                jwk.crv = Some(curve.name());
                jwk.x = Some(b64::encode(x));
                jwk.y = Some(b64::encode(y));
            }
            PublicParams::Ed25519 { x } => {
                jwk.kty = "OKP";
                jwk.crv = Some("Ed25519");
                jwk.x = Some(b64::encode(x));
            }
        }
        jwk
    }

    /// The `kid` member.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_thumbprint_example() {
        // RFC 7638 §3.1
        let jwk = Jwk::parse(
            r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#,
        )
        .unwrap();
        assert_eq!(
            jwk.thumbprint().unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn rejects_duplicate_members_and_bad_json() {
        assert_eq!(
            Jwk::parse(r#"{"kty":"oct","k":"AAAA","k":"BBBB"}"#)
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidKey
        );
        assert!(JwkSet::parse("[").is_err());
        assert!(JwkSet::parse(r#"{"keys":{}}"#).is_err());
    }

    #[test]
    fn debug_of_private_jwk_prints_no_material() {
        let json =
            r#"{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI","alg":"HS256"}"#;
        let jwk = Jwk::parse(json).unwrap();
        let dbg = format!("{jwk:?}");
        assert!(!dbg.contains("c2VjcmV0"), "{dbg}");
        let key = jwk.to_signing_key(None).unwrap();
        assert!(!format!("{key:?}").contains("c2VjcmV0"));
    }

    #[test]
    fn every_algorithm_round_trips_through_private_and_public_jwk() {
        for alg in Algorithm::ALL {
            let key = SigningKey::generate(alg).unwrap().with_kid("k1");
            let json = key.to_private_jwk_json().unwrap();
            let back = Jwk::parse(&json).unwrap().to_signing_key(None).unwrap();
            assert_eq!(back.alg(), alg);
            assert_eq!(back.kid(), Some("k1"));
            assert_eq!(back.thumbprint(), key.thumbprint());
            let msg = b"signing input";
            let signature = back.sign(msg).unwrap();
            key.verifying_key()
                .unwrap()
                .verify(msg, &signature)
                .unwrap();
            if !alg.is_symmetric() {
                let public = serde_json::to_string(&key.public_jwk().unwrap()).unwrap();
                let parsed = Jwk::parse(&public).unwrap();
                assert!(!parsed.is_private());
                assert_eq!(parsed.thumbprint().unwrap(), key.thumbprint());
                let vk = parsed.to_verifying_key(None).unwrap();
                vk.verify(msg, &signature).unwrap();
                assert_eq!(
                    vk.verify(b"other input", &signature).unwrap_err().kind(),
                    ErrorKind::BadSignature
                );
                assert!(parsed.to_signing_key(None).is_err());
            }
        }
    }

    #[test]
    fn binding_refuses_mismatched_alg_and_family() {
        let ec = SigningKey::generate(Algorithm::ES256).unwrap();
        let public = serde_json::to_string(&ec.public_jwk().unwrap()).unwrap();
        let jwk = Jwk::parse(&public).unwrap();
        assert_eq!(
            jwk.to_verifying_key(Some(Algorithm::ES384))
                .unwrap_err()
                .kind(),
            ErrorKind::AlgNotAllowed
        );
        let no_alg = public.replace(r#""alg":"ES256","#, "");
        let jwk = Jwk::parse(&no_alg).unwrap();
        assert_eq!(
            jwk.to_verifying_key(None).unwrap_err().kind(),
            ErrorKind::InvalidKey
        );
        assert_eq!(
            jwk.to_verifying_key(Some(Algorithm::HS256))
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidKey
        );
        assert_eq!(
            jwk.to_verifying_key(Some(Algorithm::RS256))
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidKey
        );
        jwk.to_verifying_key(Some(Algorithm::ES256)).unwrap();
    }

    #[test]
    fn weak_keys_are_refused() {
        // 31-byte HMAC secret for HS256, 47 for HS384.
        let short = b64::encode([7u8; 31]);
        let jwk = Jwk::parse(&format!(r#"{{"kty":"oct","k":"{short}"}}"#)).unwrap();
        assert_eq!(
            jwk.to_verifying_key(Some(Algorithm::HS256))
                .unwrap_err()
                .kind(),
            ErrorKind::WeakKey
        );
        assert_eq!(
            SigningKey::from_secret(Algorithm::HS384, &[1u8; 47])
                .unwrap_err()
                .kind(),
            ErrorKind::WeakKey
        );
        SigningKey::from_secret(Algorithm::HS384, &[1u8; 48]).unwrap();
        // A 1024-bit RSA modulus.
        let n = b64::encode([0xC5u8; 128]);
        let jwk = Jwk::parse(&format!(
            r#"{{"kty":"RSA","n":"{n}","e":"AQAB","alg":"RS256"}}"#
        ))
        .unwrap();
        assert_eq!(
            jwk.to_verifying_key(None).unwrap_err().kind(),
            ErrorKind::WeakKey
        );
    }

    #[test]
    fn rsa_exponents_no_key_has_are_refused() {
        let k = SigningKey::generate(Algorithm::RS256).unwrap();
        let public = serde_json::to_value(k.public_jwk().unwrap()).unwrap();
        let n = public["n"].as_str().unwrap();
        // 1, 2 and 65536 (even); 3 and 65537 are fine.
        for (e, ok) in [
            ("AQ", false),
            ("Ag", false),
            ("AQAA", false),
            ("Aw", true),
            ("AQAB", true),
        ] {
            let jwk = Jwk::parse(&format!(
                r#"{{"kty":"RSA","n":"{n}","e":"{e}","alg":"RS256"}}"#
            ))
            .unwrap();
            match jwk.to_verifying_key(None) {
                Ok(_) => assert!(ok, "e={e} accepted"),
                Err(err) => {
                    assert!(!ok, "e={e}: {err}");
                    assert_eq!(err.kind(), ErrorKind::InvalidKey, "e={e}");
                }
            }
        }
    }

    #[test]
    fn invalid_ec_point_is_refused() {
        let zero = b64::encode([0u8; 32]);
        let jwk = Jwk::parse(&format!(
            r#"{{"kty":"EC","crv":"P-256","x":"{zero}","y":"{zero}","alg":"ES256"}}"#
        ))
        .unwrap();
        assert_eq!(
            jwk.to_verifying_key(None).unwrap_err().kind(),
            ErrorKind::InvalidKey
        );
    }

    #[test]
    fn to_public_refuses_broken_keys_without_alg() {
        let zero = b64::encode([0u8; 32]);
        for json in [
            format!(r#"{{"kty":"EC","crv":"P-256","x":"{zero}","y":"{zero}"}}"#),
            r#"{"kty":"OKP","crv":"Ed25519","x":"AAAA"}"#.to_owned(),
            format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{zero}"}}"#),
        ] {
            let err = Jwk::parse(&json).unwrap().to_public().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidKey, "{json}");
        }
    }

    #[test]
    fn to_public_keeps_use_and_maps_key_ops_to_public_operations() {
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let private: serde_json::Value =
            serde_json::from_str(&key.to_private_jwk_json().unwrap()).unwrap();
        let with = |extra: serde_json::Value| {
            let mut v = private.clone();
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            let public = Jwk::parse(&v.to_string()).unwrap().to_public().unwrap();
            serde_json::to_value(public).unwrap()
        };
        let enc = with(serde_json::json!({"use": "enc"}));
        assert_eq!(enc["use"], "enc");
        assert!(enc.get("d").is_none());
        let ops = with(serde_json::json!({"key_ops": ["sign", "verify", "deriveKey"]}));
        assert_eq!(ops["key_ops"], serde_json::json!(["verify"]));
        let decrypt = with(serde_json::json!({"key_ops": ["decrypt"]}));
        assert_eq!(decrypt["key_ops"], serde_json::json!(["encrypt"]));
        assert!(!Jwk::parse(&decrypt.to_string())
            .unwrap()
            .allows_verification());
    }

    #[test]
    fn use_and_key_ops_gate_verification() {
        let base = r#""kty":"oct","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA""#;
        let allowed = |extra: &str| {
            Jwk::parse(&format!("{{{base}{extra}}}"))
                .unwrap()
                .allows_verification()
        };
        assert!(allowed(""));
        assert!(allowed(r#","use":"sig""#));
        assert!(!allowed(r#","use":"enc""#));
        assert!(allowed(r#","key_ops":["sign","verify"]"#));
        assert!(!allowed(r#","key_ops":["sign"]"#));
    }
}
