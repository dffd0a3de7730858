//! The project: rootdir and ini discovery, pytest arguments, the interpreter.
pub mod args;
pub mod ini;
pub mod interpreter;
pub mod rootdir;
