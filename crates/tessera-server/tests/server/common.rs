//! Shared set-up: every test body runs once per backend (SQLite always,
//! PostgreSQL when TESSERA_TEST_DATABASE_URL is set), against a real server
//! on an ephemeral port with an injected clock.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tessera_jose::{JwkSet, KeySet, UnixTime, Validation};
use tessera_server::{Config, ManualClock, Overrides, Running, StartOptions};

pub(crate) const ISSUER: &str = "https://auth.tessera.test";
/// The setting that gives a test server a metrics listener (`/metrics` is
/// never on the public port); read it with [`TestServer::metrics`].
pub(crate) const METRICS: (&str, &str) = ("TESSERA_SERVER_METRICS_LISTEN", "127.0.0.1:0");
/// 2026-01-01T00:00:00Z.
pub(crate) const T0: i64 = 1_767_225_600;

pub(crate) struct Backend {
    pub(crate) name: &'static str,
    /// None: the default SQLite file in the data folder.
    pub(crate) url: Option<String>,
    pub(crate) data: tempfile::TempDir,
}

/// A fresh database per call: a new SQLite folder, or a new PostgreSQL schema.
pub(crate) async fn backends() -> Vec<Backend> {
    let mut out = vec![Backend {
        name: "sqlite",
        url: None,
        data: tempfile::tempdir().unwrap(),
    }];
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
        let sep = if base.contains('?') { '&' } else { '?' };
        out.push(Backend {
            name: "postgres",
            url: Some(format!("{base}{sep}options=-c%20search_path%3D{schema}")),
            data: tempfile::tempdir().unwrap(),
        });
    }
    out
}

/// Schemas left by earlier test processes (named t_<pid>_...) are dropped,
/// so the shared test database does not grow run after run. A schema whose
/// process is still running belongs to a test run beside this one and stays.
async fn drop_stale_schemas(pool: &sqlx::PgPool) {
    let mine = format!("t_{}_", std::process::id());
    let names: Vec<(String,)> = sqlx::query_as(
        "SELECT schema_name::text FROM information_schema.schemata WHERE schema_name LIKE 't\\_%'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (name,) in names {
        let owner_alive = name
            .split('_')
            .nth(1)
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !name.starts_with(&mine)
            && !owner_alive
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                .execute(pool)
                .await;
        }
    }
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

pub(crate) fn config(backend: &Backend, env: &[(&str, &str)]) -> Config {
    config_file(backend, env, None)
}

pub(crate) fn config_file(
    backend: &Backend,
    env: &[(&str, &str)],
    file: Option<&std::path::Path>,
) -> Config {
    let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
    Config::load(
        file,
        env,
        &Overrides {
            data: Some(backend.data.path().to_path_buf()),
            listen: Some("127.0.0.1:0".into()),
            issuer: Some(ISSUER.into()),
            database_url: backend.url.clone(),
        },
    )
    .unwrap()
}

pub(crate) struct TestServer {
    pub(crate) running: Running,
    pub(crate) clock: ManualClock,
    pub(crate) base: String,
    pub(crate) admin: String,
    pub(crate) http: reqwest::Client,
    /// A client registered with `revocations:read` on first use: what a
    /// gateway or resource server reads the deny-list feed as.
    follower: tokio::sync::OnceCell<(String, String)>,
}

impl TestServer {
    pub(crate) async fn start(backend: &Backend, env: &[(&str, &str)]) -> Self {
        Self::start_at(backend, env, ManualClock::new(T0)).await
    }

    pub(crate) async fn start_at(
        backend: &Backend,
        env: &[(&str, &str)],
        clock: ManualClock,
    ) -> Self {
        Self::start_with(backend, config(backend, env), clock).await
    }

    pub(crate) async fn start_with(backend: &Backend, config: Config, clock: ManualClock) -> Self {
        let admin_file = config.admin_token_file.clone();
        let running = tessera_server::start(
            config,
            StartOptions {
                clock: Arc::new(clock.clone()),
                background: false,
                handle_signals: false,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{}: start: {e}", backend.name));
        let admin = std::fs::read_to_string(&admin_file)
            .unwrap()
            .trim()
            .to_owned();
        Self {
            base: format!("http://{}", running.addr),
            running,
            clock,
            admin,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            follower: tokio::sync::OnceCell::new(),
        }
    }

    /// The credentials of a client that may read the deny-list feed.
    pub(crate) async fn follower(&self) -> &(String, String) {
        self.follower
            .get_or_init(|| async {
                self.basic_client(
                    json!({"client_name": "follower", "permissions": ["revocations:read"]}),
                )
                .await
            })
            .await
    }

    pub(crate) fn now(&self) -> i64 {
        tessera_server::Clock::now(&self.clock)
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The Prometheus text from the metrics listener (start with [`METRICS`]).
    pub(crate) async fn metrics(&self) -> String {
        let addr = self
            .running
            .metrics_addr
            .expect("started with METRICS: /metrics is not on the public port");
        self.http
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Moves the clock and lets the node do what is due.
    pub(crate) async fn advance(&self, by: Duration) {
        self.clock.advance(by);
        self.running.state.refresh().await.unwrap();
    }

    pub(crate) async fn admin_post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// `DELETE /admin/clients/{id}` with the admin token.
    pub(crate) async fn delete_client(&self, id: &str) -> reqwest::Response {
        self.http
            .delete(self.url(&format!("/admin/clients/{id}")))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn register(&self, body: Value) -> Value {
        let resp = self.admin_post("/admin/clients", body).await;
        assert_eq!(resp.status(), 201);
        resp.json().await.unwrap()
    }

    /// A client_secret_basic client; returns (id, secret).
    pub(crate) async fn basic_client(&self, extra: Value) -> (String, String) {
        let mut body = json!({"client_name": "svc"});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let c = self.register(body).await;
        (
            c["client_id"].as_str().unwrap().to_owned(),
            c["client_secret"].as_str().unwrap().to_owned(),
        )
    }

    pub(crate) async fn token_basic(
        &self,
        id: &str,
        secret: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.http
            .post(self.url("/token"))
            .basic_auth(id, Some(secret))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// An access token for a client (asserts success).
    pub(crate) async fn token(&self, id: &str, secret: &str) -> String {
        let resp = self
            .token_basic(id, secret, &[("grant_type", "client_credentials")])
            .await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// The JWKS as a verifier would fetch it.
    pub(crate) async fn jwks(&self) -> KeySet {
        let text = self
            .http
            .get(self.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        KeySet::from_jwks(&JwkSet::parse(&text).unwrap(), &[]).unwrap()
    }

    pub(crate) async fn stop(self) {
        self.running.stop().await.unwrap();
    }
}

/// Verifies an access token as a resource server would.
pub(crate) fn verify(
    token: &str,
    keys: &KeySet,
    aud: &str,
    now: i64,
) -> Result<Value, tessera_jose::Error> {
    let validation = Validation::new().issuer(ISSUER).audience(aud).typ("at+jwt");
    tessera_jose::verify_at::<Value>(token, keys, &validation, UnixTime::from_secs(now))
        .map(|v| v.claims)
}

/// The one number `sql` (with `$1` bound to `arg`) counts in the database
/// of the servers started on `backend`: what no endpoint shows.
pub(crate) async fn count_rows(backend: &Backend, sql: &str, arg: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let url = backend.url.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}?mode=rw",
            backend.data.path().join("tessera.db").display()
        )
    });
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar(sql)
        .bind(arg)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

/// Error code and body of a failed response.
pub(crate) async fn oauth_error(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}
