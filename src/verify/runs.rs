//! Running the compared tools: stock pytest (with the observer plugin) and
//! rpytest itself (this binary, fresh or cached), each in its own process
//! with its output captured, and reading back what each one reported.

use crate::outcome::Outcome;
use crate::project::args::analyze;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// One of the compared tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tool {
    /// Stock pytest in a fresh process.
    Pytest,
    /// rpytest, executing everything (cache neither read, or only written).
    Fresh,
    /// rpytest reusing what the fresh run stored.
    Cached,
}

impl Tool {
    /// The name used in the JSON report.
    pub fn id(self) -> &'static str {
        match self {
            Tool::Pytest => "pytest",
            Tool::Fresh => "rpytest-fresh",
            Tool::Cached => "rpytest-cached",
        }
    }

    /// The name shown on the terminal.
    pub fn label(self) -> &'static str {
        match self {
            Tool::Pytest => "stock pytest",
            Tool::Fresh => "rpytest fresh",
            Tool::Cached => "rpytest cached",
        }
    }
}

/// What one finished run reported.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub exit_code: i32,
    /// Node ID → outcome.
    pub nodes: BTreeMap<String, Outcome>,
    /// Nodes the run replayed from rpytest's cache.
    pub cached: BTreeSet<String>,
    /// Collectors (files, mostly) that failed to collect: the observer's
    /// list under stock pytest, `printed_collection_errors` under rpytest.
    pub collection_errors: BTreeSet<String>,
    /// Collection errors as the terminal output shows them.
    pub printed_collection_errors: BTreeSet<String>,
    pub seconds: f64,
    /// The command that ran (for the report).
    pub command: Vec<String>,
    /// Where its stdout and stderr were kept.
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    /// Things worth knowing about this run (its outcome file was missing...).
    pub notes: Vec<String>,
}

/// Everything needed to start the tools the same way.
pub struct Launcher<'a> {
    pub python: &'a Path,
    pub cwd: &'a Path,
    /// Where outcome files and captured output go.
    pub workdir: &'a Path,
    /// rpytest's own options to repeat for runs 2 and 3 (`--no-daemon`).
    pub own_flags: Vec<String>,
    counter: std::cell::Cell<u32>,
}

#[derive(Deserialize)]
struct OutcomesFile {
    exit_code: Option<i32>,
    exit_status: Option<i32>,
    #[serde(default)]
    nodes: BTreeMap<String, Outcome>,
    #[serde(default)]
    cached: Vec<String>,
    #[serde(default)]
    collection_errors: Vec<String>,
}

/// Environment variables of ours that must not leak from the caller into a run.
const OWN_ENV: &[&str] = &[
    "RPYTEST_OUTCOMES_FILE",
    "RPYTEST_OBSERVE_FILE",
    "RPYTEST_CACHE",
];

/// A command for `program` without our variables inherited from the caller.
fn clean_command(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    for var in OWN_ENV {
        cmd.env_remove(var);
    }
    cmd
}

impl<'a> Launcher<'a> {
    pub fn new(python: &'a Path, cwd: &'a Path, workdir: &'a Path, own_flags: Vec<String>) -> Self {
        Launcher {
            python,
            cwd,
            workdir,
            own_flags,
            counter: std::cell::Cell::new(0),
        }
    }

    /// Runs stock pytest with the observer plugin. It is started the way the
    /// `pytest` command starts it (the script beside the interpreter, so
    /// `sys.argv[0]` and `sys.path[0]` are the command's), falling back to
    /// `python -m pytest` when there is no such script.
    pub fn pytest(&self, args: &[String]) -> Observed {
        let mut cmd = clean_command(self.python);
        let script = self.python.parent().map(|d| d.join("pytest"));
        let mut shown = vec![self.python.display().to_string()];
        match script {
            Some(s) if s.is_file() => {
                cmd.arg(&s);
                shown.push(s.display().to_string());
            }
            _ => {
                cmd.args(["-m", "pytest"]);
                shown.extend(["-m".to_owned(), "pytest".to_owned()]);
            }
        }
        cmd.args(args);
        shown.extend(args.iter().cloned());
        let plugins = match std::env::var("PYTEST_PLUGINS") {
            Ok(v) if !v.trim().is_empty() => format!("{v},rpytest.observer"),
            _ => "rpytest.observer".to_owned(),
        };
        cmd.env("PYTEST_PLUGINS", plugins);
        self.finish(cmd, shown, "RPYTEST_OBSERVE_FILE", "pytest")
    }

    /// Runs this rpytest binary; `cache_env` is `RPYTEST_CACHE`'s value, if any.
    pub fn rpytest(
        &self,
        args: &[String],
        extra_own: &[&str],
        cache_env: Option<&str>,
    ) -> Observed {
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("rpytest"));
        let mut own: Vec<String> = vec!["--python".into(), self.python.display().to_string()];
        own.extend(self.own_flags.iter().cloned());
        own.extend(extra_own.iter().map(|s| s.to_string()));
        // This very binary, even if a rebuild or upgrade replaced the file meanwhile.
        let proc_exe = Path::new("/proc/self/exe");
        let mut cmd = clean_command(if proc_exe.exists() { proc_exe } else { &exe });
        cmd.args(&own).args(args);
        if let Some(v) = cache_env {
            cmd.env("RPYTEST_CACHE", v);
        }
        let mut shown = vec![exe.display().to_string()];
        shown.extend(own);
        shown.extend(args.iter().cloned());
        self.finish(cmd, shown, "RPYTEST_OUTCOMES_FILE", "rpytest")
    }

    fn finish(&self, mut cmd: Command, shown: Vec<String>, file_var: &str, tag: &str) -> Observed {
        let n = self.counter.get() + 1;
        self.counter.set(n);
        let outcomes = self.workdir.join(format!("{n}-{tag}.json"));
        let stdout = self.workdir.join(format!("{n}-{tag}.stdout"));
        let stderr = self.workdir.join(format!("{n}-{tag}.stderr"));
        cmd.env(file_var, &outcomes).current_dir(self.cwd);
        let mut obs = Observed {
            command: shown,
            stdout: stdout.clone(),
            stderr: stderr.clone(),
            ..Observed::default()
        };
        let started = Instant::now();
        let status = std::fs::File::create(&stdout)
            .and_then(|out| Ok((out, std::fs::File::create(&stderr)?)))
            .and_then(|(out, err)| cmd.stdin(Stdio::null()).stdout(out).stderr(err).status());
        obs.seconds = started.elapsed().as_secs_f64();
        match status {
            Ok(s) => {
                obs.exit_code = match s.code() {
                    Some(c) => c,
                    None => {
                        use std::os::unix::process::ExitStatusExt;
                        let sig = s.signal().unwrap_or(0);
                        obs.notes.push(format!("killed by signal {sig}"));
                        128 + sig
                    }
                }
            }
            Err(e) => {
                obs.exit_code = crate::exit::INTERNAL_ERROR;
                obs.notes
                    .push(format!("could not start {}: {e}", obs.command[0]));
                return obs;
            }
        }
        match std::fs::read_to_string(&outcomes)
            .ok()
            .and_then(|t| serde_json::from_str::<OutcomesFile>(&t).ok())
        {
            Some(f) => {
                obs.nodes = f.nodes;
                obs.cached = f.cached.into_iter().collect();
                obs.collection_errors = f.collection_errors.into_iter().collect();
                let reported = f.exit_code.or(f.exit_status);
                if let Some(r) = reported.filter(|r| *r != obs.exit_code) {
                    obs.notes.push(format!(
                        "the session reported exit status {r}, the process exited {}",
                        obs.exit_code
                    ));
                }
            }
            None => obs.notes.push(format!(
                "it wrote no outcomes (see {})",
                obs.stderr.display()
            )),
        }
        obs.printed_collection_errors = collection_errors_in_output(&read_lossy(&stdout));
        if tag == "rpytest" {
            obs.collection_errors = obs.printed_collection_errors.clone();
        }
        obs
    }
}

fn read_lossy(p: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned()
}

/// The last `n` lines of a captured output file.
pub fn tail(p: &Path, n: usize) -> String {
    let text = read_lossy(p);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Collection errors as pytest prints them (`____ ERROR collecting path ____`
/// headers, `ERROR path` summary lines without `::`). rpytest's outcomes
/// file lists nodes only, so this is how rpytest's runs report them.
pub fn collection_errors_in_output(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let l = line.trim();
        let trimmed = l.trim_matches('_').trim();
        if let Some(rest) = trimmed.strip_prefix("ERROR collecting ") {
            if l.starts_with('_') {
                found.insert(rest.trim().to_owned());
                continue;
            }
        }
        if let Some(rest) = l.strip_prefix("ERROR ") {
            let path = rest.split(" - ").next().unwrap_or(rest).trim();
            if !path.contains("::") && !path.contains(' ') && !path.is_empty() {
                found.insert(path.to_owned());
            }
        }
    }
    found
}

/// Which argument positions are positional (paths, node IDs), as pytest
/// would read them.
fn positional_mask(args: &[String]) -> Vec<bool> {
    (0..args.len())
        .map(|i| analyze(&args[..=i]).positional.len() > analyze(&args[..i]).positional.len())
        .collect()
}

/// The user's options without their paths and node IDs, for re-running
/// chosen nodes. `--rootdir` and `-c` are pinned so node IDs keep their meaning.
pub fn options_only(args: &[String], rootdir: &Path, inipath: Option<&Path>) -> Vec<String> {
    let mask = positional_mask(args);
    let mut out: Vec<String> = args
        .iter()
        .zip(&mask)
        .filter(|(a, positional)| !**positional && a.as_str() != "--")
        .map(|(a, _)| a.clone())
        .collect();
    let seen = analyze(args);
    if seen.rootdir.is_none() {
        out.push(format!("--rootdir={}", rootdir.display()));
    }
    if let (None, Some(ini)) = (seen.inifile.as_ref(), inipath) {
        out.push("-c".into());
        out.push(ini.display().to_string());
    }
    out
}

/// A node ID as a command-line argument that means the same node from any cwd.
pub fn node_arg(rootdir: &Path, nodeid: &str) -> String {
    match nodeid.split_once("::") {
        Some((path, rest)) => format!("{}::{rest}", rootdir.join(path).display()),
        None => rootdir.join(nodeid).display().to_string(),
    }
}

/// Whether `-n`/`--numprocesses` is among the arguments.
pub fn has_numprocesses(args: &[String]) -> bool {
    strip_numprocesses(args).len() != args.len()
}

/// The arguments without `-n N` / `-nN` / `--numprocesses[=]N` (for stock
/// pytest when pytest-xdist is not installed).
pub fn strip_numprocesses(args: &[String]) -> Vec<String> {
    let mask = positional_mask(args);
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if !mask[i] {
            if a == "-n" || a == "--numprocesses" {
                i += 2;
                continue;
            }
            if (a.starts_with("-n") && !a.starts_with("--")) || a.starts_with("--numprocesses=") {
                i += 1;
                continue;
            }
        }
        out.push(a.clone());
        i += 1;
    }
    out
}

/// Whether pytest-xdist can be imported by `python`.
pub fn has_xdist(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import xdist"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn options_only_drops_paths_and_keeps_values() {
        let out = options_only(
            &s(&["-k", "a or b", "tests/x.py", "-q", "--tb", "short", "tests"]),
            Path::new("/r"),
            Some(Path::new("/r/pytest.ini")),
        );
        assert_eq!(
            out,
            s(&[
                "-k",
                "a or b",
                "-q",
                "--tb",
                "short",
                "--rootdir=/r",
                "-c",
                "/r/pytest.ini"
            ])
        );
    }

    #[test]
    fn numprocesses_is_removed_in_every_spelling() {
        assert_eq!(
            strip_numprocesses(&s(&["-n", "4", "-q", "-n2", "--numprocesses=auto", "t.py"])),
            s(&["-q", "t.py"])
        );
        assert!(!has_numprocesses(&s(&["-q", "n.py"])));
    }

    #[test]
    fn collection_errors_are_read_from_pytest_output() {
        let text = "____ ERROR collecting test_b.py ____\nE  boom\nERROR test_b.py - ImportError\nERROR test_c.py::test_x - assert\nERROR sub/test_d.py\n";
        let got: Vec<String> = collection_errors_in_output(text).into_iter().collect();
        assert_eq!(got, s(&["sub/test_d.py", "test_b.py"]));
    }

    #[test]
    fn node_args_are_absolute() {
        assert_eq!(
            node_arg(Path::new("/r"), "t/a.py::C::f[x::y]"),
            "/r/t/a.py::C::f[x::y]"
        );
    }
}
