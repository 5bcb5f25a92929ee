//! A token signed by a key this node has not loaded yet (another node just
//! started signing with it): revocation, introspection and exchange read
//! the key table again before deciding, once per cooldown however many
//! made-up kids arrive, and answer 503 rather than 200-and-unlisted when
//! the table cannot be read.

use serde_json::{json, Value};
use tessera_jose::{Algorithm, Signer, SigningKey};

use crate::common::{backends, oauth_error, TestServer, ISSUER};
use crate::revoke::{claims, feed, introspect, revoke};

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const AT: &str = "urn:ietf:params:oauth:token-type:access_token";

fn kid_of(token: &str) -> String {
    tessera_jose::decode_unverified(token, 8192).unwrap().header["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn holds(s: &TestServer, kid: &str) -> bool {
    s.running.loaded_kids().iter().any(|k| k == kid)
}

/// Node `a` switches at once to a key `c` has not read. One immediate
/// rotation is not enough: it activates the pending key, published since
/// the previous switch and so already held by `c`; the second activates
/// the key the first one published.
async fn rotate_now(a: &TestServer) {
    for _ in 0..2 {
        let resp = a
            .admin_post("/admin/keys/rotate", json!({"immediate": true}))
            .await;
        assert_eq!(resp.status(), 200);
    }
}

/// A token that says it is ours, under a key no node has.
fn forged(jti: &str) -> String {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let kid = key.thumbprint();
    Signer::new(key.with_kid(kid))
        .typ("at+jwt")
        .sign(&json!({
            "iss": ISSUER, "sub": "tc_x", "aud": ISSUER, "client_id": "tc_x",
            "exp": crate::common::T0 + 600, "iat": crate::common::T0, "jti": jti,
        }))
        .unwrap()
}

#[tokio::test]
async fn a_revocation_on_a_node_behind_a_rotation_is_listed() {
    for b in backends().await {
        let clock = tessera_server::ManualClock::new(crate::common::T0);
        let a = TestServer::start_at(&b, &[], clock.clone()).await;
        let c = TestServer::start_at(&b, &[], clock.clone()).await;
        let app = a.basic_client(json!({"audiences": ["orders-api"]})).await;
        let rs = a
            .basic_client(json!({"grant_types": ["client_credentials", EXCHANGE], "introspection_audiences": ["orders-api"]}))
            .await;
        c.running.reload_clients().await.unwrap();
        let before = a.token(&app.0, &app.1).await;
        rotate_now(&a).await;
        let revoked = a.token(&app.0, &app.1).await;
        let kept = a.token(&app.0, &app.1).await;
        let kid = kid_of(&revoked);
        assert_ne!(kid, kid_of(&before), "{}: a new key signs", b.name);
        assert!(
            !holds(&c, &kid),
            "{}: node c has not read the new key",
            b.name
        );

        // Revoked on c: listed, though c did not know the key.
        let resp = revoke(&c, &app.0, &app.1, &[("token", &revoked)]).await;
        assert_eq!(resp.status(), 200, "{}", b.name);
        assert_eq!(c.running.unknown_kid_reloads(), 1, "{}", b.name);
        assert!(holds(&c, &kid), "{}", b.name);
        let jti = claims(&revoked)["jti"].as_str().unwrap().to_owned();
        for node in [&a, &c] {
            let f = feed(node, 0).await;
            let listed: Vec<&str> = f["entries"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|e| e["jti"].as_str())
                .collect();
            assert_eq!(listed, [jti.as_str()], "{}: {f}", b.name);
        }
        assert_eq!(
            introspect(&c, &rs.0, &rs.1, &revoked).await,
            json!({"active": false}),
            "{}",
            b.name
        );
        assert_eq!(
            introspect(&a, &rs.0, &rs.1, &revoked).await,
            json!({"active": false}),
            "{}",
            b.name
        );
        // Controls: the new key's other token, and the old key's, live on.
        for t in [&kept, &before] {
            assert_eq!(
                introspect(&c, &rs.0, &rs.1, t).await["active"],
                true,
                "{}",
                b.name
            );
        }
        assert_eq!(c.running.unknown_kid_reloads(), 1, "{}", b.name);

        // Introspection and exchange on a node behind the next rotation.
        rotate_now(&a).await;
        let newer = a.token(&app.0, &app.1).await;
        let newest_kid = kid_of(&newer);
        assert!(!holds(&c, &newest_kid), "{}", b.name);
        let answer = introspect(&c, &rs.0, &rs.1, &newer).await;
        assert_eq!(
            (answer["active"].as_bool(), answer["jti"].clone()),
            (Some(true), claims(&newer)["jti"].clone()),
            "{}: {answer}",
            b.name
        );
        assert_eq!(c.running.unknown_kid_reloads(), 2, "{}", b.name);
        rotate_now(&a).await;
        let newest = a.token(&app.0, &app.1).await;
        let resp = c
            .token_basic(
                &rs.0,
                &rs.1,
                &[
                    ("grant_type", EXCHANGE),
                    ("subject_token", &newest),
                    ("subject_token_type", AT),
                ],
            )
            .await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 200, "{}: {body}", b.name);
        assert_eq!(c.running.unknown_kid_reloads(), 3, "{}", b.name);
        a.stop().await;
        c.stop().await;
    }
}

/// Made-up kids under our issuer cost one key-table read per cooldown, not
/// one per request; a foreign issuer's unknown kid costs none. Each such
/// token is answered 200 (RFC 7009 §2.2: not a token of ours once the
/// table has been read) and lists nothing.
#[tokio::test]
async fn made_up_kids_share_one_reload() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let (id, secret) = s.basic_client(json!({})).await;
        let mut calls = Vec::new();
        let started = std::time::Instant::now();
        for i in 0..20 {
            let (http, url, id, secret) =
                (s.http.clone(), s.url("/revoke"), id.clone(), secret.clone());
            let token = forged(&format!("forged-{i}"));
            calls.push(tokio::spawn(async move {
                http.post(url)
                    .basic_auth(id, Some(secret))
                    .form(&[("token", token)])
                    .send()
                    .await
                    .unwrap()
                    .status()
            }));
        }
        for call in calls {
            assert_eq!(call.await.unwrap(), 200, "{}", b.name);
        }
        let took = started.elapsed();
        let reloads = s.running.unknown_kid_reloads();
        // One, or two when a request arrived after the first reload had
        // started, plus at most one per 500 ms cooldown the calls spanned
        // (on a loaded machine 20 authenticated calls can take seconds);
        // never one per request.
        let cooldowns = u64::try_from(took.as_millis() / 500).unwrap_or(u64::MAX);
        assert!(
            reloads >= 1 && reloads <= 2 + cooldowns && reloads < 20,
            "{}: {reloads} reloads in {took:?}",
            b.name
        );
        let f = feed(&s, 0).await;
        assert_eq!(
            f["entries"],
            json!([]),
            "{}: nothing unverified is listed",
            b.name
        );

        let foreign = {
            let key = SigningKey::generate(Algorithm::ES256).unwrap();
            let kid = key.thumbprint();
            Signer::new(key.with_kid(kid))
                .typ("at+jwt")
                .sign(
                    &json!({"iss": "https://elsewhere", "jti": "x", "exp": crate::common::T0 + 60}),
                )
                .unwrap()
        };
        let resp = revoke(&s, &id, &secret, &[("token", &foreign)]).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(
            s.running.unknown_kid_reloads(),
            reloads,
            "{}: no reload for another issuer's token",
            b.name
        );
        s.stop().await;
    }
}

/// When the key table cannot be read, a token of ours under an unknown kid
/// gets 503 `temporarily_unavailable` (the client retries), never a 200
/// that lists nothing; a token of a loaded key is still decided.
#[tokio::test]
async fn a_revocation_that_cannot_read_the_keys_is_not_answered_done() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let (id, secret) = s.basic_client(json!({})).await;
        let token = s.token(&id, &secret).await;
        s.running.store().close().await;
        let resp = revoke(&s, &id, &secret, &[("token", &forged("f-1"))]).await;
        assert_eq!(
            oauth_error(resp).await,
            (503, "temporarily_unavailable".into()),
            "{}",
            b.name
        );
        let resp = s
            .http
            .post(s.url("/introspect"))
            .basic_auth(&id, Some(&secret))
            .form(&[("token", forged("f-2").as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(
            oauth_error(resp).await,
            (503, "temporarily_unavailable".into()),
            "{}",
            b.name
        );
        // Control: garbage is still "nothing to revoke", and a known key's
        // token gets as far as the (closed) store, whose 503 says so.
        let resp = revoke(&s, &id, &secret, &[("token", "not-a-token")]).await;
        assert_eq!(resp.status(), 200, "{}", b.name);
        let resp = revoke(&s, &id, &secret, &[("token", &token)]).await;
        assert_eq!(resp.status(), 503, "{}", b.name);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body["error_description"], "the database is unavailable; retry shortly",
            "{}",
            b.name
        );
        s.stop().await;
    }
}
