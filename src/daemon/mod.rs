//! Finding, starting, stopping and talking to the warm daemon.
mod client;
pub mod native;
mod paths;
mod spawn;
mod unix;

pub use crate::inputs::installed::distribution_names;
pub use client::{
    ping, run_session, start_run, stop, take_notes, Connection, DaemonError, SessionOutcome,
};
pub use paths::DaemonPaths;
pub use spawn::{ensure_daemon, fingerprint, fingerprint_with_env, site_listing, tail, DaemonSpec};
pub use unix::{
    add_forwarding, children_share_our_group, die_with_parent, end_like_session, ignored_signals,
    note_session_signal, process_limits, process_umask, remove_forwarding, stop_forwarding,
};
