//! Test rules that change how tests run (`args`, `workers`, `timeout`):
//! which session each test file belongs to.
//!
//! Files whose rules give the same extra arguments and worker count share a
//! session; when a run spans several such groups, each runs as its own pytest
//! session, one after the other (the default group first), and the exit code
//! is the most severe of theirs.

use crate::rules::Rule;
use std::collections::BTreeMap;

/// Test files that run in one session, with their rules' settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    /// Extra pytest arguments, placed before the user's (which win).
    pub args: Vec<String>,
    /// `-n` for this group when the command line gives none.
    pub workers: Option<toml::Value>,
    /// Its tests run in the sandbox (`hermetic = true`, `--hermetic`).
    pub hermetic: bool,
    pub files: Vec<String>,
}

/// Groups `files` by their rules' `args` and `workers` (the last governing
/// rule that sets one wins). The default group (no settings) comes first,
/// and holds files rpytest did not discover (hermetic under `--hermetic`).
pub fn groups(rules: &[Rule], files: &[String], all_hermetic: bool) -> Vec<Group> {
    let mut out: Vec<Group> = vec![Group {
        hermetic: all_hermetic,
        ..Group::default()
    }];
    for f in files {
        let hermetic = super::hermetic::is_hermetic(rules, all_hermetic, f);
        let mut args: Vec<String> = Vec::new();
        let mut workers: Option<toml::Value> = None;
        for r in rules.iter().skip(1).filter(|r| r.governs(f)) {
            if !r.args.is_empty() {
                args = r.args.clone();
            }
            if r.workers.is_some() {
                workers = r.workers.clone();
            }
        }
        match out
            .iter_mut()
            .find(|g| g.args == args && g.workers == workers && g.hermetic == hermetic)
        {
            Some(g) => g.files.push(f.clone()),
            None => out.push(Group {
                args,
                workers,
                hermetic,
                files: vec![f.clone()],
            }),
        }
    }
    if out.len() > 1 && out[0].files.is_empty() {
        out.remove(0);
    }
    out
}

/// Per-file test timeouts (seconds; the smallest of the governing rules').
pub fn timeouts(rules: &[Rule], files: &[String]) -> BTreeMap<String, f64> {
    files
        .iter()
        .filter_map(|f| {
            rules
                .iter()
                .skip(1)
                .filter(|r| r.governs(f))
                .filter_map(|r| r.timeout)
                .reduce(f64::min)
                .map(|t| (f.clone(), t))
        })
        .collect()
}

/// The exit code of a run made of several sessions: the most severe one
/// (internal error, interrupted, usage error, failed, passed, nothing collected).
pub fn combine(codes: &[i32]) -> i32 {
    const ORDER: [i32; 6] = [3, 2, 4, 1, 0, 5];
    codes
        .iter()
        .copied()
        .min_by_key(|c| ORDER.iter().position(|o| o == c).unwrap_or(0))
        .unwrap_or(5)
}

/// Several sessions' JUnit XML files as one `<testsuites>` document at
/// `target` (each session wrote its own part; pytest writes one
/// `<testsuite>` per session). Parts that are missing are skipped.
pub fn merge_junit(parts: &[std::path::PathBuf], target: &std::path::Path) -> std::io::Result<()> {
    let mut suites = String::new();
    for p in parts {
        let Ok(text) = std::fs::read_to_string(p) else {
            continue;
        };
        let _ = std::fs::remove_file(p);
        let mut rest = text.as_str();
        while let Some(start) = rest
            .find("<testsuite ")
            .or_else(|| rest.find("<testsuite>"))
        {
            let Some(end) = rest[start..].find("</testsuite>") else {
                // A suite without tests is self-closing.
                if let Some(close) = rest[start..].find("/>") {
                    suites.push_str(&rest[start..start + close + 2]);
                }
                break;
            };
            let end = start + end + "</testsuite>".len();
            suites.push_str(&rest[start..end]);
            rest = &rest[end..];
        }
    }
    std::fs::write(
        target,
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><testsuites name=\"pytest tests\">{suites}</testsuites>"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(paths: &[&str], args: &[&str], timeout: Option<f64>) -> Rule {
        Rule {
            paths: paths.iter().map(|s| s.to_string()).collect(),
            args: args.iter().map(|s| s.to_string()).collect(),
            timeout,
            cache: true,
            ..Rule::default()
        }
    }

    #[test]
    fn files_with_the_same_settings_share_a_session() {
        let rules = vec![
            Rule::default(),
            rule(&["slow/**"], &["-p", "no:randomly"], Some(5.0)),
            rule(&["slow/b.py"], &[], Some(2.0)),
        ];
        let files: Vec<String> = ["a.py", "slow/a.py", "slow/b.py"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let g = groups(&rules, &files, false);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].files, vec!["a.py"]);
        assert_eq!(g[1].files, vec!["slow/a.py", "slow/b.py"]);
        let t = timeouts(&rules, &files);
        assert_eq!(t.get("slow/b.py"), Some(&2.0));
        assert_eq!(t.get("a.py"), None);
        assert_eq!(groups(&rules[..1], &files, false).len(), 1);
    }

    #[test]
    fn junit_parts_merge_into_one_document() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.xml");
        let b = dir.path().join("b.xml");
        std::fs::write(&a, r#"<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" tests="1"><testcase name="x"/></testsuite></testsuites>"#).unwrap();
        std::fs::write(&b, r#"<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" tests="2"><testcase name="y"/><testcase name="z"/></testsuite></testsuites>"#).unwrap();
        let out = dir.path().join("out.xml");
        merge_junit(&[a.clone(), b, dir.path().join("missing.xml")], &out).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(text.matches("<testsuite ").count(), 2);
        assert_eq!(text.matches("<testcase").count(), 3);
        assert!(!a.exists());
    }

    #[test]
    fn the_most_severe_exit_code_wins() {
        assert_eq!(combine(&[0, 1]), 1);
        assert_eq!(combine(&[5, 0]), 0);
        assert_eq!(combine(&[1, 2]), 2);
        assert_eq!(combine(&[5, 5]), 5);
    }
}
