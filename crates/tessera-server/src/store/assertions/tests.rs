use super::*;
use crate::store::testdb::{at, each};

fn used<'a>(client_id: &'a str, jti: &'a str, now: i64) -> UsedAssertion<'a> {
    UsedAssertion {
        client_id,
        jti,
        expires_at: at(60),
        now: at(now),
    }
}

#[tokio::test]
async fn a_jti_is_accepted_once_per_client_until_it_expires() {
    for db in each().await {
        let s = &db.store;
        assert!(s.use_assertion(&used("app", "j-1", 0)).await.unwrap());
        assert!(
            !s.use_assertion(&used("app", "j-1", 1)).await.unwrap(),
            "{}: a replay is refused",
            db.name
        );
        // Another client's jti is its own.
        assert!(s.use_assertion(&used("other", "j-1", 1)).await.unwrap());
        // Still refused at its expiry (kept while `expires_at < now` fails)...
        assert!(!s.use_assertion(&used("app", "j-1", 60)).await.unwrap());
        // ...and purged once past it, so the table does not grow.
        assert!(s.use_assertion(&used("app", "j-2", 61)).await.unwrap());
        assert_eq!(
            db.count("SELECT COUNT(*) FROM used_assertions WHERE jti = 'j-1'")
                .await,
            0,
            "{}",
            db.name
        );
        db.finish().await;
    }
}
