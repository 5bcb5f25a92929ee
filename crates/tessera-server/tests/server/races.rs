//! Revocation racing the writes it must catch, interleaved on purpose: a
//! second connection holds a transaction open so that one side stops at a
//! chosen point while the other runs. On PostgreSQL (READ COMMITTED) the
//! blocker holds the unique key the first side is about to insert; on
//! SQLite it holds the write lock. Whichever side then goes first, nothing
//! may survive the revocation.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use sqlx::any::AnyPoolOptions;
use tessera_jose::UnixTime;
use tessera_server::test_util::{
    Derived, FamilyAccess, FamilyStart, Issue, NewOpaque, Party, Presented, RefreshOutcome,
    RefreshRow, RevokeAll, Store, TokenFacts,
};

use crate::common::{backends, Backend};

const NOW: i64 = 1_767_225_600;

fn at(secs: i64) -> UnixTime {
    UnixTime::from_secs(secs)
}

fn url(b: &Backend) -> String {
    b.url.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}?mode=rwc",
            b.data.path().join("races.db").display()
        )
    })
}

/// A transaction on its own connection that stops others at `key`: the
/// row `insert` would make (PostgreSQL) or the write lock (SQLite).
async fn blocker(b: &Backend, insert: &str) -> sqlx::Transaction<'static, sqlx::Any> {
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&url(b))
        .await
        .unwrap();
    let mut tx = if b.url.is_none() {
        pool.begin_with("BEGIN IMMEDIATE").await.unwrap()
    } else {
        pool.begin().await.unwrap()
    };
    sqlx::query(insert).execute(&mut *tx).await.unwrap();
    tx
}

/// Presenting `hash` at app at `now`, with no reuse interval.
fn presented(hash: &str, now: i64) -> Presented<'_> {
    Presented {
        hash,
        client_id: "app",
        reuse_interval: Duration::ZERO,
        idle: Duration::from_secs(86_400),
        now: at(now),
    }
}

/// A JWT access token `jti` issued with a family.
fn jwt(jti: &str) -> FamilyAccess<'_> {
    FamilyAccess::Jwt {
        jti,
        expires_at: at(NOW + 960),
    }
}

/// A rotation to `successor` issuing `access`.
fn issue<'a>(successor: &'a str, access: FamilyAccess<'a>) -> Issue<'a> {
    Issue {
        successor_hash: successor,
        successor_sealed: None,
        access,
    }
}

/// Family F of alice's login at app, fresh.
fn alices_family() -> RefreshRow {
    RefreshRow {
        family: "F".into(),
        client_id: "app".into(),
        subject: "alice".into(),
        scope: String::new(),
        audience: Value::from("orders-api"),
        claims: Map::new(),
        expires_at: at(NOW + 86_400),
        idle_until: at(NOW + 86_400),
        spent_at: None,
        revoked_at: None,
        successor_sealed: None,
    }
}

/// Starts alice's family F with its first refresh token R1 and `access`.
async fn start_alices_family(store: &Store, access: FamilyAccess<'_>) {
    store
        .insert_refresh(&FamilyStart {
            hash: "R1",
            row: &alices_family(),
            access,
            now: at(NOW),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn logout_everywhere_during_a_refresh_leaves_no_live_successor() {
    for b in backends().await {
        let store = Arc::new(Store::connect(&url(&b)).await.unwrap());
        start_alices_family(&store, jwt("j-1")).await;
        // The rotation stops at inserting its successor R2, with R1 spent.
        let hold = blocker(
            &b,
            "INSERT INTO refresh_tokens (token_hash, family, client_id, subject, scope, audience, claims, created_at, expires_at, idle_until) VALUES ('R2', 'x', 'x', 'x', '', '', '', 0, 0, 0)",
        )
        .await;
        let s = Arc::clone(&store);
        let rotation = tokio::spawn(async move {
            s.rotate_refresh(&presented("R1", NOW + 1), &issue("R2", jwt("j-2")))
                .await
                .unwrap()
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let s = Arc::clone(&store);
        let logout = tokio::spawn(async move {
            s.revoke_all(&RevokeAll {
                party: Party::Subject,
                target: "alice",
                not_before: at(NOW + 3),
                expires_at: at(NOW + 4000),
                actor: "admin",
                now: at(NOW + 2),
            })
            .await
            .unwrap()
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        hold.rollback().await.unwrap();
        let rotated = rotation.await.unwrap();
        let revoked = logout.await.unwrap();
        assert_eq!(revoked.families, 1, "{}", b.name);
        if b.url.is_some() {
            // PostgreSQL: the interleaving meant happened (the rotation went
            // first, the logout then had to find its successor).
            assert!(matches!(rotated, RefreshOutcome::Rotated(_)), "{rotated:?}");
        }
        let next = store
            .rotate_refresh(&presented("R2", NOW + 10), &issue("R3", jwt("j-3")))
            .await
            .unwrap();
        assert!(
            !matches!(next, RefreshOutcome::Rotated(_)),
            "{}: the successor outlived its subject's logout ({rotated:?}, then {next:?})",
            b.name
        );
        // The access tokens the family issued are listed by jti, the one
        // issued by the rotation that raced the logout too.
        let by_jti = |jti| TokenFacts {
            jti: Some(jti),
            sub: Some("bob"),
            client_id: Some("other"),
            iat: Some(NOW + 5),
            kid: None,
        };
        assert!(store.is_refused(by_jti("j-1")).await.unwrap(), "{}", b.name);
        if matches!(rotated, RefreshOutcome::Rotated(_)) {
            assert!(store.is_refused(by_jti("j-2")).await.unwrap(), "{}", b.name);
        }
        assert!(
            !store.is_refused(by_jti("j-3")).await.unwrap(),
            "never issued, never listed"
        );
        store.close().await;
    }
}

#[tokio::test]
async fn revoking_an_opaque_token_during_its_exchange_lists_the_new_jwt() {
    for b in backends().await {
        let store = Arc::new(Store::connect(&url(&b)).await.unwrap());
        let claims =
            r#"{"sub":"alice","client_id":"app","iat":1767225600,"exp":1767226500,"jti":"o-1"}"#;
        let parent: Map<String, Value> = serde_json::from_str(claims).unwrap();
        store
            .insert_opaque(&NewOpaque {
                hash: "H",
                client_id: "app",
                claims: &parent,
                now: at(NOW),
                expires_at: at(NOW + 900),
            })
            .await
            .unwrap();
        // The exchange stops at recording its JWT, after its checks.
        let hold = blocker(
            &b,
            "INSERT INTO derived_tokens (jti, parent, parent_client, parent_kid, expires_at) VALUES ('d-1', 'tso:H', 'x', NULL, 0)",
        )
        .await;
        let s = Arc::clone(&store);
        let exchange = tokio::spawn(async move {
            let derived = Derived {
                jti: "d-1",
                expires_at: at(NOW + 960),
                parent: "tso:H".into(),
                parent_client: "app",
                parent_kid: None,
            };
            s.record_derived(&derived, TokenFacts::from_claims(&parent))
                .await
                .unwrap()
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let s = Arc::clone(&store);
        let revoke =
            tokio::spawn(async move { s.delete_opaque("H", "app", at(NOW + 1)).await.unwrap() });
        tokio::time::sleep(Duration::from_millis(200)).await;
        hold.rollback().await.unwrap();
        let recorded = exchange.await.unwrap();
        assert_eq!(revoke.await.unwrap(), Some(true), "{}", b.name);
        if b.url.is_some() {
            // PostgreSQL: the exchange went first, so the revocation had to
            // find what it recorded.
            assert!(recorded);
        }
        let jwt = TokenFacts {
            jti: Some("d-1"),
            sub: Some("bob"),
            client_id: Some("gateway"),
            iat: Some(NOW + 2),
            kid: None,
        };
        let refused = store.is_refused(jwt).await.unwrap();
        assert!(
            !recorded || refused,
            "{}: a JWT exchanged from the revoked opaque token was recorded but not listed",
            b.name
        );
        store.close().await;
    }
}

/// The end of a race between a refresh and its family's revocation: the
/// access token a refresh issues is stored in the rotation's transaction,
/// so once the family is revoked no rotation (nor a retry within the reuse
/// interval) stores one.
#[tokio::test]
async fn no_access_token_is_stored_for_a_revoked_family() {
    for b in backends().await {
        let store = Store::connect(&url(&b)).await.unwrap();
        let claims: Map<String, Value> =
            serde_json::from_str(r#"{"sub":"alice","client_id":"app"}"#).unwrap();
        let opaque = |hash| FamilyAccess::Opaque {
            hash,
            claims: &claims,
            expires_at: at(NOW + 900),
        };
        start_alices_family(&store, opaque("H1")).await;
        assert!(store.opaque("H1").await.unwrap().is_some(), "{}", b.name);
        // R1 -> R2 with a reuse interval, so that R1 may be retried.
        let retrying = |hash, now| Presented {
            reuse_interval: Duration::from_secs(10),
            ..presented(hash, now)
        };
        let rotated = store
            .rotate_refresh(
                &retrying("R1", NOW + 1),
                &Issue {
                    successor_sealed: Some("sealed-R2"),
                    ..issue("R2", opaque("H2"))
                },
            )
            .await
            .unwrap();
        assert!(matches!(rotated, RefreshOutcome::Rotated(_)), "{rotated:?}");
        assert!(store.opaque("H2").await.unwrap().is_some());
        // A retry of R1 within the interval: the same successor, and its
        // access token is stored with the family.
        let again = store
            .rotate_refresh(&retrying("R1", NOW + 2), &issue("R2b", opaque("H3")))
            .await
            .unwrap();
        assert!(
            matches!(&again, RefreshOutcome::Retry(sealed, _) if sealed == "sealed-R2"),
            "{}: {again:?}",
            b.name
        );
        assert!(store.opaque("H3").await.unwrap().is_some());

        assert_eq!(
            store
                .revoke_refresh_family("R2", "app", at(NOW + 3))
                .await
                .unwrap(),
            Some(true)
        );
        for h in ["H1", "H2", "H3"] {
            assert!(
                store.opaque(h).await.unwrap().is_none(),
                "{}: {h} deleted with the family",
                b.name
            );
        }
        // Neither a rotation of the successor nor a retry of R1 within the
        // interval stores anything now.
        let next = store
            .rotate_refresh(&retrying("R2", NOW + 4), &issue("R3", opaque("H4")))
            .await
            .unwrap();
        assert!(matches!(next, RefreshOutcome::Revoked), "{next:?}");
        let retry = store
            .rotate_refresh(&retrying("R1", NOW + 4), &issue("R2c", opaque("H5")))
            .await
            .unwrap();
        assert!(matches!(retry, RefreshOutcome::Revoked), "{retry:?}");
        for h in ["H4", "H5"] {
            assert!(
                store.opaque(h).await.unwrap().is_none(),
                "{}: {h} stored for a revoked family",
                b.name
            );
        }
        store.close().await;
    }
}
