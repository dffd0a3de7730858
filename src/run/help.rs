//! `--help` and `--version`: pytest's answer, then rpytest's own. Neither
//! starts a daemon nor opens the cache (no `.rpytest/` appears).

use crate::cli::OwnArgs;
use crate::exit;
use crate::project::interpreter;
use crate::report;
use crate::settings::Invocation;
use clap::CommandFactory;
use std::process::{Command, Stdio};

/// Answers `--help` (`help`) or `--version`: pytest's answer, then rpytest's.
pub fn answer(inv: &Invocation, help: bool) -> i32 {
    let python = interpreter::find_for(
        inv.settings.python_flag.as_deref(),
        inv.settings.python_config.as_deref(),
        &inv.cwd,
        &inv.setup.rootdir,
    )
    .ok()
    .map(|i| i.path)
    .filter(|p| p.exists());
    let mut code = exit::OK;
    if let Some(python) = python {
        // pytest's own answer, as the command gives it (`usage: rpytest
        // [options]`, where `python -m pytest` would say `__main__.py`).
        let status = Command::new(&python)
            .args([
                "-c",
                // pytest >= 9.1 deprecates console_main for callers; its
                // internal entry point names the program through _get_prog_name.
                "import sys, pytest; from _pytest import config as c; sys.argv[0] = 'rpytest'; \
                 f = getattr(c, '_console_main', None); \
                 f is not None and setattr(c, '_get_prog_name', lambda argv: 'rpytest'); \
                 sys.exit((f or pytest.console_main)())",
            ])
            .args(&inv.pytest_argv)
            .current_dir(&inv.cwd)
            .stdin(Stdio::null())
            .status();
        match status {
            Ok(s) => code = s.code().unwrap_or(exit::INTERNAL_ERROR),
            Err(e) => report::warning(&format!("could not run {}: {e}", python.display())),
        }
    } else {
        report::warning("no Python interpreter found: pytest's own part is missing (see --python)");
    }
    if help {
        report::out(&own_help());
    } else {
        report::out(&format!("rpytest {}", env!("CARGO_PKG_VERSION")));
    }
    code
}

/// rpytest's options, laid out as pytest lays out an option group.
pub fn own_help() -> String {
    let cmd = OwnArgs::command();
    let mut out = String::from(
        "\nrpytest (a drop-in pytest: cached results, a warm daemon, native parallelism):\n",
    );
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        let takes = arg.get_num_args().map_or(true, |n| n.takes_values())
            && !matches!(arg.get_action(), clap::ArgAction::SetTrue);
        let mut name = format!("--{long}");
        if takes {
            let value = arg
                .get_value_names()
                .and_then(|v| v.first())
                .map(|v| v.to_string())
                .unwrap_or_else(|| "VALUE".into());
            let choices: Vec<String> = arg
                .get_possible_values()
                .iter()
                .filter(|p| !p.is_hide_set())
                .map(|p| p.get_name().to_owned())
                .collect();
            if choices.is_empty() {
                name.push_str(&format!("={value}"));
            } else {
                name.push_str(&format!("={{{}}}", choices.join(",")));
            }
        }
        let help = arg
            .get_help()
            .map(|h| h.to_string())
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let lines = wrap(&help, 80);
        let mut rest = lines.iter();
        // pytest's layout: the help starts beside a short name, below a long one.
        if name.len() < 21 {
            let first = rest.next().map(String::as_str).unwrap_or("");
            out.push_str(&format!("  {name:<22}{first}\n"));
        } else {
            out.push_str(&format!("  {name}\n"));
        }
        for line in rest {
            out.push_str(&format!("                        {line}\n"));
        }
    }
    out.push_str(
        "\nEnvironment: RPYTEST_NO_DAEMON, RPYTEST_NO_CACHE, RPYTEST_IDLE_TIMEOUT,\n\
         RPYTEST_MAX_DAEMONS, RPYTEST_REMOTE_CACHE. Configuration: [tool.rpytest] in\n\
         pyproject.toml or rpytest.toml.",
    );
    out
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.saturating_sub(24).max(20);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}
