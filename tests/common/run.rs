//! Running pytest or rpytest on a project: the invocation builder, the
//! finished `Run` and the comparison of two runs, plus process helpers.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use super::junit::{parse_junit, Outcome, Outcomes};
use super::locate::{python, rpytest_bin};
use super::project::Project;

/// Longest a single pytest or rpytest invocation may take before the test fails.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(180);
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

/// Runs `cmd` with a timeout, returning stdout+stderr, or None on any failure.
pub(super) fn run_quietly(mut cmd: Command) -> Option<String> {
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
    stdin: Option<Vec<u8>>,
    stdout_closed: bool,
    own_group: bool,
}

impl<'p> Invocation<'p> {
    pub(super) fn new(project: &'p Project, tool: Tool, args: &[&str]) -> Self {
        Invocation {
            project,
            tool,
            args: args.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            junit: true,
            timeout: RUN_TIMEOUT,
            stdin: None,
            stdout_closed: false,
            own_group: false,
        }
    }

    /// Starts the process in a process group of its own, as a shell starts
    /// a command: signals sent to that group (a terminal's Ctrl-C or Ctrl-Z)
    /// reach it and whatever shares its group, never the harness.
    pub fn own_group(mut self) -> Self {
        self.own_group = true;
        self
    }

    /// Gives the process a stdout pipe whose reading end is already closed
    /// (`rpytest | head` after head exited).
    pub fn stdout_closed(mut self) -> Self {
        self.stdout_closed = true;
        self
    }

    /// Feeds `data` to the process's standard input (default: /dev/null).
    pub fn stdin(mut self, data: &[u8]) -> Self {
        self.stdin = Some(data.to_vec());
        self
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
                let mut cmd = self.project.base_command(self.project.python());
                cmd.args(["-m", "pytest"]);
                cmd
            }
            Tool::Rpytest => {
                self.project.used_rpytest.store(true, Ordering::Relaxed);
                let mut cmd = self.project.base_command(&rpytest_bin());
                cmd.arg("--python").arg(self.project.python());
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
        let stdin = match &self.stdin {
            Some(data) => {
                let path = self.project.out.join(format!("{tag}-{id}.stdin"));
                fs::write(&path, data).expect("write stdin file");
                Stdio::from(fs::File::open(&path).expect("open stdin file"))
            }
            None => Stdio::null(),
        };
        if self.own_group {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let stdout_file = fs::File::create(&stdout_path).expect("create stdout file");
        cmd.stdin(stdin)
            .stdout(if self.stdout_closed {
                Stdio::piped()
            } else {
                Stdio::from(stdout_file)
            })
            .stderr(fs::File::create(&stderr_path).expect("create stderr file"));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {tag}: {e}"));
        drop(child.stdout.take());
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

    /// What the process has written to stdout so far.
    pub fn stdout_so_far(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.stdout_path).unwrap_or_default()).into_owned()
    }

    /// Waits until stdout contains one of `needles` (panics, killing the process, if
    /// it ends first or after the run's timeout): tests wait for an event
    /// before they send a signal, never for a fixed time.
    pub fn wait_for_stdout(&mut self, needles: &[&str]) {
        loop {
            let out = self.stdout_so_far();
            if needles.iter().any(|n| out.contains(n)) {
                return;
            }
            let ended = self.child.try_wait().expect("wait for child").is_some();
            assert!(
                !ended && Instant::now() < self.deadline,
                "{:?} {:?} never printed any of {needles:?}\n--- stdout:\n{}\n--- stderr:\n{}",
                self.tool,
                self.args,
                self.stdout_so_far(),
                fs::read_to_string(&self.stderr_path).unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the process's exit status; kills it and panics if it outlives
    /// its timeout (with the output so far when `show_output`).
    fn wait_status(&mut self, show_output: bool) -> std::process::ExitStatus {
        loop {
            match self.child.try_wait().expect("wait for child") {
                Some(status) => return status,
                None if Instant::now() >= self.deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    let output = if show_output {
                        format!(
                            "\n--- stdout so far:\n{}\n--- stderr so far:\n{}",
                            fs::read_to_string(&self.stdout_path).unwrap_or_default(),
                            fs::read_to_string(&self.stderr_path).unwrap_or_default()
                        )
                    } else {
                        String::new()
                    };
                    panic!(
                        "{:?} {:?} did not finish in time (hang?){output}",
                        self.tool, self.args
                    );
                }
                None => thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// Waits for the process (panics after the run's timeout) and returns the
    /// signal that killed it, if one did, with its stderr.
    pub fn wait_for_signal(mut self) -> (Option<i32>, String) {
        use std::os::unix::process::ExitStatusExt;
        let status = self.wait_status(false);
        let stderr = fs::read_to_string(&self.stderr_path).unwrap_or_default();
        (status.signal(), format!("{status}\n{stderr}"))
    }

    /// Waits for the process; kills it and panics if it outlives its timeout.
    pub fn wait(mut self) -> Run {
        let status = self.wait_status(true);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_line_is_found() {
        assert_eq!(
            parse_pid("daemon: running\npid: 4242\nsessions: 3\n"),
            Some(4242)
        );
        assert_eq!(parse_pid("no daemon\n"), None);
    }
}
