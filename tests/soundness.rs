//! The soundness matrix: every known way a cached result could hide a
//! failure. Each test warms the cache, makes one change a user would make,
//! and asserts that rpytest's per-node outcomes and exit code equal stock
//! pytest's on an identical copy, with bytecode writing on (as on users'
//! machines). One module per family of causes.

mod common;

#[path = "soundness/installed.rs"]
mod installed;
#[path = "soundness/keys.rs"]
mod keys;
#[path = "soundness/recording.rs"]
mod recording;
