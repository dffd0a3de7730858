//! The state of a distributed run and what each session's message does to
//! it: starting workers, handing them their `workerinput` and their work,
//! forwarding their reports to the controller.

use super::process::{self, Launcher, Msg, Proc, Workers};
use super::schedule::{self, Item, Unit};
use super::{Notice, Options, Outcome};
use crate::daemon::{self, DaemonError};
use crate::protocol::parallel::{self as msg, Raw};
use crate::protocol::{ControlMsg, Event, SessionConfig, WorkerMsg};
use crate::session::Ended;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs::File;

/// The state of a distributed run, and what each message does to it.
pub(super) struct Dispatch<'a> {
    pub(super) launcher: Launcher<'a>,
    pub(super) workers: Workers<'a>,
    /// The controller at 0, then the workers in start order.
    pub(super) procs: Vec<Proc>,
    pub(super) opts: &'a Options,
    pub(super) durations: &'a HashMap<String, (String, f64)>,
    pub(super) notices: &'a mut dyn FnMut(Notice),
    /// What the cache records: every worker's results and dependencies, the
    /// first worker's collection, the controller's replays and finish.
    pub(super) events: Vec<Event>,
    /// The collection scheduled (the first worker's).
    pub(super) items: Option<Vec<Item>>,
    /// The work queued for each share of the files (one share unless the
    /// collection is partitioned).
    pub(super) queues: Vec<VecDeque<Unit>>,
    /// Where each share's items start in `items` (a worker's indexes are its
    /// own collector's).
    pub(super) offsets: Vec<usize>,
    /// Partitioned collection: each share's collection, until all arrived.
    pub(super) pending: Vec<Option<(usize, msg::Collection)>>,
    /// Workers that asked for work before every share was collected.
    pub(super) deferred: Vec<usize>,
    pub(super) stopping: bool,
    pub(super) crashes: usize,
    pub(super) done_sent: bool,
    pub(super) controller_end: Option<Ended>,
    /// When the controller ended while interrupted workers were left to end
    /// by themselves (see `on_controller_end`).
    pub(super) left_to_end: Option<std::time::Instant>,
    pub(super) collect_crash: Option<String>,
    pub(super) begun: std::time::Instant,
    /// `--no-daemon`: sessions share our process group and take Ctrl-C themselves.
    fresh: bool,
    /// Each share's collector, once it reported that it forks its workers.
    pub(super) collectors: Vec<Option<usize>>,
    /// When the collection arrived (RPYTEST_TRACE).
    pub(super) collected_after: Option<std::time::Duration>,
    /// Each worker's `workerinput` as the controller's plugins configured it
    /// (`pytest_configure_node`), by worker ID.
    inputs: HashMap<String, Raw>,
    /// Workers waiting for theirs: started sessions, or forks not yet asked for.
    awaiting: Vec<usize>,
    /// Worker IDs the controller was asked to configure.
    requested: HashSet<String>,
    /// With a fork socket, the first worker collects and forks the others.
    forks: bool,
    /// Workers that collect for themselves: their collections, held until
    /// every one is in (nothing runs before they are compared, as under
    /// pytest-xdist).
    pub(super) held: Vec<(usize, msg::Collection)>,
    /// The partitioned collection was given up for a collect-once one.
    pub(super) collected_once_instead: bool,
}

impl<'a> Dispatch<'a> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        launcher: Launcher<'a>,
        base: &'a SessionConfig,
        env: BTreeMap<String, String>,
        opts: &'a Options,
        durations: &'a HashMap<String, (String, f64)>,
        notices: &'a mut dyn FnMut(Notice),
        fresh: bool,
        fork_socket: Option<String>,
    ) -> Result<Dispatch<'a>, DaemonError> {
        let forks = fork_socket.is_some();
        let shares = match forks && opts.partitionable && opts.dist != schedule::Dist::No {
            true => {
                super::partition::assign(&super::partition::timed(durations, base), opts.workers)
            }
            false => None,
        };
        let parts = shares.as_ref().map_or(1, Vec::len);
        let workers = Workers {
            base,
            env,
            uid: super::testrun_uid(),
            count: opts.asked.max(opts.workers),
            next: 0,
            devnull_in: File::open("/dev/null")?,
            devnull_out: std::fs::OpenOptions::new().write(true).open("/dev/null")?,
            fork_socket,
            shares,
        };
        Ok(Dispatch {
            launcher,
            workers,
            procs: Vec::new(),
            opts,
            durations,
            notices,
            events: Vec::new(),
            items: None,
            queues: vec![VecDeque::new(); parts],
            offsets: vec![0; parts],
            pending: (0..parts).map(|_| None).collect(),
            deferred: Vec::new(),
            stopping: false,
            crashes: 0,
            done_sent: false,
            controller_end: None,
            left_to_end: None,
            collect_crash: None,
            begun: std::time::Instant::now(),
            fresh,
            collectors: vec![None; parts],
            collected_after: None,
            inputs: HashMap::new(),
            awaiting: Vec::new(),
            requested: HashSet::new(),
            forks,
            held: Vec::new(),
            collected_once_instead: false,
        })
    }

    /// Starts the controller and the first worker (the collector), or every
    /// worker when none can fork.
    pub(super) fn start(&mut self) -> Result<(), DaemonError> {
        self.start_controller()?;
        if self.parts() > 1 {
            // One collector per share of the files, collecting at once.
            for part in 0..self.parts() {
                self.start_worker(part, true)?;
            }
            return Ok(());
        }
        let first = if self.forks {
            1
        } else {
            self.opts.workers.max(1)
        };
        for _ in 0..first {
            self.start_worker(0, false)?;
        }
        Ok(())
    }

    /// The controller: the user's terminal, no recording, no collection.
    fn start_controller(&mut self) -> Result<(), DaemonError> {
        let cfg = SessionConfig {
            rootdir: self.workers.base.rootdir.clone(),
            events: true,
            record: false,
            role: Some("controller".into()),
            xdist_compat: true,
            testrun_uid: Some(self.workers.uid.clone()),
            worker_count: Some(self.opts.workers.max(1)),
            ..SessionConfig::default()
        };
        let env = self.workers.env.clone();
        let launched = self.launcher.launch(0, &cfg, &env, [0, 1, 2]);
        self.daemon_notes();
        let (control, pid) = launched?;
        self.procs.push(Proc {
            id: "controller".into(),
            pid,
            writer: Some(process::background_writer(control)),
            ..Proc::default()
        });
        if let Some(p) = pid {
            daemon::add_forwarding(p);
        }
        Ok(())
    }

    /// What starting the daemon had to say.
    fn daemon_notes(&mut self) {
        for n in std::mem::take(&mut self.launcher.notes) {
            (self.notices)(Notice::Daemon(n));
        }
    }

    /// Hands the controller the messages held for it.
    pub(super) fn flush_controller(&mut self) {
        if let Some(c) = self.procs.first_mut() {
            c.flush();
        }
    }

    /// What the run produced, once it is over.
    pub(super) fn outcome(self) -> Outcome {
        Outcome {
            ended: self.controller_end.unwrap_or(Ended::Lost),
            events: self.events,
            crashes: self.crashes,
        }
    }

    pub(super) fn on_msg(&mut self, m: Msg) -> Result<(), DaemonError> {
        match m {
            Msg::Stderr(idx, bytes) => self.on_stderr(idx, bytes),
            Msg::Lines(idx, ms) => {
                for m in ms {
                    self.on_msg(Msg::Line(idx, m))?;
                }
            }
            Msg::Line(0, m) => self.on_controller_msg(m),
            Msg::Line(idx, m) => self.on_worker_msg(idx, m)?,
            Msg::Ended(0, ended) => self.on_controller_end(ended),
            Msg::Ended(idx, ended) => self.on_worker_end(idx, ended)?,
            Msg::Attach(idx, file) => self.on_attach(idx, file),
            Msg::Eof(idx) => self.on_eof(idx)?,
        }
        Ok(())
    }

    fn on_stderr(&mut self, idx: usize, bytes: Vec<u8>) {
        let p = &mut self.procs[idx];
        if p.abandoned {
            return;
        }
        if p.collected {
            (self.notices)(Notice::Stderr(bytes));
        } else {
            // Held back until the worker collected: a usage error is the controller's to show.
            p.stderr.extend_from_slice(&bytes);
        }
    }

    /// Shows what worker `idx` wrote to stderr so far.
    pub(super) fn show_stderr(&mut self, idx: usize) {
        let held = std::mem::take(&mut self.procs[idx].stderr);
        if !held.is_empty() {
            (self.notices)(Notice::Stderr(held));
        }
    }

    fn started(&mut self, idx: usize, pid: i32) {
        self.procs[idx].pid = Some(pid);
        // A fork of the collector is in the collector's process group, which
        // the CLI's signals reach already (a second SIGINT would cut its
        // session's teardown short), unless that group is the CLI's own
        // (`--no-daemon` on a terminal): then it is signalled on its own.
        if !self.procs[idx].forked || self.fresh && daemon::fresh_sessions_share_our_group() {
            daemon::add_forwarding(pid);
        }
    }

    pub(super) fn stop_workers(&mut self) {
        self.stopping = true;
        self.queues.iter_mut().for_each(VecDeque::clear);
        for p in self.procs.iter_mut().skip(1) {
            p.send(&ControlMsg::Stop);
        }
    }

    /// Asks the collector for one more worker (a fork of its collected
    /// session), once the controller configured that worker.
    pub(super) fn fork_worker(&mut self, part: usize, id: Option<String>) {
        let id = id.unwrap_or_else(|| self.workers.next_id());
        let idx = self.procs.len();
        self.procs.push(Proc {
            id,
            forked: true,
            collected: true,
            part,
            ..Proc::default()
        });
        self.provide_input(idx);
    }

    /// Starts a worker session (it collects, or it is the collector).
    pub(super) fn start_worker(&mut self, part: usize, collector: bool) -> Result<(), DaemonError> {
        let started = self
            .workers
            .start(&mut self.launcher, &mut self.procs, part, collector);
        self.daemon_notes();
        started?;
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
                let m = ControlMsg::ConfigureNode(msg::NodeRef { worker: id });
                self.procs[0].send(&m);
            }
            return;
        };
        if self.procs[idx].forked {
            let Some(c) = self.live_collector(self.procs[idx].part) else {
                return;
            };
            let m = ControlMsg::Fork(msg::Fork {
                worker: id,
                idx,
                workerinput: input,
            });
            self.procs[c].send(&m);
        } else {
            let m = ControlMsg::Workerinput(msg::WorkerInput { data: input });
            self.procs[idx].send(&m);
        }
    }

    /// The collector of share `part`, while it runs.
    pub(super) fn live_collector(&self, part: usize) -> Option<usize> {
        self.collectors
            .get(part)
            .copied()
            .flatten()
            .filter(|&c| !self.procs[c].ended)
    }

    /// How many shares the files are collected in (1: collected once).
    pub(super) fn parts(&self) -> usize {
        self.queues.len()
    }

    /// The controller configured nodes: their workers get their `workerinput`.
    fn on_nodes(&mut self, nodes: msg::Nodes) {
        self.inputs.extend(nodes.nodes);
        for idx in std::mem::take(&mut self.awaiting) {
            if !self.procs[idx].ended && !self.procs[idx].abandoned {
                self.provide_input(idx);
            }
        }
    }

    /// Starts a worker to take queued work: a fork of the collector while it
    /// is there, else a session that collects.
    pub(super) fn add_worker(&mut self, part: usize) -> Result<(), DaemonError> {
        match self.live_collector(part) {
            Some(_) => self.fork_worker(part, None),
            None => self.start_worker(part, false)?,
        }
        Ok(())
    }

    fn on_attach(&mut self, idx: usize, file: File) {
        if let Some(p) = self.procs.get_mut(idx).filter(|p| p.forked) {
            p.control = Some(file);
        }
    }

    fn on_controller_msg(&mut self, m: WorkerMsg) {
        match m {
            WorkerMsg::Event(Event::Started { pid }) => self.started(0, pid),
            WorkerMsg::Nodes(nodes) => self.on_nodes(nodes),
            // -x / --maxfail reached.
            WorkerMsg::Stop => self.stop_workers(),
            WorkerMsg::Event(
                e @ (Event::Result { .. } | Event::CachedResults { .. } | Event::Finish { .. }),
            ) => self.events.push(e),
            _ => {}
        }
    }

    fn on_worker_msg(&mut self, idx: usize, m: WorkerMsg) -> Result<(), DaemonError> {
        if self.procs[idx].abandoned {
            return Ok(());
        }
        match m {
            WorkerMsg::Unpartitionable(u) => self.on_unpartitionable(idx, u)?,
            WorkerMsg::Forked(f) => {
                if let Some(p) = self.procs.get_mut(f.idx).filter(|p| p.pid.is_none()) {
                    p.pid = Some(f.pid);
                }
            }
            WorkerMsg::WorkerExit(e) => self.on_worker_exit(e)?,
            WorkerMsg::Collection(c) => self.on_collection(idx, c)?,
            WorkerMsg::Want => self.on_want(idx),
            WorkerMsg::Logstart(mut l) => {
                let p = &mut self.procs[idx];
                p.current = Some((l.nodeid.clone(), l.location.clone()));
                l.worker = Some(p.id.clone());
                self.procs[0].send(&ControlMsg::Logstart(l));
            }
            WorkerMsg::Logfinish(mut l) => {
                self.finish_test(idx, &l.nodeid);
                l.worker = Some(self.procs[idx].id.clone());
                self.procs[0].send(&ControlMsg::Logfinish(l));
            }
            WorkerMsg::Report(mut r) => {
                r.worker = Some(self.procs[idx].id.clone());
                self.procs[0].send(&ControlMsg::Report(r));
            }
            other => self.on_worker_other(idx, other),
        }
        Ok(())
    }

    /// A worker's message that is neither scheduling nor a test's progress.
    fn on_worker_other(&mut self, idx: usize, m: WorkerMsg) {
        let worker = Some(self.procs[idx].id.clone());
        let forward = match m {
            WorkerMsg::Warning(mut w) => {
                w.worker = worker;
                ControlMsg::Warning(w)
            }
            WorkerMsg::Ready(mut r) => {
                r.worker = worker;
                ControlMsg::Ready(r)
            }
            WorkerMsg::Workerfinished(mut w) => {
                w.worker = worker;
                ControlMsg::Workerfinished(w)
            }
            WorkerMsg::InternalError(mut e) => {
                e.worker = worker;
                ControlMsg::InternalError(e)
            }
            WorkerMsg::Event(e) => return self.on_worker_event(idx, e),
            _ => return,
        };
        self.procs[0].send(&forward);
    }

    fn on_worker_event(&mut self, idx: usize, e: Event) {
        match e {
            Event::Started { pid } => self.started(idx, pid),
            Event::Collected { .. } => self.procs[idx].collected_event = Some(e),
            Event::Finish { .. } => self.procs[idx].finished = true,
            Event::Result { duration, .. } => {
                self.procs[idx].tests += 1;
                self.procs[idx].busy += duration;
                self.events.push(e);
            }
            Event::NodeWarning { .. }
            | Event::CachedResults { .. }
            | Event::Deps { .. }
            | Event::Edges { .. }
            | Event::Installed { .. } => self.events.push(e),
            _ => {}
        }
    }

    /// Test `nodeid` of worker `idx` ended: it is no longer in progress or owed.
    fn finish_test(&mut self, idx: usize, nodeid: &str) {
        let p = &mut self.procs[idx];
        p.current = None;
        if let Some(list) = &self.items {
            if let Some(pos) = p.assigned.iter().position(|&i| list[i].nodeid == nodeid) {
                p.assigned.remove(pos);
            }
        }
    }

    pub(super) fn on_want(&mut self, idx: usize) {
        let held = !self.held.is_empty();
        if (self.parts() > 1 || held) && self.items.is_none() && !self.stopping {
            // A collector that cannot fork runs its share itself: it asks
            // before the other shares are collected.
            self.deferred.push(idx);
            return;
        }
        let part = self.procs[idx].part;
        let sharing = match self.parts() {
            1 => self.opts.workers,
            _ => 1,
        };
        let unit = if self.stopping || self.procs[idx].mismatch {
            None
        } else if let Some(u) = self.procs[idx].reserved.take() {
            Some(u)
        } else if let Some(u) = schedule::take_batch(&mut self.queues[part], sharing) {
            Some(u)
        } else {
            // Nothing queued: take the first unit kept for a worker that has
            // not asked yet (it may still be collecting), rather than idle.
            self.procs
                .iter_mut()
                .skip(1)
                .filter(|p| p.part == part)
                .find_map(|p| p.reserved.take())
        };
        let offset = self.offsets[part];
        let p = &mut self.procs[idx];
        match unit {
            Some(u) => {
                p.assigned.extend(u.indexes.iter().copied());
                let indexes = u.indexes.iter().map(|i| i - offset).collect();
                p.send(&ControlMsg::Run(msg::Run { indexes }));
            }
            None => {
                p.told_stop = true;
                p.send(&ControlMsg::Stop);
            }
        }
    }

    /// The first collection is scheduled and sent to the controller, and the
    /// collector forks the workers (or, unable to, they are started); later
    /// collections must list the same items (else that worker gets no work).
    fn on_collection(&mut self, idx: usize, c: msg::Collection) -> Result<(), DaemonError> {
        self.procs[idx].collected = true;
        self.show_stderr(idx);
        if self.parts() > 1 && self.items.is_none() {
            if let Some(why) = c.whole.clone() {
                self.collect_once_instead(Some(idx), &why)?;
                return self.first_collection(idx, c);
            }
            return self.share_collected(idx, c);
        }
        match &self.items {
            None => self.first_collection(idx, c),
            Some(all) => {
                let part = self.procs[idx].part;
                let first = &all[self.offsets[part]..self.share_end(part)];
                let same = first.len() == c.items.len()
                    && first.iter().zip(&c.items).all(|(a, b)| a.nodeid == b.0);
                if !same {
                    self.mismatch(idx, &c);
                }
                Ok(())
            }
        }
    }

    fn first_collection(&mut self, idx: usize, c: msg::Collection) -> Result<(), DaemonError> {
        if !c.fork && self.opts.workers > 1 && !c.stop {
            // Every worker collects for itself: as pytest-xdist, nothing
            // runs until every collection is in and they agree.
            if self.held.is_empty() {
                self.start_collecting_workers()?;
            }
            self.held.push((idx, c));
            return self.release_held();
        }
        self.schedule_collection(idx, c)
    }

    /// Starts the workers that collect for themselves, next to the first.
    fn start_collecting_workers(&mut self) -> Result<(), DaemonError> {
        let live = self.procs.iter().skip(1).filter(|p| !p.abandoned).count();
        for _ in live..self.opts.workers.max(1) {
            self.start_worker(0, false)?;
        }
        Ok(())
    }

    /// Once every worker that collects for itself collected (or ended): the
    /// first collection is scheduled, or, when another worker collected
    /// other tests, pytest-xdist's collection error for each and no test.
    pub(super) fn release_held(&mut self) -> Result<(), DaemonError> {
        if self.held.is_empty() || self.items.is_some() {
            return Ok(());
        }
        let waiting = self
            .procs
            .iter()
            .skip(1)
            .any(|p| !p.abandoned && !p.collector && !p.forked && !p.collected && !p.ended);
        if waiting {
            return Ok(());
        }
        let mut held = std::mem::take(&mut self.held);
        let (first_idx, mut first) = held.remove(0);
        let first_id = self.procs[first_idx].id.clone();
        for (idx, c) in &held {
            let same = first.items.len() == c.items.len()
                && first.items.iter().zip(&c.items).all(|(a, b)| a.0 == b.0);
            if !same {
                self.procs[*idx].mismatch = true;
                first.different.push(msg::Different {
                    first: first_id.clone(),
                    worker: self.procs[*idx].id.clone(),
                    items: c.items.iter().map(|i| i.0.clone()).collect(),
                });
            }
        }
        if !first.different.is_empty() {
            self.procs[first_idx].mismatch = true;
            self.stopping = true;
        }
        self.schedule_collection(first_idx, first)?;
        for w in std::mem::take(&mut self.deferred) {
            if !self.procs[w].ended {
                self.on_want(w);
            }
        }
        Ok(())
    }

    fn schedule_collection(&mut self, idx: usize, c: msg::Collection) -> Result<(), DaemonError> {
        if let Some(e) = self.procs[idx].collected_event.take() {
            self.events.push(e);
        }
        let list: Vec<Item> = c
            .items
            .iter()
            .map(|(nodeid, file, group)| Item {
                nodeid: nodeid.clone(),
                file: file.clone(),
                group: group.clone(),
            })
            .collect();
        self.collected_after = Some(self.begun.elapsed());
        let go = !c.stop && !self.stopping;
        if c.fork {
            self.become_collector(idx, go);
        } else if go {
            // The first worker could not fork: the others collect themselves.
            self.start_collecting_workers()?;
        }
        if go {
            self.queues[0] =
                schedule::units(&list, self.durations, self.opts.dist, self.opts.workers);
            // Every worker's first unit is kept for it (longest first), so
            // a worker that collected first does not take a small suite whole.
            for p in self
                .procs
                .iter_mut()
                .skip(1)
                .filter(|p| !p.ended && !p.collector && !p.abandoned && !p.mismatch)
            {
                p.reserved = self.queues[0].pop_front();
            }
        }
        self.items = Some(list);
        self.procs[0].send(&ControlMsg::Collection(c));
        Ok(())
    }

    /// Worker `idx` collected once and forks the others: gw0.. as pytest-xdist names them.
    fn become_collector(&mut self, idx: usize, go: bool) {
        let p = &mut self.procs[idx];
        p.collector = true;
        p.id = "collector".into();
        self.collectors[0] = Some(idx);
        self.workers.next = 0;
        if go {
            for _ in 0..self.opts.workers.max(1) {
                self.fork_worker(0, None);
            }
        }
    }

    /// Worker `idx` collected other tests than the first worker: it gets no work.
    fn mismatch(&mut self, idx: usize, c: &msg::Collection) {
        let p = &mut self.procs[idx];
        p.mismatch = true;
        let part = p.part;
        if let Some(u) = p.reserved.take() {
            self.queues[part].push_front(u);
        }
        let end = self.share_end(part);
        let all = self.items.as_deref().unwrap_or_default();
        let first = all.get(self.offsets[part]..end).unwrap_or_default();
        let ours: HashSet<&str> = c.items.iter().map(|i| i.0.as_str()).collect();
        let missing: Vec<String> = first
            .iter()
            .map(|i| i.nodeid.as_str())
            .filter(|n| !ours.contains(n))
            .take(5)
            .map(str::to_owned)
            .collect();
        (self.notices)(Notice::Mismatch {
            worker: self.procs[idx].id.clone(),
            theirs: c.items.len(),
            scheduled: first.len(),
            missing,
        });
    }
}
