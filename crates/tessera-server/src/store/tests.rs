use std::time::Duration;

use serde_json::json;

use super::testdb::{at, each};
use super::*;

#[tokio::test]
async fn everything_expired_goes_in_one_pass() {
    for db in each().await {
        let s = &db.store;
        let claims = json!({"sub": "alice"}).as_object().cloned().unwrap();
        for (hash, exp) in [("H-old", 99), ("H-live", 2000)] {
            s.insert_opaque(&NewOpaque {
                hash,
                client_id: "app",
                claims: &claims,
                now: at(0),
                expires_at: at(exp),
            })
            .await
            .unwrap();
        }
        for (jti, exp) in [("j-old", 99), ("j-live", 2000)] {
            s.revoke_jti(&JtiRevocation {
                jti,
                client_id: "app",
                expires_at: at(exp),
                now: at(0),
            })
            .await
            .unwrap();
        }
        for (secs, subject) in [(499, "c-old"), (500, "c-kept")] {
            s.audit(&AuditEntry {
                at: at(secs),
                actor: "admin",
                action: "client_registered",
                subject,
            })
            .await
            .unwrap();
        }
        // Audit entries are kept for 500 seconds before `at(1000)`.
        s.purge_expired(at(1000), Duration::from_secs(500))
            .await
            .unwrap();
        assert_eq!(s.opaque("H-old").await.unwrap(), None, "{}", db.name);
        assert!(s.opaque("H-live").await.unwrap().is_some());
        let listed: Vec<String> = s
            .revocations_since(0, 10)
            .await
            .unwrap()
            .entries
            .into_iter()
            .filter_map(|e| e.target.map(|t| t.value))
            .collect();
        assert_eq!(listed, ["j-live"], "{}", db.name);
        let audited: Vec<String> = s
            .audit_log(10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.subject)
            .filter(|subject| subject.starts_with("c-"))
            .collect();
        assert_eq!(audited, ["c-kept"], "{}", db.name);
        db.finish().await;
    }
}

#[tokio::test]
async fn only_a_lost_race_is_a_conflict() {
    for db in each().await {
        let s = &db.store;
        let row = ClientRow {
            client_id: "c-1".into(),
            metadata: json!({}),
            secret_hash: None,
            created_at: at(0),
        };
        s.insert_client(&row).await.unwrap();
        assert!(s.insert_client(&row).await.unwrap_err().is_conflict());
        assert!(!StoreError::Corrupt("a row".into()).is_conflict());
        let bad_sql = sqlx::query("SELECT nothing FROM nowhere")
            .execute(&s.pool)
            .await
            .map_err(StoreError::from)
            .unwrap_err();
        assert!(!bad_sql.is_conflict(), "{}: {bad_sql}", db.name);
        db.finish().await;
    }
}
