//! The reliability campaign (docs/RELIABILITY.md): each scenario starts
//! real `tessera serve` nodes, gateways and verifiers on loopback, puts
//! them under load, injects its faults, counts what went wrong, prints one
//! summary line and writes a JSON result. Run through
//! `./scripts/reliability [SCENARIO...] [--minutes N] [--short]`.
//!
//! `reliability [SCENARIO...|all] [--short] [--minutes N] [--out DIR] [--tessera BIN]`

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

mod clocks;
mod cluster;
mod disk;
mod kill;
mod load;
mod outage;
mod pg;
mod proc;
mod rotation;
mod soak;
mod verifiers;

const SCENARIOS: [&str; 6] = ["rotation", "kill", "outage", "disk", "clocks", "soak"];

/// What every scenario is given.
#[derive(Debug)]
pub struct Ctx {
    /// The `tessera` binary under test.
    pub tessera: PathBuf,
    /// The repository (for the scripts a scenario runs).
    pub root: PathBuf,
    /// Where logs, data folders and results go.
    pub out: PathBuf,
    pub short: bool,
    pub minutes: Option<f64>,
}

impl Ctx {
    /// How long the load runs: `--minutes` when given, else `short` or `long` seconds.
    pub fn seconds(&self, short: u64, long: u64) -> u64 {
        match self.minutes {
            Some(m) => (m * 60.0).round().max(1.0) as u64,
            None if self.short => short,
            None => long,
        }
    }

    /// A fresh folder for a scenario's processes.
    pub fn dir(&self, scenario: &str) -> Result<PathBuf> {
        let dir = self.out.join(scenario);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }
}

fn parse(args: &[String]) -> Result<(Vec<String>, Ctx)> {
    let root = std::env::current_dir()?;
    let mut scenarios = Vec::new();
    let mut ctx = Ctx {
        tessera: root.join("target/release/tessera"),
        out: root.join("target/reliability"),
        root,
        short: false,
        minutes: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| it.next().with_context(|| format!("{flag} needs a value"));
        match a.as_str() {
            "--short" => ctx.short = true,
            "--minutes" => {
                let m: f64 = value("--minutes")?.parse().context("--minutes N")?;
                if m.is_nan() || m <= 0.0 {
                    bail!("--minutes must be above zero");
                }
                ctx.minutes = Some(m);
            }
            "--out" => ctx.out = PathBuf::from(value("--out")?),
            "--tessera" => ctx.tessera = PathBuf::from(value("--tessera")?),
            "all" => scenarios.extend(SCENARIOS.iter().map(|s| (*s).to_owned())),
            s if SCENARIOS.contains(&s) => scenarios.push(s.to_owned()),
            other => bail!(
                "unknown argument {other:?}; scenarios: {} or all",
                SCENARIOS.join(", ")
            ),
        }
    }
    if scenarios.is_empty() {
        scenarios.extend(SCENARIOS.iter().map(|s| (*s).to_owned()));
    }
    Ok((scenarios, ctx))
}

async fn run_one(name: &str, ctx: &Ctx) -> Result<serde_json::Value> {
    match name {
        "rotation" => rotation::run(ctx).await,
        "kill" => kill::run(ctx).await,
        "outage" => outage::run(ctx).await,
        "disk" => disk::run(ctx).await,
        "clocks" => clocks::run(ctx).await,
        "soak" => soak::run(ctx).await,
        other => bail!("no scenario {other}"),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (scenarios, ctx) = match parse(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("reliability: {e:#}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&ctx.out) {
        eprintln!("reliability: {}: {e}", ctx.out.display());
        return ExitCode::from(2);
    }
    let mut failed = Vec::new();
    for name in &scenarios {
        let started = std::time::Instant::now();
        let result = run_one(name, &ctx).await;
        let took = started.elapsed();
        let mut value = match result {
            Ok(v) => v,
            Err(e) => serde_json::json!({
                "scenario": name,
                "pass": false,
                "summary": format!("{name}: could not run: {e:#}"),
            }),
        };
        value["seconds_total"] = serde_json::json!(round(took));
        value["short"] = serde_json::json!(ctx.short);
        let pass = value["pass"].as_bool() == Some(true);
        let file = ctx.out.join(format!("{name}.json"));
        let text = serde_json::to_string_pretty(&value).unwrap_or_default();
        if let Err(e) = std::fs::write(&file, text + "\n") {
            eprintln!("reliability: writing {}: {e}", file.display());
        }
        println!(
            "{} {} ({:.0}s; {})",
            if pass { "PASS" } else { "FAIL" },
            value["summary"].as_str().unwrap_or(name),
            took.as_secs_f64(),
            file.display()
        );
        if !pass {
            failed.push(name.clone());
        }
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("reliability: failed: {}", failed.join(", "));
        ExitCode::FAILURE
    }
}

/// The value behind `m`, whether or not another holder panicked (the
/// counts of a scenario stay readable).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn round(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}
