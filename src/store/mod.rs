//! Local storage: the SQLite database in `.rpytest/` under rootdir.
mod db;

pub use db::{FileEntry, NodeResult, RunRecord, Store, StoreWarning, SCHEMA_VERSION};
