//! Fuzzes the gateway's canonical path (`CanonicalPath::parse`)
//! differentially, against the simple reference normaliser below written
//! from the README's "Paths" paragraph and RFC 3986 §6.2.2: decode escaped
//! unreserved characters, write other escapes in upper case, escape what
//! may not appear literally, collapse `//`, resolve `.` and `..` however
//! they are spelt, keep a trailing `/` when the path ended in one or in a
//! dot-segment.
//!
//! The input is a request target as the gateway receives it (what
//! `http::Uri` accepts; its path). Invariants:
//! - what the reference accepts, the gateway accepts with the same
//!   spelling; what the reference must refuse (a `..` above the root, an
//!   encoded `/`, a backslash, path parameters, a broken escape, a control
//!   character, an escape of a query or fragment delimiter, a double
//!   encoding, a segment read as a dot-segment), the gateway refuses (any
//!   code); where Unicode decides (non-ASCII), the gateway either agrees
//!   or refuses as a Unicode lookalike or control character;
//! - the canonical form is a fixed point: canonicalising it again gives it
//!   back, with the same segments.
//!
//! Any string at all (not only what `Uri` accepts) must not panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_gateway::{BadTarget, CanonicalPath};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = CanonicalPath::parse(text);
    let Ok(target) = text.parse::<http::uri::PathAndQuery>() else {
        return;
    };
    let raw = target.path();
    let real = CanonicalPath::parse(raw);
    match (reference(raw), &real) {
        (Reference::Accept(want), Ok(got)) => assert_eq!(got.as_str(), want, "{raw:?}"),
        (Reference::Accept(want), Err(e)) => panic!("{raw:?}: refused ({e}), reference {want:?}"),
        (Reference::Unicode(want), Ok(got)) => assert_eq!(got.as_str(), want, "{raw:?}"),
        (Reference::Unicode(_), Err(BadTarget::UnicodeLookalike | BadTarget::ControlChar)) => {}
        (Reference::Unicode(want), Err(e)) => panic!("{raw:?}: refused ({e}), reference {want:?}"),
        (Reference::Refuse(why), Ok(got)) => {
            panic!("{raw:?}: accepted as {got}, reference refuses: {why}")
        }
        (Reference::Refuse(_), Err(_)) => {}
    }
    if let Ok(p) = real {
        let again = CanonicalPath::parse(p.as_str())
            .unwrap_or_else(|e| panic!("{raw:?} -> {p}: the canonical form is refused ({e})"));
        assert_eq!(
            again, p,
            "{raw:?}: canonicalising the canonical form changed it"
        );
    }
});

/// What the reference makes of a path.
enum Reference {
    /// The canonical form.
    Accept(String),
    /// The canonical form, unless Unicode normalisation makes a segment a
    /// lookalike of a delimiter or a dot-segment (not modelled here).
    Unicode(String),
    /// Not canonicalisable.
    Refuse(&'static str),
}

fn reference(raw: &str) -> Reference {
    let Some(rest) = raw.strip_prefix('/') else {
        return Reference::Refuse("not a path");
    };
    let mut kept: Vec<String> = Vec::new();
    let mut directory = false;
    let mut unicode = false;
    for seg in rest.split('/') {
        if seg.is_empty() {
            directory = true;
            continue;
        }
        let (spelt, decoded) = match segment(seg) {
            Ok(s) => s,
            Err(why) => return Reference::Refuse(why),
        };
        if !decoded.is_ascii() {
            unicode = true;
        }
        if decoded == "." {
            directory = true;
        } else if decoded == ".." {
            if kept.pop().is_none() {
                return Reference::Refuse("above the root");
            }
            directory = true;
        } else {
            kept.push(spelt);
            directory = false;
        }
    }
    let mut out = String::from("/");
    out.push_str(&kept.join("/"));
    if directory && !kept.is_empty() {
        out.push('/');
    }
    if unicode {
        Reference::Unicode(out)
    } else {
        Reference::Accept(out)
    }
}

/// One segment: its canonical spelling and its decoded text.
fn segment(seg: &str) -> Result<(String, String), &'static str> {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
    let literal = |b: u8| b"!$&'()*+,=:@".contains(&b);
    let b = seg.as_bytes();
    let mut spelt = String::new();
    let mut decoded = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let (byte, escaped) = if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            let Some(v) = hex.filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit())) else {
                return Err("broken escape");
            };
            i += 3;
            (
                u8::from_str_radix(v, 16).map_err(|_| "broken escape")?,
                true,
            )
        } else {
            i += 1;
            (b[i - 1], false)
        };
        match byte {
            b'/' if escaped => return Err("encoded slash"),
            b'?' | b'#' if escaped => return Err("encoded query or fragment"),
            b'\\' => return Err("backslash"),
            b';' => return Err("path parameter"),
            0..=0x1f | 0x7f => return Err("control character"),
            _ if unreserved(byte) => spelt.push(char::from(byte)),
            _ if literal(byte) && !escaped => spelt.push(char::from(byte)),
            _ => spelt.push_str(&format!("%{byte:02X}")),
        }
        decoded.push(byte);
    }
    let decoded = String::from_utf8(decoded).map_err(|_| "not UTF-8")?;
    if decoded.chars().any(char::is_control) {
        return Err("control character");
    }
    let d = decoded.as_bytes();
    if (0..d.len()).any(|j| {
        d[j] == b'%'
            && d.len() > j + 2
            && d[j + 1].is_ascii_hexdigit()
            && d[j + 2].is_ascii_hexdigit()
    }) {
        return Err("double encoding");
    }
    let dots = decoded.trim_end_matches(' ');
    if (dots == "." || dots == "..") && dots != decoded {
        return Err("reads as a dot-segment");
    }
    Ok((spelt, decoded))
}
