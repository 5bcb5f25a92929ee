//! `tessera token verify`: keys and algorithms, usage and configuration
//! errors.

use std::net::TcpListener;
use std::time::Duration;

use serde_json::json;

use super::crafted::{b64d, b64e, hs256_token, serve_once};
use super::{now, parts, str_of, without, Dir};

// ---------------------------------------------------------------------------
// token verify: keys and algorithms
// ---------------------------------------------------------------------------

// A token whose kid is not in the JWKS: unknown_kid.
#[test]
fn verify_unknown_kid() {
    let dir = Dir::new();
    dir.es256();
    dir.genkey("ES256", "other.json", &[]);
    let token = dir.sign("other.json", &[]);
    dir.verify("jwks.json", &[], &token).rejected("unknown_kid");
}

// A changed signature or payload is bad_signature.
#[test]
fn verify_tampered_token_is_bad_signature() {
    let dir = Dir::new();
    dir.es256();
    let a = dir.sign("key.json", &["--sub", "alice"]);
    let b = dir.sign("key.json", &["--sub", "mallory"]);
    let (a_input, _) = a.rsplit_once('.').unwrap();
    let (b_input, b_sig) = b.rsplit_once('.').unwrap();
    assert_ne!(a_input, b_input);
    // a's header and payload with b's signature.
    dir.verify("jwks.json", &[], &format!("{a_input}.{b_sig}"))
        .rejected("bad_signature");
    // b's signature over a payload that was edited.
    let (_, mut claims) = parts(&b);
    claims["sub"] = json!("admin");
    let header = b_input.split('.').next().unwrap();
    let forged = format!("{header}.{}.{b_sig}", b64e(claims.to_string().as_bytes()));
    dir.verify("jwks.json", &[], &forged)
        .rejected("bad_signature");
    // A key of the same algorithm and kid, but other material.
    dir.genkey("ES256", "twin.json", &["--kid", "twin"]);
    dir.genkey("ES256", "twin2.json", &["--kid", "twin"]);
    dir.public(&["twin2.json"], "twin-jwks.json");
    let token = dir.sign("twin.json", &[]);
    dir.verify("twin-jwks.json", &[], &token)
        .rejected("bad_signature");
}

// Not a compact JWS, bad base64url, bad JSON: malformed.
#[test]
fn verify_garbage_is_malformed() {
    let dir = Dir::new();
    dir.es256();
    let token = dir.sign("key.json", &[]);
    let (input, _) = token.rsplit_once('.').unwrap();
    for bad in [
        "garbage".to_owned(),
        "a.b".to_owned(),
        "a.b.c.d".to_owned(),
        format!("{token}."),
        format!("{input}.!!!"),
        format!("{token}\n\n"),
        format!(" {token}"),
        format!("{}.e30.AAAA", b64e(b"not json")),
        format!(
            "{}.{}.AAAA",
            b64e(br#"{"alg":"ES256","alg":"ES256"}"#),
            b64e(b"{}")
        ),
    ] {
        dir.verify("jwks.json", &[], &bad).rejected("malformed");
    }
}

// alg "none", unknown algorithms and algorithms outside --alg are refused.
#[test]
fn verify_alg_not_allowed() {
    let dir = Dir::new();
    let a = dir.genkey("ES256", "a.json", &["--kid", "a"]);
    dir.genkey("ES384", "b.json", &["--kid", "b"]);
    dir.public(&["a.json", "b.json"], "jwks.json");
    let token = dir.sign("a.json", &[]);
    // Both keys' algorithms are allowed by default.
    dir.verify("jwks.json", &[], &token).valid();
    dir.verify("jwks.json", &["--alg", "ES256"], &token).valid();
    dir.verify("jwks.json", &["--alg", "ES384", "--alg", "ES256"], &token)
        .valid();
    // --alg leaves ES256 out: refused, although the key is in the JWKS.
    dir.verify("jwks.json", &["--alg", "ES384"], &token)
        .rejected("alg_not_allowed");

    // "none" with the kid of a real key and no signature.
    let (_, claims) = parts(&token);
    let none = format!(
        "{}.{}.",
        b64e(
            json!({ "alg": "none", "kid": a["kid"] })
                .to_string()
                .as_bytes()
        ),
        b64e(claims.to_string().as_bytes())
    );
    dir.verify("jwks.json", &[], &none)
        .rejected("alg_not_allowed");
    let (input, sig) = token.rsplit_once('.').unwrap();
    let (_, payload) = input.split_once('.').unwrap();
    for alg in ["None", "ES256K", "es256"] {
        let header = b64e(json!({ "alg": alg, "kid": "a" }).to_string().as_bytes());
        dir.verify("jwks.json", &[], &format!("{header}.{payload}.{sig}"))
            .rejected("alg_not_allowed");
    }
}

// When --alg is given and the key has its own alg, both must allow the
// token's algorithm.
#[test]
fn verify_alg_flag_and_key_alg_must_both_allow() {
    let dir = Dir::new();
    // An RSA key whose own alg is RS256, and an EC key.
    dir.genkey("RS256", "rs.json", &["--kid", "rs"]);
    dir.genkey("ES256", "ec.json", &["--kid", "ec"]);
    dir.public(&["rs.json", "ec.json"], "jwks.json");
    let rs = dir.sign("rs.json", &[]);
    // The same RSA material and kid with alg PS256 (an edited copy of the
    // private key) signs PS256 tokens.
    let mut ps_key = dir.json("rs.json");
    ps_key["alg"] = json!("PS256");
    dir.write("ps.json", ps_key.to_string());
    let ps = dir.sign("ps.json", &[]);
    assert_eq!(parts(&ps).0["alg"], "PS256");

    // Both allow RS256.
    dir.verify("jwks.json", &["--alg", "PS256", "--alg", "RS256"], &rs)
        .valid();
    // --alg allows PS256, the key's own alg does not.
    dir.verify("jwks.json", &["--alg", "PS256", "--alg", "RS256"], &ps)
        .rejected("alg_not_allowed");
    dir.verify("jwks.json", &[], &ps)
        .rejected("alg_not_allowed");
    // The key's own alg allows RS256, --alg does not.
    dir.verify("jwks.json", &["--alg", "PS256", "--alg", "ES256"], &rs)
        .rejected("alg_not_allowed");
}

// A key without alg needs --alg: exit 2 without it, and then it is used for
// the listed algorithms that fit its type.
#[test]
fn verify_key_without_alg_needs_alg_flag() {
    let dir = Dir::new();
    let key = dir.es256();
    let jwks = dir.json("jwks.json");
    without(&dir, &jwks["keys"][0], "alg", "noalg.json");
    let token = dir.sign("key.json", &[]);
    let run = dir.verify("noalg.json", &[], &token);
    run.usage();
    assert!(run.stderr.contains("alg"), "{run:#?}");
    dir.verify("noalg.json", &["--alg", "ES256"], &token)
        .valid();
    // Also when the JWK without alg is the private key.
    without(&dir, &key, "alg", "noalg-private.json");
    dir.verify("noalg-private.json", &[], &token).usage();
    dir.verify("noalg-private.json", &["--alg", "ES256"], &token)
        .valid();
}

// A key is used only with the algorithm family of its kty and curve,
// whatever the token's header says: an ES384 token naming a P-256 key is
// refused even when both algorithms are allowed.
#[test]
fn verify_key_is_bound_to_its_family_whatever_the_header_says() {
    let dir = Dir::new();
    dir.genkey("ES256", "p256.json", &["--kid", "k"]);
    dir.genkey("ES384", "p384.json", &["--kid", "k"]);
    let jwks = dir.public(&["p256.json"], "jwks.json");
    without(&dir, &jwks["keys"][0], "alg", "noalg.json");
    let es384 = dir.sign("p384.json", &[]);
    dir.verify("noalg.json", &["--alg", "ES256", "--alg", "ES384"], &es384)
        .rejected("alg_not_allowed");
    let es256 = dir.sign("p256.json", &[]);
    dir.verify("noalg.json", &["--alg", "ES256", "--alg", "ES384"], &es256)
        .valid();
}

// The classic confusion: an HS256 token whose secret is the RSA public key,
// naming the RSA key's kid. Refused whether the key has an alg or not.
#[test]
fn verify_hs256_token_against_rsa_key_is_refused() {
    let dir = Dir::new();
    dir.genkey("RS256", "rs.json", &["--kid", "rsa"]);
    let jwks = dir.public(&["rs.json"], "jwks.json");
    without(&dir, &jwks["keys"][0], "alg", "noalg.json");
    let payload = format!(r#"{{"sub":"admin","exp":{}}}"#, now() + 600);
    let header = r#"{"alg":"HS256","kid":"rsa","typ":"JWT"}"#;
    for secret in [
        dir.read("jwks.json").into_bytes(),
        jwks["keys"][0].to_string().into_bytes(),
        b64d(str_of(&jwks["keys"][0], "n")),
    ] {
        let token = hs256_token(&secret, header, &payload);
        dir.verify("jwks.json", &[], &token)
            .rejected("alg_not_allowed");
        dir.verify("noalg.json", &["--alg", "RS256", "--alg", "HS256"], &token)
            .rejected("alg_not_allowed");
    }
}

// A key whose use is not "sig" is never used for verification.
#[test]
fn verify_never_uses_a_key_with_use_enc() {
    let dir = Dir::new();
    dir.genkey("ES256", "enc.json", &["--kid", "enc"]);
    dir.genkey("ES256", "sig.json", &["--kid", "sig"]);
    let mut jwks = dir.public(&["enc.json", "sig.json"], "jwks.json");
    jwks["keys"][0]["use"] = json!("enc");
    dir.write("jwks.json", jwks.to_string());
    dir.verify("jwks.json", &[], &dir.sign("sig.json", &[]))
        .valid();
    let token = dir.sign("enc.json", &[]);
    dir.verify("jwks.json", &[], &token).rejected("unknown_kid");
    dir.verify("jwks.json", &["--alg", "ES256"], &token)
        .rejected("unknown_kid");
    // Nor when it is the only key.
    let mut only = jwks.clone();
    only["keys"].as_array_mut().unwrap().truncate(1);
    dir.write("only-enc.json", only.to_string());
    // The JWKS is valid, it just has nothing for this token.
    dir.verify("only-enc.json", &[], &token)
        .rejected("unknown_kid");
}

// A key whose key_ops lack "verify" is never used for verification.
#[test]
fn verify_never_uses_a_key_whose_key_ops_lack_verify() {
    let dir = Dir::new();
    dir.genkey("ES256", "a.json", &["--kid", "a"]);
    dir.genkey("ES256", "b.json", &["--kid", "b"]);
    let mut jwks = dir.public(&["a.json", "b.json"], "jwks.json");
    jwks["keys"][0]["key_ops"] = json!(["sign"]);
    jwks["keys"][1]["key_ops"] = json!(["sign", "verify"]);
    dir.write("jwks.json", jwks.to_string());
    dir.verify("jwks.json", &[], &dir.sign("a.json", &[]))
        .rejected("unknown_kid");
    dir.verify("jwks.json", &[], &dir.sign("b.json", &[]))
        .valid();
}

// A token without kid uses the one key that fits its algorithm...
#[test]
fn verify_token_without_kid_uses_the_one_fitting_key() {
    let dir = Dir::new();
    let key = dir.genkey("ES256", "a.json", &["--kid", "a"]);
    dir.genkey("ES384", "b.json", &["--kid", "b"]);
    dir.public(&["a.json", "b.json"], "jwks.json");
    without(&dir, &key, "kid", "nokid.json");
    let token = dir.sign("nokid.json", &[]);
    assert!(parts(&token).0.get("kid").is_none());
    dir.verify("jwks.json", &[], &token).valid();
}

// ... and is unknown_kid when several keys fit it.
#[test]
fn verify_token_without_kid_and_several_fitting_keys_is_unknown_kid() {
    let dir = Dir::new();
    let key = dir.genkey("ES256", "a.json", &["--kid", "a"]);
    dir.genkey("ES256", "b.json", &["--kid", "b"]);
    dir.public(&["a.json", "b.json"], "jwks.json");
    without(&dir, &key, "kid", "nokid.json");
    let token = dir.sign("nokid.json", &[]);
    dir.verify("jwks.json", &[], &token).rejected("unknown_kid");
}

// An RSA key without alg, allowed for RS256 and PS256, is one key per
// algorithm: a kid-less RS256 token still finds exactly one.
#[test]
fn verify_token_without_kid_and_rsa_key_for_two_algorithms() {
    let dir = Dir::new();
    let key = dir.genkey("RS256", "rs.json", &[]);
    let jwks = dir.public(&["rs.json"], "jwks.json");
    without(&dir, &jwks["keys"][0], "alg", "noalg.json");
    without(&dir, &key, "kid", "nokid.json");
    let token = dir.sign("nokid.json", &[]);
    dir.verify("noalg.json", &["--alg", "RS256", "--alg", "PS256"], &token)
        .valid();
}

// A single JWK (not a set) is accepted as a JWKS of one.
#[test]
fn verify_jwks_may_be_a_single_jwk() {
    let dir = Dir::new();
    dir.es256();
    let jwks = dir.json("jwks.json");
    dir.write("one.json", jwks["keys"][0].to_string());
    dir.verify("one.json", &[], &dir.sign("key.json", &[]))
        .valid();
}

// --alg that rules out every key of a valid JWKS is a rejection with a
// stable code, not a configuration error.
#[test]
fn verify_alg_excluding_every_key_rejects_with_alg_not_allowed() {
    let dir = Dir::new();
    dir.es256();
    let token = dir.sign("key.json", &[]);
    dir.verify("jwks.json", &["--alg", "ES384"], &token)
        .rejected("alg_not_allowed");
}

// A JWKS with keys for algorithms tessera does not implement (RFC 7517 §5:
// ignore what you do not understand) still verifies with its other keys.
#[test]
fn verify_ignores_foreign_keys_in_the_jwks() {
    let dir = Dir::new();
    dir.genkey("ES256", "key.json", &[]);
    let mut jwks = dir.public(&["key.json"], "jwks.json");
    let keys = jwks["keys"].as_array_mut().unwrap();
    keys.insert(0, json!({"kty": "EC", "crv": "secp256k1", "alg": "ES256K", "kid": "k1", "x": "AA", "y": "AA"}));
    keys.insert(0, json!({"kty": "RSA", "alg": "RSA-OAEP-256", "use": "enc", "kid": "e1", "n": "AQAB", "e": "AQAB"}));
    dir.write("jwks.json", jwks.to_string());
    dir.verify("jwks.json", &[], &dir.sign("key.json", &[]))
        .valid();
}

// ---------------------------------------------------------------------------
// token verify: usage and configuration errors (exit 2)
// ---------------------------------------------------------------------------

// Unknown flags, missing --jwks, bad --alg or --leeway values: exit 2.
#[test]
fn verify_bad_flags_are_usage_errors() {
    let dir = Dir::new();
    dir.es256();
    let token = dir.sign("key.json", &[]);
    for args in [
        &["token", "verify", &token][..],
        &["token", "verify", "--jwks", "jwks.json", "--bogus", &token][..],
        &[
            "token",
            "verify",
            "--jwks",
            "jwks.json",
            "--alg",
            "none",
            &token,
        ][..],
        &[
            "token",
            "verify",
            "--jwks",
            "jwks.json",
            "--alg",
            "es256",
            &token,
        ][..],
        &[
            "token",
            "verify",
            "--jwks",
            "jwks.json",
            "--leeway",
            "1 fortnight",
            &token,
        ][..],
        &[
            "token",
            "verify",
            "--jwks",
            "jwks.json",
            "--leeway",
            "-5s",
            &token,
        ][..],
        &["token", "verify", "--jwks", "jwks.json", &token, "extra"][..],
        &["token", "verify", "--jwks"][..],
        &["token", "frobnicate"][..],
    ] {
        dir.run(args).usage();
    }
}

// A JWKS that cannot be read, is not JSON, is not a JWKS, or holds no
// usable key: exit 2 (and the token is not looked at).
#[test]
fn verify_unreadable_or_invalid_jwks_is_a_usage_error() {
    let dir = Dir::new();
    dir.es256();
    let token = dir.sign("key.json", &[]);
    dir.write("not-json.json", "{\"keys\": [");
    dir.write("not-a-set.json", r#"{"keys": {}}"#);
    dir.write("array.json", "[]");
    dir.write("empty.json", r#"{"keys": []}"#);
    dir.write("dup.json", r#"{"keys": [], "keys": []}"#);
    dir.write(
        "bad-key.json",
        r#"{"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "alg": "ES256"}]}"#,
    );
    dir.write("not-utf8.json", b"{\"keys\": [\xff]}");
    std::fs::create_dir(dir.path("a-dir")).unwrap();
    for jwks in [
        "missing.json",
        "not-json.json",
        "not-a-set.json",
        "array.json",
        "empty.json",
        "dup.json",
        "bad-key.json",
        "not-utf8.json",
        "a-dir",
    ] {
        dir.verify(jwks, &[], &token).usage();
        // Even with a token that would be rejected.
        dir.verify(jwks, &[], "garbage").usage();
    }
}

// --jwks may be an http URL; the JWKS is fetched from it.
#[test]
fn verify_jwks_from_http_url() {
    let dir = Dir::new();
    dir.es256();
    let token = dir.sign("key.json", &["--sub", "via-http"]);
    let (url, request) = serve_once("200 OK", dir.read("jwks.json"));
    let run = dir.verify(&url, &[], &token);
    assert_eq!(run.valid()["claims"]["sub"], "via-http");
    let request = request.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        request.starts_with("GET /jwks.json HTTP/1.1\r\n"),
        "{request}"
    );
}

// An HTTP error or a non-JWKS body from the URL is a configuration error.
#[test]
fn verify_jwks_url_failure_is_a_usage_error() {
    let dir = Dir::new();
    dir.es256();
    let token = dir.sign("key.json", &[]);
    let (url, _) = serve_once("404 Not Found", "{}".to_owned());
    dir.verify(&url, &[], &token).usage();
    let (url, _) = serve_once("200 OK", "<html>".to_owned());
    dir.verify(&url, &[], &token).usage();
    // Nothing listening.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    dir.verify(&format!("http://127.0.0.1:{port}/jwks.json"), &[], &token)
        .usage();
}

// A JWKS with no keys at all is a configuration error.
#[test]
fn verify_empty_jwks_is_a_usage_error() {
    let dir = Dir::new();
    dir.es256();
    let token = dir.sign("key.json", &[]);
    dir.write("empty.json", r#"{"keys":[]}"#);
    assert_eq!(dir.verify("empty.json", &[], &token).code, 2);
}

// A JWKS over plain http is accepted from a loopback authority only: keys
// fetched in clear text from elsewhere could be swapped on the way.
#[test]
fn verify_jwks_url_plain_http_only_for_loopback() {
    let dir = Dir::new();
    dir.es256();
    let token = dir.sign("key.json", &[]);
    let run = dir.verify("http://jwks.example.com/jwks.json", &[], &token);
    run.usage();
    assert!(run.stderr.contains("https"), "{run:#?}");
}

// Credentials in a JWKS URL never appear in messages, and redirects are not
// followed (a redirect could leave the loopback rule behind).
#[test]
fn verify_jwks_url_hides_credentials_and_refuses_redirects() {
    let dir = Dir::new();
    dir.es256();
    let token = dir.sign("key.json", &[]);
    let (url, _) = serve_once("302 Found", String::new());
    let with_user = url.replace("http://", "http://alice:s3cret@");
    let run = dir.verify(&with_user, &[], &token);
    run.usage();
    assert!(run.stderr.contains("302"), "{run:#?}");
    assert!(
        !run.stderr.contains("s3cret") && !run.stderr.contains("alice"),
        "{run:#?}"
    );
}
