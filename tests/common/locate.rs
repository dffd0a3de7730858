//! Where the tests find the `rpytest` binary, the fixture projects and the
//! Python interpreter they run pytest with.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root (where Cargo.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/fixtures/<name>` in the repository.
pub fn fixture_source(name: &str) -> PathBuf {
    repo_root().join("tests").join("fixtures").join(name)
}

/// The `rpytest` binary cargo built for this test run.
pub fn rpytest_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rpytest"))
}

/// The venv interpreter the tests run pytest with: `$RPYTEST_TEST_PYTHON`, else
/// `<repo>/.venv/bin/python`. It needs pytest, the `rpytest` Python package and
/// the fixture plugin installed. Not canonicalized: resolving the venv's
/// symlink would lose the venv. Panics with instructions when it is missing.
pub fn python() -> &'static Path {
    match find_python() {
        Ok(path) => path,
        Err(message) => panic!("{message}"),
    }
}

pub(super) fn find_python() -> Result<&'static Path, &'static str> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = PYTHON.get_or_init(|| {
        let (path, origin) = match std::env::var_os("RPYTEST_TEST_PYTHON") {
            Some(p) if !p.is_empty() => (PathBuf::from(p), "$RPYTEST_TEST_PYTHON"),
            _ => (repo_root().join(".venv/bin/python"), "the default <repo>/.venv/bin/python"),
        };
        let path = if path.is_absolute() { path } else { repo_root().join(path) };
        if path.exists() {
            Ok(path)
        } else {
            Err(format!(
                "no Python interpreter for the integration tests: {} ({origin}) does not exist.\n\
                 Create the venv with pytest, rpytest and the fixture plugin, e.g.:\n  \
                 python3 -m venv .venv && .venv/bin/pip install . tests/fixtures/plugins/rpytest_fixture_plugin\n\
                 or point RPYTEST_TEST_PYTHON at such an interpreter.",
                path.display()
            ))
        }
    });
    found.as_deref().map_err(String::as_str)
}

/// Panics with a clear message unless the fixture plugin distribution is
/// installed in the test interpreter.
pub fn require_fixture_plugin() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let result = CHECKED.get_or_init(|| {
        let out = Command::new(python())
            .args([
                "-c",
                "import importlib.metadata as m; print(m.version('rpytest-fixture-plugin'))",
            ])
            .env_remove("PYTHONPATH")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", python().display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "the fixture plugin is not installed in {py}; install it (non-editable) with\n  \
                 {py} -m pip install {src}",
                py = python().display(),
                src = fixture_source("plugins/rpytest_fixture_plugin").display()
            ))
        }
    });
    if let Err(message) = result {
        panic!("{message}");
    }
}

/// Runs `python -m pip` with `args` in the venv of `py` (no `PYTHONPATH` or
/// `VIRTUAL_ENV` of the caller's); panics with pip's output when it fails.
pub fn pip(py: &Path, args: &[&str]) {
    let out = Command::new(py)
        .args(["-m", "pip", "--disable-pip-version-check"])
        .args(args)
        .env_remove("PYTHONPATH")
        .env_remove("VIRTUAL_ENV")
        .output()
        .expect("run pip");
    assert!(
        out.status.success(),
        "pip {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
