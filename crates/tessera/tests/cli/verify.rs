//! `tessera token verify`: input and output, time, claims and header policy.

use super::crafted::sized_token;
use super::{members, now, parts, set, Dir, HS_HEADER};

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

// A header number beyond f64 is malformed, as in the payload: the verifier
// and the JSON printer must accept exactly the same documents, so a valid
// token never prints an empty header.
#[test]
fn verify_header_number_out_of_range_is_malformed() {
    let dir = Dir::new();
    let hs = dir.hs256();
    let exp = now() + 600;
    for number in ["1e400", "-1e309"] {
        let header = format!(r#"{{"alg":"HS256","kid":"hk","typ":"at+jwt","x":{number}}}"#);
        let token = hs.token(&header, &format!(r#"{{"exp":{exp}}}"#));
        dir.verify("hs-jwks.json", &["--typ", "at+jwt"], &token)
            .rejected("malformed");
    }
    let token = hs.token(
        r#"{"alg":"HS256","kid":"hk","typ":"at+jwt","x":1e300}"#,
        &format!(r#"{{"exp":{exp}}}"#),
    );
    let out = dir
        .verify("hs-jwks.json", &["--typ", "at+jwt"], &token)
        .valid();
    assert_eq!(out["header"]["kid"], "hk", "{out}");
}
