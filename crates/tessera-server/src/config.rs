//! Settings: defaults, then a TOML file, then `TESSERA_<SECTION>_<KEY>`
//! environment variables, then command-line flags. Everything is validated
//! here, before the data folder or the database is touched, and an error
//! names the setting at fault.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::Deserialize;
use tessera_jose::Algorithm;

mod federation;

pub use federation::{Upstream, SUBJECT_SEPARATOR};

/// A setting that is missing, malformed or inconsistent with another.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct ConfigError {
    /// Dotted name of the setting (`keys.grace`), or the file at fault.
    pub setting: String,
    /// What is wrong and what would be accepted.
    pub message: String,
}

impl ConfigError {
    fn new(setting: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            message: message.into(),
        }
    }
}

/// The validated settings of one `tessera serve` process.
#[derive(Clone)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The `iss` of every token and the base of every endpoint URL (no trailing `/`).
    pub issuer: String,
    /// Data folder: the SQLite file, the key-encryption key, the admin token.
    pub data: PathBuf,
    /// `sqlite://...` or `postgres://...`; the default is `<data>/tessera.db`.
    pub database_url: String,
    /// On first start, register a `quickstart` client and write its
    /// credentials to `<data>/quickstart.credentials`.
    pub quickstart_client: bool,
    /// Key lifecycle.
    pub keys: KeySettings,
    /// Access tokens.
    pub tokens: TokenSettings,
    /// `Cache-Control: max-age` of the JWKS and discovery documents.
    pub jwks_max_age: Duration,
    /// Where the admin token is written on first start.
    pub admin_token_file: PathBuf,
    /// How long audit-log entries are kept.
    pub audit_retention: Duration,
    /// Upstream issuers for token-exchange federation.
    pub federation: Vec<Upstream>,
    /// Timeouts and the connection limit of both listeners, and the
    /// shutdown deadline.
    pub connections: tessera_http::Limits,
    /// Where `/metrics` is served; `None` (the default): nowhere. Never on
    /// the public listener: its labels name clients.
    pub metrics_listen: Option<SocketAddr>,
    /// The issuer was derived from `listen` (no `issuer` setting).
    derived_issuer: bool,
    /// The default audience was derived from the issuer.
    derived_audience: bool,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("issuer", &self.issuer)
            .field("data", &self.data)
            .field("database_url", &redact_password(&self.database_url))
            .field("quickstart_client", &self.quickstart_client)
            .field("keys", &self.keys)
            .field("tokens", &self.tokens)
            .field("jwks_max_age", &self.jwks_max_age)
            .field("admin_token_file", &self.admin_token_file)
            .field("audit_retention", &self.audit_retention)
            .field("connections", &self.connections)
            .field("metrics_listen", &self.metrics_listen)
            .finish_non_exhaustive()
    }
}

/// `scheme://user:password@host/...` with the password replaced.
pub fn redact_password(url: &str) -> String {
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

/// Key lifecycle settings (docs/ARCHITECTURE.md, "Key lifecycle").
#[derive(Clone, Debug)]
pub struct KeySettings {
    /// Signing algorithms with an active key each; never HS*.
    pub algorithms: Vec<Algorithm>,
    /// How long a key signs before its successor takes over.
    pub rotation_period: Duration,
    /// How long a key is published before it signs.
    pub prepublish: Duration,
    /// How long a retired key stays published.
    pub grace: Duration,
    /// The key-encryption key file (32 random bytes, mode 0600).
    pub kek_file: PathBuf,
    /// How often a node re-reads keys and clients (other nodes may have
    /// changed them) and drives due transitions.
    pub refresh_interval: Duration,
    /// RSA modulus size for RS*/PS* keys.
    pub rsa_bits: usize,
}

/// Access-token settings.
#[derive(Clone, Debug)]
pub struct TokenSettings {
    /// Default lifetime.
    pub access_token_ttl: Duration,
    /// Longest lifetime a client may be configured with.
    pub max_access_token_ttl: Duration,
    /// Clock skew verifiers are expected to allow (used to check `grace`).
    pub leeway: Duration,
    /// Largest access token the server will issue, in bytes.
    pub size_budget: usize,
    /// `aud` of tokens for a client registered without `audiences`.
    pub default_audience: String,
    /// Absolute lifetime of a refresh-token family.
    pub refresh_token_ttl: Duration,
    /// A refresh token unused this long expires.
    pub refresh_idle_timeout: Duration,
    /// Within this long after a refresh token is spent, presenting it again
    /// returns the same successor instead of revoking the family.
    pub refresh_reuse_interval: Duration,
    /// What a `private_key_jwt` client assertion may name in `aud`.
    pub private_key_jwt_audience: AssertionAudience,
}

/// What a `private_key_jwt` client assertion (RFC 7523 §2.2) may name as
/// its audience.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssertionAudience {
    /// The issuer identifier, as the sole value (`aud` a string, or an
    /// array of that one string): draft-ietf-oauth-rfc7523bis §4, against
    /// audience injection (a client tricked into signing an assertion for
    /// an endpoint URL another server chose). The default.
    Issuer,
    /// Also the token endpoint URL, and `aud` arrays naming either among
    /// other values: RFC 7523 as first published, for clients that have
    /// not moved to the issuer yet.
    IssuerOrTokenEndpoint,
}

impl AssertionAudience {
    /// Every value, the default first.
    pub const ALL: [Self; 2] = [Self::Issuer, Self::IssuerOrTokenEndpoint];

    /// The value named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The setting's value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Issuer => "issuer",
            Self::IssuerOrTokenEndpoint => "issuer_or_token_endpoint",
        }
    }
}

/// Values given on the command line; they win over everything else.
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

const SECTIONS: [&str; 5] = ["server", "keys", "tokens", "jwks", "admin"];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    keys: RawKeys,
    #[serde(default)]
    tokens: RawTokens,
    #[serde(default)]
    jwks: RawJwks,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    federation: Vec<federation::RawUpstream>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeys {
    #[serde(default, deserialize_with = "string_or_list")]
    algorithms: Option<Vec<String>>,
    #[serde(default, deserialize_with = "duration")]
    rotation_period: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    prepublish: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    grace: Option<Duration>,
    kek_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "duration")]
    refresh_interval: Option<Duration>,
    rsa_bits: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokens {
    #[serde(default, deserialize_with = "duration")]
    access_token_ttl: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    max_access_token_ttl: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    leeway: Option<Duration>,
    size_budget: Option<usize>,
    default_audience: Option<String>,
    #[serde(default, deserialize_with = "duration")]
    refresh_token_ttl: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    refresh_idle_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    refresh_reuse_interval: Option<Duration>,
    private_key_jwt_audience: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJwks {
    #[serde(default, deserialize_with = "duration")]
    max_age: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    token_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "duration")]
    audit_retention: Option<Duration>,
}

/// A duration as humantime text (`"90d"`, `"15m"`) or a number of seconds.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Secs(s) => Ok(Some(Duration::from_secs(s))),
        Raw::Text(t) => humantime::parse_duration(&t).map(Some).map_err(|e| {
            de::Error::custom(format!(
                "{t:?} is not a duration ({e}); use forms like 90s, 15m, 10d"
            ))
        }),
    }
}

/// A list of names, as a TOML array or one comma-separated string.
fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        Text(String),
    }
    Ok(Some(match Raw::deserialize(d)? {
        Raw::List(v) => v,
        Raw::Text(t) => t
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
    }))
}

impl Config {
    /// Defaults only (what `tessera serve` with no flags runs on).
    ///
    /// # Errors
    /// Never in practice; the defaults are valid.
    pub fn defaults() -> Result<Self, ConfigError> {
        Self::load(None, std::iter::empty(), &Overrides::default())
    }

    /// Reads `file` (if any), applies `env` (pairs as from
    /// [`std::env::vars`]; only `TESSERA_<SECTION>_<KEY>` names of the five
    /// sections are read) and `overrides`, and validates the result.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first setting that is wrong.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::new(path.display().to_string(), format!("cannot read: {e}"))
                })?;
                text.parse::<toml::Table>().map_err(|e| {
                    ConfigError::new(
                        path.display().to_string(),
                        format!("not valid TOML: {}", e.message()),
                    )
                })?
            }
            None => toml::Table::new(),
        };
        apply_env(&mut table, env)?;
        let raw: RawConfig =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let path = e.path().to_string();
                let message = e.into_inner().message().to_owned();
                ConfigError::new(setting_of(&path), message)
            })?;
        Self::validate(raw, overrides)
    }

    fn validate(raw: RawConfig, over: &Overrides) -> Result<Self, ConfigError> {
        let listen_text = over
            .listen
            .clone()
            .or(raw.server.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            ConfigError::new(
                "server.listen",
                format!("{listen_text:?} is not an address such as 127.0.0.1:8080"),
            )
        })?;
        let connections = tessera_http::LimitSettings {
            header_read_timeout: raw.server.header_read_timeout,
            keep_alive_timeout: raw.server.keep_alive_timeout,
            max_connections: raw.server.max_connections,
            shutdown_timeout: raw.server.shutdown_timeout,
        }
        .resolve()
        .map_err(|e| ConfigError::new(format!("server.{}", e.setting), e.message))?;
        let metrics_listen = match raw.server.metrics_listen {
            Some(text) => {
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
                Some(addr)
            }
            None => None,
        };
        let given_issuer = over.issuer.clone().or(raw.server.issuer);
        let derived_issuer = given_issuer.is_none();
        let issuer = given_issuer.unwrap_or_else(|| format!("http://{listen}"));
        let issuer = check_issuer(&issuer)?;
        let data = over
            .data
            .clone()
            .or(raw.server.data)
            .unwrap_or_else(|| PathBuf::from("tessera-data"));
        let database_url = match over.database_url.clone().or(raw.server.database_url) {
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
                url
            }
            None => format!("sqlite://{}?mode=rwc", data.join("tessera.db").display()),
        };

        let k = raw.keys;
        let names = k.algorithms.unwrap_or_else(|| vec!["ES256".to_owned()]);
        if names.is_empty() {
            return Err(ConfigError::new(
                "keys.algorithms",
                "at least one signing algorithm is needed (ES256, ES384, ES512, EdDSA, RS256..., PS256...)",
            ));
        }
        let mut algorithms = Vec::new();
        for name in &names {
            let alg = Algorithm::from_name(name).ok_or_else(|| {
                ConfigError::new(
                    "keys.algorithms",
                    format!("{name:?} is not a JWS algorithm Tessera signs with"),
                )
            })?;
            if alg.is_symmetric() {
                return Err(ConfigError::new(
                    "keys.algorithms",
                    format!("{alg} is refused: the authority signs with asymmetric keys only, so no verifier ever holds a secret that can mint tokens"),
                ));
            }
            if !algorithms.contains(&alg) {
                algorithms.push(alg);
            }
        }
        let rotation_period = k.rotation_period.unwrap_or(days(90));
        let prepublish = k.prepublish.unwrap_or(days(2));
        let grace = k.grace.unwrap_or(days(10));
        let refresh_interval = k.refresh_interval.unwrap_or(Duration::from_secs(10));
        let rsa_bits = k.rsa_bits.unwrap_or(2048);
        if ![2048, 3072, 4096].contains(&rsa_bits) {
            return Err(ConfigError::new(
                "keys.rsa_bits",
                "must be 2048, 3072 or 4096",
            ));
        }
        if prepublish >= rotation_period {
            return Err(ConfigError::new(
                "keys.prepublish",
                format!(
                    "{} must be shorter than keys.rotation_period ({})",
                    human(prepublish),
                    human(rotation_period)
                ),
            ));
        }
        if refresh_interval.is_zero() {
            return Err(ConfigError::new(
                "keys.refresh_interval",
                "must be longer than zero",
            ));
        }

        let t = raw.tokens;
        let access_token_ttl = t.access_token_ttl.unwrap_or(Duration::from_secs(15 * 60));
        let max_access_token_ttl = t.max_access_token_ttl.unwrap_or(Duration::from_secs(3600));
        let leeway = t.leeway.unwrap_or(Duration::from_secs(60));
        if access_token_ttl.is_zero() || access_token_ttl > max_access_token_ttl {
            return Err(ConfigError::new(
                "tokens.access_token_ttl",
                format!(
                    "{} must be above zero and at most tokens.max_access_token_ttl ({})",
                    human(access_token_ttl),
                    human(max_access_token_ttl)
                ),
            ));
        }
        if grace < max_access_token_ttl + leeway {
            return Err(ConfigError::new(
                "keys.grace",
                format!(
                    "{} is shorter than the longest token lifetime plus leeway ({} + {}): tokens signed by a retired key would stop verifying before they expire",
                    human(grace),
                    human(max_access_token_ttl),
                    human(leeway)
                ),
            ));
        }
        let size_budget = t.size_budget.unwrap_or(tessera_jose::lint::DEFAULT_BUDGET);
        if size_budget < 256 {
            return Err(ConfigError::new(
                "tokens.size_budget",
                "must be at least 256 bytes (an ES256 token with no claims is about 200)",
            ));
        }
        let derived_audience = t.default_audience.is_none();
        let default_audience = t.default_audience.unwrap_or_else(|| issuer.clone());
        if default_audience.is_empty() {
            return Err(ConfigError::new(
                "tokens.default_audience",
                "must not be empty",
            ));
        }

        let refresh_token_ttl = t.refresh_token_ttl.unwrap_or(days(7));
        let refresh_idle_timeout = t.refresh_idle_timeout.unwrap_or(days(3));
        if refresh_token_ttl.is_zero() {
            return Err(ConfigError::new(
                "tokens.refresh_token_ttl",
                "must be longer than zero",
            ));
        }
        if refresh_idle_timeout.is_zero() || refresh_idle_timeout > refresh_token_ttl {
            return Err(ConfigError::new(
                "tokens.refresh_idle_timeout",
                "must be above zero and at most tokens.refresh_token_ttl",
            ));
        }
        let refresh_reuse_interval = t.refresh_reuse_interval.unwrap_or(Duration::ZERO);
        if refresh_reuse_interval > Duration::from_secs(10) {
            return Err(ConfigError::new(
                "tokens.refresh_reuse_interval",
                "must be at most 10s: it only absorbs a client's concurrent retries",
            ));
        }
        let private_key_jwt_audience = match t.private_key_jwt_audience.as_deref() {
            None => AssertionAudience::Issuer,
            Some(name) => AssertionAudience::from_name(name).ok_or_else(|| {
                ConfigError::new(
                    "tokens.private_key_jwt_audience",
                    format!(
                        "{:?} is not one of \"issuer\" (the default) or \"issuer_or_token_endpoint\"",
                        name.chars().take(40).collect::<String>()
                    ),
                )
            })?,
        };
        let jwks_max_age = raw
            .jwks
            .max_age
            .unwrap_or_else(|| Duration::from_secs(300).min(prepublish / 2));
        if jwks_max_age > prepublish / 2 {
            return Err(ConfigError::new(
                "jwks.max_age",
                format!(
                    "{} is over half of keys.prepublish ({}): a verifier could still hold a key set without the next key when it starts signing",
                    human(jwks_max_age),
                    human(prepublish)
                ),
            ));
        }

        let kek_file = k.kek_file.unwrap_or_else(|| data.join("kek"));
        let admin_token_file = raw
            .admin
            .token_file
            .unwrap_or_else(|| data.join("admin.token"));
        let audit_retention = raw.admin.audit_retention.unwrap_or(days(90));
        if audit_retention < days(1) {
            return Err(ConfigError::new(
                "admin.audit_retention",
                "must be at least 1d: the audit log is what an incident review reads",
            ));
        }
        Ok(Self {
            listen,
            issuer,
            data,
            database_url,
            quickstart_client: raw.server.quickstart_client.unwrap_or(true),
            keys: KeySettings {
                algorithms,
                rotation_period,
                prepublish,
                grace,
                kek_file,
                refresh_interval,
                rsa_bits,
            },
            tokens: TokenSettings {
                access_token_ttl,
                max_access_token_ttl,
                leeway,
                size_budget,
                default_audience,
                refresh_token_ttl,
                refresh_idle_timeout,
                refresh_reuse_interval,
                private_key_jwt_audience,
            },
            jwks_max_age,
            admin_token_file,
            audit_retention,
            federation: federation::validate(raw.federation)?,
            connections,
            metrics_listen,
            derived_issuer,
            derived_audience,
        })
    }

    /// Records the address actually bound (`--listen 127.0.0.1:0` picks a
    /// port): an issuer derived from the listen address follows it.
    pub fn bound_to(&mut self, addr: SocketAddr) {
        if self.derived_issuer && self.listen.port() == 0 {
            self.issuer = format!("http://{addr}");
            if self.derived_audience {
                self.tokens.default_audience = self.issuer.clone();
            }
        }
        self.listen = addr;
    }

    /// The token endpoint's URL.
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.issuer)
    }

    /// Whether the database is the embedded SQLite file.
    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }
}

fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

fn human(d: Duration) -> impl fmt::Display {
    humantime::format_duration(d)
}

fn check_issuer(issuer: &str) -> Result<String, ConfigError> {
    let trimmed = issuer.trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"));
    let ok =
        rest.is_some_and(|r| !r.is_empty() && !r.contains(['?', '#', ' ']) && !r.starts_with('/'));
    if !ok {
        return Err(ConfigError::new(
            "server.issuer",
            format!("{issuer:?} must be an http:// or https:// URL with no query or fragment"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// Sets `TESSERA_<SECTION>_<KEY>` values into `table`. A value is read as a
/// TOML value where it parses (numbers, booleans, arrays), else as a string.
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let mut sorted = BTreeMap::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("TESSERA_") else {
            continue;
        };
        let lower = rest.to_ascii_lowercase();
        let Some((section, key)) = SECTIONS.iter().find_map(|s| {
            lower
                .strip_prefix(s)
                .and_then(|k| k.strip_prefix('_'))
                .map(|k| (*s, k.to_owned()))
        }) else {
            continue;
        };
        sorted.insert((section, key), (name, value));
    }
    for ((section, key), (name, value)) in sorted {
        let parsed = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(value));
        let entry = table
            .entry(section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(section_table) = entry else {
            return Err(ConfigError::new(
                section,
                format!("must be a table (set by the file), so {name} cannot apply"),
            ));
        };
        section_table.insert(key, parsed);
    }
    Ok(())
}

/// The dotted name of the setting an error is about (serde_path_to_error
/// includes an unknown key in the path).
fn setting_of(path: &str) -> String {
    if path.is_empty() || path == "." {
        "config".to_owned()
    } else {
        path.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::defaults().unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.issuer, "http://127.0.0.1:8080");
        assert_eq!(c.data, PathBuf::from("tessera-data"));
        assert!(c.is_sqlite());
        assert_eq!(c.keys.algorithms, vec![Algorithm::ES256]);
        assert_eq!(c.keys.rotation_period, days(90));
        assert_eq!(c.keys.prepublish, days(2));
        assert_eq!(c.keys.grace, days(10));
        assert_eq!(c.tokens.access_token_ttl, Duration::from_secs(900));
        assert_eq!(c.tokens.size_budget, 1024);
        assert_eq!(c.audit_retention, days(90));
        assert_eq!(c.tokens.private_key_jwt_audience, AssertionAudience::Issuer);
        assert!(c.jwks_max_age <= c.keys.prepublish / 2);
        assert_eq!(c.token_endpoint(), "http://127.0.0.1:8080/token");
        assert_eq!(c.connections, tessera_http::Limits::default());
        assert_eq!(c.metrics_listen, None, "no metrics listener unless asked");
    }

    #[test]
    fn an_ephemeral_port_becomes_the_derived_issuer() {
        let over = Overrides {
            listen: Some("127.0.0.1:0".into()),
            ..Overrides::default()
        };
        let mut c = Config::load(None, Vec::new(), &over).unwrap();
        c.bound_to("127.0.0.1:41234".parse().unwrap());
        assert_eq!(c.issuer, "http://127.0.0.1:41234");
        assert_eq!(c.tokens.default_audience, "http://127.0.0.1:41234");
        let over = Overrides {
            listen: Some("127.0.0.1:0".into()),
            issuer: Some("https://auth.example.com".into()),
            ..Overrides::default()
        };
        let mut c = Config::load(None, Vec::new(), &over).unwrap();
        c.bound_to("127.0.0.1:41234".parse().unwrap());
        assert_eq!(c.issuer, "https://auth.example.com");
    }

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.toml");
        std::fs::write(
            &file,
            "[server]\nlisten = \"127.0.0.1:9000\"\n[keys]\nalgorithms = [\"ES256\"]\ngrace = \"20d\"\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&file),
            env(&[
                ("TESSERA_KEYS_ALGORITHMS", "ES256,EdDSA"),
                ("TESSERA_KEYS_ROTATION_PERIOD", "30d"),
                ("TESSERA_SERVER_LISTEN", "127.0.0.1:9001"),
                ("TESSERA_TEST_DATABASE_URL", "ignored: not a section"),
            ]),
            &Overrides {
                listen: Some("127.0.0.1:9002".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(c.keys.algorithms, vec![Algorithm::ES256, Algorithm::EdDSA]);
        assert_eq!(c.keys.rotation_period, days(30));
        assert_eq!(c.keys.grace, days(20));
        assert_eq!(c.listen.to_string(), "127.0.0.1:9002");
        assert_eq!(c.issuer, "http://127.0.0.1:9002");
    }

    #[test]
    fn connection_limits_and_the_metrics_listener_are_settings() {
        let c = Config::load(
            None,
            env(&[
                ("TESSERA_SERVER_HEADER_READ_TIMEOUT", "2s"),
                ("TESSERA_SERVER_KEEP_ALIVE_TIMEOUT", "30"),
                ("TESSERA_SERVER_MAX_CONNECTIONS", "50"),
                ("TESSERA_SERVER_SHUTDOWN_TIMEOUT", "0s"),
                ("TESSERA_SERVER_METRICS_LISTEN", "127.0.0.1:9090"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.connections.header_read_timeout(), Duration::from_secs(2));
        assert_eq!(c.connections.keep_alive_timeout(), Duration::from_secs(30));
        assert_eq!(c.connections.max_connections(), 50);
        assert_eq!(c.connections.shutdown_timeout(), Duration::ZERO);
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9090".parse().unwrap()));
    }

    fn err(pairs: &[(&str, &str)]) -> ConfigError {
        Config::load(None, env(pairs), &Overrides::default()).unwrap_err()
    }

    #[test]
    fn bad_settings_are_named() {
        assert_eq!(
            err(&[("TESSERA_KEYS_ALGORITHMS", "HS256")]).setting,
            "keys.algorithms"
        );
        assert_eq!(
            err(&[("TESSERA_KEYS_ALGORITHMS", "none")]).setting,
            "keys.algorithms"
        );
        assert_eq!(err(&[("TESSERA_KEYS_GRACE", "30m")]).setting, "keys.grace");
        assert_eq!(
            err(&[("TESSERA_KEYS_PREPUBLISH", "100d")]).setting,
            "keys.prepublish"
        );
        assert_eq!(
            err(&[("TESSERA_JWKS_MAX_AGE", "2d")]).setting,
            "jwks.max_age"
        );
        assert_eq!(
            err(&[("TESSERA_SERVER_LISTEN", "nowhere")]).setting,
            "server.listen"
        );
        assert_eq!(
            err(&[("TESSERA_SERVER_ISSUER", "ftp://x")]).setting,
            "server.issuer"
        );
        assert_eq!(
            err(&[("TESSERA_SERVER_DATABASE_URL", "mysql://x")]).setting,
            "server.database_url"
        );
        assert_eq!(
            err(&[("TESSERA_KEYS_RSA_BITS", "1024")]).setting,
            "keys.rsa_bits"
        );
        assert_eq!(
            err(&[("TESSERA_ADMIN_AUDIT_RETENTION", "12h")]).setting,
            "admin.audit_retention"
        );
        for (name, value, setting) in [
            (
                "TESSERA_SERVER_HEADER_READ_TIMEOUT",
                "0s",
                "server.header_read_timeout",
            ),
            (
                "TESSERA_SERVER_KEEP_ALIVE_TIMEOUT",
                "0",
                "server.keep_alive_timeout",
            ),
            (
                "TESSERA_SERVER_MAX_CONNECTIONS",
                "0",
                "server.max_connections",
            ),
            (
                "TESSERA_SERVER_SHUTDOWN_TIMEOUT",
                "later",
                "server.shutdown_timeout",
            ),
            (
                "TESSERA_SERVER_METRICS_LISTEN",
                "metrics",
                "server.metrics_listen",
            ),
            (
                "TESSERA_SERVER_METRICS_LISTEN",
                "127.0.0.1:8080",
                "server.metrics_listen",
            ),
        ] {
            assert_eq!(err(&[(name, value)]).setting, setting, "{name}={value}");
        }
        assert_eq!(
            err(&[("TESSERA_TOKENS_PRIVATE_KEY_JWT_AUDIENCE", "token_endpoint")]).setting,
            "tokens.private_key_jwt_audience"
        );
        let e = err(&[("TESSERA_KEYS_GRACE", "soon")]);
        assert!(e.message.contains("not a duration"), "{e}");
        let e = err(&[("TESSERA_SERVER_COLOUR", "blue")]);
        assert_eq!(e.setting, "server.colour", "{e}");
    }

    #[test]
    fn the_example_file_loads_and_states_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tessera.example.toml");
        let c = Config::load(Some(&path), Vec::new(), &Overrides::default()).unwrap();
        let d = Config::defaults().unwrap();
        assert_eq!(format!("{c:?}"), format!("{d:?}"));
    }

    #[test]
    fn debug_never_shows_the_database_password() {
        let over = Overrides {
            database_url: Some("postgres://tessera:s3cret@db:5432/tessera".into()),
            ..Overrides::default()
        };
        let c = Config::load(None, Vec::new(), &over).unwrap();
        let text = format!("{c:?}");
        assert!(
            !text.contains("s3cret") && text.contains("postgres://tessera:***@db:5432/tessera"),
            "{text}"
        );
        assert_eq!(
            redact_password("sqlite://x/y.db?mode=rwc"),
            "sqlite://x/y.db?mode=rwc"
        );
    }

    #[test]
    fn bad_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[server\nlisten=").unwrap();
        let e = Config::load(Some(&file), Vec::new(), &Overrides::default()).unwrap_err();
        assert!(e.setting.ends_with("bad.toml"), "{e}");
        let missing = dir.path().join("missing.toml");
        let e = Config::load(Some(&missing), Vec::new(), &Overrides::default()).unwrap_err();
        assert!(e.message.contains("cannot read"), "{e}");
    }
}
