//! Starting a daemon when none (or a stale one) answers.
//!
//! A daemon is reused only when its fingerprint (rpytest's version, the
//! protocol, the interpreter file, the installed distributions and the
//! `PYTHON*` environment that shapes the interpreter at start) equals ours,
//! none of the files its modules came from changed since it imported them,
//! and the environment variables pytest read at import have their values
//! (`Pong::fresh_for`); otherwise it is stopped and replaced. Two CLIs starting at once serialize
//! on a lock file, so only one daemon is started.

use super::client::{ping, Connection, DaemonError};
use super::paths::DaemonPaths;
use crate::project::interpreter::{stamp, InterpreterInfo};
use crate::protocol::PROTOCOL_VERSION;
use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Everything needed to start (or recognize) the right daemon.
pub struct DaemonSpec<'a> {
    pub python: &'a Path,
    pub rootdir: &'a Path,
    pub paths: &'a DaemonPaths,
    pub idle_timeout: u64,
    pub fingerprint: String,
    /// The daemon's whole environment when it is not ours (hermetic sessions'
    /// daemon starts with the sandbox's fixed environment).
    pub env: Option<std::collections::BTreeMap<String, String>>,
}

/// The environment's fingerprint: a daemon with another one is stale.
pub fn fingerprint(python: &Path, info: &InterpreterInfo) -> String {
    fingerprint_with_env(python, info, std::env::vars())
}

/// As `fingerprint`, for a daemon started with the environment `env`.
pub fn fingerprint_with_env(
    python: &Path,
    info: &InterpreterInfo,
    env: impl Iterator<Item = (String, String)>,
) -> String {
    let mut h = blake3::Hasher::new();
    h.update(&installation(python, info));
    // Read by the interpreter in C at startup, where a forked session cannot
    // take them back: its flags and paths (`PYTHON*`) and the C locale that
    // decides the file system and stdio encodings (`LANG`, `LC_ALL`, `LC_CTYPE`).
    let mut vars: Vec<(String, String)> = env
        .filter(|(k, _)| {
            k.starts_with("PYTHON")
                || matches!(k.as_str(), "LANG" | "LC_ALL" | "LC_CTYPE")
                // what `site` computed the user's site directory from
                || k == "HOME"
                // read by the dynamic loader once, at start-up
                || k.starts_with("LD_")
                // whether the daemon loads the native module
                || k == super::native::SWITCH_VAR
        })
        .collect();
    vars.sort();
    // What sessions inherit from the daemon's process and cannot take back
    // per request: resource limits and the CPUs it may run on.
    h.update(super::unix::process_limits().as_bytes());
    h.update(b"\0");
    for (k, v) in vars {
        h.update(k.as_bytes());
        h.update(b"=");
        h.update(v.as_bytes());
        h.update(b"\0");
    }
    h.finalize().to_hex()[..32].to_owned()
}

/// The part of the fingerprint that is not the environment: rpytest's
/// version and protocol, the interpreter, what is installed, rpytest's
/// Python files. Computed once per process and interpreter (a run with
/// rule groups asks once per session).
fn installation(python: &Path, info: &InterpreterInfo) -> Vec<u8> {
    type Memo = Mutex<HashMap<PathBuf, Vec<u8>>>;
    static MEMO: OnceLock<Memo> = OnceLock::new();
    let memo = MEMO.get_or_init(Default::default);
    if let Some(b) = memo.lock().ok().and_then(|m| m.get(python).cloned()) {
        return b;
    }
    let mut b: Vec<u8> = Vec::new();
    b.extend_from_slice(env!("CARGO_PKG_VERSION").as_bytes());
    b.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    b.extend_from_slice(super::native::HASH.as_bytes());
    b.extend_from_slice(stamp(python).as_bytes());
    b.extend_from_slice(site_listing(&info.site_dirs).as_bytes());
    if let Some(dir) = &info.rpytest_dir {
        if let Ok(rd) = std::fs::read_dir(dir) {
            let mut files: Vec<String> = rd
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".py"))
                .map(|e| {
                    use std::os::unix::fs::MetadataExt;
                    let m = e.metadata().ok();
                    format!(
                        "{}:{}:{}",
                        e.file_name().to_string_lossy(),
                        m.as_ref().map(|m| m.size()).unwrap_or(0),
                        m.as_ref()
                            .map(|m| m.mtime_nsec() + m.mtime() * 1_000_000_000)
                            .unwrap_or(0)
                    )
                })
                .collect();
            files.sort();
            b.extend_from_slice(files.join("\n").as_bytes());
        }
    }
    if let Ok(mut m) = memo.lock() {
        m.insert(python.to_path_buf(), b.clone());
    }
    b
}

/// The names of everything installed in the site directories (dist-info
/// directories carry name and version) plus the content of `.pth` files
/// (the listing the global key is computed from: read once per process).
pub fn site_listing(site_dirs: &[String]) -> String {
    let mut out = String::new();
    for e in crate::inputs::installed::site_entries(site_dirs).iter() {
        out.push_str(&e.name);
        out.push('\n');
        // A reinstall at the same version rewrites RECORD: its stamp
        // tells new code from old even when the name is unchanged.
        if let Some((size, s, ns)) = e.record_stamp {
            out.push_str(&format!("{size}:{s}:{ns}\n"));
        }
        if let Some(t) = &e.text {
            out.push_str(t);
            out.push('\n');
        }
    }
    out
}

/// Returns a connection to a fresh-enough daemon, starting one if needed.
pub fn ensure_daemon(spec: &DaemonSpec) -> Result<Connection, DaemonError> {
    if let Some(c) = usable(spec)? {
        return Ok(c);
    }
    let lock_path = spec.paths.socket.with_extension("lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)?;
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(DaemonError::Io(std::io::Error::last_os_error()));
    }
    // Someone may have started it while we waited for the lock.
    if let Some(c) = usable(spec)? {
        return Ok(c);
    }
    start(spec)?;
    let (c, _) = ping(&spec.paths.socket)?;
    cap_daemons(spec);
    Ok(c)
}

/// How many daemons one user keeps at most (`RPYTEST_MAX_DAEMONS`, default 8).
pub fn max_daemons() -> usize {
    std::env::var("RPYTEST_MAX_DAEMONS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(8usize)
        .max(1)
}

/// Daemons pile up across projects (one per rootdir and interpreter): after
/// starting one, stops the most idle others beyond `max_daemons`. A daemon
/// running a session is never stopped. What was stopped is written to the
/// new daemon's log.
fn cap_daemons(spec: &DaemonSpec) {
    let max = max_daemons();
    let Ok(entries) = std::fs::read_dir(&spec.paths.dir) else {
        return;
    };
    let mut idle: Vec<(f64, PathBuf, i64, String)> = Vec::new();
    let mut busy = 0usize;
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().map_or(true, |x| x != "sock") || p == spec.paths.socket {
            continue;
        }
        if let Ok((c, pong)) = ping(&p) {
            drop(c);
            if pong.idle > 0.0 {
                idle.push((pong.idle, p, pong.pid, pong.rootdir));
            } else {
                busy += 1;
            }
        }
    }
    let live = idle.len() + busy + 1;
    if live <= max {
        return;
    }
    idle.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut notes = String::new();
    for (secs, socket, pid, rootdir) in idle.into_iter().take(live - max) {
        if matches!(super::client::stop(&socket), Ok(true)) {
            notes.push_str(&format!(
                "rpytest: stopped the daemon of {rootdir} (pid {pid}, idle {secs:.0}s): at most {max} daemons run at once (RPYTEST_MAX_DAEMONS)\n"
            ));
        }
    }
    if !notes.is_empty() {
        if let Ok(mut f) = OpenOptions::new().append(true).open(&spec.paths.log) {
            use std::io::Write;
            let _ = f.write_all(notes.as_bytes());
        }
    }
}

/// A connection to the running daemon if it matches; stops a stale one.
fn usable(spec: &DaemonSpec) -> Result<Option<Connection>, DaemonError> {
    match ping(&spec.paths.socket) {
        Ok((c, pong))
            if pong.protocol == PROTOCOL_VERSION
                && pong.fingerprint == spec.fingerprint
                && pong.fresh_for(|k| match &spec.env {
                    Some(env) => env.get(k).cloned(),
                    None => std::env::var(k).ok(),
                }) =>
        {
            Ok(Some(c))
        }
        Ok((c, pong)) => {
            c.stop()?;
            wait_gone(pong.pid as i32);
            Ok(None)
        }
        Err(DaemonError::Unresponsive { pid, why }) => {
            super::client::kill_unresponsive(pid);
            super::client::note(format!(
                "the rpytest daemon (pid {pid}) {why}; killed it and started a new one"
            ));
            Ok(None)
        }
        Err(DaemonError::NotRunning(_)) => Ok(None),
        Err(DaemonError::Protocol(_)) | Err(DaemonError::Timeout(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

fn wait_gone(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if unsafe { libc::kill(pid, 0) } != 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn start(spec: &DaemonSpec) -> Result<(), DaemonError> {
    let mut fds = [0i32; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(DaemonError::Io(std::io::Error::last_os_error()));
    }
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.paths.log)?;
    let write_raw = write_end.as_raw_fd();
    let mut cmd = Command::new(spec.python);
    cmd.args(["-m", "rpytest.daemon", "--socket"])
        .arg(&spec.paths.socket)
        .arg("--rootdir")
        .arg(spec.rootdir)
        .args(["--idle-timeout", &spec.idle_timeout.to_string()])
        .args(["--fingerprint", &spec.fingerprint])
        .arg("--warm-file")
        .arg(&spec.paths.warm)
        .args(["--ready-fd", "3"])
        .current_dir(spec.rootdir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    if let Some(env) = &spec.env {
        cmd.env_clear().envs(env);
    }
    super::native::apply(&mut cmd);
    unsafe {
        cmd.pre_exec(move || {
            // Its own session: no terminal signals, survives the CLI.
            libc::setsid();
            if libc::dup2(write_raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        DaemonError::Start(format!(
            "could not start {} -m rpytest.daemon: {e}",
            spec.python.display()
        ))
    })?;
    drop(write_end);
    let mut file = std::fs::File::from(read_end);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buf = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(DaemonError::Start(format!(
                "the daemon did not become ready within 60 s; see {}",
                spec.paths.log.display()
            )));
        }
        if !super::unix::wait_readable(
            file.as_raw_fd(),
            left.as_millis().min(i32::MAX as u128) as i32,
        )? {
            continue;
        }
        let mut chunk = [0u8; 64];
        let n = file.read(&mut chunk)?;
        if n == 0 {
            let status = child.wait().ok();
            return Err(DaemonError::Start(format!(
                "the daemon exited before it was ready ({}); its log: {}\n{}",
                status.map(|s| s.to_string()).unwrap_or_default(),
                spec.paths.log.display(),
                tail(&spec.paths.log, 15)
            )));
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(5).any(|w| w == b"ready") {
            // The daemon lives on in its own session; reap nothing.
            std::mem::forget(child);
            return Ok(());
        }
    }
}

/// The last `n` lines of a log file.
pub fn tail(path: &PathBuf, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
