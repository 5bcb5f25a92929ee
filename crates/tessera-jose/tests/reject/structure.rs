//! Token structure, duplicate members, non-canonical base64url, size and
//! depth.

use tessera_jose::{b64, ErrorKind, Validation, DEFAULT_MAX_SIZE, MAX_DEPTH};

use super::{
    accept, all_keys, claims, forge, forge_bytes, fx, header_of, reject, sign_parts, token,
    token_with, verify_now, EXP, NOW,
};

// ---------------------------------------------------------------------------
// Token structure
// ---------------------------------------------------------------------------

#[test]
fn token_structure() {
    let f = fx();
    let keys = all_keys();
    let v = Validation::new();
    let good = token(&f.es256);
    accept(&good, &keys, &v);
    let (header, rest) = good.split_once('.').unwrap();
    let (payload, sig) = rest.split_once('.').unwrap();
    for bad in [
        String::new(),
        ".".to_owned(),
        "..".to_owned(),
        "...".to_owned(),
        header.to_owned(),
        format!("{header}.{payload}"),
        format!("{header}.{sig}"),
        format!("{header}.{payload}.{sig}.{sig}"),
        format!("{header}.{payload}.{sig}."),
        format!(".{header}.{payload}.{sig}"),
        format!("{header}.{payload}.{payload}.{payload}.{sig}"),
        format!(".{payload}.{sig}"),
    ] {
        reject(&bad, &keys, &v, ErrorKind::Malformed);
    }
    // Header JSON that is not UTF-8, or not a JSON object, or without alg.
    let mut non_utf8 = br#"{"alg":"ES256","kid":"ec1","x":""#.to_vec();
    non_utf8.extend_from_slice(b"\xff\xfe");
    non_utf8.extend_from_slice(br#""}"#);
    let mut overlong = br#"{"alg":"ES256","kid":"ec1","x":""#.to_vec();
    overlong.extend_from_slice(b"\xc0\xaf");
    overlong.extend_from_slice(br#""}"#);
    for header in [non_utf8, overlong] {
        let t = forge_bytes(&f.es256, &header, claims().as_bytes());
        reject(&t, &keys, &v, ErrorKind::Malformed);
        // The same bytes in the (signed) payload.
        let payload = [format!(r#"{{"exp":{EXP},"#).as_bytes(), &header[1..]].concat();
        let t = forge_bytes(&f.es256, header_of(&f.es256).as_bytes(), &payload);
        reject(&t, &keys, &v, ErrorKind::Malformed);
    }
    for header in [
        r#"{"kid":"ec1"}"#,
        r#"{"alg":null,"kid":"ec1"}"#,
        r#"{"alg":["ES256"],"kid":"ec1"}"#,
        r#"{"alg":"ES256","kid":1}"#,
        r#"["ES256"]"#,
        r#""ES256""#,
        "",
        r#"{"alg":"ES256","kid":"ec1"} x"#,
        "\u{feff}{\"alg\":\"ES256\",\"kid\":\"ec1\"}",
    ] {
        reject(
            &forge(&f.es256, header, &claims()),
            &keys,
            &v,
            ErrorKind::Malformed,
        );
    }
    // A payload that is not a JSON object.
    for payload in [
        "[]",
        "\"x\"",
        "1",
        "",
        "null",
        &format!(r#"{{"exp":{EXP},}}"#),
    ] {
        reject(
            &token_with(&f.es256, payload),
            &keys,
            &v,
            ErrorKind::Malformed,
        );
    }
}

// ---------------------------------------------------------------------------
// Duplicate member names
// ---------------------------------------------------------------------------

#[test]
fn duplicate_header_members_are_malformed() {
    let f = fx();
    let keys = all_keys();
    let v = Validation::new();
    accept(
        &forge(&f.es256, r#"{"alg":"ES256","kid":"ec1"}"#, &claims()),
        &keys,
        &v,
    );
    for header in [
        r#"{"alg":"ES256","alg":"ES256","kid":"ec1"}"#,
        r#"{"alg":"ES256","kid":"ec1","\u0061lg":"ES256"}"#,
        r#"{"\u0061\u006c\u0067":"ES256","kid":"ec1","alg":"ES256"}"#,
        r#"{"alg":"HS256","kid":"ec1","alg":"ES256"}"#,
        r#"{"alg":"ES256","kid":"ec1","kid":"ec1"}"#,
        r#"{"alg":"ES256","kid":"x","kid":"ec1"}"#,
        r#"{"alg":"ES256","kid":"ec1","typ":"JWT","typ":"JWT"}"#,
        r#"{"alg":"ES256","kid":"ec1","crit":["x"],"x":1,"x":2}"#,
        r#"{"alg":"ES256","kid":"ec1","x":{"y":1,"y":2}}"#,
    ] {
        // The signature is valid over the duplicated text.
        reject(
            &forge(&f.es256, header, &claims()),
            &keys,
            &v,
            ErrorKind::Malformed,
        );
    }
}

#[test]
fn duplicate_payload_members_are_malformed() {
    let f = fx();
    let keys = all_keys();
    let v = Validation::new();
    let with_aud = Validation::new().audience("api");
    accept(
        &token_with(
            &f.es256,
            &format!(r#"{{"exp":{EXP},"aud":"api","role":"user","ctx":{{"a":1,"b":2}}}}"#),
        ),
        &keys,
        &with_aud,
    );
    for (payload, policy) in [
        (format!(r#"{{"exp":{EXP},"exp":{}}}"#, EXP + 1_000_000), &v),
        (format!(r#"{{"exp":{NOW},"exp":{EXP}}}"#), &v),
        (format!(r#"{{"exp":{EXP},"\u0065xp":{EXP}}}"#), &v),
        (
            format!(r#"{{"exp":{EXP},"aud":"other","aud":"api"}}"#),
            &with_aud,
        ),
        (
            format!(r#"{{"exp":{EXP},"aud":["api"],"aud":"api"}}"#),
            &with_aud,
        ),
        (
            format!(r#"{{"exp":{EXP},"role":"user","role":"admin"}}"#),
            &v,
        ),
        (
            format!(r#"{{"exp":{EXP},"role":"admin","r\u006fle":"user"}}"#),
            &v,
        ),
        (format!(r#"{{"exp":{EXP},"ctx":{{"a":1,"a":2}}}}"#), &v),
        (
            format!(r#"{{"exp":{EXP},"ctx":[{{"a":{{"b":1,"b":1}}}}]}}"#),
            &v,
        ),
        (
            format!(r#"{{"iss":"a","sub":"u","iss":"a","exp":{EXP}}}"#),
            &v,
        ),
    ] {
        reject(
            &token_with(&f.es256, &payload),
            &keys,
            policy,
            ErrorKind::Malformed,
        );
    }
}

// ---------------------------------------------------------------------------
// Non-canonical base64url
// ---------------------------------------------------------------------------

const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Sets the lowest (spare) bit of the last character.
fn flip_trailing_bit(part: &str) -> String {
    let mut bytes = part.as_bytes().to_vec();
    let last = bytes.last_mut().unwrap();
    let idx = B64URL.iter().position(|c| c == last).unwrap();
    *last = B64URL[idx ^ 1];
    String::from_utf8(bytes).unwrap()
}

/// The non-canonical spellings of a canonical base64url part. The part must
/// contain '-' or '_' and have spare bits (its byte length is not a
/// multiple of 3).
fn non_canonical(part: &str) -> Vec<(&'static str, String)> {
    assert!(part.contains(['-', '_']), "{part}");
    assert_ne!(part.len() % 4, 0, "{part}");
    let padding = "=".repeat((4 - part.len() % 4) % 4);
    let mid = part.len() / 2;
    vec![
        ("standard padding", format!("{part}{padding}")),
        ("one '='", format!("{part}=")),
        ("'=' inside", format!("{}={}", &part[..mid], &part[mid..])),
        (
            "standard alphabet",
            part.replace('-', "+").replace('_', "/"),
        ),
        ("trailing bits", flip_trailing_bit(part)),
        ("space inside", format!("{} {}", &part[..mid], &part[mid..])),
        ("leading space", format!(" {part}")),
        ("trailing newline", format!("{part}\n")),
        ("tab inside", format!("{}\t{}", &part[..mid], &part[mid..])),
        (
            "CRLF inside",
            format!("{}\r\n{}", &part[..mid], &part[mid..]),
        ),
    ]
}

/// JSON text of an object with a filler member chosen so that its base64url
/// form contains '-' or '_' and has spare bits.
fn spiky_json(prefix: &str) -> String {
    // A byte '?' (0x3F) ending a 3-byte group encodes as '_'.
    (0..6)
        .map(|k| format!(r#"{prefix},"pad":"???{}"}}"#, "a".repeat(k)))
        .find(|j| {
            let enc = b64::encode(j);
            j.len() % 3 != 0 && enc.contains(['-', '_'])
        })
        .unwrap()
}

#[test]
fn non_canonical_base64url_is_malformed_in_every_part() {
    let f = fx();
    let keys = all_keys();
    let v = Validation::new();
    let header = b64::encode(spiky_json(r#"{"alg":"HS256","kid":"hs1""#));
    // An HS256 signature (32 bytes: 2 spare bits) with '-' or '_' in it.
    let (payload, signature) = (0..1000)
        .map(|i| {
            let payload = b64::encode(spiky_json(&format!(r#"{{"exp":{EXP},"n":{i}"#)));
            let sig = f
                .hs256
                .sign(format!("{header}.{payload}").as_bytes())
                .unwrap();
            (payload, b64::encode(sig))
        })
        .find(|(_, sig)| sig.contains(['-', '_']))
        .unwrap();
    accept(&format!("{header}.{payload}.{signature}"), &keys, &v);

    for (what, bad) in non_canonical(&header) {
        // Signed over the exact (bad) text, so the signature is not the issue.
        let t = sign_parts(&f.hs256, &bad, &payload);
        match verify_now(&t, &keys, &v) {
            Ok(_) => panic!("header with {what} accepted"),
            Err(e) => assert_eq!(e.kind(), ErrorKind::Malformed, "header with {what}: {e}"),
        }
    }
    for (what, bad) in non_canonical(&payload) {
        let t = sign_parts(&f.hs256, &header, &bad);
        match verify_now(&t, &keys, &v) {
            Ok(_) => panic!("payload with {what} accepted"),
            Err(e) => assert_eq!(e.kind(), ErrorKind::Malformed, "payload with {what}: {e}"),
        }
    }
    for (what, bad) in non_canonical(&signature) {
        let t = format!("{header}.{payload}.{bad}");
        match verify_now(&t, &keys, &v) {
            Ok(_) => panic!("signature with {what} accepted"),
            Err(e) => assert_eq!(e.kind(), ErrorKind::Malformed, "signature with {what}: {e}"),
        }
    }
    // An ECDSA signature (64 bytes: 4 spare bits), each spare bit set in turn.
    let es = token(&f.es256);
    accept(&es, &keys, &v);
    let (input, sig) = es.rsplit_once('.').unwrap();
    let last = *sig.as_bytes().last().unwrap();
    let idx = B64URL.iter().position(|&c| c == last).unwrap();
    for bit in [1, 2, 4, 8] {
        let mut bad = sig.as_bytes().to_vec();
        *bad.last_mut().unwrap() = B64URL[idx ^ bit];
        let t = format!("{input}.{}", String::from_utf8(bad).unwrap());
        reject(&t, &keys, &v, ErrorKind::Malformed);
    }
}

// ---------------------------------------------------------------------------
// Size and depth
// ---------------------------------------------------------------------------

#[test]
fn oversize_token_is_refused_before_decoding() {
    let f = fx();
    let keys = all_keys();
    let v = Validation::new();
    assert_eq!(DEFAULT_MAX_SIZE, 8 * 1024);
    // Garbage: TooLarge, not Malformed, so nothing was decoded.
    for garbage in [
        "A".repeat(9 * 1024),
        "!".repeat(9 * 1024),
        ".".repeat(9 * 1024),
        "\u{e9}".repeat(9 * 1024 / 2),
        "@".repeat(DEFAULT_MAX_SIZE + 1),
    ] {
        assert!(garbage.len() > DEFAULT_MAX_SIZE);
        reject(&garbage, &keys, &v, ErrorKind::TooLarge);
    }
    // Control: garbage at exactly the limit is decoded, and is malformed.
    reject(
        &"!".repeat(DEFAULT_MAX_SIZE),
        &keys,
        &v,
        ErrorKind::Malformed,
    );

    // A genuine, validly signed token over the limit.
    let big = token_with(
        &f.es256,
        &format!(r#"{{"exp":{EXP},"blob":"{}"}}"#, "x".repeat(7 * 1024)),
    );
    assert!(big.len() > DEFAULT_MAX_SIZE);
    reject(&big, &keys, &v, ErrorKind::TooLarge);
    accept(&big, &keys, &Validation::new().max_size(64 * 1024));
    // A smaller configured limit applies too.
    let small = token(&f.es256);
    reject(
        &small,
        &keys,
        &Validation::new().max_size(small.len() - 1),
        ErrorKind::TooLarge,
    );
    accept(&small, &keys, &Validation::new().max_size(small.len()));
}

#[test]
fn deep_nesting_is_malformed_without_stack_overflow() {
    fx(); // generate the keys on a normal stack
          // Run on a small stack: a recursive parser without a depth limit would
          // overflow it on the 10 000-level document.
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(deep_nesting)
        .unwrap()
        .join()
        .unwrap();
}

fn deep_nesting() {
    let f = fx();
    let keys = all_keys();
    let big = Validation::new().max_size(1 << 20);
    let arrays = |n: usize| format!(r#"{{"exp":{EXP},"a":{}0{}}}"#, "[".repeat(n), "]".repeat(n));
    let objects = |n: usize| {
        format!(
            r#"{{"exp":{EXP},"a":{}0{}}}"#,
            r#"{"a":"#.repeat(n),
            "}".repeat(n)
        )
    };
    // The top-level object is depth 1: MAX_DEPTH - 1 nested values fit.
    accept(&token_with(&f.hs256, &arrays(MAX_DEPTH - 1)), &keys, &big);
    accept(&token_with(&f.hs256, &objects(MAX_DEPTH - 1)), &keys, &big);
    for n in [MAX_DEPTH, MAX_DEPTH + 1, 10_000] {
        reject(
            &token_with(&f.hs256, &arrays(n)),
            &keys,
            &big,
            ErrorKind::Malformed,
        );
        reject(
            &token_with(&f.hs256, &objects(n)),
            &keys,
            &big,
            ErrorKind::Malformed,
        );
    }
    // Unbalanced: 10 000 opening brackets only.
    let open = format!(r#"{{"exp":{EXP},"a":{}"#, "[".repeat(10_000));
    reject(
        &token_with(&f.hs256, &open),
        &keys,
        &big,
        ErrorKind::Malformed,
    );
    // Deep nesting in the header too.
    let header = format!(
        r#"{{"alg":"HS256","kid":"hs1","x":{}0{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    reject(
        &forge(&f.hs256, &header, &claims()),
        &keys,
        &big,
        ErrorKind::Malformed,
    );
}
