//! A node whose wall clock steps, or disagrees with the database's
//! (PostgreSQL), issues no token and drives no rotation until the clock is
//! trusted again: its tokens would live hours too long or be expired at
//! birth (docs/RELIABILITY.md, scenario 5).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use serde_json::Value;
use tessera_server::{Clock, StartOptions};

use crate::common::backends;

/// The system clock shifted by a number of milliseconds the test sets.
#[derive(Debug, Default)]
struct Shifted(AtomicI64);

impl Shifted {
    fn shift(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for Shifted {
    fn now(&self) -> i64 {
        self.reading().map_or(0, |(wall, _)| wall / 1000)
    }

    fn reading(&self) -> Option<(i64, i64)> {
        let (wall, mono) = tessera_server::SystemClock.reading()?;
        Some((wall + self.0.load(Ordering::SeqCst), mono))
    }
}

const TWO_HOURS: i64 = 2 * 3600 * 1000;

async fn token(addr: std::net::SocketAddr, creds: &str) -> (u16, Value, bool) {
    let (id, secret) = creds.trim().split_once(':').unwrap();
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry = r.headers().contains_key("retry-after");
    (status, r.json().await.unwrap(), retry)
}

async fn ready(addr: std::net::SocketAddr) -> (u16, String) {
    let r = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn a_node_whose_clock_steps_issues_nothing_until_it_is_trusted_again() {
    for b in backends().await {
        let clock = Arc::new(Shifted::default());
        let running = tessera_server::start(
            crate::common::config(&b, &[]),
            StartOptions {
                clock: Arc::clone(&clock) as Arc<dyn Clock>,
                background: false,
                ..StartOptions::default()
            },
        )
        .await
        .unwrap();
        let creds = std::fs::read_to_string(b.data.path().join("quickstart.credentials")).unwrap();
        assert_eq!(token(running.addr, &creds).await.0, 200, "{}", b.name);

        // Two hours forward in one step: refused at once, 503 with Retry-After.
        clock.shift(TWO_HOURS);
        let (status, body, retry) = token(running.addr, &creds).await;
        assert_eq!(status, 503, "{}: {body}", b.name);
        assert_eq!(body["error"], "temporarily_unavailable", "{}", b.name);
        assert!(retry, "{}", b.name);
        let (status, text) = ready(running.addr).await;
        assert_eq!(status, 503, "{}: {text}", b.name);
        assert!(text.contains("clock"), "{}: {text}", b.name);

        if b.name == "postgres" {
            // The database's clock disagrees: the refresh does not vouch
            // for it (and drives no transition), issuance stays refused.
            let err = running.refresh().await.unwrap_err().to_string();
            assert!(err.contains("off the database's"), "{err}");
            assert_eq!(token(running.addr, &creds).await.0, 503);
            // Back to the right time: the next refresh trusts it again.
            clock.shift(0);
            running.refresh().await.unwrap();
        } else {
            // SQLite has no reference clock: the next refresh takes the
            // new time.
            running.refresh().await.unwrap();
        }
        let (status, body, _) = token(running.addr, &creds).await;
        assert_eq!(status, 200, "{}: {body}", b.name);
        assert_eq!(ready(running.addr).await.0, 200, "{}", b.name);
        running.stop().await.unwrap();
    }
}

#[tokio::test]
async fn a_node_whose_clock_is_off_the_databases_does_not_start() {
    for b in backends()
        .await
        .into_iter()
        .filter(|b| b.name == "postgres")
    {
        // Made once with a right clock, so that the refused start has keys
        // it could have rotated.
        let running = tessera_server::start(
            crate::common::config(&b, &[]),
            StartOptions {
                background: false,
                ..StartOptions::default()
            },
        )
        .await
        .unwrap();
        running.stop().await.unwrap();
        for shift in [TWO_HOURS, -TWO_HOURS] {
            let clock = Arc::new(Shifted::default());
            clock.shift(shift);
            let err = tessera_server::start(
                crate::common::config(&b, &[]),
                StartOptions {
                    clock: clock as Arc<dyn Clock>,
                    background: false,
                    ..StartOptions::default()
                },
            )
            .await
            .unwrap_err()
            .to_string();
            assert!(err.contains("off the database's"), "{shift}: {err}");
        }
    }
}
