//! `--verify-dropin`: runs stock pytest, rpytest fresh and rpytest cached
//! with the same arguments and environment, and proves (or refutes) per node
//! that rpytest is a drop-in for this suite. See docs/verify-report.md.

mod cause;
mod compare;
mod report;
mod runs;

pub use compare::{Disagreement, Kind};
pub use report::{Report, SCHEMA_VERSION};
pub use runs::{Observed, Tool};

use crate::exit::{self, Failure};
use crate::project::interpreter::InterpreterInfo;
use crate::settings::{Invocation, Mode};
use runs::Launcher;
use std::path::{Path, PathBuf};

fn workdir() -> Result<PathBuf, Failure> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("rpytest-verify-{}-{nanos:x}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Failure {
        code: exit::INTERNAL_ERROR,
        message: format!("cannot create {}: {e}", dir.display()),
    })?;
    Ok(dir)
}

/// Runs the comparison; 0 when verified, 1 when not.
pub fn run(inv: &Invocation, python: &Path, _info: &InterpreterInfo) -> Result<i32, Failure> {
    let report_path = match &inv.mode {
        Mode::Verify { report } => report.clone(),
        _ => None,
    };
    if let Some(p) = &report_path {
        let parent = p.parent().unwrap_or(Path::new("/"));
        if !parent.is_dir() {
            return Err(Failure {
                code: exit::USAGE_ERROR,
                message: format!(
                    "--verify-report {}: the directory {} does not exist",
                    p.display(),
                    parent.display()
                ),
            });
        }
    }
    let rootdir = &inv.setup.rootdir;
    let args = &inv.pytest_argv;
    let cached_run = inv.settings.use_cache;
    let dir = workdir()?;
    let own_flags = if inv.settings.no_daemon_flag {
        vec!["--no-daemon".to_owned()]
    } else {
        Vec::new()
    };
    let launcher = Launcher::new(python, &inv.cwd, &dir, own_flags);
    let mut notes = Vec::new();
    let stock_args = if runs::has_numprocesses(args) && !runs::has_xdist(python) {
        let n = "stock pytest ran without -n (pytest-xdist is not installed for this interpreter); rpytest ran with it".to_owned();
        report::note(&n);
        notes.push(n);
        runs::strip_numprocesses(args)
    } else {
        args.clone()
    };

    let total = if cached_run { 3 } else { 2 };
    report::header(total);
    report::progress_start(1, total, Tool::Pytest.label());
    let stock = launcher.pytest(&stock_args);
    report::progress_end(&stock);
    report::progress_start(2, total, Tool::Fresh.label());
    let fresh = if cached_run {
        launcher.rpytest(args, &[], Some("refresh"))
    } else {
        launcher.rpytest(args, &["--no-cache"], None)
    };
    report::progress_end(&fresh);
    let cached = cached_run.then(|| {
        report::progress_start(3, total, Tool::Cached.label());
        let c = launcher.rpytest(args, &[], None);
        report::progress_end(&c);
        c
    });

    let mut compared: Vec<(Tool, &Observed)> = vec![(Tool::Pytest, &stock), (Tool::Fresh, &fresh)];
    if let Some(c) = &cached {
        compared.push((Tool::Cached, c));
    }
    let mut ds = compare::find(&compared);
    let mut checks: Vec<report::RunReport> = Vec::new();

    let nodes = compare::to_rerun(&ds);
    if !nodes.is_empty() {
        let node_args: Vec<String> = nodes.iter().map(|n| runs::node_arg(rootdir, n)).collect();
        let inipath = inv.setup.inipath.as_deref();
        let mut py_args = runs::options_only(&stock_args, rootdir, inipath);
        py_args.extend(node_args.iter().cloned());
        let mut rp_args = runs::options_only(args, rootdir, inipath);
        rp_args.extend(node_args);
        let what = format!("re-running {} disagreeing node(s) alone", nodes.len());
        report::progress_start(1, 2, &format!("{what} under stock pytest"));
        let py = launcher.pytest(&py_args);
        report::progress_end(&py);
        report::progress_start(2, 2, &format!("{what} under rpytest (--no-cache)"));
        let rp = launcher.rpytest(&rp_args, &["--no-cache"], None);
        report::progress_end(&rp);
        compare::resolve_rerun(&mut ds, &py, &rp);
        checks.push(report::RunReport::new(Tool::Pytest, "rerun", &py));
        checks.push(report::RunReport::new(Tool::Fresh, "rerun", &rp));
    }
    if compare::needs_confirm(&ds) {
        report::progress_start(
            1,
            1,
            "only the cached run disagrees; confirming with a second fresh rpytest run (--no-cache)",
        );
        let again = launcher.rpytest(args, &["--no-cache"], None);
        report::progress_end(&again);
        compare::resolve_confirm(&mut ds, &again);
        checks.push(report::RunReport::new(Tool::Fresh, "confirm", &again));
    }
    compare::explain(&mut ds, rootdir);
    ds.sort_by(|a, b| (a.kind, &a.file, &a.nodeid).cmp(&(b.kind, &b.file, &b.nodeid)));

    let summary = compare::summary(&ds);
    let verified = ds.is_empty();
    let skipped_because = (!cached_run).then(|| {
        if inv.settings.no_cache_flag {
            "--no-cache".to_owned()
        } else {
            "the result cache is off (configuration or RPYTEST_NO_CACHE)".to_owned()
        }
    });
    let verdict = report::verdict(stock.nodes.len(), skipped_because.as_deref(), &ds, &summary);
    let mut run_reports: Vec<report::RunReport> = compared
        .iter()
        .map(|(t, o)| report::RunReport::new(*t, "full", o))
        .collect();
    run_reports.extend(checks);
    let outputs = if verified {
        let _ = std::fs::remove_dir_all(&dir);
        None
    } else {
        Some(dir.clone())
    };
    let report = Report {
        schema: "rpytest-verify-report",
        version: SCHEMA_VERSION,
        rpytest_version: env!("CARGO_PKG_VERSION"),
        verified,
        verdict,
        tools: compared.iter().map(|(t, _)| t.id()).collect(),
        cached_run_skipped: skipped_because,
        python: python.to_path_buf(),
        cwd: inv.cwd.clone(),
        rootdir: rootdir.clone(),
        args: args.clone(),
        nodes: stock.nodes.len(),
        runs: run_reports,
        disagreements: ds,
        summary: summary.into_iter().collect(),
        notes,
        outputs,
    };
    report::print(&report);
    if let Some(p) = &report_path {
        report::write_json(&report, p).map_err(|e| Failure {
            code: exit::INTERNAL_ERROR,
            message: format!("cannot write {}: {e}", p.display()),
        })?;
    }
    Ok(if verified {
        exit::OK
    } else {
        exit::TESTS_FAILED
    })
}
