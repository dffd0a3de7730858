//! Where a daemon's socket, log and warm set live.
//!
//! One daemon per (rootdir, interpreter). Unix socket paths are limited to
//! about 100 bytes, so the socket is named by a short hash in a per-user
//! directory of mode 0700. A directory another user made first (a shared
//! `/tmp`) is passed over for the next candidate, never a reason to fail.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The files of one daemon.
#[derive(Debug, Clone)]
pub struct DaemonPaths {
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    pub warm: PathBuf,
}

impl DaemonPaths {
    /// The paths for `rootdir` and `python` in the first private directory
    /// that can be had (see `socket_dir`); creates it.
    pub fn new(rootdir: &Path, python: &Path) -> std::io::Result<DaemonPaths> {
        let (dir, _) = socket_dir()?;
        Ok(Self::inside(dir, rootdir, python))
    }

    /// As `new`, also saying which unusable directories were passed over
    /// (another user's `/tmp/rpytest-<uid>`): the user should know.
    pub fn find(rootdir: &Path, python: &Path) -> std::io::Result<(DaemonPaths, Vec<String>)> {
        let (dir, skipped) = socket_dir()?;
        Ok((Self::inside(dir, rootdir, python), skipped))
    }

    fn inside(dir: PathBuf, rootdir: &Path, python: &Path) -> DaemonPaths {
        let mut h = blake3::Hasher::new();
        h.update(rootdir.as_os_str().as_encoded_bytes());
        h.update(b"\0");
        h.update(python.as_os_str().as_encoded_bytes());
        let name = &h.finalize().to_hex()[..16];
        DaemonPaths {
            socket: dir.join(format!("{name}.sock")),
            log: dir.join(format!("{name}.log")),
            warm: dir.join(format!("{name}.warm.json")),
            dir,
        }
    }
}

/// Longest directory whose `<16 hex>.sock` still fits in `sun_path` (108
/// bytes with its NUL on Linux, 104 on BSDs).
const MAX_DIR: usize = 104 - 1 - 21 - 1;

/// Where the sockets may live, best first: `$XDG_RUNTIME_DIR/rpytest` (made
/// for this), `$TMPDIR/rpytest-<uid>` (default `/tmp`), then a directory in
/// the user's cache dir, which no other user can create first.
fn candidates(uid: u32) -> Vec<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let mut out = Vec::new();
    if let Some(d) = env("XDG_RUNTIME_DIR").filter(|d| d.is_absolute()) {
        out.push(d.join("rpytest"));
    }
    out.push(std::env::temp_dir().join(format!("rpytest-{uid}")));
    let cache = env("XDG_CACHE_HOME")
        .filter(|d| d.is_absolute())
        .or_else(|| env("HOME").map(|h| h.join(".cache")));
    if let Some(c) = cache {
        out.push(c.join("rpytest").join("run"));
    }
    out
}

/// The first candidate that is (or can be made) a directory of ours with
/// mode 0700, and the reasons the ones before it were passed over.
fn socket_dir() -> std::io::Result<(PathBuf, Vec<String>)> {
    let uid = unsafe { libc::getuid() };
    let mut skipped = Vec::new();
    for dir in candidates(uid) {
        if dir.as_os_str().len() > MAX_DIR {
            skipped.push(format!("{} (too long for a socket path)", dir.display()));
            continue;
        }
        match private_dir(&dir, uid) {
            Ok(()) => return Ok((dir, skipped)),
            Err(e) => skipped.push(format!("{} ({e})", dir.display())),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!(
            "no private directory for the daemon's socket: {}",
            skipped.join("; ")
        ),
    ))
}

/// Makes `dir` a 0700 directory owned by `uid`, or says why it is not one.
/// A directory someone else owns (or a symlink) is never used: its owner
/// could swap the socket and hijack the sessions.
fn private_dir(dir: &Path, uid: u32) -> std::io::Result<()> {
    if let Some(parent) = dir.parent() {
        if !parent.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
        }
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() || meta.uid() != uid {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("not a directory owned by uid {uid}"),
        ));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}
