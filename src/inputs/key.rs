//! Cache keys: the global key shared by every test, and one key per test file.
//!
//! A key is the blake3 of labelled inputs (`file:<path>` → content digest,
//! `env:<NAME>` → value digest, ...). The labelled map is kept beside each
//! stored result so `--why` can name the input that changed. No absolute path
//! enters a key: files are named relative to rootdir.

use super::conftest_chain;
use super::graph::ImportGraph;
use super::hash::{digest_bytes, hex, FileHasher, HashError};
use super::resolve::Resolver;
use crate::inputs::fasthash::FastMap;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

/// Labelled inputs → short digests.
pub type Inputs = BTreeMap<String, String>;

/// A computed key with the inputs it was made of.
#[derive(Debug, Clone)]
pub struct Key {
    pub hex: String,
    pub inputs: Inputs,
}

/// Recorded dependencies of one file (or of the session, for the global key).
#[derive(Debug, Default, Clone)]
pub struct Recorded {
    pub imports: Vec<String>,
    pub reads: Vec<String>,
    pub env: Vec<String>,
    pub lists: Vec<String>,
    /// Its tests read pytest's options: every argument is an input.
    pub options: bool,
}

impl Recorded {
    /// From the store's `kind → names` map.
    pub fn from_map(m: Option<&HashMap<String, Vec<String>>>) -> Recorded {
        let get = |k: &str| m.and_then(|m| m.get(k)).cloned().unwrap_or_default();
        Recorded {
            imports: get("import"),
            reads: get("read"),
            env: get("env"),
            lists: get("list"),
            options: !get("option").is_empty(),
        }
    }
}

fn short(bytes: &[u8]) -> String {
    hex(&digest_bytes(bytes))[..16].to_owned()
}

/// Variables left out of the whole-environment digest (`env:*`, taken when a
/// test copies or iterates the environment): terminal and shell bookkeeping,
/// and rpytest's own. Never applied to a variable read by name: a variable
/// that is read is an input, whatever its name (`CI`, `TERM`).
const COSMETIC_ENV: &[&str] = &[
    "COLUMNS",
    "LINES",
    "TERM",
    "NO_COLOR",
    "FORCE_COLOR",
    "PY_COLORS",
    "PYTEST_THEME",
    "PYTEST_THEME_MODE",
    "PYTEST_CURRENT_TEST",
    "PYTEST_VERSION",
    "CI",
    "BUILD_NUMBER",
    "COLORTERM",
    "COLORFGBG",
    "CLICOLOR",
    "CLICOLOR_FORCE",
    "LS_COLORS",
    "LSCOLORS",
    "TERM_PROGRAM",
    "TERM_PROGRAM_VERSION",
    "TERM_SESSION_ID",
    "LC_TERMINAL",
    "LC_TERMINAL_VERSION",
    "VTE_VERSION",
    "WINDOWID",
    "TMUX",
    "TMUX_PANE",
    "STY",
    "WINDOW",
    "WT_SESSION",
    "WT_PROFILE_ID",
    "INSIDE_EMACS",
    "TERMINAL_EMULATOR",
    "PWD",
    "OLDPWD",
    "SHLVL",
    "_",
    "PS1",
    "PS2",
    "PS4",
    "PROMPT_COMMAND",
    "HISTFILE",
    "HISTSIZE",
    "HISTFILESIZE",
    "HISTCONTROL",
    "LESSOPEN",
    "LESSCLOSE",
    "MAIL",
    "MOTD_SHOWN",
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "XAUTHORITY",
    "DBUS_SESSION_BUS_ADDRESS",
    "DESKTOP_SESSION",
    "SESSION_MANAGER",
    "GPG_AGENT_INFO",
    "GPG_TTY",
    "XDG_SEAT",
    "XDG_VTNR",
    "XDG_CURRENT_DESKTOP",
    "SECURITYSESSIONID",
    "XPC_SERVICE_NAME",
    "XPC_FLAGS",
    "__CFBundleIdentifier",
];
/// Prefixes of cosmetic variables; `RPYTEST_` is rpytest's own (the session
/// never sees them).
const COSMETIC_PREFIXES: &[&str] = &[
    "SSH_",
    "XDG_SESSION_",
    "GNOME_TERMINAL_",
    "KONSOLE_",
    "ITERM_",
    "KITTY_",
    "ALACRITTY_",
    "WEZTERM_",
    "VSCODE_",
    "RPYTEST_",
    // Which rpytest (or pytest-xdist) worker runs a test is scheduling, not input.
    "PYTEST_XDIST_",
    // hyperfine adds a variable of random length to every run it times.
    "HYPERFINE_",
];

fn cosmetic(name: &str) -> bool {
    COSMETIC_ENV.contains(&name) || COSMETIC_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The digest label of an environment variable's value (or its absence).
/// `*` stands for the whole environment (a test iterated it or started a
/// subprocess that inherits it), less cosmetic variables.
pub fn env_value(name: &str, env: &HashMap<String, String>) -> String {
    if name == "*" {
        let mut vars: Vec<(&String, &String)> = env.iter().filter(|(k, _)| !cosmetic(k)).collect();
        vars.sort();
        let mut h = blake3::Hasher::new();
        for (k, v) in vars {
            h.update(k.as_bytes());
            h.update(b"=");
            h.update(v.as_bytes());
            h.update(b"\0");
        }
        return h.finalize().to_hex()[..16].to_owned();
    }
    match env.get(name) {
        Some(v) => short(v.as_bytes()),
        None => "unset".to_owned(),
    }
}

/// Target of a recorded edge that stands for an environment variable, not a
/// file: a first-party module whose body read `NAME` while it was imported
/// records the edge `module → ?env:NAME`, so the variable is an input of
/// every key whose closure reaches the module (its importers, directly or
/// through other modules), not of every test. (`?` starts no path the
/// recorder names.)
pub const ENV_EDGE: &str = "?env:";

/// Builds keys over one run's view of the tree.
///
/// Many test files share conftest chains and imported modules, so chains,
/// per-module closures and file labels are computed once per run.
pub struct KeyBuilder {
    pub graph: ImportGraph<FileHasher>,
    /// Recorded import edges (file → files it loaded at run time).
    pub edges: Arc<HashMap<String, Vec<String>>>,
    pub env: HashMap<String, String>,
    labels: FastMap<String, String>,
    closures: FastMap<String, Arc<Vec<String>>>,
    chains: FastMap<String, Arc<Vec<String>>>,
    globs: FastMap<String, Arc<Vec<String>>>,
    /// The `file:` entries of a closure (see `closure_of`), for keys made
    /// without their labelled map.
    closure_entries: FastMap<String, Arc<Vec<Entry>>>,
}

/// One labelled input (`file:app/x.py` → its digest label), shared.
type Entry = Arc<(String, String)>;

impl KeyBuilder {
    /// A builder over `graph`, with recorded import `edges` and the environment.
    pub fn new(
        graph: ImportGraph<FileHasher>,
        edges: Arc<HashMap<String, Vec<String>>>,
        env: HashMap<String, String>,
    ) -> Self {
        KeyBuilder {
            graph,
            edges,
            env,
            labels: FastMap::default(),
            closures: FastMap::default(),
            chains: FastMap::default(),
            globs: FastMap::default(),
            closure_entries: FastMap::default(),
        }
    }

    /// A builder for another thread: the same files, recorded edges and
    /// environment, the labels computed so far; memos of its own.
    pub fn fork(&self) -> Self {
        KeyBuilder {
            graph: self.graph.fork(),
            edges: Arc::clone(&self.edges),
            env: self.env.clone(),
            labels: self.labels.clone(),
            closures: FastMap::default(),
            chains: FastMap::default(),
            globs: FastMap::default(),
            closure_entries: FastMap::default(),
        }
    }

    /// Takes over what a fork hashed and parsed (to be persisted).
    pub fn absorb(&mut self, other: Self) {
        self.graph.absorb(other.graph);
    }

    /// A new view of the tree after a run: recorded `edges` and a resolver
    /// as they are now; every label, closure and chain is computed again
    /// (digests are verified against the stat cache, parses are kept).
    pub fn refresh(&mut self, edges: Arc<HashMap<String, Vec<String>>>, resolver: Resolver) {
        self.edges = edges;
        self.graph.refresh(resolver);
        self.forget_closures();
        self.labels.clear();
        self.chains.clear();
        self.globs.clear();
        self.closure_entries.clear();
    }

    /// Drops the memoized closures (they follow the recorded edges).
    pub fn forget_closures(&mut self) {
        self.closures.clear();
        self.closure_entries.clear();
    }

    /// Digest label of a root-relative file.
    pub fn file_label(&mut self, rel: &str) -> String {
        if let Some(l) = self.labels.get(rel) {
            return l.clone();
        }
        // A path that does not exist (a failed import's candidate
        // `pkg/new.py`) and a directory (a namespace package's candidate)
        // are inputs too, with stable labels: creating either changes them.
        let l = match self.graph.source_mut().digest(rel) {
            Ok(Some(d)) => hex(&d)[..16].to_owned(),
            Ok(None) => "missing".to_owned(),
            Err(HashError::NotAFile { .. }) => {
                let root = self.graph.source_mut().root().join(rel);
                match std::fs::metadata(root) {
                    Ok(m) if m.is_dir() => "dir".to_owned(),
                    Ok(_) => "special".to_owned(),
                    Err(_) => "missing".to_owned(),
                }
            }
            Err(HashError::Io { .. }) => "unreadable".to_owned(),
        };
        self.labels.insert(rel.to_owned(), l.clone());
        l
    }

    /// Everything reachable from `start` (itself included), memoized.
    fn closure_of(&mut self, start: &str) -> Arc<Vec<String>> {
        if let Some(c) = self.closures.get(start) {
            return Arc::clone(c);
        }
        let set = self.graph.closure(&[start.to_owned()], &self.edges);
        let c = Arc::new(set.into_iter().collect::<Vec<_>>());
        self.closures.insert(start.to_owned(), Arc::clone(&c));
        c
    }

    fn chain_of(&mut self, file: &str) -> Arc<Vec<String>> {
        let dir = file.rfind('/').map_or("", |i| &file[..i]).to_owned();
        if let Some(c) = self.chains.get(&dir) {
            return Arc::clone(c);
        }
        let root = self.graph.source_mut().root().to_path_buf();
        let c = Arc::new(conftest_chain(&root, file));
        self.chains.insert(dir, Arc::clone(&c));
        c
    }

    fn add_files(&mut self, inputs: &mut Inputs, files: &[String]) {
        for f in files {
            if let Some(name) = f.strip_prefix(ENV_EDGE) {
                inputs.insert(format!("env:{name}"), env_value(name, &self.env));
                continue;
            }
            if let std::collections::btree_map::Entry::Vacant(slot) =
                inputs.entry(format!("file:{f}"))
            {
                slot.insert(self.file_label(f));
            }
        }
    }

    /// The labelled input a closure member stands for: a file, or an
    /// environment variable a module read while it was imported.
    fn closure_entry(&mut self, f: &str) -> Entry {
        match f.strip_prefix(ENV_EDGE) {
            Some(name) => Arc::new((format!("env:{name}"), env_value(name, &self.env))),
            None => Arc::new((format!("file:{f}"), self.file_label(f))),
        }
    }

    /// Adds `file:` labels for `starts` and everything they import, transitively.
    pub fn add_closure(&mut self, inputs: &mut Inputs, starts: &[String]) {
        for s in starts {
            let c = self.closure_of(s);
            self.add_files(inputs, &c);
        }
    }

    /// Adds recorded reads and environment variables.
    pub fn add_recorded(&mut self, inputs: &mut Inputs, rec: &Recorded) {
        for r in &rec.reads {
            let label = self.file_label(r);
            inputs.insert(format!("file:{r}"), label);
        }
        for e in &rec.env {
            inputs.insert(format!("env:{e}"), env_value(e, &self.env));
        }
        for d in &rec.lists {
            let label = self.listing_label(d);
            inputs.insert(format!("dir:{d}"), label);
        }
    }

    /// Digest label of a directory's entry names (tool caches and bytecode left out).
    pub fn listing_label(&mut self, rel: &str) -> String {
        let root = self.graph.source_mut().root().to_path_buf();
        listing_label(&root.join(rel))
    }

    /// Adds files matching rootdir-relative globs.
    pub fn add_globs(&mut self, inputs: &mut Inputs, globs: &[String]) {
        // (expansions are memoized per run: many files share a rule's globs)
        let root = self.graph.source_mut().root().to_path_buf();
        for g in globs {
            let matches = match self.globs.get(g) {
                Some(m) => Arc::clone(m),
                None => {
                    let m = Arc::new(expand_glob(&root, g));
                    self.globs.insert(g.clone(), Arc::clone(&m));
                    m
                }
            };
            for rel in matches.iter() {
                let label = self.file_label(rel);
                inputs.insert(format!("file:{rel}"), label);
            }
            if matches.is_empty() {
                inputs.insert(format!("glob:{g}"), "no match".to_owned());
            }
        }
    }

    /// The key of test file `file` given the global key and its recorded deps.
    pub fn file_key(
        &mut self,
        global: &Key,
        file: &str,
        rec: &Recorded,
        rule_files: &[String],
        rule_env: &[String],
    ) -> Key {
        let mut inputs = Inputs::new();
        inputs.insert("global".to_owned(), global.hex[..16].to_owned());
        // The file's own closure is its direct imports' closures: memoized
        // per imported module, shared by every test file importing it.
        self.add_files(&mut inputs, &[file.to_owned()]);
        let mut direct = self.graph.edges_of(file);
        direct.extend(self.edges.get(file).into_iter().flatten().cloned());
        let chain = self.chain_of(file);
        direct.extend(chain.iter().cloned());
        direct.extend(rec.imports.iter().cloned());
        self.add_closure(&mut inputs, &direct);
        self.add_recorded(&mut inputs, rec);
        self.add_globs(&mut inputs, rule_files);
        for e in rule_env {
            inputs.insert(format!("env:{e}"), env_value(e, &self.env));
        }
        finish(inputs)
    }

    /// The `file:` entries of everything reachable from `start`, memoized.
    fn closure_entries_of(&mut self, start: &str) -> Arc<Vec<Entry>> {
        if let Some(e) = self.closure_entries.get(start) {
            return Arc::clone(e);
        }
        let c = self.closure_of(start);
        let entries: Vec<Entry> = c.iter().map(|f| self.closure_entry(f)).collect();
        let e = Arc::new(entries);
        self.closure_entries
            .insert(start.to_owned(), Arc::clone(&e));
        e
    }

    /// The digest of `file_key(global, file, rec, rule_files, rule_env)`
    /// with `extra` inputs added, computed without building its labelled
    /// map: the same entries, sorted the same way, hashed the same way
    /// (`finish`). The closure's entries are shared between the files that
    /// import the same modules, so a key costs a sort of a few pointers.
    pub fn file_key_hex(
        &mut self,
        global: &Key,
        file: &str,
        rec: &Recorded,
        rule_files: &[String],
        rule_env: &[String],
        extra: &[(&str, &str)],
    ) -> String {
        // Names and labels owned here; closures' entries are borrowed.
        let mut own: Vec<(String, String)> = Vec::new();
        own.push(("global".to_owned(), global.hex[..16].to_owned()));
        let mut direct = self.graph.edges_of(file);
        direct.extend(self.edges.get(file).into_iter().flatten().cloned());
        let chain = self.chain_of(file);
        direct.extend(chain.iter().cloned());
        direct.extend(rec.imports.iter().cloned());
        let mut shared: Vec<Arc<Vec<Entry>>> = Vec::with_capacity(direct.len() + 1);
        shared.push(Arc::new(vec![Arc::new((
            format!("file:{file}"),
            self.file_label(file),
        ))]));
        for d in &direct {
            shared.push(self.closure_entries_of(d));
        }
        let mut probe = Inputs::new();
        self.add_recorded(&mut probe, rec);
        self.add_globs(&mut probe, rule_files);
        for e in rule_env {
            probe.insert(format!("env:{e}"), env_value(e, &self.env));
        }
        own.extend(probe);
        own.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let mut all: Vec<(&str, &str)> = own
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(
                shared
                    .iter()
                    .flat_map(|v| v.iter().map(|e| (e.0.as_str(), e.1.as_str()))),
            )
            .collect();
        // A name met twice has one label (a file's label is memoized, an
        // environment variable's is its value): keep one, as the map does.
        all.sort_unstable();
        all.dedup_by(|a, b| a.0 == b.0);
        hash_entries(all.iter().copied())
    }
}

/// The hex digest of labelled inputs in name order (what `finish` computes).
fn hash_entries<'a>(entries: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut h = blake3::Hasher::new();
    for (k, v) in entries {
        h.update(k.as_bytes());
        h.update(b"\0");
        h.update(v.as_bytes());
        h.update(b"\n");
    }
    h.finalize().to_hex().to_string()
}

/// Hashes a labelled input map into a key.
pub fn finish(inputs: Inputs) -> Key {
    Key {
        hex: hash_entries(inputs.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        inputs,
    }
}

/// A label for an arbitrary value that enters the global key.
pub fn value_label(v: &str) -> String {
    short(v.as_bytes())
}

/// Lists what differs between two input maps, for `--why`.
pub fn diff(old: &Inputs, new: &Inputs) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in new {
        match old.get(k) {
            None => out.push(format!("{k}: new input ({v})")),
            Some(o) if o != v => out.push(format!("{k}: changed ({o} -> {v})")),
            _ => {}
        }
    }
    for (k, o) in old {
        if !new.contains_key(k) {
            out.push(format!("{k}: no longer an input (was {o})"));
        }
    }
    out
}

/// The rootdir-relative files a rule glob names. `*` and `**` do not enter
/// hidden directories (`.venv`, `.git`, `.tox`): name those explicitly.
/// Rootdir-relative files a rule glob names, sorted.
pub(crate) fn expand_glob(root: &Path, g: &str) -> Vec<String> {
    let pattern = root.join(g).to_string_lossy().into_owned();
    let opts = glob::MatchOptions {
        require_literal_leading_dot: true,
        ..Default::default()
    };
    let mut out: Vec<String> = glob::glob_with(&pattern, opts)
        .map(|paths| {
            paths
                .flatten()
                .filter(|p| p.is_file())
                .filter_map(|p| {
                    p.strip_prefix(root)
                        .ok()
                        .map(|r| r.to_string_lossy().replace('\\', "/"))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Digest label of the entry names of directory `dir` ("missing" when it
/// cannot be listed); tool caches and bytecode are left out, since a run
/// itself creates them.
pub fn listing_label(dir: &Path) -> String {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return "missing".to_owned();
    };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            !matches!(
                n.as_str(),
                "__pycache__" | ".pytest_cache" | ".rpytest" | ".hypothesis"
            ) && !n.ends_with(".pyc")
        })
        .collect();
    names.sort();
    short(names.join("\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_environment_ignores_cosmetic_variables() {
        let mut env: HashMap<String, String> = HashMap::new();
        env.insert("DB_URL".into(), "a".into());
        let base = env_value("*", &env);
        env.insert("COLUMNS".into(), "80".into());
        env.insert("RPYTEST_OUTCOMES_FILE".into(), "/tmp/x".into());
        assert_eq!(env_value("*", &env), base);
        env.insert("NEW_FLAG".into(), "1".into());
        assert_ne!(env_value("*", &env), base);
    }

    #[test]
    fn a_cosmetic_name_read_by_name_is_an_input() {
        let mut env: HashMap<String, String> = HashMap::new();
        for name in ["CI", "TERM", "BUILD_NUMBER", "COLUMNS"] {
            let unset = env_value(name, &env);
            env.insert(name.into(), "1".into());
            assert_ne!(env_value(name, &env), unset, "{name}");
        }
    }

    fn builder_over(root: &Path, edges: &HashMap<String, Vec<String>>) -> KeyBuilder {
        let hasher = FileHasher::new(root.to_path_buf(), Default::default());
        let resolver = crate::inputs::Resolver::new(root.to_path_buf(), vec![String::new()]);
        KeyBuilder::new(
            ImportGraph::new(resolver, hasher, HashMap::new()),
            Arc::new(edges.clone()),
            HashMap::new(),
        )
    }

    #[test]
    fn missing_paths_and_directories_have_stable_labels_that_creation_changes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("pkg")).unwrap();
        let edges = HashMap::new();
        let rec = Recorded {
            reads: vec!["pkg/newmod.py".into(), "pkg/newmod".into()],
            ..Recorded::default()
        };
        let labels = || {
            let mut inputs = Inputs::new();
            builder_over(root, &edges).add_recorded(&mut inputs, &rec);
            (
                inputs["file:pkg/newmod.py"].clone(),
                inputs["file:pkg/newmod"].clone(),
            )
        };
        assert_eq!(labels(), ("missing".to_owned(), "missing".to_owned()));
        assert_eq!(labels(), labels(), "stable");
        std::fs::create_dir(root.join("pkg/newmod")).unwrap();
        assert_eq!(labels(), ("missing".to_owned(), "dir".to_owned()));
        // What the run itself writes into a directory does not move its label.
        std::fs::create_dir(root.join("pkg/newmod/__pycache__")).unwrap();
        assert_eq!(labels().1, "dir");
        std::fs::write(root.join("pkg/newmod.py"), "x = 1\n").unwrap();
        let (file, _) = labels();
        assert!(file != "missing" && file != "dir", "{file}");
    }

    #[test]
    fn a_key_without_its_map_is_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let write = |rel: &str, text: &str| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write("app/__init__.py", "");
        write("app/a.py", "from app import b\n");
        write("app/b.py", "X = 1\n");
        write("tests/conftest.py", "import app.b\n");
        write("tests/test_x.py", "from app import a\nimport app.b\n");
        write("data/in.txt", "1\n");
        let mut edges = HashMap::new();
        edges.insert("tests/test_x.py".to_owned(), vec!["app/b.py".to_owned()]);
        let rec = Recorded {
            imports: vec!["app/a.py".into()],
            reads: vec!["data/in.txt".into(), "data/missing.txt".into()],
            env: vec!["HOME".into(), "*".into()],
            lists: vec!["data".into()],
            options: true,
        };
        let globs = vec!["data/*.txt".to_owned(), "nothing/*.cfg".to_owned()];
        let env = vec!["HOME".to_owned(), "LANG".to_owned()];
        let global = finish(Inputs::from([("python".to_owned(), "3.11".to_owned())]));
        let mut with_map = builder_over(root, &edges);
        let mut k = with_map.file_key(&global, "tests/test_x.py", &rec, &globs, &env);
        assert!(k.inputs.contains_key("file:app/b.py"), "{:?}", k.inputs);
        assert!(k.inputs.contains_key("file:tests/conftest.py"));
        let plain = k.hex.clone();
        let mut without = builder_over(root, &edges);
        let hex = without.file_key_hex(&global, "tests/test_x.py", &rec, &globs, &env, &[]);
        assert_eq!(hex, plain);
        // Extra inputs (a rule's settings, every argument) enter both alike.
        k.inputs.insert("rule".into(), "r1".into());
        k.inputs.insert("args:all".into(), "a1".into());
        let extended = finish(k.inputs).hex;
        let extra = [("rule", "r1"), ("args:all", "a1")];
        let hex = without.file_key_hex(&global, "tests/test_x.py", &rec, &globs, &env, &extra);
        assert_eq!(hex, extended);
        assert_ne!(extended, plain);
        // An edit of a module in the closure changes both.
        write("app/b.py", "X = 2\n");
        let again = builder_over(root, &edges).file_key_hex(
            &global,
            "tests/test_x.py",
            &rec,
            &globs,
            &env,
            &[],
        );
        assert_ne!(again, plain);
        let k2 =
            builder_over(root, &edges).file_key(&global, "tests/test_x.py", &rec, &globs, &env);
        assert_eq!(again, k2.hex);
    }

    #[test]
    fn key_changes_with_any_input() {
        let mut a = Inputs::new();
        a.insert("file:x.py".into(), "1".into());
        let k1 = finish(a.clone());
        a.insert("file:x.py".into(), "2".into());
        let k2 = finish(a.clone());
        assert_ne!(k1.hex, k2.hex);
        let d = diff(&k1.inputs, &k2.inputs);
        assert_eq!(d, vec!["file:x.py: changed (1 -> 2)"]);
    }
}
