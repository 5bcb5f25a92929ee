//! The deny-list feed's propagation delay: revoke a JWT access token at
//! `tessera serve` (in process, SQLite, over loopback HTTP) and time until a
//! `tessera-verify` follower lists its jti. 300 revocations, one at a time.
//!
//! `cargo run --release -p tessera-bench --bin feed_propagation`

use std::time::{Duration, Instant};

use serde_json::Value;
use tessera_server::{Config, Overrides, StartOptions};
use tessera_verify::{DenyList, FeedOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = tempfile::tempdir()?;
    let config = Config::load(
        None,
        Vec::new(),
        &Overrides {
            data: Some(data.path().to_path_buf()),
            listen: Some("127.0.0.1:0".into()),
            ..Overrides::default()
        },
    )?;
    let admin_file = config.admin_token_file.clone();
    let running = tessera_server::start(config, StartOptions::default()).await?;
    let base = format!("http://{}", running.addr);
    let creds = std::fs::read_to_string(
        running
            .quickstart_credentials
            .as_ref()
            .ok_or("no quickstart client")?,
    )?;
    let (id, secret) = creds.trim().split_once(':').ok_or("bad credentials file")?;
    let http = reqwest::Client::new();
    // The follower reads the feed as a client registered for it.
    let admin = std::fs::read_to_string(&admin_file)?;
    let follower: Value = http
        .post(format!("{base}/admin/clients"))
        .bearer_auth(admin.trim())
        .json(&serde_json::json!({"client_name": "follower", "permissions": ["revocations:read"]}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let list = DenyList::follow(
        &format!("{base}/revocations"),
        follower["client_id"].as_str().ok_or("no client_id")?,
        follower["client_secret"]
            .as_str()
            .ok_or("no client_secret")?,
        &FeedOptions::default(),
    )
    .await?;
    let mut delays = Vec::new();
    for _ in 0..300 {
        let body: Value = http
            .post(format!("{base}/token"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await?
            .json()
            .await?;
        let token = body["access_token"].as_str().ok_or("no token")?.to_owned();
        let jti = tessera_jose::decode_unverified(&token, 8192)?.claims["jti"]
            .as_str()
            .ok_or("no jti")?
            .to_owned();
        let started = Instant::now();
        http.post(format!("{base}/revoke"))
            .basic_auth(id, Some(secret))
            .form(&[("token", token.as_str())])
            .send()
            .await?;
        let now = tessera_jose::UnixTime::now().secs();
        while !list.contains(&jti, now) {
            if started.elapsed() > Duration::from_secs(5) {
                return Err("not propagated within 5 s".into());
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        delays.push(started.elapsed());
    }
    delays.sort();
    let pct = |p: f64| tessera_bench::percentile_ms(&delays, p);
    println!(
        "{} revocations: propagation p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (revoke request sent -> follower lists the jti)",
        delays.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    running.stop().await?;
    Ok(())
}
