//! Scenario 6, soak: one node on PostgreSQL (a cluster of the run's own,
//! with PostgreSQL's default settings) for 30 minutes (1 in the
//! short run) at about half the capacity measured at its start, issuing
//! and revoking tokens while keys rotate; every 10 s the node's resident
//! memory, open file descriptors, the database's size and the window's
//! p99 latency are sampled. Growth must level off: the last third of the
//! run may not grow past the first third's peak by more than a margin.
//! The audit log is measured apart: it keeps every revocation for
//! `admin.audit_retention` (at least a day, 90 by default), so within a
//! run it can only grow; its bytes per revocation are reported.
//! The series go to `soak.csv` and a plot to `soak.png`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde_json::{json, Value};

use crate::cluster::{Authority, Database, Timing};
use crate::load::{self, Live, Percentiles, Spec};
use crate::pg::Cluster;
use crate::rotation::client_credentials;
use crate::Ctx;

/// One sample of the node.
#[derive(Clone, Debug, serde::Serialize)]
struct Sample {
    t_s: f64,
    rss_kib: u64,
    fds: u64,
    /// Every table of the schema but the audit log, with their indexes
    /// and TOAST.
    db_bytes: i64,
    /// The audit log: kept `admin.audit_retention` (90 days at least 1
    /// day), so it grows for the whole run by design.
    audit_bytes: i64,
    p99_ms: f64,
    ops_per_s: f64,
}

pub(crate) async fn run(ctx: &Ctx) -> Result<Value> {
    let seconds = ctx.seconds(60, 1800);
    // A PostgreSQL cluster of the run's own, with PostgreSQL's defaults
    // (autovacuum on): the deny-list deletes what expires, and a database
    // without autovacuum, as the shared test cluster here is configured,
    // keeps every dead row.
    let cluster = Cluster::create().await?;
    with_schema(ctx, seconds, &cluster.url()).await
}

async fn with_schema(ctx: &Ctx, seconds: u64, url: &str) -> Result<Value> {
    let dir = ctx.dir("soak")?;
    // Rotations every minute; tokens live a minute, so the deny-list
    // reaches its steady size early in the run.
    let mut timing = Timing::compressed(Duration::from_secs(60));
    timing.access_token_ttl = Duration::from_secs(60);
    timing.grace = timing.access_token_ttl + timing.leeway + Duration::from_secs(5);
    let authority = Arc::new(
        Authority::start(
            &ctx.tessera,
            &dir,
            1,
            &Database::Postgres(url.to_owned()),
            &timing,
        )
        .await?,
    );
    let pid = authority.nodes[0].pid().context("node has no pid")?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let db = sqlx::PgPool::connect(url).await?;

    // Capacity: 10 s closed loop of the same mix.
    let capacity = load::run(
        &Spec {
            duration: Duration::from_secs(10),
            max_ops: u64::MAX,
            concurrency: 8,
            rate: None,
        },
        Arc::new(Live::default()),
        mix(Arc::clone(&authority), http.clone()),
    )
    .await;
    let rate = (capacity.per_second / 2.0).max(1.0);

    let live = Arc::new(Live::default());
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let started = Instant::now();
    let sampler = {
        let (live, samples, db) = (Arc::clone(&live), Arc::clone(&samples), db.clone());
        tokio::spawn(async move {
            let mut last_ops = 0;
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            tick.tick().await;
            loop {
                tick.tick().await;
                let ops = live.ops.load(Ordering::Relaxed);
                let window: Percentiles = live.latencies.take_window();
                let size = |table: &'static str| {
                    let db = db.clone();
                    async move {
                        sqlx::query_scalar::<_, i64>(&format!(
                            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c \
                             JOIN pg_namespace n ON n.oid = c.relnamespace \
                             WHERE n.nspname = current_schema() AND c.relkind = 'r' AND {table}"
                        ))
                        .fetch_one(&db)
                        .await
                        .unwrap_or(-1)
                    }
                };
                let db_bytes = size("c.relname <> 'audit_log'").await;
                let audit_bytes = size("c.relname = 'audit_log'").await;
                let sample = Sample {
                    t_s: started.elapsed().as_secs_f64().round(),
                    rss_kib: rss_kib(pid).unwrap_or(0),
                    fds: fds(pid).unwrap_or(0),
                    db_bytes,
                    audit_bytes,
                    p99_ms: window.p99_ms,
                    ops_per_s: (ops - last_ops) as f64 / 10.0,
                };
                last_ops = ops;
                samples
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(sample);
            }
        })
    };
    let report = load::run(
        &Spec {
            duration: Duration::from_secs(seconds),
            max_ops: u64::MAX,
            concurrency: 16,
            rate: Some(rate),
        },
        Arc::clone(&live),
        mix(Arc::clone(&authority), http.clone()),
    )
    .await;
    sampler.abort();
    let samples = std::mem::take(
        &mut *samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    db.close().await;

    let csv = dir.join("soak.csv");
    let mut text = String::from("t_s,rss_kib,fds,db_bytes,audit_bytes,p99_ms,ops_per_s\n");
    for s in &samples {
        text.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            s.t_s, s.rss_kib, s.fds, s.db_bytes, s.audit_bytes, s.p99_ms, s.ops_per_s
        ));
    }
    std::fs::write(&csv, text)?;
    let png = dir.join("soak.png");
    let plotted = plot(ctx, &csv, &png).await;

    // Levelling off: the last third's peak against the first third's.
    let third = samples.len() / 3;
    let level = |f: &dyn Fn(&Sample) -> f64, margin: f64| -> (f64, f64, bool) {
        if third == 0 {
            return (0.0, 0.0, false);
        }
        let first = samples[..third].iter().map(f).fold(0.0, f64::max);
        let last = samples[samples.len() - third..]
            .iter()
            .map(f)
            .fold(0.0, f64::max);
        (first, last, last <= first * (1.0 + margin) + 1.0)
    };
    let rss = level(&|s| s.rss_kib as f64, 0.25);
    let fd = level(&|s| s.fds as f64, 0.10);
    let dbs = level(&|s| s.db_bytes as f64, 0.25);
    let p99 = level(&|s| s.p99_ms, 1.0);
    // The audit log's growth per revocation (a quarter of the requests).
    let audit_per_revocation = match (samples.first(), samples.last()) {
        (Some(a), Some(b)) if report.ops > 0 => {
            (b.audit_bytes - a.audit_bytes) as f64 / (report.ops as f64 / 4.0)
        }
        _ => 0.0,
    };
    let errors = report.failed;
    // Under ten minutes (the short run) the deny-list and the key set are
    // still filling (tokens live a minute, retired keys stay for the
    // grace): the series are reported, not judged.
    let judged = seconds >= 600;
    let pass = (!judged || (rss.2 && fd.2 && dbs.2)) && errors == 0 && plotted.is_ok();
    let summary = format!(
        "soak: {:.0} min at {:.0}/s (half of the {:.0}/s measured), {} requests, {errors} failed; \
         peaks first third -> last third: RSS {:.1} -> {:.1} MiB, fds {} -> {}, database without the audit log {:.1} -> {:.1} MiB, p99 {:.1} -> {:.1} ms; \
         the audit log grows {audit_per_revocation:.0} bytes a revocation (kept 90 days by default){}",
        seconds as f64 / 60.0,
        rate,
        capacity.per_second,
        report.ops,
        rss.0 / 1024.0,
        rss.1 / 1024.0,
        fd.0,
        fd.1,
        dbs.0 / 1048576.0,
        dbs.1 / 1048576.0,
        p99.0,
        p99.1,
        match &plotted {
            Ok(()) => format!("; plot {}", png.display()),
            Err(e) => format!("; no plot: {e:#}"),
        },
    );
    Ok(json!({
        "scenario": "soak",
        "pass": pass,
        "summary": summary,
        "capacity_per_s": capacity.per_second,
        "rate_per_s": rate,
        "load": report,
        "audit_bytes_per_revocation": audit_per_revocation,
        "levelled_off": {"judged": judged, "rss": rss.2, "fds": fd.2, "database": dbs.2, "p99": p99.2},
        "samples": samples,
        "csv": csv.display().to_string(),
        "png": png.display().to_string(),
    }))
}

/// The mix: three client_credentials tokens for one revocation of one of
/// them (with a rotation now and then from the node's own schedule).
fn mix(
    authority: Arc<Authority>,
    http: reqwest::Client,
) -> impl Fn(u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>
       + Send
       + Sync
       + 'static {
    move |n: u64| {
        let (authority, http) = (Arc::clone(&authority), http.clone());
        Box::pin(async move {
            let Ok(token) = client_credentials(&http, &authority, 0).await else {
                return false;
            };
            if n % 4 != 3 {
                return true;
            }
            http.post(format!("{}/revoke", authority.bases[0]))
                .basic_auth(&authority.quickstart.0, Some(&authority.quickstart.1))
                .form(&[("token", token.as_str())])
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// `python reliability/plot_soak.py CSV PNG` (matplotlib, installed by
/// scripts/reliability).
async fn plot(ctx: &Ctx, csv: &std::path::Path, png: &std::path::Path) -> Result<()> {
    let out = tokio::process::Command::new(crate::verifiers::python())
        .arg(ctx.root.join("reliability/plot_soak.py"))
        .arg(csv)
        .arg(png)
        .output()
        .await?;
    if !out.status.success() {
        anyhow::bail!("plot_soak.py: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}
