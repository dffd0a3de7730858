//! What the cache serves and what must run; recording what a run learned.
//!
//! Two levels of reuse (DESIGN.md, "Sessions stay real pytest sessions"):
//! * when rpytest understands every argument and none selects tests, a file
//!   whose key matches and whose every node has a reusable result is not even
//!   collected (`skip_files`), and its results are replayed;
//! * otherwise pytest collects everything and the plugin replays the cached
//!   nodes that survive pytest's own selection (`-k`, `-m`, `--lf`, plugins).
//!
//! When every file pytest would collect is fully cached, and pytest collected
//! exactly what rpytest's discovery finds the last time it ran with the same
//! collection signature, the CLI answers alone.

use super::{Failure, Invocation};
use crate::inputs::discover::{discover_all, initial_paths, DiscoverOptions};
use crate::inputs::key::{self, Inputs, Key, KeyBuilder, Recorded};
use crate::inputs::resolve::default_search_roots;
use crate::inputs::{conftest_is_local, FileHasher, ImportGraph, Resolver};
use crate::project::args::path_of_arg;
use crate::project::interpreter::InterpreterInfo;
use crate::protocol::{CachedNode, Event, SkippedFile};
use crate::report;
use crate::rules::{self, Rule};
use crate::store::{FileEntry, Lookup, NodeResult, RunRecord, Store, SCHEMA_VERSION};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Seconds since the epoch.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

const REUSABLE: &[&str] = &["passed", "skipped", "xfailed"];

/// The plan for one run.
#[derive(Default)]
pub struct Plan {
    /// Results are read and written (not `--no-cache`, not `--collect-only`...).
    pub caching: bool,
    pub skip_files: Vec<String>,
    pub cached: Vec<CachedNode>,
    pub skipped_files: Vec<SkippedFile>,
    /// Nodes of skipped files that the selection (`-k`, `-m`) leaves out.
    pub deselected: Vec<String>,
    /// Set when -k/-m/--deselect select tests and nothing else is unknown.
    select_sig: Option<String>,
    /// Node-ID arguments per file (see `selections`).
    sels: HashMap<String, Option<Vec<String>>>,
    /// What the collection signature is made of (its `global` entry is the
    /// pre-run global key; `record` re-signs with the post-run one).
    signature_inputs: Inputs,
    rules: Vec<Rule>,
    pre_keys: HashMap<String, Key>,
    signature: Option<String>,
    fast_path: bool,
    /// No argument selects tests and every argument was understood.
    whole_files: bool,
    info: Option<InterpreterInfo>,
    /// The import search roots the keys were computed with.
    roots: Vec<String>,
    /// conftest.py files that enter the global key.
    session_conftests: Vec<String>,
    /// With a remote cache: the global key without recorded dependencies.
    pub static_global: Option<String>,
}

fn rel_to(root: &Path, p: &Path) -> Option<String> {
    p.strip_prefix(root)
        .ok()
        .map(|r| r.to_string_lossy().replace('\\', "/"))
}

fn discover_options(inv: &Invocation) -> DiscoverOptions {
    let mut o = DiscoverOptions::default();
    let ini = &inv.setup.ini;
    if let Some(v) = ini.get("python_files") {
        o.python_files = v.as_args();
    }
    if let Some(v) = ini.get("norecursedirs") {
        o.norecursedirs = v.as_args();
    }
    if let Some(v) = ini.get("testpaths") {
        o.testpaths = v.as_args();
    }
    o
}

/// Everything a key computation needs, built once per run.
struct KeyContext<'s> {
    builder: KeyBuilder<'s>,
    deps: HashMap<String, HashMap<String, Vec<String>>>,
    rules: Vec<Rule>,
}

impl KeyContext<'_> {
    fn recorded(&self, file: &str) -> Recorded {
        Recorded::from_map(self.deps.get(file))
    }

    /// Input globs, environment variables, whether results may be cached, and
    /// the outcome-changing settings (arguments, timeout) of `file`'s rules.
    fn rule_inputs(&self, file: &str) -> (Vec<String>, Vec<String>, bool, String) {
        let mut files = Vec::new();
        let mut env = Vec::new();
        let mut cache = true;
        let mut settings = String::new();
        // The default rule's inputs are in the global key.
        for r in self.rules.iter().skip(1).filter(|r| r.governs(file)) {
            files.extend(r.files.iter().cloned());
            env.extend(r.env.iter().cloned());
            cache &= r.cache;
            if !r.args.is_empty() || r.timeout.is_some() {
                settings.push_str(&format!("{:?} {:?}\n", r.args, r.timeout));
            }
        }
        (files, env, cache, settings)
    }

    fn file_key(&mut self, global: &Key, file: &str) -> (Key, bool) {
        let rec = self.recorded(file);
        let (files, env, cache, settings) = self.rule_inputs(file);
        let mut k = self.builder.file_key(global, file, &rec, &files, &env);
        if !settings.is_empty() {
            k.inputs.insert("rule".into(), key::value_label(&settings));
            k = key::finish(k.inputs);
        }
        (k, cache)
    }
}

fn global_key(
    inv: &Invocation,
    info: &InterpreterInfo,
    ctx: &mut KeyContext,
    session_conftests: &[String],
) -> Key {
    let mut inputs = Inputs::new();
    ctx.builder.add_closure(&mut inputs, session_conftests);
    inputs.insert(
        "rpytest".into(),
        format!("{}/schema{}", env!("CARGO_PKG_VERSION"), SCHEMA_VERSION),
    );
    inputs.insert(
        "python".into(),
        format!(
            "{} {} {} {}",
            info.implementation, info.version, info.soabi, info.platform
        ),
    );
    let root = &inv.setup.rootdir;
    let listing = distributions(&info.site_dirs, root, &mut ctx.builder);
    inputs.insert("distributions".into(), key::value_label(&listing));
    if let Some(ini) = &inv.setup.inipath {
        match rel_to(root, ini) {
            Some(rel) => {
                let l = ctx.builder.file_label(&rel);
                inputs.insert(format!("file:{rel}"), l);
            }
            None => {
                let text = std::fs::read(ini).unwrap_or_default();
                inputs.insert(
                    "ini".into(),
                    key::value_label(&String::from_utf8_lossy(&text)),
                );
            }
        }
    }
    let mut args = inv.args.key_args.clone();
    if !inv.args.understood() {
        // Unknown options make positional arguments ambiguous: key them all.
        args.extend(inv.args.positional.iter().cloned());
    }
    inputs.insert("args".into(), key::value_label(&args.join("\0")));
    let default = ctx.rules[0].clone();
    ctx.builder.add_globs(&mut inputs, &default.files);
    for e in &default.env {
        inputs.insert(format!("env:{e}"), key::env_value(e, &ctx.builder.env));
    }
    let rec = ctx.recorded("");
    ctx.builder.add_closure(&mut inputs, &rec.imports);
    ctx.builder.add_recorded(&mut inputs, &rec);
    key::finish(inputs)
}

/// The installed distributions as content, the same on every machine that
/// installed the same files: each dist-info's name and the digest of its
/// RECORD (the list of installed files with their hashes), and `.pth` files
/// with the rootdir written as `<rootdir>` (editable installs of the project).
/// Digests go through the stat cache, so an unchanged venv costs a stat per RECORD.
fn distributions(site_dirs: &[String], root: &Path, builder: &mut KeyBuilder) -> String {
    let root_text = root.to_string_lossy();
    let mut out = String::new();
    for dir in site_dirs {
        let Ok(rd) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut names: Vec<String> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                [".dist-info", ".egg-info", ".pth", ".egg-link"]
                    .iter()
                    .any(|ext| n.ends_with(ext))
            })
            .collect();
        names.sort();
        for n in names {
            out.push_str(&n);
            out.push('\n');
            let path = Path::new(dir).join(&n);
            if n.ends_with(".dist-info") {
                let record = path.join("RECORD");
                out.push_str(&builder.file_label(&record.to_string_lossy()));
                out.push('\n');
            } else if n.ends_with(".pth") || n.ends_with(".egg-link") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                out.push_str(&text.replace(root_text.as_ref(), "<rootdir>"));
                out.push('\n');
            }
        }
    }
    out
}

/// `sys.path` entries inside the project: the ones remembered from earlier
/// runs plus those of the files discovered now. The set only grows, so a
/// file's key does not depend on which paths were named on the command line.
fn search_roots(inv: &Invocation, store: &Store, files: &[String]) -> Vec<String> {
    let root = &inv.setup.rootdir;
    let pythonpath = inv
        .setup
        .ini
        .get("pythonpath")
        .map(|v| v.as_words())
        .unwrap_or_default();
    let mut roots: Vec<String> = store
        .meta("search_roots")
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    let before = roots.len();
    for r in default_search_roots(root, &pythonpath, files) {
        if !roots.contains(&r) {
            roots.push(r);
        }
    }
    if roots.len() != before {
        let _ = store.set_meta(
            "search_roots",
            &serde_json::to_string(&roots).unwrap_or_default(),
        );
    }
    roots
}

fn key_context<'s>(
    inv: &Invocation,
    store: &Store,
    edges: &'s HashMap<String, Vec<String>>,
    rules: Vec<Rule>,
    roots: Vec<String>,
) -> KeyContext<'s> {
    let root = inv.setup.rootdir.clone();
    let stat = store.load_stat_cache().unwrap_or_default();
    let hasher = FileHasher::new(root.clone(), stat);
    let graph = ImportGraph::new(Resolver::new(root, roots), hasher, store.load_parse_cache());
    let env: HashMap<String, String> = std::env::vars().collect();
    KeyContext {
        builder: KeyBuilder::new(graph, edges, env),
        deps: store.deps().unwrap_or_default(),
        rules,
    }
}

/// What pytest will collect for these arguments, as rpytest's discovery sees
/// it, and whether every path argument exists.
/// The default rule and the user's rules (exit 4, with file and line, when invalid).
pub fn load_rules(inv: &Invocation) -> Result<Vec<Rule>, Failure> {
    let path = inv.settings.config_path.as_ref();
    let origin = path
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "rpytest configuration".into());
    let text = path.and_then(|p| std::fs::read_to_string(p).ok());
    rules::load(&inv.settings.file.rules, &origin, text.as_deref()).map_err(|e| Failure {
        code: super::exit::USAGE_ERROR,
        message: e.to_string(),
    })
}

/// The test files rpytest discovers for this command line (rootdir-relative).
pub fn test_files(inv: &Invocation) -> Vec<String> {
    scope(inv).0.test_files
}

fn scope(inv: &Invocation) -> (crate::inputs::discover::Discovered, bool) {
    let root = &inv.setup.rootdir;
    let opts = discover_options(inv);
    let mut arg_paths: Vec<PathBuf> = Vec::new();
    let mut all_exist = true;
    for a in &inv.args.positional {
        let p = path_of_arg(a, &inv.cwd);
        all_exist &= p.exists();
        arg_paths.push(p);
    }
    if arg_paths.is_empty() {
        arg_paths = if &inv.cwd == root && !opts.testpaths.is_empty() {
            initial_paths(root, &opts.testpaths)
        } else {
            vec![inv.cwd.clone()]
        };
    }
    (discover_all(root, &arg_paths, &opts), all_exist)
}

/// A name for the test selection of this command line, when rpytest can
/// trust that pytest's selection is a pure function of the file's key and
/// these arguments: only `-k`, `-m`, `--deselect` select (not `--lf` & co,
/// which depend on pytest's own cache), and every argument is understood.
fn selection_signature(inv: &Invocation, all_exist: bool) -> Option<String> {
    let a = &inv.args;
    (a.selects
        && !a.selects_impurely
        && a.understood()
        && !a.narrows_collection
        && !a.doctests
        && all_exist)
        .then(|| key::value_label(&a.select_args.join("\0")))
}

/// The conftest.py files of the session that can affect tests outside their
/// own directory (see `conftest_is_local`): inputs of every test.
fn session_wide_conftests(root: &Path, conftests: &[String]) -> Vec<String> {
    conftests
        .iter()
        .filter(|c| {
            std::fs::read_to_string(root.join(c))
                .map(|src| !conftest_is_local(&src))
                .unwrap_or(true)
        })
        .cloned()
        .collect()
}

/// The module name pytest's default import mode gives a test file: its path
/// from its basedir (the first ancestor without `__init__.py`), dotted.
fn module_name(resolver: &Resolver, file: &str) -> String {
    let base = resolver.basedir_of(file);
    let rest = if base.is_empty() {
        file
    } else {
        file.strip_prefix(&format!("{base}/")).unwrap_or(file)
    };
    rest.trim_end_matches(".py").replace('/', ".")
}

/// Node-ID arguments per file: `None` = the whole file is selected.
fn selections(inv: &Invocation) -> HashMap<String, Option<Vec<String>>> {
    let mut out: HashMap<String, Option<Vec<String>>> = HashMap::new();
    for a in &inv.args.positional {
        let p = crate::project::rootdir::absolutepath(&path_of_arg(a, &inv.cwd), Path::new("/"));
        let Some(rel) = rel_to(&inv.setup.rootdir, &p) else {
            continue;
        };
        match a.split_once("::") {
            Some((_, rest)) => {
                // A file also named whole (`None`) stays whole.
                if let Some(v) = out.entry(rel).or_insert_with(|| Some(Vec::new())) {
                    v.push(rest.to_owned());
                }
            }
            None => {
                out.insert(rel, None);
            }
        }
    }
    out
}

fn selected(nodeid: &str, sel: &Option<Vec<String>>) -> bool {
    let Some(sels) = sel else { return true };
    let rest = nodeid.split_once("::").map(|(_, r)| r).unwrap_or("");
    sels.iter().any(|s| {
        rest == s || rest.starts_with(&format!("{s}::")) || rest.starts_with(&format!("{s}["))
    })
}

fn cached_node(r: &NodeResult) -> CachedNode {
    CachedNode {
        nodeid: r.nodeid.clone(),
        file: r.file.clone(),
        outcome: r.outcome.clone(),
        duration: r.duration,
        location: serde_json::from_str(&r.location).unwrap_or(serde_json::Value::Null),
        longrepr: serde_json::from_str(&r.longrepr).unwrap_or(serde_json::Value::Null),
        wasxfail: r.wasxfail.clone(),
    }
}

impl Plan {
    /// Decides what the cache serves.
    pub fn make(
        inv: &Invocation,
        store: &mut Store,
        info: &InterpreterInfo,
    ) -> Result<Plan, Failure> {
        Plan::make_with(inv, store, info, None)
    }

    /// As `make`, asking `remote` for what the local cache does not hold.
    pub fn make_with(
        inv: &Invocation,
        store: &mut Store,
        info: &InterpreterInfo,
        remote: Option<&crate::remote::Remote>,
    ) -> Result<Plan, Failure> {
        Plan::make_inner(inv, store, info, remote, false)
    }

    fn make_inner(
        inv: &Invocation,
        store: &mut Store,
        info: &InterpreterInfo,
        remote: Option<&crate::remote::Remote>,
        synced: bool,
    ) -> Result<Plan, Failure> {
        let caching = inv.settings.use_cache && !inv.args.no_run;
        if !caching {
            return Ok(Plan::default());
        }
        let mut trace = report::Trace::new();
        let rules = load_rules(inv)?;
        let root = inv.setup.rootdir.clone();
        let (found, all_exist) = scope(inv);
        let whole_files =
            inv.args.understood() && !inv.args.selects && !inv.args.doctests && all_exist;
        let select_sig = selection_signature(inv, all_exist);

        let edges = store.edges().unwrap_or_default();
        trace.mark("discovery");
        let mut scanned = found.test_files.clone();
        scanned.extend(found.conftests.iter().cloned());
        let roots = search_roots(inv, store, &scanned);
        let mut ctx = key_context(inv, store, &edges, rules.clone(), roots.clone());
        trace.mark("search roots and stored dependencies");
        let session_conftests = session_wide_conftests(&inv.setup.rootdir, &found.conftests);
        let global = global_key(inv, info, &mut ctx, &session_conftests);
        // With a remote cache: the global key without anything recorded,
        // which every machine computes alike (it addresses the recorded
        // dependencies shared through the remote).
        let static_global = remote.map(|_| {
            let no_edges = HashMap::new();
            let mut bare = key_context(inv, store, &no_edges, rules.clone(), roots.clone());
            bare.deps.clear();
            global_key(inv, info, &mut bare, &session_conftests).hex
        });

        let mut signature_inputs = Inputs::new();
        signature_inputs.insert("global".into(), global.hex.clone());
        signature_inputs.insert(
            "args".into(),
            key::value_label(&inv.args.positional.join("\0")),
        );
        signature_inputs.insert(
            "cwd".into(),
            rel_to(&root, &inv.cwd).unwrap_or_else(|| "outside".into()),
        );
        signature_inputs.insert(
            "files".into(),
            key::value_label(&found.test_files.join("\n")),
        );
        for c in &found.conftests {
            let l = ctx.builder.file_label(c);
            signature_inputs.insert(format!("file:{c}"), l);
        }
        let signature = key::finish(signature_inputs.clone()).hex;
        trace.mark("global key");
        let recorded_collection = store.collection(&signature);

        let mut candidates: BTreeSet<String> = found.test_files.iter().cloned().collect();
        if let Some(files) = &recorded_collection {
            candidates.extend(files.iter().filter(|f| root.join(f).is_file()).cloned());
        }
        let sels = selections(inv);
        // Two test files that pytest imports under the same module name make it
        // report an "import file mismatch" collection error; skipping one of
        // them would hide that error, so neither is ever skipped.
        let mut module_names: HashMap<String, usize> = HashMap::new();
        for f in &candidates {
            *module_names
                .entry(module_name(ctx.builder.graph.resolver(), f))
                .or_default() += 1;
        }
        let mut plan = Plan {
            caching,
            rules,
            signature: Some(signature),
            whole_files,
            info: Some(info.clone()),
            roots,
            session_conftests,
            select_sig: select_sig.clone(),
            signature_inputs,
            static_global: static_global.clone(),
            ..Plan::default()
        };
        let mut all_full = true;
        if inv.settings.refresh_cache {
            // Record, never reuse: every candidate still gets its pre-run key.
            for file in &candidates {
                let (k, _) = ctx.file_key(&global, file);
                plan.pre_keys.insert(file.clone(), k);
            }
            candidates.clear();
        }
        let mut keyed: Vec<(String, Key, bool)> = Vec::with_capacity(candidates.len());
        for file in &candidates {
            let (k, cacheable) = ctx.file_key(&global, file);
            keyed.push((file.clone(), k, cacheable));
        }
        trace.mark("per-file keys");
        let pairs: Vec<(&str, &str)> = keyed
            .iter()
            .filter(|(_, _, cacheable)| *cacheable)
            .map(|(f, k, _)| (f.as_str(), k.hex.as_str()))
            .collect();
        let mut found_entries = store
            .lookup_many(&pairs, select_sig.as_deref())
            .unwrap_or_else(|e| {
                report::warning(&format!("cache lookup failed, running everything: {e}"));
                HashMap::new()
            });
        trace.mark("cache lookups");
        if let Some(remote) = remote {
            let missing: Vec<(String, String)> = pairs
                .iter()
                .filter(|(f, _)| !found_entries.contains_key(*f))
                .map(|(f, k)| (f.to_string(), k.to_string()))
                .collect();
            // First what the machine that stored the results recorded: with
            // its dependencies, this machine computes the keys it stored under.
            if !missing.is_empty() && !synced {
                let snap = static_global
                    .as_deref()
                    .and_then(|g| remote.fetch_snapshot(g));
                if let Some(snap) = snap {
                    let deps: Vec<(String, String, Vec<String>)> = snap
                        .deps
                        .into_iter()
                        .map(|(f, kind, name)| (f, kind, vec![name]))
                        .collect();
                    let before = store.deps_count();
                    if store.record_deps(&deps, &snap.edges).is_ok() && store.deps_count() != before
                    {
                        return Plan::make_inner(inv, store, info, Some(remote), true);
                    }
                }
            }
            let got = if missing.is_empty() {
                Vec::new()
            } else {
                remote.fetch(&missing)
            };
            if !got.is_empty() {
                let files: Vec<(String, String, FileEntry)> = got
                    .iter()
                    .map(|e| (e.file.clone(), e.key.clone(), e.entry.clone()))
                    .collect();
                let results: Vec<(String, NodeResult)> = got
                    .iter()
                    .flat_map(|e| e.results.iter().map(|r| (e.key.clone(), r.clone())))
                    .collect();
                match store.import_entries(&files, &results) {
                    Ok(()) => {
                        let again: Vec<(&str, &str)> = got
                            .iter()
                            .map(|e| (e.file.as_str(), e.key.as_str()))
                            .collect();
                        if let Ok(more) = store.lookup_many(&again, select_sig.as_deref()) {
                            found_entries.extend(more);
                        }
                    }
                    Err(e) => report::warning(&format!(
                        "could not store the remote cache's entries locally: {e}"
                    )),
                }
            }
            trace.mark("remote cache lookups");
        }
        for (file, k, _) in keyed {
            let entry = found_entries.remove(&file);
            plan.pre_keys.insert(file.clone(), k);
            let Some(Lookup {
                entry,
                results,
                selected: kept_by_selection,
            }) = entry
            else {
                all_full = false;
                continue;
            };
            let mut by_id: HashMap<&str, &NodeResult> = HashMap::with_capacity(results.len());
            for r in results
                .iter()
                .filter(|r| REUSABLE.contains(&r.outcome.as_str()))
            {
                by_id.insert(r.nodeid.as_str(), r);
            }
            // A file whose import skipped (module-level `pytest.skip`) is as
            // reusable as a skipped test: its collect report is replayed.
            let module_skip = (entry.outcome == "skipped" && entry.nodes.is_empty())
                .then(|| serde_json::from_str::<serde_json::Value>(&entry.detail).ok())
                .flatten()
                .filter(|v| v.is_array());
            let full = module_skip.is_some()
                || (entry.outcome == "passed"
                    && entry.nodes.iter().all(|n| by_id.contains_key(n.as_str())));
            let unique = module_names
                .get(&module_name(ctx.builder.graph.resolver(), &file))
                .is_some_and(|n| *n == 1);
            // Under -k/-m/--deselect: the nodes this very selection kept from
            // this very file content last time, when all of them are cached.
            let selected_full = select_sig.is_some()
                && entry.outcome == "passed"
                && kept_by_selection
                    .as_ref()
                    .is_some_and(|k| k.iter().all(|n| by_id.contains_key(n.as_str())));
            if selected_full && unique {
                for n in kept_by_selection.iter().flatten() {
                    plan.cached.push(cached_node(by_id[n.as_str()]));
                }
                let kept: std::collections::HashSet<&String> =
                    kept_by_selection.iter().flatten().collect();
                plan.deselected
                    .extend(entry.nodes.iter().filter(|n| !kept.contains(n)).cloned());
                plan.skip_files.push(file);
            } else if full && whole_files && unique {
                // A file pytest was not going to visit replays nothing: the plugin
                // replays a skipped file's nodes only when pytest collected it.
                let sel = sels.iter().find(|(f, _)| {
                    **f == file || file.starts_with(&format!("{f}/")) || f.is_empty()
                });
                let sel = match (sels.is_empty(), sel) {
                    (true, _) => &None,
                    (false, Some((_, s))) => s,
                    (false, None) => &None,
                };
                for n in &entry.nodes {
                    if selected(n, sel) {
                        plan.cached.push(cached_node(by_id[n.as_str()]));
                    }
                }
                if let Some(longrepr) = module_skip {
                    plan.skipped_files.push(SkippedFile {
                        file: file.clone(),
                        longrepr,
                    });
                }
                plan.skip_files.push(file);
            } else {
                all_full &= full;
                plan.cached.extend(by_id.values().map(|r| cached_node(r)));
            }
        }
        plan.sels = sels;
        let same_collection = recorded_collection
            .map(|files| {
                let a: BTreeSet<&String> = files.iter().collect();
                let b: BTreeSet<&String> = found.test_files.iter().collect();
                a == b
            })
            .unwrap_or(false);
        plan.fast_path = !inv.settings.refresh_cache
            && (whole_files || plan.select_sig.is_some())
            && all_full
            && same_collection
            && !inv.args.needs_reporting;
        let _ = store.save_stat_cache(ctx.builder.graph.source_mut().changed_entries());
        let _ = store.save_parse_cache(ctx.builder.graph.new_parse_entries());
        let _ = store.set_global_inputs(
            &global.hex,
            &serde_json::to_string(&global.inputs).unwrap_or_default(),
        );
        trace.mark("saving the stat cache");
        Ok(plan)
    }

    /// Leaves out the files of other `--shard`s: nothing of them is replayed,
    /// and the CLI never answers alone for a part of the suite.
    pub fn exclude(&mut self, files: &[String]) {
        let out: std::collections::HashSet<&str> = files.iter().map(|s| s.as_str()).collect();
        let owner = |nodeid: &str| nodeid.split("::").next().unwrap_or("").to_owned();
        self.skip_files.retain(|f| !out.contains(f.as_str()));
        self.cached.retain(|c| !out.contains(c.file.as_str()));
        self.skipped_files
            .retain(|s| !out.contains(s.file.as_str()));
        self.deselected.retain(|n| !out.contains(owner(n).as_str()));
        self.pre_keys.retain(|f, _| !out.contains(f.as_str()));
        self.fast_path = false;
    }

    /// How many known test files must run (None: not known, the cache is off).
    pub fn files_to_run(&self) -> Option<usize> {
        self.caching
            .then(|| self.pre_keys.len().saturating_sub(self.skip_files.len()))
    }

    /// When every selected test is cached, answers without starting Python.
    pub fn answer_alone(&self, inv: &Invocation, started: f64) -> Option<i32> {
        if !self.fast_path {
            return None;
        }
        let mut counts: Vec<(String, usize)> = ["passed", "skipped", "xfailed", "deselected"]
            .iter()
            .map(|k| (k.to_string(), 0))
            .collect();
        for c in &self.cached {
            let slot = match c.outcome.as_str() {
                "passed" => 0,
                "skipped" => 1,
                _ => 2,
            };
            counts[slot].1 += 1;
        }
        counts[1].1 += self.skipped_files.len();
        counts[3].1 = self.deselected.len();
        // pytest's order: passed, skipped, deselected, xfailed.
        counts.swap(2, 3);
        if self.cached.is_empty() && self.skipped_files.is_empty() {
            return None;
        }
        let quiet = inv.args.verbosity < 0;
        let color = inv
            .pytest_argv
            .iter()
            .find_map(|a| a.strip_prefix("--color="))
            .map(str::to_owned);
        report::fully_cached_summary(&counts, now() - started, quiet, color.as_deref());
        write_outcomes(
            super::exit::OK,
            self.cached
                .iter()
                .map(|c| (c.nodeid.as_str(), c.outcome.as_str(), true)),
        );
        report::cache_summary(self.cached.len(), 0, self.saved());
        Some(super::exit::OK)
    }

    fn saved(&self) -> f64 {
        self.cached.iter().map(|c| c.duration).sum()
    }

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
        let mut collected: Vec<(String, String, Vec<String>, serde_json::Value)> = Vec::new();
        let mut new_deps: Vec<(String, String, Vec<String>)> = Vec::new();
        let mut new_edges: Vec<(String, String)> = Vec::new();
        let mut interrupted = !matches!(code, 0 | 1 | 5);
        let mut replayed: Vec<(String, String, String, f64)> = Vec::new();
        // Files (or "" for the whole session) whose tests read what the session wrote.
        let mut volatile: std::collections::HashSet<String> = std::collections::HashSet::new();
        for e in events {
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
                    ..
                } => results.push(NodeResult {
                    nodeid: nodeid.clone(),
                    file: file.clone(),
                    outcome: outcome.clone(),
                    duration: *duration,
                    location: location.to_string(),
                    longrepr: longrepr.to_string(),
                    wasxfail: wasxfail.clone(),
                }),
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
                    ..
                } => {
                    if !generated.is_empty() || *outside {
                        volatile.insert(file.clone().unwrap_or_default());
                    }
                    let f = file.clone().unwrap_or_default();
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
        if self.caching {
            // Merge what this run recorded before computing the keys results are stored under.
            if let Err(e) = store.record_deps(&new_deps, &new_edges) {
                report::warning(&format!("could not record dependencies: {e}"));
            }
        }
        if reusable_ok && !collected.is_empty() {
            let edges = store.edges().unwrap_or_default();
            let mut ctx = key_context(inv, store, &edges, self.rules.clone(), self.roots.clone());
            let global = global_key(
                inv,
                self.pre_global_info(),
                &mut ctx,
                &self.session_conftests,
            );
            post_global = Some(global.hex.clone());
            let started_ns = (started * 1e9) as i128;
            let unstable = |inputs: &Inputs, root: &Path| {
                inputs
                    .keys()
                    .filter_map(|k| k.strip_prefix("file:"))
                    .any(|f| {
                        std::fs::metadata(root.join(f))
                            .and_then(|m| m.modified())
                            .ok()
                            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                            .map(|d| d.as_nanos() as i128 >= started_ns)
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
                for (file, outcome, nodes, skip) in &collected {
                    let (k, cacheable) = ctx.file_key(&global, file);
                    if !cacheable || volatile.contains(file.as_str()) || unstable(&k.inputs, &root)
                    {
                        continue;
                    }
                    // Only a complete collection of the file may stand for it: node-ID
                    // arguments, --lf and unknown (plugin) options can make pytest
                    // collect a part of it. Its node results stay per-node truths.
                    let partial = !inv.args.understood()
                        || inv.args.narrows_collection
                        || matches!(self.sels.get(file.as_str()), Some(Some(_)));
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
                        if REUSABLE.contains(&r.outcome.as_str()) {
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
fn write_outcomes<'a>(code: i32, nodes: impl Iterator<Item = (&'a str, &'a str, bool)>) {
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

fn cached_to_result(c: &CachedNode) -> NodeResult {
    NodeResult {
        nodeid: c.nodeid.clone(),
        file: c.file.clone(),
        outcome: c.outcome.clone(),
        duration: c.duration,
        location: c.location.to_string(),
        longrepr: c.longrepr.to_string(),
        wasxfail: c.wasxfail.clone(),
    }
}

/// `--why NODEID`: which inputs changed since the node's last reusable result.
pub fn why(
    inv: &Invocation,
    store: &mut Store,
    info: &InterpreterInfo,
    node: &str,
) -> Result<i32, Failure> {
    let file = node.split("::").next().unwrap_or(node).to_owned();
    let Some((_, old_key)) = store.node_key(node).ok().flatten() else {
        report::out(&format!(
            "{node}: never passed (no reusable result is recorded for it)"
        ));
        return Ok(0);
    };
    let rules = load_rules(inv)?;
    let edges = store.edges().unwrap_or_default();
    let roots = search_roots(inv, store, std::slice::from_ref(&file));
    let mut ctx = key_context(inv, store, &edges, rules, roots);
    let (found, _) = scope(inv);
    let session_conftests = session_wide_conftests(&inv.setup.rootdir, &found.conftests);
    let global = global_key(inv, info, &mut ctx, &session_conftests);
    let (now_key, cacheable) = ctx.file_key(&global, &file);
    if !cacheable {
        report::out(&format!(
            "{node}: its rule says cache = false; it always runs"
        ));
        return Ok(0);
    }
    let served = store
        .lookup_many(&[(file.as_str(), now_key.hex.as_str())], None)
        .unwrap_or_default()
        .remove(&file)
        .is_some_and(|l| {
            l.results
                .iter()
                .any(|r| r.nodeid == node && REUSABLE.contains(&r.outcome.as_str()))
        });
    if served || now_key.hex == old_key {
        report::out(&format!(
            "{node}: inputs unchanged since its last pass; it is served from the cache"
        ));
        return Ok(0);
    }
    let Some(old) = store
        .file_entry(&file, &old_key)
        .ok()
        .flatten()
        .and_then(|e| serde_json::from_str::<Inputs>(&e.inputs).ok())
    else {
        report::out(&format!(
            "{node}: its inputs changed, but the inputs of its last pass are no longer stored"
        ));
        return Ok(0);
    };
    report::out(&format!("{node}: inputs changed since its last pass:"));
    for line in key::diff(&old, &now_key.inputs) {
        if !line.starts_with("global:") {
            report::out(&format!("  {line}"));
        }
    }
    if old.get("global") != now_key.inputs.get("global") {
        match find_global(store, old.get("global")) {
            Some(prev) => {
                for line in key::diff(&prev, &global.inputs) {
                    report::out(&format!("  (input of every test) {line}"));
                }
            }
            None => report::out("  an input of every test changed (arguments, interpreter, packages or configuration)"),
        }
    }
    Ok(0)
}

fn find_global(store: &Store, short: Option<&String>) -> Option<Inputs> {
    let short = short?;
    store
        .global_inputs_by_prefix(short)
        .and_then(|s| serde_json::from_str(&s).ok())
}

/// `--show-rules`: for every test file rpytest discovers, the rules that
/// govern it and every input of its key.
pub fn show_rules(
    inv: &Invocation,
    store: &mut Store,
    info: &InterpreterInfo,
) -> Result<i32, Failure> {
    let rules = load_rules(inv)?;
    let (found, _) = scope(inv);
    let edges = store.edges().unwrap_or_default();
    let mut scanned = found.test_files.clone();
    scanned.extend(found.conftests.iter().cloned());
    let roots = search_roots(inv, store, &scanned);
    let mut ctx = key_context(inv, store, &edges, rules.clone(), roots);
    let session_conftests = session_wide_conftests(&inv.setup.rootdir, &found.conftests);
    let global = global_key(inv, info, &mut ctx, &session_conftests);
    let mut out = String::from("every test (rule \"default\"):\n");
    for name in global.inputs.keys() {
        out.push_str(&format!("    {name}\n"));
    }
    for file in &found.test_files {
        let governing: Vec<&Rule> = rules.iter().skip(1).filter(|r| r.governs(file)).collect();
        let names: Vec<String> = governing
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let n = if r.name.is_empty() {
                    format!("#{}", i + 1)
                } else {
                    r.name.clone()
                };
                if r.extends.is_empty() {
                    n
                } else {
                    format!("{n} (extends {})", r.extends.join(", "))
                }
            })
            .collect();
        let (k, cache) = ctx.file_key(&global, file);
        out.push_str(&format!("{file}\n"));
        out.push_str(&format!(
            "  rules: {}\n",
            if names.is_empty() {
                "default".to_owned()
            } else {
                format!("default, {}", names.join(", "))
            }
        ));
        out.push_str(&format!(
            "  cache: {}\n",
            if cache { "yes" } else { "no (always runs)" }
        ));
        for r in &governing {
            if !r.args.is_empty() {
                out.push_str(&format!("  args: {}\n", r.args.join(" ")));
            }
            if let Some(w) = &r.workers {
                out.push_str(&format!("  workers: {w}\n"));
            }
            if let Some(t) = r.timeout {
                out.push_str(&format!("  timeout: {t}s per test\n"));
            }
        }
        out.push_str("  inputs:\n");
        for name in k.inputs.keys().filter(|n| *n != "global") {
            out.push_str(&format!("    {name}\n"));
        }
    }
    report::out(out.trim_end());
    Ok(super::exit::OK)
}
