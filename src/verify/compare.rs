//! Comparing the runs: node-ID sets, then per-node outcomes, then exit codes;
//! and classifying each difference (collection, execution, flaky, cache).

use super::cause::{self, Cause};
use super::runs::{Observed, Tool};
use crate::outcome::Outcome;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What kind of difference a disagreement is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The node sets (or the collection errors) differ.
    Collection,
    /// Same node, different outcome, reproduced when re-run alone.
    Execution,
    /// Same node, different outcome, but a tool's own outcome flipped on re-run.
    Flaky,
    /// Only the cached run disagrees: an input rpytest's key does not see.
    Cache,
    /// The exit codes differ.
    ExitCode,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Collection => "collection",
            Kind::Execution => "execution",
            Kind::Flaky => "flaky",
            Kind::Cache => "cache",
            Kind::ExitCode => "exit code",
        }
    }
}

/// One difference between the runs.
#[derive(Debug, Clone, Serialize)]
pub struct Disagreement {
    pub kind: Kind,
    /// Rootdir-relative file, when the difference belongs to one.
    pub file: Option<String>,
    pub nodeid: Option<String>,
    /// Tool id → outcome (`null`: the tool did not report the node).
    pub outcomes: BTreeMap<&'static str, Option<Outcome>>,
    /// Tool id → exit code (exit-code disagreements only).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub exit_codes: BTreeMap<&'static str, i32>,
    /// Outcomes when the node was re-run alone (`pytest`, `rpytest`), or,
    /// for a cache disagreement, in a second fresh rpytest run (`rpytest`).
    pub rerun: Option<BTreeMap<&'static str, Option<Outcome>>>,
    /// The cached run replayed this node from the cache instead of running it.
    pub replayed: bool,
    pub cause: Cause,
    pub message: String,
}

fn show(o: &Option<Outcome>) -> &str {
    o.as_ref().map_or("absent", Outcome::as_str)
}

fn file_of(nodeid: &str) -> String {
    nodeid.split("::").next().unwrap_or(nodeid).to_owned()
}

/// A disagreement of `kind`, its cause and message still to be found.
fn unexplained(kind: Kind, file: Option<String>, nodeid: Option<String>) -> Disagreement {
    Disagreement {
        kind,
        file,
        nodeid,
        outcomes: BTreeMap::new(),
        exit_codes: BTreeMap::new(),
        rerun: None,
        replayed: false,
        cause: Cause::fixed("unknown", "unknown"),
        message: String::new(),
    }
}

/// Finds every difference; execution and cache ones are provisional until
/// `resolve_rerun` / `resolve_confirm` saw the re-runs.
pub fn find(runs: &[(Tool, &Observed)]) -> Vec<Disagreement> {
    let Some((_, stock)) = runs.iter().find(|(t, _)| *t == Tool::Pytest) else {
        return Vec::new();
    };
    let mut out = node_differences(runs, stock);
    out.extend(collection_error_differences(runs, stock));
    if runs.iter().any(|(_, o)| o.exit_code != stock.exit_code) {
        let mut d = unexplained(Kind::ExitCode, None, None);
        d.exit_codes = runs.iter().map(|(t, o)| (t.id(), o.exit_code)).collect();
        d.message = format!(
            "exit code: {}",
            runs.iter()
                .map(|(t, o)| format!("{} {}", t.label(), o.exit_code))
                .collect::<Vec<_>>()
                .join(", ")
        );
        out.push(d);
    }
    out
}

/// Nodes whose outcome differs from stock pytest's (or that a run lacks).
fn node_differences(runs: &[(Tool, &Observed)], stock: &Observed) -> Vec<Disagreement> {
    let get = |tool: Tool| runs.iter().find(|(t, _)| *t == tool).map(|(_, o)| *o);
    let all: BTreeSet<&String> = runs.iter().flat_map(|(_, o)| o.nodes.keys()).collect();
    let mut out = Vec::new();
    for node in all {
        let base = stock.nodes.get(node);
        if runs.iter().all(|(_, o)| o.nodes.get(node) == base) {
            continue;
        }
        let outcomes: BTreeMap<&'static str, Option<Outcome>> = runs
            .iter()
            .map(|(t, o)| (t.id(), o.nodes.get(node).cloned()))
            .collect();
        let fresh = get(Tool::Fresh).and_then(|f| f.nodes.get(node));
        let kind = if !outcomes.values().all(Option::is_some) {
            Kind::Collection
        } else if fresh != base {
            Kind::Execution
        } else {
            Kind::Cache
        };
        let mut d = unexplained(kind, Some(file_of(node)), Some(node.clone()));
        d.outcomes = outcomes;
        d.replayed = get(Tool::Cached).is_some_and(|c| c.cached.contains(node));
        out.push(d);
    }
    out
}

/// Collection errors under one tool only: reported only when the terminal
/// output is a faithful account of them (it is how rpytest's runs report
/// them), i.e. it matches what the observer saw under stock pytest.
fn collection_error_differences(runs: &[(Tool, &Observed)], stock: &Observed) -> Vec<Disagreement> {
    let mut out = Vec::new();
    if stock.printed_collection_errors != stock.collection_errors {
        return out;
    }
    for (tool, obs) in runs.iter().filter(|(t, _)| *t != Tool::Pytest) {
        for f in stock
            .collection_errors
            .symmetric_difference(&obs.collection_errors)
        {
            let under = if stock.collection_errors.contains(f) {
                Tool::Pytest
            } else {
                *tool
            };
            let mut d = unexplained(Kind::Collection, Some(file_of(f)), None);
            d.message = format!(
                "collection error in {f} under {} only (compared with {})",
                under.label(),
                tool.label()
            );
            out.push(d);
        }
    }
    out
}

/// Node IDs to re-run alone under both tools.
pub fn to_rerun(ds: &[Disagreement]) -> Vec<String> {
    ds.iter()
        .filter(|d| d.kind == Kind::Execution)
        .filter_map(|d| d.nodeid.clone())
        .collect()
}

/// Whether a second fresh rpytest run is needed to confirm cache disagreements
/// on nodes the cached run executed (a replayed one needs no confirmation).
pub fn needs_confirm(ds: &[Disagreement]) -> bool {
    ds.iter().any(|d| d.kind == Kind::Cache && !d.replayed)
}

/// Execution disagreements: a node whose own outcome flips when re-run
/// under one tool is flaky; one that keeps both outcomes is reproduced.
pub fn resolve_rerun(ds: &mut [Disagreement], stock: &Observed, rpytest: &Observed) {
    for d in ds.iter_mut().filter(|d| d.kind == Kind::Execution) {
        let node = d.nodeid.clone().unwrap_or_default();
        let again_py = stock.nodes.get(&node).cloned();
        let again_rp = rpytest.nodes.get(&node).cloned();
        let first_py = d.outcomes.get(Tool::Pytest.id()).cloned().flatten();
        let first_rp = d.outcomes.get(Tool::Fresh.id()).cloned().flatten();
        let py_flips = again_py.is_some() && again_py != first_py;
        let rp_flips = again_rp.is_some() && again_rp != first_rp;
        if py_flips || rp_flips {
            d.kind = Kind::Flaky;
        }
        let mut m = BTreeMap::new();
        m.insert("pytest", again_py);
        m.insert("rpytest", again_rp);
        d.rerun = Some(m);
    }
}

/// Cache disagreements on executed nodes: if a second fresh rpytest run
/// agrees with stock pytest again, the difference belongs to the cached
/// run; if not, the node is flaky.
pub fn resolve_confirm(ds: &mut [Disagreement], fresh_again: &Observed) {
    for d in ds
        .iter_mut()
        .filter(|d| d.kind == Kind::Cache && !d.replayed)
    {
        let node = d.nodeid.clone().unwrap_or_default();
        let again = fresh_again.nodes.get(&node).cloned();
        let stock = d.outcomes.get(Tool::Pytest.id()).cloned().flatten();
        if again != stock {
            d.kind = Kind::Flaky;
        }
        let mut m = BTreeMap::new();
        m.insert("rpytest", again);
        d.rerun = Some(m);
    }
}

/// Fills in causes and messages.
pub fn explain(ds: &mut [Disagreement], rootdir: &Path) {
    for d in ds.iter_mut() {
        match d.kind {
            Kind::Collection => explain_collection(d, rootdir),
            Kind::Execution => {
                d.cause = cause::likely(rootdir, d.nodeid.as_deref().unwrap_or(""));
                d.message = format!("{}; the same again when re-run alone", outcomes(d));
            }
            Kind::Flaky => explain_flaky(d),
            Kind::Cache => explain_cache(d),
            Kind::ExitCode => {}
        }
    }
    if ds.iter().any(|d| d.nodeid.is_some()) {
        for d in ds.iter_mut().filter(|d| d.kind == Kind::ExitCode) {
            d.message
                .push_str(" (follows from the outcome differences above)");
        }
    }
}

/// `stock pytest passed, rpytest fresh failed, ...`.
fn outcomes(d: &Disagreement) -> String {
    [Tool::Pytest, Tool::Fresh, Tool::Cached]
        .iter()
        .filter_map(|t| d.outcomes.get(t.id()).map(|o| (t, o)))
        .map(|(t, o)| format!("{} {}", t.label(), show(o)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn explain_collection(d: &mut Disagreement, rootdir: &Path) {
    if let Some(n) = &d.nodeid {
        d.cause = cause::likely(rootdir, &file_of(n));
        let tools = |present: bool| {
            d.outcomes
                .iter()
                .filter(|(_, o)| o.is_some() == present)
                .map(|(t, _)| label_of(t))
                .collect::<Vec<&str>>()
                .join(", ")
        };
        d.message = format!("reported by {} but not by {}", tools(true), tools(false));
    } else if let Some(f) = &d.file {
        d.cause = cause::likely(rootdir, f);
    }
}

fn explain_flaky(d: &mut Disagreement) {
    d.cause = Cause::fixed("flaky", "its outcome is not stable");
    let rerun = d.rerun.clone().unwrap_or_default();
    let flipped: Vec<String> = rerun
        .iter()
        .filter_map(|(t, again)| {
            let (tool, name) = if *t == "pytest" {
                (Tool::Pytest, "stock pytest")
            } else {
                (Tool::Fresh, "rpytest")
            };
            let first = d.outcomes.get(tool.id()).cloned().flatten();
            (again.is_some() && *again != first)
                .then(|| format!("{name} gave {} (was {})", show(again), show(&first)))
        })
        .collect();
    d.message = format!(
        "{}; re-run: {} — its outcome is not stable, not an incompatibility",
        outcomes(d),
        if flipped.is_empty() {
            "no flip seen".to_owned()
        } else {
            flipped.join(", ")
        }
    );
}

fn explain_cache(d: &mut Disagreement) {
    d.cause = Cause {
        id: "unseen-input",
        label: "depends on an input rpytest's cache key does not see",
        evidence: None,
    };
    let how = if d.replayed {
        "the cached run replayed a stored result".to_owned()
    } else {
        format!(
            "the cached run executed it (other tests were replayed) and a second fresh run gave {} again",
            show(&d.rerun.as_ref().and_then(|r| r.get("rpytest").cloned()).flatten())
        )
    };
    d.message = format!(
        "{}; only the cached run disagrees: {how}. Its outcome depends on something rpytest's cache key does not see (state left by tests that were replayed instead of run, files outside the rootdir, directory listings, unrecorded environment); declare it as an input or mark it `cache = false` in a rule",
        outcomes(d)
    );
}

fn label_of(id: &str) -> &'static str {
    match id {
        "pytest" => Tool::Pytest.label(),
        "rpytest-fresh" => Tool::Fresh.label(),
        _ => Tool::Cached.label(),
    }
}

/// Counts per kind, in the order of `Kind`.
pub fn summary(ds: &[Disagreement]) -> Vec<(&'static str, usize)> {
    [
        (Kind::Collection, "collection"),
        (Kind::Execution, "execution"),
        (Kind::Flaky, "flaky"),
        (Kind::Cache, "cache"),
        (Kind::ExitCode, "exit_code"),
    ]
    .into_iter()
    .map(|(k, name)| (name, ds.iter().filter(|d| d.kind == k).count()))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(code: i32, nodes: &[(&str, &str)], cached: &[&str]) -> Observed {
        Observed {
            exit_code: code,
            nodes: nodes
                .iter()
                .map(|(n, o)| (n.to_string(), Outcome::parse(o)))
                .collect(),
            cached: cached.iter().map(|s| s.to_string()).collect(),
            ..Observed::default()
        }
    }

    #[test]
    fn identical_runs_agree() {
        let a = obs(0, &[("t.py::a", "passed")], &[]);
        let b = obs(0, &[("t.py::a", "passed")], &["t.py::a"]);
        assert!(find(&[(Tool::Pytest, &a), (Tool::Fresh, &a), (Tool::Cached, &b)]).is_empty());
    }

    #[test]
    fn kinds_are_told_apart() {
        let py = obs(
            1,
            &[
                ("t.py::a", "passed"),
                ("t.py::b", "failed"),
                ("u.py::c", "passed"),
            ],
            &[],
        );
        let fresh = obs(
            1,
            &[
                ("t.py::a", "failed"),
                ("t.py::b", "failed"),
                ("u.py::c", "passed"),
            ],
            &[],
        );
        let cached = obs(
            0,
            &[
                ("t.py::a", "failed"),
                ("t.py::b", "passed"),
                ("u.py::c", "passed"),
                ("v.py::d", "passed"),
            ],
            &["u.py::c"],
        );
        let ds = find(&[
            (Tool::Pytest, &py),
            (Tool::Fresh, &fresh),
            (Tool::Cached, &cached),
        ]);
        let kinds: Vec<(Option<&str>, Kind)> =
            ds.iter().map(|d| (d.nodeid.as_deref(), d.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                (Some("t.py::a"), Kind::Execution),
                (Some("t.py::b"), Kind::Cache),
                (Some("v.py::d"), Kind::Collection),
                (None, Kind::ExitCode),
            ]
        );
        assert!(needs_confirm(&ds));
        assert_eq!(to_rerun(&ds), vec!["t.py::a".to_owned()]);
    }

    #[test]
    fn a_flip_under_stock_pytest_is_flaky() {
        let py = obs(1, &[("t.py::a", "failed")], &[]);
        let fresh = obs(0, &[("t.py::a", "passed")], &[]);
        let mut ds = find(&[(Tool::Pytest, &py), (Tool::Fresh, &fresh)]);
        resolve_rerun(&mut ds, &obs(0, &[("t.py::a", "passed")], &[]), &fresh);
        assert_eq!(ds[0].kind, Kind::Flaky);
        let mut ds = find(&[(Tool::Pytest, &py), (Tool::Fresh, &fresh)]);
        resolve_rerun(&mut ds, &py, &fresh);
        assert_eq!(ds[0].kind, Kind::Execution);
    }
}
