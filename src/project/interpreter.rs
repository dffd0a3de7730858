//! Finding the project's Python interpreter and describing it without
//! starting it on every run.
//!
//! Order (DESIGN.md): `--python`, `[tool.rpytest] python` / `rpytest.toml`,
//! `$VIRTUAL_ENV`, the project's `.venv` (at the rootdir, then the current
//! directory), the `python` beside the `rpytest` binary, `python3` on PATH.
//! Installed as a tool (`uv tool install`, pipx), rpytest's own interpreter
//! lacks the project's dependencies: the project's `.venv` comes before it. The description (version, ABI, site-packages, pytest's version) is
//! learned once by running the interpreter and remembered per interpreter
//! file (path, size, mtime), so a fully cached run never starts Python.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What rpytest needs to know about an interpreter.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InterpreterInfo {
    pub implementation: String,
    pub version: String,
    pub soabi: String,
    pub platform: String,
    pub site_dirs: Vec<String>,
    pub pytest: Option<String>,
    pub rpytest: Option<String>,
    pub executable: String,
    pub prefix: String,
    /// Where the `rpytest` Python package lives (its files' stamps are part
    /// of the daemon's fingerprint, so an edited or reinstalled package restarts it).
    #[serde(default)]
    pub rpytest_dir: Option<String>,
}

/// Why no usable interpreter was found.
#[derive(Debug, thiserror::Error)]
pub enum InterpreterError {
    #[error(
        "no Python interpreter found: tried {tried}. Pass --python PATH or activate a virtualenv"
    )]
    NotFound { tried: String },
    #[error("{python} could not be started: {message}")]
    Broken { python: String, message: String },
}

/// Where the interpreter choice came from, for messages.
#[derive(Debug, Clone)]
pub struct Interpreter {
    pub path: PathBuf,
    pub source: &'static str,
    /// Why this choice may surprise (said on stderr): the project's `.venv`
    /// over the interpreter beside rpytest, or a tool's own interpreter.
    pub notice: Option<String>,
}

/// The `python` beside the running binary, when there is one.
fn beside_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    ["python", "python3"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.exists())
}

/// Whether `python` belongs to an environment made by `uv tool install` or
/// pipx for rpytest itself (they leave a receipt in the environment).
fn is_tool_environment(python: &Path) -> bool {
    let Some(prefix) = python.parent().and_then(Path::parent) else {
        return false;
    };
    prefix.join("uv-receipt.toml").is_file() || prefix.join("pipx_metadata.json").is_file()
}

/// Whether two interpreter paths are the same environment's: venvs link the
/// same base interpreter, so their directories are compared, not their targets.
fn same_file(a: &Path, b: &Path) -> bool {
    let dir = |p: &Path| {
        p.parent()
            .and_then(|d| d.canonicalize().ok())
            .map(|d| d.join(p.file_name().unwrap_or_default()))
    };
    match (dir(a), dir(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}

/// Picks the interpreter in DESIGN.md's order (`rootdir`: the project's).
pub fn find_for(
    flag: Option<&Path>,
    config: Option<&Path>,
    cwd: &Path,
    rootdir: &Path,
) -> Result<Interpreter, InterpreterError> {
    let early = find_configured(flag, config, cwd);
    if let Some(i) = early {
        return Ok(i);
    }
    let beside = beside_binary();
    for dir in [rootdir, cwd] {
        for name in [".venv/bin/python", ".venv/bin/python3"] {
            let p = dir.join(name);
            if !p.exists() {
                continue;
            }
            if beside.as_deref().is_some_and(|b| same_file(b, &p)) {
                break; // rpytest is installed in the project's .venv: the obvious one
            }
            let notice = beside.as_ref().map(|b| {
                format!(
                    "running the tests with the project's {} (not {}, beside rpytest; --python chooses another)",
                    p.display(),
                    b.display()
                )
            });
            return Ok(Interpreter {
                path: p,
                source: "the project's .venv",
                notice,
            });
        }
    }
    let mut found = find(None, None, cwd)?;
    if found.source == "beside the rpytest binary" && is_tool_environment(&found.path) {
        found.notice = Some(format!(
            "no project virtualenv found (no $VIRTUAL_ENV, no .venv at {}): running the tests with rpytest's own interpreter {}; --python chooses another",
            rootdir.display(),
            found.path.display()
        ));
    }
    Ok(found)
}

fn find_configured(flag: Option<&Path>, config: Option<&Path>, cwd: &Path) -> Option<Interpreter> {
    if let Some(p) = flag {
        return Some(Interpreter {
            path: resolve_cmd(p, cwd),
            source: "--python",
            notice: None,
        });
    }
    if let Some(p) = config {
        return Some(Interpreter {
            path: resolve_cmd(p, cwd),
            source: "rpytest configuration",
            notice: None,
        });
    }
    let venv = std::env::var_os("VIRTUAL_ENV").filter(|v| !v.is_empty())?;
    let p = PathBuf::from(venv).join("bin/python");
    p.exists().then_some(Interpreter {
        path: p,
        source: "$VIRTUAL_ENV",
        notice: None,
    })
}

/// Picks the interpreter in DESIGN.md's order, without the project's `.venv`.
pub fn find(
    flag: Option<&Path>,
    config: Option<&Path>,
    cwd: &Path,
) -> Result<Interpreter, InterpreterError> {
    let mut tried = Vec::new();
    if let Some(p) = flag {
        return Ok(Interpreter {
            path: resolve_cmd(p, cwd),
            source: "--python",
            notice: None,
        });
    }
    if let Some(p) = config {
        return Ok(Interpreter {
            path: resolve_cmd(p, cwd),
            source: "rpytest configuration",
            notice: None,
        });
    }
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(venv).join("bin/python");
        if p.exists() {
            return Ok(Interpreter {
                path: p,
                source: "$VIRTUAL_ENV",
                notice: None,
            });
        }
        tried.push(p.display().to_string());
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            for name in ["python", "python3"] {
                let p = dir.join(name);
                if p.exists() {
                    return Ok(Interpreter {
                        path: p,
                        source: "beside the rpytest binary",
                        notice: None,
                    });
                }
            }
            tried.push(dir.join("python").display().to_string());
        }
    }
    if let Some(p) = which("python3") {
        return Ok(Interpreter {
            path: p,
            source: "python3 on PATH",
            notice: None,
        });
    }
    tried.push("python3 on PATH".into());
    Err(InterpreterError::NotFound {
        tried: tried.join(", "),
    })
}

fn resolve_cmd(p: &Path, cwd: &Path) -> PathBuf {
    if p.components().count() == 1 {
        if let Some(found) = which(&p.to_string_lossy()) {
            return found;
        }
    }
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    }
}

/// Looks a command up on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A cheap identity of the interpreter file: changes when it is replaced.
pub fn stamp(python: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(python) {
        Ok(m) => format!(
            "{}:{}:{}:{}",
            python.display(),
            m.size(),
            m.mtime(),
            m.ino()
        ),
        Err(_) => format!("{}:missing", python.display()),
    }
}

const PROBE: &str = r#"
import json, sys, sysconfig, site, platform
def version(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return None
dirs = []
try:
    dirs += site.getsitepackages()
except Exception:
    pass
for k in ("purelib", "platlib"):
    p = sysconfig.get_paths().get(k)
    if p and p not in dirs:
        dirs.append(p)
try:
    import os, rpytest
    rp = getattr(rpytest, "__version__", None)
    rp_dir = os.path.dirname(os.path.abspath(rpytest.__file__))
except Exception:
    rp = rp_dir = None
print(json.dumps({
    "implementation": sys.implementation.name,
    "version": platform.python_version(),
    "soabi": sysconfig.get_config_var("SOABI") or "",
    "platform": sysconfig.get_platform(),
    "site_dirs": dirs,
    "pytest": version("pytest"),
    "rpytest": rp,
    "executable": sys.executable,
    "prefix": sys.prefix,
    "rpytest_dir": rp_dir,
}))
"#;

/// Runs the interpreter once to describe it.
pub fn probe(python: &Path) -> Result<InterpreterInfo, InterpreterError> {
    let out = Command::new(python)
        .args(["-c", PROBE])
        .env_remove("PYTHONSTARTUP")
        .output()
        .map_err(|e| InterpreterError::Broken {
            python: python.display().to_string(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(InterpreterError::Broken {
            python: python.display().to_string(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    serde_json::from_slice(&out.stdout).map_err(|e| InterpreterError::Broken {
        python: python.display().to_string(),
        message: format!("unexpected answer: {e}"),
    })
}
