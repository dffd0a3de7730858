//! Coverage of a partly cached run: the CLI's side (`python/rpytest/coverage.py`
//! measures, splits and merges). A run that measures coverage (pytest-cov's
//! `--cov`) never answers from the cache alone (the report is pytest-cov's),
//! is handed the stored coverage data of the files it serves from the cache,
//! and stores the data of each file that ran whole under the key its results
//! are stored under.

use super::plan::Plan;
use crate::project::args::PytestArgs;
use crate::protocol::Event;
use crate::settings::Invocation;
use crate::store::{CoverageRow, Store};
use std::collections::{BTreeMap, HashMap};

/// Whether the command line (with addopts and `PYTEST_ADDOPTS`) asks pytest-cov to measure.
pub fn requested(args: &PytestArgs) -> bool {
    let mut on = false;
    for a in &args.all_args {
        if a == "--no-cov" {
            return false;
        }
        if a == "--cov" || a.starts_with("--cov=") {
            on = true;
        }
    }
    on
}

/// The stored coverage data of every file the plan serves from the cache
/// (None when the run does not measure coverage).
pub fn stored(
    inv: &Invocation,
    plan: &Plan,
    store: &Store,
) -> Option<BTreeMap<String, BTreeMap<String, String>>> {
    if !plan.caching || !requested(&inv.args) {
        return None;
    }
    let mut files: Vec<&str> = plan.skip_files.iter().map(String::as_str).collect();
    files.extend(plan.cached.iter().map(|c| c.file.as_str()));
    files.sort_unstable();
    files.dedup();
    let pairs: Vec<(&str, &str)> = files
        .iter()
        .filter_map(|f| plan.pre_keys.get(*f).map(|k| (*f, k.hex.as_str())))
        .collect();
    let found = store.coverage_for(&pairs).unwrap_or_default();
    Some(found.into_iter().collect())
}

/// The coverage events of a session, by file.
pub fn by_file(events: &[Event]) -> HashMap<&str, (&str, &str)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Coverage { file, sig, data } => {
                Some((file.as_str(), (sig.as_str(), data.as_str())))
            }
            _ => None,
        })
        .collect()
}

/// Stores the coverage rows a run produced (after its results, which they go with).
pub fn record(store: &mut Store, rows: &[CoverageRow]) {
    if let Err(e) = store.record_coverage(rows) {
        crate::report::warning(&format!("could not store coverage data: {e}"));
    }
}

pub use crate::project::args::understand_coverage as understand;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::args::analyze;

    fn args(v: &[&str]) -> PytestArgs {
        let mut a = analyze(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        understand(&mut a);
        a
    }

    #[test]
    fn inline_cov_options_are_understood_and_keyed() {
        let a = args(&[
            "--cov=pkg",
            "--cov-branch",
            "--cov-report=term-missing",
            "tests",
        ]);
        assert!(a.understood());
        assert!(requested(&a));
        assert!(a.key_args.contains(&"--cov=pkg".to_string()));
        assert_eq!(a.positional, vec!["tests"]);
    }

    #[test]
    fn a_bare_cov_may_take_a_path_and_stays_unknown() {
        let a = args(&["--cov", "pkg"]);
        assert!(!a.understood());
        assert!(requested(&a));
        assert!(!requested(&args(&["--cov=pkg", "--no-cov"])));
        assert!(!requested(&args(&["-q"])));
    }
}
