//! Plugin and conftest options, learned from the sessions' own parser.
//!
//! rpytest's table of pytest's options cannot know a plugin's. When a command
//! line has an option it does not know, the session describes every option
//! its parser holds (python/rpytest/options.py); the description is kept in
//! the store, and from then on the command line is read with it: the
//! option's values enter the key instead of leaving rpytest unsure of what
//! pytest collects.

use crate::project::args::{analyze_with, Learned, LearnedOption};
use crate::protocol::Event;
use crate::settings::Invocation;
use crate::store::Store;

const META: &str = "learned_options";

/// What earlier sessions of this project described.
pub fn load(store: &Store) -> Learned {
    store
        .meta(META)
        .map(|t| Learned::from_json(&t))
        .unwrap_or_default()
}

/// Re-reads the command line with what earlier sessions described.
pub fn apply(inv: &mut Invocation, learned: &Learned) {
    if inv.args.understood() || learned.options.is_empty() {
        return;
    }
    inv.args = analyze_with(&inv.raw_args, learned);
    super::coverage::understand(&mut inv.args);
}

/// Keeps what this run's session described; re-reads the command line with
/// it, so what this run records is keyed as the next run will key it.
pub fn remember(inv: &mut Invocation, store: &Store, events: &[Event]) {
    let Some(options) = events.iter().rev().find_map(|e| match e {
        Event::Options { options } => Some(options),
        _ => None,
    }) else {
        return;
    };
    let mut merged: Vec<LearnedOption> = options.clone();
    // Options of other command lines' plugins (`-p`) stay known.
    for old in load(store).options {
        if !merged
            .iter()
            .any(|o| o.names.iter().any(|n| old.names.contains(n)))
        {
            merged.push(old);
        }
    }
    let _ = store.set_meta(META, &serde_json::to_string(&merged).unwrap_or_default());
    apply(inv, &Learned { options: merged });
}

const PROJECT_HOOKS: &str = "project_session_hooks";

/// Keeps the session hooks (`alone::SESSION_EFFECT_HOOKS`) the project's own
/// plugins implemented in this run's session, added to those of earlier
/// sessions: a plugin loaded by another command line (`-p`, `PYTEST_PLUGINS`)
/// may implement them too, and one more session than needed costs only time.
pub fn remember_project_hooks(store: &Store, events: &[Event]) {
    let mut seen: std::collections::BTreeSet<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Finish { project_hooks, .. } => Some(project_hooks),
            _ => None,
        })
        .flatten()
        .filter(|h| super::alone::is_session_effect_hook(h.rsplit(": ").next().unwrap_or("")))
        .cloned()
        .collect();
    if seen.is_empty() {
        return;
    }
    let old = project_session_hooks(store);
    let before = old.len();
    seen.extend(old);
    if seen.len() != before {
        let list: Vec<&String> = seen.iter().collect();
        let _ = store.set_meta(
            PROJECT_HOOKS,
            &serde_json::to_string(&list).unwrap_or_default(),
        );
    }
}

/// The session hooks earlier sessions saw the project's own plugins
/// implement (`file: hook`).
pub fn project_session_hooks(store: &Store) -> Vec<String> {
    store
        .meta(PROJECT_HOOKS)
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}
