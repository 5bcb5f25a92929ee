//! Security negative tests of the JWS verify path: one test per rejection
//! path, each asserting the exact stable [`ErrorKind`].
//!
//! Bad tokens are built by hand: hand-written header and payload JSON,
//! base64url-encoded, and signed with a real key over the exact signing
//! input, so that each token carries only the one defect under test. Every
//! group has a positive control, so a test cannot pass because everything
//! fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use base64::Engine as _;
use serde_json::{json, Value};
use tessera_jose::{
    b64, verify_at, Algorithm, Error, ErrorKind, KeySet, SigningKey, UnixTime, Validation, Verified,
};

mod algorithms;
mod claims;
mod header;
mod keys;
mod structure;

// ---------------------------------------------------------------------------
// Fixture and helpers
// ---------------------------------------------------------------------------

/// The fixed verification time.
const NOW: i64 = 1_700_000_000;
/// The `exp` of ordinary test tokens.
const EXP: i64 = NOW + 600;

fn now() -> UnixTime {
    UnixTime::from_secs(NOW)
}

/// The verifier's keys, generated once (RSA generation is slow).
struct Fixture {
    es256: SigningKey,
    es384: SigningKey,
    es512: SigningKey,
    ed: SigningKey,
    hs256: SigningKey,
    rs256: SigningKey,
}

fn fx() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let gen = |alg, kid: &str| SigningKey::generate(alg).unwrap().with_kid(kid);
        Fixture {
            es256: gen(Algorithm::ES256, "ec1"),
            es384: gen(Algorithm::ES384, "ec384"),
            es512: gen(Algorithm::ES512, "ec512"),
            ed: gen(Algorithm::EdDSA, "ed1"),
            hs256: gen(Algorithm::HS256, "hs1"),
            rs256: gen(Algorithm::RS256, "rsa1"),
        }
    })
}

fn set(keys: &[&SigningKey]) -> KeySet {
    KeySet::new(keys.iter().map(|k| k.verifying_key().unwrap()).collect())
}

/// Every verifier key of the fixture.
fn all_keys() -> KeySet {
    let f = fx();
    set(&[&f.es256, &f.es384, &f.es512, &f.ed, &f.hs256, &f.rs256])
}

/// `{"alg":<key's alg>,"kid":<key's kid>}`.
fn header_of(key: &SigningKey) -> String {
    json!({"alg": key.alg().name(), "kid": key.kid().unwrap()}).to_string()
}

/// An ordinary, valid claims set.
fn claims() -> String {
    format!(r#"{{"sub":"user_1","exp":{EXP}}}"#)
}

/// Signs the exact text `header_b64.payload_b64` and appends the signature.
fn sign_parts(key: &SigningKey, header_b64: &str, payload_b64: &str) -> String {
    let input = format!("{header_b64}.{payload_b64}");
    let signature = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", b64::encode(signature))
}

/// base64url-encodes hand-written header and payload JSON and signs them.
fn forge(key: &SigningKey, header: &str, payload: &str) -> String {
    forge_bytes(key, header.as_bytes(), payload.as_bytes())
}

fn forge_bytes(key: &SigningKey, header: &[u8], payload: &[u8]) -> String {
    sign_parts(key, &b64::encode(header), &b64::encode(payload))
}

/// A valid token of `key` with `payload`.
fn token_with(key: &SigningKey, payload: &str) -> String {
    forge(key, &header_of(key), payload)
}

/// A valid token of `key`.
fn token(key: &SigningKey) -> String {
    token_with(key, &claims())
}

fn verify_now(token: &str, keys: &KeySet, v: &Validation) -> Result<Verified<Value>, Error> {
    verify_at::<Value>(token, keys, v, now())
}

#[track_caller]
fn accept(token: &str, keys: &KeySet, v: &Validation) -> Verified<Value> {
    match verify_now(token, keys, v) {
        Ok(verified) => verified,
        Err(e) => panic!("positive control refused: {e}\n{token}"),
    }
}

#[track_caller]
fn reject(token: &str, keys: &KeySet, v: &Validation, kind: ErrorKind) {
    match verify_now(token, keys, v) {
        Ok(_) => panic!("accepted, expected {kind}:\n{token}"),
        Err(e) => assert_eq!(e.kind(), kind, "wrong error ({e}) for:\n{token}"),
    }
}

#[track_caller]
fn reject_at(token: &str, keys: &KeySet, v: &Validation, at: i64, kind: ErrorKind) {
    match verify_at::<Value>(token, keys, v, UnixTime::from_secs(at)) {
        Ok(_) => panic!("accepted at {at}, expected {kind}:\n{token}"),
        Err(e) => assert_eq!(e.kind(), kind, "wrong error ({e}) at {at}"),
    }
}

#[track_caller]
fn accept_at(token: &str, keys: &KeySet, v: &Validation, at: i64) {
    if let Err(e) = verify_at::<Value>(token, keys, v, UnixTime::from_secs(at)) {
        panic!("positive control refused at {at}: {e}");
    }
}

/// A DER TLV.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// A DER INTEGER from unsigned big-endian bytes (minimal, non-negative).
fn der_uint(v: &[u8]) -> Vec<u8> {
    let zeros = v.iter().take_while(|&&b| b == 0).count();
    let mut body = v[zeros.min(v.len().saturating_sub(1))..].to_vec();
    if body.first().is_some_and(|&b| b & 0x80 != 0) {
        body.insert(0, 0);
    }
    der(0x02, &body)
}

/// Standard-alphabet, padded base64 (for PEM and `x5c`).
fn std_b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = std_b64(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The public JWK of a key as a JSON value.
fn public_jwk(key: &SigningKey) -> Value {
    serde_json::to_value(key.public_jwk().unwrap()).unwrap()
}

/// A member of a public JWK, base64url-decoded.
fn jwk_member(key: &SigningKey, name: &str) -> Vec<u8> {
    b64::decode(public_jwk(key)[name].as_str().unwrap()).unwrap()
}

/// Every upper/lower-case spelling of `word`.
fn capitalisations(word: &str) -> Vec<String> {
    let chars: Vec<char> = word.chars().collect();
    (0..1u32 << chars.len())
        .map(|mask| {
            chars
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if mask & (1 << i) != 0 {
                        c.to_ascii_uppercase()
                    } else {
                        *c
                    }
                })
                .collect()
        })
        .collect()
}
