//! `-n N`: distributed runs report what stock pytest reports (node IDs,
//! per-node outcomes in the JUnit XML, exit code), collect the suite once and
//! fork the workers from that session (a collector running a thread does not
//! fork), survive crashing workers (replaced by another fork),
//! stop on `-x`/`--maxfail`/Ctrl-C without leaving processes, keep
//! `xdist_group`s together, and `--shard K/N` splits the suite exactly.
//!
//! Needs a venv with pytest, rpytest and the fixture plugin: see `common::python`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::{
    assert_same, pip, python, repo_root, require_fixture_plugin, Outcome, Pair, Project, Run,
};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Stock pytest with `args`, rpytest with `-n 2` + `args`: same outcomes and exit code.
fn check_parallel(pair: &Pair, args: &[&str]) -> (Run, Run) {
    let pytest = pair.pytest.pytest(args).run();
    let mut with_n = vec!["-n", "2"];
    with_n.extend_from_slice(args);
    let rpytest = pair.rpytest.rpytest(&with_n).run();
    assert_same(&pytest, &rpytest);
    (pytest, rpytest)
}

/// Processes whose working directory is inside `root` (sessions left behind).
fn processes_in(root: &Path) -> Vec<String> {
    let root = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let Ok(cwd) = fs::read_link(entry.path().join("cwd")) else {
            continue;
        };
        let stat = fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        let cmd = fs::read_to_string(entry.path().join("cmdline")).unwrap_or_default();
        if cmd.contains("rpytest.daemon") {
            continue; // the project's warm daemon stays, by design
        }
        if cwd.starts_with(&root) || zombie && stat.contains("python") {
            found.push(format!("{pid} {}", cmd.replace('\0', " ")));
        }
    }
    found
}

fn assert_no_sessions_left(root: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = processes_in(root);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "processes left behind: {left:?}");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn same_outcomes_as_stock_pytest_fresh_and_cached() {
    require_fixture_plugin();
    let pair = Pair::new("parallel_suite");
    let (_, fresh) = check_parallel(&pair, &[]);
    assert!(fresh.count(Outcome::Failed) >= 1 && fresh.count(Outcome::Passed) > 10);
    // Second run: most results come from the cache; the JUnit XML still lists
    // every test once, cached ones included.
    let (pytest, cached) = check_parallel(&pair, &[]);
    assert!(cached.stderr.contains("cached"), "{}", cached.transcript());
    let total: usize = pytest.outcomes.values().map(|v| v.len()).sum();
    let listed: usize = cached.outcomes.values().map(|v| v.len()).sum();
    assert_eq!(total, listed);
    assert!(cached.outcomes.values().all(|v| v.len() == 1));
}

#[test]
fn same_outcomes_on_other_fixture_projects() {
    require_fixture_plugin();
    for (fixture, args) in [
        ("skip_xfail", vec![]),
        ("parametrize_ids", vec![]),
        ("unittest_case", vec![]),
        ("conftest_hierarchy", vec![]),
        ("select_expr", vec!["-k", "not slow"]),
        ("cache_many", vec![]),
    ] {
        let pair = Pair::new(fixture);
        check_parallel(&pair, &args);
    }
}

#[test]
fn verbose_lines_carry_the_worker_and_every_node_once() {
    require_fixture_plugin();
    let project = Project::new("parallel_suite");
    let run = project.rpytest(&["-n", "2", "-v", "--no-cache"]).run();
    run.assert_code(1);
    // Every result line names a worker of this run. (Which worker runs what
    // depends on timing: 33 fast tests may all go to the worker that
    // collected first, so both workers are checked on slow tests below.)
    let results = run
        .stdout
        .lines()
        .filter(|l| l.contains(" PASSED ") || l.contains(" FAILED ") || l.contains(" ERROR "));
    for line in results.filter(|l| l.contains('%')) {
        assert!(
            line.starts_with("[gw0] ") || line.starts_with("[gw1] "),
            "{line}\n{}",
            run.stdout
        );
    }
    assert!(
        run.stdout.contains("2 workers [33 items]"),
        "{}",
        run.stdout
    );
    let result_lines = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("[gw") && l.contains('%'))
        .count();
    let listed: usize = run.outcomes.values().map(|v| v.len()).sum();
    assert_eq!(result_lines, listed, "{}", run.stdout);
}

/// Verbose result lines after the `nth` failure: what ran once the stop was due.
fn results_after_failure(run: &Run, nth: usize) -> usize {
    let lines: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("[gw") && l.contains('%'))
        .collect();
    let pos = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains(" FAILED "))
        .nth(nth - 1)
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("fewer than {nth} failures:\n{}", run.stdout));
    lines.len() - pos - 1
}

#[test]
fn both_workers_run_tests_when_there_is_enough_work() {
    require_fixture_plugin();
    // Twelve tests of 0.2–0.5 s: far longer than a worker takes to collect.
    let project = Project::new("parallel_stop");
    let run = project.rpytest(&["-n", "2", "-v", "--no-cache"]).run();
    run.assert_code(1);
    assert!(
        run.stdout.contains("[gw0]") && run.stdout.contains("[gw1]"),
        "{}",
        run.stdout
    );
}

#[test]
fn session_fixtures_run_once_per_worker_and_groups_share_one() {
    require_fixture_plugin();
    let mut project = Project::new("parallel_suite");
    let session_log = project.out_path("session.log");
    let group_log = project.out_path("group.log");
    project.set_env("SESSION_LOG", &session_log.display().to_string());
    project.set_env("GROUP_LOG", &group_log.display().to_string());
    project
        .rpytest(&["-n", "2", "--no-cache"])
        .run()
        .assert_code(1);
    let setups: Vec<String> = fs::read_to_string(&session_log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(!setups.is_empty() && setups.len() <= 2, "{setups:?}");
    let unique: BTreeSet<&String> = setups.iter().collect();
    assert_eq!(
        unique.len(),
        setups.len(),
        "a worker set it up twice: {setups:?}"
    );
    let groups = fs::read_to_string(&group_log).unwrap();
    let workers: BTreeSet<&str> = groups
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(groups.lines().count(), 3, "{groups}");
    assert_eq!(workers.len(), 1, "xdist_group split over workers: {groups}");
    assert!(workers.iter().all(|w| w.starts_with("gw")), "{groups}");
}

#[test]
fn crashing_workers_are_reported_and_the_rest_runs() {
    require_fixture_plugin();
    let project = Project::new("parallel_crash");
    let run = project.rpytest(&["-n", "2", "--no-cache"]).run();
    run.assert_code(1);
    // A crashed test is an error in the JUnit XML, as pytest-xdist reports it.
    let outcomes: BTreeMap<&str, &Vec<Outcome>> =
        run.outcomes.iter().map(|(k, v)| (k.as_str(), v)).collect();
    assert_eq!(run.count(Outcome::Error), 2, "{}", run.transcript());
    assert_eq!(run.count(Outcome::Passed), 6, "{}", run.transcript());
    assert_eq!(outcomes.len(), 8);
    assert!(
        run.stdout
            .contains("crashed while running 'test_crash.py::test_segfault': signal 11"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("crashed while running 'test_crash.py::test_exit': exit code 3"),
        "{}",
        run.stdout
    );
    assert_no_sessions_left(&project.root);
    // Without the daemon too.
    let fresh = project
        .rpytest(&["-n", "2", "--no-cache", "--no-daemon"])
        .run();
    fresh.assert_code(1);
    assert_eq!(fresh.count(Outcome::Error), 2, "{}", fresh.transcript());
    assert_eq!(fresh.count(Outcome::Passed), 6, "{}", fresh.transcript());
    assert_no_sessions_left(&project.root);
}

#[test]
fn exitfirst_and_maxfail_stop_every_worker() {
    require_fixture_plugin();
    let project = Project::new("parallel_stop");
    // test_a and test_b fail first. Once the controller has the failure that
    // stops the run, each of the two workers finishes at most its current test.
    let x = project
        .rpytest(&["-n", "2", "-x", "-v", "--no-cache"])
        .run();
    // pytest-xdist's exit code and last line: its controller stops the run as interrupted.
    x.assert_code(2);
    assert!(x.stdout.contains("stopping after"), "{}", x.stdout);
    assert!(
        x.stdout
            .contains("xdist.dsession.Interrupted: stopping after 1 failures"),
        "{}",
        x.stdout
    );
    assert!(results_after_failure(&x, 1) <= 2, "{}", x.stdout);
    assert!(x.count(Outcome::Passed) < 10, "{}", x.transcript());
    let m = project
        .rpytest(&["-n", "2", "--maxfail=2", "-v", "--no-cache"])
        .run();
    m.assert_code(2);
    assert!(
        m.stdout
            .contains("xdist.dsession.Interrupted: stopping after 2 failures"),
        "{}",
        m.stdout
    );
    assert!(results_after_failure(&m, 2) <= 2, "{}", m.stdout);
    assert!(m.count(Outcome::Passed) < 10, "{}", m.transcript());
    assert_no_sessions_left(&project.root);
}

#[test]
fn ctrl_c_stops_every_worker_with_the_partial_summary() {
    require_fixture_plugin();
    let project = Project::new("parallel_stop");
    let mut running = project.rpytest(&["-n", "2", "--no-cache", "-v"]).spawn();
    // Interrupt once the workers are running tests: a first result is out.
    running.wait_for_stdout(&[" PASSED ", " FAILED "]);
    unsafe { libc::kill(running.pid() as i32, libc::SIGINT) };
    let run = running.wait();
    run.assert_code(2);
    assert!(
        run.stdout.contains("KeyboardInterrupt"),
        "{}",
        run.transcript()
    );
    assert_no_sessions_left(&project.root);
}

#[test]
fn shards_partition_the_suite_deterministically() {
    require_fixture_plugin();
    let project = Project::new("parallel_suite");
    let all: BTreeSet<String> = node_ids(&project, &[]);
    assert_eq!(all.len(), 33);
    let mut union: Vec<String> = Vec::new();
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let first = node_ids(&project, &["--shard", &shard]);
        assert!(!first.is_empty(), "shard {shard} is empty");
        assert_eq!(
            first,
            node_ids(&project, &["--shard", &shard]),
            "not stable"
        );
        union.extend(first);
    }
    let as_set: BTreeSet<String> = union.iter().cloned().collect();
    assert_eq!(union.len(), as_set.len(), "a test is in two shards");
    assert_eq!(as_set, all);
    // Shards run with -n and the cache too: the union of outcomes is the suite.
    let mut ran = 0;
    for k in 1..=3 {
        let run = project
            .rpytest(&["--shard", &format!("{k}/3"), "-n", "2"])
            .run();
        ran += run.outcomes.values().map(|v| v.len()).sum::<usize>();
    }
    assert_eq!(ran, 33);
}

fn node_ids(project: &Project, extra: &[&str]) -> BTreeSet<String> {
    let mut args = vec!["--co", "-q"];
    args.extend_from_slice(extra);
    let run = project.rpytest(&args).no_junit().run();
    run.assert_code(0);
    run.stdout
        .lines()
        .filter(|l| l.contains("::"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn bad_parallel_arguments_are_usage_errors() {
    require_fixture_plugin();
    let project = Project::new("parallel_suite");
    for args in [
        vec!["-n", "lots"],
        vec!["-n", "2", "--dist", "sideways"],
        vec!["--shard", "0/3"],
        vec!["--shard", "4/3"],
        vec!["--shard", "two"],
        vec!["-n", "2", "--pdb"],
    ] {
        let run = project.rpytest(&args).no_junit().run();
        run.assert_code(4);
        assert!(
            !run.stderr.trim().is_empty() && !run.stderr.contains("Traceback"),
            "{args:?}: {}",
            run.transcript()
        );
    }
}

#[test]
fn dist_no_and_n_0_run_one_session() {
    require_fixture_plugin();
    let pair = Pair::new("parallel_suite");
    let pytest = pair.pytest.pytest(&[]).run();
    for args in [vec!["-n", "0"], vec!["-n", "2", "--dist", "no"]] {
        let run = pair.rpytest.rpytest(&args).run();
        assert_same(&pytest, &run);
        assert!(!run.stdout.contains("[gw"), "{}", run.stdout);
    }
}

/// The `parallel_collect_once` fixture's log: `collect PID`, `import MODULE PID`
/// and `run NODEID WORKERINPUT_ID PID PYTEST_XDIST_WORKER` lines, as words.
fn collect_once_log(project: &Project) -> Vec<Vec<String>> {
    let text = fs::read_to_string(project.path("log.txt")).unwrap_or_default();
    let _ = fs::remove_file(project.path("log.txt"));
    text.lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// Every test module was imported once by each process that collected (one
/// collector, or one per share of the files once a run recorded their
/// durations: each imports every test module, as a pytest-xdist worker
/// does, and makes the items of its share only), and no collector ran a
/// test: the workers are their forks. Returns the `run` lines.
fn assert_collected_once(log: &[Vec<String>], transcript: &str) -> Vec<Vec<String>> {
    let collectors: Vec<&String> = log
        .iter()
        .filter(|l| l[0] == "collect")
        .map(|l| &l[1])
        .collect();
    assert!((1..=2).contains(&collectors.len()), "{log:?}\n{transcript}");
    for m in 1..=4 {
        let module = format!("test_mod_{m}");
        let imports: Vec<&Vec<String>> = log
            .iter()
            .filter(|l| l[0] == "import" && l[1] == module)
            .collect();
        let by: BTreeSet<&String> = imports.iter().map(|l| &l[2]).collect();
        assert_eq!(
            imports.len(),
            collectors.len(),
            "{module} imported more than once per collector: {log:?}"
        );
        assert_eq!(by, collectors.iter().copied().collect(), "{log:?}");
    }
    let runs: Vec<Vec<String>> = log.iter().filter(|l| l[0] == "run").cloned().collect();
    for r in &runs {
        assert!(
            !collectors.contains(&&r[3]),
            "a collector ran a test: {log:?}"
        );
        assert!(
            collectors.contains(&&r[5]),
            "a worker is no fork of a collector: {log:?}"
        );
        assert_eq!(
            r[2], r[4],
            "workerinput and PYTEST_XDIST_WORKER differ: {log:?}"
        );
    }
    runs
}

#[test]
fn the_suite_is_collected_once_and_the_workers_are_forks() {
    require_fixture_plugin();
    let project = Project::new("parallel_collect_once");
    for no_daemon in [false, true] {
        let mut args = vec!["-n", "2", "--no-cache"];
        if no_daemon {
            args.push("--no-daemon");
        }
        let run = project.rpytest(&args).run();
        run.assert_code(0);
        assert_eq!(run.count(Outcome::Passed), 14, "{}", run.transcript());
        let runs = assert_collected_once(&collect_once_log(&project), &run.transcript());
        assert_eq!(runs.len(), 14, "{runs:?}");
        for r in &runs {
            assert!(r[2] == "gw0" || r[2] == "gw1", "{runs:?}");
        }
        assert_no_sessions_left(&project.root);
    }
}

#[test]
fn a_crashed_worker_is_replaced_by_a_fork_that_does_not_collect() {
    require_fixture_plugin();
    let project = Project::new("parallel_collect_once");
    project.write("crash", "");
    // One worker: its crash leaves work that only a replacement can take.
    for no_daemon in [false, true] {
        let mut args = vec!["-n", "1", "--no-cache"];
        if no_daemon {
            args.push("--no-daemon");
        }
        let run = project.rpytest(&args).run();
        run.assert_code(1);
        assert_eq!(run.count(Outcome::Error), 1, "{}", run.transcript());
        assert_eq!(run.count(Outcome::Passed), 13, "{}", run.transcript());
        assert!(
            run.stdout.contains(
                "worker 'gw0' crashed while running 'test_crash.py::test_maybe_crash': exit code 3"
            ),
            "{}",
            run.stdout
        );
        let runs = assert_collected_once(&collect_once_log(&project), &run.transcript());
        let after = runs
            .iter()
            .find(|r| r[1] == "test_crash.py::test_after_crash")
            .unwrap_or_else(|| panic!("test_after_crash did not run: {runs:?}"));
        assert_eq!(after[2], "gw1", "{runs:?}");
        assert_no_sessions_left(&project.root);
    }
}

#[test]
fn a_collector_running_a_thread_does_not_fork_and_every_worker_collects() {
    require_fixture_plugin();
    let project = Project::new("parallel_collect_once");
    project.write("thread", "");
    let run = project.rpytest(&["-n", "2", "--no-cache"]).run();
    run.assert_code(0);
    assert_eq!(run.count(Outcome::Passed), 14, "{}", run.transcript());
    let log = collect_once_log(&project);
    let collects = log.iter().filter(|l| l[0] == "collect").count();
    assert_eq!(collects, 2, "{log:?}\n{}", run.transcript());
    assert_no_sessions_left(&project.root);
}

/// Code that reads the worker id while the suite is collected (at import, in
/// `pytest_configure`) would see the collector's id in every fork: then every
/// worker collects for itself, as under pytest-xdist.
#[test]
fn reading_the_worker_id_while_collecting_makes_every_worker_collect() {
    require_fixture_plugin();
    for (marker, args) in [
        ("worker_at_import", &["-n", "2", "--no-cache"][..]),
        ("worker_at_import", &["-n", "2"][..]),
        ("worker_at_configure", &["-n", "2", "--no-cache"][..]),
    ] {
        let project = Project::new("parallel_collect_once");
        project.write(marker, "");
        let run = project.rpytest(args).run();
        run.assert_code(0);
        assert_eq!(run.count(Outcome::Passed), 14, "{}", run.transcript());
        let log = collect_once_log(&project);
        let collects = log.iter().filter(|l| l[0] == "collect").count();
        assert_eq!(
            collects,
            2,
            "{marker} {args:?}: {log:?}\n{}",
            run.transcript()
        );
        assert_no_sessions_left(&project.root);
    }
}

// ---------------------------------------------------------------------------
// Plugins written for pytest-xdist.

/// The `pytest_testnodedown` records of the fixture plugin in `parallel_xdist_hooks`.
fn node_records(path: &Path) -> BTreeMap<String, serde_json::Value> {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON record"))
        .map(|v| (v["id"].as_str().unwrap_or("").to_owned(), v))
        .collect()
}

#[test]
fn plugins_written_for_xdist_get_its_controller_hooks() {
    require_fixture_plugin();
    let mut pair = Pair::new("parallel_xdist_hooks");
    let out = pair.rpytest.out_path("nodes.jsonl");
    pair.rpytest
        .set_env("XDIST_HOOKS_OUT", out.to_str().expect("utf-8 path"));
    for extra in [&["--no-cache"][..], &["--no-cache", "--no-daemon"][..]] {
        let _ = fs::remove_file(&out);
        let pytest = pair.pytest.pytest(&[]).run();
        let mut args = vec!["-n", "2"];
        args.extend_from_slice(extra);
        let rpytest = pair.rpytest.rpytest(&args).run();
        assert_same(&pytest, &rpytest);
        pytest.assert_code(1);
        // Each worker got the values the controller's plugin put in its
        // `workerinput` and handed back its `workeroutput` (bytes, tuples and
        // sets included), received by `pytest_testnodedown` once per worker.
        let records = node_records(&out);
        assert_eq!(
            records.keys().cloned().collect::<Vec<_>>(),
            ["gw0", "gw1"],
            "{}",
            rpytest.transcript()
        );
        for (id, r) in &records {
            assert_eq!(r["token_seen"], format!("token-{id}").as_str(), "{r}");
            assert_eq!(
                r["repr"],
                format!("<WorkerController {id}>").as_str(),
                "{r}"
            );
            assert_eq!(r["shared_ok"], true, "{r}");
            assert_eq!(r["blob_ok"], true, "{r}");
            assert_eq!(r["error"], serde_json::Value::Null, "{r}");
            assert!(r["exitstatus"].is_i64(), "{r}");
            assert_eq!(r["platform"], std::env::consts::OS, "{r}");
            assert_eq!(r["collected"], 12, "{r}");
        }
    }
    assert_no_sessions_left(&pair.rpytest.root);
}

#[test]
fn a_worker_that_breaks_while_starting_shows_its_traceback() {
    require_fixture_plugin();
    let mut project = Project::new("parallel_interrupt");
    project.set_env("BREAK_WORKERS", "1");
    let run = project.rpytest(&["-n", "2", "--no-cache"]).run();
    // pytest-xdist: the worker's INTERNALERROR, shown by the controller, exit 3.
    run.assert_code(3);
    assert!(
        run.stdout
            .contains("RuntimeError: this plugin breaks in worker gw0"),
        "{}",
        run.transcript()
    );
    assert!(
        run.stdout.contains("INTERNALERROR>"),
        "{}",
        run.transcript()
    );
    assert_no_sessions_left(&project.root);
}

#[test]
fn a_worker_interrupted_by_its_test_stops_the_run_as_under_xdist() {
    require_fixture_plugin();
    for how in ["exit", "keyboard"] {
        let mut project = Project::new("parallel_interrupt");
        project.set_env("INTERRUPT", how);
        let run = project.rpytest(&["-n", "2", "--no-cache"]).run();
        // pytest-xdist: the test is a crash of its worker, the run is interrupted (exit 2).
        run.assert_code(2);
        assert_eq!(
            run.outcomes.get("test_interrupt::test_interrupts"),
            Some(&vec![Outcome::Error]),
            "{how}: {}",
            run.transcript()
        );
        assert!(
            run.stdout
                .contains("crashed while running 'test_interrupt.py::test_interrupts'"),
            "{how}: {}",
            run.stdout
        );
        assert!(
            run.stdout.contains("received keyboard-interrupt"),
            "{how}: {}",
            run.stdout
        );
        assert_no_sessions_left(&project.root);
    }
}

/// A test that passes only outside a worker (it reads PYTEST_XDIST_WORKER)
/// is not served from a serial run's cache under `-n 2`, nor from `-n 2`'s
/// under `-n 3` when it reads the worker count: stock `pytest -n 2` fails it.
#[test]
fn results_that_depend_on_the_workers_are_not_reused_across_worker_counts() {
    require_fixture_plugin();
    let mut project = Project::new("parallel_suite");
    project.write_bytecode();
    project.write(
        "tests/test_where.py",
        "import os\n\n\ndef test_outside_a_worker():\n    assert os.environ.get('PYTEST_XDIST_WORKER') is None\n",
    );
    project.write(
        "tests/test_count.py",
        "import os\n\n\ndef test_two_workers():\n    assert os.environ.get('PYTEST_XDIST_WORKER_COUNT') in (None, '2')\n",
    );
    let file = "tests/test_where.py";
    project.rpytest(&[file]).run().assert_code(0);
    let again = project.rpytest(&[file]).run();
    assert!(again.stderr.contains("1 cached"), "{}", again.transcript());
    project.rpytest(&["-n", "2", file]).run().assert_code(1);
    let count = "tests/test_count.py";
    project.rpytest(&["-n", "2", count]).run().assert_code(0);
    let again = project.rpytest(&["-n", "2", count]).run();
    assert!(again.stderr.contains("1 cached"), "{}", again.transcript());
    project.rpytest(&["-n", "3", count]).run().assert_code(1);
    project.rpytest(&["-n", "3", count]).run().assert_code(1);
    // Asking the config whether this is a worker, as xdist's `worker_id`
    // fixture and plugins do.
    project.write(
        "tests/test_asks.py",
        "def test_not_a_worker(request):\n    assert not hasattr(request.config, 'workerinput')\n",
    );
    let asks = "tests/test_asks.py";
    project.rpytest(&[asks]).run().assert_code(0);
    let again = project.rpytest(&[asks]).run();
    assert!(again.stderr.contains("1 cached"), "{}", again.transcript());
    project.rpytest(&["-n", "2", asks]).run().assert_code(1);
}

/// `pytest.exit(returncode=7)` in a worker: pytest-xdist ends the run as an
/// internal error (exit 3, where serial pytest exits 7); the test is reported,
/// never silently lost.
#[test]
fn a_worker_leaving_with_its_own_exit_code_ends_the_run_as_under_xdist() {
    require_fixture_plugin();
    let mut project = Project::new("parallel_interrupt");
    project.set_env("INTERRUPT", "exit7");
    let run = project.rpytest(&["-n", "2", "--no-cache"]).run();
    run.assert_code(3);
    assert_eq!(
        run.outcomes.get("test_interrupt::test_interrupts"),
        Some(&vec![Outcome::Error]),
        "{}",
        run.transcript()
    );
    assert_no_sessions_left(&project.root);
}
/// Both copies of `fixture` run with the venv that has pytest-xdist and the
/// plugins, so stock `pytest -n` is pytest-xdist itself.
fn xdist_pair(fixture: &str) -> Pair {
    let py = xdist_plugins_venv();
    let mut pair = Pair::new(fixture);
    pair.pytest.set_python(py);
    pair.rpytest.set_python(py);
    pair
}

/// An xdist pair for the partitioned collection (`RPYTEST_PARTITION=1`).
fn partition_pair(fixture: &str) -> Pair {
    let mut pair = xdist_pair(fixture);
    pair.set_env("RPYTEST_PARTITION", "1");
    pair
}

/// A venv of our own with the test interpreter's pytest, pytest-xdist,
/// pytest-randomly and pytest-cov (pinned), and rpytest's Python package (by
/// a `.pth` file). Built once under cargo's target tmpdir.
fn xdist_plugins_venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("xdist-plugins-venv");
        let py = venv.join("bin/python");
        let marker = venv.join("rpytest-xdist-plugins-ready");
        if marker.is_file() {
            // A target directory copied from another checkout: its package, not ours.
            let pth = fs::read_dir(venv.join("lib"))
                .into_iter()
                .flatten()
                .flatten()
                .map(|d| d.path().join("site-packages/rpytest_src.pth"))
                .find(|p| p.is_file());
            if let Some(pth) = pth {
                let _ = fs::write(pth, format!("{}\n", repo_root().join("python").display()));
            }
            return py;
        }
        let _ = fs::remove_dir_all(&venv);
        let version = Command::new(python())
            .args(["-c", "import pytest; print(pytest.__version__)"])
            .output()
            .expect("ask the test interpreter for its pytest");
        let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
        let status = Command::new(python())
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("run python -m venv");
        assert!(status.success(), "python -m venv failed");
        pip(
            &py,
            &[
                "install",
                "-q",
                &format!("pytest=={version}"),
                "pytest-xdist==3.8.0",
                "pytest-randomly==5.1.0",
                "pytest-cov==7.1.0",
                "coverage==7.17.5",
            ],
        );
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

/// The `TOTAL` line of a coverage report.
fn coverage_total(run: &Run) -> String {
    run.stdout
        .lines()
        .find(|l| l.starts_with("TOTAL"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| panic!("no coverage total\n{}", run.transcript()))
}

/// `-n 2` with pytest-randomly's seed fixed and pytest-cov's terminal report.
const RANDOMLY_AND_COV: [&str; 7] = [
    "-n",
    "2",
    "-p",
    "no:cacheprovider",
    "--randomly-seed=4242",
    "--cov=pkg",
    "--cov-report=term",
];

#[test]
fn pytest_randomly_and_pytest_cov_work_under_n_as_under_xdist() {
    let pair = xdist_pair("parallel_xdist_plugins");
    // The same seed: the same per-test draws (and so outcomes) in both runs.
    let args = RANDOMLY_AND_COV;
    let xdist = pair.pytest.pytest(&args).run();
    let rpytest = pair.rpytest.rpytest(&args).run();
    assert_same(&xdist, &rpytest);
    assert!(xdist.count(Outcome::Failed) > 0, "{}", xdist.transcript());
    assert!(
        rpytest.stdout.contains("Using --randomly-seed=4242"),
        "{}",
        rpytest.transcript()
    );
    assert_eq!(coverage_total(&xdist), coverage_total(&rpytest));
    // -x: pytest-xdist's controller ends the run as interrupted.
    let x = [
        "-n",
        "2",
        "-x",
        "-p",
        "no:cacheprovider",
        "--randomly-seed=4242",
    ];
    let xdist = pair.pytest.pytest(&x).run();
    let rpytest = pair.rpytest.rpytest(&x).run();
    xdist.assert_code(2);
    assert_eq!(
        xdist.code,
        rpytest.code,
        "{}\n{}",
        xdist.transcript(),
        rpytest.transcript()
    );
    assert_no_sessions_left(&pair.rpytest.root);
}

/// A worker killed in a test's teardown: the test's setup and call reports
/// were sent before its teardown began, so the controller shows its call as
/// pytest-xdist does (`PASSED`, then the crash as `FAILED`: "1 failed, 3 passed").
#[test]
fn a_crash_in_teardown_keeps_the_tests_earlier_reports() {
    require_fixture_plugin();
    let project = Project::new("parallel_teardown_crash");
    let with_xdist = Command::new(python())
        .args(["-c", "import xdist"])
        .status()
        .is_ok_and(|s| s.success());
    if with_xdist {
        // The behaviour this matches, where pytest-xdist is installed.
        let xdist = project
            .pytest(&["-n", "2", "-rA", "-p", "no:cacheprovider"])
            .run();
        xdist.assert_code(1);
        xdist.assert_stdout_contains("PASSED test_teardown.py::test_crash_in_teardown");
        xdist.assert_stdout_contains("1 failed, 3 passed");
    }
    for extra in [&[][..], &["--no-daemon"][..]] {
        let mut args = vec!["-n", "2", "--no-cache", "-rA"];
        args.extend_from_slice(extra);
        let run = project.rpytest(&args).run();
        run.assert_code(1);
        run.assert_stdout_contains("PASSED test_teardown.py::test_crash_in_teardown");
        run.assert_stdout_contains("call ran");
        run.assert_stdout_contains(
            "crashed while running 'test_teardown.py::test_crash_in_teardown': signal 9",
        );
        run.assert_stdout_contains("1 failed, 3 passed");
        assert_no_sessions_left(&project.root);
    }
}

/// The lines pytest-xdist's controller prints about its workers (status,
/// scheduler, crashes and restarts) and the summary line without its time.
fn xdist_lines(run: &Run) -> Vec<String> {
    let mut lines: Vec<String> = run
        .stdout
        .lines()
        .filter(|l| {
            l.starts_with("created: ")
                || l.contains(" workers [")
                || l.contains(" worker [")
                || l.starts_with("scheduling tests via ")
                || l.starts_with("bringing up nodes")
                || l.starts_with("collected ")
                || l.starts_with("replacing crashed worker ")
                || l.starts_with("maximum crashed workers reached")
                || l.contains("crashed and worker restarting disabled")
        })
        .map(str::to_owned)
        .collect();
    let summary = run
        .stdout
        .lines()
        .rev()
        .find(|l| l.contains(" in ") && (l.contains("passed") || l.contains("failed")))
        .unwrap_or("");
    let summary = summary.trim_matches(|c| c == '=' || c == ' ');
    lines.push(summary.split(" in ").next().unwrap_or("").to_owned());
    lines
}

/// What a user sees of the workers is pytest-xdist's: "created: 2/2 workers",
/// "2 workers [N items]" and a blank line instead of "collected N items",
/// "scheduling tests via LoadScheduling" under -v, "bringing up nodes..."
/// under -q, and (deselection happens in the workers) no deselected count.
#[test]
fn the_workers_status_lines_are_pytest_xdists() {
    let pair = xdist_pair("parallel_crash");
    let base = [
        "-n",
        "2",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "-k",
        "not segfault and not exit",
    ];
    for extra in [
        &[][..],
        &["-v"][..],
        &["-q"][..],
        &["--dist", "loadfile", "-v"][..],
    ] {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let xdist = pair.pytest.pytest(&args).run();
        // Every test executed: with cached results fewer workers start.
        let rpytest = pair
            .rpytest
            .rpytest(&[&args[..], &["--no-cache"]].concat())
            .run();
        assert_same(&xdist, &rpytest);
        let expected = xdist_lines(&xdist);
        assert!(
            expected
                .iter()
                .any(|l| l.contains("workers [4 items]") || l.starts_with("bringing up nodes")),
            "{}",
            xdist.transcript()
        );
        assert_eq!(
            expected,
            xdist_lines(&rpytest),
            "{}\n{}",
            xdist.transcript(),
            rpytest.transcript()
        );
        // The blank line after the workers' status, as pytest-xdist prints it (not a tty).
        let blank_after = |run: &Run| {
            let lines: Vec<&str> = run.stdout.lines().collect();
            lines
                .iter()
                .position(|l| l.contains(" workers [") || l.starts_with("bringing up nodes"))
                .map(|i| lines.get(i + 1).copied() == Some(""))
        };
        assert_eq!(
            blank_after(&xdist),
            blank_after(&rpytest),
            "{}",
            rpytest.stdout
        );
    }
    assert_no_sessions_left(&pair.rpytest.root);
}

/// `--max-worker-restart` as pytest-xdist: a crashed worker is replaced (by
/// another fork) until more than that many crashed, then the run stops after
/// each worker's current test, says so, and exits 1.
#[test]
fn max_worker_restart_replaces_crashed_workers_then_stops_as_xdist() {
    let pair = xdist_pair("parallel_restart");
    let base = ["-n", "1", "-p", "no:cacheprovider", "-p", "no:randomly"];
    for (limit, no_daemon) in [
        (None, false),
        (Some("1"), false),
        (Some("0"), false),
        (Some("0"), true),
    ] {
        let mut args: Vec<&str> = base.to_vec();
        if let Some(l) = limit {
            args.extend(["--max-worker-restart", l]);
        }
        let xdist = pair.pytest.pytest(&args).run();
        args.push("--no-cache");
        if no_daemon {
            args.push("--no-daemon");
        }
        let rpytest = pair.rpytest.rpytest(&args).run();
        xdist.assert_code(1);
        rpytest.assert_code(1);
        let expected = xdist_lines(&xdist);
        let reached = expected
            .iter()
            .any(|l| l.starts_with("maximum crashed") || l.contains("restarting disabled"));
        assert_eq!(reached, limit.is_some(), "{}", xdist.transcript());
        if limit == Some("1") {
            // Which tests a replacement runs first is pytest-xdist's order
            // (it requeues the crashed worker's tests): the crashes, the
            // lines and the test never reached are what must agree.
            for node in [
                "test_restart::test_before",
                "test_restart::test_crash_1",
                "test_restart::test_crash_2",
                "test_restart::test_after",
            ] {
                assert_eq!(
                    xdist.outcomes.get(node),
                    rpytest.outcomes.get(node),
                    "{node}\n{}\n{}",
                    xdist.transcript(),
                    rpytest.transcript()
                );
            }
            let lines = |r: &Run| {
                xdist_lines(r)
                    .into_iter()
                    .filter(|l| !l.contains(" passed"))
                    .collect::<Vec<_>>()
            };
            assert_eq!(
                lines(&xdist),
                lines(&rpytest),
                "{}\n{}",
                xdist.transcript(),
                rpytest.transcript()
            );
        } else {
            assert_same(&xdist, &rpytest);
            assert_eq!(
                expected,
                xdist_lines(&rpytest),
                "{}\n{}",
                xdist.transcript(),
                rpytest.transcript()
            );
        }
        // pytest-xdist's summary line for the stop.
        for line in xdist.stdout.lines().filter(|l| l.contains("= xdist: ")) {
            assert!(
                rpytest.stdout.contains(line),
                "{line}\n{}",
                rpytest.transcript()
            );
        }
        assert_no_sessions_left(&pair.rpytest.root);
    }
}

/// Workers that collect for themselves start one after another (the first
/// collects, then the others start): pytest-cov erases every data file as a
/// worker starts, so a late worker would erase what an earlier one already
/// saved. The coverage total is pytest-xdist's.
#[test]
fn coverage_of_workers_that_collect_for_themselves_is_kept() {
    let pair = xdist_pair("parallel_xdist_plugins");
    // The worker id read at import: every worker collects for itself.
    pair.write(
        "conftest.py",
        "import os\n\nIMPORT_WORKER = os.environ.get(\"PYTEST_XDIST_WORKER\")\n",
    );
    let args = RANDOMLY_AND_COV;
    let xdist = pair.pytest.pytest(&args).run();
    for extra in [&["--no-cache", "--no-daemon"][..], &["--no-cache"][..]] {
        let rpytest = pair.rpytest.rpytest(&[&args[..], extra].concat()).run();
        assert_same(&xdist, &rpytest);
        assert_eq!(
            coverage_total(&xdist),
            coverage_total(&rpytest),
            "{}\n{}",
            xdist.transcript(),
            rpytest.transcript()
        );
    }
    assert_no_sessions_left(&pair.rpytest.root);
}

// ---------------------------------------------------------------------------
// Partitioned collection: once a run recorded each file's duration, each of
// the N collectors collects only its share of the files and forks its worker.

/// The `parallel_partition` fixture's log lines, as words (and the log cleared).
fn partition_log(project: &Project) -> Vec<Vec<String>> {
    collect_once_log(project)
}

/// rpytest's run `args` (`--no-cache`) and pytest-xdist's: the same outcomes
/// and exit code, with the collection partitioned. Returns rpytest's log.
fn check_partitioned(pair: &Pair, args: &[&str], own: &[&str]) -> Vec<Vec<String>> {
    let _ = partition_log(&pair.pytest);
    let _ = partition_log(&pair.rpytest);
    let mut with_n = vec!["-n", "2"];
    with_n.extend_from_slice(args);
    let xdist = pair.pytest.pytest(&with_n).run();
    with_n.push("--no-cache");
    with_n.extend_from_slice(own);
    let rpytest = pair
        .rpytest
        .rpytest(&with_n)
        .env("RPYTEST_TRACE", "1")
        .run();
    assert!(
        rpytest.stderr.contains("collection partitioned"),
        "{args:?}: {}",
        rpytest.transcript()
    );
    assert_same(&xdist, &rpytest);
    let log = partition_log(&pair.rpytest);
    // Two collectors, each test module imported by one process only.
    let collects: BTreeSet<&String> = log
        .iter()
        .filter(|l| l[0] == "collect")
        .map(|l| &l[1])
        .collect();
    assert_eq!(collects.len(), 2, "{args:?}: {log:?}");
    // Each collector imports every test module once (as each pytest-xdist
    // worker does); the workers, its forks, import none.
    let mut imports: Vec<(&String, &String)> = log
        .iter()
        .filter(|l| l[0] == "import")
        .map(|l| (&l[1], &l[2]))
        .collect();
    let before = imports.len();
    imports.sort();
    imports.dedup();
    assert_eq!(before, imports.len(), "{args:?}: imported twice: {log:?}");
    assert!(
        imports.iter().all(|(_, pid)| collects.contains(pid)),
        "{args:?}: {log:?}"
    );
    // A session fixture runs once per worker, in workers (forks), as under pytest-xdist.
    let sessions: Vec<&String> = log
        .iter()
        .filter(|l| l[0] == "session")
        .map(|l| &l[1])
        .collect();
    let distinct: BTreeSet<&String> = sessions.iter().copied().collect();
    assert_eq!(sessions.len(), distinct.len(), "{args:?}: {log:?}");
    assert!(sessions.iter().all(|p| !collects.contains(p)), "{log:?}");
    log
}

/// A first `-n 2` run of `pair`'s rpytest: it records the durations that the
/// shares come from (itself partitioned by the paths' CRC).
fn record_durations(pair: &Pair) {
    let first = pair
        .rpytest
        .rpytest(&["-n", "2", "--no-cache", "-p", "no:randomly"])
        .env("RPYTEST_TRACE", "1")
        .run();
    assert!(
        first.stderr.contains("collection partitioned"),
        "{}",
        first.transcript()
    );
    let _ = partition_log(&pair.rpytest);
}

/// A first run, with no recorded durations, is partitioned too (each file
/// goes to the share its path hashes to), with pytest-xdist's outcomes.
#[test]
fn a_first_run_without_durations_is_partitioned() {
    require_fixture_plugin();
    let pair = partition_pair("parallel_partition");
    let log = check_partitioned(&pair, &["-p", "no:randomly"], &[]);
    let files: Vec<String> = log
        .iter()
        .filter(|l| l[0] == "collect")
        .flat_map(|l| l[2..].to_vec())
        .collect();
    let distinct: BTreeSet<&String> = files.iter().collect();
    assert_eq!(files.len(), 4, "every file in one share: {log:?}");
    assert_eq!(distinct.len(), 4, "{log:?}");
}

#[test]
fn partitioned_collection_gives_xdists_outcomes() {
    require_fixture_plugin();
    let pair = partition_pair("parallel_partition");
    record_durations(&pair);
    let log = check_partitioned(&pair, &["-p", "no:randomly"], &[]);
    // The longest file is a share of its own; every file is collected once.
    let shares: BTreeSet<String> = log
        .iter()
        .filter(|l| l[0] == "collect")
        .map(|l| l[2..].join(" "))
        .collect();
    let expected: BTreeSet<String> = ["test_a.py test_b.py test_c.py", "test_slow.py"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(shares, expected, "{log:?}");
    for args in [
        &[][..],                                  // pytest-randomly shuffles each worker's items
        &["-p", "no:randomly", "-k", "slow"][..], // one share has nothing left to run
        &["-p", "no:randomly", "-k", "not slow"][..],
        &["-p", "no:randomly", "--dist", "loadfile"][..],
    ] {
        check_partitioned(&pair, args, &[]);
    }
    check_partitioned(&pair, &["-p", "no:randomly"], &["--no-daemon"]);
}

#[test]
fn partitioned_collection_with_a_new_file_or_a_collection_error_gives_xdists_outcomes() {
    require_fixture_plugin();
    let pair = partition_pair("parallel_partition");
    record_durations(&pair);
    // A file no run has timed: its share comes from its path.
    pair.write(
        "test_new.py",
        "def test_new():\n    pass\n\n\ndef test_new_fails():\n    assert 0\n",
    );
    check_partitioned(&pair, &["-p", "no:randomly"], &[]);
    // A collection error in one share: as under pytest-xdist, the other
    // files' tests run and the error counts as a failure.
    pair.write("test_b.py", "def broken(:\n    pass\n");
    check_partitioned(&pair, &["-p", "no:randomly"], &[]);
    check_partitioned(
        &pair,
        &["-p", "no:randomly", "--continue-on-collection-errors"],
        &[],
    );
}

/// The test modules each process imported, in order, by process (the
/// fixture's `import MODULE PID` lines).
fn imports_by_process(log: &[Vec<String>]) -> BTreeMap<String, Vec<String>> {
    let mut by_pid: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in log.iter().filter(|l| l[0] == "import") {
        by_pid.entry(l[2].clone()).or_default().push(l[1].clone());
    }
    by_pid
}

/// A partitioned collector imports the other shares' test modules where
/// pytest imports them, in the collection's order (as each pytest-xdist
/// worker does): module-level side effects happen in the same order. Here the
/// shares are {test_a, test_b, test_c} and {test_slow}: the first share's
/// collector must not import test_slow before its own modules.
#[test]
fn partitioned_collectors_import_every_test_module_in_pytests_order() {
    require_fixture_plugin();
    let pair = partition_pair("parallel_partition");
    record_durations(&pair);
    let _ = partition_log(&pair.pytest);
    pair.pytest.pytest(&["-n", "2", "-p", "no:randomly"]).run();
    let xdist = imports_by_process(&partition_log(&pair.pytest));
    let log = check_partitioned(&pair, &["-p", "no:randomly"], &[]);
    let order: Vec<String> = ["test_a", "test_b", "test_c", "test_slow"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(xdist.len(), 2, "{xdist:?}");
    assert!(xdist.values().all(|o| *o == order), "{xdist:?}");
    let ours = imports_by_process(&log);
    assert_eq!(ours.len(), 2, "{log:?}");
    assert!(ours.values().all(|o| *o == order), "{log:?}");
}

/// The other shares' test modules a partitioned collector imports are not
/// inputs of its own tests: after a partitioned run, one edited test file
/// runs that file's tests again, as after a serial run, not the whole suite.
#[test]
fn a_partitioned_run_records_each_test_modules_imports_against_its_own_tests() {
    require_fixture_plugin();
    let mut project = Project::new("parallel_partition");
    project.set_env("RPYTEST_PARTITION", "1");
    project.write("conftest.py", "");
    for f in ["a", "b", "c", "d", "e", "f", "g", "h"] {
        let _ = fs::remove_file(project.path(&format!("test_{f}.py")));
        project.write(
            &format!("test_{f}.py"),
            &format!("def test_{f}():\n    pass\n"),
        );
    }
    let _ = fs::remove_file(project.path("test_slow.py"));
    // After a first run (serial or partitioned), test_c.py is edited: the
    // next run's cached count.
    let cached_after_edit = |args: &[&str]| -> String {
        let _ = fs::remove_dir_all(project.path(".rpytest"));
        project.write("test_c.py", "def test_c():\n    pass\n");
        let first = project.rpytest(args).env("RPYTEST_TRACE", "1").run();
        first.assert_code(0);
        if args.contains(&"-n") {
            assert!(
                first.stderr.contains("collection partitioned"),
                "{}",
                first.transcript()
            );
        }
        project.write("test_c.py", "def test_c():\n    pass\n# edited\n");
        let again = project.rpytest(args).env("RPYTEST_TRACE", "1").run();
        again.assert_code(0);
        again
            .stderr
            .lines()
            .find(|l| l.starts_with("rpytest:") && l.contains(" cached,"))
            .map(|l| l.to_string())
            .unwrap_or_else(|| panic!("nothing cached: {}", again.transcript()))
    };
    let serial = cached_after_edit(&[]);
    assert!(serial.starts_with("rpytest: 7 cached, 1 run"), "{serial}");
    let partitioned = cached_after_edit(&["-n", "2"]);
    assert!(
        partitioned.starts_with("rpytest: 7 cached, 1 run"),
        "{partitioned}"
    );
}

#[test]
fn arguments_that_need_the_whole_collection_collect_once() {
    require_fixture_plugin();
    let pair = partition_pair("parallel_partition");
    record_durations(&pair);
    for args in [
        &["-x"][..],
        &["--maxfail", "2"][..],
        &["--lf"][..],
        &["--dist", "loadgroup"][..],
    ] {
        let mut with_n = vec!["-n", "2", "--no-cache", "-p", "no:randomly"];
        with_n.extend_from_slice(args);
        let run = pair
            .rpytest
            .rpytest(&with_n)
            .env("RPYTEST_TRACE", "1")
            .run();
        assert!(
            !run.stderr.contains("collection partitioned"),
            "{args:?}: {}",
            run.transcript()
        );
        let log = partition_log(&pair.rpytest);
        let collects = log.iter().filter(|l| l[0] == "collect").count();
        assert_eq!(collects, 1, "{args:?}: {log:?}");
    }
}

#[test]
fn a_crashed_worker_of_a_share_is_replaced_by_a_fork_of_its_own_collector() {
    require_fixture_plugin();
    let project = Project::new("parallel_collect_once");
    project
        .rpytest(&["-n", "2", "--no-cache"])
        .run()
        .assert_code(0);
    let _ = collect_once_log(&project);
    project.write("crash", "");
    for no_daemon in [false, true] {
        let mut args = vec!["-n", "2", "--no-cache"];
        if no_daemon {
            args.push("--no-daemon");
        }
        let run = project
            .rpytest(&args)
            .env("RPYTEST_TRACE", "1")
            .env("RPYTEST_PARTITION", "1")
            .run();
        run.assert_code(1);
        assert!(
            run.stderr.contains("collection partitioned"),
            "{}",
            run.transcript()
        );
        assert_eq!(run.count(Outcome::Error), 1, "{}", run.transcript());
        assert_eq!(run.count(Outcome::Passed), 13, "{}", run.transcript());
        let log = collect_once_log(&project);
        let runs = assert_collected_once(&log, &run.transcript());
        let collects = log.iter().filter(|l| l[0] == "collect").count();
        assert_eq!(collects, 2, "{log:?}");
        let find = |name: &str| {
            runs.iter()
                .find(|r| r[1] == name)
                .unwrap_or_else(|| panic!("{name} did not run: {runs:?}"))
                .clone()
        };
        let crashed = find("test_crash.py::test_maybe_crash");
        let after = find("test_crash.py::test_after_crash");
        assert_ne!(after[3], crashed[3], "{runs:?}");
        assert_eq!(
            after[5], crashed[5],
            "not a fork of the same collector: {runs:?}"
        );
        assert_eq!(after[2], "gw2", "{runs:?}");
        assert_no_sessions_left(&project.root);
    }
}

/// Collection errors under `-n`: the tests that were collected run and the
/// errors count as failures (exit 1); `-x`/`--maxfail` reached by them stop
/// the run with pytest-xdist's line (exit 2); as pytest-xdist does.
#[test]
fn collection_errors_end_the_run_as_under_xdist() {
    require_fixture_plugin();
    let pair = xdist_pair("collection_error");
    for args in [
        &[][..],
        &["--continue-on-collection-errors"][..],
        &["-x"][..],
        &["--maxfail", "3"][..],
    ] {
        let mut with_n = vec!["-n", "2", "-p", "no:randomly"];
        with_n.extend_from_slice(args);
        let xdist = pair.pytest.pytest(&with_n).run();
        with_n.push("--no-cache");
        let rpytest = pair.rpytest.rpytest(&with_n).run();
        assert_same(&xdist, &rpytest);
        if args.is_empty() {
            xdist.assert_code(1);
            assert!(xdist.count(Outcome::Passed) > 0, "{}", xdist.transcript());
        }
        if args == ["-x"] {
            xdist.assert_code(2);
            assert!(
                rpytest
                    .stdout
                    .contains("xdist.dsession.Interrupted: stopping after 1 failures"),
                "{}",
                rpytest.transcript()
            );
        }
    }
}

#[test]
fn a_hook_that_selects_from_the_whole_collection_sees_all_of_it() {
    // The conftest's hook selects every other item: the collection is not
    // split (first run, then with recorded durations), so it selects from
    // every item, as in each pytest-xdist worker.
    let pair = partition_pair("parallel_modifyitems");
    let args = ["-n", "2", "-p", "no:randomly", "-rA"];
    let xdist = pair.pytest.pytest(&args).run();
    xdist.assert_code(1);
    for _ in 0..2 {
        let rpytest = pair
            .rpytest
            .rpytest(&[&args[..], &["--no-cache"]].concat())
            .env("RPYTEST_TRACE", "1")
            .run();
        assert_same(&xdist, &rpytest);
        assert!(
            rpytest
                .stderr
                .contains("collection not partitioned: pytest_collection_modifyitems"),
            "{}",
            rpytest.transcript()
        );
    }
}

/// A conftest hook that sees the whole collection (each kind: the collection
/// itself, modifyitems, collection_finish, deselected), in a conftest loaded
/// before collecting or in a subdirectory's (loaded while collecting): the
/// suite is collected once, and the outcomes are pytest-xdist's (each hook
/// sees every item). A share would show it half of them.
#[test]
fn whole_list_collection_hooks_of_a_conftest_collect_once_as_under_xdist() {
    require_fixture_plugin();
    // (hook, conftest, extra arguments): the conftest stores what it saw on
    // the config; test_check.py asserts it saw the whole collection.
    let cases: [(&str, &str, &[&str]); 4] = [
        (
            "pytest_collection_modifyitems",
            "def pytest_collection_modifyitems(config, items):\n    config.seen = len(items)\n",
            &[],
        ),
        (
            "pytest_collection_finish",
            "def pytest_collection_finish(session):\n    session.config.seen = len(session.items)\n",
            &[],
        ),
        (
            "pytest_deselected",
            "def pytest_deselected(items):\n    if items:\n        c = items[0].config\n        c.seen = getattr(c, 'seen', 0) + len(items)\n",
            &["-k", "not test_b"],
        ),
        (
            "pytest_collection",
            "import pytest\n\n\n@pytest.hookimpl(wrapper=True)\ndef pytest_collection(session):\n    result = yield\n    session.config.seen = len(session.items)\n    return result\n",
            &[],
        ),
    ];
    for (hook, conftest, extra) in cases {
        for dir in ["tests", "tests/deep"] {
            let pair = partition_pair("parallel_modifyitems");
            pair.remove("tests/conftest.py");
            pair.write(&format!("{dir}/conftest.py"), conftest);
            // 20 tests in 7 files, and this one: 21 items (7 test_b deselected by -k).
            let expected = if extra.is_empty() { 21 } else { 7 };
            pair.write(
                &format!("{dir}/test_check.py"),
                &format!("def test_check(request):\n    assert getattr(request.config, 'seen', None) == {expected}\n"),
            );
            let mut args = vec!["-n", "2", "-p", "no:randomly"];
            args.extend_from_slice(extra);
            let xdist = pair.pytest.pytest(&args).run();
            args.push("--no-cache");
            let rpytest = pair.rpytest.rpytest(&args).env("RPYTEST_TRACE", "1").run();
            assert_same(&xdist, &rpytest);
            if !(hook == "pytest_collection" && dir == "tests/deep") {
                // (A subdirectory's pytest_collection registers too late to run.)
                assert!(
                    !xdist.stdout.contains("test_check.py::test_check"),
                    "{}",
                    xdist.transcript()
                );
            }
            assert!(
                rpytest
                    .stderr
                    .contains(&format!("collection not partitioned: {hook} in ")),
                "{hook} in {dir}: {}",
                rpytest.transcript()
            );
            assert_no_sessions_left(&pair.rpytest.root);
        }
    }
}

/// A parametrize ID made from the pid: pytest-xdist's workers collect
/// different tests, and it stops with "Different tests were collected"
/// (exit 1, no test run); so does rpytest (every worker collects).
#[test]
fn a_test_id_made_from_the_pid_ends_the_run_as_under_xdist() {
    require_fixture_plugin();
    let pair = xdist_pair("parallel_modifyitems");
    pair.remove("tests/conftest.py");
    pair.write(
        "tests/test_pid.py",
        "import os\n\nimport pytest\n\n\n@pytest.mark.parametrize('pid', [os.getpid()])\ndef test_pid(pid):\n    pass\n",
    );
    let args = ["-n", "2", "-p", "no:randomly"];
    let xdist = pair.pytest.pytest(&args).run();
    xdist.assert_code(1);
    let rpytest = pair
        .rpytest
        .rpytest(&[&args[..], &["--no-cache"]].concat())
        .run();
    // Which worker's collection is reported against which is a race under
    // pytest-xdist too ("between gw1 and gw0" as often): compared without it.
    rpytest.assert_code(1);
    for run in [&xdist, &rpytest] {
        assert!(
            run.stdout
                .contains("Different tests were collected between gw")
                && run.count(Outcome::Passed) == 0,
            "{}",
            run.transcript()
        );
    }
    assert_no_sessions_left(&pair.rpytest.root);
}

/// Each worker captures its tests' output in files of its own: failing
/// tests that print while both workers run show each its own output under
/// "Captured stdout call" (forks of the collector shared its capture files,
/// so one test's section held another's output, or nothing).
#[test]
fn each_worker_captures_its_own_tests_output() {
    let project = Project::new("soundness");
    let names = ["a", "b", "c", "d", "e", "f"];
    // Each test prints, then waits (up to a deadline) until the other
    // worker has printed too, so that both print while both run.
    for me in names {
        project.write(
            &format!("test_{me}.py"),
            &format!(
                r#"import os, time

def test_{me}():
    print("printed by test_{me}")
    worker = os.environ["PYTEST_XDIST_WORKER"]
    open(worker + ".printed", "w").close()
    other = "gw1" if worker == "gw0" else "gw0"
    deadline = time.monotonic() + 30
    while not os.path.exists(other + ".printed") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert False
"#
            ),
        );
    }
    let run = project.rpytest(&["-n", "2", "--no-cache", "-v"]).run();
    run.assert_code(1);
    assert!(
        run.stdout.contains("[gw0]") && run.stdout.contains("[gw1]"),
        "both workers must run tests\n{}",
        run.transcript()
    );
    let failures = run.stdout.split("= FAILURES =").nth(1).unwrap_or_default();
    for me in names {
        let section = failures
            .split(&format!(" test_{me} _"))
            .nth(1)
            .map(|rest| rest.split("\n___").next().unwrap_or(rest))
            .and_then(|s| s.split("short test summary").next())
            .unwrap_or_default();
        let printed: Vec<&str> = section
            .lines()
            .filter(|l| l.starts_with("printed by "))
            .collect();
        assert_eq!(
            printed,
            vec![format!("printed by test_{me}").as_str()],
            "test_{me}'s section must hold its own output only\n{}",
            run.transcript()
        );
    }
}

/// A conftest that keeps the session's pid at import (to tell fork children
/// apart, as filelock's does) sees its own process in every pytest-xdist
/// worker; forks of one collector would not: then every worker collects.
#[test]
fn a_pid_kept_at_import_makes_every_worker_collect() {
    let pair = Pair::new("soundness");
    pair.write(
        "conftest.py",
        "import os\nimport pytest\n\nSESSION_PID = os.getpid()\n\n@pytest.fixture(autouse=True)\ndef _in_session_process():\n    assert os.getpid() == SESSION_PID, \"running in a fork child\"\n",
    );
    for n in 1..=4 {
        pair.write(
            &format!("test_{n}.py"),
            &format!("def test_{n}():\n    pass\n"),
        );
    }
    let (_, rp) = check_parallel(&pair, &[]);
    rp.assert_code(0);
}

/// A parametrize value taken while collecting (`sys.stdout`, which pytest's
/// capture has replaced by then) is still `sys.stdout` in the test, as in a
/// pytest-xdist worker, which collected it itself. structlog's pickling
/// tests do this. Each worker has capture files of its own under the same
/// objects.
#[test]
fn a_capture_stream_taken_while_collecting_is_the_tests_own() {
    // Collected once (RPYTEST_PARTITION=0) and partitioned.
    for partition in ["0", "1"] {
        let mut pair = xdist_pair("soundness");
        for name in ["a", "b", "c", "d"] {
            pair.write(
                &format!("test_{name}.py"),
                "import sys\n\nimport pytest\n\n\n@pytest.mark.parametrize(\"stream\", [sys.stdout, sys.stderr])\ndef test_stream(stream):\n    print(\"to\", stream)\n    assert stream is sys.stdout or stream is sys.stderr\n",
            );
        }
        pair.set_env("RPYTEST_PARTITION", partition);
        let (py, _) = pair.check(&["-n", "2"]);
        py.assert_code(0);
    }
}

/// What escapes a worker after its session ended (a plugin's
/// `pytest_unconfigure` raising, here a warning under `filterwarnings =
/// error`) is not shown, as pytest-xdist's controller shows nothing of it;
/// the controller's own is, as under xdist (exit 1).
#[test]
fn a_workers_unconfigure_error_is_not_shown() {
    let pair = xdist_pair("soundness");
    pair.write("pytest.ini", "[pytest]\nfilterwarnings = error\n");
    pair.write(
        "conftest.py",
        "import os, warnings\n\n\ndef pytest_unconfigure(config):\n    warnings.warn(UserWarning(\"unconfigure in %s\" % os.environ.get(\"PYTEST_XDIST_WORKER\", \"the controller\")))\n",
    );
    pair.write("test_a.py", "def test_a():\n    pass\n");
    pair.write("test_b.py", "def test_b():\n    pass\n");
    let (py, rp) = pair.check(&["-n", "2"]);
    py.assert_code(1);
    for run in [&py, &rp] {
        let all = format!("{}{}", run.stdout, run.stderr);
        assert!(
            all.contains("unconfigure in the controller") && !all.contains("unconfigure in gw"),
            "{}",
            run.transcript()
        );
    }
}
