//! The gateway against a real `tessera serve`, following its deny-list feed:
//! a revoked token is refused, cached or not, the feed lists it and
//! introspection calls it inactive. How soon is measured by `bench/`.
#![allow(clippy::unwrap_used)] // test set-up: a failure should stop the test

mod common;

use std::time::{Duration, Instant};

use serde_json::Value;
use tessera_gateway::{Gateway, GatewayConfig, GatewayOverrides};
use tessera_testkit::{backends, eventually, TestServer};

#[tokio::test]
async fn a_revoked_token_is_refused_by_the_gateway() {
    for b in backends().await {
        let auth = TestServer::start_live(&b).await;
        let issuer = auth.issuer.clone();
        let (id, secret) = auth.quickstart();

        // The upstream.
        let app = axum::Router::new().fallback(|| async { "ok" });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        // The gateway reads the feed as a client registered for it.
        let (feed_id, feed_secret) = auth.follower().await;
        let secret_file = auth.file("feed.secret", feed_secret);
        // The route names its own audience: its verifier, not the default one,
        // must follow the feed too (the phantom test covers the default one).
        let gw_file = auth.file(
            "gw.toml",
            &format!(
                "[revocations]\nclient_id = \"{feed_id}\"\nclient_secret_file = \"{}\"\n[[routes]]\nprefix = \"/orders\"\naudience = \"{issuer}\"\n",
                secret_file.display()
            ),
        );
        let addr = common::start_gateway(&gw_file, &issuer, "some-other-api", upstream).await;

        let http = auth.http.clone();
        let token = auth.token(id, secret).await;
        let through = || {
            http.get(format!("http://{addr}/orders"))
                .bearer_auth(&token)
                .send()
        };
        assert_eq!(through().await.unwrap().status(), 200);
        assert_eq!(
            through().await.unwrap().status(),
            200,
            "now from the token cache"
        );
        let resp = http
            .post(format!("{issuer}/revoke"))
            .basic_auth(id, Some(secret))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        // Admitted from the cache until the feed brings the entry; then
        // refused as revoked, and never any other way.
        let through = &through;
        eventually("the gateway refuses the revoked token", || async {
            let resp = through().await.unwrap();
            if resp.status() == 200 {
                return None;
            }
            assert_eq!(resp.status(), 401);
            let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
            assert!(
                challenge.contains("error_description=\"revoked\""),
                "{challenge}"
            );
            Some(())
        })
        .await;
        // The feed lists it and introspection says inactive.
        let jti = tessera_jose::decode_unverified(&token, 8192)
            .unwrap()
            .claims["jti"]
            .clone();
        let feed: Value = http
            .get(format!("{issuer}/revocations?since=0"))
            .basic_auth(feed_id, Some(feed_secret))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(feed["entries"][0]["jti"], jti, "{feed}");
        let answer: Value = http
            .post(format!("{issuer}/introspect"))
            .basic_auth(id, Some(secret))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer, serde_json::json!({"active": false}));
        auth.stop().await;
    }
}

/// A deny-list feed that never answers must not keep the gateway from
/// starting, and the gateway must say it has not read the list.
#[tokio::test]
async fn a_gateway_starts_in_bounded_time_against_a_feed_that_never_answers() {
    for b in backends().await {
        let auth = TestServer::start_live(&b).await;
        let issuer = auth.issuer.clone();
        let hanging = axum::Router::new().route(
            "/revocations",
            axum::routing::get(std::future::pending::<&'static str>),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let feed = format!("http://{}/revocations", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, hanging).await });
        let upstream = axum::Router::new().fallback(|| async { "ok" });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, upstream).await });

        let quickstart = auth.quickstart();
        let (id, secret) = auth.follower().await;
        let secret_file = auth.file("feed.secret", secret);
        let load = |feed: &str| {
            let file = auth.file(
                "gw.toml",
                &format!(
                    "revocations_catch_up = \"300ms\"\n[revocations]\nurl = \"{feed}\"\nclient_id = \"{id}\"\nclient_secret_file = \"{}\"\n",
                    secret_file.display()
                ),
            );
            GatewayConfig::load(
                Some(&file),
                &GatewayOverrides {
                    listen: Some("127.0.0.1:0".into()),
                    upstream: Some(upstream_url.clone()),
                    issuer: Some(issuer.clone()),
                    audience: Some(issuer.clone()),
                    ..GatewayOverrides::default()
                },
            )
            .unwrap()
        };

        let started = Instant::now();
        let gw = Gateway::new(load(&feed)).await.unwrap();
        let took = started.elapsed();
        // Its catch-up time (300 ms) ended the wait, not the 10 s default.
        assert!(took < Duration::from_secs(8), "started after {took:?}");
        assert_eq!(gw.revocations_caught_up(), Some(false));
        // It serves.
        let (addr, _task) = gw.serve(std::future::pending()).await.unwrap();
        let resp = auth
            .http
            .get(format!("http://{addr}/orders"))
            .bearer_auth(auth.token(quickstart.0, quickstart.1).await)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);

        // Positive control: against the authority's own feed it is caught up.
        let gw = Gateway::new(load(&auth.url("/revocations"))).await.unwrap();
        assert_eq!(gw.revocations_caught_up(), Some(true));
        auth.stop().await;
    }
}

/// A feed client the authority does not let read the feed is a
/// configuration error: the gateway does not start, and says why.
#[tokio::test]
async fn a_feed_client_without_the_permission_stops_the_start_with_a_reason() {
    for b in backends().await {
        let auth = TestServer::start_live(&b).await;
        let issuer = auth.issuer.clone();
        let (id, secret) = auth.quickstart();
        let secret_file = auth.file("feed.secret", secret);
        let file = auth.file(
            "gw.toml",
            &format!(
                "[revocations]\nclient_id = \"{}\"\nclient_secret_file = \"{}\"\n",
                id,
                secret_file.display()
            ),
        );
        let config = GatewayConfig::load(
            Some(&file),
            &GatewayOverrides {
                listen: Some("127.0.0.1:0".into()),
                upstream: Some("http://127.0.0.1:9".into()),
                issuer: Some(issuer.clone()),
                audience: Some(issuer),
                ..GatewayOverrides::default()
            },
        )
        .unwrap();
        let e = Gateway::new(config).await.unwrap_err().to_string();
        assert!(e.contains("403") && e.contains("revocations:read"), "{e}");
        auth.stop().await;
    }
}

#[test]
fn the_feed_secret_file_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.toml");
    std::fs::write(
        &file,
        "[revocations]\nclient_id = \"tc_x\"\nclient_secret_file = \"/nonexistent/secret\"\n",
    )
    .unwrap();
    let e = GatewayConfig::load(
        Some(&file),
        &GatewayOverrides {
            upstream: Some("http://127.0.0.1:9000".into()),
            issuer: Some("http://127.0.0.1:8080".into()),
            audience: Some("a".into()),
            ..GatewayOverrides::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.setting, "revocations.client_secret_file");
}
