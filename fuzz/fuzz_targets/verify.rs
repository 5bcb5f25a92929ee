//! Fuzzes the whole parse-and-verify path: size check, split, base64url,
//! header scan, key selection, signature, payload scan, claims.
//!
//! Half of the inputs are spliced onto a valid header and payload so the
//! fuzzer reaches the deeper stages instead of dying at base64url.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tessera_jose::{verify_at, Algorithm, KeySet, SigningKey, UnixTime, Validation};

struct Fixture {
    keys: KeySet,
    policy: Validation,
    valid: String,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let hs = SigningKey::from_secret(Algorithm::HS256, &[7u8; 32]).expect("key").with_kid("hs");
        let es = SigningKey::generate(Algorithm::ES256).expect("key").with_kid("es");
        let keys = KeySet::new(vec![hs.verifying_key().expect("vk"), es.verifying_key().expect("vk")]);
        let valid = tessera_jose::Signer::new(hs)
            .sign(&serde_json::json!({"iss": "i", "aud": "a", "exp": 2_000_000_000u32}))
            .expect("sign");
        Fixture {
            keys,
            policy: Validation::new().issuer("i").audience("a"),
            valid,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let now = UnixTime::from_secs(1_700_000_000);
    if let Some((&mode, rest)) = data.split_first() {
        let text = String::from_utf8_lossy(rest);
        let token = if mode & 1 == 0 {
            text.into_owned()
        } else {
            // Keep a valid prefix up to a fuzzer-chosen point, then the fuzz bytes.
            let cut = usize::from(mode >> 1) * f.valid.len() / 128;
            format!("{}{}", &f.valid[..cut.min(f.valid.len())], text)
        };
        let _ = verify_at::<serde_json::Value>(&token, &f.keys, &f.policy, now);
    }
});
