//! Issue 10, points 2 and 3: a client can neither delete the identity the
//! gateway adds (`Connection` naming it) nor slip in a look-alike of it
//! (`X_Tessera_Subject`, read as `X-Tessera-Subject` by CGI-style servers);
//! and the upstream's hop-by-hop headers stop at the gateway.
#![allow(clippy::unwrap_used)] // test set-up: a failure should stop the test

mod common;

use common::edge::{self, send, token, Upstream};
use serde_json::{json, Value};
use tessera_testkit::{backends, TestServer};

const ROUTES: &str = "[[routes]]\nprefix = \"/public\"\npublic = true\n";

#[tokio::test]
async fn connection_cannot_name_away_the_identity_the_gateway_adds() {
    let up = Upstream::start(&[]).await;
    let (addr, signer) = edge::gateway(&up.url, ROUTES, true).await;
    let t = token(&signer, json!({}));
    let bearer = format!("Bearer {t}");
    let answer = send(
        addr,
        b"GET /orders",
        &[
            ("Authorization", &bearer),
            (
                "Connection",
                "close, X-Tessera-Subject, x-tessera-claims, x-tessera-token, authorization",
            ),
            ("Connection", "x-hop, X-Request-Id"),
            ("X-Hop", "1"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("X-Request-Id", "abc-123"),
            ("X-Unrelated", "1"),
        ],
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let seen = up.last();
    // The negative: what the gateway adds survives the client's Connection.
    assert_eq!(seen.one("x-tessera-subject"), Some("svc-1"));
    let claims = tessera_jose::b64::decode(seen.one("x-tessera-claims").unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&claims).unwrap();
    assert_eq!(claims["sub"], "svc-1");
    assert_eq!(seen.one("x-tessera-token"), Some(t.as_str()));
    assert_eq!(seen.one("x-request-id"), Some("abc-123"));
    // The control: what the client named, and the fixed hop-by-hop list,
    // is gone; the rest passes.
    for hop in ["x-hop", "connection", "keep-alive", "te", "authorization"] {
        assert!(
            seen.all(hop).is_empty(),
            "{hop} reached the upstream: {seen:?}"
        );
    }
    assert_eq!(seen.one("x-unrelated"), Some("1"));

    // On a public route the client's own copies go, Connection or not.
    let answer = send(
        addr,
        b"GET /public/x",
        &[
            ("Connection", "close, x-tessera-subject"),
            ("X-Tessera-Subject", "root"),
            ("X-Tessera-Claims", "e30"),
        ],
    )
    .await;
    assert_eq!(answer.status, 200);
    let seen = up.last();
    assert!(seen.all("x-tessera-subject").is_empty(), "{seen:?}");
    assert!(seen.all("x-tessera-claims").is_empty(), "{seen:?}");
}

#[tokio::test]
async fn look_alikes_of_gateway_headers_never_reach_the_upstream() {
    let up = Upstream::start(&[]).await;
    let (addr, signer) = edge::gateway(&up.url, ROUTES, false).await;
    let bearer = format!("Bearer {}", token(&signer, json!({})));
    let forged = [
        ("X_Tessera_Subject", "admin"),
        ("x_tessera_claims", "e30"),
        ("X-TESSERA_TOKEN", "t"),
        ("x.tessera.subject", "admin"),
        ("X-Tessera-Subject", "root"),
        ("x-tessera-role", "admin"),
        ("X~Tessera~Role", "admin"),
        ("X_Request_Id", "forged"),
    ];
    for (line, auth) in [
        (&b"GET /orders"[..], Some(bearer.as_str())),
        (b"GET /public/x", None),
    ] {
        let mut headers = forged.to_vec();
        headers.extend([
            ("X-Request-Id", "abc-123"),
            ("X_Unrelated", "1"),
            ("X-Unrelated", "2"),
        ]);
        if let Some(a) = auth {
            headers.push(("Authorization", a));
        }
        let answer = send(addr, line, &headers).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        let seen = up.last();
        let folded = |n: &str| n.to_ascii_lowercase().replace(['_', '.', '~'], "-");
        let tessera: Vec<&(String, String)> = seen
            .headers
            .iter()
            .filter(|(n, _)| folded(n).starts_with("x-tessera-") || folded(n) == "x-request-id")
            .collect();
        // Only what the gateway set: its subject and claims on the
        // protected route, nothing on the public one; one request id.
        let mut names: Vec<&str> = tessera.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        if auth.is_some() {
            assert_eq!(
                names,
                ["x-request-id", "x-tessera-claims", "x-tessera-subject"],
                "{seen:?}"
            );
            assert_eq!(seen.one("x-tessera-subject"), Some("svc-1"));
        } else {
            assert_eq!(names, ["x-request-id"], "{seen:?}");
            // A public route passes a client's Authorization when not in
            // phantom mode (the upstream may want it).
        }
        assert_eq!(seen.one("x-request-id"), Some("abc-123"));
        // Controls: unrelated names pass, underscores or not.
        assert_eq!(seen.one("x_unrelated"), Some("1"));
        assert_eq!(seen.one("x-unrelated"), Some("2"));
    }
    let answer = send(addr, b"GET /public/x", &[("Authorization", "Bearer x")]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(up.last().one("authorization"), Some("Bearer x"));
}

/// Headers that frameworks read as the request's path instead of the
/// request line (Symfony and Zend `X-Original-URL`/`X-Rewrite-URL`, IIS URL
/// Rewrite, `X-Forwarded-Prefix` in Spring and ASP.NET Core...): from a
/// client they name another path than the one the gateway decided on.
#[tokio::test]
async fn headers_that_rewrite_the_path_upstream_never_reach_it() {
    let up = Upstream::start(&[]).await;
    let (addr, _) = edge::gateway(&up.url, ROUTES, false).await;
    let answer = send(
        addr,
        b"GET /public/x",
        &[
            ("X-Original-URL", "/admin/users"),
            ("X-Rewrite-URL", "/admin/users"),
            ("X_Original_URL", "/admin/users"),
            ("x.rewrite.url", "/admin/users"),
            ("X-Original-URI", "/admin/users"),
            ("X-Forwarded-Uri", "/admin/users"),
            ("X-Forwarded-Path", "/admin/users"),
            ("X-Forwarded-Prefix", "/admin"),
            ("X_Forwarded_Prefix", "/admin"),
            ("X-Original-Url-Note", "1"),
            ("X-Forwarded-Proto", "https"),
        ],
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let seen = up.last();
    assert_eq!(seen.target, "/public/x");
    let folded = |n: &str| n.to_ascii_lowercase().replace(['_', '.', '~'], "-");
    let rewriting: Vec<&(String, String)> = seen
        .headers
        .iter()
        .filter(|(n, _)| {
            matches!(
                folded(n).as_str(),
                "x-original-url"
                    | "x-rewrite-url"
                    | "x-original-uri"
                    | "x-forwarded-uri"
                    | "x-forwarded-path"
                    | "x-forwarded-prefix"
            )
        })
        .collect();
    assert!(rewriting.is_empty(), "{seen:?}");
    // Controls: other names pass.
    assert_eq!(seen.one("x-original-url-note"), Some("1"));
    assert_eq!(seen.one("x-forwarded-proto"), Some("https"));
}

/// TRACE asks the upstream to echo the request, with what the gateway
/// added to it (the identity headers, `X-Tessera-Token`, in phantom mode
/// the internal JWT): never forwarded, on any route (RFC 9110 §9.3.8).
#[tokio::test]
async fn trace_is_not_forwarded() {
    let up = Upstream::start(&[]).await;
    let (addr, signer) = edge::gateway(&up.url, ROUTES, true).await;
    let bearer = format!("Bearer {}", token(&signer, json!({})));
    for (line, auth) in [
        (&b"TRACE /orders"[..], Some(bearer.as_str())),
        (b"TRACE /public/x", None),
        (b"trace /orders", Some(bearer.as_str())),
    ] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        let answer = send(addr, line, &headers).await;
        assert_eq!((answer.status, up.count()), (501, 0), "{answer:?}");
    }
    // Control: other methods pass.
    let answer = send(addr, b"OPTIONS /public/x", &[]).await;
    assert_eq!((answer.status, up.count()), (200, 1), "{answer:?}");
}

#[tokio::test]
async fn the_upstreams_hop_by_hop_headers_stop_at_the_gateway() {
    let up = Upstream::start(&[
        "Connection: close, x-up-hop, x-request-id",
        "X-Up-Hop: 1",
        "Keep-Alive: timeout=5",
        "Proxy-Authenticate: Basic",
        "Upgrade: h2c",
        "X-Request-Id: upstream-id",
        "X-Up-Plain: 1",
    ])
    .await;
    let (addr, _) = edge::gateway(&up.url, ROUTES, false).await;
    let answer = send(addr, b"GET /public/x", &[("X-Request-Id", "rid-1")]).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "ok"));
    for hop in ["x-up-hop", "keep-alive", "proxy-authenticate", "upgrade"] {
        assert!(
            answer.all(hop).is_empty(),
            "{hop} reached the client: {answer:?}"
        );
    }
    // Connection here is the gateway's own (the client asked for close).
    assert_eq!(answer.all("connection"), ["close"]);
    // The gateway's request id, whatever the upstream named or sent.
    assert_eq!(answer.all("x-request-id"), ["rid-1"]);
    assert_eq!(answer.all("x-up-plain"), ["1"]);
}

/// The upstream's `Authorization` in phantom mode is the gateway's
/// internal JWT and nothing else.
#[tokio::test]
async fn in_phantom_mode_authorization_is_the_gateways_alone() {
    for b in backends().await {
        let auth = TestServer::start_live(&b).await;
        let issuer = auth.issuer.clone();
        let (app, app_secret) = auth
            .basic_client(
                json!({"client_name": "app", "token_format": "opaque", "audiences": ["orders-api"]}),
            )
            .await;
        let (gw_id, gw_secret) = auth
            .basic_client(json!({"client_name": "gateway", "grant_types": ["urn:ietf:params:oauth:grant-type:token-exchange"], "introspection_audiences": ["orders-api"]}))
            .await;
        let up = Upstream::start(&[]).await;
        let secret_file = auth.file("gw.secret", &gw_secret);
        let gw_file = auth.file(
            "gw.toml",
            &format!(
                "[phantom]\nclient_id = \"{gw_id}\"\nclient_secret_file = \"{}\"\n{ROUTES}",
                secret_file.display()
            ),
        );
        let addr = common::start_gateway(&gw_file, &issuer, "orders-api", up.url.clone()).await;
        let body: Value = auth
            .http
            .post(format!("{issuer}/token"))
            .basic_auth(&app, Some(&app_secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let opaque = format!("Bearer {}", body["access_token"].as_str().unwrap());

        // Connection naming Authorization and the identity headers removes
        // neither the internal JWT nor the identity.
        let answer = send(
            addr,
            b"GET /orders",
            &[
                ("Authorization", &opaque),
                ("Connection", "close, authorization, x-tessera-subject"),
            ],
        )
        .await;
        assert_eq!(answer.status, 200, "{answer:?}");
        let seen = up.last();
        let internal = seen.one("authorization").unwrap();
        assert!(internal.starts_with("Bearer eyJ"), "{seen:?}");
        assert_eq!(seen.one("x-tessera-subject"), Some(app.as_str()));

        // TRACE would have the upstream echo the internal JWT back to the
        // client: it is not forwarded.
        let before = up.count();
        let answer = send(addr, b"TRACE /orders", &[("Authorization", &opaque)]).await;
        assert_eq!((answer.status, up.count()), (501, before), "{answer:?}");

        // A client's own Authorization on a public route would pass for the
        // gateway's internal JWT: it is removed.
        let answer = send(
            addr,
            b"GET /public/x",
            &[("Authorization", internal), ("X-Unrelated", "1")],
        )
        .await;
        assert_eq!(answer.status, 200);
        let seen = up.last();
        assert!(seen.all("authorization").is_empty(), "{seen:?}");
        assert_eq!(seen.one("x-unrelated"), Some("1"));
        auth.stop().await;
    }
}
