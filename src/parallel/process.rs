//! The sessions of a distributed run as processes: starting them (through
//! the daemon or fresh), their pipes, the socket forked workers connect to,
//! and the threads that read them.

use super::schedule::Unit;
use crate::daemon::{self, Connection, DaemonError};
use crate::protocol::{ControlMsg, Event, SessionConfig, WorkerMsg};
use crate::session::Ended;
use crate::session::{pipe, FreshSession, Target};
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::mpsc::Sender;

/// What the sessions' reader threads hand the dispatcher.
pub(super) enum Msg {
    /// A session's message (read, and parsed, on its reader thread).
    Line(usize, WorkerMsg),
    /// Several messages of a session, read at once, in order.
    Lines(usize, Vec<WorkerMsg>),
    Stderr(usize, Vec<u8>),
    Ended(usize, Ended),
    /// A forked worker connected: its socket, to write its control messages to.
    Attach(usize, File),
    /// A forked worker's socket reached EOF (its exit comes from the collector).
    Eof(usize),
}

#[derive(Default)]
pub(super) struct Proc {
    pub(super) id: String,
    pub(super) pid: Option<i32>,
    pub(super) control: Option<File>,
    /// Set for the controller: its control pipe's writer thread.
    pub(super) writer: Option<Sender<String>>,
    /// The controller's messages not yet handed to its writer thread: sent
    /// as one write once the dispatcher has handled what is queued (one
    /// wake-up of the thread and of the controller per batch, not per event).
    pub(super) unsent: String,
    pub(super) ended: bool,
    pub(super) finished: bool,
    pub(super) collected: bool,
    /// Its collection differs from the one scheduled: it gets no work.
    pub(super) mismatch: bool,
    /// Its `collected` event, kept until we know whose collection is used.
    pub(super) collected_event: Option<Event>,
    pub(super) current: Option<(String, serde_json::Value)>,
    pub(super) assigned: VecDeque<usize>,
    /// It was told there is no more work.
    pub(super) told_stop: bool,
    /// Its first unit, kept until it asks (or another worker runs out of work).
    pub(super) reserved: Option<Unit>,
    pub(super) stderr: Vec<u8>,
    /// Tests run and the seconds they took (RPYTEST_TRACE: schedule balance).
    pub(super) tests: usize,
    pub(super) busy: f64,
    pub(super) ended_after: Option<std::time::Duration>,
    /// The session that collected once and forks the workers (it runs no test).
    pub(super) collector: bool,
    /// A fork of the collector: it ends once its socket closed and the
    /// collector reported its exit status.
    pub(super) forked: bool,
    pub(super) eof: bool,
    pub(super) exit: Option<Ended>,
    /// Partitioned collection: the share of the files its collector collected.
    pub(super) part: usize,
    /// A collector of a partitioned collection that was given up (the suite
    /// is collected once instead): its messages and its end are ignored.
    pub(super) abandoned: bool,
}

/// Held messages of the controller are handed to its writer past this size.
const UNSENT_LIMIT: usize = 1 << 16;

/// A control pipe written by a thread of its own, so the dispatcher never
/// waits on a slow reader (the controller renders every report; a worker's
/// request for work must not queue behind that). Dropping it closes the pipe.
pub(super) fn background_writer(file: File) -> Sender<String> {
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut out = std::io::BufWriter::with_capacity(1 << 16, file);
        while let Ok(first) = rx.recv() {
            let mut ok = out.write_all(first.as_bytes()).is_ok();
            // Batch what is already queued into one write.
            while let (true, Ok(more)) = (ok, rx.try_recv()) {
                ok = out.write_all(more.as_bytes()).is_ok();
            }
            if !ok || out.flush().is_err() {
                return;
            }
        }
    });
    tx
}

impl Proc {
    /// Sends `m` on the session's control channel (nothing once it closed).
    pub(super) fn send(&mut self, m: &ControlMsg) {
        if self.writer.is_none() && self.control.is_none() {
            return;
        }
        let mut line = m.to_line();
        line.push('\n');
        if self.writer.is_some() {
            self.unsent.push_str(&line);
            if self.unsent.len() >= UNSENT_LIMIT {
                self.flush();
            }
            return;
        }
        if let Some(c) = &mut self.control {
            if c.write_all(line.as_bytes()).is_err() {
                self.control = None;
            }
        }
    }

    /// Hands the held messages to the writer thread.
    pub(super) fn flush(&mut self) {
        if self.unsent.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.unsent);
        if let Some(w) = &self.writer {
            if w.send(batch).is_err() {
                self.writer = None;
            }
        }
    }

    /// Closes the control pipe (the session reads EOF).
    pub(super) fn close(&mut self) {
        self.flush();
        self.control = None;
        self.writer = None;
    }

    pub(super) fn terminate(&self) {
        if let (Some(pid), false) = (self.pid, self.ended) {
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }
}

/// The Unix socket forked workers connect to: in a fresh directory of mode
/// 0700 (only this user's processes reach it), removed when dropped.
pub(super) struct ForkSocket {
    dir: PathBuf,
    pub(super) path: PathBuf,
}

impl ForkSocket {
    /// Binds the socket and starts the thread that accepts workers: each
    /// connection starts with `{"type":"hello","idx":N}` (sent by the collector
    /// before it forks), then carries that worker's events.
    pub(super) fn listen(tx: Sender<Msg>) -> std::io::Result<ForkSocket> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("rpytest-n-{}-{nanos:x}", std::process::id()));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let path = dir.join("w");
        let listener = match UnixListener::bind(&path) {
            Ok(l) => l,
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                return Err(e);
            }
        };
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let tx = tx.clone();
                std::thread::spawn(move || read_fork(stream, tx));
            }
        });
        Ok(ForkSocket { dir, path })
    }
}

impl Drop for ForkSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn read_fork(stream: UnixStream, tx: Sender<Msg>) {
    let Ok(write) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    if reader.read_line(&mut first).unwrap_or(0) == 0 {
        return;
    }
    let Ok(WorkerMsg::Hello(hello)) = WorkerMsg::parse(&first) else {
        return;
    };
    let idx = hello.idx;
    if tx
        .send(Msg::Attach(idx, File::from(OwnedFd::from(write))))
        .is_err()
    {
        return;
    }
    if read_messages(idx, reader, &tx).is_some() {
        let _ = tx.send(Msg::Eof(idx));
    }
}

/// The worker ID pytest-xdist would give the `n`-th worker.
pub(super) fn worker_name(n: usize) -> String {
    format!("gw{n}")
}

pub(super) struct Launcher<'a> {
    pub(super) target: &'a Target<'a>,
    pub(super) argv: Vec<String>,
    pub(super) tx: Sender<Msg>,
    pub(super) daemon_ready: bool,
    /// What starting the daemon had to say, for the dispatcher to pass on.
    pub(super) notes: Vec<String>,
}

impl Launcher<'_> {
    fn connection(&mut self) -> Result<Option<Connection>, DaemonError> {
        let Some(spec) = self.target.daemon_spec() else {
            return Ok(None);
        };
        if self.daemon_ready {
            if let Ok(c) = Connection::connect(&spec.paths.socket) {
                return Ok(Some(c));
            }
        }
        let c = daemon::ensure_daemon(&spec)?;
        self.notes.extend(daemon::take_notes());
        self.daemon_ready = true;
        Ok(Some(c))
    }

    /// Starts one session; its messages arrive as `Msg`s tagged `idx`.
    /// Returns the control pipe and, for a fresh process, its pid.
    pub(super) fn launch(
        &mut self,
        idx: usize,
        session: &SessionConfig,
        env: &BTreeMap<String, String>,
        stdio: [RawFd; 3],
    ) -> Result<(File, Option<i32>), DaemonError> {
        let (control_r, control_w) = pipe()?;
        let tx = self.tx.clone();
        let mut pid = None;
        match self.connection()? {
            Some(conn) => {
                let cwd = self.target.cwd.to_string_lossy();
                // The controller has the user's stdout: closed if it was closed.
                let mut env = env.clone();
                if idx == 0 && crate::session::stdout_was_closed() {
                    env.insert("RPYTEST_STDOUT_CLOSED".into(), "1".into());
                }
                let env = &env;
                let fds = [stdio[0], stdio[1], stdio[2], control_r.as_raw_fd()];
                let reader = daemon::start_run(conn, &self.argv, &cwd, env, session, &fds)?;
                std::thread::spawn(move || read_daemon(idx, reader, tx));
            }
            None => {
                let mut fresh = FreshSession::new(
                    self.target,
                    &self.argv,
                    session,
                    Some(control_r.as_raw_fd()),
                    idx == 0 && crate::session::stdout_was_closed(),
                )?;
                let dup = |fd: RawFd| -> std::io::Result<Stdio> {
                    let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
                    if d < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(Stdio::from(unsafe { OwnedFd::from_raw_fd(d) }))
                };
                fresh
                    .cmd
                    .envs(env)
                    .stdin(dup(stdio[0])?)
                    .stdout(dup(stdio[1])?)
                    .stderr(dup(stdio[2])?);
                let (mut child, events) = fresh.spawn(self.target)?;
                pid = Some(child.id() as i32);
                daemon::add_forwarding(child.id() as i32);
                std::thread::spawn(move || {
                    let _ = read_messages(idx, BufReader::new(File::from(events)), &tx);
                    let ended = Ended::from_status(child.wait());
                    let _ = tx.send(Msg::Ended(idx, ended));
                });
            }
        }
        drop(control_r);
        Ok((File::from(control_w), pid))
    }
}

/// Hands session `idx`'s messages to the dispatcher until EOF (`Some(None)`)
/// or the daemon's `exit` line (`Some(Some(end))`); `None`: the dispatcher is gone.
/// A line that is no message is skipped. The lines of one read leave as one
/// batch (a worker writes a test's events at once: one hand-over, not one per line).
fn read_messages(
    idx: usize,
    mut reader: BufReader<impl Read>,
    tx: &Sender<Msg>,
) -> Option<Option<Ended>> {
    let mut batch = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = line.strip_suffix('\n').unwrap_or(&line);
        let text = text.strip_suffix('\r').unwrap_or(text);
        if let Ok(m) = WorkerMsg::parse(text) {
            if let WorkerMsg::Event(Event::Exit { code, signal }) = m {
                send_batch(idx, &mut batch, tx)?;
                return Some(Some(Ended::from_exit(code, signal)));
            }
            batch.push(m);
        }
        if reader.buffer().is_empty() {
            send_batch(idx, &mut batch, tx)?;
            // Let the session's next events gather in the socket first: a
            // worker of fast tests writes twice per test, and a reader blocked
            // on the socket is woken (and wakes the dispatcher and the
            // controller) for each write. Reading at most every COALESCE
            // hands over several tests' events at once; the writes stay in the
            // kernel's buffer meanwhile, so a worker that dies loses none.
            std::thread::sleep(COALESCE);
        } else if batch.len() >= BATCH_LIMIT {
            send_batch(idx, &mut batch, tx)?;
        }
    }
    send_batch(idx, &mut batch, tx)?;
    Some(None)
}

/// Most messages handed over in one batch.
const BATCH_LIMIT: usize = 256;

/// How long a session's reader waits, after handing over what it read,
/// before it reads again (see `read_messages`). Short against anything a
/// person sees; long against a fast test (well under a millisecond).
const COALESCE: std::time::Duration = std::time::Duration::from_millis(2);

fn send_batch(idx: usize, batch: &mut Vec<WorkerMsg>, tx: &Sender<Msg>) -> Option<()> {
    match batch.len() {
        0 => Some(()),
        1 => tx.send(Msg::Line(idx, batch.pop()?)).ok(),
        _ => tx.send(Msg::Lines(idx, std::mem::take(batch))).ok(),
    }
}

fn read_daemon(idx: usize, reader: BufReader<std::os::unix::net::UnixStream>, tx: Sender<Msg>) {
    if let Some(ended) = read_messages(idx, reader, &tx) {
        let _ = tx.send(Msg::Ended(idx, ended.unwrap_or(Ended::Lost)));
    }
}

pub(super) fn describe(ended: &Ended) -> String {
    match ended {
        Ended::Code(c) => format!("exit code {c}"),
        Ended::Signal(s) => {
            let name = match *s {
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGABRT => " (SIGABRT)",
                libc::SIGKILL => " (SIGKILL)",
                libc::SIGBUS => " (SIGBUS)",
                libc::SIGTERM => " (SIGTERM)",
                _ => "",
            };
            format!("signal {s}{name}")
        }
        Ended::Lost => "the daemon went away".into(),
    }
}

/// Starts workers: each with its ID, the run's session config and environment,
/// `/dev/null` as stdin and stdout, and a stderr pipe read by a thread.
pub(super) struct Workers<'a> {
    pub(super) base: &'a SessionConfig,
    pub(super) env: BTreeMap<String, String>,
    pub(super) uid: String,
    pub(super) count: usize,
    pub(super) next: usize,
    pub(super) devnull_in: File,
    pub(super) devnull_out: File,
    /// Given to the first worker started: it collects once and forks the others.
    pub(super) fork_socket: Option<String>,
    /// Partitioned collection: each share's files (see `partition`).
    pub(super) shares: Option<Vec<crate::protocol::parallel::Partition>>,
}

impl Workers<'_> {
    /// The ID the next worker gets.
    pub(super) fn next_id(&mut self) -> String {
        let id = worker_name(self.next);
        self.next += 1;
        id
    }

    /// Starts a worker session; under partitioned collection it collects
    /// share `part` (and, with `collector`, forks that share's worker).
    pub(super) fn start(
        &mut self,
        launcher: &mut Launcher,
        procs: &mut Vec<Proc>,
        part: usize,
        collector: bool,
    ) -> Result<(), DaemonError> {
        let id = self.next_id();
        let mut cfg = self.base.clone();
        if let Some(shares) = &self.shares {
            let mut share = shares.get(part).cloned().unwrap_or_default();
            share.others = super::partition::others(shares, part);
            cfg.partition = Some(share);
        }
        cfg.role = Some("worker".into());
        cfg.worker_id = Some(id.clone());
        cfg.worker_count = Some(self.count);
        cfg.testrun_uid = Some(self.uid.clone());
        cfg.xdist_compat = true;
        cfg.fork_socket = match (&self.shares, collector) {
            (None, _) => self.fork_socket.take(),
            (Some(_), true) => self.fork_socket.clone(),
            (Some(_), false) => None,
        };
        if id != "gw0" {
            cfg.warm_file = None;
        }
        let mut env = self.env.clone();
        env.insert("PYTEST_XDIST_WORKER".into(), id.clone());
        env.insert("PYTEST_XDIST_WORKER_COUNT".into(), self.count.to_string());
        env.insert("PYTEST_XDIST_TESTRUNUID".into(), self.uid.clone());
        let (err_r, err_w) = pipe()?;
        let idx = procs.len();
        let stdio = [
            self.devnull_in.as_raw_fd(),
            self.devnull_out.as_raw_fd(),
            err_w.as_raw_fd(),
        ];
        let (control, pid) = launcher.launch(idx, &cfg, &env, stdio)?;
        drop(err_w);
        let tx = launcher.tx.clone();
        std::thread::spawn(move || {
            let mut f = File::from(err_r);
            let mut buf = vec![0u8; 8192];
            while let Ok(n) = f.read(&mut buf) {
                if n == 0 || tx.send(Msg::Stderr(idx, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        });
        procs.push(Proc {
            id,
            pid,
            control: Some(control),
            part,
            ..Proc::default()
        });
        Ok(())
    }
}
