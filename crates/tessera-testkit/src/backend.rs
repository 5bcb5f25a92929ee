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
}

impl Backend {
    /// A new SQLite data folder.
    pub fn sqlite() -> Self {
        Self {
            name: "sqlite",
            url: None,
            data: tempfile::tempdir().unwrap(),
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
        };
        (backend, proxy)
    }
}

/// A fresh database per call: a new SQLite folder, or a new PostgreSQL schema.
pub async fn backends() -> Vec<Backend> {
    let mut out = vec![Backend::sqlite()];
    if let Ok(base) = std::env::var("TESSERA_TEST_DATABASE_URL") {
        let schema = format!("t_{}", random_suffix());
        let pool = sqlx::PgPool::connect(&base)
            .await
            .expect("TESSERA_TEST_DATABASE_URL unreachable");
        drop_stale_schemas(&pool).await;
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        out.push(Backend {
            name: "postgres",
            url: Some(with_search_path(&base, &schema)),
            data: tempfile::tempdir().unwrap(),
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

/// Schemas left by earlier test processes (named t_<pid>_...) are dropped,
/// so the shared test database does not grow run after run. A schema whose
/// process is still running belongs to a test run beside this one and stays.
async fn drop_stale_schemas(pool: &sqlx::PgPool) {
    let names: Vec<(String,)> = sqlx::query_as(
        "SELECT schema_name::text FROM information_schema.schemata WHERE schema_name LIKE 't\\_%'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (name,) in names {
        if is_stale(&name, std::process::id(), |pid| {
            std::path::Path::new(&format!("/proc/{pid}")).exists()
        }) {
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                .execute(pool)
                .await;
        }
    }
}

/// Whether the test schema `name` may be dropped by process `me`: not its
/// own, its owner no longer running, and a plain identifier (it is pasted
/// into SQL).
fn is_stale(name: &str, me: u32, alive: impl Fn(u32) -> bool) -> bool {
    let owner_alive = name
        .split('_')
        .nth(1)
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(alive);
    !name.starts_with(&format!("t_{me}_"))
        && !owner_alive
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn random_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{}_{}_{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::SeqCst)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_and_live_schemas_stay() {
        assert!(!is_stale("t_42_1_0", 42, |_| false));
        assert!(!is_stale("t_7_1_0", 42, |pid| pid == 7));
    }

    #[test]
    fn dead_owners_schemas_go() {
        assert!(is_stale("t_7_1_0", 42, |_| false));
        // A name without a pid has no live owner.
        assert!(is_stale("t_x", 42, |_| true));
        // The pid of another process that starts with ours is not ours.
        assert!(is_stale("t_421_1_0", 42, |_| false));
    }

    #[test]
    fn names_that_are_not_plain_identifiers_stay() {
        assert!(!is_stale("t_7; DROP", 42, |_| false));
        assert!(!is_stale("t_7-1", 42, |_| false));
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
    fn suffixes_are_distinct_and_carry_the_pid() {
        let (a, b) = (random_suffix(), random_suffix());
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("{}_", std::process::id())));
    }

    #[test]
    fn sqlite_url_points_into_the_data_folder() {
        let b = Backend::sqlite();
        assert!(b.any_url().starts_with("sqlite://"));
        assert!(b.any_url().contains(&*b.data.path().to_string_lossy()));
    }
}
