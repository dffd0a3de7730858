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
            .read_line(Some(Duration::from_secs(10)))?
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

/// Pings the daemon at `socket`, if any.
pub fn ping(socket: &Path) -> Result<(Connection, Pong), DaemonError> {
    let mut c = Connection::connect(socket)?;
    let pong = c.ping()?;
    Ok((c, pong))
}

/// Stops the daemon at `socket` and waits until it is gone.
pub fn stop(socket: &Path) -> Result<bool, DaemonError> {
    let Ok((c, pong)) = ping(socket) else {
        return Ok(false);
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
    let umask = unsafe {
        let m = libc::umask(0o022);
        libc::umask(m);
        m
    };
    let req = Request::Run {
        protocol: PROTOCOL_VERSION,
        argv,
        cwd,
        env,
        umask: umask as u32,
        session,
    };
    let mut line = serde_json::to_vec(&req).map_err(|e| DaemonError::Protocol(e.to_string()))?;
    line.push(b'\n');
    let mut writer = conn.writer;
    let sent = send_with_fds(&writer, &line, fds)?;
    writer.write_all(&line[sent..])?;
    Ok(conn.reader)
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
