//! The command line: rpytest's own options (clap) and pytest's (passed through).
//!
//! Every argument is pytest's unless it is one of the few options below. They
//! are picked out of the command line before anything else, so pytest and
//! its plugins receive the rest unchanged. None of them is a pytest option or
//! a bare word, so `rpytest daemon` still runs the tests in `daemon/`.

mod own;

pub use own::{split_args, CacheAction, DaemonAction, OwnArgs};

use crate::exit::Failure;
use clap::Parser;

/// The command line, parsed: rpytest's options and pytest's arguments.
#[derive(Debug)]
pub struct CommandLine {
    pub own: OwnArgs,
    /// What pytest receives, unchanged.
    pub pytest_argv: Vec<String>,
}

/// The process's arguments, without the program name.
pub fn argv() -> Vec<String> {
    std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// Splits the command line and parses rpytest's part (a usage error, exit 4,
/// when it does not parse).
pub fn parse(argv: &[String]) -> Result<CommandLine, Failure> {
    let (own_tokens, pytest_argv) = split_args(argv);
    let own = OwnArgs::try_parse_from(std::iter::once("rpytest".to_owned()).chain(own_tokens))
        .map_err(|e| {
            let message = e.to_string();
            Failure::usage(message.trim_end().trim_start_matches("error: "))
        })?;
    Ok(CommandLine { own, pytest_argv })
}
