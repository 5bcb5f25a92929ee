//! Fresh databases for the store's own tests: a SQLite file in a temporary
//! folder always, and a PostgreSQL schema of its own when
//! `TESSERA_TEST_DATABASE_URL` is set, as `tessera_testkit::backends` does
//! (the testkit depends on this crate, so its unit tests cannot use it).
//! Schemas are named `tt_<created, Unix seconds>_<pid>_<random>_<n>` like
//! the testkit's, so one left behind by a test that was killed is dropped
//! by a later run of the testkit a day later, and never one of a run beside
//! it, on this host or another.

use std::sync::atomic::{AtomicU64, Ordering};

use tessera_jose::UnixTime;

use super::Store;

/// A second in 2026: what tests count from.
pub(super) const T: UnixTime = UnixTime::from_secs(1_767_225_600);

/// `T` plus `secs` seconds.
pub(super) fn at(secs: i64) -> UnixTime {
    UnixTime::from_secs(T.secs() + secs)
}

/// A token of `sub` at `client`, issued at `at(iat)`, with this jti.
pub(super) fn token<'a>(
    jti: &'a str,
    sub: &'a str,
    client_id: &'a str,
    iat: i64,
) -> super::TokenFacts<'a> {
    super::TokenFacts {
        jti: Some(jti),
        sub: Some(sub),
        client_id: Some(client_id),
        iat: Some(at(iat).secs()),
        kid: None,
    }
}

/// Revoking everything of `party`'s `target` issued from `not_before`, at
/// `now`, as the admin.
pub(super) fn everything(
    party: super::Party,
    target: &str,
    not_before: i64,
    now: i64,
) -> super::RevokeAll<'_> {
    super::RevokeAll {
        party,
        target,
        not_before: at(not_before),
        expires_at: at(5000),
        actor: "admin",
        now: at(now),
    }
}

/// One fresh, migrated database.
pub(super) struct TestDb {
    /// `sqlite` or `postgres`, for assertion messages.
    pub(super) name: &'static str,
    /// The store on it.
    pub(super) store: Store,
    /// The SQLite file's folder, removed on drop.
    _dir: Option<tempfile::TempDir>,
    /// The base URL and the schema to drop, on PostgreSQL.
    schema: Option<(String, String)>,
}

/// A fresh database on every backend there is.
pub(super) async fn each() -> Vec<TestDb> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let mut out = vec![TestDb {
        name: "sqlite",
        store: Store::connect(&url).await.expect("SQLite opens"),
        _dir: Some(dir),
        schema: None,
    }];
    if let Ok(base) = std::env::var("TESSERA_TEST_DATABASE_URL") {
        let schema = schema_name();
        let pool = sqlx::PgPool::connect(&base)
            .await
            .expect("TESSERA_TEST_DATABASE_URL unreachable");
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&pool)
            .await
            .expect("a test schema");
        pool.close().await;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
        out.push(TestDb {
            name: "postgres",
            store: Store::connect(&url).await.expect("PostgreSQL opens"),
            _dir: None,
            schema: Some((base, schema)),
        });
    }
    out
}

impl TestDb {
    /// Runs `sql` as it is: to write what the store never would (a corrupt
    /// row), or to look at what it wrote.
    pub(super) async fn execute(&self, sql: &str) -> u64 {
        sqlx::query(sql)
            .execute(&self.store.pool)
            .await
            .unwrap_or_else(|e| panic!("{}: {sql}: {e}", self.name))
            .rows_affected()
    }

    /// How many rows `sql` (a `SELECT COUNT(*) ...`) counts.
    pub(super) async fn count(&self, sql: &str) -> i64 {
        use sqlx::Row as _;
        sqlx::query(sql)
            .fetch_one(&self.store.pool)
            .await
            .and_then(|r| r.try_get(0))
            .unwrap_or_else(|e| panic!("{}: {sql}: {e}", self.name))
    }

    /// Closes the pool and drops the PostgreSQL schema.
    pub(super) async fn finish(self) {
        self.store.close().await;
        if let Some((base, schema)) = self.schema {
            if let Ok(pool) = sqlx::PgPool::connect(&base).await {
                let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&pool)
                    .await;
                pool.close().await;
            }
        }
    }
}

/// A new schema name, unique within the process (a counter) and across
/// processes and hosts (the pid and a random part), with its creation time
/// (see the module's documentation).
fn schema_name() -> String {
    use std::hash::BuildHasher as _;
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let now = UnixTime::now().secs();
    // RandomState is seeded per process from the OS's randomness.
    let random = std::collections::hash_map::RandomState::new().hash_one((n, now)) & 0xffff_ffff;
    format!("tt_{now}_{}_{random:08x}_{n}", std::process::id())
}
