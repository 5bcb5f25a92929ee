//! Property tests of the JWS sign/verify path: every algorithm round-trips
//! arbitrary claims, and no single-byte change of a signed token verifies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use tessera_jose::{verify_at, Algorithm, KeySet, Signer, SigningKey, UnixTime, Validation};

const NOW: i64 = 1_700_000_000;
const ISSUER: &str = "https://auth.example.com";
const AUDIENCE: &str = "orders-api";

/// One signer per algorithm, its verifier key set, and one signed token.
struct Entry {
    alg: Algorithm,
    signer: Signer,
    keys: KeySet,
    token: String,
}

/// Keys are generated once for the whole test binary (RSA is slow).
fn entries() -> &'static [Entry] {
    static ENTRIES: OnceLock<Vec<Entry>> = OnceLock::new();
    ENTRIES.get_or_init(|| {
        Algorithm::ALL
            .into_iter()
            .map(|alg| {
                let key = SigningKey::generate(alg).unwrap();
                let kid = key.thumbprint();
                let key = key.with_kid(kid);
                let keys = KeySet::new(vec![key.verifying_key().unwrap()]);
                let signer = Signer::new(key).typ("at+jwt");
                let token = signer
                    .sign(&json!({
                        "iss": ISSUER, "aud": AUDIENCE, "sub": "user_1",
                        "iat": NOW, "exp": NOW + 900, "scope": "read write",
                    }))
                    .unwrap();
                Entry {
                    alg,
                    signer,
                    keys,
                    token,
                }
            })
            .collect()
    })
}

fn policy() -> Validation {
    Validation::new()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .typ("at+jwt")
}

fn now() -> UnixTime {
    UnixTime::from_secs(NOW)
}

/// Arbitrary strings (any Unicode scalar, control characters included),
/// integers and booleans.
fn claim_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..24)
            .prop_map(|cs| Value::from(cs.into_iter().collect::<String>())),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        prop::collection::vec(any::<i32>(), 0..4).prop_map(Value::from),
    ]
}

/// Custom claims under names that cannot collide with registered ones.
fn custom_claims() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map("[a-zA-Z0-9_]{1,12}", claim_value(), 0..6).prop_map(|m| {
        m.into_iter()
            .map(|(name, value)| (format!("x_{name}"), value))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_algorithm_round_trips_arbitrary_claims(
        custom in custom_claims(),
        sub in prop::collection::vec(any::<char>(), 0..24)
            .prop_map(|cs| cs.into_iter().collect::<String>()),
        lifetime in 1i64..100_000,
    ) {
        let mut claims = custom;
        claims.insert("iss".into(), ISSUER.into());
        claims.insert("aud".into(), json!([AUDIENCE]));
        claims.insert("sub".into(), sub.clone().into());
        claims.insert("exp".into(), (NOW + lifetime).into());
        let claims = Value::Object(claims);
        for entry in entries() {
            let token = entry.signer.sign(&claims).unwrap();
            let verified = verify_at::<Value>(&token, &entry.keys, &policy(), now())
                .map_err(|e| TestCaseError::fail(format!("{}: {e}", entry.alg)))?;
            prop_assert_eq!(verified.header.alg, entry.alg);
            let registered = verified.registered();
            prop_assert_eq!(registered.sub.as_deref(), Some(sub.as_str()));
            prop_assert_eq!(registered.exp.map(UnixTime::secs), Some(NOW + lifetime));
            prop_assert_eq!(&verified.claims, &claims);
        }
    }
}

const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Replacement bytes: mostly ones a decoder could take for base64url (so
/// the change reaches the signature check), plus any byte at all.
fn replacement() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => prop::sample::select(B64URL.to_vec()),
        1 => prop::sample::select(b".=+/ \n".to_vec()),
        1 => any::<u8>(),
    ]
}

/// Replaces byte `at` of `token` by `byte` and asserts the result is refused.
fn assert_refused(entry: &Entry, at: usize, byte: u8) -> Result<(), TestCaseError> {
    let mut bytes = entry.token.clone().into_bytes();
    prop_assume!(bytes[at] != byte);
    bytes[at] = byte;
    // A change that breaks UTF-8 cannot even be presented as a &str.
    if let Ok(tampered) = String::from_utf8(bytes) {
        let result = verify_at::<Value>(&tampered, &entry.keys, &policy(), now());
        prop_assert!(
            result.is_err(),
            "{}: byte {at} changed to {byte:#04x} still verifies",
            entry.alg
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_single_byte_change_is_refused(
        which in 0..Algorithm::ALL.len(),
        at in any::<prop::sample::Index>(),
        byte in replacement(),
    ) {
        let entry = &entries()[which];
        assert_refused(entry, at.index(entry.token.len()), byte)?;
    }
}

#[test]
fn untampered_tokens_verify() {
    for entry in entries() {
        let verified = verify_at::<Value>(&entry.token, &entry.keys, &policy(), now()).unwrap();
        assert_eq!(verified.header.alg, entry.alg);
    }
}

/// Exhaustive over positions: every byte of every algorithm's token, replaced
/// by its neighbour in the base64url alphabet (or by 'A' for '.').
#[test]
fn every_position_of_every_token_is_covered() {
    for entry in entries() {
        for (at, &old) in entry.token.as_bytes().iter().enumerate() {
            let byte = match B64URL.iter().position(|&c| c == old) {
                Some(i) => B64URL[(i + 1) % B64URL.len()],
                None => b'A',
            };
            assert_refused(entry, at, byte).unwrap();
        }
    }
}
