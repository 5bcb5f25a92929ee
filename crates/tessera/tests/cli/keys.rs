//! `tessera keys generate` and `tessera keys public`.

use serde_json::{json, Value};

use super::crafted::{b64d, rfc7638_thumbprint};
use super::{members, parts, set, str_of, Dir};

// ---------------------------------------------------------------------------
// keys generate
// ---------------------------------------------------------------------------

// An EC key holds exactly kty, kid, alg, use, crv, x, y and d, with
// full-length coordinates for its curve.
#[test]
fn generate_ec_key_has_the_private_ec_members() {
    let dir = Dir::new();
    for (alg, crv, len) in [
        ("ES256", "P-256", 32),
        ("ES384", "P-384", 48),
        ("ES512", "P-521", 66),
    ] {
        let jwk = dir.genkey(alg, "k.json", &[]);
        assert_eq!(
            members(&jwk),
            set(&["kty", "kid", "alg", "use", "crv", "x", "y", "d"]),
            "{jwk}"
        );
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["alg"], alg);
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["crv"], crv);
        for m in ["x", "y", "d"] {
            assert_eq!(b64d(str_of(&jwk, m)).len(), len, "{alg} {m}");
        }
    }
}

// An RSA key holds kty, kid, alg, use and n, e, d, p, q, dp, dq, qi, with a
// modulus of at least 2048 bits.
#[test]
fn generate_rsa_key_has_the_private_rsa_members() {
    let dir = Dir::new();
    for alg in ["RS256", "PS256"] {
        let jwk = dir.genkey(alg, "k.json", &[]);
        assert_eq!(
            members(&jwk),
            set(&["kty", "kid", "alg", "use", "n", "e", "d", "p", "q", "dp", "dq", "qi"]),
            "{jwk}"
        );
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["alg"], alg);
        assert_eq!(jwk["use"], "sig");
        assert!(b64d(str_of(&jwk, "n")).len() >= 256);
        assert_eq!(jwk["e"], "AQAB");
    }
}

// An Ed25519 key is kty OKP with crv, x and d.
#[test]
fn generate_okp_key_has_the_private_okp_members() {
    let dir = Dir::new();
    let jwk = dir.genkey("EdDSA", "k.json", &[]);
    assert_eq!(
        members(&jwk),
        set(&["kty", "kid", "alg", "use", "crv", "x", "d"]),
        "{jwk}"
    );
    assert_eq!(jwk["kty"], "OKP");
    assert_eq!(jwk["alg"], "EdDSA");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["crv"], "Ed25519");
    assert_eq!(b64d(str_of(&jwk, "x")).len(), 32);
    assert_eq!(b64d(str_of(&jwk, "d")).len(), 32);
}

// An HMAC key is kty oct with k as long as the hash output.
#[test]
fn generate_oct_key_has_the_secret_member() {
    let dir = Dir::new();
    for (alg, len) in [("HS256", 32), ("HS384", 48), ("HS512", 64)] {
        let jwk = dir.genkey(alg, "k.json", &[]);
        assert_eq!(
            members(&jwk),
            set(&["kty", "kid", "alg", "use", "k"]),
            "{jwk}"
        );
        assert_eq!(jwk["kty"], "oct");
        assert_eq!(jwk["alg"], alg);
        assert_eq!(jwk["use"], "sig");
        assert_eq!(b64d(str_of(&jwk, "k")).len(), len);
    }
}

// Without --kid, the kid is the RFC 7638 thumbprint of the key.
#[test]
fn generate_kid_defaults_to_rfc7638_thumbprint() {
    let dir = Dir::new();
    for alg in ["ES256", "ES384", "ES512", "RS256", "EdDSA", "HS256"] {
        let jwk = dir.genkey(alg, "k.json", &[]);
        assert_eq!(str_of(&jwk, "kid"), rfc7638_thumbprint(&jwk), "{alg}");
    }
}

// --kid replaces the thumbprint, and signed tokens carry it.
#[test]
fn generate_kid_flag_overrides_thumbprint() {
    let dir = Dir::new();
    let jwk = dir.genkey("ES256", "k.json", &["--kid", "2024-rotation-1"]);
    assert_eq!(jwk["kid"], "2024-rotation-1");
    let (header, _) = parts(&dir.sign("k.json", &[]));
    assert_eq!(header["kid"], "2024-rotation-1");
}

// Without --out, the JWK goes to stdout as one JSON line.
#[test]
fn generate_without_out_prints_one_jwk_line() {
    let dir = Dir::new();
    let out = dir.ok(&["keys", "generate", "--alg", "EdDSA"]);
    assert!(out.ends_with('\n'));
    assert_eq!(out.lines().count(), 1);
    let jwk: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(jwk["kty"], "OKP");
    assert!(jwk.get("d").is_some());
}

// Each run makes a new key.
#[test]
fn generate_makes_a_fresh_key_each_time() {
    let dir = Dir::new();
    let a = dir.genkey("ES256", "a.json", &[]);
    let b = dir.genkey("ES256", "b.json", &[]);
    assert_ne!(a["d"], b["d"]);
    assert_ne!(a["kid"], b["kid"]);
}

// --out FILE is written with mode 0600.
#[cfg(unix)]
#[test]
fn generate_out_file_has_mode_0600() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = Dir::new();
    dir.genkey("ES256", "key.json", &[]);
    let mode = std::fs::metadata(dir.path("key.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
}

// An existing, world-readable FILE is replaced by a 0600 one.
#[cfg(unix)]
#[test]
fn generate_out_replaces_existing_file_with_mode_0600() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = Dir::new();
    dir.write("key.json", "old");
    std::fs::set_permissions(dir.path("key.json"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let jwk = dir.genkey("ES256", "key.json", &[]);
    assert_eq!(jwk["kty"], "EC");
    let mode = std::fs::metadata(dir.path("key.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
}

// An unknown or miswritten algorithm is a usage error.
#[test]
fn generate_unknown_alg_is_a_usage_error() {
    let dir = Dir::new();
    for alg in ["none", "es256", "ES256K", ""] {
        dir.run(&["keys", "generate", "--alg", alg]).usage();
    }
    dir.run(&["keys", "generate"]).usage();
}

// ---------------------------------------------------------------------------
// keys public
// ---------------------------------------------------------------------------

// Only the public members remain, per kty; they equal the private key's.
#[test]
fn public_strips_private_members() {
    let dir = Dir::new();
    for (alg, public) in [
        ("ES256", &["kty", "kid", "alg", "use", "crv", "x", "y"][..]),
        ("RS256", &["kty", "kid", "alg", "use", "n", "e"][..]),
        ("EdDSA", &["kty", "kid", "alg", "use", "crv", "x"][..]),
    ] {
        let private = dir.genkey(alg, "k.json", &[]);
        let jwks = dir.public(&["k.json"], "jwks.json");
        assert_eq!(members(&jwks), set(&["keys"]));
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        let key = &keys[0];
        assert_eq!(members(key), public.iter().copied().collect(), "{alg}");
        for m in public {
            assert_eq!(key[*m], private[*m], "{alg} {m}");
        }
        assert_eq!(key["use"], "sig");
        let text = dir.read("jwks.json");
        for secret in ["d", "p", "q", "dp", "dq", "qi"] {
            if let Some(v) = private.get(secret) {
                assert!(!text.contains(v.as_str().unwrap()), "{alg} leaks {secret}");
            }
        }
    }
}

// Several files (JWKs or JWKSs) make one JWKS, in argument order.
#[test]
fn public_accepts_several_files_in_order() {
    let dir = Dir::new();
    let a = dir.genkey("ES256", "a.json", &["--kid", "a"]);
    let b = dir.genkey("EdDSA", "b.json", &["--kid", "b"]);
    dir.genkey("RS256", "c.json", &["--kid", "c"]);
    // A JWKS as input, too (the output of an earlier run).
    dir.public(&["c.json"], "c-set.json");
    let jwks = dir.public(&["b.json", "a.json", "c-set.json"], "all.json");
    let kids: Vec<_> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| str_of(k, "kid").to_owned())
        .collect();
    assert_eq!(kids, ["b", "a", "c"]);
    assert_eq!(jwks["keys"][0]["x"], b["x"]);
    assert_eq!(jwks["keys"][1]["y"], a["y"]);
}

// An "oct" key has no public part: exit 2, nothing printed.
#[test]
fn public_refuses_oct_key() {
    let dir = Dir::new();
    let secret = dir.genkey("HS256", "hs.json", &[]);
    dir.genkey("ES256", "ec.json", &[]);
    for args in [
        &["keys", "public", "hs.json"][..],
        &["keys", "public", "ec.json", "hs.json"][..],
    ] {
        let run = dir.run(args);
        run.usage();
        assert!(!run.stderr.contains(str_of(&secret, "k")), "{run:#?}");
    }
}

// A missing file or an invalid key file is an error, not an empty set.
#[test]
fn public_of_unreadable_or_invalid_file_is_a_usage_error() {
    let dir = Dir::new();
    dir.write("bad.json", "{not json");
    dir.run(&["keys", "public", "missing.json"]).usage();
    dir.run(&["keys", "public", "bad.json"]).usage();
    dir.run(&["keys", "public"]).usage();
}

// "use" is a public member: a key marked for encryption must not come out
// of `keys public` as a signature key that `token verify` then trusts.
#[test]
fn public_keeps_use_enc() {
    let dir = Dir::new();
    let mut enc = dir.genkey("ES256", "k.json", &[]);
    enc["use"] = json!("enc");
    enc.as_object_mut().unwrap().remove("alg");
    dir.write("enc.json", enc.to_string());
    let jwks = dir.public(&["enc.json"], "jwks.json");
    assert_eq!(jwks["keys"][0]["use"], "enc", "{jwks}");
    // End to end: a token signed with the encryption key's private part.
    let token = dir.sign("k.json", &[]);
    let run = dir.verify("jwks.json", &["--alg", "ES256"], &token);
    assert_ne!(run.code, 0, "{run:#?}");
}
