//! Header parameters: keys named by the token itself, crit and b64.

use std::io::ErrorKind as IoErrorKind;
use std::net::TcpListener;
use std::time::Duration;

use serde_json::{json, Value};
use tessera_jose::{b64, Algorithm, ErrorKind, KeySet, SigningKey, Validation, VerifyingKey};

use super::{
    accept, all_keys, claims, der, forge, fx, jwk_member, public_jwk, reject, set, std_b64, token,
};

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
