use serde_json::json;

use super::*;
use crate::store::testdb::{at, each, TestDb};
use crate::store::TokenFacts;
use tessera_verify::feed_format::Entry as FeedEntry;

fn key(kid: &str, state: KeyState, created: i64) -> KeyRow {
    KeyRow {
        kid: kid.into(),
        alg: Algorithm::EdDSA,
        state,
        public_jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA", "kid": kid}),
        private_sealed: Some(format!("sealed-{kid}")),
        created_at: at(created),
        activate_at: at(created + 10),
        activated_at: (state == KeyState::Active).then(|| at(created)),
        retired_at: None,
        remove_at: None,
        removed_at: None,
        compromised_at: None,
    }
}

fn by(now: i64) -> Transition<'static> {
    Transition {
        actor: "scheduler",
        now: at(now),
    }
}

/// The key `kid` as the table holds it now.
async fn read(db: &TestDb, kid: &str) -> KeyRow {
    let keys = db.store.keys().await.unwrap();
    keys.into_iter()
        .find(|k| k.kid == kid)
        .unwrap_or_else(|| panic!("{}: no key {kid}", db.name))
}

#[test]
fn states_are_stored_by_name() {
    for state in [
        KeyState::Pending,
        KeyState::Active,
        KeyState::Retired,
        KeyState::Removed,
        KeyState::Compromised,
    ] {
        assert_eq!(KeyState::from_name(state.name()), Some(state));
    }
    assert_eq!(KeyState::from_name("Active"), None);
    assert!(KeyState::Retired.is_published() && !KeyState::Removed.is_published());
}

#[tokio::test]
async fn a_key_round_trips_and_a_second_active_one_is_a_conflict() {
    for db in each().await {
        let mut tx = db.store.begin(by(0)).await.unwrap();
        tx.insert(&key("k-1", KeyState::Active, 0)).await.unwrap();
        tx.insert(&key("k-2", KeyState::Pending, 1)).await.unwrap();
        let seen = tx.keys().await.unwrap();
        assert_eq!(
            seen.len(),
            2,
            "{}: the transaction sees its writes",
            db.name
        );
        tx.commit().await.unwrap();

        let k1 = read(&db, "k-1").await;
        assert_eq!(k1.state, KeyState::Active);
        assert_eq!(k1.alg, Algorithm::EdDSA);
        assert_eq!(k1.public_jwk["kid"], "k-1");
        assert_eq!(k1.private_sealed.as_deref(), Some("sealed-k-1"));
        assert_eq!((k1.created_at, k1.activate_at), (at(0), at(10)));
        assert_eq!(k1.activated_at, Some(at(0)));
        assert_eq!(read(&db, "k-2").await.activated_at, None);

        // The schema allows one active key per algorithm.
        let mut tx = db.store.begin(by(2)).await.unwrap();
        let e = tx
            .insert(&key("k-3", KeyState::Active, 2))
            .await
            .unwrap_err();
        assert!(e.is_conflict(), "{}: {e}", db.name);
        // Rolled back and returned to the pool before the pool closes
        // (closing waits for every connection).
        drop(tx);
        db.finish().await;
    }
}

#[tokio::test]
async fn transitions_hold_only_from_the_state_they_expect() {
    for db in each().await {
        let mut tx = db.store.begin(by(0)).await.unwrap();
        tx.insert(&key("k-1", KeyState::Active, 0)).await.unwrap();
        tx.insert(&key("k-2", KeyState::Pending, 0)).await.unwrap();
        tx.commit().await.unwrap();

        let mut tx = db.store.begin(by(50)).await.unwrap();
        assert!(!tx.activate("k-1").await.unwrap(), "k-1 is not pending");
        assert!(
            !tx.retire("k-2", at(90)).await.unwrap(),
            "k-2 is not active"
        );
        assert!(!tx.remove("k-1").await.unwrap(), "an active key stays");
        assert!(tx.retire("k-1", at(90)).await.unwrap());
        assert!(tx.activate("k-2").await.unwrap());
        tx.commit().await.unwrap();
        let k1 = read(&db, "k-1").await;
        assert_eq!(k1.state, KeyState::Retired, "{}", db.name);
        assert_eq!((k1.retired_at, k1.remove_at), (Some(at(50)), Some(at(90))));
        assert_eq!(read(&db, "k-2").await.activated_at, Some(at(50)));

        let mut tx = db.store.begin(by(90)).await.unwrap();
        // Compromise holds only from the state the caller read.
        assert!(!tx.compromise("k-1", KeyState::Active).await.unwrap());
        assert!(!tx.compromise("k-1", KeyState::Removed).await.unwrap());
        assert!(tx.remove("k-1").await.unwrap());
        assert!(tx.compromise("k-2", KeyState::Active).await.unwrap());
        tx.commit().await.unwrap();
        let (k1, k2) = (read(&db, "k-1").await, read(&db, "k-2").await);
        assert_eq!((k1.state, k1.removed_at), (KeyState::Removed, Some(at(90))));
        assert_eq!(k2.state, KeyState::Compromised, "{}", db.name);
        assert_eq!(k2.compromised_at, Some(at(90)));
        // The private parts are destroyed.
        assert_eq!((k1.private_sealed, k2.private_sealed), (None, None));
        db.finish().await;
    }
}

#[tokio::test]
async fn a_transaction_not_committed_changes_nothing() {
    for db in each().await {
        let mut tx = db.store.begin(by(0)).await.unwrap();
        tx.insert(&key("k-1", KeyState::Active, 0)).await.unwrap();
        tx.audit("key_created_active", "k-1").await.unwrap();
        drop(tx);
        assert!(db.store.keys().await.unwrap().is_empty(), "{}", db.name);
        assert!(db.store.audit_log(10).await.unwrap().is_empty());
        db.finish().await;
    }
}

#[tokio::test]
async fn revoking_a_kid_lists_its_tokens_and_records_the_actor() {
    for db in each().await {
        let signed_by = |kid| TokenFacts {
            jti: Some("j-1"),
            sub: Some("alice"),
            client_id: Some("app"),
            iat: Some(at(5).secs()),
            kid: Some(kid),
        };
        let admin = Transition {
            actor: "admin",
            now: at(10),
        };
        let mut tx = db.store.begin(admin).await.unwrap();
        tx.lock_revocations().await.unwrap();
        let seq = tx.revoke_kid("k-1", at(1000)).await.unwrap();
        tx.audit("key_compromised", "k-1").await.unwrap();
        tx.commit().await.unwrap();

        assert!(seq > 0, "{}", db.name);
        assert!(
            db.store.is_refused(signed_by("k-1")).await.unwrap(),
            "{}",
            db.name
        );
        assert!(
            !db.store.is_refused(signed_by("k-2")).await.unwrap(),
            "control"
        );
        let page = db.store.revocations_since(0, 10).await.unwrap();
        let listed = FeedEntry::new(seq, RuleKind::Kid, "k-1".into(), None, at(1000).secs());
        assert_eq!(page.entries, [listed], "{}", db.name);
        let log = db.store.audit_log(10).await.unwrap();
        assert_eq!(log[0].actor, "admin");
        assert_eq!(
            (log[0].action.as_str(), log[0].at),
            ("key_compromised", at(10))
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn a_row_this_version_cannot_read_is_corrupt() {
    for db in each().await {
        let insert = |kid: &str, alg: &str, state: &str, jwk: &str| {
            format!(
                "INSERT INTO signing_keys (kid, alg, state, public_jwk, created_at, activate_at) VALUES ('{kid}', '{alg}', '{state}', '{jwk}', 0, 0)"
            )
        };
        db.execute(&insert("k-ok", "EdDSA", "retired", "{}")).await;
        assert!(db.store.keys().await.is_ok(), "control");
        for (kid, alg, state, jwk) in [
            ("k-jwk", "EdDSA", "retired", "{\"kty\":"),
            ("k-alg", "XS999", "retired", "{}"),
            ("k-state", "EdDSA", "lost", "{}"),
        ] {
            db.execute(&insert(kid, alg, state, jwk)).await;
            let e = db.store.keys().await.unwrap_err();
            assert!(
                matches!(e, StoreError::Corrupt(_)),
                "{}: {kid}: {e}",
                db.name
            );
            db.execute(&format!("DELETE FROM signing_keys WHERE kid = '{kid}'"))
                .await;
        }
        db.finish().await;
    }
}
