//! rpytest: a drop-in replacement for the `pytest` command.
//!
//! The crate is a library with a thin binary (`src/main.rs`). See
//! `docs/pipeline.md` for the stages of one invocation, `docs/protocol.md`
//! for the CLI ⇄ daemon contract and `DESIGN.md` for the architecture.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod cli;
pub mod daemon;
pub mod exit;
pub mod inputs;
pub mod outcome;
pub mod parallel;
pub mod project;
pub mod protocol;
pub mod remote;
pub mod report;
pub mod rules;
pub mod run;
pub mod session;
pub mod settings;
pub mod store;
pub mod verify;
