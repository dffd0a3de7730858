//! Hands the command line to the runner.
pub use crate::run::run;
