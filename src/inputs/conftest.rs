//! The `conftest.py` and `__init__.py` files pytest executes for a test file.

use std::path::Path;

/// Every existing `conftest.py` and `__init__.py` from the directory of
/// `test_rel` (root-relative) up to and including the root, root first; in
/// each directory `__init__.py` comes before `conftest.py`.
pub fn conftest_chain(root: &Path, test_rel: &str) -> Vec<String> {
    let mut dirs = Vec::new();
    let mut dir = test_rel.rfind('/').map_or("", |i| &test_rel[..i]);
    loop {
        dirs.push(dir);
        if dir.is_empty() {
            break;
        }
        dir = dir.rfind('/').map_or("", |i| &dir[..i]);
    }
    let mut out = Vec::new();
    for dir in dirs.into_iter().rev() {
        for name in ["__init__.py", "conftest.py"] {
            let rel = if dir.is_empty() {
                name.to_owned()
            } else {
                format!("{dir}/{name}")
            };
            if root.join(&rel).is_file() {
                out.push(rel);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn chain_from_root_to_test_dir() {
        let d = tempfile::tempdir().unwrap();
        for f in [
            "conftest.py",
            "tests/__init__.py",
            "tests/conftest.py",
            "tests/unit/test_a.py",
            "tests/unit/deeper/conftest.py",
            "other/conftest.py",
        ] {
            let p = d.path().join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, "").unwrap();
        }
        fs::create_dir_all(d.path().join("tests/unit/__init__.py/")).unwrap(); // a dir, not a file
        assert_eq!(
            conftest_chain(d.path(), "tests/unit/test_a.py"),
            ["conftest.py", "tests/__init__.py", "tests/conftest.py"]
        );
        assert_eq!(conftest_chain(d.path(), "test_top.py"), ["conftest.py"]);
    }
}

/// Hooks pytest calls through a path-aware hook proxy: a conftest.py that
/// implements only these (and fixtures) affects only the tests below it.
const PATH_SCOPED_HOOKS: &[&str] = &[
    "pytest_runtest_setup",
    "pytest_runtest_call",
    "pytest_runtest_teardown",
    "pytest_runtest_makereport",
    "pytest_runtest_logstart",
    "pytest_runtest_logfinish",
    "pytest_runtest_logreport",
    "pytest_generate_tests",
    "pytest_pycollect_makeitem",
    "pytest_pycollect_makemodule",
    "pytest_collect_file",
    "pytest_collect_directory",
    "pytest_ignore_collect",
    "pytest_itemcollected",
    "pytest_collectstart",
    "pytest_make_collect_report",
    "pytest_collectreport",
    "pytest_assertrepr_compare",
];

/// Whether a conftest.py only affects the tests below it: at module level it
/// has nothing but imports, docstrings, plain assignments (not
/// `pytest_plugins`), classes, functions, fixtures and path-scoped hooks.
/// Anything else — a session-wide hook (`pytest_collection_modifyitems`,
/// `pytest_configure`...), `pytest_plugins`, an unknown decorator, a
/// statement with side effects — can change any test's outcome, so such a
/// conftest is an input of every test in the session. A line this reader does
/// not understand counts as a side effect.
pub fn conftest_is_local(src: &str) -> bool {
    let mut depth: i32 = 0;
    let mut in_triple: Option<&str> = None;
    for raw in src.lines() {
        let line = raw.trim_end();
        if let Some(q) = in_triple {
            if line.matches(q).count() % 2 == 1 {
                in_triple = None;
            }
            continue;
        }
        let top = depth == 0 && !line.starts_with([' ', '\t']);
        let stripped = line.trim_start();
        depth += bracket_delta(stripped);
        if stripped.is_empty() || stripped.starts_with('#') {
            continue;
        }
        for q in ["\"\"\"", "'''"] {
            if stripped.matches(q).count() % 2 == 1 {
                in_triple = Some(q);
            }
        }
        if !top {
            continue;
        }
        if !top_level_is_local(stripped) {
            return false;
        }
    }
    true
}

fn bracket_delta(line: &str) -> i32 {
    let mut d = 0;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '#') => break,
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '[' | '{') => d += 1,
            (None, ')' | ']' | '}') => d -= 1,
            _ => {}
        }
    }
    d
}

fn top_level_is_local(stmt: &str) -> bool {
    let word: String = stmt
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '@' || *c == '.')
        .collect();
    match word.as_str() {
        "import" | "from" | "class" => true,
        "def" | "async" => {
            let name = stmt
                .trim_start_matches("async")
                .trim_start()
                .trim_start_matches("def")
                .trim_start();
            let name: String = name
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            !name.starts_with("pytest_") || PATH_SCOPED_HOOKS.contains(&name.as_str())
        }
        "@pytest.fixture" | "@fixture" | "@pytest.hookimpl" | "@hookimpl" => true,
        w if w.starts_with('@') => false,
        _ if stmt.starts_with(['"', '\'']) || stmt.starts_with(')') => true,
        name if !name.is_empty() && !name.contains('.') => {
            // `NAME = value` (plain assignment) or an annotated one.
            let rest = stmt[name.len()..].trim_start();
            let assigns =
                (rest.starts_with('=') && !rest.starts_with("==")) || rest.starts_with(':');
            assigns && name != "pytest_plugins"
        }
        _ => false,
    }
}

#[cfg(test)]
mod locality_tests {
    use super::conftest_is_local;

    #[test]
    fn fixtures_and_scoped_hooks_are_local() {
        let src = r#""""Fixtures for the tests below."""
import pytest
from pathlib import Path

HERE = Path(__file__).parent
collect_ignore = ["setup.py"]


@pytest.fixture(
    scope="session",
)
def conf_value():
    """Doc
    with lines."""
    return 7


def pytest_runtest_setup(item):
    pass


class Helper:
    x = 1
"#;
        assert!(conftest_is_local(src));
    }

    #[test]
    fn session_wide_hooks_plugins_and_side_effects_are_not_local() {
        for src in [
            "def pytest_collection_modifyitems(items):\n    pass\n",
            "import pytest\n\n@pytest.hookimpl(tryfirst=True)\ndef pytest_configure(config):\n    pass\n",
            "pytest_plugins = ['x']\n",
            "import mylib\nmylib.FLAG = True\n",
            "import sys\nsys.path.insert(0, 'x')\n",
            "if True:\n    import os\n",
            "@register\ndef f():\n    pass\n",
        ] {
            assert!(!conftest_is_local(src), "{src}");
        }
    }
}
