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
    add_forwarding, children_share_our_group, die_with_parent, end_like_session, ends_by_signal,
    fresh_sessions_share_our_group, ignored_signals, note_session_signal, own_group_unless_shared,
    process_limits, process_umask, remove_forwarding, sessions_signalled, stop_forwarding,
};
