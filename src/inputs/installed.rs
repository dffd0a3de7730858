//! Installed code as inputs: the module files outside the project and the
//! standard library that sessions imported, keyed by content.
//!
//! The distributions listing (`distributions` in run/plan.rs) keys what pip
//! *recorded*: each dist-info's RECORD. That misses code whose bytes are not
//! what RECORD says or that no RECORD lists: a file edited in place in
//! site-packages, an editable install (its source lives outside
//! site-packages), a module a `.pth` file imports, `sitecustomize`. So every
//! session reports the installed module files it imported
//! (python/rpytest/installed.py) and they enter the global key by content.
//!
//! * The set only grows (like the search roots): a module imported by a test
//!   that is now served from the cache stays an input. A file that no longer
//!   exists leaves the set when a session reports again.
//! * It is global: an edit of any imported installed file re-runs every test,
//!   which is sound and rare; attributing installed modules per test file is
//!   the recorder's business.
//! * Keys name each file `installed:<module>:<basename>` (no absolute path,
//!   so clones and machines with the same environment share keys); the path
//!   on this machine is kept in the store only to hash it. Digests go through
//!   the stat cache: an unchanged environment costs one stat per file.
//!
//! The listing of the site directories (`site_entries`: names, `.pth`
//! contents, RECORD stamps) is read once per process and shared by the
//! global key (run/keys.rs `distributions`) and the daemon's fingerprint
//! (daemon/spawn.rs `site_listing`).

use crate::inputs::key::{Inputs, KeyBuilder};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

/// Portable name -> absolute path on this machine.
pub type InstalledFiles = BTreeMap<String, String>;

/// Where the interpreter keeps installed code, and the project's root: the
/// anchors that make a path portable between machines.
pub struct Anchors<'a> {
    pub site_dirs: &'a [String],
    pub prefix: &'a str,
    pub root: &'a Path,
}

impl<'a> Anchors<'a> {
    /// The anchors of `info`'s interpreter and the project at `root`.
    pub fn of(info: &'a crate::project::interpreter::InterpreterInfo, root: &'a Path) -> Self {
        Anchors {
            site_dirs: &info.site_dirs,
            prefix: &info.prefix,
            root,
        }
    }

    /// `site:<rel>` under a site directory, `prefix:<rel>` under the
    /// interpreter's prefix, `root:<rel>` beside the project (an editable
    /// sibling checkout), else the absolute path.
    fn portable(&self, path: &str) -> String {
        let p = Path::new(path);
        for dir in self.site_dirs {
            if let Ok(rel) = p.strip_prefix(dir) {
                return format!("site:{}", rel.display());
            }
        }
        if let Ok(rel) = p.strip_prefix(self.prefix) {
            return format!("prefix:{}", rel.display());
        }
        let mut up = String::new();
        let mut base = Some(self.root);
        while let Some(b) = base {
            if let Ok(rel) = p.strip_prefix(b) {
                return format!("root:{up}{}", rel.display());
            }
            up.push_str("../");
            base = b.parent().filter(|parent| parent.parent().is_some());
        }
        path.to_owned()
    }

    /// The path on this machine of a portable location, if it exists here.
    pub fn local(&self, location: &str) -> Option<String> {
        let candidates: Vec<std::path::PathBuf> = if let Some(rel) = location.strip_prefix("site:")
        {
            self.site_dirs
                .iter()
                .map(|d| Path::new(d).join(rel))
                .collect()
        } else if let Some(rel) = location.strip_prefix("prefix:") {
            vec![Path::new(self.prefix).join(rel)]
        } else if let Some(rel) = location.strip_prefix("root:") {
            vec![self.root.join(rel)]
        } else {
            vec![std::path::PathBuf::from(location)]
        };
        candidates
            .into_iter()
            .find(|c| c.is_file())
            .map(|c| c.to_string_lossy().into_owned())
    }
}

/// The remembered set with portable locations, for another machine
/// (the remote cache's dependency snapshot).
pub fn export(files: &InstalledFiles, anchors: &Anchors) -> Vec<(String, String)> {
    files
        .iter()
        .map(|(name, path)| (name.clone(), anchors.portable(path)))
        .collect()
}

/// Adds one `installed:<name>` input per remembered file, labelled by content.
pub fn add_to(inputs: &mut Inputs, files: &InstalledFiles, builder: &mut KeyBuilder) {
    for (name, path) in files {
        inputs.insert(format!("installed:{name}"), builder.file_label(path));
    }
}

/// The installation records in a site-packages directory, sorted:
/// `*.dist-info`, `*.egg-info`, `*.pth`, `*.egg-link`. Read once per process.
pub fn distribution_names(dir: &str) -> Vec<String> {
    static LISTINGS: OnceLock<Mutex<HashMap<String, Arc<Vec<String>>>>> = OnceLock::new();
    let memo = LISTINGS.get_or_init(Default::default);
    if let Some(names) = memo.lock().ok().and_then(|m| m.get(dir).cloned()) {
        return names.to_vec();
    }
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    [".dist-info", ".egg-info", ".pth", ".egg-link"]
                        .iter()
                        .any(|ext| n.ends_with(ext))
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    if let Ok(mut m) = memo.lock() {
        m.insert(dir.to_owned(), Arc::new(names.clone()));
    }
    names
}

/// One installation record in a site directory.
pub struct SiteEntry {
    /// Its file name (`pkg-1.0.dist-info`, `x.pth`, ...).
    pub name: String,
    pub path: std::path::PathBuf,
    /// The content of a `.pth` or `.egg-link` file.
    pub text: Option<String>,
    /// A dist-info's RECORD: size, mtime seconds and nanoseconds.
    pub record_stamp: Option<(u64, i64, i64)>,
}

/// The installation records of `site_dirs`, in order, read once per process.
pub fn site_entries(site_dirs: &[String]) -> Arc<Vec<SiteEntry>> {
    type Memo = Mutex<HashMap<Vec<String>, Arc<Vec<SiteEntry>>>>;
    static ENTRIES: OnceLock<Memo> = OnceLock::new();
    let memo = ENTRIES.get_or_init(Default::default);
    if let Some(e) = memo.lock().ok().and_then(|m| m.get(site_dirs).cloned()) {
        return e;
    }
    let mut out = Vec::new();
    for dir in site_dirs {
        for name in distribution_names(dir) {
            use std::os::unix::fs::MetadataExt;
            let path = Path::new(dir).join(&name);
            let text = (name.ends_with(".pth") || name.ends_with(".egg-link"))
                .then(|| std::fs::read_to_string(&path).ok())
                .flatten();
            let record_stamp = name
                .ends_with(".dist-info")
                .then(|| std::fs::metadata(path.join("RECORD")).ok())
                .flatten()
                .map(|m| (m.size(), m.mtime(), m.mtime_nsec()));
            out.push(SiteEntry {
                name,
                path,
                text,
                record_stamp,
            });
        }
    }
    let out = Arc::new(out);
    if let Ok(mut m) = memo.lock() {
        m.insert(site_dirs.to_vec(), Arc::clone(&out));
    }
    out
}
