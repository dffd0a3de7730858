//! The static import graph of first-party files and its transitive closure.
//!
//! Files are parsed lazily, once per run, and only when reached. Parsed
//! imports are cached by content digest (a pure function of the bytes, so the
//! cache can be persisted and shared between paths); resolution to files is
//! redone every run because it depends on the directory layout, which is
//! cheap thanks to the resolver's listing cache.

use crate::inputs::fasthash::FastMap;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::hash::{digest_bytes, Digest, FileHasher};
use super::imports::{parse_imports, ImportRef};
use super::resolve::Resolver;

/// Where the graph gets file contents from.
pub trait SourceFiles {
    /// Digest of the file at `rel` (root-relative); `None` when it cannot be read.
    fn digest(&mut self, rel: &str) -> Option<Digest>;
    /// The bytes of the file at `rel`; `None` when it cannot be read.
    fn read(&mut self, rel: &str) -> Option<Vec<u8>>;
}

/// Reads files from disk and digests them through a [`FileHasher`] (stat cache).
impl SourceFiles for FileHasher {
    fn digest(&mut self, rel: &str) -> Option<Digest> {
        FileHasher::digest(self, rel).ok().flatten()
    }

    fn read(&mut self, rel: &str) -> Option<Vec<u8>> {
        std::fs::read(self.root().join(rel)).ok()
    }
}

/// A [`SourceFiles`] over a closure returning file bytes (tests, in-memory trees).
pub struct FnSource<F>(pub F);

impl<F: FnMut(&str) -> Option<Vec<u8>>> SourceFiles for FnSource<F> {
    fn digest(&mut self, rel: &str) -> Option<Digest> {
        (self.0)(rel).map(|b| digest_bytes(&b))
    }

    fn read(&mut self, rel: &str) -> Option<Vec<u8>> {
        (self.0)(rel)
    }
}

/// Lazily built static import graph over first-party files.
///
/// Paths are interned to dense ids so closures over large, densely connected
/// graphs stay cheap; [`ImportGraph::closure_ids`] avoids building strings.
pub struct ImportGraph<S> {
    resolver: Arc<Resolver>,
    source: S,
    /// The persisted parse cache, shared with forks (read-only).
    base_parse: Arc<HashMap<Digest, Arc<Vec<ImportRef>>>>,
    /// What this graph parsed.
    parse_cache: FastMap<Digest, Arc<Vec<ImportRef>>>,
    new_digests: Vec<Digest>,
    ids: FastMap<String, u32>,
    paths: Vec<String>,
    edges: Vec<Option<Arc<[u32]>>>,
    stamp: Vec<u32>,
    generation: u32,
}

/// What a file's imports are read from: Python source (its statements and
/// its docstrings' examples), or, for any other file a plugin may collect
/// (a doctest text file), its examples alone.
fn imports_in(rel: &str, src: &str) -> Vec<ImportRef> {
    let mut refs = super::imports::parse_doctest_imports(src);
    if rel.ends_with(".py") {
        let mut all = parse_imports(src);
        all.append(&mut refs);
        return all;
    }
    refs
}

/// Salts content digests in the parse cache: a result of an older parser
/// (before doctest examples were read) is never taken for this one's.
fn parse_key(d: &Digest) -> Digest {
    let mut h = blake3::Hasher::new();
    h.update(b"imports+doctests/1\0");
    h.update(d);
    *h.finalize().as_bytes()
}

impl<S: SourceFiles> ImportGraph<S> {
    /// A graph resolving with `resolver`, reading through `source`, starting
    /// from a persisted parse cache (digest → imports).
    pub fn new(
        resolver: Resolver,
        source: S,
        parse_cache: HashMap<Digest, Vec<ImportRef>>,
    ) -> Self {
        ImportGraph {
            resolver: Arc::new(resolver),
            source,
            base_parse: Arc::new(
                parse_cache
                    .into_iter()
                    .map(|(k, v)| (k, Arc::new(v)))
                    .collect(),
            ),
            parse_cache: FastMap::default(),
            new_digests: Vec::new(),
            ids: FastMap::default(),
            paths: Vec::new(),
            edges: Vec::new(),
            stamp: Vec::new(),
            generation: 0,
        }
    }

    /// The resolver in use.
    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// The source in use (e.g. to persist a [`FileHasher`]'s stat cache).
    pub fn source_mut(&mut self) -> &mut S {
        &mut self.source
    }

    /// The id of a root-relative path (interned on first use).
    pub fn id(&mut self, rel: &str) -> u32 {
        if let Some(&id) = self.ids.get(rel) {
            return id;
        }
        let id = u32::try_from(self.paths.len()).unwrap_or(u32::MAX);
        self.ids.insert(rel.to_owned(), id);
        self.paths.push(rel.to_owned());
        self.edges.push(None);
        self.stamp.push(0);
        id
    }

    /// The path of an id returned by this graph.
    pub fn path(&self, id: u32) -> &str {
        &self.paths[id as usize]
    }

    /// The imports found in `rel`, parsed at most once per content.
    pub fn imports_of(&mut self, rel: &str) -> Arc<Vec<ImportRef>> {
        let Some(d) = self.source.digest(rel) else {
            return Arc::new(Vec::new());
        };
        let d = parse_key(&d);
        if let Some(refs) = self.parse_cache.get(&d).or_else(|| self.base_parse.get(&d)) {
            return Arc::clone(refs);
        }
        let refs = match self.source.read(rel) {
            Some(bytes) => Arc::new(imports_in(rel, &String::from_utf8_lossy(&bytes))),
            // Unreadable now: do not cache under a digest we could not verify.
            None => return Arc::new(Vec::new()),
        };
        self.parse_cache.insert(d, Arc::clone(&refs));
        self.new_digests.push(d);
        refs
    }

    fn edge_ids(&mut self, id: u32) -> Arc<[u32]> {
        if let Some(e) = &self.edges[id as usize] {
            return Arc::clone(e);
        }
        let rel = self.paths[id as usize].clone();
        let mut set = BTreeSet::new();
        if !rel.starts_with(super::key::ENV_EDGE) {
            let refs = self.imports_of(&rel);
            for imp in refs.iter() {
                set.extend(self.resolver.resolve(&rel, imp));
            }
            set.remove(&rel);
        }
        let e: Arc<[u32]> = set.iter().map(|p| self.id(p)).collect::<Vec<_>>().into();
        self.edges[id as usize] = Some(Arc::clone(&e));
        e
    }

    /// First-party files `rel` imports statically (sorted, without itself).
    pub fn edges_of(&mut self, rel: &str) -> Vec<String> {
        let id = self.id(rel);
        let mut v: Vec<String> = self
            .edge_ids(id)
            .iter()
            .map(|&t| self.paths[t as usize].clone())
            .collect();
        v.sort();
        v
    }

    /// Ids of every file reachable from `starts` (included) through static
    /// edges and `extra_edges`, in visit order.
    pub fn closure_ids(
        &mut self,
        starts: &[String],
        extra_edges: &HashMap<String, Vec<String>>,
    ) -> Vec<u32> {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.stamp.iter_mut().for_each(|s| *s = 0);
            self.generation = 1;
        }
        let generation = self.generation;
        let mut out = Vec::new();
        let mut stack = Vec::new();
        for s in starts {
            let id = self.id(s);
            if self.stamp[id as usize] != generation {
                self.stamp[id as usize] = generation;
                out.push(id);
                stack.push(id);
            }
        }
        let mut extra_ids = Vec::new();
        while let Some(f) = stack.pop() {
            let stat = self.edge_ids(f);
            extra_ids.clear();
            if !extra_edges.is_empty() {
                if let Some(extra) = extra_edges.get(&self.paths[f as usize]) {
                    for t in extra {
                        extra_ids.push(self.id(t));
                    }
                }
            }
            for &t in stat.iter().chain(extra_ids.iter()) {
                if self.stamp[t as usize] != generation {
                    self.stamp[t as usize] = generation;
                    out.push(t);
                    stack.push(t);
                }
            }
        }
        out
    }

    /// Every file reachable from `starts` (included) through static edges and
    /// `extra_edges` (recorded at run time: file → files it loaded or read).
    /// Targets are kept even when they no longer exist: their absence is an input.
    pub fn closure(
        &mut self,
        starts: &[String],
        extra_edges: &HashMap<String, Vec<String>>,
    ) -> BTreeSet<String> {
        let ids = self.closure_ids(starts, extra_edges);
        ids.into_iter()
            .map(|id| self.paths[id as usize].clone())
            .collect()
    }

    /// Parse-cache entries added during this run (to persist).
    pub fn new_parse_entries(&self) -> impl Iterator<Item = (&Digest, &Vec<ImportRef>)> {
        self.new_digests.iter().filter_map(|d| {
            self.parse_cache
                .get_key_value(d)
                .map(|(k, v)| (k, v.as_ref()))
        })
    }

    /// The whole parse cache after this run.
    pub fn into_parse_cache(self) -> HashMap<Digest, Vec<ImportRef>> {
        let mut all = Arc::try_unwrap(self.base_parse).unwrap_or_else(|b| (*b).clone());
        all.extend(self.parse_cache);
        all.into_iter()
            .map(|(k, v)| (k, Arc::try_unwrap(v).unwrap_or_else(|a| (*a).clone())))
            .collect()
    }
}

impl ImportGraph<FileHasher> {
    /// A graph over the same resolver, persisted caches and files, for
    /// another thread: it interns paths and memoizes edges on its own.
    pub fn fork(&self) -> Self {
        ImportGraph {
            resolver: Arc::clone(&self.resolver),
            source: self.source.fork(),
            base_parse: Arc::clone(&self.base_parse),
            parse_cache: FastMap::default(),
            new_digests: Vec::new(),
            ids: FastMap::default(),
            paths: Vec::new(),
            edges: Vec::new(),
            stamp: Vec::new(),
            generation: 0,
        }
    }

    /// The same files seen anew (after a run): `resolver` replaces the one
    /// in use and every edge is resolved again; parses stay (they are keyed
    /// by content) and the stat cache verifies each file once more.
    pub fn refresh(&mut self, resolver: Resolver) {
        self.resolver = Arc::new(resolver);
        self.edges.iter_mut().for_each(|e| *e = None);
        self.source.forget_digests();
    }

    /// Takes over what a fork parsed and hashed (to be persisted).
    pub fn absorb(&mut self, other: Self) {
        for d in other.new_digests {
            if let Some(refs) = other.parse_cache.get(&d) {
                if self.parse_cache.insert(d, Arc::clone(refs)).is_none() {
                    self.new_digests.push(d);
                }
            }
        }
        self.source.absorb(other.source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;

    fn write_tree(root: &Path, files: &[(&str, &str)]) {
        for (f, content) in files {
            let p = root.join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, content).unwrap();
        }
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn graph(root: &Path, roots: &[&str]) -> ImportGraph<FileHasher> {
        let resolver = Resolver::new(
            root.to_path_buf(),
            roots.iter().map(|s| s.to_string()).collect(),
        );
        ImportGraph::new(
            resolver,
            FileHasher::new(root.to_path_buf(), Default::default()),
            HashMap::new(),
        )
    }

    #[test]
    fn transitive_closure_with_cycles_and_extra_edges() {
        let d = tempfile::tempdir().unwrap();
        write_tree(
            d.path(),
            &[
                (
                    "tests/test_a.py",
                    "from app.core import run\nimport helpers\n",
                ),
                ("tests/helpers.py", "import json\n"),
                ("src/app/__init__.py", ""),
                (
                    "src/app/core.py",
                    "from . import util\nfrom .cycle import x\n",
                ),
                ("src/app/util.py", "import app.core\n"),
                ("src/app/cycle.py", "from app import core\n"),
                ("src/app/unused.py", ""),
                ("data/input.txt", "payload"),
                ("src/app/plugin.py", "import app.util\n"),
            ],
        );
        let mut g = graph(d.path(), &["", "src", "tests"]);
        let extra = HashMap::from([(
            "src/app/util.py".to_string(),
            vec![
                "data/input.txt".to_string(),
                "src/app/plugin.py".to_string(),
                "gone.py".to_string(),
            ],
        )]);
        let got = g.closure(&["tests/test_a.py".to_string()], &extra);
        assert_eq!(
            got,
            set(&[
                "data/input.txt",
                "gone.py",
                "src/app/__init__.py",
                "src/app/core.py",
                "src/app/cycle.py",
                "src/app/plugin.py",
                "src/app/util.py",
                "tests/helpers.py",
                "tests/test_a.py",
            ])
        );
        let without_extra = g.closure(&["tests/test_a.py".to_string()], &HashMap::new());
        assert_eq!(
            without_extra,
            set(&[
                "src/app/__init__.py",
                "src/app/core.py",
                "src/app/cycle.py",
                "src/app/util.py",
                "tests/helpers.py",
                "tests/test_a.py",
            ])
        );
    }

    #[test]
    fn parse_cache_is_keyed_by_content_and_reused() {
        let d = tempfile::tempdir().unwrap();
        write_tree(
            d.path(),
            &[
                ("a/test_x.py", "import m\n"),
                ("b/test_y.py", "import m\n"),
                ("m.py", ""),
            ],
        );
        let mut g = graph(d.path(), &[""]);
        let c = g.closure(
            &["a/test_x.py".to_string(), "b/test_y.py".to_string()],
            &HashMap::new(),
        );
        assert_eq!(c, set(&["a/test_x.py", "b/test_y.py", "m.py"]));
        // Two files with one content, plus the empty m.py: two parses.
        assert_eq!(g.new_parse_entries().count(), 2);
        let cache = g.into_parse_cache();
        // A poisoned cache entry is used instead of parsing: proves the lookup.
        let digest = parse_key(&digest_bytes(b"import m\n"));
        let mut poisoned = cache.clone();
        poisoned.insert(
            digest,
            vec![ImportRef {
                module: "other".into(),
                level: 0,
                names: vec![],
                line: 1,
            }],
        );
        fs::write(d.path().join("other.py"), "").unwrap();
        let resolver = Resolver::new(d.path().to_path_buf(), vec![String::new()]);
        let mut g = ImportGraph::new(
            resolver,
            FileHasher::new(d.path().to_path_buf(), Default::default()),
            poisoned,
        );
        let c = g.closure(&["a/test_x.py".to_string()], &HashMap::new());
        assert_eq!(c, set(&["a/test_x.py", "other.py"]));
        assert_eq!(g.new_parse_entries().count(), 0);
    }

    #[test]
    fn in_memory_source() {
        let d = tempfile::tempdir().unwrap();
        write_tree(d.path(), &[("t.py", ""), ("lib.py", "")]);
        let resolver = Resolver::new(d.path().to_path_buf(), vec![String::new()]);
        let src = FnSource(|rel: &str| match rel {
            "t.py" => Some(b"import lib\n".to_vec()),
            "lib.py" => Some(b"".to_vec()),
            _ => None,
        });
        let mut g = ImportGraph::new(resolver, src, HashMap::new());
        assert_eq!(
            g.closure(&["t.py".to_string()], &HashMap::new()),
            set(&["lib.py", "t.py"])
        );
    }
}
