//! Key selection: kid, key sets and keys not meant for verification.

use serde_json::{json, Value};
use tessera_jose::{Algorithm, ErrorKind, JwkSet, KeySet, SigningKey, Validation};

use super::{accept, all_keys, claims, forge, fx, public_jwk, reject, set, token};

// ---------------------------------------------------------------------------
// Key selection
// ---------------------------------------------------------------------------

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
