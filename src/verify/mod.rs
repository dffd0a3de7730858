//! `--verify-dropin`: runs stock pytest, rpytest fresh and rpytest cached
//! with the same arguments and environment, and proves (or refutes) per node
//! that rpytest is a drop-in for this suite. See docs/verify-report.md.
//!
//! This module prints nothing: it tells its progress as `Step`s to the
//! caller's callback and returns the comparison as a `Verification`, which
//! `report::verify` shows.

mod cause;
mod compare;
mod result;
mod runs;

pub use cause::Cause;
pub use compare::{Disagreement, Kind};
pub use result::{Report, RunReport, SCHEMA_VERSION};
pub use runs::{Observed, Tool};

use crate::exit::{self, Failure};
use crate::outcome::Outcome;
use crate::project::interpreter::InterpreterInfo;
use crate::settings::{Invocation, Mode};
use runs::Launcher;
use std::path::{Path, PathBuf};

/// What happens while the tools run, in order, for the terminal.
#[derive(Debug)]
pub enum Step<'a> {
    /// The comparison starts: three tools, or two (no cached run).
    Begin { tools: usize },
    /// Something worth knowing before the runs (`-n` dropped for stock pytest).
    Note(&'a str),
    /// Run `i` of `n` starts: `what` runs.
    Start { i: usize, n: usize, what: &'a str },
    /// That run ended. `output` holds the last lines of its captured stdout
    /// and stderr (name, text) when it broke: a usage or internal error, or
    /// notes about it.
    End {
        run: &'a Observed,
        output: Vec<(&'static str, String)>,
    },
}

/// The finished comparison: the report to show, and where to write it.
#[derive(Debug)]
pub struct Verification {
    pub report: Report,
    /// `--verify-report PATH`, resolved against the invocation directory.
    json: Option<PathBuf>,
}

impl Verification {
    /// Writes the JSON report when one was asked for; the exit code: 0 when
    /// verified, 1 when not.
    pub fn finish(&self) -> Result<i32, Failure> {
        if let Some(p) = &self.json {
            result::write_json(&self.report, p)
                .map_err(|e| Failure::internal(format!("cannot write {}: {e}", p.display())))?;
        }
        Ok(if self.report.verified {
            exit::OK
        } else {
            exit::TESTS_FAILED
        })
    }
}

fn workdir() -> Result<PathBuf, Failure> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("rpytest-verify-{}-{nanos:x}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure::internal(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}

/// `--verify-report PATH` against the invocation directory; its directory must exist.
fn report_path(inv: &Invocation) -> Result<Option<PathBuf>, Failure> {
    let path = match &inv.mode {
        Mode::Verify { report } => report.clone(),
        _ => None,
    };
    if let Some(p) = &path {
        let parent = p.parent().unwrap_or(Path::new("/"));
        if !parent.is_dir() {
            return Err(Failure::usage(format!(
                "--verify-report {}: the directory {} does not exist",
                p.display(),
                parent.display()
            )));
        }
    }
    Ok(path)
}

/// The runs of one comparison, and how they are told to the terminal.
struct Runner<'a, 'p> {
    launcher: Launcher<'a>,
    progress: &'p mut dyn FnMut(Step),
}

impl Runner<'_, '_> {
    /// Runs `what` as step `i` of `n` and tells when it starts and ends.
    fn step(
        &mut self,
        i: usize,
        n: usize,
        what: &str,
        run: impl FnOnce(&Launcher) -> Observed,
    ) -> Observed {
        (self.progress)(Step::Start { i, n, what });
        let o = run(&self.launcher);
        let broken = o.exit_code == exit::INTERNAL_ERROR
            || o.exit_code == exit::USAGE_ERROR
            || !o.notes.is_empty();
        let output = if broken {
            [("stdout", &o.stdout), ("stderr", &o.stderr)]
                .into_iter()
                .map(|(name, p)| (name, runs::tail(p, 8)))
                .filter(|(_, t)| !t.trim().is_empty())
                .collect()
        } else {
            Vec::new()
        };
        (self.progress)(Step::End { run: &o, output });
        o
    }
}

/// The three (or two) compared runs.
struct Full {
    stock: Observed,
    fresh: Observed,
    cached: Option<Observed>,
}

impl Full {
    /// Whether the cached run replayed nothing although the fresh run had
    /// passes to store (every passing test's inputs changed in between).
    fn cached_run_served_nothing(&self) -> bool {
        self.cached.as_ref().is_some_and(|c| {
            c.cached.is_empty() && self.fresh.nodes.values().any(|o| *o == Outcome::Passed)
        })
    }

    fn compared(&self) -> Vec<(Tool, &Observed)> {
        let mut compared = vec![(Tool::Pytest, &self.stock), (Tool::Fresh, &self.fresh)];
        if let Some(c) = &self.cached {
            compared.push((Tool::Cached, c));
        }
        compared
    }
}

fn full_runs(r: &mut Runner, stock_args: &[String], args: &[String], cached_run: bool) -> Full {
    let total = if cached_run { 3 } else { 2 };
    (r.progress)(Step::Begin { tools: total });
    let stock = r.step(1, total, Tool::Pytest.label(), |l| l.pytest(stock_args));
    let fresh = r.step(2, total, Tool::Fresh.label(), |l| {
        if cached_run {
            l.rpytest(args, &[], Some("refresh"))
        } else {
            l.rpytest(args, &["--no-cache"], None)
        }
    });
    let cached = cached_run.then(|| {
        r.step(3, total, Tool::Cached.label(), |l| {
            l.rpytest(args, &[], None)
        })
    });
    Full {
        stock,
        fresh,
        cached,
    }
}

/// Re-runs what disagrees to tell reproduced differences from flaky ones;
/// returns the reports of those extra runs.
fn recheck(
    r: &mut Runner,
    inv: &Invocation,
    stock_args: &[String],
    ds: &mut [Disagreement],
) -> Vec<RunReport> {
    let rootdir = &inv.setup.rootdir;
    let args = &inv.pytest_argv;
    let mut checks = Vec::new();
    let nodes = compare::to_rerun(ds);
    if !nodes.is_empty() {
        let node_args: Vec<String> = nodes.iter().map(|n| runs::node_arg(rootdir, n)).collect();
        let inipath = inv.setup.inipath.as_deref();
        let mut py_args = runs::options_only(stock_args, rootdir, inipath);
        py_args.extend(node_args.iter().cloned());
        let mut rp_args = runs::options_only(args, rootdir, inipath);
        rp_args.extend(node_args);
        let what = format!("re-running {} disagreeing node(s) alone", nodes.len());
        let py = r.step(1, 2, &format!("{what} under stock pytest"), |l| {
            l.pytest(&py_args)
        });
        let rp = r.step(2, 2, &format!("{what} under rpytest (--no-cache)"), |l| {
            l.rpytest(&rp_args, &["--no-cache"], None)
        });
        compare::resolve_rerun(ds, &py, &rp);
        checks.push(RunReport::new(Tool::Pytest, "rerun", &py));
        checks.push(RunReport::new(Tool::Fresh, "rerun", &rp));
    }
    if compare::needs_confirm(ds) {
        let again = r.step(
            1,
            1,
            "only the cached run disagrees; confirming with a second fresh rpytest run (--no-cache)",
            |l| l.rpytest(args, &["--no-cache"], None),
        );
        compare::resolve_confirm(ds, &again);
        checks.push(RunReport::new(Tool::Fresh, "confirm", &again));
    }
    checks
}

/// Stock pytest's arguments: the user's, without `-n` when pytest-xdist is
/// not installed (with a note saying so).
fn stock_args(args: &[String], python: &Path, notes: &mut Vec<String>) -> Vec<String> {
    if runs::has_numprocesses(args) && !runs::has_xdist(python) {
        notes.push("stock pytest ran without -n (pytest-xdist is not installed for this interpreter); rpytest ran with it".to_owned());
        runs::strip_numprocesses(args)
    } else {
        args.to_vec()
    }
}

/// Runs the comparison, telling `progress` what runs; the caller shows the
/// result and calls `Verification::finish`.
pub fn run(
    inv: &Invocation,
    python: &Path,
    _info: &InterpreterInfo,
    progress: &mut dyn FnMut(Step),
) -> Result<Verification, Failure> {
    let json = report_path(inv)?;
    let rootdir = &inv.setup.rootdir;
    let args = &inv.pytest_argv;
    let cached_run = inv.settings.use_cache;
    let dir = workdir()?;
    let own_flags = if inv.settings.no_daemon_flag {
        vec!["--no-daemon".to_owned()]
    } else {
        Vec::new()
    };
    let mut notes = Vec::new();
    let stock_args = stock_args(args, python, &mut notes);
    for n in &notes {
        progress(Step::Note(n));
    }
    let mut r = Runner {
        launcher: Launcher::new(python, &inv.cwd, &dir, own_flags),
        progress,
    };
    let full = full_runs(&mut r, &stock_args, args, cached_run);
    if full.cached_run_served_nothing() {
        let n = "the cached run served no result from the cache (`rpytest --why NODE` tells why a test ran again)".to_owned();
        (r.progress)(Step::Note(&n));
        notes.push(n);
    }
    let mut ds = compare::find(&full.compared());
    let checks = recheck(&mut r, inv, &stock_args, &mut ds);
    compare::explain(&mut ds, rootdir);
    ds.sort_by(|a, b| (a.kind, &a.file, &a.nodeid).cmp(&(b.kind, &b.file, &b.nodeid)));

    let report = assemble(inv, python, &full, checks, ds, notes, dir);
    Ok(Verification { report, json })
}

/// The report of a finished comparison. The directory of captured outputs
/// is removed when everything agrees, and kept (and named) otherwise.
fn assemble(
    inv: &Invocation,
    python: &Path,
    full: &Full,
    checks: Vec<RunReport>,
    ds: Vec<Disagreement>,
    notes: Vec<String>,
    dir: PathBuf,
) -> Report {
    let compared = full.compared();
    let summary = compare::summary(&ds);
    let verified = ds.is_empty();
    let skipped_because = (!inv.settings.use_cache).then(|| {
        if inv.settings.no_cache_flag {
            "--no-cache".to_owned()
        } else {
            "the result cache is off (configuration or RPYTEST_NO_CACHE)".to_owned()
        }
    });
    let verdict = result::verdict(
        full.stock.nodes.len(),
        skipped_because.as_deref(),
        full.cached_run_served_nothing(),
        &ds,
        &summary,
    );
    let mut runs: Vec<RunReport> = compared
        .iter()
        .map(|(t, o)| RunReport::new(*t, "full", o))
        .collect();
    runs.extend(checks);
    let outputs = if verified {
        let _ = std::fs::remove_dir_all(&dir);
        None
    } else {
        Some(dir)
    };
    Report {
        schema: "rpytest-verify-report",
        version: SCHEMA_VERSION,
        rpytest_version: env!("CARGO_PKG_VERSION"),
        verified,
        verdict,
        tools: compared.iter().map(|(t, _)| t.id()).collect(),
        cached_run_skipped: skipped_because,
        python: python.to_path_buf(),
        cwd: inv.cwd.clone(),
        rootdir: inv.setup.rootdir.clone(),
        args: inv.pytest_argv.clone(),
        nodes: full.stock.nodes.len(),
        runs,
        disagreements: ds,
        summary: summary.into_iter().collect(),
        notes,
        outputs,
    }
}
