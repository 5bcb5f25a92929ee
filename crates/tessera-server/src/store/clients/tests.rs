use serde_json::json;

use super::*;
use crate::store::testdb::{at, each};

fn client(id: &str, created: i64) -> ClientRow {
    ClientRow {
        client_id: id.into(),
        metadata: json!({"client_name": id, "scope": "read"}),
        secret_hash: Some(format!("hash-of-{id}")),
        created_at: at(created),
    }
}

#[tokio::test]
async fn clients_round_trip_oldest_first_and_delete_once() {
    for db in each().await {
        let s = &db.store;
        s.insert_client(&client("c-b", 5)).await.unwrap();
        s.insert_client(&client("c-a", 9)).await.unwrap();
        let mut public = client("c-c", 5);
        public.secret_hash = None;
        s.insert_client(&public).await.unwrap();

        let rows = s.clients().await.unwrap();
        let ids: Vec<&str> = rows.iter().map(|r| r.client_id.as_str()).collect();
        // By registration time, then id.
        assert_eq!(ids, ["c-b", "c-c", "c-a"], "{}", db.name);
        assert_eq!(
            rows[0].metadata,
            json!({"client_name": "c-b", "scope": "read"})
        );
        assert_eq!(rows[0].secret_hash.as_deref(), Some("hash-of-c-b"));
        assert_eq!(rows[1].secret_hash, None);
        assert_eq!(rows[2].created_at, at(9));

        assert!(s.delete_client("c-b").await.unwrap());
        assert!(!s.delete_client("c-b").await.unwrap(), "{}", db.name);
        assert_eq!(s.clients().await.unwrap().len(), 2);
        db.finish().await;
    }
}

#[tokio::test]
async fn a_client_id_registered_twice_is_a_conflict() {
    for db in each().await {
        let s = &db.store;
        s.insert_client(&client("c-1", 0)).await.unwrap();
        let e = s.insert_client(&client("c-1", 1)).await.unwrap_err();
        assert!(e.is_conflict(), "{}: {e}", db.name);
        db.finish().await;
    }
}

#[tokio::test]
async fn metadata_that_is_not_json_is_refused() {
    for db in each().await {
        let s = &db.store;
        s.insert_client(&client("c-1", 0)).await.unwrap();
        assert!(s.clients().await.is_ok(), "control");
        db.execute(
            "INSERT INTO clients (client_id, metadata, secret_hash, created_at) VALUES ('c-bad', '{\"client_name\":', NULL, 0)",
        )
        .await;
        let e = s.clients().await.unwrap_err();
        assert!(
            matches!(&e, StoreError::Corrupt(m) if m.contains("c-bad")),
            "{}: {e}",
            db.name
        );
        db.finish().await;
    }
}
