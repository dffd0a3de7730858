//! rpytest as a drop-in for pytest: on each fixture project in
//! `tests/fixtures/`, rpytest's exit code and per-test outcomes equal stock
//! pytest's on an identical copy, and warm, cached, killed and concurrent runs
//! never show stale state.
//!
//! Needs a venv with pytest, rpytest and the fixture plugin: see
//! `common::python`.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::{
    assert_same, check, process_alive, require_fixture_plugin, KillOnDrop, Outcome, Pair, Project,
    Run,
};

/// Node IDs of the keys of `run.outcomes` whose outcome is not a pass.
fn not_passed(run: &Run) -> BTreeSet<String> {
    run.outcomes
        .iter()
        .filter(|(_, outcomes)| outcomes.iter().any(|o| *o != Outcome::Passed))
        .map(|(key, _)| key.clone())
        .collect()
}

fn kill9(pid: u32) {
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_alive(pid) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert!(!process_alive(pid), "pid {pid} survived SIGKILL");
}

fn wait_for_file(path: &std::path::Path, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(text) = fs::read_to_string(path) {
            if !text.is_empty() {
                return text;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} did not appear within {timeout:?}",
            path.display()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// One behaviour per fixture: outcomes and exit code equal pytest's.

#[test]
fn conftest_hierarchy_matches_pytest() {
    let (py, _) = check("conftest_hierarchy", &[]);
    py.assert_code(0);
    assert_eq!(
        py.count(Outcome::Passed),
        14,
        "fixture drifted:\n{}",
        py.transcript()
    );
}

#[test]
fn conftest_hierarchy_subdirectory_argument_matches_pytest() {
    // Only tests/sub: the package, class and override fixtures without the rest.
    let (py, _) = check("conftest_hierarchy", &["tests/sub"]);
    py.assert_code(0);
}

#[test]
fn parametrize_odd_ids_match_pytest() {
    let (py, _) = check("parametrize_ids", &[]);
    py.assert_code(0);
    assert_eq!(
        py.count(Outcome::Passed),
        37,
        "fixture drifted:\n{}",
        py.transcript()
    );
}

#[test]
fn parametrize_odd_node_id_arguments_match_pytest() {
    let (py, _) = check(
        "parametrize_ids",
        &[
            "test_ids.py::test_explicit_ids[with space]",
            "test_ids.py::test_explicit_ids[a/b/c]",
            "test_ids.py::test_explicit_ids[[brackets]]",
            "test_ids.py::test_explicit_ids[]",
            "test_ids.py::TestInClass::test_paths[slash/id]",
        ],
    );
    py.assert_code(0);
    assert_eq!(
        py.count(Outcome::Passed),
        5,
        "fixture drifted:\n{}",
        py.transcript()
    );
}

#[test]
fn skip_skipif_xfail_xpass_strict_match_pytest() {
    let (py, rp) = check("skip_xfail", &["-rA"]);
    py.assert_code(1);
    assert_eq!(
        py.count(Outcome::Failed),
        2,
        "strict xpass + wrong raises:\n{}",
        py.transcript()
    );
    assert_eq!(
        py.count(Outcome::Xfailed),
        6,
        "fixture drifted:\n{}",
        py.transcript()
    );
    rp.assert_stdout_contains("XPASS")
        .assert_stdout_contains("[XPASS(strict)]");
}

#[test]
fn unittest_testcase_matches_pytest() {
    let (py, _) = check("unittest_case", &[]);
    py.assert_code(0);
    assert_eq!(
        py.count(Outcome::Passed),
        7,
        "fixture drifted:\n{}",
        py.transcript()
    );
}

#[test]
fn doctest_modules_from_ini_addopts_match_pytest() {
    let (py, _) = check("doctest_modules", &[]);
    py.assert_code(0);
    assert_eq!(
        py.count(Outcome::Passed),
        9,
        "fixture drifted:\n{}",
        py.transcript()
    );
}

#[test]
fn captured_output_matches_pytest() {
    let (py, rp) = check("capture", &[]);
    py.assert_code(0);
    // Captured: a passing test's prints are not shown, capsys.disabled() is.
    assert!(
        !rp.stdout.contains("CAPTURE-STDOUT-MARKER"),
        "capture leaked:\n{}",
        rp.transcript()
    );
    rp.assert_stdout_contains("CAPTURE-DISABLED-MARKER");
}

#[test]
fn dash_s_shows_prints() {
    let (py, rp) = check("capture", &["-s"]);
    py.assert_code(0);
    for marker in [
        "CAPTURE-STDOUT-MARKER",
        "CAPTURE-FD1-MARKER",
        "CAPTURE-FIXTURE-SETUP",
        "CAPTURE-IN-TEST",
        "CAPTURE-FIXTURE-TEARDOWN",
        "CAPTURE-DISABLED-MARKER",
        "CAPTURE-UNICODE-ünïcødé-✓",
    ] {
        py.assert_stdout_contains(marker);
        rp.assert_stdout_contains(marker);
    }
    for marker in ["CAPTURE-STDERR-MARKER", "CAPTURE-FD2-MARKER"] {
        assert!(
            rp.stderr.contains(marker),
            "stderr lacks {marker}:\n{}",
            rp.transcript()
        );
    }
}

/// A project plugin loaded with `-p` from ini `pythonpath` (no conftest
/// names it) fails the run in `pytest_terminal_summary`: a fully cached run
/// still runs it (learned from the session that ran the tests), so the exit
/// code is pytest's.
#[test]
fn a_project_plugins_session_hook_runs_on_a_fully_cached_run() {
    let mut pair = Pair::new("soundness");
    pair.write(
        "pytest.ini",
        "[pytest]\npythonpath = tools\naddopts = -p skipgate\n",
    );
    pair.write(
        "tools/skipgate.py",
        "import os\n\n\
         def pytest_terminal_summary(terminalreporter, exitstatus, config):\n\
         \x20   if os.environ.get('STRICT_SKIPS') == '1' and terminalreporter.stats.get('skipped'):\n\
         \x20       terminalreporter.write_line('skipgate: skipped tests are not allowed')\n\
         \x20       terminalreporter._session.exitstatus = 1\n",
    );
    pair.write(
        "test_gate.py",
        "import pytest\n\ndef test_ok():\n    pass\n\n@pytest.mark.skip(reason='todo')\ndef test_todo():\n    pass\n",
    );
    pair.rpytest.rpytest_cmd(&["-q"]).assert_code(0);
    pair.set_env("STRICT_SKIPS", "1");
    let py = pair.pytest.pytest(&["-q"]).no_junit().run();
    let rp = pair.rpytest.rpytest_cmd(&["-q"]);
    py.assert_code(1);
    rp.assert_code(1);
    rp.assert_stdout_contains("skipgate: skipped tests are not allowed");
    assert!(rp.stderr.contains("2 cached"), "{}", rp.transcript());
}

/// What a test prints inside `capsys.disabled()` reaches the terminal past
/// capture, on every run as under pytest: such a test is never stored.
#[test]
fn output_past_capture_is_printed_on_every_run() {
    let pair = Pair::new("soundness");
    pair.write(
        "test_past.py",
        "def test_p(capsys):\n    with capsys.disabled():\n        print('PAST-CAPTURE')\n",
    );
    pair.write("test_plain.py", "def test_q():\n    pass\n");
    for _ in 0..2 {
        let py = pair.pytest.pytest(&["-q"]).no_junit().run();
        let rp = pair.rpytest.rpytest_cmd(&["-q"]);
        py.assert_stdout_contains("PAST-CAPTURE");
        rp.assert_stdout_contains("PAST-CAPTURE");
    }
    let rp = pair.rpytest.rpytest_cmd(&["-q"]);
    rp.assert_stdout_contains("PAST-CAPTURE");
    assert!(rp.stderr.contains("1 cached, 1 run"), "{}", rp.transcript());
}

/// `-o addopts=...` replaces the ini's addopts, as pytest reads them: an
/// `-s` given there shows the tests' output on every run, and the ini's own
/// addopts (`-k`) no longer apply.
#[test]
fn addopts_given_with_override_ini_replace_the_inis() {
    let pair = Pair::new("soundness");
    pair.write("pytest.ini", "[pytest]\naddopts = -k nothing_matches\n");
    pair.write("test_o.py", "def test_a():\n    print('HELLO-OUT')\n");
    for _ in 0..2 {
        let py = pair
            .pytest
            .pytest(&["-q", "-o", "addopts=-s"])
            .no_junit()
            .run();
        let rp = pair.rpytest.rpytest_cmd(&["-q", "-o", "addopts=-s"]);
        py.assert_code(0);
        rp.assert_code(0);
        py.assert_stdout_contains("HELLO-OUT");
        rp.assert_stdout_contains("HELLO-OUT");
    }
}

/// A second `-s` run (or `--capture=no`, `--capture=tee-sys`,
/// `-p no:capture`) prints what the tests print, as pytest does: a stored
/// result holds nothing of it, so every test runs again.
#[test]
fn a_second_run_without_capture_still_shows_what_the_tests_print() {
    for args in [
        &["-s", "-q"][..],
        &["--capture=no", "-q"][..],
        &["--capture=tee-sys", "-q"][..],
        &["-p", "no:capture", "-q"][..],
    ] {
        let pair = Pair::new("capture");
        pair.check(args);
        let (py, rp) = pair.check(args);
        py.assert_stdout_contains("CAPTURE-IN-TEST");
        rp.assert_stdout_contains("CAPTURE-IN-TEST");
        assert!(
            rp.stderr.contains("needs every test to run"),
            "{args:?}: {}",
            rp.transcript()
        );
    }
}

/// A conftest's session hooks run on a fully cached run, as under pytest:
/// its `pytest_terminal_summary` line is printed, its `pytest_sessionfinish`
/// writes its report, its `pytest_runtest_logreport` sees every report.
#[test]
fn a_fully_cached_run_still_runs_the_conftests_session_hooks() {
    let pair = Pair::new("soundness");
    pair.write(
        "conftest.py",
        "SEEN = []\n\n\
         def pytest_runtest_logreport(report):\n    if report.when == 'call':\n        SEEN.append(report.nodeid)\n\n\
         def pytest_terminal_summary(terminalreporter):\n    terminalreporter.write_line(f'custom: seen={len(SEEN)}')\n\n\
         def pytest_sessionfinish(session):\n    with open('report.txt', 'w') as f:\n        f.write(str(len(SEEN)))\n",
    );
    pair.write(
        "test_one.py",
        "def test_a():\n    pass\n\ndef test_b():\n    pass\n",
    );
    pair.rpytest.rpytest_cmd(&["-q"]).assert_code(0);
    pair.rpytest.remove("report.txt");
    // Without --junitxml (the harness's default), which a session writes.
    let py = pair.pytest.pytest(&["-q"]).run();
    let rp = pair.rpytest.rpytest_cmd(&["-q"]);
    py.assert_stdout_contains("custom: seen=2");
    rp.assert_stdout_contains("custom: seen=2");
    rp.assert_stdout_contains("2 passed");
    assert!(rp.stderr.contains("2 cached"), "{}", rp.transcript());
    assert_eq!(
        std::fs::read_to_string(pair.rpytest.path("report.txt"))
            .ok()
            .as_deref(),
        Some("2"),
        "{}",
        rp.transcript()
    );
}

/// A failure raised before the test's own frame runs (an `async def` test
/// with no async plugin; an error in a conftest fixture) shows pytest's
/// report: no frame of rpytest's hook wrappers, and no "All traceback entries
/// are hidden" line that stock pytest does not print.
#[test]
fn failures_outside_the_test_frame_are_reported_as_pytest_reports_them() {
    let pair = Pair::new("soundness");
    pair.write(
        "conftest.py",
        "import pytest\n\n@pytest.fixture\ndef broken():\n    raise RuntimeError('fixture broke')\n",
    );
    pair.write(
        "test_outside.py",
        "async def test_async():\n    pass\n\ndef test_fixture(broken):\n    pass\n",
    );
    for tb in ["--tb=auto", "--tb=short", "--tb=native", "--tb=long"] {
        let args = ["-q", "-W", "ignore", "-p", "no:cacheprovider", tb];
        let py = pair.pytest.pytest(&args).no_junit().run();
        let rp = pair.rpytest.rpytest_cmd(&args);
        py.assert_code(1);
        rp.assert_code(1);
        let body = |r: &common::Run| -> Vec<String> {
            r.stdout
                .lines()
                .filter(|l| {
                    !l.contains(" in ") && !l.contains("/pytest/") && !l.contains("/rpytest/")
                })
                .map(|l| l.replace(pair.rpytest.path("").to_str().unwrap(), "ROOT"))
                .map(|l| l.replace(pair.pytest.path("").to_str().unwrap(), "ROOT"))
                .collect()
        };
        // A native traceback lists every frame, pluggy's for each plugin's
        // wrapper among them: rpytest's plugins add some.
        if tb != "--tb=native" {
            assert_eq!(
                body(&rp),
                body(&py),
                "{tb}\n{}\n{}",
                py.transcript(),
                rp.transcript()
            );
        }
        assert!(
            !rp.stdout.contains("window.py"),
            "{tb}: {}",
            rp.transcript()
        );
        assert!(
            !rp.stdout.contains("All traceback entries are hidden"),
            "{tb}: {}",
            rp.transcript()
        );
    }
}

#[test]
fn failing_assert_shows_rewritten_explanation() {
    let (py, rp) = check("assert_rewrite", &[]);
    py.assert_code(1);
    assert_eq!(
        py.count(Outcome::Failed),
        4,
        "fixture drifted:\n{}",
        py.transcript()
    );
    for explanation in [
        "assert 3 == 4",
        "+  where 3 = compute_total()",
        "At index 2 diff: 3 != 4",
        "Differing items:",
        "assert -5 > 0", // helpers.py, rewritten through register_assert_rewrite
    ] {
        py.assert_stdout_contains(explanation);
        rp.assert_stdout_contains(explanation);
    }
}

#[test]
fn collection_error_exits_2() {
    let (py, _) = check("collection_error", &[]);
    py.assert_code(2);
    assert_eq!(
        py.count(Outcome::Error),
        2,
        "fixture drifted:\n{}",
        py.transcript()
    );
}

#[test]
fn continue_on_collection_errors_matches_pytest() {
    let (py, _) = check("collection_error", &["--continue-on-collection-errors"]);
    py.assert_code(1);
}

#[test]
fn no_tests_exits_5() {
    let (py, _) = check("no_tests", &[]);
    py.assert_code(5);
}

#[test]
fn bad_option_exits_4() {
    let (py, rp) = check("select_expr", &["--definitely-not-a-pytest-option"]);
    py.assert_code(4);
    assert!(
        rp.stderr
            .contains("unrecognized arguments: --definitely-not-a-pytest-option"),
        "pytest's usage error missing:\n{}",
        rp.transcript()
    );
}

#[test]
fn nonexistent_path_exits_4() {
    let (py, rp) = check("select_expr", &["tests_that_do_not_exist.py"]);
    py.assert_code(4);
    let all = format!("{}{}", rp.stdout, rp.stderr);
    assert!(
        all.contains("file or directory not found"),
        "{}",
        rp.transcript()
    );
}

#[test]
fn nonexistent_node_id_exits_4() {
    let (py, _) = check("select_expr", &["test_selection.py::test_no_such_test"]);
    py.assert_code(4);
}

#[test]
fn exitfirst_matches_pytest() {
    let (py, _) = check("maxfail", &["-x"]);
    py.assert_code(1);
    assert_eq!(
        py.count(Outcome::Failed),
        1,
        "fixture drifted:\n{}",
        py.transcript()
    );
    assert_eq!(
        py.outcomes.len(),
        2,
        "-x stops after the first failure:\n{}",
        py.transcript()
    );
}

#[test]
fn maxfail_matches_pytest() {
    let pair = Pair::new("maxfail");
    let (py, _) = pair.check(&["--maxfail=2"]);
    py.assert_code(1);
    assert_eq!(
        py.count(Outcome::Failed),
        2,
        "fixture drifted:\n{}",
        py.transcript()
    );
    // A setup error counts toward the limit too.
    let (py, _) = pair.check(&["--maxfail=4"]);
    assert_eq!(
        py.count(Outcome::Error),
        1,
        "fixture drifted:\n{}",
        py.transcript()
    );
    let (py, _) = pair.check(&[]);
    assert_eq!(
        py.outcomes.len(),
        9,
        "fixture drifted:\n{}",
        py.transcript()
    );
}

#[test]
fn keyword_expression_with_parentheses_matches_pytest() {
    let (py, _) = check("select_expr", &["-k", "(alpha or beta) and not gamma"]);
    py.assert_code(0);
    assert_eq!(
        py.outcomes.len(),
        9,
        "fixture drifted:\n{}",
        py.transcript()
    );
}

#[test]
fn marker_expression_with_parentheses_matches_pytest() {
    let (py, _) = check("select_expr", &["-m", "(slow or db) and not flaky"]);
    py.assert_code(0);
    assert_eq!(
        py.outcomes.len(),
        8,
        "fixture drifted:\n{}",
        py.transcript()
    );
}

#[test]
fn keyword_and_marker_expressions_together_match_pytest() {
    let pair = Pair::new("select_expr");
    pair.check(&["-k", "not delta", "-m", "not (db or slow)"]);
    // Everything deselected: exit 5, like pytest.
    let (py, _) = pair.check(&["-k", "no_test_has_this_name"]);
    py.assert_code(5);
}

#[test]
fn entry_point_plugin_option_fixture_and_marker_work() {
    require_fixture_plugin();
    let pair = Pair::new("entrypoint_plugin");
    let (py, rp) = pair.check(&["--fixture-plugin-flag=given"]);
    py.assert_code(0);
    assert_eq!(
        py.count(Outcome::Passed),
        4,
        "fixture drifted:\n{}",
        py.transcript()
    );
    rp.assert_stdout_contains("fixture-plugin-flag: given");
    pair.check(&[]);
    // `-p no:NAME` disables it: the marker is then unknown under --strict-markers.
    let (py, _) = pair.check(&["-p", "no:rpytest_fixture_plugin"]);
    assert_ne!(py.code, 0, "fixture drifted:\n{}", py.transcript());
}

#[test]
fn plugin_reading_sys_argv_sees_pytest_argv() {
    let pair = Pair::new("argv_plugin");
    for args in [
        &[][..],
        &["-v"][..],
        &["-q", "test_argv.py"][..],
        &["-k", "argv or verbosity"][..],
    ] {
        let (py, _) = pair.check(args);
        py.assert_code(0);
    }
}

#[test]
fn directories_named_like_commands_are_test_paths() {
    let pair = Pair::new("daemon_named_dirs");
    for arg in ["daemon", "cache", "daemon/"] {
        let (py, _) = pair.check(&[arg]);
        py.assert_code(0);
        assert_eq!(
            py.count(Outcome::Passed),
            1,
            "fixture drifted:\n{}",
            py.transcript()
        );
    }
}

#[test]
fn no_daemon_mode_matches_pytest() {
    for fixture in ["conftest_hierarchy", "skip_xfail", "assert_rewrite"] {
        let pair = Pair::new(fixture);
        let py = pair.pytest.pytest(&[]).run();
        let rp = pair.rpytest.rpytest(&["--no-daemon"]).run();
        assert_same(&py, &rp);
        assert!(
            pair.rpytest.daemon_pid().is_none(),
            "--no-daemon started a daemon:\n{}",
            rp.transcript()
        );
    }
}

// ---------------------------------------------------------------------------
// No stale state between warm sessions.

#[test]
fn plugin_module_state_is_fresh_every_session() {
    let pair = Pair::new("module_state");
    let py = pair.pytest.pytest(&[]).run();
    py.assert_code(0);
    // The fixture leaks env, sys.path, cwd and module attributes on purpose;
    // its conftest fails at import if any of that is visible in a later session.
    for _ in 0..3 {
        let rp = pair.rpytest.rpytest(&["--no-cache"]).run();
        assert_same(&py, &rp);
    }
    let rp = pair.rpytest.rpytest(&[]).run();
    assert_same(&py, &rp);
}

fn warm_runs_see_edits(extra: &[&str]) {
    let pair = Pair::new("mutation");
    let run = |pair: &Pair| {
        let py = pair.pytest.pytest(&[]).run();
        let rp = pair.rpytest.rpytest(extra).run();
        assert_same(&py, &rp);
        not_passed(&py)
    };
    assert!(run(&pair).is_empty());

    // A first-party module, edited in place without changing its size.
    pair.replace("pkg/c.py", "BASE = 3", "BASE = 4");
    assert_eq!(
        run(&pair),
        BTreeSet::from(["tests.test_transitive::test_transitive_value".to_string()])
    );
    pair.replace("pkg/c.py", "BASE = 4", "BASE = 3");

    // A test file.
    pair.replace(
        "tests/test_direct.py",
        "answer() == 42",
        "answer() == 4_2 + 1",
    );
    assert_eq!(
        run(&pair),
        BTreeSet::from(["tests.test_direct::test_direct_answer".to_string()])
    );
    pair.replace(
        "tests/test_direct.py",
        "answer() == 4_2 + 1",
        "answer() == 42",
    );

    // A conftest.
    pair.replace("tests/withconf/conftest.py", "return 7", "return 8");
    assert_eq!(
        run(&pair),
        BTreeSet::from(["tests.withconf.test_conftest::test_conftest_fixture".to_string()])
    );
    pair.replace("tests/withconf/conftest.py", "return 8", "return 7");

    // Every edit reverted: all pass again.
    assert!(run(&pair).is_empty());
}

#[test]
fn warm_runs_see_edits_to_module_test_and_conftest() {
    warm_runs_see_edits(&[]);
}

#[test]
fn warm_runs_see_edits_without_cache() {
    warm_runs_see_edits(&["--no-cache"]);
}

#[test]
fn second_run_reports_cached_tests() {
    let pair = Pair::new("mutation");
    let (py, first) = pair.check(&[]);
    py.assert_code(0);
    first.assert_code(0);
    let cached = |run: &Run, how: &str| {
        run.assert_code(0);
        assert!(
            run.stderr.to_lowercase().contains("cached"),
            "second run ({how}) does not report cached tests:\n{}",
            run.transcript()
        );
    };
    // Plain (the CLI may answer alone), then with --junitxml (a session
    // replays the cached reports): both say so, and outcomes stay pytest's.
    cached(&pair.rpytest.rpytest(&[]).no_junit().run(), "plain");
    let (_, second) = pair.check(&[]);
    cached(&second, "with --junitxml");
    // -v is output-only: it must not invalidate the cache, and nothing re-ran.
    let verbose = pair.rpytest.rpytest(&["-v"]).run();
    verbose.assert_code(0);
    let reran: Vec<_> = verbose
        .verbose_statuses()
        .into_iter()
        .filter(|(_, status)| status != "CACHED")
        .collect();
    assert!(
        reran.is_empty(),
        "unchanged tests ran again: {reran:?}\n{}",
        verbose.transcript()
    );
}

/// One edit per input of the mutation fixture: (file, from, to, the one test
/// that depends on it, as JUnit classname::name and as node ID).
const MUTATIONS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "pkg/c.py",
        "BASE = 3",
        "BASE = 4",
        "tests.test_transitive::test_transitive_value",
        "tests/test_transitive.py::test_transitive_value",
    ),
    (
        "pkg/direct.py",
        "return 42",
        "return 41",
        "tests.test_direct::test_direct_answer",
        "tests/test_direct.py::test_direct_answer",
    ),
    (
        "pkg/dyn.py",
        "NAME = \"dynamic\"",
        "NAME = \"dynamix\"",
        "tests.test_dynamic::test_dynamic_import",
        "tests/test_dynamic.py::test_dynamic_import",
    ),
    (
        "data/input.txt",
        "beta",
        "bet4",
        "tests.test_data::test_data_file_lines",
        "tests/test_data.py::test_data_file_lines",
    ),
    (
        "tests/withconf/conftest.py",
        "return 7",
        "return 8",
        "tests.withconf.test_conftest::test_conftest_fixture",
        "tests/withconf/test_conftest.py::test_conftest_fixture",
    ),
    (
        "tests/initpkg/__init__.py",
        "LEVEL = \"init\"",
        "LEVEL = \"edit\"",
        "tests.initpkg.test_init::test_package_init_value",
        "tests/initpkg/test_init.py::test_package_init_value",
    ),
    (
        "tests/test_plain.py",
        "== 10",
        "== 11",
        "tests.test_plain::test_plain_depends_on_nothing",
        "tests/test_plain.py::test_plain_depends_on_nothing",
    ),
];

const ENV_TEST: (&str, &str) = (
    "tests.test_env::test_env_flag",
    "tests/test_env.py::test_env_flag",
);

/// Checks outcomes equal pytest's after every mutation and its revert; with
/// `precise`, also that exactly the dependent test ran and every other test
/// was reported CACHED.
fn mutation_matrix(precise: bool) {
    let mut pair = Pair::new("mutation");
    let args = ["-v"];
    // `failing`: the JUnit key expected to fail. `dependent`: the node ID whose
    // input changed; with `must_run` it has to run, otherwise it may run or
    // be CACHED (its inputs are back to a state that passed). Every other
    // test must be CACHED when `precise`.
    let check = |pair: &Pair,
                 failing: Option<&str>,
                 dependent: Option<&str>,
                 must_run: bool,
                 step: &str| {
        let (py, rp) = pair.check(&args);
        let expected: BTreeSet<String> = failing.iter().map(|key| key.to_string()).collect();
        assert_eq!(
            not_passed(&py),
            expected,
            "fixture drifted at {step}:\n{}",
            py.transcript()
        );
        if precise {
            let ran: BTreeSet<String> = rp
                .verbose_statuses()
                .into_iter()
                .filter(|(_, status)| status != "CACHED")
                .map(|(node, _)| node)
                .collect();
            let allowed: BTreeSet<String> = dependent.iter().map(|node| node.to_string()).collect();
            let extra: Vec<&String> = ran.difference(&allowed).collect();
            assert!(
                extra.is_empty(),
                "{step}: independent tests ran again: {extra:?}\n{}",
                rp.transcript()
            );
            if must_run {
                assert_eq!(
                    ran,
                    allowed,
                    "{step}: the dependent test did not run\n{}",
                    rp.transcript()
                );
            }
        }
    };
    // Populate the cache, then confirm it is used.
    pair.check(&args);
    check(&pair, None, None, true, "warm start");

    for (file, from, to, key, node) in MUTATIONS {
        pair.replace(file, from, to);
        check(
            &pair,
            Some(key),
            Some(node),
            true,
            &format!("after editing {file}"),
        );
        // Reverting restores inputs that passed before: running it again or
        // serving that earlier pass are both right; failing is not.
        pair.replace(file, to, from);
        check(
            &pair,
            None,
            Some(node),
            false,
            &format!("after reverting {file}"),
        );
    }

    let (env_key, env_node) = ENV_TEST;
    pair.set_env("RPYTEST_FIXTURE_FLAG", "off");
    check(
        &pair,
        Some(env_key),
        Some(env_node),
        true,
        "with RPYTEST_FIXTURE_FLAG=off",
    );
    pair.set_env("RPYTEST_FIXTURE_FLAG", "on");
    check(
        &pair,
        None,
        Some(env_node),
        true,
        "with RPYTEST_FIXTURE_FLAG=on (never passed with it)",
    );
    pair.unset_env("RPYTEST_FIXTURE_FLAG");
    check(
        &pair,
        None,
        Some(env_node),
        false,
        "with RPYTEST_FIXTURE_FLAG unset again",
    );

    // The ini file enters every key: after editing it nothing may be CACHED.
    pair.replace(
        "pytest.ini",
        "testpaths = tests",
        "testpaths = tests\nxfail_strict = true",
    );
    let (_, rp) = pair.check(&args);
    if precise {
        let cached: Vec<_> = rp
            .verbose_statuses()
            .into_iter()
            .filter(|(_, s)| s == "CACHED")
            .collect();
        assert!(
            cached.is_empty(),
            "ini change kept cached results: {cached:?}\n{}",
            rp.transcript()
        );
    }
}

#[test]
fn mutation_outcomes_match_pytest_after_each_edit() {
    mutation_matrix(false);
}

#[test]
fn mutation_reruns_exactly_the_dependents() {
    mutation_matrix(true);
}

// ---------------------------------------------------------------------------
// The daemon dies; runs overlap.

#[test]
fn run_after_daemon_sigkill_passes() {
    let pair = Pair::new("conftest_hierarchy");
    let (py, _) = pair.check(&[]);
    py.assert_code(0);
    let pid = pair
        .rpytest
        .daemon_pid()
        .expect("`rpytest --daemon status` shows no `pid: N` line after a run");
    kill9(pid);
    let rp = pair.rpytest.rpytest(&["--no-cache"]).run();
    assert_same(&py, &rp);
    let new_pid = pair
        .rpytest
        .daemon_pid()
        .expect("a new daemon after the run");
    assert_ne!(new_pid, pid);
    let rp = pair.rpytest.rpytest(&[]).run();
    assert_same(&py, &rp);
}

#[test]
fn daemon_sigkill_during_run_fails_clearly_then_recovers() {
    let pair = Pair::new("slow_session");
    let started = pair.rpytest.out_path("started.pid");
    let running = pair
        .rpytest
        .rpytest(&["--no-cache"])
        .env("RPYTEST_FIXTURE_STARTED", started.to_str().unwrap())
        .env("RPYTEST_FIXTURE_SLEEP", "60")
        .timeout(Duration::from_secs(50))
        .spawn();
    let session_pid: u32 = wait_for_file(&started, Duration::from_secs(60))
        .trim()
        .parse()
        .unwrap();
    // The session, orphaned by the kill, would sleep on; it is ours to clean up.
    let _session = KillOnDrop(session_pid);
    let daemon = pair
        .rpytest
        .daemon_pid()
        .expect("daemon pid while a run is in flight");
    kill9(daemon);
    let rp = running.wait();
    assert_ne!(
        rp.code,
        0,
        "a run whose daemon died must not succeed:\n{}",
        rp.transcript()
    );
    assert!(
        rp.stderr.to_lowercase().contains("daemon"),
        "no clear message about the daemon:\n{}",
        rp.transcript()
    );
    let (py, _) = pair.check(&[]);
    py.assert_code(0);
}

#[test]
fn ctrl_c_interrupts_like_pytest_and_daemon_survives() {
    let pair = Pair::new("slow_session");
    let interrupt = |project: &Project, rpytest: bool| {
        let started = project.out_path("started.pid");
        let _ = fs::remove_file(&started);
        let inv = if rpytest {
            project.rpytest(&["--no-cache"])
        } else {
            project.pytest(&[])
        };
        let running = inv
            .env("RPYTEST_FIXTURE_STARTED", started.to_str().unwrap())
            .env("RPYTEST_FIXTURE_SLEEP", "30")
            .timeout(Duration::from_secs(60))
            .spawn();
        wait_for_file(&started, Duration::from_secs(60));
        let _ = Command::new("kill")
            .args(["-INT", &running.pid().to_string()])
            .status();
        running.wait()
    };
    let py = interrupt(&pair.pytest, false);
    let rp = interrupt(&pair.rpytest, true);
    py.assert_code(2);
    assert_same(&py, &rp);
    rp.assert_stdout_contains("KeyboardInterrupt");
    let daemon = pair.rpytest.daemon_pid();
    let (py, _) = pair.check(&[]);
    py.assert_code(0);
    if let Some(pid) = daemon {
        assert_eq!(
            pair.rpytest.daemon_pid(),
            Some(pid),
            "Ctrl-C should leave the daemon running"
        );
    }
}

#[test]
fn concurrent_runs_in_one_project_both_succeed() {
    let pair = Pair::new("conftest_hierarchy");
    let py = pair.pytest.pytest(&[]).run();
    py.assert_code(0);
    // Cold (both race to start the daemon), then warm/cached, then uncached.
    for args in [&[][..], &[][..], &["--no-cache"][..]] {
        let a = pair.rpytest.rpytest(args).spawn();
        let b = pair.rpytest.rpytest(args).spawn();
        let (a, b) = (a.wait(), b.wait());
        assert_same(&py, &a);
        assert_same(&py, &b);
    }
}

/// An interpreter without pytest is a usage error (exit 4) that names the
/// interpreter and the fix; so is one that does not exist.
#[test]
fn interpreter_without_pytest_is_a_usage_error_naming_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let venv = dir.path().join("bare");
    let made = std::process::Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .status()
        .expect("python3 -m venv");
    assert!(made.success());
    let project = dir.path().join("proj");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join("test_x.py"), "def test_x():\n    pass\n").unwrap();
    let run = |python: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_rpytest"))
            .arg("--python")
            .arg(python)
            .current_dir(&project)
            .env("XDG_RUNTIME_DIR", dir.path())
            .output()
            .expect("run rpytest")
    };
    let bare = venv.join("bin/python");
    let out = run(&bare);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("pytest is not installed"), "{stderr}");
    assert!(stderr.contains(&bare.display().to_string()), "{stderr}");
    assert!(stderr.contains("pip install"), "{stderr}");
    let out = run(&dir.path().join("no/such/python"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
}

/// `rpytest ... | head`: when the reader goes away, both tools end quietly
/// with exit code 1 (Python's code for EPIPE), fresh and fully cached.
#[test]
fn a_closed_stdout_ends_like_pytest() {
    let project = Project::new("cache_many");
    let check = |run: &Run, what: &str| {
        assert_eq!(run.code, 1, "{what}: exit code\n{}", run.transcript());
        assert!(
            !run.stderr.contains("Traceback")
                && !run.stderr.contains("panicked")
                && !run.stderr.contains("INTERNALERROR"),
            "{what}: nothing but pytest's own silence\n{}",
            run.transcript()
        );
    };
    let stock = project.pytest(&["-v"]).no_junit().stdout_closed().run();
    check(&stock, "stock pytest");
    check(
        &project.rpytest(&["-v"]).no_junit().stdout_closed().run(),
        "rpytest (session)",
    );
    project.rpytest(&["-q"]).no_junit().run();
    check(
        &project.rpytest(&["-q"]).no_junit().stdout_closed().run(),
        "rpytest (fully cached)",
    );
}

/// `--junitxml` of a run with cached tests: pytest's own document, each
/// replayed test case marked with the property `rpytest_cached`.
#[test]
fn junit_xml_marks_cached_test_cases() {
    let project = Project::new("cache_many");
    let xml = project.out_path("cached.xml");
    let arg = format!("--junitxml={}", xml.display());
    project
        .rpytest(&["-q", &arg])
        .no_junit()
        .run()
        .assert_code(0);
    let first = fs::read_to_string(&xml).expect("first run wrote JUnit XML");
    assert!(!first.contains("rpytest_cached"), "{first}");
    let second = project.rpytest(&["-q", &arg]).no_junit().run();
    second.assert_code(0);
    let text = fs::read_to_string(&xml).expect("cached run wrote JUnit XML");
    let cases = text.matches("<testcase ").count();
    assert!(cases > 0, "{text}");
    assert_eq!(
        text.matches(r#"<property name="rpytest_cached" value="true" />"#)
            .count(),
        cases,
        "every replayed test case is marked once\n{text}"
    );
}

/// `-x` with cached files around a failing one: pytest's order, and nothing
/// reported after the run stopped (cached results included).
#[test]
fn exitfirst_with_cached_files_reports_what_pytest_reports() {
    let pair = Pair::new("soundness");
    for i in 1..=3 {
        pair.write(&format!("test_{i}.py"), "def test_ok():\n    pass\n");
    }
    pair.check(&["-v", "-x"]);
    pair.write("test_2.py", "def test_ok():\n    assert False\n");
    let (py, rp) = pair.check(&["-v", "-x"]);
    py.assert_code(1);
    assert_eq!(
        rp.verbose_statuses().keys().cloned().collect::<Vec<_>>(),
        vec![
            "test_1.py::test_ok".to_string(),
            "test_2.py::test_ok".to_string()
        ],
        "{}",
        rp.transcript()
    );
    assert!(
        rp.stdout.contains("1 failed, 1 passed"),
        "{}",
        rp.transcript()
    );
}

/// What rpytest passes to its sessions through the environment stays its own:
/// the tests see the environment stock pytest would give them.
#[test]
fn rpytest_own_variables_are_not_in_the_tests_environment() {
    let pair = Pair::new("soundness");
    pair.write(
        "test_env.py",
        "import os\n\ndef test_no_own_vars():\n    assert [k for k in os.environ if k.startswith('RPYTEST_')] == []\n",
    );
    for args in [
        &["-v", "--no-cache"][..],
        &["-v", "--no-cache", "--no-daemon"][..],
        &["-v", "--no-cache", "-n", "2"][..],
    ] {
        let py = pair.pytest.pytest(&["-v"]).run();
        let rp = pair.rpytest.rpytest(args).run();
        assert_same(&py, &rp);
        py.assert_code(0);
    }
}

#[test]
fn a_test_that_deletes_sys_getframe_matches_pytest() {
    // attrs' suite deletes sys._getframe in a test; the recorder walks frames
    // while it is gone, and pytest's own getoption runs with it gone.
    let pair = Pair::new("sys_patched");
    let (py, _) = pair.check(&["-rA"]);
    py.assert_code(0);
    let (_, cached) = pair.check(&["-rA"]);
    cached.assert_stdout_contains("3 passed");
}

#[test]
fn setup_show_on_a_cached_project_shows_every_fixture_as_pytest() {
    let pair = Pair::new("conftest_hierarchy");
    pair.check(&[]);
    pair.check(&[]);
    let (py, rp) = pair.check(&["--setup-show"]);
    let setups = |r: &common::Run| r.stdout.lines().filter(|l| l.contains("SETUP")).count();
    assert!(setups(&py) > 0, "{}", py.transcript());
    assert_eq!(setups(&rp), setups(&py), "{}", rp.transcript());
    assert!(
        rp.stderr.contains("--setup-show needs every test to run"),
        "{}",
        rp.transcript()
    );
}

/// A file a test leaves open (a log a conftest opened at import) is flushed
/// when the session ends, as CPython's teardown flushes it under pytest:
/// the next command reads what the tests wrote.
#[test]
fn a_file_left_open_is_flushed_when_the_session_ends() {
    let project = Project::new("soundness");
    project.write(
        "test_left_open.py",
        "KEEP = []\n\ndef test_x():\n    f = open(\"buf.txt\", \"w\")\n    f.write(\"buffered\\n\")\n    KEEP.append(f)\n",
    );
    for args in [&["--no-cache"][..], &["--no-cache", "-n", "2"][..]] {
        let _ = fs::remove_file(project.path("buf.txt"));
        project.rpytest(args).run().assert_code(0);
        assert_eq!(
            project.read("buf.txt"),
            "buffered\n",
            "after rpytest {args:?}"
        );
    }
}

/// The subtest lines and the summary's counts of a `-v` run.
fn subtests_shown(run: &Run) -> Vec<String> {
    let mut lines: Vec<String> = run
        .stdout
        .lines()
        .filter(|l| l.contains("SUBPASSED") || l.contains("SUBSKIPPED"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    if let Some(summary) = run.stdout.lines().rev().find(|l| l.contains(" in ")) {
        lines.push(summary.split(" in ").next().unwrap_or("").to_owned());
    }
    lines
}

/// pytest 9's own `subtests`: a cached test's subtests are replayed with it
/// (their `SUBPASSED`/`SUBSKIPPED` lines, the summary's `N subtests passed`),
/// as stock pytest shows them. Under pytest 8 the fixture does not exist:
/// both error alike.
#[test]
fn builtin_subtests_of_a_cached_test_are_shown_as_pytest_shows_them() {
    let pair = Pair::new("soundness");
    pair.write(
        "test_sub.py",
        "import pytest\n\n\ndef test_cases(subtests):\n    for i in range(3):\n        with subtests.test(msg=\"case\", i=i):\n            if i == 2:\n                pytest.skip(\"not this one\")\n            assert i < 2\n\n\ndef test_plain():\n    pass\n",
    );
    let (py, _) = pair.check(&["-v"]);
    if !py.stdout.contains("pytest-9.") {
        py.assert_code(1);
        assert!(
            py.stdout.contains("fixture 'subtests' not found"),
            "{}",
            py.transcript()
        );
        return;
    }
    py.assert_code(0);
    let (_, cached) = pair.check(&["-v"]);
    assert!(
        cached.stderr.contains("2 cached"),
        "the second run was not served from the cache\n{}",
        cached.transcript()
    );
    let want = subtests_shown(&py);
    assert!(
        want.iter().any(|l| l.contains("2 subtests passed")),
        "{}",
        py.transcript()
    );
    assert_eq!(subtests_shown(&cached), want, "{}", cached.transcript());
}

/// A daemon session's `os.environ` is what a fresh interpreter makes of the
/// command's environment: the variables in the order they were given, and,
/// with no locale set, `LC_CTYPE` coerced to a UTF-8 locale (PEP 538) for
/// the test and its children. Run under `env -i` so that the order and the
/// absence of every locale variable are the command's own.
#[test]
fn daemon_session_environment_is_a_fresh_interpreters() {
    let p = Project::new("no_tests");
    p.write(
        "test_env_fresh.py",
        "import locale, os, subprocess\n\n\n\
         def test_given_order():\n    assert list(os.environ)[:2] == ['ZZZ', 'AAA'], list(os.environ)\n\n\n\
         def test_coerced_locale():\n    \
         out = subprocess.run(['sh', '-c', 'echo ${LC_CTYPE-unset}'], capture_output=True, text=True).stdout\n    \
         assert out.strip() == os.environ.get('LC_CTYPE', 'unset')\n    \
         assert os.environ.get('LC_CTYPE') in ('C.UTF-8', 'C.utf8', 'UTF-8'), dict(os.environ)\n    \
         assert locale.setlocale(locale.LC_CTYPE) == os.environ['LC_CTYPE']\n",
    );
    let runtime = tempfile::tempdir().expect("runtime dir");
    let python = common::python();
    let bin_dir = python.parent().expect("venv bin");
    let run = |stock: bool| {
        let mut cmd = Command::new("env");
        cmd.current_dir(p.path(""))
            .arg("-i")
            .arg("ZZZ=1")
            .arg("AAA=2")
            .arg(format!("PATH={}:/usr/bin:/bin", bin_dir.display()))
            .arg(format!("HOME={}", runtime.path().display()))
            .arg(format!("XDG_RUNTIME_DIR={}", runtime.path().display()));
        if stock {
            cmd.arg(python).args(["-m", "pytest"]);
        } else {
            cmd.arg(common::rpytest_bin()).arg("--python").arg(python);
        }
        cmd.args(["-p", "no:cacheprovider", "-q", "test_env_fresh.py"]);
        let out = cmd.output().expect("run under env -i");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, text) = run(true);
    assert_eq!(code, Some(0), "stock pytest:\n{text}");
    let (code, text) = run(false);
    assert_eq!(code, Some(0), "rpytest (daemon session):\n{text}");
    let _ = Command::new(common::rpytest_bin())
        .current_dir(p.path(""))
        .env("XDG_RUNTIME_DIR", runtime.path())
        .arg("--python")
        .arg(python)
        .args(["--daemon", "stop"])
        .output();
}
