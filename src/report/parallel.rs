//! What a distributed (`-n`) run says besides pytest's own output (which the
//! controller session writes to the terminal itself).

use super::{note, warning};
use crate::parallel::Notice;
use std::io::Write;

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
