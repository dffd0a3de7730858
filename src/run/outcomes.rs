//! The outcomes file `--verify-dropin` reads (`RPYTEST_OUTCOMES_FILE`),
//! written by a recorded run and by a run answered alone.

use std::path::PathBuf;

/// With `RPYTEST_OUTCOMES_FILE` set (by `--verify-dropin`), writes every
/// node's outcome and the exit code there as JSON:
/// `{"exit_code": N, "nodes": {nodeid: outcome}, "cached": [nodeid, ...]}`.
pub(super) fn write_outcomes<'a>(
    code: i32,
    nodes: impl Iterator<Item = (&'a str, &'a str, bool)>,
) -> Result<(), String> {
    let Some(path) = std::env::var_os("RPYTEST_OUTCOMES_FILE") else {
        return Ok(());
    };
    let mut map = serde_json::Map::new();
    let mut cached = Vec::new();
    for (n, o, c) in nodes {
        map.insert(n.to_owned(), serde_json::Value::String(o.to_owned()));
        if c {
            cached.push(serde_json::Value::String(n.to_owned()));
        }
    }
    let doc = serde_json::json!({"exit_code": code, "nodes": map, "cached": cached});
    std::fs::write(&path, doc.to_string())
        .map_err(|e| format!("cannot write {}: {e}", PathBuf::from(path).display()))
}
