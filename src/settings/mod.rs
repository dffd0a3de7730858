//! What this invocation will do, resolved once from the command line, the
//! configuration files and the environment: the `Invocation` every later
//! stage reads. Nothing downstream looks at raw flags or rpytest's
//! configuration again.

mod colour;
mod config;
pub mod workers;

pub use colour::colour;
pub use config::{ConfigError, FileConfig, Settings};

pub use crate::cli::{CacheAction, DaemonAction};

use crate::cli::{CommandLine, OwnArgs};
use crate::exit::Failure;
use crate::project::args::{analyze, expand_argfiles, override_ini, PytestArgs};
use crate::project::ini::shell_split;
use crate::project::rootdir::{determine_setup, Setup};
use crate::remote::RemoteConfig;
use crate::rules::Rule;
use std::path::PathBuf;

/// What the invocation is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Run the tests (the cache serving what it can).
    Run,
    /// `--help`: pytest's help, then rpytest's options.
    Help,
    /// `--version`: pytest's version, then rpytest's.
    Version,
    /// `--result-cache ACTION`.
    Cache(CacheAction),
    /// `--daemon ACTION`.
    Daemon(DaemonAction),
    /// `--show-rules`.
    ShowRules,
    /// `--why NODEID`.
    Why(String),
    /// `--verify-dropin`, with the path of the JSON report (`--verify-report`,
    /// made absolute).
    Verify { report: Option<PathBuf> },
}

/// How rpytest's own output looks and where pytest's report files go.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// rpytest's own lines are coloured as pytest colours its output
    /// (`--color`, from the command line, addopts or PYTEST_ADDOPTS, else
    /// PY_COLORS / NO_COLOR / FORCE_COLOR / the terminal).
    pub colour: bool,
    /// `--junitxml`, made absolute.
    pub junitxml: Option<PathBuf>,
}

/// Everything resolved before any work starts.
pub struct Invocation {
    pub mode: Mode,
    /// What pytest receives, unchanged.
    pub pytest_argv: Vec<String>,
    /// What rpytest understood of ini addopts + PYTEST_ADDOPTS + the command line.
    pub args: PytestArgs,
    /// ini addopts + PYTEST_ADDOPTS + the command line, `@file`s expanded:
    /// what `args` was read from.
    pub raw_args: Vec<String>,
    pub cwd: PathBuf,
    pub setup: Setup,
    pub settings: Settings,
    /// `--hermetic`: every test runs as a `hermetic = true` rule runs it.
    pub hermetic: bool,
    /// `--shard K/N`.
    pub shard: Option<(usize, usize)>,
    /// The default rule and the user's (empty for management commands).
    pub rules: Vec<Rule>,
    /// `-n` and friends, else `[tool.rpytest] workers` (runs only).
    pub workers: Option<workers::Options>,
    /// The remote cache this run reads (and perhaps writes) (runs only).
    pub remote: Option<RemoteConfig>,
    pub output: Output,
}

/// Resolves a parsed command line into the invocation.
pub fn resolve(cmd: CommandLine) -> Result<Invocation, Failure> {
    let CommandLine { own, pytest_argv } = cmd;
    let cwd = std::env::current_dir()
        .map_err(|e| Failure::usage(format!("cannot read the current directory: {e}")))?;
    let expanded = expand_argfiles(&pytest_argv, &cwd).map_err(Failure::usage)?;
    let env_addopts = std::env::var("PYTEST_ADDOPTS")
        .map(|v| shell_split(&v))
        .unwrap_or_default();
    let pre: Vec<String> = env_addopts.iter().chain(expanded.iter()).cloned().collect();
    let pre_args = analyze(&pre);
    let setup = determine_setup(
        pre_args.inifile.as_deref(),
        &pre_args.rootdir_candidates,
        pre_args.rootdir.as_deref(),
        &cwd,
    )
    .map_err(|e| Failure::usage(e.to_string()))?;
    // pytest reads the ini's `addopts` through its overrides:
    // `-o addopts=VALUE` replaces them.
    let mut raw_args: Vec<String> = match override_ini(&pre_args.all_args, "addopts") {
        Some(value) => shell_split(&value),
        None => setup
            .ini
            .get("addopts")
            .map(|v| v.as_args())
            .unwrap_or_default(),
    };
    raw_args.extend(pre);
    let mut args = analyze(&raw_args);
    crate::project::args::understand_coverage(&mut args);
    let settings = Settings::resolve(&own, &setup).map_err(|e| Failure::usage(e.to_string()))?;
    let mode = mode(&own, &pytest_argv, &args, &raw_args, &cwd);
    let output = Output {
        colour: colour(args.color.as_deref()),
        junitxml: args.junitxml.as_ref().map(|p| cwd.join(p)),
    };
    let mut inv = Invocation {
        mode,
        pytest_argv,
        args,
        raw_args,
        cwd,
        setup,
        settings,
        hermetic: own.hermetic,
        shard: own.shard,
        rules: Vec::new(),
        workers: None,
        remote: None,
        output,
    };
    resolve_for_mode(&mut inv, &own)?;
    Ok(inv)
}

/// What only some modes need, resolved only for them, so a management
/// command never fails for a setting it does not use.
fn resolve_for_mode(inv: &mut Invocation, own: &OwnArgs) -> Result<(), Failure> {
    let needs_rules = matches!(
        inv.mode,
        Mode::Run | Mode::Verify { .. } | Mode::Why(_) | Mode::ShowRules
    );
    if needs_rules {
        // Invalid rules are a usage error on every run, cached or not.
        inv.rules = inv.settings.rules().map_err(Failure::usage)?;
    }
    if inv.mode != Mode::Run {
        return Ok(());
    }
    let workers = inv.settings.file.workers.as_ref();
    inv.workers = workers::Options::resolve(&inv.args, workers).map_err(Failure::usage)?;
    let file = &inv.settings.file;
    inv.remote = RemoteConfig::resolve(
        own.remote_cache.as_deref(),
        own.remote_cache_upload,
        file.remote_cache.as_deref(),
        file.remote_cache_upload,
    )
    .map_err(Failure::usage)?
    .filter(|_| inv.settings.use_cache && !inv.args.no_run);
    Ok(())
}

/// The mode: `--help` / `--version` first (pytest answers them whatever
/// else is asked), then rpytest's management options, else a run.
fn mode(
    own: &OwnArgs,
    pytest_argv: &[String],
    args: &PytestArgs,
    raw_args: &[String],
    cwd: &std::path::Path,
) -> Mode {
    // Before `--`; `--help` in addopts counts once addopts made it a no-run session.
    let asks = |short: &str, long: &str| {
        let given = |a: &&String| *a != "--";
        pytest_argv
            .iter()
            .take_while(given)
            .any(|a| a == long || a == short)
            || args.no_run && raw_args.iter().take_while(given).any(|a| a == long)
    };
    if asks("-h", "--help") {
        Mode::Help
    } else if asks("-V", "--version") {
        Mode::Version
    } else if let Some(action) = own.result_cache {
        Mode::Cache(action)
    } else if let Some(action) = own.daemon {
        Mode::Daemon(action)
    } else if own.show_rules {
        Mode::ShowRules
    } else if let Some(node) = &own.why {
        Mode::Why(node.clone())
    } else if own.verify_dropin {
        Mode::Verify {
            report: own.verify_report.as_ref().map(|p| cwd.join(p)),
        }
    } else {
        Mode::Run
    }
}
