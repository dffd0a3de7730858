//! pytest-randomly's `--randomly-seed=last`.
//!
//! `last` is not a seed: pytest-randomly reads the seed of the previous run
//! from pytest's cache (`<cache_dir>/v/randomly_seed`), or draws a new one
//! when the cache has none, and stores the seed it used there. Keyed as the
//! word, `last` would serve the results of whatever seed ran first under it;
//! keyed as the seed it stands for, it shares the results of `--randomly-seed=N`.
//! When the seed cannot be read (no cache value, `--cache-clear`, a cache
//! directory only pytest can resolve, options not yet learned), every test
//! runs; after the run the cache holds the seed that ran, and the results
//! are recorded under it.

use crate::settings::Invocation;

const OPTION: &str = "--randomly-seed";

/// Replaces `last` in the key with the seed it stands for. Returns false
/// when `last` was given and the seed cannot be told before pytest runs.
pub fn resolve_last(inv: &mut Invocation) -> bool {
    if !given_last(&inv.raw_args) {
        return true;
    }
    if !inv.args.understood() {
        return false;
    }
    let Some(seed) = cached_seed(inv) else {
        return false;
    };
    // The outcome key, and every argument (the key of tests that read options).
    for key in [&mut inv.args.key_args, &mut inv.args.all_args] {
        for i in 0..key.len() {
            if key[i] == format!("{OPTION}=last") {
                key[i] = format!("{OPTION}={seed}");
            } else if key[i] == OPTION && key.get(i + 1).map(String::as_str) == Some("last") {
                key[i + 1] = seed.to_string();
            }
        }
    }
    true
}

/// The last `--randomly-seed` given (argparse keeps the last) is `last`.
fn given_last(args: &[String]) -> bool {
    let mut value = None;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            break;
        }
        if let Some(v) = a.strip_prefix(OPTION).and_then(|r| r.strip_prefix('=')) {
            value = Some(v.to_owned());
        } else if a == OPTION {
            value = args.get(i + 1).cloned();
            i += 1;
        }
        i += 1;
    }
    value.as_deref() == Some("last")
}

/// The seed pytest-randomly stored in pytest's cache, as it will read it.
fn cached_seed(inv: &Invocation) -> Option<u64> {
    let dir = super::alone::pytest_cache_dir(inv).ok()??;
    let text = std::fs::read_to_string(dir.join("v").join("randomly_seed")).ok()?;
    text.trim().parse().ok()
}

/// Every test runs: the seed `last` stands for is unknown until pytest runs.
pub fn unresolved_notice(inv: &mut Invocation) {
    if !resolve_last(inv) {
        let why = if inv.args.understood() {
            "no stored seed"
        } else {
            // A first run: rpytest learns pytest-randomly's options from it.
            "its options not yet learned from a session"
        };
        inv.args
            .run_all
            .push(format!("--randomly-seed=last (pytest-randomly, {why})"));
    }
}

/// pytest-randomly is installed and not disabled (`-p no:randomly`): every
/// run prints its seed in the header (`Using --randomly-seed=N`) and stores
/// it in pytest's cache for the next `last`, which only a session does.
pub fn prints_seed(inv: &Invocation, info: &crate::project::interpreter::InterpreterInfo) -> bool {
    let disabled = inv
        .args
        .plugins
        .iter()
        .any(|p| p == "no:randomly" || p == "no:pytest_randomly");
    if disabled {
        return false;
    }
    crate::inputs::installed::site_entries(&info.site_dirs)
        .iter()
        .any(|e| e.name.starts_with("pytest_randomly-") && e.name.ends_with(".dist-info"))
}
