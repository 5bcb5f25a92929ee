//! Scenario 2, kill -9: one node, killed at a random instant while it
//! rotates keys, rotates refresh tokens under concurrency, revokes,
//! registers clients and answers the feed; restarted each time, and the
//! invariants checked against the database and the HTTP surface before
//! the next life:
//!
//! - exactly one active key per algorithm, and the JWKS is what the store
//!   publishes (pending, active, retired);
//! - no refresh family with two live tokens;
//! - every revocation acknowledged with 200 is in the feed;
//! - the feed's sequence has no gap and no duplicate, and ends at its `seq`;
//! - no client half-registered: every row is whole, every client
//!   acknowledged is there and its secret works.
//!
//! On PostgreSQL and on SQLite (WAL). The kill instants come from a seeded
//! generator; the seed is in the result.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use crate::lock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};
use sqlx::Row as _;
use tessera_jose::{Algorithm, Signer, SigningKey};

use crate::cluster::{postgres_url, served_kids, Authority, Database, Schema, Timing};
use crate::proc::wait_ready;
use crate::Ctx;

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// What the node acknowledged (a 200 reached the harness), across lives.
#[derive(Debug, Default)]
struct Acknowledged {
    revoked_jtis: BTreeSet<String>,
    clients: Vec<(String, String)>,
    rotations: u64,
    refreshes: u64,
    feed_reads: u64,
}

/// A small xorshift generator: the kill instants, reproducible from the seed.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `[lo, hi)` milliseconds.
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo))
    }
}

pub(crate) async fn run(ctx: &Ctx) -> Result<Value> {
    let kills: u32 = match ctx.minutes {
        // About 1.5 s a life: as many as fit in the time asked for.
        Some(m) => ((m * 60.0 / 1.5) as u32).max(1),
        None if ctx.short => 20,
        None => 200,
    };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let schema = Schema::create(&postgres_url()?, "kill").await?;
    let pg = backend(
        ctx,
        "postgres",
        Database::Postgres(schema.url.clone()),
        kills,
        seed,
    )
    .await;
    schema.drop_now().await?;
    let sqlite = backend(ctx, "sqlite", Database::Sqlite, kills, seed).await;
    let (pg, sqlite) = (pg?, sqlite?);
    let violations = pg["violation_count"].as_u64().unwrap_or(1)
        + sqlite["violation_count"].as_u64().unwrap_or(1);
    let pass = violations == 0;
    let summary = format!(
        "kill: {} kill -9 on PostgreSQL and {} on SQLite, each restarted and checked; \
         acknowledged: {} + {} revocations, {} + {} clients, {} + {} key rotations, {} + {} refreshes; \
         restart to ready p50 {:.2}s max {:.2}s; invariant violations {violations}",
        pg["kills"], sqlite["kills"],
        pg["acknowledged"]["revocations"], sqlite["acknowledged"]["revocations"],
        pg["acknowledged"]["clients"], sqlite["acknowledged"]["clients"],
        pg["acknowledged"]["rotations"], sqlite["acknowledged"]["rotations"],
        pg["acknowledged"]["refreshes"], sqlite["acknowledged"]["refreshes"],
        pg["restart_s"]["p50"].as_f64().unwrap_or(0.0).max(sqlite["restart_s"]["p50"].as_f64().unwrap_or(0.0)),
        pg["restart_s"]["max"].as_f64().unwrap_or(0.0).max(sqlite["restart_s"]["max"].as_f64().unwrap_or(0.0)),
    );
    Ok(json!({
        "scenario": "kill",
        "pass": pass,
        "summary": summary,
        "seed": seed,
        "postgres": pg,
        "sqlite": sqlite,
    }))
}

async fn backend(
    ctx: &Ctx,
    name: &str,
    database: Database,
    kills: u32,
    seed: u64,
) -> Result<Value> {
    let dir = ctx.dir(&format!("kill-{name}"))?;
    // Rotations are asked for; nothing expires during the run, so every
    // acknowledged revocation must still be in the feed at the end.
    let mut timing = Timing::compressed(Duration::from_secs(3600));
    timing.access_token_ttl = Duration::from_secs(900);
    timing.grace = timing.access_token_ttl + timing.leeway + Duration::from_secs(5);
    let mut authority = Authority::start(&ctx.tessera, &dir, 1, &database, &timing).await?;
    let db_url = match &database {
        Database::Postgres(url) => url.clone(),
        Database::Sqlite => format!(
            "sqlite://{}?mode=ro",
            authority.data.join("tessera.db").display()
        ),
    };
    sqlx::any::install_default_drivers();
    let db = sqlx::any::AnyPoolOptions::new()
        .max_connections(2)
        .connect(&db_url)
        .await
        .with_context(|| format!("opening {name} for the invariants"))?;
    let (feed_id, feed_file) = authority.feed_client(&dir).await?;
    let feed_secret = std::fs::read_to_string(&feed_file)?.trim().to_owned();
    let key = {
        let key = SigningKey::generate(Algorithm::ES256)?;
        let kid = key.thumbprint();
        Signer::new(key.with_kid(kid))
    };
    let public = serde_json::to_value(key.key().public_jwk()?)?;
    let login = authority
        .register(json!({
            "client_name": "kill-login",
            "grant_types": ["client_credentials", JWT_BEARER, "refresh_token"],
            "jwks": {"keys": [public]},
        }))
        .await?;
    let key = Arc::new(key);
    let acked: Arc<Mutex<Acknowledged>> = Arc::default();
    let mut rng = Rng(seed ^ name.len() as u64);
    let mut violations: BTreeMap<String, u64> = BTreeMap::new();
    let mut examples: Vec<String> = Vec::new();
    let mut restarts = Vec::new();
    let http = authority.http.clone();
    let base = authority.bases[0].clone();
    let started = Instant::now();
    for life in 0..kills {
        let activity = Life {
            http: http.clone(),
            base: base.clone(),
            admin: authority.admin.clone(),
            quickstart: authority.quickstart.clone(),
            login: login.clone(),
            feed: (feed_id.clone(), feed_secret.clone()),
            key: Arc::clone(&key),
            acked: Arc::clone(&acked),
        };
        let tasks = activity.spawn(life, rng.millis(0, 700));
        tokio::time::sleep(rng.millis(200, 1200)).await;
        authority.nodes[0].kill9().await?;
        for t in tasks {
            t.abort();
        }
        authority.nodes[0].spawn()?;
        let took = wait_ready(
            &http,
            &mut authority.nodes[0],
            &format!("{base}/readyz"),
            Duration::from_secs(60),
        )
        .await?;
        restarts.push(took);
        let found = check(
            &http,
            &base,
            &authority,
            &db,
            (&feed_id, &feed_secret),
            &acked,
            life + 1 == kills,
        )
        .await?;
        for (kind, detail) in found {
            *violations.entry(kind.to_owned()).or_default() += 1;
            if examples.len() < 10 {
                examples.push(format!("after kill {}: {kind}: {detail}", life + 1));
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    authority.nodes[0].terminate().await?;
    db.close().await;
    restarts.sort();
    let pick = |q: f64| restarts[((restarts.len() - 1) as f64 * q).round() as usize].as_secs_f64();
    let acked = lock(&acked);
    let violation_count: u64 = violations.values().sum();
    Ok(json!({
        "kills": kills,
        "seconds": seconds,
        "violation_count": violation_count,
        "violations": violations,
        "examples": examples,
        "restart_s": {"p50": pick(0.5), "p99": pick(0.99), "max": pick(1.0)},
        "acknowledged": {
            "revocations": acked.revoked_jtis.len(),
            "clients": acked.clients.len(),
            "rotations": acked.rotations,
            "refreshes": acked.refreshes,
            "feed_reads": acked.feed_reads,
        },
    }))
}

/// The invariants after a restart: each violation found, with a detail.
async fn check(
    http: &reqwest::Client,
    base: &str,
    authority: &Authority,
    db: &sqlx::AnyPool,
    feed: (&str, &str),
    acked: &Mutex<Acknowledged>,
    last: bool,
) -> Result<Vec<(&'static str, String)>> {
    let mut found = Vec::new();
    // Keys.
    let rows = sqlx::query("SELECT kid, alg, state FROM signing_keys")
        .fetch_all(db)
        .await?;
    let mut active: BTreeMap<String, u32> = BTreeMap::new();
    let mut published = BTreeSet::new();
    for r in &rows {
        let (kid, alg, state): (String, String, String) =
            (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
        if state == "active" {
            *active.entry(alg.clone()).or_default() += 1;
        }
        if matches!(state.as_str(), "pending" | "active" | "retired") {
            published.insert(kid);
        }
    }
    if active.get("ES256") != Some(&1) || active.len() != 1 {
        found.push((
            "not exactly one active key per algorithm",
            format!("{active:?}"),
        ));
    }
    let served: BTreeSet<String> = served_kids(http, base).await?.into_iter().collect();
    if served != published {
        found.push((
            "JWKS differs from the store",
            format!("served {served:?}, store {published:?}"),
        ));
    }
    // Refresh families.
    let doubled = sqlx::query(
        "SELECT family, COUNT(*) FROM refresh_tokens WHERE spent_at IS NULL AND revoked_at IS NULL \
         GROUP BY family HAVING COUNT(*) > 1",
    )
    .fetch_all(db)
    .await?;
    if !doubled.is_empty() {
        found.push((
            "refresh family with two live tokens",
            format!("{} families", doubled.len()),
        ));
    }
    // The feed, read whole.
    let mut seqs = Vec::new();
    let mut jtis = BTreeSet::new();
    let mut since = 0i64;
    let latest = loop {
        let page: Value = http
            .get(format!(
                "{base}/revocations?since={since}&limit=1000&wait=0"
            ))
            .basic_auth(feed.0, Some(feed.1))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let entries = page["entries"]
            .as_array()
            .context("feed page without entries")?;
        for e in entries {
            let seq = e["seq"].as_i64().context("entry without seq")?;
            seqs.push(seq);
            if let Some(jti) = e["jti"].as_str() {
                jtis.insert(jti.to_owned());
            }
        }
        if let Some(last) = seqs.last() {
            since = *last;
        }
        if page["more"].as_bool() != Some(true) {
            break page["seq"].as_i64().context("feed page without seq")?;
        }
    };
    let contiguous = seqs.windows(2).all(|w| w[1] == w[0] + 1);
    let first_ok = seqs.first().is_none_or(|f| *f == 1);
    if !contiguous || !first_ok || seqs.last().copied().unwrap_or(0) != latest {
        found.push((
            "feed sequence has a gap or a duplicate",
            format!("{} entries, latest {latest}", seqs.len()),
        ));
    }
    let (missing, newest_client) = {
        let acked = lock(acked);
        let missing: Vec<String> = acked.revoked_jtis.difference(&jtis).cloned().collect();
        (missing, acked.clients.last().cloned())
    };
    if !missing.is_empty() {
        found.push((
            "acknowledged revocation not in the feed",
            format!("{} jtis, e.g. {}", missing.len(), missing[0]),
        ));
    }
    // Clients: every row whole, every acknowledged one there and working.
    let rows = sqlx::query("SELECT client_id, metadata, secret_hash FROM clients")
        .fetch_all(db)
        .await?;
    let mut ids = BTreeSet::new();
    for r in &rows {
        let (id, metadata, hash): (String, String, Option<String>) =
            (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
        let meta: Value = serde_json::from_str(&metadata).unwrap_or(Value::Null);
        let private_key_jwt = meta["token_endpoint_auth_method"] == "private_key_jwt";
        if !meta.is_object() || (hash.is_none() && !private_key_jwt) {
            found.push(("client half-registered", id.clone()));
        }
        ids.insert(id);
    }
    let to_check: Vec<(String, String)> = if last {
        lock(acked).clients.clone()
    } else {
        newest_client.into_iter().collect()
    };
    for (id, secret) in to_check {
        if !ids.contains(&id) {
            found.push(("acknowledged client missing", id));
            continue;
        }
        let r = http
            .post(format!("{base}/token"))
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await?;
        if !r.status().is_success() {
            found.push((
                "acknowledged client's secret refused",
                format!("{id}: {}", r.status()),
            ));
        }
    }
    let listed = http
        .get(format!("{base}/admin/clients"))
        .bearer_auth(&authority.admin)
        .send()
        .await?;
    if !listed.status().is_success() {
        found.push(("GET /admin/clients failed", listed.status().to_string()));
    }
    Ok(found)
}

/// The activity of one life of the node.
#[derive(Clone, Debug)]
struct Life {
    http: reqwest::Client,
    base: String,
    admin: String,
    quickstart: (String, String),
    login: (String, String),
    feed: (String, String),
    key: Arc<Signer>,
    acked: Arc<Mutex<Acknowledged>>,
}

impl Life {
    /// The activities, the first rotation `first` into the life (one a
    /// second after: the retired keys stay published for the grace, so
    /// the JWKS grows with every rotation).
    fn spawn(self, life: u32, first: Duration) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        let me = self.clone();
        tasks.push(tokio::spawn(async move { me.rotate(first).await }));
        for worker in 0..2 {
            let me = self.clone();
            tasks.push(tokio::spawn(async move { me.refresh(life, worker).await }));
        }
        for _ in 0..2 {
            let me = self.clone();
            tasks.push(tokio::spawn(async move { me.revoke().await }));
        }
        let me = self.clone();
        tasks.push(tokio::spawn(async move { me.register(life).await }));
        let me = self;
        tasks.push(tokio::spawn(async move { me.read_feed().await }));
        tasks
    }

    async fn rotate(self, first: Duration) {
        tokio::time::sleep(first).await;
        loop {
            let ok = self
                .http
                .post(format!("{}/admin/keys/rotate", self.base))
                .bearer_auth(&self.admin)
                .json(&json!({"immediate": true}))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                lock(&self.acked).rotations += 1;
            }
            tokio::time::sleep(Duration::from_millis(1000)).await;
        }
    }

    /// Logs a user in, then refreshes, every third time twice at once.
    async fn refresh(self, life: u32, worker: u32) {
        let mut n = 0u32;
        loop {
            n += 1;
            let Ok(mut token) = self.user_login(&format!("{life}-{worker}-{n}")).await else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            for round in 0..20u32 {
                let next = if round % 3 == 0 {
                    let (a, b) = tokio::join!(self.refresh_once(&token), self.refresh_once(&token));
                    a.or(b)
                } else {
                    self.refresh_once(&token).await
                };
                match next {
                    Some(t) => {
                        lock(&self.acked).refreshes += 1;
                        token = t;
                    }
                    None => break,
                }
            }
        }
    }

    async fn user_login(&self, tag: &str) -> Result<String> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let assertion = self.key.sign(&json!({
            "iss": self.login.0, "sub": format!("user-{tag}"), "aud": format!("{}/token", self.base),
            "exp": now + 60, "jti": format!("login-{tag}-{now}"),
        }))?;
        let body: Value = self
            .http
            .post(format!("{}/token", self.base))
            .basic_auth(&self.login.0, Some(&self.login.1))
            .form(&[("grant_type", JWT_BEARER), ("assertion", &assertion)])
            .send()
            .await?
            .json()
            .await?;
        match body["refresh_token"].as_str() {
            Some(t) => Ok(t.to_owned()),
            None => bail!("no refresh token: {body}"),
        }
    }

    async fn refresh_once(&self, token: &str) -> Option<String> {
        let r = self
            .http
            .post(format!("{}/token", self.base))
            .basic_auth(&self.login.0, Some(&self.login.1))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
            .send()
            .await
            .ok()?;
        let body: Value = r.json().await.ok()?;
        body["refresh_token"].as_str().map(str::to_owned)
    }

    async fn revoke(self) {
        loop {
            let Ok(token) = self.client_token().await else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let ok = self
                .http
                .post(format!("{}/revoke", self.base))
                .basic_auth(&self.quickstart.0, Some(&self.quickstart.1))
                .form(&[("token", token.as_str())])
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                if let Ok(parts) = tessera_jose::decode_unverified(&token, 8192) {
                    if let Some(jti) = parts.claims["jti"].as_str() {
                        lock(&self.acked).revoked_jtis.insert(jti.to_owned());
                    }
                }
            }
        }
    }

    async fn client_token(&self) -> Result<String> {
        let body: Value = self
            .http
            .post(format!("{}/token", self.base))
            .basic_auth(&self.quickstart.0, Some(&self.quickstart.1))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await?
            .json()
            .await?;
        Ok(body["access_token"]
            .as_str()
            .context("no access token")?
            .to_owned())
    }

    async fn register(self, life: u32) {
        let mut n = 0;
        loop {
            n += 1;
            let r = self
                .http
                .post(format!("{}/admin/clients", self.base))
                .bearer_auth(&self.admin)
                .json(&json!({"client_name": format!("kill-{life}-{n}"), "scope": "a b"}))
                .send()
                .await;
            if let Ok(r) = r {
                if r.status().is_success() {
                    if let Ok(body) = r.json::<Value>().await {
                        if let (Some(id), Some(secret)) =
                            (body["client_id"].as_str(), body["client_secret"].as_str())
                        {
                            lock(&self.acked)
                                .clients
                                .push((id.to_owned(), secret.to_owned()));
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    async fn read_feed(self) {
        let mut since = 0i64;
        loop {
            let r = self
                .http
                .get(format!(
                    "{}/revocations?since={since}&limit=50&wait=1",
                    self.base
                ))
                .basic_auth(&self.feed.0, Some(&self.feed.1))
                .send()
                .await;
            match r {
                Ok(r) if r.status().is_success() => {
                    if let Ok(page) = r.json::<Value>().await {
                        lock(&self.acked).feed_reads += 1;
                        if let Some(last) = page["entries"]
                            .as_array()
                            .and_then(|e| e.last())
                            .and_then(|e| e["seq"].as_i64())
                        {
                            since = last;
                        }
                    }
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
}
