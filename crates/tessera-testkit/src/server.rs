//! [`TestServer`]: a real, in-process authority on a free loopback port and
//! a [`Backend`], in one of two flavours:
//!
//! - [`TestServer::start`] (and `start_at`, `start_with`): the fixed
//!   [`ISSUER`] and a manual clock, so the server's own tests decide when
//!   keys rotate and tokens expire;
//! - [`TestServer::start_live`]: the system clock and its base URL as
//!   issuer, as a deployment runs, for the verifier and gateway tests: they
//!   check its tokens against the real time and find it by that URL.
//!
//! Both have the same helpers for the admin API, tokens, the JWKS, the
//! metrics listener and files in the data folder.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tessera_jose::{JwkSet, KeySet, UnixTime, Validation};
use tessera_server::{Clock, Config, ManualClock, Overrides, Running, StartOptions, SystemClock};

use crate::Backend;

/// The issuer of a [`TestServer`] with a manual clock.
pub const ISSUER: &str = "https://auth.tessera.test";
/// The setting that gives a test server a metrics listener (`/metrics` is
/// never on the public port); read it with [`TestServer::metrics`].
pub const METRICS: (&str, &str) = ("TESSERA_SERVER_METRICS_LISTEN", "127.0.0.1:0");
/// 2026-01-01T00:00:00Z.
pub const T0: i64 = 1_767_225_600;

/// The settings of a server on `backend` with the `env` settings.
pub fn config(backend: &Backend, env: &[(&str, &str)]) -> Config {
    config_file(backend, env, None)
}

/// The settings of a server on `backend` with the `env` settings and an
/// optional settings file.
pub fn config_file(backend: &Backend, env: &[(&str, &str)], file: Option<&Path>) -> Config {
    load(backend, env, file, Some(ISSUER))
}

/// Loads settings for a server on `backend` on a free loopback port;
/// `issuer` None: the default (the base URL).
fn load(
    backend: &Backend,
    env: &[(&str, &str)],
    file: Option<&Path>,
    issuer: Option<&str>,
) -> Config {
    let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
    Config::load(
        file,
        env,
        &Overrides {
            data: Some(backend.data.path().to_path_buf()),
            listen: Some("127.0.0.1:0".into()),
            issuer: issuer.map(str::to_owned),
            database_url: backend.url.clone(),
        },
    )
    .unwrap()
}

/// The clock a [`TestServer`] runs on.
#[derive(Debug, Clone)]
enum TestClock {
    /// Moves only by [`TestServer::advance`].
    Manual(ManualClock),
    /// The real time: a verifier or gateway beside the server checks `exp`
    /// and `iat` against it, not against the server's clock.
    System,
}

impl TestClock {
    fn shared(&self) -> Arc<dyn Clock> {
        match self {
            Self::Manual(clock) => Arc::new(clock.clone()),
            Self::System => Arc::new(SystemClock),
        }
    }
}

/// A running authority (see the module documentation for its flavours).
pub struct TestServer {
    /// The server (its state, and `stop`).
    pub running: Running,
    /// Its issuer: [`ISSUER`] (or the one of the settings given to
    /// [`TestServer::start_with`]), or its base URL when started with
    /// [`TestServer::start_live`].
    pub issuer: String,
    /// The admin token.
    pub admin: String,
    /// An HTTP client for the test's requests.
    pub http: reqwest::Client,
    /// Its base URL (`http://127.0.0.1:PORT`).
    base: String,
    clock: TestClock,
    /// The backend's data folder: it outlives the server.
    data: PathBuf,
    /// The `quickstart` client this start registered: none when the data
    /// already had one (a second server on the same backend).
    quickstart: Option<(String, String)>,
    /// A client registered with `revocations:read` on first use: what a
    /// gateway or resource server reads the deny-list feed as.
    follower: tokio::sync::OnceCell<(String, String)>,
}

/// Without the admin token and the client secrets.
impl fmt::Debug for TestServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestServer")
            .field("issuer", &self.issuer)
            .field("base", &self.base)
            .field("clock", &self.clock)
            .field("data", &self.data)
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// Starts one on `backend` with the `env` settings, the clock at [`T0`].
    pub async fn start(backend: &Backend, env: &[(&str, &str)]) -> Self {
        Self::start_at(backend, env, ManualClock::new(T0)).await
    }

    /// Starts one on `backend` with the `env` settings and `clock`.
    pub async fn start_at(backend: &Backend, env: &[(&str, &str)], clock: ManualClock) -> Self {
        Self::start_with(backend, config(backend, env), clock).await
    }

    /// Starts one on `backend` with `config` (from [`config`] or
    /// [`config_file`]) and `clock`.
    pub async fn start_with(backend: &Backend, config: Config, clock: ManualClock) -> Self {
        let issuer = config.issuer.clone();
        Self::launch(
            backend,
            config,
            Some(issuer),
            TestClock::Manual(clock),
            false,
        )
        .await
    }

    /// Starts one on `backend` with the `env` settings, the clock at [`T0`],
    /// that also listens for the key changes other nodes commit (on
    /// PostgreSQL) and reloads its keys when it hears one.
    pub async fn start_listening(backend: &Backend, env: &[(&str, &str)]) -> Self {
        let config = config(backend, env);
        let issuer = config.issuer.clone();
        let clock = TestClock::Manual(ManualClock::new(T0));
        Self::launch(backend, config, Some(issuer), clock, true).await
    }

    /// Starts one on `backend` as a deployment runs: the system clock, its
    /// base URL as issuer (and default audience), default settings.
    pub async fn start_live(backend: &Backend) -> Self {
        let config = load(backend, &[], None, None);
        Self::launch(backend, config, None, TestClock::System, false).await
    }

    /// Starts a server without background tasks or signal handling (tests
    /// move the clock with [`TestServer::advance`]; keys changed through
    /// the admin API are reloaded at once), listening for other nodes' key
    /// changes only with `listen`; `issuer` None: the base URL, which the
    /// server derives once its port is bound. A start failure panics with
    /// the backend's name.
    async fn launch(
        backend: &Backend,
        config: Config,
        issuer: Option<String>,
        clock: TestClock,
        listen: bool,
    ) -> Self {
        let admin_file = config.admin_token_file.clone();
        let options = StartOptions {
            clock: clock.shared(),
            background: false,
            key_notifications: listen,
            handle_signals: false,
        };
        let running = tessera_server::start(config, options)
            .await
            .unwrap_or_else(|e| panic!("{}: start: {e}", backend.name));
        let base = format!("http://{}", running.addr);
        let quickstart = running.quickstart_credentials.as_deref().map(|file| {
            let text = std::fs::read_to_string(file).unwrap();
            let (id, secret) = text.trim().split_once(':').unwrap();
            (id.to_owned(), secret.to_owned())
        });
        Self {
            issuer: issuer.unwrap_or_else(|| base.clone()),
            admin: std::fs::read_to_string(admin_file)
                .unwrap()
                .trim()
                .to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            running,
            base,
            clock,
            data: backend.data.path().to_path_buf(),
            quickstart,
            follower: tokio::sync::OnceCell::new(),
        }
    }

    /// The credentials of a client that may read the deny-list feed.
    pub async fn follower(&self) -> &(String, String) {
        self.follower
            .get_or_init(|| async {
                self.basic_client(
                    json!({"client_name": "follower", "permissions": ["revocations:read"]}),
                )
                .await
            })
            .await
    }

    /// The `quickstart` client registered at first start (default
    /// metadata, no permissions): (id, secret).
    pub fn quickstart(&self) -> (&str, &str) {
        let (id, secret) = self
            .quickstart
            .as_ref()
            .expect("no quickstart client: this start found the data already set up");
        (id, secret)
    }

    /// The clock's time.
    pub fn now(&self) -> i64 {
        match &self.clock {
            TestClock::Manual(clock) => clock.now(),
            TestClock::System => SystemClock.now(),
        }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Writes `text` to the file `name` in the data folder; its path.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.data.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The Prometheus text from the metrics listener (start with [`METRICS`]).
    pub async fn metrics(&self) -> String {
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

    /// Moves the manual clock and lets the node do what is due.
    pub async fn advance(&self, by: Duration) {
        let TestClock::Manual(clock) = &self.clock else {
            panic!("started with the system clock: there is no clock to move")
        };
        clock.advance(by);
        self.running.refresh().await.unwrap();
    }

    /// POSTs `body` to the admin API at `path` with the admin token.
    pub async fn admin_post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// GETs `path` from the admin API with the admin token: its JSON
    /// answer, which must be a success.
    pub async fn admin_get(&self, path: &str) -> Value {
        let resp = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    /// [`TestServer::admin_post`] for a step that must succeed: its JSON
    /// answer.
    pub async fn admin_json(&self, path: &str, body: Value) -> Value {
        let resp = self.admin_post(path, body).await;
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    /// `DELETE /admin/clients/{id}` with the admin token.
    pub async fn delete_client(&self, id: &str) -> reqwest::Response {
        self.http
            .delete(self.url(&format!("/admin/clients/{id}")))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap()
    }

    /// Registers a client (asserts 201); the registration answer.
    pub async fn register(&self, body: Value) -> Value {
        let resp = self.admin_post("/admin/clients", body).await;
        assert_eq!(resp.status(), 201);
        resp.json().await.unwrap()
    }

    /// Registers a client_secret_basic client named "svc" with the `extra`
    /// metadata (RFC 7591 and Tessera's, which may rename it); returns
    /// (id, secret).
    pub async fn basic_client(&self, extra: Value) -> (String, String) {
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

    /// POSTs `form` to `/token` with HTTP Basic client authentication.
    pub async fn token_basic(
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

    /// A client_credentials access token for a client (asserts success).
    pub async fn token(&self, id: &str, secret: &str) -> String {
        let resp = self
            .token_basic(id, secret, &[("grant_type", "client_credentials")])
            .await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// The JWKS as a verifier would fetch it.
    pub async fn jwks(&self) -> KeySet {
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

    /// Stops the server.
    pub async fn stop(self) {
        self.running.stop().await.unwrap();
    }
}

/// Verifies an access token as a resource server would.
pub fn verify(
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
pub async fn count_rows(backend: &Backend, sql: &str, arg: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&backend.any_url())
        .await
        .unwrap_or_else(|e| panic!("{}: connect: {e}", backend.name));
    let n: i64 = sqlx::query_scalar(sql)
        .bind(arg)
        .fetch_one(&pool)
        .await
        .unwrap_or_else(|e| panic!("{}: {sql}: {e}", backend.name));
    pool.close().await;
    n
}

/// Error code and body of a failed response.
pub async fn oauth_error(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}
