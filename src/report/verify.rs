//! What `--verify-dropin` shows: progress lines while the tools run
//! (stderr), then the grouped disagreements and the verdict (stdout).

use super::{stderr_line, stdout_line};
use crate::verify::{Disagreement, Kind, Observed, Report, Step};
use std::collections::BTreeMap;
use std::io::Write;

/// Shows one step of the comparison on stderr as it happens.
pub fn progress(step: Step) {
    match step {
        Step::Begin { tools } => header(tools),
        Step::Note(msg) => stderr_line(&format!("note: {msg}")),
        Step::Start { i, n, what } => {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "[{i}/{n}] {what} ... ");
            let _ = err.flush();
        }
        Step::End { run, output } => ended(run, &output),
    }
}

fn header(tools: usize) {
    if tools == 3 {
        stderr_line(
            "rpytest --verify-dropin: comparing stock pytest, rpytest fresh and rpytest cached",
        );
    } else {
        stderr_line("rpytest --verify-dropin: comparing stock pytest and rpytest fresh (--no-cache: no cached run)");
    }
}

/// The rest of the progress line once a run ended, its notes, and the last
/// lines of its output when it broke.
fn ended(o: &Observed, output: &[(&str, String)]) {
    let cached = if o.cached.is_empty() {
        String::new()
    } else {
        format!(" ({} replayed from the cache)", o.cached.len())
    };
    stderr_line(&format!(
        "{} nodes{cached}, exit {} ({:.1}s)",
        o.nodes.len(),
        o.exit_code,
        o.seconds
    ));
    for n in &o.notes {
        stderr_line(&format!("      note: {n}"));
    }
    for (name, text) in output {
        stderr_line(&format!("      last lines of its {name}:"));
        for l in text.lines() {
            stderr_line(&format!("        {l}"));
        }
    }
}

/// The grouped disagreements and the verdict, on stdout.
pub fn print(report: &Report) {
    let ds = &report.disagreements;
    if !ds.is_empty() {
        stdout_line("");
        let mut groups: BTreeMap<(Kind, String), Vec<&Disagreement>> = BTreeMap::new();
        for d in ds {
            groups
                .entry((d.kind, d.file.clone().unwrap_or_default()))
                .or_default()
                .push(d);
        }
        for ((kind, file), items) in groups {
            if file.is_empty() {
                stdout_line(&format!("{}:", kind.label()));
            } else {
                stdout_line(&format!("{}: {file}", kind.label()));
            }
            items.into_iter().for_each(disagreement);
        }
        if let Some(out) = &report.outputs {
            stdout_line("");
            stdout_line(&format!("output of every run: {}", out.display()));
        }
        stdout_line("");
    }
    stdout_line(&report.verdict);
}

fn disagreement(d: &Disagreement) {
    let cause = match (&d.cause.id, &d.cause.evidence) {
        (&"unknown", _) if d.kind == Kind::ExitCode => String::new(),
        (_, Some(e)) => format!(" — likely cause: {} ({e})", d.cause.label),
        (_, None) => format!(" — likely cause: {}", d.cause.label),
    };
    match &d.nodeid {
        Some(n) => {
            stdout_line(&format!("  {n}{cause}"));
            stdout_line(&format!("      {}", d.message));
        }
        None => stdout_line(&format!("  {}{cause}", d.message)),
    }
}
