//! Soundness: what the recorder sees (imports, reads, environment, options,
//! stdin, the working directory) and that it leaves no trace in what tests see.
//!
//! Each test warms the cache (and checks that the node really is served from
//! it, so the test could catch a false pass), makes one change, and asserts
//! that rpytest's per-node outcomes and exit code equal stock pytest's.

use std::fs;
use std::time::{Duration, Instant};

use super::common::{assert_same, Pair, Run};

/// A directory outside the project and outside the temporary directory (where a
/// config file in `$HOME` or `/etc` would be): under `$HOME`, removed on drop.
fn outside_dir(prefix: &str) -> tempfile::TempDir {
    let home = std::env::var_os("HOME").expect("HOME must be set for this test");
    let home = std::path::PathBuf::from(home);
    assert!(
        !home.starts_with("/tmp") && !home.starts_with("/var/tmp"),
        "HOME ({}) is a temporary directory: the recorder ignores reads there",
        home.display()
    );
    tempfile::Builder::new()
        .prefix(&format!(".rpytest-soundness-{prefix}"))
        .tempdir_in(&home)
        .expect("create a directory under $HOME")
}

/// An empty rootdir (`pytest.ini`) for both tools, writing bytecode as on users' machines.
fn pair() -> Pair {
    let mut pair = Pair::new("soundness");
    pair.write_bytecode();
    // CI runs these tests with CI=true; each test decides what CI is.
    pair.set_env("CI", "");
    pair
}

/// Runs both tools twice with `args` and asserts `node` was served from the
/// cache the second time: the change that follows could hide a failure.
fn warm(pair: &Pair, args: &[&str], node: &str) {
    pair.check(args);
    let (_, rp) = pair.check(args);
    let statuses = rp.verbose_statuses();
    assert_eq!(
        statuses.get(node).map(String::as_str),
        Some("CACHED"),
        "{node} must be served from the cache before the change\n{}",
        rp.transcript()
    );
}

/// Runs both tools twice with `args` and asserts that the second rpytest run
/// ran nothing (skips are replayed as SKIPPED, not CACHED).
fn warm_all(pair: &Pair, args: &[&str]) {
    pair.check(args);
    let (_, rp) = pair.check(args);
    assert!(
        rp.stderr
            .lines()
            .any(|l| l.starts_with("rpytest: ") && l.contains(" cached, 0 run")),
        "everything must be served from the cache before the change\n{}",
        rp.transcript()
    );
}

/// Asserts `node` failed under both tools (the change broke it).
fn assert_fails(run: &Run, node: &str) {
    let statuses = run.verbose_statuses();
    let status = statuses.get(node).map(String::as_str);
    assert!(
        matches!(status, Some("FAILED") | Some("ERROR")),
        "{node} must fail after the change, got {status:?}\n{}",
        run.transcript()
    );
}

#[test]
fn a_module_loaded_by_path_from_bytecode_is_an_input() {
    let pair = pair();
    pair.write("plugins/impl.py", "VALUE = 1\n");
    pair.write("tests/helper_mod.py", "VALUE = 1\n");
    pair.write(
        "tests/test_load.py",
        r#"import importlib.util, pathlib, runpy

def load():
    path = pathlib.Path(__file__).parent.parent / "plugins" / "impl.py"
    spec = importlib.util.spec_from_file_location("impl_by_path", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

def test_by_path():
    assert load().VALUE == 1
"#,
    );
    pair.write(
        "tests/test_runpy.py",
        r#"import runpy

def test_run_module():
    assert runpy.run_module("helper_mod")["VALUE"] == 1
"#,
    );
    // An earlier plain pytest run in the same tree leaves valid .pyc files:
    // rpytest's first (recording) run then never opens the sources.
    pair.rpytest.pytest(&["-q"]).run();
    warm(&pair, &["-v"], "tests/test_load.py::test_by_path");
    assert!(pair.rpytest.path("plugins/__pycache__").is_dir());
    pair.write("plugins/impl.py", "VALUE = 22\n");
    pair.write("tests/helper_mod.py", "VALUE = 22\n");
    let (py, _) = pair.check(&["-v"]);
    assert_fails(&py, "tests/test_load.py::test_by_path");
    assert_fails(&py, "tests/test_runpy.py::test_run_module");
}

#[test]
fn ci_read_by_a_conftest_hook_is_an_input_serial_parallel_and_sharded() {
    let mut pair = pair();
    pair.write(
        "pytest.ini",
        "[pytest]\nmarkers =\n    ci_only: runs on CI only\n",
    );
    pair.write(
        "conftest.py",
        r#"import os
import pytest

def pytest_collection_modifyitems(config, items):
    if not os.environ.get("CI"):
        for item in items:
            if "ci_only" in item.keywords:
                item.add_marker(pytest.mark.skip(reason="CI only"))
"#,
    );
    pair.write(
        "tests/test_ci.py",
        "import pytest\n\n@pytest.mark.ci_only\ndef test_on_ci():\n    assert False, 'broken on CI'\n\ndef test_plain():\n    pass\n",
    );
    pair.write("tests/test_other.py", "def test_other():\n    pass\n");
    // rpytest's -n and --shard against stock serial pytest (the comparison is per node).
    for args in [
        &["-v"][..],
        &["-v", "-n", "2"][..],
        &["-v", "--shard", "1/1"][..],
    ] {
        pair.set_env("CI", "");
        for _ in 0..2 {
            assert_same(
                &pair.pytest.pytest(&["-v"]).run(),
                &pair.rpytest.rpytest(args).run(),
            );
        }
        let rp = pair.rpytest.rpytest(args).run();
        assert!(
            rp.stderr.contains(" cached, 0 run"),
            "everything must be served from the cache before the change\n{}",
            rp.transcript()
        );
        pair.set_env("CI", "1");
        let py = pair.pytest.pytest(&["-v"]).run();
        assert_same(&py, &pair.rpytest.rpytest(args).run());
        assert_fails(&py, "tests/test_ci.py::test_on_ci");
    }
}

#[test]
fn ci_at_import_of_a_settings_module_and_term_in_a_session_fixture_are_inputs() {
    let mut pair = pair();
    pair.write(
        "settings.py",
        "import os\nON_CI = bool(os.environ.get('CI'))\n",
    );
    pair.write(
        "conftest.py",
        r#"import os
import pytest

@pytest.fixture(scope="session")
def terminal():
    return os.environ.get("TERM", "")
"#,
    );
    pair.write(
        "test_settings.py",
        "import settings\n\ndef test_local_only():\n    assert not settings.ON_CI\n",
    );
    pair.write(
        "test_term.py",
        "def test_not_dumb(terminal):\n    assert terminal != 'dumb'\n",
    );
    pair.set_env("TERM", "xterm");
    warm(&pair, &["-v"], "test_settings.py::test_local_only");
    pair.set_env("CI", "1");
    let (py, _) = pair.check(&["-v"]);
    assert_fails(&py, "test_settings.py::test_local_only");
    pair.set_env("CI", "");
    warm(&pair, &["-v"], "test_term.py::test_not_dumb");
    pair.set_env("TERM", "dumb");
    let (py, _) = pair.check(&["-v"]);
    assert_fails(&py, "test_term.py::test_not_dumb");
}

#[test]
fn relative_reads_are_resolved_against_the_working_directory_of_the_moment() {
    let pair = pair();
    pair.write("data/a/input.txt", "a");
    pair.write("data/b/input.txt", "b");
    pair.write("data/value.txt", "1");
    pair.write(
        "tests/test_x.py",
        r#"import pathlib

def test_reads_a(monkeypatch):
    monkeypatch.chdir(pathlib.Path(__file__).parent.parent / "data" / "a")
    assert open("input.txt").read() == "a"
"#,
    );
    pair.write(
        "tests/test_y.py",
        r#"import pathlib

def test_reads_b(monkeypatch):
    monkeypatch.chdir(pathlib.Path(__file__).parent.parent / "data" / "b")
    assert open("input.txt").read() == "b"

def test_reads_root_file_after_a_chdir():
    assert open("data/value.txt").read() == "1"
"#,
    );
    warm(&pair, &["-v"], "tests/test_y.py::test_reads_b");
    pair.write("data/b/input.txt", "changed");
    let (py, _) = pair.check(&["-v"]);
    assert_fails(&py, "tests/test_y.py::test_reads_b");
    pair.write("data/b/input.txt", "b");
    warm(
        &pair,
        &["-v"],
        "tests/test_y.py::test_reads_root_file_after_a_chdir",
    );
    pair.write("data/value.txt", "2");
    let (py, _) = pair.check(&["-v"]);
    assert_fails(&py, "tests/test_y.py::test_reads_root_file_after_a_chdir");
}

#[test]
fn files_opened_for_reading_and_writing_are_reads() {
    let pair = pair();
    pair.write("data/state.txt", "ok");
    pair.write("data/log.txt", "ok");
    pair.write(
        "test_rw.py",
        r#"def test_r_plus():
    with open("data/state.txt", "r+") as f:
        assert f.read() == "ok"

def test_a_plus():
    with open("data/log.txt", "a+") as f:
        f.seek(0)
        assert f.read() == "ok"
"#,
    );
    pair.check(&["-v"]);
    pair.check(&["-v"]);
    pair.write("data/state.txt", "bad");
    pair.write("data/log.txt", "bad");
    let (py, _) = pair.check(&["-v"]);
    assert_fails(&py, "test_rw.py::test_r_plus");
    assert_fails(&py, "test_rw.py::test_a_plus");
}

#[test]
fn a_failed_import_makes_the_missing_module_an_input() {
    let pair = pair();
    pair.write(
        "tests/test_optional.py",
        r#"import importlib

NAME = "ext" + "ras"  # not a literal: only the run can tell what is imported

def test_import_module():
    try:
        importlib.import_module(NAME)
    except ImportError:
        return
    assert False, "extras is present"

def test_dunder_import():
    try:
        __import__(NAME + "_two")
    except ImportError:
        return
    assert False, "extras_two is present"
"#,
    );
    pair.write("tests/pkg/__init__.py", "");
    pair.write(
        "tests/test_submodule.py",
        r#"import importlib
import pkg

def test_optional_submodule():
    try:
        importlib.import_module("pkg." + "plugin")
    except ImportError:
        return
    assert False, "pkg.plugin is present"
"#,
    );
    warm(&pair, &["-v"], "tests/test_optional.py::test_import_module");
    pair.write("tests/extras.py", "");
    pair.write("tests/extras_two/__init__.py", "");
    pair.write("tests/pkg/plugin.py", "");
    let (py, _) = pair.check(&["-v"]);
    assert_fails(&py, "tests/test_optional.py::test_import_module");
    assert_fails(&py, "tests/test_optional.py::test_dunder_import");
    assert_fails(&py, "tests/test_submodule.py::test_optional_submodule");
}

#[test]
fn reading_pytests_verbosity_makes_the_output_options_inputs() {
    let pair = pair();
    pair.write(
        "test_verbosity.py",
        r#"def test_get_verbosity(pytestconfig):
    assert pytestconfig.get_verbosity() < 2

def test_option_attribute(pytestconfig):
    assert pytestconfig.option.verbose < 2

def test_getoption(request):
    assert request.config.getoption("verbose") < 2

def test_invocation_args(pytestconfig):
    assert "-vv" not in pytestconfig.invocation_params.args
"#,
    );
    pair.write("test_other.py", "def test_other():\n    pass\n");
    warm(&pair, &["-v"], "test_verbosity.py::test_get_verbosity");
    let (py, rp) = pair.check(&["-vv"]);
    assert_fails(&py, "test_verbosity.py::test_get_verbosity");
    assert_fails(&py, "test_verbosity.py::test_option_attribute");
    assert_fails(&py, "test_verbosity.py::test_getoption");
    assert_fails(&py, "test_verbosity.py::test_invocation_args");
    // A file that never looked at the options stays cached.
    assert_eq!(
        rp.verbose_statuses()
            .get("test_other.py::test_other")
            .map(String::as_str),
        Some("CACHED"),
        "{}",
        rp.transcript()
    );
}

#[test]
fn data_under_a_directory_that_looks_like_a_virtualenv_is_an_input() {
    let pair = pair();
    let meta = "tests/fixtures/venv/lib/python3.11/site-packages/demo-1.0.dist-info/METADATA";
    pair.write(meta, "Name: demo\nVersion: 1.0\n");
    pair.write("tests/fixtures/.venv/pyvenv.cfg", "home = /nowhere\n");
    pair.write("tests/fixtures/.venv/data.txt", "1");
    pair.write(
        "tests/test_venv_data.py",
        &format!(
            r#"import pathlib

HERE = pathlib.Path(__file__).parent

def test_metadata():
    assert "Version: 1.0" in (HERE.parent / "{meta}").read_text()

def test_venv_cfg_neighbour():
    assert (HERE / "fixtures" / ".venv" / "data.txt").read_text() == "1"
"#
        ),
    );
    warm(&pair, &["-v"], "tests/test_venv_data.py::test_metadata");
    pair.write(meta, "Name: demo\nVersion: 2.0\n");
    pair.write("tests/fixtures/.venv/data.txt", "2");
    let (py, _) = pair.check(&["-v"]);
    assert_fails(&py, "tests/test_venv_data.py::test_metadata");
    assert_fails(&py, "tests/test_venv_data.py::test_venv_cfg_neighbour");
}

#[test]
fn a_read_of_git_head_is_an_input() {
    let pair = pair();
    pair.write(".git/HEAD", "ref: refs/heads/main\n");
    pair.write(
        "test_branch.py",
        "def test_on_main():\n    assert open('.git/HEAD').read().strip().endswith('/main')\n",
    );
    warm(&pair, &["-v"], "test_branch.py::test_on_main");
    pair.write(".git/HEAD", "ref: refs/heads/feature\n");
    let (py, _) = pair.check(&["-v"]);
    assert_fails(&py, "test_branch.py::test_on_main");
}

#[test]
fn a_test_that_reads_stdin_is_never_cached() {
    let pair = pair();
    pair.write(
        "test_prompt.py",
        r#"import sys

def test_input():
    assert input() == "yes"

def test_readline():
    assert sys.stdin.readline() == "again\n"
"#,
    );
    // A test's own stdin (click's CliRunner, monkeypatch) is not the process's.
    pair.write(
        "test_other.py",
        "import io, sys\n\ndef test_own_stdin(monkeypatch):\n    monkeypatch.setattr(sys, 'stdin', io.StringIO('yes\\n'))\n    assert input() == 'yes'\n",
    );
    let args = ["-v", "-s"];
    for _ in 0..2 {
        let py = pair.pytest.pytest(&args).stdin(b"yes\nagain\n").run();
        let rp = pair.rpytest.rpytest(&args).stdin(b"yes\nagain\n").run();
        assert_same(&py, &rp);
        let statuses = rp.verbose_statuses();
        for node in [
            "test_prompt.py::test_input",
            "test_prompt.py::test_readline",
        ] {
            assert_ne!(
                statuses.get(node).map(String::as_str),
                Some("CACHED"),
                "{node} read stdin: it must never be served from the cache\n{}",
                rp.transcript()
            );
        }
    }
    // Stdin is live only without capture (-s, tee-sys), under which every
    // test runs (what a test prints there is in no stored result).
    let rp = pair.rpytest.rpytest(&args).stdin(b"yes\nagain\n").run();
    assert_eq!(
        rp.verbose_statuses()
            .get("test_other.py::test_own_stdin")
            .map(String::as_str),
        Some("PASSED"),
        "{}",
        rp.transcript()
    );
    assert!(
        rp.stderr.contains(
            "-s (the tests' output goes to the terminal as they run) needs every test to run"
        ),
        "{}",
        rp.transcript()
    );
    // Nothing on stdin now: both fail under both tools.
    let (py, _) = pair.check(&args);
    assert_fails(&py, "test_prompt.py::test_input");
}

#[test]
fn an_interrupted_run_leaves_no_global_inputs_behind() {
    let mut pair = pair();
    let marker = pair.rpytest.out_path("slow-started");
    pair.write(
        "test_slow.py",
        r#"import os, time

def test_slow():
    marker = os.environ.get("SLOW_MARKER")
    if marker:
        open(marker, "w").close()
        time.sleep(120)
"#,
    );
    pair.write("test_fast.py", "def test_fast():\n    pass\n");
    warm(&pair, &["-v"], "test_fast.py::test_fast");
    // Interrupt a run while test_slow runs (its key changed: it reads SLOW_MARKER).
    pair.rpytest
        .set_env("SLOW_MARKER", &marker.to_string_lossy());
    let running = pair.rpytest.rpytest(&["-v"]).spawn();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "the slow test never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(running.pid() as i32, libc::SIGINT) };
    let interrupted = running.wait();
    assert_eq!(interrupted.code, 2, "{}", interrupted.transcript());
    pair.rpytest.unset_env("SLOW_MARKER");
    let _ = fs::remove_file(&marker);
    // Editing the interrupted file must not re-run the other file.
    pair.write(
        "test_slow.py",
        &(pair.rpytest.read("test_slow.py") + "\n# edited\n"),
    );
    let (_, rp) = pair.check(&["-v"]);
    assert_eq!(
        rp.verbose_statuses()
            .get("test_fast.py::test_fast")
            .map(String::as_str),
        Some("CACHED"),
        "the interrupted file became an input of every test\n{}",
        rp.transcript()
    );
}

#[test]
fn the_recorder_leaves_no_frame_in_warnings_or_tracebacks() {
    let pair = pair();
    pair.write("pkg/__init__.py", "");
    pair.write(
        "pkg/old.py",
        "import warnings\nwarnings.warn(\"pkg.old is deprecated\", DeprecationWarning, stacklevel=2)\n",
    );
    pair.write("pkg/broken.py", "import pkg.nothing_here\n");
    pair.write(
        "test_warn.py",
        r#"import os, sys, pytest

def test_warning_points_at_importer():
    sys.modules.pop("pkg.old", None)
    with pytest.warns(DeprecationWarning) as record:
        import pkg.old
    assert [os.path.basename(w.filename) for w in record] == ["test_warn.py"]

def test_stack_has_no_recorder_frame():
    import inspect
    assert not [f for f in inspect.stack() if f.filename.endswith("record.py")]
"#,
    );
    pair.write(
        "test_tb.py",
        "import os\n\ndef test_import_error():\n    import pkg.broken\n\ndef test_missing_env():\n    os.environ['RPYTEST_SOUNDNESS_UNSET']\n",
    );
    // Recording run (first), then a cached one: both as stock pytest.
    for _ in 0..2 {
        let (py, rp) = pair.check(&["-v", "-p", "no:cacheprovider", "test_warn.py"]);
        assert_eq!(py.code, 0, "{}", py.transcript());
        assert_eq!(rp.code, 0, "{}", rp.transcript());
    }
    let (py, rp) = pair.check(&["--tb=long", "-p", "no:cacheprovider", "test_tb.py"]);
    assert_eq!(
        failures_section(&py.stdout),
        failures_section(&rp.stdout),
        "tracebacks differ from stock pytest"
    );
    assert!(!rp.stdout.contains("record.py"), "{}", rp.stdout);
}

/// The FAILURES section of pytest's output, without the environment's repr
/// (a frame argument whose variables differ between the two copies).
fn failures_section(stdout: &str) -> String {
    let start = stdout.find("= FAILURES =").unwrap_or(0);
    let end = stdout.find("short test summary").unwrap_or(stdout.len());
    stdout[start..end]
        .lines()
        .filter(|l| !l.contains("environ(") && !l.contains("generated xml file"))
        .map(|l| l.replace('\\', "/"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn formatting_a_failure_and_monkeypatching_the_environment_add_no_inputs() {
    let mut pair = pair();
    pair.write("test_fails.py", "def test_broken():\n    assert 1 == 2\n");
    pair.write(
        "test_patched.py",
        r#"import os

def test_setenv(monkeypatch):
    monkeypatch.setenv("SOUNDNESS_PATCHED", "inside")
    assert os.environ["SOUNDNESS_PATCHED"] == "inside"
"#,
    );
    pair.set_env("SOUNDNESS_PATCHED", "outside-1");
    warm(&pair, &["-v"], "test_patched.py::test_setenv");
    // The outer value is not an input: the test only sees its own.
    pair.set_env("SOUNDNESS_PATCHED", "outside-2");
    let (_, rp) = pair.check(&["-v"]);
    assert_eq!(
        rp.verbose_statuses()
            .get("test_patched.py::test_setenv")
            .map(String::as_str),
        Some("CACHED"),
        "{}",
        rp.transcript()
    );
    // The failure report read CI: not an input of the failing file's key,
    // so a later pass of it is cached without a second run.
    pair.write("test_fails.py", "def test_broken():\n    assert 1 == 1\n");
    pair.check(&["-v"]);
    pair.set_env("CI", "1");
    let (_, rp) = pair.check(&["-v"]);
    assert_eq!(
        rp.verbose_statuses()
            .get("test_fails.py::test_broken")
            .map(String::as_str),
        Some("CACHED"),
        "{}",
        rp.transcript()
    );
}

#[test]
fn existence_checks_find_spec_and_scripts_run_in_a_subprocess_are_inputs() {
    let pair = pair();
    pair.write("data/present.txt", "x");
    pair.write("tools/check.py", "import sys\nsys.exit(0)\n");
    pair.write(
        "tests/test_probes.py",
        r#"import importlib.util, os, pathlib, subprocess, sys

ROOT = pathlib.Path(__file__).parent.parent

def test_optional_file_absent():
    assert not os.path.exists(ROOT / "data" / "optional.json")

def test_path_exists():
    assert (ROOT / "data" / "present.txt").exists()

def test_is_dir_absent():
    assert not os.path.isdir(ROOT / "data" / "extra")

def test_find_spec():
    assert importlib.util.find_spec("plugin_" + "mod") is None

def test_script():
    subprocess.run([sys.executable, "tools/check.py"], cwd=ROOT, check=True)
"#,
    );
    warm(
        &pair,
        &["-v"],
        "tests/test_probes.py::test_optional_file_absent",
    );
    pair.write("data/optional.json", "{}");
    pair.remove("data/present.txt");
    pair.write("data/extra/readme.txt", "");
    pair.write("tests/plugin_mod.py", "");
    pair.write("tools/check.py", "import sys\nsys.exit(1)\n");
    let (py, _) = pair.check(&["-v"]);
    for node in [
        "test_optional_file_absent",
        "test_path_exists",
        "test_is_dir_absent",
        "test_find_spec",
        "test_script",
    ] {
        assert_fails(&py, &format!("tests/test_probes.py::{node}"));
    }
}

#[test]
fn a_file_outside_the_project_that_a_test_reads_is_an_input() {
    let mut pair = pair();
    let dir = outside_dir("external-");
    let config = dir.path().join("settings.ini");
    fs::write(&config, "mode = fast\n").unwrap();
    pair.set_env("SOUNDNESS_CONFIG", &config.to_string_lossy());
    pair.write(
        "test_external.py",
        r#"import os

def test_reads_config():
    with open(os.environ["SOUNDNESS_CONFIG"]) as f:
        assert f.read() == "mode = fast\n"
"#,
    );
    warm(&pair, &["-v"], "test_external.py::test_reads_config");
    fs::write(&config, "mode = slow\n").unwrap();
    let (py, _) = pair.check(&["-v"]);
    assert_fails(&py, "test_external.py::test_reads_config");
}

#[test]
fn what_a_test_module_reads_at_import_is_an_input_of_its_importers() {
    let pair = pair();
    pair.write("data.json", r#"{"v": 1}"#);
    pair.write(
        "test_a.py",
        "import json\n\nDATA = json.load(open('data.json'))\n\ndef test_has_data():\n    assert 'v' in DATA\n",
    );
    pair.write(
        "test_b.py",
        "from test_a import DATA\n\ndef test_value():\n    assert DATA['v'] == 1\n",
    );
    warm(&pair, &["-v"], "test_b.py::test_value");
    pair.write("data.json", r#"{"v": 2}"#);
    let (py, _) = pair.check(&["-v"]);
    assert_fails(&py, "test_b.py::test_value");
}

#[test]
fn a_tool_looked_up_outside_the_project_and_a_shell_command_are_inputs() {
    let mut pair = pair();
    let dir = outside_dir("tools-");
    pair.set_env("SOUNDNESS_TOOLS", &dir.path().to_string_lossy());
    pair.write("data/sh.txt", "one");
    pair.write(
        "test_tools.py",
        r#"import os, shutil, pytest

@pytest.mark.skipif(shutil.which("soundness-tool", path=os.environ["SOUNDNESS_TOOLS"]) is None, reason="no tool")
def test_with_tool():
    assert False, "the tool is broken"
"#,
    );
    pair.write(
        "test_shell.py",
        r#"import subprocess

def test_shell():
    out = subprocess.run("cat data/sh.txt | tr -d '\n'", shell=True, capture_output=True, text=True).stdout
    assert out == "one"
"#,
    );
    warm_all(&pair, &["-v"]);
    let tool = dir.path().join("soundness-tool");
    fs::write(&tool, "#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&tool, fs::Permissions::from_mode(0o755)).unwrap();
    pair.write("data/sh.txt", "two");
    let (py, _) = pair.check(&["-v"]);
    assert_fails(&py, "test_tools.py::test_with_tool");
    assert_fails(&py, "test_shell.py::test_shell");
}

#[test]
fn a_module_found_through_a_path_a_conftest_inserts_is_an_input_of_every_importer() {
    let pair = pair();
    pair.write(
        "tests/conftest.py",
        "import os, sys\n\nsys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'lib'))\n",
    );
    pair.write("lib/util.py", "V = 1\n");
    pair.write(
        "tests/test_a.py",
        "import util\n\ndef test_a():\n    assert util.V\n",
    );
    pair.write(
        "tests/test_b.py",
        "import util\n\ndef test_b():\n    assert util.V == 1\n",
    );
    warm(&pair, &["-v"], "tests/test_b.py::test_b");
    pair.write("lib/util.py", "V = 2\n");
    let (py, _) = pair.check(&["-v"]);
    assert_fails(&py, "tests/test_b.py::test_b");
}

/// The daemon's C library read TZ when it started; each session must see
/// the client's, as a fresh `pytest` process does (and not store a pass
/// computed with the daemon's).
#[test]
fn a_session_sees_the_clients_time_zone() {
    let mut pair = pair();
    pair.write(
        "test_tz.py",
        "import time\n\ndef test_utc():\n    assert time.strftime('%Z', time.localtime(0)) in ('UTC', 'GMT')\n",
    );
    pair.set_env("TZ", "UTC");
    warm(&pair, &["-v"], "test_tz.py::test_utc");
    pair.set_env("TZ", "America/New_York");
    let py = pair.pytest.pytest(&["-v"]).run();
    assert_same(&py, &pair.rpytest.rpytest(&["-v", "--no-cache"]).run());
    assert_fails(&py, "test_tz.py::test_utc");
    let (py, _) = pair.check(&["-v"]);
    assert_fails(&py, "test_tz.py::test_utc");
}

/// Found by review: each in its own file, so no file is re-run because of
/// another's change.
#[test]
fn reads_the_first_recorder_missed_are_inputs() {
    let mut pair = pair();
    pair.write("pkg/__init__.py", "");
    pair.write("pkg/data.txt", "ok\n");
    pair.write(
        "test_cosmetic_after_copy.py",
        "import os\n\ndef test_ci():\n    env = os.environ.copy()\n    assert os.environ.get('CI') in (None, '')\n",
    );
    pair.write(
        "test_find_spec.py",
        "import importlib.util\n\ndef test_fs():\n    assert importlib.util.find_spec('optional_' + 'helper') is None\n",
    );
    pair.write(
        "test_get_data.py",
        "import pkgutil\n\ndef test_get_data():\n    assert pkgutil.get_data('pkg', 'data.txt') == b'ok\\n'\n",
    );
    warm_all(&pair, &["-v"]);
    pair.set_env("CI", "1");
    pair.write("optional_helper.py", "X = 1\n");
    pair.write("pkg/data.txt", "bad\n");
    let (py, _) = pair.check(&["-v"]);
    for node in [
        "test_cosmetic_after_copy.py::test_ci",
        "test_find_spec.py::test_fs",
        "test_get_data.py::test_get_data",
    ] {
        assert_fails(&py, node);
    }
}

/// A test lists a directory another test writes into during the run: the
/// listing it saw says nothing about the next run, so its result is not
/// stored, and the next run with the directory as it was fails as under
/// pytest.
#[test]
fn a_listing_of_a_directory_the_run_writes_into_is_never_cached() {
    let pair = pair();
    pair.write("items/a.txt", "");
    pair.write(
        "test_0.py",
        "import pathlib\n\ndef test_0():\n    (pathlib.Path(__file__).parent / 'items' / 'new.txt').write_text('')\n",
    );
    pair.write(
        "test_b.py",
        "import os\n\ndef test_b():\n    assert len(os.listdir(os.path.join(os.path.dirname(__file__), 'items'))) == 2\n",
    );
    pair.check(&["-v"]);
    pair.remove("items/new.txt");
    let (py, _) = pair.check(&["-v", "-k", "not test_0"]);
    assert_fails(&py, "test_b.py::test_b");
}

/// A recorded input deleted during the run (by another test) before the
/// test looks: the result depends on the moment, so it is not stored under
/// the key taken before the run.
#[test]
fn an_input_deleted_during_the_run_keeps_the_result_out_of_the_cache() {
    let pair = pair();
    pair.write(
        "test_0.py",
        "import os\n\ndef test_0():\n    p = os.path.join(os.path.dirname(__file__), 'data.txt')\n    if os.path.exists(p):\n        os.remove(p)\n",
    );
    pair.write(
        "test_a.py",
        "import os\n\ndef test_a():\n    assert not os.path.exists(os.path.join(os.path.dirname(__file__), 'data.txt'))\n",
    );
    pair.check(&["-v", "-k", "test_a"]);
    pair.write("data.txt", "X");
    pair.check(&["-v"]);
    pair.write("data.txt", "X");
    let (py, _) = pair.check(&["-v", "-k", "not test_0"]);
    assert_fails(&py, "test_a.py::test_a");
}

/// A test that exposes project files inside tmp_path (a symlink to a file,
/// a symlink to a directory) and reads them there reads the project's
/// files: the links' names are outside the project; so do reads through a
/// descriptor of a temporary directory holding such a link (`dir_fd=`), and
/// reads of a hard link to a project file.
#[test]
fn reads_through_links_outside_the_project_are_reads_of_the_project_files() {
    let pair = pair();
    pair.write("fixtures/one.txt", "ok");
    pair.write("fixtures/proj/setup.cfg", "ok");
    pair.write(
        "test_links.py",
        r#"import os, pathlib
HERE = pathlib.Path(__file__).parent

def test_symlink_to_a_file(tmp_path):
    os.symlink(HERE / "fixtures" / "one.txt", tmp_path / "one.txt")
    assert (tmp_path / "one.txt").read_text() == "ok"

def test_symlink_to_a_directory(tmp_path):
    os.symlink(HERE / "fixtures" / "proj", tmp_path / "proj")
    assert (tmp_path / "proj" / "setup.cfg").read_text() == "ok"
"#,
    );
    // (In a file of its own: a file with a test to run runs whole.)
    pair.write(
        "test_dir_fd_link.py",
        r#"import os, pathlib
HERE = pathlib.Path(__file__).parent

def test_dir_fd_through_a_link(tmp_path):
    os.symlink(HERE / "fixtures" / "proj", tmp_path / "proj")
    d = os.open(tmp_path, os.O_RDONLY)
    try:
        f = os.open("proj/setup.cfg", os.O_RDONLY, dir_fd=d)
        assert os.read(f, 10) == b"ok"
        os.close(f)
    finally:
        os.close(d)
"#,
    );
    each_change_fails(
        &pair,
        &[
            ("fixtures/one.txt", "test_links.py::test_symlink_to_a_file"),
            (
                "fixtures/proj/setup.cfg",
                "test_links.py::test_symlink_to_a_directory",
            ),
            (
                "fixtures/proj/setup.cfg",
                "test_dir_fd_link.py::test_dir_fd_through_a_link",
            ),
        ],
    );
}

/// Files opened relative to a directory descriptor (`dir_fd=`) and read by
/// linecache (whose `open` may be bound while a session is being prepared)
/// are inputs.
#[test]
fn reads_by_directory_descriptor_and_by_linecache_are_inputs() {
    let pair = pair();
    pair.write("data/x.txt", "ok");
    pair.write("data/y.txt", "ok");
    pair.write(
        "test_fd.py",
        r#"import linecache, os

def test_dir_fd():
    d = os.open("data", os.O_RDONLY)
    try:
        fd = os.open("x.txt", os.O_RDONLY, dir_fd=d)
        assert os.read(fd, 10) == b"ok"
        os.close(fd)
    finally:
        os.close(d)

def test_linecache():
    assert linecache.getline("data/y.txt", 1).strip() == "ok"
"#,
    );
    each_change_fails(
        &pair,
        &[
            ("data/x.txt", "test_fd.py::test_dir_fd"),
            ("data/y.txt", "test_fd.py::test_linecache"),
        ],
    );
}

/// With everything cached, each `(file, node)` in turn: `file` changed from
/// "ok" to "bad" makes `node` fail under both tools; put back, everything is
/// cached again.
fn each_change_fails(pair: &Pair, changes: &[(&str, &str)]) {
    warm_all(pair, &["-v"]);
    for (rel, node) in changes {
        pair.write(rel, "bad");
        let (py, _) = pair.check(&["-v"]);
        assert_fails(&py, node);
        pair.write(rel, "ok");
        warm_all(pair, &["-v"]);
    }
}

#[test]
fn a_hard_link_to_a_project_file_reads_the_file() {
    let pair = pair();
    pair.write("pkg/data.txt", "ok");
    pair.write(
        "tests/test_hl.py",
        "import os, pathlib\nHERE = pathlib.Path(__file__).resolve().parent.parent\n\ndef test_x(tmp_path):\n    h = tmp_path / \"h\"\n    os.link(HERE / \"pkg\" / \"data.txt\", h)\n    assert h.read_text() == \"ok\"\n",
    );
    pair.check(&["-v"]);
    pair.check(&["-v"]);
    pair.write("pkg/data.txt", "no");
    let (py, _) = pair.check(&["-v"]);
    assert_fails(&py, "tests/test_hl.py::test_x");
}

/// A link outside the project (not temporary) that leads into it is an input
/// itself: pointing it at another project file, or removing it, is seen.
#[test]
fn a_lasting_link_outside_the_project_is_an_input_itself() {
    let outside = outside_dir("rpytest-link-");
    let link = outside.path().join("cfg");
    let pair = pair();
    pair.write("conf/a.txt", "ok");
    pair.write("conf/b.txt", "no");
    std::os::unix::fs::symlink(pair.rpytest.path("conf/a.txt"), &link).expect("symlink");
    let test = format!(
        "def test_x():\n    with open({:?}) as f:\n        assert f.read() == \"ok\"\n",
        link.display().to_string()
    );
    pair.write("test_link.py", &test);
    let node = "test_link.py::test_x";
    warm(&pair, &["-v"], node);
    fs::remove_file(&link).expect("unlink");
    std::os::unix::fs::symlink(pair.rpytest.path("conf/b.txt"), &link).expect("symlink");
    let (py, _) = pair.check(&["-v"]);
    assert_fails(&py, node);
}

/// `python -m pkg.tool` and `python -m pkg` (its `__main__.py`) in a
/// subprocess: the modules run are inputs, whether or not the session itself
/// imported their package.
#[test]
fn modules_a_subprocess_runs_with_dash_m_are_inputs() {
    let pair = pair();
    pair.write("pkg/__init__.py", "");
    pair.write("pkg/tool.py", "raise SystemExit(0)\n");
    pair.write("pkg/__main__.py", "raise SystemExit(0)\n");
    pair.write("pkg/other.py", "raise SystemExit(0)\n");
    pair.write(
        "test_tool.py",
        "import subprocess, sys\n\n\ndef test_submodule():\n    assert subprocess.run([sys.executable, \"-m\", \"pkg.tool\"]).returncode == 0\n\n\ndef test_package_main():\n    assert subprocess.run([sys.executable, \"-m\", \"pkg\"]).returncode == 0\n\n\ndef test_joined():\n    assert subprocess.run([sys.executable, \"-mpkg.other\"]).returncode == 0\n",
    );
    warm_all(&pair, &["-v"]);
    for (module, node) in [
        ("pkg/tool.py", "test_tool.py::test_submodule"),
        ("pkg/__main__.py", "test_tool.py::test_package_main"),
        ("pkg/other.py", "test_tool.py::test_joined"),
    ] {
        pair.write(module, "raise SystemExit(1)  # broken\n");
        let (py, _) = pair.check(&["-v"]);
        assert_fails(&py, node);
        pair.write(module, "raise SystemExit(0)\n");
    }
}

/// A Python subprocess imports what its own search path reaches: a module
/// found through the `PYTHONPATH` passed in `env=` (a src layout run with
/// `python -m`), and a module imported by `python -c` from its working
/// directory, or through `PYTHONPATH=dir python` in a shell command, are
/// inputs though the command line names none of those files.
#[test]
fn modules_a_python_subprocess_reaches_through_its_search_path_are_inputs() {
    let pair = pair();
    pair.write("src/spkg/__init__.py", "");
    pair.write("src/spkg/tool.py", "raise SystemExit(0)\n");
    pair.write("pkg/__init__.py", "");
    pair.write("pkg/mod.py", "X = 0\n");
    pair.write("tools/run.py", "import helper\n");
    pair.write("tools/helper.py", "X = 0\n");
    pair.write(
        "test_sub.py",
        r#"import os, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))


def test_env_pythonpath():
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.path.join(HERE, "src")}
    assert subprocess.run([sys.executable, "-m", "spkg.tool"], cwd=HERE, env=env).returncode == 0


def test_dash_c():
    code = "import pkg.mod, sys; sys.exit(pkg.mod.X)"
    assert subprocess.run([sys.executable, "-c", code], cwd=HERE).returncode == 0


def test_script_dir():
    assert subprocess.run([sys.executable, "tools/run.py"], cwd=HERE, env={"PATH": ""}).returncode == 0


def test_shell_inline(tmp_path):
    lib = os.path.join(HERE, "lib")
    command = f"PYTHONPATH={lib} {sys.executable} -m shelled"
    assert subprocess.run(command, shell=True, cwd=tmp_path).returncode == 0
"#,
    );
    pair.write("lib/shelled.py", "raise SystemExit(0)\n");
    pair.write("lib/viaenv.py", "X = 0\n");
    // Its own file: the key is the file's, and test_sub.py's other tests walk the project anyway.
    pair.write(
        "test_sub_env.py",
        r#"import os, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))


def test_through_env(tmp_path):
    code = "import sys; sys.path.insert(0, %r); import viaenv; sys.exit(viaenv.X)" % os.path.join(HERE, "lib")
    env = {"PATH": os.path.dirname(sys.executable)}
    argv = ["/usr/bin/env", os.path.basename(sys.executable), "-c", code]
    assert subprocess.run(argv, cwd=tmp_path, env=env).returncode == 0
"#,
    );
    pair.write("far/away.py", "X = 0\n");
    pair.write(
        "test_sub_path.py",
        r#"import os, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))


def test_path_extended_at_run_time(tmp_path):
    code = f"import sys; sys.path.insert(0, {os.path.join(HERE, 'far')!r}); import away; sys.exit(away.X)"
    assert subprocess.run([sys.executable, "-c", code], cwd=tmp_path).returncode == 0
"#,
    );
    warm_all(&pair, &["-v"]);
    for (module, broken, fixed, node) in [
        (
            "src/spkg/tool.py",
            "raise SystemExit(1)\n",
            "raise SystemExit(0)\n",
            "test_sub.py::test_env_pythonpath",
        ),
        (
            "pkg/mod.py",
            "X = 1\n",
            "X = 0\n",
            "test_sub.py::test_dash_c",
        ),
        (
            "tools/helper.py",
            "raise SystemExit(1)\n",
            "X = 0\n",
            "test_sub.py::test_script_dir",
        ),
        (
            "lib/shelled.py",
            "raise SystemExit(1)\n",
            "raise SystemExit(0)\n",
            "test_sub.py::test_shell_inline",
        ),
        (
            "lib/viaenv.py",
            "X = 1\n",
            "X = 0\n",
            "test_sub_env.py::test_through_env",
        ),
        (
            "far/away.py",
            "X = 1\n",
            "X = 0\n",
            "test_sub_path.py::test_path_extended_at_run_time",
        ),
    ] {
        pair.write(module, broken);
        let (py, _) = pair.check(&["-v"]);
        assert_fails(&py, node);
        pair.write(module, fixed);
    }
}

/// A subprocess that only names Python as an argument (`file -b
/// sys.executable`, which `platform.architecture()` runs; a plugin calls it
/// while the session configures) runs no Python: it does not make the
/// project's modules inputs of every test, so editing one test file runs
/// that file alone.
#[test]
fn a_command_naming_python_as_an_argument_is_not_a_python_subprocess() {
    let pair = pair();
    pair.write(
        "conftest.py",
        "import subprocess, sys\n\ndef pytest_configure(config):\n    subprocess.run(['echo', '-n', sys.executable], stdout=subprocess.DEVNULL)\n",
    );
    pair.write("test_one.py", "def test_one():\n    pass\n");
    pair.write("test_two.py", "def test_two():\n    pass\n");
    warm_all(&pair, &["-v"]);
    pair.write("test_two.py", "def test_two():\n    assert True\n");
    let (_, rp) = pair.check(&["-v"]);
    let ran: Vec<String> = rp
        .verbose_statuses()
        .into_iter()
        .filter(|(_, s)| s != "CACHED")
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        ran,
        vec!["test_two.py::test_two".to_string()],
        "{}",
        rp.transcript()
    );
}

/// Modules under hidden directories (`.tools/`, `.ci/`) that a Python
/// subprocess imports are inputs like any other: through a `sys.path.insert`
/// of its own, and with `-m` on a package found through a hidden directory
/// on its `PYTHONPATH` while it runs elsewhere.
#[test]
fn modules_a_python_subprocess_imports_from_hidden_directories_are_inputs() {
    let pair = pair();
    pair.write(".tools/helper.py", "X = 0\n");
    pair.write(".ci/cpkg/__init__.py", "");
    pair.write(".ci/cpkg/__main__.py", "raise SystemExit(0)\n");
    pair.write(
        "test_hidden.py",
        r#"import os, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))


def test_inserted(tmp_path):
    code = "import sys; sys.path.insert(0, %r); import helper; sys.exit(helper.X)" % os.path.join(HERE, ".tools")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
"#,
    );
    pair.write(
        "test_hidden_m.py",
        r#"import os, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))


def test_dash_m(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.path.join(HERE, ".ci"))
    subprocess.run([sys.executable, "-m", "cpkg"], check=True, cwd=tmp_path, env=env)
"#,
    );
    warm_all(&pair, &["-v"]);
    for (module, broken, fixed, node) in [
        (
            ".tools/helper.py",
            "X = 1  # broken\n",
            "X = 0\n",
            "test_hidden.py::test_inserted",
        ),
        (
            ".ci/cpkg/__main__.py",
            "raise SystemExit(1)  # broken\n",
            "raise SystemExit(0)\n",
            "test_hidden_m.py::test_dash_m",
        ),
    ] {
        pair.write(module, broken);
        let (py, _) = pair.check(&["-v"]);
        assert_fails(&py, node);
        pair.write(module, fixed);
    }
}

/// A Python subprocess that can import code no key names (a directory linked
/// from the project to a place outside it) runs every time: a change there
/// fails it as in stock pytest.
#[test]
fn a_python_subprocess_reaching_a_link_out_of_the_project_runs_every_time() {
    let pair = pair();
    let outside = outside_dir("linked");
    fs::write(outside.path().join("extmod.py"), "X = 0\n").unwrap();
    for project in [&pair.pytest, &pair.rpytest] {
        std::os::unix::fs::symlink(outside.path(), project.path("ext")).unwrap();
    }
    pair.write(
        "test_linked.py",
        r#"import os, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))


def test_linked(tmp_path):
    code = "import sys; sys.path.insert(0, %r); import extmod; sys.exit(extmod.X)" % os.path.join(HERE, "ext")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
"#,
    );
    pair.check(&["-v"]);
    pair.check(&["-v"]);
    fs::write(outside.path().join("extmod.py"), "X = 1  # broken\n").unwrap();
    let (py, _) = pair.check(&["-v"]);
    assert_fails(&py, "test_linked.py::test_linked");
}

/// A file outside the project that a subprocess's command line names (`cat
/// ~/conf.txt`) is an input, by its absolute path, as a file the test opens.
#[test]
fn a_file_outside_the_project_a_subprocess_command_names_is_an_input() {
    let pair = pair();
    let outside = outside_dir("named");
    let conf = outside.path().join("conf.txt");
    fs::write(&conf, "ok").unwrap();
    pair.write(
        "test_named.py",
        &format!(
            "import subprocess\n\n\ndef test_named():\n    out = subprocess.run(['cat', {:?}], capture_output=True, text=True).stdout\n    assert out == 'ok'\n",
            conf.to_str().unwrap()
        ),
    );
    warm(&pair, &["-v"], "test_named.py::test_named");
    fs::write(&conf, "changed").unwrap();
    let (py, _) = pair.check(&["-v"]);
    assert_fails(&py, "test_named.py::test_named");
}

/// A variable a first-party module reads in its body while a test imports
/// it (lazily, inside the test; or at the top of the test module) is an
/// input of the tests whose modules reach it (imported, directly or through
/// other modules), and only of them: changing it fails those tests as in
/// stock pytest and serves an unrelated test from the cache.
#[test]
fn a_variable_read_at_a_lazy_first_party_import_is_an_input_of_its_importers_only() {
    let mut pair = pair();
    pair.set_env("REC_MODE", "a");
    pair.write("pkg/__init__.py", "");
    pair.write(
        "pkg/cfg.py",
        "import os\n\nMODE = os.environ[\"REC_MODE\"]\n",
    );
    pair.write(
        "pkg/user.py",
        "def get():\n    from pkg import cfg\n    return cfg.MODE\n",
    );
    pair.write("pkg/outer.py", "from pkg import cfg\n\nMODE = cfg.MODE\n");
    pair.write(
        "test_lazy.py",
        "from pkg.user import get\n\n\ndef test_lazy():\n    assert get() == \"a\"\n",
    );
    pair.write(
        "test_top.py",
        "import pkg.cfg\n\n\ndef test_top():\n    assert pkg.cfg.MODE == \"a\"\n",
    );
    pair.write(
        "test_through.py",
        "def test_through():\n    from pkg import outer\n    assert outer.MODE == \"a\"\n",
    );
    pair.write("test_other.py", "def test_other():\n    pass\n");
    warm_all(&pair, &["-v"]);
    pair.set_env("REC_MODE", "b");
    let (py, rp) = pair.check(&["-v"]);
    for node in [
        "test_lazy.py::test_lazy",
        "test_top.py::test_top",
        "test_through.py::test_through",
    ] {
        assert_fails(&py, node);
    }
    assert_eq!(
        rp.verbose_statuses()
            .get("test_other.py::test_other")
            .map(String::as_str),
        Some("CACHED"),
        "{}",
        rp.transcript()
    );
}

/// A first-party module that installed code imports (here pytest's
/// `importorskip`; a framework loading a settings module lazily) is reached
/// by tests through that code, not through their imports: a variable its
/// body reads stays an input of every test.
#[test]
fn a_variable_read_by_a_module_installed_code_imports_stays_an_input_of_every_test() {
    let mut pair = pair();
    pair.set_env("REC_SETTING", "a");
    pair.write("pkg/__init__.py", "");
    pair.write(
        "pkg/settings.py",
        "import os\n\nMODE = os.environ[\"REC_SETTING\"]\n",
    );
    pair.write(
        "test_a_loads.py",
        "import pytest\n\n\ndef test_loads():\n    assert pytest.importorskip(\"pkg.settings\").MODE == \"a\"\n",
    );
    pair.write(
        "test_b_reaches.py",
        "import sys\n\n\ndef test_reaches():\n    assert sys.modules[\"pkg.settings\"].MODE == \"a\"\n",
    );
    warm_all(&pair, &["-v"]);
    pair.set_env("REC_SETTING", "b");
    let (py, _) = pair.check(&["-v"]);
    assert_fails(&py, "test_b_reaches.py::test_reaches");
}
