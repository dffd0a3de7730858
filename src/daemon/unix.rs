//! The few raw Unix calls the client needs: passing file descriptors
//! (SCM_RIGHTS), polling with a timeout, and forwarding signals.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicI32, Ordering};

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

extern "C" fn forward(sig: libc::c_int) {
    for slot in &FORWARD_TO {
        let pid = slot.load(Ordering::SeqCst);
        if pid > 0 {
            // kill(2) is async-signal-safe.
            unsafe { libc::kill(pid, sig) };
        }
    }
}

fn install_forwarding() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = forward as extern "C" fn(libc::c_int) as usize;
            sa.sa_flags = libc::SA_RESTART;
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
    let _ = FORWARD_TO.iter().any(|s| {
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
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

/// While a child in our own process group runs (`--no-daemon`), let it take
/// Ctrl-C itself, as pytest would, instead of dying first.
pub fn ignore_interrupts(ignore: bool) {
    let action = if ignore { libc::SIG_IGN } else { libc::SIG_DFL };
    unsafe { libc::signal(libc::SIGINT, action) };
}
