//! alg "none", algorithm confusion and signature encodings.

use aws_lc_rs::encoding::AsDer;
use serde_json::json;
use tessera_jose::{
    b64, Algorithm, ErrorKind, JwkSet, KeySet, SigningKey, Validation, VerifyingKey,
};

use super::{
    accept, all_keys, capitalisations, claims, der, der_uint, forge, fx, header_of, jwk_member,
    pem, reject, set, token, verify_now,
};

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

/// RFC 9864's fully specified "Ed25519" is EdDSA over Ed25519: it verifies
/// with an Ed25519 key, and with no other kind of key.
#[test]
fn rfc9864_ed25519_name_verifies_with_ed25519_keys_only() {
    let f = fx();
    let keys = all_keys();
    let v = Validation::new();
    let header = json!({"alg": "Ed25519", "kid": "ed1"}).to_string();
    accept(&forge(&f.ed, &header, &claims()), &keys, &v);
    // Named for an Ed25519 key, signed by the P-256 key under that kid: the
    // signature fails; under the P-256 key's own kid the binding refuses it.
    reject(
        &forge(&f.es256, &header, &claims()),
        &keys,
        &v,
        ErrorKind::BadSignature,
    );
    let es_kid = json!({"alg": "Ed25519", "kid": "ec1"}).to_string();
    reject(
        &forge(&f.es256, &es_kid, &claims()),
        &keys,
        &v,
        ErrorKind::AlgNotAllowed,
    );
    // An allow-list naming only ES256 refuses it.
    let only_es = Validation::new().algorithms([Algorithm::ES256]);
    reject(
        &forge(&f.ed, &header, &claims()),
        &keys,
        &only_es,
        ErrorKind::AlgNotAllowed,
    );
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
// HMAC signatures
// ---------------------------------------------------------------------------

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
