//! The native module (`native/`): sessions load it and record through its
//! audit hook when it is there, through the Python hook with
//! `RPYTEST_NATIVE=0`, and both record the same inputs.

mod common;

use common::{Project, Run};
use std::collections::BTreeSet;

fn hook_of(run: &Run) -> String {
    run.stdout
        .lines()
        .find_map(|l| l.find("AUDIT_HOOK=").map(|i| l[i + 11..].trim().to_owned()))
        .unwrap_or_else(|| panic!("no AUDIT_HOOK line in:\n{}", run.transcript()))
}

/// A copy of the fixture whose sessions load the native module, whatever
/// `RPYTEST_NATIVE` the tests run with.
fn native_project() -> Project {
    let mut p = Project::new("native_inputs");
    p.set_env("RPYTEST_NATIVE", "1");
    p
}

/// Changes `rel` (a comment) so that its tests run again.
fn touch(p: &Project, rel: &str, n: u32) {
    let text = p.read(rel);
    p.write(rel, &format!("{text}# {n}\n"));
}

#[test]
fn sessions_record_through_the_native_hook_unless_turned_off() {
    let mut p = native_project();
    let run = p.rpytest(&["-s", "tests/test_hook.py"]).run();
    run.assert_code(0);
    assert_eq!(hook_of(&run), "native", "the daemon's session");
    touch(&p, "tests/test_hook.py", 1);
    let run = p
        .rpytest(&["-s", "--no-daemon", "tests/test_hook.py"])
        .run();
    run.assert_code(0);
    assert_eq!(hook_of(&run), "native", "a --no-daemon session");
    // RPYTEST_NATIVE=0: the daemon is replaced (it is in its fingerprint).
    p.set_env("RPYTEST_NATIVE", "0");
    touch(&p, "tests/test_hook.py", 2);
    let run = p.rpytest(&["-s", "tests/test_hook.py"]).run();
    run.assert_code(0);
    assert_eq!(hook_of(&run), "python");
}

#[test]
fn the_native_module_path_is_not_in_the_tests_environment() {
    let p = native_project();
    p.write(
        "tests/test_env.py",
        "import os\n\ndef test_env():\n    assert 'RPYTEST_NATIVE_MODULE' not in os.environ\n",
    );
    p.rpytest(&["tests/test_env.py"]).run().assert_code(0);
    touch(&p, "tests/test_env.py", 1);
    p.rpytest(&["--no-daemon", "tests/test_env.py"])
        .run()
        .assert_code(0);
}

/// Recorded dependencies (file, kind, name) and import edges (importer, imported).
type Recorded = (
    BTreeSet<(String, String, String)>,
    BTreeSet<(String, String)>,
);

/// The recorded dependencies and import edges of a project.
fn recorded(p: &Project) -> Recorded {
    let db = rusqlite::Connection::open(p.path(".rpytest/cache.db")).expect("open the cache");
    let deps = db
        .prepare("SELECT file, kind, name FROM deps")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let edges = db
        .prepare("SELECT importer, imported FROM edges")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    (deps, edges)
}

#[test]
fn native_and_python_hooks_record_the_same_inputs() {
    let native = native_project();
    let mut python = Project::new("native_inputs");
    python.set_env("RPYTEST_NATIVE", "0");
    let a = native.rpytest(&["-s", "tests"]).run();
    let b = python.rpytest(&["-s", "tests"]).run();
    a.assert_code(0);
    b.assert_code(0);
    assert_eq!(hook_of(&a), "native");
    assert_eq!(hook_of(&b), "python");
    let (deps_a, edges_a) = recorded(&native);
    let (deps_b, edges_b) = recorded(&python);
    // Not trivially equal: each test's input is there.
    for (kind, name) in [
        ("env", "NATIVE_FIXTURE_VAR"),
        ("env", "*"),
        ("read", "data/a.txt"),
        ("read", "data/missing.txt"),
        ("list", "data"),
        ("import", "pkg/helper.py"),
    ] {
        assert!(
            deps_a.iter().any(|(_, k, n)| k == kind && n == name),
            "{kind}:{name} not recorded: {deps_a:#?}"
        );
    }
    assert_eq!(deps_a, deps_b);
    assert_eq!(edges_a, edges_b);
}
