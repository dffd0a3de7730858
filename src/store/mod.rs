//! Local storage: the SQLite database in `.rpytest/` under rootdir.
mod coverage;
mod db;
mod installed;
mod open;

pub use coverage::CoverageRow;
pub(crate) use db::par_map;
pub use db::{FileEntry, Lookup, NodeResult, Origin, RemoteTrust, RunRecord, Store, StoreWarning};
pub use open::{on_lock_wait, SCHEMA_VERSION, WAIT_BOUND};
