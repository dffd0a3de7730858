//! Local storage: the SQLite database in `.rpytest/` under rootdir.
mod db;

pub use db::{FileEntry, Lookup, NodeResult, RunRecord, Store, StoreWarning, SCHEMA_VERSION};
