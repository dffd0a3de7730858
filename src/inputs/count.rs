//! How many times each key was computed in this process, kept only under
//! `RPYTEST_TRACE` (a run computes every key once; the trace shows it).
//!
//! A key is counted by what it names and its digest: the same file keyed
//! before and after a run counts twice only when both give the same key.
//! A key computed as a digest only (the plan's, no labelled map built) and
//! the same key computed with its labelled inputs (what a run that executed
//! the file stores) are counted apart: each form is computed at most once.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// (what kind of key, what the key names, its digest) → computations.
type Table = Mutex<HashMap<(Kind, String, String), usize>>;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Global,
    File,
    /// A file key computed without its labelled inputs.
    FileDigest,
}

fn table() -> Option<&'static Table> {
    static ON: OnceLock<bool> = OnceLock::new();
    static TABLE: OnceLock<Table> = OnceLock::new();
    ON.get_or_init(|| std::env::var_os("RPYTEST_TRACE").is_some())
        .then(|| TABLE.get_or_init(Default::default))
}

fn add(kind: Kind, name: &str, hex: &str) {
    if let Some(t) = table() {
        if let Ok(mut t) = t.lock() {
            *t.entry((kind, name.to_owned(), hex.to_owned()))
                .or_default() += 1;
        }
    }
}

/// A global key (`kind`: which one) was computed.
pub fn global(kind: &str, hex: &str) {
    add(Kind::Global, kind, hex);
}

/// The key of test file `file` was computed.
pub fn file(file: &str, hex: &str) {
    add(Kind::File, file, hex);
}

/// The key of test file `file` was computed as a digest only.
pub fn file_digest(file: &str, hex: &str) {
    add(Kind::FileDigest, file, hex);
}

/// What was counted, as one line (None when not tracing).
pub fn summary() -> Option<String> {
    let t = table()?.lock().ok()?;
    let (mut g, mut gd, mut f, mut fd, mut most) = (0, 0, 0, 0, 0);
    for ((kind, _, _), n) in t.iter() {
        if *kind == Kind::Global {
            g += n;
            gd += 1;
        } else {
            f += n;
            fd += 1;
        }
        most = most.max(*n);
    }
    let mut repeated: Vec<&str> = t
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|((_, name, _), _)| name.as_str())
        .collect();
    repeated.sort_unstable();
    let mut line = format!(
        "key computations: global {g} ({gd} distinct), files {f} ({fd} distinct), most of one key {most}"
    );
    if !repeated.is_empty() {
        line.push_str(&format!(
            "\nrpytest trace: keys computed more than once: {}",
            repeated.join(", ")
        ));
    }
    Some(line)
}
