//! The OAuth vocabulary the whole server shares, and nothing else: the
//! grant types it implements and the claims it owns. A leaf: it depends on
//! no other module of the server, so settings, the registry, metrics and
//! the authority can all name these without depending on one another.

use serde::{Deserialize, Serialize};

/// An OAuth grant this server implements; serialized (stored metadata,
/// admin API, discovery) as its RFC name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum GrantType {
    /// `client_credentials` (RFC 6749 §4.4): a token for the client itself.
    #[serde(rename = "client_credentials")]
    ClientCredentials,
    /// The JWT bearer grant (RFC 7523 §2.1): a trusted client's signed
    /// assertion names a user, who gets the token.
    #[serde(rename = "urn:ietf:params:oauth:grant-type:jwt-bearer")]
    JwtBearer,
    /// `refresh_token` (RFC 6749 §6).
    #[serde(rename = "refresh_token")]
    RefreshToken,
    /// Token exchange (RFC 8693).
    #[serde(rename = "urn:ietf:params:oauth:grant-type:token-exchange")]
    TokenExchange,
}

impl GrantType {
    /// The grants this server implements today, in the order discovery
    /// and error messages list them.
    pub(crate) const ALL: [Self; 4] = [
        Self::ClientCredentials,
        Self::JwtBearer,
        Self::RefreshToken,
        Self::TokenExchange,
    ];

    /// The RFC name (`grant_type` parameter, `grant_types` member).
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::JwtBearer => "urn:ietf:params:oauth:grant-type:jwt-bearer",
            Self::RefreshToken => "refresh_token",
            Self::TokenExchange => "urn:ietf:params:oauth:grant-type:token-exchange",
        }
    }

    /// The `grant` label of `tessera_tokens_issued_total` for a token
    /// issued through it.
    pub(crate) const fn metric_label(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::JwtBearer => "jwt_bearer",
            Self::RefreshToken => "refresh_token",
            Self::TokenExchange => "token_exchange",
        }
    }

    /// The grant with this RFC name, if this server implements it.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.name() == name)
    }

    /// Every supported name, comma-separated (for error messages).
    pub(crate) fn supported() -> String {
        Self::ALL.map(Self::name).join(", ")
    }

    /// Whether the grant acts for a user (and so may start a refresh-token
    /// family).
    pub(crate) const fn acts_for_user(self) -> bool {
        matches!(self, Self::JwtBearer | Self::TokenExchange)
    }
}

/// Claims a client's static `claims`, its `assertion_claims` and a
/// federation mapping may not set, and an exchange does not carry over:
/// the server owns them.
pub(crate) const RESERVED_CLAIMS: [&str; 13] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "client_id",
    "scope",
    "act",
    "cnf",
    "may_act",
    "auth_time",
];
