//! RFC 7009 revocation of JWT access tokens and the deny-list feed.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{backends, oauth_error, TestServer};

pub(crate) async fn revoke(
    s: &TestServer,
    id: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    s.http
        .post(s.url("/revoke"))
        .basic_auth(id, Some(secret))
        .form(form)
        .send()
        .await
        .unwrap()
}

/// The feed from `since`, read as the server's follower client.
pub(crate) async fn feed(s: &TestServer, since: i64) -> Value {
    let (id, secret) = s.follower().await;
    let resp = s
        .http
        .get(s.url(&format!("/revocations?since={since}")))
        .basic_auth(id, Some(secret))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

pub(crate) fn claims(token: &str) -> Value {
    Value::Object(tessera_jose::decode_unverified(token, 8192).unwrap().claims)
}

#[tokio::test]
async fn a_revoked_access_token_enters_the_feed_until_it_expires() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let (id, secret) = s.basic_client(json!({})).await;
        let token = s.token(&id, &secret).await;
        let c = claims(&token);
        assert_eq!(feed(&s, 0).await["seq"], 0);

        let resp = revoke(
            &s,
            &id,
            &secret,
            &[("token", &token), ("token_type_hint", "access_token")],
        )
        .await;
        assert_eq!(resp.status(), 200, "{}", b.name);
        let f = feed(&s, 0).await;
        assert_eq!(f["seq"], 1);
        assert_eq!(f["snapshot"], false);
        assert_eq!(
            f["entries"],
            json!([{"seq": 1, "jti": c["jti"], "exp": c["exp"].as_i64().unwrap() + 60}])
        );
        // Idempotent: the same token keeps its entry.
        assert_eq!(
            revoke(&s, &id, &secret, &[("token", &token)])
                .await
                .status(),
            200
        );
        assert_eq!(feed(&s, 0).await["seq"], 1);
        assert_eq!(feed(&s, 1).await["entries"], json!([]));

        // A second one; a follower at 1 sees only it.
        let t2 = s.token(&id, &secret).await;
        revoke(&s, &id, &secret, &[("token", &t2)]).await;
        let f = feed(&s, 1).await;
        assert_eq!(f["seq"], 2);
        assert_eq!(f["entries"][0]["jti"], claims(&t2)["jti"]);

        // Past exp + leeway the entries are purged; a follower from before
        // the purge gets a (now empty) snapshot, one that is current does not.
        s.advance(Duration::from_secs(900 + 61)).await;
        let f = feed(&s, 0).await;
        assert_eq!(
            (f["seq"].as_i64(), f["snapshot"].as_bool()),
            (Some(2), Some(true)),
            "{}: {f}",
            b.name
        );
        assert_eq!(f["entries"], json!([]));
        let f = feed(&s, 2).await;
        assert_eq!(f["snapshot"], false);
        s.stop().await;
    }
}

#[tokio::test]
async fn revocation_refusals() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let (id, secret) = s.basic_client(json!({})).await;
        let (other, other_secret) = s.basic_client(json!({})).await;
        let token = s.token(&id, &secret).await;

        // Another client's token: refused, not listed.
        let resp = revoke(&s, &other, &other_secret, &[("token", &token)]).await;
        assert_eq!(
            oauth_error(resp).await,
            (400, "unauthorized_client".into()),
            "{}",
            b.name
        );
        // Garbage or foreign tokens: 200, nothing listed (RFC 7009 §2.2).
        assert_eq!(
            revoke(&s, &id, &secret, &[("token", "not-a-token")])
                .await
                .status(),
            200
        );
        let foreign = tessera_jose::Signer::new(tessera_jose::SigningKey::generate(tessera_jose::Algorithm::ES256).unwrap())
            .typ("at+jwt")
            .sign(&json!({"iss": crate::common::ISSUER, "client_id": id, "jti": "x", "exp": s.now() + 60}))
            .unwrap();
        assert_eq!(
            revoke(&s, &id, &secret, &[("token", &foreign)])
                .await
                .status(),
            200
        );
        assert_eq!(feed(&s, 0).await["seq"], 0);
        // Missing token, bad client.
        let resp = revoke(&s, &id, &secret, &[("token_type_hint", "access_token")]).await;
        assert_eq!(oauth_error(resp).await, (400, "invalid_request".into()));
        let resp = revoke(&s, &id, "tcs_wrong", &[("token", &token)]).await;
        assert_eq!(oauth_error(resp).await, (401, "invalid_client".into()));
        // The feed needs a client too.
        let resp = s
            .http
            .get(s.url("/revocations?since=0"))
            .send()
            .await
            .unwrap();
        assert_eq!(oauth_error(resp).await, (401, "invalid_client".into()));
        let resp = s
            .http
            .get(s.url("/revocations?since=0"))
            .basic_auth(&id, Some("tcs_wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(oauth_error(resp).await, (401, "invalid_client".into()));
        let (reader, reader_secret) = s.follower().await;
        let resp = s
            .http
            .get(s.url("/revocations?since=-1"))
            .basic_auth(reader, Some(reader_secret))
            .send()
            .await
            .unwrap();
        assert_eq!(oauth_error(resp).await, (400, "invalid_request".into()));
        // Discovery names both endpoints.
        let d: Value = s
            .http
            .get(s.url("/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            d["revocation_endpoint"],
            format!("{}/revoke", crate::common::ISSUER)
        );
        assert_eq!(
            d["tessera_revocation_feed_endpoint"],
            format!("{}/revocations", crate::common::ISSUER)
        );
        s.stop().await;
    }
}

/// The feed names revoked subjects and client ids: only a client registered
/// with `revocations:read` may read it, whatever it authenticates with.
#[tokio::test]
async fn only_clients_with_the_feed_permission_read_the_feed() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let (id, secret) = s.basic_client(json!({})).await;
        let (post, post_secret) = s
            .basic_client(json!({"token_endpoint_auth_method": "client_secret_post"}))
            .await;
        let (rs, rs_secret) = s
            .basic_client(json!({"introspection_audiences": ["orders-api"]}))
            .await;
        let (reader, reader_secret) = s
            .basic_client(json!({"token_endpoint_auth_method": "client_secret_post", "permissions": ["revocations:read"]}))
            .await;
        let token = s.token(&id, &secret).await;
        revoke(&s, &id, &secret, &[("token", &token)]).await;
        let read = |id: String, secret: String| {
            let s = &s;
            async move {
                s.http
                    .get(s.url("/revocations?since=0"))
                    .basic_auth(id, Some(secret))
                    .send()
                    .await
                    .unwrap()
            }
        };
        for (who, secret) in [(&id, &secret), (&post, &post_secret), (&rs, &rs_secret)] {
            let resp = read(who.clone(), secret.clone()).await;
            assert_eq!(resp.headers()["cache-control"], "no-store");
            let status = resp.status();
            let body: Value = resp.json().await.unwrap();
            assert_eq!(
                (status.as_u16(), body["error"].as_str()),
                (403, Some("unauthorized_client")),
                "{}: {body}",
                b.name
            );
            assert!(
                body["error_description"]
                    .as_str()
                    .unwrap()
                    .contains("revocations:read"),
                "{body}"
            );
            assert!(!body
                .to_string()
                .contains(&claims(&token)["jti"].as_str().unwrap().to_owned()));
        }
        // Positive control: the permitted client reads the entry.
        let resp = read(reader.clone(), reader_secret.clone()).await;
        assert_eq!(resp.status(), 200, "{}", b.name);
        let f: Value = resp.json().await.unwrap();
        assert_eq!(f["entries"][0]["jti"], claims(&token)["jti"]);
        // The admin API shows the permission.
        let listed: Value = s
            .http
            .get(s.url("/admin/clients"))
            .bearer_auth(&s.admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let perms = |who: &str| {
            listed["clients"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["client_id"] == who)
                .unwrap()["permissions"]
                .clone()
        };
        assert_eq!(perms(&reader), json!(["revocations:read"]));
        assert_eq!(perms(&id), json!([]));
        s.stop().await;
    }
}

/// Two nodes on one database revoking at once: one gap-free sequence.
#[tokio::test]
async fn nodes_share_one_sequence() {
    for b in backends().await {
        let clock = tessera_server::ManualClock::new(crate::common::T0);
        let a = TestServer::start_at(&b, &[], clock.clone()).await;
        let c = TestServer::start_at(&b, &[], clock.clone()).await;
        let (id, secret) = a.basic_client(json!({})).await;
        c.running.reload_clients().await.unwrap();
        let mut tokens = Vec::new();
        for _ in 0..10 {
            tokens.push(a.token(&id, &secret).await);
        }
        let mut calls = Vec::new();
        for (i, t) in tokens.into_iter().enumerate() {
            let node = if i % 2 == 0 { &a } else { &c };
            let (http, url, id, secret) = (
                node.http.clone(),
                node.url("/revoke"),
                id.clone(),
                secret.clone(),
            );
            calls.push(tokio::spawn(async move {
                http.post(url)
                    .basic_auth(id, Some(secret))
                    .form(&[("token", t)])
                    .send()
                    .await
                    .unwrap()
                    .status()
            }));
        }
        for call in calls {
            assert_eq!(call.await.unwrap(), 200, "{}", b.name);
        }
        let f = feed(&c, 0).await;
        let seqs: Vec<i64> = f["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect();
        assert_eq!(seqs, (1..=10).collect::<Vec<_>>(), "{}: {f}", b.name);
        a.stop().await;
        c.stop().await;
    }
}

pub(crate) async fn introspect(s: &TestServer, id: &str, secret: &str, token: &str) -> Value {
    let resp = s
        .http
        .post(s.url("/introspect"))
        .basic_auth(id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    resp.json().await.unwrap()
}

#[tokio::test]
async fn introspection_answers_active_only_for_what_the_caller_may_see() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let (app, app_secret) = s
            .basic_client(json!({"audiences": ["orders-api"], "scope": "orders:read"}))
            .await;
        let (rs, rs_secret) = s
            .basic_client(json!({"introspection_audiences": ["orders-api"]}))
            .await;
        let (other, other_secret) = s
            .basic_client(json!({"introspection_audiences": ["billing-api"]}))
            .await;
        let token = s.token(&app, &app_secret).await;

        let a = introspect(&s, &rs, &rs_secret, &token).await;
        assert_eq!(a["active"], true, "{}: {a}", b.name);
        assert_eq!(a["client_id"], app.as_str());
        assert_eq!(a["scope"], "orders:read");
        assert_eq!(a["aud"], "orders-api");
        assert_eq!(a["token_type"], "Bearer");
        assert_eq!(
            introspect(&s, &app, &app_secret, &token).await["active"],
            true,
            "its own token"
        );
        // Another audience's resource, garbage, and a foreign token: inactive, nothing else.
        assert_eq!(
            introspect(&s, &other, &other_secret, &token).await,
            json!({"active": false})
        );
        assert_eq!(
            introspect(&s, &rs, &rs_secret, "garbage").await,
            json!({"active": false})
        );
        // Revoked: inactive.
        revoke(&s, &app, &app_secret, &[("token", &token)]).await;
        assert_eq!(
            introspect(&s, &rs, &rs_secret, &token).await,
            json!({"active": false})
        );
        // Expired: inactive (no leeway for introspection).
        let fresh = s.token(&app, &app_secret).await;
        assert_eq!(
            introspect(&s, &rs, &rs_secret, &fresh).await["active"],
            true
        );
        s.advance(Duration::from_secs(901)).await;
        assert_eq!(
            introspect(&s, &rs, &rs_secret, &fresh).await,
            json!({"active": false})
        );
        // Refusals are about the caller, never the token.
        let resp = s
            .http
            .post(s.url("/introspect"))
            .basic_auth(&rs, Some("tcs_wrong"))
            .form(&[("token", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(oauth_error(resp).await, (401, "invalid_client".into()));
        let resp = s
            .http
            .post(s.url("/introspect"))
            .basic_auth(&rs, Some(&rs_secret))
            .form(&[("token_type_hint", "access_token")])
            .send()
            .await
            .unwrap();
        assert_eq!(oauth_error(resp).await, (400, "invalid_request".into()));
        s.stop().await;
    }
}

#[tokio::test]
async fn opaque_tokens_live_only_through_introspection() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let (app, app_secret) = s
            .basic_client(json!({"token_format": "opaque", "audiences": ["orders-api"], "scope": "orders:read", "claims": {"tenant_id": "acme"}}))
            .await;
        let (rs, rs_secret) = s
            .basic_client(json!({"introspection_audiences": ["orders-api"]}))
            .await;
        let (other, other_secret) = s.basic_client(json!({})).await;
        let token = s.token(&app, &app_secret).await;
        assert!(token.starts_with("tso_") && token.len() >= 47, "{token}");
        assert!(
            tessera_jose::decode_unverified(&token, 8192).is_err(),
            "not a JWT"
        );

        let a = introspect(&s, &rs, &rs_secret, &token).await;
        assert_eq!(a["active"], true, "{}: {a}", b.name);
        assert_eq!(
            (a["sub"].as_str(), a["client_id"].as_str()),
            (Some(app.as_str()), Some(app.as_str()))
        );
        assert_eq!(
            (
                a["aud"].as_str(),
                a["scope"].as_str(),
                a["tenant_id"].as_str()
            ),
            (Some("orders-api"), Some("orders:read"), Some("acme"))
        );
        assert_eq!(
            introspect(&s, &other, &other_secret, &token).await,
            json!({"active": false})
        );

        // Revocation deletes it at once; only its owner may.
        let resp = revoke(&s, &other, &other_secret, &[("token", &token)]).await;
        assert_eq!(oauth_error(resp).await, (400, "unauthorized_client".into()));
        assert_eq!(
            revoke(&s, &app, &app_secret, &[("token", &token)])
                .await
                .status(),
            200
        );
        assert_eq!(
            introspect(&s, &rs, &rs_secret, &token).await,
            json!({"active": false})
        );
        assert_eq!(
            revoke(&s, &app, &app_secret, &[("token", &token)])
                .await
                .status(),
            200,
            "unknown now: still 200"
        );

        // Expiry.
        let t2 = s.token(&app, &app_secret).await;
        s.advance(Duration::from_secs(901)).await;
        assert_eq!(
            introspect(&s, &rs, &rs_secret, &t2).await,
            json!({"active": false})
        );
        s.stop().await;
    }
}

#[tokio::test]
async fn refresh_reuse_also_kills_the_familys_opaque_access_tokens() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let key = tessera_jose::Signer::new({
            let k = tessera_jose::SigningKey::generate(tessera_jose::Algorithm::ES256).unwrap();
            let kid = k.thumbprint();
            k.with_kid(kid)
        });
        let public = serde_json::to_value(key.key().public_jwk().unwrap()).unwrap();
        let jwt_bearer = "urn:ietf:params:oauth:grant-type:jwt-bearer";
        let (id, secret) = s
            .basic_client(json!({"grant_types": [jwt_bearer, "refresh_token"], "jwks": {"keys": [public]}, "token_format": "opaque"}))
            .await;
        let a = key
            .sign(&json!({"iss": id, "sub": "user-7", "aud": format!("{}/token", crate::common::ISSUER), "exp": s.now() + 60, "jti": "l-1"}))
            .unwrap();
        let body: Value = s
            .token_basic(
                &id,
                &secret,
                &[("grant_type", jwt_bearer), ("assertion", &a)],
            )
            .await
            .json()
            .await
            .unwrap();
        let access = body["access_token"].as_str().unwrap().to_owned();
        let r1 = body["refresh_token"].as_str().unwrap().to_owned();
        assert_eq!(introspect(&s, &id, &secret, &access).await["sub"], "user-7");
        let body: Value = s
            .token_basic(
                &id,
                &secret,
                &[("grant_type", "refresh_token"), ("refresh_token", &r1)],
            )
            .await
            .json()
            .await
            .unwrap();
        let access2 = body["access_token"].as_str().unwrap().to_owned();
        assert_eq!(introspect(&s, &id, &secret, &access2).await["active"], true);
        // Reuse of r1: the family goes, with both opaque access tokens.
        let resp = s
            .token_basic(
                &id,
                &secret,
                &[("grant_type", "refresh_token"), ("refresh_token", &r1)],
            )
            .await;
        assert_eq!(oauth_error(resp).await, (400, "invalid_grant".into()));
        assert_eq!(
            introspect(&s, &id, &secret, &access).await,
            json!({"active": false}),
            "{}",
            b.name
        );
        assert_eq!(
            introspect(&s, &id, &secret, &access2).await,
            json!({"active": false}),
            "{}",
            b.name
        );
        s.stop().await;
    }
}

#[tokio::test]
async fn introspection_forgets_a_compromised_keys_tokens() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let (app, app_secret) = s.basic_client(json!({})).await;
        let token = s.token(&app, &app_secret).await;
        assert_eq!(
            introspect(&s, &app, &app_secret, &token).await["active"],
            true
        );
        assert_eq!(
            introspect(&s, &app, &app_secret, &token).await["active"],
            true,
            "now from the cache"
        );
        let kid = tessera_jose::decode_unverified(&token, 8192)
            .unwrap()
            .header["kid"]
            .as_str()
            .unwrap()
            .to_owned();
        let resp = s
            .admin_post(&format!("/admin/keys/{kid}/compromised"), json!({}))
            .await;
        assert_eq!(resp.status(), 200);
        assert_eq!(
            introspect(&s, &app, &app_secret, &token).await,
            json!({"active": false}),
            "{}",
            b.name
        );
        s.stop().await;
    }
}
