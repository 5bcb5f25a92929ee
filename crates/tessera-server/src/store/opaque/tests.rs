use serde_json::json;

use super::*;
use crate::store::testdb::{at, each, TestDb};

fn claims() -> Map<String, Value> {
    let claims = json!({"sub": "alice", "client_id": "app", "aud": ["orders"], "scope": "read"});
    claims.as_object().cloned().unwrap()
}

/// Stores the opaque token `hash` of app, expiring at `at(exp)`.
async fn store_token(db: &TestDb, hash: &str, exp: i64) {
    let claims = claims();
    db.store
        .insert_opaque(&NewOpaque {
            hash,
            client_id: "app",
            claims: &claims,
            now: at(0),
            expires_at: at(exp),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn an_opaque_token_round_trips_with_its_claims() {
    for db in each().await {
        store_token(&db, "H1", 900).await;
        let row = db.store.opaque("H1").await.unwrap();
        assert_eq!(
            row,
            Some(OpaqueRow {
                client_id: "app".into(),
                claims: claims(),
                expires_at: at(900),
            }),
            "{}",
            db.name
        );
        assert_eq!(db.store.opaque("H2").await.unwrap(), None);
        // A second token under one hash is a conflict, not a replacement.
        let e = db
            .store
            .insert_opaque(&NewOpaque {
                hash: "H1",
                client_id: "other",
                claims: &Map::new(),
                now: at(1),
                expires_at: at(2),
            })
            .await
            .unwrap_err();
        assert!(e.is_conflict(), "{}: {e}", db.name);
        db.finish().await;
    }
}

#[tokio::test]
async fn claims_that_are_not_a_json_object_are_refused_yet_revocable() {
    for db in each().await {
        for (hash, claims) in [("H-text", "not json"), ("H-array", "[1,2]")] {
            db.execute(&format!(
                "INSERT INTO opaque_tokens (token_hash, client_id, claims, created_at, expires_at) VALUES ('{hash}', 'app', '{claims}', 0, {})",
                at(900).secs()
            ))
            .await;
            let e = db.store.opaque(hash).await.unwrap_err();
            assert!(matches!(e, StoreError::Corrupt(_)), "{}: {e}", db.name);
            // Its owner can still revoke it: deletion never reads the claims.
            assert_eq!(
                db.store.delete_opaque(hash, "app", at(1)).await.unwrap(),
                Some(true),
                "{}",
                db.name
            );
            assert_eq!(db.store.opaque(hash).await.unwrap(), None);
        }
        db.finish().await;
    }
}

#[tokio::test]
async fn only_its_client_deletes_an_opaque_token() {
    for db in each().await {
        store_token(&db, "H1", 900).await;
        let s = &db.store;
        assert_eq!(s.delete_opaque("H0", "app", at(1)).await.unwrap(), None);
        assert_eq!(
            s.delete_opaque("H1", "other", at(1)).await.unwrap(),
            Some(false),
            "{}",
            db.name
        );
        assert!(
            s.opaque("H1").await.unwrap().is_some(),
            "another client's stays"
        );
        assert_eq!(
            s.delete_opaque("H1", "app", at(1)).await.unwrap(),
            Some(true)
        );
        assert_eq!(s.opaque("H1").await.unwrap(), None, "{}", db.name);
        db.finish().await;
    }
}

#[tokio::test]
async fn expired_opaque_tokens_are_purged() {
    for db in each().await {
        store_token(&db, "H-gone", 99).await;
        store_token(&db, "H-edge", 100).await;
        store_token(&db, "H-live", 101).await;
        assert_eq!(
            db.store.purge_opaque(at(100)).await.unwrap(),
            1,
            "{}",
            db.name
        );
        assert_eq!(db.store.opaque("H-gone").await.unwrap(), None);
        // Expiring at `now` is not yet expired before it.
        assert!(db.store.opaque("H-edge").await.unwrap().is_some());
        assert!(db.store.opaque("H-live").await.unwrap().is_some());
        db.finish().await;
    }
}
