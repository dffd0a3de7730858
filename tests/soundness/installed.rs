//! Soundness: the installed environment and the warm daemon (editable plugins, .pth modules, site-packages edits, preloaded modules).
//!
//! Every test here runs in one throwaway venv per test binary (pytest, an
//! editable entry-point plugin, a few tiny installed modules, a `.pth` hook and
//! a `sitecustomize.py`), because each edits installed code. Each test owns
//! the files it edits and writes their original text first, so a venv left by
//! an earlier `cargo test` is as good as a new one.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::common::{pip, python, repo_root, Outcome, Pair, Run};

/// Every session imports the plugin, the .pth hook and sitecustomize, so they
/// are inputs of every test here: a test that edits one runs alone, or the
/// others' warm-ups would see their keys move.
static SHARED_FILES: RwLock<()> = RwLock::new(());

fn reads_shared_files() -> RwLockReadGuard<'static, ()> {
    SHARED_FILES.read().unwrap_or_else(|e| e.into_inner())
}

fn edits_shared_files() -> RwLockWriteGuard<'static, ()> {
    SHARED_FILES.write().unwrap_or_else(|e| e.into_inner())
}

/// The shared venv: its interpreter, its site-packages and the source of the editable plugin.
struct Venv {
    python: PathBuf,
    site: PathBuf,
    plugin: PathBuf,
}

const PLUGIN: &str = "import pytest\n\n\n@pytest.fixture\ndef edvalue():\n    return 1\n";
const INSTALLED_MODULES: &[(&str, &str)] = &[
    ("rpt_inplace.py", "VALUE = 1\n"),
    (
        "rpt_envmod.py",
        "import os\n\nMODE = os.environ.get(\"RPT_ENVMOD_MODE\", \"good\")\n",
    ),
    ("rpt_shadowed.py", "VALUE = \"installed\"\n"),
];
const PTH_HOOK: &str = "import builtins\n\nbuiltins.RPT_PTH_VALUE = 1\n";
const SITECUSTOMIZE: &str = "import builtins\n\nbuiltins.RPT_SITECUSTOMIZE = 1\n";

fn venv() -> &'static Venv {
    static VENV: OnceLock<Venv> = OnceLock::new();
    VENV.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("installed-test-venv");
        let dir = base.join("venv");
        let py = dir.join("bin/python");
        let plugin = base.join("src/rpt_edplug");
        let marker = base.join("ready");
        if !marker.is_file() {
            let _ = fs::remove_dir_all(&base);
            let status = Command::new(python())
                .args(["-m", "venv"])
                .arg(&dir)
                .status()
                .expect("run python -m venv");
            assert!(status.success(), "python -m venv failed");
            pip(&py, &["install", "-q", "pytest==8.4.2", "wheel"]);
            write(
                &plugin.join("pyproject.toml"),
                "[build-system]\nrequires = [\"setuptools>=64\"]\nbuild-backend = \"setuptools.build_meta\"\n\n\
                 [project]\nname = \"rpt-edplug\"\nversion = \"1.0\"\n\n\
                 [project.entry-points.pytest11]\nrpt_edplug = \"rpt_edplug\"\n\n\
                 [tool.setuptools]\npackages = [\"rpt_edplug\"]\n",
            );
            write(&plugin.join("rpt_edplug/__init__.py"), PLUGIN);
            let modules = base.join("src/rpt_modules");
            let names: Vec<String> = INSTALLED_MODULES
                .iter()
                .map(|(f, _)| format!("\"{}\"", f.trim_end_matches(".py")))
                .collect();
            write(
                &modules.join("pyproject.toml"),
                &format!(
                    "[build-system]\nrequires = [\"setuptools>=64\"]\nbuild-backend = \"setuptools.build_meta\"\n\n\
                     [project]\nname = \"rpt-modules\"\nversion = \"1.0\"\n\n\
                     [tool.setuptools]\npy-modules = [{}]\n",
                    names.join(", ")
                ),
            );
            for (file, text) in INSTALLED_MODULES {
                write(&modules.join(file), text);
            }
            let (plugin_s, modules_s) = (plugin.to_string_lossy(), modules.to_string_lossy());
            pip(
                &py,
                &[
                    "install", "-q", "--no-build-isolation", "--no-deps", "-e", &plugin_s,
                    &modules_s,
                ],
            );
            let site = site_packages(&py);
            // A module only a .pth file imports: no distribution's RECORD lists it.
            write(&site.join("rpt_pth_hook.pth"), "import rpt_pth_hook\n");
            write(&site.join("rpt_pth_hook.py"), PTH_HOOK);
            write(&site.join("sitecustomize.py"), SITECUSTOMIZE);
            write(
                &site.join("rpytest_src.pth"),
                &format!("{}\n", repo_root().join("python").display()),
            );
            write(&marker, "");
        }
        let site = site_packages(&py);
        Venv {
            python: py,
            site,
            plugin: plugin.join("rpt_edplug/__init__.py"),
        }
    })
}

fn site_packages(py: &Path) -> PathBuf {
    let out = Command::new(py)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ])
        .env_remove("PYTHONPATH")
        .output()
        .expect("ask the venv for its site-packages");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create parent dirs");
    }
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A pair of projects on the shared venv, writing bytecode, with `test_file`.
fn pair(test_file: &str, text: &str) -> Pair {
    let venv = venv();
    let mut pair = Pair::new("soundness");
    pair.pytest.set_python(&venv.python);
    pair.rpytest.set_python(&venv.python);
    pair.write_bytecode();
    pair.write(test_file, text);
    pair
}

fn outcome(run: &Run, key: &str) -> Option<Outcome> {
    run.outcomes.get(key).and_then(|v| v.first().copied())
}

/// Warm-up: both tools pass, then rpytest serves the file from its cache.
fn warm(pair: &Pair) {
    let (py, _) = pair.check(&[]);
    py.assert_code(0);
    let (_, rp) = pair.check(&[]);
    assert!(
        rp.stderr.contains("1 cached"),
        "the warm-up should end with a cached run\n{}",
        rp.transcript()
    );
}

/// Restarts rpytest's daemon so that it preloads the warm set the first runs wrote.
fn restart_daemon(pair: &Pair) {
    pair.rpytest
        .rpytest_cmd(&["--daemon", "restart"])
        .assert_code(0);
}

/// Stock pytest fails after the change; rpytest (cache and daemon) must fail too.
fn assert_now_fails(pair: &Pair, key: &str) {
    let (py, _) = pair.check(&[]);
    assert_eq!(
        outcome(&py, key),
        Some(Outcome::Failed),
        "the change must make stock pytest fail\n{}",
        py.transcript()
    );
}

#[test]
fn editable_entry_point_plugin_edit_reruns() {
    let _lock = edits_shared_files();
    let venv = venv();
    write(&venv.plugin, PLUGIN);
    let pair = pair(
        "test_edplug.py",
        "def test_fixture(edvalue):\n    assert edvalue == 1\n",
    );
    warm(&pair);
    restart_daemon(&pair);
    pair.check(&[]);
    write(&venv.plugin, &PLUGIN.replace("return 1", "return 22"));
    let (py, rp) = (
        pair.pytest.pytest(&[]).run(),
        pair.rpytest.rpytest(&["--no-cache"]).run(),
    );
    super::common::assert_same(&py, &rp);
    assert_now_fails(&pair, "test_edplug::test_fixture");
    write(&venv.plugin, PLUGIN);
    pair.check(&[]);
}

#[test]
fn module_imported_by_pth_file_edit_reruns() {
    let _lock = edits_shared_files();
    let venv = venv();
    let hook = venv.site.join("rpt_pth_hook.py");
    write(&hook, PTH_HOOK);
    let pair = pair(
        "test_pth.py",
        "import builtins\n\n\ndef test_pth_value():\n    assert builtins.RPT_PTH_VALUE == 1\n",
    );
    warm(&pair);
    write(&hook, &PTH_HOOK.replace("= 1", "= 22"));
    assert_now_fails(&pair, "test_pth::test_pth_value");
    write(&hook, PTH_HOOK);
    pair.check(&[]);
}

#[test]
fn site_packages_file_edited_in_place_reruns_and_restarts_the_daemon() {
    let _lock = reads_shared_files();
    let venv = venv();
    let module = venv.site.join("rpt_inplace.py");
    write(&module, "VALUE = 1\n");
    let pair = pair(
        "test_inplace.py",
        "import rpt_inplace\n\n\ndef test_value():\n    assert rpt_inplace.VALUE == 1\n",
    );
    warm(&pair);
    // The daemon now preloads rpt_inplace (the first sessions put it in the warm set).
    restart_daemon(&pair);
    pair.check(&[]);
    write(&module, "VALUE = 22\n");
    // Even without the cache, a session must not run the daemon's old module.
    let (py, rp) = (
        pair.pytest.pytest(&[]).run(),
        pair.rpytest.rpytest(&["--no-cache"]).run(),
    );
    super::common::assert_same(&py, &rp);
    py.assert_code(1);
    assert_now_fails(&pair, "test_inplace::test_value");
    write(&module, "VALUE = 1\n");
    pair.check(&[]);
}

#[test]
fn sitecustomize_edit_reruns_and_restarts_the_daemon() {
    let _lock = edits_shared_files();
    let venv = venv();
    let custom = venv.site.join("sitecustomize.py");
    write(&custom, SITECUSTOMIZE);
    let pair = pair(
        "test_custom.py",
        "import builtins\n\n\ndef test_custom():\n    assert builtins.RPT_SITECUSTOMIZE == 1\n",
    );
    warm(&pair);
    write(&custom, &SITECUSTOMIZE.replace("= 1", "= 22"));
    let (py, rp) = (
        pair.pytest.pytest(&[]).run(),
        pair.rpytest.rpytest(&["--no-cache"]).run(),
    );
    super::common::assert_same(&py, &rp);
    assert_now_fails(&pair, "test_custom::test_custom");
    write(&custom, SITECUSTOMIZE);
    pair.check(&[]);
}

#[test]
fn module_reading_the_environment_at_import_is_not_preloaded() {
    let _lock = reads_shared_files();
    let venv = venv();
    write(&venv.site.join("rpt_envmod.py"), INSTALLED_MODULES[1].1);
    let mut pair = pair(
        "test_envmod.py",
        "import rpt_envmod\n\n\ndef test_mode():\n    assert rpt_envmod.MODE == \"good\"\n",
    );
    warm(&pair);
    // A daemon with rpt_envmod in its warm set from the start, and a cache
    // filled only by sessions forked from it.
    restart_daemon(&pair);
    pair.rpytest
        .rpytest_cmd(&["--result-cache", "clear"])
        .assert_code(0);
    warm(&pair);
    pair.set_env("RPT_ENVMOD_MODE", "bad");
    assert_now_fails(&pair, "test_envmod::test_mode");
    pair.unset_env("RPT_ENVMOD_MODE");
    pair.check(&[]);
}

#[test]
fn module_reading_a_project_file_at_import_is_not_preloaded() {
    let _lock = reads_shared_files();
    let venv = venv();
    // Not installed by pip: a module file in site-packages like any other.
    write(
        &venv.site.join("rpt_confmod.py"),
        "with open(\"rpt_conf.txt\") as f:\n    MODE = f.read().strip()\n",
    );
    let pair = pair(
        "test_confmod.py",
        "import rpt_confmod\n\n\ndef test_mode():\n    assert rpt_confmod.MODE == \"good\"\n",
    );
    pair.write("rpt_conf.txt", "good\n");
    warm(&pair);
    // The daemon (its cwd is the rootdir) now imports it at start.
    restart_daemon(&pair);
    pair.rpytest
        .rpytest_cmd(&["--result-cache", "clear"])
        .assert_code(0);
    warm(&pair);
    pair.write("rpt_conf.txt", "bad\n");
    assert_now_fails(&pair, "test_confmod::test_mode");
}

#[test]
fn first_party_module_shadowing_a_preloaded_one_is_imported_as_pytest_would() {
    let _lock = reads_shared_files();
    let venv = venv();
    write(&venv.site.join("rpt_shadowed.py"), INSTALLED_MODULES[2].1);
    let pair = pair(
        "test_shadow.py",
        "import rpt_shadowed\n\n\ndef test_installed():\n    assert rpt_shadowed.VALUE == \"installed\"\n",
    );
    warm(&pair);
    restart_daemon(&pair);
    pair.check(&[]);
    // A first-party module of the same name comes first on sys.path (the
    // rootdir, inserted by pytest's prepend import mode).
    pair.write("rpt_shadowed.py", "VALUE = \"first-party\"\n");
    assert_now_fails(&pair, "test_shadow::test_installed");
    // A stdlib name pytest itself imports before collecting (`code`, through
    // pdb): under the `pytest` command the stdlib module wins, so it must
    // under rpytest too. (`python -m pytest`, the harness's stock run, puts
    // the cwd on sys.path before pdb is imported and differs here.)
    pair.remove("rpt_shadowed.py");
    pair.write(
        "test_code.py",
        "import code\n\n\ndef test_code():\n    assert getattr(code, \"VALUE\", None) == 1\n",
    );
    pair.write("code.py", "VALUE = 1\n");
    let script = Command::new(venv.python.with_file_name("pytest"))
        .args(["-q", "-p", "no:cacheprovider", "test_code.py"])
        .current_dir(&pair.pytest.root)
        .env_remove("PYTHONPATH")
        .output()
        .expect("run the venv's pytest script");
    assert_eq!(
        script.status.code(),
        Some(1),
        "under the pytest command, pdb's stdlib `code` must win\n{}",
        String::from_utf8_lossy(&script.stdout)
    );
    for _ in 0..2 {
        let rp = pair.rpytest.rpytest(&[]).run();
        assert_eq!(
            outcome(&rp, "test_code::test_code"),
            Some(Outcome::Failed),
            "rpytest must import what the pytest command imports\n{}",
            rp.transcript()
        );
        assert_eq!(
            outcome(&rp, "test_shadow::test_installed"),
            Some(Outcome::Passed)
        );
    }
}

#[test]
fn python_environment_variables_restart_the_daemon() {
    let _lock = reads_shared_files();
    let mut pair = pair(
        "test_digits.py",
        "def test_digits():\n    assert len(str(10 ** 5000)) == 5001\n",
    );
    pair.set_env("PYTHONINTMAXSTRDIGITS", "0");
    let (py, _) = pair.check(&[]);
    py.assert_code(0);
    pair.unset_env("PYTHONINTMAXSTRDIGITS");
    // The daemon started with the limit off; a fresh interpreter has it on.
    let (py, rp) = (
        pair.pytest.pytest(&[]).run(),
        pair.rpytest.rpytest(&["--no-cache"]).run(),
    );
    super::common::assert_same(&py, &rp);
    py.assert_code(1);
}
