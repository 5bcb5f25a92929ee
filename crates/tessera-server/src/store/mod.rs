//! Storage: one set of queries and migrations for SQLite and PostgreSQL,
//! through sqlx's `Any` driver, chosen by the database URL.
//!
//! Only TEXT and BIGINT columns and `$N` placeholders (which both engines
//! read, numbered in order of first use) keep the SQL portable.
//!
//! One module per aggregate, each adding its methods to [`Store`]: `keys`
//! (with the key transaction [`KeyTx`], which tells the other nodes what it
//! changed, and `key_changes`, where they hear it), `clients`, `refresh` (refresh-token
//! families), `opaque` (opaque access tokens), `revocations` (the deny-list,
//! tokens exchanged from others, the feed), `assertions` (used client
//! assertion jtis), `settings` (settings and the audit log). One operation
//! spans aggregates: `revoke_all` (everything of a subject or client), which
//! calls `revocations`, `refresh` and `opaque`. Their dependencies run one
//! way: `revocations` calls no other aggregate, `opaque` calls
//! `revocations`, `refresh` calls both, `keys` calls `revocations`. This
//! module keeps the pool, the schema and what they share.
//!
//! At this API, times are [`UnixTime`]: the workspace's one type for a
//! second count since the epoch (what a JWT's `exp` and `iat` already are
//! in `tessera-jose`), ordered, with saturating arithmetic on [`Duration`]s.
//! A store-local newtype would have added nothing but a second conversion
//! at every caller that mints tokens. In SQL they stay BIGINT seconds:
//! bound with [`UnixTime::secs`], read back with [`UnixTime::from_secs`].
//! Lengths of time (a reuse interval, a retention) are [`Duration`]s.
//!
//! JSON columns (claims, audiences, client metadata, public keys) are
//! decoded here, on the way out: a caller gets a [`Value`] or a [`Map`],
//! and a row that does not decode is [`StoreError::Corrupt`], never a
//! silent default.

use std::fmt;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row as _};
use tessera_jose::UnixTime;

mod assertions;
mod clients;
mod key_changes;
mod keys;
mod opaque;
mod refresh;
mod revocations;
mod revoke_all;
mod settings;
#[cfg(test)]
mod testdb;

pub use assertions::UsedAssertion;
pub use clients::ClientRow;
pub use keys::{KeyRow, KeyState, KeyTx, Transition};
pub use opaque::NewOpaque;
pub use refresh::{FamilyAccess, FamilyStart, Issue, Presented, RefreshOutcome, RefreshRow};
pub use revocations::{opaque_parent, Derived, JtiRevocation, RuleKind, TokenFacts};
pub use revoke_all::{Party, RevokeAll};
pub use settings::AuditEntry;
#[cfg(any(test, feature = "test-util"))]
pub use settings::AuditRecord;

/// A database failure. The detail is for the log, never for a client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or the query failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A row holds a value this version cannot read.
    #[error("database row: {0}")]
    Corrupt(String),
    /// The SQLite file cannot be used (not a database, damaged): what
    /// SQLite said, with the file, which is left as it was.
    #[error("SQLite database {path}: {reason}; the file is left as it was: restore it from a backup, or move it away to start with an empty database")]
    Damaged {
        /// The file.
        path: String,
        /// SQLite's reason.
        reason: String,
    },
    /// The SQLite file cannot be opened for writing (a read-only
    /// filesystem, missing permissions): SQLite's reason and the system's.
    #[error("SQLite database {path}: {reason}")]
    Unopenable {
        /// The file.
        path: String,
        /// SQLite's reason, and the system's when it has one.
        reason: String,
    },
}

impl StoreError {
    /// Whether the failure is a unique-constraint violation (another node
    /// did the same thing first).
    pub fn is_conflict(&self) -> bool {
        match self {
            Self::Db(sqlx::Error::Database(e)) => {
                e.is_unique_violation()
                    // SQLite: SQLITE_BUSY, BUSY_RECOVERY, BUSY_SNAPSHOT (a
                    // write after another connection's commit);
                    // PostgreSQL: serialization failure, deadlock.
                    || matches!(e.code().as_deref(), Some("5" | "261" | "517" | "40001" | "40P01"))
            }
            _ => false,
        }
    }

    /// Whether the database is out of reach, not the request or the data
    /// at fault: no connection within the acquire timeout (the server
    /// refuses or is gone), a connection that broke, a server shutting down
    /// or refusing sessions, or a SQLite file still locked when the busy
    /// timeout ran out. Such a failure means "retry shortly": the endpoints
    /// answer it with 503 `temporarily_unavailable` and `Retry-After`, not
    /// 500. A closed pool is the node stopping: another node can answer.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Db(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)) => {
                true
            }
            Self::Db(sqlx::Error::Database(e)) => e.code().is_some_and(|c| unavailable_code(&c)),
            _ => false,
        }
    }
}

/// The error codes of a database that cannot serve now. PostgreSQL
/// (SQLSTATE): class 08, connection exception; 57P01 admin shutdown (a
/// stopping server, `pg_terminate_backend`), 57P02 crash shutdown, 57P03
/// cannot connect now (a starting server), 57P05 idle session timeout;
/// 53300 too many connections. SQLite: SQLITE_BUSY and its extended codes
/// BUSY_RECOVERY (261) and BUSY_SNAPSHOT (517), which reach a caller only
/// once the busy timeout has run out or a retry would succeed: a writer
/// that waited less is never one of them. And a full disk, which refuses
/// writes until an operator frees space, and then serves again with no
/// restart: PostgreSQL 53100 disk full, SQLite SQLITE_FULL (13).
fn unavailable_code(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "57P05" | "53300" | "53100" | "5" | "261" | "517" | "13"
        )
}

/// How long a request waits for a PostgreSQL connection before it is
/// answered 503: long enough for a connection to be set up across a
/// network (TLS included) or freed by a busy pool, short enough that a
/// database that refuses connections costs a client one second, not the
/// five it took before (sqlx keeps retrying a refused connect until this
/// runs out). Each node holds at most 8 connections, so a queue longer than
/// this is an overload that 503s shed.
const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

/// SQLite's: a local file is never out of reach, and its 4 connections are
/// held by writers queueing on the 5 s busy timeout; a request queues
/// behind them for as long, so contention is a wait, not a 503.
const SQLITE_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long start-up waits for a database that refuses connections (one
/// started at the same moment), retrying, before it gives up.
const START_WAIT: Duration = Duration::from_secs(5);

/// The connection pool.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    sqlite: bool,
    /// PostgreSQL: the URL a dedicated `LISTEN` connection opens (the `Any`
    /// pool cannot listen). Never printed: it may carry a password.
    listen_url: Option<Arc<str>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: never printed.
        f.debug_struct("Store")
            .field("backend", &if self.sqlite { "sqlite" } else { "postgres" })
            .finish_non_exhaustive()
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Store {
    /// Connects and brings the schema up to date.
    ///
    /// # Errors
    /// When the database cannot be reached or migrated.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        let options = AnyConnectOptions::from_str(url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 4 } else { 8 })
            .acquire_timeout(if sqlite {
                SQLITE_ACQUIRE_TIMEOUT
            } else {
                PG_ACQUIRE_TIMEOUT
            })
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if sqlite {
                        // WAL lets readers run beside the writer; the busy
                        // timeout queues writers instead of failing them.
                        sqlx::query("PRAGMA busy_timeout = 5000")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_lazy_with(options.clone());
        if sqlite {
            check_sqlite(&options, url).await?;
        }
        first_connection(&pool).await?;
        MIGRATOR.run(&pool).await?;
        let listen_url = (!sqlite).then(|| Arc::from(url));
        Ok(Self {
            pool,
            sqlite,
            listen_url,
        })
    }

    /// Whether this is the SQLite backend.
    pub fn is_sqlite(&self) -> bool {
        self.sqlite
    }

    /// The database's clock in Unix milliseconds (PostgreSQL: the clock
    /// every node shares); `None` on SQLite, whose clock is the node's own.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn now_ms(&self) -> Result<Option<i64>, StoreError> {
        if self.sqlite {
            return Ok(None);
        }
        let ms: i64 = sqlx::query_scalar(
            "SELECT CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp()) * 1000) AS BIGINT)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Some(ms))
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A trivial query: is the database there?
    ///
    /// # Errors
    /// When it is not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// A transaction that will write. On SQLite it takes the write lock at
    /// once (`BEGIN IMMEDIATE`), so concurrent writers queue on the busy
    /// timeout instead of failing when a read lock cannot be upgraded.
    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        Ok(if self.sqlite {
            self.pool.begin_with("BEGIN IMMEDIATE").await?
        } else {
            self.pool.begin().await?
        })
    }

    /// Deletes what has expired at `now`: deny-list entries, ended refresh
    /// families and the records of their access tokens, opaque tokens, and
    /// audit entries older than `audit_retention`. The periodic refresh of
    /// every node runs it.
    ///
    /// # Errors
    /// On database failure (what was purged before it stays purged).
    pub async fn purge_expired(
        &self,
        now: UnixTime,
        audit_retention: Duration,
    ) -> Result<(), StoreError> {
        self.purge_revocations(now).await?;
        self.purge_refresh(now).await?;
        self.purge_opaque(now).await?;
        self.purge_audit(now.saturating_sub(audit_retention))
            .await?;
        Ok(())
    }
}

/// Waits up to [`START_WAIT`] for `pool`'s first connection: the pool's
/// own acquire timeout is a request's, shorter than a start-up may wait.
/// SQLite: one connection outside the pool before it, so that a file that
/// is not a database, is damaged or cannot be opened is refused with
/// SQLite's own reason (the pool would only time out), and `PRAGMA
/// quick_check` finds damage in pages that start-up would not read. Reads
/// only: the file is left as it was.
async fn check_sqlite(options: &AnyConnectOptions, url: &str) -> Result<(), StoreError> {
    use sqlx::Connection as _;
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    let refused = |e: sqlx::Error| {
        let reason = match &e {
            sqlx::Error::Database(db) => db.message().to_owned(),
            other => other.to_string(),
        };
        // SQLITE_CANTOPEN (14) and SQLITE_READONLY (8, and its extended
        // codes): the file or its folder cannot be written; the system
        // says why (opening for writing changes nothing).
        let code = match &e {
            sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
            _ => None,
        };
        let code = code.and_then(|c| c.parse::<u32>().ok()).unwrap_or(0);
        if code & 0xff == 14 || code & 0xff == 8 {
            let why = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .err()
                .map(|io| format!(" ({io})"))
                .unwrap_or_default();
            StoreError::Unopenable {
                path: path.clone(),
                reason: format!("{reason}{why}"),
            }
        } else {
            StoreError::Damaged {
                path: path.clone(),
                reason,
            }
        }
    };
    let mut conn = sqlx::AnyConnection::connect_with(options)
        .await
        .map_err(refused)?;
    let problems: Vec<String> = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_all(&mut conn)
        .await
        .map_err(refused)?;
    let _ = conn.close().await;
    if problems.iter().any(|p| p != "ok") {
        // Its lines under a "*** in database main ***" heading.
        let found: Vec<String> = problems
            .into_iter()
            .filter(|p| !p.starts_with("***"))
            .take(3)
            .collect();
        return Err(StoreError::Damaged {
            path,
            reason: format!("damaged ({})", found.join("; ")),
        });
    }
    Ok(())
}

async fn first_connection(pool: &AnyPool) -> Result<(), sqlx::Error> {
    let deadline = tokio::time::Instant::now() + START_WAIT;
    loop {
        match pool.acquire().await {
            Ok(_) => return Ok(()),
            Err(sqlx::Error::PoolTimedOut) if tokio::time::Instant::now() < deadline => {}
            Err(e) => return Err(e),
        }
    }
}

/// The time in column `i` of `row`.
fn time(row: &AnyRow, i: usize) -> Result<UnixTime, StoreError> {
    Ok(UnixTime::from_secs(row.try_get(i)?))
}

/// The time in column `i` of `row`, if set.
fn maybe_time(row: &AnyRow, i: usize) -> Result<Option<UnixTime>, StoreError> {
    Ok(row.try_get::<Option<i64>, _>(i)?.map(UnixTime::from_secs))
}

/// The JSON value in column `i` of `row`; `what` names it in the error
/// when it does not parse.
fn json(row: &AnyRow, i: usize, what: &str) -> Result<Value, StoreError> {
    let text: String = row.try_get(i)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// The JSON object in column `i` of `row`; anything else is corrupt.
fn json_object(row: &AnyRow, i: usize, what: &str) -> Result<Map<String, Value>, StoreError> {
    match json(row, i, what)? {
        Value::Object(map) => Ok(map),
        _ => Err(StoreError::Corrupt(format!("{what}: not a JSON object"))),
    }
}

/// A JSON object as stored.
fn object_text(map: &Map<String, Value>) -> Result<String, StoreError> {
    // Only a map with string keys is ever written: this cannot fail, and
    // would not be a database failure if it did.
    serde_json::to_string(map).map_err(|e| StoreError::Corrupt(format!("unwritable JSON: {e}")))
}

#[cfg(test)]
mod tests;
