//! The authority's rules: who a client is, what a grant gives, what a
//! presented token is and who may see it, what a revocation reaches. HTTP
//! adapts requests to these calls (`http/`); storage keeps their data
//! (`store/`); nothing here knows either's wire format.
//!
//! [`Authority`] is the one service a node runs. Its parts, each a module
//! that depends only on those listed before it:
//!
//! - `params`: a request's parameters and the RFC 8693 token type names;
//! - `keys`: the key lifecycle, the ring, recognising this issuer's JWTs;
//! - `deny_list`: what is refused, the feed, revoking everything of one
//!   party;
//! - `registry`: the registered clients; `client_auth`: who is calling;
//! - `presented`: tokens presented back (introspection, revocation, and the
//!   subject and actor tokens of an exchange) and who may see them;
//! - `session`: the refresh-token family of a user's grant;
//! - `basis`: what a grant gives, and how scope and audience narrow;
//! - `grants/`: one module per grant that acts for a user;
//! - `claims` and `issue`: a basis becomes a signed (or opaque) token;
//! - `grant`: the token endpoint's entry: the grant parsed once, checked
//!   against the client, given, issued.
//!
//! Adding a grant type: its wire name in `GrantType` (`vocabulary.rs`), a
//! variant of `grant::Grant` with its parse arm and dispatch arm, and a
//! module in `grants/` that turns its request into a `basis::Basis`.

mod basis;
mod claims;
mod client_auth;
pub(crate) mod clock_guard;
pub(crate) mod deny_list;
mod error;
pub(crate) mod grant;
mod grants;
mod issue;
pub(crate) mod keys;
mod params;
mod presented;
mod registry;
mod session;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;

use self::clock_guard::ClockGuard;
use crate::clients::ClientTable;
use crate::clock::Clock;
use crate::config::{Config, Upstream};
use crate::kek::{Kek, KekError};
use crate::lifecycle::LifecycleError;
use crate::store::{Store, StoreError};
use crate::telemetry::Metrics;

pub(crate) use client_auth::Credentials;
pub(crate) use deny_list::DenyList;
pub(crate) use error::{ErrorCode, OAuthError};
pub(crate) use issue::Issued;
pub(crate) use keys::Keys;
pub(crate) use params::Params;
pub(crate) use presented::VerifiedJwts;
pub(crate) use registry::client_json;

/// Why the server could not start, or a refresh failed.
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
    /// The node's clock disagrees with the database's.
    #[error("clock: {0}: fix the node's time (NTP) and start again")]
    Clock(String),
}

/// An upstream issuer for federation, with the verifier that follows its
/// key set.
pub(crate) type Federated = (Upstream, Arc<tessera_verify::Verifier>);

/// One node's authority: settings, storage, keys, clients, deny-list.
pub(crate) struct Authority {
    config: Config,
    store: Store,
    /// Seals refresh-token successors kept for the reuse interval.
    kek: Arc<Kek>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    keys: Keys,
    /// Registered clients: swapped whole, read without a lock.
    clients: ArcSwap<ClientTable>,
    deny_list: DenyList,
    upstreams: Vec<Federated>,
    /// JWT access tokens this node has verified (introspection, exchange).
    verified_jwts: VerifiedJwts,
    /// Whether this node's clock may be trusted.
    clock_guard: ClockGuard,
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authority")
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

/// What [`Authority::new`] is built from.
pub(crate) struct Parts {
    pub(crate) config: Config,
    pub(crate) store: Store,
    pub(crate) kek: Arc<Kek>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) clock_guard: ClockGuard,
    pub(crate) keys: Keys,
    pub(crate) upstreams: Vec<Federated>,
}

impl Authority {
    /// An authority with no clients loaded yet ([`Authority::reload_clients`]).
    pub(crate) fn new(parts: Parts) -> Self {
        Self {
            deny_list: DenyList::new(parts.store.clone()),
            config: parts.config,
            store: parts.store,
            kek: parts.kek,
            clock: parts.clock,
            metrics: Metrics::new(),
            keys: parts.keys,
            clients: ArcSwap::from_pointee(ClientTable::new()),
            upstreams: parts.upstreams,
            verified_jwts: VerifiedJwts::new(100_000),
            clock_guard: parts.clock_guard,
        }
    }

    /// The settings.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// The storage (start-up, the node's end, tests).
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// The key lifecycle and the signing state.
    pub(crate) fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The deny-list.
    pub(crate) fn deny_list(&self) -> &DenyList {
        &self.deny_list
    }

    /// The metrics.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Now, in Unix seconds, by this node's clock.
    pub(crate) fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Drives due key transitions, then re-reads keys and clients (other
    /// nodes may have changed them).
    ///
    /// # Errors
    /// On storage or key failures; the previous state keeps serving.
    pub(crate) async fn refresh(&self) -> Result<(), StartError> {
        // A clock that disagrees with the database's drives no transition
        // and purges nothing (both read it); the keys and clients are
        // still read.
        let trusted = vouch(&self.clock_guard, &*self.clock, &self.store).await;
        let (ticked, purged) = if trusted.is_ok() {
            // Each step runs whatever the others did: a failed transition
            // must not keep this node on stale keys, nor on deleted clients.
            let ticked = self.keys.tick().await.map_err(StartError::from);
            // Deny-list entries and tokens go once they have expired, audit
            // entries after their retention.
            let purged = self
                .store
                .purge_expired(
                    tessera_jose::UnixTime::from_secs(self.now()),
                    self.config.audit_retention,
                )
                .await
                .map_err(StartError::from);
            (ticked, purged)
        } else {
            (Ok(()), Ok(()))
        };
        let keys = self.keys.reload().await;
        let clients = self.reload_clients().await;
        trusted.and(ticked).and(purged).and(keys).and(clients)
    }

    /// Whether this node's clock may be used: tokens are refused
    /// (`temporarily_unavailable`) while it may not.
    pub(crate) fn clock_trusted(&self) -> Result<(), OAuthError> {
        self.clock_guard.check(&*self.clock).map_err(|skew| {
            OAuthError::unavailable(format!(
                "this node's clock is not trusted now ({skew}); another node can serve"
            ))
        })
    }

    /// Why the clock is distrusted, if it is (readiness).
    pub(crate) fn clock_skew(&self) -> Option<String> {
        self.clock_guard.skew().map(|s| s.to_string())
    }
}

/// Compares `clock` with the database's clock (PostgreSQL; SQLite has none)
/// and lets `guard` vouch for it. A database that cannot be read leaves the
/// guard as it was.
pub(crate) async fn vouch(
    guard: &ClockGuard,
    clock: &dyn Clock,
    store: &Store,
) -> Result<(), StartError> {
    let sent = clock.reading().map(|(wall, _)| wall);
    let reference = match store.now_ms().await {
        Ok(Some(db)) => sent.map(|sent| (sent, db)),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "clock: the database's clock could not be read");
            return Ok(());
        }
    };
    guard
        .vouch(clock, reference)
        .map_err(|skew| StartError::Clock(skew.to_string()))
}
