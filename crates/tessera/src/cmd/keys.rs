//! `tessera keys generate | public` (offline) and `tessera keys list |
//! rotate | compromised` (through the admin API of a running authority).

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use reqwest::Method;
use serde_json::{Map, Value};
use tessera_jose::{Algorithm, JwkSet, SigningKey};

use super::admin::Admin;
use crate::cli::KeysCommand;
use crate::{exit, io};

pub(crate) fn run(cmd: KeysCommand) -> Result<u8> {
    match cmd {
        KeysCommand::Generate { alg, kid, out } => generate(alg, kid, out),
        KeysCommand::Public { files } => public(&files),
        KeysCommand::List { server } => {
            Admin::connect(&server)?.call(Method::GET, &["admin", "keys"], None)
        }
        KeysCommand::Rotate {
            alg,
            immediate,
            server,
        } => {
            let mut request = Map::new();
            if let Some(alg) = alg {
                request.insert("alg".into(), alg.name().into());
            }
            if immediate {
                request.insert("immediate".into(), true.into());
            }
            Admin::connect(&server)?.call(
                Method::POST,
                &["admin", "keys", "rotate"],
                Some(&Value::Object(request)),
            )
        }
        KeysCommand::Compromised { kid, server } => Admin::connect(&server)?.call(
            Method::POST,
            &["admin", "keys", &kid, "compromised"],
            None,
        ),
    }
}

/// `tessera revoke --sub | --client | --kid`: `POST /admin/revoke`.
pub(crate) fn revoke(args: crate::cli::RevokeArgs) -> Result<u8> {
    let (name, target) = match (args.sub, args.client, args.kid) {
        (Some(sub), _, _) => ("sub", sub),
        (_, Some(client), _) => ("client_id", client),
        (_, _, Some(kid)) => ("kid", kid),
        (None, None, None) => anyhow::bail!("name one of --sub, --client or --kid"),
    };
    let mut request = Map::new();
    request.insert(name.into(), target.into());
    Admin::connect(&args.server)?.call(
        Method::POST,
        &["admin", "revoke"],
        Some(&Value::Object(request)),
    )
}

fn generate(alg: Algorithm, kid: Option<String>, out: Option<PathBuf>) -> Result<u8> {
    let key = SigningKey::generate(alg).context("generating the key")?;
    let kid = kid.unwrap_or_else(|| key.thumbprint());
    let key = key.with_kid(kid);
    let json = key.to_private_jwk_json().context("exporting the key")?;
    match out {
        Some(path) => {
            let mut line = zeroize::Zeroizing::new(String::with_capacity(json.len() + 1));
            line.push_str(&json);
            line.push('\n');
            io::write_private(&path, line.as_bytes())?;
        }
        None => io::print(&json)?,
    }
    Ok(exit::OK)
}

fn public(files: &[PathBuf]) -> Result<u8> {
    let mut keys = Vec::new();
    for path in files {
        let text = io::read_text(path)?;
        let set = JwkSet::parse(&text).with_context(|| format!("{}", path.display()))?;
        for jwk in &set.keys {
            let public = jwk.to_public().with_context(|| {
                format!(
                    "{}: key{}",
                    path.display(),
                    jwk.kid().map(|k| format!(" {k:?}")).unwrap_or_default()
                )
            })?;
            keys.push(public);
        }
    }
    let jwks = serde_json::json!({ "keys": keys });
    io::print(&serde_json::to_string_pretty(&jwks)?)?;
    Ok(exit::OK)
}
