//! JWS compact serialization (RFC 7515 §7.1): signing and verification.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::alg::{truncate, Algorithm};
use crate::b64;
use crate::claims::{RegisteredClaims, UnixTime, REGISTERED_NAMES};
use crate::error::{Error, ErrorKind, Result};
use crate::json;
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
    /// The base64url header, encoded once.
    header: String,
}

impl Signer {
    /// A signer with header `typ: "JWT"`.
    pub fn new(key: SigningKey) -> Self {
        let mut signer = Self {
            key,
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
        let mut payload = Vec::with_capacity(512);
        serde_json::to_writer(&mut payload, claims)
            .map_err(|_| Error::malformed("claims cannot be serialized to JSON"))?;
        if payload.first() != Some(&b'{') {
            return Err(Error::malformed("claims must serialize to a JSON object"));
        }
        // One allocation for the whole token: header, payload and the
        // signature's base64url (at most 1 KiB of signature, RSA-8192).
        let mut token = String::with_capacity(self.header.len() + payload.len() * 4 / 3 + 1400);
        token.push_str(&self.header);
        token.push('.');
        b64::encode_into(&payload, &mut token);
        self.key.append_signature(&mut token)?;
        Ok(token)
    }
}

/// The parsed, typed JOSE header of a token.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Header {
    /// `alg`.
    pub alg: Algorithm,
    /// `kid` (shared: every token of a key carries the same one).
    pub kid: Option<Arc<str>>,
    /// `typ`.
    pub typ: Option<Arc<str>>,
}

/// A verified token: its header, the claims deserialized as `T`, and the
/// verified payload from which [`Verified::registered`] reads the typed
/// registered claims without copying.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Verified<T> {
    /// The header.
    pub header: Header,
    /// The whole claims set as `T` (registered claims included, if `T` has them).
    pub claims: T,
    payload: String,
    spans: [Option<(u32, u32)>; 7],
}

impl<T> Verified<T> {
    /// The registered claims, typed, borrowing from the verified payload.
    pub fn registered(&self) -> RegisteredClaims<'_> {
        let raw = self
            .spans
            .map(|s| s.and_then(|(a, b)| self.payload.get(a as usize..b as usize)));
        // They were parsed from these very bytes during verification.
        RegisteredClaims::from_raw(&raw).unwrap_or_default()
    }

    /// The verified claims set as JSON text, exactly as signed.
    pub fn payload_json(&self) -> &str {
        &self.payload
    }
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

/// Parses a header. The flag says whether the parse depended on nothing but
/// the bytes (no `crit`, no `b64`), so that the result may be cached.
fn parse_header(bytes: &[u8], validation: Option<&Validation>) -> Result<(Header, bool)> {
    let text = json::utf8(bytes)?;
    let mut raw = [None; 5];
    json::scan_object(text, &HEADER_NAMES, &mut raw)?;
    let string = |i: usize| {
        json::string_member(raw[i], "header ", HEADER_NAMES[i]).map(|s| s.map(Arc::from))
    };
    let alg_name = json::string_member(raw[0], "header ", "alg")?
        .ok_or_else(|| Error::malformed("header has no \"alg\""))?;
    let alg = Algorithm::from_name(&alg_name).ok_or_else(|| {
        Error::new(
            ErrorKind::AlgNotAllowed,
            format!("algorithm {:?} is not allowed", truncate(&alg_name)),
        )
    })?;
    // RFC 7797: an unencoded payload changes what is signed; refuse it.
    if let Some(b64) = raw[4] {
        if b64 != "true" {
            return Err(Error::new(
                ErrorKind::UnsupportedCrit,
                "unencoded payloads (\"b64\": false, RFC 7797) are not supported",
            ));
        }
    }
    if let Some(crit) = raw[3] {
        check_crit(crit, text, validation)?;
    }
    let header = Header {
        alg,
        kid: string(1)?,
        typ: string(2)?,
    };
    Ok((header, raw[3].is_none() && raw[4].is_none()))
}

/// RFC 7515 §4.1.11: `crit` is a non-empty array of header names, each
/// present in the header; a verifier that does not understand one must reject.
fn check_crit(crit: &str, header: &str, validation: Option<&Validation>) -> Result<()> {
    let names: Vec<String> = serde_json::from_str(crit)
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
    let (header, cacheable) = match keys.cached_header(parts.header) {
        Some(header) => (header, false),
        None => {
            b64::decode_into(parts.header.as_bytes(), &mut buf)?;
            parse_header(&buf, Some(validation))?
        }
    };
    validation.check_typ(header.typ.as_deref())?;
    validation.check_alg(header.alg)?;
    let key = keys.select(header.kid.as_deref(), header.alg)?;

    buf.clear();
    b64::decode_into(parts.signature.as_bytes(), &mut buf)?;
    key.verify(parts.signing_input.as_bytes(), &buf)?;
    if cacheable {
        // Only headers of tokens that carry a valid signature are remembered,
        // so nobody without a key can fill the cache.
        keys.remember_header(parts.header, &header);
    }

    buf.clear();
    b64::decode_into(parts.payload.as_bytes(), &mut buf)?;
    let payload =
        String::from_utf8(buf).map_err(|_| Error::malformed("JSON is not valid UTF-8"))?;
    let mut raw = [None; 7];
    json::scan_object(&payload, &REGISTERED_NAMES, &mut raw)?;
    validation.check_claims(&RegisteredClaims::from_raw(&raw)?, now)?;
    let spans = raw.map(|r| r.and_then(|r| span(&payload, r)));
    let claims = serde_json::from_str(&payload).map_err(|e| {
        Error::malformed(format!(
            "claims do not have the expected shape ({})",
            e.classify_message()
        ))
    })?;
    Ok(Verified {
        header,
        claims,
        payload,
        spans,
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

/// Where `part`, a slice of `whole`, sits in it.
fn span(whole: &str, part: &str) -> Option<(u32, u32)> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= whole.len()).then_some((u32::try_from(start).ok()?, u32::try_from(end).ok()?))
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

/// Checks that `payload` is a claims set this crate's verifier accepts: one
/// JSON object with no member name twice at any level (RFC 7519 §4: a
/// parser that keeps the last of two would read another value than one that
/// keeps the first), nesting within [`crate::MAX_DEPTH`], registered claims
/// of the right types. For an issuer to check what it is about to sign.
///
/// # Errors
/// `malformed`, naming the first problem.
pub fn check_claims_json(payload: &str) -> Result<()> {
    let mut raw = [None; 7];
    json::scan_object(payload, &REGISTERED_NAMES, &mut raw)?;
    RegisteredClaims::from_raw(&raw)?;
    Ok(())
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
    pub registered: RegisteredClaims<'static>,
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
    let header = json::utf8(&header_bytes)?;
    let mut raw_header = [None; 5];
    json::scan_object(header, &HEADER_NAMES, &mut raw_header)?;
    b64::decode(parts.signature)?;
    let payload_bytes = b64::decode(parts.payload)?;
    let payload = json::utf8(&payload_bytes)?;
    let mut raw = [None; 7];
    json::scan_object(payload, &REGISTERED_NAMES, &mut raw)?;
    let registered = RegisteredClaims::from_raw(&raw)?.into_owned();
    let invalid = |_| Error::malformed("invalid JSON");
    Ok(Unverified {
        header: serde_json::from_str(header).map_err(invalid)?,
        claims: serde_json::from_str(payload).map_err(invalid)?,
        registered,
        len: token.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(json: &str) -> Result<(Header, bool)> {
        let v = Validation::new()
            .understand_critical("exp")
            .understand_critical("alg");
        parse_header(json.as_bytes(), Some(&v))
    }

    #[test]
    fn registered_claims_are_read_back_from_the_verified_payload() {
        let key = crate::SigningKey::from_secret(Algorithm::HS256, &[3u8; 32]).unwrap();
        let keys = KeySet::new(vec![key.verifying_key().unwrap()]);
        let claims = serde_json::json!({
            "iss": "https://i", "sub": "a\"b\u{e9}", "aud": ["x", "y"],
            "exp": 2_000_000_000u32, "nbf": 1.5, "iat": 1, "jti": "j-1", "n": {"sub": "inner"}
        });
        let token = Signer::new(key).sign(&claims).unwrap();
        let policy = Validation::new().audience("y");
        let v = verify_at::<serde_json::Value>(&token, &keys, &policy, UnixTime::from_secs(10))
            .unwrap();
        let r = v.registered();
        assert_eq!(r.iss.as_deref(), Some("https://i"));
        assert_eq!(r.sub.as_deref(), Some("a\"b\u{e9}"));
        assert_eq!(
            r.aud,
            Some(crate::Audience::Many(vec!["x".into(), "y".into()]))
        );
        assert_eq!(r.exp, Some(UnixTime::from_secs(2_000_000_000)));
        assert_eq!(r.nbf, Some(UnixTime::from_secs(2)), "nbf 1.5 rounds up");
        assert_eq!(r.iat, Some(UnixTime::from_secs(1)));
        assert_eq!(r.jti.as_deref(), Some("j-1"));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(v.payload_json()).unwrap(),
            claims
        );
        assert_eq!(v.claims, claims);
    }

    #[test]
    fn claims_json_is_checked_as_the_verifier_reads_it() {
        check_claims_json(r#"{"sub":"a","tenant_id":"acme","n":{"x":1}}"#).unwrap();
        for bad in [
            r#"{"tenant_id":"acme","tenant_id":"evil"}"#,
            r#"{"n":{"x":1,"x":2}}"#,
            r#"{"exp":"soon"}"#,
            r#"["not","an","object"]"#,
        ] {
            assert_eq!(
                check_claims_json(bad).unwrap_err().kind(),
                ErrorKind::Malformed,
                "{bad}"
            );
        }
    }

    #[test]
    fn only_headers_of_verified_tokens_are_cached() {
        let key = crate::SigningKey::from_secret(Algorithm::HS256, &[3u8; 32])
            .unwrap()
            .with_kid("k");
        let keys = KeySet::new(vec![key.verifying_key().unwrap()]);
        let policy = Validation::new();
        let now = UnixTime::from_secs(10);
        let claims = serde_json::json!({"exp": 100});
        let token = Signer::new(key).sign(&claims).unwrap();
        let header_part = token.split('.').next().unwrap();

        // A forged signature under a fresh header: rejected, and not cached.
        let forged_header = b64::encode(r#"{"alg":"HS256","kid":"k","typ":"x"}"#);
        let rest = token.split_once('.').unwrap().1;
        let forged = format!("{forged_header}.{rest}");
        let err = verify_at::<serde_json::Value>(&forged, &keys, &policy, now).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadSignature);
        assert!(keys.cached_header(&forged_header).is_none());

        // The genuine token's header is cached once it verified, and a cached
        // header still goes through the policy.
        assert!(keys.cached_header(header_part).is_none());
        let first = verify_at::<serde_json::Value>(&token, &keys, &policy, now).unwrap();
        let cached = keys.cached_header(header_part).unwrap();
        assert_eq!(cached, first.header);
        let again = verify_at::<serde_json::Value>(&token, &keys, &policy, now).unwrap();
        assert_eq!(again.header, first.header);
        let strict = Validation::new().typ("at+jwt");
        let err = verify_at::<serde_json::Value>(&token, &keys, &strict, now).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TypeMismatch);
        let other_alg = Validation::new().algorithms([Algorithm::ES256]);
        let err = verify_at::<serde_json::Value>(&token, &keys, &other_alg, now).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlgNotAllowed);
    }

    #[test]
    fn crit_must_not_repeat_or_name_registered_parameters() {
        let (ok, cacheable) = header(r#"{"alg":"ES256","crit":["exp"],"exp":1}"#).unwrap();
        assert!(!cacheable, "a header with crit depends on the policy");
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
