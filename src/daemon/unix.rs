//! The few raw Unix calls the client needs: passing file descriptors
//! (SCM_RIGHTS), polling with a timeout, and forwarding signals (SIGINT,
//! SIGTERM, SIGHUP, and Ctrl-Z's SIGTSTP/SIGCONT) to the sessions.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// The process's file-mode creation mask (read by setting it and putting it
/// back: there is no call that only reads it).
pub fn process_umask() -> u32 {
    // SAFETY: umask only swaps the mask; the original is restored at once.
    unsafe {
        let m = libc::umask(0o022);
        libc::umask(m);
        m as u32
    }
}

/// The process's resource limits (soft/hard), niceness, ignored and blocked
/// signals and the CPUs it may run on, as one line: what a test meets when it opens
/// many files, forks, recurses deeply, asks `os.nice(0)` or
/// `os.sched_getaffinity`, or sends itself SIGHUP. Sessions inherit them from the
/// daemon, which inherits them from the command that started it.
pub fn process_limits() -> String {
    let mut out = String::new();
    #[cfg(target_os = "linux")]
    {
        let limits = [
            ("AS", libc::RLIMIT_AS),
            ("CORE", libc::RLIMIT_CORE),
            ("CPU", libc::RLIMIT_CPU),
            ("DATA", libc::RLIMIT_DATA),
            ("FSIZE", libc::RLIMIT_FSIZE),
            ("MEMLOCK", libc::RLIMIT_MEMLOCK),
            ("MSGQUEUE", libc::RLIMIT_MSGQUEUE),
            ("NICE", libc::RLIMIT_NICE),
            ("NOFILE", libc::RLIMIT_NOFILE),
            ("NPROC", libc::RLIMIT_NPROC),
            ("RSS", libc::RLIMIT_RSS),
            ("RTPRIO", libc::RLIMIT_RTPRIO),
            ("RTTIME", libc::RLIMIT_RTTIME),
            ("SIGPENDING", libc::RLIMIT_SIGPENDING),
            ("STACK", libc::RLIMIT_STACK),
        ];
        let show = |v: libc::rlim_t| {
            if v == libc::RLIM_INFINITY {
                "inf".to_owned()
            } else {
                v.to_string()
            }
        };
        for (name, which) in limits {
            let mut l = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit writes one rlimit struct we own.
            if unsafe { libc::getrlimit(which, &mut l) } == 0 {
                out.push_str(&format!(
                    "{name}={}/{} ",
                    show(l.rlim_cur),
                    show(l.rlim_max)
                ));
            }
        }
        // The scheduling priority (`nice`) and the signals ignored (`nohup`
        // ignores SIGHUP): kept across fork and exec, read by tests that
        // check them or signal themselves.
        // SAFETY: getpriority reads this process's niceness (errno aside).
        let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        out.push_str(&format!("nice={nice} "));
        let ignored: Vec<String> = ignored_signals().iter().map(|s| s.to_string()).collect();
        out.push_str(&format!("ignored={} ", ignored.join(",")));
        // SAFETY: a zeroed cpu_set_t is an empty set; sched_getaffinity fills it.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::cpu_set_t>();
        if unsafe { libc::sched_getaffinity(0, size, &mut set) } == 0 {
            let cpus: Vec<String> = (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
                .map(|c| c.to_string())
                .collect();
            out.push_str(&format!("cpus={}", cpus.join(",")));
        }
        // The signal mask (signals blocked by the caller, kept across exec):
        // named only when not empty, so the usual line stays what it was.
        let blocked: Vec<String> = blocked_signals().iter().map(|s| s.to_string()).collect();
        if !blocked.is_empty() {
            out.push_str(&format!(" blocked={}", blocked.join(",")));
        }
    }
    out.trim_end().to_owned()
}

/// The signals this process ignores (SIG_IGN), which a process it starts
/// inherits across exec (`nohup` ignores SIGHUP). SIGPIPE is left out: the
/// Rust runtime ignores it in every rpytest process, and CPython ignores it
/// in every Python one.
///
/// Read once, at the first call, before rpytest installs handlers of its own
/// (the forwarding handlers replace SIGINT's SIG_IGN under `trap '' INT`).
pub fn ignored_signals() -> Vec<i32> {
    static IGNORED: std::sync::OnceLock<Vec<i32>> = std::sync::OnceLock::new();
    IGNORED.get_or_init(read_ignored_signals).clone()
}

/// The signals this process blocks (its signal mask, which a process it
/// starts inherits across exec).
pub fn blocked_signals() -> Vec<i32> {
    let mut blocked = Vec::new();
    // SAFETY: a null new mask only reads the current one into `old`.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    if unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut old) } != 0 {
        return blocked;
    }
    for sig in 1..65 {
        if unsafe { libc::sigismember(&old, sig) } == 1 {
            blocked.push(sig);
        }
    }
    blocked
}

fn read_ignored_signals() -> Vec<i32> {
    let mut ignored = Vec::new();
    for sig in 1..32 {
        if sig == libc::SIGPIPE {
            continue;
        }
        // SAFETY: a null new action only reads the current one into `old`.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        if unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) } == 0
            && old.sa_sigaction == libc::SIG_IGN
        {
            ignored.push(sig);
        }
    }
    ignored
}

/// Sends `data` with `fds` attached as SCM_RIGHTS ancillary data.
pub fn send_with_fds(sock: &UnixStream, data: &[u8], fds: &[RawFd]) -> io::Result<usize> {
    let fd_bytes = std::mem::size_of_val(fds);
    let space = unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as usize;
    let mut cmsg_buf = vec![0u8; space];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg_buf.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = space as _;
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes as u32) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr() as *const u8, libc::CMSG_DATA(cmsg), fd_bytes);
    }
    loop {
        let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Waits until `fd` is readable or `timeout_ms` passes (-1: forever).
/// Returns false on timeout. EINTR counts as "not yet" and returns true so
/// the caller can look at its signal state and call again.
pub fn wait_readable(fd: RawFd, timeout_ms: i32) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let n = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    if n < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(true);
        }
        return Err(err);
    }
    Ok(n > 0)
}

/// Session children that get the signals the CLI receives (0 = free slot).
static FORWARD_TO: [AtomicI32; 64] = [const { AtomicI32::new(0) }; 64];

/// The children share the CLI's process group (`--no-daemon`): a Ctrl-C
/// typed at the terminal reaches them already, so only a SIGINT sent to the
/// CLI alone (`kill -INT`) is forwarded; two would cut pytest's summary short.
static SHARED_GROUP: AtomicBool = AtomicBool::new(false);

/// A signal that ends sessions (SIGINT, SIGTERM, SIGHUP) reached the CLI
/// during this run: the sessions got it and end by themselves.
static SIGNALLED: AtomicBool = AtomicBool::new(false);

/// Whether the sessions were sent (or, on the terminal, given) a signal
/// that ends them: an `-n` worker then goes through pytest's own interrupt
/// path (its session fixtures' teardown) and must not be cut short.
pub fn sessions_signalled() -> bool {
    SIGNALLED.load(Ordering::SeqCst)
}

extern "C" fn forward(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    SIGNALLED.store(true, Ordering::SeqCst);
    // SI_KERNEL: generated by the terminal driver for the whole foreground group.
    let from_terminal = !info.is_null() && unsafe { (*info).si_code } == libc::SI_KERNEL;
    if sig == libc::SIGINT && from_terminal && SHARED_GROUP.load(Ordering::SeqCst) {
        return;
    }
    // A session leads a process group of its own: the signal goes to that
    // group, so the test's own child processes (and the `-n` workers forked
    // in it) get it as they would in the stock command's group (Ctrl-C,
    // `timeout`). A child in the CLI's group (`--no-daemon` on a terminal)
    // has no group of its own: it gets the signal alone.
    signal_sessions(sig);
}

/// Ctrl-Z: the sessions stop with the CLI (they run in process groups of
/// their own, which the terminal's SIGTSTP does not reach), then the CLI
/// stops itself as the default action would; once continued, so are they.
extern "C" fn suspend(_sig: libc::c_int) {
    // Everything here is async-signal-safe: kill, sigaction, sigprocmask, raise.
    signal_sessions(libc::SIGSTOP);
    unsafe {
        libc::signal(libc::SIGTSTP, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTSTP);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        // Stops here until SIGCONT.
        libc::raise(libc::SIGTSTP);
        install_handler(
            libc::SIGTSTP,
            suspend as extern "C" fn(libc::c_int) as usize,
            0,
        );
    }
    signal_sessions(libc::SIGCONT);
}

/// SIGCONT (`fg`, `bg`, `kill -CONT`): the stopped sessions go on too.
extern "C" fn resume(_sig: libc::c_int) {
    signal_sessions(libc::SIGCONT);
}

/// Sends `sig` to every session (its process group when it leads one).
fn signal_sessions(sig: libc::c_int) {
    for slot in &FORWARD_TO {
        let pid = slot.load(Ordering::SeqCst);
        if pid > 0 {
            // SAFETY: kill(2) is async-signal-safe.
            unsafe {
                if libc::kill(-pid, sig) != 0 {
                    libc::kill(pid, sig);
                }
            }
        }
    }
}

/// Installs `handler` for `sig`, restarting interrupted calls.
unsafe fn install_handler(sig: libc::c_int, handler: usize, flags: libc::c_int) {
    let mut sa: libc::sigaction = std::mem::zeroed();
    sa.sa_sigaction = handler;
    sa.sa_flags = libc::SA_RESTART | flags;
    libc::sigemptyset(&mut sa.sa_mask);
    libc::sigaction(sig, &sa, std::ptr::null_mut());
}

/// The job-control signals the CLI passes on to the sessions.
const JOB_CONTROL: [libc::c_int; 2] = [libc::SIGTSTP, libc::SIGCONT];

fn install_forwarding() {
    let ignored = ignored_signals();
    for sig in JOB_CONTROL {
        if ignored.contains(&sig) {
            continue;
        }
        let handler = match sig {
            libc::SIGTSTP => suspend as extern "C" fn(libc::c_int) as usize,
            _ => resume as extern "C" fn(libc::c_int) as usize,
        };
        // SAFETY: installs one of this module's async-signal-safe handlers.
        unsafe { install_handler(sig, handler, 0) };
    }
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // A signal the command was started ignoring (`trap '' INT`, a
        // background job of a script) stays ignored, as in pytest's process.
        if ignored.contains(&sig) {
            continue;
        }
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = forward
                as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
                as usize;
            sa.sa_flags = libc::SA_RESTART | libc::SA_SIGINFO;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// From now on SIGINT/SIGTERM/SIGHUP received by the CLI go to `pid` (the
/// session child, which is not in the terminal's process group).
pub fn forward_signals_to(pid: i32) {
    for slot in &FORWARD_TO {
        slot.store(0, Ordering::SeqCst);
    }
    add_forwarding(pid);
}

/// Also forwards the CLI's signals to `pid` (one more session of a distributed run).
pub fn add_forwarding(pid: i32) {
    // Once per pid: a second slot would deliver every signal twice.
    let known = FORWARD_TO.iter().any(|s| s.load(Ordering::SeqCst) == pid);
    let _ = known
        || FORWARD_TO.iter().any(|s| {
            s.compare_exchange(0, pid, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        });
    install_forwarding();
}

/// Stops forwarding to `pid` (it has ended).
pub fn remove_forwarding(pid: i32) {
    for slot in &FORWARD_TO {
        let _ = slot.compare_exchange(pid, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// Stops forwarding (the child is gone).
pub fn stop_forwarding() {
    for slot in &FORWARD_TO {
        slot.store(0, Ordering::SeqCst);
    }
    SHARED_GROUP.store(false, Ordering::SeqCst);
    let ignored = ignored_signals();
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP]
        .into_iter()
        .chain(JOB_CONTROL)
    {
        if ignored.contains(&sig) {
            continue;
        }
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

/// Whether sessions the CLI starts itself (`--no-daemon`) stay in its
/// process group: only when the CLI is on its controlling terminal. There a
/// session in a group of its own would be a background job (stopped by
/// SIGTTIN when `--pdb` or `input()` reads the terminal), and the terminal's
/// Ctrl-C reaches the whole foreground group anyway. Elsewhere each session
/// leads a group of its own, as under the daemon, so a signal sent to the
/// CLI's group (a CI runner's cancel, `timeout`) reaches every session and
/// its child processes exactly once: through the CLI.
pub fn fresh_sessions_share_our_group() -> bool {
    static SHARE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SHARE.get_or_init(|| {
        // SAFETY: tcgetpgrp only reads; it fails on a descriptor that is not
        // our controlling terminal.
        (0..3).any(|fd| unsafe { libc::isatty(fd) == 1 && libc::tcgetpgrp(fd) >= 0 })
    })
}

/// While sessions the CLI started itself run (`--no-daemon`). On the
/// terminal they share our process group: they take a terminal's Ctrl-C
/// themselves, as pytest would, and the CLI stays alive to report their end;
/// signals sent to the CLI alone are forwarded to them. Elsewhere they lead
/// groups of their own and get what the CLI gets, once.
pub fn children_share_our_group() {
    SHARED_GROUP.store(fresh_sessions_share_our_group(), Ordering::SeqCst);
    install_forwarding();
}

/// In a freshly spawned session, before exec: its own process group unless
/// it shares the CLI's (`fresh_sessions_share_our_group`, decided in the CLI
/// before the fork). Async-signal-safe.
pub fn own_group_unless_shared(shared: bool) -> io::Result<()> {
    if !shared && unsafe { libc::setpgid(0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// In a freshly spawned child, before exec: die when the CLI dies (a killed
/// CLI must not leave a session writing to the terminal). Async-signal-safe.
pub fn die_with_parent(parent: libc::pid_t) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    unsafe {
        if libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGTERM as libc::c_ulong,
            0,
            0,
            0,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    // The parent may have died before prctl: then nobody would signal us.
    if unsafe { libc::getppid() } != parent {
        unsafe { libc::_exit(143) };
    }
    Ok(())
}

/// Whether the CLI, when a session is killed by `sig`, dies by it too
/// (`end_like_session`): signals whose default action ends the process
/// without a core dump. The shell then says what it says of the stock
/// command ("Killed", "Terminated"); for the others (SIGSEGV, SIGABRT, ...)
/// the CLI exits 128 + N and says which signal killed the session.
pub fn ends_by_signal(sig: i32) -> bool {
    [
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGKILL,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGPIPE,
        libc::SIGALRM,
        libc::SIGTERM,
    ]
    .contains(&sig)
}

/// The signal that killed the run's pytest session, if one did.
static SESSION_SIGNAL: AtomicI32 = AtomicI32::new(0);

/// The session was killed by `sig`: the CLI ends the same way (see `end_like_session`).
pub fn note_session_signal(sig: i32) {
    SESSION_SIGNAL.store(sig, Ordering::SeqCst);
}

/// When the run's exit code is the one a session killed by a signal gives
/// (128 + N), the CLI dies by that signal too, as the stock command would:
/// a shell shows 128 + N, a parent process sees death by signal N. Signals
/// whose default action dumps core keep the exit code (no core file of
/// rpytest's own). Returns when there is nothing to do.
pub fn end_like_session(code: i32) {
    let sig = SESSION_SIGNAL.load(Ordering::SeqCst);
    if sig <= 0 || code != 128 + sig || !ends_by_signal(sig) {
        return;
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: plain signal-state calls on our own process.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
    }
}
