use super::feed::FeedPage;
use super::*;
use crate::store::revoke_all::{Party, RevokeAll};
use crate::store::testdb::{at, each, everything, token};

fn jti(jti: &str, expires_at: i64) -> JtiRevocation<'_> {
    JtiRevocation {
        jti,
        client_id: "app",
        expires_at: at(expires_at),
        now: at(0),
    }
}

#[tokio::test]
async fn a_jti_is_listed_once_with_one_sequence_number() {
    for db in each().await {
        let s = &db.store;
        let seq = s.revoke_jti(&jti("j-1", 900)).await.unwrap();
        assert_eq!(
            s.revoke_jti(&jti("j-1", 990)).await.unwrap(),
            seq,
            "{}",
            db.name
        );
        assert!(s.revoke_jti(&jti("j-2", 900)).await.unwrap() > seq);
        assert!(s.is_refused(token("j-1", "alice", "app", 0)).await.unwrap());
        assert!(
            !s.is_refused(token("j-3", "alice", "app", 0)).await.unwrap(),
            "control"
        );
        let page = s.revocations_since(0, 10).await.unwrap();
        // Listed again, a jti keeps its entry and its first bound.
        assert_eq!(
            page.entries[0],
            FeedEntry::new(seq, RuleKind::Jti, "j-1".into(), None, at(900).secs())
        );
        assert_eq!(page.entries.len(), 2, "{}", db.name);
        let log = s.audit_log(10).await.unwrap();
        assert_eq!(log.len(), 2, "{}: one entry per jti", db.name);
        db.finish().await;
    }
}

#[tokio::test]
async fn revoking_a_token_reaches_what_was_exchanged_from_it_and_on() {
    for db in each().await {
        let s = &db.store;
        let exchanged = |jti, parent: &str| Derived {
            jti,
            expires_at: at(960),
            parent: parent.into(),
            parent_client: "app",
            parent_kid: None,
        };
        let facts = |jti| token(jti, "alice", "app", 0);
        assert!(s
            .record_derived(&exchanged("d-1", "j-1"), facts("j-1"))
            .await
            .unwrap());
        assert!(s
            .record_derived(&exchanged("d-2", "d-1"), facts("d-1"))
            .await
            .unwrap());
        s.revoke_jti(&jti("j-1", 900)).await.unwrap();
        for jti in ["d-1", "d-2"] {
            assert!(
                s.is_refused(token(jti, "x", "y", 0)).await.unwrap(),
                "{}: {jti}",
                db.name
            );
        }
        // Nothing is exchanged from a revoked token any more...
        assert!(!s
            .record_derived(&exchanged("d-3", "j-1"), facts("j-1"))
            .await
            .unwrap());
        // ...nor from an opaque token that is gone.
        let gone = exchanged("d-4", "");
        let gone = Derived {
            parent: opaque_parent("H-gone"),
            ..gone
        };
        assert!(
            !s.record_derived(&gone, facts("o-1")).await.unwrap(),
            "{}",
            db.name
        );
        assert_eq!(db.count("SELECT COUNT(*) FROM derived_tokens").await, 2);
        db.finish().await;
    }
}

#[tokio::test]
async fn a_rule_listed_again_moves_on_and_only_widens() {
    for db in each().await {
        let s = &db.store;
        let first = s
            .revoke_all(&everything(Party::Subject, "alice", 100, 0))
            .await
            .unwrap();
        let narrower = RevokeAll {
            expires_at: at(900),
            ..everything(Party::Subject, "alice", 10, 1)
        };
        let again = s.revoke_all(&narrower).await.unwrap();
        assert!(again.seq > first.seq, "{}", db.name);
        let page = s.revocations_since(0, 10).await.unwrap();
        let widest = FeedEntry::new(
            again.seq,
            RuleKind::Subject,
            "alice".into(),
            Some(at(100).secs()),
            at(5000).secs(),
        );
        assert_eq!(page.entries, [widest], "{}", db.name);
        assert_eq!(page.latest, again.seq);
        db.finish().await;
    }
}

#[tokio::test]
async fn the_feed_pages_in_order_and_purges_what_has_expired() {
    for db in each().await {
        let s = &db.store;
        let a = s.revoke_jti(&jti("j-a", 100)).await.unwrap();
        let b = s.revoke_jti(&jti("j-b", 300)).await.unwrap();
        let c = s
            .revoke_all(&everything(Party::Client, "web", 5, 0))
            .await
            .unwrap()
            .seq;
        let page = s.revocations_since(a, 1).await.unwrap();
        assert_eq!(
            page,
            FeedPage {
                latest: c,
                snapshot: false,
                entries: vec![FeedEntry::new(
                    b,
                    RuleKind::Jti,
                    "j-b".into(),
                    None,
                    at(300).secs()
                )],
            },
            "{}",
            db.name
        );
        assert!(s.revocations_since(c, 10).await.unwrap().entries.is_empty());

        // j-a has expired at `at(101)`: its entry goes, and a follower
        // from before it gets a snapshot.
        assert_eq!(s.purge_revocations(at(100)).await.unwrap(), 0);
        assert_eq!(
            s.purge_revocations(at(101)).await.unwrap(),
            1,
            "{}",
            db.name
        );
        let page = s.revocations_since(0, 10).await.unwrap();
        assert!(page.snapshot, "{}", db.name);
        let seqs: Vec<i64> = page.entries.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [b, c]);
        assert!(!s.revocations_since(a, 10).await.unwrap().snapshot);
        assert!(!s.is_refused(token("j-a", "x", "y", 0)).await.unwrap());
        assert!(s.is_refused(token("j-b", "x", "y", 0)).await.unwrap());
        db.finish().await;
    }
}

#[tokio::test]
async fn an_entry_of_an_unknown_kind_is_corrupt() {
    for db in each().await {
        db.store.revoke_jti(&jti("j-1", 900)).await.unwrap();
        assert!(db.store.revocations_since(0, 10).await.is_ok(), "control");
        db.execute(
            "INSERT INTO revocations (seq, kind, target, client_id, expires_at, revoked_at) VALUES (99, 'aud', 'orders', 'admin', 0, 0)",
        )
        .await;
        let e = db.store.revocations_since(0, 10).await.unwrap_err();
        assert!(matches!(e, StoreError::Corrupt(_)), "{}: {e}", db.name);
        db.finish().await;
    }
}
