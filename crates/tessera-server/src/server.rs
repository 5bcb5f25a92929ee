//! Starting, refreshing and stopping one authority node.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize as _;
use zeroize::Zeroizing;

use crate::authority::clock_guard::ClockGuard;
pub use crate::authority::StartError;
use crate::authority::{Authority, Federated, Keys, Parts};
use crate::clients::{self, Metadata};
use crate::clock::Clock;
use crate::config::Config;
use crate::http::{AppState, Discovery};
use crate::kek::{create_private, Kek, KekError};
use crate::lifecycle::Lifecycle;
use crate::store::Store;

mod key_changes;

/// A running node.
#[derive(Debug)]
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where `/metrics` is served, when `server.metrics_listen` is set.
    pub metrics_addr: Option<SocketAddr>,
    authority: Arc<Authority>,
    /// Whether this start created the admin token file.
    pub created_admin_token: bool,
    /// The quickstart client's credentials file, when this start wrote it.
    pub quickstart_credentials: Option<PathBuf>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    refresher: Option<tokio::task::JoinHandle<()>>,
    listener: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets requests in progress finish for at most
    /// `server.shutdown_timeout` (then drops their connections), closes
    /// the pool.
    ///
    /// # Errors
    /// When the server task panicked.
    pub async fn stop(mut self) -> std::io::Result<()> {
        for task in [self.refresher.take(), self.listener.take()]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.wait_inner().await
    }

    /// Waits until the server stops (Ctrl-C or SIGTERM in `tessera serve`).
    ///
    /// # Errors
    /// When the server task panicked.
    pub async fn wait(mut self) -> std::io::Result<()> {
        self.wait_inner().await
    }

    /// The node's settings, as completed at start (the bound address, the
    /// derived issuer).
    pub fn config(&self) -> &Config {
        self.authority.config()
    }

    async fn wait_inner(&mut self) -> std::io::Result<()> {
        let result = (&mut self.task).await.map_err(std::io::Error::other);
        self.authority.store().close().await;
        result
    }
}

/// What tests drive and inspect directly.
#[cfg(feature = "test-util")]
impl Running {
    /// Drives due key transitions, then re-reads keys and clients, as the
    /// background refresher does.
    ///
    /// # Errors
    /// On storage or key failures.
    pub async fn refresh(&self) -> Result<(), StartError> {
        self.authority.refresh().await
    }

    /// Re-reads the client table.
    ///
    /// # Errors
    /// On storage failure or a stored client that no longer parses.
    pub async fn reload_clients(&self) -> Result<(), StartError> {
        self.authority.reload_clients().await
    }

    /// How many times this node read its keys again because a token of this
    /// issuer named a kid it had not loaded (one at a time, at most one per
    /// half second, however many such tokens arrive).
    pub fn unknown_kid_reloads(&self) -> u64 {
        self.authority.keys().unknown_kid_reloads()
    }

    /// How many feed readers this node holds in a long poll right now.
    pub fn feed_readers_held(&self) -> usize {
        self.authority.deny_list().held()
    }

    /// The kids of the keys this node has loaded to verify its own tokens.
    pub fn loaded_kids(&self) -> Vec<String> {
        let ring = self.authority.keys().ring();
        ring.verify_keys
            .keys()
            .iter()
            .filter_map(|k| k.kid().map(str::to_owned))
            .collect()
    }

    /// The node's storage.
    pub fn store(&self) -> &Store {
        self.authority.store()
    }
}

/// Options that are not settings: the clock, and whether to run the
/// background tasks (tests drive refreshes themselves).
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Run the background task that drives transitions.
    pub background: bool,
    /// On PostgreSQL, listen for the key changes other nodes commit and
    /// reload the key ring at once (on SQLite there are no other nodes).
    /// Separate from `background` so that a test can have one without the
    /// other.
    pub key_notifications: bool,
    /// Stop on Ctrl-C / SIGTERM.
    pub handle_signals: bool,
}

impl Default for StartOptions {
    fn default() -> Self {
        Self {
            clock: Arc::new(crate::clock::SystemClock),
            background: true,
            key_notifications: true,
            handle_signals: false,
        }
    }
}

/// The listeners of a node, bound before anything else: a taken port
/// leaves nothing behind in the data folder.
struct Listeners {
    public: tokio::net::TcpListener,
    addr: SocketAddr,
    metrics: Option<(tokio::net::TcpListener, SocketAddr)>,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StartError {
    let path = path.to_path_buf();
    move |error| StartError::Io { path, error }
}

async fn bind(config: &Config) -> Result<Listeners, StartError> {
    let public = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(io_error(Path::new(&config.listen.to_string())))?;
    let addr = public
        .local_addr()
        .map_err(io_error(Path::new("listener")))?;
    let metrics = match config.metrics_listen {
        Some(at) => {
            let l = tokio::net::TcpListener::bind(at)
                .await
                .map_err(io_error(Path::new(&at.to_string())))?;
            let addr = l
                .local_addr()
                .map_err(io_error(Path::new("metrics listener")))?;
            Some((l, addr))
        }
        None => None,
    };
    if let Some((_, at)) = metrics.as_ref().filter(|(_, a)| !a.ip().is_loopback()) {
        // Allowed (a Prometheus on another host must reach it), but said.
        tracing::warn!(
            metrics_listen = %at,
            "metrics are served on a non-loopback address: client ids and counters are readable by anyone who can reach it"
        );
    }
    Ok(Listeners {
        public,
        addr,
        metrics,
    })
}

/// The authority of a node: the data folder, the database, the KEK, the
/// upstream issuers and the keys (due transitions done); no clients loaded
/// yet.
async fn open(config: Config, clock: Arc<dyn Clock>) -> Result<Authority, StartError> {
    create_private_dir(&config.data).map_err(io_error(&config.data))?;
    let store = Store::connect(&config.database_url).await?;
    if store.is_sqlite() {
        private_database_files(&config.data);
    }
    // A node whose clock is off the database's drives no transition: it
    // does not start. The allowance is half the verifiers' leeway.
    let clock_guard =
        ClockGuard::new(i64::try_from(config.tokens.leeway.as_millis() / 2).unwrap_or(i64::MAX));
    crate::authority::vouch(&clock_guard, &*clock, &store).await?;
    let kek = Arc::new(open_kek(&store, &config.keys.kek_file).await?);
    check_federation_against_clients(&store, &config.federation).await?;
    let upstreams = federation(&config.federation).await?;
    let lifecycle = Lifecycle::new(
        store.clone(),
        Arc::clone(&kek),
        config.keys.clone(),
        Arc::clone(&clock),
    );
    lifecycle.tick().await?;
    let ring = lifecycle.load(None).await?;
    let keys = Keys::new(lifecycle, ring, config.issuer.clone(), store.clone());
    Ok(Authority::new(Parts {
        config,
        store,
        kek,
        clock,
        clock_guard,
        keys,
        upstreams,
    }))
}

/// Opens (or creates) the data, loads keys and clients, binds the
/// listener and serves.
///
/// # Errors
/// A [`StartError`] saying what could not be opened or created.
pub async fn start(mut config: Config, options: StartOptions) -> Result<Running, StartError> {
    let listeners = bind(&config).await?;
    config.bound_to(listeners.addr);
    let discovery = Discovery::new(&config);
    let limits = config.connections;
    let admin_file = config.admin_token_file.clone();
    let authority = Arc::new(open(config, options.clock).await?);
    let (admin_hash, created_admin_token) = admin_token(authority.store(), &admin_file).await?;
    authority.reload_clients().await?;
    let quickstart_credentials = quickstart(&authority).await?;

    // `stopping` tells both listeners, and the long polls, to end.
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let signals = options.handle_signals;
    tokio::spawn(async move {
        if signals {
            tokio::select! {
                _ = rx => {}
                () = tessera_http::shutdown_signal() => {}
            }
        } else {
            let _ = rx.await;
        }
        stopping.send_replace(true);
    });
    let until_stopped = || {
        let mut watch = stopped.clone();
        async move {
            let _ = watch.wait_for(|stopping| *stopping).await;
        }
    };
    let state = Arc::new(AppState::new(
        Arc::clone(&authority),
        discovery,
        admin_hash,
        stopped.clone(),
    ));
    let app = crate::http::app(Arc::clone(&state));
    let public = tessera_http::serve(listeners.public, app, limits, until_stopped());
    let metrics_addr = listeners.metrics.as_ref().map(|(_, a)| *a);
    let metrics = listeners.metrics.map(|(l, _)| {
        let app = crate::http::metrics_app(Arc::clone(&state));
        tessera_http::serve(l, app, limits, until_stopped())
    });
    let task = tokio::spawn(async move {
        match metrics {
            Some(metrics) => {
                tokio::join!(public, metrics);
            }
            None => public.await,
        }
    });
    let refresher = options.background.then(|| {
        let authority = Arc::clone(&authority);
        tokio::spawn(async move { refresh_loop(authority).await })
    });
    let listener = (options.key_notifications && !authority.store().is_sqlite()).then(|| {
        let authority = Arc::clone(&authority);
        tokio::spawn(key_changes::listen(authority))
    });
    Ok(Running {
        addr: listeners.addr,
        metrics_addr,
        authority,
        created_admin_token,
        quickstart_credentials,
        shutdown: Some(tx),
        task,
        refresher,
        listener,
    })
}

async fn refresh_loop(authority: Arc<Authority>) {
    loop {
        let now = authority.now();
        let mut wait = authority.config().keys.refresh_interval;
        if let Some(at) = authority.keys().ring().next_change {
            let until = u64::try_from(at.saturating_sub(now)).unwrap_or(0);
            wait = wait.min(Duration::from_secs(until.max(1)));
        }
        tokio::time::sleep(wait).await;
        if let Err(e) = authority.refresh().await {
            // The previous keys and clients keep serving.
            tracing::warn!(error = %e, "refresh failed; serving the last good state");
        }
    }
}

/// A federation mapping onto a static claim of a client that can exchange
/// federated tokens stops the start: the token would hold one claim from
/// two sources. Registration refuses such a client; this catches a mapping
/// added to the config after the client was registered.
async fn check_federation_against_clients(
    store: &Store,
    federation: &[crate::config::Upstream],
) -> Result<(), StartError> {
    if federation.is_empty() {
        return Ok(());
    }
    for row in store.clients().await? {
        // A row that does not parse stops the start when the table loads.
        let Ok(metadata) = Metadata::deserialize(&row.metadata) else {
            continue;
        };
        if let Some(conflict) = clients::federation_conflict(&metadata, federation) {
            return Err(StartError::Federation(format!(
                "client {}: {conflict}",
                row.client_id
            )));
        }
    }
    Ok(())
}

/// A verifier per upstream issuer: its keys (discovery, or `jwks_url`) and
/// the policy its tokens must meet here (its issuer, our audience).
async fn federation(upstreams: &[crate::config::Upstream]) -> Result<Vec<Federated>, StartError> {
    let mut out = Vec::new();
    // The mappings and prefixes were checked with the settings.
    for up in upstreams {
        let builder = match &up.jwks_url {
            Some(url) => {
                tessera_verify::Verifier::from_jwks_url(url.clone()).issuer(up.issuer.clone())
            }
            None => tessera_verify::Verifier::from_issuer(up.issuer.clone()),
        };
        let verifier = builder
            .audience(up.audience.clone())
            .build()
            .await
            .map_err(|e| StartError::Federation(format!("{}: {e}", up.issuer)))?;
        out.push((up.clone(), Arc::new(verifier)));
    }
    Ok(out)
}

/// The KEK, checked against the database before anything is written: a
/// node with a missing or different KEK file must not seal keys that the
/// other nodes cannot open.
async fn open_kek(store: &Store, path: &Path) -> Result<Kek, StartError> {
    const CHECK: &str = "kek_check";
    let mismatch = || KekError::Mismatch(path.display().to_string());
    if let Some(check) = store.setting(CHECK).await? {
        let kek = Kek::load(path)?;
        kek.open(CHECK, &check).map_err(|_| mismatch())?;
        return Ok(kek);
    }
    // No check value yet: a new database, or one from before checks.
    let keys = store.keys().await?;
    let kek = if keys.is_empty() {
        Kek::load_or_create(path)?
    } else {
        Kek::load(path)?
    };
    if let Some(row) = keys.iter().find(|k| k.private_sealed.is_some()) {
        let sealed = row.private_sealed.as_deref().unwrap_or_default();
        kek.open(&row.kid, sealed).map_err(|_| mismatch())?;
    }
    let sealed = kek.seal(CHECK, b"tessera key-encryption key check")?;
    if !store.set_setting_once(CHECK, &sealed).await? {
        // Another node set it first: it must be the same KEK.
        let check = store.setting(CHECK).await?.unwrap_or_default();
        kek.open(CHECK, &check).map_err(|_| mismatch())?;
    }
    Ok(kek)
}

/// The SQLite files hold sealed keys and hashes: mode 0600 even when the
/// data folder already existed with looser permissions (SQLite gives new
/// journal files the database file's mode).
fn private_database_files(data: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let Ok(entries) = std::fs::read_dir(data) else {
            return;
        };
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with("tessera.db")
            {
                let _ =
                    std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600));
            }
        }
    }
}

fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(path)
}

/// The admin token: on first start 256 random bits go to `file` (mode
/// 0600) and only their SHA-256 to the database.
async fn admin_token(store: &Store, file: &Path) -> Result<(Vec<u8>, bool), StartError> {
    const NAME: &str = "admin_token_sha256";
    if let Some(hash) = store.setting(NAME).await? {
        let bytes = tessera_jose::b64::decode(&hash)
            .map_err(|_| StartError::Client("stored admin token hash is not base64url".into()))?;
        return Ok((bytes, false));
    }
    let token = Zeroizing::new(format!("tat_{}", crate::random_id(32)));
    let digest = tessera_verify::token_hash::digest(&token);
    let hash = tessera_jose::b64::encode(digest);
    if !store.set_setting_once(NAME, &hash).await? {
        // Another node set it first; its admin.token is the one.
        let stored = store.setting(NAME).await?.unwrap_or_default();
        let bytes = tessera_jose::b64::decode(&stored).unwrap_or_default();
        return Ok((bytes, false));
    }
    write_secret_file(file, token.as_bytes())?;
    Ok((digest.to_vec(), true))
}

/// Writes a secret to a new file with mode 0600, replacing a stale one
/// (from an earlier database) through a rename.
fn write_secret_file(path: &Path, contents: &[u8]) -> Result<(), StartError> {
    let err = |error| StartError::Io {
        path: path.to_path_buf(),
        error,
    };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = create_private(&tmp).map_err(err)?;
    f.write_all(contents).map_err(err)?;
    f.write_all(b"\n").map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

async fn quickstart(authority: &Authority) -> Result<Option<PathBuf>, StartError> {
    let config = authority.config();
    if !config.quickstart_client
        || !authority
            .store()
            .set_setting_once("quickstart_client", "registered")
            .await?
    {
        return Ok(None);
    }
    let metadata = clients::Registration::quickstart()
        .validate(&config.tokens)
        .map_err(|e| StartError::Client(e.0))?;
    let (row, secret) = authority.register(&metadata, "startup").await?;
    let path = config.data.join("quickstart.credentials");
    let secret = secret.unwrap_or_default();
    let line = Zeroizing::new(format!("{}:{}", row.client_id, secret.as_str()));
    write_secret_file(&path, line.as_bytes())?;
    Ok(Some(path))
}
