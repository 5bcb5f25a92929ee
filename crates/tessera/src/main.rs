//! `tessera`: the token authority's command line.
//!
//! The offline tools `tessera keys generate | public` and `tessera token`,
//! the authority `tessera serve`, the clients of its admin API (`tessera
//! clients ...`, `tessera keys list | rotate | compromised`, `tessera
//! revoke`), and the verifying gateway `tessera gateway`.

mod cli;
mod cmd;
mod io;

use std::process::ExitCode;

use clap::Parser as _;

/// Exit codes of the contract.
pub(crate) mod exit {
    /// Success (token valid, lint clean).
    pub(crate) const OK: u8 = 0;
    /// The token was rejected, is not well formed, or lint found errors; or
    /// the server refused an admin request (4xx).
    pub(crate) const REJECTED: u8 = 1;
    /// Usage or configuration error (also: the admin token cannot be read,
    /// the server cannot be reached or failed).
    pub(crate) const USAGE: u8 = 2;
}

/// mimalloc rather than glibc's malloc: the gateway's proxy path makes a
/// few small allocations per request, and glibc's spent about 6% of the
/// gateway's CPU on them (bench/README.md, issue 13).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    match cmd::run(args) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if io::is_broken_pipe(&err) {
                return ExitCode::from(exit::OK);
            }
            eprintln!("tessera: {err:#}");
            ExitCode::from(exit::USAGE)
        }
    }
}
