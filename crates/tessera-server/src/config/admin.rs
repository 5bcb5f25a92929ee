//! `[admin]`: the admin token's file and how long the audit log is kept.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::error::ConfigError;
use super::parse::{days, duration};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    token_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "duration")]
    audit_retention: Option<Duration>,
}

/// The `[admin]` section, validated.
pub(super) struct Admin {
    /// Where the admin token is written on first start.
    pub(super) token_file: PathBuf,
    /// How long audit-log entries are kept.
    pub(super) audit_retention: Duration,
}

/// Applies the defaults (the token file in `data`) and checks the section.
pub(super) fn validate(raw: RawAdmin, data: &Path) -> Result<Admin, ConfigError> {
    let token_file = raw.token_file.unwrap_or_else(|| data.join("admin.token"));
    let audit_retention = raw.audit_retention.unwrap_or(days(90));
    if audit_retention < days(1) {
        return Err(ConfigError::new(
            "admin.audit_retention",
            "must be at least 1d: the audit log is what an incident review reads",
        ));
    }
    Ok(Admin {
        token_file,
        audit_retention,
    })
}
