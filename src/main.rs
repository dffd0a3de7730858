//! The `rpytest` binary: parse the command line, resolve it into an
//! invocation, execute it. Everything lives in the library.
use rpytest::{cli, daemon, report, run, session, settings};

/// Runs before `main` (and before Rust's runtime replaces a closed stdout
/// with /dev/null): whether the user closed stdout (`rpytest >&-`).
extern "C" fn note_stdout_at_start() {
    session::note_stdout_at_start();
}

#[used]
#[cfg_attr(
    any(target_os = "linux", target_os = "android", target_os = "freebsd"),
    link_section = ".init_array"
)]
#[cfg_attr(target_os = "macos", link_section = "__DATA,__mod_init_func")]
static NOTE_STDOUT_AT_START: extern "C" fn() = note_stdout_at_start;

fn main() -> std::process::ExitCode {
    // The signals the command was started ignoring, before any handler of ours.
    daemon::ignored_signals();
    let code = cli::parse(&cli::argv())
        .and_then(settings::resolve)
        .map(run::execute)
        .unwrap_or_else(|failure| {
            report::error(&failure.message);
            failure.code
        });
    daemon::end_like_session(code);
    std::process::ExitCode::from(code.clamp(0, 255) as u8)
}
