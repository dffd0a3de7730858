//! Harness for rpytest's integration tests: copies a fixture project from
//! `tests/fixtures/` into a temp dir, runs stock pytest and the built `rpytest`
//! binary on it with the same arguments, and compares exit codes and per-test
//! outcomes read from the JUnit XML both write.
//!
//! Every `Project` has its own `XDG_RUNTIME_DIR`, so each test talks to its own
//! daemon; dropping the `Project` stops that daemon (and SIGKILLs it if it does
//! not go), so no process outlives the test.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Longest a single pytest or rpytest invocation may take before the test fails.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(180);

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

/// The repository root (where Cargo.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/fixtures/<name>` in the repository.
pub fn fixture_source(name: &str) -> PathBuf {
    repo_root().join("tests").join("fixtures").join(name)
}

/// The `rpytest` binary cargo built for this test run.
pub fn rpytest_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rpytest"))
}

/// The venv interpreter the tests run pytest with: `$RPYTEST_TEST_PYTHON`, else
/// `<repo>/.venv/bin/python`. It needs pytest, the `rpytest` Python package and
/// the fixture plugin installed. Not canonicalized: resolving the venv's
/// symlink would lose the venv. Panics with instructions when it is missing.
pub fn python() -> &'static Path {
    match find_python() {
        Ok(path) => path,
        Err(message) => panic!("{message}"),
    }
}

fn find_python() -> Result<&'static Path, &'static str> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = PYTHON.get_or_init(|| {
        let (path, origin) = match std::env::var_os("RPYTEST_TEST_PYTHON") {
            Some(p) if !p.is_empty() => (PathBuf::from(p), "$RPYTEST_TEST_PYTHON"),
            _ => (repo_root().join(".venv/bin/python"), "the default <repo>/.venv/bin/python"),
        };
        let path = if path.is_absolute() { path } else { repo_root().join(path) };
        if path.exists() {
            Ok(path)
        } else {
            Err(format!(
                "no Python interpreter for the integration tests: {} ({origin}) does not exist.\n\
                 Create the venv with pytest, rpytest and the fixture plugin, e.g.:\n  \
                 python3 -m venv .venv && .venv/bin/pip install . tests/fixtures/plugins/rpytest_fixture_plugin\n\
                 or point RPYTEST_TEST_PYTHON at such an interpreter.",
                path.display()
            ))
        }
    });
    found.as_deref().map_err(String::as_str)
}

/// Panics with a clear message unless the fixture plugin distribution is
/// installed in the test interpreter.
pub fn require_fixture_plugin() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let result = CHECKED.get_or_init(|| {
        let out = Command::new(python())
            .args([
                "-c",
                "import importlib.metadata as m; print(m.version('rpytest-fixture-plugin'))",
            ])
            .env_remove("PYTHONPATH")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", python().display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "the fixture plugin is not installed in {py}; install it (non-editable) with\n  \
                 {py} -m pip install {src}",
                py = python().display(),
                src = fixture_source("plugins/rpytest_fixture_plugin").display()
            ))
        }
    });
    if let Err(message) = result {
        panic!("{message}");
    }
}

/// One test's result as JUnit XML reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// No child element (also XPASS non-strict and rpytest's cached passes).
    Passed,
    Failed,
    Error,
    Skipped,
    /// `<skipped type="pytest.xfail">`.
    Xfailed,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Error => "error",
            Outcome::Skipped => "skipped",
            Outcome::Xfailed => "xfailed",
        })
    }
}

/// `classname::name` → outcomes of every `<testcase>` with that key, in file
/// order (a test can appear twice, e.g. a failure plus a teardown error).
pub type Outcomes = BTreeMap<String, Vec<Outcome>>;

/// Reads the per-test outcomes out of a JUnit XML document as pytest's
/// `--junitxml` writes it. A deliberately small scanner, not a general XML
/// parser: pytest escapes `<` in text, so tags can be found by searching.
pub fn parse_junit(xml: &str) -> Outcomes {
    let mut outcomes = Outcomes::new();
    let mut rest = xml;
    while let Some(start) = find_tag(rest, "testcase") {
        rest = &rest[start..];
        let tag_end = rest
            .find('>')
            .expect("unterminated <testcase> tag in JUnit XML");
        let tag = &rest[..tag_end];
        let attrs = parse_attributes(&tag["<testcase".len()..]);
        let key = format!(
            "{}::{}",
            attrs.get("classname").map(String::as_str).unwrap_or(""),
            attrs.get("name").map(String::as_str).unwrap_or("")
        );
        let self_closing = tag.ends_with('/');
        rest = &rest[tag_end + 1..];
        let outcome = if self_closing {
            Outcome::Passed
        } else {
            let body_end = rest
                .find("</testcase>")
                .expect("<testcase> without </testcase> in JUnit XML");
            let body = &rest[..body_end];
            rest = &rest[body_end..];
            classify_body(body)
        };
        outcomes.entry(key).or_default().push(outcome);
    }
    outcomes
}

/// The position of the next `<name` tag (not `<name-suffix`).
fn find_tag(haystack: &str, name: &str) -> Option<usize> {
    let needle = format!("<{name}");
    let mut from = 0;
    while let Some(pos) = haystack[from..].find(&needle) {
        let at = from + pos;
        let next = haystack[at + needle.len()..].chars().next();
        if matches!(next, Some(c) if c.is_whitespace() || c == '>' || c == '/') {
            return Some(at);
        }
        from = at + needle.len();
    }
    None
}

fn classify_body(body: &str) -> Outcome {
    let first = [
        ("failure", Outcome::Failed),
        ("error", Outcome::Error),
        ("skipped", Outcome::Skipped),
    ]
    .iter()
    .filter_map(|(name, outcome)| find_tag(body, name).map(|pos| (pos, *name, *outcome)))
    .min_by_key(|(pos, _, _)| *pos);
    match first {
        None => Outcome::Passed,
        Some((pos, "skipped", _)) => {
            let tag_end = body[pos..].find('>').map_or(body.len(), |e| pos + e);
            let attrs = parse_attributes(&body[pos + "<skipped".len()..tag_end]);
            if attrs.get("type").map(String::as_str) == Some("pytest.xfail") {
                Outcome::Xfailed
            } else {
                Outcome::Skipped
            }
        }
        Some((_, _, outcome)) => outcome,
    }
}

fn parse_attributes(tag: &str) -> BTreeMap<String, String> {
    let mut attrs = BTreeMap::new();
    let mut rest = tag.trim_start();
    while let Some(eq) = rest.find('=') {
        let name = rest[..eq].trim().to_string();
        let after = rest[eq + 1..].trim_start();
        let Some(quote) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            break;
        };
        let Some(close) = after[1..].find(quote) else {
            break;
        };
        attrs.insert(name, unescape_xml(&after[1..1 + close]));
        rest = after[close + 2..].trim_start();
    }
    attrs
}

/// Resolves the five named entities and numeric character references.
pub fn unescape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';') else { break };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Which program an invocation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    /// `<python> -m pytest ...`
    Pytest,
    /// `rpytest --python <python> ...`
    Rpytest,
}

/// A finished invocation.
#[derive(Debug)]
pub struct Run {
    pub tool: Tool,
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Empty when no JUnit XML was written (usage errors) or none was asked for.
    pub outcomes: Outcomes,
    /// Whether the JUnit XML file existed after the run.
    pub wrote_junit: bool,
}

impl Run {
    /// How many test cases ended with `outcome`.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.outcomes
            .values()
            .flatten()
            .filter(|o| **o == outcome)
            .count()
    }

    /// Panics (showing the output) unless the exit code is `code`.
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            code,
            "{:?} exited {} (expected {code})\n{}",
            self.tool,
            self.code,
            self.transcript()
        );
        self
    }

    /// Panics (showing the output) unless stdout contains `needle`.
    pub fn assert_stdout_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "{:?} stdout lacks {needle:?}\n{}",
            self.tool,
            self.transcript()
        );
        self
    }

    /// Command line, exit code, stdout and stderr, for failure messages.
    pub fn transcript(&self) -> String {
        format!(
            "--- {:?} {:?} → exit {}\n--- stdout:\n{}\n--- stderr:\n{}\n",
            self.tool, self.args, self.code, self.stdout, self.stderr
        )
    }

    /// Node status words from `-v` output: `path::test STATUS` → STATUS
    /// (PASSED, FAILED, ERROR, SKIPPED, XFAIL, XPASS, CACHED).
    pub fn verbose_statuses(&self) -> BTreeMap<String, String> {
        const WORDS: &[&str] = &[
            "PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS", "CACHED",
        ];
        let mut statuses = BTreeMap::new();
        for line in self.stdout.lines() {
            let mut parts = line.split_whitespace();
            let (Some(node), Some(word)) = (parts.next(), parts.next()) else {
                continue;
            };
            if node.contains("::") && WORDS.contains(&word) {
                statuses.insert(node.to_string(), word.to_string());
            }
        }
        statuses
    }
}

/// Panics with a readable diff unless both runs exited alike and every test
/// case has the same outcome.
pub fn assert_same(pytest: &Run, rpytest: &Run) {
    let mut problems = Vec::new();
    if pytest.code != rpytest.code {
        problems.push(format!(
            "exit code: pytest {} vs rpytest {}",
            pytest.code, rpytest.code
        ));
    }
    if pytest.wrote_junit != rpytest.wrote_junit {
        problems.push(format!(
            "JUnit XML written: pytest {} vs rpytest {}",
            pytest.wrote_junit, rpytest.wrote_junit
        ));
    }
    let keys: std::collections::BTreeSet<&String> = pytest
        .outcomes
        .keys()
        .chain(rpytest.outcomes.keys())
        .collect();
    for key in keys {
        let show = |o: Option<&Vec<Outcome>>| match o {
            None => "(absent)".to_string(),
            Some(v) => v
                .iter()
                .map(Outcome::to_string)
                .collect::<Vec<_>>()
                .join("+"),
        };
        let (a, b) = (pytest.outcomes.get(key), rpytest.outcomes.get(key));
        if a != b {
            problems.push(format!("{key}: pytest {} vs rpytest {}", show(a), show(b)));
        }
    }
    if !problems.is_empty() {
        panic!(
            "rpytest differs from pytest for args {:?}:\n  {}\n\n{}\n{}",
            rpytest.args,
            problems.join("\n  "),
            pytest.transcript(),
            rpytest.transcript()
        );
    }
}

/// A copy of a fixture project in its own temp dir, with its own daemon.
pub struct Project {
    /// `<tmp>/<fixture name>`: the same basename as the fixture, because `-k`
    /// matches the rootdir's name too.
    pub root: PathBuf,
    /// JUnit files and other outputs, outside the project tree.
    out: PathBuf,
    /// `XDG_RUNTIME_DIR` for this project's daemon (short, for the socket path).
    runtime: TempDir,
    env: Vec<(String, String)>,
    counter: AtomicU32,
    /// Set once rpytest ran here, so only then does `drop` stop a daemon.
    used_rpytest: AtomicBool,
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
            _dir: dir,
        }
    }

    /// Sets an environment variable for every later invocation in this project.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    /// Removes a variable set with `set_env`.
    pub fn unset_env(&mut self, key: &str) {
        self.env.retain(|(k, _)| k != key);
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

    fn next_id(&self) -> u32 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    fn base_command(&self, program: &Path) -> Command {
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
        cmd.env("PYTHONDONTWRITEBYTECODE", "1")
            .env("COLUMNS", "120")
            .env("XDG_RUNTIME_DIR", self.runtime.path());
        for (key, value) in &self.env {
            cmd.env(key, value);
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
        let Ok(python) = find_python() else { return };
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

/// Runs `cmd` with a timeout, returning stdout+stderr, or None on any failure.
fn run_quietly(mut cmd: Command) -> Option<String> {
    let dir = tempfile::tempdir().ok()?;
    let out_path = dir.path().join("out");
    let file = fs::File::create(&out_path).ok()?;
    cmd.stdout(file.try_clone().ok()?).stderr(file);
    let mut child = cmd.spawn().ok()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    fs::read_to_string(out_path).ok()
}

/// Finds `pid: N` in `text`.
pub fn parse_pid(text: &str) -> Option<u32> {
    text.lines().find_map(|line| {
        line.trim()
            .strip_prefix("pid:")
            .and_then(|rest| rest.trim().parse().ok())
    })
}

/// SIGKILLs a process (ours, e.g. a session child orphaned by a killed
/// daemon) when dropped, if it is still alive.
pub struct KillOnDrop(pub u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if process_alive(self.0) {
            let _ = Command::new("kill")
                .args(["-9", &self.0.to_string()])
                .status();
        }
    }
}

/// Whether a process with this pid exists (and is not a zombie we own).
pub fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // State is the field after the parenthesized command name.
        Ok(stat) => {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                != Some("Z")
        }
        Err(_) => false,
    }
}

/// One pytest or rpytest command, configured before it runs.
pub struct Invocation<'p> {
    project: &'p Project,
    tool: Tool,
    args: Vec<String>,
    env: Vec<(String, String)>,
    junit: bool,
    timeout: Duration,
}

impl<'p> Invocation<'p> {
    fn new(project: &'p Project, tool: Tool, args: &[&str]) -> Self {
        Invocation {
            project,
            tool,
            args: args.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            junit: true,
            timeout: RUN_TIMEOUT,
        }
    }

    /// Sets an environment variable for this invocation only.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Does not add `--junitxml` (for management commands and usage errors).
    pub fn no_junit(mut self) -> Self {
        self.junit = false;
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Starts the process; `Running::wait` collects the result.
    pub fn spawn(self) -> Running {
        let id = self.project.next_id();
        let tag = match self.tool {
            Tool::Pytest => "pytest",
            Tool::Rpytest => "rpytest",
        };
        let stdout_path = self.project.out.join(format!("{tag}-{id}.stdout"));
        let stderr_path = self.project.out.join(format!("{tag}-{id}.stderr"));
        let junit_path = self
            .junit
            .then(|| self.project.out.join(format!("{tag}-{id}.xml")));

        let mut cmd = match self.tool {
            Tool::Pytest => {
                let mut cmd = self.project.base_command(python());
                cmd.args(["-m", "pytest"]);
                cmd
            }
            Tool::Rpytest => {
                self.project.used_rpytest.store(true, Ordering::Relaxed);
                let mut cmd = self.project.base_command(&rpytest_bin());
                cmd.arg("--python").arg(python());
                cmd
            }
        };
        if let Some(junit) = &junit_path {
            cmd.arg(format!("--junitxml={}", junit.display()));
        }
        cmd.args(&self.args);
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        cmd.stdin(Stdio::null())
            .stdout(fs::File::create(&stdout_path).expect("create stdout file"))
            .stderr(fs::File::create(&stderr_path).expect("create stderr file"));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {tag}: {e}"));
        Running {
            child,
            tool: self.tool,
            args: self.args,
            stdout_path,
            stderr_path,
            junit_path,
            deadline: Instant::now() + self.timeout,
        }
    }

    /// Runs to completion (or panics after the timeout).
    pub fn run(self) -> Run {
        self.spawn().wait()
    }
}

/// A started invocation.
pub struct Running {
    child: Child,
    tool: Tool,
    args: Vec<String>,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    junit_path: Option<PathBuf>,
    deadline: Instant,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process; kills it and panics if it outlives its timeout.
    pub fn wait(mut self) -> Run {
        let status = loop {
            match self.child.try_wait().expect("wait for child") {
                Some(status) => break status,
                None if Instant::now() >= self.deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!(
                        "{:?} {:?} did not finish in time (hang?)\n--- stdout so far:\n{}\n--- stderr so far:\n{}",
                        self.tool,
                        self.args,
                        fs::read_to_string(&self.stdout_path).unwrap_or_default(),
                        fs::read_to_string(&self.stderr_path).unwrap_or_default()
                    );
                }
                None => thread::sleep(Duration::from_millis(10)),
            }
        };
        let stdout =
            String::from_utf8_lossy(&fs::read(&self.stdout_path).unwrap_or_default()).into_owned();
        let stderr =
            String::from_utf8_lossy(&fs::read(&self.stderr_path).unwrap_or_default()).into_owned();
        let Some(code) = status.code() else {
            panic!(
                "{:?} {:?} was killed by a signal ({status})\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}",
                self.tool, self.args
            );
        };
        let xml = self
            .junit_path
            .as_ref()
            .and_then(|p| fs::read_to_string(p).ok());
        Run {
            tool: self.tool,
            args: std::mem::take(&mut self.args),
            code,
            stdout,
            stderr,
            wrote_junit: xml.is_some(),
            outcomes: xml.as_deref().map(parse_junit).unwrap_or_default(),
        }
    }
}

impl Drop for Running {
    /// A run abandoned by a failing test is killed rather than left behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_scanner_reads_pytest_output() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" errors="1" failures="1" skipped="2" tests="5"><testcase classname="" name="test_broken" time="0.000"><error message="collection failure">Trace &lt;module&gt;</error></testcase><testcase classname="t" name="test_ok[a &amp; b &quot;x&quot; &#10;]" time="0.000" /><testcase classname="t" name="test_bad" time="0.1"><failure message="assert 1 == 2">E  &lt;failure&gt;</failure></testcase><testcase classname="t" name="test_skip" time="0"><skipped type="pytest.skip" message="s">t.py:3: s</skipped></testcase><testcase classname="t" name="test_xf" time="0"><skipped type="pytest.xfail" message="bug" /></testcase><testcase classname="t" name="test_bad" time="0"><error message="teardown">x</error></testcase></testsuite></testsuites>"#;
        let got = parse_junit(xml);
        let want: Outcomes = [
            ("::test_broken", vec![Outcome::Error]),
            ("t::test_ok[a & b \"x\" \n]", vec![Outcome::Passed]),
            ("t::test_bad", vec![Outcome::Failed, Outcome::Error]),
            ("t::test_skip", vec![Outcome::Skipped]),
            ("t::test_xf", vec![Outcome::Xfailed]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn unescape_handles_numeric_and_unknown_entities() {
        assert_eq!(
            unescape_xml("&#x65e5;&#26412; &bogus; & end"),
            "日本 &bogus; & end"
        );
    }

    #[test]
    fn pid_line_is_found() {
        assert_eq!(
            parse_pid("daemon: running\npid: 4242\nsessions: 3\n"),
            Some(4242)
        );
        assert_eq!(parse_pid("no daemon\n"), None);
    }
}
