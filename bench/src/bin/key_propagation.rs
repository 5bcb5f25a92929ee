//! How fast a key change on one node reaches another: two `tessera serve`
//! nodes in process on one PostgreSQL database (a fresh schema), over
//! loopback HTTP. Node A alternately marks its active key compromised and
//! rotates immediately, through the admin API; each change is timed from
//! A's 200 until node B's token endpoint answers with a token signed by
//! the new key (B asked back to back, no pause).
//!
//! Two runs: B listening for key changes (`LISTEN/NOTIFY`) with a
//! `keys.refresh_interval` of one hour, so only the notification can
//! explain a change; then B not listening, with a 1 s refresh interval:
//! the periodic refresh the notification replaces (10 s by default).
//!
//! `TESSERA_TEST_DATABASE_URL=postgres://... cargo run --release -p tessera-bench --bin key_propagation`

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tessera_server::{Config, Overrides, Running, StartOptions};

const ROUNDS: usize = 20;

/// A node on `url`, sharing the data folder (the KEK, the admin token).
async fn node(
    data: &std::path::Path,
    url: &str,
    refresh: &str,
    listen: bool,
) -> Result<Running, Box<dyn std::error::Error>> {
    let config = Config::load(
        None,
        vec![(
            "TESSERA_KEYS_REFRESH_INTERVAL".to_owned(),
            refresh.to_owned(),
        )],
        &Overrides {
            data: Some(data.to_path_buf()),
            listen: Some("127.0.0.1:0".into()),
            database_url: Some(url.to_owned()),
            ..Overrides::default()
        },
    )?;
    let options = StartOptions {
        key_notifications: listen,
        ..StartOptions::default()
    };
    Ok(tessera_server::start(config, options).await?)
}

fn kid_of(token: &str) -> Result<String, Box<dyn std::error::Error>> {
    Ok(tessera_jose::decode_unverified(token, 8192)?.header["kid"]
        .as_str()
        .ok_or("no kid")?
        .to_owned())
}

/// The nodes of one run and what they are asked with.
struct Pair {
    http: reqwest::Client,
    a: String,
    b: String,
    admin: String,
    client: (String, String),
}

impl Pair {
    async fn kid_at(&self, base: &str) -> Result<String, Box<dyn std::error::Error>> {
        let body: Value = self
            .http
            .post(format!("{base}/token"))
            .basic_auth(&self.client.0, Some(&self.client.1))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        kid_of(body["access_token"].as_str().ok_or("no token")?)
    }

    /// Round `n` on A (a compromise when even, an immediate rotation when
    /// odd), then the time until B signs with A's new key.
    async fn change(&self, n: usize) -> Result<Duration, Box<dyn std::error::Error>> {
        let old = self.kid_at(&self.a).await?;
        let (path, body) = if n % 2 == 0 {
            (format!("/admin/keys/{old}/compromised"), json!({}))
        } else {
            ("/admin/keys/rotate".to_owned(), json!({"immediate": true}))
        };
        self.http
            .post(format!("{}{path}", self.a))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await?
            .error_for_status()?;
        let answered = Instant::now();
        let new = self.kid_at(&self.a).await?;
        loop {
            if self.kid_at(&self.b).await? == new {
                return Ok(answered.elapsed());
            }
            if answered.elapsed() > Duration::from_secs(30) {
                return Err("B did not sign with the new key within 30 s".into());
            }
        }
    }
}

/// One run on a fresh schema of `base`: A listening, B as told.
async fn run(
    base: &str,
    listen: bool,
    refresh: &str,
) -> Result<Vec<Duration>, Box<dyn std::error::Error>> {
    let schema = format!("bench_keys_{}_{}", std::process::id(), u8::from(listen));
    let pool = sqlx::PgPool::connect(base).await?;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await?;
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    let delays = changes(&url, listen, refresh).await;
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&pool)
        .await?;
    pool.close().await;
    delays
}

async fn changes(
    url: &str,
    listen: bool,
    refresh: &str,
) -> Result<Vec<Duration>, Box<dyn std::error::Error>> {
    let data = tempfile::tempdir()?;
    let a = node(data.path(), url, "1h", true).await?;
    let admin = std::fs::read_to_string(&a.config().admin_token_file)?
        .trim()
        .to_owned();
    let http = reqwest::Client::new();
    let base_a = format!("http://{}", a.addr);
    let c: Value = http
        .post(format!("{base_a}/admin/clients"))
        .bearer_auth(&admin)
        .json(&json!({"client_name": "bench"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    // Started after the client exists: B reads clients at start.
    let b = node(data.path(), url, refresh, listen).await?;
    let pair = Pair {
        http,
        b: format!("http://{}", b.addr),
        a: base_a,
        admin,
        client: (
            c["client_id"].as_str().ok_or("no client id")?.to_owned(),
            c["client_secret"].as_str().ok_or("no secret")?.to_owned(),
        ),
    };
    let mut delays = Vec::new();
    for n in 0..ROUNDS {
        delays.push(pair.change(n).await?);
    }
    a.stop().await?;
    b.stop().await?;
    Ok(delays)
}

fn summary(mut delays: Vec<Duration>) -> String {
    delays.sort();
    let pct = |p: f64| tessera_bench::percentile_ms(&delays, p);
    format!(
        "{} changes: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        delays.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::var("TESSERA_TEST_DATABASE_URL")
        .map_err(|_| "set TESSERA_TEST_DATABASE_URL to a PostgreSQL database")?;
    let listening = run(&base, true, "1h").await?;
    println!(
        "B listening (refresh 1 h): {} (A's 200 -> B's first token with the new kid)",
        summary(listening)
    );
    let polling = run(&base, false, "1s").await?;
    println!("B not listening (refresh 1 s): {}", summary(polling));
    Ok(())
}
