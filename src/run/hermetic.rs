//! Hermetic tests (`hermetic = true` in a rule, `--hermetic` for a run):
//! which test files are, the sandbox their session enters
//! (`python/rpytest/sandbox.py`), the environment it gets, and their keys.
//!
//! A hermetic test sees only what is declared, so its key can be complete by
//! construction: the declared inputs, the static import closure (and conftest
//! chain), the interpreter and installed distributions, and the fixed
//! environment. Nothing recorded at runtime enters it; a recorded read of a
//! file the sandbox showed but the key does not name is a violation, and the
//! results of that file are not stored.
//!
//! The interpreter reads `PYTHONHASHSEED` (and the locale) once, at start; a
//! session forked from a daemon keeps the daemon's. Hermetic sessions
//! therefore come from a daemon of their own, started with the sandbox's
//! fixed environment (`PYTHONHASHSEED=0`, `LANG=C.UTF-8`, ...); under
//! `--no-daemon` the fresh session process is started with it.

use crate::daemon::DaemonPaths;
use crate::inputs::key::Key;
use crate::protocol::SandboxConfig;
use crate::rules::Rule;
use crate::store::Store;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Bumped when what the sandbox shows changes: hermetic keys change with it.
pub const SANDBOX_VERSION: &str = "1";

/// pytest's own configuration and output settings: they pass into the
/// sandbox as the command line does (and enter the keys as it does).
const PASS_THROUGH: &[&str] = &[
    "PYTEST_ADDOPTS",
    "PYTEST_PLUGINS",
    "PYTEST_DISABLE_PLUGIN_AUTOLOAD",
    "PYTEST_THEME",
    "PYTEST_THEME_MODE",
    "NO_COLOR",
    "FORCE_COLOR",
    "PY_COLORS",
    "COLUMNS",
    "TERM",
];

/// Whether the test file `file` runs hermetically.
pub fn is_hermetic(rules: &[Rule], all: bool, file: &str) -> bool {
    all || rules.iter().skip(1).any(|r| r.hermetic && r.governs(file))
}

/// The fixed part of the sandbox's environment; `PATH` leads to the
/// interpreter's scripts and the system's programs.
pub fn fixed_env(python: &Path) -> BTreeMap<String, String> {
    let mut path = String::new();
    if let Some(bin) = python.parent() {
        path.push_str(&bin.to_string_lossy());
        path.push(':');
    }
    path.push_str("/usr/local/bin:/usr/bin:/bin");
    [
        ("PATH", path.as_str()),
        ("HOME", "/tmp/home"),
        ("TMPDIR", "/tmp"),
        ("LANG", "C.UTF-8"),
        ("TZ", "UTC"),
        ("PYTHONHASHSEED", "0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

pub use crate::session::Environments;

/// The variables a hermetic file's rules declare.
fn declared_env(rules: &[Rule], file: &str) -> Vec<String> {
    rules
        .iter()
        .skip(1)
        .filter(|r| r.governs(file))
        .flat_map(|r| r.env.iter().cloned())
        .collect()
}

/// The environments of the session that runs `files`.
pub fn environments(python: &Path, rules: &[Rule], files: &[String]) -> Environments {
    let daemon = fixed_env(python);
    let mut session = daemon.clone();
    let mut names: BTreeSet<String> = PASS_THROUGH.iter().map(|s| s.to_string()).collect();
    for f in files {
        names.extend(declared_env(rules, f));
    }
    for n in names {
        if let Ok(v) = std::env::var(&n) {
            session.insert(n, v);
        }
    }
    Environments { daemon, session }
}

/// The socket and log of the daemon hermetic sessions fork from (beside the
/// project's other daemon; the name differs in its last letter). It preloads
/// the warm set the project's other sessions learn: a sandboxed session
/// cannot write it (its directory holds the other daemon's socket).
pub fn daemon_paths(paths: &DaemonPaths) -> DaemonPaths {
    let rename = |p: &PathBuf| {
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        let (stem, ext) = name.split_once('.').unwrap_or((&name, ""));
        let mut stem = stem.to_owned();
        stem.pop();
        stem.push('h');
        p.with_file_name(format!("{stem}.{ext}"))
    };
    DaemonPaths {
        dir: paths.dir.clone(),
        socket: rename(&paths.socket),
        log: rename(&paths.log),
        warm: paths.warm.clone(),
    }
}

/// The declared input files of `files`' rules.
pub fn declared_files(root: &Path, rules: &[Rule], files: &[String]) -> BTreeSet<String> {
    let mut globs: BTreeSet<&String> = BTreeSet::new();
    for f in files {
        for r in rules.iter().skip(1).filter(|r| r.governs(f)) {
            globs.extend(r.files.iter());
        }
    }
    globs
        .into_iter()
        .flat_map(|g| crate::inputs::key::expand_glob(root, g))
        .collect()
}

/// The sandbox of the session that runs `files`.
pub fn sandbox_config(
    root: &Path,
    rules: &[Rule],
    files: &[String],
    env: &Environments,
) -> SandboxConfig {
    let names = files
        .iter()
        .filter_map(|f| {
            let governing = rules.iter().skip(1).filter(|r| r.governs(f));
            // The hermetic rule, else the last rule that declares inputs.
            let named = governing
                .clone()
                .rfind(|r| r.hermetic)
                .or_else(|| governing.clone().next_back())?;
            Some((f.clone(), named.label()))
        })
        .collect();
    SandboxConfig {
        rootdir: root.to_string_lossy().into_owned(),
        files: declared_files(root, rules, files).into_iter().collect(),
        env: env.session.clone(),
        rules: names,
        writable: Vec::new(),
    }
}

/// A file pytest writes from inside the sandbox (`--junitxml`), created
/// empty on the host so it can be bound writable; its directory stays hidden.
pub fn output_file(path: &Path) -> Option<String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ok()?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .ok()?;
    Some(path.to_string_lossy().into_owned())
}

/// The environment hermetic files are keyed with: what the sandbox's
/// environment holds, less what names this machine (PATH, the private HOME
/// and TMPDIR are the same function of the interpreter everywhere).
pub fn key_env(rules: &[Rule], env: &HashMap<String, String>) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = fixed_env(Path::new("/"))
        .into_iter()
        .filter(|(k, _)| !matches!(k.as_str(), "PATH" | "HOME" | "TMPDIR"))
        .collect();
    let mut names: BTreeSet<String> = PASS_THROUGH.iter().map(|s| s.to_string()).collect();
    for r in rules.iter().skip(1) {
        names.extend(r.env.iter().cloned());
    }
    for n in names {
        if let Some(v) = env.get(&n) {
            out.insert(n, v.clone());
        }
    }
    out
}

/// What a hermetic file's recorded dependencies say about its key: each
/// first-party file its tests read or imported that the sandbox showed
/// (code, or a declared input) but the key does not name.
pub fn violations(root: &Path, key: &Key, recorded: &[String]) -> Vec<String> {
    let mut out: Vec<String> = recorded
        .iter()
        .filter(|r| !key.inputs.contains_key(&format!("file:{r}")))
        .filter(|r| {
            let shown = r.ends_with(".py") || r.ends_with(".pyi");
            shown && root.join(r).is_file()
        })
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether the results of the hermetic `file` may be stored under `key`:
/// no recorded read or import is outside it (else the warning that tells
/// the user which: the file runs again next time).
pub fn key_is_complete(
    root: &Path,
    file: &str,
    key: &Key,
    recorded: &[String],
) -> Result<(), String> {
    let outside = violations(root, key, recorded);
    if outside.is_empty() {
        return Ok(());
    }
    Err(format!(
        "hermetic {file} used {}, which its key does not name (imported dynamically or read as data, outside the static import closure); its results are not cached: declare {} in its rule's files",
        outside.join(", "),
        if outside.len() == 1 { "it" } else { "them" }
    ))
}

/// Keeps what a hermetic session's sandbox saw, per test file, for
/// `--why` and `--show-rules`.
pub fn remember_sandbox(store: &Store, visible: usize, denied: &BTreeMap<String, Vec<String>>) {
    let _ = store.set_meta("sandbox:visible", &visible.to_string());
    for (file, what) in denied {
        let _ = store.set_meta(
            &format!("sandbox:{file}"),
            &serde_json::to_string(what).unwrap_or_default(),
        );
    }
}

/// What the last hermetic session saw of `file`, as lines to print.
pub fn sandbox_report(store: &Store, rules: &[Rule], all: bool, file: &str) -> Vec<String> {
    if !is_hermetic(rules, all, file) {
        return Vec::new();
    }
    let mut out = vec![
        "hermetic: yes (runs in the sandbox: first-party code, declared files and env, no network)"
            .to_owned(),
    ];
    if let Some(n) = store.meta("sandbox:visible") {
        out.push(format!(
            "sandbox: showed {n} project files in its last session"
        ));
    }
    let denied: Vec<String> = store
        .meta(&format!("sandbox:{file}"))
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    for d in denied {
        out.push(format!("sandbox denied: {d}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_or_the_flag_makes_a_file_hermetic() {
        let rule = Rule {
            paths: vec!["core/**".into()],
            hermetic: true,
            cache: true,
            ..Rule::default()
        };
        let rules = vec![Rule::default(), rule];
        assert!(is_hermetic(&rules, false, "core/test_a.py"));
        assert!(!is_hermetic(&rules, false, "web/test_b.py"));
        assert!(is_hermetic(&rules, true, "web/test_b.py"));
    }

    #[test]
    fn the_fixed_environment_has_a_fixed_hash_seed() {
        let env = fixed_env(Path::new("/venv/bin/python"));
        assert_eq!(env["PYTHONHASHSEED"], "0");
        assert_eq!(env["TZ"], "UTC");
        assert!(env["PATH"].starts_with("/venv/bin:"));
        assert!(!env.contains_key("USER"));
    }

    #[test]
    fn the_hermetic_daemon_has_its_own_socket() {
        let p = DaemonPaths {
            dir: PathBuf::from("/run/rpytest"),
            socket: PathBuf::from("/run/rpytest/0123456789abcdef.sock"),
            log: PathBuf::from("/run/rpytest/0123456789abcdef.log"),
            warm: PathBuf::from("/run/rpytest/0123456789abcdef.warm.json"),
        };
        let h = daemon_paths(&p);
        assert_eq!(
            h.socket,
            PathBuf::from("/run/rpytest/0123456789abcdeh.sock")
        );
        assert_eq!(h.warm, p.warm);
    }
}
