//! End-to-end tests of the `tessera` command line, one test per behaviour of
//! the CLI contract that scripts depend on (in the style of ripgrep's
//! `tests/regression.rs`): each test runs the built binary in a fresh
//! temporary directory and checks exit code, stdout and stderr.
//!
//! Tokens the CLI cannot produce (no `exp`, a raw `1e400`, a `crit` header,
//! an exact size) are crafted with HS256, using the small SHA-256/HMAC and
//! base64url helpers of the `crafted` module; `crafted_hs256_token_verifies`
//! and the helper tests check those helpers against the binary and the RFCs.
//!
//! The admin commands (`tessera clients ...`, `tessera keys list | rotate |
//! compromised`) run against a real `tessera serve` on a free loopback port
//! (the `admin` module).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crafted::{b64d, hs256_token};

mod admin;
mod crafted;
mod gateway;
mod inspect;
mod keys;
mod secrets;
mod sign;
#[cfg(unix)] // SIGTERM
mod signals;
mod verify;
mod verify_keys;

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
        // Nor may the caller's settings (TESSERA_SERVER, TESSERA_KEYS_...)
        // change what a test runs.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("TESSERA_") {
                cmd.env_remove(name);
            }
        }
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
