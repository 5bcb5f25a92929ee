//! Registered clients: RFC 7591 metadata, registration rules, secrets, and
//! the in-memory table the token endpoint reads (no database read per
//! request).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tessera_jose::{Algorithm, JwkSet, KeySet};

use crate::config::TokenSettings;

/// How a client proves who it is at the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// HTTP Basic with the client id and secret (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// A JWT assertion signed with a registered key (RFC 7523).
    PrivateKeyJwt,
}

impl AuthMethod {
    /// The RFC 7591 name.
    pub fn name(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }

    /// Whether the client has a secret.
    pub fn uses_secret(self) -> bool {
        !matches!(self, Self::PrivateKeyJwt)
    }

    /// Every method, in the order discovery lists them.
    pub const ALL: [Self; 3] = [
        Self::ClientSecretBasic,
        Self::ClientSecretPost,
        Self::PrivateKeyJwt,
    ];

    /// The method with this RFC 7591 name, if this server implements it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// An OAuth grant this server implements; serialized (stored metadata,
/// admin API, discovery) as its RFC name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GrantType {
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
    pub const ALL: [Self; 4] = [
        Self::ClientCredentials,
        Self::JwtBearer,
        Self::RefreshToken,
        Self::TokenExchange,
    ];

    /// The RFC name (`grant_type` parameter, `grant_types` member).
    pub const fn name(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::JwtBearer => "urn:ietf:params:oauth:grant-type:jwt-bearer",
            Self::RefreshToken => "refresh_token",
            Self::TokenExchange => "urn:ietf:params:oauth:grant-type:token-exchange",
        }
    }

    /// The grant with this RFC name, if this server implements it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.name() == name)
    }

    /// Every supported name, comma-separated (for error messages).
    pub fn supported() -> String {
        Self::ALL.map(Self::name).join(", ")
    }

    /// Whether the grant acts for a user (and so may start a refresh-token
    /// family).
    pub const fn acts_for_user(self) -> bool {
        matches!(self, Self::JwtBearer | Self::TokenExchange)
    }
}

/// What a client's access tokens are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenFormat {
    /// Signed JWT access tokens (the default).
    #[default]
    Jwt,
    /// `tso_` handles, stored hashed and valid only through introspection.
    Opaque,
}

impl TokenFormat {
    /// The format with this name, if any.
    pub fn from_name(name: &str) -> Option<Self> {
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
pub const REVOCATIONS_READ: &str = "revocations:read";

/// Permissions a client may hold at the authority itself (not scopes: they
/// are never put in tokens).
pub const PERMISSIONS: [&str; 1] = [REVOCATIONS_READ];

/// Every algorithm a `private_key_jwt` assertion may use (asymmetric only).
pub const ASSERTION_ALGS: [Algorithm; 10] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::ES512,
    Algorithm::EdDSA,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// Every client id starts with this (then 128 random bits, base64url); a
/// `client_credentials` token's `sub` is its client id, so no user subject
/// may start with it (in any letter case).
pub const CLIENT_ID_PREFIX: &str = "tc_";

/// Why a jwt-bearer assertion's `sub` cannot be a user's subject, if it
/// cannot: subjects from different sources never share a name. Client ids
/// (`tc_...`, the `sub` of a client's own tokens) and federated subjects
/// (`<prefix>|<upstream sub>`) are namespaces of their own; a login
/// backend's user is neither.
pub fn user_subject_refusal(sub: &str) -> Option<String> {
    let prefix = CLIENT_ID_PREFIX.len();
    if sub
        .get(..prefix)
        .is_some_and(|p| p.eq_ignore_ascii_case(CLIENT_ID_PREFIX))
    {
        return Some(format!(
            "sub must not start with {CLIENT_ID_PREFIX:?}: that namespace is the client ids'"
        ));
    }
    if sub.contains(crate::config::SUBJECT_SEPARATOR) {
        return Some(format!(
            "sub must not contain {:?}: it separates a federated subject's prefix from its upstream subject",
            crate::config::SUBJECT_SEPARATOR
        ));
    }
    None
}

/// Why a client with these metadata may not be registered next to these
/// federations, if so: with the token-exchange grant it can exchange any
/// upstream's token, and a mapping onto one of its static claims would put
/// two values of one claim in play (the static one wins, but the
/// administrator meant one of them and should say which).
pub fn federation_conflict(
    metadata: &Metadata,
    federation: &[crate::config::Upstream],
) -> Option<String> {
    if !metadata.grant_types.contains(&GrantType::TokenExchange) {
        return None;
    }
    federation.iter().find_map(|up| {
        up.collision(&metadata.claims).map(|(from, to)| {
            format!(
                "claims: {to:?} is also what federation {} maps its {from:?} claim onto; remove one of them, or register without the token-exchange grant",
                up.issuer
            )
        })
    })
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

/// Registration request (RFC 7591 names plus Tessera's own). Members this
/// server does not know (`redirect_uris`, `software_id`...) are ignored, as
/// RFC 7591 §2 requires.
#[derive(Debug, Deserialize)]
pub struct Registration {
    client_name: Option<String>,
    grant_types: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    scope: Option<String>,
    jwks: Option<Value>,
    audiences: Option<Vec<String>>,
    access_token_ttl: Option<u64>,
    claims: Option<Map<String, Value>>,
    token_format: Option<String>,
    introspection_audiences: Option<Vec<String>>,
    assertion_claims: Option<Vec<String>>,
    permissions: Option<Vec<String>>,
}

/// A client's metadata as stored and as the admin API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Metadata {
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

/// Why a registration was refused (RFC 7591 §3.2.2 `invalid_client_metadata`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MetadataError(pub String);

fn bad(msg: impl Into<String>) -> MetadataError {
    MetadataError(msg.into())
}

impl Registration {
    /// The client `tessera serve` registers on first start so that the
    /// banner's `curl` works at once.
    pub fn quickstart() -> Self {
        Self {
            client_name: Some("quickstart".to_owned()),
            grant_types: None,
            token_endpoint_auth_method: None,
            scope: None,
            jwks: None,
            audiences: None,
            access_token_ttl: None,
            claims: None,
            token_format: None,
            introspection_audiences: None,
            assertion_claims: None,
            permissions: None,
        }
    }

    /// Applies defaults and checks every member.
    ///
    /// # Errors
    /// A [`MetadataError`] naming the member at fault.
    pub fn validate(self, tokens: &TokenSettings) -> Result<Metadata, MetadataError> {
        let client_name = self.client_name.unwrap_or_default();
        if client_name.trim().is_empty() || client_name.len() > 200 {
            return Err(bad("client_name is required (1 to 200 characters)"));
        }
        let grant_types = match self.grant_types {
            None => vec![GrantType::ClientCredentials],
            Some(names) => names
                .iter()
                .map(|g| {
                    GrantType::from_name(g).ok_or_else(|| {
                        bad(format!(
                            "grant_types: {:?} is not supported; supported: {}",
                            short(g),
                            GrantType::supported()
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        if grant_types.is_empty() {
            return Err(bad("grant_types must name at least one grant"));
        }
        if grant_types.contains(&GrantType::RefreshToken)
            && !grant_types.iter().any(|g| g.acts_for_user())
        {
            return Err(bad(
                "grant_types: refresh_token needs a grant that acts for a user (urn:ietf:params:oauth:grant-type:jwt-bearer, or token-exchange from a federated issuer); client_credentials gets no refresh tokens (RFC 6749 §4.4.3)",
            ));
        }
        let method = match self.token_endpoint_auth_method.as_deref() {
            None => AuthMethod::ClientSecretBasic,
            Some(name) => AuthMethod::from_name(name).ok_or_else(|| {
                bad(format!(
                    "token_endpoint_auth_method {:?} is not supported; use client_secret_basic, client_secret_post or private_key_jwt",
                    short(name)
                ))
            })?,
        };
        let scope = self.scope.unwrap_or_default();
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            if !is_scope_token(s) {
                return Err(bad(format!(
                    "scope {:?} has characters RFC 6749 §3.3 does not allow",
                    short(s)
                )));
            }
        }
        let scope = scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let jwks = match (method, self.jwks) {
            (AuthMethod::PrivateKeyJwt, Some(jwks)) => {
                assertion_keys(&jwks)?;
                Some(jwks)
            }
            (AuthMethod::PrivateKeyJwt, None) => return Err(bad(
                "private_key_jwt needs jwks: the public keys the client signs its assertions with",
            )),
            (_, Some(jwks)) if grant_types.contains(&GrantType::JwtBearer) => {
                assertion_keys(&jwks)?;
                Some(jwks)
            }
            (_, Some(_)) => {
                return Err(bad(
                    "jwks is only for token_endpoint_auth_method private_key_jwt or the jwt-bearer grant",
                ))
            }
            (_, None) if grant_types.contains(&GrantType::JwtBearer) => {
                return Err(bad(
                    "the jwt-bearer grant needs jwks: the public keys the client signs its user assertions with",
                ))
            }
            (_, None) => None,
        };
        let audiences = self
            .audiences
            .unwrap_or_else(|| vec![tokens.default_audience.clone()]);
        if audiences.is_empty() || audiences.iter().any(|a| a.is_empty() || a.len() > 512) {
            return Err(bad("audiences must be non-empty strings"));
        }
        let max = tokens.max_access_token_ttl.as_secs();
        let access_token_ttl = self
            .access_token_ttl
            .unwrap_or(tokens.access_token_ttl.as_secs());
        if access_token_ttl == 0 || access_token_ttl > max {
            return Err(bad(format!(
                "access_token_ttl must be 1 to {max} seconds (tokens.max_access_token_ttl)"
            )));
        }
        let claims = self.claims.unwrap_or_default();
        for name in claims.keys() {
            if RESERVED_CLAIMS.contains(&name.as_str()) {
                return Err(bad(format!(
                    "claims: {:?} is set by the server and cannot be configured",
                    short(name)
                )));
            }
        }
        let findings = tessera_jose::lint::sensitive_claims(&claims);
        if let Some(f) = findings.first() {
            return Err(bad(format!("claims: {}", f.message)));
        }
        let assertion_claims = self.assertion_claims.unwrap_or_default();
        for name in &assertion_claims {
            if RESERVED_CLAIMS.contains(&name.as_str()) || claims.contains_key(name) {
                return Err(bad(format!(
                    "assertion_claims: {:?} is set by the server or by the client's static claims",
                    short(name)
                )));
            }
            let probe: Map<String, Value> = [(name.clone(), Value::Null)].into_iter().collect();
            if !tessera_jose::lint::sensitive_claims(&probe).is_empty() {
                return Err(bad(format!(
                    "assertion_claims: {:?} looks sensitive",
                    short(name)
                )));
            }
        }
        let token_format = match self.token_format.as_deref() {
            None => TokenFormat::Jwt,
            Some(name) => TokenFormat::from_name(name)
                .ok_or_else(|| bad("token_format: \"jwt\" (default) or \"opaque\""))?,
        };
        let mut permissions = self.permissions.unwrap_or_default();
        if let Some(p) = permissions
            .iter()
            .find(|p| !PERMISSIONS.contains(&p.as_str()))
        {
            return Err(bad(format!(
                "permissions: {:?} is not one this server grants; known: {}",
                short(p),
                PERMISSIONS.join(", ")
            )));
        }
        permissions.sort();
        permissions.dedup();
        Ok(Metadata {
            client_name,
            grant_types,
            token_endpoint_auth_method: method,
            scope,
            jwks,
            audiences,
            access_token_ttl,
            claims,
            token_format,
            introspection_audiences: self.introspection_audiences.unwrap_or_default(),
            assertion_claims,
            permissions,
        })
    }
}

/// The assertion-verification keys of a registered JWKS.
///
/// # Errors
/// When the JWKS is not usable: no public signing key, or private members.
pub fn assertion_keys(jwks: &Value) -> Result<KeySet, MetadataError> {
    let text = jwks.to_string();
    let set = JwkSet::parse(&text).map_err(|e| bad(format!("jwks: {}", e.message())))?;
    if set.keys.iter().any(tessera_jose::Jwk::is_private) {
        return Err(bad(
            "jwks must hold public keys only; never send a private key",
        ));
    }
    let keys = KeySet::from_jwks(&set, &ASSERTION_ALGS)
        .map_err(|e| bad(format!("jwks: {}", e.message())))?;
    if keys.is_empty() {
        return Err(bad("jwks holds no asymmetric signature key with an \"alg\" (ES256, EdDSA, RS256, PS256...)"));
    }
    Ok(keys)
}

fn is_scope_token(s: &str) -> bool {
    s.bytes()
        .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

fn short(s: &str) -> String {
    s.chars().take(64).collect()
}

/// A client as the token endpoint sees it.
pub struct Client {
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
    /// The metadata JSON as stored (to tell whether a reload changed it).
    pub stored: String,
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
    pub fn from_row(
        row: &crate::store::ClientRow,
        issued: crate::telemetry::IssuedCounters,
    ) -> Result<Self, String> {
        let metadata: Metadata = serde_json::from_str(&row.metadata)
            .map_err(|e| format!("client {}: metadata: {e}", row.client_id))?;
        let secret_hash = match &row.secret_hash {
            Some(h) => {
                let bytes = tessera_jose::b64::decode(h)
                    .map_err(|_| format!("client {}: secret hash", row.client_id))?;
                Some(
                    <[u8; 32]>::try_from(bytes.as_slice())
                        .map_err(|_| format!("client {}: secret hash", row.client_id))?,
                )
            }
            None => None,
        };
        let assertion_keys = match &metadata.jwks {
            Some(jwks) => {
                Some(assertion_keys(jwks).map_err(|e| format!("client {}: {e}", row.client_id))?)
            }
            None => None,
        };
        let scopes = metadata
            .scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
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

    /// Whether its registration grants `permission` ([`PERMISSIONS`]).
    pub fn may(&self, permission: &str) -> bool {
        self.metadata.permissions.iter().any(|p| p == permission)
    }

    /// Checks a presented secret: SHA-256, then a constant-time comparison.
    /// A 256-bit random secret needs no slow password hash: nobody can
    /// guess it, and a stolen hash does not reveal it.
    pub fn secret_matches(&self, presented: &str) -> bool {
        let Some(stored) = &self.secret_hash else {
            return false;
        };
        tessera_verify::token_hash::matches(presented, stored)
    }
}

/// A new secret (256 random bits, base64url) and its stored hash.
pub fn new_secret() -> (zeroize::Zeroizing<String>, String) {
    let secret = zeroize::Zeroizing::new(format!("tcs_{}", crate::random_id(32)));
    let hash = tessera_verify::token_hash::encoded(&secret);
    (secret, hash)
}

/// The client table the hot path reads.
pub type ClientTable = HashMap<String, Arc<Client>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn tokens() -> TokenSettings {
        Config::defaults().unwrap().tokens
    }

    fn reg(json: Value) -> Result<Metadata, MetadataError> {
        serde_json::from_value::<Registration>(json)
            .unwrap()
            .validate(&tokens())
    }

    #[test]
    fn defaults_fill_everything_but_the_name() {
        let m = reg(serde_json::json!({"client_name": "orders"})).unwrap();
        assert_eq!(m.grant_types, vec![GrantType::ClientCredentials]);
        assert_eq!(m.token_endpoint_auth_method, AuthMethod::ClientSecretBasic);
        assert_eq!(m.audiences, vec!["http://127.0.0.1:8080"]);
        assert_eq!(m.access_token_ttl, 900);
        assert_eq!(m.token_format, TokenFormat::Jwt);
        assert!(m.permissions.is_empty(), "no permission unless asked for");
        let m = reg(serde_json::json!({"client_name": "gw", "permissions": ["revocations:read", "revocations:read"]})).unwrap();
        assert_eq!(m.permissions, vec![REVOCATIONS_READ]);
    }

    #[test]
    fn refusals_name_the_member() {
        let cases = [
            (serde_json::json!({}), "client_name"),
            (
                serde_json::json!({"client_name": "x", "grant_types": ["password"]}),
                "grant_types",
            ),
            (
                serde_json::json!({"client_name": "x", "token_endpoint_auth_method": "none"}),
                "token_endpoint_auth_method",
            ),
            (
                serde_json::json!({"client_name": "x", "scope": "a\"b"}),
                "scope",
            ),
            (
                serde_json::json!({"client_name": "x", "token_endpoint_auth_method": "private_key_jwt"}),
                "jwks",
            ),
            (
                serde_json::json!({"client_name": "x", "jwks": {"keys": []}}),
                "jwks",
            ),
            (
                serde_json::json!({"client_name": "x", "audiences": []}),
                "audiences",
            ),
            (
                serde_json::json!({"client_name": "x", "access_token_ttl": 86400}),
                "access_token_ttl",
            ),
            (
                serde_json::json!({"client_name": "x", "claims": {"sub": "root"}}),
                "claims",
            ),
            (
                serde_json::json!({"client_name": "x", "claims": {"password": "hunter2"}}),
                "claims",
            ),
            (
                serde_json::json!({"client_name": "x", "claims": {"x": "4111 1111 1111 1111"}}),
                "claims",
            ),
            (
                serde_json::json!({"client_name": "x", "token_format": "paseto"}),
                "token_format",
            ),
            (
                serde_json::json!({"client_name": "x", "permissions": ["revocations:write"]}),
                "permissions",
            ),
        ];
        for (json, member) in cases {
            let e = reg(json.clone()).unwrap_err();
            assert!(e.0.contains(member), "{json}: {e}");
            assert!(!e.0.contains("hunter2"), "{e}");
        }
    }

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

    #[test]
    fn user_subjects_stay_out_of_other_namespaces() {
        for ok in ["user-42", "alice@example.com", "tc", "t_c_1", "xtc_1"] {
            assert_eq!(user_subject_refusal(ok), None, "{ok}");
        }
        for (bad, why) in [
            ("tc_Zm9vYmFyYmF6cXV4cXV1eA", "client ids"),
            ("TC_abc", "client ids"),
            ("login.example.com|alice", "federated"),
        ] {
            let e = user_subject_refusal(bad).unwrap();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn private_jwks_is_refused_and_public_accepted() {
        let key = tessera_jose::SigningKey::generate(Algorithm::ES256).unwrap();
        let private: Value = serde_json::from_str(&key.to_private_jwk_json().unwrap()).unwrap();
        let e = reg(serde_json::json!({"client_name": "x", "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [private]}})).unwrap_err();
        assert!(e.0.contains("public keys only"), "{e}");
        let public = serde_json::to_value(key.public_jwk().unwrap()).unwrap();
        let m = reg(serde_json::json!({"client_name": "x", "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [public]}})).unwrap();
        assert_eq!(m.token_endpoint_auth_method, AuthMethod::PrivateKeyJwt);
    }

    #[test]
    fn secrets_check_in_constant_time_against_the_hash() {
        let (secret, hash) = new_secret();
        assert!(secret.starts_with("tcs_") && secret.len() > 40);
        let row = crate::store::ClientRow {
            client_id: "c".into(),
            metadata: serde_json::to_string(&reg(serde_json::json!({"client_name": "x"})).unwrap())
                .unwrap(),
            secret_hash: Some(hash),
            created_at: 0,
        };
        let issued = crate::telemetry::Metrics::new().issued("c");
        let client = Client::from_row(&row, issued).unwrap();
        assert!(client.secret_matches(&secret));
        assert!(!client.secret_matches("tcs_wrong"));
        assert!(!client.secret_matches(""));
        assert!(!format!("{client:?}").contains(secret.as_str()));
    }
}
