//! Hermetic rules end to end, with the real sandbox (user, mount and network
//! namespaces entered by the session process): real binary, real daemon,
//! real pytest.
//!
//! Each denial is shown to be the sandbox's doing: stock pytest on the same
//! copy reads the file, reaches the server and sees the variable.
//!
//! Needs a Linux kernel that allows user namespaces (`unshare -Ur true`) and
//! util-linux's `unshare` for the test that takes them away.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use common::{assert_same, python, rpytest_bin, Outcome, Pair, Project, Run};

const CSV_TEST: &str = "catalog/test_data.py";
const UNDECLARED: &str =
    "rpytest: test read undeclared input catalog/data/prices.csv (declare it in rule \"catalog\" files)";

fn statuses(run: &Run, word: &str) -> Vec<String> {
    run.verbose_statuses()
        .into_iter()
        .filter(|(_, s)| s == word)
        .map(|(n, _)| n)
        .collect()
}

#[test]
fn an_undeclared_read_fails_with_the_explanation_and_passes_once_declared() {
    let p = Project::new("hermetic_catalog");
    // The file is there: stock pytest reads it.
    p.pytest(&[CSV_TEST]).run().assert_code(0);
    let run = p.rpytest(&[CSV_TEST]).run();
    run.assert_code(1);
    assert_eq!(run.count(Outcome::Failed), 1, "{}", run.transcript());
    run.assert_stdout_contains("FileNotFoundError")
        .assert_stdout_contains(UNDECLARED);
    // --show-rules and --why say what the sandbox saw.
    let rules = p.rpytest_cmd(&["--show-rules"]);
    rules.assert_code(0);
    for needle in [
        "hermetic: yes",
        "sandbox denied: read undeclared input catalog/data/prices.csv",
    ] {
        assert!(rules.stdout.contains(needle), "{}", rules.transcript());
    }
    let why = p.rpytest_cmd(&["--why", "catalog/test_data.py::test_reads_price_list"]);
    assert!(
        why.stdout
            .contains("sandbox denied: read undeclared input catalog/data/prices.csv"),
        "{}",
        why.transcript()
    );

    p.replace(
        "pyproject.toml",
        "hermetic = true\n",
        "hermetic = true\nfiles = [\"catalog/data/*.csv\"]\n",
    );
    let run = p.rpytest(&["-v", CSV_TEST]).run();
    run.assert_code(0);
    assert_eq!(run.count(Outcome::Passed), 1, "{}", run.transcript());
    assert!(
        !run.stdout.contains("rpytest: test read"),
        "{}",
        run.transcript()
    );
    // Declared, it is an input: cached until it changes, then run again.
    let again = p.rpytest(&["-v", CSV_TEST]).run();
    assert_eq!(
        statuses(&again, "CACHED").len(),
        1,
        "{}",
        again.transcript()
    );
    p.write("catalog/data/prices.csv", "wrong\n");
    let changed = p.rpytest(&["-v", CSV_TEST]).run();
    changed.assert_code(1);
    assert_eq!(
        statuses(&changed, "FAILED").len(),
        1,
        "{}",
        changed.transcript()
    );
}

#[test]
fn a_connection_to_a_server_outside_the_sandbox_fails_with_the_explanation() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local server");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.write_all(b"hello");
        }
    });
    let mut p = Project::new("hermetic_catalog");
    p.set_env("CATALOG_SERVER_PORT", &port.to_string());
    // Outside the sandbox the server answers.
    p.pytest(&["catalog/test_net.py"]).run().assert_code(0);
    let run = p.rpytest(&["catalog/test_net.py"]).run();
    run.assert_code(1);
    run.assert_stdout_contains("ConnectionRefusedError")
        .assert_stdout_contains(&format!(
            "rpytest: test connected to 127.0.0.1:{port} (a hermetic test has no network, only its own loopback)"
        ));
}

#[test]
fn undeclared_variables_are_absent_declared_ones_present_and_the_hash_seed_fixed() {
    let seed_of = |py: &Path| {
        let out = Command::new(py)
            .args(["-c", "print(hash('rpytest'))"])
            .env("PYTHONHASHSEED", "0")
            .output()
            .expect("run python");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let mut p = Project::new("hermetic_catalog");
    p.write(
        "catalog/test_seed.py",
        &format!(
            "def test_hash_seed_is_fixed():\n    assert hash('rpytest') == {}\n",
            seed_of(python())
        ),
    );
    p.set_env("CATALOG_SECRET", "s3cret");
    p.set_env("CATALOG_MODE", "strict");
    // Stock pytest sees the secret.
    let stock = p.pytest(&["catalog/test_env.py"]).run();
    stock.assert_code(1);
    // One run, two sessions: the hermetic catalog and web, which is not.
    let run = p
        .rpytest(&[
            "-v",
            "catalog/test_env.py",
            "catalog/test_seed.py",
            "web/test_web.py",
        ])
        .run();
    run.assert_code(0);
    assert_eq!(run.count(Outcome::Passed), 4, "{}", run.transcript());
}

#[test]
fn without_user_namespaces_a_hermetic_run_exits_4_and_runs_nothing() {
    let p = Project::new("hermetic_catalog");
    let marker = p.out_path("ran-unsandboxed");
    p.write(
        "catalog/test_marker.py",
        &format!(
            "def test_marks():\n    open({:?}, 'w').close()\n",
            marker.display().to_string()
        ),
    );
    let runtime = tempfile::Builder::new().prefix("rpt").tempdir().unwrap();
    for extra in [&[][..], &["--no-daemon"][..]] {
        // A user namespace whose limit of nested user namespaces is 0: the
        // kernel refuses unshare(CLONE_NEWUSER) to everything started in it.
        let out = Command::new("unshare")
            .args([
                "-Ur",
                "sh",
                "-c",
                "echo 0 > /proc/sys/user/max_user_namespaces && exec \"$@\"",
                "sh",
            ])
            .arg(rpytest_bin())
            .arg("--python")
            .arg(python())
            .args(extra)
            .arg("catalog/test_marker.py")
            .current_dir(&p.root)
            .env("XDG_RUNTIME_DIR", runtime.path())
            .env_remove("PYTEST_ADDOPTS")
            .output()
            .expect("run rpytest under unshare");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(4),
            "{extra:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        assert!(
            stderr.contains(
                "rpytest: cannot run hermetic tests in a sandbox: cannot create user namespaces"
            ),
            "{stderr}"
        );
        assert!(!marker.exists(), "the test ran unsandboxed\n{stdout}");
        assert!(!stdout.contains("passed"), "{stdout}");
    }
    let _ = Command::new(rpytest_bin())
        .args(["--daemon", "stop"])
        .arg("--python")
        .arg(python())
        .current_dir(&p.root)
        .env("XDG_RUNTIME_DIR", runtime.path())
        .output();
}

/// A project whose hermetic package declares everything it needs agrees with
/// stock pytest per node, fresh and cached, in one session and under `-n 2`,
/// from the daemon and from a fresh process (`--no-daemon`).
#[test]
fn a_hermetic_project_agrees_with_pytest_fresh_cached_and_parallel() {
    for parallel in [false, true] {
        let mut pair = Pair::new("hermetic_suite");
        pair.set_env("CORE_LEVEL", "3");
        let mut args = vec!["-v"];
        if parallel {
            args.extend(["-n", "2"]);
            // Stock pytest has no -n without pytest-xdist: compare with a plain run.
        }
        let stock = pair.pytest.pytest(&["-v"]).run();
        let fresh = pair.rpytest.rpytest(&args).run();
        assert_same(&stock, &fresh);
        assert!(
            statuses(&fresh, "CACHED").is_empty(),
            "{}",
            fresh.transcript()
        );
        // Only the file whose test starts a subprocess is left uncached.
        assert!(
            fresh
                .stderr
                .lines()
                .filter(|l| l.contains("its results are not cached"))
                .all(|l| l.contains("core/test_proc.py started a subprocess")),
            "{}",
            fresh.transcript()
        );
        let cached = pair.rpytest.rpytest(&args).run();
        assert_same(&stock, &cached);
        let replayed = statuses(&cached, "CACHED");
        // Every hermetic pass of a file without failures is replayed
        // (core/test_model.py has one: it runs whole).
        for node in [
            "core/test_io.py::test_own_loopback_server",
            "core/test_io.py::test_declared_level",
        ] {
            assert!(
                replayed.iter().any(|n| n == node),
                "{node} not cached\n{}",
                cached.transcript()
            );
        }
        assert!(
            !replayed
                .iter()
                .any(|n| n == "core/test_proc.py::test_subprocess"),
            "{}",
            cached.transcript()
        );
        // A fresh process per session (`--no-daemon`) enters the same sandbox.
        let mut no_daemon = args.clone();
        no_daemon.push("--no-daemon");
        let fresh_process = pair
            .rpytest
            .rpytest(&no_daemon)
            .env("RPYTEST_NO_CACHE", "1")
            .run();
        assert_same(&stock, &fresh_process);
        // A declared input changed: the tests that read it run again.
        pair.write(
            "core/data/config.json",
            "{\"answer\": 41, \"names\": [\"a\"]}\n",
        );
        let stock = pair.pytest.pytest(&["-v"]).run();
        let edited = pair.rpytest.rpytest(&args).run();
        assert_same(&stock, &edited);
        assert_eq!(
            edited.outcomes.get("core.test_model::test_config"),
            Some(&vec![Outcome::Failed]),
            "{}",
            edited.transcript()
        );
    }
}

/// A module a hermetic test imports by name at runtime is visible (it is
/// first-party code) but not in the static closure: the key cannot vouch for
/// it, so the result is not stored and the user is told.
#[test]
fn a_dynamic_import_outside_the_key_is_never_cached() {
    let p = Project::new("hermetic_catalog");
    p.write("catalog/plugin.py", "VALUE = 1\n");
    p.write(
        "catalog/test_dynamic.py",
        "import importlib\n\ndef test_plugin():\n    assert importlib.import_module('catalog.' + 'plugin').VALUE == 1\n",
    );
    let first = p.rpytest(&["-v", "catalog/test_dynamic.py"]).run();
    first.assert_code(0);
    assert!(
        first
            .stderr
            .contains("hermetic catalog/test_dynamic.py used catalog/plugin.py"),
        "{}",
        first.transcript()
    );
    let second = p.rpytest(&["-v", "catalog/test_dynamic.py"]).run();
    assert!(
        statuses(&second, "CACHED").is_empty(),
        "{}",
        second.transcript()
    );
    // The edit the key could not see is run, not hidden.
    p.write("catalog/plugin.py", "VALUE = 2\n");
    p.rpytest(&["catalog/test_dynamic.py"]).run().assert_code(1);
}

/// The sandbox shows every first-party module, but what a subprocess imports
/// is invisible to the recorder: a hermetic test that starts one is never
/// cached, and an edit to a module only the subprocess imports is run.
#[test]
fn a_hermetic_test_that_starts_a_subprocess_is_never_cached() {
    let p = Project::new("hermetic_catalog");
    p.write("catalog/helper.py", "VALUE = 1\n");
    p.write(
        "catalog/test_child.py",
        "import subprocess, sys\n\ndef test_child():\n    out = subprocess.run([sys.executable, '-c', 'from catalog.helper import VALUE; print(VALUE)'], capture_output=True, text=True)\n    assert out.stdout.strip() == '1', out.stderr\n",
    );
    let first = p.rpytest(&["-v", "catalog/test_child.py"]).run();
    first.assert_code(0);
    assert!(
        first.stderr.contains("started a subprocess"),
        "{}",
        first.transcript()
    );
    let second = p.rpytest(&["-v", "catalog/test_child.py"]).run();
    assert!(
        statuses(&second, "CACHED").is_empty(),
        "{}",
        second.transcript()
    );
    p.write("catalog/helper.py", "VALUE = 2\n");
    p.rpytest(&["catalog/test_child.py"]).run().assert_code(1);
}
