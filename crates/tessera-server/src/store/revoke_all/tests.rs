use serde_json::json;

use super::*;
use crate::store::testdb::{at, each, everything, token, TestDb};
use crate::store::{Derived, FamilyAccess, FamilyStart, NewOpaque, RefreshRow};

/// alice's family `family` at `client`, its first token `hash` paid for
/// by the JWT `jti`.
async fn family(db: &TestDb, family: &str, client: &str, hash: &str, jti: &str) {
    let row = RefreshRow {
        family: family.into(),
        client_id: client.into(),
        subject: "alice".into(),
        scope: String::new(),
        audience: json!("orders"),
        claims: serde_json::Map::new(),
        expires_at: at(1000),
        idle_until: at(1000),
        spent_at: None,
        revoked_at: None,
        successor_sealed: None,
    };
    let access = FamilyAccess::Jwt {
        jti,
        expires_at: at(960),
    };
    let start = FamilyStart {
        hash,
        row: &row,
        access,
        now: at(0),
    };
    db.store.insert_refresh(&start).await.unwrap();
}

#[tokio::test]
async fn a_subject_rule_refuses_its_tokens_issued_before_its_bound() {
    for db in each().await {
        let s = &db.store;
        family(&db, "F-web", "web", "R1", "j-web").await;
        family(&db, "F-app", "app", "R2", "j-app").await;
        let done = s
            .revoke_all(&everything(Party::Subject, "alice", 10, 20))
            .await
            .unwrap();
        assert_eq!(
            done,
            RevokedAll {
                seq: done.seq,
                families: 2,
                opaque_tokens: 0,
                access_tokens: 2,
                exchanged_tokens: 0,
            },
            "{}",
            db.name
        );
        assert!(s.is_refused(token("j-x", "alice", "web", 9)).await.unwrap());
        // Issued at the bound or after it, or another subject's: not refused.
        assert!(!s
            .is_refused(token("j-x", "alice", "web", 10))
            .await
            .unwrap());
        assert!(!s.is_refused(token("j-x", "bob", "web", 9)).await.unwrap());
        // The families' JWTs are listed by jti, whatever their iat.
        assert!(s
            .is_refused(token("j-app", "alice", "app", 11))
            .await
            .unwrap());
        for hash in ["R1", "R2"] {
            let row = s.refresh_token(hash).await.unwrap().unwrap();
            assert_eq!(row.revoked_at, Some(at(20)), "{}: {hash}", db.name);
        }
        let log = s.audit_log(10).await.unwrap();
        let recorded = |action: &str, subject: &str| {
            log.iter()
                .any(|e| e.action == action && e.subject == subject && e.actor == "admin")
        };
        assert!(recorded("subject_revoked", "alice"), "{}: {log:?}", db.name);
        assert!(recorded("refresh_family_revoked", "F-web"));
        assert!(recorded("refresh_family_revoked", "F-app"));
        db.finish().await;
    }
}

#[tokio::test]
async fn a_client_rule_takes_its_families_opaque_tokens_and_what_was_exchanged() {
    for db in each().await {
        let s = &db.store;
        family(&db, "F-web", "web", "R1", "j-web").await;
        family(&db, "F-app", "app", "R2", "j-app").await;
        let claims = json!({"sub": "alice"}).as_object().cloned().unwrap();
        for (hash, client_id) in [("H-web", "web"), ("H-app", "app")] {
            s.insert_opaque(&NewOpaque {
                hash,
                client_id,
                claims: &claims,
                now: at(0),
                expires_at: at(900),
            })
            .await
            .unwrap();
        }
        // The gateway exchanged one of web's JWTs for its own.
        let derived = Derived {
            jti: "d-1",
            expires_at: at(960),
            parent: "j-other".into(),
            parent_client: "web",
            parent_kid: Some("k-1"),
        };
        let parent = token("j-other", "alice", "web", 0);
        assert!(s.record_derived(&derived, parent).await.unwrap());

        let done = s
            .revoke_all(&everything(Party::Client, "web", 10, 20))
            .await
            .unwrap();
        assert_eq!(
            (
                done.families,
                done.opaque_tokens,
                done.access_tokens,
                done.exchanged_tokens
            ),
            (1, 1, 1, 1),
            "{}",
            db.name
        );
        assert_eq!(s.opaque("H-web").await.unwrap(), None);
        assert!(
            s.opaque("H-app").await.unwrap().is_some(),
            "{}: app's stays",
            db.name
        );
        assert!(s
            .is_refused(token("d-1", "alice", "gateway", 15))
            .await
            .unwrap());
        assert!(!s
            .is_refused(token("j-app", "alice", "app", 5))
            .await
            .unwrap());
        let app = s.refresh_token("R2").await.unwrap().unwrap();
        assert_eq!(app.revoked_at, None, "{}", db.name);
        db.finish().await;
    }
}

#[test]
fn parties_name_their_rule_and_their_column() {
    assert_eq!(Party::Subject.rule_kind(), RuleKind::Subject);
    assert_eq!(Party::Client.rule_kind(), RuleKind::Client);
    assert_eq!(Party::Subject.family_column(), "subject");
    assert_eq!(Party::Client.family_column(), "client_id");
}
