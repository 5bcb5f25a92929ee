//! `tessera token sign`.

use serde_json::{json, Value};

use super::{members, now, parts, set, str_of, without, Dir};

// ---------------------------------------------------------------------------
// token sign
// ---------------------------------------------------------------------------

// The header is exactly alg and kid from the key, and typ "JWT".
#[test]
fn sign_header_has_alg_and_kid_of_key_and_typ_jwt() {
    let dir = Dir::new();
    for alg in ["ES384", "EdDSA", "PS256", "HS512"] {
        let key = dir.genkey(alg, "k.json", &[]);
        let (header, _) = parts(&dir.sign("k.json", &[]));
        assert_eq!(
            header,
            json!({ "alg": alg, "kid": key["kid"], "typ": "JWT" }),
            "{alg}"
        );
    }
}

// --typ sets the header typ.
#[test]
fn sign_typ_flag_sets_header_typ() {
    let dir = Dir::new();
    dir.es256();
    let (header, _) = parts(&dir.sign("key.json", &["--typ", "at+jwt"]));
    assert_eq!(header["typ"], "at+jwt");
}

// A key without kid signs tokens without kid.
#[test]
fn sign_key_without_kid_gives_header_without_kid() {
    let dir = Dir::new();
    let key = dir.genkey("ES256", "k.json", &[]);
    without(&dir, &key, "kid", "nokid.json");
    let (header, _) = parts(&dir.sign("nokid.json", &[]));
    assert_eq!(header, json!({ "alg": "ES256", "typ": "JWT" }));
}

// Defaults: iat now, exp = iat + 900 (15m), a jti; nothing else.
#[test]
fn sign_default_claims_are_iat_exp_and_jti() {
    let dir = Dir::new();
    dir.es256();
    let before = now();
    let (_, claims) = parts(&dir.sign("key.json", &[]));
    let after = now();
    assert_eq!(members(&claims), set(&["iat", "exp", "jti"]), "{claims}");
    let iat = claims["iat"].as_i64().unwrap();
    assert!(
        (before..=after).contains(&iat),
        "{iat} not in {before}..={after}"
    );
    assert_eq!(claims["exp"].as_i64().unwrap() - iat, 900);
}

// The jti is random: a UUID, different on each run.
#[test]
fn sign_jti_is_unique_across_runs() {
    let dir = Dir::new();
    dir.es256();
    let (_, a) = parts(&dir.sign("key.json", &[]));
    let (_, b) = parts(&dir.sign("key.json", &[]));
    let (a, b) = (str_of(&a, "jti"), str_of(&b, "jti"));
    assert_ne!(a, b);
    for jti in [a, b] {
        let groups: Vec<_> = jti.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{jti}");
        assert!(jti.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }
}

// --ttl takes humantime durations: exp - iat is the TTL in seconds.
#[test]
fn sign_ttl_is_a_humantime_duration() {
    let dir = Dir::new();
    dir.es256();
    for (ttl, secs) in [("90s", 90), ("15m", 900), ("1h", 3600), ("10d", 864_000)] {
        let (_, claims) = parts(&dir.sign("key.json", &["--ttl", ttl]));
        let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
        assert_eq!(lifetime, secs, "{ttl}");
    }
}

// --iss and --sub become string claims.
#[test]
fn sign_iss_and_sub() {
    let dir = Dir::new();
    dir.es256();
    let (_, claims) = parts(&dir.sign(
        "key.json",
        &["--iss", "https://auth.example.com", "--sub", "user_1"],
    ));
    assert_eq!(claims["iss"], "https://auth.example.com");
    assert_eq!(claims["sub"], "user_1");
}

// One --aud is a string; repeated --aud is an array, in order.
#[test]
fn sign_single_aud_is_a_string_repeated_aud_an_array() {
    let dir = Dir::new();
    dir.es256();
    let (_, one) = parts(&dir.sign("key.json", &["--aud", "orders"]));
    assert_eq!(one["aud"], json!("orders"));
    let (_, many) = parts(&dir.sign("key.json", &["--aud", "orders", "--aud", "billing"]));
    assert_eq!(many["aud"], json!(["orders", "billing"]));
    let (_, none) = parts(&dir.sign("key.json", &[]));
    assert!(none.get("aud").is_none());
}

// --claim VALUE is JSON where it parses, else a string.
#[test]
fn sign_claim_value_is_json_where_it_parses_else_a_string() {
    let dir = Dir::new();
    dir.es256();
    let (_, claims) = parts(&dir.sign(
        "key.json",
        &[
            "--claim",
            "n=5",
            "--claim",
            "f=1.5",
            "--claim",
            "t=true",
            "--claim",
            "z=null",
            "--claim",
            r#"o={"a":[1,"x"]}"#,
            "--claim",
            r#"l=["read","write"]"#,
            "--claim",
            r#"q="42""#,
            "--claim",
            "s=hello world",
            "--claim",
            "u=https://example.com/?a=b",
            "--claim",
            "e=",
            "--claim",
            "lz=007",
        ],
    ));
    assert_eq!(claims["n"], json!(5));
    assert_eq!(claims["f"], json!(1.5));
    assert_eq!(claims["t"], json!(true));
    assert_eq!(claims["z"], Value::Null);
    assert_eq!(claims["o"], json!({ "a": [1, "x"] }));
    assert_eq!(claims["l"], json!(["read", "write"]));
    assert_eq!(claims["q"], json!("42"));
    assert_eq!(claims["s"], json!("hello world"));
    assert_eq!(claims["u"], json!("https://example.com/?a=b"));
    assert_eq!(claims["e"], json!(""));
    assert_eq!(claims["lz"], json!("007"));
}

// --claim may set registered claims and wins over flags and defaults.
#[test]
fn sign_claim_overrides_registered_claims() {
    let dir = Dir::new();
    dir.es256();
    let (_, claims) = parts(&dir.sign(
        "key.json",
        &[
            "--iss",
            "flag-issuer",
            "--aud",
            "flag-aud",
            "--sub",
            "flag-sub",
            "--claim",
            "iss=claim-issuer",
            "--claim",
            r#"aud=["x","y"]"#,
            "--claim",
            "sub=claim-sub",
            "--claim",
            "exp=4102444800",
            "--claim",
            "iat=1700000000",
            "--claim",
            "jti=fixed",
        ],
    ));
    assert_eq!(claims["iss"], "claim-issuer");
    assert_eq!(claims["aud"], json!(["x", "y"]));
    assert_eq!(claims["sub"], "claim-sub");
    assert_eq!(claims["exp"], json!(4_102_444_800_i64));
    assert_eq!(claims["iat"], json!(1_700_000_000));
    assert_eq!(claims["jti"], "fixed");
}

// A --claim without NAME=, or with an empty name, is a usage error.
#[test]
fn sign_malformed_claim_flag_is_a_usage_error() {
    let dir = Dir::new();
    dir.es256();
    for bad in ["novalue", "=5"] {
        dir.run(&["token", "sign", "--key", "key.json", "--claim", bad])
            .usage();
    }
}

// Bad flags and unusable keys are usage errors.
#[test]
fn sign_bad_flags_or_key_is_a_usage_error() {
    let dir = Dir::new();
    dir.es256();
    dir.run(&["token", "sign", "--key", "key.json", "--ttl", "soon"])
        .usage();
    dir.run(&["token", "sign", "--key", "key.json", "--bogus"])
        .usage();
    dir.run(&["token", "sign"]).usage();
    dir.run(&["token", "sign", "--key", "missing.json"]).usage();
    // A public key cannot sign.
    dir.run(&["token", "sign", "--key", "jwks.json"]).usage();
}

// Every algorithm: generate, sign, publish (or, for HMAC, use the secret
// JWK itself), verify.
#[test]
fn sign_and_verify_round_trip_for_every_algorithm() {
    let dir = Dir::new();
    for alg in [
        "ES256", "ES384", "ES512", "EdDSA", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
        "HS256", "HS384", "HS512",
    ] {
        dir.genkey(alg, "k.json", &[]);
        let jwks = if alg.starts_with("HS") {
            "k.json"
        } else {
            dir.public(&["k.json"], "jwks.json");
            "jwks.json"
        };
        let token = dir.sign("k.json", &["--sub", alg]);
        let out = dir.verify(jwks, &[], &token).valid();
        assert_eq!(out["header"]["alg"], alg);
        assert_eq!(out["claims"]["sub"], alg);
    }
}

// token sign honours the key's use and key_ops.
#[test]
fn sign_refuses_a_key_not_meant_for_signing() {
    let dir = Dir::new();
    for (member, value) in [("use", json!("enc")), ("key_ops", json!(["verify"]))] {
        let mut key = dir.genkey("ES256", "k.json", &[]);
        key[member] = value;
        dir.write("k.json", key.to_string());
        let run = dir.run(&["token", "sign", "--key", "k.json"]);
        assert_eq!(run.code, 2, "{member}: {run:#?}");
        assert_eq!(run.stdout, "");
    }
}
