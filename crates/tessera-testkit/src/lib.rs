//! One harness for the tests that need a real, in-process `tessera serve`
//! on a free loopback port: [`TestServer`], started on each of [`backends`]
//! (SQLite, and PostgreSQL when `TESSERA_TEST_DATABASE_URL` is set), either
//! with the fixed [`ISSUER`] and a manual clock (the server's own HTTP
//! tests) or as a deployment runs, with the system clock and its base URL
//! as issuer (the verifier following its keys and deny-list, the gateway in
//! front of it).
//!
//! A [`TcpProxy`] in front of a backend's PostgreSQL lets a test cut the
//! database away from a server and give it back
//! ([`Backend::behind_proxy`]).
//!
//! [`eventually`] waits for an outcome that must come, for [`PATIENCE`],
//! instead of asserting how soon it comes.
//!
//! Test support: a failure panics, which is what a test wants.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod backend;
mod proxy;
mod server;
mod wait;

pub use backend::{backends, Backend};
pub use proxy::TcpProxy;
pub use server::{
    config, config_file, count_rows, oauth_error, verify, TestServer, ISSUER, METRICS, T0,
};
pub use wait::{eventually, PATIENCE};
