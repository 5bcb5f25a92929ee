use serde_json::json;

use super::*;
use crate::store::testdb::{at, each, TestDb};
use crate::store::TokenFacts;

/// Family F of alice at app, started at `T`: it ends at `at(1000)`, its
/// first token idles out at `at(100)`.
fn first() -> RefreshRow {
    RefreshRow {
        family: "F".into(),
        client_id: "app".into(),
        subject: "alice".into(),
        scope: "read write".into(),
        audience: json!(["orders", "billing"]),
        claims: json!({"email_verified": true})
            .as_object()
            .cloned()
            .unwrap(),
        expires_at: at(1000),
        idle_until: at(100),
        spent_at: None,
        revoked_at: None,
        successor_sealed: None,
    }
}

fn jwt(jti: &str) -> FamilyAccess<'_> {
    FamilyAccess::Jwt {
        jti,
        expires_at: at(960),
    }
}

/// `hash` presented by `client` at `at(now)`; a retry within 10 seconds,
/// successors idle for 100.
fn presented<'a>(hash: &'a str, client_id: &'a str, now: i64) -> Presented<'a> {
    Presented {
        hash,
        client_id,
        reuse_interval: Duration::from_secs(10),
        idle: Duration::from_secs(100),
        now: at(now),
    }
}

fn issue<'a>(successor: &'a str, access: FamilyAccess<'a>) -> Issue<'a> {
    Issue {
        successor_hash: successor,
        successor_sealed: Some("sealed-successor"),
        access,
    }
}

async fn start(db: &TestDb) {
    let row = first();
    let start = FamilyStart {
        hash: "R1",
        row: &row,
        access: jwt("j-1"),
        now: at(0),
    };
    db.store.insert_refresh(&start).await.unwrap();
}

fn jti_refused(jti: &str) -> TokenFacts<'_> {
    TokenFacts {
        jti: Some(jti),
        sub: Some("bob"),
        client_id: Some("other"),
        iat: Some(at(1).secs()),
        kid: None,
    }
}

#[tokio::test]
async fn a_family_round_trips_with_its_grants() {
    for db in each().await {
        start(&db).await;
        let row = db.store.refresh_token("R1").await.unwrap();
        assert_eq!(row, Some(first()), "{}", db.name);
        assert_eq!(db.store.refresh_token("R0").await.unwrap(), None);
        db.finish().await;
    }
}

#[tokio::test]
async fn a_rotation_spends_the_token_and_stores_its_successor() {
    for db in each().await {
        start(&db).await;
        let out = db
            .store
            .rotate_refresh(&presented("R1", "app", 50), &issue("R2", jwt("j-2")))
            .await
            .unwrap();
        // The successor idles out `idle` after the rotation.
        let next = RefreshRow {
            idle_until: at(150),
            ..first()
        };
        assert!(
            matches!(&out, RefreshOutcome::Rotated(row) if *row == next),
            "{}: {out:?}",
            db.name
        );
        assert_eq!(db.store.refresh_token("R2").await.unwrap(), Some(next));
        let spent = db.store.refresh_token("R1").await.unwrap().unwrap();
        assert_eq!(spent.spent_at, Some(at(50)), "{}", db.name);
        assert_eq!(spent.successor_sealed.as_deref(), Some("sealed-successor"));

        // ...but never after its family's end.
        let long_idle = Presented {
            idle: Duration::from_secs(5000),
            ..presented("R2", "app", 60)
        };
        let out = db
            .store
            .rotate_refresh(&long_idle, &issue("R3", jwt("j-3")))
            .await
            .unwrap();
        let capped = db.store.refresh_token("R3").await.unwrap().unwrap();
        assert!(matches!(out, RefreshOutcome::Rotated(_)), "{out:?}");
        assert_eq!(capped.idle_until, at(1000), "{}", db.name);
        assert_eq!(db.count("SELECT COUNT(*) FROM family_tokens").await, 3);
        db.finish().await;
    }
}

#[tokio::test]
async fn a_spent_token_is_a_retry_within_the_interval_and_reuse_after() {
    for db in each().await {
        start(&db).await;
        let s = &db.store;
        s.rotate_refresh(&presented("R1", "app", 10), &issue("R2", jwt("j-2")))
            .await
            .unwrap();
        let retry = s
            .rotate_refresh(&presented("R1", "app", 20), &issue("R2b", jwt("j-3")))
            .await
            .unwrap();
        assert!(
            matches!(&retry, RefreshOutcome::Retry(sealed, _) if sealed == "sealed-successor"),
            "{}: {retry:?}",
            db.name
        );
        assert_eq!(
            s.refresh_token("R2b").await.unwrap(),
            None,
            "no new successor"
        );
        assert!(!s.is_refused(jti_refused("j-1")).await.unwrap(), "control");

        let reuse = s
            .rotate_refresh(&presented("R1", "app", 21), &issue("R3", jwt("j-4")))
            .await
            .unwrap();
        assert!(
            matches!(reuse, RefreshOutcome::Reused),
            "{}: {reuse:?}",
            db.name
        );
        // The whole family is revoked, with every access token it issued
        // (the retry's too); the reuse's own was never issued.
        let successor = s.refresh_token("R2").await.unwrap().unwrap();
        assert_eq!(successor.revoked_at, Some(at(21)), "{}", db.name);
        for jti in ["j-1", "j-2", "j-3"] {
            assert!(
                s.is_refused(jti_refused(jti)).await.unwrap(),
                "{}: {jti}",
                db.name
            );
        }
        assert!(!s.is_refused(jti_refused("j-4")).await.unwrap());
        let log = s.audit_log(10).await.unwrap();
        assert_eq!(
            (log[0].action.as_str(), log[0].subject.as_str()),
            ("refresh_reuse_family_revoked", "F")
        );
        // Revoked now, whoever asks.
        let again = s
            .rotate_refresh(&presented("R2", "app", 22), &issue("R4", jwt("j-5")))
            .await
            .unwrap();
        assert!(matches!(again, RefreshOutcome::Revoked), "{again:?}");
        db.finish().await;
    }
}

#[tokio::test]
async fn refusals_write_nothing() {
    for db in each().await {
        start(&db).await;
        let s = &db.store;
        let unknown = s
            .rotate_refresh(&presented("R0", "app", 1), &issue("R2", jwt("j-2")))
            .await
            .unwrap();
        assert!(matches!(unknown, RefreshOutcome::Unknown), "{unknown:?}");
        let foreign = s
            .rotate_refresh(&presented("R1", "other", 1), &issue("R2", jwt("j-2")))
            .await
            .unwrap();
        assert!(matches!(foreign, RefreshOutcome::Foreign), "{foreign:?}");
        // Past its idle deadline (`at(100)`), within the family's end.
        let expired = s
            .rotate_refresh(&presented("R1", "app", 101), &issue("R2", jwt("j-2")))
            .await
            .unwrap();
        assert!(matches!(expired, RefreshOutcome::Expired), "{expired:?}");
        assert_eq!(
            s.refresh_token("R1").await.unwrap(),
            Some(first()),
            "{}",
            db.name
        );
        assert_eq!(s.refresh_token("R2").await.unwrap(), None);
        assert_eq!(db.count("SELECT COUNT(*) FROM family_tokens").await, 1);
        // At its idle deadline it still rotates.
        let rotated = s
            .rotate_refresh(&presented("R1", "app", 100), &issue("R2", jwt("j-2")))
            .await
            .unwrap();
        assert!(matches!(rotated, RefreshOutcome::Rotated(_)), "{rotated:?}");
        db.finish().await;
    }
}

#[tokio::test]
async fn reuse_reported_without_a_rotation_revokes_only_spent_tokens() {
    for db in each().await {
        start(&db).await;
        let s = &db.store;
        // Not spent: not reuse, and nothing changes.
        let out = s.refresh_reused(&presented("R1", "app", 5)).await.unwrap();
        assert!(
            matches!(out, RefreshOutcome::Expired),
            "{}: {out:?}",
            db.name
        );
        assert_eq!(s.refresh_token("R1").await.unwrap(), Some(first()));

        s.rotate_refresh(&presented("R1", "app", 10), &issue("R2", jwt("j-2")))
            .await
            .unwrap();
        // Within the interval it is a retry, not reuse.
        let out = s.refresh_reused(&presented("R1", "app", 20)).await.unwrap();
        assert!(matches!(out, RefreshOutcome::Expired), "{out:?}");
        let out = s
            .refresh_reused(&presented("R1", "other", 30))
            .await
            .unwrap();
        assert!(matches!(out, RefreshOutcome::Foreign), "{out:?}");
        assert_eq!(
            s.refresh_token("R2").await.unwrap().unwrap().revoked_at,
            None
        );

        let out = s.refresh_reused(&presented("R1", "app", 30)).await.unwrap();
        assert!(
            matches!(out, RefreshOutcome::Reused),
            "{}: {out:?}",
            db.name
        );
        assert_eq!(
            s.refresh_token("R2").await.unwrap().unwrap().revoked_at,
            Some(at(30))
        );
        let out = s.refresh_reused(&presented("R1", "app", 31)).await.unwrap();
        assert!(matches!(out, RefreshOutcome::Revoked), "{out:?}");
        db.finish().await;
    }
}

#[tokio::test]
async fn only_its_client_revokes_a_family_with_its_opaque_tokens() {
    for db in each().await {
        let s = &db.store;
        let claims = json!({"sub": "alice"}).as_object().cloned().unwrap();
        let opaque = FamilyAccess::Opaque {
            hash: "H1",
            claims: &claims,
            expires_at: at(900),
        };
        let row = first();
        s.insert_refresh(&FamilyStart {
            hash: "R1",
            row: &row,
            access: opaque,
            now: at(0),
        })
        .await
        .unwrap();
        assert_eq!(
            s.opaque("H1").await.unwrap().map(|o| o.claims),
            Some(claims)
        );

        assert_eq!(
            s.revoke_refresh_family("R0", "app", at(1)).await.unwrap(),
            None
        );
        assert_eq!(
            s.revoke_refresh_family("R1", "other", at(1)).await.unwrap(),
            Some(false)
        );
        assert!(s.opaque("H1").await.unwrap().is_some(), "{}", db.name);
        assert_eq!(
            s.revoke_refresh_family("R1", "app", at(1)).await.unwrap(),
            Some(true)
        );
        assert_eq!(s.opaque("H1").await.unwrap(), None, "{}", db.name);
        let r1 = s.refresh_token("R1").await.unwrap().unwrap();
        assert_eq!(r1.revoked_at, Some(at(1)));
        db.finish().await;
    }
}

#[tokio::test]
async fn a_row_whose_grants_do_not_decode_is_refused_yet_revocable() {
    for db in each().await {
        for (hash, audience, claims) in
            [("R-aud", "orders", "{}"), ("R-claims", "\"orders\"", "[]")]
        {
            db.execute(&format!(
                "INSERT INTO refresh_tokens (token_hash, family, client_id, subject, scope, audience, claims, created_at, expires_at, idle_until) VALUES ('{hash}', 'F-{hash}', 'app', 'alice', '', '{audience}', '{claims}', 0, {e}, {e})",
                e = at(1000).secs()
            ))
            .await;
            let e = db.store.refresh_token(hash).await.unwrap_err();
            assert!(
                matches!(e, StoreError::Corrupt(_)),
                "{}: {hash}: {e}",
                db.name
            );
            let e = db
                .store
                .rotate_refresh(&presented(hash, "app", 1), &issue("R9", jwt("j-9")))
                .await
                .unwrap_err();
            assert!(matches!(e, StoreError::Corrupt(_)), "{}: {e}", db.name);
            assert_eq!(
                db.store
                    .revoke_refresh_family(hash, "app", at(1))
                    .await
                    .unwrap(),
                Some(true),
                "{}",
                db.name
            );
        }
        db.finish().await;
    }
}

#[tokio::test]
async fn ended_families_and_expired_access_records_are_purged() {
    for db in each().await {
        start(&db).await;
        let s = &db.store;
        // The family ends at `at(1000)`, its JWT's record at `at(960)`.
        assert_eq!(s.purge_refresh(at(960)).await.unwrap(), 0);
        assert_eq!(db.count("SELECT COUNT(*) FROM family_tokens").await, 1);
        assert_eq!(s.purge_refresh(at(1000)).await.unwrap(), 0, "{}", db.name);
        assert_eq!(db.count("SELECT COUNT(*) FROM family_tokens").await, 0);
        assert_eq!(s.purge_refresh(at(1001)).await.unwrap(), 1, "{}", db.name);
        assert_eq!(s.refresh_token("R1").await.unwrap(), None);
        db.finish().await;
    }
}
