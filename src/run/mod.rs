//! One invocation, from the command line to the exit code: resolve the
//! project and settings, answer management commands, plan what the cache
//! serves, run the session, record what it learned.

mod alone;
mod coverage;
mod explain;
mod groups;
pub mod hermetic;

mod help;
mod keys;
mod learn;
mod outcomes;
pub mod plan;
mod record;

use crate::cli::{split_args, CacheAction, DaemonAction, OwnArgs};
use crate::daemon::{self, DaemonPaths};
use crate::project::args::{analyze, expand_argfiles, PytestArgs};
use crate::project::ini::shell_split;
use crate::project::interpreter::{self, InterpreterInfo};
use crate::project::rootdir::{determine_setup, Setup};
use crate::protocol::{Event, SessionConfig};
use crate::report;
use crate::settings::Settings;
use crate::store::Store;
use clap::Parser;
use std::path::{Path, PathBuf};

pub use crate::session::Ended;

pub use crate::exit;
pub use crate::exit::Failure;

/// Everything resolved before any work starts.
pub struct Invocation {
    pub own: OwnArgs,
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
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: exit::USAGE_ERROR,
        message: message.into(),
    }
}

/// Parses and resolves the command line.
pub fn resolve(argv: Vec<String>) -> Result<Invocation, Failure> {
    let (own_tokens, pytest_argv) = split_args(&argv);
    let own = OwnArgs::try_parse_from(std::iter::once("rpytest".to_owned()).chain(own_tokens))
        .map_err(|e| {
            usage(
                e.to_string()
                    .trim_end()
                    .trim_start_matches("error: ")
                    .to_owned(),
            )
        })?;
    let cwd = std::env::current_dir()
        .map_err(|e| usage(format!("cannot read the current directory: {e}")))?;
    let expanded = expand_argfiles(&pytest_argv, &cwd).map_err(usage)?;
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
    .map_err(|e| usage(e.to_string()))?;
    let mut all: Vec<String> = setup
        .ini
        .get("addopts")
        .map(|v| v.as_args())
        .unwrap_or_default();
    all.extend(pre);
    let mut args = analyze(&all);
    coverage::understand(&mut args);
    let raw_args = all;
    let settings = Settings::resolve(&own, &setup.rootdir).map_err(|e| usage(e.to_string()))?;
    Ok(Invocation {
        own,
        pytest_argv,
        args,
        raw_args,
        cwd,
        setup,
        settings,
    })
}

/// Runs the command line; returns the process exit code.
pub fn run(argv: Vec<String>) -> i32 {
    let mut inv = match resolve(argv) {
        Ok(i) => i,
        Err(f) => {
            report::error(&f.message);
            return f.code;
        }
    };
    if let Some(code) = help::answer(&inv) {
        return code;
    }
    match execute(&mut inv) {
        Ok(code) => code,
        Err(f) => {
            report::error(&f.message);
            f.code
        }
    }
}

/// The interpreter and what we know about it (probed once per interpreter file).
fn interpreter_info(
    inv: &Invocation,
    store: &Store,
) -> Result<(PathBuf, InterpreterInfo), Failure> {
    let interp = interpreter::find_for(
        inv.settings.python_flag.as_deref(),
        inv.settings.python_config.as_deref(),
        &inv.cwd,
        &inv.setup.rootdir,
    )
    .map_err(|e| usage(e.to_string()))?;
    if let Some(n) = &interp.notice {
        report::note(n);
    }
    let python = interp.path;
    if !python.exists() {
        return Err(usage(format!(
            "the Python interpreter {} (from {}) does not exist",
            python.display(),
            interp.source
        )));
    }
    let stamp = interpreter::stamp(&python);
    let cached = store
        .interpreter(&stamp)
        .and_then(|s| serde_json::from_str::<InterpreterInfo>(&s).ok());
    let info = match cached {
        Some(i)
            if i.pytest.is_some()
                && i.rpytest.as_deref() == Some(env!("CARGO_PKG_VERSION"))
                && i.rpytest_dir.is_some() =>
        {
            i
        }
        _ => {
            let i = interpreter::probe(&python).map_err(|e| usage(e.to_string()))?;
            let _ = store.set_interpreter(&stamp, &serde_json::to_string(&i).unwrap_or_default());
            i
        }
    };
    if info.pytest.is_none() {
        return Err(usage(format!(
            "pytest is not installed for {} (from {}).\n  Install it there: {} -m pip install 'pytest>=8,<10'\n  or choose another interpreter with --python PATH",
            python.display(),
            interp.source,
            python.display()
        )));
    }
    match info.rpytest.as_deref() {
        Some(env!("CARGO_PKG_VERSION")) => {}
        found => {
            return Err(usage(format!(
                "the rpytest Python package in {} is {}, this rpytest binary is {}.\n  Install the matching package there: {} -m pip install rpytest=={}",
                python.display(),
                found.map(|v| format!("version {v}")).unwrap_or_else(|| "missing".into()),
                env!("CARGO_PKG_VERSION"),
                python.display(),
                env!("CARGO_PKG_VERSION")
            )))
        }
    }
    Ok((python, info))
}

fn execute(inv: &mut Invocation) -> Result<i32, Failure> {
    let rootdir = &inv.setup.rootdir.clone();
    crate::store::on_lock_wait(report::warning);
    let mut store = Store::open(rootdir);
    for w in store.warnings.drain(..) {
        report::warning(&w.0);
    }
    learn::apply(inv, &learn::load(&store));
    run_all_notice(inv);
    if let Some(action) = inv.own.result_cache {
        return cache_command(&mut store, action);
    }
    let mut trace = report::Trace::new();
    let (python, info) = interpreter_info(inv, &store)?;
    trace.mark("store and interpreter");
    // A run without the daemon never fails for the daemon's directory; a run
    // with it falls back to a fresh process when no private directory exists.
    let needs_daemon = inv.settings.use_daemon || inv.own.daemon.is_some();
    let (paths, use_daemon) = match DaemonPaths::find(rootdir, &python) {
        Ok((paths, skipped)) => {
            if needs_daemon && !skipped.is_empty() {
                report::warning(&format!(
                    "passed over unusable daemon directories: {}; using {}",
                    skipped.join("; "),
                    paths.dir.display()
                ));
            }
            (paths, inv.settings.use_daemon)
        }
        Err(e) if inv.own.daemon.is_some() => {
            return Err(Failure {
                code: exit::INTERNAL_ERROR,
                message: format!("daemon directory: {e}"),
            })
        }
        Err(e) => {
            if inv.settings.use_daemon {
                report::warning(&format!("{e}; running without the daemon"));
            }
            let none = std::env::temp_dir().join("rpytest-unusable");
            let paths = DaemonPaths {
                socket: none.join("none.sock"),
                log: none.join("none.log"),
                warm: none.join("none.warm.json"),
                dir: none,
            };
            (paths, false)
        }
    };
    // Only a daemon needs the fingerprint; a run answered from the cache never computes it.
    let fingerprint = || daemon::fingerprint(&python, &info);
    if let Some(action) = inv.own.daemon {
        return daemon_command(
            action,
            &paths,
            &python,
            rootdir,
            inv.settings.idle_timeout,
            fingerprint(),
        );
    }
    if inv.own.show_rules {
        return explain::show_rules(inv, &mut store, &info);
    }
    // Invalid rules are a usage error on every run, cached or not.
    let rules = plan::load_rules(inv)?;
    if let Some(node) = &inv.own.why {
        return explain::why(inv, &mut store, &info, node);
    }
    if inv.own.verify_dropin {
        return crate::verify::run(inv, &python, &info);
    }

    let parallel = crate::parallel::Options::resolve(&inv.args, inv.settings.file.workers.as_ref())
        .map_err(usage)?;
    let started = plan::now();
    let remote = crate::remote::RemoteConfig::resolve(
        inv.own.remote_cache.as_deref(),
        inv.own.remote_cache_upload,
        inv.settings.file.remote_cache.as_deref(),
        inv.settings.file.remote_cache_upload,
    )
    .map_err(usage)?
    .filter(|_| inv.settings.use_cache && !inv.args.no_run)
    .map(crate::remote::Remote::new);
    // Results a remote gave earlier are reused only as far as this run trusts
    // a remote (none: not at all; a signing key: only signed ones).
    let signed = remote.as_ref().is_some_and(|r| r.config.signing.is_some());
    store.remote_trust = match (&remote, signed) {
        (None, _) => crate::store::RemoteTrust::None,
        (Some(_), true) => crate::store::RemoteTrust::Signed,
        (Some(_), false) => crate::store::RemoteTrust::Any,
    };
    store.import_origin = match signed {
        true => crate::store::Origin::RemoteSigned,
        false => crate::store::Origin::Remote,
    };
    let mut plan = plan::Plan::make(inv, &mut store, &info, &rules, remote.as_ref())?;
    for n in plan.notices.drain(..) {
        report::warning(&n);
    }
    let files = plan.discovered(inv);
    let excluded = match inv.own.shard {
        Some((k, n)) => {
            let out = crate::parallel::shard::excluded(rootdir, &files, k, n);
            report::note(&format!(
                "shard {k}/{n}: {} of {} test files",
                files.len() - out.len(),
                files.len()
            ));
            plan.exclude(&out);
            out
        }
        None => Vec::new(),
    };
    trace.mark("plan");
    if coverage::requested(&inv.args) {
        plan.fast_path = false; // the coverage report is pytest-cov's
    }
    if let Some(code) = plan.answer_alone(inv, started) {
        trace.mark("answer");
        plan.record(true, &mut store, inv, started, code, &[])
            .report();
        if let Some(r) = &remote {
            r.finish();
        }
        trace.mark("history");
        return Ok(code);
    }
    let excluded_set: std::collections::HashSet<&String> = excluded.iter().collect();
    let mine: Vec<String> = files
        .iter()
        .filter(|f| !excluded_set.contains(f))
        .cloned()
        .collect();
    let groups = groups::groups(&rules, &mine, inv.own.hermetic);
    let base = SessionConfig {
        rootdir: rootdir.to_string_lossy().into_owned(),
        skip_files: plan.skip_files.clone(),
        cached: plan.cached.clone(),
        skipped_files: plan.skipped_files.clone(),
        deselected: plan.deselected.clone(),
        record: plan.caching,
        events: true,
        warm_file: use_daemon.then(|| paths.warm.to_string_lossy().into_owned()),
        timeouts: groups::timeouts(&rules, &mine),
        describe_options: !inv.args.understood(),
        coverage: coverage::stored(inv, &plan, &store),
        ..SessionConfig::default()
    };
    let internal = |e: daemon::DaemonError| Failure {
        code: exit::INTERNAL_ERROR,
        message: e.to_string(),
    };
    let mut events: Vec<Event> = Vec::new();
    let mut crashes = 0;
    let mut codes = Vec::new();
    let junit_target = inv.args.junitxml.as_ref().map(|p| inv.cwd.join(p));
    let mut junit_parts: Vec<PathBuf> = Vec::new();
    for (i, group) in groups.iter().enumerate() {
        let mut session = base.clone();
        session.exclude_files = excluded.clone();
        // Each group's session leaves the other groups' files to theirs.
        for other in groups.iter().enumerate().filter(|(j, _)| *j != i) {
            session.exclude_files.extend(other.1.files.iter().cloned());
        }
        let mut parallel = parallel.clone();
        if parallel.is_none() {
            let mut args = inv.args.clone();
            args.numprocesses = match &group.workers {
                Some(toml::Value::Integer(n)) => Some(n.to_string()),
                Some(toml::Value::String(s)) => Some(s.clone()),
                _ => None,
            };
            parallel = crate::parallel::Options::resolve(&args, None).map_err(usage)?;
        }
        session.xdist_compat = parallel.is_some();
        // Rules' arguments come first: the user's own arguments win.
        let mut argv: Vec<String> = group.args.clone();
        argv.extend(inv.pytest_argv.iter().cloned());
        if let (Some(path), true) = (&junit_target, groups.len() > 1) {
            // Each session writes a part; they are merged into the user's file.
            let part = path.with_file_name(format!(
                "{}.rpytest-part{i}",
                path.file_name().unwrap_or_default().to_string_lossy()
            ));
            argv.push(format!("--junitxml={}", part.display()));
            junit_parts.push(part);
        }
        // Hermetic tests: a sandbox, its environment, and a daemon started with it.
        let hermetic_env = group
            .hermetic
            .then(|| hermetic::environments(&python, &rules, &group.files));
        let hermetic_paths = hermetic::daemon_paths(&paths);
        if let Some(env) = &hermetic_env {
            let mut sandbox = hermetic::sandbox_config(rootdir, &rules, &group.files, env);
            // pytest writes the JUnit XML from inside the sandbox: that one file is bound writable.
            let junit = match groups.len() > 1 {
                true => junit_parts.last().filter(|_| junit_target.is_some()),
                false => junit_target.as_ref(),
            };
            sandbox
                .writable
                .extend(junit.and_then(|p| hermetic::output_file(p)));
            session.sandbox = Some(sandbox);
        }
        let daemon_target = use_daemon.then(|| match &hermetic_env {
            Some(env) => (
                &hermetic_paths,
                inv.settings.idle_timeout,
                daemon::fingerprint_with_env(&python, &info, env.daemon.clone().into_iter()),
            ),
            None => (&paths, inv.settings.idle_timeout, fingerprint()),
        });
        let distributed = parallel.filter(|p| p.distributes() && !inv.args.no_run);
        if distributed.is_none() && session.xdist_compat {
            // Under `-n 0`, pytest-xdist still never loads (rpytest.compat
            // declares its options so addopts parse).
            argv.splice(0..0, ["-p".to_owned(), "no:xdist".to_owned()]);
        }
        let target = crate::session::Target {
            python: &python,
            rootdir,
            cwd: &inv.cwd,
            argv: &argv,
            daemon: daemon_target,
            hermetic: hermetic_env.as_ref(),
        };
        let ended = match distributed {
            Some(mut opts) => {
                // Never more workers than test files to run (when rpytest can tell).
                let known = inv.args.understood() && !inv.args.doctests;
                let count = if groups.len() > 1 {
                    Some(group.files.len())
                } else {
                    plan.files_to_run().or_else(|| known.then_some(mine.len()))
                };
                if let Some(n) = count {
                    opts.workers = opts.workers.min(n.max(1));
                }
                let durations = store.durations().unwrap_or_default();
                let out =
                    crate::parallel::run(&target, &session, &opts, &durations).map_err(internal)?;
                events.extend(out.events);
                crashes += out.crashes;
                out.ended
            }
            None => crate::session::run(&target, &session, |e| events.push(e.clone()))
                .map_err(internal)?,
        };
        codes.push(match ended {
            Ended::Code(c) => c,
            Ended::Signal(s) => {
                report::error(&format!("the pytest session was killed by signal {s}"));
                128 + s
            }
            Ended::Lost => {
                report::error(&format!(
                    "the rpytest daemon died during the run; its log is {}. The next run starts a new daemon.",
                    paths.log.display()
                ));
                exit::INTERNAL_ERROR
            }
        });
        if matches!(codes.last(), Some(2..=4)) || 128 < *codes.last().unwrap_or(&0) {
            break; // interrupted or broken: the remaining groups do not run
        }
    }
    let code = if codes.len() == 1 {
        codes[0]
    } else {
        groups::combine(&codes)
    };
    if let (Some(target), false) = (&junit_target, junit_parts.is_empty()) {
        if let Err(e) = groups::merge_junit(&junit_parts, target) {
            report::warning(&format!("could not write {}: {e}", target.display()));
        }
    }
    // A worker that died is a failed run even when no test was running.
    let code = if crashes > 0 && code == exit::OK {
        exit::TESTS_FAILED
    } else {
        code
    };
    if plan.caching {
        crate::inputs::installed::remember(&store, &events);
    }
    learn::remember(inv, &store, &events);
    let summary = plan.record(false, &mut store, inv, started, code, &events);
    summary.report();
    let stored = summary.entries;
    if let Some(r) = &remote {
        if r.config.upload && !stored.is_empty() {
            r.upload(&stored);
            if let Some(global) = &plan.static_global {
                // What this machine recorded: others need it to compute the same keys.
                let deps: Vec<(String, String, String)> = store
                    .deps()
                    .unwrap_or_default()
                    .into_iter()
                    .flat_map(|(file, kinds)| {
                        kinds.into_iter().flat_map(move |(kind, names)| {
                            let file = file.clone();
                            names
                                .into_iter()
                                .map(move |n| (file.clone(), kind.clone(), n))
                        })
                    })
                    .collect();
                let edges: Vec<(String, String)> = store
                    .edges()
                    .unwrap_or_default()
                    .into_iter()
                    .flat_map(|(a, bs)| bs.into_iter().map(move |b| (a.clone(), b)))
                    .collect();
                let anchors = crate::inputs::installed::Anchors::of(&info, rootdir);
                let installed = crate::inputs::installed::export(
                    &crate::inputs::installed::load(&store),
                    &anchors,
                );
                r.upload_snapshot(&crate::remote::Remote::snapshot(
                    global.clone(),
                    deps,
                    edges,
                    installed,
                ));
            }
        }
        r.finish();
    }
    Ok(code)
}

/// A plugin needs every test to run (a benchmark run, a snapshot update):
/// say so once, and run everything while still recording.
fn run_all_notice(inv: &mut Invocation) {
    if inv.args.run_all.is_empty() || !inv.settings.use_cache || inv.args.no_run {
        return;
    }
    let management = inv.own.why.is_some()
        || inv.own.show_rules
        || inv.own.daemon.is_some()
        || inv.own.result_cache.is_some();
    if management {
        return; // `--why` says it itself
    }
    report::note(&format!(
        "{} needs every test to run: nothing is served from the cache this run",
        inv.args.run_all.join(", ")
    ));
    inv.settings.refresh_cache = true;
}

fn cache_command(store: &mut Store, action: CacheAction) -> Result<i32, Failure> {
    let db_err = |e: rusqlite::Error| Failure {
        code: exit::INTERNAL_ERROR,
        message: format!("cache database: {e}"),
    };
    match action {
        CacheAction::Stats => {
            report::out(&format!(
                "cache: {}",
                store
                    .path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "(in memory)".into())
            ));
            for (label, n) in store.stats().map_err(db_err)? {
                report::out(&format!("{label}: {n}"));
            }
        }
        CacheAction::Durations => {
            let all: std::collections::BTreeMap<String, f64> = store
                .durations()
                .map_err(db_err)?
                .into_iter()
                .map(|(n, (_, d))| (n, (d * 1e6).round() / 1e6))
                .collect();
            report::out(&serde_json::to_string_pretty(&all).unwrap_or_default());
        }
        CacheAction::Clear => {
            store.clear_all().map_err(|message| Failure {
                code: exit::INTERNAL_ERROR,
                message,
            })?;
            report::out("rpytest: cleared every cached result");
        }
    }
    Ok(exit::OK)
}

fn daemon_command(
    action: DaemonAction,
    paths: &DaemonPaths,
    python: &Path,
    rootdir: &Path,
    idle: u64,
    fingerprint: String,
) -> Result<i32, Failure> {
    let fail = |e: daemon::DaemonError| Failure {
        code: exit::INTERNAL_ERROR,
        message: e.to_string(),
    };
    match action {
        DaemonAction::Status => match daemon::ping(&paths.socket) {
            Ok((_, pong)) => {
                report::out(&format!(
                    "running: yes\npid: {}\nsocket: {}",
                    pong.pid,
                    paths.socket.display()
                ));
                report::out(&format!(
                    "python: {}\nsessions: {}",
                    pong.python, pong.sessions
                ));
                report::out(&format!(
                    "fresh: {}",
                    if pong.fingerprint == fingerprint && pong.fresh_for(|k| std::env::var(k).ok())
                    {
                        "yes"
                    } else {
                        "no (will restart on the next run)"
                    }
                ));
                report::out(&format!("warm modules: {}", pong.warm.len()));
                report::out(&format!(
                    "idle timeout: {:.0}s (adapts to use, at most {idle}s)",
                    pong.idle_timeout
                ));
                report::out(&format!("log: {}", paths.log.display()));
            }
            Err(daemon::DaemonError::Unresponsive { pid, why }) => report::out(&format!(
                "running: unresponsive ({why}; `rpytest --daemon stop` ends it, the next run replaces it)\npid: {pid}\nsocket: {}",
                paths.socket.display()
            )),
            Err(_) => report::out(&format!("running: no\nsocket: {}", paths.socket.display())),
        },
        DaemonAction::Stop => {
            // The daemon hermetic sessions fork from goes too.
            let hermetic_stopped =
                daemon::stop(&hermetic::daemon_paths(paths).socket).unwrap_or(false);
            let stopped = daemon::stop(&paths.socket).map_err(fail)? || hermetic_stopped;
            report::out(if stopped {
                "rpytest: daemon stopped"
            } else {
                "rpytest: no daemon was running"
            });
        }
        DaemonAction::Restart => {
            daemon::stop(&paths.socket).map_err(fail)?;
            let spec = daemon::DaemonSpec {
                python,
                rootdir,
                paths,
                idle_timeout: idle,
                fingerprint,
                env: None,
            };
            daemon::ensure_daemon(&spec).map_err(fail)?;
            let (_, pong) = daemon::ping(&paths.socket).map_err(fail)?;
            report::out(&format!("rpytest: daemon restarted\npid: {}", pong.pid));
        }
        DaemonAction::Logs => {
            report::out(&format!("log: {}", paths.log.display()));
            report::out(&daemon::tail(&paths.log, 40));
        }
    }
    Ok(exit::OK)
}
