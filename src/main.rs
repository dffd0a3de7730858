//! The `rpytest` binary: everything lives in the library.
fn main() -> std::process::ExitCode {
    rpytest::cli::main()
}
