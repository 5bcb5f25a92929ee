//! Where settings come from: the TOML file, then `TESSERA_<SECTION>_<KEY>`
//! environment variables, merged into one table and read into the raw
//! sections. Nothing is checked here beyond types and names; the sections
//! check their values (`validate` in each section's module).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::admin::RawAdmin;
use super::error::ConfigError;
use super::federation::RawUpstream;
use super::jwks::RawJwks;
use super::keys::RawKeys;
use super::server::RawServer;
use super::tokens::RawTokens;

/// The sections environment variables may set (`[[federation]]` is a list
/// of tables and can only come from the file).
const SECTIONS: [&str; 5] = ["server", "keys", "tokens", "jwks", "admin"];

/// The settings as written, every member optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) server: RawServer,
    #[serde(default)]
    pub(super) keys: RawKeys,
    #[serde(default)]
    pub(super) tokens: RawTokens,
    #[serde(default)]
    pub(super) jwks: RawJwks,
    #[serde(default)]
    pub(super) admin: RawAdmin,
    #[serde(default)]
    pub(super) federation: Vec<RawUpstream>,
}

/// Reads `file` (if any), applies `env` and deserialises the result.
///
/// # Errors
/// The file cannot be read or is not TOML (the error names the file), or
/// a member is unknown or of the wrong type (the error names the setting).
pub(super) fn read(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<RawConfig, ConfigError> {
    let mut table = match file {
        Some(path) => read_file(path)?,
        None => toml::Table::new(),
    };
    apply_env(&mut table, env)?;
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().message().to_owned();
        ConfigError::new(setting_of(&path), message)
    })
}

fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(path.display().to_string(), format!("cannot read: {e}")))?;
    text.parse::<toml::Table>().map_err(|e| {
        ConfigError::new(
            path.display().to_string(),
            format!("not valid TOML: {}", e.message()),
        )
    })
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
