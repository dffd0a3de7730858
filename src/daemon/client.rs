//! Talking to a running daemon: ping, stop, and one session run.

use super::unix::{forward_signals_to, send_with_fds, stop_forwarding, wait_readable};
use crate::protocol::{Event, Pong, Request, SessionConfig, PROTOCOL_VERSION};
use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// What went wrong between the CLI and the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("no daemon is listening on {0}")]
    NotRunning(String),
    #[error("the daemon did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the daemon's answer was not understood: {0}")]
    Protocol(String),
    #[error("talking to the daemon failed: {0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Start(String),
    /// It accepts connections but does not answer (stopped with SIGSTOP,
    /// or hung): it is replaced, never waited for again.
    #[error("the daemon (pid {pid}) {why}")]
    Unresponsive { pid: i32, why: String },
}

/// How long a daemon may take to answer a ping.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// The pid of the process that listens on `stream`'s other end (SO_PEERCRED
/// names the listener even when it is stopped), if it is of our uid.
fn peer_pid(stream: &UnixStream) -> Option<i32> {
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut libc::ucred as *mut libc::c_void,
            &mut len,
        )
    };
    (rc == 0 && cred.pid > 0 && cred.uid == unsafe { libc::getuid() }).then_some(cred.pid)
}

/// The scheduler state of `pid` from /proc (`R`, `S`, `T` stopped, `Z`...).
pub fn process_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Whether `pid` still exists (a zombie does not count).
pub fn alive(pid: i32) -> bool {
    let exists = unsafe { libc::kill(pid, 0) } == 0;
    exists && process_state(pid) != Some('Z')
}

/// Ends an unresponsive daemon: SIGKILL (a stopped process cannot act on
/// SIGTERM), then waits until it is gone. Its sessions die with it
/// (PR_SET_PDEATHSIG); the next daemon's bind removes its socket.
pub fn kill_unresponsive(pid: i32) {
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while alive(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Warnings about the daemon for the user (a replaced daemon), taken by the
/// CLI; this module never prints.
static NOTES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Adds a warning for the user.
pub fn note(msg: String) {
    NOTES.lock().unwrap_or_else(|e| e.into_inner()).push(msg);
}

/// The warnings noted since the last call.
pub fn take_notes() -> Vec<String> {
    std::mem::take(&mut *NOTES.lock().unwrap_or_else(|e| e.into_inner()))
}

/// One connection to the daemon.
pub struct Connection {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Connection {
    /// Connects to the socket.
    pub fn connect(socket: &Path) -> Result<Connection, DaemonError> {
        let stream = UnixStream::connect(socket)
            .map_err(|_| DaemonError::NotRunning(socket.display().to_string()))?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Connection {
            writer: stream,
            reader,
        })
    }

    fn send(&mut self, req: &Request) -> Result<(), DaemonError> {
        let mut line = serde_json::to_vec(req).map_err(|e| DaemonError::Protocol(e.to_string()))?;
        line.push(b'\n');
        self.writer.write_all(&line)?;
        Ok(())
    }

    fn read_line(&mut self, timeout: Option<Duration>) -> Result<Option<String>, DaemonError> {
        if let Some(t) = timeout {
            if self.reader.buffer().is_empty()
                && !wait_readable(self.reader.get_ref().as_raw_fd(), t.as_millis() as i32)?
            {
                return Err(DaemonError::Timeout(t));
            }
        }
        let mut line = String::new();
        match self.reader.read_line(&mut line)? {
            0 => Ok(None),
            _ => Ok(Some(line)),
        }
    }

    /// Asks the daemon who it is.
    pub fn ping(&mut self) -> Result<Pong, DaemonError> {
        self.send(&Request::Ping)?;
        let line = self
            .read_line(Some(PING_TIMEOUT))?
            .ok_or_else(|| DaemonError::Protocol("connection closed before pong".into()))?;
        serde_json::from_str(&line).map_err(|e| DaemonError::Protocol(format!("{e}: {line}")))
    }

    /// Asks the daemon to exit.
    pub fn stop(mut self) -> Result<(), DaemonError> {
        self.send(&Request::Stop)?;
        let _ = self.read_line(Some(Duration::from_secs(5)));
        Ok(())
    }
}

/// Pings the daemon at `socket`, if any. A daemon that is stopped (seen at
/// once in /proc) or does not answer in time is `Unresponsive`.
pub fn ping(socket: &Path) -> Result<(Connection, Pong), DaemonError> {
    let mut c = Connection::connect(socket)?;
    let pid = peer_pid(&c.writer);
    if let Some(pid) = pid.filter(|p| matches!(process_state(*p), Some('T' | 't'))) {
        return Err(DaemonError::Unresponsive {
            pid,
            why: "is stopped (SIGSTOP) and cannot answer".into(),
        });
    }
    match c.ping() {
        Ok(pong) => Ok((c, pong)),
        Err(DaemonError::Timeout(t)) => match pid {
            Some(pid) => Err(DaemonError::Unresponsive {
                pid,
                why: format!("did not answer within {t:?}"),
            }),
            None => Err(DaemonError::Timeout(t)),
        },
        Err(e) => Err(e),
    }
}

/// Stops the daemon at `socket` and waits until it is gone (an unresponsive
/// one is killed).
pub fn stop(socket: &Path) -> Result<bool, DaemonError> {
    let (c, pong) = match ping(socket) {
        Ok(found) => found,
        Err(DaemonError::Unresponsive { pid, .. }) => {
            kill_unresponsive(pid);
            return Ok(true);
        }
        Err(_) => return Ok(false),
    };
    c.stop()?;
    for _ in 0..200 {
        if unsafe { libc::kill(pong.pid as i32, 0) } != 0 {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(true)
}

/// How a session ended, as seen by the CLI.
#[derive(Debug, Default)]
pub struct SessionOutcome {
    /// The child's exit code, or None when it was killed or the daemon vanished.
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// The daemon closed the connection without reporting the child's end.
    pub lost: bool,
}

/// Sends a `run` request on `conn` with `fds` (stdin, stdout, stderr and, for
/// a distributed run's sessions, the control pipe) and returns the stream its
/// answers arrive on: `started`, the session's events, then `exit`.
pub fn start_run(
    conn: Connection,
    argv: &[String],
    cwd: &str,
    env: &BTreeMap<String, String>,
    session: &SessionConfig,
    fds: &[i32],
) -> Result<BufReader<UnixStream>, DaemonError> {
    let umask = super::unix::process_umask();
    let ignored_signals = super::unix::ignored_signals();
    let blocked_signals = super::unix::blocked_signals();
    let env_order = env_order(env);
    let req = Request::Run {
        protocol: PROTOCOL_VERSION,
        argv,
        cwd,
        env,
        env_order: &env_order,
        umask,
        ignored_signals: &ignored_signals,
        blocked_signals: &blocked_signals,
        session,
    };
    let mut line = serde_json::to_vec(&req).map_err(|e| DaemonError::Protocol(e.to_string()))?;
    line.push(b'\n');
    let mut writer = conn.writer;
    let sent = send_with_fds(&writer, &line, fds)?;
    writer.write_all(&line[sent..])?;
    Ok(conn.reader)
}

/// The names of `env` in the order of this process's environment (as the
/// command was given), then those this process does not have, sorted.
fn env_order(env: &BTreeMap<String, String>) -> Vec<String> {
    let mut order: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| env.contains_key(k))
        .collect();
    let held: std::collections::HashSet<String> = order.iter().cloned().collect();
    order.extend(env.keys().filter(|k| !held.contains(*k)).cloned());
    order.dedup();
    order
}

/// Runs one session on `conn`, giving it our stdin/stdout/stderr, and hands
/// every event to `on_event`. Ctrl-C is forwarded to the session child.
pub fn run_session(
    conn: Connection,
    argv: &[String],
    cwd: &str,
    env: &BTreeMap<String, String>,
    session: &SessionConfig,
    mut on_event: impl FnMut(&Event),
) -> Result<SessionOutcome, DaemonError> {
    let reader = start_run(conn, argv, cwd, env, session, &[0, 1, 2])?;
    let mut conn = Connection {
        writer: reader.get_ref().try_clone()?,
        reader,
    };
    let mut outcome = SessionOutcome::default();
    let mut ended = false;
    while let Some(line) = conn.read_line(None)? {
        let event: Event = match serde_json::from_str(&line) {
            Ok(e) => e,
            Err(_) => continue,
        };
        match &event {
            Event::Started { pid } => forward_signals_to(*pid),
            Event::Exit { code, signal } => {
                outcome.code = *code;
                outcome.signal = *signal;
                ended = true;
            }
            _ => {}
        }
        on_event(&event);
        if ended {
            break;
        }
    }
    stop_forwarding();
    outcome.lost = !ended;
    Ok(outcome)
}
