//! `-n N`: one controller session, one collecting session and N forked
//! workers, scheduled from here.
//!
//! Every session is a real pytest session forked from the warm daemon (or a
//! fresh process under `--no-daemon`) with `-p no:xdist` and the rpytest
//! plugin in a role (`python/rpytest/parallel.py`):
//!
//! * the **collector** (the first worker, started with a [`process::ForkSocket`])
//!   collects the suite once and reports its collection; it is then asked to
//!   fork the N workers, which inherit every collected item and connect to
//!   the fork socket. It stays idle until the run ends, reports each fork's
//!   exit status, and forks a replacement for a worker that crashed;
//! * each **worker** asks for work and is given indexes into the collected
//!   item list, a unit at a time, longest first ([`schedule::units`]), so a
//!   worker that finishes early takes more;
//! * the **controller** owns the terminal, `--junitxml` and every reporting
//!   plugin; the workers' serialized reports are forwarded to it here.
//!
//! The controller is not the collector: a forked worker must be configured
//! as a worker (pytest's junitxml, last-failed and stepwise plugins, and
//! plugins written for xdist, decide at `pytest_configure` from
//! `config.workerinput`), and the controller's collection would also hold
//! the terminal. A collector that runs a thread cannot fork safely: it then
//! runs tests as worker `gw0` and the other workers are started as sessions
//! that collect the suite themselves, as pytest-xdist's workers do.
//!
//! A worker that dies mid-test has that test reported as a crash, and its
//! unfinished items go to a fresh worker. The controller's `stop` (from `-x`
//! or `--maxfail`) stops every worker after its current test.

mod dispatch;
mod ends;
pub mod partition;
mod process;
pub mod schedule;
pub mod shard;

use crate::daemon::{self, DaemonError};
use crate::protocol::{Event, SessionConfig};
use crate::session::Ended;
use crate::session::{argv0, Target};
use dispatch::Dispatch;
use process::{ForkSocket, Launcher, Msg};
use std::collections::HashMap;
use std::sync::mpsc::channel;

pub use crate::settings::workers::Options;

/// What a distributed run produced: the controller's end, the events the
/// cache records, and whether any worker crashed.
pub struct Outcome {
    pub ended: Ended,
    pub events: Vec<Event>,
    pub crashes: usize,
}

pub use crate::report::parallel::{Notice, Trace, WorkerTrace};

/// Runs the session distributed over `opts.workers` workers; what it has to
/// say goes to `notices`.
pub fn run(
    target: &Target,
    base: &SessionConfig,
    opts: &Options,
    durations: &HashMap<String, (String, f64)>,
    notices: &mut dyn FnMut(Notice),
) -> Result<Outcome, DaemonError> {
    let (tx, rx) = channel::<Msg>();
    let mut argv = vec!["-p".to_owned(), "no:xdist".to_owned()];
    argv.extend(target.argv.iter().cloned());
    let launcher = Launcher {
        target,
        argv,
        tx: tx.clone(),
        daemon_ready: false,
        notes: Vec::new(),
    };
    let mut env = target.session_env();
    env.insert("RPYTEST_ARGV0".into(), argv0(target.python));
    let fresh = target.daemon.is_none();
    if fresh {
        // Fresh sessions share our process group: see `children_share_our_group`.
        daemon::children_share_our_group();
    }
    // Without it the workers collect the suite each (a collector never forks).
    let fork_socket = ForkSocket::listen(tx.clone()).ok();
    let fork_path = fork_socket
        .as_ref()
        .map(|f| f.path.to_string_lossy().into_owned());
    let mut d = Dispatch::new(
        launcher, base, env, opts, durations, notices, fresh, fork_path,
    )?;
    d.start()?;
    drop(tx);
    'run: loop {
        let msg = match rx.recv_timeout(std::time::Duration::from_millis(500)) {
            Ok(msg) => msg,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                d.on_idle();
                continue;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        d.on_msg(msg)?;
        // What is already queued is handled before the controller is written
        // to: its messages leave in one batch.
        while !d.finished() {
            match rx.try_recv() {
                Ok(more) => d.on_msg(more)?,
                Err(_) => break,
            }
        }
        d.flush_controller();
        if d.finished() {
            break 'run;
        }
    }
    daemon::stop_forwarding();
    d.trace();
    drop(fork_socket);
    Ok(d.outcome())
}

/// A run's unique ID (`PYTEST_XDIST_TESTRUNUID`).
fn testrun_uid() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            ^ ((std::process::id() as u128) << 64)
    )
}

/// The failed result the cache records for a test whose worker crashed.
fn crashed_result(nodeid: String, location: serde_json::Value) -> Event {
    let file = nodeid.split("::").next().unwrap_or("").to_owned();
    Event::Result {
        nodeid,
        file,
        outcome: "failed".into(),
        duration: 0.0,
        location,
        longrepr: serde_json::Value::Null,
        wasxfail: None,
        cached: false,
        output: serde_json::Value::Null,
    }
}
