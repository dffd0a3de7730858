//! What rpytest understands of a pytest command line.
//!
//! rpytest never rewrites the arguments it passes to pytest. It reads them to
//! find the rootdir, the paths and node IDs named, and which options can
//! change an outcome (those enter the cache key). Anything it does not know
//! (a plugin's option, say) makes the analysis `understood = false`: pytest
//! still gets every argument, and rpytest falls back to the safe path of
//! letting pytest collect and replaying cached results only for what pytest
//! itself selected.

use std::path::{Path, PathBuf};

/// How an option affects caching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Output only (`-v`, `--tb`, `--junitxml`): not part of the key.
    Output,
    /// Selects which tests run (`-k`, `-m`, `--lf`): not part of the key, but
    /// rpytest must let pytest collect to apply it.
    Select,
    /// Stops the session early (`-x`, `--maxfail`): not in the key, and the
    /// results of a stopped session are still per-test truths.
    Control,
    /// Anything else can change an outcome: part of the key.
    Outcome,
    /// The session runs no tests (`--collect-only`, `--help`, `--fixtures`).
    NoRun,
}

struct Opt {
    names: &'static [&'static str],
    takes_value: bool,
    effect: Effect,
}

const fn o(names: &'static [&'static str], takes_value: bool, effect: Effect) -> Opt {
    Opt {
        names,
        takes_value,
        effect,
    }
}

use Effect::*;

/// pytest's own options (8.x and 9.x), and pytest-xdist's, which rpytest
/// handles natively.
const OPTIONS: &[Opt] = &[
    o(&["-k"], true, Select),
    o(&["-m"], true, Select),
    o(&["--deselect"], true, Select),
    o(&["--lf", "--last-failed"], false, Select),
    o(&["--ff", "--failed-first"], false, Select),
    o(&["--nf", "--new-first"], false, Select),
    o(&["--sw", "--stepwise"], false, Select),
    o(&["--sw-skip", "--stepwise-skip"], false, Select),
    o(&["--sw-reset", "--stepwise-reset"], false, Select),
    o(&["--lfnf", "--last-failed-no-failures"], true, Select),
    // Which paths pytest collects: discovery models them (the files it
    // finds are the ones pytest collects), and they enter the key.
    o(&["--ignore"], true, Outcome),
    o(&["--ignore-glob"], true, Outcome),
    o(&["--pyargs"], false, Select),
    o(&["--keep-duplicates"], false, Select),
    o(&["-x", "--exitfirst"], false, Control),
    o(&["--maxfail"], true, Control),
    o(&["-v", "--verbose"], false, Output),
    o(&["-q", "--quiet"], false, Output),
    o(&["--verbosity"], true, Output),
    o(&["-r"], true, Output),
    o(&["-l", "--showlocals"], false, Output),
    o(&["--no-showlocals"], false, Output),
    o(&["--tb"], true, Output),
    o(&["--show-capture"], true, Output),
    o(&["--full-trace"], false, Output),
    o(&["--color"], true, Output),
    o(&["--code-highlight"], true, Output),
    o(&["--durations"], true, Output),
    o(&["--durations-min"], true, Output),
    o(&["--junitxml", "--junit-xml"], true, Output),
    o(&["--junit-prefix"], true, Output),
    o(&["--no-header"], false, Output),
    o(&["--no-summary"], false, Output),
    o(&["--no-fold-skipped"], false, Output),
    o(&["--force-short-summary"], false, Output),
    o(&["--xfail-tb"], false, Output),
    o(
        &["--disable-warnings", "--disable-pytest-warnings"],
        false,
        Output,
    ),
    o(&["--setup-show"], false, Output),
    o(&["--debug"], false, Output),
    o(&["--trace-config"], false, Output),
    o(&["-n", "--numprocesses"], true, Output),
    o(&["--dist"], true, Output),
    o(&["--maxprocesses"], true, Output),
    o(&["-d", "--distload"], false, Output),
    o(&["--max-worker-restart"], true, Output),
    o(&["--tx"], true, Output),
    o(&["--px"], true, Output),
    o(&["--rsyncdir"], true, Output),
    o(&["--rsyncignore"], true, Output),
    o(&["--testrunuid"], true, Output),
    o(&["--maxschedchunk"], true, Output),
    o(&["--loadscope-reorder"], false, Output),
    o(&["--no-loadscope-reorder"], false, Output),
    o(&["--collect-only", "--co"], false, NoRun),
    o(&["--fixtures", "--funcargs"], false, NoRun),
    o(&["--fixtures-per-test"], false, NoRun),
    o(&["--markers"], false, NoRun),
    o(&["--setup-only"], false, NoRun),
    o(&["--setup-plan"], false, NoRun),
    o(&["-h", "--help"], false, NoRun),
    o(&["-V", "--version"], false, NoRun),
    o(&["--cache-show"], false, NoRun),
    o(&["-c", "--config-file", "--inifile"], true, Outcome),
    o(&["--rootdir"], true, Outcome),
    o(&["--confcutdir"], true, Outcome),
    o(&["--noconftest"], false, Outcome),
    o(&["-p"], true, Outcome),
    o(&["-o", "--override-ini"], true, Outcome),
    o(&["-W", "--pythonwarnings"], true, Outcome),
    o(&["-s"], false, Outcome),
    o(&["--capture"], true, Outcome),
    o(&["--runxfail"], false, Outcome),
    o(&["--pdb"], false, Outcome),
    o(&["--pdbcls"], true, Outcome),
    o(&["--trace"], false, Outcome),
    o(&["--basetemp"], true, Outcome),
    o(&["--import-mode"], true, Outcome),
    o(&["--assert"], true, Outcome),
    o(&["--strict-markers"], false, Outcome),
    o(&["--strict-config"], false, Outcome),
    o(&["--strict"], false, Outcome),
    o(&["--cache-clear"], false, Outcome),
    o(&["--continue-on-collection-errors"], false, Outcome),
    o(&["--doctest-modules"], false, Outcome),
    o(&["--doctest-glob"], true, Outcome),
    o(&["--doctest-report"], true, Outcome),
    o(&["--doctest-continue-on-failure"], false, Outcome),
    o(&["--doctest-ignore-import-errors"], false, Outcome),
    o(&["--log-level"], true, Outcome),
    o(&["--log-format"], true, Outcome),
    o(&["--log-date-format"], true, Outcome),
    o(&["--log-cli-level"], true, Outcome),
    o(&["--log-cli-format"], true, Outcome),
    o(&["--log-cli-date-format"], true, Outcome),
    o(&["--log-file"], true, Outcome),
    o(&["--log-file-level"], true, Outcome),
    o(&["--log-file-format"], true, Outcome),
    o(&["--log-file-date-format"], true, Outcome),
    o(&["--log-file-mode"], true, Outcome),
    o(&["--log-auto-indent"], true, Outcome),
    o(&["--log-disable"], true, Outcome),
];

fn lookup(name: &str) -> Option<&'static Opt> {
    OPTIONS.iter().find(|o| o.names.contains(&name))
}

/// The parts of a pytest command line rpytest needs.
#[derive(Debug, Default, Clone)]
pub struct PytestArgs {
    /// Positional arguments: paths and node IDs, as typed.
    pub positional: Vec<String>,
    /// Every argument that does not look like an option, plus unknown options:
    /// what pytest itself uses to find the rootdir.
    pub rootdir_candidates: Vec<String>,
    /// `-c` / `--config-file`.
    pub inifile: Option<String>,
    /// `--rootdir`.
    pub rootdir: Option<String>,
    /// Arguments that can change an outcome, normalized, for the cache key.
    pub key_args: Vec<String>,
    /// Every argument, normalized (canonical option names with their values),
    /// output-only ones included: the input of tests that read pytest's
    /// options. `--junitxml`'s path is left out (it names an output file,
    /// often a new one per run); its presence stays.
    pub all_args: Vec<String>,
    /// Options that select tests, so collection must stay pytest's.
    pub selects: bool,
    /// The session runs no tests (`--collect-only`, `--help`, ...).
    pub no_run: bool,
    /// An option rpytest does not know was seen (typically a plugin's).
    pub unknown_options: Vec<String>,
    /// `-x` / `--maxfail`.
    pub stops_early: bool,
    /// `-p no:cacheprovider`-style plugin disabling, `-p name` loading.
    pub plugins: Vec<String>,
    /// `--doctest-modules` / `--doctest-glob`: non-test files get collected.
    pub doctests: bool,
    /// `-v` count minus `-q` count (`--verbosity=N` sets it).
    pub verbosity: i32,
    /// The selecting options with their values (`-k`, `-m`, `--deselect`...).
    pub select_args: Vec<String>,
    /// A selecting option other than `-k`, `-m`, `--deselect` was seen.
    pub selects_impurely: bool,
    /// `--lf`, `--ff`, `--nf`, `--sw`: pytest narrows (or reorders) collection
    /// itself, so what it collects of a file may be a part of it.
    pub narrows_collection: bool,
    /// Output options that only pytest's own reporting can honour
    /// (`--junitxml`, `--durations`, `-rA`...): a fully cached run still
    /// needs a session to replay its reports.
    pub needs_reporting: bool,
    /// `-n` / `--numprocesses` (the last one given).
    pub numprocesses: Option<String>,
    /// `--dist` (`-d` is `load`).
    pub dist: Option<String>,
    /// `--maxprocesses`.
    pub maxprocesses: Option<usize>,
    /// `--pdb` / `--trace`: the session needs the terminal.
    pub debugger: bool,
    /// `--junitxml` (the last one given).
    pub junitxml: Option<String>,
    /// `--color` (the last one given: `yes`, `no` or `auto`).
    pub color: Option<String>,
    /// The last `-r` value (what the short summary shows; pytest keeps the
    /// last one): a run answered without Python honours it only when it
    /// shows nothing that run cannot print (see `run::alone`).
    pub reportchars: Option<String>,
    /// pytest's capture method as the last of `-s` / `--capture` sets it
    /// (`-s` is `--capture=no`).
    pub capture: Option<String>,

    /// Options after which a plugin needs every test to run (a benchmark
    /// run, a snapshot update), each as `--option (plugin)`.
    pub run_all: Vec<String>,
    /// `--ignore` values, as typed (relative to the invocation directory).
    pub ignore: Vec<String>,
    /// `--ignore-glob` values, as typed (relative to the invocation directory).
    pub ignore_glob: Vec<String>,
}

impl PytestArgs {
    /// Every option was understood: rpytest can predict what pytest collects.
    pub fn understood(&self) -> bool {
        self.unknown_options.is_empty()
    }
}

/// Expands `@file` arguments the way pytest's argparse does (one argument
/// per line). Used only for analysis; pytest receives the original list.
pub fn expand_argfiles(args: &[String], cwd: &Path) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(args.len());
    for a in args {
        if let Some(rest) = a.strip_prefix('@') {
            let p = cwd.join(rest);
            let text = std::fs::read_to_string(&p)
                .map_err(|e| format!("cannot read argument file {}: {e}", p.display()))?;
            let inner: Vec<String> = text.lines().map(str::to_owned).collect();
            out.extend(expand_argfiles(&inner, cwd)?);
        } else {
            out.push(a.clone());
        }
    }
    Ok(out)
}

/// Reads a pytest command line (already including ini `addopts` and
/// `PYTEST_ADDOPTS` when the caller wants them).
pub fn analyze(args: &[String]) -> PytestArgs {
    analyze_with(args, &Learned::default())
}

/// As `analyze`, also knowing the options plugins and conftest files
/// registered (`learned`, from an earlier session of this project).
pub fn analyze_with(args: &[String], learned: &Learned) -> PytestArgs {
    let mut r = PytestArgs::default();
    let mut i = 0;
    let mut after_dashdash = false;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if after_dashdash || a == "-" || !a.starts_with('-') {
            r.all_args.push(a.clone());
            r.positional.push(a.clone());
            r.rootdir_candidates.push(a.clone());
            continue;
        }
        if a == "--" {
            after_dashdash = true;
            continue;
        }
        match a.strip_prefix("--") {
            Some(long) => long_option(&mut r, a, long, args, &mut i, learned),
            None => short_options(&mut r, a, args, &mut i, learned),
        }
    }
    settle_run_all(&mut r);
    r
}

/// The value `-o name=value` / `--override-ini` gives `name` (the last one),
/// in analysed arguments (`PytestArgs::all_args`, where `-o` is canonical).
pub fn override_ini(all_args: &[String], name: &str) -> Option<String> {
    all_args
        .iter()
        .zip(all_args.iter().skip(1))
        .filter(|(o, _)| *o == "-o")
        .filter_map(|(_, v)| v.split_once('=').filter(|(k, _)| k.trim() == name))
        .map(|(_, v)| v.to_owned())
        .next_back()
}

/// An option rpytest knows neither from pytest nor from a plugin.
fn unknown_option(r: &mut PytestArgs, a: &str) {
    r.all_args.push(a.to_owned());
    r.unknown_options.push(a.to_owned());
    r.rootdir_candidates.push(a.to_owned());
    r.key_args.push(a.to_owned());
}

/// `--name`, `--name=value` or `--name value` (`args[*i]` is the next argument).
fn long_option(
    r: &mut PytestArgs,
    a: &str,
    long: &str,
    args: &[String],
    i: &mut usize,
    learned: &Learned,
) {
    let (name, inline) = match long.split_once('=') {
        Some((n, v)) => (format!("--{n}"), Some(v.to_owned())),
        None => (a.to_owned(), None),
    };
    if let Some(opt) = lookup(&name) {
        if opt.names[0] == "--setup-show" {
            // Its SETUP/TEARDOWN lines come from running each test's fixtures.
            r.run_all.push("--setup-show".to_owned());
        }
        let value = match (opt.takes_value, inline) {
            (false, _) => None,
            (true, Some(v)) => Some(v),
            (true, None) if *i < args.len() => {
                *i += 1;
                Some(args[*i - 1].clone())
            }
            (true, None) => None,
        };
        apply(r, opt, opt.names[0], value);
        return;
    }
    match learned.lookup(&name) {
        Some(opt) => {
            let values = take_values(opt.arity, inline, args, i);
            apply_plugin(r, &opt, &name, values);
        }
        None => {
            note_run_all(r, &name);
            unknown_option(r, a);
        }
    }
}

/// A cluster of short options: `-vx`, `-rA`, `-kexpr`, `-n2`.
fn short_options(r: &mut PytestArgs, a: &str, args: &[String], i: &mut usize, learned: &Learned) {
    let chars: Vec<char> = a[1..].chars().collect();
    let mut j = 0;
    while j < chars.len() {
        let name = format!("-{}", chars[j]);
        j += 1;
        let rest = || -> Option<String> {
            let rest: String = chars[j..].iter().collect();
            (!rest.is_empty()).then_some(rest)
        };
        match lookup(&name) {
            Some(opt) if opt.takes_value => {
                let value = rest().or_else(|| {
                    (*i < args.len()).then(|| {
                        *i += 1;
                        args[*i - 1].clone()
                    })
                });
                apply(r, opt, opt.names[0], value);
                break;
            }
            Some(opt) => apply(r, opt, opt.names[0], None),
            None => match learned.lookup(&name) {
                Some(opt) if opt.arity == Arity::None => {
                    apply_plugin(r, &opt, &name, Vec::new());
                }
                Some(opt) => {
                    let values = take_values(opt.arity, rest(), args, i);
                    apply_plugin(r, &opt, &name, values);
                    break;
                }
                None => {
                    unknown_option(r, a);
                    break;
                }
            },
        }
    }
}

/// Output options a run answered without Python still honours (or that only
/// shape the parallel run): every other output option needs pytest's own
/// reporting.
const LIGHT_OUTPUT: &[&str] = &[
    "-v",
    "-q",
    "--verbosity",
    "-l",
    "--no-showlocals",
    "--tb",
    "--show-capture",
    "--full-trace",
    "--color",
    "--code-highlight",
    "--no-header",
    "--no-summary",
    "--disable-warnings",
    "-n",
    "--dist",
    "--maxprocesses",
    "-d",
    "--max-worker-restart",
    "--tx",
    "--px",
    "--rsyncdir",
    "--rsyncignore",
    "--testrunuid",
    "--maxschedchunk",
    "--loadscope-reorder",
    "--no-loadscope-reorder",
    "--xfail-tb",
    "--no-fold-skipped",
    "--force-short-summary",
    "-r",
];

fn apply(r: &mut PytestArgs, opt: &Opt, canonical: &str, value: Option<String>) {
    r.all_args.push(canonical.to_owned());
    if canonical != "--junitxml" {
        r.all_args.extend(value.clone());
    }
    match canonical {
        "-v" => r.verbosity += 1,
        "-q" => r.verbosity -= 1,
        "--verbosity" => r.verbosity = value.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0),
        "-c" => r.inifile = value.clone(),
        "--rootdir" => r.rootdir = value.clone(),
        "-p" => r.plugins.extend(value.clone()),
        "-x" | "--maxfail" => r.stops_early = true,
        "--doctest-modules" | "--doctest-glob" => r.doctests = true,
        "--ignore" => r.ignore.extend(value.clone()),
        "--ignore-glob" => r.ignore_glob.extend(value.clone()),
        "-n" => r.numprocesses = value.clone(),
        "--dist" => r.dist = value.clone(),
        "-d" => r.dist = Some("load".into()),
        "--maxprocesses" => r.maxprocesses = value.as_deref().and_then(|v| v.parse().ok()),
        "--pdb" | "--trace" => r.debugger = true,
        "--junitxml" => r.junitxml = value.clone(),
        "--color" => r.color = value.clone(),
        "-r" => r.reportchars = value.clone(),
        "-s" => r.capture = Some("no".into()),
        "--capture" => r.capture = value.clone(),
        "--lf" | "--ff" | "--nf" | "--sw" | "--sw-skip" | "--sw-reset" | "--lfnf" => {
            r.narrows_collection = true
        }
        _ => {}
    }
    match opt.effect {
        Effect::Outcome => {
            r.key_args.push(canonical.to_owned());
            if let Some(v) = value {
                r.key_args.push(v);
            }
        }
        Effect::Select => {
            r.selects = true;
            if !matches!(canonical, "-k" | "-m" | "--deselect") {
                r.selects_impurely = true;
            }
            r.select_args.push(canonical.to_owned());
            r.select_args.extend(value);
        }
        Effect::NoRun => r.no_run = true,
        Effect::Output => {
            let light = LIGHT_OUTPUT.contains(&canonical);
            if !light {
                r.needs_reporting = true;
            }
        }
        Effect::Control => {}
    }
}

/// pytest-cov's options, written so that they cannot swallow a path
/// (`--cov=SRC`, not `--cov SRC`): they stay in the cache key, and no longer
/// count as options rpytest does not understand. Only `--cov-report` names
/// an output; every other one changes what is measured.
pub fn understand_coverage(args: &mut PytestArgs) {
    const INLINE: &[&str] = &[
        "--cov=",
        "--cov-report=",
        "--cov-config=",
        "--cov-fail-under=",
        "--cov-context=",
        "--cov-precision=",
    ];
    const FLAGS: &[&str] = &[
        "--cov-branch",
        "--cov-append",
        "--no-cov",
        "--no-cov-on-fail",
    ];
    args.unknown_options
        .retain(|a| !(FLAGS.contains(&a.as_str()) || INLINE.iter().any(|p| a.starts_with(p))));
}

/// The file part of a node ID or path argument, made absolute.
pub fn path_of_arg(arg: &str, cwd: &Path) -> PathBuf {
    let file = arg.split("::").next().unwrap_or(arg);
    cwd.join(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn splits_positional_from_option_values() {
        let a = analyze(&s(&[
            "-k",
            "foo and bar",
            "tests/a.py::t",
            "-vx",
            "-rA",
            "-W",
            "error",
        ]));
        assert_eq!(a.positional, vec!["tests/a.py::t"]);
        assert!(a.selects && a.stops_early && a.understood());
        assert_eq!(a.key_args, vec!["-W", "error"]);
    }

    #[test]
    fn unknown_options_are_not_understood() {
        let a = analyze(&s(&["--cov", "src", "tests"]));
        assert!(!a.understood());
        assert_eq!(a.positional, vec!["src", "tests"]);
    }

    #[test]
    fn short_values_attached_and_equals_forms() {
        let a = analyze(&s(&[
            "-pno:cacheprovider",
            "--tb=short",
            "-c",
            "x.ini",
            "--",
            "-weird",
        ]));
        assert_eq!(a.plugins, vec!["no:cacheprovider"]);
        assert_eq!(a.inifile.as_deref(), Some("x.ini"));
        assert_eq!(a.positional, vec!["-weird"]);
    }

    #[test]
    fn color_is_the_last_one_given_in_either_form() {
        assert_eq!(
            analyze(&s(&["--color", "yes"])).color.as_deref(),
            Some("yes")
        );
        assert_eq!(analyze(&s(&["--color=yes"])).color.as_deref(), Some("yes"));
        let a = analyze(&s(&["--color=yes", "-q", "--color", "no", "t.py"]));
        assert_eq!(a.color.as_deref(), Some("no"));
        assert_eq!(a.positional, s(&["t.py"]));
        assert_eq!(analyze(&s(&["--", "--color=yes"])).color, None);
    }

    #[test]
    fn all_args_keep_output_options_in_canonical_form() {
        let a = analyze(&s(&[
            "-vv",
            "--tb=short",
            "--junit-xml=/tmp/x.xml",
            "-k",
            "a",
            "t.py",
        ]));
        assert_eq!(
            a.all_args,
            s(&["-v", "-v", "--tb", "short", "--junitxml", "-k", "a", "t.py"])
        );
        assert_ne!(
            analyze(&s(&["-v"])).all_args,
            analyze(&s(&["-vv"])).all_args
        );
        assert_eq!(
            analyze(&s(&["--verbose", "--junitxml", "a.xml"])).all_args,
            analyze(&s(&["-v", "--junitxml=b.xml"])).all_args
        );
    }

    #[test]
    fn no_run_modes() {
        assert!(analyze(&s(&["--co"])).no_run);
        assert!(analyze(&s(&["--help"])).no_run);
        assert!(!analyze(&s(&["-q"])).no_run);
    }
}

/// How many values an option registered by a plugin takes (argparse's `nargs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arity {
    /// A flag (`store_true`, `count`, `store_const`...).
    None,
    /// One value (`--html PATH`).
    One,
    /// `nargs="?"`: the next argument when it does not look like an option.
    Optional,
    /// Exactly N values (`--metadata KEY VALUE`).
    Exactly(usize),
    /// `nargs="+"` / `"*"`: every following argument that does not look like an option.
    Many,
}

/// An option a plugin or a conftest.py registered, as the session's own
/// parser describes it (python/rpytest/options.py).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LearnedOption {
    pub names: Vec<String>,
    pub arity: Arity,
    /// The option group's name (`terminal reporting`, `cov`, `django`...).
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub dest: String,
    #[serde(default)]
    pub help: String,
}

/// What rpytest knows of the options beyond pytest's own.
#[derive(Debug, Clone, Default)]
pub struct Learned {
    pub options: Vec<LearnedOption>,
}

/// Options of common plugins that only name or shape a report, with their
/// arity: used when no session has described the plugin's options yet, and
/// for plugins that put report options in their own group (`--cov-report`).
const DECLARED_OUTPUT: &[(&str, Arity)] = &[
    ("--html", Arity::One),
    ("--self-contained-html", Arity::None),
    ("--css", Arity::One),
    ("--cov-report", Arity::One),
    ("--report-log", Arity::One),
    ("--json-report-file", Arity::One),
    ("--md-report-output", Arity::One),
];

/// Options after which a plugin needs every test to run, per plugin: a
/// snapshot update rewrites what the tests compare against, a benchmark run
/// measures the tests themselves. A prefix ends with `-`.
const RUN_ALL: &[(&str, &str)] = &[
    ("--snapshot-update", "syrupy"),
    ("--snapshot-update-new-only", "syrupy"),
    ("--benchmark-", "pytest-benchmark"),
];

/// pytest-benchmark options under which no benchmark is measured.
const BENCHMARK_OFF: &[&str] = &["--benchmark-disable", "--benchmark-skip"];
/// pytest-benchmark options that measure benchmarks despite `BENCHMARK_OFF`.
const BENCHMARK_ON: &[&str] = &["--benchmark-enable", "--benchmark-only"];

impl Learned {
    /// Reads the description a session sent (a JSON list of `LearnedOption`).
    pub fn from_json(text: &str) -> Learned {
        Learned {
            options: serde_json::from_str(text).unwrap_or_default(),
        }
    }

    fn lookup(&self, name: &str) -> Option<std::borrow::Cow<'_, LearnedOption>> {
        if let Some(o) = self
            .options
            .iter()
            .find(|o| o.names.iter().any(|n| n == name))
        {
            return Some(std::borrow::Cow::Borrowed(o));
        }
        DECLARED_OUTPUT
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, arity)| {
                std::borrow::Cow::Owned(LearnedOption {
                    names: vec![(*n).to_owned()],
                    arity: *arity,
                    group: "terminal reporting".into(),
                    dest: String::new(),
                    help: String::new(),
                })
            })
    }
}

/// How a plugin's option affects caching, judged from its own definition.
fn plugin_effect(opt: &LearnedOption) -> Effect {
    let declared_output = opt
        .names
        .iter()
        .any(|n| DECLARED_OUTPUT.iter().any(|(d, _)| d == n));
    // pytest's "terminal reporting" group is where plugins put the options
    // of their reports (pytest-html's --html, pytest-sugar's, junitxml's own).
    if declared_output || opt.group == "terminal reporting" {
        return Effect::Output;
    }
    let help = opt.help.to_lowercase();
    let selects = help
        .split(|c: char| !c.is_alphanumeric())
        .any(|w| matches!(w, "select" | "selects" | "deselect" | "deselects"));
    if selects {
        return Effect::Select;
    }
    Effect::Outcome
}

fn looks_like_option(a: &str) -> bool {
    a.starts_with('-') && a.len() > 1
}

fn take_values(
    arity: Arity,
    inline: Option<String>,
    args: &[String],
    i: &mut usize,
) -> Vec<String> {
    let mut out: Vec<String> = inline.into_iter().collect();
    let take = |n: Option<usize>, out: &mut Vec<String>, i: &mut usize| {
        while n.map_or(true, |n| out.len() < n) && *i < args.len() && !looks_like_option(&args[*i])
        {
            out.push(args[*i].clone());
            *i += 1;
        }
    };
    match arity {
        Arity::None => out.clear(),
        Arity::One if out.is_empty() && *i < args.len() => {
            // argparse takes the next argument whatever it looks like... unless
            // it is an option: then the option lacks its value (pytest says so).
            out.push(args[*i].clone());
            *i += 1;
        }
        Arity::One => {}
        Arity::Optional => {
            if out.is_empty() {
                take(Some(1), &mut out, i)
            }
        }
        Arity::Exactly(n) => take(Some(n), &mut out, i),
        Arity::Many => take(None, &mut out, i),
    }
    out
}

fn note_run_all(r: &mut PytestArgs, name: &str) {
    let hit = RUN_ALL.iter().find(|(n, _)| {
        if n.ends_with('-') {
            name.starts_with(n)
        } else {
            name == *n
        }
    });
    if let Some((_, plugin)) = hit {
        r.run_all.push(format!("{name} ({plugin})"));
    }
}

/// Drops the benchmark options from `run_all` when no benchmark is measured.
///
/// Also adds the capture options under which tests write straight to the
/// terminal (`-s`, `--capture=no`, `--capture=tee-sys`, `-p no:capture`): a
/// stored result holds nothing of what a test printed there, so replaying
/// it would silently drop that output. Every test runs, as pytest runs it.
fn settle_run_all(r: &mut PytestArgs) {
    let live_output = match r.capture.as_deref() {
        Some(m @ ("no" | "tee-sys")) => {
            Some(if m == "no" && r.all_args.iter().any(|a| a == "-s") {
                "-s".to_owned()
            } else {
                format!("--capture={m}")
            })
        }
        _ => None,
    }
    .or_else(|| {
        r.plugins
            .iter()
            .any(|p| p == "no:capture" || p == "no:_pytest.capture")
            .then(|| "-p no:capture".to_owned())
    });
    if let Some(option) = live_output {
        r.run_all.push(format!(
            "{option} (the tests' output goes to the terminal as they run)"
        ));
    }
    let given = |names: &[&str]| {
        r.key_args
            .iter()
            .chain(r.unknown_options.iter())
            .any(|a| names.contains(&a.split('=').next().unwrap_or(a)))
    };
    if given(BENCHMARK_OFF) && !given(BENCHMARK_ON) {
        r.run_all.retain(|o| !o.ends_with("(pytest-benchmark)"));
    }
    r.run_all.sort();
    r.run_all.dedup();
}

fn apply_plugin(r: &mut PytestArgs, opt: &LearnedOption, name: &str, values: Vec<String>) {
    note_run_all(r, name);
    // The first long name stands for every spelling (`--no-migrations` is `--nomigrations`).
    let canonical = opt
        .names
        .iter()
        .find(|n| n.starts_with("--"))
        .unwrap_or(&opt.names[0])
        .clone();
    match plugin_effect(opt) {
        Effect::Output => {
            // A report's path is often new per run; its presence stays.
            r.all_args.push(canonical);
            r.needs_reporting = true;
        }
        Effect::Select => {
            r.all_args.push(canonical.clone());
            r.all_args.extend(values.iter().cloned());
            r.selects = true;
            r.selects_impurely = true;
            r.select_args.push(canonical);
            r.select_args.extend(values);
        }
        _ => {
            r.all_args.push(canonical.clone());
            r.all_args.extend(values.iter().cloned());
            r.key_args.push(canonical);
            r.key_args.extend(values);
        }
    }
}

#[cfg(test)]
mod learned_tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn opt(names: &[&str], arity: Arity, group: &str, help: &str) -> LearnedOption {
        LearnedOption {
            names: s(names),
            arity,
            group: group.into(),
            dest: String::new(),
            help: help.into(),
        }
    }

    fn table() -> Learned {
        Learned {
            options: vec![
                opt(&["--timeout"], Arity::One, "timeout", "Timeout in seconds"),
                opt(
                    &["--html"],
                    Arity::One,
                    "terminal reporting",
                    "create html report",
                ),
                opt(
                    &["--reuse-db"],
                    Arity::None,
                    "django",
                    "Re-use the testing database",
                ),
                opt(
                    &["--metadata"],
                    Arity::Exactly(2),
                    "pytest-metadata",
                    "additional metadata",
                ),
                opt(
                    &["--testmon"],
                    Arity::None,
                    "testmon",
                    "Select tests affected by changes",
                ),
                opt(
                    &["--benchmark-disable"],
                    Arity::None,
                    "benchmark",
                    "Disable benchmarks",
                ),
                opt(
                    &["--benchmark-min-rounds"],
                    Arity::One,
                    "benchmark",
                    "Minimum rounds",
                ),
            ],
        }
    }

    #[test]
    fn learned_options_enter_the_key_with_their_values() {
        let a = analyze_with(&s(&["--timeout", "30", "--reuse-db", "tests"]), &table());
        assert!(a.understood());
        assert_eq!(a.key_args, s(&["--timeout", "30", "--reuse-db"]));
        assert_eq!(a.positional, s(&["tests"]));
        let b = analyze_with(&s(&["--timeout=31", "tests"]), &table());
        assert_ne!(a.key_args, b.key_args);
        let m = analyze_with(&s(&["--metadata", "k", "v", "t.py"]), &table());
        assert_eq!(m.positional, s(&["t.py"]));
    }

    #[test]
    fn report_options_stay_out_of_the_key() {
        let a = analyze_with(
            &s(&["--html", "r1.html", "--self-contained-html"]),
            &table(),
        );
        assert!(a.understood() && a.key_args.is_empty() && a.needs_reporting);
        let b = analyze_with(&s(&["--html=r2.html"]), &Learned::default());
        assert!(b.understood() && b.key_args.is_empty());
    }

    #[test]
    fn selecting_plugin_options_keep_collection_pytests() {
        let a = analyze_with(&s(&["--testmon"]), &table());
        assert!(a.selects && a.selects_impurely && a.key_args.is_empty());
    }

    #[test]
    fn benchmark_and_snapshot_updates_run_everything() {
        assert_eq!(
            analyze(&s(&["--snapshot-update"])).run_all,
            s(&["--snapshot-update (syrupy)"])
        );
        let t = table();
        assert_eq!(
            analyze_with(&s(&["--benchmark-min-rounds", "3"]), &t)
                .run_all
                .len(),
            1
        );
        assert!(analyze_with(&s(&["--benchmark-disable"]), &t)
            .run_all
            .is_empty());
        assert!(analyze(&s(&["--benchmark-skip", "--benchmark-sort=min"]))
            .run_all
            .is_empty());
    }

    #[test]
    fn unknown_options_still_enter_the_key() {
        let a = analyze(&s(&["--frobnicate", "tests"]));
        assert!(!a.understood());
        assert_eq!(a.key_args, s(&["--frobnicate"]));
    }
}
