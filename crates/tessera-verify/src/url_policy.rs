//! Where keys, tokens and secrets may travel: over HTTPS, or in plain HTTP
//! to this machine only. One rule for the verifier's JWKS and discovery
//! URLs, the deny-list feed, `tessera token --jwks` and `tessera --server`
//! (the admin token); each caller words its own refusal.

use url::{Host, Url};

/// Whether `url` names this machine: a loopback IP address or `localhost`.
#[must_use]
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Whether `url` may carry keys, tokens or secrets: `https`, or `http` to
/// a loopback address. Every other scheme is refused.
#[must_use]
pub fn allows(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => is_loopback(url),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(text: &str) -> bool {
        allows(&Url::parse(text).unwrap())
    }

    #[test]
    fn https_anywhere_http_only_to_loopback() {
        for ok in [
            "https://auth.example.com/jwks",
            "https://10.0.0.1",
            "http://127.0.0.1:8080/jwks",
            "http://127.1.2.3",
            "http://[::1]:8080/jwks",
            "http://localhost/jwks",
            "http://LOCALHOST:8080",
        ] {
            assert!(allowed(ok), "{ok}");
        }
        for bad in [
            "http://auth.example.com/jwks",
            "http://10.0.0.1",
            "http://[::2]",
            "http://localhost.example.com",
            "ftp://127.0.0.1/x",
            "file:///etc/passwd",
            "ws://localhost",
        ] {
            assert!(!allowed(bad), "{bad}");
        }
    }

    #[test]
    fn loopback_is_about_the_host_only() {
        assert!(is_loopback(&Url::parse("ftp://127.0.0.1/x").unwrap()));
        assert!(!is_loopback(&Url::parse("file:///etc/passwd").unwrap()));
    }
}
