//! The `rpytest` binary: parse the command line, resolve it into an
//! invocation, execute it. Everything lives in the library.
use rpytest::{cli, report, run, settings};

fn main() -> std::process::ExitCode {
    let code = cli::parse(&cli::argv())
        .and_then(settings::resolve)
        .map(run::execute)
        .unwrap_or_else(|failure| {
            report::error(&failure.message);
            failure.code
        });
    std::process::ExitCode::from(code.clamp(0, 255) as u8)
}
