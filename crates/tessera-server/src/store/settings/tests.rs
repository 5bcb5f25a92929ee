use super::*;
use crate::store::testdb::{at, each, T};

#[tokio::test]
async fn a_setting_is_set_once() {
    for db in each().await {
        let s = &db.store;
        assert_eq!(s.setting("kek_check").await.unwrap(), None, "{}", db.name);
        assert!(s.set_setting_once("kek_check", "first").await.unwrap());
        // A second node's value loses; the first stays.
        assert!(!s.set_setting_once("kek_check", "second").await.unwrap());
        assert_eq!(
            s.setting("kek_check").await.unwrap().as_deref(),
            Some("first"),
            "{}",
            db.name
        );
        assert_eq!(s.setting("other").await.unwrap(), None);
        db.finish().await;
    }
}

#[tokio::test]
async fn the_audit_log_reads_back_newest_first_and_purges_by_time() {
    for db in each().await {
        let s = &db.store;
        for (secs, subject) in [(0, "c-old"), (20, "c-new"), (10, "c-mid")] {
            s.audit(&AuditEntry {
                at: at(secs),
                actor: "admin",
                action: "client_registered",
                subject,
            })
            .await
            .unwrap();
        }
        let log = s.audit_log(10).await.unwrap();
        let subjects: Vec<&str> = log.iter().map(|e| e.subject.as_str()).collect();
        assert_eq!(subjects, ["c-new", "c-mid", "c-old"], "{}", db.name);
        assert_eq!(
            log[0],
            AuditRecord {
                at: at(20),
                actor: "admin".into(),
                action: "client_registered".into(),
                subject: "c-new".into(),
            }
        );
        assert_eq!(s.audit_log(1).await.unwrap().len(), 1, "the limit holds");

        // Strictly older than `before` goes; an entry at `before` stays.
        assert_eq!(s.purge_audit(at(10)).await.unwrap(), 1, "{}", db.name);
        let left: Vec<String> = s
            .audit_log(10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.subject)
            .collect();
        assert_eq!(left, ["c-new", "c-mid"], "{}", db.name);
        assert_eq!(s.purge_audit(T).await.unwrap(), 0);
        db.finish().await;
    }
}
