//! `-n N`: one controller session and N worker sessions, scheduled from here.
//!
//! Every session is a real pytest session forked from the warm daemon (or a
//! fresh process under `--no-daemon`) with `-p no:xdist` and the rpytest
//! plugin in a role (`python/rpytest/parallel.py`):
//!
//! * each **worker** collects the suite, reports its collection, then asks for
//!   work; it is given item indexes, a unit at a time, longest first
//!   ([`schedule::units`]), so a worker that finishes early takes more;
//! * the **controller** owns the terminal, `--junitxml` and every reporting
//!   plugin; the workers' serialized reports are forwarded to it here.
//!
//! A worker that dies mid-test has that test reported as a crash, and its
//! unfinished items go to a fresh worker. The controller's `stop` (from `-x`
//! or `--maxfail`) stops every worker after its current test.

pub mod schedule;
pub mod shard;

use crate::daemon::{self, Connection, DaemonError, DaemonSpec};
use crate::protocol::{Event, SessionConfig};
use crate::report;
use crate::run::exec::{argv0, environment, Target};
use crate::run::Ended;
use schedule::{Dist, Item, Unit};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Sender};

/// How to distribute a run.
#[derive(Debug, Clone)]
pub struct Options {
    pub workers: usize,
    pub dist: Dist,
}

/// What a distributed run produced: the controller's end, the events the
/// cache records, and whether any worker crashed.
pub struct Outcome {
    pub ended: Ended,
    pub events: Vec<Event>,
    pub crashes: usize,
}

impl Options {
    /// `-n` / `--dist` / `--maxprocesses` (command line or addopts), else
    /// `[tool.rpytest] workers`. `None`: `-n` was not asked for at all.
    /// `workers == 0` or `--dist no`: one session, but still `-p no:xdist`.
    pub fn resolve(
        args: &crate::project::args::PytestArgs,
        config: Option<&toml::Value>,
    ) -> Result<Option<Options>, String> {
        let spec = match (&args.numprocesses, config) {
            (Some(n), _) => n.clone(),
            (None, Some(toml::Value::Integer(n))) => n.to_string(),
            (None, Some(toml::Value::String(s))) => s.clone(),
            (None, Some(other)) => {
                return Err(format!(
                    "[tool.rpytest] workers must be a number or \"auto\", not {other}"
                ))
            }
            (None, None) => return Ok(None),
        };
        let cpus = || {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        };
        let mut workers = match spec.as_str() {
            "auto" => std::env::var("PYTEST_XDIST_AUTO_NUM_WORKERS")
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(cpus),
            "logical" => cpus(),
            n => n.parse::<usize>().map_err(|_| {
                format!("argument -n/--numprocesses: invalid value: '{n}' (a number, 'auto' or 'logical')")
            })?,
        };
        if let Some(max) = args.maxprocesses {
            workers = workers.min(max);
        }
        let dist = match &args.dist {
            Some(d) => Dist::parse(d).ok_or_else(|| {
                format!("argument --dist: invalid choice: '{d}' (choose from 'each', 'load', 'loadscope', 'loadfile', 'loadgroup', 'worksteal', 'no')")
            })?,
            None => Dist::Load,
        };
        if workers > 0 && dist != Dist::No && args.debugger {
            return Err("--pdb is incompatible with distributing tests; try using -n0".into());
        }
        Ok(Some(Options { workers, dist }))
    }

    /// Tests are distributed (not one session).
    pub fn distributes(&self) -> bool {
        self.workers > 0 && self.dist != Dist::No
    }
}

enum Msg {
    Line(usize, String),
    Stderr(usize, Vec<u8>),
    Ended(usize, Ended),
}

/// The envelope of a session's message: enough to route it.
#[derive(Deserialize)]
struct Head {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    nodeid: Option<String>,
    #[serde(default)]
    location: Option<serde_json::Value>,
    #[serde(default)]
    pid: Option<i32>,
}

#[derive(Deserialize)]
struct Collection {
    items: Vec<(String, String, Option<String>)>,
    #[serde(default)]
    stop: bool,
}

#[derive(Default)]
struct Proc {
    id: String,
    pid: Option<i32>,
    control: Option<File>,
    ended: bool,
    finished: bool,
    collected: bool,
    /// Its collection differs from the one scheduled: it gets no work.
    mismatch: bool,
    /// Its `collected` event, kept until we know whose collection is used.
    collected_event: Option<Event>,
    current: Option<(String, serde_json::Value)>,
    assigned: VecDeque<usize>,
    /// It was told there is no more work.
    told_stop: bool,
    /// Its first unit, kept until it asks (or another worker runs out of work).
    reserved: Option<Unit>,
    stderr: Vec<u8>,
    /// Tests run and the seconds they took (RPYTEST_TRACE: schedule balance).
    tests: usize,
    busy: f64,
    ended_after: Option<std::time::Duration>,
}

impl Proc {
    fn send(&mut self, line: &str) {
        if let Some(c) = &mut self.control {
            if c.write_all(line.as_bytes())
                .and_then(|_| c.write_all(b"\n"))
                .is_err()
            {
                self.control = None;
            }
        }
    }

    fn terminate(&self) {
        if let (Some(pid), false) = (self.pid, self.ended) {
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The worker ID pytest-xdist would give the `n`-th worker.
fn worker_name(n: usize) -> String {
    format!("gw{n}")
}

struct Launcher<'a> {
    target: &'a Target<'a>,
    argv: Vec<String>,
    tx: Sender<Msg>,
    daemon_ready: bool,
}

impl Launcher<'_> {
    fn connection(&mut self) -> Result<Option<Connection>, DaemonError> {
        let Some((paths, idle, fingerprint)) = &self.target.daemon else {
            return Ok(None);
        };
        if self.daemon_ready {
            if let Ok(c) = Connection::connect(&paths.socket) {
                return Ok(Some(c));
            }
        }
        let spec = DaemonSpec {
            python: self.target.python,
            rootdir: self.target.rootdir,
            paths,
            idle_timeout: *idle,
            fingerprint: fingerprint.clone(),
        };
        let c = daemon::ensure_daemon(&spec)?;
        self.daemon_ready = true;
        Ok(Some(c))
    }

    /// Starts one session; its messages arrive as `Msg`s tagged `idx`.
    /// Returns the control pipe and, for a fresh process, its pid.
    fn launch(
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
                let fds = [stdio[0], stdio[1], stdio[2], control_r.as_raw_fd()];
                let reader = daemon::start_run(conn, &self.argv, &cwd, env, session, &fds)?;
                std::thread::spawn(move || read_daemon(idx, reader, tx));
            }
            None => {
                let (events_r, events_w) = pipe()?;
                let dir = std::env::temp_dir();
                let cfg_path =
                    dir.join(format!("rpytest-session-{}-{idx}.json", std::process::id()));
                std::fs::write(
                    &cfg_path,
                    serde_json::to_vec(session)
                        .map_err(|e| DaemonError::Protocol(e.to_string()))?,
                )?;
                let (ev, ctl) = (events_w.as_raw_fd(), control_r.as_raw_fd());
                let dup = |fd: RawFd| -> std::io::Result<Stdio> {
                    let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
                    if d < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(Stdio::from(unsafe { OwnedFd::from_raw_fd(d) }))
                };
                let mut cmd = Command::new(self.target.python);
                cmd.args(["-m", "rpytest.session"])
                    .args(&self.argv)
                    .current_dir(self.target.cwd)
                    .env_clear()
                    .envs(env)
                    .env("RPYTEST_SESSION_CONFIG", &cfg_path)
                    .env("RPYTEST_EVENT_FD", "3")
                    .env("RPYTEST_CONTROL_FD", "4")
                    .stdin(dup(stdio[0])?)
                    .stdout(dup(stdio[1])?)
                    .stderr(dup(stdio[2])?);
                unsafe {
                    cmd.pre_exec(move || {
                        if libc::dup2(ev, 3) < 0 || libc::dup2(ctl, 4) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
                let mut child = cmd.spawn().map_err(|e| {
                    DaemonError::Start(format!(
                        "could not start {}: {e}",
                        self.target.python.display()
                    ))
                })?;
                drop(events_w);
                pid = Some(child.id() as i32);
                std::thread::spawn(move || {
                    let reader = BufReader::new(File::from(events_r));
                    for line in reader.lines() {
                        let Ok(line) = line else { break };
                        if tx.send(Msg::Line(idx, line)).is_err() {
                            break;
                        }
                    }
                    let ended = match child.wait() {
                        Ok(s) => match (s.code(), s.signal()) {
                            (Some(c), _) => Ended::Code(c),
                            (None, Some(sig)) => Ended::Signal(sig),
                            _ => Ended::Lost,
                        },
                        Err(_) => Ended::Lost,
                    };
                    let _ = std::fs::remove_file(&cfg_path);
                    let _ = tx.send(Msg::Ended(idx, ended));
                });
            }
        }
        drop(control_r);
        Ok((File::from(control_w), pid))
    }
}

fn read_daemon(idx: usize, reader: BufReader<std::os::unix::net::UnixStream>, tx: Sender<Msg>) {
    let mut ended = Ended::Lost;
    for line in reader.lines() {
        let Ok(line) = line else { break };
        if line.contains("\"type\":\"exit\"") {
            if let Ok(Event::Exit { code, signal }) = serde_json::from_str::<Event>(&line) {
                ended = match (code, signal) {
                    (Some(c), _) => Ended::Code(c),
                    (None, Some(s)) => Ended::Signal(s),
                    _ => Ended::Lost,
                };
                break;
            }
        }
        if tx.send(Msg::Line(idx, line)).is_err() {
            return;
        }
    }
    let _ = tx.send(Msg::Ended(idx, ended));
}

fn describe(ended: &Ended) -> String {
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

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// Runs the session distributed over `opts.workers` workers.
pub fn run(
    target: &Target,
    base: &SessionConfig,
    opts: &Options,
    durations: &HashMap<String, (String, f64)>,
) -> Result<Outcome, DaemonError> {
    let (tx, rx) = channel::<Msg>();
    let mut argv = vec!["-p".to_owned(), "no:xdist".to_owned()];
    argv.extend(target.argv.iter().cloned());
    let mut launcher = Launcher {
        target,
        argv,
        tx: tx.clone(),
        daemon_ready: false,
    };
    let uid = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            ^ ((std::process::id() as u128) << 64)
    );
    let mut env = environment();
    env.insert("RPYTEST_ARGV0".into(), argv0(target.python));
    let devnull_in = File::open("/dev/null")?;
    let devnull_out = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
    let fresh = target.daemon.is_none();
    if fresh {
        daemon::ignore_interrupts(true);
    }

    // The controller: the user's terminal, no recording, no collection.
    let controller_cfg = SessionConfig {
        rootdir: base.rootdir.clone(),
        events: true,
        record: false,
        role: Some("controller".into()),
        xdist_compat: true,
        testrun_uid: Some(uid.clone()),
        ..SessionConfig::default()
    };
    let mut procs: Vec<Proc> = Vec::new();
    let (control, pid) = launcher.launch(0, &controller_cfg, &env, [0, 1, 2])?;
    procs.push(Proc {
        id: "controller".into(),
        pid,
        control: Some(control),
        ..Proc::default()
    });
    if let Some(p) = pid.filter(|_| !fresh) {
        daemon::add_forwarding(p);
    }

    let mut next_worker = 0usize;
    let start_worker = |launcher: &mut Launcher,
                        procs: &mut Vec<Proc>,
                        next_worker: &mut usize|
     -> Result<(), DaemonError> {
        let id = worker_name(*next_worker);
        *next_worker += 1;
        let mut cfg = base.clone();
        cfg.role = Some("worker".into());
        cfg.worker_id = Some(id.clone());
        cfg.worker_count = Some(opts.workers);
        cfg.testrun_uid = Some(uid.clone());
        cfg.xdist_compat = true;
        if id != "gw0" {
            cfg.warm_file = None;
        }
        let mut wenv = env.clone();
        wenv.insert("PYTEST_XDIST_WORKER".into(), id.clone());
        wenv.insert("PYTEST_XDIST_WORKER_COUNT".into(), opts.workers.to_string());
        wenv.insert("PYTEST_XDIST_TESTRUNUID".into(), uid.clone());
        let (err_r, err_w) = pipe()?;
        let idx = procs.len();
        let (control, pid) = launcher.launch(
            idx,
            &cfg,
            &wenv,
            [
                devnull_in.as_raw_fd(),
                devnull_out.as_raw_fd(),
                err_w.as_raw_fd(),
            ],
        )?;
        drop(err_w);
        let etx = launcher.tx.clone();
        std::thread::spawn(move || {
            let mut f = File::from(err_r);
            let mut buf = vec![0u8; 8192];
            while let Ok(n) = f.read(&mut buf) {
                if n == 0 || etx.send(Msg::Stderr(idx, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        });
        procs.push(Proc {
            id,
            pid,
            control: Some(control),
            ..Proc::default()
        });
        Ok(())
    };
    for _ in 0..opts.workers.max(1) {
        start_worker(&mut launcher, &mut procs, &mut next_worker)?;
    }
    drop(tx);

    let mut events: Vec<Event> = Vec::new();
    let mut items: Option<Vec<Item>> = None;
    let mut queue: VecDeque<Unit> = VecDeque::new();
    let mut stopping = false;
    let mut crashes = 0usize;
    let mut done_sent = false;
    let mut controller_end: Option<Ended> = None;
    let mut collect_crash: Option<String> = None;
    let mut stderr = std::io::stderr();
    let begun = std::time::Instant::now();

    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Stderr(idx, bytes) => {
                let p = &mut procs[idx];
                if p.collected {
                    let _ = stderr.write_all(&bytes);
                } else {
                    p.stderr.extend_from_slice(&bytes);
                }
            }
            Msg::Line(0, line) => {
                let Ok(head) = serde_json::from_str::<Head>(&line) else {
                    continue;
                };
                match head.kind.as_str() {
                    "started" => {
                        if let Some(pid) = head.pid {
                            procs[0].pid = Some(pid);
                            daemon::add_forwarding(pid);
                        }
                    }
                    "stop" => {
                        stopping = true;
                        queue.clear();
                        for p in procs.iter_mut().skip(1) {
                            p.send("{\"type\":\"stop\"}");
                        }
                    }
                    "result" | "finish" => {
                        if let Ok(e) = serde_json::from_str::<Event>(&line) {
                            events.push(e);
                        }
                    }
                    _ => {}
                }
            }
            Msg::Line(idx, line) => {
                let Ok(head) = serde_json::from_str::<Head>(&line) else {
                    continue;
                };
                match head.kind.as_str() {
                    "started" => {
                        if let Some(pid) = head.pid {
                            procs[idx].pid = Some(pid);
                            daemon::add_forwarding(pid);
                        }
                    }
                    "collected" => {
                        procs[idx].collected_event = serde_json::from_str::<Event>(&line).ok();
                    }
                    "collection" => {
                        let Ok(c) = serde_json::from_str::<Collection>(&line) else {
                            continue;
                        };
                        let p = &mut procs[idx];
                        p.collected = true;
                        let _ = stderr.write_all(&std::mem::take(&mut p.stderr));
                        match &items {
                            None => {
                                if let Some(e) = p.collected_event.take() {
                                    events.push(e);
                                }
                                let list: Vec<Item> = c
                                    .items
                                    .into_iter()
                                    .map(|(nodeid, file, group)| Item {
                                        nodeid,
                                        file,
                                        group,
                                    })
                                    .collect();
                                if !c.stop && !stopping {
                                    queue =
                                        schedule::units(&list, durations, opts.dist, opts.workers);
                                    // Every worker's first unit is kept for it (longest
                                    // first), so a worker that collected first does not
                                    // take the whole suite of a small run.
                                    for p in procs.iter_mut().skip(1).filter(|p| !p.ended) {
                                        p.reserved = queue.pop_front();
                                    }
                                }
                                items = Some(list);
                                procs[0].send(&line);
                            }
                            Some(first) => {
                                let same = first.len() == c.items.len()
                                    && first.iter().zip(&c.items).all(|(a, b)| a.nodeid == b.0);
                                if !same {
                                    p.mismatch = true;
                                    if let Some(u) = p.reserved.take() {
                                        queue.push_front(u);
                                    }
                                    let ours: std::collections::HashSet<&str> =
                                        c.items.iter().map(|i| i.0.as_str()).collect();
                                    let missing: Vec<&str> = first
                                        .iter()
                                        .map(|i| i.nodeid.as_str())
                                        .filter(|n| !ours.contains(n))
                                        .take(5)
                                        .collect();
                                    report::warning(&format!(
                                        "worker {} collected different tests than the first worker ({} vs {} items{}); it runs none of them",
                                        p.id,
                                        c.items.len(),
                                        first.len(),
                                        if missing.is_empty() {
                                            String::new()
                                        } else {
                                            format!(", e.g. it lacks {}", missing.join(", "))
                                        }
                                    ));
                                }
                            }
                        }
                    }
                    "want" => {
                        let unit = if stopping || procs[idx].mismatch {
                            None
                        } else if let Some(u) = procs[idx].reserved.take() {
                            Some(u)
                        } else if let Some(u) = queue.pop_front() {
                            Some(u)
                        } else {
                            // Nothing queued: take the first-unit reservation of
                            // a worker that has not asked yet (it may still be
                            // collecting), rather than idle.
                            procs.iter_mut().skip(1).find_map(|p| p.reserved.take())
                        };
                        let p = &mut procs[idx];
                        match unit {
                            Some(u) => {
                                let line = format!(
                                    "{{\"type\":\"run\",\"indexes\":{}}}",
                                    serde_json::to_string(&u.indexes).unwrap_or_default()
                                );
                                p.assigned.extend(u.indexes);
                                p.send(&line);
                            }
                            None => {
                                p.told_stop = true;
                                p.send("{\"type\":\"stop\"}")
                            }
                        }
                    }
                    "logstart" | "logfinish" | "report" | "warning" => {
                        let p = &mut procs[idx];
                        if head.kind == "logstart" {
                            p.current = head.nodeid.clone().map(|n| {
                                (n, head.location.clone().unwrap_or(serde_json::Value::Null))
                            });
                        } else if head.kind == "logfinish" {
                            p.current = None;
                            if let (Some(n), Some(list)) = (&head.nodeid, &items) {
                                if let Some(pos) =
                                    p.assigned.iter().position(|&i| &list[i].nodeid == n)
                                {
                                    p.assigned.remove(pos);
                                }
                            }
                        }
                        let tagged = format!("{{\"worker\":{},{}", json_str(&p.id), &line[1..]);
                        procs[0].send(&tagged);
                    }
                    "result" | "deps" | "edges" => {
                        if let Ok(e) = serde_json::from_str::<Event>(&line) {
                            if let Event::Result { duration, .. } = &e {
                                procs[idx].tests += 1;
                                procs[idx].busy += duration;
                            }
                            events.push(e);
                        }
                    }
                    "finish" => procs[idx].finished = true,
                    _ => {}
                }
            }
            Msg::Ended(0, ended) => {
                procs[0].ended = true;
                procs[0].control = None;
                if let Some(pid) = procs[0].pid {
                    daemon::remove_forwarding(pid);
                }
                controller_end = Some(ended);
                // Nobody reports any more: stop every worker.
                stopping = true;
                queue.clear();
                for p in procs.iter_mut().skip(1) {
                    p.send("{\"type\":\"stop\"}");
                    p.terminate();
                }
            }
            Msg::Ended(idx, ended) => {
                let p = &mut procs[idx];
                if let Some(u) = p.reserved.take() {
                    queue.push_front(u);
                }
                p.ended = true;
                p.ended_after = Some(begun.elapsed());
                p.control = None;
                if let Some(pid) = p.pid {
                    daemon::remove_forwarding(pid);
                }
                let crashed = !p.finished && !matches!(ended, Ended::Code(2 | 4));
                if crashed && controller_end.is_none() {
                    let _ = stderr.write_all(&std::mem::take(&mut p.stderr));
                    crashes += 1;
                    let how = describe(&ended);
                    if let Some((nodeid, location)) = p.current.take() {
                        let message = format!(
                            "worker '{}' crashed while running '{}': {how}",
                            p.id, nodeid
                        );
                        let crash = serde_json::json!({
                            "type": "crash", "worker": p.id, "nodeid": nodeid,
                            "location": location, "message": message,
                        });
                        if let Some(pos) = items.as_ref().and_then(|list| {
                            p.assigned.iter().position(|&i| list[i].nodeid == nodeid)
                        }) {
                            p.assigned.remove(pos);
                        }
                        let file = nodeid.split("::").next().unwrap_or("").to_owned();
                        events.push(Event::Result {
                            nodeid,
                            file,
                            outcome: "failed".into(),
                            duration: 0.0,
                            location,
                            longrepr: serde_json::Value::Null,
                            wasxfail: None,
                            cached: false,
                        });
                        procs[0].send(&crash.to_string());
                    } else if !p.collected {
                        collect_crash =
                            Some(format!("worker '{}' crashed while collecting: {how}", p.id));
                    } else {
                        report::warning(&format!(
                            "worker '{}' ended unexpectedly between tests: {how}",
                            p.id
                        ));
                    }
                    let p = &mut procs[idx];
                    let rest: Vec<usize> = p.assigned.drain(..).collect();
                    if !rest.is_empty() && !stopping {
                        let weight = 0.0;
                        queue.push_front(Unit {
                            indexes: rest,
                            weight,
                        });
                    }
                }
                // Work is left that no running worker will ask for (a crash
                // requeued it, or a worker ended holding its reservation): a
                // fresh worker takes it. Never after a crash during collection.
                let takers = procs
                    .iter()
                    .skip(1)
                    .any(|p| !p.ended && !p.mismatch && !p.told_stop);
                if !stopping
                    && !queue.is_empty()
                    && !takers
                    && items.is_some()
                    && procs[idx].collected
                {
                    start_worker(&mut launcher, &mut procs, &mut next_worker)?;
                }
            }
        }
        let workers_done = procs.iter().skip(1).all(|p| p.ended);
        if workers_done && !done_sent {
            done_sent = true;
            if let Some(list) = &items {
                // Every worker crashed while collecting again: what is left never ran.
                for unit in queue.drain(..) {
                    for i in unit.indexes {
                        let nodeid = &list[i].nodeid;
                        let crash = serde_json::json!({
                            "type": "crash", "worker": "gw?", "nodeid": nodeid,
                            "location": serde_json::Value::Null,
                            "message": format!("not run: {}", collect_crash.clone().unwrap_or_else(|| "every worker ended".into())),
                        });
                        procs[0].send(&crash.to_string());
                    }
                }
            } else {
                let text = collect_crash
                    .clone()
                    .unwrap_or_else(|| "no worker reported its collection".into());
                let abort = serde_json::json!({"type": "abort", "message": text});
                procs[0].send(&abort.to_string());
            }
            procs[0].send("{\"type\":\"done\"}");
            procs[0].control = None;
        }
        if controller_end.is_some() && workers_done {
            break;
        }
    }
    if fresh {
        daemon::ignore_interrupts(false);
    }
    daemon::stop_forwarding();
    if std::env::var_os("RPYTEST_TRACE").is_some() {
        for p in procs.iter().skip(1) {
            report::note(&format!(
                "trace: worker {}: {} tests, {:.2} s in tests, ended after {:.2} s",
                p.id,
                p.tests,
                p.busy,
                p.ended_after.map(|d| d.as_secs_f64()).unwrap_or(0.0)
            ));
        }
    }
    Ok(Outcome {
        ended: controller_end.unwrap_or(Ended::Lost),
        events,
        crashes,
    })
}
