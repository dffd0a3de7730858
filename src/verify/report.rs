//! What `--verify-dropin` shows and writes: progress lines while the tools
//! run (stderr), the grouped disagreements and the verdict (stdout), and the
//! JSON report (docs/verify-report.md).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use super::compare::{Disagreement, Kind};
use super::runs::{tail, Observed, Tool};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The JSON report's schema version (docs/verify-report.md).
pub const SCHEMA_VERSION: u32 = 1;

/// One run in the JSON report.
#[derive(Debug, Serialize)]
pub struct RunReport {
    pub tool: &'static str,
    /// `full` for the three compared runs, `rerun` / `confirm` for the checks.
    pub purpose: &'static str,
    pub command: Vec<String>,
    pub exit_code: i32,
    pub nodes: usize,
    pub cached: usize,
    pub collection_errors: Vec<String>,
    pub seconds: f64,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    pub notes: Vec<String>,
}

impl RunReport {
    pub fn new(tool: Tool, purpose: &'static str, o: &Observed) -> RunReport {
        RunReport {
            tool: tool.id(),
            purpose,
            command: o.command.clone(),
            exit_code: o.exit_code,
            nodes: o.nodes.len(),
            cached: o.cached.len(),
            collection_errors: o.collection_errors.iter().cloned().collect(),
            seconds: (o.seconds * 1000.0).round() / 1000.0,
            stdout: o.stdout.clone(),
            stderr: o.stderr.clone(),
            notes: o.notes.clone(),
        }
    }
}

/// The whole comparison, as written by `--verify-report`.
#[derive(Debug, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub version: u32,
    pub rpytest_version: &'static str,
    pub verified: bool,
    /// The last line shown on the terminal.
    pub verdict: String,
    /// The tools compared, in order.
    pub tools: Vec<&'static str>,
    /// Why the cached run did not happen (`--no-cache`), or null.
    pub cached_run_skipped: Option<String>,
    pub python: PathBuf,
    pub cwd: PathBuf,
    pub rootdir: PathBuf,
    pub args: Vec<String>,
    /// Node IDs stock pytest reported.
    pub nodes: usize,
    pub runs: Vec<RunReport>,
    pub disagreements: Vec<Disagreement>,
    /// Disagreements per kind (every kind present, zero or not).
    pub summary: BTreeMap<&'static str, usize>,
    pub notes: Vec<String>,
    /// Where every run's captured output is kept (null when removed).
    pub outputs: Option<PathBuf>,
}

/// The verdict line.
pub fn verdict(
    nodes: usize,
    cached_run_skipped: Option<&str>,
    ds: &[Disagreement],
    summary: &[(&str, usize)],
) -> String {
    if ds.is_empty() {
        return match cached_run_skipped {
            None => format!("verified drop-in: {nodes} nodes, identical outcomes and exit code (fresh and cached)"),
            Some(why) => format!("verified drop-in: {nodes} nodes, identical outcomes and exit code (fresh only; cached run skipped: {why})"),
        };
    }
    let parts: Vec<String> = summary
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{n} {}", k.replace('_', " ")))
        .collect();
    let only_flaky = ds.iter().any(|d| d.kind == Kind::Flaky)
        && ds
            .iter()
            .all(|d| matches!(d.kind, Kind::Flaky | Kind::ExitCode));
    format!(
        "NOT verified: {} disagreement{} ({}) in {nodes} nodes{}",
        ds.len(),
        if ds.len() == 1 { "" } else { "s" },
        parts.join(", "),
        if only_flaky {
            "; only flaky tests, no incompatibility found"
        } else {
            ""
        }
    )
}

/// The opening line.
pub fn header(tools: usize) {
    if tools == 3 {
        eprintln!(
            "rpytest --verify-dropin: comparing stock pytest, rpytest fresh and rpytest cached"
        );
    } else {
        eprintln!("rpytest --verify-dropin: comparing stock pytest and rpytest fresh (--no-cache: no cached run)");
    }
}

/// `[i/n] tool ... ` before a run starts.
pub fn progress_start(i: usize, n: usize, what: &str) {
    eprint!("[{i}/{n}] {what} ... ");
    let _ = std::io::stderr().flush();
}

/// The rest of the progress line once the run ended.
pub fn progress_end(o: &Observed) {
    let cached = if o.cached.is_empty() {
        String::new()
    } else {
        format!(" ({} replayed from the cache)", o.cached.len())
    };
    eprintln!(
        "{} nodes{cached}, exit {} ({:.1}s)",
        o.nodes.len(),
        o.exit_code,
        o.seconds
    );
    let broken = o.exit_code == crate::exit::INTERNAL_ERROR
        || o.exit_code == crate::exit::USAGE_ERROR
        || !o.notes.is_empty();
    for n in &o.notes {
        eprintln!("      note: {n}");
    }
    if broken {
        for (name, p) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
            let t = tail(p, 8);
            if !t.trim().is_empty() {
                eprintln!("      last lines of its {name}:");
                for l in t.lines() {
                    eprintln!("        {l}");
                }
            }
        }
    }
}

/// A note on stderr (e.g. `-n` dropped for stock pytest).
pub fn note(msg: &str) {
    eprintln!("note: {msg}");
}

/// The grouped disagreements and the verdict, on stdout.
pub fn print(report: &Report) {
    let ds = &report.disagreements;
    if !ds.is_empty() {
        crate::report::stdout_line("");
        let mut groups: BTreeMap<(Kind, String), Vec<&Disagreement>> = BTreeMap::new();
        for d in ds {
            groups
                .entry((d.kind, d.file.clone().unwrap_or_default()))
                .or_default()
                .push(d);
        }
        for ((kind, file), items) in groups {
            if file.is_empty() {
                crate::report::stdout_line(&format!("{}:", kind.label()));
            } else {
                crate::report::stdout_line(&format!("{}: {file}", kind.label()));
            }
            for d in items {
                let cause = match (&d.cause.id, &d.cause.evidence) {
                    (&"unknown", _) if d.kind == Kind::ExitCode => String::new(),
                    (_, Some(e)) => format!(" — likely cause: {} ({e})", d.cause.label),
                    (_, None) => format!(" — likely cause: {}", d.cause.label),
                };
                match &d.nodeid {
                    Some(n) => {
                        crate::report::stdout_line(&format!("  {n}{cause}"));
                        crate::report::stdout_line(&format!("      {}", d.message));
                    }
                    None => crate::report::stdout_line(&format!("  {}{cause}", d.message)),
                }
            }
        }
        if let Some(out) = &report.outputs {
            crate::report::stdout_line("");
            crate::report::stdout_line(&format!("output of every run: {}", out.display()));
        }
        crate::report::stdout_line("");
    }
    crate::report::stdout_line(&report.verdict.to_string());
}

/// Writes the JSON report.
pub fn write_json(report: &Report, path: &Path) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(path, text + "\n")
}
