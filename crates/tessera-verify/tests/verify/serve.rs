//! Against a real `tessera serve`: discovery, rotation, compromise, and
//! the deny-list feed. What must happen is waited for ([`eventually`]);
//! how soon it happens is measured by `bench/`, not asserted here.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tessera_jose::ErrorKind;
use tessera_jose::UnixTime;
use tessera_testkit::{backends, eventually, TestServer};
use tessera_verify::{FeedOptions, RemoteOptions, Verifier};

/// A verifier for the authority's tokens with a verified-token cache,
/// following its deny-list feed as a client registered for it.
async fn following(auth: &TestServer) -> (Arc<tessera_verify::DenyList>, Verifier) {
    let issuer = auth.issuer.clone();
    let (id, secret) = auth.follower().await;
    let list = tessera_verify::DenyList::follow(
        &auth.url("/revocations"),
        id,
        secret,
        &FeedOptions::default(),
    )
    .await
    .unwrap();
    assert!(list.caught_up());
    let v = Verifier::from_issuer(issuer.clone())
        .audience(issuer)
        .cache(100)
        .revocations(Arc::clone(&list))
        .build()
        .await
        .unwrap();
    (list, v)
}

fn kid(token: &str) -> String {
    tessera_jose::decode_unverified(token, 8192).unwrap().header["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_verifier_follows_the_authority_through_rotation_and_compromise() {
    for b in backends().await {
        let auth = TestServer::start_live(&b).await;
        let (id, secret) = auth.quickstart();
        let options = RemoteOptions {
            min_cache_ttl: Duration::from_millis(200),
            unknown_kid_cooldown: Duration::from_millis(100),
            ..RemoteOptions::default()
        };
        let issuer = auth.issuer.clone();
        let v = Arc::new(
            Verifier::from_issuer(issuer.clone())
                .audience(issuer.clone())
                .remote_options(options)
                .build()
                .await
                .unwrap(),
        );
        let first = auth.token(id, secret).await;
        v.verify::<Value>(&first).await.unwrap();

        // A scheduled-style rotation: pre-published, then switched.
        auth.admin_json("/admin/keys/rotate", json!({})).await;
        let body = auth.admin_json("/admin/keys/rotate", json!({})).await; // reports the pending key
        let pending = body["rotations"][0]["kid"].as_str().unwrap().to_owned();
        let immediate = auth
            .http
            .post(format!("{}/admin/keys/rotate", auth.issuer))
            .bearer_auth(&auth.admin)
            .json(&json!({"immediate": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(immediate.status(), 200);
        let second = auth.token(id, secret).await;
        assert_eq!(kid(&second), pending);
        // Both verify: the old one is retired but published, the new one is
        // fetched on its unknown kid if the cache lacks it.
        v.verify::<Value>(&first).await.unwrap();
        v.verify::<Value>(&second).await.unwrap();

        // Compromise of the current key: its tokens fail after the next refresh.
        auth.admin_json(&format!("/admin/keys/{pending}/compromised"), json!({}))
            .await;
        let third = auth.token(id, secret).await;
        // Its successor's kid is new: fetched once the unknown-kid cooldown
        // of the previous fetch has passed (refused as unknown until then).
        let v = &v;
        eventually("the successor's token verifies", || async {
            match v.verify::<Value>(&third).await {
                Ok(_) => Some(()),
                Err(e) if e.kind() == ErrorKind::UnknownKid => None,
                Err(e) => panic!("{}: {e}", b.name),
            }
        })
        .await;
        // The compromised key's token: refused once a refresh has dropped
        // the key, and only as an unknown kid.
        eventually("the compromised key's token is refused", || async {
            match v.verify::<Value>(&second).await {
                Ok(_) => None,
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::UnknownKid, "{}: {e}", b.name);
                    Some(())
                }
            }
        })
        .await;
        auth.stop().await;
    }
}

#[tokio::test]
async fn discovery_must_name_the_same_issuer() {
    for b in backends().await {
        let auth = TestServer::start_live(&b).await;
        let wrong = format!("{}/", auth.issuer); // trailing slash: another issuer string
        let err = Verifier::from_issuer(wrong).build().await.unwrap_err();
        assert!(err.to_string().contains("issuer"), "{err}");
        auth.stop().await;
    }
}

#[tokio::test]
async fn a_revoked_token_is_rejected_even_from_the_cache() {
    for b in backends().await {
        let auth = TestServer::start_live(&b).await;
        let (id, secret) = auth.quickstart();
        let (list, v) = following(&auth).await;
        let revoked = auth.token(id, secret).await;
        let kept = auth.token(id, secret).await;
        v.verify_token(&revoked).await.unwrap(); // now cached

        let resp = auth
            .http
            .post(format!("{}/revoke", auth.issuer))
            .basic_auth(id, Some(secret))
            .form(&[("token", revoked.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        refused_eventually(&v, &revoked).await;
        assert_eq!(
            v.verify::<Value>(&revoked).await.unwrap_err().kind(),
            ErrorKind::Revoked
        );
        v.verify_token(&kept).await.unwrap();

        // The authority goes away: once the follower has seen its feed
        // fail, the list it holds is still applied.
        auth.stop().await;
        eventually("the follower sees the feed fail", || async {
            (!list.caught_up()).then_some(())
        })
        .await;
        assert_eq!(
            v.verify_token(&revoked).await.unwrap_err().kind(),
            ErrorKind::Revoked
        );
        assert_eq!(list.len(), 1);
    }
}

/// Polls until `token` is refused as `revoked` (the cached verification
/// answers until the feed brings the entry); any other refusal fails.
async fn refused_eventually(v: &Verifier, token: &str) {
    eventually("the token is refused as revoked", || async {
        match v.verify_token(token).await {
            Ok(_) => None,
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Revoked, "{e}");
                Some(())
            }
        }
    })
    .await;
}

/// The feed's rules reach a follower: a subject's logout everywhere, a
/// client's revocation, and a compromised key, each from the verified-token
/// cache too, while other tokens stay valid.
#[tokio::test]
async fn revoking_everything_of_a_subject_client_or_key_reaches_a_follower() {
    for b in backends().await {
        let auth = TestServer::start_live(&b).await;
        let (id, secret) = auth.quickstart();
        let (list, v) = following(&auth).await;
        let other = auth.basic_client(json!({})).await;
        let other_token = || auth.token(&other.0, &other.1);
        let mine = auth.token(id, secret).await;
        let theirs = other_token().await;
        v.verify_token(&mine).await.unwrap(); // now cached
        v.verify_token(&theirs).await.unwrap();

        // The subject (a client_credentials token's sub is its client).
        auth.admin_json("/admin/revoke", json!({"sub": id})).await;
        refused_eventually(&v, &mine).await;
        v.verify_token(&theirs).await.unwrap();

        // The other client, by client_id.
        auth.admin_json("/admin/revoke", json!({"client_id": other.0}))
            .await;
        let revoked_in = UnixTime::now().secs();
        refused_eventually(&v, &theirs).await;

        // A token issued after those (in a later second: iat has one-second
        // resolution, and the rules cover the second they were made in) is
        // not covered; then its key is compromised. The verifier still
        // holds that key in its cached key set: the feed, not the key set,
        // refuses the token.
        eventually("the next second", || async {
            (UnixTime::now().secs() > revoked_in).then_some(())
        })
        .await;
        let later = other_token().await;
        v.verify_token(&later).await.unwrap();
        auth.admin_json("/admin/revoke", json!({"kid": kid(&later)}))
            .await;
        refused_eventually(&v, &later).await;
        assert_eq!(
            v.verify::<Value>(&later).await.unwrap_err().kind(),
            ErrorKind::Revoked,
            "without the cache too"
        );
        assert_eq!(list.len(), 3, "three rules, no jtis");
        auth.stop().await;
    }
}
