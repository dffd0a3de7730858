//! The plugin matrix: real, pinned third-party pytest plugins (installed
//! together, with pytest-xdist, in the venv `tests/run-all.sh` builds:
//! `$RPYTEST_PLUGINS_PYTHON`, default `<repo>/.venv-plugins/bin/python`), each
//! on a small project under `tests/fixtures/plugin_matrix/` that uses it the
//! way real projects do. For each plugin, stock pytest, a fresh rpytest run,
//! a cached rpytest run and `rpytest -n 2` agree on per-node outcomes, the
//! exit code and the plugin's own output, and the cached run is cached.
//!
//! Plus what a cached run must keep of a plugin's view of the whole session:
//! coverage of a partly cached run (pytest-cov), syrupy's verdict on unused
//! snapshots, pytest-sugar's progress.

mod common;

use common::{assert_same, Project, Run};
use std::path::PathBuf;
use std::sync::OnceLock;

/// The matrix venv's interpreter; panics with instructions when it is missing.
fn matrix_python() -> &'static PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let path = std::env::var_os("RPYTEST_PLUGINS_PYTHON")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| common::repo_root().join(".venv-plugins/bin/python"));
        assert!(
            path.exists(),
            "no plugin-matrix interpreter at {}: build it with tests/run-all.sh (the \
             .venv-plugins step) or point RPYTEST_PLUGINS_PYTHON at a venv with the pinned \
             plugins of tests/plugin-matrix.txt and rpytest installed",
            path.display()
        );
        path
    })
}

/// Plugins that change every session they are installed in: each cell turns
/// off the ones it does not test (as a project that does not use them would
/// not have them), so a cell shows its own plugin's behaviour.
const GLOBAL_PLUGINS: &[&str] = &["randomly", "sugar"];

/// A copy of `plugin_matrix/<name>` run with the matrix venv.
fn project(name: &str) -> Project {
    let mut p = Project::new(&format!("plugin_matrix/{name}"));
    p.set_python(matrix_python());
    let off: Vec<String> = GLOBAL_PLUGINS
        .iter()
        .filter(|g| **g != name)
        .map(|g| format!("-p no:{g}"))
        .collect();
    p.set_env("PYTEST_ADDOPTS", &off.join(" "));
    p
}

/// `rpytest: N cached, M run`: N (0 when the line is missing).
fn cached_count(run: &Run) -> usize {
    run.stderr
        .lines()
        .find_map(|l| l.strip_prefix("rpytest: "))
        .and_then(|l| l.split(" cached").next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Runs one cell: stock pytest, rpytest fresh, rpytest cached (expecting at
/// least `cached` results from the cache) and `rpytest -n 2` on fresh copies;
/// each must agree with stock on outcomes, exit code and `plugin_output`.
fn cell(
    name: &str,
    args: &[&str],
    code: i32,
    cached: usize,
    plugin_output: impl Fn(&Project, &Run) -> String,
) {
    let stock = project(name);
    let expected = stock.pytest(args).run();
    expected.assert_code(code);
    let want = plugin_output(&stock, &expected);

    let rp = project(name);
    let fresh = rp.rpytest(args).run();
    assert_same(&expected, &fresh);
    assert_eq!(
        plugin_output(&rp, &fresh),
        want,
        "{name}: the plugin's output of a fresh rpytest run differs\n{}",
        fresh.transcript()
    );
    let again = rp.rpytest(args).run();
    assert_same(&expected, &again);
    assert_eq!(
        plugin_output(&rp, &again),
        want,
        "{name}: the plugin's output of a cached rpytest run differs\n{}",
        again.transcript()
    );
    assert!(
        cached_count(&again) >= cached,
        "{name}: the second rpytest run served {} results from the cache, expected at least {cached}\n{}",
        cached_count(&again),
        again.transcript()
    );

    // `-n 2` is compared with pytest-xdist's `pytest -n 2` (some plugins
    // behave differently under xdist: pytest-benchmark turns itself off).
    let mut nargs = vec!["-n", "2"];
    nargs.extend_from_slice(args);
    let stock_n = project(name);
    let expected_n = stock_n.pytest(&nargs).run();
    assert_same(&expected, &expected_n);
    let want_n = plugin_output(&stock_n, &expected_n);
    let par = project(name);
    let parallel = par.rpytest(&nargs).run();
    assert_same(&expected_n, &parallel);
    assert_eq!(
        plugin_output(&par, &parallel),
        want_n,
        "{name}: the plugin's output of `rpytest -n 2` differs from `pytest -n 2`'s\n{}",
        parallel.transcript()
    );
}

/// The lines of `run`'s stdout from the first line containing `from` up to
/// and including the first later line containing `to`.
fn section(run: &Run, from: &str, to: &str) -> String {
    let mut out = Vec::new();
    let mut on = false;
    for line in run.stdout.lines() {
        if line.contains(from) {
            on = true;
        }
        if on {
            out.push(line.trim_end().to_owned());
            if line.contains(to) && !line.contains(from) {
                break;
            }
        }
    }
    out.join("\n")
}

fn nothing(_: &Project, _: &Run) -> String {
    String::new()
}

/// The summary line's counts without the time (`3 passed, 2 rerun`).
fn summary_counts(run: &Run) -> String {
    run.stdout
        .lines()
        .rev()
        .find(|l| l.contains(" in ") && (l.contains("passed") || l.contains("failed")))
        .map(|l| {
            l.trim_matches(|c| c == '=' || c == ' ')
                .split(" in ")
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .unwrap_or_default()
}

#[test]
fn pytest_cov_report_and_total() {
    cell("cov", &[], 0, 6, |_, r| coverage_report(r));
}

#[test]
fn pytest_randomly_shuffles_and_reseeds() {
    cell("randomly", &[], 0, 10, |_, r| {
        // The seed differs per run; that pytest-randomly announced one does not.
        let seeded = r.stdout.contains("Using --randomly-seed=");
        format!("seed announced: {seeded}")
    });
}

/// `--randomly-seed=last` is keyed as the seed pytest-randomly reads from
/// pytest's cache (the last run's), not as the word: after a passing seed and
/// a failing one, `last` fails as stock does. A fully cached run still prints
/// the seed line and stores the seed (a session answers it).
#[test]
fn pytest_randomly_last_is_the_seed_it_stands_for() {
    // Each test's seed is the run's plus its node ID's CRC32: with seed 1
    // `random.random()` is below 0.5 in this test, with seed 3 it is not.
    let src = "import random\n\n\ndef test_rand():\n    assert random.random() < 0.5\n";
    let seeded = |p: &Project, seed: &str, code: i32| -> Run {
        let arg = format!("--randomly-seed={seed}");
        let r = p.rpytest(&[&arg, "tests/test_seed.py"]).run();
        r.assert_code(code);
        r
    };
    let p = project("randomly");
    p.write("tests/test_seed.py", src);
    // No stored seed: pytest-randomly draws one (the test may pass or
    // fail); every test runs.
    let fresh = p
        .rpytest(&["--randomly-seed=last", "tests/test_seed.py"])
        .run();
    assert_eq!(cached_count(&fresh), 0, "{}", fresh.transcript());
    seeded(&p, "1", 0);
    let cached = seeded(&p, "1", 0);
    assert_eq!(cached_count(&cached), 1, "{}", cached.transcript());
    cached.assert_stdout_contains("Using --randomly-seed=1");
    let last = seeded(&p, "last", 0);
    assert_eq!(cached_count(&last), 1, "{}", last.transcript());
    last.assert_stdout_contains("Using --randomly-seed=1");
    seeded(&p, "3", 1);
    let stock = p
        .pytest(&["--randomly-seed=last", "tests/test_seed.py"])
        .run();
    stock.assert_code(1);
    let last = seeded(&p, "last", 1);
    last.assert_stdout_contains("Using --randomly-seed=3");
    // The fully cached seed-1 run stores seed 1 for the next `last`, as stock.
    seeded(&p, "1", 0);
    let last = seeded(&p, "last", 0);
    assert_eq!(cached_count(&last), 1, "{}", last.transcript());
}

#[test]
fn pytest_asyncio_auto_mode() {
    cell("asyncio", &[], 0, 5, nothing);
}

#[test]
fn pytest_django_model_with_migrations() {
    cell("django", &[], 0, 5, nothing);
}

#[test]
fn hypothesis_properties() {
    cell("hypothesis", &[], 0, 3, nothing);
}

/// A failing example saved in Hypothesis's example database (by stock
/// pytest, another branch, CI) fails its test on every run: the database
/// is an input of the tests that look their examples up in it. A passing
/// run writes nothing there: the third run is cached.
#[test]
fn hypothesis_saved_failing_example_is_an_input() {
    let mut p = project("hypothesis");
    p.write_bytecode();
    p.write(
        "tests/test_saved.py",
        // The database named: Hypothesis's "ci" profile (CI=true, as on CI
        // machines) has none by default.
        "from hypothesis import given, settings, strategies as st\n\
         from hypothesis.database import DirectoryBasedExampleDatabase\n\n\n\
         @settings(max_examples=20, database=DirectoryBasedExampleDatabase('.hypothesis/examples'))\n\
         @given(st.integers(0, 10**6))\n\
         def test_saved(x):\n    assert x != 137\n",
    );
    let args = ["tests/test_saved.py"];
    // (without --junitxml: a replayed report's session reruns the next run)
    p.rpytest(&args).no_junit().run().assert_code(0);
    p.rpytest(&args).no_junit().run().assert_code(0);
    let third = p.rpytest(&args).no_junit().run();
    third.assert_code(0);
    assert_eq!(cached_count(&third), 1, "{}", third.transcript());
    // Save x=137 under the test's database key, as a run that found it would.
    let save = "import sys; sys.path.insert(0, 'tests')\n\
        import test_saved\n\
        from hypothesis.database import DirectoryBasedExampleDatabase, choices_to_bytes\n\
        from hypothesis.internal.reflection import function_digest\n\
        key = function_digest(test_saved.test_saved.hypothesis.inner_test)\n\
        DirectoryBasedExampleDatabase('.hypothesis/examples').save(key, choices_to_bytes((137,)))\n";
    let out = std::process::Command::new(p.python())
        .arg("-c")
        .arg(save)
        .current_dir(p.path(""))
        .env_remove("PYTHONPATH")
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stock = p.pytest(&args).run();
    stock.assert_code(1);
    let run = p.rpytest(&args).run();
    assert_same(&stock, &run);
    run.assert_code(1);
}

#[test]
fn pytest_timeout_fails_the_slow_test() {
    // test_time.py has the failure and runs whole; test_other.py is served.
    cell("timeout", &[], 1, 1, |_, r| {
        let line = r
            .stdout
            .lines()
            .find(|l| l.starts_with("FAILED") && l.contains("test_too_slow"))
            .unwrap_or("");
        assert!(
            line.contains("Timeout"),
            "no timeout failure\n{}",
            r.transcript()
        );
        line.split(" - ").nth(1).unwrap_or("").to_owned()
    });
}

/// The subtests' lines of a `-v` run (without worker names and progress
/// columns, sorted: workers interleave) and the summary's counts.
fn subtest_lines(run: &Run) -> String {
    let mut lines: Vec<String> = run
        .stdout
        .lines()
        .filter(|l| l.contains("SUBPASS") || l.contains("SUBSKIP") || l.contains("SUBFAIL"))
        .map(|l| {
            l.split_whitespace()
                .filter(|w| !(w.starts_with("[gw") || w.ends_with("%]") || *w == "["))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    lines.sort();
    lines.push(summary_counts(run));
    lines.join("\n")
}

#[test]
fn pytest_subtests_are_shown_for_cached_tests() {
    // A cached test's subtests are replayed with it: their lines and the
    // summary's "N subtests passed" (pytest 9's own `subtests` goes the same
    // way: the plugin serializes its reports, rpytest stores and replays them).
    cell("subtests", &["-v"], 0, 3, |_, r| {
        let shown = subtest_lines(r);
        assert!(
            shown.contains("4 subtests passed") && shown.contains("SUBSKIP"),
            "no subtests in the output\n{}",
            r.transcript()
        );
        shown
    });
}

#[test]
fn pytest_rerunfailures_counts_reruns() {
    // The file with the flaky test reruns on every run (its reruns are part of
    // the summary); the other file is cached.
    cell("rerunfailures", &[], 1, 1, |_, r| summary_counts(r));
}

#[test]
fn pytest_benchmark_table_lists_every_benchmark() {
    cell("benchmark", &[], 0, 1, |_, r| {
        let header = r
            .stdout
            .lines()
            .find(|l| l.contains("benchmark: ") && l.contains(" tests"))
            .map(|l| l.trim_matches(|c| c == '-' || c == ' ').to_owned())
            .unwrap_or_default();
        let mut names: Vec<&str> = r
            .stdout
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|w| w.starts_with("test_") && !w.contains("::"))
            .collect();
        names.sort_unstable();
        format!("{header}\n{names:?}")
    });
}

#[test]
fn syrupy_snapshot_report() {
    cell("syrupy", &[], 0, 1, |_, r| {
        section(r, "snapshot report summary", "snapshot")
    });
}

#[test]
fn pytest_html_report_counts_every_test() {
    cell("html", &[], 0, 4, |p, _| {
        let html = std::fs::read_to_string(p.path("report/index.html")).unwrap_or_default();
        let mut results: Vec<&str> = html
            .split("&#34;result&#34;: &#34;")
            .skip(1)
            .filter_map(|s| s.split("&#34;").next())
            .collect();
        results.sort_unstable();
        let count = html
            .split("run-count\">")
            .nth(1)
            .and_then(|s| s.split(" tests").next())
            .unwrap_or("")
            .to_owned();
        format!("{results:?} run-count {count}")
    });
}

#[test]
fn pytest_mock_mocker_fixture() {
    cell("mock", &[], 0, 3, nothing);
}

#[test]
fn pytest_env_sets_variables_from_ini() {
    cell("env", &[], 0, 3, nothing);
}

// ---- coverage of a partly cached run ---------------------------------------

/// The coverage table and verdict of a run.
fn coverage_report(r: &Run) -> String {
    let table = section(r, "Name ", "TOTAL");
    assert!(
        table.contains("TOTAL"),
        "no coverage table\n{}",
        r.transcript()
    );
    let verdict = r
        .stdout
        .lines()
        .find(|l| l.contains("test coverage of"))
        .unwrap_or("")
        .to_owned();
    format!("{table}\n{verdict}")
}

#[test]
fn coverage_of_a_partly_cached_run_is_the_full_report() {
    let stock = project("cov");
    let rp = project("cov");
    rp.rpytest(&[]).run().assert_code(0);
    // One file changes so that it no longer covers `split`'s error branch:
    // the others are served from the cache, with their stored coverage data.
    for p in [&stock, &rp] {
        p.replace(
            "tests/test_money.py",
            "money.split(1, 0)",
            "money.add(1, 0)\n        raise ValueError",
        );
    }
    let expected = stock.pytest(&[]).run();
    let partial = rp.rpytest(&[]).run();
    assert_same(&expected, &partial);
    assert_eq!(coverage_report(&partial), coverage_report(&expected));
    assert!(
        coverage_report(&expected).contains("   10, 16-17"),
        "the changed test must leave line 10 uncovered\n{}",
        expected.transcript()
    );
    assert_eq!(
        cached_count(&partial),
        3,
        "test_shapes.py and test_both.py come from the cache\n{}",
        partial.transcript()
    );
}

#[test]
fn coverage_xml_and_fail_under_match_stock_and_a_failing_verdict_is_not_cached() {
    let args = ["--cov-report=xml:cov.xml", "--cov-fail-under=80"];
    let stock = project("cov");
    let expected = stock.pytest(&args).run();
    expected.assert_code(1); // 78.57% < 80
    let rp = project("cov");
    rp.rpytest(&args).run().assert_code(1);
    // The session failed with every test passing (pytest-cov judged it as a
    // whole): its results were not stored, and the rerun runs everything.
    let cached = rp.rpytest(&args).run();
    assert_same(&expected, &cached);
    assert_eq!(cached_count(&cached), 0, "{}", cached.transcript());
    assert!(
        cached.stdout.contains("FAIL Required test coverage of 80"),
        "{}",
        cached.transcript()
    );
    // The XML report's totals, without its timestamp and source path.
    let totals = |p: &Project| {
        let xml = p.read("cov.xml");
        let coverage_tag = xml
            .split("<coverage ")
            .nth(1)
            .and_then(|s| s.split('>').next())
            .unwrap_or("")
            .split_whitespace()
            .filter(|a| !a.starts_with("timestamp="))
            .collect::<Vec<_>>()
            .join(" ");
        let lines = xml.matches("<line ").count();
        format!("{coverage_tag} lines={lines}")
    };
    assert_eq!(totals(&rp), totals(&stock));
}

#[test]
fn a_cached_file_without_coverage_data_runs() {
    let rp = project("cov");
    // Results stored by a run without coverage carry no coverage data.
    rp.rpytest(&["--cov=pkg", "--no-cov"]).run().assert_code(0);
    let first = rp.rpytest(&[]).run();
    first.assert_code(0);
    let stock = project("cov");
    let expected = stock.pytest(&[]).run();
    assert_eq!(coverage_report(&first), coverage_report(&expected));
    // A changed coverage configuration: the stored data is not valid for it.
    rp.replace(
        "pyproject.toml",
        "fail_under = 60",
        "fail_under = 60\n\n[tool.coverage.run]\nomit = [\"pkg/unused.py\"]",
    );
    stock.replace(
        "pyproject.toml",
        "fail_under = 60",
        "fail_under = 60\n\n[tool.coverage.run]\nomit = [\"pkg/unused.py\"]",
    );
    let changed = rp.rpytest(&[]).run();
    assert_eq!(
        coverage_report(&changed),
        coverage_report(&stock.pytest(&[]).run())
    );
}

/// coverage.py's warnings about unmeasured code are about the whole run: a
/// fully cached run does not warn that the measured package was never
/// imported (its stored data covers it), and still warns about a source
/// package nothing measured, as stock pytest-cov does.
#[test]
fn a_cached_coverage_run_warns_about_unmeasured_code_as_stock_does() {
    let args = ["--cov=nosuchpkg"];
    let warnings = |r: &Run| -> Vec<String> {
        let mut w: Vec<String> = r
            .stdout
            .lines()
            .chain(r.stderr.lines())
            .filter(|l| l.contains("never imported") || l.contains("No data was collected"))
            .map(|l| l.trim().to_owned())
            .collect();
        w.sort();
        w.dedup();
        w
    };
    let stock = project("cov");
    let expected = warnings(&stock.pytest(&args).run());
    assert!(
        expected
            .iter()
            .any(|l| l.contains("Module nosuchpkg was never imported")),
        "{expected:?}"
    );
    let rp = project("cov");
    rp.rpytest(&args).run().assert_code(0);
    let cached = rp.rpytest(&args).run();
    cached.assert_code(0);
    assert!(cached_count(&cached) > 0, "{}", cached.transcript());
    assert_eq!(warnings(&cached), expected, "{}", cached.transcript());
}

#[test]
fn coverage_data_file_holds_no_rpytest_contexts() {
    let rp = project("cov");
    rp.rpytest(&[]).run().assert_code(0);
    rp.replace("tests/test_shapes.py", "== 4", "== 4  # changed");
    rp.rpytest(&[]).run().assert_code(0);
    let out = std::process::Command::new(matrix_python())
        .current_dir(&rp.root)
        .args([
            "-c",
            "from coverage import CoverageData\nd = CoverageData('.coverage')\nd.read()\nprint(sorted(d.measured_contexts()))",
        ])
        .output()
        .expect("run python");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "['']");
}

#[test]
fn a_run_without_pytest_cov_options_is_unaffected() {
    // pytest-cov installed but not asked for: no coverage section, all cached.
    let rp = project("asyncio");
    rp.rpytest(&[]).run().assert_code(0);
    let again = rp.rpytest(&[]).run();
    again.assert_code(0);
    assert!(!again.stdout.contains("coverage"), "{}", again.transcript());
    assert_eq!(cached_count(&again), 5, "{}", again.transcript());
}

// ---- plugins that judge the whole session ----------------------------------

#[test]
fn syrupy_unused_snapshot_fails_the_cached_rerun_too() {
    let extra = "# name: test_render_carol\n  dict({\n    'greeting': 'hello carol',\n    'name': 'carol',\n  })\n# ---\n";
    let stock = project("syrupy");
    let rp = project("syrupy");
    for p in [&stock, &rp] {
        let ambr = p.read("tests/__snapshots__/test_render.ambr");
        p.write(
            "tests/__snapshots__/test_render.ambr",
            &format!("{ambr}{extra}"),
        );
    }
    let expected = stock.pytest(&[]).run();
    expected.assert_code(1);
    let want = section(&expected, "snapshot report summary", "unused");
    assert!(
        want.contains("1 snapshot unused"),
        "{}",
        expected.transcript()
    );
    for _ in 0..2 {
        let run = rp.rpytest(&[]).run();
        assert_same(&expected, &run);
        assert_eq!(section(&run, "snapshot report summary", "unused"), want);
    }
}

/// A session that fails with every test passing was judged as a whole:
/// after the only snapshot test stops using `snapshot`, its snapshot is
/// unused and pytest exits 1 on every run. The files no longer use the
/// fixture, but a failing session's results are not stored, so every rpytest
/// run gives syrupy its say.
#[test]
fn a_session_failed_with_every_test_passing_is_not_cached() {
    let stock = project("syrupy");
    let rp = project("syrupy");
    rp.rpytest(&[]).run().assert_code(0);
    for p in [&stock, &rp] {
        p.write("tests/test_render.py", "def test_other():\n    pass\n");
    }
    let expected = stock.pytest(&[]).run();
    expected.assert_code(1);
    for _ in 0..2 {
        let run = rp.rpytest(&[]).run();
        assert_same(&expected, &run);
        assert!(
            run.stdout.contains("unused"),
            "syrupy's report is missing\n{}",
            run.transcript()
        );
    }
}

#[test]
fn pytest_sugar_progress_ends_at_100_percent_on_a_cached_run() {
    let rp = project("sugar");
    let args = ["--force-sugar"];
    rp.rpytest(&args).run().assert_code(0);
    rp.replace("tests/test_beta.py", "n >= 0", "n >= 0  # changed");
    for extra in [&[][..], &["-k", "alpha or beta"][..]] {
        let mut a = args.to_vec();
        a.extend_from_slice(extra);
        let run = rp.rpytest(&a).run();
        run.assert_code(0);
        let percents: Vec<u32> = run
            .stdout
            .split(|c: char| !(c.is_ascii_digit() || c == '%'))
            .filter_map(|w| w.strip_suffix('%'))
            .filter_map(|n| n.parse().ok())
            .collect();
        assert!(
            cached_count(&run) > 0,
            "nothing was cached\n{}",
            run.transcript()
        );
        assert_eq!(
            percents.iter().max(),
            Some(&100),
            "progress {percents:?}\n{}",
            run.transcript()
        );
    }
}

#[test]
fn coverage_stored_by_a_narrowed_run_does_not_stand_for_the_whole_file() {
    let stock = project("cov");
    let expected = stock.pytest(&[]).run();
    let rp = project("cov");
    // Node IDs and -k narrow what runs of a file: that data covers a part of it.
    // (Each fails pytest-cov's fail-under, as under stock pytest.)
    rp.rpytest(&["tests/test_money.py::test_add"])
        .run()
        .assert_code(1);
    rp.rpytest(&["-k", "sides"]).run().assert_code(1);
    let full = rp.rpytest(&[]).run();
    assert_same(&expected, &full);
    assert_eq!(coverage_report(&full), coverage_report(&expected));
    let again = rp.rpytest(&[]).run();
    assert_eq!(coverage_report(&again), coverage_report(&expected));
    assert_eq!(cached_count(&again), 6, "{}", again.transcript());
}

#[test]
fn coverage_runs_after_the_daemon_restarts_with_its_warm_set() {
    // The daemon preloads what sessions imported; coverage.py must still
    // measure in a session forked from a daemon that started after one.
    let stock = project("cov");
    let expected = stock.pytest(&[]).run();
    let rp = project("cov");
    rp.rpytest(&[]).run().assert_code(0);
    rp.rpytest_cmd(&["--daemon", "stop"]).assert_code(0);
    rp.replace("tests/test_shapes.py", "== 4", "== 4  # changed");
    let run = rp.rpytest(&[]).run();
    assert_same(&expected, &run);
    assert_eq!(coverage_report(&run), coverage_report(&expected));
}

#[test]
fn a_new_file_in_the_root_keeps_coverage_runs_cached() {
    // pytest-cov lists the data file's directory (the root) to erase and
    // combine `.coverage.*`: that listing is not an input of the tests.
    let rp = project("cov");
    rp.rpytest(&[]).run().assert_code(0);
    let all = cached_count(&rp.rpytest(&[]).run());
    assert!(all > 0);
    rp.write("NOTES.txt", "a note\n");
    let after = rp.rpytest(&[]).run();
    after.assert_code(0);
    assert_eq!(cached_count(&after), all, "{}", after.transcript());
}
