//! The installed module files sessions imported, kept in the store's meta
//! table between runs (what `inputs::installed` keys).

use super::Store;
use crate::inputs::installed::{Anchors, InstalledFiles};
use crate::protocol::Event;
use std::path::Path;

/// The store's meta entry holding the set (JSON: portable name -> path).
const META: &str = "installed_imports";

impl Store {
    /// The installed module files remembered from earlier sessions.
    pub fn installed_files(&self) -> InstalledFiles {
        self.meta(META)
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default()
    }

    /// Merges what this run's sessions reported into the remembered set; files
    /// that no longer exist are dropped. Call before the post-run keys are
    /// computed, so results are stored under the key the next run computes.
    pub fn remember_installed(&self, events: &[Event]) {
        let reported: Vec<&(String, String)> = events
            .iter()
            .filter_map(|e| match e {
                Event::Installed { files } => Some(files),
                _ => None,
            })
            .flatten()
            .collect();
        if reported.is_empty() {
            return;
        }
        let before = self.installed_files();
        let mut files = before.clone();
        for (name, path) in reported {
            files.insert(name.clone(), path.clone());
        }
        files.retain(|_, path| Path::new(path).exists());
        if files != before {
            let _ = self.set_meta(META, &serde_json::to_string(&files).unwrap_or_default());
        }
    }

    /// Merges another machine's set (`export`) into this machine's, for the
    /// files that exist here too; returns whether the set changed. A file that
    /// does not exist here keeps this machine's key from matching: a miss, never
    /// a false hit.
    pub fn import_installed(&self, exported: &[(String, String)], anchors: &Anchors) -> bool {
        let before = self.installed_files();
        let mut files = before.clone();
        for (name, location) in exported {
            if files.contains_key(name) {
                continue;
            }
            if let Some(path) = anchors.local(location) {
                files.insert(name.clone(), path);
            }
        }
        if files == before {
            return false;
        }
        self.set_meta(META, &serde_json::to_string(&files).unwrap_or_default())
            .is_ok()
    }
}
