//! `--shard K/N`: which test files this machine runs.
//!
//! The split must be identical on every machine of a CI run, whatever each
//! one has in its local cache, so it depends only on the checkout: the test
//! files rpytest discovers and, for balance, the durations in a committed
//! `.test_durations` file (`{nodeid: seconds}`, the format pytest-split uses;
//! `rpytest --result-cache durations` writes it). Without that file a file's
//! weight is its size. Files pytest collects that rpytest did not discover
//! (plugin collectors) run on shard 1.

use super::schedule;
use std::collections::HashMap;
use std::path::Path;

/// The committed durations file, at rootdir.
pub const DURATIONS_FILE: &str = ".test_durations";

/// Per-file weights: summed committed durations, else the mean of the known
/// files, else (nothing known) the file's size in bytes.
fn weights(root: &Path, files: &[String]) -> Vec<(String, f64)> {
    let per_file: HashMap<String, f64> = std::fs::read(root.join(DURATIONS_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<HashMap<String, f64>>(&b).ok())
        .map(|m| {
            m.into_iter().fold(HashMap::new(), |mut acc, (node, d)| {
                let file = node.split("::").next().unwrap_or("").to_owned();
                *acc.entry(file).or_insert(0.0) += d.max(0.0);
                acc
            })
        })
        .unwrap_or_default();
    let known: Vec<f64> = files
        .iter()
        .filter_map(|f| per_file.get(f).copied())
        .collect();
    if known.is_empty() {
        return files
            .iter()
            .map(|f| {
                let size = std::fs::metadata(root.join(f))
                    .map(|m| m.len())
                    .unwrap_or(0);
                (f.clone(), size as f64)
            })
            .collect();
    }
    let mean = known.iter().sum::<f64>() / known.len() as f64;
    files
        .iter()
        .map(|f| (f.clone(), per_file.get(f).copied().unwrap_or(mean)))
        .collect()
}

/// The files of the other shards (rootdir-relative): what shard `k` of `n` drops.
pub fn excluded(root: &Path, files: &[String], k: usize, n: usize) -> Vec<String> {
    let mine: std::collections::HashSet<String> = schedule::shard(&weights(root, files), k, n)
        .into_iter()
        .collect();
    files
        .iter()
        .filter(|f| !mine.contains(*f))
        .cloned()
        .collect()
}
