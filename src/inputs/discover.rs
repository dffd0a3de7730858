//! pytest's test file discovery, reproduced without Python.
//!
//! Follows `_pytest/main.py` and `_pytest/python.py` (pytest 8): directories
//! are skipped when named `__pycache__`, matched by `--ignore`/`--ignore-glob`,
//! a virtualenv root (`pyvenv.cfg` or `conda-meta/history`, unless
//! `--collect-in-virtualenv`), or matched by a `norecursedirs` pattern
//! (`fnmatch` on the basename, or on the whole path when the pattern has a
//! `/`); none of this applies to a path given on the command line or to a
//! parent of one. A `.py` file is a test file when a `python_files` pattern
//! matches it, or when it was given explicitly. Symlinked directories are
//! followed (as `os.scandir(...).is_dir()` does). `collect_ignore` in
//! conftest files is Python and is not seen here.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// The ini/command-line settings that drive discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoverOptions {
    /// `python_files` glob patterns.
    pub python_files: Vec<String>,
    /// `norecursedirs` glob patterns.
    pub norecursedirs: Vec<String>,
    /// `testpaths` (globs relative to the root), used when no argument is given.
    pub testpaths: Vec<String>,
    /// `--collect-in-virtualenv`.
    pub collect_in_virtualenv: bool,
    /// `--ignore` paths (absolute).
    pub ignore: Vec<PathBuf>,
    /// `--ignore-glob` patterns (matched against absolute paths).
    pub ignore_glob: Vec<String>,
}

impl Default for DiscoverOptions {
    fn default() -> Self {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        DiscoverOptions {
            python_files: s(&["test_*.py", "*_test.py"]),
            norecursedirs: s(&[
                "*.egg",
                ".*",
                "_darcs",
                "build",
                "CVS",
                "dist",
                "node_modules",
                "venv",
                "{arch}",
            ]),
            testpaths: Vec::new(),
            collect_in_virtualenv: false,
            ignore: Vec::new(),
            ignore_glob: Vec::new(),
        }
    }
}

/// What discovery found, root-relative, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovered {
    /// Test modules pytest would collect.
    pub test_files: Vec<String>,
    /// `conftest.py` files pytest would load: those in visited directories and
    /// those between each argument and the root.
    pub conftests: Vec<String>,
    /// Digest of every file and directory name the walk visits (whatever
    /// its extension): pytest offers each file to every `pytest_collect_file`
    /// hook, so a plugin's collector (doctests, golden files) may collect a
    /// new one that no `python_files` pattern names.
    pub listing: String,
}

/// Python's `fnmatch.fnmatch` on POSIX (case-sensitive; `*` also matches `/`).
pub fn fnmatch(name: &str, pattern: &str) -> bool {
    match pattern.contains(['?', '[']) {
        // Literals and stars only (`test_*.py`, `*_test.py`): matched
        // without parsing the pattern into characters.
        false => star_match(name, pattern),
        true => fnmatch_any(name, pattern),
    }
}

/// [`fnmatch`] of a pattern without `?` or `[`: its first literal part
/// starts the name, its last ends it, and each one between is found, in
/// order, in what is left (the leftmost find leaves the most room).
fn star_match(name: &str, pattern: &str) -> bool {
    let Some((first, rest)) = pattern.split_once('*') else {
        return name == pattern;
    };
    let (middle, last) = rest.rsplit_once('*').unwrap_or(("", rest));
    if name.len() < first.len() + last.len() || !name.starts_with(first) || !name.ends_with(last) {
        return false;
    }
    let mut left = &name[first.len()..name.len() - last.len()];
    for part in middle.split('*').filter(|p| !p.is_empty()) {
        match left.find(part) {
            Some(i) => left = &left[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// [`fnmatch`] of any pattern.
fn fnmatch_any(name: &str, pattern: &str) -> bool {
    #[derive(Debug)]
    enum P {
        Lit(char),
        Any,
        Star,
        Class(bool, Vec<(char, char)>),
    }
    let pc: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < pc.len() {
        match pc[i] {
            '*' => {
                if !matches!(toks.last(), Some(P::Star)) {
                    toks.push(P::Star);
                }
                i += 1;
            }
            '?' => {
                toks.push(P::Any);
                i += 1;
            }
            '[' => {
                let mut j = i + 1;
                if j < pc.len() && pc[j] == '!' {
                    j += 1;
                }
                if j < pc.len() && pc[j] == ']' {
                    j += 1;
                }
                while j < pc.len() && pc[j] != ']' {
                    j += 1;
                }
                if j >= pc.len() {
                    toks.push(P::Lit('['));
                    i += 1;
                    continue;
                }
                let mut k = i + 1;
                let neg = pc[k] == '!';
                if neg {
                    k += 1;
                }
                let mut items = Vec::new();
                let mut first = true;
                while k < j {
                    let c = pc[k];
                    if !first && c == ']' {
                        break;
                    }
                    first = false;
                    if k + 2 < j && pc[k + 1] == '-' {
                        items.push((c, pc[k + 2]));
                        k += 3;
                    } else {
                        items.push((c, c));
                        k += 1;
                    }
                }
                toks.push(P::Class(neg, items));
                i = j + 1;
            }
            c => {
                toks.push(P::Lit(c));
                i += 1;
            }
        }
    }
    let s: Vec<char> = name.chars().collect();
    let one = |t: &P, c: char| match t {
        P::Lit(l) => *l == c,
        P::Any => true,
        P::Class(neg, items) => items.iter().any(|&(a, b)| a <= c && c <= b) != *neg,
        P::Star => false,
    };
    // Greedy matching with backtracking to the last star.
    let (mut ti, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if ti < toks.len() {
            if let P::Star = toks[ti] {
                star = Some((ti, si));
                ti += 1;
                continue;
            }
            if one(&toks[ti], s[si]) {
                ti += 1;
                si += 1;
                continue;
            }
        }
        match star {
            Some((st, ss)) => {
                ti = st + 1;
                si = ss + 1;
                star = Some((st, ss + 1));
            }
            None => return false,
        }
    }
    toks[ti..].iter().all(|t| matches!(t, P::Star))
}

/// pytest's `fnmatch_ex`: match the basename, or the whole path (with a
/// leading `*/` for relative patterns) when the pattern contains `/`.
pub fn fnmatch_ex(pattern: &str, path: &Path) -> bool {
    if pattern.contains('/') {
        let full = path.to_string_lossy();
        if path.is_absolute() && !pattern.starts_with('/') {
            fnmatch(&full, &format!("*/{pattern}"))
        } else {
            fnmatch(&full, pattern)
        }
    } else {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        fnmatch(&name, pattern)
    }
}

/// pytest's `_in_venv`: `path` is the root of a virtual environment.
fn is_venv(path: &Path) -> bool {
    path.join("pyvenv.cfg").is_file() || path.join("conda-meta").join("history").is_file()
}

/// Lexically normalized absolute path (like `os.path.abspath`, no symlink resolution).
/// `path` with `.` and `..` components folded, as `os.path.abspath` does
/// for an absolute path (links are not resolved).
pub fn absolute_path(path: &Path) -> PathBuf {
    normalize(path)
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

fn rel_of(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    Some(parts.join("/"))
}

/// `testpaths` expanded like pytest (`glob(recursive=True)` from the root,
/// sorted per pattern); falls back to the root when nothing matches.
pub fn initial_paths(root: &Path, testpaths: &[String]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    for tp in testpaths {
        let pattern = root.join(tp);
        let Some(pattern) = pattern.to_str() else {
            continue;
        };
        let Ok(paths) = glob::glob_with(pattern, opts) else {
            continue;
        };
        let mut found: Vec<PathBuf> = paths.flatten().collect();
        found.sort();
        out.extend(found);
    }
    if out.is_empty() {
        out.push(root.to_path_buf());
    }
    out
}

struct Walk<'a> {
    root: &'a Path,
    opts: &'a DiscoverOptions,
    initial: BTreeSet<PathBuf>,
    initial_with_parents: BTreeSet<PathBuf>,
    tests: BTreeSet<String>,
    conftests: BTreeSet<String>,
    listing: blake3::Hasher,
}

impl Walk<'_> {
    /// Adds a visited path to the listing. rpytest's own directory is left
    /// out: its database files come and go while no collector looks at them.
    fn list(&mut self, path: &Path, is_dir: bool) {
        if let Some(rel) = rel_of(self.root, path) {
            self.list_rel(&rel, is_dir);
        }
    }

    /// `pytest_ignore_collect` for a path met while walking.
    fn ignored(&self, path: &Path, is_dir: bool) -> bool {
        if path.file_name().is_some_and(|n| n == "__pycache__") {
            return true;
        }
        if self.opts.ignore.iter().any(|p| normalize(p) == path) {
            return true;
        }
        let full = path.to_string_lossy();
        if self.opts.ignore_glob.iter().any(|g| fnmatch(&full, g)) {
            return true;
        }
        if is_dir {
            if !self.opts.collect_in_virtualenv && is_venv(path) {
                return true;
            }
            if self.opts.norecursedirs.iter().any(|p| fnmatch_ex(p, path)) {
                return true;
            }
        }
        false
    }

    fn add_conftest_in(&mut self, dir: &Path) {
        let c = dir.join("conftest.py");
        if c.is_file() {
            if let Some(rel) = rel_of(self.root, &c) {
                self.conftests.insert(rel);
            }
        }
    }

    fn consider_file(&mut self, path: &Path) {
        if let Some(rel) = rel_of(self.root, path) {
            self.consider_file_rel(path, rel);
        }
    }

    /// Walks `dir` as pytest does: depth first, entries sorted by name,
    /// symlinks followed. The directory's own entry types say what each
    /// entry is: only symlinks are stat-ed (to follow them), and every
    /// directory once (its device and inode end a symlink loop).
    fn walk_dir(&mut self, dir: &Path) {
        // Outside the root nothing can be named root-relative: nothing to find
        // (not even its conftest.py).
        let Some(rel) = rel_of(self.root, dir) else {
            return;
        };
        let mut ancestors = Vec::new();
        let id = std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()));
        self.enter(dir, &rel, id, &mut ancestors);
    }

    /// Visits directory `dir` (root-relative `rel`, device and inode `id`
    /// when known) below `ancestors`: its conftest.py, then its entries.
    fn enter(
        &mut self,
        dir: &Path,
        rel: &str,
        id: Option<(u64, u64)>,
        ancestors: &mut Vec<(u64, u64)>,
    ) {
        self.add_conftest_in(dir);
        ancestors.extend(id);
        self.walk_in(dir, rel, ancestors);
        if id.is_some() {
            ancestors.pop();
        }
    }

    fn walk_in(&mut self, dir: &Path, rel: &str, ancestors: &mut Vec<(u64, u64)>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<(std::ffi::OsString, std::fs::FileType)> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| Some((e.file_name(), e.file_type().ok()?)))
            .collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (name, ft) in entries {
            let path = dir.join(&name);
            let name = name.to_string_lossy();
            let child = match rel {
                "" => name.into_owned(),
                _ => format!("{rel}/{name}"),
            };
            // A symlink is what it points to; a broken one is skipped.
            let (is_dir, is_file, target) = if ft.is_symlink() {
                match std::fs::metadata(&path) {
                    Ok(m) => (m.is_dir(), m.is_file(), Some((m.dev(), m.ino()))),
                    Err(_) => continue,
                }
            } else {
                (ft.is_dir(), ft.is_file(), None)
            };
            if is_dir {
                if !self.initial_with_parents.contains(&path) && self.ignored(&path, true) {
                    continue;
                }
                let id = match target {
                    Some(id) => id,
                    None => match std::fs::metadata(&path) {
                        Ok(m) => (m.dev(), m.ino()),
                        Err(_) => continue,
                    },
                };
                // A symlink back to a directory being walked: a loop, skipped.
                if target.is_some() && ancestors.contains(&id) {
                    continue;
                }
                self.list_rel(&child, true);
                self.enter(&path, &child, Some(id), ancestors);
            } else if is_file {
                if !self.initial.contains(&path) && self.ignored(&path, false) {
                    continue;
                }
                self.list_rel(&child, false);
                self.consider_file_rel(&path, child);
            }
        }
    }

    /// Adds a visited root-relative path to the listing (see `list`).
    fn list_rel(&mut self, rel: &str, is_dir: bool) {
        if rel == ".rpytest" || rel.starts_with(".rpytest/") {
            return;
        }
        self.listing.update(rel.as_bytes());
        self.listing
            .update(if is_dir { &b"/\n"[..] } else { &b"\n"[..] });
    }

    /// `consider_file` for a file whose root-relative path is known.
    fn consider_file_rel(&mut self, path: &Path, rel: String) {
        let is_py = path.extension().is_some_and(|e| e == "py");
        if !is_py {
            return;
        }
        let explicit = self.initial.contains(path);
        if !explicit && !self.opts.python_files.iter().any(|p| fnmatch_ex(p, path)) {
            return;
        }
        self.tests.insert(rel);
    }
}

/// Test files pytest would collect for `args` (absolute paths of files or
/// directories; empty means `testpaths`, else the root), root-relative, sorted.
pub fn discover(root: &Path, args: &[PathBuf], opts: &DiscoverOptions) -> Vec<String> {
    discover_all(root, args, opts).test_files
}

/// Test files and conftest files pytest would load for `args`.
///
/// Paths outside `root` are not reported (they cannot be named root-relative).
pub fn discover_all(root: &Path, args: &[PathBuf], opts: &DiscoverOptions) -> Discovered {
    let root = normalize(root);
    let args: Vec<PathBuf> = if args.is_empty() {
        initial_paths(&root, &opts.testpaths)
    } else {
        args.iter().map(|a| normalize(&root.join(a))).collect()
    };
    let initial: BTreeSet<PathBuf> = args.iter().cloned().collect();
    let mut initial_with_parents = BTreeSet::new();
    for a in &args {
        initial_with_parents.extend(a.ancestors().map(Path::to_path_buf));
    }
    let mut w = Walk {
        root: &root,
        opts,
        initial,
        initial_with_parents,
        tests: BTreeSet::new(),
        conftests: BTreeSet::new(),
        listing: blake3::Hasher::new(),
    };
    for arg in &args {
        // conftest.py files between the root and the argument are loaded too.
        if arg.starts_with(&root) {
            for anc in arg.ancestors().skip(1) {
                w.add_conftest_in(anc);
                if anc == root {
                    break;
                }
            }
        }
        if arg.is_dir() {
            w.list(arg, true);
            w.walk_dir(arg);
        } else if arg.is_file() {
            w.list(arg, false);
            w.consider_file(arg);
        }
    }
    Discovered {
        test_files: w.tests.into_iter().collect(),
        conftests: w.conftests.into_iter().collect(),
        listing: w.listing.finalize().to_hex()[..16].to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            let p = dir.path().join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, "").unwrap();
        }
        dir
    }

    #[test]
    /// Patterns of literals and stars match as the general matcher
    /// matches them.
    fn stars_match_as_the_general_matcher() {
        let patterns = [
            "",
            "*",
            "**",
            "test_*.py",
            "*_test.py",
            "*.py",
            "test*",
            "a*b*c",
            "*b*c",
            "a**c",
            "*a*",
            "ab*ba",
            "x",
            "é*ü",
            "*/x",
            "t*t*t",
        ];
        let names = [
            "",
            "a",
            "abc",
            "aXbXc",
            "abba",
            "aba",
            "ab",
            "test_a.py",
            "test_.py",
            "a_test.py",
            "_test.py",
            "test.py",
            "tt",
            "ttt",
            "tttt",
            "éü",
            "éxü",
            "x",
            "y/x",
            "/x",
            "acbc",
        ];
        for p in patterns {
            for n in names {
                assert_eq!(fnmatch(n, p), fnmatch_any(n, p), "{n:?} against {p:?}");
            }
        }
    }

    #[test]
    fn fnmatch_like_python() {
        assert!(fnmatch("test_a.py", "test_*.py"));
        assert!(!fnmatch("atest_a.py", "test_*.py"));
        assert!(fnmatch("a_test.py", "*_test.py"));
        assert!(fnmatch("x/y/z", "x*z"));
        assert!(fnmatch("{arch}", "{arch}"));
        assert!(fnmatch(".git", ".*"));
        assert!(fnmatch("b", "[abc]"));
        assert!(!fnmatch("b", "[!abc]"));
        assert!(fnmatch("]", "[]]"));
        assert!(fnmatch("[x", "[x"));
        assert!(fnmatch("m5", "m[0-9]"));
        assert!(fnmatch("abc", "a?c"));
        assert!(!fnmatch("ac", "a?c"));
        assert!(fnmatch("aXbXc", "*b*c"));
        assert!(!fnmatch("Test_a.py", "test_*.py"));
        assert!(fnmatch("", "*"));
        assert!(fnmatch_ex(
            "tests/**/doc/test*.py",
            Path::new("/r/tests/foo/bar/doc/test_foo.py")
        ));
        assert!(!fnmatch_ex(
            "tests/*/test*.py",
            Path::new("/r/other/x/test_foo.py")
        ));
    }

    #[test]
    fn default_rules() {
        let d = tree(&[
            "conftest.py",
            "test_top.py",
            "helper.py",
            "pkg/mod_test.py",
            "pkg/conftest.py",
            "pkg/__pycache__/test_cached.py",
            "build/test_b.py",
            "dist/test_d.py",
            ".hidden/test_h.py",
            "x.egg/test_e.py",
            "node_modules/test_n.py",
            "venv/test_v.py",
            "myenv/pyvenv.cfg",
            "myenv/lib/test_site.py",
            "conda/conda-meta/history",
            "conda/test_c.py",
            "deep/a/b/test_deep.py",
            "deep/a/conftest.py",
            "deep/a/b/test_notpy.txt",
            "build_x/test_ok.py",
        ]);
        let got = discover_all(d.path(), &[], &DiscoverOptions::default());
        assert_eq!(
            got.test_files,
            [
                "build_x/test_ok.py",
                "deep/a/b/test_deep.py",
                "pkg/mod_test.py",
                "test_top.py"
            ]
        );
        assert_eq!(
            got.conftests,
            ["conftest.py", "deep/a/conftest.py", "pkg/conftest.py"]
        );
        let opts = DiscoverOptions {
            collect_in_virtualenv: true,
            ..Default::default()
        };
        let got = discover(d.path(), &[], &opts);
        assert!(got.contains(&"myenv/lib/test_site.py".to_string()));
        assert!(got.contains(&"conda/test_c.py".to_string()));
    }

    #[test]
    fn explicit_args_bypass_patterns_and_ignores() {
        let d = tree(&[
            "tests/check_x.py",
            "tests/test_y.py",
            "tests/conftest.py",
            "conftest.py",
            "build/test_b.py",
            "build/sub/test_c.py",
            "other/test_o.py",
            "notes.txt",
        ]);
        let root = d.path();
        let args = vec![
            root.join("tests/check_x.py"),
            root.join("build"),
            root.join("notes.txt"),
        ];
        let got = discover_all(root, &args, &DiscoverOptions::default());
        assert_eq!(
            got.test_files,
            ["build/sub/test_c.py", "build/test_b.py", "tests/check_x.py"]
        );
        assert_eq!(got.conftests, ["conftest.py", "tests/conftest.py"]);
    }

    #[test]
    fn custom_patterns_testpaths_and_ignore() {
        let d = tree(&[
            "tests/unit/check_a.py",
            "tests/unit/test_skip.py",
            "tests/integration/check_b.py",
            "tests/integration/slow/check_c.py",
            "src/check_src.py",
        ]);
        let root = d.path();
        let opts = DiscoverOptions {
            python_files: vec!["check_*.py".into()],
            norecursedirs: vec!["slow".into()],
            testpaths: vec!["tests/*".into(), "nomatch".into()],
            ignore: vec![root.join("tests/unit/check_a.py")],
            ..Default::default()
        };
        assert_eq!(discover(root, &[], &opts), ["tests/integration/check_b.py"]);
        let opts = DiscoverOptions {
            python_files: vec!["unit/check_*.py".into()],
            ..Default::default()
        };
        assert_eq!(
            discover(root, &[root.to_path_buf()], &opts),
            ["tests/unit/check_a.py"]
        );
        let opts = DiscoverOptions {
            ignore_glob: vec!["*/integration/*".into()],
            python_files: vec!["check_*.py".into()],
            ..Default::default()
        };
        assert_eq!(
            discover(root, &[], &opts),
            ["src/check_src.py", "tests/unit/check_a.py"]
        );
    }

    #[test]
    fn listing_changes_with_any_visited_name_but_not_with_ignored_ones() {
        let d = tree(&["test_a.py", "cases/golden_a.txt", "build/x.txt"]);
        let root = d.path();
        let listing = || discover_all(root, &[], &DiscoverOptions::default()).listing;
        let before = listing();
        assert_eq!(listing(), before, "stable");
        // What pytest never offers to a collector: ignored directories,
        // bytecode caches, rpytest's own files.
        fs::write(root.join("build/y.txt"), "").unwrap();
        fs::create_dir_all(root.join("__pycache__")).unwrap();
        fs::write(root.join("__pycache__/m.pyc"), "").unwrap();
        fs::create_dir_all(root.join(".rpytest")).unwrap();
        fs::write(root.join(".rpytest/cache.db-wal"), "").unwrap();
        assert_eq!(listing(), before);
        // Any other new name is one a plugin's collector may take.
        fs::write(root.join("cases/golden_b.txt"), "").unwrap();
        let added = listing();
        assert_ne!(added, before);
        // Content is not part of it (the file's own key covers content).
        fs::write(root.join("cases/golden_b.txt"), "1 = 1").unwrap();
        assert_eq!(listing(), added);
    }

    #[test]
    fn symlinked_dirs_are_followed_and_loops_terminate() {
        let d = tree(&["real/test_r.py"]);
        let root = d.path();
        std::os::unix::fs::symlink(root.join("real"), root.join("link")).unwrap();
        std::os::unix::fs::symlink(root, root.join("real/loop")).unwrap();
        let got = discover(root, &[], &DiscoverOptions::default());
        assert_eq!(got, ["link/test_r.py", "real/test_r.py"]);
    }
}

#[cfg(test)]
mod walk_order {
    use super::*;
    use std::fs;

    /// The listing as a `walkdir` walk that follows symlinks gives it (the
    /// walk this module used before it read entry types itself).
    fn walkdir_listing(root: &Path) -> String {
        let mut h = blake3::Hasher::new();
        h.update(b"/\n");
        let it = walkdir::WalkDir::new(root)
            .follow_links(true)
            .min_depth(1)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| {
                let n = e.file_name().to_string_lossy();
                !(e.file_type().is_dir() && (n == "__pycache__" || n.starts_with('.')))
            });
        for e in it.flatten() {
            let rel = rel_of(root, e.path()).unwrap();
            if e.file_type().is_dir() {
                h.update(rel.as_bytes());
                h.update(b"/\n");
            } else if e.file_type().is_file() {
                h.update(rel.as_bytes());
                h.update(b"\n");
            }
        }
        h.finalize().to_hex()[..16].to_owned()
    }

    /// Entry types read from the directory walk the same names in the same
    /// order as stat-ing every entry: symlinked files and directories
    /// followed, a broken symlink and a loop skipped, names sorted by bytes.
    #[test]
    fn the_walk_visits_what_a_following_walk_visits_in_its_order() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().canonicalize().unwrap();
        for f in [
            "a.py",
            "a-b/test_x.py",
            "a/test_y.py",
            "a/b/c/test_z.py",
            "a/b/data.txt",
            "B/test_upper.py",
            "pkg/conftest.py",
            "pkg/__init__.py",
            "pkg/test_p.py",
        ] {
            let p = root.join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, "").unwrap();
        }
        std::os::unix::fs::symlink(root.join("a/b"), root.join("linked")).unwrap();
        std::os::unix::fs::symlink(root.join("a.py"), root.join("test_link.py")).unwrap();
        std::os::unix::fs::symlink(root.join("nowhere"), root.join("test_broken.py")).unwrap();
        std::os::unix::fs::symlink(&root, root.join("a/b/loop")).unwrap();
        let found = discover_all(&root, &[], &DiscoverOptions::default());
        assert_eq!(found.listing, walkdir_listing(&root));
        assert_eq!(
            found.test_files,
            [
                "B/test_upper.py",
                "a-b/test_x.py",
                "a/b/c/test_z.py",
                "a/test_y.py",
                "linked/c/test_z.py",
                "pkg/test_p.py",
                "test_link.py"
            ]
        );
        assert_eq!(found.conftests, ["pkg/conftest.py"]);
    }
}
