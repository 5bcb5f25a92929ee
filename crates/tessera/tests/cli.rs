//! End-to-end tests of the `tessera` command line, one test per behaviour of
//! the CLI contract that scripts depend on (in the style of ripgrep's
//! `tests/regression.rs`): each test runs the built binary in a fresh
//! temporary directory and checks exit code, stdout and stderr.
//!
//! Tokens the CLI cannot produce (no `exp`, a raw `1e400`, a `crit` header,
//! an exact size) are crafted with HS256, using the small SHA-256/HMAC and
//! base64url helpers at the bottom of this file; `crafted_hs256_token_verifies`
//! and the helper tests check those helpers against the binary and the RFCs.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// A temporary working directory; every command runs inside it, so file
/// arguments are plain relative names.
struct Dir {
    tmp: tempfile::TempDir,
}

/// The result of one run of the binary.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn of(out: Output) -> Self {
        Self {
            code: out.status.code().expect("terminated by a signal"),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    /// Exit 0 with stdout one line holding one JSON object; returns it.
    fn valid(&self) -> Value {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        assert_eq!(self.stdout.lines().count(), 1, "one line: {self:#?}");
        let value: Value = serde_json::from_str(&self.stdout).unwrap();
        assert!(value.is_object(), "{self:#?}");
        value
    }

    /// Exit 1, nothing on stdout, and a line `rejected: CODE: message`.
    fn rejected(&self, code: &str) {
        assert_eq!(self.code, 1, "expected rejection {code}: {self:#?}");
        assert_eq!(self.stdout, "", "{self:#?}");
        let prefix = format!("rejected: {code}: ");
        assert!(
            self.stderr
                .lines()
                .any(|l| l.starts_with(&prefix) && l.len() > prefix.len()),
            "expected a line {prefix:?}...: {self:#?}"
        );
    }

    /// Exit 2 (usage or configuration error), nothing on stdout.
    fn usage(&self) {
        assert_eq!(self.code, 2, "expected a usage error: {self:#?}");
        assert_eq!(self.stdout, "", "{self:#?}");
        assert!(!self.stderr.is_empty(), "{self:#?}");
    }
}

impl Dir {
    fn new() -> Self {
        Self {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) {
        std::fs::write(self.path(name), contents).unwrap();
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    fn json(&self, name: &str) -> Value {
        serde_json::from_str(&self.read(name)).unwrap()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
        cmd.args(args).current_dir(self.tmp.path());
        // The local JWKS server must be reached directly.
        for var in [
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("NO_PROXY", "127.0.0.1,localhost");
        cmd
    }

    /// Runs with stdin closed (empty).
    fn run(&self, args: &[&str]) -> Run {
        Run::of(self.command(args).stdin(Stdio::null()).output().unwrap())
    }

    /// Runs with `input` on stdin.
    fn run_stdin(&self, args: &[&str], input: impl AsRef<[u8]>) -> Run {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = input.as_ref().to_vec();
        let writer = std::thread::spawn(move || {
            // The binary may stop reading early; a broken pipe is fine.
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        Run::of(out)
    }

    /// Runs and asserts exit 0; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert_eq!(run.code, 0, "{args:?}: {run:#?}");
        run.stdout
    }

    /// `keys generate --alg ALG --out NAME [extra]`; returns the private JWK.
    fn genkey(&self, alg: &str, name: &str, extra: &[&str]) -> Value {
        let mut args = vec!["keys", "generate", "--alg", alg, "--out", name];
        args.extend_from_slice(extra);
        assert_eq!(self.ok(&args), "", "--out leaves stdout empty");
        self.json(name)
    }

    /// `keys public FILES... > OUT`; returns the JWKS.
    fn public(&self, files: &[&str], out: &str) -> Value {
        let mut args = vec!["keys", "public"];
        args.extend_from_slice(files);
        let text = self.ok(&args);
        self.write(out, &text);
        serde_json::from_str(&text).unwrap()
    }

    /// `token sign --key KEY [extra]`; returns the token.
    fn sign(&self, key: &str, extra: &[&str]) -> String {
        let mut args = vec!["token", "sign", "--key", key];
        args.extend_from_slice(extra);
        let out = self.ok(&args);
        assert!(out.ends_with('\n') && out.lines().count() == 1, "{out:?}");
        out.trim_end().to_owned()
    }

    /// `token verify --jwks JWKS [extra] TOKEN`.
    fn verify(&self, jwks: &str, extra: &[&str], token: &str) -> Run {
        let mut args = vec!["token", "verify", "--jwks", jwks];
        args.extend_from_slice(extra);
        args.push(token);
        self.run(&args)
    }

    /// An ES256 key `key.json` and its JWKS `jwks.json`; returns the key.
    fn es256(&self) -> Value {
        let key = self.genkey("ES256", "key.json", &[]);
        self.public(&["key.json"], "jwks.json");
        key
    }

    /// An HS256 key (kid "hk") as `hs.json` and as a JWKS `hs-jwks.json`.
    fn hs256(&self) -> Hs {
        let key = self.genkey("HS256", "hs.json", &["--kid", "hk"]);
        self.write("hs-jwks.json", json!({ "keys": [key] }).to_string());
        Hs {
            secret: b64d(key["k"].as_str().unwrap()),
        }
    }
}

/// An HS256 secret, for crafting tokens the CLI cannot produce.
struct Hs {
    secret: Vec<u8>,
}

impl Hs {
    /// A compact JWS over the raw header and payload JSON texts.
    fn token(&self, header: &str, payload: &str) -> String {
        hs256_token(&self.secret, header, payload)
    }
}

const HS_HEADER: &str = r#"{"alg":"HS256","kid":"hk","typ":"JWT"}"#;

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// The header and claims of a token, decoded by the test itself.
fn parts(token: &str) -> (Value, Value) {
    let mut it = token.split('.');
    let header = serde_json::from_slice(&b64d(it.next().unwrap())).unwrap();
    let claims = serde_json::from_slice(&b64d(it.next().unwrap())).unwrap();
    (header, claims)
}

fn members(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

fn set(names: &[&'static str]) -> BTreeSet<&'static str> {
    names.iter().copied().collect()
}

fn str_of<'a>(value: &'a Value, name: &str) -> &'a str {
    value[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {value}"))
}

/// Writes `jwk` without `member` as NAME.
fn without(dir: &Dir, jwk: &Value, member: &str, name: &str) {
    let mut jwk = jwk.clone();
    jwk.as_object_mut().unwrap().remove(member);
    dir.write(name, jwk.to_string());
}

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

// ---------------------------------------------------------------------------
// token verify: input and output
// ---------------------------------------------------------------------------

// Token as the argument.
#[test]
fn verify_token_from_argument() {
    let dir = Dir::new();
    dir.es256();
    let token = dir.sign("key.json", &["--sub", "arg"]);
    let out = dir.verify("jwks.json", &[], &token).valid();
    assert_eq!(out["claims"]["sub"], "arg");
}

// Token on stdin when the argument is absent, with a trailing LF.
#[test]
fn verify_token_from_stdin_with_trailing_lf() {
    let dir = Dir::new();
    dir.es256();
    let token = dir.sign("key.json", &["--sub", "lf"]);
    let run = dir.run_stdin(
        &["token", "verify", "--jwks", "jwks.json"],
        format!("{token}\n"),
    );
    assert_eq!(run.valid()["claims"]["sub"], "lf");
}

// ... with a trailing CRLF.
#[test]
fn verify_token_from_stdin_with_trailing_crlf() {
    let dir = Dir::new();
    dir.es256();
    let token = dir.sign("key.json", &["--sub", "crlf"]);
    let run = dir.run_stdin(
        &["token", "verify", "--jwks", "jwks.json"],
        format!("{token}\r\n"),
    );
    assert_eq!(run.valid()["claims"]["sub"], "crlf");
}

// ... without any newline.
#[test]
fn verify_token_from_stdin_without_newline() {
    let dir = Dir::new();
    dir.es256();
    let token = dir.sign("key.json", &[]);
    dir.run_stdin(&["token", "verify", "--jwks", "jwks.json"], &token)
        .valid();
}

// "-" as the argument reads stdin.
#[test]
fn verify_token_dash_reads_stdin() {
    let dir = Dir::new();
    dir.es256();
    let token = dir.sign("key.json", &["--sub", "dash"]);
    let run = dir.run_stdin(
        &["token", "verify", "--jwks", "jwks.json", "-"],
        format!("{token}\n"),
    );
    assert_eq!(run.valid()["claims"]["sub"], "dash");
}

// Empty stdin is a malformed token, not a usage error.
#[test]
fn verify_empty_stdin_is_malformed() {
    let dir = Dir::new();
    dir.es256();
    dir.run(&["token", "verify", "--jwks", "jwks.json"])
        .rejected("malformed");
}

// On success stdout is one JSON object with exactly header and claims, and
// stderr is empty.
#[test]
fn verify_output_is_header_and_claims() {
    let dir = Dir::new();
    dir.es256();
    let token = dir.sign(
        "key.json",
        &["--iss", "me", "--aud", "api", "--claim", r#"roles=["a"]"#],
    );
    let run = dir.verify("jwks.json", &["--iss", "me", "--aud", "api"], &token);
    let out = run.valid();
    assert_eq!(run.stderr, "");
    assert_eq!(members(&out), set(&["header", "claims"]));
    let (header, claims) = parts(&token);
    assert_eq!(out["header"], header);
    assert_eq!(out["claims"], claims);
}

// ---------------------------------------------------------------------------
// token verify: time
// ---------------------------------------------------------------------------

// An exp in the past (beyond the leeway) is expired.
#[test]
fn verify_past_exp_is_expired() {
    let dir = Dir::new();
    dir.es256();
    let exp = format!("exp={}", now() - 3600);
    let token = dir.sign("key.json", &["--claim", &exp]);
    dir.verify("jwks.json", &[], &token).rejected("expired");
}

// --ttl 0s gives exp = now, still inside the default 60s leeway.
#[test]
fn verify_ttl_zero_is_valid_within_default_leeway() {
    let dir = Dir::new();
    dir.es256();
    let token = dir.sign("key.json", &["--ttl", "0s"]);
    dir.verify("jwks.json", &[], &token).valid();
}

// The default leeway is 60s; --leeway changes it.
#[test]
fn verify_leeway_defaults_to_60s_and_is_configurable() {
    let dir = Dir::new();
    dir.es256();
    let recent = format!("exp={}", now() - 20);
    let token = dir.sign("key.json", &["--claim", &recent]);
    dir.verify("jwks.json", &[], &token).valid();
    dir.verify("jwks.json", &["--leeway", "0s"], &token)
        .rejected("expired");

    let older = format!("exp={}", now() - 300);
    let token = dir.sign("key.json", &["--claim", &older]);
    dir.verify("jwks.json", &[], &token).rejected("expired");
    dir.verify("jwks.json", &["--leeway", "10m"], &token)
        .valid();
    dir.verify("jwks.json", &["--leeway", "1h"], &token).valid();
}

// An nbf in the future (beyond the leeway) is not yet valid.
#[test]
fn verify_future_nbf_is_not_yet_valid() {
    let dir = Dir::new();
    dir.es256();
    let far = format!("nbf={}", now() + 3600);
    let token = dir.sign("key.json", &["--claim", &far]);
    dir.verify("jwks.json", &[], &token)
        .rejected("not_yet_valid");

    let near = format!("nbf={}", now() + 20);
    let token = dir.sign("key.json", &["--claim", &near]);
    dir.verify("jwks.json", &[], &token).valid();
    dir.verify("jwks.json", &["--leeway", "0s"], &token)
        .rejected("not_yet_valid");
}

// exp is always required.
#[test]
fn verify_requires_exp() {
    let dir = Dir::new();
    let hs = dir.hs256();
    let now = now();
    let token = hs.token(HS_HEADER, &format!(r#"{{"sub":"x","iat":{now}}}"#));
    dir.verify("hs-jwks.json", &[], &token)
        .rejected("missing_claim");
}

// Dates that are not 64-bit second counts, written as strings or numbers,
// are malformed, not "never expires" or "expired".
#[test]
fn verify_out_of_range_or_non_numeric_exp_is_malformed() {
    let dir = Dir::new();
    dir.es256();
    for exp in [
        "1e400",
        "1e19",
        "9223372036854775808",
        "18446744073709551616",
        "-1e400",
        "\"4102444800\"",
        "soon",
        "null",
        "true",
    ] {
        let claim = format!("exp={exp}");
        let token = dir.sign("key.json", &["--claim", &claim]);
        dir.verify("jwks.json", &[], &token).rejected("malformed");
    }
    let token = dir.sign("key.json", &["--claim", "nbf=1e400"]);
    dir.verify("jwks.json", &[], &token).rejected("malformed");
    // The largest 64-bit second count is a date, far in the future.
    let token = dir.sign("key.json", &["--claim", "exp=9223372036854775807"]);
    dir.verify("jwks.json", &[], &token).valid();
}

// A raw non-finite or oversized number in a correctly signed token is
// malformed (the CLI's own JSON cannot write 1e400, so this token is crafted).
#[test]
fn verify_raw_non_finite_exp_is_malformed() {
    let dir = Dir::new();
    let hs = dir.hs256();
    for exp in [
        "1e400",
        "-1e400",
        "1E400",
        "1e19",
        "9.3e18",
        "99999999999999999999",
    ] {
        let token = hs.token(HS_HEADER, &format!(r#"{{"exp":{exp}}}"#));
        dir.verify("hs-jwks.json", &[], &token)
            .rejected("malformed");
    }
    // A fractional, in-range date is fine.
    let exp = now() + 600;
    let token = hs.token(HS_HEADER, &format!(r#"{{"exp":{exp}.5}}"#));
    dir.verify("hs-jwks.json", &[], &token).valid();
}

// ---------------------------------------------------------------------------
// token verify: claims and header policy
// ---------------------------------------------------------------------------

// --iss must match when given; a token without iss is missing_claim.
#[test]
fn verify_iss() {
    let dir = Dir::new();
    dir.es256();
    let token = dir.sign("key.json", &["--iss", "https://a.example"]);
    dir.verify("jwks.json", &["--iss", "https://a.example"], &token)
        .valid();
    dir.verify("jwks.json", &["--iss", "https://b.example"], &token)
        .rejected("issuer_mismatch");
    // Exact comparison.
    dir.verify("jwks.json", &["--iss", "https://a.example/"], &token)
        .rejected("issuer_mismatch");
    let no_iss = dir.sign("key.json", &[]);
    dir.verify("jwks.json", &["--iss", "https://a.example"], &no_iss)
        .rejected("missing_claim");
    // Not checked when not given.
    dir.verify("jwks.json", &[], &token).valid();
}

// --aud must match when given: a string equal to it, or an array holding it.
#[test]
fn verify_aud() {
    let dir = Dir::new();
    dir.es256();
    let one = dir.sign("key.json", &["--aud", "orders"]);
    let many = dir.sign("key.json", &["--aud", "billing", "--aud", "orders"]);
    dir.verify("jwks.json", &["--aud", "orders"], &one).valid();
    dir.verify("jwks.json", &["--aud", "orders"], &many).valid();
    dir.verify("jwks.json", &["--aud", "billing"], &many)
        .valid();
    dir.verify("jwks.json", &["--aud", "shipping"], &one)
        .rejected("audience_mismatch");
    dir.verify("jwks.json", &["--aud", "shipping"], &many)
        .rejected("audience_mismatch");
    dir.verify("jwks.json", &["--aud", "order"], &one)
        .rejected("audience_mismatch");
    let none = dir.sign("key.json", &[]);
    dir.verify("jwks.json", &["--aud", "orders"], &none)
        .rejected("missing_claim");
    // Not checked when not given.
    dir.verify("jwks.json", &[], &many).valid();
}

// --typ must match the header typ when given.
#[test]
fn verify_typ() {
    let dir = Dir::new();
    dir.es256();
    let jwt = dir.sign("key.json", &[]);
    let at = dir.sign("key.json", &["--typ", "at+jwt"]);
    dir.verify("jwks.json", &["--typ", "JWT"], &jwt).valid();
    dir.verify("jwks.json", &["--typ", "at+jwt"], &at).valid();
    dir.verify("jwks.json", &["--typ", "at+jwt"], &jwt)
        .rejected("type_mismatch");
    dir.verify("jwks.json", &["--typ", "JWT"], &at)
        .rejected("type_mismatch");
    // Not checked when not given.
    dir.verify("jwks.json", &[], &at).valid();
}

// A crit header naming an unknown extension, or b64:false, is refused.
#[test]
fn verify_unknown_crit_is_unsupported() {
    let dir = Dir::new();
    let hs = dir.hs256();
    let payload = format!(r#"{{"exp":{}}}"#, now() + 600);
    let crit = r#"{"alg":"HS256","kid":"hk","crit":["x-tenant"],"x-tenant":"a"}"#;
    dir.verify("hs-jwks.json", &[], &hs.token(crit, &payload))
        .rejected("unsupported_crit");
    let b64 = r#"{"alg":"HS256","kid":"hk","b64":false,"crit":["b64"]}"#;
    dir.verify("hs-jwks.json", &[], &hs.token(b64, &payload))
        .rejected("unsupported_crit");
}

// Larger than 8 KiB is too_large (before anything else is looked at);
// exactly 8 KiB is fine.
#[test]
fn verify_token_over_8_kib_is_too_large() {
    let dir = Dir::new();
    let hs = dir.hs256();
    let exact = sized_token(&hs, 8192);
    assert_eq!(exact.len(), 8192);
    dir.verify("hs-jwks.json", &[], &exact).valid();
    let over = sized_token(&hs, 8193);
    assert_eq!(over.len(), 8193);
    dir.verify("hs-jwks.json", &[], &over).rejected("too_large");
    // Via stdin, too.
    dir.run_stdin(
        &["token", "verify", "--jwks", "hs-jwks.json"],
        format!("{over}\n"),
    )
    .rejected("too_large");
}

// A big claim from the CLI gives a token verify refuses as too_large.
#[test]
fn verify_signed_token_with_big_claim_is_too_large() {
    let dir = Dir::new();
    dir.es256();
    let pad = format!("pad={}", "x".repeat(9000));
    let token = dir.sign("key.json", &["--claim", &pad]);
    assert!(token.len() > 8192);
    dir.verify("jwks.json", &[], &token).rejected("too_large");
}

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

// ---------------------------------------------------------------------------
// Secrets stay secret
// ---------------------------------------------------------------------------

// No error message of verify, decode, lint, keys public or sign prints the
// private members of a key, whatever is wrong with it.
#[test]
fn private_key_material_is_never_printed_in_errors() {
    let dir = Dir::new();
    for alg in ["ES256", "RS256", "EdDSA", "HS256"] {
        let key = dir.genkey(alg, "key.json", &["--kid", "k"]);
        let secrets: Vec<String> = ["d", "p", "q", "dp", "dq", "qi", "k"]
            .iter()
            .filter_map(|m| key.get(*m))
            .map(|v| v.as_str().unwrap()[..12].to_owned())
            .collect();
        let token = dir.sign("key.json", &[]);
        let public = if alg == "HS256" {
            "key.json"
        } else {
            "jwks.json"
        };
        if alg != "HS256" {
            dir.public(&["key.json"], "jwks.json");
        }

        // Broken copies of the private key.
        let mut variants: Vec<Value> = Vec::new();
        let edit = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
            let mut v = key.clone();
            f(v.as_object_mut().unwrap());
            v
        };
        variants.push(edit(&|m| {
            m.insert("alg".into(), json!("ES384"));
        }));
        variants.push(edit(&|m| {
            m.insert("alg".into(), json!("XX256"));
        }));
        variants.push(edit(&|m| {
            m.remove("alg");
        }));
        variants.push(edit(&|m| {
            m.insert("crv".into(), json!("P-999"));
        }));
        variants.push(edit(&|m| {
            m.insert("kty".into(), json!("XYZ"));
        }));
        variants.push(edit(&|m| {
            m.insert("use".into(), json!(["sig"]));
        }));
        variants.push(edit(&|m| {
            m.insert("key_ops".into(), json!("verify"));
        }));
        for member in ["x", "n", "d", "k", "p"] {
            if let Some(Value::String(s)) = key.get(member) {
                let s = s.clone();
                variants.push(edit(&|m| {
                    m.insert(member.into(), json!(format!("{s}!")));
                }));
                variants.push(edit(&|m| {
                    m.insert(member.into(), json!(&s[..s.len() - 4]));
                }));
                variants.push(edit(&|m| {
                    m.insert(member.into(), json!([s.clone()]));
                }));
            }
        }
        let mut runs = Vec::new();
        for (i, variant) in variants.iter().enumerate() {
            let name = format!("v{i}.json");
            dir.write(&name, variant.to_string());
            let set = format!("s{i}.json");
            dir.write(&set, json!({ "keys": [variant] }).to_string());
            // Truncated JSON still holding the secrets.
            let cut = format!("c{i}.json");
            let text = variant.to_string();
            dir.write(&cut, &text[..text.len() - 1]);
            for file in [&name, &set, &cut] {
                runs.push((dir.verify(file, &[], &token), true));
                runs.push((dir.run(&["keys", "public", file]), true));
                runs.push((dir.run(&["token", "sign", "--key", file]), true));
            }
        }
        // The private key where a token belongs.
        let private = dir.read("key.json");
        for cmd in ["verify", "decode", "lint"] {
            let mut args = vec!["token", cmd];
            if cmd == "verify" {
                args.extend(["--jwks", public]);
            }
            let stdout_too = cmd != "decode";
            runs.push((dir.run_stdin(&args, &private), stdout_too));
            let mut with_arg = args.clone();
            with_arg.push(private.trim_end());
            runs.push((dir.run(&with_arg), stdout_too));
            // ... base64url-encoded as header and payload.
            let disguised = format!("{0}.{0}.AAAA", b64e(private.trim_end().as_bytes()));
            let mut with_arg = args.clone();
            with_arg.push(disguised.as_str());
            runs.push((dir.run(&with_arg), stdout_too));
        }
        // Some variants still work (a corrupted "d" does not stop keys
        // public or verify): then stdout must not hold secrets either. Only
        // decode prints its input (here, the key itself) by design.
        for (run, stdout_too) in &runs {
            for secret in &secrets {
                assert!(!run.stderr.contains(secret.as_str()), "{alg}: {run:#?}");
                if *stdout_too {
                    assert!(!run.stdout.contains(secret.as_str()), "{alg}: {run:#?}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// token decode
// ---------------------------------------------------------------------------

// decode prints header, claims and "verified": false, from the argument or
// from stdin.
#[test]
fn decode_prints_header_claims_and_verified_false() {
    let dir = Dir::new();
    dir.es256();
    let token = dir.sign("key.json", &["--sub", "user_1", "--aud", "a", "--aud", "b"]);
    let (header, claims) = parts(&token);
    let expected = json!({ "header": header, "claims": claims, "verified": false });
    let run = dir.run(&["token", "decode", &token]);
    assert_eq!(run.valid(), expected);
    assert_eq!(run.stderr, "");
    for input in [format!("{token}\n"), format!("{token}\r\n"), token.clone()] {
        let run = dir.run_stdin(&["token", "decode"], &input);
        assert_eq!(run.valid(), expected);
        let run = dir.run_stdin(&["token", "decode", "-"], &input);
        assert_eq!(run.valid(), expected);
    }
}

// decode checks neither the signature, nor the time, nor verify's 8 KiB limit.
#[test]
fn decode_does_not_verify() {
    let dir = Dir::new();
    dir.es256();
    let exp = format!("exp={}", now() - 86_400);
    let expired = dir.sign("key.json", &["--claim", &exp]);
    let out = dir.run(&["token", "decode", &expired]).valid();
    assert_eq!(out["verified"], false);
    let (input, _) = expired.rsplit_once('.').unwrap();
    let tampered = format!("{input}.AAAA");
    dir.run(&["token", "decode", &tampered]).valid();
    let pad = format!("pad={}", "x".repeat(9000));
    let big = dir.sign("key.json", &["--claim", &pad]);
    let out = dir.run(&["token", "decode", &big]).valid();
    assert_eq!(out["claims"]["pad"].as_str().unwrap().len(), 9000);
}

// A token that is not well formed: exit 1, rejected: malformed.
#[test]
fn decode_garbage_is_malformed() {
    let dir = Dir::new();
    dir.es256();
    for bad in [
        "garbage".to_owned(),
        "a.b.c".to_owned(),
        String::new(),
        format!("{}.{}.AAAA", b64e(b"[]"), b64e(b"{}")),
        format!(
            "{}.{}.AAAA",
            b64e(br#"{"alg":"ES256"}"#),
            b64e(br#"{"a":1,"a":2}"#)
        ),
    ] {
        dir.run(&["token", "decode", &bad]).rejected("malformed");
    }
    dir.run(&["token", "decode"]).rejected("malformed");
    let token = dir.sign("key.json", &["--claim", "exp=1e400"]);
    dir.run(&["token", "decode", &token]).rejected("malformed");
    let hs = dir.hs256();
    let raw = hs.token(HS_HEADER, r#"{"exp":1e400}"#);
    dir.run(&["token", "decode", &raw]).rejected("malformed");
}

// ---------------------------------------------------------------------------
// token lint
// ---------------------------------------------------------------------------

// A token from `token sign` with defaults is clean: exit 0.
#[test]
fn lint_clean_token_exits_0() {
    let dir = Dir::new();
    dir.es256();
    let token = dir.sign(
        "key.json",
        &["--iss", "me", "--sub", "user_1", "--aud", "api"],
    );
    let run = dir.run(&["token", "lint", &token]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stdout.starts_with("ok: "), "{run:#?}");
    assert!(!run.stdout.contains("error"), "{run:#?}");
    // From stdin with a newline, too, with or without "-".
    for args in [&["token", "lint"][..], &["token", "lint", "-"][..]] {
        let run = dir.run_stdin(args, format!("{token}\r\n"));
        assert_eq!(run.code, 0, "{run:#?}");
        assert!(run.stdout.starts_with("ok: "), "{run:#?}");
    }
}

// Warnings alone do not fail: HMAC, long lifetime.
#[test]
fn lint_warnings_only_exit_0() {
    let dir = Dir::new();
    dir.genkey("HS256", "hs.json", &[]);
    let run = dir.run(&["token", "lint", &dir.sign("hs.json", &["--ttl", "10d"])]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stdout.contains("warning: symmetric_alg:"), "{run:#?}");
    assert!(run.stdout.contains("warning: lifetime:"), "{run:#?}");
    assert!(!run.stdout.contains("error:"), "{run:#?}");
}

// A sensitive claim name is an error (exit 1); its value is not printed.
#[test]
fn lint_sensitive_claim_exits_1() {
    let dir = Dir::new();
    dir.es256();
    for claim in [
        "password=hunter2-secret",
        "client_secret=hunter2-secret",
        "ssn=hunter2-secret",
    ] {
        let token = dir.sign("key.json", &["--claim", claim]);
        let run = dir.run(&["token", "lint", &token]);
        assert_eq!(run.code, 1, "{run:#?}");
        assert!(run.stdout.contains("error: sensitive_claim:"), "{run:#?}");
        assert!(!run.stdout.contains("hunter2"), "{run:#?}");
        assert!(!run.stderr.contains("hunter2"), "{run:#?}");
    }
}

// A payment card number anywhere in the claims is an error (exit 1).
#[test]
fn lint_card_number_exits_1() {
    let dir = Dir::new();
    dir.es256();
    for claim in [
        "note=4111 1111 1111 1111",
        r#"profile={"billing":{"ref":"4111-1111-1111-1111"}}"#,
        "n=4111111111111111",
    ] {
        let token = dir.sign("key.json", &["--claim", claim]);
        let run = dir.run(&["token", "lint", &token]);
        assert_eq!(run.code, 1, "{claim}: {run:#?}");
        assert!(
            run.stdout.contains("error: card_number:"),
            "{claim}: {run:#?}"
        );
        assert!(!run.stdout.contains("1111"), "{run:#?}");
    }
    // Fails the Luhn check: not a card number.
    let token = dir.sign("key.json", &["--claim", "note=4111 1111 1111 1112"]);
    assert_eq!(dir.run(&["token", "lint", &token]).code, 0);
}

// A token without exp is an error (no_exp). `--claim exp=null` does not
// remove exp: it makes the token malformed, which lint reports as such.
#[test]
fn lint_missing_or_null_exp_exits_1() {
    let dir = Dir::new();
    let hs = dir.hs256();
    let token = hs.token(HS_HEADER, r#"{"sub":"x","jti":"1"}"#);
    let run = dir.run(&["token", "lint", &token]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stdout.contains("error: no_exp:"), "{run:#?}");

    dir.es256();
    let token = dir.sign("key.json", &["--claim", "exp=null"]);
    dir.run(&["token", "lint", &token]).rejected("malformed");
}

// --max-bytes sets the size budget (default 1024).
#[test]
fn lint_max_bytes() {
    let dir = Dir::new();
    dir.es256();
    let token = dir.sign("key.json", &[]);
    assert!(token.len() < 1024);
    let small = (token.len() - 1).to_string();
    let run = dir.run(&["token", "lint", "--max-bytes", &small, &token]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stdout.contains("error: size:"), "{run:#?}");
    let exact = token.len().to_string();
    assert_eq!(
        dir.run(&["token", "lint", "--max-bytes", &exact, &token])
            .code,
        0
    );

    let pad = format!("pad={}", "x".repeat(1200));
    let big = dir.sign("key.json", &["--claim", &pad]);
    let run = dir.run(&["token", "lint", &big]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stdout.contains("error: size:"), "{run:#?}");
    assert_eq!(
        dir.run(&["token", "lint", "--max-bytes", "4096", &big])
            .code,
        0
    );
    dir.run(&["token", "lint", "--max-bytes", "lots", &big])
        .usage();
}

// A token that is not well formed: exit 1.
#[test]
fn lint_garbage_is_malformed() {
    let dir = Dir::new();
    dir.run(&["token", "lint", "garbage"]).rejected("malformed");
    dir.run_stdin(&["token", "lint"], "a.b.c\n")
        .rejected("malformed");
}

// ---------------------------------------------------------------------------
// Helpers: crafted tokens, HTTP server, SHA-256, HMAC, base64url
// ---------------------------------------------------------------------------

/// The helpers agree with the binary: a crafted HS256 token verifies, and a
/// wrong secret does not.
#[test]
fn crafted_hs256_token_verifies() {
    let dir = Dir::new();
    let hs = dir.hs256();
    let payload = format!(r#"{{"sub":"crafted","exp":{}}}"#, now() + 600);
    let token = hs.token(HS_HEADER, &payload);
    let out = dir.verify("hs-jwks.json", &[], &token).valid();
    assert_eq!(out["claims"]["sub"], "crafted");
    let wrong = hs256_token(&[0u8; 32], HS_HEADER, &payload);
    dir.verify("hs-jwks.json", &[], &wrong)
        .rejected("bad_signature");
}

#[test]
fn helper_sha256_hmac_and_thumbprint_match_their_rfcs() {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    assert_eq!(
        hex(&sha256(b"abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        hex(&sha256(&[b'a'; 1000])),
        "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"
    );
    // RFC 4231 test case 2.
    assert_eq!(
        hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    // RFC 7638 §3.1.
    let jwk = json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
    });
    assert_eq!(
        rfc7638_thumbprint(&jwk),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
    for data in [&b""[..], b"f", b"fo", b"foo", b"foob", b"\xff\xfe\xfd"] {
        assert_eq!(b64d(&b64e(data)), data);
    }
    assert_eq!(b64e(b"\xfb\xff"), "-_8");
}

/// An HS256 token (no kid) of exactly `len` bytes that verifies.
fn sized_token(hs: &Hs, len: usize) -> String {
    let exp = now() + 600;
    // The header's typ length shifts the total by one byte at a time where
    // the payload's base64url length cannot.
    for typ in ["J", "JW", "JWT", "JWTx"] {
        let header = format!(r#"{{"alg":"HS256","typ":"{typ}"}}"#);
        for pad in 5000..7000 {
            let payload = format!(r#"{{"exp":{exp},"pad":"{}"}}"#, "x".repeat(pad));
            let token = hs.token(&header, &payload);
            if token.len() == len {
                return token;
            }
            if token.len() > len {
                break;
            }
        }
    }
    panic!("no token of {len} bytes");
}

/// Serves one HTTP response on a local port; returns the URL and a channel
/// that receives the request head.
fn serve_once(status: &'static str, body: String) -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes());
        let _ = stream.flush();
        let _ = tx.send(String::from_utf8_lossy(&request).into_owned());
    });
    (url, rx)
}

fn hs256_token(secret: &[u8], header: &str, payload: &str) -> String {
    let input = format!("{}.{}", b64e(header.as_bytes()), b64e(payload.as_bytes()));
    let signature = hmac_sha256(secret, input.as_bytes());
    format!("{input}.{}", b64e(&signature))
}

/// RFC 7638 thumbprint of a JWK (required members, lexicographic order).
fn rfc7638_thumbprint(jwk: &Value) -> String {
    let m = |name: &str| str_of(jwk, name);
    let canonical = match m("kty") {
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            m("crv"),
            m("x"),
            m("y")
        ),
        "RSA" => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, m("e"), m("n")),
        "OKP" => format!(r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#, m("crv"), m("x")),
        "oct" => format!(r#"{{"k":"{}","kty":"oct"}}"#, m("k")),
        other => panic!("kty {other}"),
    };
    b64e(&sha256(canonical.as_bytes()))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// base64url without padding.
fn b64e(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len() * 4 / 3 + 3);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// base64url decoding (padding-free, panics on other characters).
fn b64d(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut count) = (0u32, 0u32);
    for c in text.bytes() {
        let v = B64.iter().position(|&x| x == c).expect("base64url");
        bits = (bits << 6) | u32::try_from(v).unwrap();
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push(u8::try_from((bits >> count) & 0xff).unwrap());
            bits &= (1 << count) - 1;
        }
    }
    out
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&sha256(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(message);
    let mut outer: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&sha256(&inner));
    sha256(&outer)
}

/// FIPS 180-4 SHA-256.
fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut message = data.to_vec();
    let bit_len = u64::try_from(data.len()).unwrap() * 8;
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bit_len.to_be_bytes());
    for block in message.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (word, bytes) in w.iter_mut().zip(block.chunks_exact(4)) {
            *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for (k, wi) in K.iter().zip(w.iter()) {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(*k)
                .wrapping_add(*wi);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
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

// A JWKS with no keys at all is a configuration error.
#[test]
fn verify_empty_jwks_is_a_usage_error() {
    let dir = Dir::new();
    dir.es256();
    let token = dir.sign("key.json", &[]);
    dir.write("empty.json", r#"{"keys":[]}"#);
    assert_eq!(dir.verify("empty.json", &[], &token).code, 2);
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
