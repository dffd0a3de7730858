//! Soundness: what enters the keys in Rust (invocation directory, stat cache, ini sections, selection on a fully cached project).

#[allow(unused_imports)]
use super::common;
