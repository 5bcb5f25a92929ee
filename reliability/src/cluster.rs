//! An authority of one or more `tessera serve` nodes on one database,
//! with time compressed through configuration, and the admin calls the
//! scenarios make.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use serde_json::{json, Value};

use crate::proc::{free_port, wait_ready, Proc};

/// The compressed clock of a run: every duration the authority and the
/// verifiers are configured with.
#[derive(Clone, Debug)]
pub(crate) struct Timing {
    pub rotation_period: Duration,
    pub prepublish: Duration,
    pub grace: Duration,
    pub refresh_interval: Duration,
    pub jwks_max_age: Duration,
    /// The verifier floors, on both sides (the prepublish rule).
    pub min_cache_ttl: Duration,
    pub unknown_kid_cooldown: Duration,
    pub access_token_ttl: Duration,
    pub leeway: Duration,
}

impl Timing {
    /// Months in minutes: a rotation every `rotation_period`, with the
    /// shortest prepublish the rule allows plus one second.
    pub(crate) fn compressed(rotation_period: Duration) -> Self {
        let refresh_interval = Duration::from_secs(1);
        let jwks_max_age = Duration::from_secs(2);
        let floors = tessera_verify::rule::Floors {
            min_cache_ttl: Duration::from_secs(2),
            unknown_kid_cooldown: Duration::from_secs(1),
        };
        let prepublish =
            tessera_verify::rule::min_prepublish(jwks_max_age, refresh_interval, &floors)
                + Duration::from_secs(1);
        let access_token_ttl = Duration::from_secs(30);
        let leeway = Duration::from_secs(5);
        Self {
            rotation_period,
            prepublish,
            grace: access_token_ttl + leeway + Duration::from_secs(5),
            refresh_interval,
            jwks_max_age,
            min_cache_ttl: floors.min_cache_ttl,
            unknown_kid_cooldown: floors.unknown_kid_cooldown,
            access_token_ttl,
            leeway,
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// Where the nodes keep their data.
#[derive(Clone, Debug)]
pub(crate) enum Database {
    /// A PostgreSQL URL (a fresh schema of the test database).
    Postgres(String),
    /// The embedded default: `<data>/tessera.db`.
    Sqlite,
}

/// The nodes of an authority, sharing a data folder (KEK, admin token,
/// quickstart credentials) and a database.
#[derive(Debug)]
pub(crate) struct Authority {
    pub nodes: Vec<Proc>,
    pub bases: Vec<String>,
    /// The issuer: node 0's URL.
    pub issuer: String,
    /// Node 0's metrics listener.
    pub metrics: String,
    pub admin: String,
    pub quickstart: (String, String),
    pub data: PathBuf,
    pub http: reqwest::Client,
}

impl Authority {
    /// Starts `count` nodes, the first alone (it creates the KEK and the
    /// admin token), then the others.
    pub(crate) async fn start(
        tessera: &Path,
        dir: &Path,
        count: usize,
        database: &Database,
        timing: &Timing,
    ) -> Result<Self> {
        Self::start_with_env(tessera, dir, count, database, timing, &|_| Vec::new()).await
    }

    /// As [`Authority::start`], node `i` with `env(i)` added to its environment.
    pub(crate) async fn start_with_env(
        tessera: &Path,
        dir: &Path,
        count: usize,
        database: &Database,
        timing: &Timing,
        env: &dyn Fn(usize) -> Vec<(String, String)>,
    ) -> Result<Self> {
        Self::start_with(
            tessera,
            dir,
            &dir.join("data"),
            count,
            database,
            timing,
            env,
        )
        .await
    }

    /// One node on SQLite whose data folder is `data` (a mount of the run's).
    pub(crate) async fn start_in(
        tessera: &Path,
        dir: &Path,
        data: &Path,
        timing: &Timing,
    ) -> Result<Self> {
        Self::start_with(tessera, dir, data, 1, &Database::Sqlite, timing, &|_| {
            Vec::new()
        })
        .await
    }

    async fn start_with(
        tessera: &Path,
        dir: &Path,
        data: &Path,
        count: usize,
        database: &Database,
        timing: &Timing,
        env: &dyn Fn(usize) -> Vec<(String, String)>,
    ) -> Result<Self> {
        let data = data.to_path_buf();
        std::fs::create_dir_all(&data)?;
        let ports: Vec<u16> = (0..count).map(|_| free_port()).collect::<Result<_>>()?;
        let issuer = format!("http://127.0.0.1:{}", ports[0]);
        let metrics_port = free_port()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let mut nodes = Vec::new();
        let mut bases = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            let config = dir.join(format!("node{i}.toml"));
            let metrics = (i == 0).then(|| format!("127.0.0.1:{metrics_port}"));
            std::fs::write(
                &config,
                node_config(*port, &issuer, &data, database, timing, metrics.as_deref()),
            )?;
            let mut node = Proc::new(
                &format!("node{i}"),
                tessera,
                vec![
                    "serve".into(),
                    "--config".into(),
                    config.display().to_string(),
                ],
                dir,
            )
            .with_env(env(i));
            node.spawn()?;
            let base = format!("http://127.0.0.1:{port}");
            if i == 0 {
                // The others read the KEK and admin token it writes.
                wait_ready(
                    &http,
                    &mut node,
                    &format!("{base}/readyz"),
                    Duration::from_secs(60),
                )
                .await?;
            }
            nodes.push(node);
            bases.push(base);
        }
        for (node, base) in nodes.iter_mut().zip(&bases).skip(1) {
            wait_ready(
                &http,
                node,
                &format!("{base}/readyz"),
                Duration::from_secs(60),
            )
            .await?;
        }
        let admin = read_trimmed(&data.join("admin.token"))?;
        let creds = read_trimmed(&data.join("quickstart.credentials"))?;
        let (id, secret) = creds
            .split_once(':')
            .ok_or_else(|| anyhow!("quickstart.credentials is not id:secret"))?;
        Ok(Self {
            nodes,
            bases,
            issuer,
            metrics: format!("http://127.0.0.1:{metrics_port}/metrics"),
            admin,
            quickstart: (id.to_owned(), secret.to_owned()),
            data,
            http,
        })
    }

    /// `POST {base}/admin/...` with the admin token; the JSON answer.
    pub(crate) async fn admin_post(&self, node: usize, path: &str, body: Value) -> Result<Value> {
        let r = self
            .http
            .post(format!("{}{path}", self.bases[node]))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let text = r.text().await?;
        if !status.is_success() {
            bail!("POST {path}: {status} {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `GET /admin/keys` at node `node`: the key rows (kid, alg, state...).
    pub(crate) async fn admin_get_keys(&self, node: usize) -> Result<Vec<Value>> {
        let body: Value = self
            .http
            .get(format!("{}/admin/keys", self.bases[node]))
            .bearer_auth(&self.admin)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(body["keys"].as_array().cloned().unwrap_or_default())
    }

    /// Registers a client; its id and secret.
    pub(crate) async fn register(&self, body: Value) -> Result<(String, String)> {
        let c = self.admin_post(0, "/admin/clients", body).await?;
        let id = c["client_id"].as_str().context("no client_id")?.to_owned();
        let secret = c["client_secret"].as_str().unwrap_or_default().to_owned();
        Ok((id, secret))
    }

    /// A client that may read the deny-list feed, its secret also written
    /// to a file (for a gateway's `client_secret_file`).
    pub(crate) async fn feed_client(&self, dir: &Path) -> Result<(String, PathBuf)> {
        let (id, secret) = self
            .register(json!({"client_name": "feed", "permissions": ["revocations:read"]}))
            .await?;
        let file = dir.join(format!("{id}.secret"));
        std::fs::write(&file, &secret)?;
        Ok((id, file))
    }

    /// Node 0's `tessera_jwks_requests_total`.
    pub(crate) async fn jwks_requests(&self) -> Result<u64> {
        let text = self.http.get(&self.metrics).send().await?.text().await?;
        text.lines()
            .find_map(|l| l.strip_prefix("tessera_jwks_requests_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
            .context("no tessera_jwks_requests_total in /metrics")
    }
}

pub(crate) fn read_trimmed(path: &Path) -> Result<String> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .trim()
        .to_owned())
}

fn node_config(
    port: u16,
    issuer: &str,
    data: &Path,
    database: &Database,
    t: &Timing,
    metrics: Option<&str>,
) -> String {
    let database = match database {
        Database::Postgres(url) => format!("database_url = {url:?}\n"),
        Database::Sqlite => String::new(),
    };
    let metrics = metrics
        .map(|m| format!("metrics_listen = {m:?}\n"))
        .unwrap_or_default();
    format!(
        r#"[server]
listen = "127.0.0.1:{port}"
issuer = {issuer:?}
data = {data:?}
{database}{metrics}shutdown_timeout = "2s"

[keys]
rotation_period = "{rotation}"
prepublish = "{prepublish}"
grace = "{grace}"
refresh_interval = "{refresh}"
verifier_min_cache_ttl = "{ttl}"
verifier_unknown_kid_cooldown = "{cooldown}"

[jwks]
max_age = "{max_age}"

[tokens]
access_token_ttl = "{att}"
max_access_token_ttl = "{att}"
leeway = "{leeway}"
"#,
        data = data.display().to_string(),
        rotation = secs(t.rotation_period),
        prepublish = secs(t.prepublish),
        grace = secs(t.grace),
        refresh = secs(t.refresh_interval),
        ttl = secs(t.min_cache_ttl),
        cooldown = secs(t.unknown_kid_cooldown),
        max_age = secs(t.jwks_max_age),
        att = secs(t.access_token_ttl),
        leeway = secs(t.leeway),
    )
}

/// A fresh schema of the PostgreSQL test database, dropped on
/// [`Schema::drop_now`].
#[derive(Debug)]
pub(crate) struct Schema {
    pub url: String,
    name: String,
    pool: sqlx::PgPool,
}

impl Schema {
    pub(crate) async fn create(base: &str, label: &str) -> Result<Self> {
        let name = format!("rel_{label}_{}", std::process::id());
        let pool = sqlx::PgPool::connect(base)
            .await
            .with_context(|| format!("connecting to {base}"))?;
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
            .execute(&pool)
            .await?;
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&pool)
            .await?;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{name}");
        Ok(Self { url, name, pool })
    }

    pub(crate) async fn drop_now(self) -> Result<()> {
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name))
            .execute(&self.pool)
            .await?;
        self.pool.close().await;
        Ok(())
    }
}

/// The test database's URL: `TESSERA_TEST_DATABASE_URL`.
pub(crate) fn postgres_url() -> Result<String> {
    std::env::var("TESSERA_TEST_DATABASE_URL").context(
        "TESSERA_TEST_DATABASE_URL is not set (scripts/reliability sets it from scripts/postgres)",
    )
}

/// The kids a node's JWKS serves now, in the order served.
pub(crate) async fn served_kids(http: &reqwest::Client, base: &str) -> Result<Vec<String>> {
    let jwks: Value = http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await?
        .json()
        .await?;
    Ok(jwks["keys"]
        .as_array()
        .context("JWKS without keys")?
        .iter()
        .filter_map(|k| k["kid"].as_str().map(str::to_owned))
        .collect())
}
