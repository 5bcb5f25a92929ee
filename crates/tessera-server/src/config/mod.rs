//! Settings: defaults, then a TOML file, then `TESSERA_<SECTION>_<KEY>`
//! environment variables, then command-line flags. Everything is validated
//! here, before the data folder or the database is touched, and an error
//! names the setting at fault.
//!
//! One module per section of the settings file (`tessera.example.toml`):
//! each holds the section as written (`Raw*`), its validated form and the
//! `validate` that turns one into the other; `source` reads the file and
//! the environment into the raw sections. Sections are validated in the
//! file's order, so the error reported is the first wrong setting.
//!
//! Dependencies run one way: this module names every section; `source`
//! names the sections' raw types; a section names only earlier sections
//! whose validated values it checks against (`tokens` and `jwks` read
//! `keys`); everything shared below that (`ConfigError` in `error`, the
//! deserialisers and duration helpers in `parse`) is in leaves that name
//! no other module here.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod admin;
mod error;
mod federation;
mod jwks;
mod keys;
mod parse;
mod server;
mod source;
mod tokens;

pub use error::ConfigError;
pub(crate) use federation::{Upstream, SUBJECT_SEPARATOR};
pub(crate) use keys::KeySettings;
pub(crate) use server::redact_password;
pub use server::Overrides;
pub(crate) use tokens::{AssertionAudience, TokenSettings};

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
        Self::validate(source::read(file, env)?, overrides)
    }

    /// Each section in the file's order; a later section may depend on an
    /// earlier one (paths in the data folder, the issuer as default
    /// audience, delays that must fit the key lifecycle's).
    fn validate(raw: source::RawConfig, over: &Overrides) -> Result<Self, ConfigError> {
        let server = server::validate(raw.server, over)?;
        let keys = keys::validate(raw.keys, &server.data)?;
        let derived_audience = raw.tokens.default_audience.is_none();
        let tokens = tokens::validate(raw.tokens, &keys, &server.issuer)?;
        let jwks_max_age = jwks::validate(raw.jwks, &keys)?;
        let admin = admin::validate(raw.admin, &server.data)?;
        let federation = federation::validate(raw.federation)?;
        Ok(Self {
            listen: server.listen,
            issuer: server.issuer,
            data: server.data,
            database_url: server.database_url,
            quickstart_client: server.quickstart_client,
            keys,
            tokens,
            jwks_max_age,
            admin_token_file: admin.token_file,
            audit_retention: admin.audit_retention,
            federation,
            connections: server.connections,
            metrics_listen: server.metrics_listen,
            derived_issuer: server.derived_issuer,
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

#[cfg(test)]
mod tests {
    use tessera_jose::Algorithm;

    use super::parse::days;
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
