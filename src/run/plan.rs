//! What the cache serves and what must run.
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
//! collection signature, the CLI answers alone (`alone.rs`).
//!
//! A plan is made in stages, each returning what the next takes: the scope
//! (discovery, once), the keys (one [`KeyContext`] for the run, `keys.rs`),
//! the lookup (the local store, then the remote cache for what it lacks),
//! and the replay list. Recording a finished run is in `record.rs`, with the
//! same key context.

use super::keys::{rel_to, search_roots, session_wide_conftests, Changed, KeyContext, Loaded};
use crate::exit::Failure;
use crate::inputs::discover::{discover_all, initial_paths, DiscoverOptions, Discovered};
use crate::inputs::key::{self, Inputs, Key};
use crate::inputs::Resolver;
use crate::outcome::Outcome;
use crate::project::args::path_of_arg;
use crate::project::interpreter::InterpreterInfo;
use crate::protocol::{CachedNode, SkippedFile, StoredJson};
use crate::report::Trace;
use crate::rules::Rule;
use crate::settings::Invocation;
use crate::store::{FileEntry, Lookup, NodeResult, Store};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Seconds since the epoch.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

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
    pub(super) select_sig: Option<String>,
    /// What the nodes kept by a run are stored and looked up under:
    /// `select_sig`, or a fixed signature for a run that selects nothing
    /// (then hooks alone deselect, `pytest_collection_modifyitems`).
    pub(super) kept_sig: Option<String>,
    /// Node-ID arguments per file (see `selections`).
    pub(super) sels: HashMap<String, Option<Vec<String>>>,
    /// Files named both whole and by node ID (see `selections`).
    pub(super) mixed: HashSet<String>,
    /// What the collection signature is made of (its `global` entry is the
    /// pre-run global key; `record` re-signs with the post-run one).
    pub(super) signature_inputs: Inputs,
    pub(super) rules: Vec<Rule>,
    /// The key of every candidate file before the run, with its inputs
    /// (after the run it stands when nothing it depends on changed).
    pub(super) pre_keys: HashMap<String, Key>,
    pub(super) signature: Option<String>,
    pub(super) fast_path: bool,
    /// No argument selects tests and every argument was understood.
    pub(super) whole_files: bool,
    pub(super) info: Option<InterpreterInfo>,
    /// conftest.py files that enter the global key.
    pub(super) session_conftests: Vec<String>,
    /// With a remote cache: the global key without recorded dependencies.
    pub static_global: Option<String>,
    /// The test files discovery found (when caching; see `discovered`).
    pub(super) test_files: Option<Vec<String>>,
    /// The run's key context, refreshed by `record` after the run.
    pub(super) keys: Option<KeyContext>,
    /// The global key before the run.
    pub(super) global: Option<Key>,
    /// Warnings for the user (the caller reports them).
    pub notices: Vec<String>,
}

/// What this command line asks pytest to collect, as rpytest's discovery
/// sees it.
pub(super) struct Scope {
    found: Discovered,
    /// Every path argument exists.
    all_exist: bool,
    /// The rootdir-relative paths the walk started from (`""`: all).
    dirs: Vec<String>,
}

/// The keys of one view of the recorded dependencies.
struct Keyed {
    global: Key,
    signature: String,
    recorded_collection: Option<Vec<String>>,
    /// Whether everything the recorded collection names is a file (an item
    /// no file owns names a directory or the session).
    collection_only_files: bool,
    /// Every candidate file with its key and whether its results may be cached.
    files: Vec<(String, Key, bool)>,
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
    // pytest makes both absolute against the invocation directory
    // (`absolutepath`: joined and normalized, links not resolved).
    o.ignore = inv.args.ignore.iter().map(|p| inv.cwd.join(p)).collect();
    o.ignore_glob = inv
        .args
        .ignore_glob
        .iter()
        .map(|g| crate::inputs::discover::absolute_path(&inv.cwd.join(g)))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    o
}

/// The test files rpytest discovers for this command line (rootdir-relative).
pub fn test_files(inv: &Invocation) -> Vec<String> {
    scope(inv).0.test_files
}

/// The rootdir-relative paths this command line's walk starts from (`""`:
/// all): its path arguments, else testpaths or the invocation directory.
pub(super) fn scope_dirs(inv: &Invocation) -> Vec<String> {
    scope_with_dirs(inv).2
}

pub(super) fn scope(inv: &Invocation) -> (Discovered, bool) {
    let (found, all_exist, _) = scope_with_dirs(inv);
    (found, all_exist)
}

/// The files a plugin collected in the most recent recorded collection that
/// discovery does not find, still present and inside this command line's
/// scope (`dirs`: rootdir-relative paths the arguments name; `""` is all).
fn plugin_collected(
    store: &Store,
    root: &Path,
    found: &Discovered,
    dirs: &[String],
) -> Vec<String> {
    let Some(files) = store.last_collection() else {
        return Vec::new();
    };
    let known: std::collections::HashSet<&String> = found.test_files.iter().collect();
    files
        .into_iter()
        .filter(|f| !known.contains(f))
        .filter(|f| {
            dirs.iter()
                .any(|d| d.is_empty() || f == d || f.starts_with(&format!("{d}/")))
        })
        .filter(|f| root.join(f).is_file())
        .collect()
}

/// Like `scope`, with the rootdir-relative paths the walk started from (an
/// argument outside rootdir contributes none).
fn scope_with_dirs(inv: &Invocation) -> (Discovered, bool, Vec<String>) {
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
    let dirs = arg_paths
        .iter()
        .filter_map(|p| {
            let p = crate::project::rootdir::absolutepath(p, Path::new("/"));
            rel_to(root, &p)
        })
        .collect();
    (discover_all(root, &arg_paths, &opts), all_exist, dirs)
}

/// A name for the test selection of this command line, when rpytest can
/// trust that pytest's selection is a pure function of the file's key and
/// these arguments: only `-k`, `-m`, `--deselect` select (not `--lf` & co,
/// which depend on pytest's own cache), and every argument is understood.
/// Node-ID arguments narrow what pytest collects of a file, and what a
/// selection kept of the whole file says nothing about that part: pytest
/// applies the selection then.
fn kept_signature(inv: &Invocation, all_exist: bool) -> Option<String> {
    let a = &inv.args;
    if a.stops_early {
        // `-x`/`--maxfail` can stop a run in the middle of a file (under
        // `-n`, another worker's failure): what ran is not what is kept.
        return None;
    }
    selection_signature(inv, all_exist).or_else(|| {
        (!a.selects
            && a.understood()
            && !a.narrows_collection
            && !a.positional.iter().any(|p| p.contains("::"))
            && all_exist)
            .then(|| key::value_label("\0no selection"))
    })
}

fn selection_signature(inv: &Invocation, all_exist: bool) -> Option<String> {
    let a = &inv.args;
    (a.selects
        && !a.selects_impurely
        && a.understood()
        && !a.narrows_collection
        && !a.positional.iter().any(|p| p.contains("::"))
        && all_exist)
        .then(|| key::value_label(&a.select_args.join("\0")))
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
///
/// A file named both whole and by node ID (`t.py t.py::test_a`) counts as
/// named by its node IDs: what pytest collects of it then depends on the
/// order of the arguments (it collected only `test_a` there, and both tests
/// with the arguments the other way round), so a run of it never stands for
/// the whole file, and it is never skipped whole (see `mixed_files`).
fn selections(inv: &Invocation) -> HashMap<String, Option<Vec<String>>> {
    let mut out: HashMap<String, Option<Vec<String>>> = HashMap::new();
    for (rel, node) in argument_files(inv) {
        match node {
            Some(rest) => {
                let v = out.entry(rel).or_insert_with(|| Some(Vec::new()));
                v.get_or_insert_with(Vec::new).push(rest.to_owned());
            }
            None => {
                out.entry(rel).or_insert(None);
            }
        }
    }
    out
}

/// The files named both whole and by node ID: pytest collects them, and the
/// session replays their cached nodes where pytest collects them.
fn mixed_files(inv: &Invocation) -> HashSet<String> {
    let mut whole: HashSet<String> = HashSet::new();
    let mut by_id: HashSet<String> = HashSet::new();
    for (rel, node) in argument_files(inv) {
        match node {
            Some(_) => by_id.insert(rel),
            None => whole.insert(rel),
        };
    }
    whole.intersection(&by_id).cloned().collect()
}

/// Each path argument under rootdir: its rootdir-relative path, and what
/// follows its first `::` (a node ID's test part), if any.
fn argument_files(inv: &Invocation) -> impl Iterator<Item = (String, Option<&str>)> {
    inv.args.positional.iter().filter_map(|a| {
        let p = crate::project::rootdir::absolutepath(&path_of_arg(a, &inv.cwd), Path::new("/"));
        let rel = rel_to(&inv.setup.rootdir, &p)?;
        Some((rel, a.split_once("::").map(|(_, rest)| rest)))
    })
}

fn selected(nodeid: &str, sel: &Option<Vec<String>>) -> bool {
    let Some(sels) = sel else { return true };
    let rest = nodeid.split_once("::").map(|(_, r)| r).unwrap_or("");
    sels.iter().any(|s| {
        rest == s || rest.starts_with(&format!("{s}::")) || rest.starts_with(&format!("{s}["))
    })
}

/// A stored result as the session replays it (its strings move, its JSON
/// texts stay undecoded).
fn cached_node(r: NodeResult) -> CachedNode {
    CachedNode {
        nodeid: r.nodeid,
        file: r.file,
        outcome: r.outcome,
        duration: r.duration,
        location: StoredJson::from_string(r.location),
        longrepr: StoredJson::from_string(r.longrepr),
        wasxfail: r.wasxfail,
        output: StoredJson::from_string(r.output),
    }
}

/// A file's reusable results by node ID, each taken at most once.
struct Reusable {
    /// Node ID to position; only for files with many results (a few
    /// results are found faster by comparing their IDs).
    index: Option<HashMap<String, usize>>,
    results: Vec<Option<NodeResult>>,
}

/// Files with more results than this index them by node ID.
const INDEXED_ABOVE: usize = 16;

impl Reusable {
    fn of(results: Vec<NodeResult>) -> Reusable {
        let results: Vec<Option<NodeResult>> = results
            .into_iter()
            .filter(|r| r.outcome.reusable())
            .map(Some)
            .collect();
        let index = (results.len() > INDEXED_ABOVE).then(|| {
            results
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r.as_ref().map(|r| (r.nodeid.clone(), i)))
                .collect()
        });
        Reusable { index, results }
    }

    /// Where the result of `nodeid` is (the last one, when a node ID was
    /// stored twice), taken or not.
    fn position(&self, nodeid: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(nodeid).copied(),
            None => self
                .results
                .iter()
                .rposition(|r| r.as_ref().is_some_and(|r| r.nodeid == nodeid)),
        }
    }

    fn contains(&self, nodeid: &str) -> bool {
        self.position(nodeid).is_some()
    }

    /// The results of `nodes`, in their order, replayable: each moves out
    /// at its last use (a node ID named twice is replayed twice).
    fn take<'n>(&mut self, nodes: impl Iterator<Item = &'n String> + Clone) -> Vec<NodeResult> {
        let mut uses = vec![0u32; self.results.len()];
        for n in nodes.clone() {
            if let Some(i) = self.position(n) {
                uses[i] += 1;
            }
        }
        let mut out = Vec::new();
        for n in nodes {
            let Some(i) = self.position(n) else {
                continue;
            };
            uses[i] = uses[i].saturating_sub(1);
            let r = match uses[i] {
                0 => self.results[i].take(),
                _ => self.results[i].clone(),
            };
            out.extend(r);
        }
        out
    }

    /// Every result not taken yet.
    fn rest(self) -> impl Iterator<Item = NodeResult> {
        self.results.into_iter().flatten()
    }
}

impl Plan {
    /// Decides what the cache serves, asking `remote` (when configured) for
    /// what the local cache does not hold.
    pub fn make(
        inv: &Invocation,
        store: &mut Store,
        info: &InterpreterInfo,
        rules: &[Rule],
        remote: Option<&crate::remote::Remote>,
    ) -> Result<Plan, Failure> {
        if !inv.settings.use_cache || inv.args.no_run {
            return Ok(Plan::default());
        }
        let mut trace = Trace::new();
        // The store's caches are read while discovery walks the tree.
        let (scope, loaded) = std::thread::scope(|s| {
            // Moved to the thread (a connection is used by one at a time).
            let store: &mut Store = &mut *store;
            let loading = s.spawn(move || Loaded::from(store));
            let scope = Scope::of(inv);
            let loaded = loading
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e));
            (scope, loaded)
        });
        trace.mark("discovery, and the stat, parse and dependency caches");
        let mut scanned = scope.found.test_files.clone();
        scanned.extend(scope.found.conftests.iter().cloned());
        let roots = search_roots(inv, store, &scanned);
        trace.mark("search roots");
        let mut ctx = KeyContext::of_loaded(inv, loaded, rules.to_vec(), roots);
        trace.mark("key context");
        let mut plan = Plan::begin(inv, info, rules, &scope);
        let conftests = plan.session_conftests.clone();
        let (static_global, global) = ctx.global_keys(inv, info, &conftests, remote.is_some());
        plan.static_global = static_global;
        ctx.attach_hermetic(inv, store, info, &conftests);
        trace.mark("global key");
        let mut keyed = plan.key_files(inv, store, &mut ctx, global, &scope, None);
        trace.mark("per-file keys");
        let mut found = plan.lookup_local(inv, store, &keyed);
        trace.mark("cache lookups");
        if let Some(remote) = remote {
            if plan.sync_snapshot(inv, store, info, remote, &keyed, &found) {
                // The remote's recorded dependencies arrived: the same
                // context, refreshed, keys again what they change.
                let roots = ctx.roots.clone();
                let changed = ctx.refresh(inv, store, info, roots, &conftests);
                let global = match changed.global(&keyed.global) {
                    true => ctx.global_key(inv, info, &conftests),
                    false => keyed.global.clone(),
                };
                let earlier = Some((&keyed, &changed));
                keyed = plan.key_files(inv, store, &mut ctx, global, &scope, earlier);
                found = plan.lookup_local(inv, store, &keyed);
            }
            plan.fetch_remote(store, remote, &keyed, &mut found);
            trace.mark("remote cache lookups");
        }
        plan.touch(store, &keyed, &found);
        trace.mark("marking entries used");
        plan.replay_list(inv, ctx.builder.graph.resolver(), keyed, found, &scope);
        trace.mark("replay list");
        ctx.save(store);
        if let Some(g) = &plan.global {
            let inputs = serde_json::to_string(&g.inputs).unwrap_or_default();
            let _ = store.set_global_inputs(&g.hex, &inputs);
        }
        plan.keys = Some(ctx);
        trace.mark("saving the stat cache");
        Ok(plan)
    }

    /// The plan before anything is keyed: what the command line says.
    fn begin(inv: &Invocation, info: &InterpreterInfo, rules: &[Rule], scope: &Scope) -> Plan {
        Plan {
            caching: true,
            rules: rules.to_vec(),
            // `--doctest-modules`/`--doctest-glob` collect files discovery does not
            // know: they are learned from the last collection, keyed and
            // skipped like test files.
            whole_files: inv.args.understood() && !inv.args.selects && scope.all_exist,
            info: Some(info.clone()),
            session_conftests: session_wide_conftests(&inv.setup.rootdir, &scope.found.conftests),
            select_sig: selection_signature(inv, scope.all_exist),
            kept_sig: kept_signature(inv, scope.all_exist),
            test_files: Some(scope.found.test_files.clone()),
            sels: selections(inv),
            mixed: mixed_files(inv),
            ..Plan::default()
        }
    }

    /// The collection signature under `global`, the candidate files and
    /// their keys. With `earlier` (the keys of the previous view and what
    /// changed since), a key whose inputs did not change is reused.
    fn key_files(
        &mut self,
        inv: &Invocation,
        store: &Store,
        ctx: &mut KeyContext,
        global: Key,
        scope: &Scope,
        earlier: Option<(&Keyed, &Changed)>,
    ) -> Keyed {
        let root = &inv.setup.rootdir;
        let signature_inputs = signature_inputs(inv, ctx, &global, &scope.found);
        let signature = key::finish(signature_inputs.clone()).hex;
        let recorded_collection = store.collection(&signature);
        let mut candidates: BTreeSet<String> = scope.found.test_files.iter().cloned().collect();
        let mut collection_only_files = true;
        match &recorded_collection {
            Some(files) => {
                for f in files {
                    if root.join(f).is_file() {
                        candidates.insert(f.clone());
                    } else {
                        collection_only_files = false;
                    }
                }
            }
            // Not seen with this signature (a file was added, a collector
            // changed): what plugins collected last time are still candidates,
            // so the unchanged ones are not run again. Skipping one is safe
            // either way: the plugin drops (and replays) a file only when
            // pytest would have collected it.
            None => candidates.extend(plugin_collected(store, root, &scope.found, &scope.dirs)),
        }
        let files: Vec<&String> = candidates.iter().collect();
        // Only `--why` reads the labelled inputs of the plan's keys: the
        // others are digests, computed without building their maps (a run
        // keys again, with inputs, what it stores).
        let keep_inputs = matches!(inv.mode, crate::settings::Mode::Why(_));
        let keys = match earlier {
            None => ctx.file_keys(&global, &files, keep_inputs),
            Some((before, changed)) => {
                let map: HashMap<String, Key> = before
                    .files
                    .iter()
                    .map(|(f, k, _)| (f.clone(), k.clone()))
                    .collect();
                ctx.rekey(&global, &files, &map, changed)
            }
        };
        self.signature_inputs = signature_inputs;
        self.signature = Some(signature.clone());
        Keyed {
            global,
            signature,
            recorded_collection,
            collection_only_files,
            files: candidates
                .into_iter()
                .zip(keys)
                .map(|(f, (k, cacheable))| (f, k, cacheable))
                .collect(),
        }
    }

    /// What the local store holds for the keyed files (nothing under
    /// `--refresh-cache`: every file is recorded, none reused).
    fn lookup_local(
        &mut self,
        inv: &Invocation,
        store: &mut Store,
        keyed: &Keyed,
    ) -> HashMap<String, Lookup> {
        if inv.settings.refresh_cache {
            return HashMap::new();
        }
        let pairs = cacheable_pairs(keyed);
        store
            .lookup_many(&pairs, self.kept_sig.as_deref())
            .unwrap_or_else(|e| {
                self.notices
                    .push(format!("cache lookup failed, running everything: {e}"));
                HashMap::new()
            })
    }

    /// When the local store lacks some file, first what the machine that
    /// stored the remote's results recorded: with its dependencies, this
    /// machine computes the keys it stored under. True when the store
    /// learned something the keys depend on.
    fn sync_snapshot(
        &self,
        inv: &Invocation,
        store: &mut Store,
        info: &InterpreterInfo,
        remote: &crate::remote::Remote,
        keyed: &Keyed,
        found: &HashMap<String, Lookup>,
    ) -> bool {
        let missing = cacheable_pairs(keyed)
            .iter()
            .any(|(f, _)| !found.contains_key(*f));
        if !missing || inv.settings.refresh_cache {
            return false;
        }
        let Some(snap) = self
            .static_global
            .as_deref()
            .and_then(|g| remote.fetch_snapshot(g))
        else {
            return false;
        };
        let deps: Vec<(String, String, Vec<String>)> = snap
            .deps
            .into_iter()
            .map(|(f, kind, name)| (f, kind, vec![name]))
            .collect();
        let before = store.deps_count();
        let anchors = crate::inputs::installed::Anchors::of(info, &inv.setup.rootdir);
        let installed = store.import_installed(&snap.installed, &anchors);
        let recorded =
            store.record_deps(&deps, &snap.edges).is_ok() && store.deps_count() != before;
        recorded || installed
    }

    /// Asks the remote cache for the files the local store lacks; what it
    /// gives is stored locally and joins `found`.
    fn fetch_remote(
        &mut self,
        store: &mut Store,
        remote: &crate::remote::Remote,
        keyed: &Keyed,
        found: &mut HashMap<String, Lookup>,
    ) {
        let missing: Vec<(String, String)> = cacheable_pairs(keyed)
            .into_iter()
            .filter(|(f, _)| !found.contains_key(*f))
            .map(|(f, k)| (f.to_owned(), k.to_owned()))
            .collect();
        if missing.is_empty() {
            return;
        }
        let got = remote.fetch(&missing);
        if got.is_empty() {
            return;
        }
        let files: Vec<(String, String, FileEntry)> = got
            .iter()
            .map(|e| (e.file.clone(), e.key.clone(), e.entry.clone()))
            .collect();
        let results: Vec<(String, NodeResult)> = got
            .iter()
            .flat_map(|e| e.results.iter().map(|r| (e.key.clone(), r.clone())))
            .collect();
        if let Err(e) = store.import_entries(&files, &results) {
            self.notices.push(format!(
                "could not store the remote cache's entries locally: {e}"
            ));
            return;
        }
        let again: Vec<(&str, &str)> = got
            .iter()
            .map(|e| (e.file.as_str(), e.key.as_str()))
            .collect();
        if let Ok(more) = store.lookup_many(&again, self.kept_sig.as_deref()) {
            found.extend(more);
        }
    }

    /// Marks the entries this run uses (the store's eviction keeps them).
    fn touch(&mut self, store: &mut Store, keyed: &Keyed, found: &HashMap<String, Lookup>) {
        let hits: Vec<(&str, &str)> = keyed
            .files
            .iter()
            .filter(|(f, _, _)| found.contains_key(f))
            .map(|(f, k, _)| (f.as_str(), k.hex.as_str()))
            .collect();
        if let Err(e) = store.touch(&hits) {
            self.notices
                .push(format!("could not mark cache entries as used: {e}"));
        }
    }

    /// What is replayed and skipped, file by file; whether the CLI may
    /// answer alone.
    fn replay_list(
        &mut self,
        inv: &Invocation,
        resolver: &Resolver,
        keyed: Keyed,
        mut found: HashMap<String, Lookup>,
        scope: &Scope,
    ) {
        // Two test files that pytest imports under the same module name make it
        // report an "import file mismatch" collection error; skipping one of
        // them would hide that error, so neither is ever skipped.
        let mut module_names: HashMap<String, usize> = HashMap::new();
        let mut module_of: HashMap<&str, String> = HashMap::with_capacity(keyed.files.len());
        for (f, _, _) in &keyed.files {
            let name = module_name(resolver, f);
            *module_names.entry(name.clone()).or_default() += 1;
            module_of.insert(f.as_str(), name);
        }
        let unique: HashSet<String> = module_of
            .iter()
            .filter(|(_, m)| module_names.get(*m) == Some(&1))
            .map(|(f, _)| f.to_string())
            .collect();
        let mut all_full = true;
        // The replayed results, in order, made replayable (their JSON texts
        // checked) at the end on every core.
        let mut replayed = Vec::new();
        for (file, k, _) in keyed.files {
            let entry = found.remove(&file);
            self.pre_keys.insert(file.clone(), k);
            all_full &= match entry {
                Some(entry) => {
                    let unique = unique.contains(&file) && !self.mixed.contains(&file);
                    self.replay_file(file.clone(), entry, unique, &mut replayed)
                }
                None => false,
            };
        }
        self.cached
            .extend(crate::store::par_map(replayed, cached_node));
        // Files plugins collect are in the recorded collection but not in
        // discovery; every discovered test file must have been collected.
        // An item no file owns (a directory collector's, or one a hook added
        // to the session, pytest-mypy's status item) has no key and is never
        // replayed: only a session runs it.
        let same_collection = keyed.collection_only_files
            && keyed.recorded_collection.is_some_and(|files| {
                let a: BTreeSet<&String> = files.iter().collect();
                scope.found.test_files.iter().all(|f| a.contains(f))
            });
        self.fast_path = !inv.settings.refresh_cache
            && (self.whole_files || self.select_sig.is_some())
            && all_full
            && same_collection
            && !inv.args.needs_reporting;
        self.signature = Some(keyed.signature);
        self.global = Some(keyed.global);
    }

    /// Replays what the cache holds for `file`: the whole file is skipped
    /// when it may be, else its reusable nodes are replayed where pytest
    /// runs them. Returns whether the file was fully served.
    fn replay_file(
        &mut self,
        file: String,
        lookup: Lookup,
        unique: bool,
        replayed: &mut Vec<NodeResult>,
    ) -> bool {
        let Lookup {
            entry,
            results,
            selected: kept_by_selection,
        } = lookup;
        let mut by_id = Reusable::of(results);
        // A file whose import skipped (module-level `pytest.skip`) is as
        // reusable as a skipped test: its collect report is replayed.
        let module_skip = (entry.outcome == Outcome::Skipped && entry.nodes.is_empty())
            .then(|| serde_json::from_str::<serde_json::Value>(&entry.detail).ok())
            .flatten()
            .filter(|v| v.is_array());
        let passed = entry.outcome == Outcome::Passed;
        let full =
            module_skip.is_some() || (passed && entry.nodes.iter().all(|n| by_id.contains(n)));
        // Under -k/-m/--deselect: the nodes this very selection kept from
        // this very file content last time, when all of them are cached.
        let kept_reusable = kept_by_selection
            .as_ref()
            .is_some_and(|k| !k.is_empty() && k.iter().all(|n| by_id.contains(n)));
        let selected_full = self.select_sig.is_some() && passed && kept_reusable;
        if selected_full && unique {
            let kept: Vec<String> = kept_by_selection.unwrap_or_default();
            replayed.extend(by_id.take(kept.iter()));
            let kept: HashSet<&String> = kept.iter().collect();
            self.deselected
                .extend(entry.nodes.iter().filter(|n| !kept.contains(n)).cloned());
            self.skip_files.push(file);
            true
        } else if full && self.whole_files && unique {
            self.skip_whole(file, &entry, by_id, module_skip, replayed);
            true
        } else {
            // Under a selection this file's key has not seen, only pytest
            // knows what `-k`/`-m`/`--deselect` keep (or that the
            // expression is invalid): never answer without a session.
            // A file with a test to run (a failure, an error, a test the
            // cache does not hold) runs whole: its tests share the module's
            // state, and a test run after replayed ones would not see what
            // they leave behind. Replayed are only results of a run of the
            // same file content and selection in which every node this
            // selection keeps ran (a hook's deselected nodes, which have no
            // result, are deselected again).
            if full || kept_reusable {
                replayed.extend(by_id.rest());
            }
            full && self.select_sig.is_none()
        }
    }

    /// Skips a fully cached file and replays its nodes that the node-ID
    /// arguments select.
    fn skip_whole(
        &mut self,
        file: String,
        entry: &FileEntry,
        mut by_id: Reusable,
        module_skip: Option<serde_json::Value>,
        replayed: &mut Vec<NodeResult>,
    ) {
        // A file pytest was not going to visit replays nothing: the plugin
        // replays a skipped file's nodes only when pytest collected it.
        let sel = self
            .sels
            .iter()
            .find(|(f, _)| **f == file || file.starts_with(&format!("{f}/")) || f.is_empty());
        let sel = match (self.sels.is_empty(), sel) {
            (false, Some((_, s))) => s.clone(),
            _ => None,
        };
        let chosen = entry.nodes.iter().filter(|n| selected(n, &sel));
        replayed.extend(by_id.take(chosen));
        if let Some(longrepr) = module_skip {
            self.skipped_files.push(SkippedFile {
                file: file.clone(),
                longrepr,
            });
        }
        self.skip_files.push(file);
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

    /// The test files rpytest discovers for this command line: the plan's
    /// own discovery when it made one, else a walk now.
    pub fn discovered(&self, inv: &Invocation) -> Vec<String> {
        self.test_files.clone().unwrap_or_else(|| test_files(inv))
    }

    /// How many known test files must run (None: not known, the cache is off).
    pub fn files_to_run(&self) -> Option<usize> {
        self.caching
            .then(|| self.pre_keys.len().saturating_sub(self.skip_files.len()))
    }

    /// Seconds the replayed results took when they ran.
    pub(super) fn saved(&self) -> f64 {
        self.cached.iter().map(|c| c.duration).sum()
    }
}

/// The files whose results may be cached, with their keys.
fn cacheable_pairs(keyed: &Keyed) -> Vec<(&str, &str)> {
    keyed
        .files
        .iter()
        .filter(|(_, _, cacheable)| *cacheable)
        .map(|(f, k, _)| (f.as_str(), k.hex.as_str()))
        .collect()
}

/// What the collection signature is made of: the global key, the
/// arguments, where the run starts, the files discovery finds and every
/// name a collector could be offered.
fn signature_inputs(
    inv: &Invocation,
    ctx: &mut KeyContext,
    global: &Key,
    found: &Discovered,
) -> Inputs {
    let root = &inv.setup.rootdir;
    let mut inputs = Inputs::new();
    inputs.insert("global".into(), global.hex.clone());
    inputs.insert(
        "args".into(),
        key::value_label(&inv.args.positional.join("\0")),
    );
    inputs.insert(
        "cwd".into(),
        rel_to(root, &inv.cwd).unwrap_or_else(|| "outside".into()),
    );
    inputs.insert(
        "files".into(),
        key::value_label(&found.test_files.join("\n")),
    );
    // Every name a collector could be offered: a new data file can be a
    // new golden-file test or doctest.
    inputs.insert("listing".into(), found.listing.clone());
    for c in &found.conftests {
        let l = ctx.builder.file_label(c);
        inputs.insert(format!("file:{c}"), l);
    }
    inputs
}

impl Scope {
    /// Discovery for this command line, once per run.
    pub(super) fn of(inv: &Invocation) -> Scope {
        let (found, all_exist, dirs) = scope_with_dirs(inv);
        Scope {
            found,
            all_exist,
            dirs,
        }
    }
}

#[cfg(test)]
mod reusable {
    use super::*;

    fn result(name: &str, outcome: &str, duration: f64) -> NodeResult {
        NodeResult {
            nodeid: format!("t.py::{name}"),
            file: "t.py".into(),
            outcome: outcome.into(),
            duration,
            location: "null".into(),
            longrepr: "null".into(),
            wasxfail: None,
            output: String::new(),
        }
    }

    /// What `take` then `rest` give, as (node ID, duration) pairs.
    fn replayed(mut r: Reusable, nodes: &[&str]) -> Vec<(String, f64)> {
        let nodes: Vec<String> = nodes.iter().map(|n| format!("t.py::{n}")).collect();
        let taken = r.take(nodes.iter());
        taken
            .into_iter()
            .chain(r.rest())
            .map(|c| (c.nodeid, c.duration))
            .collect()
    }

    /// A file with few results finds them by comparing node IDs, one with
    /// many through an index: both replay the same results, a node ID named
    /// twice twice, a node ID stored twice by its last result, nothing for
    /// an unknown or failed node, and what was not taken afterwards.
    #[test]
    fn few_and_many_results_replay_alike() {
        let mut few = vec![
            result("a", "passed", 1.0),
            result("b", "skipped", 2.0),
            result("a", "passed", 3.0),
            result("f", "failed", 4.0),
            result("c", "xfailed", 5.0),
        ];
        let asked = ["a", "b", "a", "x", "f"];
        let linear = Reusable::of(few.clone());
        assert!(linear.index.is_none());
        let expected = vec![
            ("t.py::a".to_owned(), 3.0),
            ("t.py::b".to_owned(), 2.0),
            ("t.py::a".to_owned(), 3.0),
            ("t.py::a".to_owned(), 1.0),
            ("t.py::c".to_owned(), 5.0),
        ];
        assert_eq!(replayed(linear, &asked), expected);
        for i in 0..INDEXED_ABOVE {
            few.push(result(&format!("z{i}"), "passed", 0.5));
        }
        let indexed = Reusable::of(few);
        assert!(indexed.index.is_some());
        let mut got = replayed(indexed, &asked);
        got.retain(|(n, _)| !n.starts_with("t.py::z"));
        assert_eq!(got, expected);
    }
}
