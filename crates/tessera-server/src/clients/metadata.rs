//! A client's metadata as stored and as the admin API shows it, and the
//! typed members it is made of. Their serialized names are the wire names
//! of RFC 7591 and of rows already in databases: they never change.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::vocabulary::GrantType;

/// How a client proves who it is at the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AuthMethod {
    /// HTTP Basic with the client id and secret (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// A JWT assertion signed with a registered key (RFC 7523).
    PrivateKeyJwt,
}

impl AuthMethod {
    /// The RFC 7591 name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }

    /// Whether the client has a secret.
    pub(crate) fn uses_secret(self) -> bool {
        !matches!(self, Self::PrivateKeyJwt)
    }

    /// Every method, in the order discovery lists them.
    pub(crate) const ALL: [Self; 3] = [
        Self::ClientSecretBasic,
        Self::ClientSecretPost,
        Self::PrivateKeyJwt,
    ];

    /// The method with this RFC 7591 name, if this server implements it.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// What a client's access tokens are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TokenFormat {
    /// Signed JWT access tokens (the default).
    #[default]
    Jwt,
    /// `tso_` handles, stored hashed and valid only through introspection.
    Opaque,
}

impl TokenFormat {
    /// The format with this name, if any.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name {
            "jwt" => Some(Self::Jwt),
            "opaque" => Some(Self::Opaque),
            _ => None,
        }
    }
}

/// The permission to read the deny-list feed (`GET /revocations`): it names
/// revoked subjects and client ids, so only followers registered for it
/// (gateways, resource servers) may read it.
pub(crate) const REVOCATIONS_READ: &str = "revocations:read";

/// Permissions a client may hold at the authority itself (not scopes: they
/// are never put in tokens).
pub(super) const PERMISSIONS: [&str; 1] = [REVOCATIONS_READ];

/// A client's metadata as stored and as the admin API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct Metadata {
    /// Human name.
    pub client_name: String,
    /// Grants it may use.
    pub grant_types: Vec<GrantType>,
    /// Its one authentication method.
    pub token_endpoint_auth_method: AuthMethod,
    /// Allowed scopes, space-separated (empty: none).
    pub scope: String,
    /// Public keys for `private_key_jwt`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    /// Allowed audiences; tokens carry all of them unless one is asked for.
    pub audiences: Vec<String>,
    /// Access-token lifetime in seconds.
    pub access_token_ttl: u64,
    /// Static claims added to every token.
    pub claims: Map<String, Value>,
    /// `jwt` (signed access tokens, the default) or `opaque` (`tso_`
    /// handles, stored hashed and valid only through introspection).
    pub token_format: TokenFormat,
    /// Audiences whose tokens this client (a resource server) may
    /// introspect, besides its own tokens.
    #[serde(default)]
    pub introspection_audiences: Vec<String>,
    /// Claims copied from a jwt-bearer assertion into the user's token
    /// (tenant_id, email...); any other assertion claim is dropped.
    #[serde(default)]
    pub assertion_claims: Vec<String>,
    /// What the client may do at the authority besides asking for tokens
    /// ([`PERMISSIONS`]: `revocations:read`). None by default.
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// The scopes of a space-separated `scope` string (runs of spaces, and
/// spaces at either end, separate nothing).
pub(super) fn scope_tokens(scope: &str) -> impl Iterator<Item = &str> {
    scope.split(' ').filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_members_keep_their_wire_names() {
        for g in GrantType::ALL {
            assert_eq!(serde_json::to_value(g).unwrap(), g.name());
            assert_eq!(GrantType::from_name(g.name()), Some(g));
        }
        // The metrics counters are indexed by discriminant.
        for (i, g) in GrantType::ALL.into_iter().enumerate() {
            assert_eq!(g as usize, i);
        }
        assert_eq!(
            GrantType::supported(),
            "client_credentials, urn:ietf:params:oauth:grant-type:jwt-bearer, refresh_token, urn:ietf:params:oauth:grant-type:token-exchange"
        );
        assert_eq!(GrantType::from_name("password"), None);
        for m in AuthMethod::ALL {
            assert_eq!(serde_json::to_value(m).unwrap(), m.name());
            assert_eq!(AuthMethod::from_name(m.name()), Some(m));
        }
        assert_eq!(AuthMethod::from_name("none"), None);
        assert_eq!(serde_json::to_value(TokenFormat::Jwt).unwrap(), "jwt");
        assert_eq!(serde_json::to_value(TokenFormat::Opaque).unwrap(), "opaque");
        assert_eq!(TokenFormat::from_name("paseto"), None);
    }

    #[test]
    fn stored_metadata_round_trips_byte_for_byte() {
        let stored = r#"{"client_name":"x","grant_types":["client_credentials","urn:ietf:params:oauth:grant-type:jwt-bearer","refresh_token","urn:ietf:params:oauth:grant-type:token-exchange"],"token_endpoint_auth_method":"client_secret_post","scope":"","audiences":["a"],"access_token_ttl":60,"claims":{},"token_format":"opaque","introspection_audiences":[],"assertion_claims":[],"permissions":[]}"#;
        let m: Metadata = serde_json::from_str(stored).unwrap();
        assert_eq!(m.token_format, TokenFormat::Opaque);
        assert_eq!(m.grant_types, GrantType::ALL);
        assert_eq!(serde_json::to_string(&m).unwrap(), stored);
    }
}
