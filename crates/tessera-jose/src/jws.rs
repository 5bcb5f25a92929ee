//! JWS compact serialization (RFC 7515 §7.1): signing and verification.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::alg::{truncate, Algorithm};
use crate::b64;
use crate::claims::{RegisteredClaims, UnixTime, REGISTERED_NAMES};
use crate::error::{Error, ErrorKind, Result};
use crate::json::{self, raw_str};
use crate::key::SigningKey;
use crate::keyset::KeySet;
use crate::validation::Validation;

/// Signs claims with one key and a fixed header (`alg` and `kid` from the
/// key, `typ` as chosen). The header is encoded once, when the signer is
/// built.
///
/// ```
/// use tessera_jose::{Algorithm, Signer, SigningKey};
/// let key = SigningKey::generate(Algorithm::ES256)?.with_kid("k1");
/// let signer = Signer::new(key).typ("at+jwt");
/// let token = signer.sign(&serde_json::json!({"sub": "user_1", "exp": 4102444800u64}))?;
/// assert_eq!(token.split('.').count(), 3);
/// # Ok::<(), tessera_jose::Error>(())
/// ```
#[derive(Debug)]
pub struct Signer {
    key: SigningKey,
    typ: String,
    header: String,
}

impl Signer {
    /// A signer with header `typ: "JWT"`.
    pub fn new(key: SigningKey) -> Self {
        let mut signer = Self {
            key,
            typ: String::new(),
            header: String::new(),
        };
        signer.set_typ("JWT");
        signer
    }

    /// Sets the header `typ` (RFC 9068 access tokens use `at+jwt`).
    #[must_use]
    pub fn typ(mut self, typ: &str) -> Self {
        self.set_typ(typ);
        self
    }

    fn set_typ(&mut self, typ: &str) {
        let mut header = serde_json::Map::new();
        header.insert("alg".into(), self.key.alg().name().into());
        if let Some(kid) = self.key.kid() {
            header.insert("kid".into(), kid.into());
        }
        header.insert("typ".into(), typ.into());
        let json = serde_json::Value::Object(header).to_string();
        self.typ = typ.to_owned();
        self.header = b64::encode(json);
    }

    /// The signing key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// Signs `claims`, which must serialize to a JSON object.
    ///
    /// # Errors
    /// `malformed` when the claims do not serialize to a JSON object;
    /// `crypto_failure` when signing fails.
    pub fn sign<C: Serialize + ?Sized>(&self, claims: &C) -> Result<String> {
        let payload = serde_json::to_vec(claims)
            .map_err(|_| Error::malformed("claims cannot be serialized to JSON"))?;
        if payload.first() != Some(&b'{') {
            return Err(Error::malformed("claims must serialize to a JSON object"));
        }
        let mut token = String::with_capacity(self.header.len() + payload.len() * 4 / 3 + 360);
        token.push_str(&self.header);
        token.push('.');
        b64::encode_into(&payload, &mut token);
        let signature = self.key.sign(token.as_bytes())?;
        token.push('.');
        b64::encode_into(&signature, &mut token);
        Ok(token)
    }
}

/// The parsed, typed JOSE header of a token.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Header {
    /// `alg`.
    pub alg: Algorithm,
    /// `kid`.
    pub kid: Option<String>,
    /// `typ`.
    pub typ: Option<String>,
}

/// A verified token: its header, its registered claims, and the whole
/// payload deserialized as `T`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Verified<T> {
    /// The header.
    pub header: Header,
    /// The registered claims, typed.
    pub registered: RegisteredClaims,
    /// The whole claims set as `T` (registered claims included, if `T` has them).
    pub claims: T,
}

/// A token split into its three parts.
struct Parts<'a> {
    signing_input: &'a str,
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
}

fn split(token: &str, max_size: usize) -> Result<Parts<'_>> {
    if token.len() > max_size {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!("token is {} bytes; the limit is {max_size}", token.len()),
        ));
    }
    let not_compact =
        || Error::malformed("not a JWS compact serialization (three base64url parts)");
    let first = token.find('.').ok_or_else(not_compact)?;
    let second = first + 1 + token[first + 1..].find('.').ok_or_else(not_compact)?;
    let signature = &token[second + 1..];
    if signature.contains('.') {
        return Err(not_compact());
    }
    Ok(Parts {
        signing_input: &token[..second],
        header: &token[..first],
        payload: &token[first + 1..second],
        signature,
    })
}

const HEADER_NAMES: [&str; 5] = ["alg", "kid", "typ", "crit", "b64"];

/// Header parameters registered by RFC 7515 §4.1 (and `zip` of RFC 7516).
const REGISTERED_HEADER_NAMES: [&str; 12] = [
    "alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit", "zip",
];

fn parse_header(bytes: &[u8], validation: Option<&Validation>) -> Result<Header> {
    let mut raw = [None; 5];
    json::scan_object(bytes, &HEADER_NAMES, &mut raw)?;
    let string = |i: usize| -> Result<Option<String>> {
        raw[i]
            .map(|r| {
                raw_str(r).map(|s| s.into_owned()).ok_or_else(|| {
                    Error::malformed(format!("header \"{}\" must be a string", HEADER_NAMES[i]))
                })
            })
            .transpose()
    };
    let alg_name = raw[0]
        .map(|r| raw_str(r).ok_or_else(|| Error::malformed("header \"alg\" must be a string")))
        .transpose()?
        .ok_or_else(|| Error::malformed("header has no \"alg\""))?;
    let alg = Algorithm::from_name(&alg_name).ok_or_else(|| {
        Error::new(
            ErrorKind::AlgNotAllowed,
            format!("algorithm {:?} is not allowed", truncate(&alg_name)),
        )
    })?;
    // RFC 7797: an unencoded payload changes what is signed; refuse it.
    if let Some(b64) = raw[4] {
        if b64 != b"true" {
            return Err(Error::new(
                ErrorKind::UnsupportedCrit,
                "unencoded payloads (\"b64\": false, RFC 7797) are not supported",
            ));
        }
    }
    if let Some(crit) = raw[3] {
        check_crit(crit, bytes, validation)?;
    }
    Ok(Header {
        alg,
        kid: string(1)?,
        typ: string(2)?,
    })
}

/// RFC 7515 §4.1.11: `crit` is a non-empty array of header names, each
/// present in the header; a verifier that does not understand one must reject.
fn check_crit(crit: &[u8], header: &[u8], validation: Option<&Validation>) -> Result<()> {
    let names: Vec<String> = serde_json::from_slice(crit)
        .map_err(|_| Error::malformed("header \"crit\" must be an array of strings"))?;
    if names.is_empty() {
        return Err(Error::malformed("header \"crit\" must not be empty"));
    }
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(Error::malformed("header \"crit\" lists a name twice"));
        }
        // §4.1.11: names defined by the JWS/JWA specifications never go in crit.
        if REGISTERED_HEADER_NAMES.contains(&name.as_str()) {
            return Err(Error::malformed(format!(
                "header \"crit\" lists the registered name {name:?}"
            )));
        }
        if !validation.is_some_and(|v| v.understands(name)) {
            return Err(Error::new(
                ErrorKind::UnsupportedCrit,
                format!(
                    "critical header extension {:?} is not understood",
                    truncate(name)
                ),
            ));
        }
        let mut found = [None];
        json::scan_object(header, &[name.as_str()], &mut found)?;
        if found[0].is_none() {
            return Err(Error::malformed(
                "header \"crit\" names a member that is absent",
            ));
        }
    }
    Ok(())
}

/// Verifies a compact JWS against `keys` under `validation`, at time `now`,
/// and deserializes its claims as `T`.
///
/// Order of checks: size; three parts; header base64url and JSON
/// (duplicates, depth, `alg`, `b64`, `crit`); `typ`; allow-list; key by
/// `kid`, bound to the header's `alg`; signature base64url and signature;
/// payload base64url and JSON (duplicates, depth, claim types); required
/// claims, `exp`, `nbf`, `iss`, `aud`; finally the payload as `T`. The
/// payload is not even decoded before the signature has verified.
///
/// # Errors
/// An error whose kind is the stable code of the first failed check.
pub fn verify_at<T: DeserializeOwned>(
    token: &str,
    keys: &KeySet,
    validation: &Validation,
    now: UnixTime,
) -> Result<Verified<T>> {
    let parts = split(token, validation.max_size_bytes())?;
    let mut buf = Vec::with_capacity(token.len());
    b64::decode_into(parts.header.as_bytes(), &mut buf)?;
    let header = parse_header(&buf, Some(validation))?;
    validation.check_typ(header.typ.as_deref())?;
    validation.check_alg(header.alg)?;
    let key = keys.select(header.kid.as_deref(), header.alg)?;

    buf.clear();
    b64::decode_into(parts.signature.as_bytes(), &mut buf)?;
    key.verify(parts.signing_input.as_bytes(), &buf)?;

    buf.clear();
    b64::decode_into(parts.payload.as_bytes(), &mut buf)?;
    let mut raw = [None; 7];
    json::scan_object(&buf, &REGISTERED_NAMES, &mut raw)?;
    let registered = RegisteredClaims::from_raw(&raw)?;
    validation.check_claims(&registered, now)?;
    let claims = serde_json::from_slice(&buf).map_err(|e| {
        Error::malformed(format!(
            "claims do not have the expected shape ({})",
            e.classify_message()
        ))
    })?;
    Ok(Verified {
        header,
        registered,
        claims,
    })
}

/// [`verify_at`] with the system clock.
///
/// # Errors
/// As [`verify_at`].
pub fn verify<T: DeserializeOwned>(
    token: &str,
    keys: &KeySet,
    validation: &Validation,
) -> Result<Verified<T>> {
    verify_at(token, keys, validation, UnixTime::now())
}

trait ClassifyMessage {
    fn classify_message(&self) -> &'static str;
}

impl ClassifyMessage for serde_json::Error {
    /// A message that never echoes claim values.
    fn classify_message(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Data => "a claim has the wrong type or is missing",
            _ => "invalid JSON",
        }
    }
}

/// A token decoded without verification, for inspection (`tessera token
/// decode`, lint). Never use it to make an access decision.
#[derive(Clone, Debug)]
pub struct Unverified {
    /// The header as JSON.
    pub header: serde_json::Map<String, serde_json::Value>,
    /// The claims as JSON.
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// The typed registered claims.
    pub registered: RegisteredClaims,
    /// Length of the token in bytes.
    pub len: usize,
}

/// Decodes a token without verifying it, with the same structural
/// strictness as verification (size, base64url, duplicates, depth, types).
///
/// # Errors
/// `too_large` or `malformed`.
pub fn decode_unverified(token: &str, max_size: usize) -> Result<Unverified> {
    let parts = split(token, max_size)?;
    let header_bytes = b64::decode(parts.header)?;
    let mut raw_header = [None; 5];
    json::scan_object(&header_bytes, &HEADER_NAMES, &mut raw_header)?;
    b64::decode(parts.signature)?;
    let payload = b64::decode(parts.payload)?;
    let mut raw = [None; 7];
    json::scan_object(&payload, &REGISTERED_NAMES, &mut raw)?;
    let registered = RegisteredClaims::from_raw(&raw)?;
    let invalid = |_| Error::malformed("invalid JSON");
    Ok(Unverified {
        header: serde_json::from_slice(&header_bytes).map_err(invalid)?,
        claims: serde_json::from_slice(&payload).map_err(invalid)?,
        registered,
        len: token.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(json: &str) -> Result<Header> {
        let v = Validation::new()
            .understand_critical("exp")
            .understand_critical("alg");
        parse_header(json.as_bytes(), Some(&v))
    }

    #[test]
    fn crit_must_not_repeat_or_name_registered_parameters() {
        let ok = header(r#"{"alg":"ES256","crit":["exp"],"exp":1}"#).unwrap();
        assert_eq!(ok.alg, Algorithm::ES256);
        for bad in [
            r#"{"alg":"ES256","crit":["exp","exp"],"exp":1}"#,
            r#"{"alg":"ES256","crit":["alg"]}"#,
        ] {
            assert_eq!(
                header(bad).unwrap_err().kind(),
                ErrorKind::Malformed,
                "{bad}"
            );
        }
    }
}
