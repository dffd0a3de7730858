//! Harness for rpytest's integration tests: copies a fixture project from
//! `tests/fixtures/` into a temp dir, runs stock pytest and the built `rpytest`
//! binary on it with the same arguments, and compares exit codes and per-test
//! outcomes read from the JUnit XML both write.
//!
//! Every `Project` has its own `XDG_RUNTIME_DIR`, so each test talks to its own
//! daemon; dropping the `Project` stops that daemon (and SIGKILLs it if it does
//! not go), so no process outlives the test.
#![allow(dead_code, unused_imports)] // each test binary uses a different part of the harness

mod filters;
mod junit;
mod locate;
mod project;
mod run;

pub use filters::{machine_filters, regex_escape};
pub use junit::{parse_junit, unescape_xml, Outcome, Outcomes};
pub use locate::{fixture_source, pip, python, repo_root, require_fixture_plugin, rpytest_bin};
pub use project::{check, copy_tree, Pair, Project};
pub use run::{
    assert_same, parse_pid, process_alive, Invocation, KillOnDrop, Run, Running, Tool, RUN_TIMEOUT,
};
