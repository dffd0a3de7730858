//! What makes incremental runs fast stays sound: files that plugins collect
//! (golden-file collectors, `--doctest-modules`, `--doctest-glob`) are cached
//! like test files and run again when they, their collector or the options
//! change, and a new one is picked up; the warm session's pre-forked child is
//! used only when the request leaves pytest's start-up as it was, and every
//! fallback behaves as stock pytest.
//!
//! Each step compares rpytest with stock pytest on an identical copy (`Pair`)
//! and names exactly which nodes ran (`-v`: anything not `CACHED` ran).

mod common;

use std::collections::BTreeSet;

use common::{Outcome, Pair, Project, Run};

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Node IDs `-v` reported with a status other than `CACHED`: they ran. A
/// replayed skip shows as `SKIPPED` (with its reason), as when it runs: skips
/// are left out.
fn ran(run: &Run) -> BTreeSet<String> {
    run.verbose_statuses()
        .into_iter()
        .filter(|(_, s)| s != "CACHED" && s != "SKIPPED")
        .map(|(n, _)| n)
        .collect()
}

fn assert_ran(run: &Run, expected: &[&str], step: &str) {
    assert_eq!(
        ran(run),
        set(expected),
        "{step}: the nodes that ran (not CACHED) are wrong\n{}",
        run.transcript()
    );
}

/// A `-q` run without `--junitxml`: the CLI may answer alone.
fn quiet(project: &Project) -> Run {
    project.rpytest(&["-q"]).no_junit().run()
}

/// Whether the run was answered by the CLI without a pytest session (no
/// progress line: pytest's `-q` prints one, the CLI's summary does not).
fn answered_alone(run: &Run) -> bool {
    !run.stdout.contains("[100%]")
}

fn assert_summary(run: &Run, summary: &str, step: &str) {
    assert!(
        run.stdout.contains(summary),
        "{step}: expected `{summary}`\n{}",
        run.transcript()
    );
}

const GOLDEN: &[&str] = &[
    "cases/golden_arith.txt::line1",
    "cases/golden_arith.txt::line2",
    "cases/golden_text.txt::line1",
];

#[test]
fn golden_files_a_conftest_collects_are_cached_and_rerun_when_they_change() {
    let pair = Pair::new("collect_golden");
    let (py, rp) = pair.check(&["-v"]);
    py.assert_code(0);
    assert_eq!(py.count(Outcome::Passed), 4, "{}", py.transcript());
    assert_ran(
        &rp,
        &[GOLDEN, &["test_calc.py::test_evaluate"]].concat(),
        "first run",
    );
    let (_, rp) = pair.check(&["-v"]);
    assert_ran(&rp, &[], "nothing changed");
    let alone = quiet(&pair.rpytest);
    assert!(answered_alone(&alone), "{}", alone.transcript());
    assert_summary(&alone, "4 passed", "nothing changed, no session");

    // A data file no collector takes: still nothing runs.
    pair.write("cases/notes.txt", "still not golden = 4\n");
    let (_, rp) = pair.check(&["-v"]);
    assert_ran(&rp, &[], "a file no collector takes");

    // The golden file itself.
    pair.write("cases/golden_text.txt", "\"a\" + \"b\" = ba\n");
    let (py, rp) = pair.check(&["-v"]);
    py.assert_code(1);
    assert_ran(&rp, &["cases/golden_text.txt::line1"], "golden file edited");
    pair.write("cases/golden_text.txt", "\"a\"+\"b\" = ab\n");
    let (_, rp) = pair.check(&["-v"]);
    assert_ran(&rp, &["cases/golden_text.txt::line1"], "golden file fixed");

    // The collector: every file it collects runs again.
    pair.replace(
        "conftest.py",
        "self.expected = expr.strip(), expected.strip()",
        "self.expected = expr.strip(), expected.strip().upper()",
    );
    let (py, rp) = pair.check(&["-v"]);
    py.assert_code(1);
    assert_ran(
        &rp,
        &[GOLDEN, &["test_calc.py::test_evaluate"]].concat(),
        "collector changed",
    );
    // What its items use.
    pair.replace(
        "calc.py",
        "return str(eval(expr, {}))",
        "return str(eval(expr, {})).upper()",
    );
    let (py, rp) = pair.check(&["-v"]);
    py.assert_code(0);
    assert_ran(
        &rp,
        &[GOLDEN, &["test_calc.py::test_evaluate"]].concat(),
        "calc.py changed",
    );
}

#[test]
fn a_new_file_a_collector_takes_runs_even_when_everything_else_is_cached() {
    let pair = Pair::new("collect_golden");
    pair.check(&["-v"]);
    let alone = quiet(&pair.rpytest);
    assert!(answered_alone(&alone), "{}", alone.transcript());
    // Without --junitxml first: the CLI must not answer alone.
    pair.write("cases/more/golden_new.txt", "3 * 3 = 10\n");
    let run = quiet(&pair.rpytest);
    run.assert_code(1);
    assert_summary(&run, "1 failed, 4 passed", "a new failing golden file");
    let (py, rp) = pair.check(&["-v"]);
    py.assert_code(1);
    assert_ran(
        &rp,
        &["cases/more/golden_new.txt::line1"],
        "the new golden file",
    );
    pair.write("cases/more/golden_new.txt", "3 * 3 = 9\n");
    let (py, rp) = pair.check(&["-v"]);
    py.assert_code(0);
    assert_ran(&rp, &["cases/more/golden_new.txt::line1"], "fixed");
    let alone = quiet(&pair.rpytest);
    assert!(answered_alone(&alone), "{}", alone.transcript());
    assert_summary(&alone, "5 passed", "all cached again");
    // A removed one is gone, as under pytest.
    pair.remove("cases/golden_arith.txt");
    let (py, rp) = pair.check(&["-v"]);
    py.assert_code(0);
    assert_ran(&rp, &[], "a golden file removed");
    assert_eq!(rp.count(Outcome::Passed), 3, "{}", rp.transcript());
}

const MATHLIB: &[&str] = &[
    "mathlib/__init__.py::mathlib",
    "mathlib/core.py::mathlib.core.Vector",
    "mathlib/core.py::mathlib.core.Vector.norm2",
    "mathlib/core.py::mathlib.core.square",
    "mathlib/core.py::mathlib.core.uses_namespace",
];

#[test]
fn doctest_modules_are_cached_and_follow_what_their_examples_import() {
    let pair = Pair::new("doctest_modules");
    let (py, _) = pair.check(&["-v"]);
    py.assert_code(0);
    let (_, rp) = pair.check(&["-v"]);
    assert_ran(&rp, &[], "nothing changed");
    let alone = quiet(&pair.rpytest);
    assert!(answered_alone(&alone), "{}", alone.transcript());
    assert_summary(&alone, "9 passed, 1 skipped", "no session");

    // test_readme.txt's example imports mathlib.core, which collection had
    // already loaded: only the example's source names the dependency.
    pair.replace("mathlib/core.py", "return x * x", "return x * x + 0");
    let (py, rp) = pair.check(&["-v"]);
    py.assert_code(0);
    assert_ran(
        &rp,
        &[
            MATHLIB,
            &[
                "test_plain.py::test_plain.test_vector",
                "test_plain.py::test_square",
                "test_plain.py::test_vector",
                "test_readme.txt::test_readme.txt",
            ],
        ]
        .concat(),
        "mathlib/core.py changed",
    );

    // A new module with a failing doctest is collected and fails, as under pytest.
    pair.write("mathlib/extra.py", "\"\"\"\n>>> 1 + 1\n3\n\"\"\"\n");
    let run = quiet(&pair.rpytest);
    run.assert_code(1);
    let (py, rp) = pair.check(&["-v"]);
    py.assert_code(1);
    assert_ran(&rp, &["mathlib/extra.py::mathlib.extra"], "new module");
}

#[test]
fn doctest_glob_files_are_cached_and_the_option_decides_what_is_collected() {
    let pair = Pair::new("collect_doctest_glob");
    let (py, _) = pair.check(&["-v"]);
    py.assert_code(0);
    assert_eq!(py.count(Outcome::Passed), 3, "{}", py.transcript());
    let (_, rp) = pair.check(&["-v"]);
    assert_ran(&rp, &[], "nothing changed");
    let alone = quiet(&pair.rpytest);
    assert!(answered_alone(&alone), "{}", alone.transcript());

    pair.replace("shapes.py", "return w * h", "return w * h + 0");
    let (_, rp) = pair.check(&["-v"]);
    assert_ran(
        &rp,
        &["docs/guide.rst::guide.rst", "test_shapes.py::test_area"],
        "shapes.py changed",
    );

    pair.write("docs/new.rst", ">>> 1 + 1\n3\n");
    let run = quiet(&pair.rpytest);
    run.assert_code(1);
    let (py, rp) = pair.check(&["-v"]);
    py.assert_code(1);
    assert_ran(&rp, &["docs/new.rst::new.rst"], "new text file");

    // Another glob: other.rst and new.rst are no longer collected, guide.rst
    // (cached under the old options) runs again.
    pair.replace(
        "pytest.ini",
        "--doctest-glob=*.rst",
        "--doctest-glob=g*.rst",
    );
    let (py, rp) = pair.check(&["-v"]);
    py.assert_code(0);
    assert_eq!(py.count(Outcome::Passed), 2, "{}", py.transcript());
    assert_ran(
        &rp,
        &["docs/guide.rst::guide.rst", "test_shapes.py::test_area"],
        "option changed",
    );
}
