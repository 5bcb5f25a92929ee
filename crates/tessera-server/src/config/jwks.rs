//! `[jwks]`: how long verifiers may cache the published key set.

use std::time::Duration;

use serde::Deserialize;

use super::error::ConfigError;
use super::keys::KeySettings;
use super::parse::{duration, human};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJwks {
    #[serde(default, deserialize_with = "duration")]
    max_age: Option<Duration>,
}

/// The `Cache-Control: max-age` of the JWKS and discovery documents: at
/// most half of `keys.prepublish`, so every verifier's cached key set holds
/// the next key before it starts signing.
pub(super) fn validate(raw: RawJwks, keys: &KeySettings) -> Result<Duration, ConfigError> {
    let prepublish = keys.prepublish;
    let max_age = raw
        .max_age
        .unwrap_or_else(|| Duration::from_secs(300).min(prepublish / 2));
    if max_age > prepublish / 2 {
        return Err(ConfigError::new(
            "jwks.max_age",
            format!(
                "{} is over half of keys.prepublish ({}): a verifier could still hold a key set without the next key when it starts signing",
                human(max_age),
                human(prepublish)
            ),
        ));
    }
    Ok(max_age)
}
