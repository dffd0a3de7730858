//! After a session: store its results, the dependencies it recorded, the
//! keys results are stored under (computed after the run), the collection
//! signature and the run's history; say what the cache served.

use super::plan::{global_key, key_context, now, Plan};
use super::Invocation;
use crate::inputs::key::{self, Inputs};
use crate::outcome::Outcome;
use crate::project::interpreter::InterpreterInfo;
use crate::protocol::{CachedNode, Event};
use crate::report;
use crate::store::{FileEntry, NodeResult, RunRecord, Store};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

impl Plan {
    /// Stores the run's results and what it learned.
    pub fn record(
        &self,
        answered_alone: bool,
        store: &mut Store,
        inv: &Invocation,
        started: f64,
        code: i32,
        events: &[Event],
    ) -> Vec<crate::remote::Entry> {
        let out = self.record_inner(answered_alone, store, inv, started, code, events);
        if let Some(line) = crate::inputs::count::summary() {
            report::stderr_line(&format!("rpytest trace: {line}"));
        }
        out
    }

    fn record_inner(
        &self,
        answered_alone: bool,
        store: &mut Store,
        inv: &Invocation,
        started: f64,
        code: i32,
        events: &[Event],
    ) -> Vec<crate::remote::Entry> {
        if inv.args.no_run {
            return Vec::new();
        }
        if answered_alone {
            // Outcomes and the summary were given by `answer_alone`; only history is left.
            let run = history(inv, started, code, 0, self.cached.len());
            if let Err(e) = store.record_run(&run, &[], &[], &[]) {
                report::warning(&format!("could not record the run: {e}"));
            }
            return Vec::new();
        }
        let mut results: Vec<NodeResult> = Vec::new();
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
        let mut collected: Vec<(String, Outcome, Vec<String>, serde_json::Value)> = Vec::new();
        let mut new_deps: Vec<(String, String, Vec<String>)> = Vec::new();
        let mut new_edges: Vec<(String, String)> = Vec::new();
        let mut interrupted = !matches!(code, 0 | 1 | 5);
        let mut replayed: Vec<(String, String, Outcome, f64)> = Vec::new();
        // Files (or "" for the whole session) whose tests read what the session wrote.
        let mut volatile: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut session_paths: Vec<String> = Vec::new();
        // What each file's tests read and imported (hermetic files' keys are checked against it).
        let mut recorded: HashMap<String, Vec<String>> = HashMap::new();
        // Files (or "" for the whole session) whose code started a subprocess:
        // what a subprocess reads is invisible to the recorder.
        let mut spawned: std::collections::HashSet<String> = std::collections::HashSet::new();
        for e in events {
            if let Event::Deps {
                file, spawns: true, ..
            } = e
            {
                spawned.insert(file.clone().unwrap_or_default());
            }
            if let Event::Deps {
                file: Some(f),
                imports,
                reads,
                ..
            } = e
            {
                recorded
                    .entry(f.clone())
                    .or_default()
                    .extend(imports.iter().chain(reads).cloned());
            }
            if let Event::Sandbox { visible, denied } = e {
                super::hermetic::remember_sandbox(store, *visible, denied);
            }
            match e {
                Event::Result {
                    nodeid,
                    file,
                    outcome,
                    duration,
                    cached: true,
                    ..
                } => replayed.push((nodeid.clone(), file.clone(), outcome.clone(), *duration)),
                Event::Result {
                    nodeid,
                    file,
                    outcome,
                    duration,
                    location,
                    longrepr,
                    wasxfail,
                    output,
                    ..
                } => results.push(NodeResult {
                    nodeid: nodeid.clone(),
                    file: file.clone(),
                    outcome: outcome.clone(),
                    duration: *duration,
                    location: location.to_string(),
                    longrepr: longrepr.to_string(),
                    wasxfail: wasxfail.clone(),
                    output: with_warnings(output, warnings.remove(nodeid.as_str())),
                }),
                Event::CachedResults { nodes } => replayed.extend(nodes.iter().cloned()),
                Event::Collected { files } => {
                    for f in files {
                        collected.push((
                            f.file.clone(),
                            f.outcome.clone(),
                            f.nodes.clone(),
                            f.skip.clone(),
                        ));
                    }
                }
                Event::Deps {
                    file,
                    imports,
                    reads,
                    env,
                    lists,
                    generated,
                    outside,
                    volatile: never_store,
                    options,
                    paths,
                    ..
                } => {
                    for p in paths {
                        if !session_paths.contains(p) {
                            session_paths.push(p.clone());
                        }
                    }
                    // What a rule excludes is never an input (a tool's cache such
                    // as `.hypothesis/`), also when the session wrote it.
                    let generated = generated
                        .iter()
                        .any(|g| !self.rules.iter().any(|rule| rule.excludes(g)));
                    if generated || *outside || *never_store {
                        volatile.insert(file.clone().unwrap_or_default());
                    }
                    let f = file.clone().unwrap_or_default();
                    if *options {
                        new_deps.push((f.clone(), "option".into(), vec!["all".into()]));
                    }
                    // pytest loads every conftest.py it passes while collecting;
                    // each is an input of exactly the tests below it (the chain).
                    let imports: Vec<String> = imports
                        .iter()
                        .filter(|m| !(m.as_str() == "conftest.py" || m.ends_with("/conftest.py")))
                        .cloned()
                        .collect();
                    new_deps.push((f.clone(), "import".into(), imports));
                    let reads: Vec<String> = reads
                        .iter()
                        .filter(|r| !self.rules.iter().any(|rule| rule.excludes(r)))
                        .cloned()
                        .collect();
                    new_deps.push((f.clone(), "read".into(), reads));
                    new_deps.push((f.clone(), "env".into(), env.clone()));
                    let lists: Vec<String> = lists
                        .iter()
                        .filter(|d| {
                            !self
                                .rules
                                .iter()
                                .any(|rule| rule.excludes(&format!("{d}/x")))
                        })
                        .cloned()
                        .collect();
                    new_deps.push((f, "list".into(), lists));
                }
                Event::Edges { edges } => new_edges.extend(edges.iter().cloned()),
                Event::Finish { interrupted: i, .. } => interrupted |= *i,
                _ => {}
            }
        }
        let cached_count = replayed.len();
        let stopped_early = inv.args.stops_early && code != 0;
        // A session that failed with no failing test was judged as a whole
        // (syrupy's unused snapshots, pytest-cov's --cov-fail-under, a
        // plugin's sessionfinish): storing its results would let the next run
        // answer green from the cache. They are not stored; the next run runs.
        let judged_failing = code == 1
            && results.iter().all(|r| r.outcome.reusable())
            && replayed.iter().all(|r| r.2.reusable());
        if judged_failing {
            volatile.insert(String::new());
        }
        let reusable_ok = self.caching && !interrupted && !stopped_early;

        let mut files_out: Vec<(String, String, FileEntry)> = Vec::new();
        let mut post_global: Option<String> = None;
        let mut selection_rows: Vec<(String, String, Vec<String>)> = Vec::new();
        let ran_or_replayed: std::collections::HashSet<&str> = results
            .iter()
            .map(|r| r.nodeid.as_str())
            .chain(replayed.iter().map(|r| r.0.as_str()))
            .collect();
        let mut reusable: Vec<(String, NodeResult)> = Vec::new();
        let coverage_events = super::coverage::by_file(events);
        let mut coverage_rows: Vec<crate::store::CoverageRow> = Vec::new();
        if interrupted {
            // An interrupted session (Ctrl-C, a crash) recorded what its
            // unwinding touched (the traceback reads the interrupted test's
            // source) as reads of the whole session: merged, they would be
            // inputs of every test from then on. Its results are never
            // stored, and the next complete session records what is real.
            new_deps.retain(|(file, _, _)| !file.is_empty());
        }
        if self.caching {
            // Merge what this run recorded before computing the keys results are stored under.
            if let Err(e) = store.record_deps(&new_deps, &new_edges) {
                report::warning(&format!("could not record dependencies: {e}"));
            }
        }
        // sys.path entries the session had (a conftest may insert some) are
        // searched by the static import resolution from now on, also for the
        // keys this run's results are stored under.
        let mut roots = self.roots.clone();
        if self.caching && !interrupted {
            let before = roots.len();
            for p in session_paths {
                if !roots.contains(&p) {
                    roots.push(p);
                }
            }
            if roots.len() != before {
                let _ = store.set_meta(
                    "search_roots",
                    &serde_json::to_string(&roots).unwrap_or_default(),
                );
            }
        }
        if reusable_ok && !collected.is_empty() {
            let edges = store.edges().unwrap_or_default();
            let mut ctx = key_context(inv, store, &edges, self.rules.clone(), roots.clone());
            let global = global_key(
                inv,
                self.pre_global_info(),
                &mut ctx,
                &self.session_conftests,
            );
            super::hermetic::attach(
                &mut ctx,
                inv,
                store,
                self.pre_global_info(),
                roots,
                &self.session_conftests,
            );
            post_global = Some(global.hex.clone());
            let started_ns = (started * 1e9) as i128;
            // An input written during the run: the tests may have seen either
            // content. The ctime counts too: an edit that restores the mtime
            // cannot restore it.
            let unstable = |inputs: &Inputs, root: &Path| {
                use std::os::unix::fs::MetadataExt;
                inputs
                    .keys()
                    .filter_map(|k| k.strip_prefix("file:").or_else(|| k.strip_prefix("ini:")))
                    .any(|f| {
                        // A directory's label ("dir") does not depend on its
                        // mtime, which the run itself moves (`__pycache__`).
                        std::fs::metadata(root.join(f))
                            .ok()
                            .filter(|m| m.is_file())
                            .map(|m| {
                                let ns =
                                    |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
                                ns(m.mtime(), m.mtime_nsec()).max(ns(m.ctime(), m.ctime_nsec()))
                                    >= started_ns
                            })
                            .unwrap_or(false)
                    })
            };
            let root = inv.setup.rootdir.clone();
            if !unstable(&global.inputs, &root) && !volatile.contains("") {
                let by_file: HashMap<&str, Vec<&NodeResult>> =
                    results.iter().fold(HashMap::new(), |mut m, r| {
                        m.entry(r.file.as_str()).or_default().push(r);
                        m
                    });
                let files: Vec<&String> = collected.iter().map(|c| &c.0).collect();
                let keys = ctx.file_keys(&global, &files, true);
                for ((file, outcome, nodes, skip), (k, cacheable)) in collected.iter().zip(keys) {
                    if !cacheable || volatile.contains(file.as_str()) || unstable(&k.inputs, &root)
                    {
                        continue;
                    }
                    if ctx.is_hermetic(file) {
                        // The sandbox shows every first-party module; a
                        // subprocess may import one the key does not name.
                        if spawned.contains(file.as_str()) || spawned.contains("") {
                            report::warning(&format!(
                                "hermetic {file} started a subprocess, whose reads rpytest cannot check against its key; its results are not cached"
                            ));
                            continue;
                        }
                        let seen = recorded.get(file.as_str()).map_or(&[][..], |v| &v[..]);
                        if !super::hermetic::key_is_complete(&root, file, &k, seen) {
                            continue;
                        }
                    }
                    // Only a complete collection of the file may stand for it: node-ID
                    // arguments, --lf and unknown (plugin) options can make pytest
                    // collect a part of it. Its node results stay per-node truths.
                    let partial = !inv.args.understood()
                        || inv.args.narrows_collection
                        || matches!(self.sels.get(file.as_str()), Some(Some(_)));
                    if let (Some((sig, data)), false) =
                        (coverage_events.get(file.as_str()), partial)
                    {
                        coverage_rows.push(crate::store::CoverageRow {
                            file: file.clone(),
                            key: k.hex.clone(),
                            sig: sig.to_string(),
                            data: data.to_string(),
                        });
                    }
                    if !partial && self.select_sig.is_some() {
                        // What the selection kept of this file: what ran or was replayed.
                        let kept: Vec<String> = nodes
                            .iter()
                            .filter(|n| ran_or_replayed.contains(n.as_str()))
                            .cloned()
                            .collect();
                        selection_rows.push((file.clone(), k.hex.clone(), kept));
                    }
                    if !partial {
                        files_out.push((
                            file.clone(),
                            k.hex.clone(),
                            FileEntry {
                                outcome: outcome.clone(),
                                nodes: nodes.clone(),
                                inputs: serde_json::to_string(&k.inputs).unwrap_or_default(),
                                detail: skip.to_string(),
                            },
                        ));
                    }
                    // Replayed nodes keep their result when the key did not move.
                    if self
                        .pre_keys
                        .get(file)
                        .map(|p| p.hex == k.hex)
                        .unwrap_or(false)
                    {
                        for c in self.cached.iter().filter(|c| &c.file == file) {
                            reusable.push((k.hex.clone(), cached_to_result(c)));
                        }
                    }
                    for r in by_file.get(file.as_str()).into_iter().flatten() {
                        if r.outcome.reusable() {
                            reusable.push((k.hex.clone(), (*r).clone()));
                        }
                    }
                }
                let _ = store.set_global_inputs(
                    &global.hex,
                    &serde_json::to_string(&global.inputs).unwrap_or_default(),
                );
            }
            let _ = store.save_stat_cache(ctx.builder.graph.source_mut().changed_entries());
        }
        if reusable_ok && (self.whole_files || self.select_sig.is_some()) && code != 5 {
            // The next run computes its signature with the global key as this
            // run left it (recorded dependencies included): store under that.
            let sig = match &post_global {
                Some(g) => {
                    let mut inputs = self.signature_inputs.clone();
                    inputs.insert("global".into(), g.clone());
                    Some(key::finish(inputs).hex)
                }
                None => self.signature.clone(),
            };
            if let Some(sig) = &sig {
                let mut files: Vec<String> = collected.iter().map(|c| c.0.clone()).collect();
                files.extend(self.skip_files.iter().cloned());
                files.sort();
                files.dedup();
                let _ = store.set_collection(sig, &files);
            }
        }
        let run = history(inv, started, code, results.len(), cached_count);
        if let Err(e) = store.record_run(&run, &results, &files_out, &reusable) {
            report::warning(&format!("could not record the run: {e}"));
        }
        super::coverage::record(store, &coverage_rows);
        if let (Some(sig), false) = (&self.select_sig, selection_rows.is_empty()) {
            if let Err(e) = store.record_selections(sig, &selection_rows) {
                report::warning(&format!("could not record the selection: {e}"));
            }
        }
        write_outcomes(
            code,
            results
                .iter()
                .map(|r| (r.nodeid.as_str(), r.outcome.as_str(), false))
                .chain(
                    replayed
                        .iter()
                        .map(|(n, _, o, _)| (n.as_str(), o.as_str(), true)),
                ),
        );
        if self.caching {
            let saved: f64 = replayed.iter().map(|r| r.3).sum();
            report::cache_summary(cached_count, results.len(), saved);
        }
        // What a remote cache may be given: each stored file entry with its results.
        files_out
            .into_iter()
            .map(|(file, key, entry)| {
                let results = reusable
                    .iter()
                    .filter(|(k, r)| *k == key && r.file == file)
                    .map(|(_, r)| r.clone())
                    .collect();
                crate::remote::Entry::new(file, key, entry, results)
            })
            .collect()
    }

    fn pre_global_info(&self) -> &InterpreterInfo {
        self.info
            .as_ref()
            .expect("interpreter info is set when caching")
    }
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

/// With `RPYTEST_OUTCOMES_FILE` set (by `--verify-dropin`), writes every
/// node's outcome and the exit code there as JSON:
/// `{"exit_code": N, "nodes": {nodeid: outcome}, "cached": [nodeid, ...]}`.
pub(super) fn write_outcomes<'a>(code: i32, nodes: impl Iterator<Item = (&'a str, &'a str, bool)>) {
    let Some(path) = std::env::var_os("RPYTEST_OUTCOMES_FILE") else {
        return;
    };
    let mut map = serde_json::Map::new();
    let mut cached = Vec::new();
    for (n, o, c) in nodes {
        map.insert(n.to_owned(), serde_json::Value::String(o.to_owned()));
        if c {
            cached.push(serde_json::Value::String(n.to_owned()));
        }
    }
    let doc = serde_json::json!({"exit_code": code, "nodes": map, "cached": cached});
    if let Err(e) = std::fs::write(&path, doc.to_string()) {
        report::warning(&format!(
            "cannot write {}: {e}",
            PathBuf::from(path).display()
        ));
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
        location: c.location.to_string(),
        longrepr: c.longrepr.to_string(),
        wasxfail: c.wasxfail.clone(),
        output: if c.output.is_null() {
            String::new()
        } else {
            c.output.to_string()
        },
    }
}
