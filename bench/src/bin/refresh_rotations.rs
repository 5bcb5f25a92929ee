//! Refresh-token rotations per second: `tessera serve` in process over
//! loopback HTTP, 32 concurrent refresh chains (each request spends its
//! token and carries the successor into the next), 10 s after a 3 s
//! warm-up, on SQLite and, when TESSERA_TEST_DATABASE_URL is set, on
//! PostgreSQL.
//!
//! `cargo run --release -p tessera-bench --bin refresh_rotations`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tessera_server::{Config, Overrides, StartOptions};

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

async fn run(name: &str, database_url: Option<String>) -> Result<(), Box<dyn std::error::Error>> {
    let data = tempfile::tempdir()?;
    let config = Config::load(
        None,
        Vec::new(),
        &Overrides {
            data: Some(data.path().to_path_buf()),
            listen: Some("127.0.0.1:0".into()),
            database_url,
            ..Overrides::default()
        },
    )?;
    let admin_file = config.admin_token_file.clone();
    let running = tessera_server::start(config, StartOptions::default()).await?;
    let base = format!("http://{}", running.addr);
    let admin = std::fs::read_to_string(admin_file)?.trim().to_owned();
    let http = reqwest::Client::new();
    let key = {
        let k = tessera_jose::SigningKey::generate(tessera_jose::Algorithm::ES256)?;
        let kid = k.thumbprint();
        tessera_jose::Signer::new(k.with_kid(kid))
    };
    let public = serde_json::to_value(key.key().public_jwk()?)?;
    let c: Value = http
        .post(format!("{base}/admin/clients"))
        .bearer_auth(&admin)
        .json(&json!({"client_name": "bench", "grant_types": [JWT_BEARER, "refresh_token"], "jwks": {"keys": [public]}}))
        .send()
        .await?
        .json()
        .await?;
    let id = c["client_id"].as_str().ok_or("no client id")?.to_owned();
    let secret = c["client_secret"].as_str().ok_or("no secret")?.to_owned();
    let issuer = running.config().issuer.clone();

    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for n in 0..32 {
        let now = tessera_jose::UnixTime::now().secs();
        let assertion = key.sign(&json!({"iss": id, "sub": format!("user-{n}"), "aud": format!("{issuer}/token"), "exp": now + 60, "jti": format!("b-{n}")}))?;
        let body: Value = http
            .post(format!("{base}/token"))
            .basic_auth(&id, Some(&secret))
            .form(&[
                ("grant_type", JWT_BEARER),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await?
            .json()
            .await?;
        let mut token = body["refresh_token"]
            .as_str()
            .ok_or("no refresh token")?
            .to_owned();
        let (http, base, id, secret, count, stop) = (
            http.clone(),
            base.clone(),
            id.clone(),
            secret.clone(),
            Arc::clone(&count),
            Arc::clone(&stop),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(resp) = http
                    .post(format!("{base}/token"))
                    .basic_auth(&id, Some(&secret))
                    .form(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", token.as_str()),
                    ])
                    .send()
                    .await
                else {
                    return false;
                };
                let Ok(body) = resp.json::<Value>().await else {
                    return false;
                };
                match body["refresh_token"].as_str() {
                    Some(next) => token = next.to_owned(),
                    None => return false,
                }
                count.fetch_add(1, Ordering::Relaxed);
            }
            true
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let start_count = count.load(Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let done = count.load(Ordering::Relaxed) - start_count;
    let secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        if !t.await? {
            return Err("a refresh chain broke".into());
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let rate = done as f64 / secs;
    println!("{name}: {rate:.0} refresh rotations/s (32 concurrent chains, 10 s)");
    running.stop().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    run("SQLite", None).await?;
    if let Ok(url) = std::env::var("TESSERA_TEST_DATABASE_URL") {
        // A fresh schema keeps the run apart from the test suite's.
        let schema = format!("bench_{}", std::process::id());
        psql(
            &url,
            &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
        )?;
        let sep = if url.contains('?') { '&' } else { '?' };
        run(
            "PostgreSQL",
            Some(format!("{url}{sep}options=-c%20search_path%3D{schema}")),
        )
        .await?;
        psql(&url, &format!("DROP SCHEMA {schema} CASCADE"))?;
    }
    Ok(())
}

/// Runs SQL with psql (the bench crate does not link sqlx itself).
fn psql(url: &str, sql: &str) -> Result<(), Box<dyn std::error::Error>> {
    let status = std::process::Command::new("psql")
        .args([url, "-q", "-c", sql])
        .env("PGOPTIONS", "--client-min-messages=warning")
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err("psql failed".into())
    }
}
