//! One module per command group. Each returns the process exit code, or an
//! error for usage and configuration faults (exit 2).

mod admin;
mod clients;
mod gateway;
mod keys;
mod serve;
mod token;

use anyhow::Result;

use crate::cli::{Args, Command};

pub(crate) fn run(args: Args) -> Result<u8> {
    match args.command {
        Command::Keys(cmd) => keys::run(cmd),
        Command::Token(cmd) => token::run(cmd),
        Command::Clients(cmd) => clients::run(cmd),
        Command::Revoke(args) => keys::revoke(args),
        Command::Serve(args) => serve::run(args),
        Command::Gateway(args) => gateway::run(args),
    }
}
