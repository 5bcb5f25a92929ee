//! Starting, refreshing and stopping one authority node.

use std::fmt;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::Deserialize as _;
use tessera_jose::UnixTime;
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use crate::clients::{self, Client, ClientTable, Metadata};
use crate::clock::Clock;
use crate::config::Config;
use crate::kek::{create_private, Kek, KekError};
use crate::lifecycle::{KeyRing, Lifecycle, LifecycleError};
use crate::store::{AuditEntry, ClientRow, Store, StoreError};
use crate::telemetry::Metrics;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data folder or a file in it.
    #[error("{path}: {error}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error (not a `source`: the message already says it once).
        error: std::io::Error,
    },
    /// The key-encryption key.
    #[error(transparent)]
    Kek(#[from] KekError),
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Keys.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    /// A stored client no longer parses.
    #[error("{0}")]
    Client(String),
    /// An upstream issuer for federation could not be reached or is unusable.
    #[error("federation: {0}")]
    Federation(String),
}

/// Everything the handlers share.
pub struct AppState {
    /// Settings.
    pub config: Config,
    /// Storage.
    pub store: Store,
    /// Key transitions.
    pub lifecycle: Lifecycle,
    /// Signing keys and the JWKS: swapped whole, read without a lock.
    pub ring: ArcSwap<KeyRing>,
    /// Registered clients: swapped whole, read without a lock.
    pub clients: ArcSwap<ClientTable>,
    /// SHA-256 of the admin token.
    pub admin_hash: Vec<u8>,
    /// Metrics.
    pub metrics: Metrics,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Discovery documents, built once.
    pub discovery: crate::http::Discovery,
    /// The key-encryption key (seals refresh-token successors kept for the
    /// reuse interval).
    pub kek: Arc<Kek>,
    /// Upstream issuers for token-exchange federation, each with a verifier
    /// that follows its key set.
    pub upstreams: Vec<(crate::config::Upstream, Arc<tessera_verify::Verifier>)>,
    /// JWT access tokens this node has verified for introspection.
    pub verified_jwts: crate::jwtcache::VerifiedJwts,
    /// Woken when this node lists a revocation (long-polling feed readers).
    pub revocations: tokio::sync::Notify,
    /// Becomes true when the node stops: long polls end at once, so a
    /// graceful shutdown does not wait for them.
    pub stopping: tokio::sync::watch::Sender<bool>,
    /// Serializes reloads.
    reload: Mutex<()>,
    /// Reloads of the key ring for tokens whose kid is unknown here.
    pub(crate) kid_reloads: crate::http::own::KidReloads,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Drives due key transitions, then re-reads keys and clients (other
    /// nodes may have changed them).
    ///
    /// # Errors
    /// On storage or key failures; the previous state keeps serving.
    pub async fn refresh(&self) -> Result<(), StartError> {
        // Each step runs whatever the others did: a failed transition must
        // not keep this node on stale keys, nor on deleted clients.
        let ticked = self
            .lifecycle
            .tick()
            .await
            .map(|_| ())
            .map_err(StartError::from);
        // Deny-list entries and tokens go once they have expired, audit
        // entries after their retention.
        let now = self.clock.now();
        let purged = self
            .store
            .purge_expired(UnixTime::from_secs(now), self.config.audit_retention)
            .await
            .map_err(StartError::from);
        let keys = self.reload_keys().await;
        let clients = self.reload_clients().await;
        ticked.and(purged).and(keys).and(clients)
    }

    /// Re-reads the key table.
    ///
    /// # Errors
    /// On storage or key failures.
    pub async fn reload_keys(&self) -> Result<(), StartError> {
        let _guard = self.reload.lock().await;
        let previous = self.ring.load_full();
        let ring = self.lifecycle.load(Some(&previous)).await?;
        self.ring.store(Arc::new(ring));
        Ok(())
    }

    /// How many times this node read its keys again because a token of this
    /// issuer named a kid it had not loaded (one at a time, at most one per
    /// half second, however many such tokens arrive).
    pub fn unknown_kid_reloads(&self) -> u64 {
        self.kid_reloads.count()
    }

    /// Re-reads the client table, keeping the metric handles.
    ///
    /// # Errors
    /// On storage failure or a stored client that no longer parses.
    pub async fn reload_clients(&self) -> Result<(), StartError> {
        let rows = self.store.clients().await?;
        let previous = self.clients.load_full();
        let mut table = ClientTable::new();
        for row in &rows {
            if let Some(old) = previous
                .get(&row.client_id)
                .filter(|c| c.stored == row.metadata)
            {
                table.insert(row.client_id.clone(), Arc::clone(old));
                continue;
            }
            let issued = self.metrics.issued(&row.client_id);
            let client = Client::from_row(row, issued).map_err(StartError::Client)?;
            if let Some(conflict) =
                clients::federation_conflict(&client.metadata, &self.config.federation)
            {
                // Registered through a node with another federation
                // config: the static claim wins (see http/claims.rs).
                tracing::warn!(client_id = %client.id, "{conflict}");
            }
            table.insert(row.client_id.clone(), Arc::new(client));
        }
        self.clients.store(Arc::new(table));
        Ok(())
    }

    /// Registers a client; returns its row and, for secret methods, the
    /// secret (shown once, stored only as a hash).
    ///
    /// # Errors
    /// On storage failure.
    pub async fn register(
        &self,
        metadata: &Metadata,
        actor: &str,
    ) -> Result<(ClientRow, Option<Zeroizing<String>>), StartError> {
        let client_id = format!("{}{}", clients::CLIENT_ID_PREFIX, crate::random_id(16));
        let (secret, hash) = if metadata.token_endpoint_auth_method.uses_secret() {
            let (s, h) = clients::new_secret();
            (Some(s), Some(h))
        } else {
            (None, None)
        };
        let now = self.clock.now();
        let row = ClientRow {
            client_id,
            metadata: serde_json::to_value(metadata)
                .map_err(|e| StartError::Client(e.to_string()))?,
            secret_hash: hash,
            created_at: UnixTime::from_secs(now),
        };
        self.store.insert_client(&row).await?;
        self.store
            .audit(&AuditEntry {
                at: row.created_at,
                actor,
                action: "client_registered",
                subject: &row.client_id,
            })
            .await?;
        self.reload_clients().await?;
        Ok((row, secret))
    }
}

/// A running node.
#[derive(Debug)]
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where `/metrics` is served, when `server.metrics_listen` is set.
    pub metrics_addr: Option<SocketAddr>,
    /// Its state (tests drive refreshes through it).
    pub state: Arc<AppState>,
    /// Whether this start created the admin token file.
    pub created_admin_token: bool,
    /// The quickstart client's credentials file, when this start wrote it.
    pub quickstart_credentials: Option<PathBuf>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    refresher: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets requests in progress finish for at most
    /// `server.shutdown_timeout` (then drops their connections), closes
    /// the pool.
    ///
    /// # Errors
    /// When the server task panicked.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(r) = self.refresher.take() {
            r.abort();
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

    async fn wait_inner(&mut self) -> std::io::Result<()> {
        let result = (&mut self.task).await.map_err(std::io::Error::other);
        self.state.store.close().await;
        result
    }
}

/// Options that are not settings: the clock, and whether to run the
/// background refresher (tests drive refreshes themselves).
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Run the background task that drives transitions.
    pub background: bool,
    /// Stop on Ctrl-C / SIGTERM.
    pub handle_signals: bool,
}

impl Default for StartOptions {
    fn default() -> Self {
        Self {
            clock: Arc::new(crate::clock::SystemClock),
            background: true,
            handle_signals: false,
        }
    }
}

/// Opens (or creates) the data, loads keys and clients, binds the
/// listener and serves.
///
/// # Errors
/// A [`StartError`] saying what could not be opened or created.
pub async fn start(mut config: Config, options: StartOptions) -> Result<Running, StartError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| StartError::Io { path, error }
    };
    // Bound first: a taken port leaves nothing behind in the data folder.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(io(Path::new(&config.listen.to_string())))?;
    let addr = listener.local_addr().map_err(io(Path::new("listener")))?;
    let metrics_listener = match config.metrics_listen {
        Some(at) => Some(
            tokio::net::TcpListener::bind(at)
                .await
                .map_err(io(Path::new(&at.to_string())))?,
        ),
        None => None,
    };
    let metrics_addr = match &metrics_listener {
        Some(l) => Some(l.local_addr().map_err(io(Path::new("metrics listener")))?),
        None => None,
    };
    if let Some(at) = metrics_addr.filter(|a| !a.ip().is_loopback()) {
        // Allowed (a Prometheus on another host must reach it), but said.
        tracing::warn!(
            metrics_listen = %at,
            "metrics are served on a non-loopback address: client ids and counters are readable by anyone who can reach it"
        );
    }
    config.bound_to(addr);
    create_private_dir(&config.data).map_err(io(&config.data))?;
    let store = Store::connect(&config.database_url).await?;
    if store.is_sqlite() {
        private_database_files(&config.data);
    }
    let kek = Arc::new(open_kek(&store, &config.keys.kek_file).await?);
    check_federation_against_clients(&store, &config.federation).await?;
    let upstreams = federation(&config.federation).await?;
    let lifecycle = Lifecycle::new(
        store.clone(),
        Arc::clone(&kek),
        config.keys.clone(),
        Arc::clone(&options.clock),
    );
    lifecycle.tick().await?;
    let ring = lifecycle.load(None).await?;

    let (admin_hash, created_admin_token) = admin_token(&store, &config.admin_token_file).await?;
    let metrics = Metrics::new();
    let discovery = crate::http::Discovery::new(&config);
    let state = Arc::new(AppState {
        store,
        lifecycle,
        ring: ArcSwap::from_pointee(ring),
        clients: ArcSwap::from_pointee(ClientTable::new()),
        admin_hash,
        metrics,
        clock: options.clock,
        discovery,
        kek,
        verified_jwts: crate::jwtcache::VerifiedJwts::new(100_000),
        upstreams,
        revocations: tokio::sync::Notify::new(),
        stopping: tokio::sync::watch::Sender::new(false),
        reload: Mutex::new(()),
        kid_reloads: crate::http::own::KidReloads::default(),
        config,
    });
    state.reload_clients().await?;
    let quickstart_credentials = quickstart(&state).await?;

    let app = crate::http::app(Arc::clone(&state));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let signals = options.handle_signals;
    let stopping = state.stopping.clone();
    // `stopping` tells both listeners, and the long polls, to end.
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
    let stopped = |state: &AppState| {
        let mut watch = state.stopping.subscribe();
        async move {
            let _ = watch.wait_for(|stopping| *stopping).await;
        }
    };
    let limits = state.config.connections;
    let public = tessera_http::serve(listener, app, limits, stopped(&state));
    let metrics = metrics_listener.map(|l| {
        let app = crate::http::metrics_app(Arc::clone(&state));
        tessera_http::serve(l, app, limits, stopped(&state))
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
        let state = Arc::clone(&state);
        tokio::spawn(async move { refresh_loop(state).await })
    });
    Ok(Running {
        addr,
        metrics_addr,
        state,
        created_admin_token,
        quickstart_credentials,
        shutdown: Some(tx),
        task,
        refresher,
    })
}

async fn refresh_loop(state: Arc<AppState>) {
    loop {
        let now = state.clock.now();
        let mut wait = state.config.keys.refresh_interval;
        if let Some(at) = state.ring.load().next_change {
            let until = u64::try_from(at.saturating_sub(now)).unwrap_or(0);
            wait = wait.min(Duration::from_secs(until.max(1)));
        }
        tokio::time::sleep(wait).await;
        if let Err(e) = state.refresh().await {
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
async fn federation(
    upstreams: &[crate::config::Upstream],
) -> Result<Vec<(crate::config::Upstream, Arc<tessera_verify::Verifier>)>, StartError> {
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

async fn quickstart(state: &AppState) -> Result<Option<PathBuf>, StartError> {
    if !state.config.quickstart_client
        || !state
            .store
            .set_setting_once("quickstart_client", "registered")
            .await?
    {
        return Ok(None);
    }
    let metadata = clients::Registration::quickstart()
        .validate(&state.config.tokens)
        .map_err(|e| StartError::Client(e.0))?;
    let (row, secret) = state.register(&metadata, "startup").await?;
    let path = state.config.data.join("quickstart.credentials");
    let secret = secret.unwrap_or_default();
    let line = Zeroizing::new(format!("{}:{}", row.client_id, secret.as_str()));
    write_secret_file(&path, line.as_bytes())?;
    Ok(Some(path))
}
