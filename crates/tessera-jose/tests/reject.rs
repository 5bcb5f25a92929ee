//! Security negative tests of the JWS verify path: one test per rejection
//! path, each asserting the exact stable [`ErrorKind`].
//!
//! Bad tokens are built by hand: hand-written header and payload JSON,
//! base64url-encoded, and signed with a real key over the exact signing
//! input, so that each token carries only the one defect under test. Every
//! group has a positive control, so a test cannot pass because everything
//! fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::ErrorKind as IoErrorKind;
use std::net::TcpListener;
use std::sync::OnceLock;
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use base64::Engine as _;
use serde_json::{json, Value};
use tessera_jose::{
    b64, verify_at, Algorithm, Error, ErrorKind, JwkSet, KeySet, SigningKey, UnixTime, Validation,
    Verified, VerifyingKey, DEFAULT_MAX_SIZE, MAX_DEPTH,
};

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

// ---------------------------------------------------------------------------
// alg "none"
// ---------------------------------------------------------------------------

#[test]
fn alg_none_in_every_capitalisation_is_refused() {
    let f = fx();
    let keys = all_keys();
    let v = Validation::new();
    accept(&token(&f.hs256), &keys, &v);

    let spellings = capitalisations("none");
    assert_eq!(spellings.len(), 16);
    let payload = b64::encode(claims());
    for none in &spellings {
        for header in [
            json!({"alg": none}),
            json!({"alg": none, "typ": "JWT"}),
            json!({"alg": none, "kid": "hs1"}),
            json!({"alg": none, "kid": "ec1"}),
        ] {
            let header = b64::encode(header.to_string());
            let input = format!("{header}.{payload}");
            // Empty signature, as RFC 7518 §3.6 defines for "none".
            reject(&format!("{input}."), &keys, &v, ErrorKind::AlgNotAllowed);
            // A real signature over the same input, by an HMAC and an ECDSA key.
            for key in [&f.hs256, &f.es256] {
                let sig = b64::encode(key.sign(input.as_bytes()).unwrap());
                reject(
                    &format!("{input}.{sig}"),
                    &keys,
                    &v,
                    ErrorKind::AlgNotAllowed,
                );
            }
            // Some junk signature.
            reject(
                &format!("{input}.AAAA"),
                &keys,
                &v,
                ErrorKind::AlgNotAllowed,
            );
        }
    }
    // An allow-list does not resurrect it either.
    let listed = Validation::new().algorithms(Algorithm::ALL);
    let header = b64::encode(r#"{"alg":"none"}"#);
    reject(
        &format!("{header}.{payload}."),
        &keys,
        &listed,
        ErrorKind::AlgNotAllowed,
    );
}

#[test]
fn alg_names_are_case_sensitive_and_exact() {
    let f = fx();
    let keys = all_keys();
    let v = Validation::new();
    for alg in [
        "hs256",
        "Hs256",
        "HS256 ",
        " HS256",
        "HS-256",
        "HS256\u{0}",
        "",
    ] {
        let header = json!({"alg": alg, "kid": "hs1"}).to_string();
        reject(
            &forge(&f.hs256, &header, &claims()),
            &keys,
            &v,
            ErrorKind::AlgNotAllowed,
        );
    }
    // The escaped spelling of the right name is the right name (JSON semantics).
    let escaped = r#"{"alg":"\u0048S256","kid":"hs1"}"#;
    accept(&forge(&f.hs256, escaped, &claims()), &keys, &v);
}

// ---------------------------------------------------------------------------
// Algorithm confusion
// ---------------------------------------------------------------------------

/// The verifier's RS256 public key as SPKI DER, PEM and public JWK JSON.
fn rsa_public_forms() -> (Vec<u8>, String, String) {
    let f = fx();
    let n = jwk_member(&f.rs256, "n");
    let e = jwk_member(&f.rs256, "e");
    let spki = aws_lc_rs::rsa::PublicKeyComponents {
        n: n.as_slice(),
        e: e.as_slice(),
    }
    .as_der()
    .unwrap()
    .as_ref()
    .to_vec();
    let pem = pem("PUBLIC KEY", &spki);
    let jwk = serde_json::to_string(&f.rs256.public_jwk().unwrap()).unwrap();
    (spki, pem, jwk)
}

#[test]
fn rsa_public_key_used_as_hmac_secret_is_refused() {
    let f = fx();
    let (spki, pem, jwk) = rsa_public_forms();
    // The verifier loaded exactly this PEM (so the attacker's "secret" is the
    // verifier's key file byte for byte).
    let vk = VerifyingKey::from_spki_pem(&pem, Algorithm::RS256)
        .unwrap()
        .with_kid("rsa1");
    let keys = KeySet::new(vec![vk]);
    let v = Validation::new();
    accept(&token(&f.rs256), &keys, &v);

    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("pem", pem.clone().into_bytes()),
        (
            "pem without final newline",
            pem.trim_end().as_bytes().to_vec(),
        ),
        ("pem with CRLF", pem.replace('\n', "\r\n").into_bytes()),
        ("der", spki.clone()),
        ("jwk json", jwk.into_bytes()),
        ("modulus", jwk_member(&f.rs256, "n")),
    ];
    for (what, secret) in &secrets {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let attacker = SigningKey::from_secret(alg, secret).unwrap();
            for header in [
                json!({"alg": alg.name(), "kid": "rsa1"}),
                json!({"alg": alg.name(), "kid": "rsa1", "typ": "JWT"}),
                json!({"alg": alg.name()}),
            ] {
                let t = forge(&attacker, &header.to_string(), &claims());
                match verify_now(&t, &keys, &v) {
                    Ok(_) => panic!("{what}/{alg}: RSA public key accepted as HMAC secret"),
                    Err(e) => assert_eq!(e.kind(), ErrorKind::AlgNotAllowed, "{what}/{alg}: {e}"),
                }
            }
        }
    }
    // The same with the key imported from DER and from the JWK.
    let from_der = VerifyingKey::from_spki_der(&spki, Algorithm::RS256)
        .unwrap()
        .with_kid("rsa1");
    let attacker = SigningKey::from_secret(Algorithm::HS256, &spki).unwrap();
    let t = forge(&attacker, r#"{"alg":"HS256","kid":"rsa1"}"#, &claims());
    reject(
        &t,
        &KeySet::new(vec![from_der]),
        &v,
        ErrorKind::AlgNotAllowed,
    );
    let jwks = JwkSet::parse(&format!(r#"{{"keys":[{}]}}"#, rsa_public_forms().2)).unwrap();
    let from_jwks = KeySet::from_jwks(&jwks, &[]).unwrap();
    accept(&token(&f.rs256), &from_jwks, &v);
    reject(&t, &from_jwks, &v, ErrorKind::AlgNotAllowed);
}

#[test]
fn token_alg_must_equal_the_keys_binding() {
    let f = fx();
    let keys = set(&[&f.es256]);
    let v = Validation::new();
    accept(&token(&f.es256), &keys, &v);

    // A real ES384 signature claiming the ES256 key's kid.
    let es384 = SigningKey::generate(Algorithm::ES384).unwrap();
    let t = forge(&es384, r#"{"alg":"ES384","kid":"ec1"}"#, &claims());
    reject(&t, &keys, &v, ErrorKind::AlgNotAllowed);
    // Without kid: no key is bound to ES384.
    let t = forge(&es384, r#"{"alg":"ES384"}"#, &claims());
    reject(&t, &keys, &v, ErrorKind::AlgNotAllowed);
    // Every other algorithm name against the ES256 key's kid.
    for alg in Algorithm::ALL {
        if alg == Algorithm::ES256 {
            continue;
        }
        let header = json!({"alg": alg.name(), "kid": "ec1"}).to_string();
        reject(
            &forge(&f.es256, &header, &claims()),
            &keys,
            &v,
            ErrorKind::AlgNotAllowed,
        );
    }
    // Header says ES256 but the signature is ES384: it simply does not verify.
    let t = forge(&es384, r#"{"alg":"ES256","kid":"ec1"}"#, &claims());
    reject(&t, &keys, &v, ErrorKind::BadSignature);
}

#[test]
fn alg_outside_the_allow_list_is_refused() {
    let f = fx();
    let keys = all_keys();
    let only_es256 = Validation::new().algorithms([Algorithm::ES256]);
    accept(&token(&f.es256), &keys, &only_es256);
    for key in [&f.hs256, &f.rs256, &f.es384, &f.es512, &f.ed] {
        let t = token(key);
        reject(&t, &keys, &only_es256, ErrorKind::AlgNotAllowed);
        // Positive control: the same token passes once its alg is listed.
        let listed = Validation::new().algorithms([Algorithm::ES256, key.alg()]);
        accept(&t, &keys, &listed);
    }
    // An empty allow-list allows nothing.
    let empty = Validation::new().algorithms([]);
    reject(&token(&f.es256), &keys, &empty, ErrorKind::AlgNotAllowed);
}

// ---------------------------------------------------------------------------
// ECDSA signature encodings
// ---------------------------------------------------------------------------

/// The order n of P-256.
const P256_N: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
];

#[test]
fn ecdsa_zero_and_out_of_range_scalars_are_bad_signatures() {
    let f = fx();
    let keys = all_keys();
    let v = Validation::new();
    let header = b64::encode(header_of(&f.es256));
    let payload = b64::encode(claims());
    let input = format!("{header}.{payload}");
    let good = f.es256.sign(input.as_bytes()).unwrap();
    assert_eq!(good.len(), 64);
    let with = |sig: &[u8]| format!("{input}.{}", b64::encode(sig));
    accept(&with(&good), &keys, &v);

    let (r, s) = good.split_at(32);
    let zero = [0u8; 32];
    let one = {
        let mut one = [0u8; 32];
        one[31] = 1;
        one
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("r = s = 0", [zero, zero].concat()),
        ("r = 0", [&zero[..], s].concat()),
        ("s = 0", [r, &zero[..]].concat()),
        ("r = n", [&P256_N[..], s].concat()),
        ("s = n", [r, &P256_N[..]].concat()),
        ("r = s = n", [P256_N, P256_N].concat()),
        ("r = s = 1", [one, one].concat()),
        ("r = 2^256 - 1", [&[0xFF; 32][..], s].concat()),
        ("63 bytes", good[..63].to_vec()),
        ("65 bytes", [&good[..], &[0]].concat()),
        ("s only", s.to_vec()),
        ("empty", Vec::new()),
    ];
    for (what, sig) in cases {
        match verify_now(&with(&sig), &keys, &v) {
            Ok(_) => panic!("{what} accepted"),
            Err(e) => assert_eq!(e.kind(), ErrorKind::BadSignature, "{what}: {e}"),
        }
    }
    // All-zero signatures of the other curves and of Ed25519.
    for (key, len) in [(&f.es384, 96), (&f.es512, 132), (&f.ed, 64)] {
        let header = b64::encode(header_of(key));
        let t = format!("{header}.{payload}.{}", b64::encode(vec![0u8; len]));
        reject(&t, &keys, &v, ErrorKind::BadSignature);
        accept(&token(key), &keys, &v);
    }
}

#[test]
fn der_encoded_ecdsa_signature_is_a_bad_signature() {
    let f = fx();
    let keys = all_keys();
    let v = Validation::new();
    let header = b64::encode(header_of(&f.es256));
    let payload = b64::encode(claims());
    let input = format!("{header}.{payload}");
    let fixed = f.es256.sign(input.as_bytes()).unwrap();
    let (r, s) = fixed.split_at(32);
    let der_sig = der(0x30, &[der_uint(r), der_uint(s)].concat());

    // Control: the DER form is a valid ASN.1 ECDSA signature of the message.
    let point = [
        &[4u8][..],
        &jwk_member(&f.es256, "x"),
        &jwk_member(&f.es256, "y"),
    ]
    .concat();
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        &point,
    )
    .verify(input.as_bytes(), &der_sig)
    .expect("the DER conversion is a valid ASN.1 signature");
    accept(&format!("{input}.{}", b64::encode(&fixed)), &keys, &v);

    reject(
        &format!("{input}.{}", b64::encode(&der_sig)),
        &keys,
        &v,
        ErrorKind::BadSignature,
    );
    // The DER form padded or truncated to 64 bytes is no better.
    let mut sized = der_sig.clone();
    sized.resize(64, 0);
    reject(
        &format!("{input}.{}", b64::encode(&sized)),
        &keys,
        &v,
        ErrorKind::BadSignature,
    );
}

// ---------------------------------------------------------------------------
// Keys named by the token itself: jwk, jku, x5u, x5c
// ---------------------------------------------------------------------------

/// The SubjectPublicKeyInfo DER of a P-256 key.
fn p256_spki(key: &SigningKey) -> Vec<u8> {
    let alg_id = der(
        0x30,
        &[
            der(0x06, &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01]),
            der(0x06, &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07]),
        ]
        .concat(),
    );
    let point = [&[0u8, 4][..], &jwk_member(key, "x"), &jwk_member(key, "y")].concat();
    der(0x30, &[alg_id, der(0x03, &point)].concat())
}

#[test]
fn keys_and_key_urls_in_the_header_are_never_used() {
    let f = fx();
    let keys = set(&[&f.es256]);
    let v = Validation::new();
    accept(&token(&f.es256), &keys, &v);

    // A local listener stands in for the attacker's server: if anything
    // fetched a jku/x5u, the connection would be queued here.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());

    let attacker = SigningKey::generate(Algorithm::ES256).unwrap();
    let attacker_kid = attacker.thumbprint();
    let spki = p256_spki(&attacker);
    VerifyingKey::from_spki_der(&spki, Algorithm::ES256).expect("a real key");
    let members: [(&str, Value); 4] = [
        ("jwk", public_jwk(&attacker)),
        ("jku", Value::from(url.as_str())),
        ("x5u", Value::from(url.as_str())),
        ("x5c", json!([std_b64(&spki)])),
    ];
    for (name, value) in &members {
        let header = |kid: Option<&str>| {
            let mut h = json!({"alg": "ES256"});
            if let Some(kid) = kid {
                h["kid"] = kid.into();
            }
            h[*name] = value.clone();
            h.to_string()
        };
        // kid names the attacker's key: no such key here.
        let t = forge(&attacker, &header(Some(&attacker_kid)), &claims());
        reject(&t, &keys, &v, ErrorKind::UnknownKid);
        // Positive control: the very same token verifies once the verifier
        // really holds the attacker's key, so only the key choice refused it.
        let attacker_vk = attacker.verifying_key().unwrap().with_kid(&attacker_kid);
        accept(&t, &KeySet::new(vec![attacker_vk]), &v);
        // No kid: the single ES256 key is used, and the signature is not its.
        let t = forge(&attacker, &header(None), &claims());
        reject(&t, &keys, &v, ErrorKind::BadSignature);
        // kid names the verifier's key: still the verifier's key.
        let t = forge(&attacker, &header(Some("ec1")), &claims());
        reject(&t, &keys, &v, ErrorKind::BadSignature);
        // A genuine token of the verifier that also carries the member still
        // verifies with the verifier's key (the member is inert).
        let t = forge(&f.es256, &header(Some("ec1")), &claims());
        accept(&t, &keys, &v);
    }
    std::thread::sleep(Duration::from_millis(50));
    match listener.accept() {
        Err(e) if e.kind() == IoErrorKind::WouldBlock => {}
        Err(e) => panic!("listener failed: {e}"),
        Ok((_, peer)) => panic!("verification opened a connection from {peer}"),
    }
}

// ---------------------------------------------------------------------------
// crit and b64
// ---------------------------------------------------------------------------

#[test]
fn crit_rules() {
    let f = fx();
    let keys = all_keys();
    let plain = Validation::new();
    let understands = Validation::new().understand_critical("x-ext");
    let t = |header: &str| forge(&f.es256, header, &claims());

    // Positive control: understood and present.
    let ok = t(r#"{"alg":"ES256","kid":"ec1","crit":["x-ext"],"x-ext":1}"#);
    accept(&ok, &keys, &understands);
    // Not understood.
    reject(&ok, &keys, &plain, ErrorKind::UnsupportedCrit);
    let other = t(r#"{"alg":"ES256","kid":"ec1","crit":["x-other"],"x-other":1}"#);
    reject(&other, &keys, &understands, ErrorKind::UnsupportedCrit);
    let two = t(r#"{"alg":"ES256","kid":"ec1","crit":["x-ext","x-other"],"x-ext":1,"x-other":2}"#);
    reject(&two, &keys, &understands, ErrorKind::UnsupportedCrit);
    // Understood but absent from the header.
    let absent = t(r#"{"alg":"ES256","kid":"ec1","crit":["x-ext"]}"#);
    reject(&absent, &keys, &understands, ErrorKind::Malformed);
    // Not a non-empty array of strings.
    for crit in [
        r#"[]"#,
        r#""x-ext""#,
        "[1]",
        "null",
        "{}",
        "true",
        r#"[["x-ext"]]"#,
    ] {
        let header = format!(r#"{{"alg":"ES256","kid":"ec1","crit":{crit},"x-ext":1}}"#);
        reject(&t(&header), &keys, &understands, ErrorKind::Malformed);
    }
}

#[test]
fn unencoded_payload_is_refused() {
    let f = fx();
    let keys = all_keys();
    let plain = Validation::new();
    let understands = Validation::new().understand_critical("b64");
    accept(&token(&f.es256), &keys, &understands);
    for header in [
        r#"{"alg":"ES256","kid":"ec1","b64":false}"#,
        r#"{"alg":"ES256","kid":"ec1","b64":false,"crit":["b64"]}"#,
        r#"{"alg":"ES256","kid":"ec1","b64":"false","crit":["b64"]}"#,
        r#"{"alg":"ES256","kid":"ec1","b64":0}"#,
        r#"{"alg":"ES256","kid":"ec1","b64":null}"#,
    ] {
        // Signed the ordinary way (encoded payload).
        let t = forge(&f.es256, header, &claims());
        reject(&t, &keys, &plain, ErrorKind::UnsupportedCrit);
        reject(&t, &keys, &understands, ErrorKind::UnsupportedCrit);
        // And as RFC 7797 would: the payload as is in the signing input.
        let input = format!("{}.{}", b64::encode(header), claims());
        let sig = b64::encode(f.es256.sign(input.as_bytes()).unwrap());
        let t = format!("{input}.{sig}");
        reject(&t, &keys, &plain, ErrorKind::UnsupportedCrit);
        reject(&t, &keys, &understands, ErrorKind::UnsupportedCrit);
    }
}

// ---------------------------------------------------------------------------
// Duplicate member names
// ---------------------------------------------------------------------------

#[test]
fn duplicate_header_members_are_malformed() {
    let f = fx();
    let keys = all_keys();
    let v = Validation::new();
    accept(
        &forge(&f.es256, r#"{"alg":"ES256","kid":"ec1"}"#, &claims()),
        &keys,
        &v,
    );
    for header in [
        r#"{"alg":"ES256","alg":"ES256","kid":"ec1"}"#,
        r#"{"alg":"ES256","kid":"ec1","\u0061lg":"ES256"}"#,
        r#"{"\u0061\u006c\u0067":"ES256","kid":"ec1","alg":"ES256"}"#,
        r#"{"alg":"HS256","kid":"ec1","alg":"ES256"}"#,
        r#"{"alg":"ES256","kid":"ec1","kid":"ec1"}"#,
        r#"{"alg":"ES256","kid":"x","kid":"ec1"}"#,
        r#"{"alg":"ES256","kid":"ec1","typ":"JWT","typ":"JWT"}"#,
        r#"{"alg":"ES256","kid":"ec1","crit":["x"],"x":1,"x":2}"#,
        r#"{"alg":"ES256","kid":"ec1","x":{"y":1,"y":2}}"#,
    ] {
        // The signature is valid over the duplicated text.
        reject(
            &forge(&f.es256, header, &claims()),
            &keys,
            &v,
            ErrorKind::Malformed,
        );
    }
}

#[test]
fn duplicate_payload_members_are_malformed() {
    let f = fx();
    let keys = all_keys();
    let v = Validation::new();
    let with_aud = Validation::new().audience("api");
    accept(
        &token_with(
            &f.es256,
            &format!(r#"{{"exp":{EXP},"aud":"api","role":"user","ctx":{{"a":1,"b":2}}}}"#),
        ),
        &keys,
        &with_aud,
    );
    for (payload, policy) in [
        (format!(r#"{{"exp":{EXP},"exp":{}}}"#, EXP + 1_000_000), &v),
        (format!(r#"{{"exp":{NOW},"exp":{EXP}}}"#), &v),
        (format!(r#"{{"exp":{EXP},"\u0065xp":{EXP}}}"#), &v),
        (
            format!(r#"{{"exp":{EXP},"aud":"other","aud":"api"}}"#),
            &with_aud,
        ),
        (
            format!(r#"{{"exp":{EXP},"aud":["api"],"aud":"api"}}"#),
            &with_aud,
        ),
        (
            format!(r#"{{"exp":{EXP},"role":"user","role":"admin"}}"#),
            &v,
        ),
        (
            format!(r#"{{"exp":{EXP},"role":"admin","r\u006fle":"user"}}"#),
            &v,
        ),
        (format!(r#"{{"exp":{EXP},"ctx":{{"a":1,"a":2}}}}"#), &v),
        (
            format!(r#"{{"exp":{EXP},"ctx":[{{"a":{{"b":1,"b":1}}}}]}}"#),
            &v,
        ),
        (
            format!(r#"{{"iss":"a","sub":"u","iss":"a","exp":{EXP}}}"#),
            &v,
        ),
    ] {
        reject(
            &token_with(&f.es256, &payload),
            &keys,
            policy,
            ErrorKind::Malformed,
        );
    }
}

// ---------------------------------------------------------------------------
// Non-canonical base64url
// ---------------------------------------------------------------------------

const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Sets the lowest (spare) bit of the last character.
fn flip_trailing_bit(part: &str) -> String {
    let mut bytes = part.as_bytes().to_vec();
    let last = bytes.last_mut().unwrap();
    let idx = B64URL.iter().position(|c| c == last).unwrap();
    *last = B64URL[idx ^ 1];
    String::from_utf8(bytes).unwrap()
}

/// The non-canonical spellings of a canonical base64url part. The part must
/// contain '-' or '_' and have spare bits (its byte length is not a
/// multiple of 3).
fn non_canonical(part: &str) -> Vec<(&'static str, String)> {
    assert!(part.contains(['-', '_']), "{part}");
    assert_ne!(part.len() % 4, 0, "{part}");
    let padding = "=".repeat((4 - part.len() % 4) % 4);
    let mid = part.len() / 2;
    vec![
        ("standard padding", format!("{part}{padding}")),
        ("one '='", format!("{part}=")),
        ("'=' inside", format!("{}={}", &part[..mid], &part[mid..])),
        (
            "standard alphabet",
            part.replace('-', "+").replace('_', "/"),
        ),
        ("trailing bits", flip_trailing_bit(part)),
        ("space inside", format!("{} {}", &part[..mid], &part[mid..])),
        ("leading space", format!(" {part}")),
        ("trailing newline", format!("{part}\n")),
        ("tab inside", format!("{}\t{}", &part[..mid], &part[mid..])),
        (
            "CRLF inside",
            format!("{}\r\n{}", &part[..mid], &part[mid..]),
        ),
    ]
}

/// JSON text of an object with a filler member chosen so that its base64url
/// form contains '-' or '_' and has spare bits.
fn spiky_json(prefix: &str) -> String {
    // A byte '?' (0x3F) ending a 3-byte group encodes as '_'.
    (0..6)
        .map(|k| format!(r#"{prefix},"pad":"???{}"}}"#, "a".repeat(k)))
        .find(|j| {
            let enc = b64::encode(j);
            j.len() % 3 != 0 && enc.contains(['-', '_'])
        })
        .unwrap()
}

#[test]
fn non_canonical_base64url_is_malformed_in_every_part() {
    let f = fx();
    let keys = all_keys();
    let v = Validation::new();
    let header = b64::encode(spiky_json(r#"{"alg":"HS256","kid":"hs1""#));
    // An HS256 signature (32 bytes: 2 spare bits) with '-' or '_' in it.
    let (payload, signature) = (0..1000)
        .map(|i| {
            let payload = b64::encode(spiky_json(&format!(r#"{{"exp":{EXP},"n":{i}"#)));
            let sig = f
                .hs256
                .sign(format!("{header}.{payload}").as_bytes())
                .unwrap();
            (payload, b64::encode(sig))
        })
        .find(|(_, sig)| sig.contains(['-', '_']))
        .unwrap();
    accept(&format!("{header}.{payload}.{signature}"), &keys, &v);

    for (what, bad) in non_canonical(&header) {
        // Signed over the exact (bad) text, so the signature is not the issue.
        let t = sign_parts(&f.hs256, &bad, &payload);
        match verify_now(&t, &keys, &v) {
            Ok(_) => panic!("header with {what} accepted"),
            Err(e) => assert_eq!(e.kind(), ErrorKind::Malformed, "header with {what}: {e}"),
        }
    }
    for (what, bad) in non_canonical(&payload) {
        let t = sign_parts(&f.hs256, &header, &bad);
        match verify_now(&t, &keys, &v) {
            Ok(_) => panic!("payload with {what} accepted"),
            Err(e) => assert_eq!(e.kind(), ErrorKind::Malformed, "payload with {what}: {e}"),
        }
    }
    for (what, bad) in non_canonical(&signature) {
        let t = format!("{header}.{payload}.{bad}");
        match verify_now(&t, &keys, &v) {
            Ok(_) => panic!("signature with {what} accepted"),
            Err(e) => assert_eq!(e.kind(), ErrorKind::Malformed, "signature with {what}: {e}"),
        }
    }
    // An ECDSA signature (64 bytes: 4 spare bits), each spare bit set in turn.
    let es = token(&f.es256);
    accept(&es, &keys, &v);
    let (input, sig) = es.rsplit_once('.').unwrap();
    let last = *sig.as_bytes().last().unwrap();
    let idx = B64URL.iter().position(|&c| c == last).unwrap();
    for bit in [1, 2, 4, 8] {
        let mut bad = sig.as_bytes().to_vec();
        *bad.last_mut().unwrap() = B64URL[idx ^ bit];
        let t = format!("{input}.{}", String::from_utf8(bad).unwrap());
        reject(&t, &keys, &v, ErrorKind::Malformed);
    }
}

// ---------------------------------------------------------------------------
// Size and depth
// ---------------------------------------------------------------------------

#[test]
fn oversize_token_is_refused_before_decoding() {
    let f = fx();
    let keys = all_keys();
    let v = Validation::new();
    assert_eq!(DEFAULT_MAX_SIZE, 8 * 1024);
    // Garbage: TooLarge, not Malformed, so nothing was decoded.
    for garbage in [
        "A".repeat(9 * 1024),
        "!".repeat(9 * 1024),
        ".".repeat(9 * 1024),
        "\u{e9}".repeat(9 * 1024 / 2),
        "@".repeat(DEFAULT_MAX_SIZE + 1),
    ] {
        assert!(garbage.len() > DEFAULT_MAX_SIZE);
        reject(&garbage, &keys, &v, ErrorKind::TooLarge);
    }
    // Control: garbage at exactly the limit is decoded, and is malformed.
    reject(
        &"!".repeat(DEFAULT_MAX_SIZE),
        &keys,
        &v,
        ErrorKind::Malformed,
    );

    // A genuine, validly signed token over the limit.
    let big = token_with(
        &f.es256,
        &format!(r#"{{"exp":{EXP},"blob":"{}"}}"#, "x".repeat(7 * 1024)),
    );
    assert!(big.len() > DEFAULT_MAX_SIZE);
    reject(&big, &keys, &v, ErrorKind::TooLarge);
    accept(&big, &keys, &Validation::new().max_size(64 * 1024));
    // A smaller configured limit applies too.
    let small = token(&f.es256);
    reject(
        &small,
        &keys,
        &Validation::new().max_size(small.len() - 1),
        ErrorKind::TooLarge,
    );
    accept(&small, &keys, &Validation::new().max_size(small.len()));
}

#[test]
fn deep_nesting_is_malformed_without_stack_overflow() {
    fx(); // generate the keys on a normal stack
          // Run on a small stack: a recursive parser without a depth limit would
          // overflow it on the 10 000-level document.
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(deep_nesting)
        .unwrap()
        .join()
        .unwrap();
}

fn deep_nesting() {
    let f = fx();
    let keys = all_keys();
    let big = Validation::new().max_size(1 << 20);
    let arrays = |n: usize| format!(r#"{{"exp":{EXP},"a":{}0{}}}"#, "[".repeat(n), "]".repeat(n));
    let objects = |n: usize| {
        format!(
            r#"{{"exp":{EXP},"a":{}0{}}}"#,
            r#"{"a":"#.repeat(n),
            "}".repeat(n)
        )
    };
    // The top-level object is depth 1: MAX_DEPTH - 1 nested values fit.
    accept(&token_with(&f.hs256, &arrays(MAX_DEPTH - 1)), &keys, &big);
    accept(&token_with(&f.hs256, &objects(MAX_DEPTH - 1)), &keys, &big);
    for n in [MAX_DEPTH, MAX_DEPTH + 1, 10_000] {
        reject(
            &token_with(&f.hs256, &arrays(n)),
            &keys,
            &big,
            ErrorKind::Malformed,
        );
        reject(
            &token_with(&f.hs256, &objects(n)),
            &keys,
            &big,
            ErrorKind::Malformed,
        );
    }
    // Unbalanced: 10 000 opening brackets only.
    let open = format!(r#"{{"exp":{EXP},"a":{}"#, "[".repeat(10_000));
    reject(
        &token_with(&f.hs256, &open),
        &keys,
        &big,
        ErrorKind::Malformed,
    );
    // Deep nesting in the header too.
    let header = format!(
        r#"{{"alg":"HS256","kid":"hs1","x":{}0{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    reject(
        &forge(&f.hs256, &header, &claims()),
        &keys,
        &big,
        ErrorKind::Malformed,
    );
}

// ---------------------------------------------------------------------------
// Claims
// ---------------------------------------------------------------------------

#[test]
fn issuer_checks() {
    let f = fx();
    let keys = all_keys();
    let v = Validation::new().issuer("https://auth.example.com");
    let t = |iss: &str| token_with(&f.es256, &format!(r#"{{"exp":{EXP}{iss}}}"#));
    accept(&t(r#","iss":"https://auth.example.com""#), &keys, &v);
    for wrong in [
        r#","iss":"https://evil.example.com""#,
        r#","iss":"https://auth.example.com/""#,
        r#","iss":"HTTPS://AUTH.EXAMPLE.COM""#,
        r#","iss":"""#,
    ] {
        reject(&t(wrong), &keys, &v, ErrorKind::IssuerMismatch);
    }
    reject(&t(""), &keys, &v, ErrorKind::MissingClaim);
    // Not a string: malformed whatever the policy.
    for bad in [
        r#","iss":1"#,
        r#","iss":null"#,
        r#","iss":["https://auth.example.com"]"#,
    ] {
        reject(&t(bad), &keys, &v, ErrorKind::Malformed);
        reject(&t(bad), &keys, &Validation::new(), ErrorKind::Malformed);
    }
}

#[test]
fn audience_checks() {
    let f = fx();
    let keys = all_keys();
    let api = Validation::new().audience("orders-api");
    let none = Validation::new();
    let t = |aud: &str| token_with(&f.es256, &format!(r#"{{"exp":{EXP}{aud}}}"#));
    accept(&t(r#","aud":"orders-api""#), &keys, &api);
    accept(&t(r#","aud":["other","orders-api"]"#), &keys, &api);
    accept(&t(""), &keys, &none);
    // Wrong audience, string and array forms.
    for wrong in [
        r#","aud":"billing-api""#,
        r#","aud":"Orders-api""#,
        r#","aud":["billing-api"]"#,
        r#","aud":["billing-api","orders-api "]"#,
        r#","aud":[]"#,
    ] {
        reject(&t(wrong), &keys, &api, ErrorKind::AudienceMismatch);
    }
    // An audience while the verifier names none.
    for present in [
        r#","aud":"orders-api""#,
        r#","aud":["orders-api"]"#,
        r#","aud":[]"#,
    ] {
        reject(&t(present), &keys, &none, ErrorKind::AudienceMismatch);
    }
    reject(&t(""), &keys, &api, ErrorKind::MissingClaim);
    // Not a string or an array of strings.
    for bad in [
        r#","aud":["orders-api",1]"#,
        r#","aud":[null]"#,
        r#","aud":[["orders-api"]]"#,
        r#","aud":1"#,
        r#","aud":{}"#,
        r#","aud":null"#,
    ] {
        reject(&t(bad), &keys, &api, ErrorKind::Malformed);
    }
}

#[test]
fn type_checks() {
    let f = fx();
    let keys = all_keys();
    let v = Validation::new().typ("at+jwt");
    let t = |typ: Option<&str>| {
        let mut header = json!({"alg": "ES256", "kid": "ec1"});
        if let Some(typ) = typ {
            header["typ"] = typ.into();
        }
        forge(&f.es256, &header.to_string(), &claims())
    };
    for ok in [
        "at+jwt",
        "AT+JWT",
        "application/at+jwt",
        "Application/At+Jwt",
    ] {
        accept(&t(Some(ok)), &keys, &v);
    }
    for wrong in [
        "JWT",
        "jwt",
        "at+jwt ",
        "application/jwt",
        "application/",
        "",
        "at",
    ] {
        reject(&t(Some(wrong)), &keys, &v, ErrorKind::TypeMismatch);
    }
    reject(&t(None), &keys, &v, ErrorKind::TypeMismatch);
    // Any typ when the policy names none.
    accept(&t(Some("whatever")), &keys, &Validation::new());
    // typ that is not a string.
    let header = r#"{"alg":"ES256","kid":"ec1","typ":1}"#;
    reject(
        &forge(&f.es256, header, &claims()),
        &keys,
        &Validation::new(),
        ErrorKind::Malformed,
    );
}

#[test]
fn expiry_and_not_before_at_the_leeway_boundaries() {
    let f = fx();
    let keys = all_keys();
    let v = Validation::new(); // 60 s leeway
    let e = EXP;
    let t = token_with(&f.es256, &format!(r#"{{"exp":{e}}}"#));
    accept_at(&t, &keys, &v, e - 1);
    accept_at(&t, &keys, &v, e + 59);
    reject_at(&t, &keys, &v, e + 60, ErrorKind::Expired);
    reject_at(&t, &keys, &v, e + 61, ErrorKind::Expired);
    reject_at(&t, &keys, &v, i64::MAX, ErrorKind::Expired);
    // Without leeway, expired exactly at exp (RFC 7519 §4.1.4: now must be before exp).
    let strict = Validation::new().leeway(Duration::ZERO);
    accept_at(&t, &keys, &strict, e - 1);
    reject_at(&t, &keys, &strict, e, ErrorKind::Expired);
    // Fractional exp is truncated towards minus infinity.
    let t = token_with(&f.es256, &format!(r#"{{"exp":{e}.9}}"#));
    accept_at(&t, &keys, &strict, e - 1);
    reject_at(&t, &keys, &strict, e, ErrorKind::Expired);

    let nbf = NOW + 1000;
    let t = token_with(&f.es256, &format!(r#"{{"exp":{},"nbf":{nbf}}}"#, nbf + 600));
    accept_at(&t, &keys, &v, nbf);
    accept_at(&t, &keys, &v, nbf - 60);
    reject_at(&t, &keys, &v, nbf - 61, ErrorKind::NotYetValid);
    reject_at(&t, &keys, &v, NOW, ErrorKind::NotYetValid);
    accept_at(&t, &keys, &strict, nbf);
    reject_at(&t, &keys, &strict, nbf - 1, ErrorKind::NotYetValid);
}

#[test]
fn exp_is_required_and_typed() {
    let f = fx();
    let keys = all_keys();
    let v = Validation::new();
    accept(
        &token_with(&f.es256, &format!(r#"{{"exp":{EXP}}}"#)),
        &keys,
        &v,
    );
    reject(
        &token_with(&f.es256, r#"{"sub":"u"}"#),
        &keys,
        &v,
        ErrorKind::MissingClaim,
    );
    reject(
        &token_with(&f.es256, "{}"),
        &keys,
        &v,
        ErrorKind::MissingClaim,
    );
    for exp in [
        format!(r#""{EXP}""#),
        "1e400".to_owned(),
        "-1e400".to_owned(),
        "9223372036854775808".to_owned(),
        "18446744073709551616".to_owned(),
        "1e19".to_owned(),
        "true".to_owned(),
        "null".to_owned(),
        format!("[{EXP}]"),
        format!(r#"{{"t":{EXP}}}"#),
    ] {
        for claim in ["exp", "nbf", "iat"] {
            let payload = if claim == "exp" {
                format!(r#"{{"exp":{exp}}}"#)
            } else {
                format!(r#"{{"exp":{EXP},"{claim}":{exp}}}"#)
            };
            reject(
                &token_with(&f.es256, &payload),
                &keys,
                &v,
                ErrorKind::Malformed,
            );
        }
    }
    // Other registered string claims must be strings.
    for bad in [r#""sub":1"#, r#""jti":{}"#, r#""sub":null"#] {
        let payload = format!(r#"{{"exp":{EXP},{bad}}}"#);
        reject(
            &token_with(&f.es256, &payload),
            &keys,
            &v,
            ErrorKind::Malformed,
        );
    }
}

// ---------------------------------------------------------------------------
// Token structure and key selection
// ---------------------------------------------------------------------------

#[test]
fn token_structure() {
    let f = fx();
    let keys = all_keys();
    let v = Validation::new();
    let good = token(&f.es256);
    accept(&good, &keys, &v);
    let (header, rest) = good.split_once('.').unwrap();
    let (payload, sig) = rest.split_once('.').unwrap();
    for bad in [
        String::new(),
        ".".to_owned(),
        "..".to_owned(),
        "...".to_owned(),
        header.to_owned(),
        format!("{header}.{payload}"),
        format!("{header}.{sig}"),
        format!("{header}.{payload}.{sig}.{sig}"),
        format!("{header}.{payload}.{sig}."),
        format!(".{header}.{payload}.{sig}"),
        format!("{header}.{payload}.{payload}.{payload}.{sig}"),
        format!(".{payload}.{sig}"),
    ] {
        reject(&bad, &keys, &v, ErrorKind::Malformed);
    }
    // Header JSON that is not UTF-8, or not a JSON object, or without alg.
    let mut non_utf8 = br#"{"alg":"ES256","kid":"ec1","x":""#.to_vec();
    non_utf8.extend_from_slice(b"\xff\xfe");
    non_utf8.extend_from_slice(br#""}"#);
    let mut overlong = br#"{"alg":"ES256","kid":"ec1","x":""#.to_vec();
    overlong.extend_from_slice(b"\xc0\xaf");
    overlong.extend_from_slice(br#""}"#);
    for header in [non_utf8, overlong] {
        let t = forge_bytes(&f.es256, &header, claims().as_bytes());
        reject(&t, &keys, &v, ErrorKind::Malformed);
        // The same bytes in the (signed) payload.
        let payload = [format!(r#"{{"exp":{EXP},"#).as_bytes(), &header[1..]].concat();
        let t = forge_bytes(&f.es256, header_of(&f.es256).as_bytes(), &payload);
        reject(&t, &keys, &v, ErrorKind::Malformed);
    }
    for header in [
        r#"{"kid":"ec1"}"#,
        r#"{"alg":null,"kid":"ec1"}"#,
        r#"{"alg":["ES256"],"kid":"ec1"}"#,
        r#"{"alg":"ES256","kid":1}"#,
        r#"["ES256"]"#,
        r#""ES256""#,
        "",
        r#"{"alg":"ES256","kid":"ec1"} x"#,
        "\u{feff}{\"alg\":\"ES256\",\"kid\":\"ec1\"}",
    ] {
        reject(
            &forge(&f.es256, header, &claims()),
            &keys,
            &v,
            ErrorKind::Malformed,
        );
    }
    // A payload that is not a JSON object.
    for payload in [
        "[]",
        "\"x\"",
        "1",
        "",
        "null",
        &format!(r#"{{"exp":{EXP},}}"#),
    ] {
        reject(
            &token_with(&f.es256, payload),
            &keys,
            &v,
            ErrorKind::Malformed,
        );
    }
}

#[test]
fn key_selection() {
    let f = fx();
    let v = Validation::new();
    let keys = all_keys();
    // Unknown kid.
    let other = SigningKey::generate(Algorithm::ES256)
        .unwrap()
        .with_kid("ec2");
    reject(&token(&other), &keys, &v, ErrorKind::UnknownKid);
    let t = forge(&f.es256, r#"{"alg":"ES256","kid":"EC1"}"#, &claims());
    reject(&t, &keys, &v, ErrorKind::UnknownKid);
    // kid names an existing key, signed by another: bad signature.
    let t = forge(&other, r#"{"alg":"ES256","kid":"ec1"}"#, &claims());
    reject(&t, &keys, &v, ErrorKind::BadSignature);

    // No kid with two keys of the same algorithm.
    let two = KeySet::new(vec![
        f.es256.verifying_key().unwrap(),
        other.verifying_key().unwrap(),
    ]);
    let no_kid = forge(&f.es256, r#"{"alg":"ES256"}"#, &claims());
    reject(&no_kid, &two, &v, ErrorKind::UnknownKid);
    // Controls: with the kid, or with a single fitting key, it verifies.
    accept(&token(&f.es256), &two, &v);
    accept(&no_kid, &set(&[&f.es256]), &v);
    accept(&no_kid, &keys, &v);
    // An empty key set knows no key.
    reject(
        &token(&f.es256),
        &KeySet::default(),
        &v,
        ErrorKind::UnknownKid,
    );
}

#[test]
fn jwks_keys_not_for_verification_are_never_used() {
    let f = fx();
    let v = Validation::new();
    let jwks = |jwk: &Value| JwkSet::parse(&json!({ "keys": [jwk] }).to_string()).unwrap();
    let base = public_jwk(&f.es256);
    let with = |name: &str, value: Value| {
        let mut jwk = base.clone();
        jwk[name] = value;
        jwk
    };
    let without_use = {
        let mut jwk = base.clone();
        jwk.as_object_mut().unwrap().remove("use");
        jwk
    };
    let t = token(&f.es256);
    let no_kid = forge(&f.es256, r#"{"alg":"ES256"}"#, &claims());
    // Controls.
    for jwk in [
        base.clone(),
        with("key_ops", json!(["verify"])),
        with("key_ops", json!(["sign", "verify"])),
        without_use.clone(),
    ] {
        let keys = KeySet::from_jwks(&jwks(&jwk), &[]).unwrap();
        accept(&t, &keys, &v);
        accept(&no_kid, &keys, &v);
    }
    for jwk in [
        with("use", json!("enc")),
        with("use", json!("SIG")),
        with("key_ops", json!(["sign"])),
        with("key_ops", json!(["encrypt", "wrapKey"])),
        with("key_ops", json!([])),
        {
            let mut jwk = without_use.clone();
            jwk["key_ops"] = json!(["encrypt"]);
            jwk
        },
    ] {
        let keys = KeySet::from_jwks(&jwks(&jwk), &[]).unwrap();
        assert!(keys.is_empty(), "{jwk}");
        reject(&t, &keys, &v, ErrorKind::UnknownKid);
        reject(&no_kid, &keys, &v, ErrorKind::AlgNotAllowed);
    }
}

#[test]
fn hmac_signature_must_be_exact() {
    let f = fx();
    let keys = all_keys();
    let v = Validation::new();
    let good = token(&f.hs256);
    accept(&good, &keys, &v);
    let (input, sig) = good.rsplit_once('.').unwrap();
    let tag = b64::decode(sig).unwrap();
    for bad in [
        Vec::new(),
        tag[..16].to_vec(),
        tag[..31].to_vec(),
        [&tag[..], &[0]].concat(),
        vec![0; 32],
    ] {
        reject(
            &format!("{input}.{}", b64::encode(&bad)),
            &keys,
            &v,
            ErrorKind::BadSignature,
        );
    }
}
