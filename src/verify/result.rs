//! The result of `--verify-dropin` as a value: the runs, the disagreements
//! and the verdict, which `report::verify` shows and `write_json` writes
//! (docs/verify-report.md).

use super::compare::{Disagreement, Kind};
use super::runs::{Observed, Tool};
use serde::Serialize;
use std::collections::BTreeMap;
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
    cached_run_served_nothing: bool,
    ds: &[Disagreement],
    summary: &[(&str, usize)],
) -> String {
    if ds.is_empty() {
        return match cached_run_skipped {
            None if cached_run_served_nothing => format!("verified drop-in: {nodes} nodes, identical outcomes and exit code (fresh; the cached run served nothing from the cache)"),
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

/// Writes the JSON report.
pub fn write_json(report: &Report, path: &Path) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(path, text + "\n")
}
