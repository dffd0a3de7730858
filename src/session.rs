//! Running one pytest session: in the warm daemon, or in a fresh process.
//! The run, the parallel dispatcher and verify all start sessions through here.

use crate::daemon::{self, DaemonError, DaemonPaths, DaemonSpec};
use crate::protocol::{Event, SessionConfig};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};

/// The environments of a hermetic session: its daemon's (fixed) and its own
/// (fixed, pytest's configuration and the rules' declared `env`).
pub struct Environments {
    pub daemon: BTreeMap<String, String>,
    pub session: BTreeMap<String, String>,
}

/// How the session ended.
#[derive(Debug)]
pub enum Ended {
    /// pytest's exit code.
    Code(i32),
    /// The session was killed by a signal.
    Signal(i32),
    /// The daemon went away before the session's end was reported.
    Lost,
}

impl Ended {
    /// From the daemon's `exit` message.
    pub fn from_exit(code: Option<i32>, signal: Option<i32>) -> Ended {
        match (code, signal) {
            (Some(c), _) => Ended::Code(c),
            (None, Some(s)) => Ended::Signal(s),
            (None, None) => Ended::Lost,
        }
    }

    /// From a fresh process's exit status.
    pub fn from_status(status: std::io::Result<ExitStatus>) -> Ended {
        match status {
            Ok(s) => Ended::from_exit(s.code(), s.signal()),
            Err(_) => Ended::Lost,
        }
    }
}

/// Where and how to run a session.
pub struct Target<'a> {
    pub python: &'a Path,
    pub rootdir: &'a Path,
    pub cwd: &'a Path,
    pub argv: &'a [String],
    pub daemon: Option<(&'a DaemonPaths, u64, String)>,
    /// Hermetic sessions: their daemon's and their own environment.
    pub hermetic: Option<&'a Environments>,
}

impl Target<'_> {
    /// The daemon to run in (None: `--no-daemon`).
    pub fn daemon_spec(&self) -> Option<DaemonSpec<'_>> {
        self.daemon
            .as_ref()
            .map(|(paths, idle, fingerprint)| DaemonSpec {
                python: self.python,
                rootdir: self.rootdir,
                paths,
                idle_timeout: *idle,
                fingerprint: fingerprint.clone(),
                env: self.hermetic.map(|h| h.daemon.clone()),
            })
    }

    /// The environment the session is given: ours, or a hermetic session's.
    pub fn session_env(&self) -> BTreeMap<String, String> {
        match self.hermetic {
            Some(h) => h.session.clone(),
            None => environment(),
        }
    }
}

pub(crate) fn environment() -> BTreeMap<String, String> {
    std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect()
}

/// What `sys.argv[0]` is under stock `pytest`: the script beside the interpreter.
pub fn argv0(python: &Path) -> String {
    let script = python.parent().map(|d| d.join("pytest"));
    match script {
        Some(s) if s.exists() => s.display().to_string(),
        _ => "pytest".to_owned(),
    }
}

/// Whether fd 1 was closed when the process started, noted by the binary
/// before Rust's runtime opens /dev/null on it (`note_stdout_at_start`).
static STDOUT_CLOSED_AT_START: AtomicBool = AtomicBool::new(false);

/// Notes whether fd 1 is open. The binary calls it from `.init_array`,
/// before `main`: Rust's runtime then replaces a closed fd 1 with
/// /dev/null opened read-write, which looks exactly like a stdout that was
/// /dev/null from the start (`subprocess.DEVNULL` opens it read-write too).
pub fn note_stdout_at_start() {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    let closed = unsafe { libc::fcntl(1, libc::F_GETFD) } == -1;
    STDOUT_CLOSED_AT_START.store(closed, Ordering::Relaxed);
}

/// Whether the CLI was started with stdout closed (`rpytest >&-`). The
/// session must then see what pytest's process would: no stdout (and pytest
/// fails with exit 1). A stdout on /dev/null is an open stdout.
pub fn stdout_was_closed() -> bool {
    STDOUT_CLOSED_AT_START.load(Ordering::Relaxed)
}

/// A pipe whose ends are closed on exec (read end, write end).
pub(crate) fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Runs the session, handing each event to `on_event`.
pub fn run(
    target: &Target,
    session: &SessionConfig,
    mut on_event: impl FnMut(&Event),
) -> Result<Ended, DaemonError> {
    let on_event = |e: &Event| match e {
        Event::CachedReplayed { ranges } => on_event(&replayed_nodes(session, ranges)),
        _ => on_event(e),
    };
    run_raw(target, session, on_event)
}

/// The replayed nodes a `CachedReplayed` event names by their positions in
/// the session's `cached` list, as the `CachedResults` event that lists them
/// (positions outside the list name nothing).
fn replayed_nodes(session: &SessionConfig, ranges: &[(usize, usize)]) -> Event {
    let cached = &session.cached;
    let mut nodes = Vec::with_capacity(ranges.iter().map(|(s, e)| e.saturating_sub(*s)).sum());
    for &(start, end) in ranges {
        let end = end.min(cached.len());
        if start < end {
            nodes.extend(cached[start..end].iter().map(|c| {
                (
                    c.nodeid.clone(),
                    c.file.clone(),
                    c.outcome.clone(),
                    c.duration,
                )
            }));
        }
    }
    Event::CachedResults { nodes }
}

fn run_raw(
    target: &Target,
    session: &SessionConfig,
    mut on_event: impl FnMut(&Event),
) -> Result<Ended, DaemonError> {
    match target.daemon_spec() {
        Some(spec) => {
            let conn = daemon::ensure_daemon(&spec)?;
            for n in daemon::take_notes() {
                crate::report::warning(&n);
            }
            let cwd = target.cwd.to_string_lossy();
            let mut env = target.session_env();
            env.insert("RPYTEST_ARGV0".into(), argv0(target.python));
            if stdout_was_closed() {
                env.insert("RPYTEST_STDOUT_CLOSED".into(), "1".into());
            }
            let out = daemon::run_session(conn, target.argv, &cwd, &env, session, on_event)?;
            Ok(match out.lost {
                true => Ended::Lost,
                false => Ended::from_exit(out.code, out.signal),
            })
        }
        None => {
            // `--no-daemon`: a fresh `python -m rpytest.session` with the same plugin.
            let fresh = FreshSession::new(target, target.argv, session, None, stdout_was_closed())?;
            // On a terminal the child is in our process group and takes a
            // terminal's Ctrl-C itself, as pytest would; what is sent to us
            // alone is forwarded (`children_share_our_group`).
            crate::daemon::children_share_our_group();
            let (mut child, events) = match fresh.spawn(target) {
                Ok(s) => s,
                Err(e) => {
                    crate::daemon::stop_forwarding();
                    return Err(e);
                }
            };
            crate::daemon::add_forwarding(child.id() as i32);
            let reader = BufReader::new(std::fs::File::from(events));
            for line in reader.lines() {
                let Ok(line) = line else { break };
                if let Ok(ev) = serde_json::from_str::<Event>(&line) {
                    on_event(&ev);
                }
            }
            let ended = Ended::from_status(child.wait());
            crate::daemon::stop_forwarding();
            Ok(ended)
        }
    }
}

/// A fresh `python -m rpytest.session` process, ready to start: its command
/// (events on fd 3, the control pipe on fd 4 when given, its session config
/// on fd 5, no fd 1 with `close_stdout`) and the pipes it inherits.
///
/// The config travels through an inherited pipe, never a file: a file in a
/// shared temp directory can be guessed, pre-created or swapped by another
/// local user before Python reads it.
pub(crate) struct FreshSession {
    pub cmd: Command,
    events: OwnedFd,
    events_w: OwnedFd,
    config_r: OwnedFd,
    config_w: OwnedFd,
    config: Vec<u8>,
}

impl FreshSession {
    pub fn new(
        target: &Target,
        argv: &[String],
        session: &SessionConfig,
        control: Option<RawFd>,
        close_stdout: bool,
    ) -> Result<FreshSession, DaemonError> {
        let config =
            serde_json::to_vec(session).map_err(|e| DaemonError::Protocol(e.to_string()))?;
        let (config_r, config_w) = pipe()?;
        let (events, events_w) = pipe()?;
        let ev = events_w.as_raw_fd();
        let cfg = config_r.as_raw_fd();
        let parent = std::process::id() as libc::pid_t;
        let shared = crate::daemon::fresh_sessions_share_our_group();
        let mut cmd = Command::new(target.python);
        if let Some(h) = target.hermetic {
            cmd.env_clear().envs(&h.session);
        }
        cmd.args(["-m", "rpytest.session"])
            .args(argv)
            .current_dir(target.cwd)
            .env("RPYTEST_SESSION_CONFIG_FD", "5")
            .env("RPYTEST_EVENT_FD", "3")
            .env("RPYTEST_ARGV0", argv0(target.python));
        if control.is_some() {
            cmd.env("RPYTEST_CONTROL_FD", "4");
        }
        crate::daemon::native::apply(&mut cmd);
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(ev, 3) < 0
                    || control.is_some_and(|c| libc::dup2(c, 4) < 0)
                    || libc::dup2(cfg, 5) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                if close_stdout {
                    libc::close(1);
                }
                crate::daemon::own_group_unless_shared(shared)?;
                crate::daemon::die_with_parent(parent)
            });
        }
        Ok(FreshSession {
            cmd,
            events,
            events_w,
            config_r,
            config_w,
            config,
        })
    }

    /// Starts it: the child and the read end of its events. Its config is
    /// written by a thread (a pipe holds only 64 KiB; the child reads as we write).
    pub fn spawn(mut self, target: &Target) -> Result<(Child, OwnedFd), DaemonError> {
        let child = self.cmd.spawn().map_err(|e| {
            DaemonError::Start(format!("could not start {}: {e}", target.python.display()))
        })?;
        drop(self.events_w);
        drop(self.config_r);
        let config = std::mem::take(&mut self.config);
        let mut w = std::fs::File::from(self.config_w);
        std::thread::spawn(move || {
            use std::io::Write;
            // A child that died before reading gives EPIPE: nothing to do.
            let _ = w.write_all(&config);
        });
        Ok((child, self.events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{CachedNode, StoredJson};

    fn node(id: &str, outcome: &str, duration: f64) -> CachedNode {
        CachedNode {
            nodeid: id.into(),
            file: id.split("::").next().unwrap().into(),
            outcome: outcome.into(),
            duration,
            location: StoredJson::default(),
            longrepr: StoredJson::default(),
            wasxfail: None,
            output: StoredJson::default(),
        }
    }

    #[test]
    fn replayed_positions_name_the_nodes_sent() {
        let session = SessionConfig {
            cached: vec![
                node("t/a.py::x", "passed", 0.5),
                node("t/a.py::y", "skipped", 0.0),
                node("t/b.py::z", "xfailed", 1.5),
            ],
            ..SessionConfig::default()
        };
        // In the order replayed; empty and out-of-range runs name nothing.
        let Event::CachedResults { nodes } =
            replayed_nodes(&session, &[(2, 3), (0, 2), (1, 1), (3, 9)])
        else {
            panic!("not CachedResults");
        };
        let got: Vec<(&str, &str, &str, f64)> = nodes
            .iter()
            .map(|(n, f, o, d)| (n.as_str(), f.as_str(), o.as_str(), *d))
            .collect();
        assert_eq!(
            got,
            vec![
                ("t/b.py::z", "t/b.py", "xfailed", 1.5),
                ("t/a.py::x", "t/a.py", "passed", 0.5),
                ("t/a.py::y", "t/a.py", "skipped", 0.0),
            ]
        );
    }
}
