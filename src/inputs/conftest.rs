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
