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
//!
//! Recording a finished run is in `record.rs`, `--why` and `--show-rules` in
//! `explain.rs`; the key helpers here are shared with both.

use super::record::write_outcomes;
use super::{Failure, Invocation};
use crate::inputs::discover::{discover_all, initial_paths, DiscoverOptions};
use crate::inputs::key::{self, Inputs, Key, KeyBuilder, Recorded};
use crate::inputs::resolve::default_search_roots;
use crate::inputs::{conftest_is_local, FileHasher, ImportGraph, Resolver};
use crate::project::args::path_of_arg;
use crate::project::interpreter::InterpreterInfo;
use crate::protocol::{CachedNode, SkippedFile};
use crate::report;
use crate::rules::{self, Rule};
use crate::store::{FileEntry, Lookup, NodeResult, Store, SCHEMA_VERSION};
use std::collections::{BTreeSet, HashMap};
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
    /// Node-ID arguments per file (see `selections`).
    pub(super) sels: HashMap<String, Option<Vec<String>>>,
    /// What the collection signature is made of (its `global` entry is the
    /// pre-run global key; `record` re-signs with the post-run one).
    pub(super) signature_inputs: Inputs,
    pub(super) rules: Vec<Rule>,
    /// The key of every candidate file before the run (digests only: the
    /// labelled inputs are not kept).
    pub(super) pre_keys: HashMap<String, Key>,
    pub(super) signature: Option<String>,
    pub(super) fast_path: bool,
    /// No argument selects tests and every argument was understood.
    pub(super) whole_files: bool,
    pub(super) info: Option<InterpreterInfo>,
    /// The import search roots the keys were computed with.
    pub(super) roots: Vec<String>,
    /// conftest.py files that enter the global key.
    pub(super) session_conftests: Vec<String>,
    /// With a remote cache: the global key without recorded dependencies.
    pub static_global: Option<String>,
    /// The test files discovery found (when caching; see `discovered`).
    pub(super) test_files: Option<Vec<String>>,
}

/// The invocation directory relative to rootdir (`.` for rootdir itself,
/// `../x` outside it): machine-independent, never an absolute path.
pub(super) fn invocation_dir(root: &Path, cwd: &Path) -> String {
    let root: Vec<_> = root.components().collect();
    let cwd: Vec<_> = cwd.components().collect();
    let common = root
        .iter()
        .zip(cwd.iter())
        .take_while(|(a, b)| a == b)
        .count();
    let mut parts: Vec<String> = vec!["..".to_owned(); root.len() - common];
    parts.extend(
        cwd[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
    }
}

pub(super) fn rel_to(root: &Path, p: &Path) -> Option<String> {
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
pub(super) struct KeyContext<'s> {
    pub(super) builder: KeyBuilder<'s>,
    pub(super) deps: HashMap<String, HashMap<String, Vec<String>>>,
    pub(super) rules: Vec<Rule>,
    /// Label of every argument (ini addopts, `PYTEST_ADDOPTS`, the command
    /// line), output-only ones included: an input of tests that read options.
    pub(super) all_args: String,
    /// Installed module files sessions imported (inputs/installed.rs).
    pub(super) installed: crate::inputs::installed::InstalledFiles,
    /// `--hermetic`: every test file is hermetic.
    pub(super) all_hermetic: bool,
    /// Where hermetic files are keyed, with their global key (hermetic.rs).
    pub(super) hermetic: Option<Box<(KeyContext<'static>, Key)>>,
}

impl KeyContext<'_> {
    pub(super) fn recorded(&self, file: &str) -> Recorded {
        Recorded::from_map(self.deps.get(file))
    }

    /// Whether `file` runs hermetically (and is keyed as such).
    pub(super) fn is_hermetic(&self, file: &str) -> bool {
        super::hermetic::is_hermetic(&self.rules, self.all_hermetic, file)
    }

    pub(super) fn file_key(&mut self, global: &Key, file: &str) -> (Key, bool) {
        if self.is_hermetic(file) {
            if let Some(h) = self.hermetic.as_mut() {
                let (ctx, hermetic_global) = &mut **h;
                return ctx.file_key(hermetic_global, file);
            }
        }
        let shared = KeyShared {
            deps: &self.deps,
            rules: &self.rules,
            all_args: &self.all_args,
            keep_inputs: true,
        };
        shared.file_key(&mut self.builder, global, file)
    }

    /// The keys of many files, in order, computed on every core: each thread
    /// gets a fork of the builder (same stat and parse caches, its own
    /// memos), and what the forks hashed is merged back to be persisted.
    /// Without `keep_inputs` only the keys' digests are kept: the labelled
    /// maps are freed where they were built, on the computing threads.
    pub(super) fn file_keys(
        &mut self,
        global: &Key,
        files: &[&String],
        keep_inputs: bool,
    ) -> Vec<(Key, bool)> {
        if self.hermetic.is_some() {
            // Hermetic files are keyed in their own context: one file at a time.
            return files
                .iter()
                .map(|f| {
                    let (mut k, cache) = self.file_key(global, f);
                    if !keep_inputs {
                        k.inputs = Inputs::new();
                    }
                    (k, cache)
                })
                .collect();
        }
        let base = KeyShared {
            deps: &self.deps,
            rules: &self.rules,
            all_args: &self.all_args,
            keep_inputs,
        };
        let shared = &base;
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(8);
        // Below a few hundred files a thread costs more than it saves.
        if threads < 2 || files.len() < 512 {
            return files
                .iter()
                .map(|f| shared.file_key(&mut self.builder, global, f))
                .collect();
        }
        let per = files.len().div_ceil(threads);
        let mut forks: Vec<KeyBuilder> = (1..threads).map(|_| self.builder.fork()).collect();
        let main = &mut self.builder;
        let mut out: Vec<Vec<(Key, bool)>> = std::thread::scope(|s| {
            let mut chunks = files.chunks(per);
            let first = chunks.next().unwrap_or(&[]);
            let handles: Vec<_> = chunks
                .zip(forks.iter_mut())
                .map(|(chunk, b)| {
                    s.spawn(move || {
                        chunk
                            .iter()
                            .map(|f| shared.file_key(b, global, f))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let mut all = vec![first
                .iter()
                .map(|f| shared.file_key(main, global, f))
                .collect::<Vec<_>>()];
            for h in handles {
                all.push(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
            }
            all
        });
        for f in forks {
            self.builder.absorb(f);
        }
        out.drain(..).flatten().collect()
    }
}

/// The read-only part of a [`KeyContext`], shared by key-computing threads.
struct KeyShared<'c> {
    deps: &'c HashMap<String, HashMap<String, Vec<String>>>,
    rules: &'c [Rule],
    all_args: &'c str,
    keep_inputs: bool,
}

impl KeyShared<'_> {
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

    fn file_key(&self, builder: &mut KeyBuilder, global: &Key, file: &str) -> (Key, bool) {
        let rec = Recorded::from_map(self.deps.get(file));
        let (files, env, cache, settings) = self.rule_inputs(file);
        let mut k = builder.file_key(global, file, &rec, &files, &env);
        if !settings.is_empty() || rec.options {
            if !settings.is_empty() {
                k.inputs.insert("rule".into(), key::value_label(&settings));
            }
            if rec.options {
                k.inputs.insert("args:all".into(), self.all_args.to_owned());
            }
            k = key::finish(k.inputs);
        }
        crate::inputs::count::file(file, &k.hex);
        if !self.keep_inputs {
            k.inputs = Inputs::new();
        }
        (k, cache)
    }
}

pub(super) fn global_key(
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
    // What RECORD cannot vouch for: the installed files sessions imported, by content.
    crate::inputs::installed::add_to(&mut inputs, &ctx.installed, &mut ctx.builder);
    if let Some(ini) = &inv.setup.inipath {
        match (crate::project::ini::keyed_sections(ini), rel_to(root, ini)) {
            (Some(sections), rel) => {
                let name = rel.map_or_else(|| "ini".to_owned(), |r| format!("ini:{r}"));
                inputs.insert(name, key::value_label(&sections));
            }
            (None, Some(rel)) => {
                let l = ctx.builder.file_label(&rel);
                inputs.insert(format!("file:{rel}"), l);
            }
            (None, None) => {
                let text = std::fs::read(ini).unwrap_or_default();
                inputs.insert(
                    "ini".into(),
                    key::value_label(&String::from_utf8_lossy(&text)),
                );
            }
        }
    }
    // Tests resolve relative paths (`open("data.txt")`) against the
    // invocation directory: the same rootdir run from `tests/` reads other files.
    inputs.insert("cwd".into(), invocation_dir(root, &inv.cwd));
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
    // The interpreter reads every `PYTHON*` variable in C at startup, where no
    // recorder sees it (`PYTHONINTMAXSTRDIGITS`, `PYTHONDONTWRITEBYTECODE`...):
    // each one set is an input of every test, by name and value.
    for name in ctx.builder.env.keys() {
        if name.starts_with("PYTHON") {
            inputs.insert(
                format!("env:{name}"),
                key::env_value(name, &ctx.builder.env),
            );
        }
    }
    let rec = ctx.recorded("");
    if rec.options {
        inputs.insert("args:all".into(), ctx.all_args.clone());
    }
    ctx.builder.add_closure(&mut inputs, &rec.imports);
    ctx.builder.add_recorded(&mut inputs, &rec);
    let k = key::finish(inputs);
    crate::inputs::count::global("global", &k.hex);
    k
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
        for n in crate::daemon::distribution_names(dir) {
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
pub(super) fn search_roots(inv: &Invocation, store: &Store, files: &[String]) -> Vec<String> {
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

/// pytest-xdist's worker variables as the sessions of this run see them: a
/// test that reads them (or the `worker_id` fixture, recorded as a read of
/// `PYTEST_XDIST_WORKER`) ran either outside a worker or in one of N, and its
/// result holds only for the same. Which worker ran it is scheduling: every
/// worker has the same label.
fn as_the_run_sets_them(env: &mut HashMap<String, String>, numprocesses: Option<&str>) {
    for name in [
        "PYTEST_XDIST_WORKER",
        "PYTEST_XDIST_WORKER_COUNT",
        "PYTEST_XDIST_TESTRUNUID",
    ] {
        env.remove(name);
    }
    let workers = match numprocesses {
        None | Some("0") => return,
        Some(n) => n,
    };
    env.insert("PYTEST_XDIST_WORKER".into(), "a worker".into());
    env.insert("PYTEST_XDIST_WORKER_COUNT".into(), workers.into());
    env.insert("PYTEST_XDIST_TESTRUNUID".into(), "a run".into());
}

pub(super) fn key_context<'s>(
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
    let mut env: HashMap<String, String> = std::env::vars().collect();
    as_the_run_sets_them(&mut env, inv.args.numprocesses.as_deref());
    KeyContext {
        builder: KeyBuilder::new(graph, edges, env),
        deps: store.deps().unwrap_or_default(),
        rules,
        all_args: key::value_label(&inv.args.all_args.join("\0")),
        installed: crate::inputs::installed::load(store),
        all_hermetic: inv.own.hermetic,
        hermetic: None,
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

pub(super) fn scope(inv: &Invocation) -> (crate::inputs::discover::Discovered, bool) {
    let (found, all_exist, _) = scope_with_dirs(inv);
    (found, all_exist)
}

/// The files a plugin collected in the most recent recorded collection that
/// discovery does not find, still present and inside this command line's
/// scope (`dirs`: rootdir-relative paths the arguments name; `""` is all).
fn plugin_collected(
    store: &Store,
    root: &Path,
    found: &crate::inputs::discover::Discovered,
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
fn scope_with_dirs(inv: &Invocation) -> (crate::inputs::discover::Discovered, bool, Vec<String>) {
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
fn selection_signature(inv: &Invocation, all_exist: bool) -> Option<String> {
    let a = &inv.args;
    (a.selects
        && !a.selects_impurely
        && a.understood()
        && !a.narrows_collection
        && !a.doctests
        && !a.positional.iter().any(|p| p.contains("::"))
        && all_exist)
        .then(|| key::value_label(&a.select_args.join("\0")))
}

/// The conftest.py files of the session that can affect tests outside their
/// own directory (see `conftest_is_local`): inputs of every test.
pub(super) fn session_wide_conftests(root: &Path, conftests: &[String]) -> Vec<String> {
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
        output: serde_json::from_str(&r.output).unwrap_or(serde_json::Value::Null),
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
        Plan::make_inner(inv, store, info, rules, remote, false)
    }

    fn make_inner(
        inv: &Invocation,
        store: &mut Store,
        info: &InterpreterInfo,
        rules: &[Rule],
        remote: Option<&crate::remote::Remote>,
        synced: bool,
    ) -> Result<Plan, Failure> {
        let caching = inv.settings.use_cache && !inv.args.no_run;
        if !caching {
            return Ok(Plan::default());
        }
        let mut trace = report::Trace::new();
        let rules = rules.to_vec();
        let root = inv.setup.rootdir.clone();
        let (found, all_exist, scope_dirs) = scope_with_dirs(inv);
        // `--doctest-modules`/`--doctest-glob` collect files discovery does not
        // know: they are learned from the last collection (below), keyed and
        // skipped like test files.
        let whole_files = inv.args.understood() && !inv.args.selects && all_exist;
        let select_sig = selection_signature(inv, all_exist);

        let edges = store.edges().unwrap_or_default();
        trace.mark("discovery");
        let mut scanned = found.test_files.clone();
        scanned.extend(found.conftests.iter().cloned());
        let roots = search_roots(inv, store, &scanned);
        trace.mark("search roots");
        let mut ctx = key_context(inv, store, &edges, rules.clone(), roots.clone());
        trace.mark("stat, parse and dependency caches");
        let session_conftests = session_wide_conftests(&inv.setup.rootdir, &found.conftests);
        let global = global_key(inv, info, &mut ctx, &session_conftests);
        super::hermetic::attach(
            &mut ctx,
            inv,
            store,
            info,
            roots.clone(),
            &session_conftests,
        );
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
        // Every name a collector could be offered: a new data file can be a
        // new golden-file test or doctest.
        signature_inputs.insert("listing".into(), found.listing.clone());
        for c in &found.conftests {
            let l = ctx.builder.file_label(c);
            signature_inputs.insert(format!("file:{c}"), l);
        }
        let signature = key::finish(signature_inputs.clone()).hex;
        trace.mark("global key");
        let recorded_collection = store.collection(&signature);

        let mut candidates: BTreeSet<String> = found.test_files.iter().cloned().collect();
        match &recorded_collection {
            Some(files) => {
                candidates.extend(files.iter().filter(|f| root.join(f).is_file()).cloned());
            }
            // Not seen with this signature (a file was added, a collector
            // changed): what plugins collected last time are still candidates,
            // so the unchanged ones are not run again. Skipping one is safe
            // either way: the plugin drops (and replays) a file only when
            // pytest would have collected it.
            None => candidates.extend(plugin_collected(store, &root, &found, &scope_dirs)),
        }
        let sels = selections(inv);
        // Two test files that pytest imports under the same module name make it
        // report an "import file mismatch" collection error; skipping one of
        // them would hide that error, so neither is ever skipped.
        let mut module_names: HashMap<String, usize> = HashMap::new();
        let mut module_of: HashMap<String, String> = HashMap::with_capacity(candidates.len());
        for f in &candidates {
            let name = module_name(ctx.builder.graph.resolver(), f);
            *module_names.entry(name.clone()).or_default() += 1;
            module_of.insert(f.clone(), name);
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
            test_files: Some(found.test_files.clone()),
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
        let files: Vec<&String> = candidates.iter().collect();
        let keyed: Vec<(String, Key, bool)> = ctx
            .file_keys(&global, &files, false)
            .into_iter()
            .zip(candidates.iter())
            .map(|((k, cacheable), file)| (file.clone(), k, cacheable))
            .collect();
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
                    let anchors = crate::inputs::installed::Anchors::of(info, &inv.setup.rootdir);
                    let installed =
                        crate::inputs::installed::import(store, &snap.installed, &anchors);
                    let recorded = store.record_deps(&deps, &snap.edges).is_ok()
                        && store.deps_count() != before;
                    if recorded || installed {
                        return Plan::make_inner(inv, store, info, &plan.rules, Some(remote), true);
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
        let hits: Vec<(&str, &str)> = keyed
            .iter()
            .filter(|(f, _, _)| found_entries.contains_key(f))
            .map(|(f, k, _)| (f.as_str(), k.hex.as_str()))
            .collect();
        if let Err(e) = store.touch(&hits) {
            report::warning(&format!("could not mark cache entries as used: {e}"));
        }
        trace.mark("marking entries used");
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
            for r in results.iter().filter(|r| r.outcome.reusable()) {
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
            let unique = module_of
                .get(&file)
                .and_then(|m| module_names.get(m))
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
                // Under a selection this file's key has not seen, only pytest
                // knows what `-k`/`-m`/`--deselect` keep (or that the
                // expression is invalid): never answer without a session.
                all_full &= full && select_sig.is_none();
                plan.cached.extend(by_id.values().map(|r| cached_node(r)));
            }
        }
        plan.sels = sels;
        // Files plugins collect are in the recorded collection but not in
        // discovery; every discovered test file must have been collected.
        let same_collection = recorded_collection
            .map(|files| {
                let a: BTreeSet<&String> = files.iter().collect();
                found.test_files.iter().all(|f| a.contains(f))
            })
            .unwrap_or(false);
        plan.fast_path = !inv.settings.refresh_cache
            && (whole_files || plan.select_sig.is_some())
            && all_full
            && same_collection
            && !inv.args.needs_reporting;
        trace.mark("replay list");
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
        super::alone::answer(self, inv, &counts, now() - started)?;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invocation_dir_is_relative_to_rootdir() {
        let root = Path::new("/home/u/proj");
        assert_eq!(invocation_dir(root, Path::new("/home/u/proj")), ".");
        assert_eq!(
            invocation_dir(root, Path::new("/home/u/proj/tests/a")),
            "tests/a"
        );
        assert_eq!(invocation_dir(root, Path::new("/home/u")), "..");
        assert_eq!(invocation_dir(root, Path::new("/home/v/x")), "../../v/x");
    }
}
