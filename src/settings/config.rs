//! rpytest's configuration file (`rpytest.toml` or `[tool.rpytest]`), read
//! once, merged with the flags and the environment.

use crate::cli::OwnArgs;
use crate::project::rootdir::Setup;
use crate::rules::{self, Rule};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `[tool.rpytest]` in pyproject.toml, or the top level of `rpytest.toml`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub python: Option<PathBuf>,
    pub idle_timeout: Option<u64>,
    pub daemon: Option<bool>,
    pub cache: Option<bool>,
    /// Default worker count (`4` or `"auto"`), as `-n`.
    pub workers: Option<toml::Value>,
    /// URL of a shared cache (Bazel HTTP remote-cache protocol).
    pub remote_cache: Option<String>,
    /// Write results to the remote cache too.
    pub remote_cache_upload: Option<bool>,
    #[serde(default)]
    pub rules: Vec<toml::Value>,
}

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// The resolved settings of one invocation.
#[derive(Debug, Clone)]
pub struct Settings {
    pub python_flag: Option<PathBuf>,
    pub python_config: Option<PathBuf>,
    pub use_daemon: bool,
    pub use_cache: bool,
    /// Run everything but record the results (`RPYTEST_CACHE=refresh`, used by
    /// `--verify-dropin` for its fresh run so the cached run can reuse it).
    pub refresh_cache: bool,
    pub idle_timeout: u64,
    pub config_path: Option<PathBuf>,
    /// The text of `config_path` (for the line numbers of rule errors).
    pub config_text: Option<String>,
    pub file: FileConfig,
    /// `--no-daemon` was given (verify hands it on to the runs it starts).
    pub no_daemon_flag: bool,
    /// `--no-cache` was given.
    pub no_cache_flag: bool,
}

/// A configuration file: where it is and what it says.
type ConfigFile = (Option<PathBuf>, Option<String>, FileConfig);

/// `rpytest.toml` in the rootdir, else `[tool.rpytest]` of the rootdir's
/// pyproject.toml, taken from the text pytest's configuration was read from
/// when it is the same file.
fn read_config(setup: &Setup) -> Result<ConfigFile, ConfigError> {
    let read = |path: &Path| {
        let same = setup.inipath.as_deref() == Some(path);
        match (same, &setup.ini_text) {
            (true, Some(text)) => Ok(text.clone()),
            _ => std::fs::read_to_string(path).map_err(|e| ConfigError::Invalid {
                path: path.display().to_string(),
                message: e.to_string(),
            }),
        }
    };
    let own = setup.rootdir.join("rpytest.toml");
    if own.is_file() {
        let text = read(&own)?;
        let cfg = toml::from_str(&text).map_err(|e| invalid(&own, &text, e))?;
        return Ok((Some(own), Some(text), cfg));
    }
    let py = setup.rootdir.join("pyproject.toml");
    if py.is_file() {
        let text = read(&py)?;
        let doc: toml::Table = text.parse().map_err(|e| invalid(&py, &text, e))?;
        if let Some(t) = doc.get("tool").and_then(|t| t.get("rpytest")) {
            let cfg = t
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    path: py.display().to_string(),
                    message: format!("[tool.rpytest]: {}", e.message()),
                })?;
            return Ok((Some(py), Some(text), cfg));
        }
    }
    Ok((None, None, FileConfig::default()))
}

fn invalid(path: &Path, text: &str, e: toml::de::Error) -> ConfigError {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    ConfigError::Invalid {
        path: match line {
            Some(l) => format!("{}:{l}", path.display()),
            None => path.display().to_string(),
        },
        message: e.message().to_owned(),
    }
}

fn env_flag(name: &str) -> Option<bool> {
    std::env::var(name)
        .ok()
        .map(|v| !matches!(v.as_str(), "" | "0" | "false" | "no"))
}

impl Settings {
    /// Merges flags (strongest), the environment, and the project's configuration.
    pub fn resolve(own: &OwnArgs, setup: &Setup) -> Result<Settings, ConfigError> {
        let rootdir = &setup.rootdir;
        let (config_path, config_text, file) = read_config(setup)?;
        let fork_ok = cfg!(unix);
        let use_daemon = fork_ok
            && !own.no_daemon
            && !env_flag("RPYTEST_NO_DAEMON").unwrap_or(false)
            && file.daemon.unwrap_or(true);
        let use_cache = !own.no_cache
            && !env_flag("RPYTEST_NO_CACHE").unwrap_or(false)
            && file.cache.unwrap_or(true);
        let idle_timeout = std::env::var("RPYTEST_IDLE_TIMEOUT")
            .ok()
            .and_then(|v| v.parse().ok())
            .or(file.idle_timeout)
            .unwrap_or(1800);
        let python_config = file.python.as_ref().map(|p| {
            if p.is_absolute() || p.components().count() == 1 {
                p.clone()
            } else {
                rootdir.join(p)
            }
        });
        Ok(Settings {
            python_flag: own.python.clone(),
            python_config,
            use_daemon,
            use_cache,
            refresh_cache: std::env::var("RPYTEST_CACHE")
                .map(|v| v == "refresh")
                .unwrap_or(false),
            idle_timeout,
            config_path,
            config_text,
            file,
            no_daemon_flag: own.no_daemon,
            no_cache_flag: own.no_cache,
        })
    }

    /// The default rule and the user's rules (exit 4, with file and line, when invalid).
    pub fn rules(&self) -> Result<Vec<Rule>, String> {
        let origin = self
            .config_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "rpytest configuration".into());
        rules::load(&self.file.rules, &origin, self.config_text.as_deref())
            .map_err(|e| e.to_string())
    }
}
