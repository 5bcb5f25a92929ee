//! Scenario 3, the database goes away: two nodes on a PostgreSQL cluster
//! of the run's own, under a mixed load (client_credentials issuance, the
//! JWKS, revocation, the admin API), while the cluster is stopped for
//! 30 s (15 s in the short run) and started again, then while every
//! session of it is ended with `pg_terminate_backend`, again and again.
//!
//! What needs no database (issuance with a client secret, the JWKS) must
//! answer 200 throughout; what needs it answers 503 with `Retry-After`
//! quickly, never a 500, a hang or a dropped connection; `/readyz` says
//! 503 while the database is away; and everything answers 200 again
//! within seconds of its return, with no restart.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::lock;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{json, Value};

use crate::cluster::{Authority, Database, Timing};
use crate::load::{self, Live, Spec};
use crate::pg::Cluster;
use crate::rotation::{client_credentials, timing_json};
use crate::Ctx;

/// The kinds of request in the mix.
const KINDS: [&str; 4] = ["issue", "jwks", "revoke", "admin"];

/// Whether a kind needs the database.
fn needs_database(kind: &str) -> bool {
    matches!(kind, "revoke" | "admin")
}

#[derive(Clone, Debug)]
struct Answer {
    kind: &'static str,
    at: Duration,
    took: Duration,
    /// The HTTP status, or 0 for a transport failure (refused, reset, timeout).
    status: u16,
    retry_after: bool,
}

pub(crate) async fn run(ctx: &Ctx) -> Result<Value> {
    let outage = Duration::from_secs(if ctx.short { 15 } else { 30 });
    let terminations: u32 = if ctx.short { 5 } else { 20 };
    let dir = ctx.dir("outage")?;
    let cluster = Cluster::create().await?;
    // Rotation is beside the point here: a long period, the rest compressed.
    let timing = Timing::compressed(Duration::from_secs(3600));
    let authority = Arc::new(
        Authority::start(
            &ctx.tessera,
            &dir,
            2,
            &Database::Postgres(cluster.url()),
            &timing,
        )
        .await?,
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let started = Instant::now();
    let answers: Arc<Mutex<Vec<Answer>>> = Arc::default();
    let ready: Arc<Mutex<Vec<(Duration, usize, u16)>>> = Arc::default();

    // /readyz of both nodes, every 100 ms.
    let stop_polling = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (authority, ready, http, stop) = (
            Arc::clone(&authority),
            Arc::clone(&ready),
            http.clone(),
            Arc::clone(&stop_polling),
        );
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for (i, base) in authority.bases.iter().enumerate() {
                    let status = match http.get(format!("{base}/readyz")).send().await {
                        Ok(r) => r.status().as_u16(),
                        Err(_) => 0,
                    };
                    lock(&ready).push((started.elapsed(), i, status));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    // The faults, on their own timeline.
    let warmup = Duration::from_secs(5);
    let recovery = Duration::from_secs(10);
    let faults = {
        tokio::spawn(async move {
            tokio::time::sleep(warmup).await;
            let stopped = started.elapsed();
            cluster.stop().await?;
            let stop_took = started.elapsed() - stopped;
            tokio::time::sleep(outage.saturating_sub(stop_took)).await;
            let restart = started.elapsed();
            cluster.start().await?;
            let back = started.elapsed();
            tokio::time::sleep(recovery).await;
            let mut killed = Vec::new();
            let terminate_from = started.elapsed();
            for _ in 0..terminations {
                killed.push(cluster.terminate_backends().await?);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let terminate_until = started.elapsed();
            anyhow::Ok((
                cluster,
                stopped,
                restart,
                back,
                killed,
                terminate_from,
                terminate_until,
            ))
        })
    };
    let seconds = (warmup + outage + recovery).as_secs() + u64::from(terminations) + 5;
    // One closed-loop load per kind of request, so that requests that wait
    // for the database do not slow down those that need none.
    let duration = Duration::from_secs(ctx.seconds(seconds, seconds).max(seconds));
    let mut loads = Vec::new();
    for (kind, concurrency) in KINDS.iter().zip([3, 1, 2, 1]) {
        let spec = Spec {
            duration,
            max_ops: u64::MAX,
            concurrency,
            rate: None,
        };
        let (authority, answers, http) =
            (Arc::clone(&authority), Arc::clone(&answers), http.clone());
        let op = move |n: u64| {
            let (authority, answers, http) =
                (Arc::clone(&authority), Arc::clone(&answers), http.clone());
            async move {
                let node = (n % 2) as usize;
                let at = started.elapsed();
                let t = Instant::now();
                let (status, retry_after) = ask(&http, &authority, kind, node).await;
                lock(&answers).push(Answer {
                    kind,
                    at,
                    took: t.elapsed(),
                    status,
                    retry_after,
                });
                status == 200
            }
        };
        loads.push(tokio::spawn(async move {
            (*kind, load::run(&spec, Arc::new(Live::default()), op).await)
        }));
    }
    let mut reports = BTreeMap::new();
    for l in loads {
        let (kind, report) = l.await?;
        reports.insert(kind, report);
    }
    let total_ops: u64 = reports.values().map(|r| r.ops).sum();
    let total_seconds = reports.values().map(|r| r.seconds).fold(0.0, f64::max);
    let (cluster, stopped, restart, back, killed, terminate_from, terminate_until) =
        faults.await??;
    stop_polling.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = poller.await;
    drop(cluster);

    let answers = std::mem::take(&mut *lock(&answers));
    let ready = std::mem::take(&mut *lock(&ready));
    // Phases: before the stop, while stopped (until the restart was
    // asked), while starting, after, and the terminations.
    let phase = |at: Duration| -> &'static str {
        if at < stopped {
            "before"
        } else if at < restart {
            "stopped"
        } else if at < back {
            "restarting"
        } else if at >= terminate_from && at <= terminate_until + Duration::from_secs(1) {
            "terminations"
        } else {
            "after"
        }
    };
    let mut table: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut violations: BTreeMap<&str, u64> = BTreeMap::new();
    let mut slowest_503 = Duration::ZERO;
    let mut first_ok_after: BTreeMap<&str, f64> = BTreeMap::new();
    for a in &answers {
        let p = phase(a.at);
        *table
            .entry(format!("{}/{p}", a.kind))
            .or_default()
            .entry(a.status.to_string())
            .or_default() += 1;
        // A request answered while a fault was on (or in the two seconds
        // the pool takes to reconnect after it) may be the documented 503.
        let faulted = [
            (stopped, back + Duration::from_secs(2)),
            (terminate_from, terminate_until + Duration::from_secs(2)),
        ]
        .iter()
        .any(|(from, until)| a.at < *until && a.at + a.took >= *from);
        let bad = match a.status {
            200 => None,
            503 if needs_database(a.kind) && !a.retry_after => Some("503 without Retry-After"),
            503 if needs_database(a.kind) && faulted => None,
            503 if needs_database(a.kind) => Some("503 with no fault on"),
            0 => Some("transport failure (reset, refused or 10 s timeout)"),
            500..=599 => Some("5xx other than a documented 503"),
            _ if !needs_database(a.kind) => Some("non-200 from what needs no database"),
            _ => Some("unexpected status"),
        };
        if let Some(bad) = bad {
            *violations.entry(bad).or_default() += 1;
        }
        if a.status == 503 {
            slowest_503 = slowest_503.max(a.took);
        }
        if a.status == 200 && a.at >= back && needs_database(a.kind) {
            first_ok_after
                .entry(a.kind)
                .or_insert((a.at - back).as_secs_f64());
        }
    }
    // A 503 must come quickly: within the pool's 1 s acquire timeout and
    // some slack, never a hang.
    let slow_503 = answers
        .iter()
        .filter(|a| a.status == 503 && a.took > Duration::from_secs(3))
        .count() as u64;
    if slow_503 > 0 {
        violations.insert("503 slower than 3 s", slow_503);
    }
    let ready_503_while_stopped = ready
        .iter()
        .filter(|(at, _, s)| *at > stopped + Duration::from_secs(2) && *at < restart && *s == 503)
        .count();
    let ready_not_503_while_stopped = ready
        .iter()
        .filter(|(at, _, s)| *at > stopped + Duration::from_secs(2) && *at < restart && *s != 503)
        .count() as u64;
    if ready_not_503_while_stopped > 0 {
        violations.insert(
            "/readyz not 503 while the database was stopped",
            ready_not_503_while_stopped,
        );
    }
    // Recovery: from the database accepting connections to each node's
    // last non-200 /readyz.
    let mut ready_recovery = Vec::new();
    for node in 0..authority.bases.len() {
        let last_bad = ready
            .iter()
            .filter(|(at, i, s)| *i == node && *at >= back && *at < terminate_from && *s != 200)
            .map(|(at, _, _)| *at)
            .max();
        ready_recovery.push(last_bad.map_or(0.0, |t| (t - back).as_secs_f64()));
    }
    let issue_during_outage = answers
        .iter()
        .filter(|a| a.kind == "issue" && (stopped..back).contains(&a.at))
        .count();
    let issue_rate = |from: Duration, until: Duration| {
        let n = answers
            .iter()
            .filter(|a| a.kind == "issue" && a.status == 200 && (from..until).contains(&a.at))
            .count();
        n as f64 / (until - from).as_secs_f64().max(1e-9)
    };
    let issue_per_second = json!({
        "before": issue_rate(Duration::ZERO, stopped),
        "stopped": issue_rate(stopped, restart),
        "after": issue_rate(back + Duration::from_secs(2), terminate_from),
    });
    // No node died (none was restarted either).
    let mut authority =
        Arc::try_unwrap(authority).map_err(|_| anyhow::anyhow!("the authority is still shared"))?;
    let nodes_exited = authority
        .nodes
        .iter_mut()
        .filter_map(|n| n.exited())
        .count() as u64;
    if nodes_exited > 0 {
        violations.insert("a node exited", nodes_exited);
    }
    let violation_count: u64 = violations.values().sum();
    let recovered = KINDS
        .iter()
        .filter(|k| needs_database(k))
        .all(|k| first_ok_after.contains_key(k));
    let pass = violation_count == 0 && recovered && ready_503_while_stopped > 0;
    let summary = format!(
        "outage: {} requests in {:.0}s ({:.0}/s) on 2 nodes; database stopped {:.0}s, then {} pg_terminate_backend rounds ({} sessions ended); \
         issuance 200 throughout ({issue_during_outage} during the stop, {:.0}/s against {:.0}/s before), slowest 503 {:.2}s, \
         recovered: revoke {:.2}s, admin {:.2}s, /readyz {:.2}s after the database was back; violations {violation_count}",
        total_ops,
        total_seconds,
        total_ops as f64 / total_seconds.max(1e-9),
        (restart - stopped).as_secs_f64(),
        terminations,
        killed.iter().sum::<u64>(),
        issue_per_second["stopped"].as_f64().unwrap_or(0.0),
        issue_per_second["before"].as_f64().unwrap_or(0.0),
        slowest_503.as_secs_f64(),
        first_ok_after.get("revoke").copied().unwrap_or(f64::NAN),
        first_ok_after.get("admin").copied().unwrap_or(f64::NAN),
        ready_recovery.iter().copied().fold(0.0, f64::max),
    );
    Ok(json!({
        "scenario": "outage",
        "pass": pass,
        "summary": summary,
        "load": reports,
        "timing": timing_json(&timing),
        "nodes": 2,
        "nodes_exited": nodes_exited,
        "database_stopped_s": [stopped.as_secs_f64(), restart.as_secs_f64()],
        "database_back_s": back.as_secs_f64(),
        "terminations": {"rounds": terminations, "sessions_ended": killed,
                          "from_s": terminate_from.as_secs_f64(), "until_s": terminate_until.as_secs_f64()},
        "statuses_by_kind_and_phase": table,
        "issue_per_second": issue_per_second,
        "violations": violations,
        "slowest_503_s": slowest_503.as_secs_f64(),
        "first_200_after_return_s": first_ok_after,
        "readyz_503_samples_while_stopped": ready_503_while_stopped,
        "readyz_recovery_s_per_node": ready_recovery,
    }))
}

/// One request of `kind` at node `node`: its status (0: transport
/// failure) and whether it carried `Retry-After`.
async fn ask(
    http: &reqwest::Client,
    authority: &Authority,
    kind: &str,
    node: usize,
) -> (u16, bool) {
    let base = &authority.bases[node];
    let request = match kind {
        "issue" => {
            return match client_credentials(http, authority, node).await {
                Ok(_) => (200, false),
                Err(e) => (status_of(&e), false),
            }
        }
        "jwks" => http.get(format!("{base}/.well-known/jwks.json")),
        "revoke" => {
            // A token to revoke: issuance needs no database.
            let token = match client_credentials(http, authority, node).await {
                Ok(t) => t,
                Err(e) => return (status_of(&e), false),
            };
            http.post(format!("{base}/revoke"))
                .basic_auth(&authority.quickstart.0, Some(&authority.quickstart.1))
                .form(&[("token", token.as_str())])
        }
        _ => http
            .get(format!("{base}/admin/clients"))
            .bearer_auth(&authority.admin),
    };
    match request.send().await {
        Ok(r) => (
            r.status().as_u16(),
            r.headers().contains_key(reqwest::header::RETRY_AFTER),
        ),
        Err(_) => (0, false),
    }
}

/// The status in a [`client_credentials`] error label ("HTTP 503 ..."), 0 for transport.
fn status_of(label: &str) -> u16 {
    label
        .strip_prefix("HTTP ")
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
