//! The likely cause of a disagreement, from simple evidence: what the test
//! function's source (else its file and `conftest.py` chain) mentions.

use serde::Serialize;
use std::path::Path;

/// A likely cause, with a stable id for the JSON report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cause {
    /// `reads-raw-argv`, `forks`, `own-concurrency`, `fresh-process`,
    /// `import-machinery`, `unseen-input`, `flaky`, `unknown`.
    pub id: &'static str,
    /// What the terminal shows.
    pub label: &'static str,
    /// What was found and where (`sys.orig_argv at tests/test_x.py:12`).
    pub evidence: Option<String>,
}

impl Cause {
    pub fn fixed(id: &'static str, label: &'static str) -> Cause {
        Cause {
            id,
            label,
            evidence: None,
        }
    }
}

/// Source patterns and the cause they suggest, most specific first.
const PATTERNS: &[(&str, &str, &[&str])] = &[
    (
        "reads-raw-argv",
        "reads raw argv",
        &[
            "sys.orig_argv",
            "/proc/self/cmdline",
            "sys.argv",
            "cmdline()",
        ],
    ),
    (
        "forks",
        "forks",
        &[
            "os.fork",
            "multiprocessing",
            "ProcessPoolExecutor",
            "os.posix_spawn",
        ],
    ),
    (
        "import-machinery",
        "patches import machinery",
        &[
            "sys.meta_path",
            "sys.path_hooks",
            "importlib.abc",
            "importlib.machinery",
            "builtins.__import__",
        ],
    ),
    (
        "fresh-process",
        "assumes a fresh process",
        &[
            "sys.modules",
            "os.getppid",
            "gc.get_objects",
            "gc.get_referrers",
            "gc.freeze",
            "gc.get_freeze_count",
            "__main__",
            "getrusage",
            "/proc/self",
            "atexit",
            "faulthandler",
        ],
    ),
    (
        "own-concurrency",
        "has its own concurrency",
        &[
            "threading",
            "ThreadPoolExecutor",
            "_thread",
            "signal.signal",
        ],
    ),
];

/// Looks for evidence in `text` (lines numbered from `first_line`).
fn scan(text: &str, first_line: usize, shown: &str) -> Option<Cause> {
    for (id, label, needles) in PATTERNS {
        for (i, line) in text.lines().enumerate() {
            let code = line.split('#').next().unwrap_or("");
            if let Some(n) = needles.iter().find(|n| code.contains(**n)) {
                return Some(Cause {
                    id,
                    label,
                    evidence: Some(format!("{n} at {shown}:{}", first_line + i)),
                });
            }
        }
    }
    None
}

/// The source of function `name` in `text`: its `def` line and the lines
/// indented below it, with the 1-based number of the `def` line.
fn function_source(text: &str, name: &str) -> Option<(String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| {
        let t = l.trim_start();
        t.strip_prefix("def ")
            .or_else(|| t.strip_prefix("async def "))
            .is_some_and(|r| r.starts_with(name) && r[name.len()..].starts_with('('))
    })?;
    let indent = lines[start].len() - lines[start].trim_start().len();
    let mut end = start + 1;
    while end < lines.len() {
        let l = lines[end];
        if !l.trim().is_empty() && l.len() - l.trim_start().len() <= indent {
            break;
        }
        end += 1;
    }
    Some((lines[start..end].join("\n"), start + 1))
}

/// The likely cause for a node (or, with no `::`, a whole file): evidence
/// in the test function first, then its file, then the conftest.py files
/// from its directory up to the rootdir.
pub fn likely(rootdir: &Path, nodeid: &str) -> Cause {
    let (file, rest) = nodeid.split_once("::").unwrap_or((nodeid, ""));
    let path = rootdir.join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let name = rest
        .rsplit("::")
        .next()
        .unwrap_or("")
        .split('[')
        .next()
        .unwrap_or("");
    if !name.is_empty() {
        if let Some((body, line)) = function_source(&text, name) {
            if let Some(c) = scan(&body, line, file) {
                return c;
            }
        }
    }
    if let Some(c) = scan(&text, 1, file) {
        return c;
    }
    let mut dir = path.parent();
    while let Some(d) = dir {
        let conftest = d.join("conftest.py");
        if let Ok(t) = std::fs::read_to_string(&conftest) {
            let shown = conftest
                .strip_prefix(rootdir)
                .unwrap_or(&conftest)
                .display()
                .to_string();
            if let Some(c) = scan(&t, 1, &shown) {
                return c;
            }
        }
        if d == rootdir || !d.starts_with(rootdir) {
            break;
        }
        dir = d.parent();
    }
    Cause::fixed("unknown", "unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_comes_from_the_test_function_first() {
        let src = "import threading\n\ndef test_a():\n    x = 1\n    assert sys.orig_argv\n\ndef test_b():\n    pass\n";
        let (body, line) = function_source(src, "test_a").unwrap();
        assert_eq!(line, 3);
        let c = scan(&body, line, "t.py").unwrap();
        assert_eq!(c.id, "reads-raw-argv");
        assert_eq!(c.evidence.as_deref(), Some("sys.orig_argv at t.py:5"));
        let (body, line) = function_source(src, "test_b").unwrap();
        assert!(scan(&body, line, "t.py").is_none());
        assert_eq!(
            scan("import threading\n", 1, "t.py").unwrap().id,
            "own-concurrency"
        );
    }

    #[test]
    fn comments_are_not_evidence() {
        assert!(scan("x = 1  # sys.argv", 1, "t.py").is_none());
    }
}
