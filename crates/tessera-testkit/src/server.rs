//! [`TestServer`]: an authority with a fixed issuer and an injected clock,
//! on a [`Backend`], with helpers for the admin API, tokens, the JWKS and
//! the metrics listener.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tessera_jose::{JwkSet, KeySet, UnixTime, Validation};
use tessera_server::{Config, ManualClock, Overrides, Running, StartOptions};

use crate::Backend;

/// The issuer of every [`TestServer`].
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
pub fn config_file(
    backend: &Backend,
    env: &[(&str, &str)],
    file: Option<&std::path::Path>,
) -> Config {
    load(backend, env, file, Some(ISSUER))
}

/// Loads settings for a server on `backend` on a free loopback port;
/// `issuer` None: the default (the base URL).
pub(crate) fn load(
    backend: &Backend,
    env: &[(&str, &str)],
    file: Option<&std::path::Path>,
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

/// Starts a server without background tasks or signal handling; a start
/// failure panics with the backend's name.
pub(crate) async fn launch(
    backend: &Backend,
    config: Config,
    clock: Arc<dyn tessera_server::Clock>,
) -> Running {
    tessera_server::start(
        config,
        StartOptions {
            clock,
            background: false,
            handle_signals: false,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{}: start: {e}", backend.name))
}

/// The admin token a server writes at first start to `file`.
pub(crate) fn admin_token(file: &std::path::Path) -> String {
    std::fs::read_to_string(file).unwrap().trim().to_owned()
}

/// A running server with a manual clock.
#[derive(Debug)]
pub struct TestServer {
    /// The server (its state, and `stop`).
    pub running: Running,
    /// Its clock, moved by [`TestServer::advance`].
    pub clock: ManualClock,
    /// Its base URL (`http://127.0.0.1:PORT`).
    pub base: String,
    /// The admin token.
    pub admin: String,
    /// An HTTP client for the test's requests.
    pub http: reqwest::Client,
    /// A client registered with `revocations:read` on first use: what a
    /// gateway or resource server reads the deny-list feed as.
    follower: tokio::sync::OnceCell<(String, String)>,
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

    /// Starts one on `backend` with `config` and `clock`.
    pub async fn start_with(backend: &Backend, config: Config, clock: ManualClock) -> Self {
        let admin_file = config.admin_token_file.clone();
        let running = launch(backend, config, Arc::new(clock.clone())).await;
        let admin = admin_token(&admin_file);
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

    /// The clock's time.
    pub fn now(&self) -> i64 {
        tessera_server::Clock::now(&self.clock)
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
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

    /// Moves the clock and lets the node do what is due.
    pub async fn advance(&self, by: Duration) {
        self.clock.advance(by);
        self.running.state.refresh().await.unwrap();
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

    /// A client_secret_basic client; returns (id, secret).
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

    /// An access token for a client (asserts success).
    pub async fn token(&self, id: &str, secret: &str) -> String {
        client_credentials(&self.http, &self.url("/token"), id, secret).await
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

/// A client_credentials access token from `token_url` for the client
/// `id` (HTTP Basic authentication; asserts success).
pub(crate) async fn client_credentials(
    http: &reqwest::Client,
    token_url: &str,
    id: &str,
    secret: &str,
) -> String {
    let resp = http
        .post(token_url)
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
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
pub async fn oauth_error(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}
