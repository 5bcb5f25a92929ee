//! The claims of an access token: one map, one stated precedence, checked
//! before anything is signed or stored.
//!
//! A claim name appears once in a token. When two sources name the same
//! claim, the higher one wins, highest first:
//!
//! 1. **server-owned**: `iss`, `sub`, `aud`, `exp`, `iat`, `jti`,
//!    `client_id`, `scope`, `act`, and every other name of
//!    [`RESERVED_CLAIMS`], which no lower source may set at all;
//! 2. **the client's static `claims`**, set by the administrator at
//!    registration;
//! 3. **the user's claims**: a federation mapping, a jwt-bearer
//!    assertion's `assertion_claims`, or what an exchange carries over
//!    from the token it exchanges.
//!
//! Collisions between 2 and 3 are refused before any token exists
//! (`assertion_claims` at registration; a federation mapping at start and
//! at registration), so the order only decides when one slips through (a
//! client registered through a node with another federation config): the
//! administrator's value, never the upstream's. The serialized claims are
//! then read back with `tessera-jose`'s strict parser, as verifiers read
//! them: a payload with a name twice would be a `server_error`, never a
//! token (RFC 7519 §4: last-wins parsers would read another value than
//! first-wins ones).

use serde_json::{Map, Value};

use super::OAuthError;
use crate::vocabulary::RESERVED_CLAIMS;

/// The claims the server sets itself (RFC 9068 §2.2, RFC 8693 §4.1).
#[derive(Debug)]
pub(crate) struct ServerClaims<'a> {
    pub(crate) iss: &'a str,
    pub(crate) sub: &'a str,
    pub(crate) aud: &'a Value,
    pub(crate) exp: i64,
    pub(crate) iat: i64,
    pub(crate) jti: &'a str,
    pub(crate) client_id: &'a str,
    /// Omitted when empty.
    pub(crate) scope: &'a str,
    /// The acting party of a delegation.
    pub(crate) act: Option<&'a Value>,
}

/// The access token's claims, in the precedence above.
pub(crate) fn access_claims(
    server: &ServerClaims<'_>,
    client_static: &Map<String, Value>,
    user: &Map<String, Value>,
) -> Map<String, Value> {
    let mut claims = Map::with_capacity(9 + client_static.len() + user.len());
    for (name, value) in user {
        if RESERVED_CLAIMS.contains(&name.as_str()) {
            tracing::warn!(client_id = %server.client_id, claim = %name, "a user claim names a server-owned claim: dropped");
            continue;
        }
        claims.insert(name.clone(), value.clone());
    }
    for (name, value) in client_static {
        if RESERVED_CLAIMS.contains(&name.as_str()) {
            tracing::warn!(client_id = %server.client_id, claim = %name, "a static claim names a server-owned claim: dropped");
            continue;
        }
        if claims.insert(name.clone(), value.clone()).is_some() {
            tracing::warn!(client_id = %server.client_id, claim = %name, "a user claim and a static claim share a name: the static one is kept");
        }
    }
    claims.insert("iss".into(), Value::from(server.iss));
    claims.insert("sub".into(), Value::from(server.sub));
    claims.insert("aud".into(), server.aud.clone());
    claims.insert("exp".into(), Value::from(server.exp));
    claims.insert("iat".into(), Value::from(server.iat));
    claims.insert("jti".into(), Value::from(server.jti));
    claims.insert("client_id".into(), Value::from(server.client_id));
    if !server.scope.is_empty() {
        claims.insert("scope".into(), Value::from(server.scope));
    }
    if let Some(act) = server.act {
        claims.insert("act".into(), act.clone());
    }
    claims
}

/// The claims as the JSON text that is signed or stored, read back as a
/// verifier reads it: a name twice at any level is a `server_error`.
pub(crate) fn checked_json(claims: &Map<String, Value>) -> Result<String, OAuthError> {
    let json = serde_json::to_string(claims).map_err(|e| OAuthError::internal(&e))?;
    check(&json)?;
    Ok(json)
}

fn check(json: &str) -> Result<(), OAuthError> {
    tessera_jose::check_claims_json(json).map_err(|e| {
        OAuthError::internal(&format_args!(
            "an access token's claims would not verify ({}): not issued",
            e.code()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn server_then_static_then_user_and_each_name_once() {
        let aud = json!("orders-api");
        let act = json!({"sub": "tc_svc"});
        let server = ServerClaims {
            iss: "https://auth",
            sub: "idp|alice",
            aud: &aud,
            exp: 200,
            iat: 100,
            jti: "j1",
            client_id: "tc_app",
            scope: "",
            act: Some(&act),
        };
        let statics = map(json!({"tenant_id": "acme", "tier": "gold", "sub": "root"}));
        let user = map(
            json!({"tenant_id": "evil", "email": "a@x", "client_id": "tc_other",
                              "iss": "https://evil", "act": {"sub": "mallory"}}),
        );
        let claims = access_claims(&server, &statics, &user);
        assert_eq!(
            Value::Object(claims.clone()),
            json!({"iss": "https://auth", "sub": "idp|alice", "aud": "orders-api", "exp": 200,
                   "iat": 100, "jti": "j1", "client_id": "tc_app", "act": {"sub": "tc_svc"},
                   "tenant_id": "acme", "tier": "gold", "email": "a@x"})
        );
        let text = checked_json(&claims).unwrap();
        assert_eq!(text.matches("\"tenant_id\"").count(), 1, "{text}");
        assert!(!text.contains("\"scope\""), "an empty scope is omitted");
    }

    #[test]
    fn a_payload_with_a_name_twice_is_a_server_error() {
        let e = check(r#"{"sub":"a","tenant_id":"acme","tenant_id":"evil"}"#).unwrap_err();
        assert_eq!(e.code(), "server_error");
        assert!(check(r#"{"sub":"a","tenant_id":"acme"}"#).is_ok());
    }
}
