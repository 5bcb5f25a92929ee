//! The client registry: registered clients, read from memory on every
//! request (swapped whole on a change, read without a lock), registered,
//! deleted and listed through the admin API.

use std::sync::Arc;

use arc_swap::Guard;
use serde::Deserialize as _;
use serde_json::{json, Value};
use tessera_jose::UnixTime;
use zeroize::Zeroizing;

use super::{Authority, OAuthError, StartError};
use crate::clients::{self, Client, ClientTable, Metadata, Registration};
use crate::store::{AuditEntry, ClientRow, Party};

impl Authority {
    /// The registered clients.
    pub(crate) fn clients(&self) -> Guard<Arc<ClientTable>> {
        self.clients.load()
    }

    /// Re-reads the client table, keeping the metric handles.
    ///
    /// # Errors
    /// On storage failure or a stored client that no longer parses.
    pub(crate) async fn reload_clients(&self) -> Result<(), StartError> {
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
                // config: the static claim wins (see claims.rs).
                tracing::warn!(client_id = %client.id, "{conflict}");
            }
            table.insert(row.client_id.clone(), Arc::new(client));
        }
        self.clients.store(Arc::new(table));
        Ok(())
    }

    /// Validates a registration against the settings: its metadata, or
    /// `invalid_client_metadata` saying what is wrong.
    ///
    /// # Errors
    /// `invalid_client_metadata`.
    pub(crate) fn admit(&self, registration: Registration) -> Result<Metadata, OAuthError> {
        let metadata = registration
            .validate(&self.config.tokens)
            .map_err(|e| OAuthError::invalid_client_metadata(e.0))?;
        if let Some(conflict) = clients::federation_conflict(&metadata, &self.config.federation) {
            return Err(OAuthError::invalid_client_metadata(conflict));
        }
        Ok(metadata)
    }

    /// Registers a client; returns its row and, for secret methods, the
    /// secret (shown once, stored only as a hash).
    ///
    /// # Errors
    /// On storage failure.
    pub(crate) async fn register(
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
        let now = self.now();
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

    /// Deletes a client, after revoking every token it holds.
    ///
    /// # Errors
    /// `not_found`, or a storage failure (the client then stays, for a
    /// retry).
    pub(crate) async fn delete_client(&self, id: &str, actor: &str) -> Result<(), OAuthError> {
        if !self.clients.load().contains_key(id) {
            // Perhaps registered on another node since this one last looked.
            self.reload_clients().await?;
            if !self.clients.load().contains_key(id) {
                return Err(OAuthError::not_found("no client with that id"));
            }
        }
        // Its tokens stop working first, all of them: client ids are never
        // reused, so the rule has no bound and also covers tokens other
        // nodes issue before they reload their clients. A failure here
        // leaves the client in place for a retry.
        self.revoke_everything(Party::Client, id, None, actor)
            .await?;
        if !self.store.delete_client(id).await? {
            return Err(OAuthError::not_found("no client with that id"));
        }
        self.store
            .audit(&AuditEntry {
                at: UnixTime::from_secs(self.now()),
                actor,
                action: "client_deleted",
                subject: id,
            })
            .await?;
        self.reload_clients().await?;
        tracing::info!(client_id = %id, "client deleted");
        Ok(())
    }

    /// Every registered client as the admin API shows it.
    ///
    /// # Errors
    /// On storage failure or a stored client that no longer parses.
    pub(crate) async fn list_clients(&self) -> Result<Vec<Value>, OAuthError> {
        let rows = self.store.clients().await?;
        let mut out = Vec::new();
        for row in rows {
            let metadata =
                Metadata::deserialize(&row.metadata).map_err(|e| OAuthError::internal(&e))?;
            out.push(client_json(
                &row.client_id,
                row.created_at.secs(),
                &metadata,
            ));
        }
        Ok(out)
    }
}

/// A client as the admin API shows it: its metadata, id and issue time.
pub(crate) fn client_json(client_id: &str, created_at: i64, metadata: &Metadata) -> Value {
    let mut v = serde_json::to_value(metadata).unwrap_or_else(|_| json!({}));
    if let Some(map) = v.as_object_mut() {
        map.insert("client_id".into(), json!(client_id));
        map.insert("client_id_issued_at".into(), json!(created_at));
    }
    v
}
