//! A PostgreSQL cluster of the run's own (initdb in the run's folder, on a
//! free port), so that a scenario can stop it, start it and kill its
//! sessions without touching the machine's shared one. As root, the
//! cluster runs as the `postgres` user (PostgreSQL refuses root).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use tokio::process::Command;

use crate::proc::free_port;

#[derive(Debug)]
pub(crate) struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    pub(crate) port: u16,
    as_postgres: bool,
    /// Under /tmp: the `postgres` user must reach it (not under /root).
    _tmp: tempfile::TempDir,
}

/// The newest `/usr/lib/postgresql/N/bin`, or `TESSERA_PG_BIN`.
fn bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("TESSERA_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("no /usr/lib/postgresql (set TESSERA_PG_BIN to PostgreSQL's bin folder)")?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, b)| b)
        .context("no PostgreSQL server binaries (initdb) under /usr/lib/postgresql")
}

fn is_root() -> bool {
    std::env::var("USER").map(|u| u == "root").unwrap_or(false)
        || std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap_or(false)
}

impl Cluster {
    /// initdb (trust authentication, loopback only) and start.
    pub(crate) async fn create() -> Result<Self> {
        let tmp = tempfile::Builder::new()
            .prefix("tessera-reliability-pg")
            .tempdir()?;
        let dir = tmp.path().join("pgdata");
        std::fs::create_dir_all(&dir)?;
        let as_postgres = is_root();
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .await?;
            if !status.success() {
                bail!("chown postgres {}", dir.display());
            }
        }
        let cluster = Self {
            bin: bin_dir()?,
            dir,
            port: free_port()?,
            as_postgres,
            _tmp: tmp,
        };
        cluster
            .pg(
                "initdb",
                &["-A", "trust", "-U", "postgres", "--no-sync", "-D"],
                true,
            )
            .await?;
        cluster.start().await?;
        Ok(cluster)
    }

    /// Runs a PostgreSQL program (as `postgres` when root), the data
    /// folder last when `with_dir`.
    async fn pg(&self, program: &str, args: &[&str], with_dir: bool) -> Result<()> {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args);
        if with_dir {
            cmd.arg(&self.dir);
        }
        let out = cmd
            .output()
            .await
            .with_context(|| format!("running {}", exe.display()))?;
        if !out.status.success() {
            bail!(
                "{program} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Starts the server and waits until it accepts connections.
    pub(crate) async fn start(&self) -> Result<Duration> {
        let t = Instant::now();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log").display().to_string();
        let data = self.dir.display().to_string();
        self.pg(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "60", "start",
            ],
            false,
        )
        .await?;
        Ok(t.elapsed())
    }

    /// Stops the server (`-m fast`: sessions are ended, as at a planned stop).
    pub(crate) async fn stop(&self) -> Result<()> {
        let data = self.dir.display().to_string();
        self.pg("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"], false)
            .await
    }

    /// The database URL of the cluster (database `postgres`).
    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Ends every session but the caller's (`pg_terminate_backend`); how many.
    pub(crate) async fn terminate_backends(&self) -> Result<u64> {
        let pool = sqlx::PgPool::connect(&self.url()).await?;
        let n: Vec<(bool,)> = sqlx::query_as(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'",
        )
        .fetch_all(&pool)
        .await?;
        pool.close().await;
        Ok(n.iter().filter(|(ok,)| *ok).count() as u64)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Immediate: the run is over, nothing in it is kept.
        let exe = self.bin.join("pg_ctl");
        let mut cmd = if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            std::process::Command::new(&exe)
        };
        let _ = cmd
            .arg("-D")
            .arg(&self.dir)
            .args(["-m", "immediate", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}
