//! `[keys]`: the signing algorithms and the key lifecycle's delays
//! (docs/ARCHITECTURE.md, "Key lifecycle").

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tessera_jose::Algorithm;
use tessera_verify::rule::Floors;

use super::error::ConfigError;
use super::parse::{days, duration, human, string_or_list};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKeys {
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
    #[serde(default, deserialize_with = "duration")]
    verifier_min_cache_ttl: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    verifier_unknown_kid_cooldown: Option<Duration>,
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
    /// What every verifier is promised to keep to (`verifier_min_cache_ttl`,
    /// `verifier_unknown_kid_cooldown`; `tessera-verify`'s defaults, 60 s
    /// and 30 s): `prepublish` must cover them (checked with `[jwks]`,
    /// docs/ARCHITECTURE.md §3.5).
    pub verifier_floors: Floors,
}

/// Applies the defaults (the KEK file in `data`) and checks the section.
/// `grace` is checked by [`check_grace`] once the token lifetimes it must
/// cover are known (the `[tokens]` section asks for it).
pub(super) fn validate(raw: RawKeys, data: &Path) -> Result<KeySettings, ConfigError> {
    let algorithms = algorithms(&raw.algorithms.unwrap_or_else(|| vec!["ES256".to_owned()]))?;
    let rotation_period = raw.rotation_period.unwrap_or(days(90));
    let prepublish = raw.prepublish.unwrap_or(days(2));
    let grace = raw.grace.unwrap_or(days(10));
    let refresh_interval = raw.refresh_interval.unwrap_or(Duration::from_secs(10));
    let rsa_bits = raw.rsa_bits.unwrap_or(2048);
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
    Ok(KeySettings {
        algorithms,
        rotation_period,
        prepublish,
        grace,
        kek_file: raw.kek_file.unwrap_or_else(|| data.join("kek")),
        refresh_interval,
        rsa_bits,
        verifier_floors: Floors {
            min_cache_ttl: raw
                .verifier_min_cache_ttl
                .unwrap_or(Floors::DEFAULT.min_cache_ttl),
            unknown_kid_cooldown: raw
                .verifier_unknown_kid_cooldown
                .unwrap_or(Floors::DEFAULT.unknown_kid_cooldown),
        },
    })
}

/// A retired key stays published (`keys.grace`) at least as long as the
/// tokens it signed may still be accepted: `max_ttl` is the longest access
/// token lifetime, `leeway` the clock skew verifiers allow. The rule is
/// this section's; the `[tokens]` section calls it with its lifetimes, so
/// the dependency runs one way (tokens on keys).
pub(super) fn check_grace(
    grace: Duration,
    max_ttl: Duration,
    leeway: Duration,
) -> Result<(), ConfigError> {
    if grace < max_ttl + leeway {
        return Err(ConfigError::new(
            "keys.grace",
            format!(
                "{} is shorter than the longest token lifetime plus leeway ({} + {}): tokens signed by a retired key would stop verifying before they expire",
                human(grace),
                human(max_ttl),
                human(leeway)
            ),
        ));
    }
    Ok(())
}

/// The named algorithms, duplicates dropped, in the order given (the first
/// signs access tokens). Symmetric ones are refused: every verifier would
/// hold a secret that can mint tokens.
fn algorithms(names: &[String]) -> Result<Vec<Algorithm>, ConfigError> {
    if names.is_empty() {
        return Err(ConfigError::new(
            "keys.algorithms",
            "at least one signing algorithm is needed (ES256, ES384, ES512, EdDSA, RS256..., PS256...)",
        ));
    }
    let mut algorithms = Vec::new();
    for name in names {
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
    Ok(algorithms)
}
