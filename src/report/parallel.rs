//! What a distributed (`-n`) run says besides pytest's own output (which the
//! controller session writes to the terminal itself).

use super::{note, warning};
use std::io::Write;

/// What a distributed run has to say besides pytest's own output (the
/// controller's terminal): the caller hands these to [`show`].
#[derive(Debug)]
pub enum Notice {
    /// Bytes a worker wrote to its stderr.
    Stderr(Vec<u8>),
    /// A note from starting the daemon.
    Daemon(String),
    /// A worker collected other tests than the collection scheduled: it runs
    /// none of them. `missing`: a few of the scheduled node IDs it lacks.
    Mismatch {
        worker: String,
        theirs: usize,
        scheduled: usize,
        missing: Vec<String>,
    },
    /// The collecting session ended before the run did.
    CollectorEnded { how: String },
    /// A worker died after one test ended and before the next began.
    BetweenTests { worker: String, how: String },
    /// `RPYTEST_TRACE`: how the work was spread.
    Trace(Trace),
}

/// How the work of a distributed run was spread (`RPYTEST_TRACE`).
#[derive(Debug)]
pub struct Trace {
    /// Seconds until the collection arrived, if it did.
    pub collected_after: Option<f64>,
    /// The suite was collected once and the workers forked.
    pub forked: bool,
    pub workers: Vec<WorkerTrace>,
}

/// One worker's share of a distributed run.
#[derive(Debug)]
pub struct WorkerTrace {
    pub id: String,
    pub tests: usize,
    /// Seconds spent in tests.
    pub busy: f64,
    /// Seconds from the start of the run to the worker's end.
    pub ended_after: f64,
}

/// Shows one notice of a distributed run.
pub fn show(notice: Notice) {
    match notice {
        Notice::Stderr(bytes) => {
            let _ = std::io::stderr().write_all(&bytes);
        }
        Notice::Daemon(text) => warning(&text),
        Notice::Mismatch {
            worker,
            theirs,
            scheduled,
            missing,
        } => {
            let example = if missing.is_empty() {
                String::new()
            } else {
                format!(", e.g. it lacks {}", missing.join(", "))
            };
            warning(&format!(
                "worker {worker} collected different tests than the first worker ({theirs} vs {scheduled} items{example}); it runs none of them"
            ));
        }
        Notice::CollectorEnded { how } => {
            warning(&format!("the collecting session ended unexpectedly: {how}"))
        }
        Notice::BetweenTests { worker, how } => warning(&format!(
            "worker '{worker}' ended unexpectedly between tests: {how}"
        )),
        Notice::Trace(trace) => {
            if let Some(t) = trace.collected_after {
                let how = if trace.forked {
                    "collected once, workers forked"
                } else {
                    "every worker collects"
                };
                note(&format!("trace: collection in after {t:.2} s ({how})"));
            }
            for w in trace.workers {
                note(&format!(
                    "trace: worker {}: {} tests, {:.2} s in tests, ended after {:.2} s",
                    w.id, w.tests, w.busy, w.ended_after
                ));
            }
        }
    }
}
