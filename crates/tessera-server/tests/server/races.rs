//! Revocation racing the writes it must catch, interleaved on purpose: a
//! second connection holds a transaction open so that one side stops at a
//! chosen point while the other runs. On PostgreSQL (READ COMMITTED) the
//! blocker holds the unique key the first side is about to insert; on
//! SQLite it holds the write lock. Whichever side then goes first, nothing
//! may survive the revocation.

use std::sync::Arc;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use tessera_server::store::{Derived, RefreshOutcome, RefreshRow, RuleKind, Store, TokenFacts};

use crate::common::{backends, Backend};

const NOW: i64 = 1_767_225_600;

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

/// Family F of alice's login at app, fresh.
fn alices_family() -> RefreshRow {
    RefreshRow {
        family: "F".into(),
        client_id: "app".into(),
        subject: "alice".into(),
        scope: String::new(),
        audience: "\"orders-api\"".into(),
        claims: "{}".into(),
        expires_at: NOW + 86_400,
        idle_until: NOW + 86_400,
        spent_at: None,
        revoked_at: None,
        successor_sealed: None,
    }
}

#[tokio::test]
async fn logout_everywhere_during_a_refresh_leaves_no_live_successor() {
    for b in backends().await {
        let store = Arc::new(Store::connect(&url(&b)).await.unwrap());
        store
            .insert_refresh("R1", &alices_family(), NOW)
            .await
            .unwrap();
        // The rotation stops at inserting its successor R2, with R1 spent.
        let hold = blocker(
            &b,
            "INSERT INTO refresh_tokens (token_hash, family, client_id, subject, scope, audience, claims, created_at, expires_at, idle_until) VALUES ('R2', 'x', 'x', 'x', '', '', '', 0, 0, 0)",
        )
        .await;
        let s = Arc::clone(&store);
        let rotation = tokio::spawn(async move {
            s.rotate_refresh("R1", "app", "R2", None, 0, NOW + 1, 86_400)
                .await
                .unwrap()
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let s = Arc::clone(&store);
        let logout = tokio::spawn(async move {
            s.revoke_all(
                RuleKind::Subject,
                "alice",
                NOW + 3,
                NOW + 4000,
                "admin",
                NOW + 2,
            )
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
            .rotate_refresh("R2", "app", "R3", None, 0, NOW + 10, 86_400)
            .await
            .unwrap();
        assert!(
            !matches!(next, RefreshOutcome::Rotated(_)),
            "{}: the successor outlived its subject's logout ({rotated:?}, then {next:?})",
            b.name
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
        store
            .insert_opaque("H", "app", None, claims, NOW, NOW + 900)
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
            let parent: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(claims).unwrap();
            let derived = Derived {
                jti: "d-1",
                expires_at: NOW + 960,
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
            tokio::spawn(async move { s.delete_opaque("H", "app", NOW + 1).await.unwrap() });
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
/// rotation committed, the family was revoked, and only then does the
/// refresh store its opaque access token. It must not be stored (the
/// revocation had nothing to delete yet).
#[tokio::test]
async fn no_opaque_token_is_stored_for_a_family_revoked_since_its_refresh() {
    for b in backends().await {
        let store = Store::connect(&url(&b)).await.unwrap();
        store
            .insert_refresh("R1", &alices_family(), NOW)
            .await
            .unwrap();
        let claims = r#"{"sub":"alice","client_id":"app"}"#;
        assert!(
            store
                .insert_opaque("H1", "app", Some("F"), claims, NOW, NOW + 900)
                .await
                .unwrap(),
            "{}: a live family's token is stored",
            b.name
        );
        assert_eq!(
            store
                .revoke_refresh_family("R1", "app", NOW + 1)
                .await
                .unwrap(),
            Some(true)
        );
        assert!(
            store.opaque("H1").await.unwrap().is_none(),
            "deleted with the family"
        );
        assert!(
            !store
                .insert_opaque("H2", "app", Some("F"), claims, NOW + 1, NOW + 900)
                .await
                .unwrap(),
            "{}: stored for a revoked family",
            b.name
        );
        assert!(store.opaque("H2").await.unwrap().is_none());
        store.close().await;
    }
}
