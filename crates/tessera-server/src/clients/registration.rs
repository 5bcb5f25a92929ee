//! Registration: an RFC 7591 request checked member by member into the
//! [`Metadata`] that is stored, and the rules a registration must keep
//! with the assertion keys and the configured federations.
//!
//! Members are checked in the order [`Registration::validate`] lists them
//! and the first refusal is the answer, so which message a request with
//! several faults gets does not depend on how the checks are grouped.

use serde::Deserialize;
use serde_json::{Map, Value};
use tessera_jose::{Algorithm, JwkSet, KeySet};

use super::metadata::{scope_tokens, PERMISSIONS};
use super::{AuthMethod, GrantType, Metadata, TokenFormat, RESERVED_CLAIMS};
use crate::config::{TokenSettings, Upstream};

/// Every algorithm a `private_key_jwt` assertion may use (asymmetric only).
pub(crate) const ASSERTION_ALGS: [Algorithm; 10] = [
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

/// Registration request (RFC 7591 names plus Tessera's own). Members this
/// server does not know (`redirect_uris`, `software_id`...) are ignored, as
/// RFC 7591 §2 requires.
#[derive(Debug, Deserialize)]
pub(crate) struct Registration {
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

/// Why a registration was refused (RFC 7591 §3.2.2 `invalid_client_metadata`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct MetadataError(pub String);

fn bad(msg: impl Into<String>) -> MetadataError {
    MetadataError(msg.into())
}

/// At most 64 characters of a value quoted in a refusal.
fn short(s: &str) -> String {
    s.chars().take(64).collect()
}

impl Registration {
    /// The client `tessera serve` registers on first start so that the
    /// banner's `curl` works at once.
    pub(crate) fn quickstart() -> Self {
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
    pub(crate) fn validate(self, tokens: &TokenSettings) -> Result<Metadata, MetadataError> {
        let client_name = client_name(self.client_name.unwrap_or_default())?;
        let grant_types = grant_types(self.grant_types)?;
        let method = auth_method(self.token_endpoint_auth_method.as_deref())?;
        let scope = scope(&self.scope.unwrap_or_default())?;
        let jwks = jwks(self.jwks, method, &grant_types)?;
        let audiences = audiences(self.audiences, tokens)?;
        let access_token_ttl = access_token_ttl(self.access_token_ttl, tokens)?;
        let claims = claims(self.claims.unwrap_or_default())?;
        let assertion_claims =
            assertion_claims(self.assertion_claims.unwrap_or_default(), &claims)?;
        let token_format = token_format(self.token_format.as_deref())?;
        let permissions = permissions(self.permissions.unwrap_or_default())?;
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

fn client_name(name: String) -> Result<String, MetadataError> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(bad("client_name is required (1 to 200 characters)"));
    }
    Ok(name)
}

/// The named grants (`client_credentials` by default). A refresh token
/// continues a user's session, so it needs a grant that acts for one.
fn grant_types(names: Option<Vec<String>>) -> Result<Vec<GrantType>, MetadataError> {
    let grant_types = match names {
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
    Ok(grant_types)
}

fn auth_method(name: Option<&str>) -> Result<AuthMethod, MetadataError> {
    match name {
        None => Ok(AuthMethod::ClientSecretBasic),
        Some(name) => AuthMethod::from_name(name).ok_or_else(|| {
            bad(format!(
                "token_endpoint_auth_method {:?} is not supported; use client_secret_basic, client_secret_post or private_key_jwt",
                short(name)
            ))
        }),
    }
}

/// The scopes, each an RFC 6749 §3.3 scope token, joined by single spaces.
fn scope(scope: &str) -> Result<String, MetadataError> {
    if let Some(s) = scope_tokens(scope).find(|s| !is_scope_token(s)) {
        return Err(bad(format!(
            "scope {:?} has characters RFC 6749 §3.3 does not allow",
            short(s)
        )));
    }
    Ok(scope_tokens(scope).collect::<Vec<_>>().join(" "))
}

/// `%x21 / %x23-5B / %x5D-7E` (RFC 6749 §3.3): printable ASCII but for
/// space, `"` and `\`.
fn is_scope_token(s: &str) -> bool {
    s.bytes()
        .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// A JWKS is needed exactly when the client signs something: assertions
/// for `private_key_jwt`, or users' assertions for the jwt-bearer grant.
fn jwks(
    jwks: Option<Value>,
    method: AuthMethod,
    grant_types: &[GrantType],
) -> Result<Option<Value>, MetadataError> {
    let jwt_bearer = grant_types.contains(&GrantType::JwtBearer);
    match (method, jwks) {
        (AuthMethod::PrivateKeyJwt, Some(jwks)) => {
            assertion_keys(&jwks)?;
            Ok(Some(jwks))
        }
        (AuthMethod::PrivateKeyJwt, None) => Err(bad(
            "private_key_jwt needs jwks: the public keys the client signs its assertions with",
        )),
        (_, Some(jwks)) if jwt_bearer => {
            assertion_keys(&jwks)?;
            Ok(Some(jwks))
        }
        (_, Some(_)) => Err(bad(
            "jwks is only for token_endpoint_auth_method private_key_jwt or the jwt-bearer grant",
        )),
        (_, None) if jwt_bearer => Err(bad(
            "the jwt-bearer grant needs jwks: the public keys the client signs its user assertions with",
        )),
        (_, None) => Ok(None),
    }
}

fn audiences(
    audiences: Option<Vec<String>>,
    tokens: &TokenSettings,
) -> Result<Vec<String>, MetadataError> {
    let audiences = audiences.unwrap_or_else(|| vec![tokens.default_audience.clone()]);
    if audiences.is_empty() || audiences.iter().any(|a| a.is_empty() || a.len() > 512) {
        return Err(bad("audiences must be non-empty strings"));
    }
    Ok(audiences)
}

fn access_token_ttl(ttl: Option<u64>, tokens: &TokenSettings) -> Result<u64, MetadataError> {
    let max = tokens.max_access_token_ttl.as_secs();
    let ttl = ttl.unwrap_or(tokens.access_token_ttl.as_secs());
    if ttl == 0 || ttl > max {
        return Err(bad(format!(
            "access_token_ttl must be 1 to {max} seconds (tokens.max_access_token_ttl)"
        )));
    }
    Ok(ttl)
}

/// Static claims: none the server sets, and none that look sensitive
/// (every token would carry it to every resource server).
fn claims(claims: Map<String, Value>) -> Result<Map<String, Value>, MetadataError> {
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
    Ok(claims)
}

/// Assertion claims copied into users' tokens: none the server or the
/// static `claims` set, and no name that looks sensitive.
fn assertion_claims(
    names: Vec<String>,
    claims: &Map<String, Value>,
) -> Result<Vec<String>, MetadataError> {
    for name in &names {
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
    Ok(names)
}

fn token_format(name: Option<&str>) -> Result<TokenFormat, MetadataError> {
    match name {
        None => Ok(TokenFormat::Jwt),
        Some(name) => TokenFormat::from_name(name)
            .ok_or_else(|| bad("token_format: \"jwt\" (default) or \"opaque\"")),
    }
}

/// Known permissions only, sorted and without repeats.
fn permissions(mut permissions: Vec<String>) -> Result<Vec<String>, MetadataError> {
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
    Ok(permissions)
}

/// The assertion-verification keys of a registered JWKS.
///
/// # Errors
/// When the JWKS is not usable: no public signing key, or private members.
pub(crate) fn assertion_keys(jwks: &Value) -> Result<KeySet, MetadataError> {
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

/// Why a client with these metadata may not be registered next to these
/// federations, if so: with the token-exchange grant it can exchange any
/// upstream's token, and a mapping onto one of its static claims would put
/// two values of one claim in play (the static one wins, but the
/// administrator meant one of them and should say which).
pub(crate) fn federation_conflict(metadata: &Metadata, federation: &[Upstream]) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::REVOCATIONS_READ;
    use crate::config::Config;

    fn reg(json: Value) -> Result<Metadata, MetadataError> {
        serde_json::from_value::<Registration>(json)
            .unwrap()
            .validate(&Config::defaults().unwrap().tokens)
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
    fn private_jwks_is_refused_and_public_accepted() {
        let key = tessera_jose::SigningKey::generate(Algorithm::ES256).unwrap();
        let private: Value = serde_json::from_str(&key.to_private_jwk_json().unwrap()).unwrap();
        let e = reg(serde_json::json!({"client_name": "x", "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [private]}})).unwrap_err();
        assert!(e.0.contains("public keys only"), "{e}");
        let public = serde_json::to_value(key.public_jwk().unwrap()).unwrap();
        let m = reg(serde_json::json!({"client_name": "x", "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [public]}})).unwrap();
        assert_eq!(m.token_endpoint_auth_method, AuthMethod::PrivateKeyJwt);
    }
}
