//! Finding, starting, stopping and talking to the warm daemon.
mod client;
mod paths;
mod spawn;
mod unix;

pub use client::{ping, run_session, stop, Connection, DaemonError, SessionOutcome};
pub use paths::DaemonPaths;
pub use spawn::{ensure_daemon, fingerprint, site_listing, tail, DaemonSpec};
pub use unix::ignore_interrupts;
