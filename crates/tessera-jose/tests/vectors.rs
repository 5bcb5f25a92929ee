//! Published JOSE test vectors, driven by the JSON files in `tests/data/`.
//!
//! Each data file holds the RFC's keys, inputs and outputs exactly as
//! published; one test below drives each file. Where the RFC's payload is a
//! JWT claims set, the token goes through the full verification path
//! ([`verify_at`] with a [`KeySet`] and a [`Validation`]). Where it is not
//! (RFC 7515 A.4, RFC 8037 A.4, RFC 7520 §4), `verify_at` must reject the
//! token as `malformed` *after* its signature has verified, and the signature
//! itself is checked with [`VerifyingKey::verify`] over the JWS signing
//! input, the same primitive `verify_at` calls.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use tessera_jose::{
    b64, verify_at, Algorithm, ErrorKind, Jwk, KeySet, UnixTime, Validation, VerifyingKey,
};

fn load(name: &str) -> Value {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("field {field:?} is not a string in {v}"))
}

fn alg_of(v: &Value) -> Algorithm {
    Algorithm::from_name(str_of(v, "alg")).expect("known algorithm")
}

fn jwk_of(v: &Value) -> Jwk {
    Jwk::parse(&v.to_string()).expect("the RFC's JWK parses")
}

/// Splits a compact JWS into (signing input, header, payload, signature).
fn split(token: &str) -> (&str, &str, &str, &str) {
    let (signing_input, signature) = token.rsplit_once('.').expect("three parts");
    let (header, payload) = signing_input.split_once('.').expect("three parts");
    (signing_input, header, payload, signature)
}

/// The token with one character of its signature changed.
fn tampered(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    let at = token.rfind('.').unwrap() + 3;
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

fn kind<T: std::fmt::Debug>(r: tessera_jose::Result<T>) -> ErrorKind {
    r.expect_err("must be rejected").kind()
}

#[test]
fn rfc7515_appendix_a() {
    let doc = load("rfc7515_appendix_a.json");
    let now = UnixTime::from_secs(doc["now"].as_i64().unwrap());
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4, "A.1-A.4");
    for case in cases {
        let section = str_of(case, "section");
        let alg = alg_of(case);
        let token = str_of(case, "token");
        let (signing_input, header_b64, payload_b64, signature_b64) = split(token);
        let signature = b64::decode(signature_b64).unwrap();

        // The encoded parts are exactly the octets the RFC prints (A.1: CRLF
        // and a leading space inside the JSON).
        assert_eq!(
            b64::decode(header_b64).unwrap(),
            str_of(case, "header").as_bytes(),
            "{section} header"
        );
        assert_eq!(
            b64::decode(payload_b64).unwrap(),
            str_of(case, "payload").as_bytes(),
            "{section} payload"
        );

        // Import the RFC's JWK (it has no "alg": the caller binds it).
        let jwk = jwk_of(&case["jwk"]);
        let vk = jwk.to_verifying_key(Some(alg)).unwrap();
        vk.verify(signing_input.as_bytes(), &signature)
            .unwrap_or_else(|e| panic!("{section}: {e}"));

        // Signing: the deterministic algorithms reproduce the RFC's bytes;
        // ECDSA is randomized, so a fresh signature must verify instead.
        let sk = jwk.to_signing_key(Some(alg)).unwrap();
        let fresh = sk.sign(signing_input.as_bytes()).unwrap();
        if case["deterministic"].as_bool().unwrap() {
            assert_eq!(fresh, signature, "{section}: signature is not reproduced");
        } else {
            vk.verify(signing_input.as_bytes(), &fresh).unwrap();
        }
        if !alg.is_symmetric() {
            assert_eq!(Some(sk.thumbprint()), vk.thumbprint(), "{section}");
        }

        // The full JOSE path.
        let keys = KeySet::new(vec![jwk.to_verifying_key(Some(alg)).unwrap()]);
        let mut policy = Validation::new().ignore_audience().algorithms([alg]);
        if let Some(iss) = case["issuer"].as_str() {
            policy = policy.issuer(iss);
        }
        if let Some(typ) = case["typ"].as_str() {
            policy = policy.typ(typ);
        }
        match &case["claims"] {
            Value::Object(expected) => {
                let verified = verify_at::<Value>(token, &keys, &policy, now)
                    .unwrap_or_else(|e| panic!("{section}: {e}"));
                assert_eq!(verified.header.alg, alg);
                assert_eq!(verified.header.typ.as_deref(), case["typ"].as_str());
                assert_eq!(verified.claims.as_object(), Some(expected), "{section}");
                assert_eq!(
                    verified.registered().iss.as_deref(),
                    case["issuer"].as_str()
                );
                assert_eq!(
                    verified.registered().exp.map(UnixTime::secs),
                    expected["exp"].as_i64()
                );
                // A.1's private claim is carried through untouched.
                if section == "A.1" {
                    assert_eq!(verified.claims["http://example.com/is_root"], true);
                }
                // Around the end of the default 60 s leeway after exp.
                let exp = expected["exp"].as_i64().unwrap();
                let last = UnixTime::from_secs(exp + 59);
                verify_at::<Value>(token, &keys, &policy, last).unwrap();
                let expired = UnixTime::from_secs(exp + 60);
                assert_eq!(
                    kind(verify_at::<Value>(token, &keys, &policy, expired)),
                    ErrorKind::Expired,
                    "{section}"
                );
            }
            // A.4's payload is the text "Payload", not a claims set: the
            // signature verifies, then the payload is refused.
            Value::Null => assert_eq!(
                kind(verify_at::<Value>(token, &keys, &policy, now)),
                ErrorKind::Malformed,
                "{section}"
            ),
            other => panic!("{section}: bad claims {other}"),
        }
        assert_eq!(
            kind(verify_at::<Value>(&tampered(token), &keys, &policy, now)),
            ErrorKind::BadSignature,
            "{section}"
        );

        // The key's binding decides the algorithm, never the header: the
        // same material bound to another algorithm refuses the token.
        let other = match alg {
            Algorithm::HS256 => Some(Algorithm::HS512),
            Algorithm::RS256 => Some(Algorithm::PS256),
            _ => None,
        };
        if let Some(other) = other {
            let keys = KeySet::new(vec![jwk.to_verifying_key(Some(other)).unwrap()]);
            let policy = Validation::new().ignore_audience();
            assert_eq!(
                kind(verify_at::<Value>(token, &keys, &policy, now)),
                ErrorKind::AlgNotAllowed,
                "{section}"
            );
        }
    }
}

#[test]
fn rfc8037_appendix_a() {
    let doc = load("rfc8037_appendix_a.json");

    // A.1 private key, A.2 public key.
    let private = jwk_of(&doc["private_jwk"]);
    let public = jwk_of(&doc["public_jwk"]);
    assert!(private.is_private());
    assert!(!public.is_private());
    let sk = private.to_signing_key(Some(Algorithm::EdDSA)).unwrap();
    let derived = serde_json::to_value(sk.public_jwk().unwrap()).unwrap();
    assert_eq!(derived["kty"], doc["public_jwk"]["kty"]);
    assert_eq!(derived["crv"], doc["public_jwk"]["crv"]);
    assert_eq!(derived["x"], doc["public_jwk"]["x"], "A.2 x from A.1 d");
    // d and x must agree: a JWK whose x is not the seed's public key is refused.
    let mut mismatched = doc["private_jwk"].clone();
    mismatched["x"] = Value::from(b64::encode([9u8; 32]));
    assert!(jwk_of(&mismatched)
        .to_signing_key(Some(Algorithm::EdDSA))
        .is_err());

    // A.3 thumbprint, from the public JWK, the private JWK and the key.
    let thumbprint = str_of(&doc, "thumbprint");
    assert_eq!(public.thumbprint().unwrap(), thumbprint);
    assert_eq!(private.thumbprint().unwrap(), thumbprint);
    assert_eq!(sk.thumbprint(), thumbprint);
    let vk = public.to_verifying_key(Some(Algorithm::EdDSA)).unwrap();
    assert_eq!(vk.thumbprint().as_deref(), Some(thumbprint));

    // A.4 signing: Ed25519 is deterministic, so the bytes are reproduced.
    let signing_input = str_of(&doc, "signing_input");
    let (header_b64, payload_b64) = signing_input.split_once('.').unwrap();
    assert_eq!(
        b64::decode(header_b64).unwrap(),
        str_of(&doc, "header").as_bytes()
    );
    assert_eq!(
        b64::decode(payload_b64).unwrap(),
        str_of(&doc, "payload").as_bytes()
    );
    let signature = b64::decode(str_of(&doc, "signature")).unwrap();
    assert_eq!(sk.sign(signing_input.as_bytes()).unwrap(), signature);
    let token = str_of(&doc, "token");
    assert_eq!(
        token,
        format!("{signing_input}.{}", str_of(&doc, "signature"))
    );

    // A.5 verification. The payload "Example of Ed25519 signing" is not a
    // JSON claims set, so `verify_at` cannot accept the token: the signature
    // is checked with `VerifyingKey::verify` over the signing input (what
    // `verify_at` does internally), and `verify_at` must get past the
    // signature and only then refuse the payload as `malformed`.
    vk.verify(signing_input.as_bytes(), &signature).unwrap();
    assert_eq!(
        vk.verify(b"Example of Ed25519 signing", &signature)
            .unwrap_err()
            .kind(),
        ErrorKind::BadSignature
    );
    let keys = KeySet::new(vec![vk]);
    let policy = Validation::new();
    let now = UnixTime::now();
    assert_eq!(
        kind(verify_at::<Value>(token, &keys, &policy, now)),
        ErrorKind::Malformed
    );
    assert_eq!(
        kind(verify_at::<Value>(&tampered(token), &keys, &policy, now)),
        ErrorKind::BadSignature
    );
}

#[test]
fn rfc7520_section4() {
    let doc = load("rfc7520_section4.json");
    let payload = str_of(&doc, "payload");
    let payload_b64 = str_of(&doc, "payload_b64u");
    assert_eq!(b64::decode(payload_b64).unwrap(), payload.as_bytes());
    assert_eq!(b64::encode(payload), payload_b64);

    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4, "4.1-4.4");
    for case in cases {
        let section = str_of(case, "section");
        let alg = alg_of(case);
        let key_json = &doc["keys"][str_of(case, "key")];
        let jwk = jwk_of(key_json);
        assert_eq!(jwk.kid(), key_json["kid"].as_str());

        // The protected header decodes to the RFC's header, and the signing
        // input is BASE64URL(header) '.' BASE64URL(payload).
        let protected_b64 = str_of(case, "protected_b64u");
        let header: Value = serde_json::from_slice(&b64::decode(protected_b64).unwrap()).unwrap();
        assert_eq!(header, case["protected"], "{section}");
        let signing_input = str_of(case, "signing_input");
        assert_eq!(signing_input, format!("{protected_b64}.{payload_b64}"));
        let signature = b64::decode(str_of(case, "signature")).unwrap();

        // The payload is text, not a claims set: verify over the signing
        // input with the primitive `verify_at` uses.
        let vk = jwk.to_verifying_key(Some(alg)).unwrap();
        assert_eq!(vk.kid(), jwk.kid());
        vk.verify(signing_input.as_bytes(), &signature)
            .unwrap_or_else(|e| panic!("{section}: {e}"));
        let mut flipped = signature.clone();
        flipped[7] ^= 0x01;
        assert_eq!(
            vk.verify(signing_input.as_bytes(), &flipped)
                .unwrap_err()
                .kind(),
            ErrorKind::BadSignature,
            "{section}"
        );

        // RS256 and HS256 are deterministic: the RFC's bytes are reproduced.
        // PS384 (random salt) and ES512 (random k) can only be verified.
        let sk = jwk.to_signing_key(Some(alg)).unwrap();
        let fresh = sk.sign(signing_input.as_bytes()).unwrap();
        if case["deterministic"].as_bool().unwrap() {
            assert_eq!(fresh, signature, "{section}: signature is not reproduced");
        } else {
            assert_ne!(fresh, signature, "{section}: randomized signature repeated");
            vk.verify(signing_input.as_bytes(), &fresh).unwrap();
        }

        // Through `verify_at`: the key is selected by the header's kid and
        // alg, the signature verifies, and only the non-JSON payload is
        // refused. A tampered signature fails earlier, as bad_signature.
        let token = format!("{signing_input}.{}", str_of(case, "signature"));
        let keys = KeySet::new(vec![vk]);
        let policy = Validation::new();
        let now = UnixTime::now();
        assert_eq!(
            kind(verify_at::<Value>(&token, &keys, &policy, now)),
            ErrorKind::Malformed,
            "{section}"
        );
        assert_eq!(
            kind(verify_at::<Value>(&tampered(&token), &keys, &policy, now)),
            ErrorKind::BadSignature,
            "{section}"
        );
    }
}

/// RFC 7520 §4.2 and §4.1 share one RSA key: bound to PS384 it must not
/// accept the RS256 signature, and vice versa (one key, one algorithm).
#[test]
fn rfc7520_rsa_key_is_bound_to_one_padding() {
    let doc = load("rfc7520_section4.json");
    let jwk = jwk_of(&doc["keys"]["3.4"]);
    let cases = doc["cases"].as_array().unwrap();
    let by_alg = |name: &str| {
        cases
            .iter()
            .find(|c| c["alg"] == name)
            .map(|c| {
                (
                    str_of(c, "signing_input").to_owned(),
                    b64::decode(str_of(c, "signature")).unwrap(),
                )
            })
            .unwrap()
    };
    let (rs_input, rs_sig) = by_alg("RS256");
    let (ps_input, ps_sig) = by_alg("PS384");
    for (alg, input, sig) in [
        (Algorithm::PS384, &rs_input, &rs_sig),
        (Algorithm::RS256, &ps_input, &ps_sig),
        (Algorithm::PS256, &rs_input, &rs_sig),
        (Algorithm::RS384, &ps_input, &ps_sig),
    ] {
        let vk: VerifyingKey = jwk.to_verifying_key(Some(alg)).unwrap();
        assert_eq!(
            vk.verify(input.as_bytes(), sig).unwrap_err().kind(),
            ErrorKind::BadSignature,
            "{alg}"
        );
    }
}
