//! `rpytest --verify-dropin`: clean verification of well-behaved projects,
//! and detection and classification of fixture projects built to disagree
//! (tests/fixtures/verify_*). Real binary, real pytest, real daemon; the
//! JSON report is checked against docs/verify-report.md.
//!
//! Needs a venv with pytest, rpytest and the fixture plugin: see
//! `common::python`.

mod common;

use common::{Project, Run};
use serde_json::Value;

/// Runs `rpytest --verify-dropin --verify-report <out> args` in `project`;
/// returns the run and the parsed, schema-checked report.
fn verify(project: &Project, args: &[&str]) -> (Run, Value) {
    let report = project.out_path("verify-report.json");
    let _ = std::fs::remove_file(&report);
    let report_arg = report.display().to_string();
    let mut all = vec!["--verify-dropin", "--verify-report", report_arg.as_str()];
    all.extend_from_slice(args);
    let run = project.rpytest(&all).no_junit().run();
    let text = std::fs::read_to_string(&report).unwrap_or_else(|e| {
        panic!(
            "no report at {}: {e}\n{}",
            report.display(),
            run.transcript()
        )
    });
    let json: Value = serde_json::from_str(&text).expect("the report is JSON");
    check_schema(&json);
    (run, json)
}

fn new_project(fixture: &str) -> Project {
    let mut p = Project::new(fixture);
    // Counters and manifests of the disagreeing fixtures live outside the rootdir.
    let outside = p.out_path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    p.set_env("VERIFY_OUTSIDE_DIR", &outside.display().to_string());
    p
}

const KINDS: &[&str] = &["collection", "execution", "flaky", "cache", "exit_code"];
const CAUSES: &[&str] = &[
    "reads-raw-argv",
    "forks",
    "own-concurrency",
    "fresh-process",
    "import-machinery",
    "unseen-input",
    "flaky",
    "unknown",
];
const TOOLS: &[&str] = &["pytest", "rpytest-fresh", "rpytest-cached"];

/// Checks the report against version 1 of docs/verify-report.md.
fn check_schema(r: &Value) {
    let ctx = || serde_json::to_string_pretty(r).unwrap();
    assert_eq!(r["schema"], "rpytest-verify-report", "{}", ctx());
    assert_eq!(r["version"], 1, "{}", ctx());
    assert!(r["rpytest_version"].is_string());
    assert!(r["verified"].is_boolean());
    assert!(r["verdict"].is_string());
    let tools: Vec<&str> = r["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t.as_str().expect("tool id"))
        .collect();
    assert!(tools == TOOLS || tools == TOOLS[..2], "tools {tools:?}");
    assert_eq!(r["cached_run_skipped"].is_null(), tools.len() == 3);
    for key in ["python", "cwd", "rootdir"] {
        assert!(r[key].is_string(), "{key}: {}", ctx());
    }
    assert!(r["args"].as_array().unwrap().iter().all(Value::is_string));
    assert!(r["nodes"].is_u64());
    let runs = r["runs"].as_array().expect("runs");
    let full: Vec<&Value> = runs.iter().filter(|x| x["purpose"] == "full").collect();
    assert_eq!(full.len(), tools.len());
    for (run, tool) in full.iter().zip(&tools) {
        assert_eq!(run["tool"], *tool);
    }
    for run in runs {
        assert!(["full", "rerun", "confirm"].contains(&run["purpose"].as_str().unwrap()));
        assert!(TOOLS.contains(&run["tool"].as_str().unwrap()));
        assert!(run["command"]
            .as_array()
            .unwrap()
            .iter()
            .all(Value::is_string));
        assert!(run["exit_code"].is_i64());
        assert!(run["nodes"].is_u64() && run["cached"].is_u64());
        assert!(run["collection_errors"].is_array() && run["notes"].is_array());
        assert!(run["seconds"].is_number());
        assert!(run["stdout"].is_string() && run["stderr"].is_string());
    }
    let ds = r["disagreements"].as_array().expect("disagreements");
    assert_eq!(r["verified"].as_bool().unwrap(), ds.is_empty());
    assert_eq!(r["outputs"].is_null(), ds.is_empty());
    for d in ds {
        let kind = d["kind"].as_str().expect("kind");
        assert!(KINDS.contains(&kind), "kind {kind}");
        assert!(d["file"].is_string() || d["file"].is_null());
        assert!(d["nodeid"].is_string() || d["nodeid"].is_null());
        let outcomes = d["outcomes"].as_object().expect("outcomes");
        for (tool, o) in outcomes {
            assert!(tools.contains(&tool.as_str()));
            assert!(o.is_null() || o.is_string());
        }
        if kind == "exit_code" {
            assert_eq!(d["exit_codes"].as_object().unwrap().len(), tools.len());
        }
        assert!(d["rerun"].is_null() || d["rerun"].is_object());
        assert!(d["replayed"].is_boolean());
        let cause = d["cause"]["id"].as_str().expect("cause id");
        assert!(CAUSES.contains(&cause), "cause {cause}");
        assert!(d["cause"]["label"].is_string());
        assert!(d["message"].is_string());
    }
    let summary = r["summary"].as_object().expect("summary");
    assert_eq!(summary.len(), KINDS.len());
    for k in KINDS {
        let n = summary[*k].as_u64().unwrap() as usize;
        assert_eq!(
            n,
            ds.iter().filter(|d| d["kind"] == *k).count(),
            "summary {k}"
        );
    }
}

/// Runs verification on a fixture expected to verify; returns the node count.
fn verifies(fixture: &str, args: &[&str]) -> u64 {
    let project = new_project(fixture);
    let (run, report) = verify(&project, args);
    run.assert_code(0);
    let nodes = report["nodes"].as_u64().unwrap();
    let expected = format!(
        "verified drop-in: {nodes} nodes, identical outcomes and exit code (fresh and cached)"
    );
    assert_eq!(
        run.stdout.trim_end().lines().last(),
        Some(expected.as_str()),
        "{}",
        run.transcript()
    );
    assert!(
        run.stderr.contains("[3/3] rpytest cached ..."),
        "{}",
        run.transcript()
    );
    nodes
}

/// The disagreements of a report as (kind, nodeid, cause id).
fn kinds(report: &Value) -> Vec<(String, Option<String>, String)> {
    report["disagreements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_owned(),
                d["nodeid"].as_str().map(str::to_owned),
                d["cause"]["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Well-behaved projects verify.

#[test]
fn conftest_hierarchy_verifies() {
    assert!(verifies("conftest_hierarchy", &[]) > 0);
}

#[test]
fn a_parallel_run_verifies() {
    // rpytest's fresh and cached runs are distributed over two workers; stock
    // pytest runs with pytest-xdist's -n 2 when it is installed, serially otherwise.
    let project = new_project("parallel_suite");
    let (run, report) = verify(&project, &["-n", "2"]);
    run.assert_code(0);
    assert_eq!(report["nodes"].as_u64(), Some(33), "{}", run.transcript());
    assert!(
        run.stdout.contains("verified drop-in: 33 nodes"),
        "{}",
        run.transcript()
    );
}

#[test]
fn the_fresh_run_runs_everything_even_when_results_are_cached() {
    let project = new_project("conftest_hierarchy");
    project.rpytest(&[]).no_junit().run().assert_code(0);
    let (run, report) = verify(&project, &[]);
    let runs = report["runs"].as_array().unwrap();
    assert!(
        runs[1]["nodes"].as_u64().unwrap() > 0,
        "{}",
        run.transcript()
    );
    assert_eq!(
        runs[1]["cached"],
        0,
        "the fresh run replayed results\n{}",
        run.transcript()
    );
}

/// Blocked outside src/verify: when run 3 takes the fully cached fast path,
/// `execute` calls `plan.record(.., &[])` after `answer_alone`, and `record`
/// rewrites RPYTEST_OUTCOMES_FILE with no nodes.
#[test]
fn verifies_when_results_were_cached_before() {
    let project = new_project("conftest_hierarchy");
    project.rpytest(&[]).no_junit().run().assert_code(0);
    let (run, report) = verify(&project, &[]);
    run.assert_code(0);
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs[2]["cached"], runs[2]["nodes"], "{}", run.transcript());
}

#[test]
fn parametrize_ids_verify() {
    assert!(verifies("parametrize_ids", &[]) > 0);
}

#[test]
fn skip_xfail_verifies_with_failures_and_exit_1() {
    let project = new_project("skip_xfail");
    let (run, report) = verify(&project, &["-q"]);
    run.assert_code(0);
    // The suite itself fails (strict xpass, a failing test): all three agree on it.
    for r in report["runs"].as_array().unwrap() {
        assert_eq!(r["exit_code"], 1, "{}", run.transcript());
    }
    assert!(
        report["runs"][2]["cached"].as_u64().unwrap() > 0,
        "nothing was replayed"
    );
}

#[test]
fn unittest_case_verifies() {
    assert!(verifies("unittest_case", &[]) > 0);
}

#[test]
fn select_expr_with_k_verifies() {
    let all = verifies("select_expr", &[]);
    let some = verifies("select_expr", &["-k", "alpha and not slow"]);
    assert!(some > 0 && some < all, "-k selected {some} of {all}");
}

#[test]
fn collection_errors_verify_when_both_tools_agree() {
    let project = new_project("collection_error");
    let (run, report) = verify(&project, &[]);
    run.assert_code(0);
    for r in report["runs"].as_array().unwrap() {
        assert_eq!(r["exit_code"], 2);
        let errors: Vec<&str> = r["collection_errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        assert_eq!(
            errors,
            ["test_broken_import.py", "test_syntax_error.py"],
            "{}",
            run.transcript()
        );
    }
}

#[test]
fn demo_example_verifies() {
    assert!(verifies("../../examples/demo", &[]) > 10);
}

// ---------------------------------------------------------------------------
// Projects built to disagree are caught and classified.

#[test]
fn assuming_a_fresh_process_is_an_execution_difference() {
    let project = new_project("verify_module_state");
    let (run, report) = verify(&project, &[]);
    run.assert_code(1);
    assert_eq!(
        kinds(&report),
        [
            (
                "execution".into(),
                Some("test_startup.py::test_started_for_this_session".into()),
                "fresh-process".into()
            ),
            ("exit_code".into(), None, "unknown".into()),
        ],
        "{}",
        run.transcript()
    );
    let d = &report["disagreements"][0];
    assert_eq!(d["outcomes"]["pytest"], "passed");
    assert_eq!(d["outcomes"]["rpytest-fresh"], "failed");
    assert_eq!(d["rerun"]["pytest"], "passed");
    assert_eq!(d["rerun"]["rpytest"], "failed");
    assert!(
        run.stdout.contains(
            "likely cause: assumes a fresh process (gc.get_freeze_count at test_startup.py:"
        ),
        "{}",
        run.transcript()
    );
    assert!(
        run.stdout
            .trim_end()
            .ends_with("NOT verified: 2 disagreements (1 execution, 1 exit code) in 3 nodes"),
        "{}",
        run.transcript()
    );
}

#[test]
fn reading_raw_argv_is_an_execution_difference() {
    let project = new_project("verify_argv");
    let (run, report) = verify(&project, &[]);
    run.assert_code(1);
    // sys.argv[0] agrees (rpytest sets it like the `pytest` command); the
    // interpreter's raw command line does not.
    assert_eq!(
        kinds(&report),
        [
            (
                "execution".into(),
                Some("test_argv.py::test_reinvocation_command".into()),
                "reads-raw-argv".into()
            ),
            ("exit_code".into(), None, "unknown".into()),
        ],
        "{}",
        run.transcript()
    );
    assert!(
        run.stdout.contains("(sys.orig_argv at test_argv.py:"),
        "{}",
        run.transcript()
    );
}

#[test]
fn an_input_the_key_does_not_see_shows_in_the_cached_run_only() {
    let project = new_project("verify_unseen_input");
    let (run, report) = verify(&project, &[]);
    run.assert_code(1);
    assert_eq!(
        kinds(&report),
        [
            (
                "cache".into(),
                Some("test_report.py::test_manifest_comes_from_this_session".into()),
                "unseen-input".into()
            ),
            ("exit_code".into(), None, "unknown".into()),
        ],
        "{}",
        run.transcript()
    );
    let d = &report["disagreements"][0];
    assert_eq!(d["outcomes"]["pytest"], "passed");
    assert_eq!(d["outcomes"]["rpytest-fresh"], "passed");
    assert_eq!(d["outcomes"]["rpytest-cached"], "failed");
    assert_eq!(d["rerun"]["rpytest"], "passed", "the confirming fresh run");
    assert_eq!(
        report["disagreements"][1]["exit_codes"]["rpytest-cached"],
        1
    );
    assert!(
        run.stdout.contains("only the cached run disagrees"),
        "{}",
        run.transcript()
    );
    assert!(
        run.stdout.contains("rpytest's cache key does not see"),
        "{}",
        run.transcript()
    );
}

#[test]
fn a_flaky_test_is_reported_flaky() {
    let project = new_project("verify_flaky");
    let (run, report) = verify(&project, &[]);
    run.assert_code(1);
    assert_eq!(
        kinds(&report),
        [
            (
                "flaky".into(),
                Some("test_flaky.py::test_cold_start".into()),
                "flaky".into()
            ),
            ("exit_code".into(), None, "unknown".into()),
        ],
        "{}",
        run.transcript()
    );
    let d = &report["disagreements"][0];
    assert_eq!(d["outcomes"]["pytest"], "failed");
    assert_eq!(d["rerun"]["pytest"], "passed");
    assert!(
        run.stdout
            .contains("re-run: stock pytest gave passed (was failed)"),
        "{}",
        run.transcript()
    );
    assert!(
        run.stdout
            .trim_end()
            .ends_with("only flaky tests, no incompatibility found"),
        "{}",
        run.transcript()
    );
}

// ---------------------------------------------------------------------------
// Options.

#[test]
fn no_cache_compares_two_tools_and_says_so() {
    let project = new_project("skip_xfail");
    let (run, report) = verify(&project, &["--no-cache"]);
    run.assert_code(0);
    assert_eq!(
        report["tools"],
        serde_json::json!(["pytest", "rpytest-fresh"])
    );
    assert_eq!(report["cached_run_skipped"], "--no-cache");
    assert!(
        run.stderr
            .contains("comparing stock pytest and rpytest fresh (--no-cache: no cached run)"),
        "{}",
        run.transcript()
    );
    assert!(
        run.stderr.contains("[2/2] rpytest fresh"),
        "{}",
        run.transcript()
    );
    assert!(!run.stderr.contains("[3/"), "{}", run.transcript());
    let nodes = report["nodes"].as_u64().unwrap();
    assert!(
        run.stdout.trim_end().ends_with(&format!(
            "verified drop-in: {nodes} nodes, identical outcomes and exit code (fresh only; cached run skipped: --no-cache)"
        )),
        "{}",
        run.transcript()
    );
}

#[test]
fn usage_errors_exit_4() {
    let project = new_project("select_expr");
    for args in [
        &["--verify-dropin", "--verify-report"][..],
        &["--verify-dropin", "--daemon", "status"][..],
        &["--verify-dropin", "--why", "test_more.py::test_alphabet"][..],
        &["--verify-report", "r.json"][..],
        &["--verify-dropin", "--verify-report", "/no/such/dir/r.json"][..],
    ] {
        let run = project.rpytest(args).no_junit().run();
        assert_eq!(run.code, 4, "{args:?}\n{}", run.transcript());
        assert!(
            !run.stderr.contains("[1/"),
            "ran tools on a usage error\n{}",
            run.transcript()
        );
    }
}

#[test]
fn a_cached_run_that_served_nothing_is_said_so() {
    let project = new_project("verify_uncached");
    let (run, report) = verify(&project, &[]);
    run.assert_code(0);
    assert_eq!(
        run.stdout.trim_end().lines().last(),
        Some("verified drop-in: 1 nodes, identical outcomes and exit code (fresh; the cached run served nothing from the cache)"),
        "{}",
        run.transcript()
    );
    assert!(
        run.stderr
            .contains("note: the cached run served no result from the cache"),
        "{}",
        run.transcript()
    );
    assert!(
        report["notes"].to_string().contains("served no result"),
        "{report}"
    );
}
