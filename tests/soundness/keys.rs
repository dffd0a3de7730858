//! Soundness: what enters the keys in Rust (invocation directory, stat cache,
//! ini sections, selection on a fully cached project, interrupted sessions,
//! recorded dependency kinds, interpreter variables, key eviction, `--why`).

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use super::common::{assert_same, parse_junit, rpytest_bin, Pair, Project, Run, Tool};

/// Node IDs `-v` reported as `CACHED`.
fn replayed(run: &Run) -> BTreeSet<String> {
    run.verbose_statuses()
        .into_iter()
        .filter(|(_, s)| s == "CACHED")
        .map(|(n, _)| n)
        .collect()
}

/// Node IDs `-v` reported with another status: they ran.
fn ran(run: &Run) -> BTreeSet<String> {
    run.verbose_statuses()
        .into_iter()
        .filter(|(_, s)| s != "CACHED")
        .map(|(n, _)| n)
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A pair of empty soundness projects that write bytecode, with `files`.
fn pair_with(files: &[(&str, &str)]) -> Pair {
    let mut pair = Pair::new("soundness");
    pair.write_bytecode();
    for (rel, text) in files {
        pair.write(rel, text);
    }
    pair
}

/// Runs pytest or rpytest (`--no-daemon`: the harness's daemon lives in the
/// project's private runtime dir) from `subdir` of `project`, the way a user
/// who `cd`s there would, with bytecode writing on.
fn run_in(project: &Project, tool: Tool, subdir: &str, args: &[&str], tag: &str) -> Run {
    let junit = project.out_path(&format!("{tag}.xml"));
    let _ = fs::remove_file(&junit);
    let runtime = project.out_path(&format!("{tag}-runtime"));
    fs::create_dir_all(&runtime).expect("runtime dir");
    let mut cmd = match tool {
        Tool::Pytest => {
            let mut c = Command::new(project.python());
            c.args(["-m", "pytest"]);
            c
        }
        Tool::Rpytest => {
            let mut c = Command::new(rpytest_bin());
            c.arg("--python").arg(project.python()).arg("--no-daemon");
            c
        }
    };
    cmd.arg(format!("--junitxml={}", junit.display()))
        .args(args)
        .current_dir(project.path(subdir))
        .env_remove("PYTHONDONTWRITEBYTECODE")
        .env_remove("PYTEST_ADDOPTS")
        .env_remove("PYTEST_PLUGINS")
        .env_remove("PYTHONPATH")
        .env_remove("VIRTUAL_ENV")
        .env("COLUMNS", "120")
        .env("XDG_RUNTIME_DIR", &runtime)
        .stdin(Stdio::null());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("RPYTEST_") {
            cmd.env_remove(&key);
        }
    }
    let out = cmd.output().expect("start the run");
    let xml = fs::read_to_string(&junit).ok();
    Run {
        tool,
        args: args.iter().map(|s| s.to_string()).collect(),
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        wrote_junit: xml.is_some(),
        outcomes: xml.as_deref().map(parse_junit).unwrap_or_default(),
    }
}

/// Cause 5: the invocation directory is an input. A test's relative read
/// resolves against it, so `cd tests && rpytest test_x.py` after a run from
/// the root must not replay the root run's pass.
#[test]
fn the_invocation_directory_enters_the_key() {
    let pair = pair_with(&[
        ("data.txt", "root\n"),
        ("tests/data.txt", "tests\n"),
        (
            "tests/test_x.py",
            "def test_reads_data():\n    assert open(\"data.txt\").read() == \"root\\n\"\n",
        ),
    ]);
    let py = run_in(
        &pair.pytest,
        Tool::Pytest,
        "",
        &["-v", "tests/test_x.py"],
        "root",
    );
    py.assert_code(0);
    let rp = run_in(
        &pair.rpytest,
        Tool::Rpytest,
        "",
        &["-v", "tests/test_x.py"],
        "root",
    );
    assert_same(&py, &rp);
    // Warm: the second run from the root is served from the cache.
    let rp = run_in(
        &pair.rpytest,
        Tool::Rpytest,
        "",
        &["-v", "tests/test_x.py"],
        "root2",
    );
    assert_same(&py, &rp);
    assert_eq!(
        replayed(&rp),
        set(&["tests/test_x.py::test_reads_data"]),
        "the warm run was not cached\n{}",
        rp.transcript()
    );
    let py = run_in(
        &pair.pytest,
        Tool::Pytest,
        "tests",
        &["-v", "test_x.py"],
        "sub",
    );
    py.assert_code(1);
    let rp = run_in(
        &pair.rpytest,
        Tool::Rpytest,
        "tests",
        &["-v", "test_x.py"],
        "sub",
    );
    assert_same(&py, &rp);
}

/// The last line of pytest's `-q` summary without its timing: `2 passed`,
/// `1 passed, 1 deselected`, `2 deselected`.
fn summary(run: &Run) -> String {
    let line = run
        .stdout
        .lines()
        .rev()
        .find(|l| {
            l.contains(" in ")
                && (l.contains("passed") || l.contains("deselected") || l.contains("no tests"))
        })
        .unwrap_or("")
        .trim_matches(|c: char| c == '=' || c == ' ');
    line.rsplit_once(" in ").map_or(line, |(s, _)| s).to_owned()
}

/// Selection on a fully cached project: the CLI may answer alone (without
/// pytest) only for a selection it has seen pytest apply to these very keys;
/// an unseen `-k`/`-m`/`--deselect` starts a session. Compared without
/// `--junitxml`, which always needs a session (and so hides the fast path).
#[test]
fn an_unseen_selection_on_a_fully_cached_project_is_pytests() {
    let pair = pair_with(&[(
        "test_sel.py",
        "import pytest\n\ndef test_one():\n    pass\n\n@pytest.mark.slow\ndef test_two():\n    pass\n",
    )]);
    pair.write("pytest.ini", "[pytest]\nmarkers =\n    slow: slow tests\n");
    let both = |args: &[&str]| {
        let py = pair.pytest.pytest(args).no_junit().run();
        let rp = pair.rpytest.rpytest(args).no_junit().run();
        assert_eq!(
            (py.code, summary(&py)),
            (rp.code, summary(&rp)),
            "rpytest differs from pytest\n{}\n{}",
            py.transcript(),
            rp.transcript()
        );
        rp
    };
    both(&["-q"]);
    let rp = both(&["-q"]);
    assert!(
        rp.stderr.contains("2 cached"),
        "the warm run was not served from the cache\n{}",
        rp.transcript()
    );
    for args in [
        &["-q", "-k", "nomatch"][..],
        &["-q", "-k", "("],
        &["-q", "-k", "test_one"],
        &["-q", "-m", "slow"],
        &["-q", "-m", "not slow and"],
        &["-q", "--deselect", "test_sel.py::test_two"],
        &["-q", "-k", "test_one"],
        &["-q", "-m", "slow"],
        // A known selection narrowed by a node ID: only that node.
        &["-q", "-k", "test"],
        &["-q", "test_sel.py::test_one", "-k", "test"],
        &["-q", "test_sel.py::test_two", "-m", "slow"],
    ] {
        // Each twice: the second time the selection is known.
        both(args);
        both(args);
    }
    // A known selection is still served from the cache.
    let rp = both(&["-q", "-k", "test_one"]);
    assert!(
        rp.stderr.contains("1 cached"),
        "a known selection was not served from the cache\n{}",
        rp.transcript()
    );
}

/// Waits (up to `limit`) until `path` exists and is not empty.
fn wait_for_file(path: &Path, limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if fs::metadata(path).map(|m| m.len() > 0).unwrap_or(false) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{} did not appear within {limit:?}", path.display());
}

/// Cause 11 (the CLI's part): what an interrupted session recorded never
/// becomes an input of every test. Ctrl-C in `test_b` used to make
/// `test_b.py` a read of the whole session, so `test_a` re-ran after every
/// later edit of `test_b.py`.
#[test]
fn an_interrupted_session_leaves_no_global_inputs() {
    let pair = pair_with(&[
        ("test_a.py", "def test_a():\n    pass\n"),
        ("test_b.py", "def test_b():\n    pass\n"),
    ]);
    pair.check(&["-v"]);
    let (_, rp) = pair.check(&["-v"]);
    assert_eq!(ran(&rp), set(&[]), "warm run\n{}", rp.transcript());
    pair.write(
        "test_b.py",
        "import os, time\n\ndef test_b():\n    started = os.environ.get(\"STARTED\")\n    if started:\n        open(started, \"w\").write(\"1\")\n        time.sleep(60)\n",
    );
    let started = pair.rpytest.out_path("started");
    let running = pair
        .rpytest
        .rpytest(&["-v"])
        .env("STARTED", started.to_str().expect("utf-8 path"))
        .timeout(Duration::from_secs(90))
        .spawn();
    wait_for_file(&started, Duration::from_secs(60));
    unsafe { libc::kill(running.pid() as i32, libc::SIGINT) };
    let interrupted = running.wait();
    interrupted.assert_code(2);
    let (_, rp) = pair.check(&["-v"]);
    assert_eq!(
        ran(&rp),
        set(&["test_b.py::test_b"]),
        "after the interrupted run only the edited file runs\n{}",
        rp.transcript()
    );
    pair.replace("test_b.py", "time.sleep(60)", "time.sleep(61)");
    let (_, rp) = pair.check(&["-v"]);
    assert_eq!(
        ran(&rp),
        set(&["test_b.py::test_b"]),
        "an edit of test_b.py re-runs test_b alone\n{}",
        rp.transcript()
    );
}

/// Sets the mtime of `rel` in both copies.
fn set_mtime(pair: &Pair, rel: &str, t: SystemTime) {
    for project in [&pair.pytest, &pair.rpytest] {
        fs::File::options()
            .write(true)
            .open(project.path(rel))
            .and_then(|f| f.set_modified(t))
            .unwrap_or_else(|e| panic!("set the mtime of {rel}: {e}"));
    }
}

/// Cause 17: an in-place edit that keeps the size and restores the mtime
/// (`touch -r`, `os.utime`, tools that preserve times) is seen: the stat
/// cache checks the ctime and inode too, as git's index does.
#[test]
fn a_same_size_edit_with_a_restored_mtime_is_seen() {
    let pair = pair_with(&[
        ("data.txt", "1\n"),
        (
            "test_data.py",
            "def test_data():\n    assert open(\"data.txt\").read() == \"1\\n\"\n",
        ),
    ]);
    let old = SystemTime::now() - Duration::from_secs(3600);
    set_mtime(&pair, "data.txt", old);
    pair.check(&["-v"]).0.assert_code(0);
    let (_, rp) = pair.check(&["-v"]);
    assert_eq!(
        replayed(&rp),
        set(&["test_data.py::test_data"]),
        "warm run\n{}",
        rp.transcript()
    );
    pair.write("data.txt", "2\n");
    set_mtime(&pair, "data.txt", old);
    let (py, _) = pair.check(&["-v"]);
    py.assert_code(1);
}

/// Over-run: only the tables pytest and rpytest read of `pyproject.toml`
/// enter the key. An edit of `[tool.black]` re-runs nothing; an edit of
/// `[tool.pytest.ini_options]` re-runs everything (and here changes an outcome).
///
/// The global key holds only those tables (`ini:pyproject.toml`), but the
/// recorder still records pytest's own read of its ini file as a read of the
/// whole session (`file:pyproject.toml`), which keys every byte.
#[test]
fn only_the_pytest_and_rpytest_tables_of_pyproject_are_keyed() {
    let pair = pair_with(&[
        (
            "pyproject.toml",
            "[project]\nname = \"demo\"\n\n[tool.pytest.ini_options]\nmarkers = [\"slow\"]\n\n[tool.black]\nline-length = 88\n",
        ),
        ("test_x.py", "def test_plain():\n    pass\n"),
        (
            "test_xp.py",
            "import pytest\n\n@pytest.mark.xfail(reason=\"flaky\")\ndef test_xpass():\n    pass\n",
        ),
    ]);
    pair.remove("pytest.ini");
    // An xpass is never reusable: it runs every time (its own file, since a
    // file with a test to run runs whole).
    let always = set(&["test_xp.py::test_xpass"]);
    pair.check(&["-v"]).0.assert_code(0);
    let (_, rp) = pair.check(&["-v"]);
    assert_eq!(ran(&rp), always, "warm run\n{}", rp.transcript());
    pair.replace("pyproject.toml", "line-length = 88", "line-length = 100");
    pair.replace("pyproject.toml", "name = \"demo\"", "name = \"demo2\"");
    let (_, rp) = pair.check(&["-v"]);
    assert_eq!(
        ran(&rp),
        always,
        "[tool.black] and [project] edits re-ran tests\n{}",
        rp.transcript()
    );
    pair.replace(
        "pyproject.toml",
        "markers = [\"slow\"]",
        "markers = [\"slow\"]\nxfail_strict = true",
    );
    let (py, rp) = pair.check(&["-v"]);
    py.assert_code(1);
    assert!(replayed(&rp).is_empty(), "{}", rp.transcript());
}

/// Runs pytest and rpytest `--no-daemon` (a fresh interpreter, as pytest's)
/// with `args` and asserts they agree.
fn check_no_daemon(pair: &Pair, args: &[&str]) -> (Run, Run) {
    let py = pair.pytest.pytest(args).run();
    let mut own = vec!["--no-daemon"];
    own.extend_from_slice(args);
    let rp = pair.rpytest.rpytest(&own).run();
    assert_same(&py, &rp);
    (py, rp)
}

/// Cause 2 (interpreter variables): every `PYTHON*` variable set in the
/// environment is an input of every test, by name and value. The interpreter
/// reads them in C at startup, where no recorder sees it. (`--no-daemon`:
/// whether a warm daemon honours them is the daemon's part.)
#[test]
fn interpreter_variables_enter_the_key() {
    let mut pair = pair_with(&[(
        "test_digits.py",
        "def test_long_int():\n    assert int(\"1\" * 5000) > 0\n",
    )]);
    pair.set_env("PYTHONINTMAXSTRDIGITS", "0");
    check_no_daemon(&pair, &["-v"]).0.assert_code(0);
    let (_, rp) = check_no_daemon(&pair, &["-v"]);
    assert_eq!(
        replayed(&rp),
        set(&["test_digits.py::test_long_int"]),
        "warm run\n{}",
        rp.transcript()
    );
    pair.unset_env("PYTHONINTMAXSTRDIGITS");
    check_no_daemon(&pair, &["-v"]).0.assert_code(1);
    pair.set_env("PYTHONINTMAXSTRDIGITS", "640");
    check_no_daemon(&pair, &["-v"]).0.assert_code(1);
    pair.set_env("PYTHONINTMAXSTRDIGITS", "0");
    check_no_daemon(&pair, &["-v"]).0.assert_code(0);
}

/// The file-mode creation mask decides the mode of every file a test
/// creates, and no recorder sees it read: it is an input of every test.
#[test]
fn the_umask_enters_the_key() {
    let mut pair = pair_with(&[(
        "test_mode.py",
        "import os, stat\n\ndef test_new_file_mode(tmp_path):\n    p = tmp_path / \"f\"\n    p.write_text(\"x\")\n    assert stat.S_IMODE(os.stat(p).st_mode) == 0o644\n",
    )]);
    pair.set_umask(0o022);
    pair.check(&["-v"]).0.assert_code(0);
    let (_, rp) = pair.check(&["-v"]);
    assert_eq!(ran(&rp), set(&[]), "warm run\n{}", rp.transcript());
    pair.set_umask(0o077);
    pair.check(&["-v"]).0.assert_code(1);
    pair.set_umask(0o022);
    let (_, rp) = pair.check(&["-v"]);
    assert_eq!(ran(&rp), set(&[]), "back to 022\n{}", rp.transcript());
}

/// The limit on open files (and every other resource limit) decides what a
/// test may open, and no recorder sees it read: it is an input of every
/// test, and the warm daemon's sessions run with the command's limits, not
/// with those of the command that started the daemon.
#[test]
fn resource_limits_enter_the_key_and_reach_the_session() {
    let mut pair = pair_with(&[(
        "test_files.py",
        "import tempfile\n\ndef test_open_300_files():\n    with tempfile.TemporaryDirectory() as d:\n        files = [open(f\"{d}/{i}\", \"w\") for i in range(300)]\n        for f in files:\n            f.close()\n",
    )]);
    pair.set_nofile(Some(1024));
    pair.check(&["-v"]).0.assert_code(0);
    let (_, rp) = pair.check(&["-v"]);
    assert_eq!(ran(&rp), set(&[]), "warm run\n{}", rp.transcript());
    pair.set_nofile(Some(256));
    pair.check(&["-v"]).0.assert_code(1);
    // The daemon's session, every test run: the limit of this command.
    let no_cache = pair.rpytest.rpytest(&["--no-cache"]).run();
    no_cache.assert_code(1);
    pair.set_nofile(Some(1024));
    let (_, rp) = pair.check(&["-v"]);
    assert_eq!(ran(&rp), set(&[]), "back to 1024\n{}", rp.transcript());
}

/// The niceness and the signals ignored (`nice`, `nohup`) are kept across
/// exec: inputs of every test, and the session has the command's, not the
/// daemon's. So is LD_LIBRARY_PATH, which the dynamic loader reads once.
#[test]
fn niceness_ignored_signals_and_the_loader_path_enter_the_key_and_reach_the_session() {
    let mut pair = pair_with(&[
        (
            "test_process.py",
            "import os, signal\n\nBASE = int(os.environ.get(\"BASE_NICE\", \"0\"))\n\ndef test_priority():\n    assert os.getpriority(os.PRIO_PROCESS, 0) == BASE\n\ndef test_sighup():\n    assert signal.getsignal(signal.SIGHUP) == signal.SIG_DFL\n",
        ),
        (
            "test_loader.py",
            "import ctypes, os\n\ndef test_load():\n    ctypes.CDLL(\"librpytestfake.so.1\")\n",
        ),
    ]);
    // A real shared library under a name only LD_LIBRARY_PATH finds.
    let zlib = [
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/lib64/libz.so.1",
        "/usr/lib/libz.so.1",
    ]
    .into_iter()
    .find(|p| Path::new(p).is_file())
    .expect("a libz.so.1 to copy");
    for project in [&pair.pytest, &pair.rpytest] {
        fs::create_dir_all(project.path("lib")).expect("lib dir");
        fs::copy(zlib, project.path("lib/librpytestfake.so.1")).expect("copy a library");
    }
    let base = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    pair.set_env("BASE_NICE", &base.to_string());
    for project in [&mut pair.pytest, &mut pair.rpytest] {
        let lib = project.path("lib").to_string_lossy().into_owned();
        project.set_env("LD_LIBRARY_PATH", &lib);
    }
    pair.check(&["-v"]).0.assert_code(0);
    let (_, rp) = pair.check(&["-v"]);
    assert_eq!(ran(&rp), set(&[]), "warm run\n{}", rp.transcript());
    pair.set_process(3, false);
    pair.check(&["-v"]).0.assert_code(1);
    pair.rpytest.rpytest(&["--no-cache"]).run().assert_code(1);
    pair.set_process(0, true);
    pair.check(&["-v"]).0.assert_code(1);
    pair.rpytest.rpytest(&["--no-cache"]).run().assert_code(1);
    pair.set_process(0, false);
    pair.unset_env("LD_LIBRARY_PATH");
    pair.check(&["-v"]).0.assert_code(1);
    pair.rpytest.rpytest(&["--no-cache"]).run().assert_code(1);
}

/// Where temporary files go (TMPDIR, pytest's PYTEST_DEBUG_TEMPROOT for
/// `tmp_path`) and HOME (the user's site directory, computed by `site` at
/// start-up) are read before any test: inputs of every test.
#[test]
fn the_temporary_directory_and_home_enter_the_key() {
    let mut pair = pair_with(&[
        (
            "test_tmp.py",
            "import tempfile\n\ndef test_short_tempdir():\n    assert len(tempfile.gettempdir()) < 60\n\ndef test_short_tmp_path(tmp_path):\n    assert len(str(tmp_path)) < 120\n",
        ),
        (
            "test_home.py",
            "import site\n\ndef test_user_site():\n    assert \"rpytest-other-home\" not in site.getusersitepackages()\n",
        ),
    ]);
    pair.check(&["-v"]).0.assert_code(0);
    let (_, rp) = pair.check(&["-v"]);
    assert_eq!(ran(&rp), set(&[]), "warm run\n{}", rp.transcript());
    let long = pair.rpytest.out_path(&"t".repeat(90));
    fs::create_dir_all(&long).expect("a long temporary directory");
    let long = long.to_string_lossy().into_owned();
    for var in ["TMPDIR", "PYTEST_DEBUG_TEMPROOT"] {
        pair.set_env(var, &long);
        let (py, _) = pair.check(&["-v"]);
        py.assert_code(1);
        pair.unset_env(var);
    }
    let home = pair.rpytest.out_path("rpytest-other-home");
    fs::create_dir_all(&home).expect("another HOME");
    pair.set_env("HOME", &home.to_string_lossy());
    let (py, _) = pair.check(&["-v"]);
    py.assert_code(1);
    let no_cache = pair.rpytest.rpytest(&["--no-cache"]).run();
    no_cache.assert_code(1);
}

/// Every `LC_*` variable set is an input of every test: `setlocale(LC_ALL,
/// "")` reads them in C, where no recorder sees it.
#[test]
fn locale_categories_enter_the_key() {
    let mut pair = pair_with(&[(
        "test_locale.py",
        "import locale\n\ndef test_user_locale():\n    locale.setlocale(locale.LC_ALL, \"\")\n",
    )]);
    // (An empty LC_ALL is no override: each category's own variable counts.)
    pair.set_env("LC_ALL", "");
    pair.check(&["-v"]).0.assert_code(0);
    let (_, rp) = pair.check(&["-v"]);
    assert_eq!(ran(&rp), set(&[]), "warm run\n{}", rp.transcript());
    for name in ["LC_COLLATE", "LC_MESSAGES", "LC_MONETARY"] {
        pair.set_env(name, "xx_XX.UTF-8");
        pair.check(&["-v"]).0.assert_code(1);
        pair.unset_env(name);
    }
}

/// Over-run: old keys are evicted by last use, not by insertion. A file's
/// key in use stays while keys used once come and go.
#[test]
fn keys_are_evicted_by_last_use() {
    let mut pair = pair_with(&[(
        "test_env.py",
        "import os\n\ndef test_mode():\n    assert os.environ.get(\"MODE\") in {\"0\", \"1\", \"2\", \"3\"}\n",
    )]);
    let node = "test_env.py::test_mode";
    let mut run = |mode: &str| {
        pair.set_env("MODE", mode);
        let (_, rp) = pair.check(&["-v"]);
        replayed(&rp).contains(node)
    };
    assert!(!run("0"));
    assert!(run("0"), "MODE=0 is cached");
    assert!(!run("1"));
    assert!(!run("2"));
    assert!(run("0"), "MODE=0 is still cached after two other keys");
    // A fourth key: the least recently used one (MODE=1) goes, not MODE=0.
    assert!(!run("3"));
    assert!(run("0"), "the key in use was evicted");
    assert!(run("3"), "MODE=3 is kept");
    assert!(run("2"), "MODE=2 is kept");
    assert!(!run("1"), "MODE=1 was the least recently used");
}

/// A root `conftest.py` that sends extra `deps` events through rpytest's
/// plugin at the end of the session, as the recorder does (the recorder that
/// emits `volatile`, `options` and failed-import candidates itself is another
/// change; this checks the CLI's side of each field). Under stock pytest the
/// plugin is absent and the hook does nothing.
fn emitting_conftest(events: &str) -> String {
    const HOOK: &str = r#"
@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    for plugin in session.config.pluginmanager.get_plugins():
        if type(plugin).__name__ == "RpytestPlugin":
            for event in EVENTS:
                plugin.emit(dict(event, type="deps"))
"#;
    format!("import pytest\n\nEVENTS = {events}\n{HOOK}")
}

/// `"volatile": true` in a `deps` event: that file's results (all results,
/// for the session's event) are never stored.
#[test]
fn a_volatile_file_is_never_stored() {
    let pair = pair_with(&[
        (
            "conftest.py",
            &emitting_conftest(r#"[{"file": "test_v.py", "volatile": True}]"#),
        ),
        ("test_v.py", "def test_v():\n    pass\n"),
        ("test_w.py", "def test_w():\n    pass\n"),
    ]);
    pair.check(&["-v"]);
    let (_, rp) = pair.check(&["-v"]);
    assert_eq!(ran(&rp), set(&["test_v.py::test_v"]), "{}", rp.transcript());
    assert_eq!(
        replayed(&rp),
        set(&["test_w.py::test_w"]),
        "{}",
        rp.transcript()
    );
    pair.write(
        "conftest.py",
        &emitting_conftest(r#"[{"file": None, "volatile": True}]"#),
    );
    pair.check(&["-v"]);
    let (_, rp) = pair.check(&["-v"]);
    assert_eq!(
        ran(&rp),
        set(&["test_v.py::test_v", "test_w.py::test_w"]),
        "a volatile session stores nothing\n{}",
        rp.transcript()
    );
}

/// Cause 7 (the CLI's part): `"options": true` makes every argument,
/// output-only ones included, an input of that file. A test that reads the
/// verbosity is not replayed under `-vv`.
#[test]
fn a_test_that_reads_options_is_keyed_by_every_argument() {
    let pair = pair_with(&[
        (
            "conftest.py",
            &emitting_conftest(r#"[{"file": "test_opt.py", "options": True}]"#),
        ),
        (
            "test_opt.py",
            "def test_not_too_verbose(request):\n    assert request.config.get_verbosity() <= 1\n",
        ),
        ("test_plain.py", "def test_plain():\n    pass\n"),
    ]);
    pair.check(&["-v"]).0.assert_code(0);
    let (_, rp) = pair.check(&["-v"]);
    assert_eq!(ran(&rp), set(&[]), "warm run\n{}", rp.transcript());
    let (py, rp) = pair.check(&["-vv"]);
    py.assert_code(1);
    assert_eq!(
        ran(&rp),
        set(&["test_opt.py::test_not_too_verbose"]),
        "only the file that reads options runs\n{}",
        rp.transcript()
    );
    let (_, rp) = pair.check(&["-v"]);
    assert_eq!(ran(&rp), set(&[]), "back to -v\n{}", rp.transcript());
}

/// Cause 6 (the CLI's part): a failed import's candidates (`pkg/newmod.py`,
/// `pkg/newmod/__init__.py`, the namespace directory `pkg/newmod`) are
/// inputs; creating the module or the directory re-runs the test.
#[test]
fn creating_a_module_that_failed_to_import_reruns_its_test() {
    let candidates = r#"[{"file": "test_opt_dep.py", "reads": ["pkg/newmod.py", "pkg/newmod/__init__.py", "pkg/newmod"]}]"#;
    let pair = pair_with(&[
        ("conftest.py", &emitting_conftest(candidates)),
        ("pkg/__init__.py", ""),
        (
            "test_opt_dep.py",
            "import importlib\n\ndef test_without_newmod():\n    try:\n        importlib.import_module(\"pkg.newmod\")\n    except ImportError:\n        return\n    raise AssertionError(\"pkg.newmod exists\")\n",
        ),
    ]);
    pair.check(&["-v"]).0.assert_code(0);
    let (_, rp) = pair.check(&["-v"]);
    assert_eq!(ran(&rp), set(&[]), "warm run\n{}", rp.transcript());
    // A namespace package: the directory alone makes the import succeed.
    for project in [&pair.pytest, &pair.rpytest] {
        fs::create_dir(project.path("pkg/newmod")).expect("create pkg/newmod");
    }
    pair.check(&["-v"]).0.assert_code(1);
    for project in [&pair.pytest, &pair.rpytest] {
        fs::remove_dir_all(project.path("pkg/newmod")).expect("remove pkg/newmod");
    }
    pair.check(&["-v"]).0.assert_code(0);
    pair.check(&["-v"]).0.assert_code(0);
    pair.write("pkg/newmod.py", "X = 1\n");
    pair.check(&["-v"]).0.assert_code(1);
}

/// Over-run (`--why`): `--why NODEID` with a run's arguments gives the run's
/// own decision. It says "served from the cache" exactly for the nodes the
/// run then replays, a `--doctest-glob` text file (collected by a plugin,
/// learned from the last collection) included.
#[test]
fn why_says_served_exactly_when_the_run_replays() {
    let pair = pair_with(&[
        ("README.txt", ">>> 1 + 1\n2\n"),
        ("test_x.py", "def test_plain():\n    pass\n"),
    ]);
    let args = ["-v", "--doctest-glob=*.txt"];
    let nodes = ["README.txt::README.txt", "test_x.py::test_plain"];
    pair.check(&args).0.assert_code(0);
    let agree = |step: &str| {
        let claims: BTreeSet<String> = nodes
            .iter()
            .filter(|node| {
                let run = pair
                    .rpytest
                    .rpytest_cmd(&["--why", node, "--doctest-glob=*.txt"]);
                run.assert_code(0);
                run.stdout.contains("served from the cache")
            })
            .map(|n| n.to_string())
            .collect();
        let (_, rp) = pair.check(&args);
        assert_eq!(
            claims,
            replayed(&rp),
            "{step}: --why's claims differ from what the run replayed\n{}",
            rp.transcript()
        );
        claims
    };
    assert_eq!(agree("warm"), set(&nodes));
    pair.replace("test_x.py", "pass", "assert True");
    assert_eq!(agree("edited"), set(&["README.txt::README.txt"]));
    assert_eq!(agree("again"), set(&nodes));
    pair.write("README.txt", ">>> 1 + 2\n3\n");
    assert_eq!(agree("text file edited"), set(&["test_x.py::test_plain"]));
}

/// Cause 2 (the CLI's part): a variable read by name is an input whatever
/// its name; the cosmetic list (`CI`, `TERM`...) only thins the
/// whole-environment digest.
#[test]
fn a_cosmetic_name_read_by_a_test_is_an_input() {
    let mut pair = pair_with(&[(
        "test_ci.py",
        "import os\n\ndef test_not_ci():\n    assert os.environ.get(\"CI\") != \"1\"\n\ndef test_term():\n    assert os.environ.get(\"TERM\") != \"dumb\"\n",
    )]);
    pair.set_env("CI", "0");
    pair.set_env("TERM", "xterm");
    pair.check(&["-v"]).0.assert_code(0);
    let (_, rp) = pair.check(&["-v"]);
    assert_eq!(ran(&rp), set(&[]), "warm run\n{}", rp.transcript());
    pair.set_env("CI", "1");
    pair.check(&["-v"]).0.assert_code(1);
    pair.set_env("CI", "0");
    pair.set_env("TERM", "dumb");
    pair.check(&["-v"]).0.assert_code(1);
}

/// `"options": true` for the whole session (`file: null`: a conftest hook
/// read the options): every argument enters every key.
#[test]
fn options_read_by_the_session_key_every_test() {
    let mut conftest = emitting_conftest(r#"[{"file": None, "options": True}]"#);
    conftest.push_str(
        "\nimport os\n\ndef pytest_configure(config):\n    os.environ[\"VERBOSITY\"] = str(config.get_verbosity())\n",
    );
    let pair = pair_with(&[
        ("conftest.py", &conftest),
        (
            "test_v.py",
            "import os\n\ndef test_verbosity():\n    assert int(os.environ[\"VERBOSITY\"]) <= 1\n",
        ),
    ]);
    pair.check(&["-v"]).0.assert_code(0);
    let (_, rp) = pair.check(&["-v"]);
    assert_eq!(ran(&rp), set(&[]), "warm run\n{}", rp.transcript());
    pair.check(&["-vv"]).0.assert_code(1);
    let (_, rp) = pair.check(&["-v"]);
    assert_eq!(ran(&rp), set(&[]), "back to -v\n{}", rp.transcript());
}

#[test]
fn a_file_with_a_failure_runs_whole_so_its_tests_see_each_others_state() {
    // test_two fails only because test_one ran before it in the same module.
    // Replaying test_one and running test_two alone made it pass, and that
    // pass was then cached.
    let mut pair = Pair::new("same_file_state");
    pair.write_bytecode();
    for step in 0..3 {
        let (py, rp) = pair.check(&["-v"]);
        py.assert_code(1);
        assert!(
            replayed(&rp).is_empty(),
            "run {step}: a test of a file that runs was replayed\n{}",
            rp.transcript()
        );
    }
}

/// A module, and a test module, edited with their size kept and their
/// mtime given back (`touch -d`, `cp -p`; or two edits within the second
/// they were compiled in): CPython and pytest's rewriter trust the old
/// `.pyc` (same mtime second, same size) and stock pytest runs the old code.
/// A session compiles such a source again (its inode changed after the
/// `.pyc` was written), so the changed code runs, and no result of the old
/// code is stored under the new source's key — which a run without the
/// `.pyc` (a fresh clone) would replay as a pass.
#[test]
fn a_stale_pyc_of_a_changed_source_is_not_run() {
    let pair = pair_with(&[
        ("mod.py", "def f():\n    return 2\n"),
        (
            "test_mod.py",
            "from mod import f\n\ndef test_f():\n    assert f() == 2\n",
        ),
        ("test_self.py", "def test_self():\n    assert 1 == 1\n"),
    ]);
    let old = SystemTime::now() - Duration::from_secs(3600);
    set_mtime(&pair, "mod.py", old);
    set_mtime(&pair, "test_self.py", old);
    let rp = &pair.rpytest;
    rp.rpytest_cmd(&["-q"]).assert_code(0);
    assert!(
        rp.path("__pycache__").is_dir(),
        "the first run wrote no bytecode"
    );
    pair.write("mod.py", "def f():\n    return 3\n");
    pair.write("test_self.py", "def test_self():\n    assert 1 == 2\n");
    set_mtime(&pair, "mod.py", old);
    set_mtime(&pair, "test_self.py", old);
    let run = rp.rpytest_cmd(&["-v"]);
    run.assert_code(1);
    let statuses: BTreeSet<(String, String)> = run.verbose_statuses().into_iter().collect();
    for node in ["test_mod.py::test_f", "test_self.py::test_self"] {
        assert!(
            statuses.contains(&(node.to_string(), "FAILED".to_string())),
            "{node} ran its old bytecode\n{}",
            run.transcript()
        );
    }
    // Without the bytecode, as in a fresh clone: still the same failures.
    fs::remove_dir_all(rp.path("__pycache__")).expect("remove __pycache__");
    let run = rp.rpytest_cmd(&["-v"]);
    run.assert_code(1);
    assert!(
        replayed(&run).is_empty(),
        "a result of the old code was stored\n{}",
        run.transcript()
    );
}

/// The same, for a module found through a link to the project (`sys.path`
/// naming the project by another path): still the project's file.
#[test]
fn a_stale_pyc_reached_through_a_link_is_not_run() {
    let mut pair = pair_with(&[
        ("src/pkg/__init__.py", ""),
        ("src/pkg/mod.py", "def f():\n    return 1\n"),
        (
            "test_mod.py",
            "from pkg.mod import f\n\ndef test_f():\n    assert f() == 1\n",
        ),
    ]);
    let old = SystemTime::now() - Duration::from_secs(3600);
    set_mtime(&pair, "src/pkg/mod.py", old);
    let link = pair.rpytest.out_path("project-link");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(&pair.rpytest.root, &link).expect("a link to the project");
    pair.rpytest
        .set_env("PYTHONPATH", &link.join("src").to_string_lossy());
    let rp = &pair.rpytest;
    rp.rpytest_cmd(&["-q"]).assert_code(0);
    assert!(
        rp.path("src/pkg/__pycache__").is_dir(),
        "no bytecode written"
    );
    pair.write("src/pkg/mod.py", "def f():\n    return 2\n");
    set_mtime(&pair, "src/pkg/mod.py", old);
    pair.rpytest.rpytest_cmd(&["-q"]).assert_code(1);
}

/// SIGINT ignored by the command (`trap '' INT`, a script's background job)
/// stays ignored in the session, as CPython keeps it, and the signals the
/// command blocks stay blocked (the mask is kept across exec): both enter the
/// key, and the session has the command's state, not the daemon's.
#[test]
fn an_ignored_sigint_and_blocked_signals_reach_the_session() {
    let mut pair = pair_with(&[(
        "test_signals.py",
        "import signal\n\ndef test_sigint():\n    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler\n\ndef test_mask():\n    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == set()\n",
    )]);
    pair.check(&["-v"]).0.assert_code(0);
    let (_, rp) = pair.check(&["-v"]);
    assert_eq!(ran(&rp), set(&[]), "warm run\n{}", rp.transcript());
    pair.set_signals(true, &[]);
    pair.check(&["-v"]).0.assert_code(1);
    pair.rpytest.rpytest(&["--no-cache"]).run().assert_code(1);
    pair.set_signals(false, &[libc::SIGUSR1, libc::SIGTERM]);
    pair.check(&["-v"]).0.assert_code(1);
    pair.rpytest.rpytest(&["--no-cache"]).run().assert_code(1);
    pair.set_signals(false, &[]);
    let (_, rp) = pair.check(&["-v"]);
    assert_eq!(ran(&rp), set(&[]), "back as it was\n{}", rp.transcript());
}

/// `--doctest-modules` with `--ignore`, `--ignore-glob` and `--deselect`:
/// rpytest collects what stock pytest does (ignored files stay ignored, a
/// doctest module included), serves every node from the cache on the second
/// run, and a broken doctest still fails.
#[test]
fn doctests_under_ignore_and_deselect_are_cached_and_still_fail_when_broken() {
    let mut pair = Pair::new("soundness");
    pair.write_bytecode();
    pair.write(
        "pkg/mathlib.py",
        "def one():\n    \"\"\"\n    >>> one()\n    1\n    \"\"\"\n    return 1\n",
    );
    pair.write("pkg/__init__.py", "");
    pair.write("skipped/broken.py", "import not_installed_anywhere\n");
    pair.write("globbed/also.py", "import not_installed_anywhere\n");
    pair.write(
        "test_plain.py",
        "def test_kept():\n    pass\n\n\ndef test_dropped():\n    pass\n",
    );
    let args = [
        "-v",
        "--doctest-modules",
        "--ignore=skipped",
        "--ignore-glob=glob*",
        "--deselect=test_plain.py::test_dropped",
    ];
    pair.check(&args);
    let (py, rp) = pair.check(&args);
    assert_eq!(py.verbose_statuses().len(), 2, "{}", py.transcript());
    for node in [
        "pkg/mathlib.py::pkg.mathlib.one",
        "test_plain.py::test_kept",
    ] {
        assert_eq!(
            rp.verbose_statuses().get(node).map(String::as_str),
            Some("CACHED"),
            "{}",
            rp.transcript()
        );
    }
    pair.replace("pkg/mathlib.py", "return 1", "return 2");
    let (py, _) = pair.check(&args);
    assert_eq!(
        py.verbose_statuses()
            .get("pkg/mathlib.py::pkg.mathlib.one")
            .map(String::as_str),
        Some("FAILED"),
        "{}",
        py.transcript()
    );
}
