//! `[jwks]`: how long verifiers may cache the published key set, held to
//! the prepublish rule of `tessera_verify::rule` together with
//! `keys.prepublish` (docs/ARCHITECTURE.md §3.5).

use std::time::Duration;

use serde::Deserialize;
use tessera_verify::rule;

use super::error::ConfigError;
use super::keys::KeySettings;
use super::parse::{duration, human};

/// The `max-age` served when the setting is absent, if the rule allows it.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJwks {
    #[serde(default, deserialize_with = "duration")]
    max_age: Option<Duration>,
}

/// The `Cache-Control: max-age` of the JWKS and discovery documents (by
/// default the largest up to 5 minutes that the rule allows). The rule is
/// the verifier's own (`rule::min_prepublish`), with the floors the
/// operator promises in `[keys]` and `keys.refresh_interval` as the time a
/// new key takes to reach every node: a key signs only once every verifier
/// with those floors holds it.
pub(super) fn validate(raw: RawJwks, keys: &KeySettings) -> Result<Duration, ConfigError> {
    let floors = &keys.verifier_floors;
    let propagation = keys.refresh_interval;
    let largest = rule::max_age_for(keys.prepublish, propagation, floors, DEFAULT_MAX_AGE);
    let max_age = match (raw.max_age, largest) {
        (Some(set), _) => set,
        (None, Some(derived)) => derived,
        (None, None) => return Err(too_short("keys.prepublish", keys, Duration::ZERO)),
    };
    if keys.prepublish < rule::min_prepublish(max_age, propagation, floors) {
        // A max_age that some shorter one would fix is at fault; else the
        // prepublish is too short for the floors whatever max_age says.
        let setting = if largest.is_some() {
            "jwks.max_age"
        } else {
            "keys.prepublish"
        };
        return Err(too_short(setting, keys, max_age));
    }
    Ok(max_age)
}

/// The refusal: both sides of the rule, with their values and the minimum.
fn too_short(setting: &str, keys: &KeySettings, max_age: Duration) -> ConfigError {
    let floors = &keys.verifier_floors;
    let minimum = rule::min_prepublish(max_age, keys.refresh_interval, floors);
    ConfigError::new(
        setting,
        format!(
            "keys.prepublish ({}) must be at least {} = keys.refresh_interval ({}) + jwks.max_age ({}) \
             + max(jwks.max_age, keys.verifier_min_cache_ttl ({}), keys.verifier_unknown_kid_cooldown ({})) \
             (docs/ARCHITECTURE.md §3.5): a verifier could still hold a key set without the next key when it starts signing. \
             Lengthen keys.prepublish, shorten jwks.max_age, or promise smaller verifier floors and configure every verifier with them",
            human(keys.prepublish),
            human(minimum),
            human(keys.refresh_interval),
            human(max_age),
            human(floors.min_cache_ttl),
            human(floors.unknown_kid_cooldown),
        ),
    )
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError, Overrides};

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        Config::load(None, env, &Overrides::default())
    }

    /// Compressed time: 1 s refresh, floors of 2 s and 1 s, max-age 3 s:
    /// the minimum prepublish is 1 + 3 + max(3, 2, 1) = 7 s.
    const COMPRESSED: [(&str, &str); 5] = [
        ("TESSERA_KEYS_REFRESH_INTERVAL", "1s"),
        ("TESSERA_KEYS_VERIFIER_MIN_CACHE_TTL", "2s"),
        ("TESSERA_KEYS_VERIFIER_UNKNOWN_KID_COOLDOWN", "1s"),
        ("TESSERA_JWKS_MAX_AGE", "3s"),
        ("TESSERA_KEYS_ROTATION_PERIOD", "1m"),
    ];

    fn compressed(prepublish: &str) -> Result<Config, ConfigError> {
        let mut pairs = COMPRESSED.to_vec();
        pairs.push(("TESSERA_KEYS_PREPUBLISH", prepublish));
        load(&pairs)
    }

    #[test]
    fn a_prepublish_at_the_rule_s_minimum_is_accepted() {
        let c = compressed("7s").unwrap();
        assert_eq!(c.jwks_max_age, std::time::Duration::from_secs(3));
        assert_eq!(
            c.keys.verifier_floors.min_cache_ttl,
            std::time::Duration::from_secs(2)
        );
    }

    #[test]
    fn a_prepublish_under_the_minimum_names_both_sides_and_the_minimum() {
        let e = compressed("6999ms").unwrap_err();
        assert_eq!(e.setting, "jwks.max_age", "{e}");
        for says in [
            "keys.prepublish (6s 999ms)",
            "at least 7s",
            "keys.refresh_interval (1s)",
            "keys.verifier_min_cache_ttl (2s)",
            "keys.verifier_unknown_kid_cooldown (1s)",
            "§3.5",
        ] {
            assert!(e.message.contains(says), "{says:?} in {e}");
        }
    }

    #[test]
    fn the_default_floors_refuse_a_prepublish_shorter_than_they_are() {
        // 30 s of prepublish with tessera-verify's own floors (60 s): no
        // max-age fits; the prepublish is named, with the minimum at
        // max-age 0: 10 s of refresh + 60 s.
        let e = load(&[("TESSERA_KEYS_PREPUBLISH", "30s")]).unwrap_err();
        assert_eq!(e.setting, "keys.prepublish", "{e}");
        assert!(e.message.contains("at least 1m 10s"), "{e}");
        assert!(
            e.message.contains("keys.verifier_min_cache_ttl (1m)"),
            "{e}"
        );
        // Smaller promised floors make the same prepublish valid.
        let c = load(&[
            ("TESSERA_KEYS_PREPUBLISH", "30s"),
            ("TESSERA_KEYS_VERIFIER_MIN_CACHE_TTL", "5s"),
            ("TESSERA_KEYS_VERIFIER_UNKNOWN_KID_COOLDOWN", "5s"),
        ])
        .unwrap();
        // The default max-age is the largest the rule allows: (30 - 10) / 2.
        assert_eq!(c.jwks_max_age, std::time::Duration::from_secs(10));
    }

    #[test]
    fn a_cooldown_longer_than_the_cache_floor_counts() {
        let mut pairs = COMPRESSED.to_vec();
        pairs[2] = ("TESSERA_KEYS_VERIFIER_UNKNOWN_KID_COOLDOWN", "5s");
        pairs.push(("TESSERA_KEYS_PREPUBLISH", "8s"));
        // 1 + 3 + max(3, 2, 5) = 9 s.
        let e = load(&pairs).unwrap_err();
        assert!(e.message.contains("at least 9s"), "{e}");
        pairs.pop();
        pairs.push(("TESSERA_KEYS_PREPUBLISH", "9s"));
        load(&pairs).unwrap();
    }
}
