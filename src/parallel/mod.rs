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

mod process;
pub mod schedule;
pub mod shard;

use crate::daemon::{self, DaemonError};
use crate::protocol::{Event, SessionConfig};
use crate::report;
use crate::session::Ended;
use crate::session::{argv0, Target};
use process::{describe, json_str, ForkSocket, Launcher, Msg, Proc, Workers};
use schedule::{Dist, Item, Unit};
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::Write;
use std::sync::mpsc::channel;

/// How to distribute a run.
#[derive(Debug, Clone)]
pub struct Options {
    pub workers: usize,
    pub dist: Dist,
    /// The number of workers asked for (`-n`): what workers see as the
    /// worker count (PYTEST_XDIST_WORKER_COUNT, `workerinput["workercount"]`),
    /// as under pytest-xdist, even when fewer are started.
    pub asked: usize,
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
        Ok(Some(Options {
            workers,
            dist,
            asked: workers,
        }))
    }

    /// Tests are distributed (not one session).
    pub fn distributes(&self) -> bool {
        self.workers > 0 && self.dist != Dist::No
    }
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
    /// The collector's `forked` / `worker_exit`: which worker.
    #[serde(default)]
    idx: Option<usize>,
    #[serde(default)]
    code: Option<i32>,
    #[serde(default)]
    signal: Option<i32>,
}

#[derive(Deserialize)]
struct Collection {
    items: Vec<(String, String, Option<String>)>,
    #[serde(default)]
    stop: bool,
    /// The collector forks the workers (it runs no thread).
    #[serde(default)]
    fork: bool,
}

const STOP: &str = "{\"type\":\"stop\"}";

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
    let mut env = target.session_env();
    env.insert("RPYTEST_ARGV0".into(), argv0(target.python));
    let fresh = target.daemon.is_none();
    if fresh {
        // Fresh sessions share our process group: see `children_share_our_group`.
        daemon::children_share_our_group();
    }
    // Without it the workers collect the suite each (a collector never forks).
    let fork_socket = ForkSocket::listen(tx.clone()).ok();

    // The controller: the user's terminal, no recording, no collection.
    let controller_cfg = SessionConfig {
        rootdir: base.rootdir.clone(),
        events: true,
        record: false,
        role: Some("controller".into()),
        xdist_compat: true,
        testrun_uid: Some(uid.clone()),
        worker_count: Some(opts.workers.max(1)),
        ..SessionConfig::default()
    };
    let mut procs: Vec<Proc> = Vec::new();
    let (control, pid) = launcher.launch(0, &controller_cfg, &env, [0, 1, 2])?;
    procs.push(Proc {
        id: "controller".into(),
        pid,
        writer: Some(process::background_writer(control)),
        ..Proc::default()
    });
    if let Some(p) = pid {
        daemon::add_forwarding(p);
    }
    let workers = Workers {
        base,
        env,
        uid,
        count: opts.asked.max(opts.workers),
        next: 0,
        devnull_in: File::open("/dev/null")?,
        devnull_out: std::fs::OpenOptions::new().write(true).open("/dev/null")?,
        fork_socket: fork_socket
            .as_ref()
            .map(|f| f.path.to_string_lossy().into_owned()),
    };
    let mut d = Dispatch {
        launcher,
        workers,
        procs,
        opts,
        durations,
        events: Vec::new(),
        items: None,
        queue: VecDeque::new(),
        stopping: false,
        crashes: 0,
        done_sent: false,
        controller_end: None,
        collect_crash: None,
        begun: std::time::Instant::now(),
        fresh,
        collector: None,
        collected_after: None,
        inputs: HashMap::new(),
        awaiting: Vec::new(),
        requested: std::collections::HashSet::new(),
    };
    // With a fork socket, the first worker collects and forks the others once
    // its collection is in (or, unable to fork, starts them then).
    let first = if fork_socket.is_some() {
        1
    } else {
        opts.workers.max(1)
    };
    for _ in 0..first {
        d.start_worker()?;
    }
    drop(tx);
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Stderr(idx, bytes) => d.on_stderr(idx, bytes),
            Msg::Line(0, line) => d.on_controller_line(&line),
            Msg::Line(idx, line) => d.on_worker_line(idx, &line)?,
            Msg::Ended(0, ended) => d.on_controller_end(ended),
            Msg::Ended(idx, ended) => d.on_worker_end(idx, ended)?,
            Msg::Attach(idx, file) => d.on_attach(idx, file),
            Msg::Eof(idx) => d.on_eof(idx)?,
        }
        if d.finished() {
            break;
        }
    }
    daemon::stop_forwarding();
    d.trace();
    drop(fork_socket);
    Ok(Outcome {
        ended: d.controller_end.unwrap_or(Ended::Lost),
        events: d.events,
        crashes: d.crashes,
    })
}

/// The state of a distributed run, and what each message does to it.
struct Dispatch<'a> {
    launcher: Launcher<'a>,
    workers: Workers<'a>,
    /// The controller at 0, then the workers in start order.
    procs: Vec<Proc>,
    opts: &'a Options,
    durations: &'a HashMap<String, (String, f64)>,
    /// What the cache records: every worker's results and dependencies, the
    /// first worker's collection, the controller's replays and finish.
    events: Vec<Event>,
    /// The collection scheduled (the first worker's).
    items: Option<Vec<Item>>,
    queue: VecDeque<Unit>,
    stopping: bool,
    crashes: usize,
    done_sent: bool,
    controller_end: Option<Ended>,
    collect_crash: Option<String>,
    begun: std::time::Instant,
    /// `--no-daemon`: sessions share our process group and take Ctrl-C themselves.
    fresh: bool,
    /// The collector's index once it reported that it forks the workers.
    collector: Option<usize>,
    /// When the collection arrived (RPYTEST_TRACE).
    collected_after: Option<std::time::Duration>,
    /// Each worker's `workerinput` as the controller's plugins configured it
    /// (`pytest_configure_node`), by worker ID, as JSON.
    inputs: HashMap<String, String>,
    /// Workers waiting for theirs: started sessions, or forks not yet asked for.
    awaiting: Vec<usize>,
    /// Worker IDs the controller was asked to configure.
    requested: std::collections::HashSet<String>,
}

impl Dispatch<'_> {
    fn on_stderr(&mut self, idx: usize, bytes: Vec<u8>) {
        let p = &mut self.procs[idx];
        if p.collected {
            let _ = std::io::stderr().write_all(&bytes);
        } else {
            // Held back until the worker collected: a usage error is the controller's to show.
            p.stderr.extend_from_slice(&bytes);
        }
    }

    fn started(&mut self, idx: usize, head: &Head) {
        if let Some(pid) = head.pid {
            self.procs[idx].pid = Some(pid);
            if !(self.fresh && self.procs[idx].forked) {
                daemon::add_forwarding(pid);
            }
        }
    }

    fn stop_workers(&mut self) {
        self.stopping = true;
        self.queue.clear();
        for p in self.procs.iter_mut().skip(1) {
            p.send(STOP);
        }
    }

    /// Asks the collector for one more worker (a fork of its collected
    /// session), once the controller configured that worker.
    fn fork_worker(&mut self) {
        let id = self.workers.next_id();
        let idx = self.procs.len();
        self.procs.push(Proc {
            id: id.clone(),
            forked: true,
            collected: true,
            ..Proc::default()
        });
        self.provide_input(idx);
    }

    /// Starts a worker session (it collects, or it is the collector).
    fn start_worker(&mut self) -> Result<(), DaemonError> {
        self.workers.start(&mut self.launcher, &mut self.procs)?;
        self.provide_input(self.procs.len() - 1);
        Ok(())
    }

    /// Hands worker `idx` its `workerinput` (a fork: the collector is asked
    /// to fork it with it) or, until the controller configured it, waits.
    fn provide_input(&mut self, idx: usize) {
        let id = self.procs[idx].id.clone();
        let Some(input) = self.inputs.get(&id).cloned() else {
            self.awaiting.push(idx);
            // The first `workers` IDs are configured as the controller starts
            // its session; a replacement's is asked for.
            let first = (0..self.opts.workers.max(1)).any(|n| process::worker_name(n) == id);
            if !first && self.requested.insert(id.clone()) {
                let msg = serde_json::json!({"type": "configure_node", "worker": id});
                self.procs[0].send(&msg.to_string());
            }
            return;
        };
        if self.procs[idx].forked {
            let Some(c) = self.collector.filter(|&c| !self.procs[c].ended) else {
                return;
            };
            let msg = format!(
                "{{\"type\":\"fork\",\"worker\":{},\"idx\":{idx},\"workerinput\":{input}}}",
                json_str(&id)
            );
            self.procs[c].send(&msg);
        } else {
            let msg = format!("{{\"type\":\"workerinput\",\"data\":{input}}}");
            self.procs[idx].send(&msg);
        }
    }

    /// The controller configured nodes: their workers get their `workerinput`.
    fn on_nodes(&mut self, line: &str) {
        #[derive(Deserialize)]
        struct Nodes {
            nodes: HashMap<String, serde_json::Value>,
        }
        let Ok(n) = serde_json::from_str::<Nodes>(line) else {
            return;
        };
        for (id, v) in n.nodes {
            self.inputs.insert(id, v.to_string());
        }
        for idx in std::mem::take(&mut self.awaiting) {
            if !self.procs[idx].ended {
                self.provide_input(idx);
            }
        }
    }

    /// Starts a worker to take queued work: a fork of the collector while it
    /// is there, else a session that collects.
    fn add_worker(&mut self) -> Result<(), DaemonError> {
        match self.collector.filter(|&c| !self.procs[c].ended) {
            Some(_) => self.fork_worker(),
            None => self.start_worker()?,
        }
        Ok(())
    }

    fn on_attach(&mut self, idx: usize, file: File) {
        if let Some(p) = self.procs.get_mut(idx).filter(|p| p.forked) {
            p.control = Some(file);
        }
    }

    fn on_eof(&mut self, idx: usize) -> Result<(), DaemonError> {
        let Some(p) = self.procs.get_mut(idx).filter(|p| p.forked && !p.ended) else {
            return Ok(());
        };
        p.eof = true;
        let gone = self.collector.map_or(true, |c| self.procs[c].ended);
        let p = &mut self.procs[idx];
        if p.exit.is_some() || gone {
            let ended = p.exit.take().unwrap_or(Ended::Lost);
            self.on_worker_end(idx, ended)?;
        }
        Ok(())
    }

    /// The collector reaped a fork: the worker ends once its socket is drained too.
    fn on_worker_exit(&mut self, head: &Head) -> Result<(), DaemonError> {
        let Some(idx) = head
            .idx
            .filter(|&i| i < self.procs.len() && self.procs[i].forked)
        else {
            return Ok(());
        };
        let p = &mut self.procs[idx];
        let ended = Ended::from_exit(head.code, head.signal);
        if p.eof || p.control.is_none() && head.code.is_none() && head.signal.is_none() {
            // Drained, or never forked (the collector could not connect it).
            if !p.ended {
                self.on_worker_end(idx, ended)?;
            }
        } else {
            p.exit = Some(ended);
        }
        Ok(())
    }

    fn on_controller_line(&mut self, line: &str) {
        let Ok(head) = serde_json::from_str::<Head>(line) else {
            return;
        };
        match head.kind.as_str() {
            "started" => self.started(0, &head),
            "nodes" => self.on_nodes(line),
            // -x / --maxfail reached.
            "stop" => self.stop_workers(),
            "result" | "cached_results" | "finish" => {
                self.events.extend(serde_json::from_str::<Event>(line).ok())
            }
            _ => {}
        }
    }

    fn on_worker_line(&mut self, idx: usize, line: &str) -> Result<(), DaemonError> {
        let Ok(head) = serde_json::from_str::<Head>(line) else {
            return Ok(());
        };
        match head.kind.as_str() {
            "started" => self.started(idx, &head),
            "forked" => {
                if let (Some(i), Some(pid)) = (head.idx, head.pid) {
                    if let Some(p) = self.procs.get_mut(i).filter(|p| p.pid.is_none()) {
                        p.pid = Some(pid);
                    }
                }
            }
            "worker_exit" => self.on_worker_exit(&head)?,
            "collected" => {
                self.procs[idx].collected_event = serde_json::from_str::<Event>(line).ok();
            }
            "collection" => {
                if let Ok(c) = serde_json::from_str::<Collection>(line) {
                    self.on_collection(idx, line, c)?;
                }
            }
            "want" => self.on_want(idx),
            "logstart" | "logfinish" | "report" | "warning" | "ready" | "workerfinished"
            | "internal_error" => self.forward(idx, &head, line),
            "result" | "node_warning" | "cached_results" | "deps" | "edges" | "installed" => {
                if let Ok(e) = serde_json::from_str::<Event>(line) {
                    if let Event::Result { duration, .. } = &e {
                        self.procs[idx].tests += 1;
                        self.procs[idx].busy += duration;
                    }
                    self.events.push(e);
                }
            }
            "finish" => self.procs[idx].finished = true,
            _ => {}
        }
        Ok(())
    }

    /// The first collection is scheduled and sent to the controller, and the
    /// collector forks the workers (or, unable to, they are started); later
    /// collections must list the same items (else that worker gets no work).
    fn on_collection(&mut self, idx: usize, line: &str, c: Collection) -> Result<(), DaemonError> {
        let p = &mut self.procs[idx];
        p.collected = true;
        let _ = std::io::stderr().write_all(&std::mem::take(&mut p.stderr));
        let Some(first) = &self.items else {
            if let Some(e) = p.collected_event.take() {
                self.events.push(e);
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
            self.collected_after = Some(self.begun.elapsed());
            let wanted = self.opts.workers.max(1);
            if c.fork {
                let p = &mut self.procs[idx];
                p.collector = true;
                p.id = "collector".into();
                self.collector = Some(idx);
                // Its forks are gw0..: the IDs pytest-xdist gives.
                self.workers.next = 0;
                if !c.stop && !self.stopping {
                    for _ in 0..wanted {
                        self.fork_worker();
                    }
                }
            } else if self.procs.len() - 1 < wanted && !c.stop && !self.stopping {
                // The first worker could not fork: the others collect themselves.
                for _ in self.procs.len() - 1..wanted {
                    self.start_worker()?;
                }
            }
            if !c.stop && !self.stopping {
                self.queue =
                    schedule::units(&list, self.durations, self.opts.dist, self.opts.workers);
                // Every worker's first unit is kept for it (longest first), so
                // a worker that collected first does not take a small suite whole.
                for p in self
                    .procs
                    .iter_mut()
                    .skip(1)
                    .filter(|p| !p.ended && !p.collector)
                {
                    p.reserved = self.queue.pop_front();
                }
            }
            self.items = Some(list);
            self.procs[0].send(line);
            return Ok(());
        };
        let same = first.len() == c.items.len()
            && first.iter().zip(&c.items).all(|(a, b)| a.nodeid == b.0);
        if same {
            return Ok(());
        }
        p.mismatch = true;
        if let Some(u) = p.reserved.take() {
            self.queue.push_front(u);
        }
        let ours: std::collections::HashSet<&str> = c.items.iter().map(|i| i.0.as_str()).collect();
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
        Ok(())
    }

    fn on_want(&mut self, idx: usize) {
        let unit = if self.stopping || self.procs[idx].mismatch {
            None
        } else if let Some(u) = self.procs[idx].reserved.take() {
            Some(u)
        } else if let Some(u) = schedule::take_batch(&mut self.queue, self.opts.workers) {
            Some(u)
        } else {
            // Nothing queued: take the first unit kept for a worker that has
            // not asked yet (it may still be collecting), rather than idle.
            self.procs
                .iter_mut()
                .skip(1)
                .find_map(|p| p.reserved.take())
        };
        let p = &mut self.procs[idx];
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
                p.send(STOP);
            }
        }
    }

    /// A report-stream message: to the controller, tagged with the worker.
    fn forward(&mut self, idx: usize, head: &Head, line: &str) {
        let p = &mut self.procs[idx];
        if head.kind == "logstart" {
            p.current = head
                .nodeid
                .clone()
                .map(|n| (n, head.location.clone().unwrap_or(serde_json::Value::Null)));
        } else if head.kind == "logfinish" {
            p.current = None;
            if let (Some(n), Some(list)) = (&head.nodeid, &self.items) {
                if let Some(pos) = p.assigned.iter().position(|&i| &list[i].nodeid == n) {
                    p.assigned.remove(pos);
                }
            }
        }
        let tagged = format!("{{\"worker\":{},{}", json_str(&p.id), &line[1..]);
        self.procs[0].send(&tagged);
    }

    fn on_controller_end(&mut self, ended: Ended) {
        let c = &mut self.procs[0];
        c.ended = true;
        c.close();
        if let Some(pid) = c.pid {
            daemon::remove_forwarding(pid);
        }
        self.controller_end = Some(ended);
        // Nobody reports any more: stop every worker.
        self.stop_workers();
        for p in self.procs.iter().skip(1) {
            p.terminate();
        }
    }

    fn on_worker_end(&mut self, idx: usize, ended: Ended) -> Result<(), DaemonError> {
        if self.procs[idx].collector {
            return self.on_collector_end(idx, ended);
        }
        let p = &mut self.procs[idx];
        if let Some(u) = p.reserved.take() {
            self.queue.push_front(u);
        }
        p.ended = true;
        p.ended_after = Some(self.begun.elapsed());
        p.close();
        if let Some(pid) = p.pid {
            daemon::remove_forwarding(pid);
        }
        let crashed = !p.finished && !matches!(ended, Ended::Code(2 | 4));
        if crashed && self.controller_end.is_none() {
            self.crash(idx, &ended);
        }
        // Work is left that no running worker will ask for (a crash requeued
        // it, or a worker ended holding its reservation): a fresh worker takes
        // it. Never after a crash during collection (it would crash again).
        let takers = self
            .procs
            .iter()
            .skip(1)
            .any(|p| !p.ended && !p.mismatch && !p.told_stop && !p.collector);
        if !self.stopping
            && !self.queue.is_empty()
            && !takers
            && self.items.is_some()
            && self.procs[idx].collected
        {
            self.add_worker()?;
        }
        Ok(())
    }

    /// The collector ended: its forks died with it (PR_SET_PDEATHSIG); each
    /// ends when its socket is drained. Unfinished work goes to sessions that
    /// collect ([`Self::add_worker`]).
    fn on_collector_end(&mut self, idx: usize, ended: Ended) -> Result<(), DaemonError> {
        let p = &mut self.procs[idx];
        p.ended = true;
        p.ended_after = Some(self.begun.elapsed());
        p.close();
        if let Some(pid) = p.pid {
            daemon::remove_forwarding(pid);
        }
        let unexpected = !p.finished && !matches!(ended, Ended::Code(0 | 2 | 4));
        if unexpected && self.controller_end.is_none() {
            let _ = std::io::stderr().write_all(&std::mem::take(&mut p.stderr));
            report::warning(&format!(
                "the collecting session ended unexpectedly: {}",
                describe(&ended)
            ));
        }
        // Its `forked` messages all came before its end: a fork it never
        // reported was never made, and no socket will close for it.
        let drained: Vec<usize> = (0..self.procs.len())
            .filter(|&i| {
                let w = &self.procs[i];
                w.forked && !w.ended && (w.eof || w.pid.is_none())
            })
            .collect();
        for i in drained {
            let e = self.procs[i].exit.take().unwrap_or(Ended::Lost);
            self.on_worker_end(i, e)?;
        }
        Ok(())
    }

    /// A worker died without finishing: its running test is reported as a
    /// crash and fails the run; its unfinished items go back in front.
    fn crash(&mut self, idx: usize, ended: &Ended) {
        let p = &mut self.procs[idx];
        let _ = std::io::stderr().write_all(&std::mem::take(&mut p.stderr));
        self.crashes += 1;
        let how = describe(ended);
        // pytest_testnodedown(node, error) on the controller, as pytest-xdist calls it.
        let down = serde_json::json!({"type": "nodedown", "worker": p.id, "error": how});
        let down = down.to_string();
        // Its test in progress: the one it reported starting, else (a worker
        // sends a test's events when the test ends) its first unfinished item.
        let running = p.current.take().or_else(|| {
            let list = self.items.as_ref()?;
            let first = *p.assigned.front()?;
            Some((list[first].nodeid.clone(), serde_json::Value::Null))
        });
        if let Some((nodeid, location)) = running {
            let message = format!(
                "worker '{}' crashed while running '{}': {how}",
                p.id, nodeid
            );
            let crash = serde_json::json!({
                "type": "crash", "worker": p.id, "nodeid": nodeid,
                "location": location, "message": message,
            });
            if let Some(pos) = self
                .items
                .as_ref()
                .and_then(|list| p.assigned.iter().position(|&i| list[i].nodeid == nodeid))
            {
                p.assigned.remove(pos);
            }
            let file = nodeid.split("::").next().unwrap_or("").to_owned();
            self.events.push(Event::Result {
                nodeid,
                file,
                outcome: "failed".into(),
                duration: 0.0,
                location,
                longrepr: serde_json::Value::Null,
                wasxfail: None,
                cached: false,
                output: serde_json::Value::Null,
            });
            self.procs[0].send(&crash.to_string());
        } else if !p.collected {
            self.collect_crash = Some(format!("worker '{}' crashed while collecting: {how}", p.id));
        } else {
            report::warning(&format!(
                "worker '{}' ended unexpectedly between tests: {how}",
                p.id
            ));
        }
        self.procs[0].send(&down);
        let rest: Vec<usize> = self.procs[idx].assigned.drain(..).collect();
        if !rest.is_empty() && !self.stopping {
            self.queue.push_front(Unit {
                indexes: rest,
                weight: 0.0,
            });
        }
    }

    /// Once every worker ended: what never ran is reported, then `done`.
    /// True when the run is over (the controller ended too).
    fn finished(&mut self) -> bool {
        if let Some(c) = self.collector {
            let forks_done = self.procs.iter().skip(1).all(|p| p.ended || p.collector);
            if forks_done && !self.procs[c].ended && (self.procs[c].control.is_some()) {
                // No worker left to replace: the collector ends its session.
                self.procs[c].send(STOP);
                self.procs[c].close();
            }
        }
        let workers_done = self.procs.iter().skip(1).all(|p| p.ended);
        if workers_done && !self.done_sent {
            self.done_sent = true;
            let why = self.collect_crash.clone();
            if let Some(list) = &self.items {
                // Every replacement worker crashed while collecting: what is left never ran.
                for unit in self.queue.drain(..) {
                    for i in unit.indexes {
                        let crash = serde_json::json!({
                            "type": "crash", "worker": "gw?", "nodeid": list[i].nodeid,
                            "location": serde_json::Value::Null,
                            "message": format!("not run: {}", why.clone().unwrap_or_else(|| "every worker ended".into())),
                        });
                        self.procs[0].send(&crash.to_string());
                    }
                }
            } else {
                let text = why.unwrap_or_else(|| "no worker reported its collection".into());
                let abort = serde_json::json!({"type": "abort", "message": text});
                self.procs[0].send(&abort.to_string());
            }
            self.procs[0].send("{\"type\":\"done\"}");
            self.procs[0].close();
        }
        self.controller_end.is_some() && workers_done
    }

    /// RPYTEST_TRACE: how the work was spread.
    fn trace(&self) {
        if std::env::var_os("RPYTEST_TRACE").is_none() {
            return;
        }
        if let Some(t) = self.collected_after {
            report::note(&format!(
                "trace: collection in after {:.2} s ({})",
                t.as_secs_f64(),
                if self.collector.is_some() {
                    "collected once, workers forked"
                } else {
                    "every worker collects"
                }
            ));
        }
        for p in self.procs.iter().skip(1).filter(|p| !p.collector) {
            report::note(&format!(
                "trace: worker {}: {} tests, {:.2} s in tests, ended after {:.2} s",
                p.id,
                p.tests,
                p.busy,
                p.ended_after.map(|d| d.as_secs_f64()).unwrap_or(0.0)
            ));
        }
    }
}
