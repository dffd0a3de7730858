//! Resolution of imports to the first-party files they can load.
//!
//! Mirrors Python's path-based finder over the project's search roots (the
//! rootdir, `src/` layouts, ini `pythonpath`, pytest's `prepend` basedirs):
//! regular packages (`__init__.py`), namespace packages (plain directories),
//! source modules and C extensions (`mod.so`, `mod.<tag>.so`). When a module
//! could come from several roots every candidate is returned: a superfluous
//! input costs a cache miss, a missing one a wrong cached result. Directory
//! listings are cached, so resolving many imports touches each directory once.

use crate::inputs::fasthash::FastMap;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use super::imports::ImportRef;

/// The Python-relevant content of one directory.
#[derive(Debug, Default)]
struct Listing {
    /// Module name → files that can provide it as a module (`x.py`, `x*.so`).
    modules: BTreeMap<String, Vec<String>>,
    /// Subdirectory names (symlinks followed).
    dirs: BTreeSet<String>,
    /// Whether the directory is a regular package; the file names of its `__init__`.
    init: Vec<String>,
}

impl Listing {
    fn read(dir: &Path) -> Listing {
        let mut l = Listing::default();
        let Ok(rd) = std::fs::read_dir(dir) else {
            return l;
        };
        for entry in rd.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let Ok(mut ft) = entry.file_type() else {
                continue;
            };
            if ft.is_symlink() {
                match std::fs::metadata(entry.path()) {
                    Ok(md) => ft = md.file_type(),
                    Err(_) => continue,
                }
            }
            if ft.is_dir() {
                if name != "__pycache__" {
                    l.dirs.insert(name);
                }
            } else if let Some(m) = module_name_of(&name) {
                if m == "__init__" {
                    l.init.push(name.clone());
                }
                l.modules.entry(m.to_owned()).or_default().push(name);
            }
        }
        l.init.sort();
        for files in l.modules.values_mut() {
            files.sort();
        }
        l
    }
}

/// The module a file name provides: `x.py` → `x`, `x.cpython-311-x86_64-linux-gnu.so` → `x`.
fn module_name_of(file: &str) -> Option<&str> {
    if let Some(stem) = file.strip_suffix(".py") {
        return (!stem.is_empty() && !stem.contains('.')).then_some(stem);
    }
    if file.ends_with(".so") || file.ends_with(".pyd") {
        let stem = file.split('.').next().unwrap_or("");
        return (!stem.is_empty()).then_some(stem);
    }
    None
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

fn parent(rel: &str) -> &str {
    rel.rfind('/').map_or("", |i| &rel[..i])
}

/// Resolves imports against the project's search roots.
#[derive(Debug)]
pub struct Resolver {
    root: PathBuf,
    search_roots: Vec<String>,
    listings: Mutex<FastMap<String, Arc<Listing>>>,
    /// Top-level name → the search roots that have it (fast rejection of
    /// stdlib and third-party imports; no walk of roots that lack the name).
    top_names: OnceLock<FastMap<String, Vec<String>>>,
    /// Absolute imports do not depend on the importer: memoized per run.
    absolute: Mutex<FastMap<String, Arc<[String]>>>,
}

impl Resolver {
    /// A resolver for `root`; `search_roots` are root-relative directories that
    /// act as `sys.path` entries (`""` is the root itself).
    pub fn new(root: PathBuf, search_roots: Vec<String>) -> Self {
        let mut seen = BTreeSet::new();
        let search_roots = search_roots
            .into_iter()
            .map(|r| r.trim_matches('/').to_owned())
            .map(|r| if r == "." { String::new() } else { r })
            .filter(|r| seen.insert(r.clone()))
            .collect();
        Resolver {
            root,
            search_roots,
            listings: Mutex::new(FastMap::default()),
            top_names: OnceLock::new(),
            absolute: Mutex::new(FastMap::default()),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The search roots, deduplicated, in priority order.
    pub fn search_roots(&self) -> &[String] {
        &self.search_roots
    }

    fn listing(&self, dir: &str) -> Arc<Listing> {
        let mut map = self.listings.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = map.get(dir) {
            return Arc::clone(l);
        }
        let l = Arc::new(Listing::read(&self.root.join(dir)));
        map.insert(dir.to_owned(), Arc::clone(&l));
        l
    }

    fn top_names(&self) -> &FastMap<String, Vec<String>> {
        self.top_names.get_or_init(|| {
            let mut names: FastMap<String, Vec<String>> = FastMap::default();
            for sr in &self.search_roots {
                let l = self.listing(sr);
                for name in l.modules.keys().chain(l.dirs.iter()) {
                    let roots = names.entry(name.clone()).or_default();
                    if roots.last() != Some(sr) {
                        roots.push(sr.clone());
                    }
                }
            }
            names
        })
    }

    /// Whether `dir` (root-relative) holds an `__init__.py` (or `__init__` extension).
    pub fn is_package(&self, dir: &str) -> bool {
        !self.listing(dir).init.is_empty()
    }

    /// pytest's `prepend` import mode: the directory inserted in `sys.path` for
    /// a test or conftest file is the parent of its outermost package (the
    /// file's own directory when that is not a package). Stops at the root.
    pub fn basedir_of(&self, rel_file: &str) -> String {
        let mut dir = parent(rel_file);
        while !dir.is_empty() && self.is_package(dir) {
            dir = parent(dir);
        }
        dir.to_owned()
    }

    /// Root-relative paths of the first-party files `imp` (found in
    /// `importer_rel`) can load, sorted and deduplicated.
    pub fn resolve(&self, importer_rel: &str, imp: &ImportRef) -> Vec<String> {
        let mut out = BTreeSet::new();
        let parts: Vec<&str> = imp.module.split('.').filter(|p| !p.is_empty()).collect();
        if imp.level == 0 {
            let Some(first) = parts.first() else {
                return Vec::new();
            };
            let Some(roots) = self.top_names().get(*first) else {
                return Vec::new();
            };
            let key = format!("{}\0{}", imp.module, imp.names.join("\0"));
            if let Some(hit) = self
                .absolute
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
            {
                return hit.to_vec();
            }
            for sr in roots {
                self.descend(sr, &parts, &imp.names, &mut out);
            }
            let v: Vec<String> = out.into_iter().collect();
            self.absolute
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, v.clone().into());
            return v;
        }
        // The importer's package directory, then one up per extra dot.
        let mut base = Some(parent(importer_rel));
        for _ in 1..imp.level {
            base = match base {
                Some("") | None => None,
                Some(d) => Some(parent(d)),
            };
        }
        let Some(base) = base else { return Vec::new() };
        let l = self.listing(base);
        out.extend(l.init.iter().map(|f| join(base, f)));
        self.descend(base, &parts, &imp.names, &mut out);
        out.into_iter().collect()
    }

    /// Walks `parts` down from the package (or path entry) directory `dir`,
    /// adding every file executed on the way; then the from-import `names`
    /// that are submodules.
    fn descend(&self, dir: &str, parts: &[&str], names: &[String], out: &mut BTreeSet<String>) {
        let mut dir = dir.to_owned();
        for part in parts {
            match self.lookup(&dir, part, out) {
                Found::Package(sub) => dir = sub,
                // A plain module has no submodules: `names` are attributes.
                Found::Module | Found::Nothing => return,
            }
        }
        for name in names {
            if name == "*" {
                // `__all__` may name submodules: take every direct submodule.
                let l = self.listing(&dir);
                let subs: Vec<String> = l
                    .modules
                    .keys()
                    .filter(|m| m.as_str() != "__init__")
                    .chain(l.dirs.iter())
                    .cloned()
                    .collect();
                for sub in subs {
                    self.lookup(&dir, &sub, out);
                }
            } else {
                self.lookup(&dir, name, out);
            }
        }
    }

    /// Finds `name` inside `dir` and adds the files that provide it.
    fn lookup(&self, dir: &str, name: &str, out: &mut BTreeSet<String>) -> Found {
        let l = self.listing(dir);
        let mut found = Found::Nothing;
        if l.dirs.contains(name) {
            let path = join(dir, name);
            let sl = self.listing(&path);
            if !sl.init.is_empty() {
                out.extend(sl.init.iter().map(|f| join(&path, f)));
                // A regular package shadows a same-named module.
                return Found::Package(path);
            }
            found = Found::Package(path);
        }
        if let Some(files) = l.modules.get(name) {
            out.extend(files.iter().map(|f| join(dir, f)));
            // A module next to a namespace directory wins at run time, but
            // keep descending into the directory: over-approximation.
            if matches!(found, Found::Nothing) {
                found = Found::Module;
            }
        }
        found
    }
}

/// What a name inside a directory turned out to be.
enum Found {
    Nothing,
    Module,
    /// A regular or namespace package, with its directory.
    Package(String),
}

/// The `sys.path` entries a pytest run over this project sees: the root, a
/// `src/` layout, ini `pythonpath` entries and the `prepend` basedir of each
/// test/conftest file; deduplicated, in that order.
pub fn default_search_roots(
    resolver_root: &Path,
    pythonpath: &[String],
    files: &[String],
) -> Vec<String> {
    let probe = Resolver::new(resolver_root.to_path_buf(), Vec::new());
    let mut roots = vec![String::new()];
    if resolver_root.join("src").is_dir() && !probe.is_package("src") {
        roots.push("src".to_owned());
    }
    roots.extend(pythonpath.iter().map(|p| p.trim_matches('/').to_owned()));
    // A file's basedir depends only on its directory: one walk up per directory.
    let mut basedirs = BTreeSet::new();
    let mut dirs: crate::inputs::fasthash::FastSet<&str> = Default::default();
    for f in files {
        if dirs.insert(parent(f)) {
            basedirs.insert(probe.basedir_of(f));
        }
    }
    roots.extend(basedirs);
    let mut seen = BTreeSet::new();
    roots.retain(|r| seen.insert(r.clone()));
    roots
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            let p = dir.path().join(f);
            if let Some(stripped) = f.strip_suffix('/') {
                fs::create_dir_all(dir.path().join(stripped)).unwrap();
                continue;
            }
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, "").unwrap();
        }
        dir
    }

    fn imp(module: &str, level: u32, names: &[&str]) -> ImportRef {
        ImportRef {
            module: module.into(),
            level,
            names: names.iter().map(|s| s.to_string()).collect(),
            line: 1,
        }
    }

    fn r(root: &Path, roots: &[&str]) -> Resolver {
        Resolver::new(
            root.to_path_buf(),
            roots.iter().map(|s| s.to_string()).collect(),
        )
    }

    #[test]
    fn absolute_module_with_package_inits() {
        let d = tree(&[
            "a/__init__.py",
            "a/b/__init__.py",
            "a/b/c.py",
            "a/b/d/__init__.py",
            "a/b/e.py",
        ]);
        let res = r(d.path(), &[""]);
        assert_eq!(
            res.resolve("t.py", &imp("a.b.c", 0, &[])),
            ["a/__init__.py", "a/b/__init__.py", "a/b/c.py"]
        );
        assert_eq!(
            res.resolve("t.py", &imp("a.b", 0, &["d", "e", "f"])),
            [
                "a/__init__.py",
                "a/b/__init__.py",
                "a/b/d/__init__.py",
                "a/b/e.py"
            ]
        );
        assert_eq!(
            res.resolve("t.py", &imp("a.b.c", 0, &["X"])),
            ["a/__init__.py", "a/b/__init__.py", "a/b/c.py"]
        );
        assert!(res.resolve("t.py", &imp("os", 0, &[])).is_empty());
        assert!(res.resolve("t.py", &imp("a.zz", 0, &[])) == ["a/__init__.py"]);
    }

    #[test]
    fn src_layout_namespace_packages_and_extensions() {
        let d = tree(&[
            "src/pkg/__init__.py",
            "src/pkg/fast.cpython-311-x86_64-linux-gnu.so",
            "src/pkg/slow.abi3.so",
            "src/pkg/typed.pyi",
            "ns/sub/mod.py",
            "ns/sub/README.txt",
            "plain.so",
        ]);
        let res = r(d.path(), &["", "src"]);
        assert_eq!(
            res.resolve("t.py", &imp("pkg", 0, &["fast", "slow", "typed"])),
            [
                "src/pkg/__init__.py",
                "src/pkg/fast.cpython-311-x86_64-linux-gnu.so",
                "src/pkg/slow.abi3.so"
            ]
        );
        assert_eq!(
            res.resolve("t.py", &imp("ns.sub.mod", 0, &[])),
            ["ns/sub/mod.py"]
        );
        assert_eq!(
            res.resolve("t.py", &imp("ns.sub", 0, &["mod"])),
            ["ns/sub/mod.py"]
        );
        assert_eq!(res.resolve("t.py", &imp("plain", 0, &[])), ["plain.so"]);
        assert!(res.resolve("t.py", &imp("pkg.typed", 0, &[])) == ["src/pkg/__init__.py"]);
    }

    #[test]
    fn module_in_two_roots_returns_both() {
        let d = tree(&["util.py", "tests/util.py", "tests/test_x.py"]);
        let res = r(d.path(), &["", "tests"]);
        assert_eq!(
            res.resolve("tests/test_x.py", &imp("util", 0, &[])),
            ["tests/util.py", "util.py"]
        );
    }

    #[test]
    fn relative_imports() {
        let d = tree(&[
            "p/__init__.py",
            "p/q/__init__.py",
            "p/q/m.py",
            "p/q/n.py",
            "p/r/__init__.py",
            "p/r/s.py",
            "p/sib.py",
        ]);
        let res = r(d.path(), &[""]);
        assert_eq!(
            res.resolve("p/q/m.py", &imp("n", 1, &["x"])),
            ["p/q/__init__.py", "p/q/n.py"]
        );
        assert_eq!(
            res.resolve("p/q/m.py", &imp("", 1, &["n"])),
            ["p/q/__init__.py", "p/q/n.py"]
        );
        assert_eq!(
            res.resolve("p/q/__init__.py", &imp("", 1, &["m"])),
            ["p/q/__init__.py", "p/q/m.py"]
        );
        assert_eq!(
            res.resolve("p/q/m.py", &imp("r.s", 2, &[])),
            ["p/__init__.py", "p/r/__init__.py", "p/r/s.py"]
        );
        assert_eq!(
            res.resolve("p/q/m.py", &imp("", 2, &["sib"])),
            ["p/__init__.py", "p/sib.py"]
        );
        assert!(res.resolve("p/q/m.py", &imp("x", 4, &[])).is_empty());
        assert!(res.resolve("top.py", &imp("x", 2, &[])).is_empty());
    }

    #[test]
    fn star_import_takes_all_direct_submodules() {
        let d = tree(&[
            "k/__init__.py",
            "k/a.py",
            "k/b/__init__.py",
            "k/b/deep.py",
            "k/ns/x.py",
        ]);
        let res = r(d.path(), &[""]);
        assert_eq!(
            res.resolve("t.py", &imp("k", 0, &["*"])),
            ["k/__init__.py", "k/a.py", "k/b/__init__.py"]
        );
    }

    #[test]
    fn regular_package_shadows_module_but_namespace_dir_does_not() {
        let d = tree(&["a.py", "a/__init__.py", "b.py", "b/inner.py"]);
        let res = r(d.path(), &[""]);
        assert_eq!(res.resolve("t.py", &imp("a", 0, &[])), ["a/__init__.py"]);
        assert_eq!(res.resolve("t.py", &imp("b", 0, &[])), ["b.py"]);
        assert_eq!(
            res.resolve("t.py", &imp("b.inner", 0, &[])),
            ["b.py", "b/inner.py"]
        );
    }

    #[test]
    fn basedir_follows_prepend_rule() {
        let d = tree(&[
            "tests/unit/__init__.py",
            "tests/unit/sub/__init__.py",
            "tests/unit/sub/test_a.py",
            "tests/test_b.py",
            "test_top.py",
        ]);
        let res = r(d.path(), &[""]);
        assert_eq!(res.basedir_of("tests/unit/sub/test_a.py"), "tests");
        assert_eq!(res.basedir_of("tests/test_b.py"), "tests");
        assert_eq!(res.basedir_of("test_top.py"), "");
        let roots = default_search_roots(
            d.path(),
            &["lib/".to_string()],
            &[
                "tests/unit/sub/test_a.py".to_string(),
                "test_top.py".to_string(),
            ],
        );
        assert_eq!(roots, ["", "lib", "tests"]);
    }

    #[test]
    fn src_dir_detected_unless_it_is_a_package() {
        let d = tree(&["src/x.py"]);
        assert_eq!(default_search_roots(d.path(), &[], &[]), ["", "src"]);
        let d = tree(&["src/__init__.py"]);
        assert_eq!(default_search_roots(d.path(), &[], &[]), [""]);
    }
}
