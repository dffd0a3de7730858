//! Executes a resolved invocation: `execute` matches its mode; a run of the
//! tests goes plan → sessions → record, each stage handing the next a value
//! (`report` prints what the user sees).

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
mod randomly;
mod record;

use crate::daemon::{self, DaemonPaths};
use crate::project::interpreter::{self, InterpreterInfo};
use crate::protocol::{Event, SessionConfig};
use crate::remote::Remote;
use crate::report;
use crate::settings::{CacheAction, DaemonAction, Mode};
use crate::store::Store;
use plan::Plan;
use std::path::{Path, PathBuf};

use crate::exit::{self, Failure};
use crate::session::Ended;
use crate::settings::Invocation;

fn usage(message: impl Into<String>) -> Failure {
    Failure::usage(message)
}

fn internal(e: daemon::DaemonError) -> Failure {
    Failure::internal(e)
}

/// Executes the invocation; returns the process exit code.
pub fn execute(mut inv: Invocation) -> i32 {
    match dispatch(&mut inv) {
        Ok(code) => code,
        Err(f) => {
            report::error(&f.message);
            f.code
        }
    }
}

fn dispatch(inv: &mut Invocation) -> Result<i32, Failure> {
    match inv.mode.clone() {
        Mode::Help => Ok(help::answer(inv, true)),
        Mode::Version => Ok(help::answer(inv, false)),
        Mode::Cache(action) => cache_command(&mut open_store(inv), action),
        Mode::Daemon(action) => {
            let ready = prepare(inv)?;
            let (root, idle) = (&inv.setup.rootdir, inv.settings.idle_timeout);
            daemon_command(
                action,
                &ready.paths,
                &ready.python,
                root,
                idle,
                ready.fingerprint(),
            )
        }
        Mode::ShowRules => {
            let mut ready = prepare(inv)?;
            explain::show_rules(inv, &mut ready.store, &ready.info)
        }
        Mode::Why(node) => {
            let mut ready = prepare(inv)?;
            explain::why(inv, &mut ready.store, &ready.info, &node)
        }
        Mode::Verify { .. } => {
            let ready = prepare(inv)?;
            let checked = crate::verify::run(
                inv,
                &ready.python,
                &ready.info,
                &mut report::verify::progress,
            )?;
            report::verify::print(&checked.report);
            checked.finish()
        }
        Mode::Run => {
            let ready = prepare(inv)?;
            run_tests(inv, ready)
        }
    }
}

/// The store, opened, with what earlier sessions taught about the options.
fn open_store(inv: &mut Invocation) -> Store {
    crate::store::on_lock_wait(report::warning);
    let mut store = Store::open(&inv.setup.rootdir);
    for w in store.warnings.drain(..) {
        report::warning(&w.0);
    }
    learn::apply(inv, &learn::load(&store));
    randomly::unresolved_notice(inv);
    run_all_notice(inv);
    store
}

/// What every mode but the cache commands needs: the store, the
/// interpreter, and the daemon's directory.
struct Prepared {
    store: Store,
    python: PathBuf,
    info: InterpreterInfo,
    paths: DaemonPaths,
    /// The daemon is used (it is wanted and its directory is usable).
    use_daemon: bool,
    trace: report::Trace,
}

impl Prepared {
    /// The daemon's fingerprint (only a daemon needs it: a run answered
    /// from the cache never computes it).
    fn fingerprint(&self) -> String {
        daemon::fingerprint(&self.python, &self.info)
    }
}

fn prepare(inv: &mut Invocation) -> Result<Prepared, Failure> {
    let store = open_store(inv);
    let mut trace = report::Trace::new();
    let (python, info) = interpreter_info(inv, &store)?;
    trace.mark("store and interpreter");
    let (paths, use_daemon) = daemon_paths(inv, &python)?;
    Ok(Prepared {
        store,
        python,
        info,
        paths,
        use_daemon,
        trace,
    })
}

/// The daemon's directory. A run without the daemon never fails for it; a
/// run with it falls back to a fresh process when no private directory exists.
fn daemon_paths(inv: &Invocation, python: &Path) -> Result<(DaemonPaths, bool), Failure> {
    let command = matches!(inv.mode, Mode::Daemon(_));
    let needs_daemon = inv.settings.use_daemon || command;
    match DaemonPaths::find(&inv.setup.rootdir, python) {
        Ok((paths, skipped)) => {
            if needs_daemon && !skipped.is_empty() {
                report::warning(&format!(
                    "passed over unusable daemon directories: {}; using {}",
                    skipped.join("; "),
                    paths.dir.display()
                ));
            }
            Ok((paths, inv.settings.use_daemon))
        }
        Err(e) if command => Err(Failure::internal(format!("daemon directory: {e}"))),
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
            Ok((paths, false))
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

/// A run of the tests: plan what the cache serves, run sessions for the
/// rest, record what they reported.
fn run_tests(inv: &mut Invocation, mut ready: Prepared) -> Result<i32, Failure> {
    let started = plan::now();
    let remote = inv.remote.clone().map(Remote::new);
    trust_remote(&mut ready.store, remote.as_ref());
    let mut plan = Plan::make(
        inv,
        &mut ready.store,
        &ready.info,
        &inv.rules,
        remote.as_ref(),
    )?;
    for n in plan.notices.drain(..) {
        report::warning(&n);
    }
    let (mine, excluded) = shard(inv, &mut plan);
    ready.trace.mark("plan");
    if coverage::requested(&inv.args) {
        plan.fast_path = false; // the coverage report is pytest-cov's
    }
    if randomly::prints_seed(inv, &ready.info) {
        plan.fast_path = false; // the seed line and the stored seed are pytest-randomly's
    }
    if !learn::project_session_hooks(&ready.store).is_empty() {
        // A hook of the project's own plugins runs around cached tests (a
        // summary line, a report written at the end): a session runs it.
        plan.fast_path = false;
    }
    if let Some(code) = plan.answer_alone(inv, started) {
        ready.trace.mark("answer");
        plan.record(true, &mut ready.store, inv, started, code, &[])
            .report();
        if let Some(r) = &remote {
            report::remote(&r.summary());
        }
        ready.trace.mark("history");
        // The process ends with this answer: freeing every cached node
        // one by one (30,000 at 10,000 files) would only cost time.
        std::mem::forget(plan);
        return Ok(code);
    }
    let ran = Sessions::new(inv, &ready, &plan, &mine, &excluded).run()?;
    record_run(inv, &mut ready, &mut plan, remote.as_ref(), started, &ran);
    Ok(ran.code)
}

/// Results a remote gave earlier are reused only as far as this run trusts
/// a remote (none: not at all; a signing key: only signed ones).
fn trust_remote(store: &mut Store, remote: Option<&Remote>) {
    let signed = remote.is_some_and(|r| r.config.signing.is_some());
    store.remote_trust = match (remote, signed) {
        (None, _) => crate::store::RemoteTrust::None,
        (Some(_), true) => crate::store::RemoteTrust::Signed,
        (Some(_), false) => crate::store::RemoteTrust::Any,
    };
    store.import_origin = match signed {
        true => crate::store::Origin::RemoteSigned,
        false => crate::store::Origin::Remote,
    };
}

/// This shard's test files and the ones other shards run (`--shard K/N`).
fn shard(inv: &Invocation, plan: &mut Plan) -> (Vec<String>, Vec<String>) {
    let files = plan.discovered(inv);
    let Some((k, n)) = inv.shard else {
        return (files, Vec::new());
    };
    let excluded = crate::parallel::shard::excluded(&inv.setup.rootdir, &files, k, n);
    report::note(&format!(
        "shard {k}/{n}: {} of {} test files",
        files.len() - excluded.len(),
        files.len()
    ));
    plan.exclude(&excluded);
    let out: std::collections::HashSet<&String> = excluded.iter().collect();
    let mine = files.iter().filter(|f| !out.contains(f)).cloned().collect();
    (mine, excluded)
}

/// What the sessions of a run ended with.
struct Ran {
    code: i32,
    events: Vec<Event>,
}

/// The sessions of one run: one per rule group, each leaving the other
/// groups' files to theirs.
struct Sessions<'a> {
    inv: &'a Invocation,
    ready: &'a Prepared,
    plan: &'a Plan,
    groups: Vec<groups::Group>,
    /// This shard's test files.
    mine: &'a [String],
    /// Other shards' test files.
    excluded: &'a [String],
    /// What every group's session starts from.
    base: SessionConfig,
    /// The JUnit XML parts of the groups, merged into the user's file.
    junit_parts: Vec<PathBuf>,
    events: Vec<Event>,
    crashes: usize,
}

impl<'a> Sessions<'a> {
    fn new(
        inv: &'a Invocation,
        ready: &'a Prepared,
        plan: &'a Plan,
        mine: &'a [String],
        excluded: &'a [String],
    ) -> Sessions<'a> {
        let base = SessionConfig {
            rootdir: inv.setup.rootdir.to_string_lossy().into_owned(),
            skip_files: plan.skip_files.clone(),
            cached: plan.cached.clone(),
            skipped_files: plan.skipped_files.clone(),
            deselected: plan.deselected.clone(),
            record: plan.caching,
            events: true,
            warm_file: ready
                .use_daemon
                .then(|| ready.paths.warm.to_string_lossy().into_owned()),
            timeouts: groups::timeouts(&inv.rules, mine),
            describe_options: !inv.args.understood(),
            coverage: coverage::stored(inv, plan, &ready.store),
            replay_indices: true,
            ..SessionConfig::default()
        };
        Sessions {
            inv,
            ready,
            plan,
            groups: groups::groups(&inv.rules, mine, inv.hermetic),
            mine,
            excluded,
            base,
            junit_parts: Vec::new(),
            events: Vec::new(),
            crashes: 0,
        }
    }

    /// Runs the groups in order; an interrupted or broken one stops the rest.
    fn run(mut self) -> Result<Ran, Failure> {
        let mut codes = Vec::new();
        for i in 0..self.groups.len() {
            let ended = self.run_group(i)?;
            let code = self.exit_code(ended);
            codes.push(code);
            if matches!(code, 2..=4) || 128 < code {
                break;
            }
        }
        let code = if codes.len() == 1 {
            codes[0]
        } else {
            groups::combine(&codes)
        };
        if let (Some(target), false) = (&self.inv.output.junitxml, self.junit_parts.is_empty()) {
            if let Err(e) = groups::merge_junit(&self.junit_parts, target) {
                report::warning(&format!("could not write {}: {e}", target.display()));
            }
        }
        // A worker that died is a failed run even when no test was running.
        let code = match self.crashes > 0 && code == exit::OK {
            true => exit::TESTS_FAILED,
            false => code,
        };
        Ok(Ran {
            code,
            events: self.events,
        })
    }

    fn exit_code(&self, ended: Ended) -> i32 {
        match ended {
            Ended::Code(c) => c,
            Ended::Signal(s) => {
                // Stock pytest killed by a signal says nothing: the shell
                // does, and the CLI dies by the same signal. A signal the
                // CLI does not die by (one that dumps core) is named.
                if !crate::daemon::ends_by_signal(s) {
                    report::error(&format!("the pytest session was killed by signal {s}"));
                }
                crate::daemon::note_session_signal(s);
                128 + s
            }
            Ended::Lost => {
                report::error(&format!(
                    "the rpytest daemon died during the run; its log is {}. The next run starts a new daemon.",
                    self.ready.paths.log.display()
                ));
                exit::INTERNAL_ERROR
            }
        }
    }

    /// `-n` for group `i`: the run's, else the group's rule's `workers`.
    fn workers(&self, i: usize) -> Result<Option<crate::parallel::Options>, Failure> {
        if self.inv.workers.is_some() {
            return Ok(self.inv.workers.clone());
        }
        let mut args = self.inv.args.clone();
        args.numprocesses = match &self.groups[i].workers {
            Some(toml::Value::Integer(n)) => Some(n.to_string()),
            Some(toml::Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        crate::parallel::Options::resolve(&args, None).map_err(usage)
    }

    /// Group `i`'s session and pytest arguments. Rules' arguments come
    /// first: the user's own arguments win.
    fn session(&mut self, i: usize) -> (SessionConfig, Vec<String>) {
        let mut session = self.base.clone();
        session.exclude_files = self.excluded.to_vec();
        for (_, other) in self.groups.iter().enumerate().filter(|(j, _)| *j != i) {
            session.exclude_files.extend(other.files.iter().cloned());
        }
        let mut argv: Vec<String> = self.groups[i].args.clone();
        argv.extend(self.inv.pytest_argv.iter().cloned());
        if let (Some(path), true) = (&self.inv.output.junitxml, self.groups.len() > 1) {
            // Each session writes a part; they are merged into the user's file.
            let part = path.with_file_name(format!(
                "{}.rpytest-part{i}",
                path.file_name().unwrap_or_default().to_string_lossy()
            ));
            argv.push(format!("--junitxml={}", part.display()));
            self.junit_parts.push(part);
        }
        (session, argv)
    }

    /// Hermetic tests: a sandbox, and the JUnit XML pytest writes from inside
    /// it bound writable.
    fn sandbox(&self, i: usize, session: &mut SessionConfig, env: &hermetic::Environments) {
        let (root, rules) = (&self.inv.setup.rootdir, &self.inv.rules);
        let mut sandbox = hermetic::sandbox_config(root, rules, &self.groups[i].files, env);
        let junit = match self.groups.len() > 1 {
            true => self.junit_parts.last(),
            false => self.inv.output.junitxml.as_ref(),
        };
        sandbox
            .writable
            .extend(junit.and_then(|p| hermetic::output_file(p)));
        session.sandbox = Some(sandbox);
    }

    /// Runs group `i`'s session (or its workers).
    fn run_group(&mut self, i: usize) -> Result<Ended, Failure> {
        let (inv, ready) = (self.inv, self.ready);
        let workers = self.workers(i)?;
        let (mut session, mut argv) = self.session(i);
        session.xdist_compat = workers.is_some();
        let group = &self.groups[i];
        let hermetic_env = group
            .hermetic
            .then(|| hermetic::environments(&ready.python, &inv.rules, &group.files));
        if let Some(env) = &hermetic_env {
            self.sandbox(i, &mut session, env);
        }
        let hermetic_paths = hermetic::daemon_paths(&ready.paths);
        let idle = inv.settings.idle_timeout;
        let daemon_target = ready.use_daemon.then(|| match &hermetic_env {
            Some(env) => {
                let env = env.daemon.clone().into_iter();
                let print = daemon::fingerprint_with_env(&ready.python, &ready.info, env);
                (&hermetic_paths, idle, print)
            }
            None => (&ready.paths, idle, ready.fingerprint()),
        });
        let distributed = workers.filter(|p| p.distributes() && !inv.args.no_run);
        if distributed.is_none() && session.xdist_compat {
            // Under `-n 0`, pytest-xdist still never loads (rpytest.compat
            // declares its options so addopts parse).
            argv.splice(0..0, ["-p".to_owned(), "no:xdist".to_owned()]);
        }
        let target = crate::session::Target {
            python: &ready.python,
            rootdir: &inv.setup.rootdir,
            cwd: &inv.cwd,
            argv: &argv,
            daemon: daemon_target,
            hermetic: hermetic_env.as_ref(),
        };
        let Some(mut opts) = distributed else {
            let events = &mut self.events;
            return crate::session::run(&target, &session, |e| events.push(e.clone()))
                .map_err(internal);
        };
        // Never more workers than test files to run (when rpytest can tell).
        let known = inv.args.understood() && !inv.args.doctests;
        let count = match self.groups.len() > 1 {
            true => Some(self.groups[i].files.len()),
            false => (self.plan.files_to_run()).or_else(|| known.then_some(self.mine.len())),
        };
        if let Some(n) = count {
            opts.workers = opts.workers.min(n.max(1));
        }
        let durations = ready.store.durations().unwrap_or_default();
        let out = crate::parallel::run(
            &target,
            &session,
            &opts,
            &durations,
            &mut crate::report::parallel::show,
        )
        .map_err(internal)?;
        self.events.extend(out.events);
        self.crashes += out.crashes;
        Ok(out.ended)
    }
}

/// Records what the sessions reported: the store, what was learned about
/// the options and the installed packages, and the remote cache.
fn record_run(
    inv: &mut Invocation,
    ready: &mut Prepared,
    plan: &mut Plan,
    remote: Option<&Remote>,
    started: f64,
    ran: &Ran,
) {
    if plan.caching {
        ready.store.remember_installed(&ran.events);
    }
    learn::remember(inv, &ready.store, &ran.events);
    learn::remember_project_hooks(&ready.store, &ran.events);
    // pytest-randomly stored the seed this run used: `last` is keyed as it.
    randomly::resolve_last(inv);
    let summary = plan.record(false, &mut ready.store, inv, started, ran.code, &ran.events);
    summary.report();
    let stored = summary.entries;
    let Some(r) = remote else { return };
    if r.config.upload && !stored.is_empty() {
        r.upload(&stored);
        if let Some(global) = &plan.static_global {
            r.upload_snapshot(&snapshot(&ready.store, &ready.info, inv, global));
        }
    }
    report::remote(&r.summary());
}

/// What this machine recorded: others need it to compute the same keys.
fn snapshot(
    store: &Store,
    info: &InterpreterInfo,
    inv: &Invocation,
    global: &str,
) -> crate::remote::Snapshot {
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
    let anchors = crate::inputs::installed::Anchors::of(info, &inv.setup.rootdir);
    let installed = crate::inputs::installed::export(&store.installed_files(), &anchors);
    Remote::snapshot(global.to_owned(), deps, edges, installed)
}

/// A plugin needs every test to run (a benchmark run, a snapshot update):
/// say so once, and run everything while still recording.
fn run_all_notice(inv: &mut Invocation) {
    if inv.args.run_all.is_empty() || !inv.settings.use_cache || inv.args.no_run {
        return;
    }
    let management = matches!(
        inv.mode,
        Mode::Why(_) | Mode::ShowRules | Mode::Daemon(_) | Mode::Cache(_)
    );
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
