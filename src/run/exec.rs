//! Running one pytest session: in the warm daemon, or in a fresh process.

use crate::daemon::{self, DaemonError, DaemonPaths, DaemonSpec};
use crate::protocol::{Event, SessionConfig};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Command;

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

/// Where and how to run a session.
pub struct Target<'a> {
    pub python: &'a Path,
    pub rootdir: &'a Path,
    pub cwd: &'a Path,
    pub argv: &'a [String],
    pub daemon: Option<(&'a DaemonPaths, u64, String)>,
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

/// Runs the session, handing each event to `on_event`.
pub fn run(
    target: &Target,
    session: &SessionConfig,
    on_event: impl FnMut(&Event),
) -> Result<Ended, DaemonError> {
    match &target.daemon {
        Some((paths, idle, fingerprint)) => {
            let spec = DaemonSpec {
                python: target.python,
                rootdir: target.rootdir,
                paths,
                idle_timeout: *idle,
                fingerprint: fingerprint.clone(),
            };
            let conn = daemon::ensure_daemon(&spec)?;
            let cwd = target.cwd.to_string_lossy();
            let mut env = environment();
            env.insert("RPYTEST_ARGV0".into(), argv0(target.python));
            let out = daemon::run_session(conn, target.argv, &cwd, &env, session, on_event)?;
            Ok(match (out.code, out.signal) {
                _ if out.lost => Ended::Lost,
                (Some(c), _) => Ended::Code(c),
                (None, Some(s)) => Ended::Signal(s),
                (None, None) => Ended::Lost,
            })
        }
        None => run_fresh(target, session, on_event),
    }
}

/// `--no-daemon`: a fresh `python -m rpytest.session` with the same plugin.
fn run_fresh(
    target: &Target,
    session: &SessionConfig,
    mut on_event: impl FnMut(&Event),
) -> Result<Ended, DaemonError> {
    let dir = std::env::temp_dir();
    let cfg_path: PathBuf = dir.join(format!("rpytest-session-{}.json", std::process::id()));
    std::fs::write(
        &cfg_path,
        serde_json::to_vec(session).map_err(|e| DaemonError::Protocol(e.to_string()))?,
    )?;
    let _cleanup = RemoveOnDrop(cfg_path.clone());
    let mut fds = [0i32; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(DaemonError::Io(std::io::Error::last_os_error()));
    }
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let write_raw = write_end.as_raw_fd();
    let mut cmd = Command::new(target.python);
    cmd.args(["-m", "rpytest.session"])
        .args(target.argv)
        .current_dir(target.cwd)
        .env("RPYTEST_SESSION_CONFIG", &cfg_path)
        .env("RPYTEST_EVENT_FD", "3")
        .env("RPYTEST_ARGV0", argv0(target.python));
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(write_raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    crate::daemon::ignore_interrupts(true);
    let child = cmd.spawn();
    drop(write_end);
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            crate::daemon::ignore_interrupts(false);
            return Err(DaemonError::Start(format!(
                "could not start {}: {e}",
                target.python.display()
            )));
        }
    };
    let reader = BufReader::new(std::fs::File::from(read_end));
    for line in reader.lines() {
        let Ok(line) = line else { break };
        if let Ok(ev) = serde_json::from_str::<Event>(&line) {
            on_event(&ev);
        }
    }
    let status = child.wait()?;
    crate::daemon::ignore_interrupts(false);
    Ok(match (status.code(), status.signal()) {
        (Some(c), _) => Ended::Code(c),
        (None, Some(s)) => Ended::Signal(s),
        _ => Ended::Lost,
    })
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
