//! A run answered from the cache without Python: whether it can say what a
//! pytest session replaying the cached results would say, what it prints,
//! and pytest's own cache (`.pytest_cache/v/cache/lastfailed`, `nodeids`)
//! left as that session would leave it. Where it cannot match pytest's
//! output (`-rA` with captured output, `--durations`, `--junitxml`, a
//! progress style it does not know), the run goes to a session instead.

use super::outcomes::write_outcomes;
use super::plan::{now, Plan};
use crate::outcome::Outcome;
use crate::protocol::CachedNode;
use crate::report;
use crate::report::cached::{Line, Warning};
use crate::settings::Invocation;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// pytest's `getreportopt`: the effective report characters.
fn report_opts(chars: &str, disable_warnings: bool) -> String {
    let mut opts = String::new();
    for c in chars.chars() {
        let c = match c {
            'F' => 'f',
            'S' => 's',
            c => c,
        };
        match c {
            'a' => opts = "sxXEf".into(),
            'A' => opts = "PpsxXEf".into(),
            'N' => opts.clear(),
            c if !opts.contains(c) => opts.push(c),
            _ => {}
        }
    }
    if !disable_warnings && !opts.contains('w') {
        opts.insert(0, 'w');
    } else if disable_warnings {
        opts = opts.replace('w', "");
    }
    opts
}

fn has_arg(inv: &Invocation, name: &str) -> bool {
    inv.args.all_args.iter().any(|a| a == name)
}

fn ini_value(inv: &Invocation, name: &str) -> Option<String> {
    crate::project::args::override_ini(&inv.args.all_args, name).or_else(|| {
        inv.setup.ini.get(name).map(|v| match v {
            crate::project::ini::IniValue::Str(s) => s.trim().to_owned(),
            crate::project::ini::IniValue::List(l) => l.join(" "),
        })
    })
}

/// Where pytest's cacheprovider keeps its values: `None` when pytest would
/// keep none (`-p no:cacheprovider`), `Err` when only a session can tell
/// or create it (a missing directory, `--cache-clear`, a `cache_dir` with
/// variables).
pub(super) fn pytest_cache_dir(inv: &Invocation) -> Result<Option<PathBuf>, ()> {
    if inv
        .args
        .plugins
        .iter()
        .any(|p| p == "no:cacheprovider" || p == "no:_pytest.cacheprovider")
    {
        return Ok(None);
    }
    if has_arg(inv, "--cache-clear") {
        return Err(());
    }
    let dir = ini_value(inv, "cache_dir").unwrap_or_else(|| ".pytest_cache".into());
    if dir.contains('$') || dir.starts_with('~') || dir.is_empty() {
        return Err(());
    }
    let path = inv.setup.rootdir.join(dir);
    if !path.is_dir() {
        // pytest creates it with its README, .gitignore and CACHEDIR.TAG.
        return Err(());
    }
    Ok(Some(path))
}

/// Hooks a session runs even when every test is cached, whose effects the
/// CLI cannot reproduce: a conftest printing in `pytest_terminal_summary`,
/// writing a report in `pytest_sessionfinish`, counting reports in
/// `pytest_runtest_logreport`, changing the letters in
/// `pytest_report_teststatus`. `pytest_configure` (registering markers) and
/// `pytest_report_header` (no header is printed without Python) are not
/// among them.
const SESSION_EFFECT_HOOKS: &[&str] = &[
    "pytest_sessionstart",
    "pytest_sessionfinish",
    "pytest_unconfigure",
    "pytest_terminal_summary",
    "pytest_runtest_logreport",
    "pytest_report_teststatus",
    "pytest_runtest_logstart",
    "pytest_runtest_logfinish",
    "pytest_runtest_protocol",
    "pytest_runtestloop",
    "pytest_warning_recorded",
    "pytest_collection_finish",
    "pytest_report_collectionfinish",
    "pytest_collectreport",
    "pytest_deselected",
];

pub(super) fn is_session_effect_hook(name: &str) -> bool {
    SESSION_EFFECT_HOOKS.contains(&name)
}

/// The first `file: hook` among the session-wide conftests (and the
/// first-party modules their `pytest_plugins` name) that defines one of
/// `SESSION_EFFECT_HOOKS`, as a function or a method of a plugin class. An
/// unreadable file counts as one.
fn session_effect_hook(plan: &Plan, root: &Path) -> Option<String> {
    let mut files: Vec<PathBuf> = plan
        .session_conftests
        .iter()
        .map(|c| root.join(c))
        .collect();
    let mut seen = std::collections::HashSet::new();
    while let Some(path) = files.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let shown = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Some(format!("{shown}: unreadable"));
        };
        if let Some(hook) = defined_effect_hook(&text) {
            return Some(format!("{shown}: {hook}"));
        }
        if text.contains("pytest_plugins") {
            files.extend(plugin_modules(&text, root));
        }
    }
    None
}

/// The first of `SESSION_EFFECT_HOOKS` that `text` defines (`def name(`,
/// also `async def`, at any indentation).
fn defined_effect_hook(text: &str) -> Option<&'static str> {
    text.lines().find_map(|line| {
        let rest = line.trim_start();
        let rest = rest.strip_prefix("async ").unwrap_or(rest);
        let name = rest.strip_prefix("def ")?.trim_start();
        let name = &name[..name.find(['(', ' ']).unwrap_or(name.len())];
        SESSION_EFFECT_HOOKS.iter().copied().find(|h| *h == name)
    })
}

/// The files of the dotted module names quoted in `text` that exist under
/// `root` or `root/src` (`"tests.plugins.report"` → `tests/plugins/report.py`
/// or its package's `__init__.py`). Installed plugins are not looked for:
/// they are the installed environment's, like those loaded by entry point.
fn plugin_modules(text: &str, root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for (i, piece) in text.split(['"', '\'']).enumerate() {
        let dotted = i % 2 == 1
            && !piece.is_empty()
            && piece
                .split('.')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_'));
        if !dotted {
            continue;
        }
        let rel: PathBuf = piece.split('.').collect();
        for base in [root.to_path_buf(), root.join("src")] {
            for candidate in [
                base.join(&rel).with_extension("py"),
                base.join(&rel).join("__init__.py"),
            ] {
                if candidate.is_file() {
                    out.push(candidate);
                }
            }
        }
    }
    out
}

/// Whether the plan's answer can be printed as pytest would print it.
fn printable(plan: &Plan, inv: &Invocation) -> bool {
    let disable_warnings = has_arg(inv, "--disable-warnings");
    let opts = report_opts(
        inv.args.reportchars.as_deref().unwrap_or("fE"),
        disable_warnings,
    );
    let skips =
        !plan.skipped_files.is_empty() || plan.cached.iter().any(|c| c.outcome == "skipped");
    let xfails = plan.cached.iter().any(|c| c.outcome == "xfailed");
    // The short summary and PASSES list cached nodes with their sections.
    if opts.contains(['p', 'P']) || (opts.contains('s') && skips) || (opts.contains('x') && xfails)
    {
        return false;
    }
    // Subtests (pytest 9's `subtests`, pytest-subtests) have their own
    // letters, lines and counts: their plugin's hooks print them. A session
    // prints them.
    // So do a file's collection warnings (`at_collection`): pytest lists
    // them first, once, unless another file's collection raised them too.
    if plan.cached.iter().any(|c| {
        let text = c.output.text();
        text.contains("\"subtests\"") || text.contains("\"at_collection\"")
    }) {
        return false;
    }
    // -qq leaves out pytest's closing count line, and what it keeps differs
    // by warnings: a session prints it.
    if inv.args.verbosity < -1 {
        return false;
    }
    if inv.args.verbosity > 0 {
        let style = ini_value(inv, "console_output_style").unwrap_or_else(|| "progress".into());
        let no_capture = has_arg(inv, "-s")
            || inv
                .args
                .all_args
                .windows(2)
                .any(|w| w[0] == "--capture" && w[1] == "no");
        // pytest lists collected files in its own order; with several
        // starting points that order is theirs, which only a session knows.
        let starts = if inv.args.positional.is_empty() {
            ini_value(inv, "testpaths")
                .map(|t| t.split_whitespace().count())
                .unwrap_or(1)
        } else {
            inv.args.positional.len()
        };
        // -vv shows where a test was defined when that differs (`<- path`).
        if style != "progress" || no_capture || starts > 1 || inv.args.verbosity > 1 {
            return false;
        }
    }
    // Last: it reads the session-wide conftests.
    session_effect_hook(plan, &inv.setup.rootdir).is_none()
}

/// pytest's order of collected files under one starting point: directory
/// entries sorted by name, component by component; within a file, the
/// nodes keep their order. Linear in the nodes (plus sorting the files):
/// a fully cached run of 10,000 files orders 30,000 nodes.
fn collection_order(cached: &[CachedNode]) -> Vec<&CachedNode> {
    let mut groups: HashMap<&str, Vec<&CachedNode>> = HashMap::new();
    let mut files: Vec<&str> = Vec::new();
    for c in cached {
        groups
            .entry(c.file.as_str())
            .or_insert_with(|| {
                files.push(&c.file);
                Vec::new()
            })
            .push(c);
    }
    files.sort_by(|a, b| a.split('/').cmp(b.split('/')));
    let mut out = Vec::with_capacity(cached.len());
    for f in files {
        out.extend(groups.remove(f).unwrap_or_default());
    }
    out
}

/// A node ID as pytest shows it from the invocation directory.
fn cwd_relative(nodeid: &str, root: &Path, cwd: &Path) -> String {
    if root == cwd {
        return nodeid.to_owned();
    }
    let (path, rest) = match nodeid.find("::") {
        Some(i) => nodeid.split_at(i),
        None => (nodeid, ""),
    };
    let full = root.join(path);
    let f: Vec<_> = full.components().collect();
    let c: Vec<_> = cwd.components().collect();
    let common = f.iter().zip(c.iter()).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".into(); c.len() - common];
    parts.extend(
        f[common..]
            .iter()
            .map(|p| p.as_os_str().to_string_lossy().into_owned()),
    );
    format!("{}{rest}", parts.join("/"))
}

/// The reason pytest's `-v` line shows for a skip or an xfail.
fn reason(c: &CachedNode) -> Option<String> {
    match c.outcome {
        Outcome::Skipped => {
            let longrepr = c.longrepr.value();
            let r = longrepr.get(2).and_then(|v| v.as_str()).unwrap_or("");
            Some(match r.strip_prefix("Skipped: ") {
                Some(rest) => rest.to_owned(),
                None if r == "Skipped" => String::new(),
                None => r.to_owned(),
            })
        }
        Outcome::Xfailed => {
            let r = c.wasxfail.as_deref().unwrap_or("");
            Some(r.strip_prefix("reason: ").unwrap_or(r).to_owned())
        }
        _ => None,
    }
}

/// The stored warnings of a node, with pytest's formatted message.
fn warnings_of(c: &CachedNode, root: &Path) -> Vec<Warning> {
    // Most nodes warned nothing: their output is not decoded.
    if !c.output.text().contains("\"warnings\"") {
        return Vec::new();
    }
    let output = c.output.value();
    let Some(list) = output.get("warnings").and_then(|w| w.as_array()) else {
        return Vec::new();
    };
    list.iter()
        .map(|w| {
            let s = |k: &str| w.get(k).and_then(|v| v.as_str()).unwrap_or("");
            let mut filename = s("filename").to_owned();
            let under_root = w.get("rootdir").and_then(|v| v.as_bool()) == Some(true);
            if under_root {
                filename = root.join(&filename).to_string_lossy().into_owned();
            }
            // Under rootdir the stored text is what follows the file's path;
            // elsewhere (a relative path such as `request.node.warn`'s, a
            // file outside the project) it is the whole text.
            let text = match w.get("text").and_then(|v| v.as_str()) {
                Some(tail) if under_root => format!("{filename}{tail}"),
                Some(text) => text.to_owned(),
                None => {
                    let line = s("line").trim();
                    let mut t = format!(
                        "{filename}:{}: {}: {}\n",
                        w.get("lineno").and_then(|v| v.as_i64()).unwrap_or(0),
                        s("name"),
                        s("message")
                    );
                    if !line.is_empty() {
                        t.push_str(&format!("  {line}\n"));
                    }
                    t
                }
            };
            Warning {
                nodeid: c.nodeid.clone(),
                text,
            }
        })
        .collect()
}

impl Plan {
    /// When every selected test is cached, answers without starting Python.
    pub fn answer_alone(&mut self, inv: &Invocation, started: f64) -> Option<i32> {
        if !self.fast_path || (self.cached.is_empty() && self.skipped_files.is_empty()) {
            return None;
        }
        let mut counts: Vec<(String, usize)> = ["passed", "skipped", "xfailed", "deselected"]
            .iter()
            .map(|k| (k.to_string(), 0))
            .collect();
        for c in &self.cached {
            let slot = match c.outcome {
                Outcome::Passed => 0,
                Outcome::Skipped => 1,
                _ => 2,
            };
            counts[slot].1 += 1;
        }
        counts[1].1 += self.skipped_files.len();
        counts[3].1 = self.deselected.len();
        // pytest's order: passed, skipped, deselected, xfailed.
        counts.swap(2, 3);
        answer(self, inv, &counts, now() - started)?;
        let outcomes = self
            .cached
            .iter()
            .map(|c| (c.nodeid.as_str(), c.outcome.as_str(), true));
        if let Err(e) = write_outcomes(crate::exit::OK, outcomes) {
            self.notices.push(e);
        }
        Some(crate::exit::OK)
    }
}

/// Prints the answer of a fully cached run and updates pytest's cache;
/// None when a session must give it instead.
fn answer(plan: &Plan, inv: &Invocation, counts: &[(String, usize)], seconds: f64) -> Option<()> {
    if !printable(plan, inv) {
        return None;
    }
    let cache_dir = pytest_cache_dir(inv).ok()?;
    let pending = match &cache_dir {
        Some(dir) => Some(PytestCache::update(dir, plan)?),
        None => None,
    };
    let root = &inv.setup.rootdir;
    let ordered = collection_order(&plan.cached);
    let warnings: Vec<Vec<Warning>> = ordered.iter().map(|c| warnings_of(c, root)).collect();
    let warned: Vec<bool> = warnings.iter().map(|w| !w.is_empty()).collect();
    let all_warnings: Vec<Warning> = warnings.into_iter().flatten().collect();
    let reasons: Vec<Option<String>> = ordered.iter().map(|c| reason(c)).collect();
    let lines: Vec<Line> = ordered
        .iter()
        .zip(reasons.iter())
        .map(|(c, r)| Line {
            shown: cwd_relative(&c.nodeid, root, &inv.cwd),
            word: match c.outcome {
                Outcome::Skipped => "SKIPPED",
                Outcome::Xfailed => "XFAIL",
                _ => "CACHED",
            },
            reason: r.as_deref(),
            green: c.outcome == Outcome::Passed,
        })
        .collect();
    let show_warnings = !has_arg(inv, "--disable-warnings") && !has_arg(inv, "--no-summary");
    let mut counts = counts.to_vec();
    if !all_warnings.is_empty() {
        counts.push(("warnings".into(), all_warnings.len()));
    }
    report::fully_cached(
        &report::FullyCached {
            lines: &lines,
            warned: &warned,
            warnings: if show_warnings { &all_warnings } else { &[] },
            counts: &counts,
            seconds,
        },
        inv.args.verbosity,
        Some(if inv.output.colour { "yes" } else { "no" }),
    );
    if let Some(p) = pending {
        p.write();
    }
    Some(())
}

/// pytest's `cache/lastfailed` and `cache/nodeids` after a session that
/// reported the cached nodes (cacheprovider's `LFPlugin`/`NFPlugin`).
struct PytestCache {
    writes: Vec<(PathBuf, String)>,
}

impl PytestCache {
    /// What the session would write; None when only a session can tell.
    fn update(dir: &Path, plan: &Plan) -> Option<PytestCache> {
        let values = dir.join("v").join("cache");
        let mut writes = Vec::new();
        // nodeids: the union of the stored list and the selected items, sorted.
        let path = values.join("nodeids");
        let old = std::fs::read_to_string(&path).ok();
        let mut ids: Vec<String> = old
            .as_deref()
            .and_then(|t| serde_json::from_str::<Vec<String>>(t).ok())
            .unwrap_or_default();
        ids.extend(plan.cached.iter().map(|c| c.nodeid.clone()));
        ids.sort();
        ids.dedup();
        let text = pretty(&serde_json::Value::Array(
            ids.into_iter().map(serde_json::Value::String).collect(),
        ));
        if old.as_deref() != Some(text.as_str()) {
            writes.push((path, text));
        }
        // lastfailed: what passed (or skipped) leaves it; a collected file
        // that failed to collect before is replaced by its items.
        let path = values.join("lastfailed");
        if let Ok(old) = std::fs::read_to_string(&path) {
            let entries = ordered_object(&old)?;
            let files: std::collections::HashSet<&str> =
                plan.skip_files.iter().map(String::as_str).collect();
            let mut out: Vec<(String, serde_json::Value)> = Vec::new();
            let mut replaced: Vec<&str> = Vec::new();
            for (k, v) in &entries {
                if files.contains(k.as_str()) {
                    replaced.push(k);
                } else if !k.contains("::") {
                    return None; // a directory's collection failed: pytest knows
                } else {
                    out.push((k.clone(), v.clone()));
                }
            }
            // Its items enter after the others (a dict update), and the
            // reported ones leave again: the deselected ones stay.
            for f in replaced {
                for n in plan
                    .deselected
                    .iter()
                    .chain(plan.cached.iter().map(|c| &c.nodeid))
                {
                    if n.split("::").next() == Some(f) && !out.iter().any(|(k, _)| k == n) {
                        out.push((n.clone(), serde_json::Value::Bool(true)));
                    }
                }
            }
            let reported: std::collections::HashSet<&str> =
                plan.cached.iter().map(|c| c.nodeid.as_str()).collect();
            out.retain(|(k, _)| !reported.contains(k.as_str()));
            if out != entries {
                writes.push((path, pretty_object(&out)));
            }
        }
        Some(PytestCache { writes })
    }

    fn write(self) {
        for (path, text) in self.writes {
            if let Err(e) = std::fs::write(&path, text) {
                report::warning(&format!("cannot write {}: {e}", path.display()));
            }
        }
    }
}

/// `json.dumps(value, indent=2, ensure_ascii=False)`.
fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn pretty_object(entries: &[(String, serde_json::Value)]) -> String {
    if entries.is_empty() {
        return "{}".into();
    }
    let body: Vec<String> = entries
        .iter()
        .map(|(k, v)| {
            let value = pretty(v).replace('\n', "\n  ");
            format!("  {}: {value}", serde_json::Value::String(k.clone()))
        })
        .collect();
    format!("{{\n{}\n}}", body.join(",\n"))
}

/// A JSON object's entries in file order (pytest keeps insertion order).
fn ordered_object(text: &str) -> Option<Vec<(String, serde_json::Value)>> {
    use serde::de::{Deserializer, MapAccess, Visitor};
    struct Entries;
    impl<'de> Visitor<'de> for Entries {
        type Value = Vec<(String, serde_json::Value)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
                out.push((k, v));
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_map(Entries).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_opts_follow_pytest() {
        assert_eq!(report_opts("fE", false), "wfE");
        assert_eq!(report_opts("a", false), "wsxXEf");
        assert_eq!(report_opts("A", true), "PpsxXEf");
        assert_eq!(report_opts("Nw", true), "");
    }

    #[test]
    fn lastfailed_keeps_its_order() {
        let e = ordered_object("{\n  \"b::t\": true,\n  \"a::t\": true\n}").unwrap();
        assert_eq!(e[0].0, "b::t");
        assert_eq!(
            pretty_object(&e),
            "{\n  \"b::t\": true,\n  \"a::t\": true\n}"
        );
        assert_eq!(pretty_object(&[]), "{}");
    }

    #[test]
    fn collection_order_groups_files_and_keeps_node_order() {
        let node = |file: &str, name: &str| CachedNode {
            nodeid: format!("{file}::{name}"),
            file: file.into(),
            outcome: Outcome::Passed,
            duration: 0.0,
            location: Default::default(),
            longrepr: Default::default(),
            wasxfail: None,
            output: Default::default(),
        };
        let cached = vec![
            node("tests/b/t.py", "z"),
            node("tests/a.py", "y"),
            node("tests/b/t.py", "a"),
            node("tests/a-b.py", "x"),
            node("tests/a.py", "b"),
        ];
        let ids: Vec<&str> = collection_order(&cached)
            .iter()
            .map(|c| c.nodeid.as_str())
            .collect();
        assert_eq!(
            ids,
            [
                "tests/a-b.py::x",
                "tests/a.py::y",
                "tests/a.py::b",
                "tests/b/t.py::z",
                "tests/b/t.py::a"
            ]
        );
    }

    #[test]
    fn node_ids_shown_from_a_subdirectory() {
        let root = Path::new("/p");
        assert_eq!(
            cwd_relative("tests/a.py::t", root, Path::new("/p/tests")),
            "a.py::t"
        );
        assert_eq!(
            cwd_relative("a.py::t[x]", root, Path::new("/p/sub")),
            "../a.py::t[x]"
        );
    }
}
