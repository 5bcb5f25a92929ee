//! Scenario 5, clocks, with real clocks shifted by libfaketime (preloaded
//! into one process; the monotonic clock is left alone):
//!
//! 1. Verifiers whose clocks are behind or ahead: gateways at -90 s,
//!    -30 s, 0, +30 s, +70 s and +90 s, against tokens that live 20 s
//!    and the verifier's 60 s leeway. Each is asked about a fresh token
//!    and about the same token 15 s later; what it says is compared with
//!    what the rules predict (RFC 7519 `exp` with leeway; Tessera's tokens
//!    carry no `nbf`, so a slow verifier cannot tell a token from the
//!    future).
//! 2. An authority node whose clock jumps during rotations: two nodes on
//!    PostgreSQL, node B's clock jumping 2 h forward, then 2 h back, then
//!    to the right time, while both issue tokens that a gateway and the
//!    library (real clocks) verify. Counted: node A's tokens refused (must
//!    be 0); B's tokens by phase and verdict (what a user of B sees); every
//!    key's first signature against when it was first published (an
//!    activation less than `prepublish` after publication is early); and
//!    after each phase: one active key, both nodes serving the same JWKS.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::lock;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde_json::{json, Value};

use crate::cluster::{postgres_url, served_kids, Authority, Database, Schema, Timing};
use crate::rotation::{client_credentials, kid_of};
use crate::verifiers::{self, GatewaySpec, Verdict, Verifier};
use crate::Ctx;

/// libfaketime's multithreaded library, as Debian's `faketime` installs it.
fn libfaketime() -> Result<PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/faketime/libfaketimeMT.so.1",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .context(
        "libfaketime is not installed (Debian: apt-get install faketime; scripts/reliability does)",
    )
}

/// The environment that shifts a process's wall clock by what `file` says
/// (`+7200`, `-30`...), read again every second.
fn shifted(lib: &Path, file: &Path) -> Vec<(String, String)> {
    vec![
        ("LD_PRELOAD".into(), lib.display().to_string()),
        ("FAKETIME_TIMESTAMP_FILE".into(), file.display().to_string()),
        ("FAKETIME_CACHE_DURATION".into(), "1".into()),
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
        ("DONT_FAKE_MONOTONIC".into(), "1".into()),
    ]
}

pub(crate) async fn run(ctx: &Ctx) -> Result<Value> {
    let lib = libfaketime()?;
    let schema = Schema::create(&postgres_url()?, "clocks").await?;
    let result = with_schema(ctx, &lib, &schema.url).await;
    schema.drop_now().await?;
    result
}

async fn with_schema(ctx: &Ctx, lib: &Path, url: &str) -> Result<Value> {
    let dir = ctx.dir("clocks")?;
    let mut timing = Timing::compressed(Duration::from_secs(20));
    timing.access_token_ttl = Duration::from_secs(20);
    let b_clock = dir.join("node1.faketime");
    std::fs::write(&b_clock, "+0\n")?;
    let authority = Arc::new(
        Authority::start_with_env(
            &ctx.tessera,
            &dir,
            2,
            &Database::Postgres(url.to_owned()),
            &timing,
            &|i| {
                if i == 1 {
                    shifted(lib, &b_clock)
                } else {
                    Vec::new()
                }
            },
        )
        .await?,
    );
    let (feed_id, feed_file) = authority.feed_client(&dir).await?;
    let feed_secret = std::fs::read_to_string(&feed_file)?.trim().to_owned();
    let upstream = verifiers::upstream().await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;

    let skews = skewed_verifiers(
        ctx,
        &dir,
        lib,
        &authority,
        &timing,
        upstream,
        (&feed_id, &feed_file),
        &http,
    )
    .await?;
    let jumps = jumping_node(
        ctx,
        &dir,
        &authority,
        &timing,
        upstream,
        (&feed_id, &feed_file, &feed_secret),
        &b_clock,
        &http,
    )
    .await?;
    let pass = skews["unexpected"].as_u64() == Some(0)
        && jumps["a_tokens_refused"].as_u64() == Some(0)
        && jumps["invariant_violations"]
            .as_array()
            .is_some_and(Vec::is_empty)
        && jumps["early_activations"].as_u64() == Some(0)
        && jumps["tokens_stamped_off_clock"].as_u64() == Some(0);
    let summary = format!(
        "clocks: verifier skew -90..+90 s: {} of {} verdicts as the rules predict; node clock +2h/-2h during rotations: \
         node A's tokens refused {}, node B's tokens refused {} of {} (by phase in the result), tokens stamped by a wrong clock {}, early activations {}, invariant violations {}",
        skews["as_predicted"], skews["asked"],
        jumps["a_tokens_refused"], jumps["b_tokens_refused"], jumps["b_tokens"],
        jumps["tokens_stamped_off_clock"],
        jumps["early_activations"],
        jumps["invariant_violations"].as_array().map_or(0, Vec::len),
    );
    Ok(json!({
        "scenario": "clocks",
        "pass": pass,
        "summary": summary,
        "verifier_skew": skews,
        "node_clock_jumps": jumps,
    }))
}

/// Part 1: gateways with skewed clocks, a fresh token and the same 15 s later.
#[allow(clippy::too_many_arguments)]
async fn skewed_verifiers(
    ctx: &Ctx,
    dir: &Path,
    lib: &Path,
    authority: &Authority,
    timing: &Timing,
    upstream: std::net::SocketAddr,
    feed: (&str, &Path),
    http: &reqwest::Client,
) -> Result<Value> {
    const SKEWS: [i64; 6] = [-90, -30, 0, 30, 70, 90];
    let leeway = 60i64; // tessera-verify's default, the gateway's
    let ttl = timing.access_token_ttl.as_secs() as i64;
    let mut gateways = Vec::new();
    for skew in SKEWS {
        let file = dir.join(format!("gateway{skew}.faketime"));
        std::fs::write(&file, format!("{skew:+}\n"))?;
        let name = format!("gateway-skew{skew}");
        let (proc, url) = verifiers::gateway(
            &ctx.tessera,
            dir,
            authority,
            timing,
            GatewaySpec {
                name: &name,
                token_cache: 0,
                upstream,
                feed,
                env: shifted(lib, &file),
            },
        )
        .await?;
        gateways.push((
            skew,
            proc,
            Verifier::Gateway {
                url,
                http: http.clone(),
            },
        ));
    }
    let token = client_credentials(http, authority, 0)
        .await
        .map_err(anyhow::Error::msg)?;
    let issued = Instant::now();
    let mut rows = Vec::new();
    let (mut asked, mut as_predicted) = (0u64, 0u64);
    for age in [0i64, 15] {
        tokio::time::sleep(Duration::from_secs(age as u64).saturating_sub(issued.elapsed())).await;
        for (skew, _, v) in &gateways {
            // exp is issue + ttl; the verifier refuses once its now - leeway >= exp.
            let predicted = age + skew - leeway < ttl;
            let verdict = v.check(&token).await;
            let accepted = verdict == Verdict::Accepted;
            asked += 1;
            if accepted == predicted {
                as_predicted += 1;
            }
            rows.push(json!({
                "skew_s": skew, "token_age_s": age, "accepted": accepted, "predicted": predicted,
                "verdict": format!("{verdict:?}"),
                // What a user of this verifier sees: how long a fresh token works there.
                "usable_for_s": (ttl + leeway - skew).clamp(0, ttl + leeway),
            }));
        }
    }
    for (_, mut proc, _) in gateways {
        proc.kill9().await?;
    }
    Ok(json!({
        "ttl_s": ttl, "leeway_s": leeway, "asked": asked, "as_predicted": as_predicted,
        "unexpected": asked - as_predicted, "verdicts": rows,
    }))
}

/// One issued and verified token.
#[derive(Debug)]
struct Seen {
    node: usize,
    /// The token's iat minus the harness's wall clock when it came, in s.
    iat_error: i64,
    phase: &'static str,
    kid: String,
    at: Duration,
    verdicts: Vec<Verdict>,
}

/// Part 2: node B's clock jumps while both nodes issue and keys rotate.
#[allow(clippy::too_many_arguments)]
async fn jumping_node(
    ctx: &Ctx,
    dir: &Path,
    authority: &Arc<Authority>,
    timing: &Timing,
    upstream: std::net::SocketAddr,
    feed: (&str, &Path, &str),
    b_clock: &Path,
    http: &reqwest::Client,
) -> Result<Value> {
    let library = verifiers::library(authority, timing, (feed.0, feed.2)).await?;
    let (_gw, gw_url) = verifiers::gateway(
        &ctx.tessera,
        dir,
        authority,
        timing,
        GatewaySpec {
            name: "gateway",
            token_cache: 0,
            upstream,
            feed: (feed.0, feed.1),
            env: Vec::new(),
        },
    )
    .await?;
    let verifiers = Arc::new(vec![
        Verifier::Library(library),
        Verifier::Gateway {
            url: gw_url,
            http: http.clone(),
        },
    ]);
    let phase_len = if ctx.short { 12 } else { 40 };
    let phases: [(&'static str, &str); 4] = [
        ("right", "+0"),
        ("ahead 2h", "+7200"),
        ("behind 2h", "-7200"),
        ("right again", "+0"),
    ];
    let started = Instant::now();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let phase_now: Arc<Mutex<&'static str>> = Arc::new(Mutex::new("right"));
    // First publication of every kid, from node A's JWKS every 200 ms.
    let published: Arc<Mutex<BTreeMap<String, Duration>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (authority, published, stop, http) = (
            Arc::clone(authority),
            Arc::clone(&published),
            Arc::clone(&stop),
            http.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for base in &authority.bases {
                    if let Ok(kids) = served_kids(&http, base).await {
                        for kid in kids {
                            lock(&published).entry(kid).or_insert(started.elapsed());
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let load = {
        let (authority, verifiers, seen, phase_now, stop, http) = (
            Arc::clone(authority),
            Arc::clone(&verifiers),
            Arc::clone(&seen),
            Arc::clone(&phase_now),
            Arc::clone(&stop),
            http.clone(),
        );
        tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let node = n % 2;
                let phase = *lock(&phase_now);
                let Ok(token) = client_credentials(&http, &authority, node).await else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let at = started.elapsed();
                let now = tessera_jose::UnixTime::now().secs();
                let iat_error = tessera_jose::decode_unverified(&token, 8192)
                    .ok()
                    .and_then(|p| p.claims["iat"].as_i64())
                    .map_or(i64::MAX, |iat| iat - now);
                let (a, b) = tokio::join!(verifiers[0].check(&token), verifiers[1].check(&token));
                lock(&seen).push(Seen {
                    node,
                    iat_error,
                    phase,
                    kid: kid_of(&token).unwrap_or_default(),
                    at,
                    verdicts: vec![a, b],
                });
            }
        })
    };
    let mut violations = Vec::new();
    for (name, offset) in phases {
        std::fs::write(b_clock, format!("{offset}\n"))?;
        // libfaketime reads the file again within a second.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        *lock(&phase_now) = name;
        tokio::time::sleep(Duration::from_secs(phase_len)).await;
        violations.extend(invariants(authority, http, name).await?);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = load.await;
    let _ = watcher.await;

    let seen = std::mem::take(&mut *lock(&seen));
    let published = std::mem::take(&mut *lock(&published));
    let mut by_phase: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let (mut a_refused, mut b_refused, mut b_tokens) = (0u64, 0u64, 0u64);
    // Tokens stamped by a wrong clock (iat off by more than the node's
    // allowance, half the leeway, plus a second of rounding).
    let allowance = timing.leeway.as_secs() as i64 / 2 + 1;
    let mut off_clock = 0u64;
    let mut worst_off = 0i64;
    let mut first_signed: BTreeMap<&str, Duration> = BTreeMap::new();
    for s in &seen {
        first_signed.entry(s.kid.as_str()).or_insert(s.at);
        if s.iat_error.abs() > allowance {
            off_clock += 1;
            worst_off = worst_off.max(s.iat_error.abs());
        }
        let refused = s.verdicts.iter().any(|v| *v != Verdict::Accepted);
        let label = s
            .verdicts
            .iter()
            .map(|v| match v {
                Verdict::Accepted => "accepted".to_owned(),
                Verdict::Refused(r) | Verdict::Failed(r) => r.clone(),
            })
            .collect::<Vec<_>>()
            .join(" / ");
        *by_phase
            .entry(format!(
                "node {} {}",
                if s.node == 0 { "A" } else { "B" },
                s.phase
            ))
            .or_default()
            .entry(label)
            .or_default() += 1;
        if s.node == 0 {
            a_refused += u64::from(refused);
        } else {
            b_tokens += 1;
            b_refused += u64::from(refused);
        }
    }
    // A key's first signature against its first publication.
    let mut activations = Vec::new();
    let mut early = 0u64;
    for (kid, signed) in &first_signed {
        let Some(published) = published.get(*kid) else {
            continue;
        };
        let lead = signed.as_secs_f64() - published.as_secs_f64();
        // The first key signs from the start: nothing was published before it.
        let first = *published < Duration::from_secs(2);
        if !first && lead + 0.5 < timing.prepublish.as_secs_f64() {
            early += 1;
        }
        activations.push(json!({"kid": kid, "published_s": published.as_secs_f64(), "first_signed_s": signed.as_secs_f64(), "lead_s": lead}));
    }
    Ok(json!({
        "phase_s": phase_len,
        "a_tokens_refused": a_refused,
        "b_tokens": b_tokens,
        "b_tokens_refused": b_refused,
        "tokens_stamped_off_clock": off_clock,
        "worst_iat_error_s": worst_off,
        "verdicts_by_node_and_phase (library / gateway)": by_phase,
        "activations": activations,
        "early_activations": early,
        "prepublish_s": timing.prepublish.as_secs_f64(),
        "invariant_violations": violations,
    }))
}

/// One active key in the store's view of both nodes, and both serving one JWKS.
async fn invariants(
    authority: &Authority,
    http: &reqwest::Client,
    phase: &str,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut sets = Vec::new();
    for base in &authority.bases {
        let mut kids = served_kids(http, base).await?;
        kids.sort();
        sets.push(kids);
    }
    if sets.windows(2).any(|w| w[0] != w[1]) {
        out.push(format!("{phase}: the nodes serve different JWKS: {sets:?}"));
    }
    let keys = authority.admin_get_keys(0).await?;
    let active = keys
        .iter()
        .filter(|k| k["state"] == "active" && k["alg"] == "ES256")
        .count();
    if active != 1 {
        out.push(format!("{phase}: {active} active ES256 keys"));
    }
    Ok(out)
}
