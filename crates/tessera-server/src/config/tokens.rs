//! `[tokens]`: lifetimes and limits of access and refresh tokens, and what
//! a client assertion may name as its audience.

use std::time::Duration;

use serde::Deserialize;

use super::error::ConfigError;
use super::keys::{check_grace, KeySettings};
use super::parse::{days, duration, human};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTokens {
    #[serde(default, deserialize_with = "duration")]
    access_token_ttl: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    max_access_token_ttl: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    leeway: Option<Duration>,
    size_budget: Option<usize>,
    pub(super) default_audience: Option<String>,
    #[serde(default, deserialize_with = "duration")]
    refresh_token_ttl: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    refresh_idle_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    refresh_reuse_interval: Option<Duration>,
    private_key_jwt_audience: Option<String>,
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

/// Applies the defaults (the default audience is the `issuer`) and checks
/// the section, and `keys.grace` against the token lifetimes it must cover
/// (the `[keys]` rule [`check_grace`], asked here because it needs
/// these lifetimes, and right after them: the first error reported is the
/// same as when the sections were one list).
pub(super) fn validate(
    raw: RawTokens,
    keys: &KeySettings,
    issuer: &str,
) -> Result<TokenSettings, ConfigError> {
    let access_token_ttl = raw.access_token_ttl.unwrap_or(Duration::from_secs(15 * 60));
    let max_access_token_ttl = raw
        .max_access_token_ttl
        .unwrap_or(Duration::from_secs(3600));
    let leeway = raw.leeway.unwrap_or(Duration::from_secs(60));
    check_access_token_ttl(access_token_ttl, max_access_token_ttl)?;
    check_grace(keys.grace, max_access_token_ttl, leeway)?;
    let size_budget = raw
        .size_budget
        .unwrap_or(tessera_jose::lint::DEFAULT_BUDGET);
    if size_budget < 256 {
        return Err(ConfigError::new(
            "tokens.size_budget",
            "must be at least 256 bytes (an ES256 token with no claims is about 200)",
        ));
    }
    let default_audience = raw.default_audience.unwrap_or_else(|| issuer.to_owned());
    if default_audience.is_empty() {
        return Err(ConfigError::new(
            "tokens.default_audience",
            "must not be empty",
        ));
    }
    let refresh_token_ttl = raw.refresh_token_ttl.unwrap_or(days(7));
    let refresh_idle_timeout = raw.refresh_idle_timeout.unwrap_or(days(3));
    let refresh_reuse_interval = raw.refresh_reuse_interval.unwrap_or(Duration::ZERO);
    check_refresh(
        refresh_token_ttl,
        refresh_idle_timeout,
        refresh_reuse_interval,
    )?;
    let private_key_jwt_audience = assertion_audience(raw.private_key_jwt_audience.as_deref())?;
    Ok(TokenSettings {
        access_token_ttl,
        max_access_token_ttl,
        leeway,
        size_budget,
        default_audience,
        refresh_token_ttl,
        refresh_idle_timeout,
        refresh_reuse_interval,
        private_key_jwt_audience,
    })
}

fn check_access_token_ttl(ttl: Duration, max: Duration) -> Result<(), ConfigError> {
    if ttl.is_zero() || ttl > max {
        return Err(ConfigError::new(
            "tokens.access_token_ttl",
            format!(
                "{} must be above zero and at most tokens.max_access_token_ttl ({})",
                human(ttl),
                human(max)
            ),
        ));
    }
    Ok(())
}

fn check_refresh(ttl: Duration, idle: Duration, reuse: Duration) -> Result<(), ConfigError> {
    if ttl.is_zero() {
        return Err(ConfigError::new(
            "tokens.refresh_token_ttl",
            "must be longer than zero",
        ));
    }
    if idle.is_zero() || idle > ttl {
        return Err(ConfigError::new(
            "tokens.refresh_idle_timeout",
            "must be above zero and at most tokens.refresh_token_ttl",
        ));
    }
    if reuse > Duration::from_secs(10) {
        return Err(ConfigError::new(
            "tokens.refresh_reuse_interval",
            "must be at most 10s: it only absorbs a client's concurrent retries",
        ));
    }
    Ok(())
}

fn assertion_audience(name: Option<&str>) -> Result<AssertionAudience, ConfigError> {
    match name {
        None => Ok(AssertionAudience::Issuer),
        Some(name) => AssertionAudience::from_name(name).ok_or_else(|| {
            ConfigError::new(
                "tokens.private_key_jwt_audience",
                format!(
                    "{:?} is not one of \"issuer\" (the default) or \"issuer_or_token_endpoint\"",
                    name.chars().take(40).collect::<String>()
                ),
            )
        }),
    }
}
