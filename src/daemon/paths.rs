//! Where a daemon's socket, log and warm set live.
//!
//! One daemon per (rootdir, interpreter). Unix socket paths are limited to
//! about 100 bytes, so the socket is named by a short hash in a per-user
//! directory of mode 0700.

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
    /// The paths for `rootdir` and `python`; creates the 0700 directory.
    pub fn new(rootdir: &Path, python: &Path) -> std::io::Result<DaemonPaths> {
        let dir = socket_dir()?;
        let mut h = blake3::Hasher::new();
        h.update(rootdir.as_os_str().as_encoded_bytes());
        h.update(b"\0");
        h.update(python.as_os_str().as_encoded_bytes());
        let name = &h.finalize().to_hex()[..16];
        Ok(DaemonPaths {
            socket: dir.join(format!("{name}.sock")),
            log: dir.join(format!("{name}.log")),
            warm: dir.join(format!("{name}.warm.json")),
            dir,
        })
    }
}

fn socket_dir() -> std::io::Result<PathBuf> {
    let uid = unsafe { libc::getuid() };
    let base = match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d).join("rpytest"),
        None => PathBuf::from(format!("/tmp/rpytest-{uid}")),
    };
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&base)
    {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(&base)?;
    if !meta.is_dir() || meta.uid() != uid {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("{} is not a directory owned by uid {uid}", base.display()),
        ));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(base)
}
