//! Scenario 4, disk and files: SQLite on a full filesystem and on a
//! read-only one (a small tmpfs, mounted for the run: needs root), a
//! truncated, damaged or foreign database file, and a key-encryption key
//! that is missing, shortened, of another cluster or open to others.
//!
//! Each case must give a clear error naming its cause, keep what the node
//! had (the files are byte for byte the same after a refused start; after
//! a full or read-only disk every client registered before still works and
//! the database passes `PRAGMA integrity_check`), and print no secret (the
//! admin token, the KEK, a client secret) in any output.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};
use tokio::process::Command;

use crate::cluster::{read_trimmed, Authority, Database, Timing};
use crate::proc::Proc;
use crate::Ctx;

/// One case's outcome.
#[derive(Debug)]
struct Case {
    name: &'static str,
    /// What the node said (exit message, or statuses).
    said: String,
    /// The cause was named, the data kept, no secret printed.
    named: bool,
    kept: bool,
    quiet: bool,
    detail: Value,
}

impl Case {
    fn ok(&self) -> bool {
        self.named && self.kept && self.quiet
    }

    fn json(&self) -> Value {
        json!({
            "case": self.name, "pass": self.ok(), "said": self.said,
            "cause_named": self.named, "data_kept": self.kept, "no_secret_printed": self.quiet,
            "detail": self.detail,
        })
    }
}

pub(crate) async fn run(ctx: &Ctx) -> Result<Value> {
    let dir = ctx.dir("disk")?;
    let mut cases = Vec::new();
    for (part, result) in [
        ("files", files(ctx, &dir).await),
        ("mounted filesystem", mounted(ctx, &dir).await),
    ] {
        match result {
            Ok(c) => cases.extend(c),
            Err(e) => cases.push(Case {
                name: part,
                said: format!("could not run: {e:#}"),
                named: false,
                kept: false,
                quiet: true,
                detail: json!(null),
            }),
        }
    }
    let failed: Vec<&str> = cases.iter().filter(|c| !c.ok()).map(|c| c.name).collect();
    let summary = format!(
        "disk: {} cases (full and read-only filesystem, truncated/damaged/foreign database, KEK missing/short/foreign/exposed): {} passed{}",
        cases.len(),
        cases.len() - failed.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(", failed: {}", failed.join(", "))
        }
    );
    Ok(json!({
        "scenario": "disk",
        "pass": failed.is_empty(),
        "summary": summary,
        "cases": cases.iter().map(Case::json).collect::<Vec<_>>(),
    }))
}

fn timing() -> Timing {
    Timing::compressed(Duration::from_secs(3600))
}

/// The secrets of a data folder: nothing may print them.
fn secrets(data: &Path, extra: &[String]) -> Vec<String> {
    let mut out: Vec<String> = ["admin.token", "kek"]
        .iter()
        .filter_map(|f| read_trimmed(&data.join(f)).ok())
        .collect();
    if let Ok(c) = read_trimmed(&data.join("quickstart.credentials")) {
        if let Some((_, secret)) = c.split_once(':') {
            out.push(secret.to_owned());
        }
    }
    out.extend(extra.iter().cloned());
    out.retain(|s| s.len() >= 16);
    out
}

fn prints_no_secret(text: &str, secrets: &[String]) -> bool {
    secrets.iter().all(|s| !text.contains(s.as_str()))
}

fn sha(path: &Path) -> String {
    use std::hash::{Hash as _, Hasher as _};
    // Not a cryptographic digest: "the same bytes as before" is all it says.
    let bytes = std::fs::read(path).unwrap_or_default();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    format!("{:016x}:{}", h.finish(), bytes.len())
}

/// Starts `tessera serve` on `data` and expects it to refuse: its exit
/// code and everything it printed.
async fn refused_start(
    ctx: &Ctx,
    dir: &Path,
    name: &str,
    data: &Path,
) -> Result<(Option<i32>, String)> {
    let mut proc = Proc::new(
        name,
        &ctx.tessera,
        vec![
            "serve".into(),
            "--data".into(),
            data.display().to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
        ],
        dir,
    );
    proc.spawn()?;
    let status = proc.wait_exit(Duration::from_secs(30)).await?;
    let said = proc.log();
    if status.is_none() {
        proc.kill9().await?;
    }
    Ok((status, said))
}

/// A stopped node's data folder, copied for a case.
fn copy_data(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        if e.file_type()?.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

/// The cases on files: one healthy data folder made, stopped, then copied
/// and broken once per case.
async fn files(ctx: &Ctx, dir: &Path) -> Result<Vec<Case>> {
    let mut authority = Authority::start(
        &ctx.tessera,
        &dir.join("origin"),
        1,
        &Database::Sqlite,
        &timing(),
    )
    .await?;
    let (id, secret) = authority.register(json!({"client_name": "before"})).await?;
    authority.nodes[0].terminate().await?;
    let origin = authority.data.clone();
    let all_secrets = secrets(&origin, &[secret]);
    let _ = id;
    let mut cases = Vec::new();
    type Break = fn(&Path) -> Result<()>;
    let plans: [(&'static str, Break, &'static str, &'static str); 7] = [
        (
            "database truncated",
            |d| truncate(&d.join("tessera.db"), 0.3),
            "tessera.db",
            "malformed",
        ),
        (
            "database damaged in a page in use",
            damage_page,
            "tessera.db",
            "malformed|damaged",
        ),
        (
            "database not a database",
            |d| Ok(std::fs::write(d.join("tessera.db"), vec![0x5a; 8192])?),
            "tessera.db",
            "not a database",
        ),
        (
            "KEK missing",
            |d| Ok(std::fs::remove_file(d.join("kek"))?),
            "kek",
            "is missing",
        ),
        (
            "KEK shortened",
            |d| truncate(&d.join("kek"), 0.5),
            "kek",
            "32 random bytes",
        ),
        (
            "KEK of another cluster",
            |d| {
                std::fs::write(
                    d.join("kek"),
                    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
                )?;
                Ok(())
            },
            "kek",
            "not the one",
        ),
        (
            "KEK open to others (0644)",
            |d| chmod(&d.join("kek"), 0o644),
            "kek",
            "chmod 600",
        ),
    ];
    for (n, (name, break_it, file, cause)) in plans.into_iter().enumerate() {
        let data = dir.join(format!("case{n}"));
        copy_data(&origin, &data)?;
        chmod(&data.join("kek"), 0o600).ok();
        break_it(&data)?;
        let watched = data.join(file);
        let before = (sha(&watched), watched.exists());
        let (status, said) = refused_start(ctx, dir, &format!("case{n}"), &data).await?;
        let after = (sha(&watched), watched.exists());
        let first = said
            .lines()
            .find(|l| l.contains("could not start") || l.contains("error"))
            .unwrap_or_default()
            .to_owned();
        cases.push(Case {
            name,
            named: status == Some(2)
                && cause.split('|').any(|c| first.contains(c))
                && first.contains(file),
            kept: before == after,
            quiet: prints_no_secret(&said, &all_secrets),
            said: format!("exit {status:?}: {first}"),
            detail: json!({"file": watched.display().to_string()}),
        });
    }
    Ok(cases)
}

fn truncate(path: &Path, keep: f64) -> Result<()> {
    let bytes = std::fs::read(path)?;
    let keep = (bytes.len() as f64 * keep) as usize;
    std::fs::write(path, &bytes[..keep])?;
    Ok(())
}

/// Overwrites page 2 (the root of the first table the migrations make:
/// always in use). SQLite finds it on opening or in the quick check.
fn damage_page(data: &Path) -> Result<()> {
    let path = data.join("tessera.db");
    let mut bytes = std::fs::read(&path)?;
    if bytes.len() < 8192 {
        bail!("{} is smaller than two pages", path.display());
    }
    bytes[4096..8192].fill(0xa5);
    std::fs::write(&path, bytes)?;
    Ok(())
}

fn chmod(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// A small tmpfs, unmounted when dropped.
#[derive(Debug)]
struct Mount {
    at: PathBuf,
}

impl Mount {
    async fn tmpfs(at: &Path, size: &str) -> Result<Self> {
        std::fs::create_dir_all(at)?;
        sh(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ],
            at,
        )
        .await
        .context("mounting a tmpfs (the disk scenario needs root)")?;
        Ok(Self {
            at: at.to_path_buf(),
        })
    }

    async fn read_only(&self, ro: bool) -> Result<()> {
        let how = if ro { "remount,ro" } else { "remount,rw" };
        sh("mount", &["-o", how], &self.at).await
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.at)
            .status();
    }
}

async fn sh(program: &str, args: &[&str], path: &Path) -> Result<()> {
    let out = Command::new(program).args(args).arg(path).output().await?;
    if !out.status.success() {
        bail!(
            "{program} {args:?} {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The cases on a mounted filesystem: full, then read-only, with a node
/// running on it.
async fn mounted(ctx: &Ctx, dir: &Path) -> Result<Vec<Case>> {
    let mount = Mount::tmpfs(&dir.join("mnt"), "6m").await?;
    let run_dir = dir.join("mounted");
    std::fs::create_dir_all(&run_dir)?;
    // The node's data folder is the mount; its config and logs are not.
    let mut authority = Authority::start_in(&ctx.tessera, &run_dir, &mount.at, &timing()).await?;
    let http = authority.http.clone();
    let base = authority.bases[0].clone();
    let mut before = Vec::new();
    for i in 0..10 {
        before.push(
            authority
                .register(json!({"client_name": format!("before-{i}")}))
                .await?,
        );
    }
    let client_secrets: Vec<String> = before.iter().map(|(_, s)| s.clone()).collect();
    let all_secrets = secrets(&mount.at, &client_secrets);
    let mut cases = Vec::new();

    // Full: a filler takes what is left, then writes are asked for.
    let filler = mount.at.join("filler");
    fill(&filler)?;
    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    for i in 0..30 {
        let s = register_status(&http, &base, &authority.admin, &format!("full-{i}")).await;
        *statuses.entry(s).or_default() += 1;
    }
    let issue_ok = token_status(&http, &base, &before[0]).await == 200;
    std::fs::remove_file(&filler)?;
    let after_ok = register_status(&http, &base, &authority.admin, "after-full").await == 201;
    let mut works = 0;
    for c in &before {
        if token_status(&http, &base, c).await == 200 {
            works += 1;
        }
    }
    let log = authority.nodes[0].log();
    let alive = authority.nodes[0].exited().is_none();
    cases.push(Case {
        name: "filesystem full",
        said: format!("registrations while full: {statuses:?}; issuance {}", if issue_ok { 200 } else { 0 }),
        named: log.contains("disk is full") && statuses.keys().all(|s| *s == 503 || *s == 201),
        kept: alive && after_ok && works == before.len(),
        quiet: prints_no_secret(&log, &all_secrets),
        detail: json!({"registrations": statuses, "issuance_while_full": issue_ok,
                       "write_after_space_freed": after_ok, "clients_working": works, "node_alive": alive}),
    });

    // Read-only: a filesystem cannot be made read-only under a process
    // that holds files open for writing (the kernel says busy), so the
    // node is stopped, the filesystem remounted read-only, and started.
    authority.nodes[0].terminate().await?;
    mount.read_only(true).await?;
    let (status, said) = refused_start(ctx, &run_dir, "ro-start", &mount.at).await?;
    let first = said
        .lines()
        .find(|l| l.contains("could not start"))
        .unwrap_or_default()
        .to_owned();
    mount.read_only(false).await?;
    let integrity = integrity(&mount.at.join("tessera.db")).await?;
    cases.push(Case {
        name: "filesystem read-only",
        said: format!("start on it: exit {status:?}: {first}"),
        named: status == Some(2) && first.contains("Read-only file system"),
        kept: integrity == "ok",
        quiet: prints_no_secret(&said, &all_secrets),
        detail: json!({"integrity_check": integrity}),
    });
    // The node starts again once the filesystem is writable: nothing lost.
    authority.nodes[0].spawn()?;
    crate::proc::wait_ready(
        &http,
        &mut authority.nodes[0],
        &format!("{base}/readyz"),
        Duration::from_secs(60),
    )
    .await?;
    let mut works = 0;
    for c in &before {
        if token_status(&http, &base, c).await == 200 {
            works += 1;
        }
    }
    cases.push(Case {
        name: "restart after the faults",
        said: format!("{works} of {} clients registered before work", before.len()),
        named: true,
        kept: works == before.len(),
        quiet: prints_no_secret(&authority.nodes[0].log(), &all_secrets),
        detail: json!({}),
    });
    authority.nodes[0].terminate().await?;
    drop(mount);
    Ok(cases)
}

/// Writes zeros to `path` until the filesystem is full.
fn fill(path: &Path) -> Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::File::create(path)?;
    let block = vec![0u8; 64 * 1024];
    loop {
        match f.write_all(&block) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => return Err(e.into()),
        }
    }
    // The last partial block.
    let _ = f.write_all(&[0u8; 512]);
    Ok(())
}

async fn register_status(http: &reqwest::Client, base: &str, admin: &str, name: &str) -> u16 {
    http.post(format!("{base}/admin/clients"))
        .bearer_auth(admin)
        .json(&json!({"client_name": name}))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

async fn token_status(http: &reqwest::Client, base: &str, client: &(String, String)) -> u16 {
    http.post(format!("{base}/token"))
        .basic_auth(&client.0, Some(&client.1))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

async fn integrity(db: &Path) -> Result<String> {
    use sqlx::Connection as _;
    let mut conn =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", db.display())).await?;
    let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await?;
    Ok(rows.join("; "))
}
