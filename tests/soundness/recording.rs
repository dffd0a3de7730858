//! Soundness: what the recorder sees (imports, reads, environment, stdin, the working directory) and that it leaves no trace.

#[allow(unused_imports)]
use super::common;
