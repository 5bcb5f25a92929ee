//! Revocation racing the writes it must catch.
//!
//! PostgreSQL (READ COMMITTED) runs the two sides at once, and these tests
//! make them meet in the one interleaving that can go wrong: the write is
//! under way, holding the revocation lock shared, when the revocation
//! starts; the revocation must then find what the write commits. A third
//! connection (the blocker) holds the unique key the write is about to
//! insert, so the write stops there; the test waits until the database
//! shows that statement waiting for a lock, then starts the revocation and
//! waits until it is shown waiting for the revocation lock, and only then
//! lets the write go on. No sleep chooses the order: `pg_stat_activity`
//! says where each side is, told apart by an `application_name` of their
//! own.
//!
//! SQLite has one writer: `BEGIN IMMEDIATE` runs the two transactions one
//! after the other, so its only interleavings are the two orders, and each
//! is run and checked (on PostgreSQL too).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use sqlx::any::AnyPoolOptions;
use tessera_jose::UnixTime;
use tessera_server::test_util::{
    Derived, FamilyAccess, FamilyStart, Issue, NewOpaque, Party, Presented, RefreshOutcome,
    RefreshRow, RevokeAll, Store, TokenFacts,
};
use tessera_testkit::eventually;

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

/// One side of a race on PostgreSQL: a store whose sessions carry an
/// `application_name` no other session of this or any concurrent run has.
struct Side {
    store: Arc<Store>,
    name: String,
}

impl Side {
    async fn connect(b: &Backend, role: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "races-{role}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let url = format!("{}&application_name={name}", url(b));
        let store = Arc::new(Store::connect(&url).await.unwrap());
        Self { store, name }
    }

    /// Waits until this side's session is blocked on a lock in a statement
    /// that starts with `statement`: the point the test means it to stop at.
    async fn waits_in(&self, b: &Backend, statement: &str) {
        let watch = sqlx::PgPool::connect(&url(b)).await.unwrap();
        let what = format!("{} waiting in {statement:?}", self.name);
        eventually(&what, || {
            let watch = &watch;
            async move {
                let (n,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock' AND starts_with(query, $2)",
                )
                .bind(&self.name)
                .bind(statement)
                .fetch_one(watch)
                .await
                .unwrap();
                (n == 1).then_some(())
            }
        })
        .await;
        watch.close().await;
    }
}

/// On PostgreSQL, a transaction on its own connection that has made the
/// row `insert` makes, so that a write of the same key waits for it.
async fn blocker(b: &Backend, insert: &str) -> sqlx::Transaction<'static, sqlx::Any> {
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&url(b))
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(insert).execute(&mut *tx).await.unwrap();
    tx
}

/// What a revocation waits in while a write holds the revocation lock
/// shared: the lock, taken exclusively.
const REVOCATION_LOCK: &str = "SELECT CAST(pg_advisory_xact_lock(";

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

/// R1 rotated to R2, issuing the JWT j-2.
async fn rotate_r1(store: &Store) -> RefreshOutcome {
    store
        .rotate_refresh(&presented("R1", NOW + 1), &issue("R2", jwt("j-2")))
        .await
        .unwrap()
}

/// Alice logged out everywhere.
async fn logout_alice(store: &Store) -> u64 {
    store
        .revoke_all(&RevokeAll {
            party: Party::Subject,
            target: "alice",
            not_before: at(NOW + 3),
            expires_at: at(NOW + 4000),
            actor: "admin",
            now: at(NOW + 2),
        })
        .await
        .unwrap()
        .families
}

/// Whether the JWT `jti` of the family is on the deny-list by its jti
/// (asked with another subject and client, so no rule covers it).
async fn listed(store: &Store, jti: &str) -> bool {
    store
        .is_refused(TokenFacts {
            jti: Some(jti),
            sub: Some("bob"),
            client_id: Some("other"),
            iat: Some(NOW + 5),
            kid: None,
        })
        .await
        .unwrap()
}

/// After a rotation R1 -> R2 (issuing j-2) and then alice's logout: the
/// successor is revoked with its family, and both JWTs are listed.
async fn assert_rotation_then_logout(
    store: &Store,
    name: &str,
    rotated: &RefreshOutcome,
    families: u64,
) {
    assert!(
        matches!(rotated, RefreshOutcome::Rotated(_)),
        "{name}: {rotated:?}"
    );
    assert_eq!(families, 1, "{name}");
    let next = store
        .rotate_refresh(&presented("R2", NOW + 10), &issue("R3", jwt("j-3")))
        .await
        .unwrap();
    assert!(
        matches!(next, RefreshOutcome::Revoked),
        "{name}: the successor outlived its subject's logout: {next:?}"
    );
    assert!(listed(store, "j-1").await, "{name}: j-1");
    assert!(
        listed(store, "j-2").await,
        "{name}: the JWT of the rotation the logout came after"
    );
    assert!(
        !listed(store, "j-3").await,
        "{name}: never issued, never listed"
    );
}

/// The rotation commits first; the logout then finds its successor.
#[tokio::test]
async fn logout_everywhere_after_a_refresh_revokes_its_successor() {
    for b in backends().await {
        let store = Store::connect(&url(&b)).await.unwrap();
        start_alices_family(&store, jwt("j-1")).await;
        let rotated = rotate_r1(&store).await;
        let families = logout_alice(&store).await;
        assert_rotation_then_logout(&store, b.name, &rotated, families).await;
        store.close().await;
    }
}

/// The logout commits first; the rotation then finds its family revoked
/// and issues nothing.
#[tokio::test]
async fn a_refresh_after_logout_everywhere_issues_nothing() {
    for b in backends().await {
        let store = Store::connect(&url(&b)).await.unwrap();
        start_alices_family(&store, jwt("j-1")).await;
        assert_eq!(logout_alice(&store).await, 1, "{}", b.name);
        let rotated = rotate_r1(&store).await;
        assert!(
            matches!(rotated, RefreshOutcome::Revoked),
            "{}: {rotated:?}",
            b.name
        );
        assert!(
            store.refresh_token("R2").await.unwrap().is_none(),
            "{}",
            b.name
        );
        assert!(listed(&store, "j-1").await, "{}", b.name);
        assert!(!listed(&store, "j-2").await, "{}: never issued", b.name);
        store.close().await;
    }
}

/// PostgreSQL: the logout starts while the rotation is under way (stopped
/// at inserting its successor R2, with R1 spent and the revocation lock
/// held shared); it waits for the rotation, then revokes the successor
/// the rotation committed.
#[tokio::test]
async fn logout_everywhere_during_a_refresh_leaves_no_live_successor() {
    for b in backends().await {
        if b.url.is_none() {
            continue; // SQLite: the two orders above are all there are.
        }
        let rotating = Side::connect(&b, "rotation").await;
        let revoking = Side::connect(&b, "logout").await;
        start_alices_family(&rotating.store, jwt("j-1")).await;
        let hold = blocker(
            &b,
            "INSERT INTO refresh_tokens (token_hash, family, client_id, subject, scope, audience, claims, created_at, expires_at, idle_until) VALUES ('R2', 'x', 'x', 'x', '', '', '', 0, 0, 0)",
        )
        .await;
        let s = Arc::clone(&rotating.store);
        let rotation = tokio::spawn(async move { rotate_r1(&s).await });
        rotating.waits_in(&b, "INSERT INTO refresh_tokens").await;
        let s = Arc::clone(&revoking.store);
        let logout = tokio::spawn(async move { logout_alice(&s).await });
        revoking.waits_in(&b, REVOCATION_LOCK).await;
        hold.rollback().await.unwrap();
        let rotated = rotation.await.unwrap();
        let families = logout.await.unwrap();
        assert_rotation_then_logout(&rotating.store, b.name, &rotated, families).await;
        rotating.store.close().await;
        revoking.store.close().await;
    }
}

/// An opaque token of app (hash H, jti o-1).
async fn insert_parent(store: &Store) -> Map<String, Value> {
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
    parent
}

/// Records d-1, a JWT exchanged from the opaque token H.
async fn record_d1(store: &Store, parent: &Map<String, Value>) -> bool {
    let derived = Derived {
        jti: "d-1",
        expires_at: at(NOW + 960),
        parent: "tso:H".into(),
        parent_client: "app",
        parent_kid: None,
    };
    store
        .record_derived(&derived, TokenFacts::from_claims(parent))
        .await
        .unwrap()
}

/// Revokes the opaque token H as its client.
async fn revoke_h(store: &Store) -> Option<bool> {
    store.delete_opaque("H", "app", at(NOW + 1)).await.unwrap()
}

/// Whether d-1 is refused (asked as the gateway's token of bob, so only
/// its jti can refuse it).
async fn d1_refused(store: &Store) -> bool {
    store
        .is_refused(TokenFacts {
            jti: Some("d-1"),
            sub: Some("bob"),
            client_id: Some("gateway"),
            iat: Some(NOW + 2),
            kid: None,
        })
        .await
        .unwrap()
}

/// The exchange records its JWT first; the revocation then lists it.
#[tokio::test]
async fn revoking_an_opaque_token_after_its_exchange_lists_the_new_jwt() {
    for b in backends().await {
        let store = Store::connect(&url(&b)).await.unwrap();
        let parent = insert_parent(&store).await;
        assert!(record_d1(&store, &parent).await, "{}", b.name);
        assert_eq!(revoke_h(&store).await, Some(true), "{}", b.name);
        assert!(d1_refused(&store).await, "{}: d-1 listed", b.name);
        store.close().await;
    }
}

/// The revocation commits first; the exchange then finds its subject token
/// gone and records nothing (the exchange is refused).
#[tokio::test]
async fn an_exchange_after_its_opaque_token_is_revoked_is_refused() {
    for b in backends().await {
        let store = Store::connect(&url(&b)).await.unwrap();
        let parent = insert_parent(&store).await;
        assert_eq!(revoke_h(&store).await, Some(true), "{}", b.name);
        assert!(!record_d1(&store, &parent).await, "{}: recorded", b.name);
        assert!(!d1_refused(&store).await, "{}: never issued", b.name);
        store.close().await;
    }
}

/// PostgreSQL: the revocation starts while the exchange is under way
/// (past its checks, stopped at recording its JWT, holding the opaque
/// token and the revocation lock shared); it waits, then lists the JWT
/// the exchange recorded.
#[tokio::test]
async fn revoking_an_opaque_token_during_its_exchange_lists_the_new_jwt() {
    for b in backends().await {
        if b.url.is_none() {
            continue; // SQLite: the two orders above are all there are.
        }
        let exchanging = Side::connect(&b, "exchange").await;
        let revoking = Side::connect(&b, "revoke").await;
        let parent = insert_parent(&exchanging.store).await;
        let hold = blocker(
            &b,
            "INSERT INTO derived_tokens (jti, parent, parent_client, parent_kid, expires_at) VALUES ('d-1', 'tso:H', 'x', NULL, 0)",
        )
        .await;
        let s = Arc::clone(&exchanging.store);
        let exchange = tokio::spawn(async move { record_d1(&s, &parent).await });
        exchanging.waits_in(&b, "INSERT INTO derived_tokens").await;
        let s = Arc::clone(&revoking.store);
        let revoke = tokio::spawn(async move { revoke_h(&s).await });
        revoking.waits_in(&b, REVOCATION_LOCK).await;
        hold.rollback().await.unwrap();
        assert!(
            exchange.await.unwrap(),
            "{}: the exchange went first",
            b.name
        );
        assert_eq!(revoke.await.unwrap(), Some(true), "{}", b.name);
        assert!(
            d1_refused(&exchanging.store).await,
            "{}: a JWT exchanged from the revoked opaque token was recorded but not listed",
            b.name
        );
        exchanging.store.close().await;
        revoking.store.close().await;
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
