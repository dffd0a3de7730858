//! Content digests of project files (blake3) behind a stat cache.
//!
//! A file is named by its root-relative POSIX path. Its digest is reused from
//! the stat cache when size, mtime, ctime and inode are unchanged and the
//! entry is not "racy" (see [`RACY_WINDOW_NS`]); otherwise the file is read
//! and hashed again. The ctime is what git's index checks too: an in-place
//! edit that keeps the size and restores the mtime (`touch -r`, `os.utime`,
//! tools that preserve times) cannot restore it. Within one [`FileHasher`]
//! every file is read at most once.

use crate::inputs::fasthash::{FastMap, FastSet};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A blake3 digest.
pub type Digest = [u8; 32];

/// An entry recorded less than this long after the file's mtime or ctime is
/// not trusted (the racy-git rule): the file may have been written again
/// within the same timestamp tick, leaving its stat unchanged. Generous
/// against the coarsest granularity in use (FAT's 2 s; ext4 and most others
/// have 1 ns, some network filesystems 1 s).
pub const RACY_WINDOW_NS: i64 = 2_000_000_000;

/// Lowercase hex form of a digest.
pub fn hex(d: &Digest) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(64);
    for b in d {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 0xf) as usize] as char);
    }
    s
}

/// blake3 of a byte string.
pub fn digest_bytes(bytes: &[u8]) -> Digest {
    *blake3::hash(bytes).as_bytes()
}

/// Failure to hash a project file.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The path exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// Root-relative path.
        path: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The path names a directory or another non-regular file.
    #[error("{path} is not a regular file")]
    NotAFile {
        /// Root-relative path.
        path: String,
    },
}

/// What the stat cache remembers about one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatEntry {
    /// File size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Status-change time, nanoseconds since the Unix epoch (-1: unknown,
    /// an entry of an older rpytest that never matches).
    pub ctime_ns: i64,
    /// Inode number.
    pub ino: u64,
    /// blake3 of the content.
    pub digest: Digest,
    /// When the stat was taken, nanoseconds since the Unix epoch (racy-git rule).
    pub recorded_ns: i64,
}

impl StatEntry {
    /// Whether this entry can stand for a file whose current stat is `now`.
    fn matches(&self, size: u64, mtime_ns: i64, ctime_ns: i64, ino: u64) -> bool {
        self.size == size
            && self.mtime_ns == mtime_ns
            && self.ctime_ns == ctime_ns
            && self.ino == ino
            && self
                .recorded_ns
                .saturating_sub(self.mtime_ns.max(self.ctime_ns))
                >= RACY_WINDOW_NS
    }
}

/// Hashes files under a root, reusing and updating a stat cache.
///
/// The persisted entries are shared read-only (`base`) so that [`fork`]ed
/// hashers can digest files on other threads; what a hasher learns goes to
/// its own overlay and is merged back with [`absorb`].
///
/// [`fork`]: FileHasher::fork
/// [`absorb`]: FileHasher::absorb
/// The stat cache in memory: root-relative path → entry.
pub type StatMap = FastMap<String, StatEntry>;

#[derive(Debug)]
pub struct FileHasher {
    root: PathBuf,
    base: Arc<StatMap>,
    /// New or updated entries of this run (a subset of `changed` or not yet persisted).
    entries: StatMap,
    changed: FastSet<String>,
    removed: FastSet<String>,
    memo: FastMap<String, Option<Digest>>,
}

fn now_ns() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

fn mtime_ns_of(md: &std::fs::Metadata) -> i64 {
    md.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(md.mtime_nsec())
}

fn ctime_ns_of(md: &std::fs::Metadata) -> i64 {
    md.ctime()
        .saturating_mul(1_000_000_000)
        .saturating_add(md.ctime_nsec())
}

fn is_missing(e: &io::Error) -> bool {
    // ENOTDIR: a path component is a file, so the file cannot exist.
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

impl FileHasher {
    /// A hasher over `root` starting from a persisted stat cache.
    pub fn new(root: PathBuf, entries: StatMap) -> Self {
        FileHasher {
            root,
            base: Arc::new(entries),
            entries: StatMap::default(),
            changed: FastSet::default(),
            removed: FastSet::default(),
            memo: FastMap::default(),
        }
    }

    /// A hasher over the same root and persisted entries, for another thread.
    pub fn fork(&self) -> FileHasher {
        FileHasher {
            root: self.root.clone(),
            base: Arc::clone(&self.base),
            entries: StatMap::default(),
            changed: FastSet::default(),
            removed: FastSet::default(),
            memo: FastMap::default(),
        }
    }

    /// Takes over what a fork learned (new digests, removed files).
    pub fn absorb(&mut self, other: FileHasher) {
        for rel in other.removed {
            self.entries.remove(&rel);
            self.changed.remove(&rel);
            self.removed.insert(rel);
        }
        for (rel, e) in other.entries {
            self.removed.remove(&rel);
            if other.changed.contains(&rel) {
                self.changed.insert(rel.clone());
            }
            self.entries.insert(rel, e);
        }
        for (rel, d) in other.memo {
            self.memo.entry(rel).or_insert(d);
        }
    }

    /// Forgets the digests memoized so far: each file is checked against
    /// the stat cache again (a new view of the tree, after a run).
    pub fn forget_digests(&mut self) {
        self.memo.clear();
    }

    /// The entry standing for `rel` now: this run's, else the persisted one.
    fn entry(&self, rel: &str) -> Option<&StatEntry> {
        match self.entries.get(rel) {
            Some(e) => Some(e),
            None if self.removed.contains(rel) => None,
            None => self.base.get(rel),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// Digest of `rel` (root-relative POSIX path); `None` when it does not exist.
    pub fn digest(&mut self, rel: &str) -> Result<Option<Digest>, HashError> {
        if let Some(d) = self.memo.get(rel) {
            return Ok(*d);
        }
        let d = self.compute(rel)?;
        self.memo.insert(rel.to_owned(), d);
        Ok(d)
    }

    fn compute(&mut self, rel: &str) -> Result<Option<Digest>, HashError> {
        let path = self.root.join(rel);
        let io_err = |source: io::Error| HashError::Io {
            path: rel.to_owned(),
            source,
        };
        let md = match std::fs::metadata(&path) {
            Ok(md) => md,
            Err(e) if is_missing(&e) => {
                self.forget(rel);
                return Ok(None);
            }
            Err(e) => return Err(io_err(e)),
        };
        if !md.is_file() {
            self.forget(rel);
            return Err(HashError::NotAFile {
                path: rel.to_owned(),
            });
        }
        if let Some(e) = self.entry(rel) {
            if e.matches(md.len(), mtime_ns_of(&md), ctime_ns_of(&md), md.ino()) {
                return Ok(Some(e.digest));
            }
        }
        // Stat the open file *before* reading: if the file changes while we
        // read, the recorded stat is older than the content and the next run
        // sees a different stat and hashes again (never the reverse).
        let recorded_ns = now_ns();
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if is_missing(&e) => {
                self.forget(rel);
                return Ok(None);
            }
            Err(e) => return Err(io_err(e)),
        };
        let md = f.metadata().map_err(io_err)?;
        let mut buf = Vec::with_capacity(md.len() as usize);
        f.read_to_end(&mut buf).map_err(io_err)?;
        let digest = digest_bytes(&buf);
        let entry = StatEntry {
            size: md.len(),
            mtime_ns: mtime_ns_of(&md),
            ctime_ns: ctime_ns_of(&md),
            ino: md.ino(),
            digest,
            recorded_ns,
        };
        if self.entry(rel) != Some(&entry) {
            self.entries.insert(rel.to_owned(), entry);
            self.changed.insert(rel.to_owned());
        }
        self.removed.remove(rel);
        Ok(Some(digest))
    }

    fn forget(&mut self, rel: &str) {
        let known = self.entries.remove(rel).is_some() || self.base.contains_key(rel);
        if known {
            self.removed.insert(rel.to_owned());
        }
        self.changed.remove(rel);
    }

    /// Entries added or updated during this run (to persist).
    pub fn changed_entries(&self) -> impl Iterator<Item = (&String, &StatEntry)> {
        self.entries
            .iter()
            .filter(|(k, _)| self.changed.contains(*k))
    }

    /// Paths whose entries were dropped because the file no longer exists.
    pub fn removed_entries(&self) -> impl Iterator<Item = &String> {
        self.removed.iter()
    }

    /// The whole stat cache after this run.
    pub fn into_entries(self) -> StatMap {
        let mut all = Arc::try_unwrap(self.base).unwrap_or_else(|b| (*b).clone());
        for rel in &self.removed {
            all.remove(rel);
        }
        all.extend(self.entries);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn set_mtime(path: &std::path::Path, secs_ago: i64) {
        let t = SystemTime::now() - std::time::Duration::from_secs(secs_ago as u64);
        let f = fs::File::options().write(true).open(path).unwrap();
        f.set_modified(t).unwrap();
    }

    #[test]
    fn hex_is_lowercase_64_chars() {
        let mut d = [0u8; 32];
        d[0] = 0xab;
        d[31] = 0x01;
        let h = hex(&d);
        assert_eq!(h.len(), 64);
        assert!(h.starts_with("ab00"));
        assert!(h.ends_with("01"));
    }

    #[test]
    fn digest_matches_blake3_and_missing_is_none() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("pkg")).unwrap();
        fs::write(dir.path().join("pkg/a.py"), b"x = 1\n").unwrap();
        let mut h = FileHasher::new(dir.path().to_path_buf(), StatMap::default());
        assert_eq!(
            h.digest("pkg/a.py").unwrap(),
            Some(digest_bytes(b"x = 1\n"))
        );
        assert_eq!(h.digest("pkg/missing.py").unwrap(), None);
        assert_eq!(h.digest("pkg/a.py/sub").unwrap(), None);
        assert!(matches!(h.digest("pkg"), Err(HashError::NotAFile { .. })));
        let changed: Vec<_> = h.changed_entries().map(|(k, _)| k.clone()).collect();
        assert_eq!(changed, vec!["pkg/a.py".to_string()]);
    }

    #[test]
    fn stat_hit_uses_cached_digest_without_reading() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.py");
        fs::write(&p, b"one").unwrap();
        set_mtime(&p, 100);
        let mut h = FileHasher::new(dir.path().to_path_buf(), StatMap::default());
        h.digest("a.py").unwrap();
        let mut entries = h.into_entries();
        // Poison the cached digest: a hit must return it, proving no re-read.
        // (Recorded as if long after the ctime, which is "now" here.)
        let e = entries.get_mut("a.py").unwrap();
        e.digest = [7u8; 32];
        e.recorded_ns += 10 * RACY_WINDOW_NS;
        let mut h = FileHasher::new(dir.path().to_path_buf(), entries);
        assert_eq!(h.digest("a.py").unwrap(), Some([7u8; 32]));
        assert_eq!(h.changed_entries().count(), 0);
    }

    #[test]
    fn stat_change_forces_rehash() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.py");
        fs::write(&p, b"one").unwrap();
        set_mtime(&p, 100);
        let mut h = FileHasher::new(dir.path().to_path_buf(), StatMap::default());
        h.digest("a.py").unwrap();
        let entries = h.into_entries();
        fs::write(&p, b"two!").unwrap();
        set_mtime(&p, 50);
        let mut h = FileHasher::new(dir.path().to_path_buf(), entries);
        assert_eq!(h.digest("a.py").unwrap(), Some(digest_bytes(b"two!")));
        assert_eq!(h.changed_entries().count(), 1);
    }

    #[test]
    fn same_size_edit_with_restored_mtime_is_seen_by_its_ctime() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        fs::write(&p, b"one").unwrap();
        set_mtime(&p, 100);
        let old_mtime = fs::metadata(&p).unwrap().modified().unwrap();
        let mut h = FileHasher::new(dir.path().to_path_buf(), StatMap::default());
        h.digest("a.txt").unwrap();
        let mut entries = h.into_entries();
        // As if the entry had been recorded long after the file's last change
        // (ctime is "now" here): only the ctime can tell the edit apart.
        entries.get_mut("a.txt").unwrap().recorded_ns += 10 * RACY_WINDOW_NS;
        let mut h = FileHasher::new(dir.path().to_path_buf(), entries.clone());
        assert_eq!(h.digest("a.txt").unwrap(), Some(digest_bytes(b"one")));
        assert_eq!(h.changed_entries().count(), 0, "a trusted entry is reused");
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(&p, b"two").unwrap();
        fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(old_mtime)
            .unwrap();
        let mut h = FileHasher::new(dir.path().to_path_buf(), entries);
        assert_eq!(h.digest("a.txt").unwrap(), Some(digest_bytes(b"two")));
    }

    #[test]
    fn racy_entry_is_reread_even_with_same_stat() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.py");
        fs::write(&p, b"one").unwrap();
        // mtime is "now": the entry recorded now is racy.
        let mut h = FileHasher::new(dir.path().to_path_buf(), StatMap::default());
        h.digest("a.py").unwrap();
        let mut entries = h.into_entries();
        entries.get_mut("a.py").unwrap().digest = [7u8; 32];
        let mut h = FileHasher::new(dir.path().to_path_buf(), entries);
        assert_eq!(h.digest("a.py").unwrap(), Some(digest_bytes(b"one")));
    }

    #[test]
    fn memoized_within_a_run_and_deleted_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.py");
        fs::write(&p, b"one").unwrap();
        set_mtime(&p, 100);
        let mut h = FileHasher::new(dir.path().to_path_buf(), StatMap::default());
        let d1 = h.digest("a.py").unwrap();
        fs::write(&p, b"changed during the run").unwrap();
        assert_eq!(h.digest("a.py").unwrap(), d1);
        let entries = h.into_entries();
        fs::remove_file(&p).unwrap();
        let mut h = FileHasher::new(dir.path().to_path_buf(), entries);
        assert_eq!(h.digest("a.py").unwrap(), None);
        assert_eq!(
            h.removed_entries().cloned().collect::<Vec<_>>(),
            vec!["a.py"]
        );
        assert!(h.into_entries().is_empty());
    }
}
