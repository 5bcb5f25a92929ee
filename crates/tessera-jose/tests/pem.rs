//! PKCS#8 and SPKI PEM import, driven by the OpenSSL-generated fixtures in
//! `tests/data/pem/` (test keys only).
#![allow(clippy::unwrap_used)]

use tessera_jose::{Algorithm, ErrorKind, SigningKey, VerifyingKey};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/data/pem/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// (private PEM, public PEM, algorithms the key may be bound to)
const PAIRS: &[(&str, &str, &[Algorithm])] = &[
    (
        "rsa2048.key.pem",
        "rsa2048.pub.pem",
        &[
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
    ),
    ("ecp256.key.pem", "ecp256.pub.pem", &[Algorithm::ES256]),
    ("ecp384.key.pem", "ecp384.pub.pem", &[Algorithm::ES384]),
    ("ecp521.key.pem", "ecp521.pub.pem", &[Algorithm::ES512]),
    ("ed25519.key.pem", "ed25519.pub.pem", &[Algorithm::EdDSA]),
];

#[test]
fn pkcs8_and_spki_import_sign_and_verify_for_each_fitting_algorithm() {
    let mut checked = 0;
    for (private, public, algs) in PAIRS {
        for &alg in *algs {
            let sk = SigningKey::from_pkcs8_pem(&fixture(private), alg).unwrap();
            let vk = VerifyingKey::from_spki_pem(&fixture(public), alg).unwrap();
            assert_eq!(sk.alg(), alg);
            assert_eq!(vk.alg(), alg);
            // The public key derived from the private PEM is the one in the SPKI PEM.
            assert_eq!(Some(sk.thumbprint()), vk.thumbprint(), "{private}");
            let signature = sk.sign(b"input").unwrap();
            vk.verify(b"input", &signature).unwrap();
            assert_eq!(
                vk.verify(b"other", &signature).unwrap_err().kind(),
                ErrorKind::BadSignature
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 10);
}

#[test]
fn a_key_cannot_be_bound_to_an_algorithm_of_another_family_or_curve() {
    for (private, public, algs) in PAIRS {
        for alg in Algorithm::ALL.into_iter().filter(|a| !algs.contains(a)) {
            let err = SigningKey::from_pkcs8_pem(&fixture(private), alg).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidKey, "{private} as {alg}");
            let err = VerifyingKey::from_spki_pem(&fixture(public), alg).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidKey, "{public} as {alg}");
        }
    }
}

#[test]
fn rsa_under_2048_bits_is_weak() {
    let err =
        SigningKey::from_pkcs8_pem(&fixture("rsa1024.key.pem"), Algorithm::RS256).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WeakKey);
    let err =
        VerifyingKey::from_spki_pem(&fixture("rsa1024.pub.pem"), Algorithm::RS256).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WeakKey);
}

#[test]
fn wrong_labels_unsupported_curves_and_garbage_are_invalid_keys() {
    let cases = [
        // PKCS#1 is not PKCS#8: the error names the label it found.
        SigningKey::from_pkcs8_pem(&fixture("rsa2048.pkcs1.pem"), Algorithm::RS256).unwrap_err(),
        SigningKey::from_pkcs8_pem(&fixture("rsa2048.pub.pem"), Algorithm::RS256).unwrap_err(),
        SigningKey::from_pkcs8_pem(&fixture("secp256k1.key.pem"), Algorithm::ES256).unwrap_err(),
        VerifyingKey::from_spki_pem(&fixture("ecp256.key.pem"), Algorithm::ES256).unwrap_err(),
        VerifyingKey::from_spki_pem("not a pem", Algorithm::ES256).unwrap_err(),
        VerifyingKey::from_spki_der(&[0x30, 0x03, 0x02, 0x01], Algorithm::ES256).unwrap_err(),
    ];
    for err in &cases {
        assert_eq!(err.kind(), ErrorKind::InvalidKey, "{err}");
    }
    assert!(
        cases[0].message().contains("RSA PRIVATE KEY"),
        "{}",
        cases[0]
    );
}

#[test]
fn pem_errors_and_debug_never_show_key_material() {
    let pem = fixture("ecp256.key.pem");
    let body_line = pem.lines().nth(1).unwrap();
    let key = SigningKey::from_pkcs8_pem(&pem, Algorithm::ES256).unwrap();
    assert!(!format!("{key:?}").contains(&body_line[..16]));
    let err = VerifyingKey::from_spki_pem(&pem, Algorithm::ES256).unwrap_err();
    assert!(!err.to_string().contains(&body_line[..16]));
}
