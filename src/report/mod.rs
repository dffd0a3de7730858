//! Everything rpytest itself says to the user. pytest's own output goes
//! straight from the session to the terminal; these are rpytest's additions:
//! errors, warnings, the cache summary, the fully cached run's summary.
#![allow(clippy::print_stdout, clippy::print_stderr)]

pub mod cached;
pub mod parallel;
pub mod verify;

use std::io::{IsTerminal, Write};

/// Writes one line to stdout. A closed pipe (`rpytest | head`) ends the
/// process quietly with exit code 1, as it ends pytest (and Python) on EPIPE.
pub fn stdout_line(line: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}").and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(1);
        }
    }
}

/// Writes one line to stderr; a closed stderr is not a reason to fail.
pub fn stderr_line(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// An error that ends the run, in pytest's style.
pub fn error(msg: &str) {
    stderr_line(&format!("ERROR: {msg}"));
}

/// A warning that does not stop the run.
pub fn warning(msg: &str) {
    stderr_line(&format!("rpytest: warning: {msg}"));
}

/// A plain informational line on stderr.
pub fn note(msg: &str) {
    stderr_line(&format!("rpytest: {msg}"));
}

/// A line on stdout (management commands).
pub fn out(msg: &str) {
    stdout_line(msg);
}

/// How the cache served this run.
pub fn cache_summary(cached: usize, ran: usize, saved: f64) {
    if cached == 0 {
        return;
    }
    stderr_line(&format!(
        "rpytest: {cached} cached, {ran} run, {saved:.2}s saved"
    ));
}

/// The remote cache's account of a run: one warning if something went
/// wrong, then the counts.
pub fn remote(summary: &crate::remote::Summary) {
    use crate::remote::Problem;
    let url = &summary.url;
    match &summary.problem {
        Some(Problem::Unusable(why)) => warning(&format!(
            "remote cache {url} is not usable ({why}); this run used the local cache only"
        )),
        Some(Problem::Invalid { count, first }) => warning(&format!(
            "remote cache {url}: ignored {count} invalid entr{} (first: {first}); those tests ran",
            if *count == 1 { "y" } else { "ies" }
        )),
        None => {}
    }
    note(&format!(
        "remote cache: {} lookups, {} hits, {} uploads",
        summary.lookups, summary.hits, summary.uploads
    ));
}

fn color_enabled(args_color: Option<&str>) -> bool {
    match args_color {
        Some("yes") => true,
        Some("no") => false,
        _ => {
            std::env::var_os("NO_COLOR").is_none()
                && (std::env::var_os("PY_COLORS")
                    .map(|v| v == "1")
                    .unwrap_or(false)
                    || std::env::var_os("FORCE_COLOR").is_some()
                    || std::io::stdout().is_terminal())
        }
    }
}

/// What a run answered from the cache without Python shows.
pub struct FullyCached<'a> {
    /// The `-v` lines, in pytest's order.
    pub lines: &'a [cached::Line<'a>],
    /// Whether each node of `lines` raised warnings.
    pub warned: &'a [bool],
    /// The stored warnings for the warnings summary (empty: no summary).
    pub warnings: &'a [cached::Warning],
    /// `(name, count)` in pytest's order, `warnings` included.
    pub counts: &'a [(String, usize)],
    pub seconds: f64,
}

/// Prints a fully cached run as a pytest session replaying it would, from
/// the node lines on (no session header: no Python ran): `-v` lines, the
/// warnings summary, the count line.
pub fn fully_cached(answer: &FullyCached, verbosity: i32, color: Option<&str>) {
    let width = terminal_width();
    let color = color_enabled(color);
    let mut out: Vec<String> = Vec::new();
    if verbosity > 0 && !answer.lines.is_empty() {
        out.extend(cached::verbose_lines(
            answer.lines,
            answer.warned,
            width,
            verbosity,
            color,
        ));
        out.push(String::new());
    }
    if !answer.warnings.is_empty() {
        let mut summary = cached::warnings_summary(answer.warnings, width);
        if color {
            summary[0] = format!("\x1b[33m{}\x1b[0m", summary[0]);
        }
        out.extend(summary);
    }
    for line in out {
        stdout_line(&line);
    }
    let warned = answer.counts.iter().any(|(k, n)| k == "warnings" && *n > 0);
    summary_line(
        answer.counts,
        answer.seconds,
        verbosity < 0,
        color,
        if warned { "33" } else { "32" },
    );
}

fn summary_line(counts: &[(String, usize)], seconds: f64, quiet: bool, color: bool, code: &str) {
    let parts: Vec<String> = counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| {
            // pytest's singular: "1 warning".
            let k = if *n == 1 && k == "warnings" {
                "warning"
            } else {
                k
            };
            format!("{n} {k}")
        })
        .collect();
    let body = format!("{} in {seconds:.2}s", parts.join(", "));
    let line = if quiet {
        body
    } else {
        cached::sep(&body, terminal_width())
    };
    if color {
        stdout_line(&format!("\x1b[{code}m{line}\x1b[0m"));
    } else {
        stdout_line(&line);
    }
}

fn terminal_width() -> usize {
    if let Some(c) = std::env::var("COLUMNS").ok().and_then(|v| v.parse().ok()) {
        return c;
    }
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    if unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_col > 0 {
        return ws.ws_col as usize;
    }
    80
}

/// Phase timings on stderr when `RPYTEST_TRACE` is set (for profiling runs).
pub struct Trace {
    on: bool,
    last: std::time::Instant,
    last_cpu: f64,
}

/// CPU time of the whole process (every thread), in seconds: on a busy
/// machine the wall time of a phase says little, its CPU time still does.
fn process_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) } == 0;
    if ok {
        ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
    } else {
        0.0
    }
}

impl Trace {
    /// Starts timing.
    pub fn new() -> Trace {
        let on = std::env::var_os("RPYTEST_TRACE").is_some();
        Trace {
            on,
            last: std::time::Instant::now(),
            last_cpu: if on { process_cpu() } else { 0.0 },
        }
    }

    /// Prints the time since the previous mark.
    pub fn mark(&mut self, what: &str) {
        if self.on {
            let now = std::time::Instant::now();
            let cpu = process_cpu();
            stderr_line(&format!(
                "rpytest trace: {what}: {:.1} ms (cpu {:.1} ms)",
                (now - self.last).as_secs_f64() * 1000.0,
                (cpu - self.last_cpu) * 1000.0
            ));
            self.last = now;
            self.last_cpu = cpu;
        }
    }
}

impl Default for Trace {
    fn default() -> Self {
        Trace::new()
    }
}
