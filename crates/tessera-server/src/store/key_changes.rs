//! Key changes between nodes on PostgreSQL: a committed key transition
//! sends a notification on [`CHANNEL`] ([`notify`], from
//! `KeyTx::commit`), and every node listens on a dedicated connection
//! ([`KeyChanges`]) so that it reloads its key ring within milliseconds
//! instead of at its next periodic refresh.
//!
//! Channels are per database, not per schema: the payload is the schema
//! the change was made in, and a listener ignores other schemas' changes
//! (two deployments, or two test runs, sharing one database).
//!
//! A notification is a hint, never the only way: one sent while a
//! listener was disconnected is lost, so the periodic refresh stays, and
//! the node reloads once whenever it starts listening again.

use sqlx::postgres::PgListener;

use super::{Store, StoreError};

/// The notification channel of key changes.
pub(crate) const CHANNEL: &str = "tessera_keys";

/// The `application_name` of a listening connection, followed by its
/// schema.
const APPLICATION_NAME: &str = "tessera-keys ";

/// The schema of this connection, as a payload (never NULL).
const SCHEMA: &str = "coalesce(current_schema()::text, '')";

/// Sends the key-change notification inside `tx`: delivered when `tx`
/// commits, dropped if it rolls back.
///
/// # Errors
/// On database failure.
pub(super) async fn notify(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
) -> Result<(), StoreError> {
    // `pg_notify` returns `void`, a type the `Any` driver cannot decode:
    // the row returned is a count instead.
    sqlx::query(&format!(
        "SELECT count(*) FROM (SELECT pg_notify($1, {SCHEMA})) AS sent"
    ))
    .bind(CHANNEL)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A connection listening for other nodes' key changes.
pub struct KeyChanges {
    listener: PgListener,
    /// The schema whose changes count.
    schema: String,
}

impl std::fmt::Debug for KeyChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyChanges")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens a connection that listens for key changes on this database
    /// and schema; None on SQLite (one node: nobody else changes keys).
    ///
    /// # Errors
    /// When the database cannot be reached.
    pub async fn listen_key_changes(&self) -> Result<Option<KeyChanges>, StoreError> {
        let Some(url) = &self.listen_url else {
            return Ok(None);
        };
        let mut listener = PgListener::connect(url).await?;
        // A lost connection is reported (`next` answers false), not
        // silently replaced: the caller must reload after reconnecting.
        listener.eager_reconnect(false);
        listener.listen(CHANNEL).await?;
        let schema: String = sqlx::query_scalar(&format!("SELECT {SCHEMA}"))
            .fetch_one(&mut listener)
            .await?;
        // Named for operators (and tests) in `pg_stat_activity`.
        sqlx::query("SELECT set_config('application_name', $1, false)")
            .bind(format!("{APPLICATION_NAME}{schema}"))
            .execute(&mut listener)
            .await?;
        Ok(Some(KeyChanges { listener, schema }))
    }
}

impl KeyChanges {
    /// Waits for the next key change committed in this schema: true. False
    /// when the connection was lost (changes may have been missed; open a
    /// new one).
    ///
    /// # Errors
    /// On database failure (also: open a new one).
    pub async fn next(&mut self) -> Result<bool, StoreError> {
        loop {
            match self.listener.try_recv().await? {
                Some(n) if n.payload() == self.schema => return Ok(true),
                Some(_) => {}
                None => return Ok(false),
            }
        }
    }
}
