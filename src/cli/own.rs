//! rpytest's own options, separated from pytest's.

use clap::{CommandFactory, Parser, ValueEnum};
use std::path::PathBuf;

/// Managing the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DaemonAction {
    /// Show whether a daemon runs for this project and interpreter.
    Status,
    /// Stop it.
    Stop,
    /// Stop it and start a fresh one.
    Restart,
    /// Print the path of its log file and its last lines.
    Logs,
}

/// Managing the result cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CacheAction {
    /// Show how many results and inputs are stored.
    Stats,
    /// Delete every stored result (pytest's --cache-clear is left alone).
    Clear,
    /// Print the recorded test durations as JSON (`{nodeid: seconds}`, the
    /// `.test_durations` format `--shard` reads when it is committed).
    Durations,
}

/// rpytest's own options. Everything else on the command line goes to pytest.
#[derive(Debug, Default, Parser)]
#[command(
    name = "rpytest",
    version,
    disable_help_flag = true,
    disable_version_flag = true,
    about = "A drop-in replacement for pytest: cached results, a warm daemon, native parallelism."
)]
pub struct OwnArgs {
    /// The Python interpreter that runs the tests (default: `[tool.rpytest]
    /// python`, $VIRTUAL_ENV, the project's .venv, the python beside rpytest,
    /// python3 on PATH).
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// Run pytest in a fresh process instead of the warm daemon.
    #[arg(long)]
    pub no_daemon: bool,
    /// Neither read nor write cached results for this run.
    #[arg(long)]
    pub no_cache: bool,
    /// Manage the daemon of this project and interpreter, then exit.
    #[arg(long, value_name = "ACTION")]
    pub daemon: Option<DaemonAction>,
    /// Manage rpytest's result cache, then exit.
    #[arg(long, value_name = "ACTION")]
    pub result_cache: Option<CacheAction>,
    /// Explain why NODEID is not served from the cache, then exit.
    #[arg(long, value_name = "NODEID")]
    pub why: Option<String>,
    /// Run stock pytest, rpytest fresh and rpytest cached with the same
    /// arguments and compare node IDs, outcomes and exit codes.
    #[arg(long, conflicts_with_all = ["daemon", "result_cache", "why"])]
    pub verify_dropin: bool,
    /// With --verify-dropin: also write the comparison as JSON to PATH
    /// (schema: docs/verify-report.md).
    #[arg(long, value_name = "PATH", requires = "verify_dropin")]
    pub verify_report: Option<PathBuf>,
    /// Run only shard K of N (1-based): a deterministic split of the test
    /// files, balanced by the durations in a committed `.test_durations`.
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    pub shard: Option<(usize, usize)>,
    /// Also look results up in this Bazel-HTTP-protocol cache (also
    /// RPYTEST_REMOTE_CACHE, `[tool.rpytest] remote-cache`).
    #[arg(long, value_name = "URL")]
    pub remote_cache: Option<String>,
    /// Store this run's results in the remote cache too (CI on a protected branch).
    #[arg(long)]
    pub remote_cache_upload: bool,
    /// Run every test hermetically, as a rule's `hermetic = true` does: in a
    /// sandbox that shows only first-party code and declared inputs, with a
    /// fixed environment and no network.
    #[arg(long)]
    pub hermetic: bool,
    /// Print which rule governs each test file and every input of its key, then exit.
    #[arg(long, conflicts_with_all = ["daemon", "result_cache", "why", "verify_dropin"])]
    pub show_rules: bool,
}

fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("'{s}' is not K/N with 1 <= K <= N (e.g. --shard 2/3)");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n): (usize, usize) = (
        k.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if k == 0 || n == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

/// rpytest's long options and whether each takes a value, read from the
/// clap definitions above (the only list of them).
fn own_options() -> Vec<(String, bool)> {
    OwnArgs::command()
        .get_arguments()
        .filter_map(|arg| {
            let long = arg.get_long()?;
            let takes = arg.get_action().takes_values();
            Some((format!("--{long}"), takes))
        })
        .collect()
}

/// Splits the command line into rpytest's tokens and pytest's arguments.
/// Nothing after `--` is rpytest's.
pub fn split_args(argv: &[String]) -> (Vec<String>, Vec<String>) {
    let mut own = Vec::new();
    let mut rest = Vec::new();
    let options = own_options();
    let mut i = 0;
    let mut passthrough = false;
    while i < argv.len() {
        let a = &argv[i];
        i += 1;
        if passthrough {
            rest.push(a.clone());
            continue;
        }
        if a == "--" {
            passthrough = true;
            rest.push(a.clone());
            continue;
        }
        let name = a.split('=').next().unwrap_or(a);
        match options.iter().find(|(n, _)| n == name) {
            Some((_, takes)) => {
                own.push(a.clone());
                if *takes && !a.contains('=') && i < argv.len() {
                    own.push(argv[i].clone());
                    i += 1;
                }
            }
            None => rest.push(a.clone()),
        }
    }
    (own, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn own_options_are_picked_out() {
        let (own, rest) = split_args(&s(&[
            "-q",
            "--python",
            "/x/py",
            "daemon",
            "--no-cache",
            "--",
            "--why",
        ]));
        assert_eq!(own, s(&["--python", "/x/py", "--no-cache"]));
        assert_eq!(rest, s(&["-q", "daemon", "--", "--why"]));
        let parsed =
            OwnArgs::try_parse_from(std::iter::once("rpytest".to_string()).chain(own)).unwrap();
        assert!(parsed.no_cache);
    }

    #[test]
    fn bare_words_stay_pytest_arguments() {
        let (own, rest) = split_args(&s(&["daemon", "status", "why"]));
        assert!(own.is_empty());
        assert_eq!(rest.len(), 3);
    }

    #[test]
    fn the_clap_definitions_are_the_list_of_own_options() {
        // The table `split_args` used before it was derived from clap.
        let expected: &[(&str, bool)] = &[
            ("--python", true),
            ("--no-daemon", false),
            ("--no-cache", false),
            ("--daemon", true),
            ("--result-cache", true),
            ("--why", true),
            ("--verify-dropin", false),
            ("--verify-report", true),
            ("--shard", true),
            ("--remote-cache", true),
            ("--remote-cache-upload", false),
            ("--hermetic", false),
            ("--show-rules", false),
        ];
        let mut derived = own_options();
        derived.sort();
        let mut expected: Vec<(String, bool)> =
            expected.iter().map(|(n, t)| (n.to_string(), *t)).collect();
        expected.sort();
        assert_eq!(derived, expected);
    }

    #[test]
    fn every_own_option_is_split_out_with_its_value() {
        for (name, takes) in own_options() {
            let argv = if takes {
                s(&["-x", &name, "VALUE", "tests/"])
            } else {
                s(&["-x", &name, "tests/"])
            };
            let (own, rest) = split_args(&argv);
            let mut want = vec![name.clone()];
            if takes {
                want.push("VALUE".into());
            }
            assert_eq!(own, want, "{name}");
            assert_eq!(rest, s(&["-x", "tests/"]), "{name}");
            // The `--name=value` form is one token.
            let (own, rest) = split_args(&s(&[&format!("{name}=v"), "-q"]));
            assert_eq!(own, vec![format!("{name}=v")]);
            assert_eq!(rest, s(&["-q"]));
        }
    }

    #[test]
    fn own_options_after_double_dash_are_pytest_arguments() {
        let (own, rest) = split_args(&s(&["--no-cache", "--", "--no-daemon", "--python", "x"]));
        assert_eq!(own, s(&["--no-cache"]));
        assert_eq!(rest, s(&["--", "--no-daemon", "--python", "x"]));
    }

    #[test]
    fn pytest_options_that_look_like_own_ones_stay_pytest_arguments() {
        let argv = s(&[
            "--pythonwarnings",
            "error",
            "--pythonwarnings=ignore",
            "--cache-clear",
            "--cache-show",
            "--no-cache-dir",
            "--daemons",
            "--shard-id=1",
            "--python-functions",
            "check_*",
            "-p",
            "no:cacheprovider",
        ]);
        let (own, rest) = split_args(&argv);
        assert!(own.is_empty(), "{own:?}");
        assert_eq!(rest, argv);
    }

    #[test]
    fn an_own_option_without_its_value_is_left_to_clap() {
        let (own, rest) = split_args(&s(&["-q", "--python"]));
        assert_eq!(own, s(&["--python"]));
        assert_eq!(rest, s(&["-q"]));
        let err = OwnArgs::try_parse_from(["rpytest", "--python"]).unwrap_err();
        assert!(err.to_string().contains("--python"), "{err}");
    }
}
