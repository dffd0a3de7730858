//! The native module (`native/`, built by `build.rs` and embedded here):
//! written once into the user's cache directory under a content-addressed
//! name, and handed to each Python process rpytest starts (the daemon, a
//! `--no-daemon` session, a worker) in `RPYTEST_NATIVE_MODULE`. The Python
//! side (`rpytest.native`) takes the variable out of its environment and
//! loads the module; without it (none embedded, `RPYTEST_NATIVE=0`, a file
//! that cannot be written or loaded) sessions use the Python audit hook.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The variable that hands the module's path to Python.
pub const PATH_VAR: &str = "RPYTEST_NATIVE_MODULE";
/// `RPYTEST_NATIVE=0`: no native module (the Python audit hook).
pub const SWITCH_VAR: &str = "RPYTEST_NATIVE";

static MODULE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/rpytest_native.so"));
/// A hash of the embedded module (part of the daemon's fingerprint).
pub const HASH: &str = env!("RPYTEST_NATIVE_HASH");

/// Whether the user turned the native module off.
pub fn disabled() -> bool {
    std::env::var(SWITCH_VAR).is_ok_and(|v| v.trim() == "0")
}

/// The written module's path (written on first use), or None.
pub fn path() -> Option<&'static Path> {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    if MODULE.is_empty() || disabled() {
        return None;
    }
    PATH.get_or_init(|| {
        let dir = cache_dir()?.join("native");
        write_into(&dir).ok()
    })
    .as_deref()
}

/// Hands the module to the Python process `cmd` starts.
pub fn apply(cmd: &mut Command) {
    if let Some(p) = path() {
        cmd.env(PATH_VAR, p);
    }
}

fn cache_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    env("XDG_CACHE_HOME")
        .or_else(|| env("HOME").map(|h| h.join(".cache")))
        .map(|c| c.join("rpytest"))
}

/// Writes the module into `dir` as `rpytest_native-<hash>.so` unless a file
/// of that name and size is there: written to a temporary file and renamed,
/// so a reader never sees half of it and two CLIs at once both succeed.
fn write_into(dir: &Path) -> std::io::Result<PathBuf> {
    let dest = dir.join(format!("rpytest_native-{HASH}.so"));
    if std::fs::metadata(&dest).is_ok_and(|m| m.is_file() && m.len() == MODULE.len() as u64) {
        return Ok(dest);
    }
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let tmp = dir.join(format!(".rpytest_native-{HASH}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(MODULE)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &dest)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|_| dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_once_atomically_under_its_hash() {
        let d = tempfile::tempdir().unwrap();
        let p = write_into(d.path()).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), MODULE);
        assert!(p.file_name().unwrap().to_string_lossy().contains(HASH));
        // a torn file (wrong size) is replaced; no temporary file is left
        std::fs::write(&p, b"torn").unwrap();
        assert_eq!(write_into(d.path()).unwrap(), p);
        assert_eq!(std::fs::read(&p).unwrap(), MODULE);
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1);
    }
}
