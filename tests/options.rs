//! The command a user meets with real projects' plugins: plugin options enter
//! the key instead of switching the cache off, plugins that list the
//! environment to display it do not make it an input, `--help` / `--version`
//! / `python -m rpytest` behave, the project's `.venv` is found, plugin usage
//! errors are pytest's, and daemons neither pile up nor linger.
//!
//! The plugin tests install real, pinned plugins from PyPI into a venv of
//! their own (once per target directory).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{machine_filters, pip, process_alive, python, repo_root, rpytest_bin, Project, Run};

/// The plugins real projects keep in `addopts`, pinned.
const PLUGINS: &[&str] = &[
    "pytest==8.4.2",
    "pytest-timeout==2.4.0",
    "pytest-html==4.2.0",
    "pytest-metadata==3.1.1",
    "pytest-benchmark==5.3.1",
    "syrupy==7.0.2",
    "pytest-django==4.14.0",
    "django==5.2.19",
];

fn purelib(py: &Path) -> PathBuf {
    let out = Command::new(py)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ])
        .output()
        .expect("ask the venv for its site-packages");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// A venv with `PLUGINS` and the worktree's rpytest package.
fn plugin_venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("options-plugin-venv");
        let py = venv.join("bin/python");
        let marker = venv.join("rpytest-options-ready");
        if marker.is_file() {
            return py;
        }
        let _ = fs::remove_dir_all(&venv);
        let ok = Command::new(python())
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("run python -m venv")
            .success();
        assert!(ok, "python -m venv failed");
        let mut args = vec!["install", "-q"];
        args.extend(PLUGINS);
        pip(&py, &args);
        fs::write(
            purelib(&py).join("rpytest_src.pth"),
            format!("{}\n", repo_root().join("python").display()),
        )
        .expect("write the .pth file");
        fs::write(&marker, "").expect("write the venv marker");
        py
    })
}

/// A venv without pip whose interpreter sees the test interpreter's packages
/// (pytest, rpytest) through a `.pth` file: cheap to make.
fn light_venv(dir: &Path, with_packages: bool) -> PathBuf {
    let ok = Command::new(python())
        .args(["-m", "venv", "--without-pip"])
        .arg(dir)
        .status()
        .expect("run python -m venv")
        .success();
    assert!(ok, "python -m venv failed");
    let py = dir.join("bin/python");
    if with_packages {
        let lines = format!(
            "{}\n{}\n",
            purelib(python()).display(),
            repo_root().join("python").display()
        );
        fs::write(purelib(&py).join("rpytest_test.pth"), lines).expect("write .pth");
    }
    py
}

fn plugin_project() -> Project {
    let mut p = Project::new("options_plugins");
    p.set_python(plugin_venv());
    p
}

/// `(cached, run)` from rpytest's `rpytest: N cached, M run` line
/// (`(0, 0)` when there is none: nothing was served from the cache).
fn counts(run: &Run) -> (usize, usize) {
    let Some(line) = run
        .stderr
        .lines()
        .find(|l| l.starts_with("rpytest: ") && l.contains(" cached, "))
    else {
        return (0, 0);
    };
    let nums: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .take(2)
        .map(|w| w.parse().unwrap())
        .collect();
    (nums[0], nums[1])
}

/// A run answered entirely from the cache prints only the summary line.
fn all_cached(run: &Run, total: usize, step: &str) {
    run.assert_code(0);
    assert_eq!(counts(run), (total, 0), "{step}\n{}", run.transcript());
}

#[test]
fn plugin_options_in_addopts_keep_the_cache_on() {
    let p = plugin_project();
    let first = p.rpytest(&[]).no_junit().run();
    first.assert_code(0);
    // The first run learned --timeout's arity from the session and stored its results.
    let second = p.rpytest(&[]).no_junit().run();
    all_cached(&second, 3, "second run with --timeout 30 in addopts");
    // The option's value is an input: another value runs everything.
    let other = p.rpytest(&["--timeout", "31"]).no_junit().run();
    assert_eq!(counts(&other).0, 0, "{}", other.transcript());
    assert!(other.stdout.contains("3 passed"), "{}", other.transcript());
    // PYTEST_ADDOPTS is read the same way (the variable is an input too).
    let with_env = || {
        p.rpytest(&[])
            .no_junit()
            .env("PYTEST_ADDOPTS", "--timeout 32")
            .run()
    };
    with_env().assert_code(0);
    all_cached(&with_env(), 3, "--timeout 32 from PYTEST_ADDOPTS");
}

#[test]
fn report_options_are_not_inputs_and_the_report_is_written() {
    let p = plugin_project();
    p.rpytest(&[]).no_junit().run().assert_code(0);
    p.rpytest(&[]).no_junit().run().assert_code(0);
    let report = p.out_path("report.html");
    let arg = format!("--html={}", report.display());
    let run = p.rpytest(&[&arg, "--self-contained-html"]).no_junit().run();
    all_cached(&run, 3, "--html with results cached without it");
    assert!(
        report.is_file(),
        "pytest-html wrote no report\n{}",
        run.transcript()
    );
}

#[test]
fn snapshot_update_and_benchmarks_run_everything_and_say_so() {
    let p = plugin_project();
    p.rpytest(&[]).no_junit().run().assert_code(0);
    p.rpytest(&[]).no_junit().run().assert_code(0);
    let why = p
        .rpytest(&["--why", "test_plain.py::test_one", "--snapshot-update"])
        .no_junit()
        .run();
    assert!(
        why.stdout
            .contains("it runs: --snapshot-update (syrupy) needs every test to run"),
        "{}",
        why.transcript()
    );
    let run = p.rpytest(&["--snapshot-update"]).no_junit().run();
    run.assert_code(0);
    let notes: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("needs every test to run"))
        .collect();
    assert_eq!(notes.len(), 1, "{}", run.transcript());
    assert_eq!(counts(&run).0, 0, "{}", run.transcript());
    assert!(run.stdout.contains("3 passed"), "{}", run.transcript());
    let bench = p.rpytest(&["--benchmark-min-rounds=2"]).no_junit().run();
    assert!(bench
        .stderr
        .contains("--benchmark-min-rounds (pytest-benchmark) needs every test to run"));
    assert_eq!(counts(&bench).0, 0, "{}", bench.transcript());
}

#[test]
fn display_plugins_do_not_make_the_environment_an_input() {
    let mut p = plugin_project();
    // pytest-benchmark's machine id copies the environment (platform's
    // `dict(os.environ, LC_ALL="C")`): the copy reads every variable by name.
    p.set_env("OPTIONS_UNRELATED", "1");
    p.rpytest(&[]).no_junit().run().assert_code(0);
    p.rpytest(&[]).no_junit().run().assert_code(0);
    let rules = p.rpytest_cmd(&["--show-rules"]);
    let global: Vec<&str> = rules
        .stdout
        .lines()
        .take_while(|l| !l.starts_with("test_"))
        .collect();
    assert!(
        !global.iter().any(|l| l.trim() == "env:*"),
        "pytest-metadata / pytest-benchmark made the whole environment an input of every test\n{}",
        rules.stdout
    );
    // A variable that was there when the results were recorded changes:
    // only the test that iterates the environment depends on it.
    p.set_env("OPTIONS_UNRELATED", "2");
    let run = p.rpytest(&[]).no_junit().run();
    run.assert_code(0);
    assert_eq!(counts(&run), (2, 1), "{}", run.transcript());
    // A new variable: the test that iterates the environment runs (and
    // fails, as stock pytest would), the others stay cached.
    p.set_env("OPTIONS_FAIL", "1");
    let run = p.rpytest(&[]).no_junit().run();
    run.assert_code(1);
    assert_eq!(counts(&run), (2, 1), "{}", run.transcript());
}

#[test]
fn plugin_usage_errors_are_reported_as_pytest_reports_them() {
    let p = plugin_project();
    for args in [&["--ds=missing.settings"][..], &["-p", "nosuch"][..]] {
        let stock = p.pytest(args).no_junit().run();
        let ours = p.rpytest(args).no_junit().run();
        assert_ne!(stock.code, 0, "{}", stock.transcript());
        assert_eq!(ours.code, stock.code, "{args:?}\n{}", ours.transcript());
        assert!(
            !ours.stderr.contains("internal error"),
            "{}",
            ours.transcript()
        );
        let last = stock
            .stderr
            .trim_end()
            .lines()
            .last()
            .unwrap_or("")
            .to_owned();
        assert!(
            ours.stderr.contains(&last),
            "{args:?}: pytest's message {last:?} is missing\n{}",
            ours.transcript()
        );
    }
}

#[test]
fn help_and_version_start_nothing() {
    let p = Project::new("options_plugins");
    fs::write(p.path("pytest.ini"), "[pytest]\n").unwrap();
    let help = p.rpytest(&["--help"]).no_junit().run();
    help.assert_code(0);
    assert!(
        help.stdout.contains("usage: "),
        "pytest's help is missing\n{}",
        help.transcript()
    );
    let ours = help
        .stdout
        .find("\nrpytest (a drop-in pytest")
        .expect("rpytest's section");
    assert!(help.stdout[ours..].contains("--result-cache="));
    let version = p.rpytest(&["--version"]).no_junit().run();
    version.assert_code(0);
    let text = format!("{}{}", version.stdout, version.stderr);
    assert!(
        text.contains("pytest 8.") || text.contains("pytest 9."),
        "{text}"
    );
    assert!(
        text.contains(&format!("rpytest {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(
        !p.path(".rpytest").exists(),
        "--help / --version created .rpytest/"
    );
    let status = p.rpytest_cmd(&["--daemon", "status"]);
    assert!(
        status.stdout.contains("running: no"),
        "{}",
        status.transcript()
    );
}

#[test]
fn python_dash_m_rpytest_runs_the_binary_beside_the_interpreter() {
    let p = Project::new("options_plugins");
    fs::write(p.path("pytest.ini"), "[pytest]\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let py = light_venv(&dir.path().join("venv"), true);
    fs::copy(rpytest_bin(), dir.path().join("venv/bin/rpytest")).unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(&py);
        cmd.args(["-m", "rpytest"]).args(args).current_dir(&p.root);
        cmd.env("XDG_RUNTIME_DIR", dir.path())
            .env_remove("VIRTUAL_ENV");
        cmd.env_remove("PYTEST_ADDOPTS");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let out = run(&["--no-daemon", "-q", "test_plain.py"], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 passed"));
    let out = run(
        &["--no-daemon", "-q", "test_env.py"],
        &[("OPTIONS_FAIL", "1")],
    );
    assert_eq!(out.status.code(), Some(1), "the exit code is rpytest's");
    let out = run(&["--version"], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("rpytest "));
}

#[test]
fn a_tool_install_runs_the_tests_with_the_projects_venv() {
    let p = Project::new("options_plugins");
    fs::write(p.path("pytest.ini"), "[pytest]\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    // rpytest's own environment (as `uv tool install` makes it): no pytest there.
    let tool = dir.path().join("tool");
    light_venv(&tool, false);
    fs::write(tool.join("uv-receipt.toml"), "[tool]\n").unwrap();
    fs::copy(rpytest_bin(), tool.join("bin/rpytest")).unwrap();
    light_venv(&p.path(".venv"), true);
    let out = Command::new(tool.join("bin/rpytest"))
        .args(["--no-daemon", "-q", "test_plain.py"])
        .current_dir(&p.root)
        .env_remove("VIRTUAL_ENV")
        .env_remove("PYTEST_ADDOPTS")
        .env("XDG_RUNTIME_DIR", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("running the tests with the project's")
            && stderr.contains(".venv/bin/python"),
        "which interpreter was chosen is not said\n{stderr}"
    );
    // --python still comes first, and then nothing needs saying.
    let out = Command::new(tool.join("bin/rpytest"))
        .args(["--no-daemon", "-q", "test_plain.py", "--python"])
        .arg(python())
        .current_dir(&p.root)
        .env_remove("VIRTUAL_ENV")
        .env("XDG_RUNTIME_DIR", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("running the tests with"));
}

/// Waits (up to a generous bound) until `pid` is gone.
fn wait_exit(pid: u32, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while process_alive(pid) {
        assert!(
            Instant::now() < deadline,
            "{what}: daemon {pid} is still alive"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn daemons_are_capped_most_idle_first() {
    let runtime = tempfile::tempdir().unwrap();
    let rt = runtime.path().to_string_lossy().into_owned();
    let mut a = Project::new("options_plugins");
    let mut b = Project::new("options_plugins");
    for p in [&mut a, &mut b] {
        fs::write(p.path("pytest.ini"), "[pytest]\n").unwrap();
        p.set_env("XDG_RUNTIME_DIR", &rt);
        p.set_env("RPYTEST_MAX_DAEMONS", "1");
    }
    a.rpytest(&[]).no_junit().run().assert_code(0);
    let first = a.daemon_pid().expect("a's daemon runs");
    b.rpytest(&[]).no_junit().run().assert_code(0);
    wait_exit(first, "the cap of one daemon");
    let logs = b.rpytest_cmd(&["--daemon", "logs"]);
    assert!(
        logs.stdout.contains("stopped the daemon of") && logs.stdout.contains("at most 1 daemons"),
        "{}",
        logs.transcript()
    );
    assert!(b.daemon_pid().is_some(), "the new daemon must live on");
}

#[test]
fn the_idle_timeout_is_short_for_a_daemon_used_once() {
    let mut p = Project::new("options_plugins");
    fs::write(p.path("pytest.ini"), "[pytest]\n").unwrap();
    p.set_env("RPYTEST_IDLE_TIMEOUT", "600");
    p.rpytest(&[]).no_junit().run().assert_code(0);
    let status = p.rpytest_cmd(&["--daemon", "status"]);
    assert!(
        status
            .stdout
            .contains("idle timeout: 100s (adapts to use, at most 600s)"),
        "{}",
        status.transcript()
    );
    for _ in 0..3 {
        p.rpytest(&["--no-cache"]).no_junit().run().assert_code(0);
    }
    let status = p.rpytest_cmd(&["--daemon", "status"]);
    assert!(
        status.stdout.contains("idle timeout: 600s"),
        "{}",
        status.transcript()
    );
    // Used once, with a short configured timeout: it goes on its own.
    let mut q = Project::new("options_plugins");
    fs::write(q.path("pytest.ini"), "[pytest]\n").unwrap();
    q.set_env("RPYTEST_IDLE_TIMEOUT", "3");
    q.rpytest(&[]).no_junit().run().assert_code(0);
    let pid = q.daemon_pid().expect("daemon");
    wait_exit(pid, "idle timeout");
    let logs = q.rpytest_cmd(&["--daemon", "logs"]);
    assert!(
        logs.stdout
            .contains("after 1 session(s) (idle timeout 0.5s of at most 3s), exiting"),
        "{}",
        logs.transcript()
    );
}

/// Paths, pids, hashes, versions and timings out of rpytest's output.
fn filters(p: &Project) -> Vec<(String, String)> {
    let mut f = machine_filters(&p.root);
    f.push((r"=+ (.*) =+".into(), "== $1 ==".into()));
    f
}

/// `--show-rules` without what differs between machines and pytest versions:
/// the installed modules, environment variables and probed paths of the
/// global key (their names stay in the per-file part).
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

/// rpytest's own output, as a user sees it.
#[test]
fn rpytest_output_snapshots() {
    let p = Project::new("options_plugins");
    fs::write(p.path("pytest.ini"), "[pytest]\n").unwrap();
    fs::write(p.path("test_env.py"), "def test_three():\n    pass\n").unwrap();
    let settings = {
        let mut s = insta::Settings::clone_current();
        for (from, to) in filters(&p) {
            s.add_filter(&from, to);
        }
        s.set_prepend_module_to_snapshot(false);
        s
    };
    let _guard = settings.bind_to_scope();
    let version = p.rpytest(&["--version"]).no_junit().run();
    insta::assert_snapshot!("version", version.stdout);
    let help = p.rpytest(&["--help"]).no_junit().run();
    let section = &help.stdout[help.stdout.find("\nrpytest (").expect("rpytest's section")..];
    insta::assert_snapshot!("help_rpytest_section", section.trim());
    p.rpytest(&[]).no_junit().run().assert_code(0);
    p.rpytest(&[]).no_junit().run().assert_code(0);
    let cached = p.rpytest(&["-q"]).no_junit().run();
    insta::assert_snapshot!(
        "cached_summary",
        format!("{}--- stderr\n{}", cached.stdout, cached.stderr)
    );
    let status = p.rpytest_cmd(&["--daemon", "status"]);
    insta::assert_snapshot!("daemon_status", status.stdout);
    let stats = p.rpytest_cmd(&["--result-cache", "stats"]);
    insta::assert_snapshot!("result_cache_stats", stats.stdout);
    let rules = p.rpytest_cmd(&["--show-rules"]);
    insta::assert_snapshot!("show_rules", portable_rules(&rules.stdout));
    let served = p.rpytest_cmd(&["--why", "test_plain.py::test_one"]);
    fs::write(
        p.path("test_plain.py"),
        "def test_one():\n    assert 2 == 2\n\n\ndef test_two():\n    pass\n",
    )
    .unwrap();
    let changed = p.rpytest_cmd(&["--why", "test_plain.py::test_one"]);
    let never = p.rpytest_cmd(&["--why", "test_plain.py::test_new"]);
    insta::assert_snapshot!(
        "why",
        format!("{}{}{}", served.stdout, changed.stdout, never.stdout)
    );
}
