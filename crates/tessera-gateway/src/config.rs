//! Gateway settings: a TOML file, then command-line flags.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::http::uri::Authority;
use serde::Deserialize;

use crate::authz::Flavor;
use crate::routes::{Clash, Matching, Route, Routes, Rule};

/// A setting that is missing or wrong, named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct ConfigError {
    /// The setting (`upstream`, `routes[2].prefix`...).
    pub setting: String,
    /// What is wrong.
    pub message: String,
}

/// Most `workers` accepted (far above any core count worth serving from).
const MAX_WORKERS: usize = 1024;

fn err(setting: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: setting.into(),
        message: message.into(),
    }
}

/// What the gateway does with the requests it decides on (`mode`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// A reverse proxy in front of `upstream` (the default).
    Proxy,
    /// Forward auth: a decision endpoint that a proxy already in front of
    /// the service asks, in its own protocol, whether a request may pass
    /// and as whom ([`crate::authz`]).
    Authz(Flavor),
}

/// Validated gateway settings.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Where the gateway listens.
    pub listen: SocketAddr,
    /// Proxy or authz mode.
    pub mode: Mode,
    /// `http://host:port` of the service behind it; empty in authz mode,
    /// where the proxy in front forwards.
    pub upstream: String,
    /// The token issuer (its discovery document gives the JWKS).
    pub issuer: String,
    /// Routes, most specific first; anything unmatched needs the default audience.
    pub routes: Routes,
    /// The authorities (`host[:port]`) clients reach the gateway as: an
    /// absolute-form request target must name one of them. Empty: it must
    /// name the request's `Host`.
    pub public_authorities: Vec<Authority>,
    /// The audience required where no route says otherwise.
    pub audience: String,
    /// Forward the original token in `X-Tessera-Token`.
    pub forward_token: bool,
    /// How long the upstream may take to answer (headers) before 504.
    pub upstream_timeout: Duration,
    /// How long connecting to the upstream may take before 502.
    pub connect_timeout: Duration,
    /// Verified tokens remembered (by hash, until their exp); 0 disables.
    pub token_cache: usize,
    /// Follow the issuer's deny-list feed as this client (id, secret read
    /// from a file), rejecting revoked tokens.
    pub revocations: Option<FeedClient>,
    /// How long start-up may spend reading the deny-list feed to its end;
    /// past it the gateway starts anyway, says it is not caught up, and
    /// goes on reading in the background.
    pub revocations_catch_up: Duration,
    /// Phantom-token mode: exchange opaque `tso_` tokens at the issuer's
    /// token endpoint (RFC 8693) as this client, for an internal JWT.
    pub phantom: Option<FeedClient>,
    /// How long an exchanged JWT is reused for the same opaque token
    /// (never past its exp).
    pub phantom_cache: Duration,
    /// Client connections: header-read and keep-alive timeouts, the
    /// connection limit, the shutdown deadline.
    pub connections: tessera_http::Limits,
    /// Most phantom exchanges in flight at once; past that, 503.
    pub phantom_max_in_flight: usize,
    /// The issuer's key set is kept at least `min_cache_ttl` whatever its
    /// `max-age`, and fetched for an unknown kid at most once per
    /// `unknown_kid_cooldown` (`jwks_min_cache_ttl`,
    /// `jwks_unknown_kid_cooldown`; 60 s and 30 s). The authority's
    /// `keys.prepublish` must cover them: give it the same values as
    /// `keys.verifier_min_cache_ttl` and `keys.verifier_unknown_kid_cooldown`
    /// (docs/ARCHITECTURE.md §3.5).
    pub jwks_floors: tessera_verify::rule::Floors,
    /// Threads serving clients (`workers`; default: one per CPU). Each
    /// accepts connections and carries each request from accept to the
    /// upstream's answer, with its own upstream connection pool.
    pub workers: std::num::NonZeroUsize,
}

/// The client the gateway reads the deny-list feed as.
#[derive(Clone)]
pub struct FeedClient {
    /// The feed URL (default `<issuer>/revocations`).
    pub url: String,
    /// Client id.
    pub client_id: String,
    /// Client secret (from `client_secret_file`).
    pub client_secret: String,
}

impl std::fmt::Debug for FeedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedClient")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Command-line values (they win over the file).
#[derive(Clone, Debug, Default)]
pub struct GatewayOverrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--mode` (`proxy` or `authz`).
    pub mode: Option<String>,
    /// `--upstream`.
    pub upstream: Option<String>,
    /// `--issuer`.
    pub issuer: Option<String>,
    /// `--audience`.
    pub audience: Option<String>,
    /// `--forward-token`.
    pub forward_token: bool,
    /// `--upstream-timeout`.
    pub upstream_timeout: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    mode: Option<String>,
    authz: Option<RawAuthz>,
    upstream: Option<String>,
    issuer: Option<String>,
    audience: Option<String>,
    forward_token: Option<bool>,
    upstream_timeout: Option<String>,
    connect_timeout: Option<String>,
    token_cache: Option<usize>,
    revocations: Option<RawFeed>,
    revocations_catch_up: Option<String>,
    phantom: Option<RawFeed>,
    phantom_cache: Option<String>,
    header_read_timeout: Option<String>,
    keep_alive_timeout: Option<String>,
    max_connections: Option<usize>,
    shutdown_timeout: Option<String>,
    phantom_max_in_flight: Option<usize>,
    jwks_min_cache_ttl: Option<String>,
    jwks_unknown_kid_cooldown: Option<String>,
    workers: Option<usize>,
    #[serde(default)]
    public_authorities: Vec<String>,
    #[serde(default)]
    routes: Vec<RawRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeed {
    url: Option<String>,
    client_id: String,
    client_secret_file: std::path::PathBuf,
}

/// `[authz]`: the proxy in front, and what its flavour lets one set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuthz {
    flavor: Option<String>,
    method_header: Option<String>,
    uri_header: Option<String>,
    path_prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    prefix: String,
    #[serde(default)]
    public: bool,
    audience: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    case_sensitive: bool,
}

/// A `[revocations]` or `[phantom]` client: id, secret from a file, URL.
fn client_of(
    raw: Option<RawFeed>,
    section: &str,
    default_url: String,
) -> Result<Option<FeedClient>, ConfigError> {
    let Some(f) = raw else {
        return Ok(None);
    };
    let setting = format!("{section}.client_secret_file");
    let secret = std::fs::read_to_string(&f.client_secret_file).map_err(|e| {
        err(
            setting.clone(),
            format!("{}: {e}", f.client_secret_file.display()),
        )
    })?;
    let secret = secret.trim().to_owned();
    if secret.is_empty() {
        return Err(err(setting, "is empty"));
    }
    Ok(Some(FeedClient {
        url: f.url.unwrap_or(default_url),
        client_id: f.client_id,
        client_secret: secret,
    }))
}

fn duration(setting: &str, text: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(text)
        .map_err(|e| err(setting, format!("{text:?}: {e} (examples: 500ms, 30s)")))
}

/// The `[authz]` section of authz mode: the flavour, and the settings of
/// that flavour only (another flavour's setting is refused, not ignored).
fn flavor_of(raw: Option<RawAuthz>) -> Result<Flavor, ConfigError> {
    let raw = raw.ok_or_else(|| {
        err(
            "authz.flavor",
            "is required in authz mode: the proxy that asks (nginx, traefik or envoy)",
        )
    })?;
    let flavor = raw.flavor.as_deref().ok_or_else(|| {
        err(
            "authz.flavor",
            "is required in authz mode: the proxy that asks (nginx, traefik or envoy)",
        )
    })?;
    let not_for = |setting: &str, value: &Option<String>| match value {
        Some(_) => Err(err(
            format!("authz.{setting}"),
            format!("is not a setting of flavor = {flavor:?}"),
        )),
        None => Ok(()),
    };
    match flavor {
        "nginx" => {
            not_for("path_prefix", &raw.path_prefix)?;
            let method = header_setting(
                "authz.method_header",
                raw.method_header,
                "x-original-method",
            )?;
            let uri = header_setting("authz.uri_header", raw.uri_header, "x-original-uri")?;
            if method == uri {
                return Err(err(
                    "authz.uri_header",
                    "must differ from authz.method_header",
                ));
            }
            Ok(Flavor::Nginx { method, uri })
        }
        "traefik" => {
            not_for("method_header", &raw.method_header)?;
            not_for("uri_header", &raw.uri_header)?;
            not_for("path_prefix", &raw.path_prefix)?;
            Ok(Flavor::Traefik)
        }
        "envoy" => {
            not_for("method_header", &raw.method_header)?;
            not_for("uri_header", &raw.uri_header)?;
            let path_prefix = match raw.path_prefix {
                Some(p) => {
                    let canonical =
                        crate::path::CanonicalPath::parse(&p).is_ok_and(|c| c.as_str() == p);
                    if !canonical || p.ends_with('/') || p.contains('?') {
                        return Err(err(
                            "authz.path_prefix",
                            format!(
                                "{p:?} must be a path in canonical form without a trailing / \
                                 (Envoy's http_service.path_prefix, such as /authz)"
                            ),
                        ));
                    }
                    p
                }
                None => String::new(),
            };
            Ok(Flavor::Envoy { path_prefix })
        }
        other => Err(err(
            "authz.flavor",
            format!("{other:?} is not nginx, traefik or envoy"),
        )),
    }
}

/// A header name the proxy in front sends: letters, digits and `-` only
/// (nginx drops names with `_` or other characters by default), and not
/// one the gateway reads or sets for another purpose.
fn header_setting(
    setting: &str,
    value: Option<String>,
    default: &'static str,
) -> Result<axum::http::HeaderName, ConfigError> {
    let Some(name) = value else {
        return Ok(axum::http::HeaderName::from_static(default));
    };
    let lower = name.to_ascii_lowercase();
    let sane = !lower.is_empty()
        && lower
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let taken = matches!(lower.as_str(), "authorization" | "host" | "x-request-id")
        || lower.starts_with("x-tessera-");
    if !sane || taken {
        return Err(err(
            setting,
            format!(
                "{name:?} must be a header name of letters, digits and - that the gateway \
                 does not read or set otherwise (not Authorization, Host, X-Tessera-*)"
            ),
        ));
    }
    axum::http::HeaderName::from_bytes(lower.as_bytes())
        .map_err(|_| err(setting, format!("{name:?} is not a header name")))
}

fn check_upstream(url: &str) -> Result<String, ConfigError> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        err(
            "upstream",
            "must be http://host:port (the service behind the gateway)",
        )
    })?;
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return Err(err(
            "upstream",
            format!("{url:?} must be http://host:port with no path"),
        ));
    }
    Ok(format!("http://{authority}"))
}

impl GatewayConfig {
    /// Reads `file` (if any) and applies the flags.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the setting.
    pub fn load(file: Option<&Path>, over: &GatewayOverrides) -> Result<Self, ConfigError> {
        let raw: RawConfig = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| err(path.display().to_string(), format!("cannot read: {e}")))?;
                toml::from_str(&text)
                    .map_err(|e| err(path.display().to_string(), e.message().to_owned()))?
            }
            None => RawConfig::default(),
        };
        let listen_text = over
            .listen
            .clone()
            .or(raw.listen)
            .unwrap_or_else(|| "127.0.0.1:8000".into());
        let listen = listen_text.parse().map_err(|_| {
            err(
                "listen",
                format!("{listen_text:?} is not an address such as 127.0.0.1:8000"),
            )
        })?;
        let mode_text = over.mode.clone().or(raw.mode);
        let mode = match mode_text.as_deref() {
            None | Some("proxy") => {
                if raw.authz.is_some() {
                    return Err(err("authz", "is a section of mode = \"authz\" only"));
                }
                Mode::Proxy
            }
            Some("authz") => Mode::Authz(flavor_of(raw.authz)?),
            Some(other) => return Err(err("mode", format!("{other:?} is not proxy or authz"))),
        };
        let upstream = over.upstream.clone().or(raw.upstream);
        let upstream = match (&mode, upstream) {
            (Mode::Proxy, Some(u)) => check_upstream(&u)?,
            (Mode::Proxy, None) => {
                return Err(err(
                    "upstream",
                    "is required (--upstream http://127.0.0.1:9000)",
                ))
            }
            (Mode::Authz(_), None) => String::new(),
            // Refused rather than ignored: whoever set it expects the
            // gateway to forward, and in authz mode it never does.
            (Mode::Authz(_), Some(_)) => return Err(err(
                "upstream",
                "is not used in authz mode: the proxy in front forwards to the service; remove it",
            )),
        };
        if matches!(mode, Mode::Authz(_)) {
            for (setting, set) in [
                (
                    "upstream_timeout",
                    over.upstream_timeout.is_some() || raw.upstream_timeout.is_some(),
                ),
                ("connect_timeout", raw.connect_timeout.is_some()),
            ] {
                if set {
                    return Err(err(
                        setting,
                        "is not used in authz mode (no upstream); remove it",
                    ));
                }
            }
        }
        let issuer = over
            .issuer
            .clone()
            .or(raw.issuer)
            .ok_or_else(|| err("issuer", "is required (--issuer http://127.0.0.1:8080)"))?;
        let audience = over.audience.clone().or(raw.audience).ok_or_else(|| {
            err(
                "audience",
                "is required: the audience tokens must name (--audience orders-api)",
            )
        })?;
        let upstream_timeout = match (over.upstream_timeout, raw.upstream_timeout) {
            (Some(d), _) => d,
            (None, Some(t)) => duration("upstream_timeout", &t)?,
            (None, None) => Duration::from_secs(30),
        };
        let connect_timeout = match raw.connect_timeout {
            Some(t) => duration("connect_timeout", &t)?,
            None => Duration::from_secs(5),
        };
        let mut routes = Vec::new();
        for (i, r) in raw.routes.into_iter().enumerate() {
            let name = format!("routes[{i}]");
            let rule = if r.public {
                if r.audience.is_some() || !r.scopes.is_empty() {
                    return Err(err(name, "a public route takes no audience or scopes"));
                }
                Rule::Public
            } else {
                Rule::Protected {
                    audience: r.audience.unwrap_or_else(|| audience.clone()),
                    scopes: r.scopes,
                }
            };
            let matching = if r.case_sensitive {
                Matching::Exact
            } else {
                Matching::Lenient
            };
            routes.push(
                Route::new(&r.prefix, rule, matching)
                    .map_err(|m| err(format!("{name}.prefix"), m))?,
            );
        }
        let default_rule = Rule::Protected {
            audience: audience.clone(),
            scopes: Vec::new(),
        };
        let routes = Routes::new(routes, default_rule).map_err(
            |Clash {
                 first,
                 second,
                 exact,
             }| {
                let message = if exact {
                    format!("the same prefix as routes[{first}]")
                } else {
                    format!(
                        "differs from routes[{first}] only in letter case or another lenient reading; \
                         set case_sensitive = true on both if the upstream tells them apart"
                    )
                };
                err(format!("routes[{second}].prefix"), message)
            },
        )?;
        let mut public_authorities = Vec::new();
        for (i, a) in raw.public_authorities.iter().enumerate() {
            let parsed = a
                .parse::<Authority>()
                .ok()
                .filter(|p| !p.as_str().contains('@'));
            let Some(parsed) = parsed else {
                return Err(err(
                    format!("public_authorities[{i}]"),
                    format!("{a:?} is not host[:port]"),
                ));
            };
            public_authorities.push(parsed);
        }
        let base = issuer.trim_end_matches('/').to_owned();
        let revocations = client_of(
            raw.revocations,
            "revocations",
            format!("{base}/revocations"),
        )?;
        let phantom = client_of(raw.phantom, "phantom", format!("{base}/token"))?;
        let optional =
            |setting: &str, text: Option<String>| text.map(|t| duration(setting, &t)).transpose();
        let connections = tessera_http::LimitSettings {
            header_read_timeout: optional("header_read_timeout", raw.header_read_timeout)?,
            keep_alive_timeout: optional("keep_alive_timeout", raw.keep_alive_timeout)?,
            max_connections: raw.max_connections,
            shutdown_timeout: optional("shutdown_timeout", raw.shutdown_timeout)?,
        }
        .resolve()
        .map_err(|e| err(e.setting, e.message))?;
        let phantom_cache =
            optional("phantom_cache", raw.phantom_cache)?.unwrap_or(Duration::from_secs(30));
        let revocations_catch_up = optional("revocations_catch_up", raw.revocations_catch_up)?
            .unwrap_or(Duration::from_secs(10));
        let phantom_max_in_flight = raw.phantom_max_in_flight.unwrap_or(64);
        if phantom_max_in_flight == 0 {
            return Err(err("phantom_max_in_flight", "must be at least 1"));
        }
        let defaults = tessera_verify::rule::Floors::DEFAULT;
        let jwks_floors = tessera_verify::rule::Floors {
            min_cache_ttl: optional("jwks_min_cache_ttl", raw.jwks_min_cache_ttl)?
                .unwrap_or(defaults.min_cache_ttl),
            unknown_kid_cooldown: optional(
                "jwks_unknown_kid_cooldown",
                raw.jwks_unknown_kid_cooldown,
            )?
            .unwrap_or(defaults.unknown_kid_cooldown),
        };
        let workers = match raw.workers {
            Some(n) => std::num::NonZeroUsize::new(n)
                .filter(|n| n.get() <= MAX_WORKERS)
                .ok_or_else(|| err("workers", format!("must be between 1 and {MAX_WORKERS}")))?,
            None => std::thread::available_parallelism().unwrap_or(std::num::NonZeroUsize::MIN),
        };
        Ok(Self {
            workers,
            listen,
            mode,
            upstream,
            issuer,
            routes,
            public_authorities,
            forward_token: over.forward_token || raw.forward_token.unwrap_or(false),
            upstream_timeout,
            connect_timeout,
            token_cache: raw.token_cache.unwrap_or(10_000),
            revocations,
            revocations_catch_up,
            phantom,
            phantom_cache,
            connections,
            phantom_max_in_flight,
            jwks_floors,
            audience,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn over() -> GatewayOverrides {
        GatewayOverrides {
            upstream: Some("http://127.0.0.1:9000".into()),
            issuer: Some("http://127.0.0.1:8080".into()),
            audience: Some("orders-api".into()),
            ..GatewayOverrides::default()
        }
    }

    fn rules<'a>(c: &'a GatewayConfig, path: &str) -> Vec<&'a Rule> {
        c.routes
            .rules_for(&crate::path::CanonicalPath::parse(path).unwrap())
    }

    fn load(toml: &str) -> Result<GatewayConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("g.toml");
        std::fs::write(&file, toml).unwrap();
        GatewayConfig::load(Some(&file), &over())
    }

    #[test]
    fn routes_match_whole_segments_longest_first() {
        let c = load(
            "[[routes]]\nprefix = \"/health\"\npublic = true\n[[routes]]\nprefix = \"/admin\"\naudience = \"orders-admin\"\nscopes = [\"orders:admin\"]\n[[routes]]\nprefix = \"/admin/public\"\npublic = true\n[[routes]]\nprefix = \"/Reports/\"\ncase_sensitive = true\naudience = \"reports\"\n",
        )
        .unwrap();
        let api = Rule::Protected {
            audience: "orders-api".into(),
            scopes: vec![],
        };
        let admin = Rule::Protected {
            audience: "orders-admin".into(),
            scopes: vec!["orders:admin".into()],
        };
        let reports = Rule::Protected {
            audience: "reports".into(),
            scopes: vec![],
        };
        assert!(rules(&c, "/health").is_empty());
        assert!(rules(&c, "/health/live").is_empty());
        assert_eq!(rules(&c, "/healthz"), [&api]);
        assert_eq!(rules(&c, "/admin/x"), [&admin]);
        assert!(rules(&c, "/admin/public/logo.png").is_empty());
        assert_eq!(rules(&c, "/orders"), [&api]);
        // The default: case variants are governed by the route too.
        assert_eq!(rules(&c, "/ADMIN/x"), [&api, &admin]);
        // case_sensitive = true: only the exact spelling.
        assert_eq!(rules(&c, "/Reports/x"), [&reports]);
        assert_eq!(rules(&c, "/reports/x"), [&api]);
        let prefixes: Vec<&str> = c.routes.iter().map(|r| r.prefix.as_str()).collect();
        assert_eq!(prefixes, ["/admin/public", "/health", "/admin", "/Reports"]);
    }

    #[test]
    fn route_prefixes_and_authorities_are_checked() {
        for (toml, setting, says) in [
            (
                "[[routes]]\nprefix = \"/admin;x\"\n",
                "routes[0].prefix",
                "path_parameter",
            ),
            (
                "[[routes]]\nprefix = \"/a/../admin\"\n",
                "routes[0].prefix",
                "dot-segments",
            ),
            (
                "[[routes]]\nprefix = \"/a//b\"\n",
                "routes[0].prefix",
                "empty segment",
            ),
            (
                "[[routes]]\nprefix = \"/a!\"\n",
                "routes[0].prefix",
                "only letters",
            ),
            (
                "[[routes]]\nprefix = \"/admin\"\n[[routes]]\nprefix = \"/admin/\"\npublic = true\n",
                "routes[1].prefix",
                "the same prefix as routes[0]",
            ),
            (
                "[[routes]]\nprefix = \"/admin\"\n[[routes]]\nprefix = \"/Admin\"\npublic = true\ncase_sensitive = true\n",
                "routes[1].prefix",
                "letter case",
            ),
            (
                "public_authorities = [\"u@gw\"]\n",
                "public_authorities[0]",
                "host[:port]",
            ),
            (
                "public_authorities = [\"gw/x\"]\n",
                "public_authorities[0]",
                "host[:port]",
            ),
        ] {
            let e = load(toml).unwrap_err();
            assert_eq!(e.setting, setting, "{toml}");
            assert!(e.message.contains(says), "{toml}: {e}");
        }
        let c = load("public_authorities = [\"api.example.com\", \"127.0.0.1:8000\"]\n").unwrap();
        assert_eq!(c.public_authorities.len(), 2);
    }

    #[test]
    fn connection_limits_are_settings() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("g.toml");
        let c = GatewayConfig::load(None, &over()).unwrap();
        assert_eq!(c.connections, tessera_http::Limits::default());
        std::fs::write(
            &file,
            "header_read_timeout = \"2s\"\nkeep_alive_timeout = \"30s\"\nmax_connections = 50\nshutdown_timeout = \"0s\"\n",
        )
        .unwrap();
        let c = GatewayConfig::load(Some(&file), &over()).unwrap();
        assert_eq!(c.connections.header_read_timeout(), Duration::from_secs(2));
        assert_eq!(c.connections.keep_alive_timeout(), Duration::from_secs(30));
        assert_eq!(c.connections.max_connections(), 50);
        assert_eq!(c.connections.shutdown_timeout(), Duration::ZERO);
        for (text, setting) in [
            ("header_read_timeout = \"0s\"", "header_read_timeout"),
            ("keep_alive_timeout = \"soon\"", "keep_alive_timeout"),
            ("max_connections = 0", "max_connections"),
            ("shutdown_timeout = \"-1s\"", "shutdown_timeout"),
        ] {
            std::fs::write(&file, text).unwrap();
            let e = GatewayConfig::load(Some(&file), &over()).unwrap_err();
            assert_eq!(e.setting, setting, "{text}: {e}");
        }
    }

    #[test]
    fn authz_mode_names_its_proxy_and_takes_no_upstream() {
        let authz = || GatewayOverrides {
            mode: Some("authz".into()),
            upstream: None,
            ..over()
        };
        let load_authz = |toml: &str| {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("g.toml");
            std::fs::write(&file, toml).unwrap();
            GatewayConfig::load(Some(&file), &authz())
        };
        // The default mode is proxy.
        assert_eq!(
            GatewayConfig::load(None, &over()).unwrap().mode,
            Mode::Proxy
        );
        let c = load_authz("[authz]\nflavor = \"nginx\"\n").unwrap();
        assert_eq!(
            c.mode,
            Mode::Authz(Flavor::Nginx {
                method: axum::http::HeaderName::from_static("x-original-method"),
                uri: axum::http::HeaderName::from_static("x-original-uri"),
            })
        );
        assert_eq!(c.upstream, "");
        let c = load_authz(
            "[authz]\nflavor = \"nginx\"\nmethod_header = \"X-Auth-Method\"\nuri_header = \"X-Auth-URI\"\n",
        )
        .unwrap();
        assert_eq!(
            c.mode,
            Mode::Authz(Flavor::Nginx {
                method: axum::http::HeaderName::from_static("x-auth-method"),
                uri: axum::http::HeaderName::from_static("x-auth-uri"),
            })
        );
        assert_eq!(
            load_authz("[authz]\nflavor = \"traefik\"\n").unwrap().mode,
            Mode::Authz(Flavor::Traefik)
        );
        assert_eq!(
            load_authz("[authz]\nflavor = \"envoy\"\npath_prefix = \"/authz/v1\"\n")
                .unwrap()
                .mode,
            Mode::Authz(Flavor::Envoy {
                path_prefix: "/authz/v1".into()
            })
        );
        assert_eq!(
            load_authz("mode = \"authz\"\n[authz]\nflavor = \"envoy\"\n")
                .unwrap()
                .mode,
            Mode::Authz(Flavor::Envoy {
                path_prefix: String::new()
            })
        );
        // The file alone can set the mode.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("g.toml");
        std::fs::write(&file, "mode = \"authz\"\n[authz]\nflavor = \"traefik\"\n").unwrap();
        let mut o = over();
        o.upstream = None;
        assert_eq!(
            GatewayConfig::load(Some(&file), &o).unwrap().mode,
            Mode::Authz(Flavor::Traefik)
        );

        for (toml, setting, says) in [
            ("", "authz.flavor", "is required"),
            ("[authz]\n", "authz.flavor", "is required"),
            (
                "[authz]\nflavor = \"haproxy\"\n",
                "authz.flavor",
                "not nginx, traefik or envoy",
            ),
            (
                "[authz]\nflavor = \"nginx\"\npath_prefix = \"/a\"\n",
                "authz.path_prefix",
                "not a setting of flavor = \"nginx\"",
            ),
            (
                "[authz]\nflavor = \"traefik\"\nuri_header = \"X-Original-URI\"\n",
                "authz.uri_header",
                "not a setting",
            ),
            (
                "[authz]\nflavor = \"envoy\"\nmethod_header = \"X-M\"\n",
                "authz.method_header",
                "not a setting",
            ),
            (
                "[authz]\nflavor = \"nginx\"\nuri_header = \"X_Original_URI\"\n",
                "authz.uri_header",
                "letters, digits and -",
            ),
            (
                "[authz]\nflavor = \"nginx\"\nuri_header = \"Authorization\"\n",
                "authz.uri_header",
                "not Authorization",
            ),
            (
                "[authz]\nflavor = \"nginx\"\nmethod_header = \"X-Tessera-Subject\"\n",
                "authz.method_header",
                "X-Tessera-*",
            ),
            (
                "[authz]\nflavor = \"nginx\"\nmethod_header = \"X-Original-URI\"\n",
                "authz.uri_header",
                "must differ",
            ),
            (
                "[authz]\nflavor = \"envoy\"\npath_prefix = \"authz\"\n",
                "authz.path_prefix",
                "canonical form",
            ),
            (
                "[authz]\nflavor = \"envoy\"\npath_prefix = \"/authz/\"\n",
                "authz.path_prefix",
                "trailing",
            ),
            (
                "[authz]\nflavor = \"envoy\"\npath_prefix = \"/a/../authz\"\n",
                "authz.path_prefix",
                "canonical form",
            ),
            (
                "upstream = \"http://127.0.0.1:9000\"\n[authz]\nflavor = \"nginx\"\n",
                "upstream",
                "not used in authz mode",
            ),
            (
                "upstream_timeout = \"5s\"\n[authz]\nflavor = \"nginx\"\n",
                "upstream_timeout",
                "not used in authz mode",
            ),
            (
                "connect_timeout = \"1s\"\n[authz]\nflavor = \"nginx\"\n",
                "connect_timeout",
                "not used in authz mode",
            ),
        ] {
            let e = load_authz(toml).unwrap_err();
            assert_eq!(e.setting, setting, "{toml}: {e}");
            assert!(e.message.contains(says), "{toml}: {e}");
        }
        // --upstream on the command line is refused the same way.
        let mut o = authz();
        o.upstream = Some("http://127.0.0.1:9000".into());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("g.toml");
        std::fs::write(&file, "[authz]\nflavor = \"nginx\"\n").unwrap();
        assert_eq!(
            GatewayConfig::load(Some(&file), &o).unwrap_err().setting,
            "upstream"
        );
        // [authz] belongs to authz mode; the mode is proxy or authz.
        let e = load("[authz]\nflavor = \"nginx\"\n").unwrap_err();
        assert_eq!(e.setting, "authz", "{e}");
        let e = load("mode = \"sidecar\"\n").unwrap_err();
        assert_eq!(e.setting, "mode", "{e}");
        let mut o = over();
        o.mode = Some("Authz".into());
        assert_eq!(GatewayConfig::load(None, &o).unwrap_err().setting, "mode");
    }

    #[test]
    fn workers_default_to_the_cpus_and_are_bounded() {
        let c = GatewayConfig::load(None, &over()).unwrap();
        assert_eq!(Some(c.workers), std::thread::available_parallelism().ok());
        assert_eq!(load("workers = 3\n").unwrap().workers.get(), 3);
        for text in ["workers = 0", "workers = 1025"] {
            let e = load(text).unwrap_err();
            assert_eq!(e.setting, "workers", "{text}: {e}");
        }
    }

    #[test]
    fn the_key_set_floors_are_settings() {
        let c = GatewayConfig::load(None, &over()).unwrap();
        assert_eq!(c.jwks_floors, tessera_verify::rule::Floors::DEFAULT);
        let c =
            load("jwks_min_cache_ttl = \"2s\"\njwks_unknown_kid_cooldown = \"500ms\"\n").unwrap();
        assert_eq!(c.jwks_floors.min_cache_ttl, Duration::from_secs(2));
        assert_eq!(
            c.jwks_floors.unknown_kid_cooldown,
            Duration::from_millis(500)
        );
        for (text, setting) in [
            ("jwks_min_cache_ttl = \"soon\"", "jwks_min_cache_ttl"),
            (
                "jwks_unknown_kid_cooldown = \"-1s\"",
                "jwks_unknown_kid_cooldown",
            ),
        ] {
            assert_eq!(load(text).unwrap_err().setting, setting, "{text}");
        }
    }

    #[test]
    fn bad_settings_are_named() {
        let e = GatewayConfig::load(None, &GatewayOverrides::default()).unwrap_err();
        assert_eq!(e.setting, "upstream");
        let mut o = over();
        o.upstream = Some("https://x/y".into());
        assert_eq!(
            GatewayConfig::load(None, &o).unwrap_err().setting,
            "upstream"
        );
        let mut o = over();
        o.listen = Some("nowhere".into());
        assert_eq!(GatewayConfig::load(None, &o).unwrap_err().setting, "listen");
        let mut o = over();
        o.audience = None;
        assert_eq!(
            GatewayConfig::load(None, &o).unwrap_err().setting,
            "audience"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("g.toml");
        std::fs::write(&file, "[[routes]]\nprefix = \"nope\"\n").unwrap();
        assert_eq!(
            GatewayConfig::load(Some(&file), &over())
                .unwrap_err()
                .setting,
            "routes[0].prefix"
        );
        std::fs::write(&file, "phantom_max_in_flight = 0\n").unwrap();
        assert_eq!(
            GatewayConfig::load(Some(&file), &over())
                .unwrap_err()
                .setting,
            "phantom_max_in_flight"
        );
        std::fs::write(&file, "revocations_catch_up = \"soon\"\n").unwrap();
        assert_eq!(
            GatewayConfig::load(Some(&file), &over())
                .unwrap_err()
                .setting,
            "revocations_catch_up"
        );
        let c = GatewayConfig::load(None, &over()).unwrap();
        assert_eq!(
            (c.phantom_max_in_flight, c.revocations_catch_up),
            (64, Duration::from_secs(10))
        );
        std::fs::write(&file, "colour = 1\n").unwrap();
        assert!(GatewayConfig::load(Some(&file), &over())
            .unwrap_err()
            .message
            .contains("colour"));
    }
}
