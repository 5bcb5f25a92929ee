//! Tessera's token authority: what `tessera serve` runs.
//!
//! It signs short-lived RFC 9068 access tokens with asymmetric keys that
//! rotate on a schedule, publishes them as a JWKS with discovery metadata,
//! registers clients, serves the client-credentials, JWT-bearer,
//! refresh-token and token-exchange grants, and revokes, introspects and
//! publishes a deny-list feed. State lives in SQLite (default) or
//! PostgreSQL; private keys are sealed with AES-256-GCM under a
//! key-encryption key.
//!
//! Inside, `http/` adapts requests, `authority/` holds the rules, `store/`
//! keeps the data (see `docs/ARCHITECTURE.md`). The public API is what
//! `tessera serve` and the tests need: [`start`], [`Running`], [`Config`]
//! and the clocks; tests reach the store through `test_util` (feature
//! `test-util`).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = tessera_server::Config::defaults()?;
//! let running = tessera_server::start(config, tessera_server::StartOptions::default()).await?;
//! println!("listening on {}", running.addr);
//! running.wait().await?;
//! # Ok(()) }
//! ```

mod authority;
mod clients;
mod clock;
mod config;
mod http;
// `pub` items here are re-exported by `test_util` for tests only.
#[cfg_attr(not(feature = "test-util"), allow(unreachable_pub))]
mod kek;
mod lifecycle;
mod server;
// `pub` items here are re-exported by `test_util` for tests only.
#[cfg_attr(not(feature = "test-util"), allow(unreachable_pub))]
mod store;
mod telemetry;
mod vocabulary;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Config, ConfigError, Overrides};
pub use server::{start, Running, StartError, StartOptions};

/// What only tests reach: the storage, the key-encryption key and key
/// states, to arrange and inspect what the HTTP surface cannot.
#[cfg(feature = "test-util")]
pub mod test_util {
    pub use crate::kek::Kek;
    pub use crate::store::*;
}

/// What the fuzz targets (`fuzz/`) call: thin entry points into the
/// parsers of what reaches the token endpoint from the network. Not an API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use axum::http::HeaderValue;
    use zeroize::Zeroizing;

    /// The token endpoint's form as its handlers read it: the parameters,
    /// sorted, or the refusal's description.
    ///
    /// # Errors
    /// The `invalid_request` description (a repeated parameter).
    pub fn token_form(body: &[u8]) -> Result<Vec<(String, String)>, String> {
        let params =
            crate::http::extract::form_params(body).map_err(|e| e.description().to_owned())?;
        let mut pairs: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        pairs.sort_unstable();
        Ok(pairs)
    }

    /// The client id and secret of an `Authorization` header value, as the
    /// token endpoint reads them; `None` when it is not usable Basic
    /// credentials (or not a valid header value at all).
    pub fn basic_header(value: &[u8]) -> Option<(String, Zeroizing<String>)> {
        let value = HeaderValue::from_bytes(value).ok()?;
        crate::http::extract::basic_credentials(&value)
    }
}

/// `bytes` random bytes from the system generator, base64url.
pub(crate) fn random_id(bytes: usize) -> String {
    use aws_lc_rs::rand::SecureRandom as _;
    let mut buf = vec![0u8; bytes];
    // The system generator does not fail on supported platforms; if it
    // ever did, an all-zero id would be unsafe, so stop.
    #[allow(clippy::expect_used)]
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut buf)
        .expect("system random generator failed");
    tessera_jose::b64::encode(&buf)
}
