//! Inputs of a test file: hashing, the static import graph, test discovery, cache keys.
pub mod conftest;
pub mod count;
pub mod discover;
pub mod fasthash;
pub mod graph;
pub mod hash;
pub mod imports;
pub mod installed;
pub mod key;
pub mod resolve;

pub use conftest::{conftest_chain, conftest_is_local};
pub use graph::{ImportGraph, SourceFiles};
pub use hash::{hex, Digest, FileHasher, HashError, StatEntry};
pub use imports::{parse_imports, ImportRef};
pub use resolve::Resolver;
