"""Hermetic sessions: the session process enters a Linux sandbox before pytest collects.

What Bazel's linux-sandbox does, applied in the (single-threaded) session process
itself, so a session forked from the warm daemon keeps its warm state:

* new user, mount and network namespaces (`unshare`); the user keeps its uid
  and gid inside (a one-line identity map);
* a new root on a private tmpfs holding read-only bind mounts of the system's
  program and library directories, the interpreter's prefix and every
  `sys.path` directory outside the project (installed packages), the project's
  first-party code (every `.py` file under rootdir and the ini files) and the
  files the rule declares; a private writable `/tmp` (also `HOME` and
  `TMPDIR`), a minimal `/dev`; then `pivot_root` and back to the same cwd.
  `/proc` is not mounted: the host's, bound, would show other processes' roots
  (`/proc/PID/root`), and a fresh one needs a PID namespace of our own;
* a network namespace with only loopback, brought up;
* every capability dropped, so test code cannot undo the mounts.

An undeclared file is simply absent: reading it fails as it would if it did not
exist. The session's sockets and pipes to the CLI are open descriptors and keep
working. When any step fails the session never runs unsandboxed: `SandboxError`
is raised and the session exits 4 with its message.

Reads the sandbox denied and connections it refused are noted per test
(`Denials`, an audit hook) and explained under the test's failure."""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import stat
import struct
import sys
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

import pytest

from rpytest import protocol as msgs

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
MNT_DETACH = 2

SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
SYS_CAPSET = {"x86_64": 126, "aarch64": 91}

# Directories of the system's programs and libraries (what the interpreter,
# its extension modules and subprocesses load), shown read-only.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# The few files of /etc that the C library and Python's standard library read.
ETC_FILES = (
    "/etc/passwd", "/etc/group", "/etc/hosts", "/etc/nsswitch.conf", "/etc/host.conf", "/etc/ld.so.cache",
    "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/ssl", "/etc/ca-certificates", "/etc/mime.types",
    "/etc/localtime", "/etc/protocols", "/etc/services",
)
DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
# Configuration files pytest and rpytest read at rootdir.
CONFIG_FILES = ("pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg", "rpytest.toml")
# Where the new root is built (a tmpfs mounted over it in our mount namespace
# only): a directory that exists and that nothing in the sandbox needs.
SCRATCH = ("/dev/shm", "/mnt", "/media", "/srv")

HOME = "/tmp/home"
TMP = "/tmp"


class SandboxError(Exception):
    """The sandbox could not be entered; the session must not run."""


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        e = ctypes.get_errno()
        raise SandboxError("%s: %s" % (what, os.strerror(e)))


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


class Plan:
    """What the sandbox shows, worked out on the host before entering it."""

    def __init__(self, cfg: Dict[str, Any], cwd: str) -> None:
        self.rootdir = os.path.realpath(cfg["rootdir"])
        self.cwd = cwd
        self.binds: List[Tuple[str, bool]] = []  # (absolute path, writable)
        self.links: List[Tuple[str, str]] = []  # (absolute path, symlink target)
        self.copies: List[str] = []  # absolute paths copied into the new root
        self.visible: Set[str] = set()  # rootdir-relative files shown
        self.host_files: Set[str] = set()  # rootdir-relative files that exist on the host
        self._bound_dirs: List[str] = []
        declared = [str(f) for f in cfg.get("files") or []]
        self._system()
        self._interpreter()
        self._project(declared)
        for p in cfg.get("writable") or []:
            if os.path.exists(p):
                self.binds.append((p, True))

    def _add_dir(self, path: str) -> None:
        if not path or not os.path.isabs(path):
            return
        path = os.path.normpath(path)
        if os.path.islink(path) and os.path.dirname(path) == "/":
            self.links.append((path, os.readlink(path)))
            return
        if not os.path.isdir(path):
            return
        real = os.path.realpath(path)
        # Never a directory that holds the project: it would show all of it.
        if _under(self.rootdir, real) or _under(self.rootdir, path):
            return
        if any(_under(path, d) for d in self._bound_dirs):
            return
        self._bound_dirs.append(path)
        self.binds.append((path, False))
        if real != path and not any(_under(real, d) for d in self._bound_dirs):
            self._bound_dirs.append(real)
            self.binds.append((real, False))

    def _system(self) -> None:
        for d in SYSTEM_DIRS:
            if os.path.islink(d):
                self.links.append((d, os.readlink(d)))
            elif os.path.isdir(d):
                self._add_dir(d)
        for f in ETC_FILES:
            if os.path.isdir(f):
                self.binds.append((f, False))
            elif os.path.isfile(f):
                self.copies.append(f)  # small files: a copy costs less than two mounts

    def _interpreter(self) -> None:
        prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, getattr(sys, "base_exec_prefix", sys.prefix)}
        exe = os.path.realpath(sys.executable)
        candidates = sorted(prefixes) + [os.path.dirname(os.path.dirname(exe))]
        # Installed packages and what `.pth` files add (rpytest's own package among them).
        candidates += [p for p in sys.path if isinstance(p, str) and p]
        for mod in ("rpytest", "_pytest", "pluggy"):
            m = sys.modules.get(mod)
            f = getattr(m, "__file__", None)
            if f:
                candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(f))))
        venv_in_project: List[str] = []
        for c in candidates:
            c = os.path.normpath(c)
            if os.path.isfile(c):  # a zip on sys.path
                c = os.path.dirname(c)
            if _under(c, self.rootdir) or _under(os.path.realpath(c), self.rootdir):
                # A virtualenv inside the project is installed code, not first-party.
                for p in prefixes:
                    p = os.path.normpath(p)
                    if _under(p, self.rootdir) and _under(c, p) and p not in venv_in_project:
                        venv_in_project.append(p)
                continue
            self._add_dir(c)
        for v in venv_in_project:
            self.binds.append((v, False))

    def _project(self, declared: Iterable[str]) -> None:
        root = self.rootdir
        self._declared = {d for d in declared}
        self._skip = {os.path.normpath(p) for p in (sys.prefix, sys.exec_prefix)}
        self._caches: List[str] = []
        whole, binds = self._scan(root, "")
        # A directory whose every file is shown is bound as one (a mount per
        # directory, not per file); bytecode caches are bound writable on top.
        for b in [root] if whole else binds:
            self.binds.append((b, False))
        for c in self._caches:
            self.binds.append((c, True))
        cache = os.path.join(root, ".pytest_cache")
        if os.path.isdir(cache):
            self.binds.append((cache, True))

    def _shown(self, rel: str, name: str, top: bool) -> bool:
        return name.endswith((".py", ".pyi")) or (top and name in CONFIG_FILES) or rel in self._declared

    def _scan(self, path: str, rel_dir: str) -> Tuple[bool, List[str]]:
        """(whether everything under `path` is shown, what to bind otherwise)."""
        whole = True
        binds: List[str] = []
        try:
            entries = list(os.scandir(path))
        except OSError:
            return False, []
        for e in entries:
            name = e.name
            try:
                is_dir = e.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                full = e.path
                if name == "__pycache__":
                    self._caches.append(full)
                    continue
                if name.startswith(".") or full in self._skip or os.path.isfile(os.path.join(full, "pyvenv.cfg")):
                    whole = False
                    continue
                sub_whole, sub_binds = self._scan(full, rel_dir + name + "/")
                if sub_whole:
                    binds.append(full)
                else:
                    whole = False
                    binds.extend(sub_binds)
                continue
            rel = rel_dir + name
            self.host_files.add(rel)
            # A symlink to a directory is never followed into.
            if self._shown(rel, name, not rel_dir) and not (e.is_symlink() and os.path.isdir(e.path)):
                self.visible.add(rel)
                binds.append(e.path)
            else:
                whole = False
        return whole, binds


class _Mounter:
    def __init__(self, new_root: str) -> None:
        self.libc = _libc()
        self.libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
        self.new = new_root
        self._flags: Dict[int, int] = {}
        self._made: Set[str] = set()

    def mount(self, src: Optional[str], dst: str, fstype: Optional[str], flags: int, data: Optional[str] = None) -> None:
        enc = lambda s: None if s is None else os.fsencode(s)  # noqa: E731
        if self.libc.mount(enc(src), enc(dst), enc(fstype), flags, enc(data)) != 0:
            e = ctypes.get_errno()
            raise SandboxError("mount %s on %s: %s" % (src, dst, os.strerror(e)))

    def _locked_flags(self, src: str) -> int:
        """The flags of `src`'s mount a remount in a user namespace must keep."""
        try:
            dev = os.stat(src).st_dev
        except OSError:
            return 0
        if dev not in self._flags:
            f = os.statvfs(src).f_flag
            out = 0
            for st, ms in ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
                           (getattr(os, "ST_NOATIME", 1024), MS_NOATIME),
                           (getattr(os, "ST_NODIRATIME", 2048), MS_NODIRATIME),
                           (getattr(os, "ST_RELATIME", 4096), MS_RELATIME)):
                if f & st:
                    out |= ms
            self._flags[dev] = out
        return self._flags[dev]

    def target(self, path: str) -> str:
        return self.new + path

    def _dirs(self, dst: str) -> None:
        if dst not in self._made:
            os.makedirs(dst, exist_ok=True)
            self._made.add(dst)

    def bind(self, src: str, writable: bool) -> None:
        dst = self.target(src)
        try:
            if os.path.isdir(src):
                self._dirs(dst)
            else:
                self._dirs(os.path.dirname(dst))
                try:
                    os.close(os.open(dst, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
                except FileExistsError:
                    pass
        except OSError as exc:
            raise SandboxError("preparing %s: %s" % (dst, exc))
        self.mount(src, dst, None, MS_BIND | MS_REC)
        if not writable:
            self.mount(None, dst, None, MS_BIND | MS_REMOUNT | MS_RDONLY | self._locked_flags(src))

    def copy(self, path: str) -> None:
        dst = self.target(path)
        self._dirs(os.path.dirname(dst))
        try:
            with open(path, "rb") as src, open(dst, "wb") as out:
                out.write(src.read())
        except OSError as exc:
            raise SandboxError("copying %s: %s" % (path, exc))

    def link(self, path: str, target: str) -> None:
        dst = self.target(path)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if not os.path.lexists(dst):
            os.symlink(target, dst)


def _arch_syscall(table: Dict[str, int]) -> int:
    machine = os.uname().machine
    if machine not in table:
        raise SandboxError("unsupported architecture %s" % machine)
    return table[machine]


def _loopback_up() -> None:
    """`ip link set lo up` in the new network namespace (SIOCGIFFLAGS/SIOCSIFFLAGS)."""
    import fcntl

    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    except OSError as exc:
        raise SandboxError("bringing up loopback: %s" % exc)
    finally:
        s.close()


def _drop_capabilities(libc: Any) -> None:
    # struct __user_cap_header_struct {u32 version; int pid;}; version 3 has two data structs.
    header = struct.pack("Ii", 0x20080522, 0)
    data = bytes(24)
    hbuf = ctypes.create_string_buffer(header, len(header))
    dbuf = ctypes.create_string_buffer(data, len(data))
    _check(libc.syscall(_arch_syscall(SYS_CAPSET), hbuf, dbuf), "dropping capabilities")


def _scratch(rootdir: str) -> str:
    for d in SCRATCH:
        if os.path.isdir(d) and not os.path.islink(d) and not _under(rootdir, d) and not _under(d, rootdir):
            return d
    raise SandboxError("no directory to build the sandbox's root in (tried %s)" % ", ".join(SCRATCH))


def enter(cfg: Dict[str, Any]) -> Plan:
    """Enter the sandbox described by `cfg` (the session config's `sandbox`);
    returns what it shows. Raises SandboxError when it cannot be entered."""
    if not sys.platform.startswith("linux"):
        raise SandboxError("hermetic tests need Linux user namespaces (this is %s)" % sys.platform)
    cwd = os.getcwd()
    plan = Plan(cfg, cwd)
    uid, gid = os.geteuid(), os.getegid()
    libc = _libc()
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise SandboxError(
            "cannot create user namespaces (unshare: %s); hermetic tests need them "
            "(sysctl kernel.unprivileged_userns_clone / user.max_user_namespaces, or a container "
            "that allows unshare)" % os.strerror(e)
        )
    try:
        _write("/proc/self/setgroups", "deny")
    except OSError:
        pass
    try:
        _write("/proc/self/uid_map", "%d %d 1\n" % (uid, uid))
        _write("/proc/self/gid_map", "%d %d 1\n" % (gid, gid))
    except OSError as exc:
        raise SandboxError("writing the user namespace's id maps: %s" % exc)
    m = _Mounter(_scratch(plan.rootdir))
    m.mount(None, "/", None, MS_REC | MS_PRIVATE)
    m.mount("tmpfs", m.new, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    # Private, writable: /tmp (TMPDIR and HOME), /dev/shm. First: a project
    # under /tmp is bound into it.
    os.makedirs(m.target(TMP), exist_ok=True)
    m.mount("tmpfs", m.target(TMP), "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    os.makedirs(m.target(HOME), mode=0o700, exist_ok=True)
    for path, target in plan.links:
        m.link(path, target)
    for path, writable in plan.binds:
        m.bind(path, writable)
    for path in plan.copies:
        m.copy(path)
    os.makedirs(m.target("/dev"), exist_ok=True)
    for node in DEV_NODES:
        if os.path.exists("/dev/" + node):
            try:
                m.bind("/dev/" + node, True)
            except SandboxError:
                if node != "tty":  # no controlling terminal: no /dev/tty to bind
                    raise
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        m.link("/dev/" + name, target)
    os.makedirs(m.target("/dev/shm"), exist_ok=True)
    m.mount("tmpfs", m.target("/dev/shm"), "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    # The project's directories exist even when nothing in them is shown.
    os.makedirs(m.target(plan.rootdir), exist_ok=True)
    if _under(cwd, plan.rootdir):
        os.makedirs(m.target(cwd), exist_ok=True)
    # pivot_root(new, new) stacks the old root under the new one; detaching it leaves only the new.
    os.chdir(m.new)
    _check(libc.syscall(_arch_syscall(SYS_PIVOT_ROOT), b".", b"."), "pivot_root")
    _check(libc.umount2(b".", MNT_DETACH), "detaching the old root")
    os.chdir("/")
    try:
        os.chdir(cwd)
    except OSError as exc:
        raise SandboxError("the working directory %s is not in the sandbox: %s" % (cwd, exc))
    _loopback_up()
    _drop_capabilities(libc)
    return plan


def apply_env(env: Dict[str, str]) -> None:
    """The sandbox's environment (the CLI sends the fixed set plus what the rule
    declares); HOME and TMPDIR are the private ones."""
    os.environ.clear()
    os.environ.update(env)
    os.environ["HOME"] = HOME
    os.environ["TMPDIR"] = TMP
    import tempfile
    import time

    tempfile.tempdir = None  # computed again from TMPDIR
    if hasattr(time, "tzset"):
        time.tzset()


class Denials:
    """Per test: undeclared project files it tried to read and addresses it
    connected to. Listens to audit events; never wraps what tests call."""

    def __init__(self, plan: Plan, rules: Dict[str, str]) -> None:
        self.plan = plan
        self.rules = rules
        self.prefix = plan.rootdir.rstrip("/") + "/"
        self.current: Optional[str] = None
        self.by_test: Dict[str, List[str]] = {}
        self.seen: Dict[str, Set[str]] = {}  # per test file: what the sandbox denied (for --why)

    def start(self) -> None:
        sys.addaudithook(self._audit)

    def _note(self, what: str) -> None:
        t = self.current
        if t is None:
            return
        lst = self.by_test.setdefault(t, [])
        if what not in lst:
            lst.append(what)
        self.seen.setdefault(t.split("::")[0], set()).add(what)

    def _audit(self, event: str, args: Tuple[Any, ...]) -> None:
        if self.current is None:
            return
        try:
            if event == "open":
                self._on_open(args)
            elif event == "socket.connect":
                self._on_connect(args)
        except Exception:
            pass

    def _on_open(self, args: Tuple[Any, ...]) -> None:
        path = args[0]
        if isinstance(path, int) or path is None:
            return
        p = os.fsdecode(os.fspath(path))
        if not os.path.isabs(p):
            p = os.path.join(os.getcwd(), p)
        p = os.path.normpath(p)
        if not p.startswith(self.prefix):
            return
        rel = p[len(self.prefix):]
        if rel in self.plan.host_files and rel not in self.plan.visible:
            self._note("read undeclared input %s" % rel)

    def _on_connect(self, args: Tuple[Any, ...]) -> None:
        sock, address = args[0], args[1]
        fam = getattr(sock, "family", None)
        if fam in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
            self._note("connected to %s:%s (a hermetic test has no network, only its own loopback)" % address[:2])
        elif fam == socket.AF_UNIX and address:
            self._note("connected to the socket %s (outside the sandbox it does not exist)" % (address,))

    def explain(self, nodeid: str) -> List[str]:
        rule = self.rules.get(nodeid.split("::")[0])
        # Under --hermetic a test may have no rule of its own yet.
        where = 'rule "%s" files' % rule if rule else "the files of a rule that governs this test"
        out = []
        for what in self.by_test.get(nodeid, []):
            line = "rpytest: test %s" % what
            if what.startswith("read undeclared input "):
                line += " (declare it in %s)" % where
            out.append(line)
        return out


class SandboxPlugin:
    """Notes the running test for `Denials` and explains denials under failures."""

    def __init__(self, denials: Denials, writer: Any) -> None:
        self.denials = denials
        self.writer = writer

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self.denials.current = nodeid
        self.denials.seen.setdefault(nodeid.split("::")[0], set())

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        self.denials.current = None

    def pytest_collectstart(self, collector: Any) -> None:
        self.denials.current = getattr(collector, "nodeid", None) or None

    @pytest.hookimpl(hookwrapper=True)
    def pytest_make_collect_report(self, collector: Any) -> Any:
        outcome = yield
        self._explain(outcome.get_result())
        self.denials.current = None

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: Any, call: Any) -> Any:
        outcome = yield
        self._explain(outcome.get_result())

    def _explain(self, report: Any) -> None:
        if report is None or not report.failed:
            return
        lines = self.denials.explain(report.nodeid)
        if not lines:
            return
        text = "\n".join(lines)
        longrepr = report.longrepr
        if hasattr(longrepr, "addsection"):
            longrepr.addsection("rpytest sandbox", text)
        else:
            report.longrepr = "%s\n%s" % (longrepr, text)

    def pytest_sessionfinish(self, session: Any) -> None:
        if self.writer is None:
            return
        seen = {f: sorted(v) for f, v in self.denials.seen.items()}
        try:
            self.writer.emit(msgs.sandbox(len(self.denials.plan.visible), seen))
        except Exception:
            pass
