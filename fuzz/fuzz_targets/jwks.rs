//! Fuzzes a JWKS response as the verifier's remote key set reads it
//! (UTF-8, JWK Set, keys bound to algorithms, at least one usable key).
//!
//! The first byte picks the algorithms the verifier was configured with
//! (none: every key must name its `alg`); the rest is the response body.
//! Invariants beyond "never panics":
//! - an accepted set holds at least one key, each bound to an algorithm
//!   the verifier allows (when it names any);
//! - the public keys of an accepted set, published again as a JWKS, read
//!   back as the same keys (kid, algorithm, RFC 7638 thumbprint).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_jose::{Algorithm, KeySet};
use tessera_verify::fuzzing::jwks;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let allowed: Vec<Algorithm> = Algorithm::ALL
        .iter()
        .enumerate()
        .filter(|(i, _)| mode & (1 << (i % 8)) != 0 && mode & 0x80 == 0)
        .map(|(_, a)| *a)
        .collect();
    let Ok(keys) = jwks(body, &allowed) else {
        return;
    };
    assert!(!keys.is_empty(), "an accepted JWKS without a key");
    if !allowed.is_empty() {
        for k in keys.keys() {
            assert!(
                allowed.contains(&k.alg()),
                "key bound to {:?}, not allowed",
                k.alg()
            );
        }
    }
    let public: Vec<_> = keys.keys().iter().filter_map(|k| k.public_jwk()).collect();
    if public.is_empty() {
        return; // secrets only: nothing is published
    }
    let text = serde_json::to_vec(&serde_json::json!({ "keys": public })).expect("JSON");
    let again = jwks(&text, &allowed).expect("a republished JWKS refused");
    assert_eq!(
        published(&again),
        published(&keys),
        "republished keys differ: {}",
        String::from_utf8_lossy(&text)
    );
});

/// (kid, algorithm, thumbprint) of the public keys, sorted.
fn published(keys: &KeySet) -> Vec<(Option<String>, Algorithm, String)> {
    let mut v: Vec<_> = keys
        .keys()
        .iter()
        .filter_map(|k| Some((k.kid().map(str::to_owned), k.alg(), k.thumbprint()?)))
        .collect();
    v.sort_by(|a, b| (&a.0, a.1.name(), &a.2).cmp(&(&b.0, b.1.name(), &b.2)));
    v
}
