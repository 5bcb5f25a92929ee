//! Fuzzes what the token endpoint parses from a client before it looks at
//! anything else: the `application/x-www-form-urlencoded` body (RFC 6749
//! §3.2) and the `Authorization: Basic` header (§2.3.1).
//!
//! The first byte picks which; the rest is the body or the header value.
//! Invariants beyond "never panics":
//! - a parsed form has no empty value and no name twice, and the same
//!   parameters written out again as a form parse back to themselves;
//! - a refused form really repeats a parameter (with a value);
//! - parsed Basic credentials, encoded again as a client must encode them
//!   (form-encoding, then base64), decode back to themselves.
#![no_main]

use std::collections::HashMap;

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use tessera_server::fuzzing::{basic_header, token_form};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        form(rest);
    } else {
        basic(rest);
    }
});

fn form(body: &[u8]) {
    match token_form(body) {
        Ok(pairs) => {
            for w in pairs.windows(2) {
                assert_ne!(w[0].0, w[1].0, "a name twice in a parsed form");
            }
            assert!(
                pairs.iter().all(|(_, v)| !v.is_empty()),
                "an empty value kept"
            );
            let again: String = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&pairs)
                .finish();
            assert_eq!(
                token_form(again.as_bytes()).as_ref(),
                Ok(&pairs),
                "the parameters written out again read differently: {again:?}"
            );
        }
        Err(description) => {
            let mut seen: HashMap<String, usize> = HashMap::new();
            for (name, value) in form_urlencoded::parse(body) {
                if !value.is_empty() {
                    *seen.entry(name.into_owned()).or_default() += 1;
                }
            }
            assert!(
                seen.values().any(|&n| n > 1),
                "a form without a repeated parameter refused: {description}"
            );
        }
    }
}

fn basic(value: &[u8]) {
    let Some((id, secret)) = basic_header(value) else {
        return;
    };
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let joined = format!("{}:{}", encode(&id), encode(&secret));
    let header = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(joined)
    );
    let again = basic_header(header.as_bytes()).expect("re-encoded credentials refused");
    assert_eq!(again.0, id, "client id changed on re-encoding");
    assert!(*again.1 == *secret, "secret changed on re-encoding");
}
