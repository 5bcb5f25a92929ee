//! `tessera clients create | list | delete`, through the admin API.

use std::path::Path;

use anyhow::{bail, Context as _, Result};
use reqwest::Method;
use serde_json::{Map, Value};
use tessera_jose::JwkSet;

use super::admin::Admin;
use super::token::claim;
use crate::cli::{ClientsCommand, CreateClientArgs};
use crate::io;

pub(crate) fn run(cmd: ClientsCommand) -> Result<u8> {
    match cmd {
        ClientsCommand::Create(args) => {
            let registration = registration(&args)?;
            Admin::connect(&args.server)?.call(
                Method::POST,
                &["admin", "clients"],
                Some(&registration),
            )
        }
        ClientsCommand::List { server } => {
            Admin::connect(&server)?.call(Method::GET, &["admin", "clients"], None)
        }
        ClientsCommand::Delete { id, server } => {
            Admin::connect(&server)?.call(Method::DELETE, &["admin", "clients", &id], None)
        }
    }
}

/// The RFC 7591 registration request: only the members given, so that the
/// server's defaults apply to the rest.
fn registration(args: &CreateClientArgs) -> Result<Value> {
    let mut body = Map::new();
    body.insert("client_name".into(), args.name.clone().into());
    if !args.grant_types.is_empty() {
        body.insert("grant_types".into(), args.grant_types.clone().into());
    }
    if let Some(method) = &args.auth_method {
        body.insert("token_endpoint_auth_method".into(), method.clone().into());
    }
    if let Some(scope) = &args.scope {
        body.insert("scope".into(), scope.clone().into());
    }
    if !args.audiences.is_empty() {
        body.insert("audiences".into(), args.audiences.clone().into());
    }
    if let Some(ttl) = args.ttl {
        if ttl.subsec_nanos() != 0 {
            bail!("--ttl must be a whole number of seconds");
        }
        body.insert("access_token_ttl".into(), ttl.as_secs().into());
    }
    if !args.claim.is_empty() {
        let mut claims = Map::new();
        for pair in &args.claim {
            let (name, value) = claim(pair)?;
            claims.insert(name, value);
        }
        body.insert("claims".into(), claims.into());
    }
    if let Some(path) = &args.jwks {
        body.insert("jwks".into(), public_jwks(path)?);
    }
    if let Some(format) = &args.token_format {
        body.insert("token_format".into(), format.clone().into());
    }
    if !args.introspection_audiences.is_empty() {
        body.insert(
            "introspection_audiences".into(),
            args.introspection_audiences.clone().into(),
        );
    }
    if !args.assertion_claims.is_empty() {
        body.insert(
            "assertion_claims".into(),
            args.assertion_claims.clone().into(),
        );
    }
    if !args.permissions.is_empty() {
        body.insert("permissions".into(), args.permissions.clone().into());
    }
    Ok(body.into())
}

/// The client's public keys as a JWKS. A private key is refused here, so
/// that it never leaves this machine.
fn public_jwks(path: &Path) -> Result<Value> {
    let text = io::read_text(path)?;
    let set = JwkSet::parse(&text).with_context(|| format!("--jwks {}", path.display()))?;
    if set.keys.iter().any(tessera_jose::Jwk::is_private) {
        bail!(
            "--jwks {}: holds a private key; register only its public part (`tessera keys public {}`)",
            path.display(),
            path.display()
        );
    }
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("--jwks {}", path.display()))?;
    // A single JWK is registered as a set of one.
    Ok(if value.get("keys").is_some() {
        value
    } else {
        serde_json::json!({ "keys": [value] })
    })
}
