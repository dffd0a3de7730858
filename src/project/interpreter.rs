//! Finding the project's Python interpreter and describing it without
//! starting it on every run.
//!
//! Order (DESIGN.md): `--python`, `[tool.rpytest] python` / `rpytest.toml`,
//! `$VIRTUAL_ENV`, the `python` beside the `rpytest` binary, `python3` on
//! PATH. The description (version, ABI, site-packages, pytest's version) is
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
}

/// Picks the interpreter in DESIGN.md's order.
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
        });
    }
    if let Some(p) = config {
        return Ok(Interpreter {
            path: resolve_cmd(p, cwd),
            source: "rpytest configuration",
        });
    }
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(venv).join("bin/python");
        if p.exists() {
            return Ok(Interpreter {
                path: p,
                source: "$VIRTUAL_ENV",
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
