//! Issue 13, forward auth: `mode = "authz"` asked by each proxy in the
//! shape its documentation gives, byte for byte: nginx `auth_request`
//! (`X-Original-Method`, `X-Original-URI`), Traefik `forwardAuth`
//! (`X-Forwarded-Method`, `-Proto`, `-Host`, `-Uri`, `-For`) and Envoy's
//! `ext_authz` HTTP service (the original method, `path_prefix` + the
//! original path, `Content-Length: 0`). Every refusal has its status, each
//! beside a positive control; each flavour ignores the others' headers;
//! paths not already canonical are refused. The real nginx is in
//! `nginx.rs`.
#![allow(clippy::unwrap_used)] // test set-up: a failure should stop the test

#[path = "common/edge.rs"]
mod edge;

use std::net::SocketAddr;

use edge::{send, token, Answer};
use serde_json::{json, Value};
use tessera_jose::Signer;

const ROUTES: &str = "[[routes]]\nprefix = \"/public\"\npublic = true\n\
[[routes]]\nprefix = \"/admin\"\naudience = \"orders-admin\"\nscopes = [\"orders:admin\"]\n";

/// A proxy asking, as its documentation says it does.
#[derive(Clone, Copy, Debug)]
enum Proxy {
    Nginx,
    Traefik,
    Envoy,
}

use Proxy::{Envoy, Nginx, Traefik};

const ALL: [Proxy; 3] = [Nginx, Traefik, Envoy];

impl Proxy {
    fn section(self) -> &'static str {
        match self {
            Nginx => "[authz]\nflavor = \"nginx\"\n",
            Traefik => "[authz]\nflavor = \"traefik\"\n",
            Envoy => "[authz]\nflavor = \"envoy\"\npath_prefix = \"/authz\"\n",
        }
    }

    /// A decision endpoint for this proxy, with the routes above.
    async fn start(self, forward_token: bool) -> (SocketAddr, Signer) {
        edge::authz(&format!("{}{ROUTES}", self.section()), forward_token).await
    }

    /// Asks about `method target` (target as the client wrote it), with the
    /// client's `headers` passed along as the proxy passes them.
    async fn ask(
        self,
        addr: SocketAddr,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        let line = match self {
            // auth_request: a GET subrequest to the auth location, the
            // original request in the headers the configuration sets.
            Nginx => {
                all.extend([("X-Original-Method", method), ("X-Original-URI", target)]);
                "GET /_tessera_authz".to_owned()
            }
            // forwardAuth: a GET to the configured address.
            Traefik => {
                all.extend([
                    ("X-Forwarded-Method", method),
                    ("X-Forwarded-Proto", "https"),
                    ("X-Forwarded-Host", "api.example.com"),
                    ("X-Forwarded-Uri", target),
                    ("X-Forwarded-For", "203.0.113.7"),
                ]);
                "GET /".to_owned()
            }
            // ext_authz http_service: the original method, path_prefix
            // and the original path, no body.
            Envoy => {
                all.extend([("Content-Length", "0"), ("Host", "api.example.com")]);
                format!("{method} /authz{target}")
            }
        };
        send(addr, line.as_bytes(), &all).await
    }
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn one<'a>(a: &'a Answer, name: &str) -> Option<&'a str> {
    let all = a.all(name);
    assert!(all.len() <= 1, "{name} {} times", all.len());
    all.first().copied()
}

fn challenge(a: &Answer) -> &str {
    one(a, "www-authenticate").unwrap_or_else(|| panic!("no challenge: {a:?}"))
}

fn claims(a: &Answer) -> Value {
    let raw = tessera_jose::b64::decode(one(a, "x-tessera-claims").unwrap()).unwrap();
    serde_json::from_slice(&raw).unwrap()
}

/// Envoy's list of request headers to remove, as names.
fn removed(a: &Answer) -> Vec<String> {
    one(a, "x-envoy-auth-headers-to-remove")
        .map(|v| v.split(',').map(|n| n.trim().to_owned()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn each_proxy_is_answered_200_with_the_identity() {
    for proxy in ALL {
        let (addr, signer) = proxy.start(false).await;
        let t = token(&signer, json!({"tenant_id": "acme"}));
        let a = proxy
            .ask(
                addr,
                "POST",
                "/orders?x=1",
                &[("Authorization", &bearer(&t))],
            )
            .await;
        assert_eq!(a.status, 200, "{proxy:?}: {a:?}");
        assert_eq!(one(&a, "x-tessera-subject"), Some("svc-1"), "{proxy:?}");
        assert_eq!(claims(&a)["tenant_id"], "acme", "{proxy:?}");
        assert_eq!(one(&a, "x-tessera-token"), None, "{proxy:?}");
        // The token was consumed here: no Authorization for the upstream
        // outside phantom mode.
        assert_eq!(one(&a, "authorization"), None, "{proxy:?}");
        assert_eq!(a.body, "", "{proxy:?}");
        assert_eq!(one(&a, "cache-control"), Some("no-store"), "{proxy:?}");
        match proxy {
            // Envoy removes what the answer does not set.
            Envoy => assert_eq!(removed(&a), ["x-tessera-token", "authorization"]),
            _ => assert!(removed(&a).is_empty(), "{proxy:?}"),
        }

        let (addr, signer) = proxy.start(true).await;
        let t = token(&signer, json!({}));
        let a = proxy
            .ask(addr, "GET", "/orders", &[("Authorization", &bearer(&t))])
            .await;
        assert_eq!(a.status, 200, "{proxy:?}");
        assert_eq!(one(&a, "x-tessera-token"), Some(t.as_str()), "{proxy:?}");
        if let Envoy = proxy {
            assert_eq!(removed(&a), ["authorization"]);
        }
    }
}

#[tokio::test]
async fn a_public_route_passes_with_no_identity() {
    for proxy in ALL {
        let (addr, _) = proxy.start(true).await;
        let forged = [
            ("X-Tessera-Subject", "root"),
            ("X-Tessera-Claims", "e30"),
            ("X-Tessera-Token", "x"),
        ];
        let a = proxy.ask(addr, "GET", "/public/logo.png", &forged).await;
        assert_eq!(a.status, 200, "{proxy:?}: {a:?}");
        for (name, _) in forged {
            assert_eq!(one(&a, name), None, "{proxy:?}: {name}");
        }
        match proxy {
            Envoy => assert_eq!(
                removed(&a),
                ["x-tessera-subject", "x-tessera-claims", "x-tessera-token"]
            ),
            _ => assert!(removed(&a).is_empty(), "{proxy:?}"),
        }
        // A public route never opens another spelling of itself.
        let a = proxy.ask(addr, "GET", "/PUBLIC/logo.png", &[]).await;
        assert_eq!(a.status, 401, "{proxy:?}");
    }
}

#[tokio::test]
async fn each_refusal_has_its_status_and_challenge() {
    for proxy in ALL {
        let (addr, signer) = proxy.start(false).await;
        let good = bearer(&token(&signer, json!({})));
        let ask = |target: &'static str, auth: String| async move {
            let headers: Vec<(&str, &str)> = if auth.is_empty() {
                vec![]
            } else {
                vec![("Authorization", &auth)]
            };
            proxy.ask(addr, "GET", target, &headers).await
        };
        // Positive control.
        assert_eq!(ask("/orders", good.clone()).await.status, 200, "{proxy:?}");
        // No token.
        let a = ask("/orders", String::new()).await;
        assert_eq!(
            (a.status, challenge(&a)),
            (401, "Bearer realm=\"tessera\""),
            "{proxy:?}"
        );
        // A token that does not verify.
        let a = ask("/orders", "Bearer x.y.z".into()).await;
        assert_eq!(a.status, 401, "{proxy:?}");
        assert!(
            challenge(&a).contains("error=\"invalid_token\""),
            "{proxy:?}"
        );
        // Another audience.
        let other = bearer(&token(&signer, json!({"aud": "billing-api"})));
        let a = ask("/orders", other).await;
        assert_eq!(a.status, 401, "{proxy:?}");
        assert!(challenge(&a).contains("audience_mismatch"), "{proxy:?}");
        // /admin: another audience and a scope.
        let a = ask("/admin/users", good.clone()).await;
        assert_eq!(a.status, 401, "{proxy:?}");
        assert!(challenge(&a).contains("audience_mismatch"), "{proxy:?}");
        let no_scope = bearer(&token(&signer, json!({"aud": "orders-admin"})));
        let a = ask("/admin/users", no_scope).await;
        assert_eq!(a.status, 403, "{proxy:?}");
        assert!(
            challenge(&a).contains("error=\"insufficient_scope\", scope=\"orders:admin\""),
            "{proxy:?}"
        );
        let admin = bearer(&token(
            &signer,
            json!({"aud": "orders-admin", "scope": "orders:admin"}),
        ));
        let a = ask("/admin/users", admin.clone()).await;
        assert_eq!(a.status, 200, "{proxy:?}");
        // A lenient spelling of /admin needs what /admin needs and the
        // default audience: the admin token lacks the latter.
        let a = ask("/Admin/users", admin).await;
        assert_eq!(a.status, 401, "{proxy:?}");
        // An expired token; a token without a subject.
        let now = tessera_jose::UnixTime::now().secs();
        let expired = bearer(&token(&signer, json!({"exp": now - 120, "iat": now - 900})));
        let a = ask("/orders", expired).await;
        assert!(challenge(&a).contains("\"expired\""), "{proxy:?}");
        let mut no_sub =
            json!({"iss": edge::ISS, "aud": "orders-api", "exp": now + 600, "iat": now});
        no_sub.as_object_mut().unwrap().remove("sub");
        let a = ask("/orders", bearer(&signer.sign(&no_sub).unwrap())).await;
        assert_eq!(a.status, 401, "{proxy:?}");
        assert!(challenge(&a).contains("missing_claim"), "{proxy:?}");
        // Two Authorization headers: RFC 6750's 400.
        let a = proxy
            .ask(
                addr,
                "GET",
                "/orders",
                &[("Authorization", &good), ("Authorization", &good)],
            )
            .await;
        assert_eq!(a.status, 400, "{proxy:?}");
        // No refusal names an identity.
        assert_eq!(one(&a, "x-tessera-subject"), None);
    }
}

/// The paths proxy mode would rewrite: the proxy forwards them as written,
/// so the decision cannot be taken on the rewritten form.
#[tokio::test]
async fn a_path_not_already_canonical_is_refused() {
    for proxy in ALL {
        let (addr, signer) = proxy.start(false).await;
        let good = bearer(&token(&signer, json!({})));
        // Positive controls: canonical paths; the query is never read.
        for target in [
            "/public/x",
            "/public/x?next=/../admin&p=%2e%2e",
            "/public/a%20b",
        ] {
            let a = proxy.ask(addr, "GET", target, &[]).await;
            assert_eq!(a.status, 200, "{proxy:?} {target}");
        }
        for (target, code) in [
            ("/public/../admin", "not_canonical"),
            ("/public/%2e%2e/admin", "not_canonical"),
            ("/public/.%2E/admin", "not_canonical"),
            ("/public/./x", "not_canonical"),
            ("//public/x", "not_canonical"),
            ("/public//x", "not_canonical"),
            ("/%70ublic/x", "not_canonical"),
            ("/public/%7e", "not_canonical"),
            ("/public/%c3%a9", "not_canonical"),
            ("/public%2F..%2Fadmin", "encoded_slash"),
            ("/public/..;/admin", "path_parameter"),
            ("/public/..%5Cadmin", "backslash"),
            ("/public/%252e%252e/admin", "double_encoding"),
            ("/public/%c0%ae%c0%ae/admin", "bad_utf8"),
            ("/public/%EF%BC%8E%EF%BC%8E/admin", "unicode_lookalike"),
            ("/public/%00", "control_char"),
        ] {
            // With a token good for anything but /admin: the refusal is the
            // path's, not the token's.
            let a = proxy
                .ask(addr, "GET", target, &[("Authorization", &good)])
                .await;
            assert_eq!(
                (a.status, a.body.as_str()),
                (400, format!("bad request target: {code}\n").as_str()),
                "{proxy:?} {target}"
            );
            assert_eq!(one(&a, "x-tessera-subject"), None);
        }
        // What only a header can carry (a request line cannot): a fragment,
        // a space, raw non-ASCII, an absolute form.
        if !matches!(proxy, Envoy) {
            for (target, code) in [
                ("/public/x#frag", "not_canonical"),
                ("/public/a b", "not_canonical"),
                ("/public/caf\u{e9}", "not_canonical"),
                ("http://api.example.com/public/x", "not_origin_form"),
                ("*", "not_origin_form"),
                ("", "not_origin_form"),
            ] {
                let a = proxy.ask(addr, "GET", target, &[]).await;
                assert_eq!(
                    (a.status, a.body.as_str()),
                    (400, format!("bad request target: {code}\n").as_str()),
                    "{proxy:?} {target:?}"
                );
            }
        }
        // TRACE would echo the identity the proxy adds; CONNECT names no
        // path. Refused as in proxy mode.
        let a = proxy
            .ask(addr, "TRACE", "/orders", &[("Authorization", &good)])
            .await;
        assert_eq!(a.status, 501, "{proxy:?}");
        let a = proxy
            .ask(addr, "trace", "/orders", &[("Authorization", &good)])
            .await;
        assert_eq!(a.status, 501, "{proxy:?}");
        let a = proxy
            .ask(addr, "CONNECT", "/orders", &[("Authorization", &good)])
            .await;
        assert_eq!(
            (a.status, a.body.as_str()),
            (400, "bad request target: not_origin_form\n"),
            "{proxy:?}"
        );
    }
}

/// Each flavour reads the original request from its own headers only: the
/// client's copies of another flavour's names (which nginx and Traefik pass
/// along) name nothing, and without its own the answer is 500.
#[tokio::test]
async fn each_flavour_reads_only_its_own_headers() {
    // nginx: the decision is on X-Original-URI, whatever else says.
    let (addr, _) = Nginx.start(false).await;
    let forged = [
        ("X-Forwarded-Uri", "/public/x"),
        ("X-Forwarded-Method", "GET"),
        ("X-Original-URL", "/public/x"),
        ("X-Rewrite-URL", "/public/x"),
    ];
    let a = Nginx.ask(addr, "GET", "/admin", &forged).await;
    assert_eq!(a.status, 401, "decided on X-Original-URI");
    // The subrequest's own path names nothing either.
    let a = send(
        addr,
        b"GET /public/x",
        &[("X-Original-Method", "GET"), ("X-Original-URI", "/admin")],
    )
    .await;
    assert_eq!(a.status, 401);
    let a = Nginx.ask(addr, "GET", "/public/x", &[]).await;
    assert_eq!(a.status, 200, "positive control");
    for headers in [
        // Traefik's names only.
        &[
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Uri", "/public/x"),
        ][..],
        // No method.
        &[("X-Original-URI", "/public/x")][..],
        // No URI.
        &[("X-Original-Method", "GET")][..],
        // The URI twice (the client's and nginx's).
        &[
            ("X-Original-Method", "GET"),
            ("X-Original-URI", "/public/x"),
            ("X-Original-URI", "/public/y"),
        ][..],
        // Underscores are another name (and nginx drops them).
        &[
            ("X_Original_Method", "GET"),
            ("X_Original_URI", "/public/x"),
        ][..],
        // Not a method.
        &[
            ("X-Original-Method", "G(T"),
            ("X-Original-URI", "/public/x"),
        ][..],
    ] {
        let a = send(addr, b"GET /public/x", headers).await;
        assert_eq!(a.status, 500, "{headers:?}");
        assert_eq!(one(&a, "x-tessera-subject"), None);
    }

    // Traefik: the decision is on X-Forwarded-Uri.
    let (addr, _) = Traefik.start(false).await;
    let forged = [
        ("X-Original-URI", "/public/x"),
        ("X-Original-Method", "GET"),
        ("X-Original-URL", "/public/x"),
    ];
    let a = Traefik.ask(addr, "GET", "/admin", &forged).await;
    assert_eq!(a.status, 401, "decided on X-Forwarded-Uri");
    for headers in [
        &[
            ("X-Original-Method", "GET"),
            ("X-Original-URI", "/public/x"),
        ][..],
        &[("X-Forwarded-Method", "GET")][..],
        &[("X-Forwarded-Uri", "/public/x")][..],
        &[
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Uri", "/public/x"),
            ("X-Forwarded-Uri", "/public/y"),
        ][..],
    ] {
        let a = send(addr, b"GET /public/x", headers).await;
        assert_eq!(a.status, 500, "{headers:?}");
    }

    // Envoy: the decision is on the request line.
    let (addr, _) = Envoy.start(false).await;
    let forged = [
        ("X-Original-URI", "/public/x"),
        ("X-Forwarded-Uri", "/public/x"),
        ("X-Forwarded-Method", "GET"),
    ];
    let a = Envoy.ask(addr, "GET", "/admin", &forged).await;
    assert_eq!(a.status, 401, "decided on the request line");
    // A path without the prefix is not Envoy's.
    for line in [
        &b"GET /public/x"[..],
        b"GET /authz",
        b"GET /authzpublic/x",
        b"GET http://api.example.com/authz/public/x",
    ] {
        let a = send(addr, line, &forged).await;
        assert_eq!(a.status, 500, "{}", String::from_utf8_lossy(line));
    }
}

#[tokio::test]
async fn nginx_header_names_are_settings() {
    let toml = format!(
        "[authz]\nflavor = \"nginx\"\nmethod_header = \"X-Auth-Method\"\nuri_header = \"X-Auth-Uri\"\n{ROUTES}"
    );
    let (addr, _) = edge::authz(&toml, false).await;
    let a = send(
        addr,
        b"GET /auth",
        &[("X-Auth-Method", "GET"), ("X-Auth-Uri", "/public/x")],
    )
    .await;
    assert_eq!(a.status, 200);
    // The default names are not read once others are set.
    let a = send(
        addr,
        b"GET /auth",
        &[
            ("X-Original-Method", "GET"),
            ("X-Original-URI", "/public/x"),
        ],
    )
    .await;
    assert_eq!(a.status, 500);
}

/// In front of a real authority, following its deny-list feed: a revoked
/// token is refused as `revoked` once the feed brings it, cached or not,
/// exactly as in proxy mode.
#[tokio::test]
async fn a_revoked_token_is_refused_by_the_decision_endpoint() {
    use tessera_gateway::{Gateway, GatewayConfig, GatewayOverrides};
    use tessera_testkit::{backends, eventually, TestServer};

    for b in backends().await {
        let auth = TestServer::start_live(&b).await;
        let issuer = auth.issuer.clone();
        let (id, secret) = auth.quickstart();
        let (feed_id, feed_secret) = auth.follower().await;
        let secret_file = auth.file("feed.secret", feed_secret);
        let gw_file = auth.file(
            "gw.toml",
            &format!(
                "mode = \"authz\"\n[authz]\nflavor = \"traefik\"\n[revocations]\nclient_id = \"{feed_id}\"\nclient_secret_file = \"{}\"\n",
                secret_file.display()
            ),
        );
        let config = GatewayConfig::load(
            Some(&gw_file),
            &GatewayOverrides {
                listen: Some("127.0.0.1:0".into()),
                issuer: Some(issuer.clone()),
                audience: Some(issuer.clone()),
                ..GatewayOverrides::default()
            },
        )
        .unwrap();
        let (addr, _task) = Gateway::new(config)
            .await
            .unwrap()
            .serve(std::future::pending())
            .await
            .unwrap();

        let token = bearer(&auth.token(id, secret).await);
        let headers = [("Authorization", token.as_str())];
        let ask = || Traefik.ask(addr, "GET", "/orders", &headers);
        assert_eq!(ask().await.status, 200);
        assert_eq!(ask().await.status, 200, "now from the token cache");
        let resp = auth
            .http
            .post(format!("{issuer}/revoke"))
            .basic_auth(id, Some(secret))
            .form(&[("token", token.trim_start_matches("Bearer "))])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let ask = &ask;
        eventually(
            "the decision endpoint refuses the revoked token",
            || async {
                let a = ask().await;
                if a.status == 200 {
                    return None;
                }
                assert_eq!(a.status, 401);
                assert!(
                    challenge(&a).contains("error_description=\"revoked\""),
                    "{a:?}"
                );
                Some(())
            },
        )
        .await;
        auth.stop().await;
    }
}
