//! The canonical request path: the one spelling of a request's path that
//! the gateway matches routes on *and* forwards.
//!
//! A route rule is only as good as the agreement between the gateway and
//! the upstream on which resource a request names. Upstreams differ: one
//! resolves `..`, another decodes `%2e` first, a third collapses `//` or
//! strips `;params`. So the gateway does not guess how its upstream reads
//! a path; it rewrites every path into one form that all of them read the
//! same way, decides on that form, and forwards exactly that form. What
//! cannot be rewritten into such a form is refused with a [`BadTarget`]
//! (400) instead.
//!
//! The canonical form (RFC 3986 §6.2.2 syntax-based normalisation, plus
//! refusals):
//! - percent-escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are
//!   decoded, every other escape is written with upper-case hex;
//! - characters that may not appear literally in a path segment (`"`,
//!   `{`, `|`, non-ASCII bytes...) are percent-encoded; sub-delimiters,
//!   `:` and `@` stay as they came;
//! - empty segments are dropped (`//` is `/`), then the dot-segments `.`
//!   and `..` are resolved (also when written `%2e`), keeping a trailing
//!   `/` when the path ended in one or in a dot-segment;
//! - refused: an encoded `/` or `\`, any backslash, `;` (path parameters,
//!   literal or `%3B`), an encoded `?` or `#`, control characters (`%00`,
//!   `%0A`, `%7F`, C1), a broken escape, escapes that do not decode to
//!   UTF-8 (the overlong `%C0%AE` is a dot to some decoders), an escaped
//!   `%` followed by two hex digits (a second decoding would change the
//!   path), a `..` above the root, and a target that is not a path;
//! - refused too: what a Unicode-normalising upstream (NFKC/NFKD, or a
//!   best-fit mapping to ASCII) would read as one of those delimiters or as
//!   a dot-segment — `／` `＼` `；` `？` `＃` `％`, and segments such as
//!   `．．`, `‥`, `.\u{200B}.` or `..%20` — since the routes already assume
//!   an upstream may read paths that way ([`compatibility`]).

use std::fmt::Write as _;

use axum::http::uri::{Authority, Uri};
use axum::http::{HeaderValue, Method};
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization as _;

/// Why a request target was refused: answered 400 with this code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadTarget {
    /// Not a path: `*`; any `CONNECT`, whose target the gateway's client
    /// would send upstream in authority form, whatever the client wrote.
    #[error("not_origin_form")]
    NotOriginForm,
    /// An absolute-form target naming another host, a userinfo or a scheme
    /// other than http(s).
    #[error("foreign_authority")]
    ForeignAuthority,
    /// `%` not followed by two hex digits.
    #[error("bad_escape")]
    BadEscape,
    /// `%2F`: a `/` inside a segment, which decoding upstreams split on.
    #[error("encoded_slash")]
    EncodedSlash,
    /// `\` or `%5C`: a separator to some servers, not to others.
    #[error("backslash")]
    Backslash,
    /// `;` or `%3B`: path parameters, which some servers strip.
    #[error("path_parameter")]
    PathParameter,
    /// `%3F` or `%23`: a query or fragment start once decoded.
    #[error("encoded_delimiter")]
    EncodedDelimiter,
    /// A control character, literal or escaped (`%00`, `%0A`, `%C2%85`).
    #[error("control_char")]
    ControlChar,
    /// Escapes that are not UTF-8 (overlong forms such as `%C0%AE`).
    #[error("bad_utf8")]
    BadUtf8,
    /// `%25` followed by two hex digits (`%252e`): one more decoding would
    /// make it another path.
    #[error("double_encoding")]
    DoubleEncoding,
    /// A `..` climbing above the root.
    #[error("above_root")]
    AboveRoot,
    /// A non-ASCII character read as a delimiter (`／`, `＼`, `；`, `？`,
    /// `＃`, `％`), or a segment read as `.` or `..` (`．．`, `‥`, `..%20`),
    /// by an upstream that normalises Unicode.
    #[error("unicode_lookalike")]
    UnicodeLookalike,
    /// Authz mode only: a path that has a canonical form but is not written
    /// in it (`/public/../admin`, `//admin`, `/%61dmin`). The proxy in front
    /// forwards the path as it came, so the decision must be taken on that
    /// very spelling: one the gateway would have rewritten is refused.
    #[error("not_canonical")]
    NotCanonical,
}

impl BadTarget {
    /// The stable code (`encoded_slash`...).
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::NotOriginForm => "not_origin_form",
            Self::ForeignAuthority => "foreign_authority",
            Self::BadEscape => "bad_escape",
            Self::EncodedSlash => "encoded_slash",
            Self::Backslash => "backslash",
            Self::PathParameter => "path_parameter",
            Self::EncodedDelimiter => "encoded_delimiter",
            Self::ControlChar => "control_char",
            Self::BadUtf8 => "bad_utf8",
            Self::DoubleEncoding => "double_encoding",
            Self::AboveRoot => "above_root",
            Self::UnicodeLookalike => "unicode_lookalike",
            Self::NotCanonical => "not_canonical",
        }
    }
}

/// A path in canonical form, with its decoded segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanonicalPath {
    text: String,
    segments: Vec<String>,
}

/// One decoded segment and its canonical spelling.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    /// Canonical spelling (unreserved decoded, the rest escaped).
    pub(crate) text: String,
    /// Fully decoded text.
    pub(crate) decoded: String,
}

impl CanonicalPath {
    /// Canonicalises the path of a request target (without its query).
    ///
    /// # Errors
    /// A [`BadTarget`] for what has no unambiguous canonical form.
    pub fn parse(raw: &str) -> Result<Self, BadTarget> {
        let Some(rest) = raw.strip_prefix('/') else {
            return Err(BadTarget::NotOriginForm);
        };
        let mut text = String::with_capacity(raw.len() + 1);
        // Where each kept segment starts in `text`, for `..`.
        let mut starts: Vec<usize> = Vec::new();
        let mut segments: Vec<String> = Vec::new();
        // Whether the path names a "directory": it ends in `/` or in a
        // dot-segment (RFC 3986 §5.2.4 keeps the slash then).
        let mut directory = false;
        for raw_segment in rest.split('/') {
            if raw_segment.is_empty() {
                directory = true;
                continue;
            }
            let start = text.len();
            text.push('/');
            let decoded = segment_into(raw_segment, &mut text)?;
            match decoded.as_str() {
                "." => {
                    text.truncate(start);
                    directory = true;
                }
                ".." => {
                    text.truncate(start);
                    let (Some(previous), Some(_)) = (starts.pop(), segments.pop()) else {
                        return Err(BadTarget::AboveRoot);
                    };
                    text.truncate(previous);
                    directory = true;
                }
                _ => {
                    starts.push(start);
                    segments.push(decoded);
                    directory = false;
                }
            }
        }
        if directory || text.is_empty() {
            text.push('/');
        }
        Ok(Self { text, segments })
    }

    /// The canonical spelling, which is what the upstream receives.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The decoded segments (no empty or dot-segments).
    #[must_use]
    pub fn segments(&self) -> &[String] {
        &self.segments
    }
}

impl std::fmt::Display for CanonicalPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// RFC 3986 `unreserved`.
pub(crate) fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Characters a segment may hold literally besides `unreserved` (RFC 3986
/// `sub-delims`, `:` and `@`), whose escaped and literal forms some
/// applications tell apart: kept as they came. `;` is refused before.
fn kept_as_sent(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'=' | b':' | b'@'
    )
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn escape(out: &mut String, b: u8) {
    let _ = write!(out, "%{b:02X}");
}

/// Decodes and canonicalises one non-empty segment (no `/` in it).
pub(crate) fn segment(raw: &str) -> Result<Segment, BadTarget> {
    let mut text = String::with_capacity(raw.len());
    let decoded = segment_into(raw, &mut text)?;
    Ok(Segment { text, decoded })
}

/// [`segment`], appending the canonical spelling to `text`; the decoded
/// segment.
fn segment_into(raw: &str, text: &mut String) -> Result<String, BadTarget> {
    let bytes = raw.as_bytes();
    // The common case: nothing to decode, escape or refuse.
    if bytes.iter().all(|b| unreserved(*b) || kept_as_sent(*b)) {
        text.push_str(raw);
        return Ok(raw.to_owned());
    }
    let mut decoded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) else {
                return Err(BadTarget::BadEscape);
            };
            let v = hi << 4 | lo;
            match v {
                b'/' => return Err(BadTarget::EncodedSlash),
                b'\\' => return Err(BadTarget::Backslash),
                b';' => return Err(BadTarget::PathParameter),
                b'?' | b'#' => return Err(BadTarget::EncodedDelimiter),
                0..=0x1f | 0x7f => return Err(BadTarget::ControlChar),
                _ if unreserved(v) => text.push(char::from(v)),
                _ => escape(text, v),
            }
            decoded.push(v);
            i += 3;
            continue;
        }
        match b {
            b'\\' => return Err(BadTarget::Backslash),
            b';' => return Err(BadTarget::PathParameter),
            0..=0x1f | 0x7f => return Err(BadTarget::ControlChar),
            _ if unreserved(b) || kept_as_sent(b) => text.push(char::from(b)),
            _ => escape(text, b),
        }
        decoded.push(b);
        i += 1;
    }
    let decoded = String::from_utf8(decoded).map_err(|_| BadTarget::BadUtf8)?;
    if decoded.chars().any(char::is_control) {
        return Err(BadTarget::ControlChar);
    }
    let d = decoded.as_bytes();
    if d.windows(3)
        .any(|w| w[0] == b'%' && hex(w[1]).is_some() && hex(w[2]).is_some())
    {
        return Err(BadTarget::DoubleEncoding);
    }
    if !decoded.is_ascii() || decoded.starts_with('.') {
        lookalike(&decoded)?;
    }
    Ok(decoded)
}

/// How the most lenient upstream could read a decoded segment before
/// routing on it: its compatibility decomposition (NFKD: `ａ` is `a`, `／`
/// is `/`, `‥` is `..`), without combining marks and invisible characters.
pub(crate) fn compatibility(segment: &str) -> String {
    segment
        .nfkd()
        .filter(|c| !is_combining_mark(*c) && !invisible(*c))
        .collect()
}

/// Characters some normalisers drop: the soft hyphen, joiners, bidi
/// controls, the byte-order mark.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{34f}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{feff}'
    )
}

/// Refuses a segment whose [`compatibility`] reading holds a delimiter the
/// canonical form refuses, or is a dot-segment (trailing spaces dropped, as
/// Windows does) while the segment itself is not one.
fn lookalike(decoded: &str) -> Result<(), BadTarget> {
    let delimiter = decoded.chars().filter(|c| !c.is_ascii()).any(|c| {
        std::iter::once(c)
            .nfkd()
            .any(|d| matches!(d, '/' | '\\' | ';' | '?' | '#' | '%') || d.is_control())
    });
    let read = compatibility(decoded);
    let dots = read.trim_end_matches(' ');
    if delimiter || (matches!(dots, "." | "..") && dots != decoded) {
        return Err(BadTarget::UnicodeLookalike);
    }
    Ok(())
}

/// Checks an absolute-form target (`GET http://host/path`): its scheme is
/// http(s), it has no userinfo, and its authority is the gateway's: one of
/// `public` when configured, else the request's `Host` (RFC 9112 §3.2
/// requires them to agree). An origin-form target passes, except with
/// `CONNECT`: whatever its target, the request would reach the upstream as
/// `CONNECT upstream:port`, not as the path decided on.
///
/// # Errors
/// [`BadTarget::ForeignAuthority`], [`BadTarget::NotOriginForm`].
pub(crate) fn check_authority(
    method: &Method,
    uri: &Uri,
    host: Option<&HeaderValue>,
    public: &[Authority],
) -> Result<(), BadTarget> {
    if method == Method::CONNECT {
        return Err(BadTarget::NotOriginForm);
    }
    let Some(authority) = uri.authority() else {
        return Ok(());
    };
    let default_port = match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("http") => 80,
        Some(s) if s.eq_ignore_ascii_case("https") => 443,
        Some(_) => return Err(BadTarget::ForeignAuthority),
        // The authority form (`CONNECT host:port`): no path at all.
        None => return Err(BadTarget::NotOriginForm),
    };
    if authority.as_str().contains('@') {
        return Err(BadTarget::ForeignAuthority);
    }
    let same = |a: &Authority, b: &Authority| {
        a.host().eq_ignore_ascii_case(b.host())
            && a.port_u16().unwrap_or(default_port) == b.port_u16().unwrap_or(default_port)
    };
    let ok = if public.is_empty() {
        host.and_then(|h| Authority::try_from(h.as_bytes()).ok())
            .is_some_and(|h| !h.as_str().contains('@') && same(authority, &h))
    } else {
        public.iter().any(|p| same(authority, p))
    };
    if ok {
        Ok(())
    } else {
        Err(BadTarget::ForeignAuthority)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(raw: &str) -> Result<String, BadTarget> {
        CanonicalPath::parse(raw).map(|p| p.as_str().to_owned())
    }

    #[test]
    fn canonical_forms() {
        for (raw, want) in [
            ("/", "/"),
            ("/admin/users", "/admin/users"),
            ("/admin/users/", "/admin/users/"),
            ("//admin//users", "/admin/users"),
            ("///", "/"),
            ("/%61dmin/users", "/admin/users"),
            ("/%41%44%4d%49%4E", "/ADMIN"),
            ("/%7e%2D%2e%5F", "/~-._"),
            ("/a/./b", "/a/b"),
            ("/./a", "/a"),
            ("/a/.", "/a/"),
            ("/a/b/..", "/a/"),
            ("/a/b/../c", "/a/c"),
            ("/health/../admin/users", "/admin/users"),
            ("/health/%2e%2e/admin", "/admin"),
            ("/health/%2E%2e/admin", "/admin"),
            ("/health/.%2e/admin", "/admin"),
            ("/health/%2e./admin", "/admin"),
            ("/a/%2e/b", "/a/b"),
            ("/a//../b", "/b"),
            ("/a/..", "/"),
            ("/a%2a%2Ab", "/a%2A%2Ab"),
            ("/a!$&'()*+,=:@b", "/a!$&'()*+,=:@b"),
            ("/a%21b", "/a%21b"),
            ("/a%20b", "/a%20b"),
            ("/a\"{}|^[]b", "/a%22%7B%7D%7C%5E%5B%5Db"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/café", "/caf%C3%A9"),
            ("/100%25", "/100%25"),
            ("/%25zz", "/%25zz"),
            ("/...", "/..."),
            ("/.a", "/.a"),
            ("/..a", "/..a"),
            ("/%EF%BD%81", "/%EF%BD%81"),
            ("/.%C3%A9", "/.%C3%A9"),
            ("/a..", "/a.."),
        ] {
            assert_eq!(canon(raw), Ok(want.to_owned()), "{raw}");
        }
        let p = CanonicalPath::parse("/caf%C3%A9/x%20y/").unwrap();
        assert_eq!(p.segments(), ["café", "x y"]);
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        use BadTarget::*;
        for (raw, want) in [
            ("*", NotOriginForm),
            ("", NotOriginForm),
            ("admin", NotOriginForm),
            ("/a%2Fb", EncodedSlash),
            ("/a%2fb", EncodedSlash),
            ("/health%2F..%2Fadmin", EncodedSlash),
            ("/a\\b", Backslash),
            ("/health\\..\\admin", Backslash),
            ("/a%5cb", Backslash),
            ("/admin;x/users", PathParameter),
            ("/health/..;/admin", PathParameter),
            ("/admin%3Bx", PathParameter),
            ("/admin%3bx", PathParameter),
            ("/admin%3F/x", EncodedDelimiter),
            ("/admin%23/x", EncodedDelimiter),
            ("/a%00", ControlChar),
            ("/a%0a", ControlChar),
            ("/a%7F", ControlChar),
            ("/a%C2%85", ControlChar),
            ("/a\tb", ControlChar),
            ("/%c0%ae%c0%ae/admin", BadUtf8),
            ("/%c0%af", BadUtf8),
            ("/%e0%80%ae", BadUtf8),
            ("/%ff", BadUtf8),
            ("/%c3", BadUtf8),
            ("/%", BadEscape),
            ("/%2", BadEscape),
            ("/%zz", BadEscape),
            ("/%u002e", BadEscape),
            ("/%252e%252e/admin", DoubleEncoding),
            ("/a%2525", DoubleEncoding),
            ("/a/%EF%BC%8E%EF%BC%8E/b", UnicodeLookalike),
            ("/a/%E2%80%A5/b", UnicodeLookalike),
            ("/a/.%E2%80%8B./b", UnicodeLookalike),
            ("/a/..%20/b", UnicodeLookalike),
            ("/a/.%20", UnicodeLookalike),
            ("/a%EF%BC%8Fb", UnicodeLookalike),
            ("/a%EF%BC%BCb", UnicodeLookalike),
            ("/a%EF%BC%9Bb", UnicodeLookalike),
            ("/a%EF%B9%94b", UnicodeLookalike),
            ("/%EF%BC%85%EF%BC%92%EF%BC%A6", UnicodeLookalike),
            ("/..", AboveRoot),
            ("/%2e%2e/admin", AboveRoot),
            ("/a/../..", AboveRoot),
            ("/a/../../b", AboveRoot),
        ] {
            assert_eq!(canon(raw), Err(want), "{raw}");
        }
    }

    #[test]
    fn absolute_form_must_name_the_gateway() {
        let host = HeaderValue::from_static("gw.example:8000");
        let check = |uri: &str, host: Option<&HeaderValue>, public: &[&str]| {
            let public: Vec<Authority> = public.iter().map(|p| p.parse().unwrap()).collect();
            check_authority(&Method::GET, &uri.parse().unwrap(), host, &public)
        };
        // CONNECT never has a path the upstream would receive.
        for uri in ["/admin", "http://gw.example:8000/a", "gw.example:8000"] {
            assert_eq!(
                check_authority(&Method::CONNECT, &uri.parse().unwrap(), Some(&host), &[]),
                Err(BadTarget::NotOriginForm),
                "{uri}"
            );
        }
        // Origin form: nothing to compare.
        assert_eq!(check("/admin", None, &[]), Ok(()));
        assert_eq!(
            check("gw.example:8000", Some(&host), &[]),
            Err(BadTarget::NotOriginForm)
        );
        // Without configured authorities, Host decides.
        assert_eq!(check("http://gw.example:8000/a", Some(&host), &[]), Ok(()));
        assert_eq!(check("http://GW.example:8000/a", Some(&host), &[]), Ok(()));
        assert_eq!(
            check("http://evil/a", Some(&host), &[]),
            Err(BadTarget::ForeignAuthority)
        );
        assert_eq!(
            check("http://gw.example/a", Some(&host), &[]),
            Err(BadTarget::ForeignAuthority),
            "port 80 is not 8000"
        );
        assert_eq!(
            check("http://gw.example:8000/a", None, &[]),
            Err(BadTarget::ForeignAuthority)
        );
        assert_eq!(
            check("http://u@gw.example:8000/a", Some(&host), &[]),
            Err(BadTarget::ForeignAuthority)
        );
        assert_eq!(
            check("ftp://gw.example:8000/a", Some(&host), &[]),
            Err(BadTarget::ForeignAuthority)
        );
        // Configured authorities win over Host, default ports compared.
        let evil = HeaderValue::from_static("evil");
        assert_eq!(
            check("http://evil/a", Some(&evil), &["api.example"]),
            Err(BadTarget::ForeignAuthority)
        );
        assert_eq!(
            check("http://api.example:80/a", Some(&evil), &["api.example"]),
            Ok(())
        );
        assert_eq!(
            check("https://api.example/a", None, &["api.example:443"]),
            Ok(())
        );
    }
}
