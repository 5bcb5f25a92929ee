//! Fuzzes an issuer's discovery document as the verifier reads it before
//! fetching keys: JSON, the issuer it was asked for (RFC 8414 §3.3), and a
//! `jwks_uri` it may fetch.
//!
//! Each input is read for a fixed issuer and for the issuer it names
//! itself (so the fuzzer gets past the issuer check). Invariants beyond
//! "never panics": a document naming another issuer is refused, and a URL
//! accepted for fetching is `https`, or `http` to this machine only.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_verify::fuzzing::discovery;
use url::{Host, Url};

const ISSUER: &str = "https://issuer.example";

fuzz_target!(|data: &[u8]| {
    let named = serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .and_then(|v| v["issuer"].as_str().map(str::to_owned));
    check(data, ISSUER, named.as_deref());
    if let Some(issuer) = named.as_deref() {
        check(data, issuer, named.as_deref());
    }
});

fn check(data: &[u8], issuer: &str, named: Option<&str>) {
    let Ok(uri) = discovery(data, issuer) else {
        return;
    };
    assert_eq!(
        named,
        Some(issuer),
        "a document for another issuer accepted"
    );
    let url = Url::parse(&uri).expect("an accepted jwks_uri is a URL");
    let local = match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    assert!(
        url.scheme() == "https" || (url.scheme() == "http" && local),
        "jwks_uri {uri:?} would be fetched"
    );
}
