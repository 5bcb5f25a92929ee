//! Issue 10, point 1: the path a route rule is decided on is the path the
//! upstream receives. Every variant of the edge-bypass class, sent byte for
//! byte, and for each exactly what reached the upstream, or the refusal.
#![allow(clippy::unwrap_used)] // test set-up: a failure should stop the test

#[path = "common/edge.rs"]
mod edge;

use edge::{send, token, Upstream};
use serde_json::json;

/// Whose token the request carries.
#[derive(Clone, Copy, Debug)]
enum Who {
    /// None.
    Nobody,
    /// A low-privilege token: `orders-api`, no scope.
    Low,
    /// An admin token: `orders-admin` with `orders:admin`.
    Admin,
    /// Both audiences and the admin scope.
    Both,
}

/// What must happen.
#[derive(Clone, Copy, Debug)]
enum Want {
    /// Forwarded: the upstream received exactly this request target.
    Up(&'static str),
    /// Refused with 400 and this code, upstream untouched.
    Bad(&'static str),
    /// Refused by the HTTP parser (400), upstream untouched.
    Unparsable,
    /// Refused with this status (401, 403), upstream untouched.
    Refused(u16),
}

use Want::{Bad, Refused, Unparsable, Up};
use Who::{Admin, Both, Low, Nobody};

const ROUTES: &str = "[[routes]]\nprefix = \"/health\"\npublic = true\n\
[[routes]]\nprefix = \"/admin\"\naudience = \"orders-admin\"\nscopes = [\"orders:admin\"]\n\
[[routes]]\nprefix = \"/admin/docs\"\npublic = true\n\
[[routes]]\nprefix = \"/internal\"\naudience = \"orders-admin\"\ncase_sensitive = true\n";

/// (request line without the version, token, outcome). `Host: gw.test`.
const CASES: &[(&[u8], Who, Want)] = &[
    // Positive controls.
    (b"GET /health", Nobody, Up("/health")),
    (b"GET /health/live", Nobody, Up("/health/live")),
    (b"GET /health/", Nobody, Up("/health/")),
    (b"GET /admin/users", Admin, Up("/admin/users")),
    (b"GET /admin/users", Low, Refused(401)),
    (b"GET /admin/users", Nobody, Refused(401)),
    (b"GET /admin/docs/x", Nobody, Up("/admin/docs/x")),
    (b"GET /administrator", Low, Up("/administrator")),
    (b"GET /healthz", Nobody, Refused(401)),
    (
        b"GET /orders?x=1&y=%2F..%2f",
        Low,
        Up("/orders?x=1&y=%2F..%2f"),
    ),
    // Dot-segments, literal and encoded.
    (b"GET /health/../admin/users", Nobody, Refused(401)),
    (b"GET /health/../admin/users", Admin, Up("/admin/users")),
    (b"GET /health/%2e%2e/admin/users", Nobody, Refused(401)),
    (b"GET /health/%2e%2E/admin/users", Nobody, Refused(401)),
    (b"GET /health/.%2e/admin/users", Nobody, Refused(401)),
    (b"GET /health/%2E./admin/users", Nobody, Refused(401)),
    (b"GET /health/%2e%2e/admin/users", Admin, Up("/admin/users")),
    (b"GET /health/./../admin", Nobody, Refused(401)),
    (b"GET /admin/./users", Admin, Up("/admin/users")),
    (b"GET /admin/./users", Low, Refused(401)),
    (b"GET /./admin", Low, Refused(401)),
    (b"GET /admin/.", Admin, Up("/admin/")),
    (b"GET /admin/users/..", Admin, Up("/admin/")),
    (b"GET /admin/users/%2e", Admin, Up("/admin/users/")),
    (b"GET /health/..", Nobody, Refused(401)),
    (b"GET /health/x/../..", Nobody, Refused(401)),
    (b"GET /health/x/..", Nobody, Up("/health/")),
    (b"GET /..", Nobody, Bad("above_root")),
    (b"GET /health/../..", Nobody, Bad("above_root")),
    (b"GET /%2e%2e/admin", Nobody, Bad("above_root")),
    (b"GET /../admin/users", Admin, Bad("above_root")),
    // Repeated slashes.
    (b"GET //admin/users", Low, Refused(401)),
    (b"GET //admin/users", Admin, Up("/admin/users")),
    (b"GET ///admin//users", Admin, Up("/admin/users")),
    (b"GET /health//..//admin", Nobody, Refused(401)),
    // Percent-escapes: unreserved decoded, the rest upper-cased.
    (b"GET /%61dmin/users", Low, Refused(401)),
    (b"GET /%61dmin/users", Admin, Up("/admin/users")),
    (b"GET /%61%64%6D%69%6E/users", Admin, Up("/admin/users")),
    (b"GET /health/%7e%41", Nobody, Up("/health/~A")),
    (b"GET /health/a%2a%2Ab", Nobody, Up("/health/a%2A%2Ab")),
    (b"GET /health/caf%c3%a9", Nobody, Up("/health/caf%C3%A9")),
    (b"GET /health/caf\xc3\xa9", Nobody, Up("/health/caf%C3%A9")),
    (b"GET /health/a\"b{c}", Nobody, Up("/health/a%22b%7Bc%7D")),
    (b"GET /health/a!b", Nobody, Up("/health/a!b")),
    (b"GET /health/100%25", Nobody, Up("/health/100%25")),
    // Letter case: by default a route governs its case variants too.
    (b"GET /ADMIN/users", Low, Refused(401)),
    (b"GET /ADMIN/users", Admin, Refused(401)),
    (b"GET /ADMIN/users", Both, Up("/ADMIN/users")),
    (b"GET /Admin/users", Low, Refused(401)),
    (b"GET /aDmIn", Low, Refused(401)),
    (b"GET /%41dmin/users", Low, Refused(401)),
    (b"GET /HEALTH", Nobody, Refused(401)),
    (b"GET /admin/DOCS/x", Nobody, Refused(401)),
    (b"GET /ADMIN/docs/x", Nobody, Refused(401)),
    // case_sensitive = true: only the exact spelling.
    (b"GET /internal/x", Low, Refused(401)),
    (b"GET /internal/x", Admin, Up("/internal/x")),
    (b"GET /INTERNAL/x", Low, Up("/INTERNAL/x")),
    // Other lenient readings: trailing dots and spaces, full-width
    // letters, dotted capitals, soft hyphens.
    (b"GET /admin./users", Low, Refused(401)),
    (b"GET /admin./users", Both, Up("/admin./users")),
    (b"GET /admin%20/users", Low, Refused(401)),
    (b"GET /%EF%BD%81dmin/users", Low, Refused(401)),
    (b"GET /ADM%C4%B0N/users", Low, Refused(401)),
    (b"GET /ad%C2%ADmin", Low, Refused(401)),
    // Compatibility forms of delimiters and dots: an upstream that
    // normalises Unicode (NFKC/NFKD) or maps it best-fit to ASCII reads
    // `／` as `/`, `．．` and `‥` as `..`, `％` as `%`: refused, like the
    // ASCII escapes they stand for.
    (
        b"GET /health/%EF%BC%8E%EF%BC%8E/admin/users",
        Nobody,
        Bad("unicode_lookalike"),
    ),
    (
        b"GET /health/\xef\xbc\x8e\xef\xbc\x8e/admin",
        Nobody,
        Bad("unicode_lookalike"),
    ),
    (
        b"GET /health/%E2%80%A5/admin",
        Nobody,
        Bad("unicode_lookalike"),
    ),
    (
        b"GET /health/.%EF%B9%92/admin",
        Nobody,
        Bad("unicode_lookalike"),
    ),
    (
        b"GET /health/.%E2%80%8B./admin",
        Nobody,
        Bad("unicode_lookalike"),
    ),
    (
        b"GET /health/.%CC%81./admin",
        Nobody,
        Bad("unicode_lookalike"),
    ),
    (
        b"GET /health/..%C2%A0/admin",
        Nobody,
        Bad("unicode_lookalike"),
    ),
    (b"GET /health/..%20/admin", Nobody, Bad("unicode_lookalike")),
    (
        b"GET /health/x%EF%BC%8F..%EF%BC%8F..%EF%BC%8Fadmin",
        Nobody,
        Bad("unicode_lookalike"),
    ),
    (
        b"GET /%EF%BD%81dmin%EF%BC%8Fusers",
        Low,
        Bad("unicode_lookalike"),
    ),
    (
        b"GET /health/..%EF%BC%BCadmin",
        Nobody,
        Bad("unicode_lookalike"),
    ),
    (b"GET /admin%EF%BC%9Bx/users", Low, Bad("unicode_lookalike")),
    (b"GET /health/%EF%BC%9F", Nobody, Bad("unicode_lookalike")),
    (b"GET /health/%EF%BC%83", Nobody, Bad("unicode_lookalike")),
    (
        b"GET /health/%EF%BC%85%EF%BC%92%EF%BD%85",
        Nobody,
        Bad("unicode_lookalike"),
    ),
    // ...while other compatibility forms and dotted names pass.
    (b"GET /health/%EF%BD%81", Nobody, Up("/health/%EF%BD%81")),
    (b"GET /health/.%C3%A9", Nobody, Up("/health/.%C3%A9")),
    (b"GET /health/...", Nobody, Up("/health/...")),
    (
        b"GET /health/.well-known",
        Nobody,
        Up("/health/.well-known"),
    ),
    (b"GET /health/a%20", Nobody, Up("/health/a%20")),
    // A format suffix on the last segment: Rails (`(.:format)`) and Spring
    // (suffix patterns) serve `/admin.json` as `/admin`.
    (b"GET /admin.json", Low, Refused(401)),
    (b"GET /ADMIN.xml", Low, Refused(401)),
    (b"GET /admin.json", Both, Up("/admin.json")),
    (b"GET /admin/users.json", Low, Refused(401)),
    (b"GET /admin.json/x", Low, Up("/admin.json/x")),
    (b"GET /adminx.json", Low, Up("/adminx.json")),
    (b"GET /health.json", Nobody, Refused(401)),
    // Path parameters.
    (b"GET /admin;x/users", Low, Bad("path_parameter")),
    (b"GET /admin;x/users", Admin, Bad("path_parameter")),
    (b"GET /admin%3Bx/users", Low, Bad("path_parameter")),
    (b"GET /admin%3bx", Low, Bad("path_parameter")),
    (
        b"GET /health/..;/admin/users",
        Nobody,
        Bad("path_parameter"),
    ),
    (b"GET /health;/../admin", Nobody, Bad("path_parameter")),
    // Encoded slashes and backslashes.
    (
        b"GET /health%2F..%2Fadmin/users",
        Nobody,
        Bad("encoded_slash"),
    ),
    (b"GET /health/..%2fadmin", Nobody, Bad("encoded_slash")),
    (b"GET /admin%2Fusers", Low, Bad("encoded_slash")),
    (b"GET /health\\..\\admin\\users", Nobody, Bad("backslash")),
    (b"GET /health/..\\admin", Nobody, Bad("backslash")),
    (b"GET /health%5C..%5Cadmin", Nobody, Bad("backslash")),
    (b"GET /health/%5c", Nobody, Bad("backslash")),
    // Control characters.
    (b"GET /admin%00/users", Low, Bad("control_char")),
    (b"GET /health%00/../admin", Nobody, Bad("control_char")),
    (b"GET /health/%0a", Nobody, Bad("control_char")),
    (
        b"GET /health/%0D%0AX-Injected:%201",
        Nobody,
        Bad("control_char"),
    ),
    (b"GET /health/%7f", Nobody, Bad("control_char")),
    (b"GET /health/%c2%85", Nobody, Bad("control_char")),
    // Escapes that are not UTF-8: overlong dots and slashes.
    (b"GET /health/%c0%ae%c0%ae/admin", Nobody, Bad("bad_utf8")),
    (b"GET /health/%c0%ae./admin", Nobody, Bad("bad_utf8")),
    (b"GET /%c0%afadmin", Nobody, Bad("bad_utf8")),
    (
        b"GET /health/%e0%80%ae%e0%80%ae/admin",
        Nobody,
        Bad("bad_utf8"),
    ),
    (b"GET /health/%ff", Nobody, Bad("bad_utf8")),
    (b"GET /health/\xff", Nobody, Unparsable),
    (b"GET /health/\xc0\xae\xc0\xae/admin", Nobody, Unparsable),
    // Broken escapes, double encoding, encoded delimiters.
    (b"GET /health/%", Nobody, Bad("bad_escape")),
    (b"GET /health/%2", Nobody, Bad("bad_escape")),
    (b"GET /health/%zz", Nobody, Bad("bad_escape")),
    (b"GET /health/%u002e%u002e/admin", Nobody, Bad("bad_escape")),
    (b"GET /health/%%32%65", Nobody, Bad("bad_escape")),
    (
        b"GET /health/%252e%252e/admin",
        Nobody,
        Bad("double_encoding"),
    ),
    (b"GET /health/%252f", Nobody, Bad("double_encoding")),
    (b"GET /admin%3F/users", Low, Bad("encoded_delimiter")),
    (b"GET /admin%23", Low, Bad("encoded_delimiter")),
    // A fragment never reaches the gateway's decision or the upstream;
    // the query is not a path.
    (b"GET /health#/../admin", Nobody, Up("/health")),
    (b"GET /health?/../admin", Nobody, Up("/health?/../admin")),
    // Request-target forms.
    (b"OPTIONS *", Nobody, Bad("not_origin_form")),
    (b"CONNECT evil:443", Nobody, Bad("not_origin_form")),
    (b"CONNECT gw.test:80", Admin, Bad("not_origin_form")),
    // CONNECT with a path: the gateway's client would send it to the
    // upstream in authority form, another target than the one decided on.
    (b"CONNECT /health", Nobody, Bad("not_origin_form")),
    (b"CONNECT /admin/users", Admin, Bad("not_origin_form")),
    (
        b"CONNECT http://gw.test/health",
        Nobody,
        Bad("not_origin_form"),
    ),
    (b"GET http://gw.test/health", Nobody, Up("/health")),
    (
        b"GET http://gw.test/health/../admin/users",
        Nobody,
        Refused(401),
    ),
    (
        b"GET http://gw.test//admin/users",
        Admin,
        Up("/admin/users"),
    ),
    (b"GET http://GW.test:80/health", Nobody, Up("/health")),
    (b"GET http://evil/health", Nobody, Bad("foreign_authority")),
    (
        b"GET http://evil/admin/users",
        Admin,
        Bad("foreign_authority"),
    ),
    (
        b"GET http://gw.test:8080/health",
        Nobody,
        Bad("foreign_authority"),
    ),
    (
        b"GET http://u@gw.test/health",
        Nobody,
        Bad("foreign_authority"),
    ),
    (
        b"GET ftp://gw.test/health",
        Nobody,
        Bad("foreign_authority"),
    ),
];

async fn check(
    addr: std::net::SocketAddr,
    up: &Upstream,
    line: &[u8],
    headers: &[(&str, &str)],
    want: Want,
) {
    let shown = String::from_utf8_lossy(line);
    let before = up.count();
    let answer = send(addr, line, headers).await;
    let reached = up.count() - before;
    match want {
        Up(target) => {
            assert_eq!((answer.status, reached), (200, 1), "{shown}: {answer:?}");
            assert_eq!(up.last().target, target, "{shown}");
        }
        Bad(code) => {
            assert_eq!(
                (answer.status, answer.body.as_str(), reached),
                (400, format!("bad request target: {code}\n").as_str(), 0),
                "{shown}"
            );
        }
        Unparsable => {
            assert_eq!((answer.status, reached), (400, 0), "{shown}: {answer:?}");
            assert!(!answer.body.starts_with("bad request target"), "{shown}");
        }
        Refused(status) => {
            assert_eq!((answer.status, reached), (status, 0), "{shown}: {answer:?}");
            assert!(
                !answer.all("www-authenticate").is_empty(),
                "{shown}: a refusal carries its challenge"
            );
        }
    }
}

#[tokio::test]
async fn every_spelling_of_a_path_is_decided_on_what_the_upstream_receives() {
    let up = Upstream::start(&[]).await;
    let (addr, signer) = edge::gateway(&up.url, ROUTES, false).await;
    let low = format!("Bearer {}", token(&signer, json!({})));
    let admin = format!(
        "Bearer {}",
        token(
            &signer,
            json!({"aud": "orders-admin", "scope": "orders:admin"})
        )
    );
    let both = format!(
        "Bearer {}",
        token(
            &signer,
            json!({"aud": ["orders-api", "orders-admin"], "scope": "orders:admin"})
        )
    );
    for (line, who, want) in CASES {
        let auth = match who {
            Nobody => None,
            Low => Some(low.as_str()),
            Admin => Some(admin.as_str()),
            Both => Some(both.as_str()),
        };
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        check(addr, &up, line, &headers, *want).await;
    }
}

#[tokio::test]
async fn the_refusals_carry_the_failing_routes_answer() {
    // A low-privilege token on a case variant of /admin fails on the
    // admin audience; an admin token without the scope gets 403.
    let up = Upstream::start(&[]).await;
    let (addr, signer) = edge::gateway(&up.url, ROUTES, false).await;
    let low = format!("Bearer {}", token(&signer, json!({})));
    let answer = send(addr, b"GET /ADMIN/users", &[("Authorization", &low)]).await;
    assert_eq!(answer.status, 401);
    assert!(answer.all("www-authenticate")[0].contains("audience_mismatch"));
    let no_scope = format!(
        "Bearer {}",
        token(&signer, json!({"aud": ["orders-api", "orders-admin"]}))
    );
    let answer = send(addr, b"GET /ADMIN/users", &[("Authorization", &no_scope)]).await;
    assert_eq!(answer.status, 403);
    assert!(answer.all("www-authenticate")[0].contains("scope=\"orders:admin\""));
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn an_absolute_form_target_must_name_the_gateway() {
    let up = Upstream::start(&[]).await;
    // Without public_authorities, the absolute form must agree with Host.
    let (addr, _) = edge::gateway(&up.url, ROUTES, false).await;
    check(
        addr,
        &up,
        b"GET http://evil/health",
        &[("Host", "evil")],
        Up("/health"),
    )
    .await;
    check(
        addr,
        &up,
        b"GET http://evil/health",
        &[("Host", "gw.test")],
        Bad("foreign_authority"),
    )
    .await;
    // With them, only they are the gateway; Host does not matter.
    let toml = format!("public_authorities = [\"gw.example\", \"10.0.0.1:8443\"]\n{ROUTES}");
    let (addr, _) = edge::gateway(&up.url, &toml, false).await;
    for (line, host, want) in [
        (
            &b"GET http://evil/health"[..],
            "evil",
            Bad("foreign_authority"),
        ),
        (
            b"GET http://gw.test/health",
            "gw.test",
            Bad("foreign_authority"),
        ),
        (b"GET http://gw.example/health", "evil", Up("/health")),
        (b"GET http://GW.Example:80/health", "x", Up("/health")),
        (b"GET http://10.0.0.1:8443/health", "x", Up("/health")),
        (b"GET http://10.0.0.1/health", "x", Bad("foreign_authority")),
        (
            b"GET http://u:p@gw.example/health",
            "gw.example",
            Bad("foreign_authority"),
        ),
        // The origin form is not compared.
        (b"GET /health", "evil", Up("/health")),
    ] {
        check(addr, &up, line, &[("Host", host)], want).await;
    }
}
