//! Snapshots of rpytest's own output (insta, `tests/snapshots/output__*.snap`):
//! the cache summary line, a fully cached run under `-v`/`-q`/`-rA`, `--why`,
//! `--show-rules`, the daemon and result-cache commands, `--verify-dropin`
//! with and without a difference, and usage errors. Real binary, real pytest,
//! real daemon; what differs between machines and runs (paths, timings,
//! pids, versions, counts of files the machine happens to have) is filtered.
//!
//! A changed message fails here: review it with `cargo insta review`, or
//! accept it with `INSTA_UPDATE=always` and read the diff of the `.snap` file.
//!
//! Needs a venv with pytest, rpytest and the fixture plugin: see
//! `common::python`.

mod common;

use common::{machine_filters, Project, Run};

/// `(regex, replacement)` for what varies between machines and runs.
fn filters(p: &Project) -> Vec<(String, String)> {
    let mut f = vec![(
        r"/\S*/rpytest-verify-\d+-[0-9a-f]+".into(),
        "[VERIFY_OUTPUTS]".into(),
    )];
    f.extend(machine_filters(&p.root));
    f.extend([
        (r"(?m)^platform .*$".into(), "platform [PLATFORM]".into()),
        (r"(?m)^plugins: .*$".into(), "plugins: [PLUGINS]".into()),
        (r"idle timeout: \d+s".into(), "idle timeout: [N]s".into()),
        // pytest centres a line that holds a time: its width follows the digits.
        (r"=+ (.*\[TIME\]s) =+".into(), "== $1 ==".into()),
    ]);
    f
}

/// Binds the filters for `p` to the rest of the calling scope.
fn snapshot_settings(p: &Project) -> insta::internals::SettingsBindDropGuard {
    let mut s = insta::Settings::clone_current();
    for (from, to) in filters(p) {
        s.add_filter(&from, to);
    }
    s.bind_to_scope()
}

/// A run as the user sees it: stdout, stderr and the exit code.
fn shown(run: &Run) -> String {
    format!(
        "{}--- stderr\n{}--- exit {}",
        run.stdout, run.stderr, run.code
    )
}

/// The `output` fixture run twice, so every result is stored.
fn cached_project() -> Project {
    let p = Project::new("output");
    p.rpytest(&[]).no_junit().run().assert_code(0);
    p.rpytest(&[]).no_junit().run().assert_code(0);
    p
}

#[test]
fn a_fully_cached_run() {
    let p = cached_project();
    let _filters = snapshot_settings(&p);
    let default = p.rpytest_cmd(&[]);
    assert!(
        default.stderr.contains("7 cached, 0 run"),
        "{}",
        shown(&default)
    );
    insta::assert_snapshot!("fully_cached", shown(&default));
    insta::assert_snapshot!("fully_cached_verbose", shown(&p.rpytest_cmd(&["-v"])));
    insta::assert_snapshot!("fully_cached_quiet", shown(&p.rpytest_cmd(&["-q"])));
    insta::assert_snapshot!("fully_cached_report_all", shown(&p.rpytest_cmd(&["-rA"])));
}

#[test]
fn the_cache_summary_of_a_partly_cached_run() {
    let p = cached_project();
    let _filters = snapshot_settings(&p);
    p.replace("test_beta.py", "[1, 2, 3]", "[1, 2, 3, 4]");
    let partly = p.rpytest_cmd(&["-q"]);
    insta::assert_snapshot!("partly_cached", shown(&partly));
}

#[test]
fn why_a_test_is_or_is_not_served_from_the_cache() {
    let p = cached_project();
    let _filters = snapshot_settings(&p);
    let served = p.rpytest_cmd(&["--why", "test_alpha.py::test_one"]);
    p.replace("test_beta.py", "n * n >= n", "n * n >= n - 1");
    let changed = p.rpytest_cmd(&["--why", "test_beta.py::test_square[2]"]);
    let never = p.rpytest_cmd(&["--why", "test_alpha.py::test_new"]);
    insta::assert_snapshot!(
        "why",
        [served, changed, never]
            .iter()
            .map(shown)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// `--show-rules` without what differs between machines and pytest
/// versions: the installed modules, environment variables and probed
/// paths of the global key (their names stay in the per-file part).
fn portable_rules(text: &str) -> String {
    text.lines()
        .filter(|l| {
            let t = l.trim_start();
            !(l.starts_with("    ")
                && !l.starts_with("     ")
                && (t.starts_with("installed:")
                    || t.starts_with("env:")
                    || t.starts_with("file:/")))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn show_rules_daemon_and_result_cache_commands() {
    let p = cached_project();
    let _filters = snapshot_settings(&p);
    let rules = p.rpytest_cmd(&["--show-rules"]);
    rules.assert_code(0);
    insta::assert_snapshot!("show_rules", portable_rules(&rules.stdout));
    insta::assert_snapshot!(
        "daemon_status",
        shown(&p.rpytest_cmd(&["--daemon", "status"]))
    );
    insta::assert_snapshot!(
        "result_cache_stats",
        shown(&p.rpytest_cmd(&["--result-cache", "stats"]))
    );
    let durations = p.rpytest_cmd(&["--result-cache", "durations"]);
    let durations = shown(&durations);
    insta::with_settings!({filters => vec![(r#"": \d+(\.\d+)?(e-?\d+)?"#, "\": [SECONDS]")]}, {
        insta::assert_snapshot!("result_cache_durations", durations);
    });
    insta::assert_snapshot!(
        "result_cache_clear",
        shown(&p.rpytest_cmd(&["--result-cache", "clear"]))
    );
    insta::assert_snapshot!("daemon_stop", shown(&p.rpytest_cmd(&["--daemon", "stop"])));
    insta::assert_snapshot!(
        "daemon_status_stopped",
        shown(&p.rpytest_cmd(&["--daemon", "status"]))
    );
}

#[test]
fn verify_dropin_agrees() {
    let p = Project::new("output");
    let _filters = snapshot_settings(&p);
    let run = p.rpytest_cmd(&["--verify-dropin"]);
    run.assert_code(0);
    insta::assert_snapshot!("verify_agrees", shown(&run));
    let fresh_only = p.rpytest_cmd(&["--verify-dropin", "--no-cache", "-q"]);
    fresh_only.assert_code(0);
    insta::assert_snapshot!("verify_agrees_no_cache", shown(&fresh_only));
}

#[test]
fn verify_dropin_with_a_difference() {
    let p = Project::new("verify_argv");
    let _filters = snapshot_settings(&p);
    let run = p.rpytest_cmd(&["--verify-dropin"]);
    run.assert_code(1);
    insta::assert_snapshot!("verify_differs", shown(&run));
}

#[test]
fn usage_errors_exit_4() {
    let p = Project::new("output");
    let _filters = snapshot_settings(&p);
    let runs: Vec<Run> = [
        &["--daemon", "bogus"][..],
        &["--result-cache"],
        &["--verify-dropin", "--verify-report", "missing/report.json"],
        &["--no-such-flag"],
    ]
    .iter()
    .map(|args| p.rpytest_cmd(args))
    .collect();
    for r in &runs {
        r.assert_code(4);
    }
    insta::assert_snapshot!(
        "usage_errors",
        runs.iter()
            .map(|r| format!("$ rpytest {}\n{}", r.args.join(" "), shown(r)))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
