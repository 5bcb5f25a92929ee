//! The next key is published at all times: from the moment a key starts
//! signing, its successor is pending in the JWKS, so a compromise or an
//! immediate rotation switches to a key every verifier already holds, and
//! a scheduled rotation still publishes each key `prepublish` before it
//! signs and rotates every `rotation_period`.

use std::time::Duration;

use serde_json::{json, Value};
use tessera_jose::{ErrorKind, KeySet};

use crate::common::{backends, verify, TestServer, T0};

const DAY: i64 = 86_400;

fn kid_of(token: &str) -> String {
    tessera_jose::decode_unverified(token, 8192).unwrap().header["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `GET /admin/keys`.
async fn key_rows(s: &TestServer) -> Vec<Value> {
    let body = s.admin_get("/admin/keys").await;
    body["keys"].as_array().unwrap().clone()
}

/// The one key of `alg` in `state`.
fn only<'a>(rows: &'a [Value], alg: &str, state: &str) -> &'a Value {
    let found: Vec<&Value> = rows
        .iter()
        .filter(|k| k["alg"] == alg && k["state"] == state)
        .collect();
    assert_eq!(found.len(), 1, "one {state} {alg} key: {rows:?}");
    found[0]
}

fn str_of<'a>(v: &'a Value, member: &str) -> &'a str {
    v[member].as_str().unwrap()
}

fn holds(keys: &KeySet, kid: &str) -> bool {
    keys.keys().iter().any(|k| k.kid() == Some(kid))
}

#[tokio::test]
async fn after_start_each_algorithm_has_its_next_key_published() {
    for b in backends().await {
        let env = [
            ("TESSERA_KEYS_ALGORITHMS", "ES256,EdDSA"),
            ("TESSERA_KEYS_ROTATION_PERIOD", "30d"),
        ];
        let s = TestServer::start(&b, &env).await;
        let rows = key_rows(&s).await;
        assert_eq!(rows.len(), 4, "{}: {rows:?}", b.name);
        let jwks = s.jwks().await;
        assert_eq!(jwks.keys().len(), 4, "{}", b.name);
        for alg in ["ES256", "EdDSA"] {
            let active = only(&rows, alg, "active");
            let pending = only(&rows, alg, "pending");
            assert!(holds(&jwks, str_of(active, "kid")), "{}: {alg}", b.name);
            assert!(holds(&jwks, str_of(pending, "kid")), "{}: {alg}", b.name);
            // It signs one rotation period after its predecessor started.
            assert_eq!(pending["activate_at"], T0 + 30 * DAY, "{}: {alg}", b.name);
            assert_eq!(pending["activated_at"], Value::Null);
        }
        s.stop().await;
    }
}

/// The switch `act` makes on `s` (a compromise or an immediate rotation of
/// the signing key) goes to the key that was pending before it; a verifier
/// holding the key set fetched before it verifies the first token signed
/// after it; and the next key is published at once. Returns the kid of the
/// key that signed before.
async fn switches_to_the_published_key<F, Fut>(s: &TestServer, name: &str, act: F) -> String
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Value>,
{
    let (id, secret) = s.basic_client(json!({})).await;
    let aud = s.running.config().tokens.default_audience.clone();
    let before = s.jwks().await;
    let rows = key_rows(s).await;
    let old = str_of(only(&rows, "ES256", "active"), "kid").to_owned();
    let next = str_of(only(&rows, "ES256", "pending"), "kid").to_owned();
    assert_eq!(kid_of(&s.token(&id, &secret).await), old, "{name}");

    let answer = act(old.clone()).await;
    let first = s.token(&id, &secret).await;
    assert_eq!(kid_of(&first), next, "{name}: {answer}");
    verify(&first, &before, &aud, s.now())
        .unwrap_or_else(|e| panic!("{name}: a verifier holding the earlier JWKS refused: {e}"));

    let rows = key_rows(s).await;
    assert_eq!(
        str_of(only(&rows, "ES256", "active"), "kid"),
        next,
        "{name}"
    );
    let after = only(&rows, "ES256", "pending");
    let after_kid = str_of(after, "kid");
    assert!(after_kid != old && after_kid != next, "{name}: {rows:?}");
    assert!(!holds(&before, after_kid), "{name}: a new key");
    assert!(holds(&s.jwks().await, after_kid), "{name}: published");
    // Due one rotation period (the default 90 days) after the switch.
    assert_eq!(after["activate_at"], s.now() + 90 * DAY, "{name}");
    old
}

#[tokio::test]
async fn a_compromise_switches_to_a_key_every_verifier_holds() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let pending = str_of(only(&key_rows(&s).await, "ES256", "pending"), "kid").to_owned();
        let (name, server) = (b.name, &s);
        let old = switches_to_the_published_key(&s, name, |kid| async move {
            let s = server;
            let resp = s
                .admin_post(&format!("/admin/keys/{kid}/compromised"), json!({}))
                .await;
            assert_eq!(resp.status(), 200, "{name}");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["successor"], pending.as_str(), "{name}: {body}");
            body
        })
        .await;
        assert_eq!(
            str_of(only(&key_rows(&s).await, "ES256", "compromised"), "kid"),
            old
        );
        s.stop().await;
    }
}

#[tokio::test]
async fn an_immediate_rotation_switches_to_a_key_every_verifier_holds() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let pending = str_of(only(&key_rows(&s).await, "ES256", "pending"), "kid").to_owned();
        let (name, server) = (b.name, &s);
        let old = switches_to_the_published_key(&s, name, |_| async move {
            let s = server;
            let resp = s
                .admin_post("/admin/keys/rotate", json!({"immediate": true}))
                .await;
            assert_eq!(resp.status(), 200, "{name}");
            let body: Value = resp.json().await.unwrap();
            let rotation = &body["rotations"][0];
            assert_eq!(rotation["kid"], pending.as_str(), "{name}: {body}");
            assert_eq!(rotation["activate_at"], s.now(), "{name}: {body}");
            body
        })
        .await;
        let rows = key_rows(&s).await;
        assert_eq!(str_of(only(&rows, "ES256", "retired"), "kid"), old);
        s.stop().await;
    }
}

/// A leaked pending key never signs: another takes its place, on the same
/// schedule, and the signing key is untouched.
#[tokio::test]
async fn a_compromised_pending_key_is_replaced_on_its_schedule() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let rows = key_rows(&s).await;
        let active = str_of(only(&rows, "ES256", "active"), "kid").to_owned();
        let pending = only(&rows, "ES256", "pending").clone();
        let kid = str_of(&pending, "kid");
        let resp = s
            .admin_post(&format!("/admin/keys/{kid}/compromised"), json!({}))
            .await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["successor"], Value::Null, "{}: {body}", b.name);
        let rows = key_rows(&s).await;
        assert_eq!(str_of(only(&rows, "ES256", "active"), "kid"), active);
        let next = only(&rows, "ES256", "pending");
        assert_ne!(next["kid"], pending["kid"]);
        assert_eq!(next["activate_at"], pending["activate_at"], "{}", b.name);
        let jwks = s.jwks().await;
        assert!(!holds(&jwks, kid) && holds(&jwks, str_of(next, "kid")));
        s.stop().await;
    }
}

/// Scheduled rotations every `rotation_period`, each key published at
/// least `prepublish` before it signs (so a verifier holding the key set
/// of `prepublish` earlier verifies the first token of each new key); a
/// manual rotation brings the switch forward only as far as that allows.
#[tokio::test]
async fn scheduled_and_manual_rotations_keep_the_prepublish_promise() {
    for b in backends().await {
        let env = [
            ("TESSERA_KEYS_ROTATION_PERIOD", "30d"),
            ("TESSERA_KEYS_PREPUBLISH", "2d"),
        ];
        let s = TestServer::start(&b, &env).await;
        let (id, secret) = s.basic_client(json!({})).await;
        let aud = s.running.config().tokens.default_audience.clone();
        let prepublish = Duration::from_secs(2 * DAY as u64);
        let mut signer = kid_of(&s.token(&id, &secret).await);
        for round in 1..=3 {
            // Up to one second before the switch nothing changes.
            s.advance(Duration::from_secs(28 * DAY as u64)).await;
            let before = s.jwks().await;
            s.advance(prepublish - Duration::from_secs(1)).await;
            assert_eq!(kid_of(&s.token(&id, &secret).await), signer, "{round}");
            s.advance(Duration::from_secs(1)).await;
            assert_eq!(s.now(), T0 + round * 30 * DAY, "{}", b.name);
            let first = s.token(&id, &secret).await;
            let kid = kid_of(&first);
            assert_ne!(kid, signer, "{}: round {round} rotated", b.name);
            verify(&first, &before, &aud, s.now()).unwrap_or_else(|e| {
                panic!("{}: round {round}: not published 2d before: {e}", b.name)
            });
            let rows = key_rows(&s).await;
            let next = only(&rows, "ES256", "pending");
            assert_eq!(next["created_at"], s.now(), "{}", b.name);
            assert_eq!(next["activate_at"], s.now() + 30 * DAY, "{}", b.name);
            signer = kid;
        }

        // A compromise publishes a new next key; a manual rotation right
        // after it waits until that key has been published `prepublish`.
        let resp = s
            .admin_post(&format!("/admin/keys/{signer}/compromised"), json!({}))
            .await;
        assert_eq!(resp.status(), 200);
        signer = kid_of(&s.token(&id, &secret).await);
        let published = s.now();
        let before = s.jwks().await;
        let body: Value = s
            .admin_post("/admin/keys/rotate", json!({}))
            .await
            .json()
            .await
            .unwrap();
        let rotation = &body["rotations"][0];
        assert_eq!(rotation["activate_at"], published + 2 * DAY, "{body}");
        assert_eq!(rotation["retired"], Value::Null, "{body}");
        let next = str_of(rotation, "kid").to_owned();
        assert_eq!(
            str_of(only(&key_rows(&s).await, "ES256", "pending"), "kid"),
            next
        );
        s.advance(prepublish - Duration::from_secs(1)).await;
        assert_eq!(kid_of(&s.token(&id, &secret).await), signer, "{}", b.name);
        s.advance(Duration::from_secs(1)).await;
        let first = s.token(&id, &secret).await;
        assert_eq!(kid_of(&first), next, "{}", b.name);
        verify(&first, &before, &aud, s.now()).unwrap();

        // Its successor, published at that switch: once it has been
        // published `prepublish`, a manual rotation switches at once.
        s.advance(prepublish).await;
        let before = s.jwks().await;
        let body: Value = s
            .admin_post("/admin/keys/rotate", json!({}))
            .await
            .json()
            .await
            .unwrap();
        let rotation = &body["rotations"][0];
        assert_eq!(rotation["activate_at"], s.now(), "{body}");
        assert_eq!(rotation["retired"], next.as_str(), "{body}");
        let first = s.token(&id, &secret).await;
        assert_eq!(kid_of(&first), str_of(rotation, "kid"), "{}", b.name);
        verify(&first, &before, &aud, s.now()).unwrap();
        assert_eq!(
            verify(&first, &KeySet::new(Vec::new()), &aud, s.now())
                .unwrap_err()
                .kind(),
            ErrorKind::UnknownKid,
            "control: an empty key set refuses it"
        );
        s.stop().await;
    }
}

/// A manual rotation whose pending key has been published `prepublish`
/// switches at once, and its row says so: the key is due when it starts
/// signing, not at the later scheduled time (found by lifecycle_model.rs:
/// the table showed a key signing 87 days before its `activate_at`).
#[tokio::test]
async fn a_manual_rotation_that_switches_at_once_brings_the_due_time_to_now() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let rows = key_rows(&s).await;
        let old = str_of(only(&rows, "ES256", "active"), "kid").to_owned();
        let next = only(&rows, "ES256", "pending").clone();
        assert_eq!(next["activate_at"], T0 + 90 * DAY, "{}", b.name);
        s.advance(Duration::from_secs(3 * DAY as u64)).await;
        let body = s.admin_json("/admin/keys/rotate", json!({})).await;
        let rotation = &body["rotations"][0];
        assert_eq!(rotation["kid"], next["kid"], "{}: {body}", b.name);
        assert_eq!(rotation["retired"], old.as_str(), "{}: {body}", b.name);
        assert_eq!(rotation["activate_at"], s.now(), "{}: {body}", b.name);

        let rows = key_rows(&s).await;
        let active = only(&rows, "ES256", "active");
        assert_eq!(active["kid"], next["kid"], "{}", b.name);
        assert_eq!(active["activated_at"], s.now(), "{}", b.name);
        assert_eq!(
            active["activate_at"],
            s.now(),
            "{}: the row agrees with the answer",
            b.name
        );
        s.stop().await;
    }
}

/// A rotation period shortened across a restart: a pending key whose
/// earlier due time has already passed switches at the first tick, and
/// its row records that earlier time, not the one it was made with.
#[tokio::test]
async fn a_shortened_rotation_period_writes_the_earlier_due_time_back() {
    for b in backends().await {
        let clock = tessera_server::ManualClock::new(T0);
        let s = TestServer::start_at(
            &b,
            &[("TESSERA_KEYS_ROTATION_PERIOD", "30d")],
            clock.clone(),
        )
        .await;
        let next = only(&key_rows(&s).await, "ES256", "pending").clone();
        assert_eq!(next["activate_at"], T0 + 30 * DAY, "{}", b.name);
        s.advance(Duration::from_secs(20 * DAY as u64)).await;
        s.stop().await;

        let s = TestServer::start_at(&b, &[("TESSERA_KEYS_ROTATION_PERIOD", "10d")], clock).await;
        let rows = key_rows(&s).await;
        let active = only(&rows, "ES256", "active");
        assert_eq!(active["kid"], next["kid"], "{}: switched at start", b.name);
        assert_eq!(active["activated_at"], T0 + 20 * DAY, "{}", b.name);
        assert_eq!(
            active["activate_at"],
            T0 + 10 * DAY,
            "{}: due one (shortened) period after its predecessor",
            b.name
        );
        s.stop().await;
    }
}
