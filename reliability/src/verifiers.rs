//! The verifiers a scenario checks every token with: `tessera-verify` in
//! process, `tessera gateway` processes in front of a small upstream, and
//! PyJWT's `PyJWKClient` behind a script (a third party's JWKS cache).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::sync::{oneshot, Mutex};

use crate::cluster::{Authority, Timing};
use crate::proc::{free_port, wait_listening, Proc};

/// What a verifier said of a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Accepted,
    /// Refused, with the verifier's reason.
    Refused(String),
    /// The verifier could not answer (a gateway's 5xx, a broken pipe).
    Failed(String),
}

/// One verifier.
#[derive(Debug)]
pub(crate) enum Verifier {
    Library(tessera_verify::Verifier),
    Gateway { url: String, http: reqwest::Client },
    PyJwt(PyJwt),
}

impl Verifier {
    pub(crate) async fn check(&self, token: &str) -> Verdict {
        match self {
            Self::Library(v) => match v.verify_token(token).await {
                Ok(_) => Verdict::Accepted,
                Err(e) => Verdict::Refused(e.code().to_owned()),
            },
            Self::Gateway { url, http } => match http.get(url).bearer_auth(token).send().await {
                Ok(r) if r.status().is_success() => Verdict::Accepted,
                Ok(r) if r.status() == reqwest::StatusCode::UNAUTHORIZED => {
                    let why = r
                        .headers()
                        .get("www-authenticate")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.split("error_description=\"").nth(1))
                        .and_then(|v| v.split('"').next())
                        .unwrap_or("401")
                        .to_owned();
                    Verdict::Refused(why)
                }
                Ok(r) => Verdict::Failed(format!("HTTP {}", r.status().as_u16())),
                Err(e) => Verdict::Failed(format!("transport: {e}")),
            },
            Self::PyJwt(p) => p.check(token).await,
        }
    }
}

/// The in-process verifier: JWKS cache with the run's floors, following
/// the deny-list feed.
pub(crate) async fn library(
    authority: &Authority,
    timing: &Timing,
    feed: (&str, &str),
) -> Result<tessera_verify::Verifier> {
    let deny = tessera_verify::DenyList::follow(
        &format!("{}/revocations", authority.issuer),
        feed.0,
        feed.1,
        &tessera_verify::FeedOptions::default(),
    )
    .await
    .context("following the deny-list feed")?;
    tessera_verify::Verifier::from_issuer(&authority.issuer)
        .audience(&authority.issuer)
        .min_cache_ttl(timing.min_cache_ttl)
        .unknown_kid_cooldown(timing.unknown_kid_cooldown)
        .revocations(deny)
        .build()
        .await
        .context("building the library verifier")
}

/// An upstream that answers 200 to everything: what the gateways forward to.
pub(crate) async fn upstream() -> Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().fallback(|| async { "ok" });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

/// A gateway of the run.
#[derive(Debug)]
pub(crate) struct GatewaySpec<'a> {
    pub(crate) name: &'a str,
    /// Verified tokens remembered (0: none).
    pub(crate) token_cache: usize,
    pub(crate) upstream: std::net::SocketAddr,
    /// The feed client: its id and its secret's file.
    pub(crate) feed: (&'a str, &'a Path),
    /// Extra environment (a preloaded clock).
    pub(crate) env: Vec<(String, String)>,
}

/// Starts `tessera gateway` as `spec` says, with the run's floors; the
/// process and the URL to ask it at.
pub(crate) async fn gateway(
    tessera: &Path,
    dir: &Path,
    authority: &Authority,
    timing: &Timing,
    spec: GatewaySpec<'_>,
) -> Result<(Proc, String)> {
    let GatewaySpec {
        name,
        token_cache,
        upstream,
        feed,
        env,
    } = spec;
    let port = free_port()?;
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:{port}"
upstream = "http://{upstream}"
issuer = {issuer:?}
audience = {issuer:?}
token_cache = {token_cache}
jwks_min_cache_ttl = "{ttl}ms"
jwks_unknown_kid_cooldown = "{cooldown}ms"
revocations_catch_up = "5s"
shutdown_timeout = "2s"

[revocations]
client_id = {id:?}
client_secret_file = {secret:?}
"#,
            issuer = authority.issuer,
            ttl = timing.min_cache_ttl.as_millis(),
            cooldown = timing.unknown_kid_cooldown.as_millis(),
            id = feed.0,
            secret = feed.1.display().to_string(),
        ),
    )?;
    let mut proc = Proc::new(
        name,
        tessera,
        vec![
            "gateway".into(),
            "--config".into(),
            config.display().to_string(),
        ],
        dir,
    )
    .with_env(env);
    proc.spawn()?;
    let addr = format!("127.0.0.1:{port}").parse()?;
    wait_listening(&mut proc, addr, Duration::from_secs(60)).await?;
    Ok((proc, format!("http://{addr}/api")))
}

/// PyJWT's `PyJWKClient` in a Python process: one token a line in, one
/// verdict a line out, in order.
#[derive(Debug)]
pub(crate) struct PyJwt {
    requests: tokio::sync::mpsc::Sender<(String, oneshot::Sender<Verdict>)>,
    fetches: Arc<Mutex<Option<u64>>>,
    child: Mutex<Option<tokio::process::Child>>,
    stdin_closer: Mutex<Option<oneshot::Sender<()>>>,
}

impl PyJwt {
    /// Starts `python reliability/pyjwt_verifier.py ISSUER AUDIENCE LIFESPAN`.
    pub(crate) async fn start(
        python: &Path,
        script: &Path,
        issuer: &str,
        lifespan: Duration,
    ) -> Result<Self> {
        let mut child = tokio::process::Command::new(python)
            .arg(script)
            .arg(issuer)
            .arg(issuer)
            .arg(lifespan.as_secs_f64().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} {}", python.display(), script.display()))?;
        let mut stdin = child.stdin.take().context("no stdin")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let pending: Arc<std::sync::Mutex<VecDeque<oneshot::Sender<Verdict>>>> = Arc::default();
        let fetches = Arc::new(Mutex::new(None));
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(String, oneshot::Sender<Verdict>)>(1024);
        let (close_tx, mut close_rx) = oneshot::channel::<()>();
        let writer_pending = Arc::clone(&pending);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    req = rx.recv() => {
                        let Some((token, answer)) = req else { break };
                        writer_pending
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push_back(answer);
                        if stdin.write_all(format!("{token}\n").as_bytes()).await.is_err() {
                            break;
                        }
                    }
                    _ = &mut close_rx => break,
                }
            }
            // Dropping stdin ends the script, which then prints its fetches.
        });
        let reader_fetches = Arc::clone(&fetches);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(n) = line.strip_prefix("fetches ") {
                    *reader_fetches.lock().await = n.trim().parse().ok();
                    continue;
                }
                let verdict = if line == "ok" {
                    Verdict::Accepted
                } else {
                    Verdict::Refused(line.trim_start_matches("err ").to_owned())
                };
                let next = pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .pop_front();
                if let Some(answer) = next {
                    let _ = answer.send(verdict);
                }
            }
        });
        Ok(Self {
            requests: tx,
            fetches,
            child: Mutex::new(Some(child)),
            stdin_closer: Mutex::new(Some(close_tx)),
        })
    }

    pub(crate) async fn check(&self, token: &str) -> Verdict {
        let (tx, rx) = oneshot::channel();
        if self.requests.send((token.to_owned(), tx)).await.is_err() {
            return Verdict::Failed("pyjwt script gone".into());
        }
        match tokio::time::timeout(Duration::from_secs(30), rx).await {
            Ok(Ok(v)) => v,
            _ => Verdict::Failed("pyjwt script did not answer".into()),
        }
    }

    /// Ends the script; the JWKS fetches it made.
    pub(crate) async fn finish(&self) -> Result<u64> {
        if let Some(close) = self.stdin_closer.lock().await.take() {
            let _ = close.send(());
        }
        if let Some(mut child) = self.child.lock().await.take() {
            tokio::time::timeout(Duration::from_secs(10), child.wait()).await??;
        }
        // The reader sees the last line before the pipe closes.
        for _ in 0..50 {
            if let Some(n) = *self.fetches.lock().await {
                return Ok(n);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        anyhow::bail!("the pyjwt script did not report its fetches")
    }
}

/// The Python with PyJWT: `TESSERA_RELIABILITY_PYTHON` (scripts/reliability
/// sets it to the interop venv's).
pub(crate) fn python() -> PathBuf {
    std::env::var_os("TESSERA_RELIABILITY_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"))
}
