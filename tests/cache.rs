//! The result cache end to end (issue 3, "Tests it must have", beyond the
//! mutation matrix in tests/dropin.rs): real binary, real daemon, real pytest.
//!
//! Every check names exactly which nodes ran and which were replayed: `-v`
//! shows `CACHED` for a replayed pass, and the stderr line
//! `rpytest: N cached, M run` gives the counts. Outcomes are compared with
//! stock pytest on an identical copy (`Pair`) after every step.
//!
//! Needs a venv with pytest, rpytest and the fixture plugin: see
//! `common::python`. `package_version_change_reruns_tests` also builds a
//! throwaway venv (once per test binary) with `pip install pytest==8.4.2`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{
    assert_same, fixture_source, pip, python, repo_root, require_fixture_plugin, Outcome, Pair,
    Project, Run,
};

// ---------------------------------------------------------------------------
// Helpers.

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Node IDs `-v` reported with a status other than `CACHED`: they ran.
fn ran(run: &Run) -> BTreeSet<String> {
    run.verbose_statuses()
        .into_iter()
        .filter(|(_, s)| s != "CACHED")
        .map(|(n, _)| n)
        .collect()
}

/// Node IDs `-v` reported as `CACHED`.
fn replayed(run: &Run) -> BTreeSet<String> {
    run.verbose_statuses()
        .into_iter()
        .filter(|(_, s)| s == "CACHED")
        .map(|(n, _)| n)
        .collect()
}

/// Every node ID `-v` reported.
fn reported(run: &Run) -> BTreeSet<String> {
    run.verbose_statuses().into_keys().collect()
}

/// `(cached, run)` from the stderr line `rpytest: N cached, M run, ...`;
/// `(0, _)` when the line is absent (rpytest prints it only when something
/// was cached), with `usize::MAX` for the unknown run count.
fn cache_counts(run: &Run) -> (usize, usize) {
    for line in run.stderr.lines() {
        let Some(rest) = line.trim().strip_prefix("rpytest: ") else {
            continue;
        };
        let mut parts = rest.split(", ");
        let (Some(c), Some(r)) = (parts.next(), parts.next()) else {
            continue;
        };
        let (Some(c), Some(r)) = (c.strip_suffix(" cached"), r.strip_suffix(" run")) else {
            continue;
        };
        if let (Ok(c), Ok(r)) = (c.parse(), r.parse()) {
            return (c, r);
        }
    }
    (0, usize::MAX)
}

/// Asserts exactly `expected` ran (by `-v`), everything else reported was
/// `CACHED`, and the stderr count of cached nodes agrees.
fn assert_ran(run: &Run, expected: &[&str], step: &str) {
    let expected = set(expected);
    assert_eq!(
        ran(run),
        expected,
        "{step}: the nodes that ran (not CACHED) are wrong\n{}",
        run.transcript()
    );
    let cached = replayed(run).len();
    assert_eq!(
        cache_counts(run).0,
        cached,
        "{step}: the `rpytest: N cached` line disagrees with -v\n{}",
        run.transcript()
    );
}

/// Asserts nothing was replayed: every reported node ran.
fn assert_all_ran(run: &Run, step: &str) {
    assert!(
        replayed(run).is_empty() && cache_counts(run).0 == 0,
        "{step}: nothing may be served from the cache, but these were: {:?}\n{}",
        replayed(run),
        run.transcript()
    );
    assert!(
        !reported(run).is_empty(),
        "{step}: no node reported (run without -v?)\n{}",
        run.transcript()
    );
}

/// `--result-cache stats` as label → count.
fn stats(project: &Project) -> BTreeMap<String, i64> {
    let run = project.rpytest_cmd(&["--result-cache", "stats"]);
    run.assert_code(0);
    run.stdout
        .lines()
        .filter_map(|l| {
            let (label, n) = l.rsplit_once(": ")?;
            Some((label.to_string(), n.trim().parse().ok()?))
        })
        .collect()
}

fn stat(stats: &BTreeMap<String, i64>, label: &str) -> i64 {
    *stats
        .get(label)
        .unwrap_or_else(|| panic!("`--result-cache stats` has no {label:?} line: {stats:?}"))
}

fn assert_warns(run: &Run, needles: &[&str], step: &str) {
    let stderr = run.stderr.to_lowercase();
    assert!(
        stderr.contains("warning") && needles.iter().all(|n| stderr.contains(n)),
        "{step}: expected a warning on stderr mentioning {needles:?}\n{}",
        run.transcript()
    );
}

fn rpytest_db(project: &Project) -> PathBuf {
    project.path(".rpytest/cache.db")
}

// ---------------------------------------------------------------------------
// Failures are never reused.

#[test]
fn flaky_test_runs_until_it_passes_and_failures_always_run() {
    let mut pair = Pair::new("cache_flaky");
    // Each copy counts its own attempts, outside its project tree.
    let py_counter = pair.pytest.out_path("counter");
    let rp_counter = pair.rpytest.out_path("counter");
    pair.pytest
        .set_env("CACHE_FIXTURE_COUNTER", py_counter.to_str().unwrap());
    pair.rpytest
        .set_env("CACHE_FIXTURE_COUNTER", rp_counter.to_str().unwrap());
    let flaky = "tests/test_flaky.py::test_fails_then_passes";
    let always = "tests/test_always_fails.py::test_always_fails";
    let stable = "tests/test_stable.py::test_stable";

    let (py, rp) = pair.check(&["-v"]);
    py.assert_code(1);
    assert_eq!(py.count(Outcome::Failed), 2, "{}", py.transcript());
    assert_ran(&rp, &[flaky, always, stable], "first run");

    // Nothing changed, but the flaky test failed: it runs again (and passes);
    // the failing test runs again and still fails.
    let (py, rp) = pair.check(&["-v"]);
    py.assert_code(1);
    assert_eq!(py.count(Outcome::Failed), 1, "{}", py.transcript());
    assert_ran(&rp, &[flaky, always], "second run");
    assert_eq!(fs::read_to_string(&rp_counter).unwrap().trim(), "2");

    // Now its pass is reusable; the failure still is not.
    let (_, rp) = pair.check(&["-v"]);
    rp.assert_code(1);
    assert_ran(&rp, &[always], "third run");
    assert_eq!(
        fs::read_to_string(&rp_counter).unwrap().trim(),
        "2",
        "the cached flaky test ran anyway"
    );
    // Without JUnit (the CLI could answer alone if it wrongly thought all
    // was cached): the failure still runs and the exit code is 1.
    let plain = pair.rpytest.rpytest(&[]).no_junit().run();
    plain.assert_code(1);
    assert_eq!(cache_counts(&plain), (2, 1), "{}", plain.transcript());
}

// ---------------------------------------------------------------------------
// Files and tests come and go.

const LIFECYCLE_NODES: &[&str] = &[
    "tests/test_eager.py::test_eager",
    "tests/test_lazy.py::test_lazy",
    "tests/test_lazy.py::test_lazy_neighbour",
    "tests/test_other.py::test_other",
    "tests/test_rename.py::test_keeper",
    "tests/test_rename.py::test_old_name",
];

#[test]
fn deleted_dependency_runs_its_dependents_and_errors_like_pytest() {
    let pair = Pair::new("cache_lifecycle");
    let (_, rp) = pair.check(&["-v"]);
    rp.assert_code(0);
    assert_ran(&rp, LIFECYCLE_NODES, "warm-up");
    let (_, rp) = pair.check(&["-v"]);
    assert_ran(&rp, &[], "unchanged");

    // A module imported inside a test: that file runs, the test fails.
    let lazy = pair.rpytest.read("pkg/lazy.py");
    pair.remove("pkg/lazy.py");
    let (py, rp) = pair.check(&["-v"]);
    py.assert_code(1);
    assert_eq!(
        py.outcomes.get("tests.test_lazy::test_lazy"),
        Some(&vec![Outcome::Failed]),
        "{}",
        py.transcript()
    );
    assert_ran(
        &rp,
        &[
            "tests/test_lazy.py::test_lazy",
            "tests/test_lazy.py::test_lazy_neighbour",
        ],
        "pkg/lazy.py deleted",
    );
    // Still failing on the next run: a failure is never reused, and its
    // file runs whole.
    let (_, rp) = pair.check(&["-v"]);
    assert_ran(
        &rp,
        &[
            "tests/test_lazy.py::test_lazy",
            "tests/test_lazy.py::test_lazy_neighbour",
        ],
        "pkg/lazy.py still deleted",
    );
    pair.write("pkg/lazy.py", &lazy);
    let (py, _) = pair.check(&["-v"]);
    py.assert_code(0);

    // A module imported at module level: a collection error, exit 2, as pytest.
    let eager = pair.rpytest.read("pkg/eager.py");
    pair.remove("pkg/eager.py");
    let (py, rp) = pair.check(&["-v"]);
    py.assert_code(2);
    assert!(
        rp.stdout.contains("ModuleNotFoundError"),
        "{}",
        rp.transcript()
    );
    // Without JUnit too (no fully cached answer may hide the error).
    let plain = pair.rpytest.rpytest(&[]).no_junit().run();
    plain.assert_code(2);
    pair.write("pkg/eager.py", &eager);
    let (py, _) = pair.check(&["-v"]);
    py.assert_code(0);
}

#[test]
fn renamed_test_runs_under_its_new_name_and_the_old_one_vanishes() {
    let pair = Pair::new("cache_lifecycle");
    pair.check(&["-v"]);
    pair.replace(
        "tests/test_rename.py",
        "def test_old_name",
        "def test_new_name",
    );
    let (py, rp) = pair.check(&["-v"]);
    py.assert_code(0);
    // The file changed, so its tests run; every other file is served.
    assert_ran(
        &rp,
        &[
            "tests/test_rename.py::test_keeper",
            "tests/test_rename.py::test_new_name",
        ],
        "after the rename",
    );
    assert!(
        !rp.stdout.contains("test_old_name") && !rp.outcomes.keys().any(|k| k.contains("old")),
        "the old node is still reported\n{}",
        rp.transcript()
    );
    // Fully cached now, with and without JUnit, and the old name stays gone.
    let (_, rp) = pair.check(&["-v"]);
    assert_ran(&rp, &[], "rename, second run");
    let plain = pair.rpytest.rpytest(&["-v"]).no_junit().run();
    plain.assert_code(0);
    assert_eq!(cache_counts(&plain).0, 6, "{}", plain.transcript());
    assert!(
        !plain.stdout.contains("test_old_name"),
        "{}",
        plain.transcript()
    );
}

#[test]
fn added_test_file_runs_alone_and_removed_file_vanishes() {
    let pair = Pair::new("cache_lifecycle");
    pair.check(&["-v"]);
    // Populate the fully cached fast path too.
    pair.rpytest.rpytest(&[]).no_junit().run().assert_code(0);

    pair.write(
        "tests/test_added.py",
        "def test_added_ok():\n    assert True\n\n\ndef test_added_fails():\n    assert 0\n",
    );
    let (py, rp) = pair.check(&["-v"]);
    py.assert_code(1);
    assert_ran(
        &rp,
        &[
            "tests/test_added.py::test_added_fails",
            "tests/test_added.py::test_added_ok",
        ],
        "a new test file",
    );
    let plain = pair.rpytest.rpytest(&[]).no_junit().run();
    plain.assert_code(1);
    // The file with a failure runs whole.
    assert_eq!(cache_counts(&plain), (6, 2), "{}", plain.transcript());

    pair.remove("tests/test_added.py");
    let (py, rp) = pair.check(&["-v"]);
    py.assert_code(0);
    assert_ran(&rp, &[], "the new test file removed");
    assert_eq!(reported(&rp), set(LIFECYCLE_NODES), "{}", rp.transcript());
    // The CLI's own answer (no JUnit, no -v) must not count the removed nodes.
    let plain = pair.rpytest.rpytest(&[]).no_junit().run();
    plain.assert_code(0);
    assert_eq!(cache_counts(&plain), (6, 0), "{}", plain.transcript());
    assert!(
        plain.stdout.contains("6 passed") && !plain.stdout.contains("failed"),
        "{}",
        plain.transcript()
    );

    // Every test file gone: pytest says "no tests ran", exit 5, and so must rpytest.
    for f in [
        "tests/test_eager.py",
        "tests/test_lazy.py",
        "tests/test_other.py",
        "tests/test_rename.py",
    ] {
        pair.remove(f);
    }
    let (py, _) = pair.check(&[]);
    py.assert_code(5);
    pair.rpytest.rpytest(&[]).no_junit().run().assert_code(5);
}

// ---------------------------------------------------------------------------
// Arguments.

#[test]
fn outcome_changing_arguments_change_the_key_output_arguments_do_not() {
    require_fixture_plugin();
    let pair = Pair::new("cache_args");
    let all = [
        "tests/test_plain.py::test_plain",
        "tests/test_uses_plugin.py::test_plugin_value",
        "tests/test_warns.py::test_warns",
    ];
    let (py, rp) = pair.check(&["-v"]);
    py.assert_code(0);
    assert_ran(&rp, &all, "warm-up");

    // Output-only options: everything stays cached.
    for args in [
        &["-v"][..],
        &["-q"],
        &["--tb=short"],
        &["--tb", "line"],
        &["-rA"],
        &["-r", "fE"],
        &["-v", "--tb=short", "-rA"],
        &["-vv"],
    ] {
        let (_, rp) = pair.check(args);
        rp.assert_code(0);
        assert_eq!(
            cache_counts(&rp),
            (3, 0),
            "output-only arguments {args:?} must not invalidate the cache\n{}",
            rp.transcript()
        );
    }

    // -W error: a new key, so everything runs, and the warning now fails.
    let (py, rp) = pair.check(&["-v", "-W", "error"]);
    py.assert_code(1);
    assert_eq!(
        py.outcomes.get("tests.test_warns::test_warns"),
        Some(&vec![Outcome::Failed]),
        "{}",
        py.transcript()
    );
    assert_ran(&rp, &all, "-W error");
    // Same arguments again: passes under -W error are reusable under -W error.
    let (_, rp) = pair.check(&["-v", "-W", "error"]);
    assert_ran(&rp, &["tests/test_warns.py::test_warns"], "-W error again");
    // The spelling -Werror must never be served the plain run's pass.
    let (_, rp) = pair.check(&["-v", "-Werror"]);
    rp.assert_code(1);
    // Back to no arguments: the first key's results are still there.
    let (_, rp) = pair.check(&["-v"]);
    assert_ran(&rp, &[], "back to plain -v");

    // -p no:PLUGIN: the plugin's fixture is gone, the test errors.
    let (py, rp) = pair.check(&["-v", "-p", "no:rpytest_fixture_plugin"]);
    py.assert_code(1);
    assert_eq!(
        py.outcomes.get("tests.test_uses_plugin::test_plugin_value"),
        Some(&vec![Outcome::Error]),
        "{}",
        py.transcript()
    );
    assert_ran(&rp, &all, "-p no:rpytest_fixture_plugin");
    let (_, rp) = pair.check(&["-v", "-pno:rpytest_fixture_plugin"]);
    rp.assert_code(1);
    let (_, rp) = pair.check(&["-v"]);
    assert_ran(&rp, &[], "plugin back");
}

// ---------------------------------------------------------------------------
// Environment and configuration.

#[test]
fn env_vars_read_by_a_test_rerun_only_that_test_whichever_way_it_reads_them() {
    let mut pair = Pair::new("cache_env");
    let (py, rp) = pair.check(&["-v"]);
    py.assert_code(0);
    assert_eq!(reported(&rp).len(), 6, "{}", rp.transcript());
    let (_, rp) = pair.check(&["-v"]);
    assert_ran(&rp, &[], "unchanged");

    for (var, node) in [
        ("CACHE_FIXTURE_GET", "tests/test_env_get.py::test_env_get"),
        (
            "CACHE_FIXTURE_GETENV",
            "tests/test_env_getenv.py::test_env_getenv",
        ),
        (
            "CACHE_FIXTURE_ITEM",
            "tests/test_env_item.py::test_env_item",
        ),
        (
            "CACHE_FIXTURE_CONTAINS",
            "tests/test_env_contains.py::test_env_contains",
        ),
        (
            "CACHE_FIXTURE_MODULE",
            "tests/test_env_module_level.py::test_env_module_level",
        ),
    ] {
        pair.set_env(var, "bad");
        let (py, rp) = pair.check(&["-v"]);
        py.assert_code(1);
        assert_ran(&rp, &[node], &format!("{var}=bad"));
        pair.unset_env(var);
        let (py, rp) = pair.check(&["-v"]);
        py.assert_code(0);
        // Back to inputs that passed: served, or run again; nothing else runs.
        let extra: Vec<String> = ran(&rp).into_iter().filter(|n| n != node).collect();
        assert!(
            extra.is_empty(),
            "{var} unset again: {extra:?} ran\n{}",
            rp.transcript()
        );
    }
}

#[test]
fn python_hash_seed_changes_every_key() {
    let mut pair = Pair::new("cache_env");
    pair.set_env("PYTHONHASHSEED", "0");
    pair.check(&["-v"]);
    let (_, rp) = pair.check(&["-v"]);
    assert_ran(&rp, &[], "PYTHONHASHSEED=0 twice");
    pair.set_env("PYTHONHASHSEED", "1");
    let (_, rp) = pair.check(&["-v"]);
    assert_all_ran(&rp, "PYTHONHASHSEED=1");
    assert_eq!(reported(&rp).len(), 6, "{}", rp.transcript());
    pair.unset_env("PYTHONHASHSEED");
    let (_, rp) = pair.check(&["-v"]);
    assert_all_ran(&rp, "PYTHONHASHSEED unset");
}

#[test]
fn pyproject_ini_change_reruns_everything() {
    let pair = Pair::new("cache_env");
    pair.check(&["-v"]);
    let (_, rp) = pair.check(&["-v"]);
    assert_ran(&rp, &[], "unchanged");
    // The ini file is pyproject.toml here; strict xfail changes no outcome in
    // this fixture, but rpytest cannot know that.
    pair.replace(
        "pyproject.toml",
        "testpaths = [\"tests\"]",
        "testpaths = [\"tests\"]\nxfail_strict = true",
    );
    let (_, rp) = pair.check(&["-v"]);
    assert_all_ran(&rp, "pyproject.toml [tool.pytest.ini_options] edited");
    let (_, rp) = pair.check(&["-v"]);
    assert_ran(&rp, &[], "edited ini, second run");
}

// ---------------------------------------------------------------------------
// Installed packages.

/// A venv of our own with pytest 8.4.2 and rpytest's Python package (by a
/// `.pth` file), whose site-packages the tests may change. Built once under
/// cargo's target tmpdir and reused by later runs (a marker file says it is
/// complete).
fn package_venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cache-test-venv");
        let py = venv.join("bin/python");
        let marker = venv.join("rpytest-cache-test-ready");
        if marker.is_file() {
            return py;
        }
        let _ = fs::remove_dir_all(&venv);
        let status = Command::new(python())
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("run python -m venv");
        assert!(status.success(), "python -m venv failed");
        pip(&py, &["install", "-q", "pytest==8.4.2", "wheel"]);
        let out = Command::new(&py)
            .args([
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ])
            .output()
            .expect("ask the venv for its site-packages");
        let site = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        fs::write(
            site.join("rpytest_src.pth"),
            format!("{}\n", repo_root().join("python").display()),
        )
        .expect("write the .pth file");
        fs::write(&marker, "").expect("write the venv marker");
        py
    })
}

/// Installs `tests/fixtures/cache_pkg/<version>` (non-editable) from a copy,
/// so the build leaves nothing in the repository.
fn install_fixture_package(py: &Path, version: &str) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let src = tmp.path().join(version);
    common::copy_tree(&fixture_source(&format!("cache_pkg/{version}")), &src);
    pip(
        py,
        &[
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            src.to_str().unwrap(),
        ],
    );
}

#[test]
fn package_version_change_reruns_tests() {
    let venv_py = package_venv();
    install_fixture_package(venv_py, "v1");
    let mut pair = Pair::new("cache_pkg/project");
    pair.pytest.set_python(venv_py);
    pair.rpytest.set_python(venv_py);
    let all = [
        "tests/test_pkg.py::test_answer",
        "tests/test_plain.py::test_plain",
    ];
    let (py, rp) = pair.check(&["-v"]);
    py.assert_code(0);
    assert_ran(&rp, &all, "v1, first run");
    let (_, rp) = pair.check(&["-v"]);
    assert_ran(&rp, &[], "v1, second run");

    install_fixture_package(venv_py, "v2");
    let (py, rp) = pair.check(&["-v"]);
    py.assert_code(1);
    assert_eq!(
        py.outcomes.get("tests.test_pkg::test_answer"),
        Some(&vec![Outcome::Failed]),
        "fixture drifted: v2 must fail\n{}",
        py.transcript()
    );
    assert_ran(&rp, &all, "v2 installed");
    // And the CLI alone must not answer from v1's results either.
    let plain = pair.rpytest.rpytest(&[]).no_junit().run();
    plain.assert_code(1);

    install_fixture_package(venv_py, "v1");
    let (py, _) = pair.check(&["-v"]);
    py.assert_code(0);
}

// ---------------------------------------------------------------------------
// Storage.

const STORE_NODES: &[&str] = &[
    "tests/test_a.py::test_a_one",
    "tests/test_a.py::test_a_two",
    "tests/test_b.py::test_b_one",
    "tests/test_b.py::test_b_two",
    "tests/test_c.py::test_c_one",
    "tests/test_c.py::test_c_two",
];

fn warm_store(pair: &Pair) {
    let (py, rp) = pair.check(&["-v"]);
    py.assert_code(0);
    assert_ran(&rp, STORE_NODES, "warm-up");
    let (_, rp) = pair.check(&["-v"]);
    assert_ran(&rp, &[], "warm-up, second run");
}

fn remove_wal(project: &Project) {
    for ext in ["-wal", "-shm"] {
        let _ = fs::remove_file(project.path(&format!(".rpytest/cache.db{ext}")));
    }
}

#[test]
fn corrupt_database_is_set_aside_with_a_warning_and_never_trusted() {
    let pair = Pair::new("cache_store");
    warm_store(&pair);
    let garbage: Vec<u8> = (0..16384u32).map(|i| (i * 7 + 13) as u8).collect();
    let mut sqlite_header_then_garbage = b"SQLite format 3\0".to_vec();
    sqlite_header_then_garbage.extend_from_slice(&garbage);
    for (what, bytes, edit) in [
        ("garbage", garbage.clone(), ("== 2", "== 3")),
        (
            "a SQLite header then garbage",
            sqlite_header_then_garbage,
            ("== 3", "== 2"),
        ),
    ] {
        fs::write(rpytest_db(&pair.rpytest), &bytes).unwrap();
        remove_wal(&pair.rpytest);
        // test_b_one changes (to failing, then back to passing).
        pair.replace("tests/test_b.py", edit.0, edit.1);
        let (_, rp) = pair.check(&["-v"]);
        assert_warns(
            &rp,
            &["cache.db"],
            &format!("database overwritten with {what}"),
        );
        assert_all_ran(&rp, &format!("database overwritten with {what}"));
        assert!(
            fs::read_dir(pair.rpytest.path(".rpytest"))
                .unwrap()
                .any(|e| e.unwrap().file_name().to_string_lossy().contains("broken")),
            "the damaged database was not moved aside"
        );
        // The rebuilt cache works: warning gone, passes served, failures run.
        let (_, rp) = pair.check(&["-v"]);
        assert!(
            !rp.stderr.contains("warning"),
            "{what}: still warning after the rebuild\n{}",
            rp.transcript()
        );
        // (A file with a failure runs whole.)
        let expect: &[&str] = if edit.1 == "== 3" {
            &["tests/test_b.py::test_b_one", "tests/test_b.py::test_b_two"]
        } else {
            &[]
        };
        assert_ran(&rp, expect, &format!("{what}: rebuilt cache"));
    }
}

fn python_sql(db: &Path, sql: &str) {
    let out = Command::new(python())
        .args([
            "-c",
            "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.executescript(sys.argv[2])\nc.commit()\nc.close()",
        ])
        .arg(db)
        .arg(sql)
        .output()
        .expect("run python sqlite3");
    assert!(
        out.status.success(),
        "sqlite3 via python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn future_schema_database_is_set_aside_and_its_rows_are_not_reused() {
    let pair = Pair::new("cache_store");
    warm_store(&pair);
    python_sql(
        &rpytest_db(&pair.rpytest),
        "UPDATE meta SET value='999' WHERE key='schema_version';",
    );
    // Its rows would all match; a database of another version is still not trusted.
    let (_, rp) = pair.check(&["-v"]);
    assert_warns(&rp, &["cache.db", "999"], "schema version 999");
    assert_all_ran(&rp, "schema version 999");
    let (_, rp) = pair.check(&["-v"]);
    assert!(!rp.stderr.contains("warning"), "{}", rp.transcript());
    assert_ran(&rp, &[], "rebuilt after the foreign version");

    // A database that lost its version row is not trusted either.
    python_sql(
        &rpytest_db(&pair.rpytest),
        "DELETE FROM meta WHERE key='schema_version';",
    );
    pair.replace("tests/test_c.py", "== 2", "== 3");
    let (_, rp) = pair.check(&["-v"]);
    assert_warns(&rp, &["cache.db"], "no schema version");
    assert_all_ran(&rp, "no schema version");
}

#[test]
fn an_older_schema_database_is_replaced_without_a_copy() {
    let pair = Pair::new("cache_store");
    warm_store(&pair);
    python_sql(
        &rpytest_db(&pair.rpytest),
        "UPDATE meta SET value='1' WHERE key='schema_version';",
    );
    let (_, rp) = pair.check(&["-v"]);
    assert_warns(
        &rp,
        &[
            "cache.db",
            "written by an older rpytest (schema 1)",
            "started a new cache",
        ],
        "older schema",
    );
    assert_all_ran(&rp, "older schema");
    // An upgrade leaves no copy of a database no rpytest of this version reads.
    let left: Vec<String> = std::fs::read_dir(pair.rpytest.path(".rpytest"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("broken"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let (_, rp) = pair.check(&["-v"]);
    assert!(!rp.stderr.contains("warning"), "{}", rp.transcript());
    assert_ran(&rp, &[], "rebuilt after the older version");
}

#[test]
fn unwritable_rpytest_dir_warns_and_runs_everything_correctly() {
    let pair = Pair::new("cache_store");
    // A regular file where `.rpytest/` should be: the directory cannot be
    // created, whoever runs the test (root ignores permission bits).
    pair.write(".rpytest", "not a directory\n");
    let (py, rp) = pair.check(&["-v"]);
    py.assert_code(0);
    assert_warns(&rp, &[".rpytest"], ".rpytest is a file");
    assert_all_ran(&rp, ".rpytest is a file");
    let (_, rp) = pair.check(&["-v"]);
    assert_warns(&rp, &[".rpytest"], ".rpytest is a file, second run");
    assert_all_ran(&rp, ".rpytest is a file, second run");
    pair.replace("tests/test_a.py", "== 2", "== 3");
    let (py, _) = pair.check(&["-v"]);
    py.assert_code(1);
    // Management commands work too and say where the cache is not.
    let stats = pair.rpytest.rpytest_cmd(&["--result-cache", "stats"]);
    stats.assert_code(0);
    assert_eq!(
        fs::read_to_string(pair.rpytest.path(".rpytest")).unwrap(),
        "not a directory\n",
        "rpytest overwrote the user's file"
    );
}

// ---------------------------------------------------------------------------
// Concurrency.

fn many_nodes() -> BTreeSet<String> {
    (1..=8)
        .flat_map(|i| (0..3).map(move |n| format!("tests/test_m{i}.py::test_m{i}[{n}]")))
        .collect()
}

/// Runs that all succeed must also all have been recorded, without warnings.
fn assert_recorded_quietly(run: &Run) {
    assert!(
        !run.stderr.contains("warning"),
        "a concurrent run could not use the cache\n{}",
        run.transcript()
    );
}

#[test]
fn concurrent_runs_lose_and_corrupt_no_rows() {
    let pytest = Project::new("cache_many");
    let project = Project::new("cache_many");
    let py = pytest.pytest(&["-v"]).run();
    py.assert_code(0);
    // Cold: four runs race to create the database, start the daemon and
    // write every result.
    let runs: Vec<_> = (0..4).map(|_| project.rpytest(&["-v"]).spawn()).collect();
    for r in runs {
        let r = r.wait();
        assert_same(&py, &r);
        assert_recorded_quietly(&r);
    }
    let s = stats(&project);
    assert_eq!(stat(&s, "cached node results"), 24, "{s:?}");
    assert_eq!(stat(&s, "files with cached results"), 8, "{s:?}");
    assert_eq!(stat(&s, "runs recorded"), 4, "{s:?}");
    let r = project.rpytest(&["-v"]).run();
    assert_same(&py, &r);
    assert_eq!(replayed(&r), many_nodes(), "{}", r.transcript());
    assert_eq!(cache_counts(&r), (24, 0));

    // One file edited; two runs at once both run it (or one serves the
    // other's fresh result), both succeed, nothing else runs.
    pytest.replace("tests/test_m3.py", "n * 3 == 3 * n", "n * 3 == n + n + n");
    project.replace("tests/test_m3.py", "n * 3 == 3 * n", "n * 3 == n + n + n");
    let py = pytest.pytest(&["-v"]).run();
    let runs: Vec<_> = (0..2).map(|_| project.rpytest(&["-v"]).spawn()).collect();
    for r in runs {
        let r = r.wait();
        assert_same(&py, &r);
        assert_recorded_quietly(&r);
        let extra: Vec<String> = ran(&r)
            .into_iter()
            .filter(|n| !n.starts_with("tests/test_m3.py::"))
            .collect();
        assert!(extra.is_empty(), "{extra:?} ran\n{}", r.transcript());
    }
    let s = stats(&project);
    // The edited file's new key adds its 3 nodes; the old key's rows stay.
    assert_eq!(stat(&s, "cached node results"), 27, "{s:?}");
    assert_eq!(stat(&s, "files with cached results"), 8, "{s:?}");
    let r = project.rpytest(&["-v"]).run();
    assert_same(&py, &r);
    assert_eq!(replayed(&r), many_nodes(), "{}", r.transcript());
    let plain = project.rpytest(&[]).no_junit().run();
    plain.assert_code(0);
    assert_eq!(cache_counts(&plain), (24, 0), "{}", plain.transcript());
}

// ---------------------------------------------------------------------------
// rpytest's own commands.

const CACHE_LABELS: &[&str] = &[
    "files with cached results",
    "cached node results",
    "files in the stat cache",
    "recorded dependencies",
    "recorded import edges",
];

#[test]
fn no_cache_neither_reads_nor_writes() {
    let pair = Pair::new("cache_commands");
    let (py, rp) = pair.check(&["-v"]);
    py.assert_code(1);
    assert_eq!(reported(&rp).len(), 3, "{}", rp.transcript());
    let before = stats(&pair.rpytest);
    assert!(stat(&before, "cached node results") > 0, "{before:?}");

    // Does not read: everything runs (pytest gets the same run without the flag).
    let no_cache = |pair: &Pair, step: &str| {
        let py = pair.pytest.pytest(&["-v"]).run();
        let rp = pair.rpytest.rpytest(&["-v", "--no-cache"]).run();
        assert_same(&py, &rp);
        assert_all_ran(&rp, step);
    };
    no_cache(&pair, "--no-cache");
    let rp = pair
        .rpytest
        .rpytest(&["-v"])
        .env("RPYTEST_NO_CACHE", "1")
        .run();
    assert_all_ran(&rp, "RPYTEST_NO_CACHE=1");

    // Does not write: a test that changed and passed under --no-cache still
    // has no reusable result afterwards.
    pair.replace(
        "tests/test_helper.py",
        "double(21) == 42",
        "double(20) == 40",
    );
    no_cache(&pair, "--no-cache after an edit");
    let after = stats(&pair.rpytest);
    for label in CACHE_LABELS {
        assert_eq!(
            stat(&before, label),
            stat(&after, label),
            "--no-cache changed {label:?}: {before:?} -> {after:?}"
        );
    }
    let (_, rp) = pair.check(&["-v"]);
    assert_ran(
        &rp,
        &[
            "tests/test_fail.py::test_fail",
            "tests/test_helper.py::test_helper",
        ],
        "first cached run after --no-cache",
    );
}

#[test]
fn result_cache_clear_empties_the_cache() {
    let pair = Pair::new("cache_commands");
    pair.check(&["-v"]);
    let (_, rp) = pair.check(&["-v"]);
    assert_ran(&rp, &["tests/test_fail.py::test_fail"], "warm");
    let clear = pair.rpytest.rpytest_cmd(&["--result-cache", "clear"]);
    clear.assert_code(0);
    let s = stats(&pair.rpytest);
    assert_eq!(stat(&s, "cached node results"), 0, "{s:?}");
    assert_eq!(stat(&s, "files with cached results"), 0, "{s:?}");
    let (_, rp) = pair.check(&["-v"]);
    assert_all_ran(&rp, "after --result-cache clear");
    // Also without JUnit: the CLI must not answer from a collection record.
    pair.rpytest.rpytest_cmd(&["--result-cache", "clear"]);
    let plain = pair.rpytest.rpytest(&["-v"]).no_junit().run();
    plain.assert_code(1);
    assert_all_ran(&plain, "after clear, no JUnit");
    let (_, rp) = pair.check(&["-v"]);
    assert_ran(&rp, &["tests/test_fail.py::test_fail"], "cached again");
}

#[test]
fn why_names_the_changed_file_and_never_passed_nodes() {
    let pair = Pair::new("cache_commands");
    pair.check(&[]);
    let helper = "tests/test_helper.py::test_helper";
    let why = |node: &str| {
        let run = pair.rpytest.rpytest_cmd(&["--why", node]);
        run.assert_code(0);
        assert!(
            !run.stdout.contains("test session starts"),
            "--why ran a pytest session\n{}",
            run.transcript()
        );
        run
    };
    let run = why(helper);
    assert!(
        run.stdout.contains("unchanged"),
        "an unchanged node\n{}",
        run.transcript()
    );
    // A whole file: its results are recorded per test.
    let run = why("tests/test_helper.py");
    assert!(
        run.stdout.contains("served from the cache") && !run.stdout.contains("no reusable result"),
        "an unchanged file\n{}",
        run.transcript()
    );
    // A directory: which of its test files are served and which run.
    let run = why("tests");
    assert!(
        run.stdout.contains("a directory; of its 3 test files, 2 served from the cache and 1 runs: tests/test_fail.py (")
            && !run.stdout.contains("tests/test_helper.py"),
        "an unchanged directory with a failing file\n{}",
        run.transcript()
    );
    pair.replace("pkg/helper.py", "return x * 2", "return x + x");
    let run = why("tests/");
    assert!(
        run.stdout.contains("tests/test_helper.py") && !run.stdout.contains("tests/test_plain.py"),
        "a directory names the files that run, and only those\n{}",
        run.transcript()
    );
    let run = why("tests/test_helper.py");
    assert!(
        run.stdout.contains("it runs") && run.stdout.contains("tests/test_helper.py::NAME"),
        "a file that runs\n{}",
        run.transcript()
    );
    let run = why(helper);
    assert!(
        run.stdout.contains("pkg/helper.py"),
        "--why does not name the changed module\n{}",
        run.transcript()
    );
    assert!(
        !run.stdout.contains("tests/test_plain.py") && !run.stdout.contains("test_fail"),
        "--why names unrelated files\n{}",
        run.transcript()
    );
    let run = why("tests/test_fail.py::test_fail");
    assert!(
        run.stdout.contains("did not pass"),
        "a failing node\n{}",
        run.transcript()
    );
    // `--why=NODE` is the same option.
    let run = pair.rpytest.rpytest_cmd(&[&format!("--why={helper}")]);
    run.assert_code(0);
    assert!(run.stdout.contains("pkg/helper.py"), "{}", run.transcript());
    // The helper change made it run; then it is served again.
    let (_, rp) = pair.check(&["-v"]);
    assert_ran(
        &rp,
        &["tests/test_fail.py::test_fail", helper],
        "after the edit",
    );
    assert!(why(helper).stdout.contains("unchanged"));

    // A bare `why` is a test path, as for pytest.
    let (py, rp) = pair.check(&["-v", "why"]);
    py.assert_code(0);
    assert_eq!(
        reported(&rp),
        set(&["why/test_why_dir.py::test_in_why_dir"]),
        "{}",
        rp.transcript()
    );
}

// ---------------------------------------------------------------------------
// Selection over cached and freshly run tests.

/// Selections pytest applies after collecting whole files.
const SELECTIONS: &[&[&str]] = &[
    &["-v", "-k", "alpha and not slow"],
    &["-v", "-k", "beta"],
    &["-v", "-m", "slow"],
    &["-v", "-m", "fast or slow"],
    &["-v", "-m", "not fast", "tests/test_sel_b.py"],
    &[
        "-v",
        "--deselect",
        "tests/test_sel_a.py::test_alpha_param[3]",
    ],
    &["-v", "-k", "param"],
    &["-v"],
];

/// Selections that make pytest collect only part of a file: node IDs, and
/// `--lf` (which filters a file's items to the last failures and collects
/// files without failures as empty).
const PARTIAL_SELECTIONS: &[&[&str]] = &[
    &["-v", "tests/test_sel_a.py::TestAlpha"],
    &[
        "-v",
        "tests/test_sel_a.py::test_alpha_param[2]",
        "tests/test_sel_b.py::test_beta_plain",
    ],
    &["-v", "tests/test_sel_a.py::test_alpha_param"],
    &["-v", "--lf"],
    &["-v", "--lf", "-k", "param"],
    &["-v"],
];

/// Files with a test that failed in the full run: they run whole wherever
/// one of their tests runs (their tests share the module's state).
fn failing_files(full: &Run) -> BTreeSet<String> {
    full.verbose_statuses()
        .into_iter()
        .filter(|(_, s)| s == "FAILED" || s == "ERROR")
        .map(|(n, _)| n.split("::").next().unwrap_or("").to_owned())
        .collect()
}

fn check_selections(
    pair: &Pair,
    selections: &[&[&str]],
    fresh_file: Option<&str>,
    failing: &BTreeSet<String>,
) {
    for args in selections {
        let (py, rp) = pair.check(args);
        assert_eq!(
            reported(&rp),
            reported(&py),
            "{args:?}: rpytest selected other nodes than pytest\n{}\n{}",
            py.transcript(),
            rp.transcript()
        );
        // Every selected pass of an unchanged file without failures is
        // replayed, never run.
        let wrongly_ran: Vec<String> = rp
            .verbose_statuses()
            .into_iter()
            .filter(|(n, s)| s == "PASSED" && fresh_file.map(|f| !n.starts_with(f)).unwrap_or(true))
            .filter(|(n, _)| !failing.contains(n.split("::").next().unwrap_or("")))
            .map(|(n, _)| n)
            .collect();
        assert!(
            wrongly_ran.is_empty(),
            "{args:?}: passes of unchanged files ran again: {wrongly_ran:?}\n{}",
            rp.transcript()
        );
    }
}

fn selection_over_cached_and_run_tests(selections: &[&[&str]]) {
    let pair = Pair::new("cache_select");
    let (py, _) = pair.check(&["-v"]);
    py.assert_code(1);
    let failing = failing_files(&py);
    check_selections(&pair, selections, None, &failing);
    // One file changes: its tests run where selected, the others are replayed.
    pair.replace("tests/test_sel_b.py", "assert \"beta\"", "assert \"beta!\"");
    let (_, rp) = pair.check(&["-v", "-k", "beta or gamma"]);
    assert!(
        rp.verbose_statuses().values().any(|s| s == "PASSED")
            && rp.verbose_statuses().values().any(|s| s == "CACHED"),
        "expected a mix of run and cached nodes\n{}",
        rp.transcript()
    );
    pair.replace(
        "tests/test_sel_b.py",
        "assert \"beta!\"",
        "assert \"beta?\"",
    );
    check_selections(&pair, selections, Some("tests/test_sel_b.py"), &failing);
}

#[test]
fn keyword_marker_and_deselect_keep_pytest_meaning_over_cached_and_run_tests() {
    selection_over_cached_and_run_tests(SELECTIONS);
}

#[test]
fn node_ids_and_last_failed_keep_pytest_meaning_over_cached_and_run_tests() {
    selection_over_cached_and_run_tests(PARTIAL_SELECTIONS);
}

/// A run that collected only part of a file (node IDs, `--lf`) must not make
/// a later full run skip that file's other tests. Today it does: the later
/// plain run exits 0 and never reports the failing `test_alpha_param[3]`.
#[test]
fn partial_collection_never_hides_tests() {
    for partial in [
        &["tests/test_sel_a.py::TestAlpha"][..],
        &["tests/test_sel_b.py::test_beta_plain"],
        &["--lf"],
    ] {
        let pair = Pair::new("cache_select");
        let (py, _) = pair.check(&["-v"]);
        py.assert_code(1);
        pair.check(partial);
        for step in ["first full run", "second full run"] {
            let (py, rp) = pair.check(&["-v"]);
            py.assert_code(1);
            assert_eq!(
                reported(&rp),
                reported(&py),
                "after `rpytest {partial:?}`, {step}: tests vanished\n{}",
                rp.transcript()
            );
        }
        // The CLI's own answer too.
        let plain = pair.rpytest.rpytest(&[]).no_junit().run();
        assert_eq!(
            plain.code,
            1,
            "after `rpytest {partial:?}`: the failure is hidden\n{}",
            plain.transcript()
        );
    }
}

// ---------------------------------------------------------------------------
// Rules in rpytest.toml.

#[test]
fn cache_false_rule_always_runs_and_files_rule_reruns_only_governed_tests() {
    let pair = Pair::new("cache_rules");
    let net = "tests/net/test_net.py::test_net_ping";
    let csv = "tests/data/test_csv.py::test_csv_declared";
    let (py, rp) = pair.check(&["-v"]);
    py.assert_code(0);
    assert_ran(
        &rp,
        &[net, csv, "tests/test_plain.py::test_plain"],
        "warm-up",
    );
    for step in ["second run", "third run"] {
        let (_, rp) = pair.check(&["-v"]);
        assert_ran(&rp, &[net], step);
    }
    // Without JUnit the CLI may not answer alone: the network test must run.
    let plain = pair.rpytest.rpytest(&["-v"]).no_junit().run();
    plain.assert_code(0);
    assert_ran(&plain, &[net], "no JUnit");

    pair.write("data/table.csv", "name,value\nalpha,2\n");
    let (_, rp) = pair.check(&["-v"]);
    assert_ran(&rp, &[net, csv], "data/table.csv edited");
    let (_, rp) = pair.check(&["-v"]);
    assert_ran(&rp, &[net], "data/table.csv edited, second run");
    pair.write("data/more.csv", "name,value\n");
    let (_, rp) = pair.check(&["-v"]);
    assert_ran(&rp, &[net, csv], "data/more.csv added");
    pair.write("data/notes.txt", "not a csv\n");
    let (_, rp) = pair.check(&["-v"]);
    assert_ran(&rp, &[net], "data/notes.txt added (not governed)");
}

#[test]
fn a_new_file_in_a_listed_directory_reruns_the_tests_that_listed_it() {
    let pair = Pair::new("cache_listing");
    pair.check(&["-v"]);
    let (_, warm) = pair.check(&["-v"]);
    assert_ran(&warm, &[], "nothing changed");
    pair.write("data/b.csv", "2\n");
    let (py, rp) = pair.check(&["-v"]);
    py.assert_code(1);
    rp.assert_code(1);
    assert_ran(
        &rp,
        &["tests/test_listing.py::test_at_most_one_csv"],
        "a file added to data/",
    );
}

#[test]
fn a_session_wide_conftest_hook_reaches_tests_outside_its_directory() {
    let pair = Pair::new("cache_conftest_scope");
    pair.check(&["-v"]);
    // A fixture-only edit stays local to tests/b.
    pair.replace("tests/b/conftest.py", "return 1", "return 1  # same value");
    let (_, rp) = pair.check(&["-v"]);
    assert_ran(
        &rp,
        &["tests/b/test_b.py::test_b"],
        "a fixture-only conftest edit",
    );
    // A session-wide hook changes tests/a's outcome: it must run again.
    pair.write(
        "tests/b/conftest.py",
        "import pytest\n\n\n@pytest.fixture\ndef b_value():\n    return 1\n\n\n\
         def pytest_collection_modifyitems(items):\n    for item in items:\n        \
         item.add_marker(pytest.mark.xfail(strict=True))\n",
    );
    let (py, rp) = pair.check(&["-v"]);
    py.assert_code(1);
    assert_ran(
        &rp,
        &["tests/a/test_a.py::test_a", "tests/b/test_b.py::test_b"],
        "a session-wide hook added to a conftest",
    );
}

#[test]
fn a_duplicate_test_module_name_is_never_hidden_by_a_cached_file() {
    let pair = Pair::new("cache_conftest_scope");
    pair.write("tests/a/test_same.py", "def test_one():\n    assert True\n");
    pair.check(&["-v"]);
    pair.check(&["-v"]);
    pair.write("tests/b/test_same.py", "def test_two():\n    assert True\n");
    let (py, rp) = pair.check(&[]);
    py.assert_code(2);
    rp.assert_code(2);
    // And it stays an error on the next run (nothing was cached over it).
    let (py, rp) = pair.check(&[]);
    py.assert_code(2);
    rp.assert_code(2);
}

#[test]
fn a_module_level_skip_is_cached_and_replayed_like_pytests_own() {
    let pair = Pair::new("cache_module_skip");
    pair.check(&["-v", "-rs"]);
    let (py, rp) = pair.check(&["-v", "-rs"]);
    assert_ran(&rp, &[], "nothing changed");
    assert!(
        py.stdout.contains("1 passed, 1 skipped"),
        "{}",
        py.transcript()
    );
    assert!(
        rp.stdout.contains("1 passed, 1 skipped"),
        "{}",
        rp.transcript()
    );
    assert!(
        rp.stdout.contains("needs a platform this machine is not"),
        "the skip reason is replayed for -rs:\n{}",
        rp.transcript()
    );
    // Answered without Python (no JUnit): the same counts.
    let plain = pair.rpytest.rpytest(&[]).no_junit().run();
    plain.assert_code(0);
    assert!(
        plain.stdout.contains("1 passed, 1 skipped"),
        "{}",
        plain.transcript()
    );
    // The skip goes away: the file runs and fails like pytest.
    pair.replace(
        "tests/test_platform_only.py",
        "pytest.skip(",
        "(lambda *a, **k: None)(",
    );
    let (py, rp) = pair.check(&[]);
    py.assert_code(1);
    rp.assert_code(1);
}

#[test]
fn a_repeated_keyword_or_marker_selection_skips_whole_files() {
    let pair = Pair::new("select_expr");
    let k = "(alpha or beta) and not gamma";
    pair.check(&["-k", k]);
    // Same selection, nothing changed: every selected test replayed, and the
    // CLI can answer alone (no JUnit) with pytest's counts.
    let (py, rp) = pair.check(&["-v", "-k", k]);
    assert_ran(&rp, &[], "the same -k selection again");
    let plain = pair.rpytest.rpytest(&["-k", k]).no_junit().run();
    plain.assert_code(py.code);
    let counts = |out: &str| {
        out.lines()
            .last()
            .map(|l| {
                l.split(" in ")
                    .next()
                    .unwrap_or("")
                    .trim_matches(|c| c == '=' || c == ' ')
                    .to_owned()
            })
            .unwrap_or_default()
    };
    let stock = pair.pytest.pytest(&["-q", "-k", k]).no_junit().run();
    assert_eq!(
        counts(&plain.stdout),
        counts(&stock.stdout),
        "{}\n{}",
        plain.transcript(),
        stock.transcript()
    );
    // Another selection is not served from this one's memory, and edits still run.
    let (_, rp) = pair.check(&["-m", "(slow or db) and not flaky"]);
    rp.assert_code(0);
    pair.replace(
        "test_selection.py",
        "def test_alpha_fast",
        "def test_alpha_fast_renamed",
    );
    pair.check(&["-k", k]);
}

// ---------------------------------------------------------------------------
// Colour.

/// stdout with the timings out (`in 0.01s`, and the `=` padding around them).
fn without_timings(stdout: &str) -> String {
    stdout
        .lines()
        .map(|line| match line.find(" in ") {
            Some(at) => {
                let (head, tail) = line.split_at(at);
                let end = tail.find('s').map(|s| s + 1).unwrap_or(tail.len());
                format!(
                    "{} in T{}",
                    head.replace('=', ""),
                    tail[end..].replace('=', "")
                )
            }
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// rpytest's own output (the summary of a run answered from the cache) is
/// coloured as pytest decides: from the last `--color` pytest parses, in
/// either form, from the command line, PYTEST_ADDOPTS or ini addopts, else
/// from PY_COLORS / NO_COLOR / FORCE_COLOR and the terminal.
#[test]
fn own_output_is_coloured_as_pytest_decides() {
    let project = Project::new("cache_lifecycle");
    project.rpytest(&["-v"]).no_junit().run().assert_code(0);
    let fully_cached = |run: &Run, what: &str| {
        run.assert_code(0);
        assert_eq!(cache_counts(run), (6, 0), "{what}\n{}", run.transcript());
        without_timings(&run.stdout)
    };
    let coloured = fully_cached(
        &project.rpytest(&["-v", "--color=yes"]).no_junit().run(),
        "yes",
    );
    assert!(coloured.contains("\x1b[32m"), "{coloured}");
    let plain = fully_cached(&project.rpytest(&["-v"]).no_junit().run(), "auto");
    assert!(!plain.contains('\x1b'), "{plain}");

    let check = |want: &str, args: &[&str], env: &[(&str, &str)], what: &str| {
        let run = || {
            let mut inv = project.rpytest(args).no_junit();
            for (k, v) in env {
                inv = inv.env(k, v);
            }
            inv.run()
        };
        // PYTEST_ADDOPTS enters the key: the first run with it records.
        if env.iter().any(|(k, _)| *k == "PYTEST_ADDOPTS") {
            run().assert_code(0);
        }
        assert_eq!(fully_cached(&run(), what), want, "{what}");
    };
    let addopts = |v| [("PYTEST_ADDOPTS", v)];
    check(&coloured, &["-v", "--color", "yes"], &[], "--color yes");
    check(
        &coloured,
        &["-v"],
        &addopts("--color=yes"),
        "PYTEST_ADDOPTS",
    );
    check(
        &coloured,
        &["-v"],
        &addopts("--color yes"),
        "PYTEST_ADDOPTS, two words",
    );
    check(
        &plain,
        &["-v", "--color=no"],
        &addopts("--color=yes"),
        "the command line wins",
    );
    check(
        &coloured,
        &["-v", "--color=no", "--color=yes"],
        &[],
        "the last --color",
    );
    check(
        &plain,
        &["-v", "--color=yes", "--color", "no"],
        &[],
        "the last --color: no",
    );
    check(
        &coloured,
        &["-v"],
        &[("PY_COLORS", "1"), ("NO_COLOR", "1")],
        "PY_COLORS=1",
    );
    check(
        &plain,
        &["-v"],
        &[("PY_COLORS", "0"), ("FORCE_COLOR", "1")],
        "PY_COLORS=0",
    );
    check(
        &plain,
        &["-v"],
        &[("NO_COLOR", "1"), ("FORCE_COLOR", "1")],
        "NO_COLOR",
    );
    check(&coloured, &["-v"], &[("FORCE_COLOR", "1")], "FORCE_COLOR");

    // ini addopts (the changed ini re-runs the tests once).
    project.write(
        "pytest.ini",
        "[pytest]\ntestpaths = tests\npythonpath = .\naddopts = --color=yes\n",
    );
    project.rpytest(&["-v"]).no_junit().run().assert_code(0);
    check(&coloured, &["-v"], &[], "ini addopts");
}

// ---------------------------------------------------------------------------
// Items that no test file owns.

/// An item a directory collector yields, or one a hook appends to the session
/// (pytest-mypy's status item), has no file and so no key: it runs in every
/// run, and a run is never answered without a session, which would drop it.
#[test]
fn items_no_test_file_owns_run_in_every_run() {
    let status_conftest = "import pytest\n\n\
        class Status(pytest.Item):\n    \
            def runtest(self):\n        \
                raise AssertionError('the session status fails')\n\n\
        def pytest_collection_modifyitems(session, config, items):\n    \
            items.append(Status.from_parent(session, name='status'))\n";
    for (case, conftest) in [
        ("directory collector", None),
        ("session item", Some(status_conftest)),
    ] {
        let pair = Pair::new("unowned_items");
        if let Some(text) = conftest {
            pair.write("pytest.ini", "[pytest]\n");
            pair.write("conftest.py", text);
        }
        for step in ["first run", "second run", "third run"] {
            let (py, rp) = pair.check(&["-v"]);
            py.assert_code(1);
            assert_eq!(
                reported(&rp),
                reported(&py),
                "{case}, {step}: an item vanished\n{}",
                rp.transcript()
            );
        }
        let plain = pair.rpytest.rpytest(&[]).no_junit().run();
        assert_eq!(
            plain.code,
            1,
            "{case}: the failure is hidden\n{}",
            plain.transcript()
        );
    }
}

#[test]
fn a_run_with_workers_keeps_the_serial_results() {
    // Under -n the session loads rpytest modules a serial run does not; they
    // are the tool, not an input of the tests.
    // A failing test makes every run start a session.
    let project = Project::new("cache_lifecycle");
    project.write(
        "tests/test_zz_fails.py",
        "def test_fails():\n    assert False\n",
    );
    project.rpytest(&[]).no_junit().run();
    let serial = project.rpytest(&[]).no_junit().run();
    let (cached, ran) = cache_counts(&serial);
    assert!(cached > 0 && ran == 1, "{}", serial.transcript());
    project.rpytest(&["-n", "2"]).no_junit().run();
    let again = project.rpytest(&[]).no_junit().run();
    assert_eq!(cache_counts(&again), (cached, 1), "{}", again.transcript());
}

#[test]
fn nodes_a_hook_deselects_leave_their_file_cached() {
    // The deselected nodes never get a result; the file's other tests ran
    // together under the same key, so they are replayed.
    let pair = Pair::new("cache_hook_deselect");
    pair.check(&["-v"]);
    for step in ["second run", "third run"] {
        let (py, rp) = pair.check(&["-v"]);
        py.assert_code(0);
        assert_ran(&rp, &[], step);
    }
}

/// Two items with one node ID (a conftest collector can make them): results
/// are kept by node ID, so a cached replay gave both the second's outcome
/// ("2 skipped" where pytest says "1 passed, 1 skipped"). Such a file is
/// never stored: it runs every time, as pytest runs it.
#[test]
fn items_sharing_a_node_id_are_never_replayed() {
    let pair = Pair::new("soundness");
    pair.write(
        "conftest.py",
        "import pytest\n\n\nclass CaseItem(pytest.Item):\n    def __init__(self, *, skip, **kw):\n        super().__init__(**kw)\n        self._skip = skip\n\n    def runtest(self):\n        if self._skip:\n            pytest.skip(\"the second one skips\")\n\n\nclass CaseFile(pytest.File):\n    def collect(self):\n        yield CaseItem.from_parent(self, name=\"dup\", skip=False)\n        yield CaseItem.from_parent(self, name=\"dup\", skip=True)\n\n\ndef pytest_collect_file(file_path, parent):\n    if file_path.suffix == \".case\":\n        return CaseFile.from_parent(parent, path=file_path)\n",
    );
    pair.write("a.case", "x\n");
    pair.write("test_plain.py", "def test_plain():\n    pass\n");
    let (py, _) = pair.check(&["-rA"]);
    py.assert_code(0);
    let (_, again) = pair.check(&["-rA"]);
    assert!(
        again.stdout.contains("2 passed, 1 skipped"),
        "{}",
        again.transcript()
    );
}

/// The warnings summary of a stock pytest run: from its header to the count.
fn warnings_summary(run: &Run, project: &Project) -> String {
    let root = project.root.display().to_string();
    let text = run.stdout.replace(&root, "ROOT");
    let from = text.find("warnings summary").unwrap_or(text.len());
    text[from..]
        .lines()
        .map(|l| l.split(" in ").next().unwrap_or(l).trim_end().to_owned())
        .filter(|l| !l.is_empty() && !l.contains("generated xml file"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Warnings raised while a test file is collected (a module-level warning,
/// a deprecated helper it imports) are replayed with the file's cached
/// tests, once each, as pytest shows them.
#[test]
fn collection_warnings_of_a_cached_file_are_shown() {
    let pair = Pair::new("soundness");
    pair.write("tests/__init__.py", "");
    pair.write(
        "tests/helper.py",
        "import warnings\nwarnings.warn(DeprecationWarning(\"helper is deprecated\"))\n\n\ndef helper():\n    return 1\n",
    );
    pair.write(
        "tests/test_a.py",
        "from .helper import helper\n\n\ndef test_a():\n    assert helper() == 1\n",
    );
    pair.write(
        "tests/test_b.py",
        "import warnings\nwarnings.warn(UserWarning(\"module-level warning\"))\n\n\ndef test_b():\n    pass\n",
    );
    pair.write(
        "tests/test_c.py",
        "from .helper import helper\n\n\ndef test_c():\n    assert helper() == 1\n",
    );
    let (py, _) = pair.check(&[]);
    let want = warnings_summary(&py, &pair.pytest);
    assert!(want.contains("3 passed, 2 warnings"), "{}", py.transcript());
    // Fully cached (a session prints it), then with test_c.py running: its
    // import of the helper raises the warning again, shown once.
    let (_, cached) = pair.check(&[]);
    assert!(
        cached.stderr.contains("3 cached"),
        "{}",
        cached.transcript()
    );
    assert_eq!(
        warnings_summary(&cached, &pair.rpytest),
        want,
        "{}",
        cached.transcript()
    );
    pair.write(
        "tests/test_c.py",
        "from .helper import helper\n\n\ndef test_c():\n    assert helper() + 0 == 1\n",
    );
    let (py, partly) = pair.check(&[]);
    assert!(
        partly.stderr.contains("2 cached"),
        "{}",
        partly.transcript()
    );
    assert!(
        partly.stdout.contains("3 passed, 2 warnings")
            && py.stdout.contains("3 passed, 2 warnings"),
        "{}",
        partly.transcript()
    );
}

/// `--why` takes every form pytest takes for a path: `./x`, `.`, `dir/`,
/// an absolute path, each with or without `::NAME`.
#[test]
fn why_takes_paths_as_pytest_does() {
    let pair = Pair::new("cache_commands");
    pair.check(&[]);
    pair.check(&[]);
    let why = |arg: &str| {
        let run = pair.rpytest.rpytest_cmd(&["--why", arg]);
        run.assert_code(0);
        run
    };
    let abs = pair.rpytest.path("tests/test_helper.py");
    let abs = abs.to_string_lossy();
    for arg in [
        "./tests/test_helper.py",
        abs.as_ref(),
        "tests/../tests/test_helper.py",
    ] {
        let run = why(arg);
        assert!(
            run.stdout.contains("its results are served from the cache"),
            "{arg}: an unchanged file\n{}",
            run.transcript()
        );
    }
    let node = format!("{abs}::test_helper");
    for arg in ["./tests/test_helper.py::test_helper", node.as_str()] {
        let run = why(arg);
        assert!(
            run.stdout.contains("it is served from the cache"),
            "{arg}: an unchanged node\n{}",
            run.transcript()
        );
    }
    let root = pair.rpytest.path("");
    let root = root.to_string_lossy();
    for arg in [".", "./", "./tests", root.as_ref()] {
        let run = why(arg);
        assert!(
            run.stdout.contains("a directory; of its")
                && run.stdout.contains("served from the cache"),
            "{arg}: a directory\n{}",
            run.transcript()
        );
    }
}

/// `--why` about a path the command line alone does not collect (outside
/// testpaths, or a parent directory of them: `tests/..`) answers for the run
/// that names it (`rpytest why`, `rpytest tests/..`), not "it runs".
#[test]
fn why_about_a_path_outside_the_default_scope_answers_for_the_run_naming_it() {
    let pair = Pair::new("cache_commands");
    for args in [&["why"][..], &["tests/.."][..]] {
        pair.check(args);
        pair.check(args);
    }
    let why = |arg: &str| {
        let run = pair.rpytest.rpytest_cmd(&["--why", arg]);
        run.assert_code(0);
        run
    };
    let run = why("why/test_why_dir.py");
    assert!(
        run.stdout.contains("its results are served from the cache"),
        "{}",
        run.transcript()
    );
    let run = why("why/test_why_dir.py::test_in_why_dir");
    assert!(
        run.stdout.contains("it is served from the cache"),
        "{}",
        run.transcript()
    );
    // tests/ (three files, test_fail.py failing) and why/.
    let run = why("tests/..");
    assert!(
        run.stdout
            .contains("a directory; of its 4 test files, 3 served from the cache"),
        "{}",
        run.transcript()
    );
}

/// A helper that warns when imported (`stacklevel=2`: the warning names its
/// importer) and two test files importing it, one cached and one running:
/// pytest shows the warning once (the module body runs once), so does rpytest.
#[test]
fn a_helper_warning_at_import_is_counted_once_when_its_first_importer_is_replayed() {
    let mut pair = Pair::new("soundness");
    pair.write_bytecode();
    pair.write(
        "conftest.py",
        "import os, sys\nsys.path.insert(0, os.path.dirname(__file__))\n",
    );
    pair.write(
        "oldhelp.py",
        "import warnings\nwarnings.warn(\"oldhelp is deprecated\", DeprecationWarning, stacklevel=2)\n",
    );
    pair.write("test_a.py", "import oldhelp\n\ndef test_1():\n    pass\n");
    pair.write("test_b.py", "import oldhelp\n\ndef test_2():\n    pass\n");
    pair.check(&[]);
    pair.write(
        "test_b.py",
        "import oldhelp\n\ndef test_2():\n    pass\n# edited\n",
    );
    let (py, rp) = pair.check(&[]);
    let last = |out: &str| {
        out.lines()
            .rev()
            .find(|l| l.contains(" passed"))
            .unwrap_or("")
            .to_owned()
    };
    assert!(
        last(&py.stdout).contains(" 2 passed, 1 warning "),
        "stock\n{}",
        py.transcript()
    );
    assert!(
        last(&rp.stdout).contains(" 2 passed, 1 warning ") && rp.stderr.contains("1 cached, 1 run"),
        "rpytest counts the helper's warning once\n{}",
        rp.transcript()
    );
}

/// A file named both whole and by node ID (`t.py t.py::test_a`): pytest then
/// collects only `test_a` (with the arguments the other way round, both
/// tests). That run never stands for the whole file: a later plain run still
/// runs the failing `test_b` (it was a cached pass of the whole file).
#[test]
fn a_file_named_whole_and_by_node_id_never_stands_for_the_whole_file() {
    let pair = Pair::new("soundness");
    pair.write(
        "test_mixed.py",
        "def test_a():\n    pass\n\ndef test_b():\n    assert 0\n",
    );
    for args in [
        &["-q", "test_mixed.py", "test_mixed.py::test_a"][..],
        &["-q", "test_mixed.py::test_a", "test_mixed.py"][..],
        &["-q", "test_mixed.py", "test_mixed.py::test_a"][..],
        &["-q"][..],
        &["-q"][..],
    ] {
        let py = pair.pytest.pytest(args).no_junit().run();
        let rp = pair.rpytest.rpytest_cmd(args);
        assert_same(&py, &rp);
        assert_eq!(rp.code, py.code, "{args:?}\n{}", rp.transcript());
    }
}
