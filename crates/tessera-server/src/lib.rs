//! Tessera's token authority: what `tessera serve` runs.
//!
//! It signs short-lived RFC 9068 access tokens with asymmetric keys that
//! rotate on a schedule, publishes them as a JWKS with discovery metadata,
//! registers clients and serves the `client_credentials` grant. State lives
//! in SQLite (default) or PostgreSQL; private keys are sealed with
//! AES-256-GCM under a key-encryption key.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = tessera_server::Config::defaults()?;
//! let running = tessera_server::start(config, tessera_server::StartOptions::default()).await?;
//! println!("listening on {}", running.addr);
//! running.wait().await?;
//! # Ok(()) }
//! ```

pub mod clients;
pub mod clock;
pub mod config;
pub mod http;
pub mod jwtcache;
pub mod kek;
pub mod lifecycle;
pub mod server;
pub mod store;
pub mod telemetry;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Config, ConfigError, Overrides};
pub use server::{start, AppState, Running, StartError, StartOptions};

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
