//! Reading and writing the values several sections share: the serde
//! deserialisers of the raw sections, durations in days and as text, and
//! URL schemes. A leaf: it names no other module of `config`, so the
//! sections and `source` (which names every section's raw type) can all
//! use it without depending on each other.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::Deserialize;

/// A duration as humantime text (`"90d"`, `"15m"`) or a number of seconds.
pub(super) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
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
pub(super) fn string_or_list<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<String>>, D::Error> {
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

pub(super) fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

pub(super) fn human(d: Duration) -> impl fmt::Display {
    humantime::format_duration(d)
}

/// `url` after `https://` or `http://`, if it starts with either.
pub(super) fn without_scheme(url: &str) -> Option<&str> {
    url.strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
}
