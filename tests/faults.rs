//! Faults, signals and local security (issue 12): what happens when the
//! session, the store, the daemon or the remote cache meet a stopped or
//! killed process, a held lock, damaged bytes, a hostile neighbour or a name
//! that is not UTF-8. Real binary, real daemon, real pytest, real SQLite;
//! tests wait for events (a line, a file, a pid), never for a fixed time.

mod common;

use common::{parse_pid, process_alive, Project};
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Polls `cond` every 20 ms until it holds; panics with `what` after `limit`
/// (a bound against hangs, not a timing assertion).
fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A child process that is killed (and reaped) when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------------------
// 1. A forked session ends the way a Python process ends.

#[test]
fn a_session_waits_for_its_non_daemon_threads_like_python() {
    let mut project = Project::new("fault_thread");
    let mark = project.out_path("thread-mark");
    project.set_env("THREAD_MARK_FILE", &mark.display().to_string());
    // Stock pytest waits for the thread at exit.
    project.pytest(&[]).run().assert_code(0);
    assert!(mark.exists(), "stock pytest did not wait for the thread");
    fs::remove_file(&mark).unwrap();
    // So does the daemon's forked session, before it reports its end.
    project.rpytest(&["--no-cache"]).run().assert_code(0);
    assert!(mark.exists(), "the forked session killed its worker thread");
    fs::remove_file(&mark).unwrap();
    project
        .rpytest(&["--no-cache", "--no-daemon"])
        .run()
        .assert_code(0);
    assert!(mark.exists(), "the fresh session killed its worker thread");
}

// ---------------------------------------------------------------------------
// 5. `--no-daemon` keeps the session in the CLI's care.

fn signal(pid: u32, sig: i32) {
    assert_eq!(
        unsafe { libc::kill(pid as i32, sig) },
        0,
        "kill({pid}, {sig})"
    );
}

#[test]
fn no_daemon_sigint_to_the_cli_interrupts_the_session_like_pytest() {
    let mut project = Project::new("slow_session");
    let started = project.out_path("started");
    project.set_env("RPYTEST_FIXTURE_STARTED", &started.display().to_string());
    project.set_env("RPYTEST_FIXTURE_SLEEP", "120");
    let running = project.rpytest(&["--no-daemon", "--no-cache"]).spawn();
    wait_until("the test started", Duration::from_secs(60), || {
        started.exists()
    });
    signal(running.pid(), libc::SIGINT);
    let run = running.wait();
    run.assert_code(2);
    assert!(
        run.stdout.contains("KeyboardInterrupt"),
        "{}",
        run.transcript()
    );
    assert!(
        run.stdout.contains("1 passed"),
        "no partial summary:\n{}",
        run.transcript()
    );
}

#[test]
fn no_daemon_sessions_die_with_a_killed_cli() {
    let mut project = Project::new("slow_session");
    let started = project.out_path("started");
    project.set_env("RPYTEST_FIXTURE_STARTED", &started.display().to_string());
    project.set_env("RPYTEST_FIXTURE_SLEEP", "120");
    for sig in [libc::SIGKILL, libc::SIGTERM] {
        let _ = fs::remove_file(&started);
        let running = project.rpytest(&["--no-daemon", "--no-cache"]).spawn();
        wait_until("the test started", Duration::from_secs(60), || {
            fs::read_to_string(&started).is_ok_and(|t| !t.is_empty())
        });
        let session: u32 = fs::read_to_string(&started)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        signal(running.pid(), sig);
        wait_until(
            &format!("session {session} ends after signal {sig} to the CLI"),
            Duration::from_secs(30),
            || !process_alive(session),
        );
        drop(running);
    }
}

#[test]
fn no_daemon_sigint_stops_every_worker() {
    common::require_fixture_plugin();
    let project = Project::new("parallel_stop");
    let mut running = project
        .rpytest(&["-n", "2", "--no-cache", "--no-daemon", "-v"])
        .spawn();
    running.wait_for_stdout(&[" PASSED ", " FAILED "]);
    signal(running.pid(), libc::SIGINT);
    let run = running.wait();
    run.assert_code(2);
    assert!(
        run.stdout.contains("KeyboardInterrupt"),
        "{}",
        run.transcript()
    );
    // The workers stopped: not all 12 tests (each at least 0.2 s) ran.
    let results = run
        .stdout
        .lines()
        .filter(|l| l.contains("] PASSED ") || l.contains("] FAILED "))
        .count();
    assert!(results < 12, "{}", run.transcript());
}

// ---------------------------------------------------------------------------
// 6. No predictable files in a shared temp directory.

/// Runs `args` as nobody (uid/gid 65534) and returns its status.
fn as_nobody(args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(args)
        .output()
        .expect("run setpriv")
}

#[test]
fn no_daemon_config_cannot_be_planted_by_another_user() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("needs root to act as a second user");
        return;
    }
    let project = Project::new("slow_session");
    // A shared temp directory like /tmp: world-writable and sticky.
    let tmp = tempfile::Builder::new()
        .prefix("rpt-shared")
        .tempdir()
        .unwrap();
    fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    let victim = project.out_path("victim.txt");
    fs::write(&victim, "the victim's data\n").unwrap();
    // The CLI waits on stdin before it becomes rpytest (same pid), so the
    // neighbour can plant files named after its pid first.
    let mut cli = Command::new("sh")
        .args(["-c", "read _ ; exec \"$@\"", "sh"])
        .arg(common::rpytest_bin())
        .arg("--python")
        .arg(project.python())
        .args(["--no-daemon", "--no-cache", "-p", "no:cacheprovider"])
        .current_dir(&project.root)
        .env("TMPDIR", tmp.path())
        .env("XDG_RUNTIME_DIR", project.out_path(""))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = cli.id();
    for n in 0..4 {
        let link = tmp.path().join(format!("rpytest-session-{pid}-{n}.json"));
        let out = as_nobody(&["ln", "-s", victim.to_str().unwrap(), link.to_str().unwrap()]);
        assert!(out.status.success(), "{out:?}");
    }
    use std::io::Write;
    cli.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = cli.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read_to_string(&victim).unwrap(), "the victim's data\n");
    let left: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| !n.to_string_lossy().starts_with("rpytest-session-"))
        .collect();
    assert!(left.is_empty(), "files left in the temp dir: {left:?}");
}

// ---------------------------------------------------------------------------
// 7. Another user's `/tmp/rpytest-<uid>` is passed over, never fatal.

/// `sh -c script` in a private mount namespace (so what it mounts is seen
/// by nothing else on the machine), in `project`'s root.
fn in_mount_namespace(
    project: &Project,
    script: &str,
    env: &[(&str, &Path)],
) -> std::process::Output {
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-euc", script])
        .current_dir(&project.root)
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("TMPDIR")
        .env("RPYTEST", common::rpytest_bin())
        .env("PY", project.python());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run unshare")
}

#[test]
fn another_users_tmp_dir_does_not_deny_service() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("needs root to act as a second user and to mount");
        return;
    }
    let project = Project::new("slow_session");
    let uid = unsafe { libc::getuid() };
    let home = tempfile::Builder::new().prefix("rpth").tempdir().unwrap();
    // The neighbour makes its directory itself, mode 777, in a shared dir.
    let shared = tempfile::Builder::new().prefix("rpts").tempdir().unwrap();
    fs::set_permissions(
        shared.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    let theirs = shared.path().join("theirs");
    let out = as_nobody(&["mkdir", "-m", "777", theirs.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    // /tmp/rpytest-<uid> may exist for real (ours): shadow it in a private
    // namespace with the neighbour's directory; no one else sees the mount.
    let target = format!("/tmp/rpytest-{uid}");
    let _ = fs::create_dir(&target);
    let script = format!(
        "mount --bind \"$THEIRS\" {target}\n\
         stat -c '%U %a' {target}\n\
         \"$RPYTEST\" --python \"$PY\" --no-cache -p no:cacheprovider; echo \"daemon-run: $?\"\n\
         \"$RPYTEST\" --python \"$PY\" --no-cache --no-daemon -p no:cacheprovider; echo \"fresh-run: $?\"\n\
         \"$RPYTEST\" --python \"$PY\" --daemon status\n\
         \"$RPYTEST\" --python \"$PY\" --daemon stop\n"
    );
    let out = in_mount_namespace(
        &project,
        &script,
        &[("THEIRS", &theirs), ("HOME", home.path())],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let all = format!("{stdout}\n{stderr}");
    assert!(
        stdout.contains("nobody 777"),
        "the mount did not shadow it:\n{all}"
    );
    assert!(stdout.contains("daemon-run: 0"), "{all}");
    assert!(stdout.contains("fresh-run: 0"), "{all}");
    assert!(stdout.contains("running: yes"), "{all}");
    assert!(stdout.contains("daemon stopped"), "{all}");
    assert!(stderr.contains("passed over"), "no warning:\n{all}");
    // Nothing of ours went into the neighbour's directory.
    assert_eq!(fs::read_dir(&theirs).unwrap().count(), 0, "{all}");
}

// ---------------------------------------------------------------------------
// A remote-cache server written for these tests: `store` keeps what is PUT
// and returns it on GET (as nginx's WebDAV does); `oversized` answers every
// GET with a 70 MiB body. Every request is logged, one line each.

const SERVER: &str = r#"
import http.server, socketserver, sys, threading
mode, log_path = sys.argv[1], sys.argv[2]
store, lock = {}, threading.Lock()
def log(line):
    with lock, open(log_path, "a") as f:
        f.write(line + "\n")
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_GET(self):
        log("GET " + self.path)
        if mode == "oversized":
            size = 70 * 1024 * 1024
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            chunk, sent = b"x" * 65536, 0
            try:
                while sent < size:
                    self.wfile.write(chunk)
                    sent += len(chunk)
            except OSError:
                pass
            log("SENT %d" % sent)
            return
        body = store.get(self.path)
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_PUT(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        store[self.path] = body
        log("PUT " + self.path)
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
s = S(("127.0.0.1", 0), H)
print("port", s.server_address[1], flush=True)
s.serve_forever()
"#;

/// A running test server; killed when dropped.
struct Server {
    _child: Guard,
    url: String,
    log: std::path::PathBuf,
}

impl Server {
    fn start(project: &Project, mode: &str) -> Server {
        let log = project.out_path(&format!("server-{mode}.log"));
        let mut child = Command::new(project.python())
            .args(["-c", SERVER, mode])
            .arg(&log)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the test server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("port ")
            .expect("port line")
            .to_owned();
        Server {
            _child: Guard(child),
            url: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    fn requests(&self, method: &str) -> usize {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with(method))
            .count()
    }
}

// ---------------------------------------------------------------------------
// 10. An oversized answer ends remote use for the run.

#[test]
fn an_oversized_remote_answer_is_not_downloaded_again() {
    let project = Project::new("cache_many");
    let server = Server::start(&project, "oversized");
    let run = project.rpytest(&["--remote-cache", &server.url]).run();
    run.assert_code(0);
    assert_eq!(server.requests("GET"), 1, "{}", run.transcript());
    assert!(run.stderr.contains("is not usable"), "{}", run.transcript());
}

// ---------------------------------------------------------------------------
// 2. A damaged table is detected once and the cache heals.
// 3. A locked database: say what is waited on, then run without the store.

/// `(cached, run)` from the stderr line `rpytest: N cached, M run, ...`.
fn counts(run: &common::Run) -> Option<(usize, usize)> {
    let line = run.stderr.lines().find(|l| l.contains(" cached, "))?;
    let nums: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    Some((nums[0], nums[1]))
}

/// Overwrites the root page of `table` in `.rpytest/cache.db` with random bytes
/// (after a checkpoint, so the page is in the main file).
fn damage_table(project: &Project, table: &str) {
    let script = r#"
import os, sqlite3, sys
path, table = sys.argv[1], sys.argv[2]
c = sqlite3.connect(path)
c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
page = c.execute("PRAGMA page_size").fetchone()[0]
root = c.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
c.close()
with open(path, "r+b") as f:
    f.seek((root - 1) * page)
    f.write(os.urandom(page))
print("damaged page", root)
"#;
    let out = Command::new(project.python())
        .args(["-c", script])
        .arg(project.path(".rpytest/cache.db"))
        .arg(table)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn a_damaged_table_is_moved_aside_once_and_the_cache_heals() {
    let project = Project::new("cache_store");
    project.rpytest(&[]).run().assert_code(0);
    damage_table(&project, "node_cache");
    let first = project.rpytest(&[]).run();
    first.assert_code(0);
    assert!(
        first.stderr.contains("damaged") && first.stderr.contains("moved it to"),
        "{}",
        first.transcript()
    );
    // The next runs are quiet and cache again.
    let second = project.rpytest(&[]).run();
    second.assert_code(0);
    assert!(
        !second.stderr.contains("warning"),
        "{}",
        second.transcript()
    );
    let third = project.rpytest(&[]).run();
    assert!(!third.stderr.contains("warning"), "{}", third.transcript());
    assert_eq!(
        counts(&third).map(|c| c.1),
        Some(0),
        "{}",
        third.transcript()
    );
    // `--result-cache clear` works on a damaged database too.
    damage_table(&project, "node_cache");
    let clear = project.rpytest_cmd(&["--result-cache", "clear"]);
    clear.assert_code(0);
    damage_table(&project, "file_cache");
    let clear = project.rpytest_cmd(&["--result-cache", "clear"]);
    clear.assert_code(0);
    let after = project.rpytest(&[]).run();
    after.assert_code(0);
    assert!(!after.stderr.contains("warning"), "{}", after.transcript());
}

#[test]
fn a_locked_database_is_named_and_then_given_up_on() {
    let project = Project::new("cache_store");
    project.rpytest(&[]).run().assert_code(0);
    project.replace(
        "tests/test_a.py",
        "def test_a_one",
        "def test_a_one_changed",
    );
    // Another process holds the database's write lock until we close its stdin.
    let mut holder = Command::new(project.python())
        .args([
            "-c",
            "import sqlite3, sys\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('BEGIN EXCLUSIVE')\n\
             print('held', flush=True)\n\
             sys.stdin.read()\n",
        ])
        .arg(project.path(".rpytest/cache.db"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "held");
    let holder = Guard(holder);
    let run = project.rpytest(&[]).timeout(Duration::from_secs(120)).run();
    run.assert_code(0);
    assert!(run.stderr.contains("waiting for"), "{}", run.transcript());
    assert!(
        run.stderr.contains("will not be cached"),
        "{}",
        run.transcript()
    );
    drop(holder);
    // Released: the next run uses the store again (and quietly).
    let next = project.rpytest(&[]).run();
    next.assert_code(0);
    assert!(!next.stderr.contains("warning"), "{}", next.transcript());
}

// ---------------------------------------------------------------------------
// 4. A stopped daemon is seen, replaced, and can be stopped.

#[test]
fn a_stopped_daemon_is_replaced_and_status_and_stop_see_it() {
    let project = Project::new("slow_session");
    project.rpytest(&[]).run().assert_code(0);
    let first = project.daemon_pid().expect("a daemon runs");
    signal(first, libc::SIGSTOP);
    let _cont = scopeguard(first);
    // status names it; the next run replaces it with a warning.
    let status = project.rpytest_cmd(&["--daemon", "status"]);
    status.assert_code(0);
    assert!(
        status.stdout.contains("unresponsive"),
        "{}",
        status.transcript()
    );
    assert_eq!(
        parse_pid(&status.stdout),
        Some(first),
        "{}",
        status.transcript()
    );
    let run = project.rpytest(&["--no-cache"]).run();
    run.assert_code(0);
    assert!(run.stderr.contains("is stopped"), "{}", run.transcript());
    wait_until(
        "the stopped daemon is gone",
        Duration::from_secs(30),
        || !process_alive(first),
    );
    let second = project.daemon_pid().expect("a new daemon runs");
    assert_ne!(second, first);
    // stop ends a stopped daemon too.
    signal(second, libc::SIGSTOP);
    let _cont2 = scopeguard(second);
    let stop = project.rpytest_cmd(&["--daemon", "stop"]);
    stop.assert_code(0);
    assert!(
        stop.stdout.contains("daemon stopped"),
        "{}",
        stop.transcript()
    );
    wait_until(
        "the stopped daemon is gone",
        Duration::from_secs(30),
        || !process_alive(second),
    );
}

/// Sends SIGCONT to `pid` when dropped, so a failing test leaves no stopped
/// process behind (the project's drop then stops it).
fn scopeguard(pid: u32) -> impl Drop {
    struct Cont(u32);
    impl Drop for Cont {
        fn drop(&mut self) {
            unsafe { libc::kill(self.0 as i32, libc::SIGCONT) };
        }
    }
    Cont(pid)
}

// ---------------------------------------------------------------------------
// 11. pytest's own crashes end as they do under pytest: exit 1.

#[test]
fn a_junitxml_name_too_long_fails_like_pytest() {
    let project = Project::new("slow_session");
    let long = format!("--junitxml={}.xml", "x".repeat(300));
    let stock = project
        .pytest(&[&long, "-p", "no:cacheprovider"])
        .no_junit()
        .run();
    stock.assert_code(1);
    for extra in [&[][..], &["--no-daemon"][..]] {
        let mut args = vec![long.as_str(), "--no-cache"];
        args.extend_from_slice(extra);
        let run = project.rpytest(&args).no_junit().run();
        run.assert_code(1);
        assert!(
            run.stderr.contains("File name too long"),
            "{}",
            run.transcript()
        );
        assert!(
            !run.stderr.contains("internal error"),
            "{}",
            run.transcript()
        );
        assert!(
            !run.stderr.contains("rpytest/session.py"),
            "{}",
            run.transcript()
        );
    }
}

/// Runs `cmd` in `project` as a user's shell would (no outer PYTEST_ADDOPTS,
/// its own daemon directory); returns its exit code and stderr.
fn exit_and_stderr(project: &Project, mut cmd: Command) -> (Option<i32>, String) {
    let out = cmd
        .current_dir(&project.root)
        .env("XDG_RUNTIME_DIR", project.out_path(""))
        .env_remove("PYTEST_ADDOPTS")
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_closed_stdout_fails_like_pytest() {
    let project = Project::new("slow_session");
    let run_closed = |program: &Path, args: &[&str]| {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exec \"$@\" >&-", "sh"])
            .arg(program)
            .args(args);
        exit_and_stderr(&project, cmd)
    };
    let python = project.python().to_path_buf();
    let (code, stderr) = run_closed(&python, &["-m", "pytest", "-p", "no:cacheprovider"]);
    assert_eq!(code, Some(1), "{stderr}");
    let py = python.to_str().unwrap();
    let extras: [&[&str]; 4] = [
        &[],
        &["--no-daemon"],
        &["-n", "2"],
        &["-n", "2", "--no-daemon"],
    ];
    for extra in extras {
        let mut args = vec!["--python", py, "--no-cache"];
        args.extend_from_slice(extra);
        let (code, stderr) = run_closed(&common::rpytest_bin(), &args);
        assert_eq!(code, Some(1), "{extra:?}: {stderr}");
        assert!(stderr.contains("AttributeError"), "{stderr}");
    }
    let _ = run_closed(
        &common::rpytest_bin(),
        &["--python", py, "--daemon", "stop"],
    );
}

/// A stdout on /dev/null opened read-write (Python's `subprocess.DEVNULL`,
/// the way CI tools and scripts silence a run) is an open stdout: the tests
/// run and pass, as under pytest. Only a closed stdout is a failure.
#[test]
fn a_stdout_on_dev_null_read_write_runs_like_pytest() {
    let project = Project::new("slow_session");
    let run_devnull = |program: &Path, args: &[&str]| {
        let devnull = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .unwrap();
        let mut cmd = Command::new(program);
        cmd.args(args).stdout(Stdio::from(devnull));
        exit_and_stderr(&project, cmd)
    };
    let python = project.python().to_path_buf();
    let (code, stderr) = run_devnull(&python, &["-m", "pytest", "-p", "no:cacheprovider"]);
    assert_eq!(code, Some(0), "{stderr}");
    let py = python.to_str().unwrap();
    let extras: [&[&str]; 4] = [
        &[],
        &["--no-daemon"],
        &["-n", "2"],
        &["-n", "2", "--no-daemon"],
    ];
    for extra in extras {
        let mut args = vec!["--python", py, "--no-cache"];
        args.extend_from_slice(extra);
        let (code, stderr) = run_devnull(&common::rpytest_bin(), &args);
        assert_eq!(code, Some(0), "{extra:?}: {stderr}");
        assert!(!stderr.contains("INTERNALERROR"), "{extra:?}: {stderr}");
    }
    let _ = run_devnull(
        &common::rpytest_bin(),
        &["--python", py, "--daemon", "stop"],
    );
}

// ---------------------------------------------------------------------------
// 8. A file name that is not UTF-8 runs as under pytest.

#[test]
fn a_file_name_that_is_not_utf8_runs_like_pytest() {
    use std::os::unix::ffi::OsStrExt;
    let project = Project::new("fault_names");
    let name = std::ffi::OsStr::from_bytes(b"test_\xff.py");
    fs::write(
        project.path("tests").join(name),
        "def test_x():\n    pass\n\n\ndef test_y():\n    assert 0\n",
    )
    .unwrap();
    let args = ["-p", "no:cacheprovider", "-rA"];
    let stock = project.pytest(&args).no_junit().run();
    stock.assert_code(1);
    let summary = |out: &str| -> Vec<String> {
        let mut lines: Vec<String> = out
            .lines()
            .filter(|l| {
                ["PASSED ", "FAILED ", "CACHED "]
                    .iter()
                    .any(|w| l.starts_with(w))
            })
            .map(|l| l.replacen("CACHED ", "PASSED ", 1))
            .collect();
        lines.sort();
        lines
    };
    assert_eq!(summary(&stock.stdout).len(), 3, "{}", stock.transcript());
    for extra in [&[][..], &[][..], &["--no-daemon"][..], &["-n", "2"][..]] {
        let mut a = args.to_vec();
        a.extend_from_slice(extra);
        let run = project.rpytest(&a).no_junit().run();
        run.assert_code(1);
        assert!(!run.stderr.contains("Error"), "{}", run.transcript());
        assert_eq!(
            summary(&run.stdout),
            summary(&stock.stdout),
            "{}",
            run.transcript()
        );
    }
}

// ---------------------------------------------------------------------------
// 9. A remote entry is trusted only as far as the run trusts the remote.

/// Two machines with the same project: on the first the test passes (the
/// verdict file exists), on the second it fails. The first uploads.
fn two_machines(verdict: &Path) -> (Project, Project) {
    let a = Project::new("fault_remote");
    let b = Project::new("fault_remote");
    for p in [&a, &b] {
        p.replace("test_verdict.py", "@VERDICT@", verdict.to_str().unwrap());
    }
    (a, b)
}

#[test]
fn an_unsigned_or_foreign_entry_never_makes_a_failing_test_pass() {
    let verdict_dir = tempfile::tempdir().unwrap();
    let verdict = verdict_dir.path().join("verdict");
    let (a, b) = two_machines(&verdict);
    let server = Server::start(&a, "store");
    let url = server.url.as_str();
    // Anyone who can write to the server uploads a pass (no key, or another key).
    fs::write(&verdict, "pass").unwrap();
    a.rpytest(&["--remote-cache", url, "--remote-cache-upload"])
        .run()
        .assert_code(0);
    assert!(server.requests("PUT") >= 1);
    fs::remove_file(&verdict).unwrap();
    // A machine with a key refuses the unsigned entry: the test runs and fails.
    let b_run = b
        .rpytest(&["--remote-cache", url])
        .env("RPYTEST_REMOTE_CACHE_KEY", "team secret")
        .run();
    b_run.assert_code(1);
    assert!(
        b_run.stderr.contains("not signed"),
        "{}",
        b_run.transcript()
    );
    // Signed with another key: refused as well (a fresh pair of machines,
    // whose test file names another verdict, so another key).
    let verdict = verdict_dir.path().join("verdict-2");
    let (a, b) = two_machines(&verdict);
    fs::write(&verdict, "pass").unwrap();
    a.rpytest(&["--remote-cache", url, "--remote-cache-upload"])
        .env("RPYTEST_REMOTE_CACHE_KEY", "a forger's key")
        .run()
        .assert_code(0);
    fs::remove_file(&verdict).unwrap();
    let b_run = b
        .rpytest(&["--remote-cache", url])
        .env("RPYTEST_REMOTE_CACHE_KEY", "team secret")
        .run();
    b_run.assert_code(1);
    assert!(
        b_run.stderr.contains("signature does not match"),
        "{}",
        b_run.transcript()
    );
}

#[test]
fn a_signed_entry_is_used_and_remote_results_need_the_remote_to_be_reused() {
    let verdict_dir = tempfile::tempdir().unwrap();
    let verdict = verdict_dir.path().join("verdict");
    let (a, b) = two_machines(&verdict);
    let server = Server::start(&a, "store");
    let url = server.url.as_str();
    fs::write(&verdict, "pass").unwrap();
    a.rpytest(&["--remote-cache", url, "--remote-cache-upload"])
        .env("RPYTEST_REMOTE_CACHE_KEY", "team secret")
        .run()
        .assert_code(0);
    fs::remove_file(&verdict).unwrap();
    // The team's key: the signed pass is used (that is what signing is for).
    let b_run = b
        .rpytest(&["--remote-cache", url, "-rA"])
        .env("RPYTEST_REMOTE_CACHE_KEY", "team secret")
        .run();
    b_run.assert_code(0);
    assert!(b_run.stdout.contains("CACHED"), "{}", b_run.transcript());
    // Without the remote, what it gave is not reused: the test runs here.
    let alone = b.rpytest(&[]).run();
    alone.assert_code(1);
    // A run with a key does not reuse what an unkeyed run imported either.
    let verdict = verdict_dir.path().join("verdict-2");
    let (c, d) = two_machines(&verdict);
    fs::write(&verdict, "pass").unwrap();
    c.rpytest(&["--remote-cache", url, "--remote-cache-upload"])
        .run()
        .assert_code(0);
    fs::remove_file(&verdict).unwrap();
    // No key: the run trusts the server (documented), and keeps where it came from.
    d.rpytest(&["--remote-cache", url]).run().assert_code(0);
    let keyed = d
        .rpytest(&["--remote-cache", url])
        .env("RPYTEST_REMOTE_CACHE_KEY", "team secret")
        .run();
    keyed.assert_code(1);
    let alone = d.rpytest(&[]).run();
    alone.assert_code(1);
}

#[test]
fn damage_below_the_root_is_found_after_the_error_and_healed() {
    let project = Project::new("cache_store");
    project.rpytest(&[]).run().assert_code(0);
    project
        .rpytest_cmd(&["--result-cache", "clear"])
        .assert_code(0);
    // Rows that fill the first leaves of file_results (what a lookup reads),
    // so that the next run's results land on a later leaf the open-time
    // probe does not read.
    let script = r#"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.executemany(
    "INSERT INTO file_results(file, key, results) VALUES (?, 'k', ?)",
    [("pad%03d.py" % i, b"x" * 1000) for i in range(400)],
)
c.commit()
"#;
    let pad = Command::new(project.python())
        .args(["-c", script])
        .arg(project.path(".rpytest/cache.db"))
        .output()
        .unwrap();
    assert!(pad.status.success(), "{pad:?}");
    project.rpytest(&[]).run().assert_code(0);
    let damage = r#"
import os, sqlite3, sys
path = sys.argv[1]
c = sqlite3.connect(path)
c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
page = c.execute("PRAGMA page_size").fetchone()[0]
leaves = c.execute(
    "SELECT pageno FROM dbstat WHERE name = 'file_results' AND pagetype = 'leaf' ORDER BY path"
).fetchall()
assert len(leaves) > 2, leaves
c.close()
with open(path, "r+b") as f:
    f.seek((leaves[-1][0] - 1) * page)
    f.write(os.urandom(page))
"#;
    let out = Command::new(project.python())
        .args(["-c", damage])
        .arg(project.path(".rpytest/cache.db"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // The run that meets the damage says so and still runs every test.
    let met = project.rpytest(&[]).run();
    met.assert_code(0);
    assert!(met.stderr.contains("malformed"), "{}", met.transcript());
    // The next one checks the file, moves it aside and starts again; then quiet.
    let healed = project.rpytest(&[]).run();
    healed.assert_code(0);
    assert!(
        healed.stderr.contains("moved it to"),
        "{}",
        healed.transcript()
    );
    let quiet = project.rpytest(&[]).run();
    quiet.assert_code(0);
    assert!(!quiet.stderr.contains("warning"), "{}", quiet.transcript());
}

// ---------------------------------------------------------------------------
// 10. A kill right after the store's write.

/// A pipe whose buffer is full: a blocking write to its write end waits until
/// the read end (kept here, never read) is read. Returns (read, write).
fn full_pipe() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (r, w) = unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    };
    unsafe { libc::fcntl(fds[1], libc::F_SETFL, libc::O_NONBLOCK) };
    let chunk = [b'x'; 4096];
    while unsafe { libc::write(fds[1], chunk.as_ptr().cast(), chunk.len()) } > 0 {}
    let mut one = true;
    while one {
        one = unsafe { libc::write(fds[1], chunk.as_ptr().cast(), 1) } > 0;
    }
    // The writer gets a blocking descriptor (the flag is the open file's).
    unsafe { libc::fcntl(fds[1], libc::F_SETFL, 0) };
    (r, w)
}

/// The store keeps its write-ahead log across runs (closing does not fold
/// it into the database, and commits are not synced): a run killed right
/// after it wrote its results, before it exits, loses none of them and
/// leaves an intact store. The run is held there by its stderr, a full pipe:
/// the cache's summary line comes after the store's write.
#[test]
fn a_kill_after_the_results_are_written_loses_nothing() {
    let project = Project::new("cache_store");
    project.write("tests/test_a.py", "def test_a():\n    assert 1\n");
    project.write("tests/test_b.py", "def test_b():\n    assert 1\n");
    let py = project.python().to_str().unwrap().to_owned();
    // Every run in the same environment (the keys include it).
    let rpytest = || {
        let mut cmd = Command::new(common::rpytest_bin());
        cmd.args(["--python", &py, "--no-daemon", "-q"])
            .current_dir(&project.root)
            .env("XDG_RUNTIME_DIR", project.out_path(""))
            .env_remove("PYTEST_ADDOPTS")
            .env_remove("PYTHONDONTWRITEBYTECODE")
            .stdout(Stdio::null());
        cmd
    };
    let first = rpytest().stderr(Stdio::piped()).output().unwrap();
    assert!(first.status.success(), "{first:?}");
    // test_b runs again (a new key), test_a is cached: a summary line on stderr.
    project.write("tests/test_b.py", "def test_b():\n    assert 2\n");
    let (_read, write) = full_pipe();
    let mut guard = Guard(rpytest().stderr(Stdio::from(write)).spawn().unwrap());
    let pid = guard.0.id();
    // Blocked in write(2, ...): the summary line, after the store's write.
    wait_until(
        "the run blocked on its stderr",
        Duration::from_secs(120),
        || {
            assert!(
                guard.0.try_wait().unwrap().is_none(),
                "the run ended without writing to stderr"
            );
            fs::read_to_string(format!("/proc/{pid}/syscall"))
                .map(|s| {
                    let mut f = s.split_whitespace();
                    f.next() == Some(libc::SYS_write.to_string().as_str())
                        && f.next() == Some("0x2")
                })
                .unwrap_or(false)
        },
    );
    signal(pid, libc::SIGKILL);
    let status = guard.0.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    // The next run sees both results: nothing ran, nothing was lost.
    let next = rpytest().stderr(Stdio::piped()).output().unwrap();
    let stderr = String::from_utf8_lossy(&next.stderr);
    assert!(next.status.success(), "{next:?}");
    assert!(stderr.contains(" cached, 0 run"), "{stderr}");
    assert!(!stderr.contains("damaged"), "{stderr}");
    let check = Command::new(project.python())
        .args([
            "-c",
            "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('PRAGMA integrity_check').fetchone()[0])",
        ])
        .arg(project.path(".rpytest/cache.db"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&check.stdout).trim(),
        "ok",
        "{check:?}"
    );
}

/// Closing the store leaves its WAL (no checkpoint, no fsync per run), and a
/// new process forgets what of it was folded in already: a WAL left past
/// SQLite's automatic checkpoint (1,000 pages) would be checkpointed whole,
/// with its fsyncs, by every later run. A run that leaves it large folds it
/// in and empties it, and the next runs write the WAL only.
#[test]
fn a_large_wal_is_folded_in_once_and_later_runs_leave_the_database_alone() {
    let project = Project::new("cache_store");
    project.write(
        "tests/test_many.py",
        "import pytest\n\n@pytest.mark.parametrize('i', range(4000))\ndef test_p(i):\n    assert i >= 0\n",
    );
    let first = project.rpytest(&["--no-daemon", "-q"]).no_junit().run();
    first.assert_code(0);
    let wal = project.path(".rpytest/cache.db-wal");
    let len = fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert!(len < 2 << 20, "the WAL was left at {len} bytes");
    let db = project.path(".rpytest/cache.db");
    let before = fs::metadata(&db).unwrap().modified().unwrap();
    for _ in 0..2 {
        let again = project.rpytest(&["--no-daemon", "-q"]).no_junit().run();
        again.assert_code(0);
        assert!(
            again.stderr.contains(" cached, 0 run"),
            "{}",
            again.transcript()
        );
    }
    assert_eq!(
        fs::metadata(&db).unwrap().modified().unwrap(),
        before,
        "a later run checkpointed the WAL into the database"
    );
}

// ---------------------------------------------------------------------------
// 12. A session's process group and its death by a signal are the stock command's.

/// A test that signals its own process group (with a handler installed)
/// passes as under pytest: the forked session has a group of its own, so the
/// signal reaches neither the daemon nor the CLI.
#[test]
fn a_test_signalling_its_own_process_group_passes_and_the_daemon_lives() {
    let project = Project::new("soundness");
    project.write(
        "test_group.py",
        "import os, signal\n\ndef test_killpg():\n    got = []\n    signal.signal(signal.SIGUSR1, lambda *a: got.append(1))\n    os.killpg(os.getpgrp(), signal.SIGUSR1)\n    signal.signal(signal.SIGUSR1, signal.SIG_DFL)\n    assert got\n\ndef test_group_of_its_own():\n    assert os.getpgrp() == os.getpid()\n",
    );
    // Stock pytest in a group of its own, as a shell starts a command (in the
    // test harness's group, the signal would reach the harness).
    use std::os::unix::process::CommandExt;
    let stock = Command::new(project.python())
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .current_dir(project.path(""))
        .process_group(0)
        .output()
        .expect("run stock pytest");
    assert_eq!(stock.status.code(), Some(0), "stock pytest: {stock:?}");
    project.rpytest(&["--no-cache"]).run().assert_code(0);
    let daemon = project.daemon_pid().expect("a daemon after the run");
    assert!(process_alive(daemon), "the daemon died");
    project.rpytest(&["--no-cache"]).run().assert_code(0);
}

/// A session killed by a signal ends the CLI by the same signal, as the stock
/// command dies by it (a parent sees death by SIGTERM, a shell 143).
#[test]
fn a_session_killed_by_a_signal_kills_the_cli_by_the_same_signal() {
    let project = Project::new("soundness");
    project.write(
        "test_term.py",
        "import os, signal\n\ndef test_term():\n    os.kill(os.getpid(), signal.SIGTERM)\n",
    );
    project.write(
        "test_kill.py",
        "import os, signal\n\ndef test_kill():\n    os.kill(os.getpid(), signal.SIGKILL)\n",
    );
    for (file, want) in [
        ("test_term.py", libc::SIGTERM),
        ("test_kill.py", libc::SIGKILL),
    ] {
        let (stock, err) = project.pytest(&[file]).spawn().wait_for_signal();
        assert_eq!(stock, Some(want), "stock pytest: {err}");
        assert!(
            !err.contains("killed by signal"),
            "stock pytest said: {err}"
        );
        for args in [&["--no-cache"][..], &["--no-cache", "--no-daemon"][..]] {
            let mut args = args.to_vec();
            args.push(file);
            let (sig, err) = project.rpytest(&args).spawn().wait_for_signal();
            assert_eq!(sig, Some(want), "rpytest {args:?}: {err}");
            // Stock pytest says nothing (the shell does): no line of rpytest's.
            assert!(
                !err.contains("killed by signal"),
                "rpytest {args:?} said more than stock pytest: {err}"
            );
        }
    }
}

/// A signal that ends the command reaches the processes its tests started,
/// as in the stock command's process group (`timeout`, Ctrl-C): stock pytest
/// in a group of its own gets SIGTERM with its test's child. rpytest's
/// session is not in the CLI's group, so the CLI hands the signal to the
/// session's whole group; no child is left running.
#[test]
fn a_signal_that_ends_the_command_reaches_the_tests_child_processes() {
    let project = Project::new("soundness");
    project.write(
        "test_child.py",
        "import os, subprocess, sys, time\n\ndef test_child():\n    child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n    with open(os.environ['CHILD_PID_FILE'] + '.tmp', 'w') as f:\n        f.write(str(child.pid))\n    os.rename(os.environ['CHILD_PID_FILE'] + '.tmp', os.environ['CHILD_PID_FILE'])\n    time.sleep(300)\n",
    );
    let pid_file = project.out_path("child.pid");
    let child_of = |pid_file: &Path| -> u32 {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(text) = fs::read_to_string(pid_file) {
                let _ = fs::remove_file(pid_file);
                return text.trim().parse().expect("a pid");
            }
            assert!(
                Instant::now() < deadline,
                "the test never started its child"
            );
            thread::sleep(Duration::from_millis(20));
        }
    };
    let gone = |pid: u32| -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        while process_alive(pid) {
            if Instant::now() >= deadline {
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
        true
    };
    use std::os::unix::process::CommandExt;
    let mut stock = Command::new(project.python())
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .current_dir(project.path(""))
        .env("CHILD_PID_FILE", &pid_file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start stock pytest");
    let child = child_of(&pid_file);
    unsafe { libc::kill(-(stock.id() as i32), libc::SIGTERM) };
    let _ = stock.wait();
    assert!(gone(child), "stock pytest left its test's child running");
    for args in [
        &["--no-cache"][..],
        &["--no-cache", "-n", "2"][..],
        &["--no-cache", "--no-daemon", "-n", "2"][..],
    ] {
        let cli = project
            .rpytest(args)
            .env("CHILD_PID_FILE", pid_file.to_str().unwrap())
            .spawn();
        let child = child_of(&pid_file);
        unsafe { libc::kill(cli.pid() as i32, libc::SIGTERM) };
        let (sig, err) = cli.wait_for_signal();
        assert_eq!(sig, Some(libc::SIGTERM), "rpytest {args:?}: {err}");
        assert!(
            gone(child),
            "rpytest {args:?} left its test's child running"
        );
    }
}

/// Files in `dir` whose names start with `prefix`.
fn files_starting(dir: &Path, prefix: &str) -> Vec<String> {
    let mut found: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    found.sort();
    found
}

/// An empty directory named `name` in the project's output directory.
fn fresh_dir(project: &Project, name: &str) -> std::path::PathBuf {
    let dir = project.out_path(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Test files whose tests each announce themselves (`running-NAME`,
/// written whole) and then wait for a file nobody creates; a session-scoped
/// fixture whose teardown writes `teardown-PID`. `OUT` names the directory.
fn blocking_suite() -> Project {
    let project = Project::new("soundness");
    project.write(
        "conftest.py",
        "import os, pytest\n\n@pytest.fixture(scope='session')\ndef sess():\n    yield\n    with open(os.path.join(os.environ['OUT'], 'teardown-%d' % os.getpid()), 'w') as f:\n        f.write('done')\n\ndef block(name):\n    out = os.environ['OUT']\n    with open(os.path.join(out, 'tmp-' + name), 'w') as f:\n        f.write(str(os.getpid()))\n    os.rename(os.path.join(out, 'tmp-' + name), os.path.join(out, 'running-' + name))\n    import time\n    for _ in range(6000):\n        if os.path.exists(os.path.join(out, 'never')):\n            break\n        time.sleep(0.05)\n",
    );
    project.write(
        "test_one.py",
        "from conftest import block\n\ndef test_one(sess):\n    block('one')\n",
    );
    // Four files: a worker asks for its next file before it runs its last
    // one, so two files could both go to the first worker.
    for name in ["two", "three", "four"] {
        project.write(
            &format!("test_{name}.py"),
            &format!("from conftest import block\n\ndef test_{name}(sess):\n    block('{name}')\n"),
        );
    }
    project
}

/// Ctrl-C under `-n 2` goes through pytest's own interrupt path in every
/// worker, as under pytest-xdist: each worker's session fixture is torn
/// down, whether the signal is sent to the command's process group (a
/// terminal, a CI runner's cancel) or to the CLI alone (`kill -INT`), with
/// and without the daemon. Each worker gets the signal once (a second one
/// would interrupt its teardown), and the CLI does not cut a worker short.
#[test]
fn ctrl_c_under_n_tears_down_every_workers_session_fixtures() {
    common::require_fixture_plugin();
    let project = blocking_suite();
    for daemon in [&[][..], &["--no-daemon"][..]] {
        for to_group in [true, false] {
            let out = fresh_dir(&project, "interrupt");
            let mut args = vec!["-n", "2", "--no-cache"];
            args.extend_from_slice(daemon);
            let cli = project
                .rpytest(&args)
                .env("OUT", out.to_str().unwrap())
                .own_group()
                .spawn();
            wait_until("both workers run a test", Duration::from_secs(120), || {
                files_starting(&out, "running-").len() == 2
            });
            let pid = cli.pid() as i32;
            signal_raw(if to_group { -pid } else { pid }, libc::SIGINT);
            let run = cli.wait();
            let what = format!("{args:?}, to the group: {to_group}");
            assert_eq!(run.code, 2, "{what}\n{}", run.transcript());
            assert_eq!(
                files_starting(&out, "teardown-").len(),
                2,
                "{what}: a worker's session fixture was not torn down\n{}",
                run.transcript()
            );
            assert_eq!(
                run.stdout.matches("KeyboardInterrupt !!!").count(),
                1,
                "{what}\n{}",
                run.transcript()
            );
        }
    }
}

fn signal_raw(target: i32, sig: i32) {
    assert_eq!(
        unsafe { libc::kill(target, sig) },
        0,
        "kill({target}, {sig})"
    );
}

/// The state letter of process `pid` (`/proc/PID/stat`): `T` when stopped.
fn process_state(pid: u32) -> char {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
        .unwrap_or('?')
}

/// Ctrl-Z: the terminal's SIGTSTP reaches the command's process group, and
/// the sessions run in groups of their own; they stop with the CLI, as the
/// stock command stops, and SIGCONT (`fg`) resumes them to completion.
#[test]
fn ctrl_z_stops_the_session_and_its_workers_and_sigcont_resumes_them() {
    common::require_fixture_plugin();
    let project = Project::new("soundness");
    project.write(
        "test_wait.py",
        "import os, time\n\ndef test_wait():\n    out = os.environ['OUT']\n    with open(os.path.join(out, 'tmp'), 'w') as f:\n        f.write(str(os.getpid()))\n    os.rename(os.path.join(out, 'tmp'), os.path.join(out, 'running-test'))\n    for _ in range(6000):\n        if os.path.exists(os.path.join(out, 'go')):\n            break\n        time.sleep(0.05)\n",
    );
    for args in [&["--no-cache"][..], &["--no-cache", "-n", "2"][..]] {
        let out = fresh_dir(&project, "stop");
        let cli = project
            .rpytest(args)
            .env("OUT", out.to_str().unwrap())
            .own_group()
            .spawn();
        wait_until("the test runs", Duration::from_secs(120), || {
            !files_starting(&out, "running-").is_empty()
        });
        let session: u32 = fs::read_to_string(out.join("running-test"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The terminal's Ctrl-Z: SIGTSTP to the command's process group.
        let pid = cli.pid();
        signal_raw(-(pid as i32), libc::SIGTSTP);
        wait_until(
            &format!("rpytest {args:?}: the CLI stops"),
            Duration::from_secs(60),
            || process_state(pid) == 'T',
        );
        wait_until(
            &format!("rpytest {args:?}: the session running the test stops"),
            Duration::from_secs(60),
            || process_state(session) == 'T',
        );
        fs::write(out.join("go"), "").unwrap();
        signal_raw(-(pid as i32), libc::SIGCONT);
        cli.wait().assert_code(0);
    }
}

/// `--no-daemon` and a SIGINT to the command's process group (a CI runner's
/// cancel, `kill -INT -PGID`): the interrupted output appears once, as stock
/// pytest's, with pytest's exit code 2 (a session that got the signal twice
/// died in its KeyboardInterrupt handling, printing a traceback).
#[test]
fn no_daemon_sigint_to_the_group_prints_the_interruption_once_like_pytest() {
    common::require_fixture_plugin();
    let project = blocking_suite();
    for rpytest in [false, true] {
        let out = fresh_dir(&project, "group-int");
        let invocation = match rpytest {
            false => project.pytest(&["-p", "no:cacheprovider", "test_one.py"]),
            true => project.rpytest(&["--no-daemon", "--no-cache", "test_one.py"]),
        };
        let cmd = invocation
            .env("OUT", out.to_str().unwrap())
            .own_group()
            .spawn();
        wait_until("the test runs", Duration::from_secs(120), || {
            !files_starting(&out, "running-").is_empty()
        });
        signal_raw(-(cmd.pid() as i32), libc::SIGINT);
        let run = cmd.wait();
        run.assert_code(2);
        assert_eq!(
            run.stdout.matches("KeyboardInterrupt !!!").count(),
            1,
            "{}",
            run.transcript()
        );
        assert!(
            !run.stderr.contains("KeyboardInterrupt") && !run.stderr.contains("signal"),
            "{}",
            run.transcript()
        );
        assert!(run.stdout.contains("no tests ran"), "{}", run.transcript());
        assert_eq!(
            files_starting(&out, "teardown-").len(),
            1,
            "{}",
            run.transcript()
        );
    }
}

/// A worker whose test ignores SIGINT does not hang an interrupted `-n` run:
/// the CLI leaves interrupted workers time to tear down (as pytest-xdist's
/// controller does), then ends them.
#[test]
fn an_interrupted_n_run_ends_even_when_a_test_ignores_sigint() {
    common::require_fixture_plugin();
    let project = blocking_suite();
    project.write(
        "test_deaf.py",
        "import signal\nfrom conftest import block\n\ndef test_deaf():\n    signal.signal(signal.SIGINT, signal.SIG_IGN)\n    block('deaf')\n",
    );
    let out = fresh_dir(&project, "deaf");
    let cli = project
        .rpytest(&["-n", "2", "--no-cache", "test_deaf.py", "test_one.py"])
        .env("OUT", out.to_str().unwrap())
        .own_group()
        // Without the grace's end the run lasts as long as the deaf test
        // (300 s): this timeout then fails the test.
        .timeout(Duration::from_secs(120))
        .spawn();
    wait_until("the deaf test runs", Duration::from_secs(120), || {
        out.join("running-deaf").exists()
    });
    signal_raw(cli.pid() as i32, libc::SIGINT);
    cli.wait().assert_code(2);
}
