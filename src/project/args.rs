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
    o(&["--ignore"], true, Select),
    o(&["--ignore-glob"], true, Select),
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
    /// The last `-r` value (what the short summary shows; pytest keeps the
    /// last one): a run answered without Python honours it only when it
    /// shows nothing that run cannot print (see `run::alone`).
    pub reportchars: Option<String>,
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
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (format!("--{n}"), Some(v.to_owned())),
                None => (a.clone(), None),
            };
            match lookup(&name) {
                Some(opt) => {
                    let value = if opt.takes_value {
                        match inline {
                            Some(v) => Some(v),
                            None if i < args.len() => {
                                i += 1;
                                Some(args[i - 1].clone())
                            }
                            None => None,
                        }
                    } else {
                        None
                    };
                    apply(&mut r, opt, opt.names[0], value);
                }
                None => {
                    r.all_args.push(a.clone());
                    r.unknown_options.push(a.clone());
                    r.rootdir_candidates.push(a.clone());
                    r.key_args.push(a.clone());
                }
            }
            continue;
        }
        // A cluster of short options: `-vx`, `-rA`, `-kexpr`, `-n2`.
        let chars: Vec<char> = a[1..].chars().collect();
        let mut j = 0;
        while j < chars.len() {
            let name = format!("-{}", chars[j]);
            j += 1;
            match lookup(&name) {
                Some(opt) if opt.takes_value => {
                    let rest: String = chars[j..].iter().collect();
                    let value = if !rest.is_empty() {
                        Some(rest)
                    } else if i < args.len() {
                        i += 1;
                        Some(args[i - 1].clone())
                    } else {
                        None
                    };
                    apply(&mut r, opt, opt.names[0], value);
                    break;
                }
                Some(opt) => apply(&mut r, opt, opt.names[0], None),
                None => {
                    r.all_args.push(a.clone());
                    r.unknown_options.push(a.clone());
                    r.rootdir_candidates.push(a.clone());
                    r.key_args.push(a.clone());
                    break;
                }
            }
        }
    }
    r
}

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
        "-n" => r.numprocesses = value.clone(),
        "--dist" => r.dist = value.clone(),
        "-d" => r.dist = Some("load".into()),
        "--maxprocesses" => r.maxprocesses = value.as_deref().and_then(|v| v.parse().ok()),
        "--pdb" | "--trace" => r.debugger = true,
        "--junitxml" => r.junitxml = value.clone(),
        "-r" => r.reportchars = value.clone(),
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
            let light = matches!(
                canonical,
                "-v" | "-q"
                    | "--verbosity"
                    | "-l"
                    | "--no-showlocals"
                    | "--tb"
                    | "--show-capture"
                    | "--full-trace"
                    | "--color"
                    | "--code-highlight"
                    | "--no-header"
                    | "--no-summary"
                    | "--disable-warnings"
                    | "-n"
                    | "--dist"
                    | "--maxprocesses"
                    | "-d"
                    | "--max-worker-restart"
                    | "--tx"
                    | "--px"
                    | "--rsyncdir"
                    | "--rsyncignore"
                    | "--testrunuid"
                    | "--maxschedchunk"
                    | "--loadscope-reorder"
                    | "--no-loadscope-reorder"
                    | "--xfail-tb"
                    | "--no-fold-skipped"
                    | "--force-short-summary"
            ) || canonical == "-r";
            if !light {
                r.needs_reporting = true;
            }
        }
        Effect::Control => {}
    }
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
