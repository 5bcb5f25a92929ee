//! Revoking everything at once (admin: a subject's logout everywhere, a
//! client, a key) and tokens exchanged from a revoked token: through the
//! deny-list feed, introspection, exchange and refresh.

use std::time::Duration;

use serde_json::{json, Value};
use tessera_jose::{Signer, UnixTime};

use crate::common::{backends, oauth_error, TestServer};
use crate::grants::{signer, JWT_BEARER};
use crate::revoke::{claims, feed, introspect, revoke};

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const AT: &str = "urn:ietf:params:oauth:token-type:access_token";

/// A login backend whose users get refresh tokens, in `format` (jwt or
/// opaque): (id, secret, assertion key).
pub(crate) async fn login_backend(s: &TestServer, format: &str) -> (String, String, Signer) {
    let key = signer();
    let public = serde_json::to_value(key.key().public_jwk().unwrap()).unwrap();
    let (id, secret) = s
        .basic_client(json!({
            "grant_types": [JWT_BEARER, "refresh_token"],
            "jwks": {"keys": [public]},
            "audiences": ["orders-api"],
            "token_format": format,
        }))
        .await;
    (id, secret, key)
}

static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// `sub` logs in through the backend: (access token, refresh token).
pub(crate) async fn login(
    s: &TestServer,
    backend: &(String, String, Signer),
    sub: &str,
) -> (String, String) {
    let (id, secret, key) = backend;
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let assertion = key
        .sign(
            &json!({"iss": id, "sub": sub, "aud": format!("{}/token", crate::common::ISSUER),
                      "exp": s.now() + 60, "jti": format!("login-{n}")}),
        )
        .unwrap();
    let resp = s
        .token_basic(
            id,
            secret,
            &[("grant_type", JWT_BEARER), ("assertion", &assertion)],
        )
        .await;
    let body: Value = resp.json().await.unwrap();
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

pub(crate) async fn refresh(
    s: &TestServer,
    backend: &(String, String, Signer),
    token: &str,
) -> reqwest::Response {
    s.token_basic(
        &backend.0,
        &backend.1,
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await
}

async fn exchange(s: &TestServer, id: &str, secret: &str, subject: &str) -> reqwest::Response {
    s.token_basic(
        id,
        secret,
        &[
            ("grant_type", EXCHANGE),
            ("subject_token", subject),
            ("subject_token_type", AT),
        ],
    )
    .await
}

/// `who` exchanges `subject` for a JWT: the new access token.
pub(crate) async fn exchanged(s: &TestServer, who: &(String, String), subject: &str) -> String {
    let resp = exchange(s, &who.0, &who.1, subject).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// Whether introspection by `who` calls `token` active. Any answer but an
/// active one must be exactly `{"active": false}` (RFC 7662 §2.2), so a
/// broken answer never passes for an inactive token.
pub(crate) async fn active(s: &TestServer, who: &(String, String), token: &str) -> bool {
    let answer = introspect(s, &who.0, &who.1, token).await;
    if answer["active"] == true {
        return true;
    }
    assert_eq!(
        answer,
        json!({"active": false}),
        "an inactive token's answer"
    );
    false
}

#[tokio::test]
async fn logout_everywhere_revokes_every_token_of_a_subject() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let web = login_backend(&s, "jwt").await;
        let mobile = login_backend(&s, "opaque").await;
        let rs = s
            .basic_client(json!({"grant_types": ["client_credentials", EXCHANGE], "introspection_audiences": ["orders-api"]}))
            .await;
        let (alice_web, alice_web_refresh) = login(&s, &web, "alice").await;
        let (alice_mobile, alice_mobile_refresh) = login(&s, &mobile, "alice").await;
        let (bob_web, bob_web_refresh) = login(&s, &web, "bob").await;
        // A token a resource exchanged from Alice's, before the logout.
        let alice_exchanged = exchanged(&s, &rs, &alice_web).await;
        for t in [&alice_web, &alice_mobile, &bob_web, &alice_exchanged] {
            assert!(active(&s, &rs, t).await, "{}", b.name);
        }

        let resp = s.admin_post("/admin/revoke", json!({"sub": "alice"})).await;
        assert_eq!(resp.status(), 200, "{}", b.name);
        let done: Value = resp.json().await.unwrap();
        assert_eq!(done["sub"], "alice");
        assert_eq!(done["refresh_families"], 2, "{}: {done}", b.name);
        assert_eq!(done["not_before"], s.now() + 1);

        // Every kind of token of hers is dead, at once; Bob's live on.
        for t in [&alice_web, &alice_mobile, &alice_exchanged] {
            assert_eq!(
                introspect(&s, &rs.0, &rs.1, t).await,
                json!({"active": false}),
                "{}",
                b.name
            );
        }
        assert!(active(&s, &rs, &bob_web).await);
        for (backend, r) in [(&web, &alice_web_refresh), (&mobile, &alice_mobile_refresh)] {
            let resp = refresh(&s, backend, r).await;
            assert_eq!(
                oauth_error(resp).await,
                (400, "invalid_grant".into()),
                "{}",
                b.name
            );
        }
        assert_eq!(refresh(&s, &web, &bob_web_refresh).await.status(), 200);
        let resp = exchange(&s, &rs.0, &rs.1, &alice_web).await;
        assert_eq!(oauth_error(resp).await, (400, "invalid_request".into()));

        // Followers learn it from the feed: one rule, bounded by the
        // longest token life plus leeway, plus the time other nodes may
        // take to reload (keys.refresh_interval); and, as for every revoked
        // refresh-token family, the JWTs her web family issued by jti (and
        // what was exchanged from them), each until it expires.
        assert_eq!(
            (&done["access_tokens"], &done["exchanged_tokens"]),
            (&json!(1), &json!(1)),
            "{}: {done}",
            b.name
        );
        let seq = done["seq"].as_i64().unwrap();
        let by_jti = |token: &str, seq: i64| {
            let c = claims(token);
            json!({"seq": seq, "jti": c["jti"], "exp": c["exp"].as_i64().unwrap() + 60})
        };
        let f = feed(&s, 0).await;
        assert_eq!(
            f["entries"],
            json!([{"seq": seq, "sub": "alice", "not_before": s.now() + 1,
                    "exp": s.now() + 3600 + 60 + 10},
                   by_jti(&alice_web, seq + 1), by_jti(&alice_exchanged, seq + 2)]),
            "{}",
            b.name
        );

        // She logs in again a second later: the rule does not cover it.
        s.advance(Duration::from_secs(1)).await;
        let (again, _) = login(&s, &web, "alice").await;
        assert!(active(&s, &rs, &again).await, "{}", b.name);

        // A second logout moves the rule on (a new sequence number and
        // bound), and once every token it covers has expired, it is purged.
        let resp = s.admin_post("/admin/revoke", json!({"sub": "alice"})).await;
        let second: Value = resp.json().await.unwrap();
        assert!(second["seq"].as_i64() > done["seq"].as_i64());
        assert!(!active(&s, &rs, &again).await);
        let f = feed(&s, seq).await;
        let rule = f["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["sub"] == "alice")
            .unwrap();
        assert_eq!(rule["not_before"], s.now() + 1, "{}: {f}", b.name);
        s.advance(Duration::from_secs(3600 + 60 + 10 + 2)).await;
        let f = feed(&s, 0).await;
        assert_eq!(f["entries"], json!([]), "{}: {f}", b.name);
        s.stop().await;
    }
}

#[tokio::test]
async fn revoking_a_client_revokes_what_it_was_issued() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let app = s.basic_client(json!({"audiences": ["orders-api"]})).await;
        let other = s.basic_client(json!({"audiences": ["orders-api"]})).await;
        let opaque = login_backend(&s, "opaque").await;
        let rs = s
            .basic_client(json!({"grant_types": ["client_credentials", EXCHANGE], "introspection_audiences": ["orders-api"]}))
            .await;
        let app_token = s.token(&app.0, &app.1).await;
        let other_token = s.token(&other.0, &other.1).await;
        let (opaque_token, opaque_refresh) = login(&s, &opaque, "carol").await;
        // Exchanged by the resource: its client_id is the resource's, so
        // only the record of its parent reaches it.
        let exchanged = exchanged(&s, &rs, &app_token).await;
        assert_eq!(claims(&exchanged)["client_id"], rs.0.as_str());

        let resp = s
            .admin_post("/admin/revoke", json!({"client_id": app.0}))
            .await;
        assert_eq!(resp.status(), 200);
        let done: Value = resp.json().await.unwrap();
        assert_eq!(done["exchanged_tokens"], 1, "{}: {done}", b.name);
        assert!(!active(&s, &rs, &app_token).await, "{}", b.name);
        assert!(!active(&s, &rs, &exchanged).await, "{}", b.name);
        assert!(active(&s, &rs, &other_token).await);
        let f = feed(&s, 0).await;
        let entries = f["entries"].as_array().unwrap();
        assert!(entries
            .iter()
            .any(|e| e["client_id"] == app.0.as_str() && e["not_before"] == s.now() + 1));
        assert!(
            entries
                .iter()
                .any(|e| e["jti"] == claims(&exchanged)["jti"]),
            "{f}"
        );

        // The opaque client: its tokens are deleted, its families revoked.
        let resp = s
            .admin_post("/admin/revoke", json!({"client_id": opaque.0}))
            .await;
        let done: Value = resp.json().await.unwrap();
        assert_eq!(
            (
                done["refresh_families"].as_u64(),
                done["opaque_tokens"].as_u64()
            ),
            (Some(1), Some(1)),
            "{}: {done}",
            b.name
        );
        assert!(!active(&s, &rs, &opaque_token).await);
        let resp = refresh(&s, &opaque, &opaque_refresh).await;
        assert_eq!(oauth_error(resp).await, (400, "invalid_grant".into()));

        // Deleting a client revokes what it was issued, too.
        let resp = s.delete_client(&other.0).await;
        assert_eq!(resp.status(), 204);
        assert!(!active(&s, &rs, &other_token).await, "{}", b.name);
        // Client ids are never reused: the rule covers every token, also
        // those another node issues before it reloads its clients.
        let f = feed(&s, 0).await;
        let rule = f["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["client_id"] == other.0.as_str())
            .cloned()
            .unwrap();
        assert_eq!(rule["not_before"], i64::MAX, "{rule}");
        let resp = s.delete_client(&other.0).await;
        assert_eq!(oauth_error(resp).await, (404, "not_found".into()));
        s.stop().await;
    }
}

#[tokio::test]
async fn revoking_a_token_reaches_the_tokens_exchanged_from_it() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let opaque = login_backend(&s, "opaque").await;
        // The gateway's phantom client, and a service further in.
        let edge = s
            .basic_client(json!({"grant_types": ["client_credentials", EXCHANGE], "introspection_audiences": ["orders-api"]}))
            .await;
        let (handle, _) = login(&s, &opaque, "dave").await;
        let phantom = exchanged(&s, &edge, &handle).await;
        // And from the phantom JWT, a downscoped one (a chain).
        let downscoped = exchanged(&s, &edge, &phantom).await;
        assert!(active(&s, &edge, &phantom).await && active(&s, &edge, &downscoped).await);

        // The opaque token's owner revokes it (RFC 7009): both JWTs go on
        // the deny-list, so followers refuse them too.
        let resp = revoke(&s, &opaque.0, &opaque.1, &[("token", &handle)]).await;
        assert_eq!(resp.status(), 200);
        let f = feed(&s, 0).await;
        let listed: Vec<&Value> = f["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["jti"])
            .collect();
        for t in [&phantom, &downscoped] {
            let c = claims(t);
            assert!(listed.contains(&&c["jti"]), "{}: {f}", b.name);
            assert!(!active(&s, &edge, t).await);
        }
        let entry = f["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["jti"] == claims(&phantom)["jti"])
            .unwrap();
        assert_eq!(
            entry["exp"],
            claims(&phantom)["exp"].as_i64().unwrap() + 60,
            "until exp plus leeway"
        );
        // A revoked token cannot be exchanged any more.
        let resp = exchange(&s, &edge.0, &edge.1, &handle).await;
        assert_eq!(oauth_error(resp).await, (400, "invalid_request".into()));

        // Revoking a JWT lists what was exchanged from it, not its parent.
        let (handle2, _) = login(&s, &opaque, "erin").await;
        let phantom2 = exchanged(&s, &edge, &handle2).await;
        let child = exchanged(&s, &edge, &phantom2).await;
        revoke(&s, &edge.0, &edge.1, &[("token", &phantom2)]).await;
        assert!(!active(&s, &edge, &child).await, "{}", b.name);
        assert!(
            active(&s, &opaque_owner(&opaque), &handle2).await,
            "the parent lives on"
        );

        // Delegation: the service acts with its own token; revoking that
        // actor token reaches the delegated token, not the subject token.
        let actor = s.token(&edge.0, &edge.1).await;
        let (handle3, _) = login(&s, &opaque, "frank").await;
        let phantom3 = exchanged(&s, &edge, &handle3).await;
        let resp = s
            .token_basic(
                &edge.0,
                &edge.1,
                &[
                    ("grant_type", EXCHANGE),
                    ("subject_token", &phantom3),
                    ("subject_token_type", AT),
                    ("actor_token", &actor),
                    ("actor_token_type", AT),
                ],
            )
            .await;
        let delegated3 = resp.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(claims(&delegated3)["act"]["sub"], edge.0.as_str());
        assert!(active(&s, &edge, &delegated3).await);
        revoke(&s, &edge.0, &edge.1, &[("token", &actor)]).await;
        assert!(!active(&s, &edge, &delegated3).await, "{}", b.name);
        assert!(
            active(&s, &edge, &phantom3).await,
            "the subject token lives on"
        );
        s.stop().await;
    }
}

fn opaque_owner(backend: &(String, String, Signer)) -> (String, String) {
    (backend.0.clone(), backend.1.clone())
}

#[tokio::test]
async fn revoking_a_keys_tokens_compromises_it_and_lists_it_in_the_feed() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let app = s.basic_client(json!({"audiences": ["orders-api"]})).await;
        let rs = s
            .basic_client(json!({"grant_types": ["client_credentials", EXCHANGE], "introspection_audiences": ["orders-api"]}))
            .await;
        let token = s.token(&app.0, &app.1).await;
        let exchanged = exchanged(&s, &rs, &token).await;
        let kid = tessera_jose::decode_unverified(&token, 8192)
            .unwrap()
            .header["kid"]
            .as_str()
            .unwrap()
            .to_owned();

        let resp = s.admin_post("/admin/revoke", json!({"kid": kid})).await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 200, "{}: {body}", b.name);
        assert_eq!(body["state"], "compromised");
        let successor = body["successor"].as_str().unwrap().to_owned();
        assert_ne!(successor, kid);
        let f = feed(&s, 0).await;
        let entries = f["entries"].as_array().unwrap();
        assert!(
            entries
                .iter()
                .any(|e| e["kid"] == kid.as_str() && e.get("not_before").is_none()),
            "{}: {f}",
            b.name
        );
        // The token exchanged from one the key signed is signed by the same
        // key here; what matters is that it is listed, so a follower
        // refuses it whichever key signed it.
        assert!(
            entries
                .iter()
                .any(|e| e["jti"] == claims(&exchanged)["jti"]),
            "{f}"
        );
        assert!(!active(&s, &rs, &token).await);
        // New tokens are signed by the successor and live.
        let fresh = s.token(&app.0, &app.1).await;
        assert!(active(&s, &rs, &fresh).await, "{}", b.name);
        s.stop().await;
    }
}

#[tokio::test]
async fn admin_revoke_refusals() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let resp = s
            .http
            .post(s.url("/admin/revoke"))
            .json(&json!({"sub": "alice"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{}", b.name);
        let refusals = [
            (json!({}), 400, "invalid_request"),
            (
                json!({"sub": "alice", "client_id": "x"}),
                400,
                "invalid_request",
            ),
            (json!({"sub": ""}), 400, "invalid_request"),
            (json!({"user": "alice"}), 400, "invalid_request"),
            (json!({"sub": 7}), 400, "invalid_request"),
            (json!({"kid": "no-such-key"}), 404, "not_found"),
        ];
        for (body, status, code) in refusals {
            let resp = s.admin_post("/admin/revoke", body.clone()).await;
            assert_eq!(
                oauth_error(resp).await,
                (status, code.into()),
                "{}: {body}",
                b.name
            );
        }
        let resp = s
            .http
            .post(s.url("/admin/revoke"))
            .bearer_auth(&s.admin)
            .body("not json")
            .send()
            .await
            .unwrap();
        assert_eq!(oauth_error(resp).await, (400, "invalid_request".into()));
        // Nothing was listed by any of them.
        assert_eq!(feed(&s, 0).await["seq"], 0, "{}", b.name);
        s.stop().await;
    }
}

/// A rule listed again never narrows: an admin node whose clock is behind
/// leaves the later bound and the longer life in place.
#[tokio::test]
async fn a_rule_listed_again_only_widens() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let store = &s.running.store();
        let now = s.now();
        let alice = |not_before, expires_at| tessera_server::test_util::RevokeAll {
            party: tessera_server::test_util::Party::Subject,
            target: "alice",
            not_before: UnixTime::from_secs(not_before),
            expires_at: UnixTime::from_secs(expires_at),
            actor: "admin",
            now: UnixTime::from_secs(now),
        };
        store
            .revoke_all(&alice(now + 100, now + 5000))
            .await
            .unwrap();
        store.revoke_all(&alice(now + 10, now + 900)).await.unwrap();
        let f = feed(&s, 0).await;
        assert_eq!(
            f["entries"],
            json!([{"seq": 2, "sub": "alice", "not_before": now + 100, "exp": now + 5000}]),
            "{}",
            b.name
        );
        s.stop().await;
    }
}

/// A key compromised on one node: another node that has not reloaded its
/// key set yet already refuses the key's tokens at introspection and
/// exchange, from the deny-list.
#[tokio::test]
async fn another_node_refuses_a_compromised_keys_tokens_before_it_reloads() {
    for b in backends().await {
        let clock = tessera_server::ManualClock::new(crate::common::T0);
        let a = TestServer::start_at(&b, &[], clock.clone()).await;
        let c = TestServer::start_at(&b, &[], clock.clone()).await;
        let app = a.basic_client(json!({"audiences": ["orders-api"]})).await;
        let rs = a
            .basic_client(json!({"grant_types": ["client_credentials", EXCHANGE], "introspection_audiences": ["orders-api"]}))
            .await;
        c.running.reload_clients().await.unwrap();
        let token = a.token(&app.0, &app.1).await;
        assert!(active(&c, &rs, &token).await, "{}", b.name);
        let kid = tessera_jose::decode_unverified(&token, 8192)
            .unwrap()
            .header["kid"]
            .as_str()
            .unwrap()
            .to_owned();
        let resp = a.admin_post("/admin/revoke", json!({"kid": kid})).await;
        assert_eq!(resp.status(), 200);
        assert!(
            c.running.loaded_kids().contains(&kid),
            "node c still holds the key"
        );
        assert!(!active(&c, &rs, &token).await, "{}", b.name);
        let resp = exchange(&c, &rs.0, &rs.1, &token).await;
        assert_eq!(oauth_error(resp).await, (400, "invalid_request".into()));
        a.stop().await;
        c.stop().await;
    }
}
