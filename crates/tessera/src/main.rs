//! `tessera`: the token authority's command line.
//!
//! Today: the offline tools `tessera keys` and `tessera token`. The
//! authority (`serve`) and the gateway come with later issues.

mod cli;
mod cmd;
mod io;

use std::process::ExitCode;

use clap::Parser as _;

/// Exit codes of the contract.
pub(crate) mod exit {
    /// Success (token valid, lint clean).
    pub(crate) const OK: u8 = 0;
    /// The token was rejected, is not well formed, or lint found errors.
    pub(crate) const REJECTED: u8 = 1;
    /// Usage or configuration error.
    pub(crate) const USAGE: u8 = 2;
}

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
