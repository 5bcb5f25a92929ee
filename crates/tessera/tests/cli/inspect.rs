//! `tessera token decode` and `tessera token lint`.

use serde_json::json;

use super::crafted::b64e;
use super::{now, parts, Dir, HS_HEADER};

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

// The lint verdict survives a reader that goes away: `lint | head -1` in a
// CI gate must not turn a token with errors into exit 0.
#[test]
fn lint_exit_code_survives_a_closed_stdout() {
    let dir = Dir::new();
    dir.es256();
    let token = dir.sign("key.json", &["--claim", "password=hunter2"]);
    for _ in 0..5 {
        let mut child = dir
            .command(&["token", "lint", &token])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        assert_eq!(child.wait().unwrap().code(), Some(1));
    }
}

// A token over the 1 MiB the CLI reads is refused as too_large, never cut
// to a prefix and judged by that.
#[test]
fn oversized_stdin_is_too_large_not_truncated() {
    let dir = Dir::new();
    let huge = "A".repeat((1 << 20) + 10);
    dir.run_stdin(&["token", "decode"], &huge)
        .rejected("too_large");
    dir.run_stdin(&["token", "lint"], &huge)
        .rejected("too_large");
}
