//! Project Wycheproof vectors run through tessera-jose's public key types.
//!
//! Every key is imported the way a Tessera deployment imports one: as a JWK
//! built from the test group's public key (EC x/y, RSA n/e, OKP x), bound to
//! one JOSE algorithm, and cross-checked against the group's DER
//! SubjectPublicKeyInfo through `VerifyingKey::from_spki_der` (both imports
//! must agree). HMAC secrets go through `VerifyingKey::from_secret`.
//!
//! Why `VerifyingKey::verify` and not `verify_at`: a Wycheproof message is
//! arbitrary bytes, while a JWS signs the ASCII text
//! `BASE64URL(header) '.' BASE64URL(payload)`, so a Wycheproof message cannot
//! be made the signing input of a compact token (and re-signing our own
//! token would throw the vector away). `verify_at` decodes the signature and
//! then calls exactly this `VerifyingKey::verify` on the signing input; the
//! JOSE layers around it (header, `alg` binding, key selection, claims) are
//! covered by `tests/vectors.rs` and the unit tests. So every valid ECDSA,
//! EdDSA, RSA and HMAC vector here exercises the primitive of the full path,
//! and nothing more is needed for them.
//!
//! Outcomes, per set:
//! - `valid` vectors must verify; `invalid` ones must be rejected, either by
//!   the signature check (`bad_signature`) or because tessera refuses the
//!   key itself (counted as "key refused").
//! - `acceptable` vectors may go either way; both outcomes are counted.
//! - A valid vector whose key tessera refuses by policy (RSA < 2048 bits, an
//!   HMAC secret shorter than the hash) is counted as "weak key", and the
//!   refusal must be `weak_key`: any other refusal of a valid vector's key
//!   fails the test.
//! - Valid HMAC vectors with truncated tags, and valid RSA-PSS vectors whose
//!   salt is not the hash length, are counted as "policy": JOSE (RFC 7518
//!   §3.2, §3.5) allows neither, so tessera must reject them.
//! - Parameter sets JOSE has no algorithm for (other hashes, MGF1 with
//!   another hash, SHAKE, PSS parameters inside the key) are not run and are
//!   counted as "skipped", and so are the invalid vectors of PSS groups with
//!   another salt length (their expected result does not carry over).
//!
//! Each family asserts that it checked more than zero valid vectors, so a
//! broken loader cannot pass silently.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use tessera_jose::{b64, Algorithm, Curve, ErrorKind, Jwk, Result, SigningKey, VerifyingKey};
use wycheproof::{HashFunction, Mgf, TestResult};

/// Counts for one Wycheproof test set.
#[derive(Default)]
struct Tally {
    name: String,
    /// Valid vectors that verified.
    valid: usize,
    /// Invalid vectors that were rejected (signature or key).
    invalid: usize,
    /// Of `invalid`: rejected because the key itself was refused.
    key_refused: usize,
    /// Acceptable vectors that verified.
    acceptable_accepted: usize,
    /// Acceptable vectors that were rejected.
    acceptable_rejected: usize,
    /// Valid vectors whose key tessera refuses as `weak_key`.
    weak_key: usize,
    /// Valid vectors tessera must reject because JOSE does not allow them
    /// (truncated HMAC tag, PSS salt length other than the hash length).
    policy: usize,
    /// Vectors not run (no JOSE algorithm for their parameters).
    skipped: usize,
    /// Every disagreement, reported together at the end.
    failures: Vec<String>,
}

impl Tally {
    fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// Records one vector checked with `key` (or the error importing it).
    fn check(
        &mut self,
        tc_id: usize,
        result: TestResult,
        key: &Result<VerifyingKey>,
        msg: &[u8],
        sig: &[u8],
    ) {
        let id = format!("{} tc {tc_id}", self.name);
        let key = match key {
            Ok(key) => key,
            Err(e) => {
                match result {
                    TestResult::Valid if e.kind() == ErrorKind::WeakKey => self.weak_key += 1,
                    TestResult::Valid => self
                        .failures
                        .push(format!("{id}: valid vector, key refused: {e}")),
                    TestResult::Invalid => {
                        self.invalid += 1;
                        self.key_refused += 1;
                    }
                    TestResult::Acceptable => self.acceptable_rejected += 1,
                }
                return;
            }
        };
        match (result, key.verify(msg, sig)) {
            (TestResult::Valid, Ok(())) => self.valid += 1,
            (TestResult::Valid, Err(e)) => self
                .failures
                .push(format!("{id}: valid vector rejected: {e}")),
            (TestResult::Invalid, Ok(())) => {
                self.failures.push(format!("{id}: invalid vector accepted"))
            }
            (TestResult::Invalid, Err(e)) if e.kind() == ErrorKind::BadSignature => {
                self.invalid += 1
            }
            (TestResult::Invalid, Err(e)) => self
                .failures
                .push(format!("{id}: rejected with the wrong kind: {e}")),
            (TestResult::Acceptable, Ok(())) => self.acceptable_accepted += 1,
            (TestResult::Acceptable, Err(_)) => self.acceptable_rejected += 1,
        }
    }

    /// Records a vector that tessera must reject by policy whatever
    /// Wycheproof says of it (truncated MAC, other PSS salt length).
    fn must_reject(&mut self, tc_id: usize, result: TestResult, outcome: Result<()>) {
        let id = format!("{} tc {tc_id}", self.name);
        match outcome {
            Ok(()) => self
                .failures
                .push(format!("{id}: accepted, but JOSE does not allow it")),
            Err(e) if e.kind() != ErrorKind::BadSignature => self
                .failures
                .push(format!("{id}: rejected with the wrong kind: {e}")),
            Err(_) => match result {
                TestResult::Valid => self.policy += 1,
                TestResult::Invalid => self.invalid += 1,
                TestResult::Acceptable => self.acceptable_rejected += 1,
            },
        }
    }

    /// Prints the summary line and returns the number of valid vectors
    /// verified; panics on any failure.
    fn finish(self) -> usize {
        eprintln!(
            "wycheproof {:<36} valid {:>4} | invalid {:>4} (key refused {:>3}) | \
             acceptable {:>2} accepted, {:>2} rejected | weak key {:>2} | policy {:>3} | \
             skipped {:>4}",
            self.name,
            self.valid,
            self.invalid,
            self.key_refused,
            self.acceptable_accepted,
            self.acceptable_rejected,
            self.weak_key,
            self.policy,
            self.skipped
        );
        assert!(
            self.failures.is_empty(),
            "{} disagreement(s):\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
        self.valid
    }
}

/// An unsigned big-endian integer without leading zero bytes (Wycheproof
/// writes integers in signed form, with a leading zero when the top bit is
/// set; a JWK member has none).
fn unsigned(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// A coordinate at its full length (RFC 7518 §6.2.1.2), or as is when it
/// does not fit (tessera must then refuse the key).
fn coordinate(bytes: &[u8], len: usize) -> Vec<u8> {
    let v = unsigned(bytes);
    let mut out = vec![0u8; len.saturating_sub(v.len())];
    out.extend_from_slice(v);
    out
}

/// Imports a public JWK for `alg`, and the group's SPKI DER for the same
/// algorithm; both imports must agree (same thumbprint, or same error).
fn import(
    tally: &mut Tally,
    jwk: serde_json::Value,
    der: &[u8],
    alg: Algorithm,
) -> Result<VerifyingKey> {
    let from_jwk = Jwk::parse(&jwk.to_string()).and_then(|j| j.to_verifying_key(Some(alg)));
    let from_der = VerifyingKey::from_spki_der(der, alg);
    let agree = match (&from_jwk, &from_der) {
        (Ok(a), Ok(b)) => a.thumbprint() == b.thumbprint(),
        (Err(a), Err(b)) => a.kind() == b.kind(),
        _ => false,
    };
    if !agree {
        tally.failures.push(format!(
            "{}: JWK and SPKI imports disagree: {:?} vs {:?}",
            tally.name,
            from_jwk.as_ref().map(|k| k.thumbprint()),
            from_der.as_ref().map(|k| k.thumbprint())
        ));
    }
    from_jwk
}

fn rsa_jwk(n: &[u8], e: &[u8]) -> serde_json::Value {
    json!({"kty": "RSA", "n": b64::encode(unsigned(n)), "e": b64::encode(unsigned(e))})
}

fn hash_len(hash: HashFunction) -> Option<usize> {
    match hash {
        HashFunction::Sha2_256 => Some(32),
        HashFunction::Sha2_384 => Some(48),
        HashFunction::Sha2_512 => Some(64),
        _ => None,
    }
}

#[test]
fn ecdsa_p1363() {
    use wycheproof::ecdsa::{TestName, TestSet};
    let mut valid = 0;
    for (name, alg, curve) in [
        (
            TestName::EcdsaSecp256r1Sha256P1363,
            Algorithm::ES256,
            Curve::P256,
        ),
        (
            TestName::EcdsaSecp384r1Sha384P1363,
            Algorithm::ES384,
            Curve::P384,
        ),
        (
            TestName::EcdsaSecp521r1Sha512P1363,
            Algorithm::ES512,
            Curve::P521,
        ),
    ] {
        let set = TestSet::load(name).unwrap();
        let mut tally = Tally::new(format!("{name:?}"));
        for group in &set.test_groups {
            let len = curve.coordinate_len();
            let jwk = json!({
                "kty": "EC",
                "crv": curve.name(),
                "x": b64::encode(coordinate(&group.key.affine_x, len)),
                "y": b64::encode(coordinate(&group.key.affine_y, len)),
            });
            let key = import(&mut tally, jwk, &group.der, alg);
            for test in &group.tests {
                tally.check(test.tc_id, test.result, &key, &test.msg, &test.sig);
            }
        }
        valid += tally.finish();
    }
    assert!(valid > 0, "no valid ECDSA vector was checked");
}

#[test]
fn eddsa_ed25519() {
    use wycheproof::eddsa::{TestName, TestSet};
    let set = TestSet::load(TestName::Ed25519).unwrap();
    let mut tally = Tally::new("Ed25519");
    for group in &set.test_groups {
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64::encode(&*group.key.pk)});
        let key = import(&mut tally, jwk, &group.der, Algorithm::EdDSA);
        for test in &group.tests {
            tally.check(test.tc_id, test.result, &key, &test.msg, &test.sig);
        }
    }
    assert!(tally.finish() > 0, "no valid Ed25519 vector was checked");
}

#[test]
fn rsa_pkcs1_v15() {
    use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
    let mut valid = 0;
    for name in TestName::all() {
        let set = TestSet::load(name).unwrap();
        let mut tally = Tally::new(format!("{name:?}"));
        for group in &set.test_groups {
            let alg = match group.hash {
                HashFunction::Sha2_256 => Algorithm::RS256,
                HashFunction::Sha2_384 => Algorithm::RS384,
                HashFunction::Sha2_512 => Algorithm::RS512,
                // SHA-224, SHA-512/t and SHA-3: no JOSE algorithm.
                _ => {
                    tally.skipped += group.tests.len();
                    continue;
                }
            };
            let key = import(
                &mut tally,
                rsa_jwk(&group.key.n, &group.key.e),
                &group.der,
                alg,
            );
            for test in &group.tests {
                tally.check(test.tc_id, test.result, &key, &test.msg, &test.sig);
            }
        }
        if tally.skipped > 0 && tally.valid + tally.invalid + tally.policy + tally.weak_key == 0 {
            eprintln!("wycheproof {name:?}: skipped (no JOSE algorithm for its hash)");
            continue;
        }
        valid += tally.finish();
    }
    assert!(valid > 0, "no valid RSA PKCS#1 v1.5 vector was checked");
}

#[test]
fn rsa_pss() {
    use wycheproof::rsa_pss_verify::{TestGroupTypeId, TestName, TestSet};
    let mut valid = 0;
    let mut skipped_sets = Vec::new();
    for name in TestName::all() {
        let set = TestSet::load(name).unwrap();
        let mut tally = Tally::new(format!("{name:?}"));
        for group in &set.test_groups {
            let alg = match group.hash {
                HashFunction::Sha2_256 => Algorithm::PS256,
                HashFunction::Sha2_384 => Algorithm::PS384,
                HashFunction::Sha2_512 => Algorithm::PS512,
                _ => {
                    tally.skipped += group.tests.len();
                    continue;
                }
            };
            // PS256/384/512 (RFC 7518 §3.5) use MGF1 with the same hash; the
            // key carries no PSS parameters (a JWK cannot), so the groups
            // whose SPKI holds them are left out.
            if group.test_type != TestGroupTypeId::RsaPssVerify
                || group.mgf != Mgf::Mgf1
                || group.mgf_hash != Some(group.hash)
            {
                tally.skipped += group.tests.len();
                continue;
            }
            let key = import(
                &mut tally,
                rsa_jwk(&group.key.n, &group.key.e),
                &group.der,
                alg,
            );
            if Some(group.salt_size) == hash_len(group.hash) {
                for test in &group.tests {
                    tally.check(test.tc_id, test.result, &key, &test.msg, &test.sig);
                }
            } else {
                // RFC 7518 §3.5: the salt is as long as the hash output.
                // The valid vectors here, PSS signatures with another salt
                // length, are not PS256/384/512 signatures and must fail.
                // The invalid ones are invalid *for this salt length* only
                // (one is re-signed with a salt of the hash length, a good
                // PS256 signature), so JOSE gives them no expected result.
                let key = key.expect("a 2048-bit or larger key");
                for test in &group.tests {
                    if test.result == TestResult::Valid {
                        tally.must_reject(
                            test.tc_id,
                            test.result,
                            key.verify(&test.msg, &test.sig),
                        );
                    } else {
                        tally.skipped += 1;
                    }
                }
            }
        }
        if tally.valid + tally.invalid + tally.policy + tally.weak_key == 0 {
            skipped_sets.push(format!("{name:?}"));
            continue;
        }
        valid += tally.finish();
    }
    eprintln!(
        "wycheproof RSA-PSS sets skipped (SHA-1, SHA-224, SHA-512/t, SHAKE, MGF1 with \
         another hash, or PSS parameters in the key): {}",
        skipped_sets.join(", ")
    );
    assert!(valid > 0, "no valid RSA-PSS vector was checked");
}

#[test]
fn hmac_sha2() {
    use wycheproof::mac::{TestName, TestSet};
    let mut valid = 0;
    for (name, alg) in [
        (TestName::HmacSha256, Algorithm::HS256),
        (TestName::HmacSha384, Algorithm::HS384),
        (TestName::HmacSha512, Algorithm::HS512),
    ] {
        let set = TestSet::load(name).unwrap();
        let mut tally = Tally::new(format!("{name:?}"));
        let min = alg.min_secret_len().unwrap();
        for group in &set.test_groups {
            let full_tag = group.tag_size == min * 8;
            for test in &group.tests {
                let key = VerifyingKey::from_secret(alg, &test.key);
                if test.key.len() < min {
                    // Shorter than the hash output: tessera refuses the
                    // secret itself (RFC 7518 §3.2), whatever the vector.
                    match &key {
                        Err(e) if e.kind() == ErrorKind::WeakKey => {}
                        other => tally.failures.push(format!(
                            "{name:?} tc {}: {}-byte secret not refused as weak_key: {:?}",
                            test.tc_id,
                            test.key.len(),
                            other.as_ref().err()
                        )),
                    }
                    assert_eq!(
                        SigningKey::from_secret(alg, &test.key)
                            .map(|_| ())
                            .unwrap_err()
                            .kind(),
                        ErrorKind::WeakKey
                    );
                    tally.check(test.tc_id, test.result, &key, &test.msg, &test.tag);
                    continue;
                }
                let key = key.unwrap();
                if !full_tag {
                    // JWS HMAC signatures are the full output; a truncated
                    // tag, valid for HMAC in general, must not verify.
                    tally.must_reject(test.tc_id, test.result, key.verify(&test.msg, &test.tag));
                    continue;
                }
                tally.check(test.tc_id, test.result, &Ok(key), &test.msg, &test.tag);
                if test.result == TestResult::Valid {
                    // HMAC is deterministic: signing reproduces the tag.
                    let tag = SigningKey::from_secret(alg, &test.key)
                        .unwrap()
                        .sign(&test.msg)
                        .unwrap();
                    if tag != *test.tag {
                        tally
                            .failures
                            .push(format!("{name:?} tc {}: tag not reproduced", test.tc_id));
                    }
                }
            }
        }
        valid += tally.finish();
    }
    assert!(valid > 0, "no valid HMAC vector was checked");
}
