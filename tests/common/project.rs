//! Fixture projects copied into temp dirs, each with its own daemon, and
//! pairs of copies for comparing pytest with rpytest.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::locate::{find_python, fixture_source, python, rpytest_bin};
use super::run::{assert_same, parse_pid, process_alive, run_quietly, Invocation, Run, Tool};

/// Environment variables that would make the two runs differ or leak the
/// developer's setup into the tests; removed from every child's environment.
const SCRUBBED_ENV: &[&str] = &[
    "PYTEST_ADDOPTS",
    "PYTEST_PLUGINS",
    "PYTEST_DISABLE_PLUGIN_AUTOLOAD",
    "PYTEST_DEBUG",
    "PYTEST_CURRENT_TEST",
    "PY_COLORS",
    "FORCE_COLOR",
    "NO_COLOR",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONHASHSEED",
    "VIRTUAL_ENV",
    "COLUMNS",
    "LINES",
];

/// A copy of a fixture project in its own temp dir, with its own daemon.
pub struct Project {
    /// `<tmp>/<fixture name>`: the same basename as the fixture, because `-k`
    /// matches the rootdir's name too.
    pub root: PathBuf,
    /// JUnit files and other outputs, outside the project tree.
    pub(super) out: PathBuf,
    /// `XDG_RUNTIME_DIR` for this project's daemon (short, for the socket path).
    runtime: TempDir,
    env: Vec<(String, String)>,
    /// The file-mode creation mask both tools start with (None: the harness's).
    umask: Option<u32>,
    nofile: Option<u64>,
    nice: i32,
    ignore_sighup: bool,
    /// SIGINT ignored and the signals blocked when the command starts.
    signals: (bool, Vec<i32>),
    counter: AtomicU32,
    /// Set once rpytest ran here, so only then does `drop` stop a daemon.
    pub(super) used_rpytest: AtomicBool,
    /// The interpreter for pytest and rpytest here (default: `python()`).
    python: Option<PathBuf>,
    /// Whether Python may write `.pyc` files here (as on users' machines).
    bytecode: bool,
    _dir: TempDir,
}

impl Project {
    /// Copies `tests/fixtures/<fixture>` (without caches) into a new temp dir.
    pub fn new(fixture: &str) -> Project {
        let source = fixture_source(fixture);
        assert!(
            source.is_dir(),
            "no fixture project at {}",
            source.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("rpytest-it-")
            .tempdir()
            .expect("create temp dir");
        let name = Path::new(fixture).file_name().expect("fixture name");
        let root = dir.path().join(name);
        copy_tree(&source, &root);
        let out = dir.path().join("out");
        fs::create_dir(&out).expect("create output dir");
        let runtime = tempfile::Builder::new()
            .prefix("rpt")
            .tempdir()
            .expect("create runtime dir");
        Project {
            root,
            out,
            runtime,
            env: Vec::new(),
            counter: AtomicU32::new(0),
            used_rpytest: AtomicBool::new(false),
            python: None,
            bytecode: false,
            umask: None,
            nofile: None,
            nice: 0,
            ignore_sighup: false,
            signals: (false, Vec::new()),
            _dir: dir,
        }
    }

    /// Sets an environment variable for every later invocation in this project.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    /// Runs pytest and rpytest in this project with `python` instead of the
    /// default test interpreter (set before the first rpytest run).
    pub fn set_python(&mut self, python: &Path) {
        self.python = Some(python.to_path_buf());
    }

    /// The interpreter pytest and rpytest run with in this project.
    pub fn python(&self) -> &Path {
        self.python.as_deref().unwrap_or_else(|| python())
    }

    /// Lets Python write `.pyc` files, as it does on users' machines (the
    /// harness otherwise sets `PYTHONDONTWRITEBYTECODE=1`).
    pub fn write_bytecode(&mut self) {
        self.bytecode = true;
    }

    /// Removes a variable set with `set_env`.
    pub fn unset_env(&mut self, key: &str) {
        self.env.retain(|(k, _)| k != key);
    }

    /// Starts every later invocation with the file-mode creation mask `mask`.
    pub fn set_umask(&mut self, mask: u32) {
        self.umask = Some(mask);
    }

    /// Starts every later invocation with at most `n` open files (`ulimit
    /// -Sn n`; `None`: the test's own limit).
    pub fn set_nofile(&mut self, n: Option<u64>) {
        self.nofile = n;
    }

    /// Starts every later invocation `nice`r by `by` than the test, and with
    /// SIGHUP ignored or not (as `nohup` starts a command).
    pub fn set_process(&mut self, by: i32, ignore_sighup: bool) {
        self.nice = by;
        self.ignore_sighup = ignore_sighup;
    }

    /// Starts every later invocation with SIGINT ignored or not (`trap ''
    /// INT`, a script's background job) and with `blocked` in its signal mask.
    pub fn set_signals(&mut self, ignore_sigint: bool, blocked: &[i32]) {
        self.signals = (ignore_sigint, blocked.to_vec());
    }

    /// Absolute path of `rel` inside the project.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// A path in this project's output dir (outside the project tree).
    pub fn out_path(&self, name: &str) -> PathBuf {
        self.out.join(name)
    }

    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    /// Writes (creating directories) a file in the project.
    pub fn write(&self, rel: &str, content: &str) {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent dirs");
        }
        fs::write(&path, content).unwrap_or_else(|e| panic!("write {rel}: {e}"));
    }

    /// Replaces the single occurrence of `from` with `to` in `rel`.
    pub fn replace(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert_eq!(
            text.matches(from).count(),
            1,
            "{rel} must contain {from:?} exactly once"
        );
        self.write(rel, &text.replacen(from, to, 1));
    }

    pub fn remove(&self, rel: &str) {
        fs::remove_file(self.path(rel)).unwrap_or_else(|e| panic!("remove {rel}: {e}"));
    }

    /// An invocation of stock pytest with `args` (JUnit XML on).
    pub fn pytest(&self, args: &[&str]) -> Invocation<'_> {
        Invocation::new(self, Tool::Pytest, args)
    }

    /// An invocation of rpytest with `args` (JUnit XML on).
    pub fn rpytest(&self, args: &[&str]) -> Invocation<'_> {
        Invocation::new(self, Tool::Rpytest, args)
    }

    /// Runs an rpytest management command (`--daemon status`, ...) without JUnit.
    pub fn rpytest_cmd(&self, args: &[&str]) -> Run {
        self.rpytest(args).no_junit().run()
    }

    /// The pid of this project's daemon from `rpytest --daemon status`
    /// (a line `pid: N`), if one is running.
    pub fn daemon_pid(&self) -> Option<u32> {
        let run = self
            .rpytest(&["--daemon", "status"])
            .no_junit()
            .timeout(Duration::from_secs(30))
            .run();
        parse_pid(&run.stdout).or_else(|| parse_pid(&run.stderr))
    }

    pub(super) fn next_id(&self) -> u32 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    pub(super) fn base_command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(&self.root);
        for key in SCRUBBED_ENV {
            cmd.env_remove(key);
        }
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("RPYTEST_") {
                cmd.env_remove(&key);
            }
        }
        if self.bytecode {
            cmd.env_remove("PYTHONDONTWRITEBYTECODE");
        } else {
            cmd.env("PYTHONDONTWRITEBYTECODE", "1");
        }
        cmd.env("COLUMNS", "120")
            .env("XDG_RUNTIME_DIR", self.runtime.path());
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        if let Some(mask) = self.umask {
            use std::os::unix::process::CommandExt;
            // SAFETY: umask is async-signal-safe and touches no memory.
            unsafe {
                cmd.pre_exec(move || {
                    libc::umask(mask as libc::mode_t);
                    Ok(())
                });
            }
        }
        if self.nice != 0 || self.ignore_sighup {
            use std::os::unix::process::CommandExt;
            let (by, ignore) = (self.nice, self.ignore_sighup);
            // SAFETY: nice and signal are async-signal-safe.
            unsafe {
                cmd.pre_exec(move || {
                    if by != 0 {
                        libc::nice(by);
                    }
                    if ignore {
                        libc::signal(libc::SIGHUP, libc::SIG_IGN);
                    }
                    Ok(())
                });
            }
        }
        // Always: SIGINT as asked (not as the test harness got it: a
        // background job of a script starts with it ignored) and exactly the
        // mask asked for.
        {
            use std::os::unix::process::CommandExt;
            let (ignore, blocked) = self.signals.clone();
            let ignore_sighup = self.ignore_sighup;
            // SAFETY: signal, sigemptyset, sigaddset and sigprocmask are
            // async-signal-safe and touch only this closure's data.
            unsafe {
                cmd.pre_exec(move || {
                    libc::signal(
                        libc::SIGINT,
                        if ignore { libc::SIG_IGN } else { libc::SIG_DFL },
                    );
                    // SIGHUP as asked too (`set_process`), not as inherited
                    // (the harness itself started under `nohup`).
                    libc::signal(
                        libc::SIGHUP,
                        if ignore_sighup {
                            libc::SIG_IGN
                        } else {
                            libc::SIG_DFL
                        },
                    );
                    let mut set: libc::sigset_t = std::mem::zeroed();
                    libc::sigemptyset(&mut set);
                    for &sig in &blocked {
                        libc::sigaddset(&mut set, sig);
                    }
                    libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
                    Ok(())
                });
            }
        }
        if let Some(n) = self.nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: getrlimit/setrlimit are async-signal-safe and touch only
            // the struct on this stack.
            unsafe {
                cmd.pre_exec(move || {
                    let mut l = libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
                    l.rlim_cur = n as libc::rlim_t;
                    libc::setrlimit(libc::RLIMIT_NOFILE, &l);
                    Ok(())
                });
            }
        }
        cmd
    }
}

impl Drop for Project {
    /// Stops this project's daemon; SIGKILLs it if it is still alive after a
    /// few seconds. Never panics.
    fn drop(&mut self) {
        if !self.used_rpytest.load(Ordering::Relaxed) {
            return;
        }
        let python = match &self.python {
            Some(p) => p.clone(),
            None => match find_python() {
                Ok(p) => p.to_path_buf(),
                Err(_) => return,
            },
        };
        let python = python.as_path();
        let pid = run_quietly(self.daemon_command(python, &["--daemon", "status"]))
            .and_then(|out| parse_pid(&out));
        let _ = run_quietly(self.daemon_command(python, &["--daemon", "stop"]));
        if let Some(pid) = pid {
            let deadline = Instant::now() + Duration::from_secs(5);
            while process_alive(pid) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(50));
            }
            if process_alive(pid) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
    }
}

impl Project {
    fn daemon_command(&self, python: &Path, args: &[&str]) -> Command {
        let mut cmd = self.base_command(&rpytest_bin());
        cmd.arg("--python").arg(python).args(args);
        cmd.stdin(Stdio::null());
        cmd
    }
}

/// Two copies of one fixture: one for stock pytest, one for rpytest. Edits go
/// to both, so after every edit the two tools can be compared again.
pub struct Pair {
    pub pytest: Project,
    pub rpytest: Project,
}

impl Pair {
    pub fn new(fixture: &str) -> Pair {
        Pair {
            pytest: Project::new(fixture),
            rpytest: Project::new(fixture),
        }
    }

    /// Runs both tools with `args` and asserts they agree; returns both runs.
    pub fn check(&self, args: &[&str]) -> (Run, Run) {
        let pytest = self.pytest.pytest(args).run();
        let rpytest = self.rpytest.rpytest(args).run();
        assert_same(&pytest, &rpytest);
        (pytest, rpytest)
    }

    pub fn write(&self, rel: &str, content: &str) {
        self.pytest.write(rel, content);
        self.rpytest.write(rel, content);
    }

    pub fn replace(&self, rel: &str, from: &str, to: &str) {
        self.pytest.replace(rel, from, to);
        self.rpytest.replace(rel, from, to);
    }

    pub fn remove(&self, rel: &str) {
        self.pytest.remove(rel);
        self.rpytest.remove(rel);
    }

    pub fn set_env(&mut self, key: &str, value: &str) {
        self.pytest.set_env(key, value);
        self.rpytest.set_env(key, value);
    }

    pub fn unset_env(&mut self, key: &str) {
        self.pytest.unset_env(key);
        self.rpytest.unset_env(key);
    }

    pub fn set_umask(&mut self, mask: u32) {
        self.pytest.set_umask(mask);
        self.rpytest.set_umask(mask);
    }

    pub fn set_nofile(&mut self, n: Option<u64>) {
        self.pytest.set_nofile(n);
        self.rpytest.set_nofile(n);
    }

    pub fn set_signals(&mut self, ignore_sigint: bool, blocked: &[i32]) {
        self.pytest.set_signals(ignore_sigint, blocked);
        self.rpytest.set_signals(ignore_sigint, blocked);
    }

    pub fn set_process(&mut self, by: i32, ignore_sighup: bool) {
        self.pytest.set_process(by, ignore_sighup);
        self.rpytest.set_process(by, ignore_sighup);
    }

    /// Both copies write `.pyc` files, as on users' machines.
    pub fn write_bytecode(&mut self) {
        self.pytest.write_bytecode();
        self.rpytest.write_bytecode();
    }
}

/// Copies fixture `name` twice, runs pytest and rpytest with `args` and
/// asserts they agree. The common case of a drop-in test.
pub fn check(fixture: &str, args: &[&str]) -> (Run, Run) {
    Pair::new(fixture).check(args)
}

/// Recursively copies `from` to `to`, leaving out caches a developer's local
/// pytest or rpytest run may have left in the fixture.
pub fn copy_tree(from: &Path, to: &Path) {
    const SKIP: &[&str] = &["__pycache__", ".pytest_cache", ".rpytest", "build"];
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    for entry in fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())) {
        let entry = entry.expect("read dir entry");
        let name = entry.file_name();
        let name_str = name.to_string_lossy();
        if SKIP.contains(&name_str.as_ref())
            || name_str.ends_with(".egg-info")
            || name_str.ends_with(".pyc")
        {
            continue;
        }
        let target = to.join(&name);
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else if kind.is_symlink() {
            let link = fs::read_link(entry.path()).expect("read symlink");
            std::os::unix::fs::symlink(link, &target).expect("copy symlink");
        } else {
            fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("copy {}: {e}", entry.path().display()));
        }
    }
}
