//! The databases a test runs against: SQLite always, PostgreSQL when
//! `TESSERA_TEST_DATABASE_URL` is set, each fresh per call.

use crate::TcpProxy;

/// One fresh database and the data folder of the servers started on it.
#[derive(Debug)]
pub struct Backend {
    /// `"sqlite"` or `"postgres"`, for messages.
    pub name: &'static str,
    /// None: the default SQLite file in the data folder.
    pub url: Option<String>,
    /// The data folder (kept until the backend is dropped).
    pub data: tempfile::TempDir,
    /// The PostgreSQL schema this backend made, dropped with it (held
    /// for its `Drop` only).
    _schema: Option<OwnedSchema>,
}

impl Backend {
    /// A new SQLite data folder.
    pub fn sqlite() -> Self {
        Self {
            name: "sqlite",
            url: None,
            data: tempfile::tempdir().unwrap(),
            _schema: None,
        }
    }

    /// The URL an outside connection (sqlx `Any`) reaches this database at.
    pub fn any_url(&self) -> String {
        self.url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rw",
                self.data.path().join("tessera.db").display()
            )
        })
    }

    /// This PostgreSQL backend's database (its schema) as reached through
    /// a new [`TcpProxy`] to its server, with a data folder of its own:
    /// servers started on it lose the database when the proxy is cut.
    pub async fn behind_proxy(&self) -> (Self, TcpProxy) {
        let url = self.url.as_deref().expect("a PostgreSQL backend");
        let mut url = reqwest::Url::parse(url).unwrap();
        let host = url.host_str().unwrap().to_owned();
        let port = url.port().unwrap_or(5432);
        let upstream = tokio::net::lookup_host((host.as_str(), port))
            .await
            .unwrap()
            .find(std::net::SocketAddr::is_ipv4)
            .expect("an IPv4 address for the database host");
        let proxy = TcpProxy::start(upstream).await;
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(proxy.addr().port())).unwrap();
        let backend = Self {
            name: self.name,
            url: Some(url.into()),
            data: tempfile::tempdir().unwrap(),
            // The schema stays `self`'s: dropped with it, not with this view.
            _schema: None,
        };
        (backend, proxy)
    }
}

/// A fresh database per call: a new SQLite folder, or a new PostgreSQL schema.
pub async fn backends() -> Vec<Backend> {
    let mut out = vec![Backend::sqlite()];
    if let Ok(base) = std::env::var("TESSERA_TEST_DATABASE_URL") {
        let now = unix_now();
        let schema = schema_name(now);
        let pool = sqlx::PgPool::connect(&base)
            .await
            .expect("TESSERA_TEST_DATABASE_URL unreachable");
        drop_abandoned_schemas(&pool, now).await;
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        out.push(Backend {
            name: "postgres",
            url: Some(with_search_path(&base, &schema)),
            data: tempfile::tempdir().unwrap(),
            _schema: Some(OwnedSchema { base, name: schema }),
        });
    } else {
        say_postgres_is_skipped();
    }
    out
}

/// Without a URL the same test names pass on SQLite alone; a green run must
/// not read as "tested on PostgreSQL". Said once per test process, straight
/// to stderr: libtest captures `eprintln!` of passing tests, not this.
fn say_postgres_is_skipped() {
    use std::io::Write;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "tessera-testkit: PostgreSQL skipped, TESSERA_TEST_DATABASE_URL is unset: \
             these tests ran on SQLite only (scripts/postgres gives a URL)"
        );
    });
}

/// `base` with the connection option that makes `schema` the default.
fn with_search_path(base: &str, schema: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

/// How test schemas are named: `tt_<created, Unix seconds>_<pid>_<random>_<n>`.
/// The random part tells apart runs on other hosts (or in other containers)
/// that share the database, where a pid says nothing; the creation time is
/// what lets a later run tell an abandoned schema from a live one. The
/// store's own tests (`tessera-server`'s `store::testdb`) name theirs the
/// same way.
const PREFIX: &str = "tt_";

/// A schema left behind this long ago (by a test process that was killed
/// before it could drop it) is abandoned: no test run lasts a day, so
/// dropping it cannot pull a schema from under a run beside this one,
/// whatever host that runs on.
const ABANDONED_AFTER: i64 = 24 * 3600;

/// A new, unique schema name created at `now`.
fn schema_name(now: i64) -> String {
    use std::hash::BuildHasher as _;
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    // RandomState is seeded per process from the OS's randomness.
    let random = std::collections::hash_map::RandomState::new().hash_one((n, now)) & 0xffff_ffff;
    format!("{PREFIX}{now}_{}_{random:08x}_{n}", std::process::id())
}

fn unix_now() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    i64::try_from(secs).unwrap()
}

/// Drops test schemas abandoned by earlier runs ([`ABANDONED_AFTER`]), so
/// the shared test database does not grow run after run. Schemas of runs
/// beside this one, on this host or another, are younger and stay.
async fn drop_abandoned_schemas(pool: &sqlx::PgPool, now: i64) {
    let names: Vec<(String,)> = sqlx::query_as(
        "SELECT schema_name::text FROM information_schema.schemata WHERE schema_name LIKE 'tt\\_%'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (name,) in names {
        if is_abandoned(&name, now) {
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                .execute(pool)
                .await;
        }
    }
}

/// Whether the test schema `name` was created more than
/// [`ABANDONED_AFTER`] before `now` and is a plain identifier (it is pasted
/// into SQL). A name this module did not make is never abandoned.
fn is_abandoned(name: &str, now: i64) -> bool {
    let created = name
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split('_').next())
        .and_then(|secs| secs.parse::<i64>().ok());
    created.is_some_and(|created| now.saturating_sub(created) > ABANDONED_AFTER)
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A schema that [`backends`] made: dropped when its [`Backend`] is, so a
/// run leaves nothing behind unless its process is killed.
#[derive(Debug)]
struct OwnedSchema {
    base: String,
    name: String,
}

impl Drop for OwnedSchema {
    /// On a thread of its own with a runtime of its own: a `Backend` is
    /// dropped inside a test's runtime, which cannot be blocked on. A
    /// schema that cannot be dropped in time (the database gone, a lock
    /// held by a server still running) is left to [`drop_abandoned_schemas`].
    fn drop(&mut self) {
        let base = std::mem::take(&mut self.base);
        let name = std::mem::take(&mut self.name);
        let dropping = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let dropped = async {
                    let pool = sqlx::PgPool::connect(&base).await.ok()?;
                    sqlx::query("SET lock_timeout = '5s'")
                        .execute(&pool)
                        .await
                        .ok()?;
                    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                        .execute(&pool)
                        .await;
                    pool.close().await;
                    Some(())
                };
                let _ = tokio::time::timeout(std::time::Duration::from_secs(15), dropped).await;
            });
        });
        let _ = dropping.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn schemas_of_runs_beside_this_one_stay() {
        // Created a second ago, or a few hours ago by a long run, on any
        // host: whatever the pid says.
        assert!(!is_abandoned(&format!("tt_{}_7_0a0b0c0d_0", NOW - 1), NOW));
        assert!(!is_abandoned(
            &format!("tt_{}_1_ffffffff_9", NOW - 6 * 3600),
            NOW
        ));
        assert!(!is_abandoned(&schema_name(NOW), NOW));
    }

    #[test]
    fn schemas_older_than_a_day_go() {
        let old = NOW - ABANDONED_AFTER - 1;
        assert!(is_abandoned(&format!("tt_{old}_7_0a0b0c0d_0"), NOW));
        assert!(!is_abandoned(
            &format!("tt_{}_7_0a0b0c0d_0", NOW - ABANDONED_AFTER),
            NOW
        ));
    }

    #[test]
    fn names_this_module_did_not_make_stay() {
        let old = NOW - 10 * ABANDONED_AFTER;
        // Another naming (the old `t_<pid>_...`), or no creation time.
        assert!(!is_abandoned(&format!("t_{old}_1_0"), NOW));
        assert!(!is_abandoned("tt_x_1", NOW));
        assert!(!is_abandoned("tt_", NOW));
        // Not a plain identifier.
        assert!(!is_abandoned(&format!("tt_{old}_7; DROP"), NOW));
        assert!(!is_abandoned(&format!("tt_{old}_7-1"), NOW));
    }

    #[test]
    fn search_path_is_appended_as_an_option() {
        assert_eq!(
            with_search_path("postgres://h/db", "t_1"),
            "postgres://h/db?options=-c%20search_path%3Dt_1"
        );
        assert_eq!(
            with_search_path("postgres://h/db?sslmode=disable", "t_1"),
            "postgres://h/db?sslmode=disable&options=-c%20search_path%3Dt_1"
        );
    }

    #[test]
    fn names_are_distinct_and_carry_their_creation_time() {
        let (a, b) = (schema_name(NOW), schema_name(NOW));
        assert_ne!(a, b);
        assert!(
            a.starts_with(&format!("tt_{NOW}_{}_", std::process::id())),
            "{a}"
        );
        assert!(
            a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "{a}"
        );
    }

    #[test]
    fn sqlite_url_points_into_the_data_folder() {
        let b = Backend::sqlite();
        assert!(b.any_url().starts_with("sqlite://"));
        assert!(b.any_url().contains(&*b.data.path().to_string_lossy()));
    }
}
