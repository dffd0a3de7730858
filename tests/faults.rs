//! Faults, signals and local security (issue 12): what happens when the
//! session, the store, the daemon or the remote cache meet a stopped or
//! killed process, a held lock, damaged bytes, a hostile neighbour or a name
//! that is not UTF-8. Real binary, real daemon, real pytest, real SQLite;
//! tests wait for events (a line, a file, a pid), never for a fixed time.

mod common;

use common::{parse_pid, process_alive, Project};
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Polls `cond` every 20 ms until it holds; panics with `what` after `limit`
/// (a bound against hangs, not a timing assertion).
fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A child process that is killed (and reaped) when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------------------
// 1. A forked session ends the way a Python process ends.

#[test]
fn a_session_waits_for_its_non_daemon_threads_like_python() {
    let mut project = Project::new("fault_thread");
    let mark = project.out_path("thread-mark");
    project.set_env("THREAD_MARK_FILE", &mark.display().to_string());
    // Stock pytest waits for the thread at exit.
    project.pytest(&[]).run().assert_code(0);
    assert!(mark.exists(), "stock pytest did not wait for the thread");
    fs::remove_file(&mark).unwrap();
    // So does the daemon's forked session, before it reports its end.
    project.rpytest(&["--no-cache"]).run().assert_code(0);
    assert!(mark.exists(), "the forked session killed its worker thread");
    fs::remove_file(&mark).unwrap();
    project.rpytest(&["--no-cache", "--no-daemon"]).run().assert_code(0);
    assert!(mark.exists(), "the fresh session killed its worker thread");
}
