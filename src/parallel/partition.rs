//! Partitioned collection for `-n N`: N collectors each collect only their
//! share of the test files, on N cores at once, and each forks one worker
//! that runs what its collector collected.
//!
//! The shares come from the durations of earlier runs: files longest first,
//! each to the share with the least time so far. A file no run has timed
//! (every file, on a first run) goes to the share its path hashes to
//! (CRC-32 of the rootdir-relative path, modulo N: `python/rpytest/parallel.py`
//! decides it while collecting).
//!
//! Partitioning is the default; the suite is collected once instead when a
//! collector finds that a share's collection would not be what the whole
//! collection gives it: an implementation of a hook that sees the whole item
//! list (`pytest_collection`, `pytest_collection_modifyitems`,
//! `pytest_collection_finish`, `pytest_deselected`) from a conftest or from a
//! plugin not known to act item by item, or project code that read the pid
//! or the worker id while collecting ([`Dispatch::on_unpartitionable`]). Every collector runs the same command line; another share's
//! test module is imported where pytest would import it (so module-level
//! side effects are those of a full collection, as in every pytest-xdist
//! worker) but yields no items, so node IDs are pytest's and the costly part
//! of a large collection (making the items: parametrization, fixtures'
//! closures) is split. Work never moves between shares: the balance rests on
//! the recorded durations.

use crate::protocol::parallel::Partition;
use std::collections::{BTreeMap, HashMap};

/// The files of each of `count` shares, from `durations` (node ID -> (file,
/// seconds)). With nothing timed every share is empty: each file goes to the
/// share its path hashes to (a first run is partitioned too).
pub fn assign(durations: &HashMap<String, (String, f64)>, count: usize) -> Option<Vec<Partition>> {
    if count < 2 {
        return None;
    }
    let mut per_file: BTreeMap<&str, f64> = BTreeMap::new();
    for (file, secs) in durations.values() {
        *per_file.entry(file.as_str()).or_default() += secs.max(0.0);
    }
    let mut files: Vec<(&str, f64)> = per_file.into_iter().collect();
    // Longest first; equal times in path order (deterministic).
    files.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let mut shares: Vec<Partition> = (0..count)
        .map(|index| Partition {
            index,
            count,
            files: Vec::new(),
            others: Vec::new(),
        })
        .collect();
    let mut load = vec![0.0f64; count];
    for (file, secs) in files {
        let least = (0..count)
            .min_by(|&a, &b| {
                load[a]
                    .total_cmp(&load[b])
                    .then(shares[a].files.len().cmp(&shares[b].files.len()))
            })
            .unwrap_or(0);
        load[least] += secs;
        shares[least].files.push(file.to_owned());
    }
    Some(shares)
}

/// The durations of the files this session's collectors make items of: not
/// another rule group's or shard's (`exclude_files`), not a cached file's
/// (`skip_files`, replayed by every collector).
pub fn timed(
    durations: &HashMap<String, (String, f64)>,
    base: &crate::protocol::SessionConfig,
) -> HashMap<String, (String, f64)> {
    let left_out: std::collections::HashSet<&str> = base
        .exclude_files
        .iter()
        .chain(&base.skip_files)
        .map(String::as_str)
        .collect();
    durations
        .iter()
        .filter(|(_, (file, _))| !left_out.contains(file.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Every file of the shares other than `index` (what its collector skips).
pub fn others(shares: &[Partition], index: usize) -> Vec<String> {
    shares
        .iter()
        .filter(|p| p.index != index)
        .flat_map(|p| p.files.iter().cloned())
        .collect()
}

use super::dispatch::Dispatch;
use super::process::worker_name;
use super::schedule::{self, Item};
use crate::daemon::DaemonError;
use crate::protocol::parallel::{self as msg, Raw};
use crate::protocol::{ControlMsg, Event};
use std::collections::HashSet;

impl Dispatch<'_> {
    /// A collector found that the collection cannot be split. Found before
    /// collecting, every collector finds it: share 0's collects the whole
    /// suite, the others end. Found later (a subdirectory's conftest, the
    /// pid read while collecting): every collector is given up and one
    /// session collects the suite once.
    pub(super) fn on_unpartitionable(
        &mut self,
        idx: usize,
        u: msg::Unpartitionable,
    ) -> Result<(), DaemonError> {
        self.procs[idx].abandoned = true;
        if self.parts() < 2 || self.items.is_some() {
            return Ok(());
        }
        if u.early && self.procs[idx].part != 0 {
            return Ok(());
        }
        self.collect_once_instead(None, &u.reason)?;
        self.start_worker(0, false)
    }

    /// Gives up the partitioned collection: every collector but `keep` is
    /// abandoned (told to stop; it ends by itself), and the run has one
    /// share, collected by `keep` or, without it, by a session started next.
    pub(super) fn collect_once_instead(
        &mut self,
        keep: Option<usize>,
        reason: &str,
    ) -> Result<(), DaemonError> {
        for i in 1..self.procs.len() {
            let p = &mut self.procs[i];
            if Some(i) != keep && !p.abandoned && !p.ended {
                p.abandoned = true;
                p.send(&ControlMsg::Stop);
            }
        }
        self.queues = vec![VecDeque::new()];
        self.offsets = vec![0];
        self.pending = vec![None];
        self.collectors = vec![None];
        self.deferred.clear();
        self.workers.shares = None;
        self.workers.next = match keep {
            Some(k) => {
                self.procs[k].part = 0;
                self.procs[k].id = worker_name(0);
                // It has the fork socket: workers started next collect themselves.
                self.workers.fork_socket = None;
                1
            }
            None => 0,
        };
        self.collected_once_instead = true;
        if std::env::var_os("RPYTEST_TRACE").is_some() {
            let line = format!(
                "rpytest: trace: collection not partitioned: {reason}; collected once, after {:.2} s\n",
                self.begun.elapsed().as_secs_f64()
            );
            (self.notices)(super::Notice::Stderr(line.into_bytes()));
        }
        Ok(())
    }

    /// Where share `part`'s items end in the merged list.
    pub(super) fn share_end(&self, part: usize) -> usize {
        let len = self.items.as_ref().map_or(0, Vec::len);
        self.offsets.get(part + 1).copied().unwrap_or(len)
    }

    /// The collector of one share reported its collection: kept until every
    /// share's is in, then merged for the controller, scheduled per share,
    /// and each share's worker forked.
    pub(super) fn share_collected(
        &mut self,
        idx: usize,
        c: msg::Collection,
    ) -> Result<(), DaemonError> {
        let part = self.procs[idx].part;
        if let Some(e) = self.procs[idx].collected_event.take() {
            self.events.push(e);
        }
        self.pending[part] = Some((idx, c));
        if self.pending.iter().any(Option::is_none) {
            return Ok(());
        }
        let shares: Vec<(usize, msg::Collection)> =
            self.pending.iter_mut().filter_map(Option::take).collect();
        self.collected_after = Some(self.begun.elapsed());
        dedupe_collected_files(&mut self.events);
        // One list: each share's items in turn. A node two collectors both
        // collected (a file only a plugin collects, which no share skips)
        // runs in the first share only.
        let mut list: Vec<Item> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut twice: HashSet<usize> = HashSet::new();
        for (k, (_, c)) in shares.iter().enumerate() {
            self.offsets[k] = list.len();
            for (nodeid, file, group) in &c.items {
                if !seen.insert(nodeid.clone()) {
                    twice.insert(list.len());
                }
                list.push(Item {
                    nodeid: nodeid.clone(),
                    file: file.clone(),
                    group: group.clone(),
                });
            }
        }
        let merged = merge(&shares, &list, &twice);
        if std::env::var_os("RPYTEST_TRACE").is_some() {
            let sizes: Vec<String> = shares.iter().map(|s| s.1.items.len().to_string()).collect();
            let line = format!(
                "rpytest: trace: collection partitioned: {} items per share, after {:.2} s\n",
                sizes.join(" + "),
                self.begun.elapsed().as_secs_f64()
            );
            (self.notices)(super::Notice::Stderr(line.into_bytes()));
        }
        let go = !merged.stop && !self.stopping;
        self.items = Some(list);
        for (k, (cidx, c)) in shares.iter().enumerate() {
            if c.fork {
                let p = &mut self.procs[*cidx];
                p.collector = true;
                p.id = format!("collector{k}");
                self.collectors[k] = Some(*cidx);
            }
            if go {
                self.queues[k] = self.share_units(k, &twice);
            }
        }
        if go {
            // Each collector forks its share's worker, named as pytest-xdist
            // names the first workers; a collector that cannot fork (it
            // runs a thread) runs its share itself.
            for k in 0..self.parts() {
                if self.collectors[k].is_some() {
                    self.fork_worker(k, Some(worker_name(k)));
                }
            }
        }
        self.workers.next = self.workers.next.max(self.parts());
        self.procs[0].send(&ControlMsg::Collection(merged));
        for w in std::mem::take(&mut self.deferred) {
            if !self.procs[w].ended {
                self.on_want(w);
            }
        }
        Ok(())
    }

    /// Share `k`'s work, longest first, as global indexes.
    fn share_units(&self, k: usize, twice: &HashSet<usize>) -> VecDeque<schedule::Unit> {
        let all = self.items.as_deref().unwrap_or_default();
        let keep: Vec<usize> = (self.offsets[k]..self.share_end(k))
            .filter(|g| !twice.contains(g))
            .collect();
        let sub: Vec<Item> = keep.iter().map(|&g| all[g].clone()).collect();
        let mut units = schedule::units(&sub, self.durations, self.opts.dist, 1);
        for u in units.iter_mut() {
            for i in u.indexes.iter_mut() {
                *i = keep[*i];
            }
        }
        units
    }

    /// A share's collector ended before every share was collected: the
    /// other collectors wait for nothing, the run ends (nothing collected).
    pub(super) fn share_lost(&mut self, idx: usize) {
        let p = &self.procs[idx];
        if self.parts() > 1 && self.items.is_none() && !p.collected {
            self.stop_workers();
        }
    }
}

use std::collections::VecDeque;

/// Each file's `collected` event once (files only a plugin collects are
/// collected by every share).
fn dedupe_collected_files(events: &mut [Event]) {
    let mut seen: HashSet<String> = HashSet::new();
    for e in events.iter_mut() {
        if let Event::Collected { files } = e {
            files.retain(|f| seen.insert(f.file.clone()));
        }
    }
}

/// The JSON list in `raw` (empty when it is none).
fn list_of(raw: &Raw) -> Vec<serde_json::Value> {
    serde_json::from_str(raw.get()).unwrap_or_default()
}

fn raw_list(values: Vec<serde_json::Value>) -> Raw {
    let text = serde_json::to_string(&values).unwrap_or_else(|_| "[]".into());
    serde_json::value::RawValue::from_string(text)
        .unwrap_or_else(|_| serde_json::value::RawValue::from_string("[]".into()).unwrap())
}

/// The shares' collections as one, as a single collector would have
/// reported it: every item once, every failed or skipped collect report
/// once (by node ID), every deselected node and warning once.
fn merge(
    shares: &[(usize, msg::Collection)],
    list: &[Item],
    twice: &HashSet<usize>,
) -> msg::Collection {
    let items = list
        .iter()
        .enumerate()
        .filter(|(g, _)| !twice.contains(g))
        .map(|(_, i)| (i.nodeid.clone(), i.file.clone(), i.group.clone()))
        .collect();
    let mut reports = Vec::new();
    let mut report_ids: HashSet<String> = HashSet::new();
    let mut deselected = Vec::new();
    let mut deselected_ids: HashSet<String> = HashSet::new();
    let mut replay = Vec::new();
    let mut replay_ids: HashSet<String> = HashSet::new();
    let mut warnings = Vec::new();
    let mut warning_texts: HashSet<String> = HashSet::new();
    let mut numcollected = 0;
    for (_, c) in shares {
        numcollected += c.numcollected;
        for r in list_of(&c.reports) {
            let id = r.get("nodeid").and_then(|v| v.as_str()).unwrap_or("");
            if report_ids.insert(id.to_owned()) {
                reports.push(r);
            }
        }
        for d in &c.deselected {
            if deselected_ids.insert(d.clone()) {
                deselected.push(d.clone());
            } else {
                numcollected = numcollected.saturating_sub(1);
            }
        }
        // Cached files are dropped (and replayed) by every share: once each.
        for r in list_of(&c.replay) {
            let id = r.get("nodeid").and_then(|v| v.as_str()).unwrap_or("");
            if replay_ids.insert(id.to_owned()) {
                replay.push(r);
            }
        }
        for w in list_of(&c.warnings) {
            if warning_texts.insert(w.to_string()) {
                warnings.push(w);
            }
        }
    }
    let first = shares.first().map(|s| &s.1);
    msg::Collection {
        worker: first.map(|c| c.worker.clone()).unwrap_or_default(),
        items,
        numcollected: numcollected.saturating_sub(twice.len()),
        stop: shares.iter().any(|s| s.1.stop),
        fork: shares.iter().all(|s| s.1.fork),
        reports: raw_list(reports),
        deselected,
        replay: raw_list(replay),
        warnings: raw_list(warnings),
        whole: None,
        different: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed(rows: &[(&str, &str, f64)]) -> HashMap<String, (String, f64)> {
        rows.iter()
            .map(|(n, f, s)| (n.to_string(), (f.to_string(), *s)))
            .collect()
    }

    #[test]
    fn files_go_longest_first_to_the_least_loaded_share() {
        let d = timed(&[
            ("a.py::t1", "a.py", 5.0),
            ("a.py::t2", "a.py", 1.0),
            ("b.py::t", "b.py", 4.0),
            ("c.py::t", "c.py", 2.0),
            ("d.py::t", "d.py", 1.0),
        ]);
        let s = assign(&d, 2).unwrap();
        // a (6 s), then b (4 s) and c (2 s) to the other share; d ties (6 s
        // each) and goes to the share with fewer files.
        assert_eq!(s[0].files, vec!["a.py", "d.py"]);
        assert_eq!(s[1].files, vec!["b.py", "c.py"]);
        assert_eq!(others(&s, 0), vec!["b.py", "c.py"]);
        // Nothing timed: empty shares (each file goes by the CRC of its path).
        let untimed = assign(&HashMap::new(), 2).unwrap();
        assert!(untimed.iter().all(|p| p.files.is_empty()));
        assert!(assign(&d, 1).is_none());
    }
}
