//! Monorepo CI: test rules on `examples/monorepo`, and the shared remote
//! cache against a real nginx (Debian's package, WebDAV `PUT`) started on
//! 127.0.0.1 by each test: a second machine reuses every result, a change in
//! the shared library reruns exactly its dependents, and a broken server
//! (stopped, 500s, garbage, wrong keys) never fails a run or passes a test.
//!
//! nginx must be installed (`apt-get install nginx-light`); `tests/run-all.sh`
//! sets RPYTEST_REQUIRE_NGINX=1 so CI fails rather than skips without it.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{require_fixture_plugin, Outcome, Project, Run};

fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// A throwaway nginx: WebDAV store, or a server that answers 500 to everything.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Nginx {
    fn start(failing: bool) -> Option<Nginx> {
        let Some(bin) = nginx_binary() else {
            if std::env::var_os("RPYTEST_REQUIRE_NGINX").is_some() {
                panic!("nginx is not installed (apt-get install nginx-light)");
            }
            eprintln!("SKIPPED: nginx is not installed; the remote cache tests need it");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let d = dir.path().display();
        fs::create_dir(dir.path().join("store")).unwrap();
        let location = if failing {
            "return 500;".to_owned()
        } else {
            "dav_methods PUT DELETE; create_full_put_path on; dav_access user:rw group:r all:r;"
                .to_owned()
        };
        let conf = format!(
            "worker_processes 1; daemon off; master_process off; pid {d}/nginx.pid;
             error_log {d}/error.log;
             events {{ worker_connections 512; }}
             http {{
               access_log {d}/access.log;
               client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
               fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
               server {{
                 listen 127.0.0.1:{port};
                 root {d}/store;
                 client_max_body_size 64m;
                 location / {{ {location} }}
               }}
             }}"
        );
        fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let server = Nginx { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                fs::read_to_string(server.dir.path().join("error.log")).unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/cache", self.port)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The stored result entries (files under the store holding results, not
    /// the recorded-dependencies snapshot).
    fn entries(&self) -> Vec<PathBuf> {
        self.files()
            .into_iter()
            .filter(|p| {
                fs::read_to_string(p)
                    .map(|t| t.contains("\"results\""))
                    .unwrap_or(false)
            })
            .collect()
    }

    /// Every stored file.
    fn files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![self.dir.path().join("store")];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn monorepo() -> Project {
    Project::new("../../examples/monorepo")
}

/// A running cache server holding what machine A (a fresh copy of the
/// monorepo) uploaded; None when nginx is missing and not required.
fn cache_filled_by_machine_a() -> Option<Nginx> {
    let server = Nginx::start(false)?;
    monorepo()
        .rpytest(&["--remote-cache", &server.url(), "--remote-cache-upload"])
        .run()
        .assert_code(0);
    Some(server)
}

/// Node IDs by how `-rA` reported them: (ran, replayed from a cache).
fn ran_and_cached(run: &Run) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut ran = BTreeSet::new();
    let mut cached = BTreeSet::new();
    for line in run.stdout.lines() {
        if let Some(n) = line.strip_prefix("PASSED ") {
            ran.insert(n.trim().to_owned());
        } else if let Some(n) = line.strip_prefix("CACHED ") {
            cached.insert(n.trim().to_owned());
        }
    }
    (ran, cached)
}

fn remote_warnings(run: &Run) -> usize {
    run.stderr
        .lines()
        .filter(|l| l.starts_with("rpytest: warning: remote cache"))
        .count()
}

const ALL: usize = 12;
const LIVE: &str = "packages/shipping/tests/test_live_quotes.py::test_quote_service_answers";

#[test]
fn a_second_machine_reuses_every_result_and_reruns_only_dependents() {
    require_fixture_plugin();
    let Some(server) = Nginx::start(false) else {
        return;
    };
    let url = server.url();
    let a = monorepo();
    let first = a
        .rpytest(&["-rA", "--remote-cache", &url, "--remote-cache-upload"])
        .run();
    first.assert_code(0);
    assert_eq!(first.count(Outcome::Passed), ALL, "{}", first.transcript());
    // Five of six test files are cacheable (the live-quotes rule says cache = false),
    // plus what the run recorded (the keys' dependencies).
    assert_eq!(server.entries().len(), 5, "{}", first.stderr);
    assert_eq!(server.files().len(), 6, "{}", first.stderr);
    assert!(
        first.stderr.contains("0 hits, 6 uploads"),
        "{}",
        first.stderr
    );

    let b = monorepo();
    let second = b.rpytest(&["-rA", "--remote-cache", &url]).run();
    second.assert_code(0);
    let (ran, cached) = ran_and_cached(&second);
    assert_eq!(
        ran,
        BTreeSet::from([LIVE.to_owned()]),
        "{}",
        second.transcript()
    );
    assert_eq!(cached.len(), ALL - 1, "{}", second.transcript());
    // One request for the recorded dependencies, one per test file.
    assert!(
        second
            .stderr
            .contains("remote cache: 6 lookups, 6 hits, 0 uploads"),
        "{}",
        second.stderr
    );
    assert_eq!(remote_warnings(&second), 0, "{}", second.stderr);

    // A change in the shared library: billing and shipping import it, catalog does not.
    b.replace(
        "libs/shared/src/shared/money.py",
        "def fmt(",
        "# changed on machine B\ndef fmt(",
    );
    let third = b.rpytest(&["-rA", "--remote-cache", &url]).run();
    third.assert_code(0);
    let (ran, cached) = ran_and_cached(&third);
    let files: BTreeSet<&str> = ran.iter().map(|n| n.split("::").next().unwrap()).collect();
    assert_eq!(
        files,
        BTreeSet::from([
            "packages/billing/tests/test_invoice.py",
            "packages/billing/tests/test_rounding.py",
            "packages/shipping/tests/test_live_quotes.py",
            "packages/shipping/tests/test_rates.py",
        ]),
        "{}",
        third.transcript()
    );
    assert!(
        cached.iter().all(|n| n.starts_with("packages/catalog/")),
        "{cached:?}"
    );
}

#[test]
fn shards_with_the_remote_cache_cover_the_suite_once() {
    require_fixture_plugin();
    let Some(server) = cache_filled_by_machine_a() else {
        return;
    };
    let url = server.url();
    let b = monorepo();
    let mut seen: Vec<String> = Vec::new();
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let run = b
            .rpytest(&["--shard", &shard, "--remote-cache", &url, "-n", "2"])
            .run();
        assert!(matches!(run.code, 0 | 5), "{}", run.transcript());
        seen.extend(run.outcomes.keys().cloned());
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(
        seen.len(),
        unique.len(),
        "a test ran in two shards: {seen:?}"
    );
    assert_eq!(seen.len(), ALL, "{seen:?}");
}

#[test]
fn a_failing_server_gives_one_warning_and_a_correct_local_run() {
    require_fixture_plugin();
    let Some(failing) = Nginx::start(true) else {
        return;
    };
    let p = monorepo();
    let run = p
        .rpytest(&["--remote-cache", &failing.url(), "--remote-cache-upload"])
        .run();
    run.assert_code(0);
    assert_eq!(run.count(Outcome::Passed), ALL);
    assert_eq!(remote_warnings(&run), 1, "{}", run.stderr);
    assert!(run.stderr.contains("500"), "{}", run.stderr);
    // Unreachable: nothing listens on the port any more.
    let url = failing.url();
    drop(failing);
    let q = monorepo();
    let run = q.rpytest(&["--remote-cache", &url]).run();
    run.assert_code(0);
    assert_eq!(run.count(Outcome::Passed), ALL);
    assert_eq!(remote_warnings(&run), 1, "{}", run.stderr);
    // The local cache still works for both.
    let again = q.rpytest(&["-rA", "--remote-cache", &url]).run();
    let (ran, _) = ran_and_cached(&again);
    assert_eq!(
        ran,
        BTreeSet::from([LIVE.to_owned()]),
        "{}",
        again.transcript()
    );
}

#[test]
fn garbage_and_entries_under_the_wrong_key_are_never_used() {
    require_fixture_plugin();
    let Some(server) = cache_filled_by_machine_a() else {
        return;
    };
    let url = server.url();
    let entries = server.entries();
    assert_eq!(entries.len(), 5);
    // Entry 0's bytes stored under entry 1's address: a wrong key.
    fs::copy(&entries[0], &entries[1]).unwrap();
    // Entry 2: garbage.
    fs::write(&entries[2], b"\x00\x01 not json at all \xff").unwrap();
    // Entry 3: valid JSON whose failing result must never become a pass.
    let text = fs::read_to_string(&entries[3]).unwrap();
    fs::write(&entries[3], text.replace("\"passed\"", "\"failed\"")).unwrap();
    let b = monorepo();
    let run = b.rpytest(&["-rA", "--remote-cache", &url]).run();
    run.assert_code(0);
    assert_eq!(run.count(Outcome::Passed), ALL, "{}", run.transcript());
    assert!(run.stderr.contains("3 hits"), "{}", run.stderr); // the dependencies + 2 entries
    assert!(
        run.stderr.contains("ignored 3 invalid entries"),
        "{}",
        run.stderr
    );
    assert_eq!(remote_warnings(&run), 1, "{}", run.stderr);
    let (ran, cached) = ran_and_cached(&run);
    assert_eq!(ran.len() + cached.len(), ALL);
}

#[test]
fn a_server_stopped_mid_run_gives_one_warning() {
    require_fixture_plugin();
    let Some(server) = Nginx::start(false) else {
        return;
    };
    let mut p = Project::new("remote_stop");
    p.set_env("NGINX_PID", &server.pid().to_string());
    let run = p
        .rpytest(&["--remote-cache", &server.url(), "--remote-cache-upload"])
        .run();
    run.assert_code(0);
    assert_eq!(run.count(Outcome::Passed), 3, "{}", run.transcript());
    assert_eq!(remote_warnings(&run), 1, "{}", run.stderr);
    // Nothing was lost locally.
    let again = p.rpytest(&["-rA"]).run();
    again.assert_code(0);
    let (ran, cached) = ran_and_cached(&again);
    assert!(
        ran.len() <= 1 && cached.len() >= 2,
        "{}",
        again.transcript()
    );
}

#[test]
fn declared_inputs_and_cache_false_rules() {
    require_fixture_plugin();
    let mut p = monorepo();
    p.rpytest(&[]).run().assert_code(0);
    let warm = p.rpytest(&["-rA"]).run();
    let (ran, _) = ran_and_cached(&warm);
    assert_eq!(
        ran,
        BTreeSet::from([LIVE.to_owned()]),
        "cache = false always runs"
    );
    // The rule's data file changes: exactly the catalog tests run.
    p.write(
        "packages/catalog/data/products.csv",
        "sku,price\napple,0.50\npear,0.75\nplum,1.10\nfig,2.00\n",
    );
    let after = p.rpytest(&["-rA"]).run();
    let (ran, _) = ran_and_cached(&after);
    let files: BTreeSet<&str> = ran.iter().map(|n| n.split("::").next().unwrap()).collect();
    assert_eq!(
        files,
        BTreeSet::from([
            "packages/catalog/tests/test_prices.py",
            "packages/catalog/tests/test_skus.py",
            "packages/shipping/tests/test_live_quotes.py",
        ]),
        "{}",
        after.transcript()
    );
    // The rule's environment variable: the shipping tests run.
    p.set_env("SHIPPING_REGION", "us");
    let env_run = p.rpytest(&["-rA"]).run();
    let (ran, _) = ran_and_cached(&env_run);
    assert!(
        ran.iter()
            .any(|n| n.starts_with("packages/shipping/tests/test_rates.py")),
        "{}",
        env_run.transcript()
    );
    assert!(
        !ran.iter().any(|n| n.starts_with("packages/billing/")),
        "{}",
        env_run.transcript()
    );
}

#[test]
fn show_rules_names_the_rule_and_every_input() {
    require_fixture_plugin();
    let p = monorepo();
    let run = p.rpytest(&["--show-rules"]).no_junit().run();
    run.assert_code(0);
    let out = &run.stdout;
    let section = |file: &str| -> String {
        let start = out
            .find(&format!("\n{file}\n"))
            .unwrap_or_else(|| panic!("{file} missing:\n{out}"));
        let rest = &out[start + 1..];
        let end = rest[1..]
            .find("\npackages/")
            .map(|e| e + 1)
            .unwrap_or(rest.len());
        rest[..end].to_owned()
    };
    let catalog = section("packages/catalog/tests/test_prices.py");
    assert!(
        catalog.contains("rules: default, catalog (extends data-files)"),
        "{catalog}"
    );
    assert!(
        catalog.contains("file:packages/catalog/data/products.csv"),
        "{catalog}"
    );
    assert!(
        catalog.contains("file:packages/catalog/src/catalog/prices.py"),
        "{catalog}"
    );
    let rates = section("packages/shipping/tests/test_rates.py");
    assert!(rates.contains("env:SHIPPING_REGION"), "{rates}");
    assert!(
        rates.contains("file:libs/shared/src/shared/money.py"),
        "{rates}"
    );
    let live = section("packages/shipping/tests/test_live_quotes.py");
    assert!(live.contains("cache: no"), "{live}");
}

#[test]
fn invalid_rules_name_the_file_and_line() {
    require_fixture_plugin();
    let p = monorepo();
    p.replace(
        "pyproject.toml",
        "extends = [\"data-files\"]",
        "extends = [\"data-filez\"]",
    );
    let run = p.rpytest(&[]).no_junit().run();
    run.assert_code(4);
    assert!(
        run.stderr.contains(
            "pyproject.toml:20: invalid rule #1 (catalog): unknown preset \"data-filez\""
        ),
        "{}",
        run.stderr
    );
    p.replace(
        "pyproject.toml",
        "extends = [\"data-filez\"]",
        "pathz = [\"x\"]",
    );
    let run = p.rpytest(&["--no-cache"]).no_junit().run();
    run.assert_code(4);
    assert!(
        run.stderr.contains("pyproject.toml:20: invalid rule #1"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("pathz"), "{}", run.stderr);
}

#[test]
fn rules_with_args_workers_and_timeouts_run_in_their_own_sessions() {
    require_fixture_plugin();
    let p = Project::new("rules_sessions");
    let run = p.rpytest(&["-rA", "-v"]).run();
    run.assert_code(1);
    // Three sessions: the default and timed tests, the 2-worker group, the --runxfail group.
    assert_eq!(
        run.stdout.matches("test session starts").count(),
        3,
        "{}",
        run.stdout
    );
    let by_node = |n: &str| run.outcomes.get(n).cloned().unwrap_or_default();
    // --runxfail applies to the strict rule's tests only.
    assert_eq!(
        by_node("tests.strict.test_strict::test_strict_xfail_marker_ignored"),
        vec![Outcome::Passed],
        "{}",
        run.transcript()
    );
    assert!(
        run.stdout
            .contains("XFAIL tests/plain/test_plain.py::test_plain_xfail"),
        "{}",
        run.stdout
    );
    // workers = 2: that group's session is distributed.
    assert!(
        run.stdout
            .contains("PASSED tests/par/test_par_1.py::test_par_1"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("[gw"), "{}", run.stdout);
    // timeout = 0.5: the slow test fails, the fast one passes.
    assert!(
        run.stdout
            .contains("Timeout: the test ran longer than 0.5s (rpytest rule timeout)"),
        "{}",
        run.stdout
    );
    assert_eq!(
        by_node("tests.timed.test_timed::test_fast_enough"),
        vec![Outcome::Passed]
    );
    assert_eq!(
        by_node("tests.timed.test_timed::test_too_slow"),
        vec![Outcome::Failed]
    );
    // One JUnit XML for the three sessions.
    assert_eq!(run.outcomes.len(), 7, "{:?}", run.outcomes);
}

/// The key computations `RPYTEST_TRACE` counted in a run: (global keys
/// computed, distinct global keys, file keys computed, distinct file keys,
/// most computations of one key).
fn key_counts(run: &Run) -> (usize, usize, usize, usize, usize) {
    let line = run
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("rpytest trace: key computations: "))
        .unwrap_or_else(|| panic!("no key count in the trace\n{}", run.stderr));
    let n: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(n.len(), 5, "{line}");
    (n[0], n[1], n[2], n[3], n[4])
}

/// One key context per run: the global key is computed once, and no key is
/// computed twice in the same form (a file keyed before the run, as a digest
/// only, is keyed again after it with its labelled inputs when it ran, and
/// as a digest again only when what it recorded changed its key) — in a partly cached run with rule
/// groups, a run answered from the cache, and a run fed by a remote cache.
#[test]
fn every_key_is_computed_once_per_run() {
    require_fixture_plugin();
    let p = Project::new("rules_sessions");
    p.rpytest(&["-q"]).run().assert_code(1);
    p.replace(
        "tests/plain/test_plain.py",
        "def test_plain_xfail",
        "# edited\ndef test_plain_xfail",
    );
    let partly = p.rpytest(&["-q"]).env("RPYTEST_TRACE", "1").run();
    partly.assert_code(1);
    let (global, _, files, _, most) = key_counts(&partly);
    assert_eq!(global, 1, "{}", partly.stderr);
    assert!(files > 0, "{}", partly.stderr);
    assert_eq!(most, 1, "{}", partly.stderr);

    let Some(server) = cache_filled_by_machine_a() else {
        return;
    };
    let b = monorepo();
    let fed = b
        .rpytest(&["-q", "--remote-cache", &server.url()])
        .env("RPYTEST_TRACE", "1")
        .run();
    fed.assert_code(0);
    let (global, _, _, _, most) = key_counts(&fed);
    // The static global key (on a fresh store it is also the global key
    // before the remote's dependencies arrive), the hermetic files' global
    // key, and the global key after they arrived. A hermetic file's key does
    // not depend on what was recorded: the sync does not key it again.
    assert!(global <= 3, "{}", fed.stderr);
    assert_eq!(most, 1, "{}", fed.stderr);

    let again = b
        .rpytest(&["-q", "--remote-cache", &server.url()])
        .env("RPYTEST_TRACE", "1")
        .run();
    again.assert_code(0);
    let (global, distinct, _, _, most) = key_counts(&again);
    assert_eq!(global, distinct, "{}", again.stderr);
    assert_eq!(most, 1, "{}", again.stderr);
}
