//! Which headers cross the gateway.
//!
//! The order matters and is fixed in `forward`: first the client's
//! hop-by-hop headers go (the fixed list and those its `Connection` names),
//! then every header that could pass for one the gateway sets, and only
//! then does the gateway add identity. So a client's `Connection:
//! x-tessera-subject` can only remove the client's own copy, never the
//! gateway's.

use axum::http::{header, HeaderMap, HeaderName, HeaderValue};

/// Identity headers the gateway sets; any incoming copy is removed.
pub const SUBJECT: HeaderName = HeaderName::from_static("x-tessera-subject");
/// The verified claims, base64url JSON.
pub const CLAIMS: HeaderName = HeaderName::from_static("x-tessera-claims");
/// The original token (only with `forward_token`).
pub const TOKEN: HeaderName = HeaderName::from_static("x-tessera-token");
/// The request id, kept when the client sends a sane one, else generated.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Hop-by-hop headers (RFC 9110 §7.6.1, and the non-standard
/// `Proxy-Connection`): never forwarded, in either direction.
/// Names, not strings: removing by `&str` parses the name on every call,
/// twice per proxied request for each of the nine.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes the hop-by-hop headers: the fixed list and every header the
/// `Connection` header names, except those in `keep` (the gateway reads
/// them itself: a client's `Connection: authorization` says the token is
/// for this hop, which is where it is consumed).
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, keep: &[HeaderName]) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .filter(|n| !keep.contains(n))
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in &HOP_BY_HOP {
        headers.remove(n);
    }
}

/// Headers that frameworks read as the request's path in place of the
/// request line: `X-Original-URL` and `X-Rewrite-URL` (Symfony, Zend/
/// Laminas, IIS URL Rewrite), `X-Original-URI` and `X-Forwarded-Uri`
/// (what nginx `auth_request` and Traefik pass), `X-Forwarded-Path`, and
/// `X-Forwarded-Prefix` (prepended to the path by Spring, ASP.NET Core,
/// Werkzeug). The gateway forwards the path it decided on in the request
/// line; a client's copy of these would name another one. Folded names.
const REWRITES_PATH: [&str; 6] = [
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    "x-forwarded-uri",
    "x-forwarded-path",
    "x-forwarded-prefix",
];

/// Whether a client's header could be read upstream as one the gateway
/// sets, or as the request's path. CGI (RFC 3875 §4.1.18) and
/// WSGI/Rack/PHP servers turn `-` into `_` and upper-case names, some
/// every non-alphanumeric character, so `X_Tessera_Subject` and
/// `x.tessera.subject` both become `HTTP_X_TESSERA_SUBJECT`. Compared that
/// way: every `x-tessera-*` name (the gateway owns the prefix), a
/// look-alike of `x-request-id` (the exact name is the gateway's to vet),
/// every header in [`REWRITES_PATH`], and, in phantom mode, where the
/// gateway alone sets it toward the upstream, `Authorization`.
fn impersonates(name: &HeaderName, phantom: bool) -> bool {
    // Folded byte by byte against each target: no allocation per header.
    let n = name.as_str().as_bytes();
    folds_to_prefix(n, "x-tessera-")
        || (folds_to(n, REQUEST_ID.as_str()) && *name != REQUEST_ID)
        || REWRITES_PATH.iter().any(|target| folds_to(n, target))
        || (phantom && folds_to(n, header::AUTHORIZATION.as_str()))
}

/// A header name's byte as [`impersonates`] reads it: letters and digits
/// lower-cased, anything else `-`.
fn fold(b: u8) -> u8 {
    if b.is_ascii_alphanumeric() {
        b.to_ascii_lowercase()
    } else {
        b'-'
    }
}

/// Whether `name`, folded, starts with `prefix` (lower-case, `-`-separated).
fn folds_to_prefix(name: &[u8], prefix: &str) -> bool {
    name.len() >= prefix.len() && name.iter().zip(prefix.bytes()).all(|(&b, t)| fold(b) == t)
}

/// Whether `name`, folded, is `target` (lower-case, `-`-separated).
fn folds_to(name: &[u8], target: &str) -> bool {
    name.len() == target.len() && folds_to_prefix(name, target)
}

/// Removes every incoming header that could pass for one the gateway sets
/// (see [`impersonates`]).
pub(crate) fn strip_impersonations(headers: &mut HeaderMap, phantom: bool) {
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|n| impersonates(n, phantom))
        .cloned()
        .collect();
    for n in forged {
        headers.remove(n);
    }
}

/// A client's request id if it is short and printable, else a new one.
pub(crate) fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(&REQUEST_ID)
        .filter(|v| {
            !v.is_empty() && v.len() <= 128 && v.as_bytes().iter().all(|b| b.is_ascii_graphic())
        })
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&tessera_jose::b64::encode(new_request_id()))
                .unwrap_or_else(|_| HeaderValue::from_static("-"))
        })
}

/// A new request id: 12 bytes, unique within the process (a counter
/// through a bijective mix under a key drawn at start, so ids neither
/// repeat nor show how many requests came before) and, through 4 more
/// random bytes drawn at start, across restarts. A correlation id, not a
/// secret: one random draw per request cost more than the rest of the
/// gateway's own work on a proxied request.
fn new_request_id() -> [u8; 12] {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static KEY: OnceLock<(u64, [u8; 4])> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (key, salt) = *KEY.get_or_init(|| {
        let mut buf = [0u8; 12];
        let _ = aws_lc_rs::rand::fill(&mut buf);
        let mut k = [0u8; 8];
        k.copy_from_slice(&buf[..8]);
        let mut s = [0u8; 4];
        s.copy_from_slice(&buf[8..]);
        (u64::from_le_bytes(k), s)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut out = [0u8; 12];
    out[..8].copy_from_slice(&mix(n.wrapping_add(key)).to_le_bytes());
    out[8..].copy_from_slice(&salt);
    out
}

/// SplitMix64's finaliser: a bijection on u64 that spreads every input bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_do_not_repeat_or_count_up_visibly() {
        let ids: Vec<[u8; 12]> = (0..10_000).map(|_| new_request_id()).collect();
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        // Consecutive ids differ in about half their mixed bits, not in
        // the last one.
        let bits = |a: &[u8; 12], b: &[u8; 12]| {
            a[..8]
                .iter()
                .zip(&b[..8])
                .map(|(x, y)| (x ^ y).count_ones())
                .sum::<u32>()
        };
        let mean = ids.windows(2).map(|w| bits(&w[0], &w[1])).sum::<u32>() / 9_999;
        assert!((24..=40).contains(&mean), "{mean}");
        // The process salt is the same on every id.
        assert!(ids.iter().all(|i| i[8..] == ids[0][8..]));
        // A given id passes through; a new one is 16 base64url characters.
        let fresh = request_id(&HeaderMap::new());
        assert_eq!(fresh.len(), 16);
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&h), "abc-123");
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn names(h: &HeaderMap) -> Vec<&str> {
        let mut n: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        n.sort_unstable();
        n
    }

    #[test]
    fn connection_names_go_except_what_the_gateway_keeps() {
        let mut h = map(&[
            ("connection", "x-hop, authorization"),
            ("connection", "keep-alive , x-other-hop"),
            ("keep-alive", "timeout=5"),
            ("x-hop", "1"),
            ("x-other-hop", "1"),
            ("authorization", "Bearer t"),
            ("te", "trailers"),
            ("proxy-connection", "keep-alive"),
            ("x-plain", "1"),
        ]);
        strip_hop_by_hop(&mut h, &[header::AUTHORIZATION]);
        assert_eq!(names(&h), ["authorization", "x-plain"]);
        let mut h = map(&[("connection", "authorization"), ("authorization", "x")]);
        strip_hop_by_hop(&mut h, &[]);
        assert!(h.is_empty());
    }

    #[test]
    fn look_alikes_of_gateway_headers_are_found() {
        for name in [
            "x-tessera-subject",
            "x_tessera_subject",
            "X_Tessera_Subject",
            "x-tessera_claims",
            "x.tessera.token",
            "x~tessera~subject",
            "x-tessera-anything-new",
            "x_request_id",
            "X.Request.Id",
            "x-original-url",
            "X_Original_URL",
            "x-rewrite-url",
            "X-Forwarded-Prefix",
            "x.forwarded.uri",
        ] {
            let n = HeaderName::from_bytes(name.as_bytes()).unwrap();
            assert!(impersonates(&n, false), "{name}");
        }
        for name in [
            "x-request-id",
            "authorization",
            "x-tesserasubject",
            "x-tessera",
            "xx-tessera-subject",
            "content-type",
            "x_forwarded_for",
            "x-forwarded-proto",
            "x-original-url-note",
        ] {
            let n = HeaderName::from_bytes(name.as_bytes()).unwrap();
            assert!(!impersonates(&n, false), "{name}");
        }
        assert!(impersonates(&header::AUTHORIZATION, true));
        assert!(!impersonates(&REQUEST_ID, true));
    }

    #[test]
    fn impersonations_are_removed_and_the_rest_kept() {
        let mut h = map(&[
            ("x_tessera_subject", "admin"),
            ("X-TESSERA-CLAIMS", "e30"),
            ("x_request_id", "forged"),
            ("x-request-id", "abc"),
            ("authorization", "Bearer x"),
            ("x-unrelated", "1"),
        ]);
        strip_impersonations(&mut h, false);
        assert_eq!(names(&h), ["authorization", "x-request-id", "x-unrelated"]);
        strip_impersonations(&mut h, true);
        assert_eq!(names(&h), ["x-request-id", "x-unrelated"]);
    }
}
