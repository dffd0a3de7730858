//! pytest's rootdir and configuration-file discovery, reproduced exactly
//! (`_pytest/config/findpaths.py: determine_setup`), so that the CLI's
//! rootdir, and so the daemon, the cache and every node ID, agree with the
//! session's. The session plugin double-checks and disables caching if they
//! ever disagree.

use super::ini::{parse_config, read_config_text, IniConfig, IniError, CONFIG_NAMES};
use std::path::{Component, Path, PathBuf};

/// The rootdir and the configuration file pytest will use.
#[derive(Debug, Clone)]
pub struct Setup {
    pub rootdir: PathBuf,
    pub inipath: Option<PathBuf>,
    pub ini: IniConfig,
    /// The text of `inipath`, kept so the file is read once (rpytest's own
    /// `[tool.rpytest]` table is read from the same text).
    pub ini_text: Option<String>,
}

/// Why the setup could not be determined (pytest reports these as usage errors).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Ini(#[from] IniError),
    #[error("Directory '{0}' not found. Check your '--rootdir' option.")]
    RootdirMissing(String),
    #[error("Config file '{0}' not found. Check your '-c/--config-file' option.")]
    ConfigMissing(String),
}

/// Makes `p` absolute against `cwd` and removes `.`/`..` lexically, like
/// `os.path.abspath` (pytest's `absolutepath`).
pub fn absolutepath(p: &Path, cwd: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn dirs_from_args(args: &[String], cwd: &Path) -> Vec<PathBuf> {
    args.iter()
        .filter(|a| !a.starts_with('-'))
        .map(|a| absolutepath(Path::new(a.split("::").next().unwrap_or(a)), cwd))
        .filter(|p| p.exists())
        .map(|p| {
            if p.is_dir() {
                p
            } else {
                p.parent().map(Path::to_path_buf).unwrap_or(p)
            }
        })
        .collect()
}

fn common_ancestor(cwd: &Path, paths: &[PathBuf]) -> PathBuf {
    let mut common: Option<PathBuf> = None;
    for p in paths.iter().filter(|p| p.exists()) {
        common = Some(match common {
            None => p.clone(),
            Some(c) => {
                if p.starts_with(&c) {
                    c
                } else if c.starts_with(p) {
                    p.clone()
                } else {
                    let mut shared = PathBuf::new();
                    for (a, b) in c.components().zip(p.components()) {
                        if a != b {
                            break;
                        }
                        shared.push(a);
                    }
                    shared
                }
            }
        });
    }
    match common {
        None => cwd.to_path_buf(),
        Some(c) if c.is_file() => c.parent().map(Path::to_path_buf).unwrap_or(c),
        Some(c) => c,
    }
}

/// The rootdir, the configuration file, its pytest section and its text.
type Located = (Option<PathBuf>, Option<PathBuf>, IniConfig, Option<String>);

fn locate_config(dirs: &[PathBuf]) -> Result<Located, IniError> {
    let mut fallback_pyproject: Option<(PathBuf, String)> = None;
    for dir in dirs {
        for base in dir.ancestors() {
            for name in CONFIG_NAMES {
                let p = base.join(name);
                if p.is_file() {
                    let text = read_config_text(&p)?;
                    if let Some(cfg) = parse_config(&p, &text)? {
                        return Ok((Some(base.to_path_buf()), Some(p), cfg, Some(text)));
                    }
                    if *name == "pyproject.toml" && fallback_pyproject.is_none() {
                        fallback_pyproject = Some((p, text));
                    }
                }
            }
        }
    }
    if let Some((p, text)) = fallback_pyproject {
        // pytest ≥ 8.1: a pyproject.toml without a pytest table still fixes the rootdir.
        let root = p.parent().map(Path::to_path_buf);
        return Ok((root, Some(p), IniConfig::new(), Some(text)));
    }
    Ok((None, None, IniConfig::new(), None))
}

/// pytest's `determine_setup`.
pub fn determine_setup(
    inifile: Option<&str>,
    args: &[String],
    rootdir_arg: Option<&str>,
    cwd: &Path,
) -> Result<Setup, SetupError> {
    let dirs = dirs_from_args(args, cwd);
    let (mut rootdir, inipath, ini, ini_text);
    if let Some(f) = inifile {
        let p = absolutepath(Path::new(f), cwd);
        // pytest 9's answer; pytest 8 ends in a traceback with exit 1.
        if !p.exists() {
            return Err(SetupError::ConfigMissing(p.display().to_string()));
        }
        let text = read_config_text(&p)?;
        ini = parse_config(&p, &text)?.unwrap_or_default();
        ini_text = Some(text);
        rootdir = if rootdir_arg.is_none() {
            p.parent().map(Path::to_path_buf)
        } else {
            None
        };
        inipath = Some(p);
    } else {
        let ancestor = common_ancestor(cwd, &dirs);
        let (r, p, c, t) = locate_config(std::slice::from_ref(&ancestor))?;
        rootdir = r;
        let (mut ip, mut ic, mut it) = (p, c, t);
        if rootdir.is_none() && rootdir_arg.is_none() {
            if let Some(d) = ancestor.ancestors().find(|d| d.join("setup.py").is_file()) {
                rootdir = Some(d.to_path_buf());
            } else {
                if dirs != [ancestor.clone()] {
                    let (r2, p2, c2, t2) = locate_config(&dirs)?;
                    rootdir = r2;
                    ip = p2;
                    ic = c2;
                    it = t2;
                }
                if rootdir.is_none() {
                    let mut r = common_ancestor(cwd, &[cwd.to_path_buf(), ancestor.clone()]);
                    if r.parent().is_none() {
                        r = ancestor.clone();
                    }
                    rootdir = Some(r);
                }
            }
        }
        inipath = ip;
        ini = ic;
        ini_text = it;
    }
    if let Some(r) = rootdir_arg {
        let expanded = expand_vars(r);
        let p = absolutepath(Path::new(&expanded), cwd);
        if !p.is_dir() {
            return Err(SetupError::RootdirMissing(p.display().to_string()));
        }
        rootdir = Some(p);
    }
    Ok(Setup {
        rootdir: rootdir.unwrap_or_else(|| cwd.to_path_buf()),
        inipath,
        ini,
        ini_text,
    })
}

/// `os.path.expandvars` for `$NAME` and `${NAME}` (unknown names stay as typed).
fn expand_vars(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, consumed) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => (&inner[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let n = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..n], n)
        };
        match std::env::var(name) {
            Ok(v) if !name.is_empty() => out.push_str(&v),
            _ => out.push_str(&rest[pos..pos + 1 + consumed]),
        }
        rest = &after[consumed..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_ini_upwards_and_setup_py_fallback() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("proj/tests/sub")).unwrap();
        std::fs::write(root.join("proj/tox.ini"), "[pytest]\naddopts=-q\n").unwrap();
        let s = determine_setup(None, &[], None, &root.join("proj/tests/sub")).unwrap();
        assert_eq!(s.rootdir, root.join("proj"));
        assert_eq!(s.inipath, Some(root.join("proj/tox.ini")));

        std::fs::remove_file(root.join("proj/tox.ini")).unwrap();
        std::fs::write(root.join("proj/setup.py"), "").unwrap();
        let s = determine_setup(None, &["tests".into()], None, &root.join("proj")).unwrap();
        assert_eq!(s.rootdir, root.join("proj"));
        assert!(s.inipath.is_none());
    }

    #[test]
    fn inifile_and_rootdir_options() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("cfg")).unwrap();
        std::fs::write(root.join("cfg/my.ini"), "[pytest]\n").unwrap();
        let s = determine_setup(Some("cfg/my.ini"), &[], None, &root).unwrap();
        assert_eq!(s.rootdir, root.join("cfg"));
        let s = determine_setup(Some("cfg/my.ini"), &[], Some("."), &root).unwrap();
        assert_eq!(s.rootdir, root);
        assert!(determine_setup(None, &[], Some("nope"), &root).is_err());
    }

    #[test]
    fn a_missing_config_file_is_named_as_pytest_names_it() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().canonicalize().unwrap();
        let e = determine_setup(Some("missing.ini"), &[], None, &root).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "Config file '{}' not found. Check your '-c/--config-file' option.",
                root.join("missing.ini").display()
            )
        );
    }

    #[test]
    fn no_config_uses_common_ancestor_of_args() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/test_x.py"), "").unwrap();
        let s = determine_setup(None, &["a/b/test_x.py::t".into()], None, &root).unwrap();
        assert_eq!(s.rootdir, root);
    }
}
