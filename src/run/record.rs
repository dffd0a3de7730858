//! After a session: store its results, the dependencies it recorded, the
//! keys results are stored under (computed after the run, in the run's key
//! context, refreshed), the collection signature and the run's history; a
//! [`RunSummary`] says what the cache served, for the caller to report.
//!
//! Recording is in stages: what the session's events say ([`Gathered`]),
//! the dependencies and search roots it taught, the keys and entries to
//! store ([`Stored`]), then the store's writes.

use super::keys::KeyContext;
use super::outcomes::write_outcomes;
use super::plan::{now, Plan};
use crate::inputs::key::{self, Inputs, Key};
use crate::outcome::Outcome;
use crate::protocol::{CachedNode, CollectedFile, Event};
use crate::report;
use crate::settings::Invocation;
use crate::store::{CoverageRow, FileEntry, NodeResult, RunRecord, Store};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// What a finished run recorded, for the caller to report.
#[derive(Default)]
pub struct RunSummary {
    /// The cache was in use: the summary line is shown.
    pub caching: bool,
    /// Results replayed from the cache.
    pub cached: usize,
    /// Results of tests that ran.
    pub ran: usize,
    /// Seconds the replayed results took when they ran.
    pub saved: f64,
    /// Warnings, in the order they arose.
    pub notices: Vec<String>,
    /// What a remote cache may be given: each stored file entry with its results.
    pub entries: Vec<crate::remote::Entry>,
    /// Under `RPYTEST_TRACE`: how many keys the run computed.
    pub key_counts: Option<String>,
}

impl RunSummary {
    /// Hands the summary to the reporter.
    pub fn report(&self) {
        for n in &self.notices {
            report::warning(n);
        }
        if self.caching {
            report::cache_summary(self.cached, self.ran, self.saved);
        }
        if let Some(line) = &self.key_counts {
            report::stderr_line(&format!("rpytest trace: {line}"));
        }
    }
}

/// What a session's events say, gathered once.
#[derive(Default)]
struct Gathered {
    results: Vec<NodeResult>,
    replayed: Vec<(String, String, Outcome, f64)>,
    collected: Vec<CollectedFile>,
    new_deps: Vec<(String, String, Vec<String>)>,
    new_edges: Vec<(String, String)>,
    interrupted: bool,
    /// Files (or "" for the whole session) whose tests read what the session wrote.
    volatile: HashSet<String>,
    session_paths: Vec<String>,
    /// What each file's tests read and imported (hermetic files' keys are checked against it).
    recorded: HashMap<String, Vec<String>>,
    /// Files (or "" for the whole session) whose code started a subprocess:
    /// what a subprocess reads is invisible to the recorder.
    spawned: HashSet<String>,
    /// Node IDs that ran or were replayed.
    ran_or_replayed: HashSet<String>,
    /// Indices into `results`, by file.
    by_file: HashMap<String, Vec<usize>>,
}

/// What is written to the store for the files the session collected.
#[derive(Default)]
struct Stored {
    files: Vec<(String, String, FileEntry)>,
    reusable: Vec<(String, NodeResult)>,
    selection_rows: Vec<(String, String, Vec<String>)>,
    coverage_rows: Vec<CoverageRow>,
    post_global: Option<String>,
}

impl Plan {
    /// Stores the run's results and what it learned; says what the cache served.
    pub fn record(
        &mut self,
        answered_alone: bool,
        store: &mut Store,
        inv: &Invocation,
        started: f64,
        code: i32,
        events: &[Event],
    ) -> RunSummary {
        let mut summary = RunSummary {
            notices: std::mem::take(&mut self.notices),
            ..RunSummary::default()
        };
        if !inv.args.no_run {
            if answered_alone {
                // Outcomes were given by `answer_alone`; only history is left.
                summary.caching = true;
                summary.cached = self.cached.len();
                summary.saved = self.saved();
                let run = history(inv, started, code, 0, self.cached.len());
                if let Err(e) = store.record_run(&run, &[], &[], &[]) {
                    summary
                        .notices
                        .push(format!("could not record the run: {e}"));
                }
            } else {
                self.record_session(store, inv, started, code, events, &mut summary);
            }
        }
        summary.key_counts = crate::inputs::count::summary();
        summary
    }

    fn record_session(
        &mut self,
        store: &mut Store,
        inv: &Invocation,
        started: f64,
        code: i32,
        events: &[Event],
        summary: &mut RunSummary,
    ) {
        let mut run = Gathered::from_events(events, self, store, code);
        let stopped_early = inv.args.stops_early && code != 0;
        // A session that failed with no failing test was judged as a whole
        // (syrupy's unused snapshots, pytest-cov's --cov-fail-under, a
        // plugin's sessionfinish): storing its results would let the next run
        // answer green from the cache. They are not stored; the next run runs.
        let judged_failing = code == 1
            && run.results.iter().all(|r| r.outcome.reusable())
            && run.replayed.iter().all(|r| r.2.reusable());
        if judged_failing {
            run.volatile.insert(String::new());
        }
        let reusable_ok = self.caching && !run.interrupted && !stopped_early;
        let roots = self.learn(store, &mut run, &mut summary.notices);
        let mut stored = Stored::default();
        if reusable_ok && !run.collected.is_empty() {
            self.post_keys(
                inv,
                store,
                roots,
                &run,
                events,
                started,
                &mut stored,
                summary,
            );
        }
        if reusable_ok && (self.whole_files || self.select_sig.is_some()) && code != 5 {
            self.store_collection(store, &run, stored.post_global.as_deref());
        }
        let history = history(inv, started, code, run.results.len(), run.replayed.len());
        if let Err(e) = store.record_run(&history, &run.results, &stored.files, &stored.reusable) {
            summary
                .notices
                .push(format!("could not record the run: {e}"));
        }
        super::coverage::record(store, &stored.coverage_rows);
        if let (Some(sig), false) = (&self.kept_sig, stored.selection_rows.is_empty()) {
            if let Err(e) = store.record_selections(sig, &stored.selection_rows) {
                summary
                    .notices
                    .push(format!("could not record the selection: {e}"));
            }
        }
        let outcomes = run
            .results
            .iter()
            .map(|r| (r.nodeid.as_str(), r.outcome.as_str(), false))
            .chain(
                run.replayed
                    .iter()
                    .map(|(n, _, o, _)| (n.as_str(), o.as_str(), true)),
            );
        if let Err(e) = write_outcomes(code, outcomes) {
            summary.notices.push(e);
        }
        summary.caching = self.caching;
        summary.cached = run.replayed.len();
        summary.ran = run.results.len();
        summary.saved = run.replayed.iter().map(|r| r.3).sum();
        summary.entries = remote_entries(stored.files, stored.reusable);
    }

    /// Merges the dependencies the session recorded and the search roots it
    /// had into the store; returns the search roots from now on.
    fn learn(
        &self,
        store: &mut Store,
        run: &mut Gathered,
        notices: &mut Vec<String>,
    ) -> Vec<String> {
        if run.interrupted {
            // An interrupted session (Ctrl-C, a crash) recorded what its
            // unwinding touched (the traceback reads the interrupted test's
            // source) as reads of the whole session: merged, they would be
            // inputs of every test from then on. Its results are never
            // stored, and the next complete session records what is real.
            run.new_deps.retain(|(file, _, _)| !file.is_empty());
        }
        if self.caching {
            // Merge what this run recorded before computing the keys results are stored under.
            if let Err(e) = store.record_deps(&run.new_deps, &run.new_edges) {
                notices.push(format!("could not record dependencies: {e}"));
            }
        }
        // sys.path entries the session had (a conftest may insert some) are
        // searched by the static import resolution from now on, also for the
        // keys this run's results are stored under.
        let mut roots = self
            .keys
            .as_ref()
            .map(|k| k.roots.clone())
            .unwrap_or_default();
        if self.caching && !run.interrupted {
            let before = roots.len();
            for p in &run.session_paths {
                if !roots.contains(p) {
                    roots.push(p.clone());
                }
            }
            if roots.len() != before {
                let _ = store.set_meta(
                    "search_roots",
                    &serde_json::to_string(&roots).unwrap_or_default(),
                );
            }
        }
        roots
    }

    /// The keys results are stored under, in the run's key context
    /// refreshed with what the session recorded: a pre-run key stands when
    /// nothing it depends on changed. Fills `stored` with what to write.
    #[allow(clippy::too_many_arguments)]
    fn post_keys(
        &mut self,
        inv: &Invocation,
        store: &mut Store,
        roots: Vec<String>,
        run: &Gathered,
        events: &[Event],
        started: f64,
        stored: &mut Stored,
        summary: &mut RunSummary,
    ) {
        let (Some(mut ctx), Some(info)) = (self.keys.take(), self.info.clone()) else {
            return;
        };
        let conftests = self.session_conftests.clone();
        let changed = ctx.refresh(inv, store, &info, roots, &conftests);
        let global = match &self.global {
            Some(g) if !changed.global(g) => g.clone(),
            _ => ctx.global_key(inv, &info, &conftests),
        };
        stored.post_global = Some(global.hex.clone());
        let started_ns = (started * 1e9) as i128;
        let root = inv.setup.rootdir.clone();
        if !unstable(&global.inputs, &root, started_ns) && !run.volatile.contains("") {
            let files: Vec<&String> = run.collected.iter().map(|c| &c.file).collect();
            let keys = ctx.rekey(&global, &files, &self.pre_keys, &changed);
            let coverage = super::coverage::by_file(events);
            let mut cached_by_file: HashMap<&str, Vec<&CachedNode>> = HashMap::new();
            for c in &self.cached {
                cached_by_file.entry(c.file.as_str()).or_default().push(c);
            }
            for (c, (k, cacheable)) in run.collected.iter().zip(keys) {
                if !cacheable
                    || run.volatile.contains(&c.file)
                    || unstable(&k.inputs, &root, started_ns)
                {
                    continue;
                }
                if let Err(notice) = hermetic_check(&ctx, &root, &c.file, &k, run) {
                    summary.notices.extend(notice);
                    continue;
                }
                let partial = self.partial(inv, &c.file);
                if let (Some((sig, data)), false) = (coverage.get(c.file.as_str()), partial) {
                    stored.coverage_rows.push(CoverageRow {
                        file: c.file.clone(),
                        key: k.hex.clone(),
                        sig: sig.to_string(),
                        data: data.to_string(),
                    });
                }
                let replayed = cached_by_file
                    .get(c.file.as_str())
                    .map_or(&[][..], |v| &v[..]);
                self.store_file(c, &k, partial, run, replayed, stored);
            }
            let _ = store.set_global_inputs(
                &global.hex,
                &serde_json::to_string(&global.inputs).unwrap_or_default(),
            );
        }
        ctx.save(store);
        self.keys = Some(ctx);
    }

    /// Only a complete collection of the file may stand for it: node-ID
    /// arguments, --lf and unknown (plugin) options can make pytest
    /// collect a part of it. Its node results stay per-node truths.
    fn partial(&self, inv: &Invocation, file: &str) -> bool {
        !inv.args.understood()
            || inv.args.narrows_collection
            || matches!(self.sels.get(file), Some(Some(_)))
    }

    /// The entry, the selection row and the reusable results of one
    /// collected file, stored under `k`; `replayed` are its cached nodes.
    fn store_file(
        &self,
        c: &CollectedFile,
        k: &Key,
        partial: bool,
        run: &Gathered,
        replayed: &[&CachedNode],
        stored: &mut Stored,
    ) {
        let file = &c.file;
        if !partial && self.kept_sig.is_some() {
            // What the selection kept of this file: what ran or was replayed.
            let kept: Vec<String> = c
                .nodes
                .iter()
                .filter(|n| run.ran_or_replayed.contains(n.as_str()))
                .cloned()
                .collect();
            stored
                .selection_rows
                .push((file.clone(), k.hex.clone(), kept));
        }
        if !partial {
            stored.files.push((
                file.clone(),
                k.hex.clone(),
                FileEntry {
                    outcome: c.outcome.clone(),
                    nodes: c.nodes.clone(),
                    inputs: serde_json::to_string(&k.inputs).unwrap_or_default(),
                    detail: c.skip.to_string(),
                },
            ));
        }
        // Replayed nodes keep their result when the key did not move.
        if self.pre_keys.get(file).is_some_and(|p| p.hex == k.hex) {
            for c in replayed {
                stored.reusable.push((k.hex.clone(), cached_to_result(c)));
            }
        }
        let mine = run.by_file.get(file).into_iter().flatten();
        for r in mine.map(|&i| &run.results[i]) {
            if r.outcome.reusable() {
                stored.reusable.push((k.hex.clone(), r.clone()));
            }
        }
    }

    /// The files this collection signature collects, for the next run's
    /// fast path. The next run computes its signature with the global key
    /// as this run left it (recorded dependencies included): stored under that.
    fn store_collection(&self, store: &Store, run: &Gathered, post_global: Option<&str>) {
        let sig = match post_global {
            Some(g) => {
                let mut inputs = self.signature_inputs.clone();
                inputs.insert("global".into(), g.to_owned());
                Some(key::finish(inputs).hex)
            }
            None => self.signature.clone(),
        };
        if let Some(sig) = &sig {
            let mut files: Vec<String> = run.collected.iter().map(|c| c.file.clone()).collect();
            files.extend(self.skip_files.iter().cloned());
            files.sort();
            files.dedup();
            let _ = store.set_collection(sig, &files);
        }
    }
}

/// A hermetic file's results are stored only when its key names
/// everything it used; the warning says why not.
fn hermetic_check(
    ctx: &KeyContext,
    root: &Path,
    file: &str,
    k: &Key,
    run: &Gathered,
) -> Result<(), Option<String>> {
    if !ctx.is_hermetic(file) {
        return Ok(());
    }
    // The sandbox shows every first-party module; a
    // subprocess may import one the key does not name.
    if run.spawned.contains(file) || run.spawned.contains("") {
        return Err(Some(format!(
            "hermetic {file} started a subprocess, whose reads rpytest cannot check against its key; its results are not cached"
        )));
    }
    let seen = run.recorded.get(file).map_or(&[][..], |v| &v[..]);
    super::hermetic::key_is_complete(root, file, k, seen).map_err(Some)
}

/// Whether an input was written during the run: the tests may have seen
/// either content. The ctime counts too: an edit that restores the mtime
/// cannot restore it. A file that exists now but did not when its label was
/// taken (or the reverse), a symlink re-pointed during the run, and a
/// directory whose listing differs from its label are unstable too (a key
/// computed before the run is reused after it when nothing else changed).
fn unstable(inputs: &Inputs, root: &Path, started_ns: i128) -> bool {
    use std::os::unix::fs::MetadataExt;
    let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
    let written = |m: &std::fs::Metadata| {
        ns(m.mtime(), m.mtime_nsec()).max(ns(m.ctime(), m.ctime_nsec())) >= started_ns
    };
    inputs.iter().any(|(k, label)| {
        if let Some(d) = k.strip_prefix("dir:") {
            return key::listing_label(&root.join(d)) != *label;
        }
        let Some(f) = k.strip_prefix("file:").or_else(|| k.strip_prefix("ini:")) else {
            return false;
        };
        let path = root.join(f);
        let link_moved = std::fs::symlink_metadata(&path)
            .ok()
            .filter(|m| m.file_type().is_symlink())
            .is_some_and(|m| written(&m));
        match std::fs::metadata(&path) {
            // A directory's label ("dir") does not depend on its mtime,
            // which the run itself moves (`__pycache__`).
            Ok(m) if m.is_dir() => label != "dir" || link_moved,
            Ok(m) => label == "missing" || link_moved || written(&m),
            Err(_) => label != "missing",
        }
    })
}

impl Gathered {
    fn from_events(events: &[Event], plan: &Plan, store: &Store, code: i32) -> Gathered {
        let mut g = Gathered {
            interrupted: !matches!(code, 0 | 1 | 5),
            ..Gathered::default()
        };
        // A test's warnings are recorded after its result (pytest's warnings
        // plugin wraps the whole test protocol): gathered first, by node.
        let mut warnings: HashMap<&str, Vec<serde_json::Value>> = HashMap::new();
        for e in events {
            if let Event::NodeWarning { nodeid, warning } = e {
                warnings
                    .entry(nodeid.as_str())
                    .or_default()
                    .push(warning.clone());
            }
        }
        for e in events {
            match e {
                Event::Result {
                    nodeid,
                    file,
                    outcome,
                    duration,
                    cached: true,
                    ..
                } => g
                    .replayed
                    .push((nodeid.clone(), file.clone(), outcome.clone(), *duration)),
                Event::Result { nodeid, .. } => {
                    let w = warnings.remove(nodeid.as_str());
                    g.results.extend(node_result(e, w));
                }
                Event::CachedResults { nodes } => g.replayed.extend(nodes.iter().cloned()),
                Event::Collected { files } => g.collected.extend(files.iter().cloned()),
                Event::Deps { .. } => g.deps(e, &plan.rules),
                Event::Edges { edges } => g.new_edges.extend(edges.iter().cloned()),
                Event::Sandbox { visible, denied } => {
                    super::hermetic::remember_sandbox(store, *visible, denied)
                }
                Event::Finish { interrupted: i, .. } => g.interrupted |= *i,
                _ => {}
            }
        }
        for (i, r) in g.results.iter().enumerate() {
            g.by_file.entry(r.file.clone()).or_default().push(i);
            g.ran_or_replayed.insert(r.nodeid.clone());
        }
        g.ran_or_replayed
            .extend(g.replayed.iter().map(|r| r.0.clone()));
        g
    }

    /// What a `Deps` event recorded: dependencies by kind (less what a rule
    /// excludes), whether its results may be stored, its search paths.
    fn deps(&mut self, e: &Event, rules: &[crate::rules::Rule]) {
        let Event::Deps {
            file,
            imports,
            reads,
            env,
            lists,
            spawns,
            generated,
            outside,
            volatile: never_store,
            options,
            paths,
        } = e
        else {
            return;
        };
        let f = file.clone().unwrap_or_default();
        if *spawns {
            self.spawned.insert(f.clone());
        }
        if file.is_some() {
            self.recorded
                .entry(f.clone())
                .or_default()
                .extend(imports.iter().chain(reads).cloned());
        }
        for p in paths {
            if !self.session_paths.contains(p) {
                self.session_paths.push(p.clone());
            }
        }
        let excluded = |p: &str| rules.iter().any(|rule| rule.excludes(p));
        // What a rule excludes is never an input (a tool's cache such
        // as `.hypothesis/`), also when the session wrote it.
        if generated.iter().any(|g| !excluded(g)) || *outside || *never_store {
            self.volatile.insert(f.clone());
        }
        if *options {
            self.new_deps
                .push((f.clone(), "option".into(), vec!["all".into()]));
        }
        // pytest loads every conftest.py it passes while collecting;
        // each is an input of exactly the tests below it (the chain).
        let imports: Vec<String> = imports
            .iter()
            .filter(|m| !(m.as_str() == "conftest.py" || m.ends_with("/conftest.py")))
            .cloned()
            .collect();
        self.new_deps.push((f.clone(), "import".into(), imports));
        let reads: Vec<String> = reads.iter().filter(|r| !excluded(r)).cloned().collect();
        self.new_deps.push((f.clone(), "read".into(), reads));
        self.new_deps.push((f.clone(), "env".into(), env.clone()));
        let lists: Vec<String> = lists
            .iter()
            .filter(|d| !excluded(&format!("{d}/x")))
            .cloned()
            .collect();
        self.new_deps.push((f, "list".into(), lists));
    }
}

/// The stored result of a `Result` event that ran, with the test's warnings.
fn node_result(e: &Event, warnings: Option<Vec<serde_json::Value>>) -> Option<NodeResult> {
    let Event::Result {
        nodeid,
        file,
        outcome,
        duration,
        location,
        longrepr,
        wasxfail,
        output,
        ..
    } = e
    else {
        return None;
    };
    Some(NodeResult {
        nodeid: nodeid.clone(),
        file: file.clone(),
        outcome: outcome.clone(),
        duration: *duration,
        location: location.to_string(),
        longrepr: longrepr.to_string(),
        wasxfail: wasxfail.clone(),
        output: with_warnings(output, warnings),
    })
}

/// What a remote cache may be given: each stored file entry with its
/// results (those stored under its key for its file). One pass over the
/// results: at 10,000 files, filtering them once per file was quadratic.
fn remote_entries(
    files: Vec<(String, String, FileEntry)>,
    reusable: Vec<(String, NodeResult)>,
) -> Vec<crate::remote::Entry> {
    let mut by_entry: HashMap<(String, String), Vec<NodeResult>> = HashMap::new();
    for (key, r) in reusable {
        by_entry.entry((key, r.file.clone())).or_default().push(r);
    }
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    for (file, key, _) in &files {
        *seen.entry((key.clone(), file.clone())).or_default() += 1;
    }
    files
        .into_iter()
        .map(|(file, key, entry)| {
            let id = (key, file);
            // An entry stored twice (same file, same key) gets the results each time.
            let last = seen.get_mut(&id).map(|n| {
                *n -= 1;
                *n == 0
            });
            let results = if last == Some(true) {
                by_entry.remove(&id).unwrap_or_default()
            } else {
                by_entry.get(&id).cloned().unwrap_or_default()
            };
            let (key, file) = id;
            crate::remote::Entry::new(file, key, entry, results)
        })
        .collect()
}

/// The history row of a finished run.
fn history(inv: &Invocation, started: f64, code: i32, ran: usize, cached: usize) -> RunRecord {
    RunRecord {
        started,
        finished: now(),
        argv: serde_json::to_string(&inv.pytest_argv).unwrap_or_default(),
        exit_code: code,
        ran: ran as i64,
        cached: cached as i64,
    }
}

/// A result's stored output: the session's `output` object with the test's
/// warnings added (empty when there is nothing to keep).
fn with_warnings(output: &serde_json::Value, warnings: Option<Vec<serde_json::Value>>) -> String {
    let mut out = match output {
        serde_json::Value::Object(m) => m.clone(),
        _ => serde_json::Map::new(),
    };
    if let Some(w) = warnings.filter(|w| !w.is_empty()) {
        out.insert("warnings".into(), serde_json::Value::Array(w));
    }
    if out.is_empty() {
        String::new()
    } else {
        serde_json::Value::Object(out).to_string()
    }
}

fn cached_to_result(c: &CachedNode) -> NodeResult {
    NodeResult {
        nodeid: c.nodeid.clone(),
        file: c.file.clone(),
        outcome: c.outcome.clone(),
        duration: c.duration,
        location: c.location.text().to_owned(),
        longrepr: c.longrepr.text().to_owned(),
        wasxfail: c.wasxfail.clone(),
        output: if c.output.is_null() {
            String::new()
        } else {
            c.output.text().to_owned()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(file: &str, nodeid: &str) -> NodeResult {
        NodeResult {
            nodeid: nodeid.into(),
            file: file.into(),
            outcome: Outcome::from("passed"),
            duration: 0.5,
            location: String::new(),
            longrepr: String::new(),
            wasxfail: None,
            output: String::new(),
        }
    }

    fn entry(nodes: &[&str]) -> FileEntry {
        FileEntry {
            outcome: Outcome::from("passed"),
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
            inputs: String::new(),
            detail: String::new(),
        }
    }

    fn ids(e: &crate::remote::Entry) -> Vec<&str> {
        e.results.iter().map(|r| r.nodeid.as_str()).collect()
    }

    /// Each entry gets exactly the results stored under its own file and
    /// key, in their order: not another key's of the same file, nor the
    /// same key's of another file (a file moved to the key another has).
    #[test]
    fn remote_entries_get_their_own_results() {
        let files = vec![
            (
                "a.py".to_owned(),
                "k1".to_owned(),
                entry(&["a.py::x", "a.py::y"]),
            ),
            ("b.py".to_owned(), "k1".to_owned(), entry(&["b.py::z"])),
            ("c.py".to_owned(), "k3".to_owned(), entry(&[])),
            (
                "a.py".to_owned(),
                "k1".to_owned(),
                entry(&["a.py::x", "a.py::y"]),
            ),
        ];
        let reusable = vec![
            ("k1".to_owned(), result("a.py", "a.py::x")),
            ("k1".to_owned(), result("b.py", "b.py::z")),
            ("k2".to_owned(), result("a.py", "a.py::old")),
            ("k1".to_owned(), result("a.py", "a.py::y")),
        ];
        let entries = remote_entries(files, reusable);
        let got: Vec<(&str, &str, Vec<&str>)> = entries
            .iter()
            .map(|e| (e.file.as_str(), e.key.as_str(), ids(e)))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a.py", "k1", vec!["a.py::x", "a.py::y"]),
                ("b.py", "k1", vec!["b.py::z"]),
                ("c.py", "k3", vec![]),
                ("a.py", "k1", vec!["a.py::x", "a.py::y"]),
            ]
        );
    }
}
