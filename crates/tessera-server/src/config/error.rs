//! The one error of the settings, shared by every section and by `source`;
//! a leaf: it names no other module of `config`.

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
    pub(super) fn new(setting: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            message: message.into(),
        }
    }
}
