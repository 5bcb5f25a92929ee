//! The processes a scenario runs: `tessera serve` nodes and `tessera
//! gateway`s, each on a loopback port of its own, logging to a file in
//! the run's folder, killed when dropped.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use tokio::process::{Child, Command};

/// A free loopback port (bound, read, released: the caller binds it next).
pub(crate) fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// A process of the run, restartable with the same arguments.
#[derive(Debug)]
pub(crate) struct Proc {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
    /// Extra environment (a preloaded clock, say).
    env: Vec<(String, String)>,
    /// Times started (the log file of start n is `<name>.<n>.log`).
    starts: u32,
}

impl Proc {
    pub(crate) fn new(name: &str, program: &Path, args: Vec<String>, dir: &Path) -> Self {
        Self {
            name: name.to_owned(),
            program: program.to_path_buf(),
            args,
            log: dir.join(name),
            child: None,
            env: Vec::new(),
            starts: 0,
        }
    }

    /// The process with `env` added to its environment.
    #[must_use]
    pub(crate) fn with_env(mut self, env: Vec<(String, String)>) -> Self {
        self.env = env;
        self
    }

    /// Starts the process (it must not be running).
    pub(crate) fn spawn(&mut self) -> Result<()> {
        self.starts += 1;
        let log = self.log.with_extension(format!("{}.log", self.starts));
        let out =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .env("RUST_LOG", "warn")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} ({})", self.name, self.program.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// `kill -9`, then reaps it.
    pub(crate) async fn kill9(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.start_kill().ok();
            child.wait().await?;
        }
        Ok(())
    }

    /// SIGTERM through `kill`, then waits for the exit status.
    pub(crate) async fn terminate(&mut self) -> Result<Option<i32>> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        if let Some(pid) = child.id() {
            Command::new("kill")
                .arg(pid.to_string())
                .status()
                .await
                .context("kill")?;
        }
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .context("the process did not stop within 30 s of SIGTERM")??;
        Ok(status.code())
    }

    /// Has the process exited on its own? (Its status, if so.)
    pub(crate) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits up to `within` for the process to exit on its own: its exit
    /// code (`Some(None)`: killed by a signal), or `None` if it runs on.
    pub(crate) async fn wait_exit(&mut self, within: Duration) -> Result<Option<i32>> {
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        match tokio::time::timeout(within, child.wait()).await {
            Ok(status) => {
                let status = status?;
                self.child = None;
                Ok(Some(status.code().unwrap_or(-1)))
            }
            Err(_) => Ok(None),
        }
    }

    /// Everything the current start printed.
    pub(crate) fn log(&self) -> String {
        let log = self.log.with_extension(format!("{}.log", self.starts));
        std::fs::read_to_string(log).unwrap_or_default()
    }

    /// The last lines of the current log, for an error message.
    pub(crate) fn log_tail(&self) -> String {
        let log = self.log.with_extension(format!("{}.log", self.starts));
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// The running process's id.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

/// Waits until `url` answers 200, or fails naming the process and its log.
pub(crate) async fn wait_ready(
    http: &reqwest::Client,
    proc: &mut Proc,
    url: &str,
    within: Duration,
) -> Result<Duration> {
    let started = Instant::now();
    loop {
        if let Some(status) = proc.exited() {
            bail!(
                "{} exited ({status}) before it was ready:\n{}",
                proc.name(),
                proc.log_tail()
            );
        }
        if let Ok(r) = http.get(url).send().await {
            if r.status().is_success() {
                return Ok(started.elapsed());
            }
        }
        if started.elapsed() > within {
            bail!(
                "{} was not ready at {url} within {within:?}:\n{}",
                proc.name(),
                proc.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until something listens on `addr` (a gateway, which has no
/// readiness endpoint of its own).
pub(crate) async fn wait_listening(
    proc: &mut Proc,
    addr: SocketAddr,
    within: Duration,
) -> Result<()> {
    let started = Instant::now();
    loop {
        if let Some(status) = proc.exited() {
            bail!("{} exited ({status}):\n{}", proc.name(), proc.log_tail());
        }
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if started.elapsed() > within {
            bail!(
                "{} did not listen on {addr} within {within:?}:\n{}",
                proc.name(),
                proc.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
