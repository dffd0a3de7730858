//! How the sessions of a distributed run end: a worker that finished, one
//! that crashed (its test reported, its work handed on), the collector, the
//! controller, and the end of the run.

use super::dispatch::Dispatch;
use super::process::describe;
use super::schedule::Unit;
use super::{Notice, Trace, WorkerTrace};
use crate::daemon::{self, DaemonError};
use crate::protocol::parallel as msg;
use crate::protocol::ControlMsg;
use crate::session::Ended;

impl Dispatch<'_> {
    /// A fork's socket reached EOF: it ends once its exit status is known too.
    pub(super) fn on_eof(&mut self, idx: usize) -> Result<(), DaemonError> {
        let Some(p) = self.procs.get_mut(idx).filter(|p| p.forked && !p.ended) else {
            return Ok(());
        };
        p.eof = true;
        let part = p.part;
        let gone = self.live_collector(part).is_none();
        let p = &mut self.procs[idx];
        if p.exit.is_some() || gone {
            let ended = p.exit.take().unwrap_or(Ended::Lost);
            self.on_worker_end(idx, ended)?;
        }
        Ok(())
    }

    /// The collector reaped a fork: the worker ends once its socket is drained too.
    pub(super) fn on_worker_exit(&mut self, e: msg::WorkerExit) -> Result<(), DaemonError> {
        let Some(idx) = Some(e.idx).filter(|&i| i < self.procs.len() && self.procs[i].forked)
        else {
            return Ok(());
        };
        let p = &mut self.procs[idx];
        let ended = Ended::from_exit(e.code, e.signal);
        if p.eof || p.control.is_none() && e.code.is_none() && e.signal.is_none() {
            // Drained, or never forked (the collector could not connect it).
            if !p.ended {
                self.on_worker_end(idx, ended)?;
            }
        } else {
            p.exit = Some(ended);
        }
        Ok(())
    }

    pub(super) fn on_controller_end(&mut self, ended: Ended) {
        let c = &mut self.procs[0];
        c.ended = true;
        c.close();
        if let Some(pid) = c.pid {
            daemon::remove_forwarding(pid);
        }
        self.controller_end = Some(ended);
        // Nobody reports any more: stop every worker. Workers that got the
        // CLI's Ctrl-C (or SIGTERM) end by themselves, through pytest's own
        // interrupt path (session fixtures torn down), as xdist's do.
        self.stop_workers();
        if daemon::sessions_signalled() {
            self.left_to_end = Some(std::time::Instant::now());
        } else {
            self.terminate_workers();
        }
    }

    fn terminate_workers(&self) {
        for p in self.procs.iter().skip(1) {
            p.terminate();
        }
    }

    /// How long interrupted workers may take to end by themselves once the
    /// controller ended: pytest-xdist's controller gives its workers as long
    /// (`EXIT_TIMEOUT`) before it kills them.
    pub(super) const GRACE: std::time::Duration = std::time::Duration::from_secs(10);

    /// Nothing arrived for a while: workers left to end by themselves (a
    /// test that ignores SIGINT) are ended once their grace has passed.
    pub(super) fn on_idle(&mut self) {
        if self.left_to_end.is_some_and(|t| t.elapsed() >= Self::GRACE) {
            self.left_to_end = None;
            self.terminate_workers();
        }
    }

    /// Marks session `idx` ended.
    fn close(&mut self, idx: usize) {
        let p = &mut self.procs[idx];
        p.ended = true;
        p.ended_after = Some(self.begun.elapsed());
        p.close();
        if let Some(pid) = p.pid {
            daemon::remove_forwarding(pid);
        }
    }

    pub(super) fn on_worker_end(&mut self, idx: usize, ended: Ended) -> Result<(), DaemonError> {
        if self.procs[idx].abandoned {
            self.close(idx);
            return Ok(());
        }
        if self.procs[idx].collector {
            return self.on_collector_end(idx, ended);
        }
        let part = self.procs[idx].part;
        if let Some(u) = self.procs[idx].reserved.take() {
            self.queues[part].push_front(u);
        }
        self.close(idx);
        self.share_lost(idx);
        self.release_held()?;
        let p = &self.procs[idx];
        let crashed = !p.finished && !matches!(ended, Ended::Code(2 | 4));
        if crashed && self.controller_end.is_none() {
            self.crash(idx, &ended);
            if self.crashes > self.opts.max_restart {
                // pytest-xdist's `--max-worker-restart`: no replacement, every
                // worker stops after its current test (the controller says why).
                self.stop_workers();
            }
        }
        // Work is left that no running worker will ask for (a crash requeued
        // it, or a worker ended holding its reservation): a fresh worker takes
        // it. Never after a crash during collection (it would crash again).
        let takers = self
            .procs
            .iter()
            .skip(1)
            .any(|p| !p.ended && !p.mismatch && !p.told_stop && !p.collector && p.part == part);
        if !self.stopping
            && !self.queues[part].is_empty()
            && !takers
            && self.items.is_some()
            && self.procs[idx].collected
        {
            self.add_worker(part)?;
        }
        Ok(())
    }

    /// The collector ended: its forks died with it (PR_SET_PDEATHSIG); each
    /// ends when its socket is drained. Unfinished work goes to sessions that
    /// collect ([`Self::add_worker`]).
    fn on_collector_end(&mut self, idx: usize, ended: Ended) -> Result<(), DaemonError> {
        self.close(idx);
        let unexpected = !self.procs[idx].finished && !matches!(ended, Ended::Code(0 | 2 | 4));
        if unexpected && self.controller_end.is_none() {
            self.show_stderr(idx);
            (self.notices)(Notice::CollectorEnded {
                how: describe(&ended),
            });
        }
        // Its `forked` messages all came before its end: a fork it never
        // reported was never made, and no socket will close for it.
        let part = self.procs[idx].part;
        let drained: Vec<usize> = (0..self.procs.len())
            .filter(|&i| {
                let w = &self.procs[i];
                w.forked && !w.ended && w.part == part && (w.eof || w.pid.is_none())
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
        self.show_stderr(idx);
        self.crashes += 1;
        let how = describe(ended);
        let worker = self.procs[idx].id.clone();
        // pytest_testnodedown(node, error) on the controller, as pytest-xdist
        // calls it: before the crashed test's report.
        let down = ControlMsg::Nodedown(msg::NodeDown {
            worker: worker.clone(),
            error: how.clone(),
        });
        self.procs[0].send(&down);
        if let Some((nodeid, location)) = self.running_test(idx) {
            let message = format!("worker '{worker}' crashed while running '{nodeid}': {how}");
            self.events
                .push(super::crashed_result(nodeid.clone(), location.clone()));
            let crash = ControlMsg::Crash(msg::Crash {
                worker: worker.clone(),
                nodeid,
                location,
                message,
            });
            self.procs[0].send(&crash);
        } else if !self.procs[idx].collected {
            self.collect_crash = Some(format!("worker '{worker}' crashed while collecting: {how}"));
        } else {
            (self.notices)(Notice::BetweenTests {
                worker: worker.clone(),
                how: how.clone(),
            });
        }
        let rest: Vec<usize> = self.procs[idx].assigned.drain(..).collect();
        if !rest.is_empty() && !self.stopping {
            let part = self.procs[idx].part;
            self.queues[part].push_front(Unit {
                indexes: rest,
                weight: 0.0,
            });
        }
    }

    /// The test worker `idx` was running, taken off its assigned items: the
    /// one it reported starting, else (a worker sends a test's events when the
    /// test ends) its first unfinished item.
    fn running_test(&mut self, idx: usize) -> Option<(String, serde_json::Value)> {
        let list = self.items.as_ref();
        let p = &mut self.procs[idx];
        let running = p.current.take().or_else(|| {
            let first = *p.assigned.front()?;
            Some((list?[first].nodeid.clone(), serde_json::Value::Null))
        })?;
        if let Some(pos) =
            list.and_then(|list| p.assigned.iter().position(|&i| list[i].nodeid == running.0))
        {
            p.assigned.remove(pos);
        }
        Some(running)
    }

    /// Once every worker ended: what never ran is reported, then `done`.
    /// True when the run is over (the controller ended too).
    pub(super) fn finished(&mut self) -> bool {
        for part in 0..self.parts() {
            let Some(c) = self.collectors[part] else {
                continue;
            };
            let forks_done = self
                .procs
                .iter()
                .skip(1)
                .all(|p| p.ended || p.collector || p.part != part);
            if forks_done && !self.procs[c].ended && self.procs[c].control.is_some() {
                // No worker left to replace: the collector ends its session.
                self.procs[c].send(&ControlMsg::Stop);
                self.procs[c].close();
            }
        }
        let workers_done = self.procs.iter().skip(1).all(|p| p.ended);
        if workers_done && !self.done_sent {
            self.done_sent = true;
            self.report_unrun();
            self.procs[0].send(&ControlMsg::Done);
            self.procs[0].close();
        }
        self.controller_end.is_some() && workers_done
    }

    /// Every worker ended: each queued test never ran (every replacement
    /// crashed while collecting), or nothing was collected at all.
    fn report_unrun(&mut self) {
        let why = self.collect_crash.clone();
        let Some(list) = &self.items else {
            let message = why.unwrap_or_else(|| "no worker reported its collection".into());
            self.procs[0].send(&ControlMsg::Abort(msg::Abort { message }));
            return;
        };
        let why = why.unwrap_or_else(|| "every worker ended".into());
        for unit in self.queues.iter_mut().flat_map(|q| q.drain(..)) {
            for i in unit.indexes {
                let crash = ControlMsg::Crash(msg::Crash {
                    worker: "gw?".into(),
                    nodeid: list[i].nodeid.clone(),
                    location: serde_json::Value::Null,
                    message: format!("not run: {why}"),
                });
                self.procs[0].send(&crash);
            }
        }
    }

    /// RPYTEST_TRACE: how the work was spread.
    pub(super) fn trace(&mut self) {
        if std::env::var_os("RPYTEST_TRACE").is_none() {
            return;
        }
        let workers = self
            .procs
            .iter()
            .skip(1)
            .filter(|p| !p.collector)
            .map(|p| WorkerTrace {
                id: p.id.clone(),
                tests: p.tests,
                busy: p.busy,
                ended_after: p.ended_after.map(|d| d.as_secs_f64()).unwrap_or(0.0),
            })
            .collect();
        (self.notices)(Notice::Trace(Trace {
            collected_after: self.collected_after.map(|t| t.as_secs_f64()),
            forked: self.collectors.iter().any(Option::is_some),
            workers,
        }));
    }
}
