//! Scenario 1, rotation under load: three nodes on PostgreSQL issue
//! tokens as fast as eight clients ask, keys rotate on a compressed
//! schedule (at least four times) and one key is marked compromised half
//! way; every token is checked at once by four verifiers (the library, a
//! gateway, a gateway with its token cache, PyJWT).
//!
//! Counted: valid tokens refused (must be 0), tokens of the compromised
//! key accepted later than the documented bound after the compromise
//! answered (must be 0), issuance errors (must be 0), JWKS requests per
//! verifier against the bound their cache settings give.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use crate::lock;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde_json::{json, Value};

use crate::cluster::{postgres_url, Authority, Database, Schema, Timing};
use crate::load::{self, Live, Spec};
use crate::verifiers::{self, GatewaySpec, PyJwt, Verdict, Verifier};
use crate::Ctx;

const NAMES: [&str; 4] = ["library", "gateway", "gateway+cache", "pyjwt"];

/// One issued token and what each verifier said, with when it was asked.
#[derive(Debug)]
struct Checked {
    kid: String,
    issued: Duration,
    /// A token issued earlier, presented again (what a client does until
    /// its token expires): the compromise must reach these.
    replay: bool,
    verdicts: Vec<(Verdict, Duration)>,
}

#[derive(Debug, Default)]
struct Issue {
    errors: BTreeMap<String, u64>,
}

pub(crate) async fn run(ctx: &Ctx) -> Result<Value> {
    let seconds = ctx.seconds(48, 300);
    // At least four scheduled rotations, and room for the compromise.
    let rotation_period = Duration::from_secs((seconds / 6).max(8));
    let timing = Timing::compressed(rotation_period);
    let schema = Schema::create(&postgres_url()?, "rotation").await?;
    let result = with_schema(ctx, seconds, &timing, &schema.url).await;
    schema.drop_now().await?;
    result
}

async fn with_schema(ctx: &Ctx, seconds: u64, timing: &Timing, url: &str) -> Result<Value> {
    let dir = ctx.dir("rotation")?;
    let authority = Arc::new(
        Authority::start(
            &ctx.tessera,
            &dir,
            3,
            &Database::Postgres(url.to_owned()),
            timing,
        )
        .await?,
    );
    let (feed_id, feed_file) = authority.feed_client(&dir).await?;
    let feed_secret = std::fs::read_to_string(&feed_file)?;
    let upstream = verifiers::upstream().await?;
    let verifiers_since = Instant::now();
    let library = verifiers::library(&authority, timing, (&feed_id, feed_secret.trim())).await?;
    let (_gw, gw_url) = verifiers::gateway(
        &ctx.tessera,
        &dir,
        &authority,
        timing,
        GatewaySpec {
            name: "gateway",
            token_cache: 0,
            upstream,
            feed: (&feed_id, &feed_file),
            env: Vec::new(),
        },
    )
    .await?;
    let (_gwc, gwc_url) = verifiers::gateway(
        &ctx.tessera,
        &dir,
        &authority,
        timing,
        GatewaySpec {
            name: "gateway-cache",
            token_cache: 10_000,
            upstream,
            feed: (&feed_id, &feed_file),
            env: Vec::new(),
        },
    )
    .await?;
    // PyJWKClient's lifespan is the JWKS max-age, as an HTTP cache's would be.
    let pyjwt = PyJwt::start(
        &verifiers::python(),
        &ctx.root.join("reliability/pyjwt_verifier.py"),
        &authority.issuer,
        timing.jwks_max_age,
    )
    .await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let gateway_jwks_before = authority.jwks_requests().await?;
    let verifiers = Arc::new(vec![
        Verifier::Library(library),
        Verifier::Gateway {
            url: gw_url,
            http: http.clone(),
        },
        Verifier::Gateway {
            url: gwc_url,
            http: http.clone(),
        },
        Verifier::PyJwt(pyjwt),
    ]);

    let started = Instant::now();
    let checked: Arc<Mutex<Vec<Checked>>> = Arc::default();
    let issue: Arc<Mutex<Issue>> = Arc::default();
    let spec = Spec {
        duration: Duration::from_secs(seconds),
        max_ops: u64::MAX,
        concurrency: 8,
        rate: None,
    };
    let live = Arc::new(Live::default());
    let compromise = {
        let (authority, verifiers) = (Arc::clone(&authority), Arc::clone(&verifiers));
        let at = Duration::from_secs(seconds * 55 / 100);
        let prepublish = timing.prepublish;
        tokio::spawn(async move {
            tokio::time::sleep(at.saturating_sub(started.elapsed())).await;
            // The compromise switches to the pending key: wait until it has
            // been published for `prepublish`, as a scheduled switch would
            // (right after a rotation it is seconds old, and a verifier
            // that reads only the JWKS, PyJWT, may not hold it yet).
            if let Ok(keys) = authority.admin_get_keys(1).await {
                let created = keys
                    .iter()
                    .find(|k| k["state"] == "pending" && k["alg"] == "ES256")
                    .and_then(|k| k["created_at"].as_i64());
                if let Some(created) = created {
                    let ready = created + prepublish.as_secs() as i64 + 1;
                    let now = tessera_jose::UnixTime::now().secs();
                    if ready > now {
                        tokio::time::sleep(Duration::from_secs((ready - now) as u64)).await;
                    }
                }
            }
            // Up to now no key may have been met unannounced.
            let unknown_before = unknown_kid_fetches(&verifiers[0]);
            let c = compromise(&authority, started).await;
            c.map(|c| (c, unknown_before))
        })
    };
    let op = {
        let (authority, verifiers, checked, issue, http) = (
            Arc::clone(&authority),
            Arc::clone(&verifiers),
            Arc::clone(&checked),
            Arc::clone(&issue),
            http.clone(),
        );
        let recent: Arc<Mutex<VecDeque<(String, String, Duration)>>> = Arc::default();
        // Replayed tokens are at most half their lifetime old: far from
        // expiry whatever the verifiers' leeway.
        let replay_age = timing.access_token_ttl / 2;
        move |n: u64| {
            let (authority, verifiers, checked, issue, http, recent) = (
                Arc::clone(&authority),
                Arc::clone(&verifiers),
                Arc::clone(&checked),
                Arc::clone(&issue),
                http.clone(),
                Arc::clone(&recent),
            );
            async move {
                let node = (n % 3) as usize;
                let token = match client_credentials(&http, &authority, node).await {
                    Ok(t) => t,
                    Err(e) => {
                        *lock(&issue).errors.entry(e).or_default() += 1;
                        return false;
                    }
                };
                let issued = started.elapsed();
                let kid = kid_of(&token).unwrap_or_default();
                let verdicts = ask_all(&verifiers, &token, started).await;
                let replay = {
                    let mut recent = lock(&recent);
                    recent.push_back((token.clone(), kid.clone(), issued));
                    while recent.len() > 4096 {
                        recent.pop_front();
                    }
                    // An earlier token still well inside its lifetime.
                    let old: Vec<_> = recent
                        .iter()
                        .filter(|(_, _, at)| {
                            issued.saturating_sub(*at) >= Duration::from_secs(1)
                                && issued.saturating_sub(*at) <= replay_age
                        })
                        .collect();
                    (!old.is_empty()).then(|| old[(n as usize * 7919) % old.len()].clone())
                };
                let mut records = vec![Checked {
                    kid,
                    issued,
                    replay: false,
                    verdicts,
                }];
                if let Some((token, kid, issued)) = replay {
                    let verdicts = ask_all(&verifiers, &token, started).await;
                    records.push(Checked {
                        kid,
                        issued,
                        replay: true,
                        verdicts,
                    });
                }
                lock(&checked).extend(records);
                true
            }
        }
    };
    let report = load::run(&spec, live, op).await;
    let (compromise, unknown_before) = compromise.await.context("compromise task")??;
    let (compromised_kid, compromised_at) = (compromise.kid.clone(), compromise.answered);

    let lib_fetches = fetches(&verifiers[0]);
    let lib_unknown = unknown_kid_fetches(&verifiers[0]);
    let Verifier::PyJwt(py) = &verifiers[3] else {
        unreachable!("the last verifier is PyJWT")
    };
    let py_fetches = py.finish().await?;
    let total_jwks = authority.jwks_requests().await? - gateway_jwks_before;
    let gateway_fetches = total_jwks.saturating_sub(lib_fetches + py_fetches);

    // Documented bounds after the compromise answered: verifiers that
    // follow the feed refuse the key's tokens within a second; one that
    // only reads the JWKS holds it up to its cache lifetime after every
    // node dropped it (at most one refresh interval).
    let bounds = [
        Duration::from_secs(1),
        Duration::from_secs(1),
        Duration::from_secs(1),
        timing.jwks_max_age + timing.refresh_interval,
    ];
    let checked = std::mem::take(&mut *lock(&checked));
    let mut per = Vec::new();
    for (i, name) in NAMES.iter().enumerate() {
        let mut accepted = 0u64;
        let mut valid_refused = 0u64;
        let mut failures = 0u64;
        let mut late = 0u64;
        let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
        let mut last_accept_after: Option<f64> = None;
        let mut compromised_refused = 0u64;
        let mut samples = Vec::new();
        let mut first_refusal_after: Option<f64> = None;
        for c in &checked {
            let (verdict, at) = &c.verdicts[i];
            let compromised = c.kid == compromised_kid;
            match verdict {
                Verdict::Accepted => {
                    accepted += 1;
                    if compromised && *at > compromised_at {
                        let after = (*at - compromised_at).as_secs_f64();
                        last_accept_after = Some(last_accept_after.unwrap_or(0.0).max(after));
                        if *at >= compromised_at + bounds[i] {
                            late += 1;
                        }
                    }
                }
                Verdict::Refused(why) => {
                    if compromised && *at >= compromise.sent {
                        let after = at.as_secs_f64() - compromised_at.as_secs_f64();
                        first_refusal_after =
                            Some(first_refusal_after.unwrap_or(f64::MAX).min(after));
                        compromised_refused += 1;
                    } else {
                        valid_refused += 1;
                        *reasons.entry(why.clone()).or_default() += 1;
                        if samples.len() < 5 {
                            samples.push(json!({
                                "kid": c.kid, "issued_s": c.issued.as_secs_f64(),
                                "asked_s": at.as_secs_f64(), "replay": c.replay, "reason": why,
                            }));
                        }
                    }
                }
                Verdict::Failed(why) => {
                    failures += 1;
                    *reasons.entry(why.clone()).or_default() += 1;
                }
            }
        }
        let fetches = match i {
            0 => json!(lib_fetches),
            3 => json!(py_fetches),
            _ => json!(null),
        };
        per.push(json!({
            "verifier": name,
            "checked": checked.len(),
            "accepted": accepted,
            "valid_refused": valid_refused,
            "failures": failures,
            "compromised_accepted_after_bound": late,
            "bound_s": bounds[i].as_secs_f64(),
            "compromised_last_accepted_after_s": last_accept_after,
            "compromised_first_refused_after_s": first_refusal_after,
            "refusal_reasons": reasons,
            "compromised_refused": compromised_refused,
            "valid_refused_samples": samples,
            "jwks_fetches": fetches,
        }));
    }
    let kids: BTreeSet<&str> = checked.iter().map(|c| c.kid.as_str()).collect();
    let issued_after: u64 = checked
        .iter()
        .filter(|c| c.kid == compromised_kid && c.issued > compromised_at)
        .count() as u64;
    let issue_errors = std::mem::take(&mut lock(&issue).errors);
    let issue_error_count: u64 = issue_errors.values().sum();
    // Keys that signed: the first, each scheduled successor, the
    // compromise's successor.
    let rotations = kids.len().saturating_sub(1);
    // tessera-verify refreshes at 80% of its cache lifetime (a 304 mostly);
    // PyJWKClient when its lifespan is over. Plus the first fetch and one
    // spare; none for an unknown kid, under the prepublish rule.
    // After the compromise the replayed tokens of the removed key are
    // unknown kids: one fetch per cooldown at most.
    let life = verifiers_since.elapsed().as_secs_f64();
    let after = (started.elapsed() - compromise.answered).as_secs_f64();
    let unknown_bound = (after / timing.unknown_kid_cooldown.as_secs_f64()).ceil() as u64 + 1;
    let fetch_bound =
        (life / (0.8 * timing.min_cache_ttl.as_secs_f64())).ceil() as u64 + 2 + unknown_bound;
    let py_bound = (life / timing.jwks_max_age.as_secs_f64()).ceil() as u64 + 2;
    let all = |key: &str| {
        per.iter()
            .map(|p| p[key].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    let valid_refused = all("valid_refused");
    let late = all("compromised_accepted_after_bound");
    let failures = all("failures");
    let pass = valid_refused == 0
        && late == 0
        && failures == 0
        && issue_error_count == 0
        && rotations >= 5
        && unknown_before == 0
        && lib_unknown <= unknown_bound
        && lib_fetches <= fetch_bound
        && py_fetches <= py_bound
        && gateway_fetches <= 2 * fetch_bound;
    let summary = format!(
        "rotation: {} tokens in {:.0}s ({:.0}/s) across 3 nodes, {} keys signed ({} rotations incl. 1 compromise), \
         4 verifiers: valid refused {valid_refused}, compromised accepted after bound {late}, verifier failures {failures}, \
         issuance errors {issue_error_count}; JWKS fetches library {lib_fetches} (unknown kid before the compromise {unknown_before}, after {}), \
         gateways {gateway_fetches}, pyjwt {py_fetches} (bounds {fetch_bound}, 2x{fetch_bound}, {py_bound})",
        report.ok,
        report.seconds,
        report.per_second,
        kids.len(),
        rotations,
        lib_unknown - unknown_before,
    );
    Ok(json!({
        "scenario": "rotation",
        "pass": pass,
        "summary": summary,
        "load": report,
        "timing": timing_json(timing),
        "nodes": 3,
        "compromised_kid": compromised_kid,
        "compromised_at_s": compromised_at.as_secs_f64(),
        "compromised_key_tokens_issued_after_compromise": issued_after,
        "keys_signed": kids.len(),
        "rotations": rotations,
        "issuance_errors": issue_errors,
        "verifiers": per,
        "jwks_fetches": {
            "library": lib_fetches,
            "library_unknown_kid_before_compromise": unknown_before,
            "library_unknown_kid_after_compromise": lib_unknown - unknown_before,
            "bound_unknown_kid_after_compromise": unknown_bound,
            "gateways_together": gateway_fetches,
            "pyjwt": py_fetches,
            "bound_tessera_verify_each": fetch_bound,
            "bound_pyjwt": py_bound,
        },
    }))
}

pub(crate) fn timing_json(t: &Timing) -> Value {
    json!({
        "rotation_period_s": t.rotation_period.as_secs_f64(),
        "prepublish_s": t.prepublish.as_secs_f64(),
        "grace_s": t.grace.as_secs_f64(),
        "refresh_interval_s": t.refresh_interval.as_secs_f64(),
        "jwks_max_age_s": t.jwks_max_age.as_secs_f64(),
        "min_cache_ttl_s": t.min_cache_ttl.as_secs_f64(),
        "unknown_kid_cooldown_s": t.unknown_kid_cooldown.as_secs_f64(),
        "access_token_ttl_s": t.access_token_ttl.as_secs_f64(),
    })
}

/// The compromise: its kid, when it was asked for and when it answered
/// (the key stopped being valid in between).
#[derive(Debug)]
struct Compromise {
    kid: String,
    sent: Duration,
    answered: Duration,
}

/// Marks node 1's active key compromised (through
/// node 1); its kid and when the 200 came.
async fn compromise(authority: &Authority, started: Instant) -> Result<Compromise> {
    let token = client_credentials(&authority.http, authority, 1)
        .await
        .map_err(anyhow::Error::msg)?;
    let kid = kid_of(&token)?;
    let sent = started.elapsed();
    authority
        .admin_post(1, &format!("/admin/keys/{kid}/compromised"), json!({}))
        .await?;
    Ok(Compromise {
        kid,
        sent,
        answered: started.elapsed(),
    })
}

/// A client_credentials token from node `node`, or the error as a label.
pub(crate) async fn client_credentials(
    http: &reqwest::Client,
    authority: &Authority,
    node: usize,
) -> std::result::Result<String, String> {
    let r = http
        .post(format!("{}/token", authority.bases[node]))
        .basic_auth(&authority.quickstart.0, Some(&authority.quickstart.1))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .map_err(|e| format!("transport: {}", without_url(&e)))?;
    let status = r.status();
    let body: Value = r
        .json()
        .await
        .map_err(|_| format!("HTTP {status}, not JSON"))?;
    match body["access_token"].as_str() {
        Some(t) if status.is_success() => Ok(t.to_owned()),
        _ => Err(format!("HTTP {} {}", status.as_u16(), body["error"])),
    }
}

fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), "");
    }
    s
}

pub(crate) fn kid_of(token: &str) -> Result<String> {
    let parts = tessera_jose::decode_unverified(token, 8192)?;
    Ok(parts.header["kid"]
        .as_str()
        .context("token without kid")?
        .to_owned())
}

/// Every verifier's verdict on `token`, asked at once, with when each was asked.
async fn ask_all(
    verifiers: &[Verifier],
    token: &str,
    started: Instant,
) -> Vec<(Verdict, Duration)> {
    let ask = |i: usize| async move {
        let at = started.elapsed();
        (verifiers[i].check(token).await, at)
    };
    let (a, b, c, d) = tokio::join!(ask(0), ask(1), ask(2), ask(3));
    vec![a, b, c, d]
}

fn stats(v: &Verifier) -> Option<&tessera_verify::Stats> {
    match v {
        Verifier::Library(l) => l.remote().map(|r| r.stats()),
        _ => None,
    }
}

fn fetches(v: &Verifier) -> u64 {
    stats(v).map_or(0, |s| s.fetches.load(std::sync::atomic::Ordering::Relaxed))
}

fn unknown_kid_fetches(v: &Verifier) -> u64 {
    stats(v).map_or(0, |s| {
        s.unknown_kid_fetches
            .load(std::sync::atomic::Ordering::Relaxed)
    })
}
