//! `[server]`: where the authority listens, what it calls itself, where its
//! data lives, and the limits of its connections.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::error::ConfigError;
use super::parse::{duration, without_scheme};

/// Values given on the command line; they win over everything else. All
/// of them are `[server]` settings, so they are this section's to apply.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--data`.
    pub data: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<String>,
    /// `--issuer`.
    pub issuer: Option<String>,
    /// `--database-url`.
    pub database_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    listen: Option<String>,
    issuer: Option<String>,
    data: Option<PathBuf>,
    database_url: Option<String>,
    quickstart_client: Option<bool>,
    #[serde(default, deserialize_with = "duration")]
    header_read_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    keep_alive_timeout: Option<Duration>,
    max_connections: Option<usize>,
    #[serde(default, deserialize_with = "duration")]
    shutdown_timeout: Option<Duration>,
    metrics_listen: Option<String>,
}

/// The `[server]` section, validated; `Config` holds its members
/// at the top level. No `Debug`: the database URL may hold a password.
pub(super) struct Server {
    pub(super) listen: SocketAddr,
    pub(super) issuer: String,
    /// The issuer was derived from `listen` (no `issuer` setting).
    pub(super) derived_issuer: bool,
    pub(super) data: PathBuf,
    pub(super) database_url: String,
    pub(super) quickstart_client: bool,
    pub(super) connections: tessera_http::Limits,
    pub(super) metrics_listen: Option<SocketAddr>,
}

/// Applies the defaults and the command-line `over`rides, and checks each
/// setting in the order they are listed.
pub(super) fn validate(raw: RawServer, over: &Overrides) -> Result<Server, ConfigError> {
    let listen = listen(over.listen.clone().or(raw.listen))?;
    let connections = tessera_http::LimitSettings {
        header_read_timeout: raw.header_read_timeout,
        keep_alive_timeout: raw.keep_alive_timeout,
        max_connections: raw.max_connections,
        shutdown_timeout: raw.shutdown_timeout,
    }
    .resolve()
    .map_err(|e| ConfigError::new(format!("server.{}", e.setting), e.message))?;
    let metrics_listen = raw
        .metrics_listen
        .map(|text| metrics_listen(&text, listen))
        .transpose()?;
    let given_issuer = over.issuer.clone().or(raw.issuer);
    let derived_issuer = given_issuer.is_none();
    let issuer = given_issuer.unwrap_or_else(|| format!("http://{listen}"));
    let issuer = check_issuer(&issuer)?;
    let data = over
        .data
        .clone()
        .or(raw.data)
        .unwrap_or_else(|| PathBuf::from("tessera-data"));
    let database_url = database_url(over.database_url.clone().or(raw.database_url), &data)?;
    Ok(Server {
        listen,
        issuer,
        derived_issuer,
        data,
        database_url,
        quickstart_client: raw.quickstart_client.unwrap_or(true),
        connections,
        metrics_listen,
    })
}

fn listen(given: Option<String>) -> Result<SocketAddr, ConfigError> {
    let text = given.unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    text.parse().map_err(|_| {
        ConfigError::new(
            "server.listen",
            format!("{text:?} is not an address such as 127.0.0.1:8080"),
        )
    })
}

/// The metrics address, which may not be the public one: `/metrics` labels
/// name clients. (Port 0 on both picks two different ports.)
fn metrics_listen(text: &str, listen: SocketAddr) -> Result<SocketAddr, ConfigError> {
    let addr: SocketAddr = text.parse().map_err(|_| {
        ConfigError::new(
            "server.metrics_listen",
            format!("{text:?} is not an address such as 127.0.0.1:9090"),
        )
    })?;
    if addr == listen && addr.port() != 0 {
        return Err(ConfigError::new(
            "server.metrics_listen",
            "must differ from server.listen: metrics stay off the public port",
        ));
    }
    Ok(addr)
}

/// The issuer without its trailing `/`, if it is an http(s) URL with a
/// host and no query or fragment.
fn check_issuer(issuer: &str) -> Result<String, ConfigError> {
    let trimmed = issuer.trim_end_matches('/');
    let ok = without_scheme(trimmed)
        .is_some_and(|r| !r.is_empty() && !r.contains(['?', '#', ' ']) && !r.starts_with('/'));
    if !ok {
        return Err(ConfigError::new(
            "server.issuer",
            format!("{issuer:?} must be an http:// or https:// URL with no query or fragment"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// The given database URL if its scheme is one Tessera speaks, else the
/// SQLite file in the data folder.
fn database_url(given: Option<String>, data: &Path) -> Result<String, ConfigError> {
    match given {
        Some(url) => {
            if !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
            {
                return Err(ConfigError::new(
                    "server.database_url",
                    "must start with sqlite:, postgres:// or postgresql://",
                ));
            }
            Ok(url)
        }
        None => Ok(format!(
            "sqlite://{}?mode=rwc",
            data.join("tessera.db").display()
        )),
    }
}

/// `scheme://user:password@host/...` with the password replaced.
pub(crate) fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            format!("{scheme}://{masked}@{host}{path}")
        }
        None => url.to_owned(),
    }
}
