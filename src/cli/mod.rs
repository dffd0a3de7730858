//! The command line: rpytest's own options (clap) and pytest's (passed through).
//!
//! Every argument is pytest's unless it is one of the few options below. They
//! are picked out of the command line before anything else, so pytest and
//! its plugins receive the rest unchanged. None of them is a pytest option or
//! a bare word, so `rpytest daemon` still runs the tests in `daemon/`.

mod own;
mod run;

pub use own::{split_args, CacheAction, DaemonAction, OwnArgs};

use std::process::ExitCode;

/// The entry point of the binary.
pub fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let code = run::run(argv);
    ExitCode::from(code.clamp(0, 255) as u8)
}
