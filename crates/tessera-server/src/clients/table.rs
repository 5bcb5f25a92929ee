//! The clients as the token endpoint sees them: parsed once from their
//! stored rows into an in-memory table (no database read per request), with
//! their secrets held only as hashes.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize as _;
use tessera_jose::KeySet;

use super::metadata::scope_tokens;
use super::{assertion_keys, Metadata};

/// A client as the token endpoint sees it.
pub(crate) struct Client {
    /// Its id.
    pub id: String,
    /// Metadata.
    pub metadata: Metadata,
    /// SHA-256 of its secret.
    secret_hash: Option<[u8; 32]>,
    /// Assertion keys (private_key_jwt).
    pub assertion_keys: Option<KeySet>,
    /// Allowed scopes.
    pub scopes: Vec<String>,
    /// Tokens issued to it, by grant.
    pub issued: crate::telemetry::IssuedCounters,
    /// The metadata as stored (to tell whether a reload changed it).
    pub stored: serde_json::Value,
    /// Why tokens must not be issued to it: static claims that break the
    /// sensitive-claim policy (registration refuses them; a row written to
    /// the database by other means is caught here, once, at load).
    pub refusal: Option<String>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("client_name", &self.metadata.client_name)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds from a stored row.
    ///
    /// # Errors
    /// When the stored metadata or hash no longer parses.
    pub(crate) fn from_row(
        row: &crate::store::ClientRow,
        issued: crate::telemetry::IssuedCounters,
    ) -> Result<Self, String> {
        let metadata = Metadata::deserialize(&row.metadata)
            .map_err(|e| format!("client {}: metadata: {e}", row.client_id))?;
        let secret_hash = row
            .secret_hash
            .as_deref()
            .map(|h| decode_hash(h).ok_or_else(|| format!("client {}: secret hash", row.client_id)))
            .transpose()?;
        let assertion_keys = match &metadata.jwks {
            Some(jwks) => {
                Some(assertion_keys(jwks).map_err(|e| format!("client {}: {e}", row.client_id))?)
            }
            None => None,
        };
        let scopes = scope_tokens(&metadata.scope).map(str::to_owned).collect();
        Ok(Self {
            id: row.client_id.clone(),
            secret_hash,
            assertion_keys,
            scopes,
            issued,
            stored: row.metadata.clone(),
            refusal: tessera_jose::lint::sensitive_claims(&metadata.claims)
                .first()
                .map(|f| f.message.clone()),
            metadata,
        })
    }

    /// Whether its registration grants `permission` ([`super::metadata::PERMISSIONS`]).
    pub(crate) fn may(&self, permission: &str) -> bool {
        self.metadata.permissions.iter().any(|p| p == permission)
    }

    /// Checks a presented secret: SHA-256, then a constant-time comparison.
    /// A 256-bit random secret needs no slow password hash: nobody can
    /// guess it, and a stolen hash does not reveal it.
    pub(crate) fn secret_matches(&self, presented: &str) -> bool {
        let Some(stored) = &self.secret_hash else {
            return false;
        };
        tessera_verify::token_hash::matches(presented, stored)
    }
}

/// A stored secret hash: base64url of 32 bytes.
fn decode_hash(encoded: &str) -> Option<[u8; 32]> {
    let bytes = tessera_jose::b64::decode(encoded).ok()?;
    <[u8; 32]>::try_from(bytes.as_slice()).ok()
}

/// A new secret (256 random bits, base64url) and its stored hash.
pub(crate) fn new_secret() -> (zeroize::Zeroizing<String>, String) {
    let secret = zeroize::Zeroizing::new(format!("tcs_{}", crate::random_id(32)));
    let hash = tessera_verify::token_hash::encoded(&secret);
    (secret, hash)
}

/// The client table the hot path reads.
pub(crate) type ClientTable = HashMap<String, Arc<Client>>;

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::clients::Registration;
    use crate::config::Config;

    fn reg(json: Value) -> Metadata {
        serde_json::from_value::<Registration>(json)
            .unwrap()
            .validate(&Config::defaults().unwrap().tokens)
            .unwrap()
    }

    #[test]
    fn secrets_check_in_constant_time_against_the_hash() {
        let (secret, hash) = new_secret();
        assert!(secret.starts_with("tcs_") && secret.len() > 40);
        let row = crate::store::ClientRow {
            client_id: "c".into(),
            metadata: serde_json::to_value(reg(serde_json::json!({"client_name": "x"}))).unwrap(),
            secret_hash: Some(hash),
            created_at: tessera_jose::UnixTime::from_secs(0),
        };
        let issued = crate::telemetry::Metrics::new().issued("c");
        let client = Client::from_row(&row, issued).unwrap();
        assert!(client.secret_matches(&secret));
        assert!(!client.secret_matches("tcs_wrong"));
        assert!(!client.secret_matches(""));
        assert!(!format!("{client:?}").contains(secret.as_str()));
    }
}
