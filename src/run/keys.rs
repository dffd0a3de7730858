//! The keys of one run, computed in one [`KeyContext`]: built once before the
//! run (stat and parse caches, recorded dependencies), refreshed after the
//! session (or after a remote cache's dependencies arrive) and never rebuilt.
//! A key whose inputs cannot have changed since it was computed is reused,
//! not computed again.

use super::hermetic;
use crate::inputs::installed::{self, InstalledFiles};
use crate::inputs::key::{self, Inputs, Key, KeyBuilder, Recorded};
use crate::inputs::resolve::default_search_roots;
use crate::inputs::{conftest_is_local, FileHasher, ImportGraph, Resolver};
use crate::project::interpreter::InterpreterInfo;
use crate::project::rootdir::Setup;
use crate::rules::Rule;
use crate::settings::Invocation;
use crate::store::{Store, SCHEMA_VERSION};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

type Deps = HashMap<String, HashMap<String, Vec<String>>>;

/// Everything a key computation needs, built once per run.
pub(super) struct KeyContext {
    pub(super) builder: KeyBuilder,
    pub(super) deps: Deps,
    pub(super) rules: Vec<Rule>,
    /// Label of every argument (ini addopts, `PYTEST_ADDOPTS`, the command
    /// line), output-only ones included: an input of tests that read options.
    pub(super) all_args: String,
    /// Installed module files sessions imported (inputs/installed.rs).
    pub(super) installed: InstalledFiles,
    /// `--hermetic`: every test file is hermetic.
    pub(super) all_hermetic: bool,
    /// Where hermetic files are keyed, with their global key.
    pub(super) hermetic: Option<Box<(KeyContext, Key)>>,
    /// The import search roots keys are computed with.
    pub(super) roots: Vec<String>,
}

/// What changed between two views of the recorded dependencies.
#[derive(Default)]
pub(super) struct Changed {
    /// The search roots: every import resolves anew.
    roots: bool,
    /// What only the global key holds: the session's own dependencies,
    /// installed files.
    global: bool,
    /// Files whose recorded dependencies changed.
    files: HashSet<String>,
    /// Files whose recorded import edges changed: a key that names one
    /// may have another closure now.
    edge_sources: HashSet<String>,
}

/// Variables every Python process reads before any test, where no
/// recorder sees them: the directory of temporary files (`tempfile`, and
/// pytest's `tmp_path` base), and HOME (`site` computes the user's site
/// directory from it at start-up).
const STARTUP_ENV: &[&str] = &["TMPDIR", "TEMP", "TMP", "PYTEST_DEBUG_TEMPROOT", "HOME"];

impl Changed {
    /// Whether a key made of `inputs` may differ now.
    fn touches(&self, inputs: &Inputs) -> bool {
        self.roots
            || self
                .edge_sources
                .iter()
                .any(|f| inputs.contains_key(&format!("file:{f}")))
    }

    /// Whether the global key `global` must be computed again.
    pub(super) fn global(&self, global: &Key) -> bool {
        self.global || self.touches(&global.inputs)
    }
}

impl KeyContext {
    /// The context of this run: persisted stat and parse caches, recorded
    /// dependencies and edges, the environment as the run's sessions see it.
    pub(super) fn new(
        inv: &Invocation,
        store: &Store,
        rules: Vec<Rule>,
        roots: Vec<String>,
    ) -> KeyContext {
        KeyContext::of_loaded(inv, Loaded::from(store), rules, roots)
    }

    /// The context of what [`Loaded::from`] read from the store.
    pub(super) fn of_loaded(
        inv: &Invocation,
        loaded: Loaded,
        rules: Vec<Rule>,
        roots: Vec<String>,
    ) -> KeyContext {
        let root = inv.setup.rootdir.clone();
        let hasher = FileHasher::new(root.clone(), loaded.stat);
        let resolver = Resolver::new(root, roots.clone());
        let graph = ImportGraph::new(resolver, hasher, loaded.parse);
        let mut env: HashMap<String, String> = std::env::vars().collect();
        as_the_run_sets_them(&mut env, inv.args.numprocesses.as_deref());
        KeyContext {
            builder: KeyBuilder::new(graph, Arc::new(loaded.edges), env),
            deps: loaded.deps,
            rules,
            all_args: key::value_label(&inv.args.all_args.join("\0")),
            installed: loaded.installed,
            all_hermetic: inv.hermetic,
            hermetic: None,
            roots,
        }
    }

    pub(super) fn recorded(&self, file: &str) -> Recorded {
        Recorded::from_map(self.deps.get(file))
    }

    /// Whether `file` runs hermetically (and is keyed as such).
    pub(super) fn is_hermetic(&self, file: &str) -> bool {
        hermetic::is_hermetic(&self.rules, self.all_hermetic, file)
    }

    /// The global key with everything recorded so far.
    pub(super) fn global_key(
        &mut self,
        inv: &Invocation,
        info: &InterpreterInfo,
        session_conftests: &[String],
    ) -> Key {
        let mut inputs = Inputs::new();
        self.builder.add_closure(&mut inputs, session_conftests);
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
        let listing = distributions(&info.site_dirs, root, &mut self.builder);
        inputs.insert("distributions".into(), key::value_label(&listing));
        // What RECORD cannot vouch for: the installed files sessions imported, by content.
        installed::add_to(&mut inputs, &self.installed, &mut self.builder);
        if let Some((name, label)) = ini_input(&inv.setup) {
            inputs.insert(name, label);
        }
        // Tests resolve relative paths (`open("data.txt")`) against the
        // invocation directory: the same rootdir run from `tests/` reads other files.
        inputs.insert("cwd".into(), invocation_dir(root, &inv.cwd));
        // The mode of every file a test creates (`0o644` under `umask 022`,
        // `0o600` under `077`), where no recorder sees it being read.
        inputs.insert(
            "umask".into(),
            format!("{:04o}", crate::daemon::process_umask()),
        );
        // Resource limits and the CPUs the process may run on (`ulimit -n`,
        // `taskset`): a test that opens many files or counts usable CPUs
        // meets them where no recorder sees a read.
        inputs.insert("limits".into(), crate::daemon::process_limits());
        let mut args = inv.args.key_args.clone();
        if !inv.args.understood() {
            // Unknown options make positional arguments ambiguous: key them all.
            args.extend(inv.args.positional.iter().cloned());
        }
        inputs.insert("args".into(), key::value_label(&args.join("\0")));
        self.add_environment(&mut inputs);
        let rec = self.recorded("");
        if rec.options {
            inputs.insert("args:all".into(), self.all_args.clone());
        }
        self.builder.add_closure(&mut inputs, &rec.imports);
        self.builder.add_recorded(&mut inputs, &rec);
        let k = key::finish(inputs);
        crate::inputs::count::global("global", &k.hex);
        k
    }

    /// The default rule's declared files and variables, and every `PYTHON*`
    /// variable set.
    fn add_environment(&mut self, inputs: &mut Inputs) {
        let default = self.rules[0].clone();
        self.builder.add_globs(inputs, &default.files);
        for e in &default.env {
            inputs.insert(format!("env:{e}"), key::env_value(e, &self.builder.env));
        }
        // The interpreter reads every `PYTHON*` variable in C at startup, where no
        // recorder sees it (`PYTHONINTMAXSTRDIGITS`, `PYTHONDONTWRITEBYTECODE`...):
        // each one set is an input of every test, by name and value. So is every
        // `LC_*` category: `locale.setlocale(LC_ALL, "")` reads them in C too.
        // Read once per process before any test (`STARTUP_ENV`).
        for name in STARTUP_ENV {
            inputs.insert(
                format!("env:{name}"),
                key::env_value(name, &self.builder.env),
            );
        }
        for name in self.builder.env.keys() {
            // `LD_*`: the dynamic loader's (LD_LIBRARY_PATH, LD_PRELOAD).
            if name.starts_with("PYTHON") || name.starts_with("LC_") || name.starts_with("LD_") {
                inputs.insert(
                    format!("env:{name}"),
                    key::env_value(name, &self.builder.env),
                );
            }
        }
    }

    /// The global key, and with `want_static` (a remote cache) the global
    /// key without anything recorded, which every machine computes alike (it
    /// addresses the dependencies a remote cache shares). When nothing
    /// recorded reaches the global key (a fresh store), both are the same
    /// key, computed once.
    pub(super) fn global_keys(
        &mut self,
        inv: &Invocation,
        info: &InterpreterInfo,
        session_conftests: &[String],
        want_static: bool,
    ) -> (Option<String>, Key) {
        if !want_static {
            return (None, self.global_key(inv, info, session_conftests));
        }
        let bare = self.static_global(inv, info, session_conftests);
        let global = match self.recorded_leaves_alone(&bare) {
            true => bare.clone(),
            false => self.global_key(inv, info, session_conftests),
        };
        (Some(bare.hex), global)
    }

    fn static_global(
        &mut self,
        inv: &Invocation,
        info: &InterpreterInfo,
        session_conftests: &[String],
    ) -> Key {
        let edges = std::mem::take(&mut self.builder.edges);
        let deps = std::mem::take(&mut self.deps);
        self.builder.forget_closures();
        let k = self.global_key(inv, info, session_conftests);
        self.builder.edges = edges;
        self.deps = deps;
        self.builder.forget_closures();
        k
    }

    /// Whether the global key with what is recorded is `bare`, the key
    /// without it: the session recorded nothing of its own, and no file
    /// `bare` names has recorded import edges (its closures stay the same).
    fn recorded_leaves_alone(&self, bare: &Key) -> bool {
        let rec = self.recorded("");
        let nothing = rec.imports.is_empty()
            && rec.reads.is_empty()
            && rec.env.is_empty()
            && rec.lists.is_empty()
            && !rec.options;
        nothing
            && !self
                .builder
                .edges
                .iter()
                .any(|(f, to)| !to.is_empty() && bare.inputs.contains_key(&format!("file:{f}")))
    }

    /// The context hermetic files are keyed in (when any file may be
    /// hermetic): nothing recorded, the sandbox's environment, and the
    /// global key it gives. It shares this context's stat cache.
    pub(super) fn attach_hermetic(
        &mut self,
        inv: &Invocation,
        store: &Store,
        info: &InterpreterInfo,
        session_conftests: &[String],
    ) {
        if !self.all_hermetic && !self.rules.iter().any(|r| r.hermetic) {
            return;
        }
        let mut builder = self.builder.fork();
        builder.edges = Arc::default();
        builder.env = hermetic::key_env(&self.rules, &self.builder.env);
        let mut bare = KeyContext {
            builder,
            deps: Deps::new(),
            rules: self.rules.clone(),
            all_args: self.all_args.clone(),
            installed: InstalledFiles::new(),
            all_hermetic: self.all_hermetic,
            hermetic: None,
            roots: self.roots.clone(),
        };
        let global = bare.hermetic_global(inv, store, info, session_conftests);
        self.hermetic = Some(Box::new((bare, global)));
    }

    fn hermetic_global(
        &mut self,
        inv: &Invocation,
        store: &Store,
        info: &InterpreterInfo,
        session_conftests: &[String],
    ) -> Key {
        let mut inputs = self.global_key(inv, info, session_conftests).inputs;
        inputs.insert("sandbox".into(), hermetic::SANDBOX_VERSION.into());
        let global = key::finish(inputs);
        // `--why` names what changed in it, as for the other global key.
        let _ = store.set_global_inputs(
            &global.hex,
            &serde_json::to_string(&global.inputs).unwrap_or_default(),
        );
        global
    }

    /// Takes what the store records now (after a session, or after a remote
    /// cache's dependencies were imported) and the search roots `roots`;
    /// every file is verified again. Says what changed for the keys.
    pub(super) fn refresh(
        &mut self,
        inv: &Invocation,
        store: &Store,
        info: &InterpreterInfo,
        roots: Vec<String>,
        session_conftests: &[String],
    ) -> Changed {
        let edges = store.edges().unwrap_or_default();
        let deps = store.deps().unwrap_or_default();
        let installed = store.installed_files();
        let roots_changed = roots != self.roots;
        let same = |a: Option<&Vec<String>>, b: Option<&Vec<String>>| {
            let set = |v: Option<&Vec<String>>| -> BTreeSet<String> {
                v.into_iter().flatten().cloned().collect()
            };
            set(a) == set(b)
        };
        let same_deps = |a: Option<&HashMap<String, Vec<String>>>,
                         b: Option<&HashMap<String, Vec<String>>>| {
            as_sets(a) == as_sets(b)
        };
        let mut changed = Changed {
            roots: roots_changed,
            global: installed != self.installed || !same_deps(self.deps.get(""), deps.get("")),
            ..Changed::default()
        };
        for f in deps.keys().chain(self.deps.keys()) {
            if !same_deps(self.deps.get(f), deps.get(f)) {
                changed.files.insert(f.clone());
            }
        }
        for f in edges.keys().chain(self.builder.edges.keys()) {
            if !same(self.builder.edges.get(f), edges.get(f)) {
                changed.edge_sources.insert(f.clone());
            }
        }
        let root = inv.setup.rootdir.clone();
        self.builder
            .refresh(Arc::new(edges), Resolver::new(root.clone(), roots.clone()));
        self.deps = deps;
        self.installed = installed;
        self.roots = roots.clone();
        if let Some(h) = self.hermetic.as_mut() {
            let (ctx, global) = &mut **h;
            ctx.builder
                .refresh(Arc::default(), Resolver::new(root, roots.clone()));
            ctx.roots = roots;
            if roots_changed {
                *global = ctx.hermetic_global(inv, store, info, session_conftests);
            }
        }
        changed
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

    /// Whether results of `file` may be cached at all (its rules say so).
    pub(super) fn cacheable(&self, file: &str) -> bool {
        let shared = KeyShared {
            deps: &self.deps,
            rules: &self.rules,
            all_args: &self.all_args,
            keep_inputs: false,
        };
        shared.rule_inputs(file).2
    }

    /// The keys of `files` now: a key in `earlier` (computed in this context
    /// with its inputs kept) stands when nothing it depends on changed
    /// since (`changed`); the others are computed.
    pub(super) fn rekey(
        &mut self,
        global: &Key,
        files: &[&String],
        earlier: &HashMap<String, Key>,
        changed: &Changed,
    ) -> Vec<(Key, bool)> {
        let hermetic_global = self.hermetic.as_ref().map(|h| h.1.hex.clone());
        let all_hermetic = self.all_hermetic;
        let rules = self.rules.clone();
        let reuse = |f: &str| {
            // A hermetic file is keyed in the hermetic context, under its global key.
            let hermetic = hermetic_global
                .as_deref()
                .filter(|_| hermetic::is_hermetic(&rules, all_hermetic, f));
            let global = hermetic.unwrap_or(global.hex.as_str());
            earlier.get(f).filter(|k| {
                !k.inputs.is_empty()
                    && k.inputs.get("global").map(String::as_str) == global.get(..16)
                    && match hermetic {
                        // Keyed with nothing recorded: only the search roots reach it.
                        Some(_) => !changed.roots,
                        None => !changed.files.contains(f) && !changed.touches(&k.inputs),
                    }
            })
        };
        let todo: Vec<&String> = files
            .iter()
            .copied()
            .filter(|f| reuse(f).is_none())
            .collect();
        let mut computed = self.file_keys(global, &todo, true).into_iter();
        files
            .iter()
            .map(|f| match reuse(f) {
                Some(k) => (k.clone(), self.cacheable(f)),
                None => computed.next().unwrap_or_else(|| self.file_key(global, f)),
            })
            .collect()
    }

    /// The keys of many files, in order, computed on every core: each thread
    /// gets a fork of the builder (same stat and parse caches, its own
    /// memos), and what the forks hashed is merged back to be persisted.
    /// Without `keep_inputs` only the keys' digests are computed: no
    /// labelled map is built (when a rule makes files hermetic, every key
    /// keeps its map).
    pub(super) fn file_keys(
        &mut self,
        global: &Key,
        files: &[&String],
        keep_inputs: bool,
    ) -> Vec<(Key, bool)> {
        if self.hermetic.is_some() {
            // Hermetic files are keyed in their own context: one file at a
            // time, with their labelled inputs (built anyway, and kept so
            // that the key after the run reuses them).
            return files.iter().map(|f| self.file_key(global, f)).collect();
        }
        let shared = KeyShared {
            deps: &self.deps,
            rules: &self.rules,
            all_args: &self.all_args,
            keep_inputs,
        };
        shared.file_keys(&mut self.builder, global, files)
    }

    /// Persists what this context hashed and parsed.
    pub(super) fn save(&mut self, store: &mut Store) {
        let _ = store.save_stat_cache(self.builder.graph.source_mut().changed_entries());
        let _ = store.save_parse_cache(self.builder.graph.new_parse_entries());
        if let Some(h) = self.hermetic.as_mut() {
            h.0.save(store);
        }
    }
}

/// What a [`KeyContext`] reads from the store: the stat and parse caches,
/// the recorded import edges and dependencies, the installed files (read
/// before the context is made, e.g. while discovery walks the tree).
pub(super) struct Loaded {
    stat: crate::inputs::hash::StatMap,
    parse: HashMap<crate::inputs::hash::Digest, Vec<crate::inputs::ImportRef>>,
    edges: HashMap<String, Vec<String>>,
    deps: Deps,
    installed: InstalledFiles,
}

impl Loaded {
    pub(super) fn from(store: &Store) -> Loaded {
        Loaded {
            stat: store.load_stat_cache().unwrap_or_default(),
            parse: store.load_parse_cache(),
            edges: store.edges().unwrap_or_default(),
            deps: store.deps().unwrap_or_default(),
            installed: store.installed_files(),
        }
    }
}

/// The read-only part of a [`KeyContext`], shared by key-computing threads.
struct KeyShared<'c> {
    deps: &'c Deps,
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
        if !self.keep_inputs {
            let rules = (files.as_slice(), env.as_slice(), settings.as_str());
            return (self.file_digest(builder, global, file, &rec, rules), cache);
        }
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

    /// The key of `file` without its labelled inputs (the same digest).
    fn file_digest(
        &self,
        builder: &mut KeyBuilder,
        global: &Key,
        file: &str,
        rec: &Recorded,
        (files, env, settings): (&[String], &[String], &str),
    ) -> Key {
        let rule = (!settings.is_empty()).then(|| key::value_label(settings));
        let mut extra: Vec<(&str, &str)> = Vec::new();
        if let Some(r) = &rule {
            extra.push(("rule", r));
        }
        if rec.options {
            extra.push(("args:all", self.all_args));
        }
        let hex = builder.file_key_hex(global, file, rec, files, env, &extra);
        crate::inputs::count::file_digest(file, &hex);
        Key {
            hex,
            inputs: Inputs::new(),
        }
    }

    fn file_keys(
        &self,
        main: &mut KeyBuilder,
        global: &Key,
        files: &[&String],
    ) -> Vec<(Key, bool)> {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(8);
        // Below a few hundred files a thread costs more than it saves.
        if threads < 2 || files.len() < 512 {
            return files
                .iter()
                .map(|f| self.file_key(main, global, f))
                .collect();
        }
        let per = files.len().div_ceil(threads);
        let mut forks: Vec<KeyBuilder> = (1..threads).map(|_| main.fork()).collect();
        let out: Vec<Vec<(Key, bool)>> = std::thread::scope(|s| {
            let mut chunks = files.chunks(per);
            let first = chunks.next().unwrap_or(&[]);
            let handles: Vec<_> = chunks
                .zip(forks.iter_mut())
                .map(|(chunk, b)| {
                    s.spawn(move || {
                        chunk
                            .iter()
                            .map(|f| self.file_key(b, global, f))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let mut all = vec![first
                .iter()
                .map(|f| self.file_key(main, global, f))
                .collect::<Vec<_>>()];
            for h in handles {
                all.push(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
            }
            all
        });
        for f in forks {
            main.absorb(f);
        }
        out.into_iter().flatten().collect()
    }
}

/// The configuration file as an input of the global key, from the text
/// the invocation read it from (the file is read once per run): the tables
/// pytest and rpytest read of a `pyproject.toml`, else the whole file (its
/// content digest, as a file input when it is inside the rootdir).
fn ini_input(setup: &Setup) -> Option<(String, String)> {
    let ini = setup.inipath.as_deref()?;
    let read;
    let text = match &setup.ini_text {
        Some(t) => t.as_str(),
        None => {
            read = String::from_utf8_lossy(&std::fs::read(ini).unwrap_or_default()).into_owned();
            read.as_str()
        }
    };
    let rel = rel_to(&setup.rootdir, ini);
    Some(
        match (crate::project::ini::keyed_sections(ini, text), rel) {
            (Some(sections), rel) => (
                rel.map_or_else(|| "ini".to_owned(), |r| format!("ini:{r}")),
                key::value_label(&sections),
            ),
            // The label a file input has: the digest of its content.
            (None, Some(rel)) => (format!("file:{rel}"), key::value_label(text)),
            (None, None) => ("ini".into(), key::value_label(text)),
        },
    )
}

/// A name → names map as sets (the store's order is not an input).
fn as_sets(m: Option<&HashMap<String, Vec<String>>>) -> BTreeMap<&str, BTreeSet<&str>> {
    m.into_iter()
        .flatten()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.as_str(), v.iter().map(String::as_str).collect()))
        .collect()
}

/// The installed distributions as content, the same on every machine that
/// installed the same files: each dist-info's name and the digest of its
/// RECORD (the list of installed files with their hashes), and `.pth` files
/// with the rootdir written as `<rootdir>` (editable installs of the project).
/// Digests go through the stat cache, so an unchanged venv costs a stat per RECORD.
fn distributions(site_dirs: &[String], root: &Path, builder: &mut KeyBuilder) -> String {
    let root_text = root.to_string_lossy();
    let mut out = String::new();
    for entry in installed::site_entries(site_dirs).iter() {
        out.push_str(&entry.name);
        out.push('\n');
        if entry.name.ends_with(".dist-info") {
            let record = entry.path.join("RECORD");
            out.push_str(&builder.file_label(&record.to_string_lossy()));
            out.push('\n');
        } else if entry.name.ends_with(".pth") || entry.name.ends_with(".egg-link") {
            let text = entry.text.as_deref().unwrap_or_default();
            out.push_str(&text.replace(root_text.as_ref(), "<rootdir>"));
            out.push('\n');
        }
    }
    out
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

    /// The configuration file's input is what keying the file itself gave
    /// before (the same digest for the same file), taken from the text the
    /// invocation read: the file is not read again.
    #[test]
    fn the_config_file_is_keyed_from_the_text_read_once() {
        use crate::inputs::FileHasher;
        use crate::project::rootdir::determine_setup;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let digest_of = |rel: &str| {
            let mut h = FileHasher::new(root.clone(), Default::default());
            crate::inputs::hex(&h.digest(rel).unwrap().unwrap())[..16].to_owned()
        };
        let pyproject = "[project]\nname = 'x'\n[tool.pytest.ini_options]\naddopts = '-q'\n";
        let ini = "[pytest]\naddopts = -q\n";
        for (name, text) in [("pyproject.toml", pyproject), ("pytest.ini", ini)] {
            let path = root.join(name);
            std::fs::write(&path, text).unwrap();
            let setup = determine_setup(None, &[], None, &root).unwrap();
            assert_eq!(setup.inipath.as_deref(), Some(path.as_path()));
            let (input, label) = ini_input(&setup).unwrap();
            let expected = match name {
                "pyproject.toml" => (
                    "ini:pyproject.toml".to_owned(),
                    key::value_label(&crate::project::ini::keyed_sections(&path, text).unwrap()),
                ),
                _ => (format!("file:{name}"), digest_of(name)),
            };
            assert_eq!((input, label.clone()), expected, "{name}");
            // Edited after the invocation read it: the key holds what was read.
            std::fs::write(&path, format!("{text}# edited\n[tool.pytest]\nx = 1\n")).unwrap();
            assert_eq!(ini_input(&setup).unwrap().1, label, "{name}");
            std::fs::remove_file(&path).unwrap();
        }
    }
}
