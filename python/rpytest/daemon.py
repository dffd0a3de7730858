"""The warm daemon: `python -m rpytest.daemon --socket PATH --rootdir DIR ...`.

Single-threaded selectors loop on a Unix socket. It imports pytest and the warm
set once, never project code, and forks one session child per `run` request
(docs/protocol.md), or hands the request to the child it forked ahead of it
(rpytest.prefork). No threads ever run here: fork with threads deadlocks.
"""

from __future__ import annotations

import os
import sys
import time

# Before anything else is imported: a module file modified after this instant
# may have been imported in its old state (see `Daemon.stale_files`).
STARTED_NS = time.time_ns()
# File times come from the kernel's coarse clock (a tick, up to 10 ms behind).
MTIME_MARGIN_NS = 20_000_000

if __name__ == "__main__" and not getattr(sys.flags, "safe_path", False) and sys.path and sys.path[0] in ("", os.getcwd()):
    # `python -m` put the cwd (often the project) first on sys.path; the daemon must never import project code.
    del sys.path[0]

import argparse
import errno
import gc
import importlib
import importlib.util
import json
import selectors
import signal
import socket
import struct
import warnings
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

from rpytest import __version__, prefork, shadow
from rpytest import native  # noqa: F401 - takes its variable out of the environment first
from rpytest import warm
from rpytest.warm import _atomic_write, cold_path, read_names
from rpytest import protocol as msgs
from rpytest.protocol import PROTOCOL_VERSION, LineBuffer, decode, encode

# pytest's own machinery, imported here so that children start warm. Everything
# listed is imported by pytest.main anyway; nothing here touches the project.
PYTEST_MODULES = [
    "pytest",
    "_pytest.config",
    "_pytest.main",
    "_pytest.python",
    "_pytest.terminal",
    "_pytest.fixtures",
    "_pytest.runner",
    "_pytest.reports",
    "_pytest.junitxml",
    "_pytest.assertion",
    "_pytest.assertion.rewrite",
    "_pytest.capture",
    "_pytest.logging",
    "_pytest.mark",
    "_pytest.skipping",
    "_pytest.unittest",
    "_pytest.doctest",
    "_pytest.tmpdir",
    "_pytest.monkeypatch",
    "_pytest.warnings",
    "_pytest.cacheprovider",
    "_pytest.faulthandler",
    "_pytest.python_path",
    "_pytest.debugging",
    "_pytest.pastebin",
    "_pytest.nose",
    "_pytest.setuponly",
    "_pytest.setupplan",
    "_pytest.stepwise",
    "_pytest.helpconfig",
    "_pytest.legacypath",
    "_pytest.threadexception",
    "_pytest.unraisableexception",
    "_pytest.recwarn",
    "_pytest.pytester",
    "_pytest._argcomplete",
    "pdb",
    "faulthandler",
    "rpytest.plugin",
    "rpytest.record",
    "rpytest.warm",
    "rpytest.session",
    "ctypes",
]

MAX_REQUEST = 64 * 1024 * 1024
SEND_TIMEOUT = 10.0
# How long a request waits for a pre-forked child that is still preparing.
PENDING_TIMEOUT = 2.0
# A run request longer than this (the cached entries of thousands of test
# files) gets a plain session: a pre-forked child would have it encoded again
# by the daemon and decoded once more, which costs more than the start-up it
# saves; a plain session's fork shares the daemon's decoded copy.
PREFORK_MAX_REQUEST = 1 << 20


def log(msg: str) -> None:
    sys.stderr.write("%s rpytest-daemon[%d]: %s\n" % (time.strftime("%H:%M:%S"), os.getpid(), msg))
    sys.stderr.flush()


def _own_process_group() -> None:
    """In a forked session child: a process group of its own, as the stock
    command has when a shell starts it (a test that signals its own group,
    `os.killpg(os.getpgrp(), sig)`, reaches the session and what it started,
    never the daemon or the other sessions)."""
    try:
        os.setpgid(0, 0)
    except OSError:
        pass


def _thread_count() -> int:
    import threading

    n = threading.active_count()
    try:
        n = max(n, len(os.listdir("/proc/self/task")))
    except OSError:
        pass
    return n


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class EnvReads:
    """Records what module code reads while the daemon imports it: environment
    variables (through `os.environ`, `os.environb`, `os.getenv`) and files
    opened with `open` / `io.open`.

    A module that decides something at import from the environment must not be
    preloaded: the daemon's environment is not the session's, and the session's
    recorder would never see the read. `"*"` means the whole environment was
    listed or copied. Files it read are watched like module files (an edit
    restarts the daemon), and one inside the project means the module is not
    preloaded (the session's recorder must see that read). Reads by C code
    (`getenv(3)`, `fopen(3)`) are not seen."""

    def __init__(self) -> None:
        self.names: Set[str] = set()
        self.files: Set[str] = set()
        self._saved: List[Tuple[Any, type]] = []
        self._open: Any = None

    def __enter__(self) -> "EnvReads":
        names = self.names
        for env in (os.environ, getattr(os, "environb", None)):
            if env is None:
                continue
            base = type(env)

            class Recording(base):  # type: ignore[valid-type, misc]
                def __getitem__(self, key: Any) -> Any:
                    names.add(key.decode("utf-8", "surrogateescape") if isinstance(key, bytes) else str(key))
                    return base.__getitem__(self, key)

                def __iter__(self) -> Any:
                    names.add("*")
                    return base.__iter__(self)

                def copy(self) -> Any:
                    names.add("*")
                    return base.copy(self)

            self._saved.append((env, base))
            env.__class__ = Recording
        self._open = prefork.OpenReads(self.files).__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        for env, base in self._saved:
            env.__class__ = base
        self._saved = []
        if self._open is not None:
            self._open.__exit__()
            self._open = None


def preload(
    names: List[str], rootdir: str, dropped: Optional[Dict[str, str]] = None, read_files: Optional[Set[str]] = None
) -> List[str]:
    """Import each warm module; roll back and drop any that raises, warns, starts a thread,
    reads the environment or reads a project file (the reasons go into `dropped`; the files
    the kept ones read go into `read_files`)."""
    loaded: List[str] = []
    for name in names:
        if not isinstance(name, str) or not name or name in loaded:
            continue
        if name in sys.modules:
            loaded.append(name)
            continue
        before = set(sys.modules)
        threads = _thread_count()
        ok = False
        why = ""
        reads = EnvReads()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                spec = importlib.util.find_spec(name)
                origin = getattr(spec, "origin", None) if spec else None
                locations = list(getattr(spec, "submodule_search_locations", None) or []) if spec else []
                paths = [p for p in [origin] + locations if p and os.path.isabs(p)]
                if spec is None:
                    why = "not found"
                elif any(_under(os.path.realpath(p), rootdir) and "site-packages" not in p for p in paths):
                    why = "is project code"
                else:
                    with reads:
                        importlib.import_module(name)
                    ok = True
            except BaseException as exc:  # noqa: BLE001 - a preload must never kill the daemon
                why = "raised %s: %s" % (type(exc).__name__, exc)
        if ok and caught:
            ok, why = False, "warned: %s" % caught[0].message
        if ok and reads.names:
            ok, why = False, "read the environment at import (%s)" % ", ".join(sorted(reads.names))
        project_reads = sorted(f for f in reads.files if _under(os.path.realpath(f), rootdir))
        if ok and project_reads:
            ok, why = False, "read project files at import (%s)" % ", ".join(project_reads[:3])
        if ok and _thread_count() > threads:
            ok, why = False, "started a thread"
            log("warm module %s started a thread; restart without it" % name)
        if ok:
            loaded.append(name)
            if read_files is not None:
                read_files.update(reads.files)
        else:
            for added in set(sys.modules) - before:
                sys.modules.pop(added, None)
            log("warm: dropped %s (%s)" % (name, why))
            if dropped is not None:
                dropped[name] = why
    return loaded


def module_files(extra: Iterable[str] = ()) -> Dict[str, Tuple[int, int, int, int]]:
    """The stat of every file a loaded module came from (source, bytecode or extension),
    and of `extra` files (read by modules while they were imported)."""
    out: Dict[str, Tuple[int, int, int, int]] = {}
    files = [getattr(m, "__file__", None) for m in list(sys.modules.values())] + list(extra)
    for f in files:
        if not isinstance(f, str) or f in out or not os.path.isabs(f):
            continue
        try:
            st = os.stat(f)
        except OSError:
            out[f] = (-1, -1, -1, -1)
            continue
        out[f] = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    return out


class Conn:
    """One client connection and, once it sent `run`, its session child."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = LineBuffer(MAX_REQUEST)
        self.fds: List[int] = []
        self.child: Optional[int] = None
        self.done = False
        self.pinged = False
        self.line_size = 0  # bytes of the last request line

    def close_fds(self) -> None:
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = []


class Daemon:
    def __init__(self, args: argparse.Namespace) -> None:
        self.socket_path: str = args.socket
        self.rootdir = os.path.realpath(args.rootdir)
        self.idle_timeout: float = args.idle_timeout
        self.fingerprint: str = args.fingerprint
        self.warm_file: Optional[str] = args.warm_file
        self.ready_fd: Optional[int] = args.ready_fd
        self.started = time.time()
        self.sessions = 0
        self.warm: List[str] = []
        self.conns: Dict[int, Conn] = {}  # by socket fileno
        self.children: Dict[int, Conn] = {}  # by pid
        self.stopping = False
        self.last_activity = time.monotonic()
        # The last session's end (or the start): what the idle timeout counts
        # from. A ping (`--daemon status`, another daemon's census) is not use.
        self.last_used = time.monotonic()
        self.sel = selectors.DefaultSelector()
        self.listener: Optional[socket.socket] = None
        self.listener_ino: Optional[int] = None
        self.base_pythonpath = os.environ.get("PYTHONPATH")
        self.env_identity: Dict[str, Optional[str]] = {}
        self.files: Dict[str, Tuple[int, int, int, int]] = {}
        self.files_ns = 0
        # The pre-forked session child (rpytest.prefork): at most one, never a
        # busy session for the idle logic, replaced after each use.
        self.prefork_on = prefork.enabled(dict(os.environ)) and not os.environ.get("PYTEST_DEBUG")
        self.prefork: Optional[Preforked] = None
        self.prefork_pids: Set[int] = set()  # forked, not yet reaped, not sessions
        self.prefork_sessions = 0
        self.prefork_spawned = 0
        self.prefork_failures = 0  # consecutive deaths before use
        self.prefork_fallbacks = 0
        self.prefork_last_fallback = ""
        # The `-p no:NAME` arguments the next plain pre-forked child prepares for.
        self.prefork_excluded: List[str] = []
        self.prepared_cpu: Dict[int, float] = {}  # pre-forked sessions: CPU spent before their request
        # The speculative child (rpytest.prefork.speculative_main): prepared
        # further, for `last_request` only.
        self.spec: Optional[Preforked] = None
        self.last_request: Optional[Dict[str, Any]] = None
        self.spec_sessions = 0
        self.spec_misses = 0
        self.spec_failed: Optional[Dict[str, Any]] = None  # a request its speculation died on
        # Sessions of pre-forked children by pid, until they tell that they
        # ended (their socket stays open for it), and the pids that did.
        self.running: Dict[int, Preforked] = {}
        self.ended: Set[int] = set()
        # A request waiting for a pre-forked child to become ready.
        self.pending: Optional[Tuple[Conn, Dict[str, Any], List[int], float, Preforked]] = None

    # ---- start-up ---------------------------------------------------------

    def bind(self) -> None:
        path = self.socket_path
        if os.path.exists(path) or os.path.islink(path):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            probe.settimeout(2.0)
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)  # stale: nobody answers
            else:
                probe.close()
                raise SystemExit("rpytest-daemon: another daemon is listening on %s" % path)
            finally:
                probe.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        sock.listen(128)
        sock.setblocking(False)
        self.listener = sock
        self.listener_ino = os.stat(path).st_ino
        self.sel.register(sock, selectors.EVENT_READ, "listen")

    def install_signals(self) -> None:
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        self.wake_r, self.wake_w = r, w
        signal.set_wakeup_fd(w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self.sel.register(r, selectors.EVENT_READ, "wake")

    def _on_term(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def load_warm(self) -> None:
        # What pytest's own modules read from the environment at import is part
        # of this daemon's identity: the CLI restarts it when those values differ.
        read_files: Set[str] = set()
        with EnvReads() as reads:
            for name in PYTEST_MODULES:
                try:
                    importlib.import_module(name)
                except Exception as exc:  # e.g. _pytest.nose is gone in pytest 8
                    if not isinstance(exc, ModuleNotFoundError):
                        log("could not import %s: %s" % (name, exc))
        read_files.update(reads.files)
        self.env_identity = {n: os.environ.get(n) for n in sorted(reads.names) if n != "*"}
        if "*" in reads.names:
            self.env_identity = dict(os.environ)
        shadow.set_baseline()
        names = read_names(self.warm_file)
        cold_file = cold_path(self.warm_file) if self.warm_file else None
        cold = set(read_names(cold_file))
        names = [n for n in names if n not in cold]
        if names:
            t0 = time.monotonic()
            dropped: Dict[str, str] = {}
            self.warm = preload(names, self.rootdir, dropped, read_files)
            log("warm: loaded %d/%d modules in %.2fs" % (len(self.warm), len(names), time.monotonic() - t0))
            if dropped and cold_file:
                # Sessions would add them back to the warm file: remember the refusal.
                try:
                    _atomic_write(cold_file, sorted(cold | set(dropped)))
                except OSError as exc:
                    log("could not write %s: %s" % (cold_file, exc))
        gc.collect()
        if _thread_count() > 1:
            log("warning: %d threads after start-up; forking may be unsafe" % _thread_count())
        self.files_ns = time.time_ns()
        self.files = module_files(read_files)

    def stale_files(self) -> List[str]:
        """Files of modules this daemon imported that changed since (a session forked
        now would run their old code), and start-up modules that appeared since."""
        stale: List[str] = []
        for f, before in self.files.items():
            try:
                st = os.stat(f)
                now = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
            except OSError:
                now = (-1, -1, -1, -1)
            # Modified while the daemon was starting (by the coarse clock file
            # times use, hence the margin): it may have imported the old text.
            # A time after the snapshot (clock skew, archives) is no evidence.
            if now != before or STARTED_NS - MTIME_MARGIN_NS <= before[1] <= self.files_ns:
                stale.append(f)
        import site
        from importlib.machinery import PathFinder

        for name in ("sitecustomize", "usercustomize") if site.ENABLE_USER_SITE else ("sitecustomize",):
            # A fresh interpreter imports these at start-up when they exist.
            if name not in sys.modules and PathFinder.find_spec(name) is not None:
                stale.append(name)
        return stale

    # ---- main loop --------------------------------------------------------

    def run(self) -> int:
        self.last_used = time.monotonic()  # the idle time counts from readiness
        while True:
            if self.stopping and self.listener is not None:
                self.close_listener()
            if self.stopping and (self.prefork is not None or self.spec is not None):
                self.kill_prefork()
                self.kill_prefork(self.spec)
            if self.pending is not None and (self.stopping or time.monotonic() >= self.pending[3]):
                self.serve_pending("it took too long to get ready")
            if self.stopping and not self.children:
                break
            timeout: Optional[float] = None
            if not self.conns and not self.children and not self.stopping:
                limit = self.effective_idle_timeout()
                remaining = limit - (time.monotonic() - self.last_used)
                if remaining <= 0:
                    # A client already waiting (a run that found this daemon) wins.
                    ready = self.sel.select(0)
                    if not ready:
                        log("idle for %gs after %d session(s) (idle timeout %gs of at most %gs), exiting"
                            % (limit, self.sessions, limit, self.idle_timeout))
                        break
                    self.dispatch(ready)
                    self.reap()
                    continue
                timeout = remaining
            if self.pending is not None:
                left = max(0.0, self.pending[3] - time.monotonic())
                timeout = left if timeout is None else min(timeout, left)
            self.dispatch(self.sel.select(timeout))
            self.reap()
        self.close_listener()
        self.kill_prefork()
        self.kill_prefork(self.spec)
        return 0

    def dispatch(self, ready: Any) -> None:
        for key, _mask in ready:
            if key.data == "listen":
                self.accept()
            elif key.data == "wake":
                self.drain_wakeup()
            elif isinstance(key.data, Preforked):
                self.on_prefork_readable(key.data)
            else:
                self.on_readable(key.data)

    def effective_idle_timeout(self) -> float:
        """The idle timeout adapts to use: a daemon used once (a project
        visited in passing) waits a sixth of the configured timeout; each
        further session doubles that, up to the configured timeout."""
        short = self.idle_timeout / 6.0
        return min(self.idle_timeout, short * (2 ** max(0, min(self.sessions - 1, 8))))

    def idle_for(self) -> float:
        """Seconds since the last session ended (0 while one runs)."""
        if self.children:
            return 0.0
        return max(0.0, time.monotonic() - self.last_used)

    def drain_wakeup(self) -> None:
        try:
            while os.read(self.wake_r, 4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def close_listener(self) -> None:
        if self.listener is None:
            return
        try:
            self.sel.unregister(self.listener)
        except (KeyError, ValueError):
            pass
        self.listener.close()
        self.listener = None
        try:
            # Only remove the socket if it is still ours (a new daemon may have bound it).
            if os.stat(self.socket_path).st_ino == self.listener_ino:
                os.unlink(self.socket_path)
        except OSError:
            pass

    def accept(self) -> None:
        assert self.listener is not None
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log("accept failed: %s" % exc)
                return
            try:
                cred = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
                _pid, uid, _gid = struct.unpack("3i", cred)
            except OSError:
                uid = -1
            if uid != os.getuid():
                log("refused a peer with uid %d" % uid)
                sock.close()
                continue
            sock.setblocking(True)  # shared with the child; we only recv when readable
            conn = Conn(sock)
            self.conns[sock.fileno()] = conn
            self.sel.register(sock, selectors.EVENT_READ, conn)
            self.last_activity = time.monotonic()

    def send(self, conn: Conn, msg: Dict[str, Any]) -> bool:
        data = memoryview(encode(msg))
        deadline = time.monotonic() + SEND_TIMEOUT
        while data:
            try:
                n = conn.sock.send(data, socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
                data = data[n:]
            except (BlockingIOError, InterruptedError):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                import select

                select.select([], [conn.sock], [], left)
            except OSError:
                return False
        return True

    def drop(self, conn: Conn) -> None:
        if conn.done:
            return
        conn.done = True
        try:
            self.sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        self.conns.pop(conn.sock.fileno(), None)
        conn.close_fds()
        conn.sock.close()
        self.last_activity = time.monotonic()

    def on_readable(self, conn: Conn) -> None:
        try:
            data, fds, _flags, _addr = _recv_fds(conn.sock)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, fds = b"", []
        conn.fds.extend(fds)
        if not data:
            # Client went away. If its session still runs, stop it (docs/protocol.md).
            if conn.child is not None:
                _kill(conn.child, signal.SIGTERM)
                try:
                    self.sel.unregister(conn.sock)
                except (KeyError, ValueError):
                    pass
            else:
                self.drop(conn)
            return
        if conn.child is not None:
            conn.close_fds()
            return  # nothing more is expected while a session runs
        try:
            for line in conn.buf.feed(data):
                conn.line_size = len(line)
                self.handle(conn, decode(line))
                if conn.done or conn.child is not None:
                    break
        except ValueError as exc:
            self.send(conn, msgs.error("bad request: %s" % exc))
            self.drop(conn)

    def handle(self, conn: Conn, req: Dict[str, Any]) -> None:
        kind = req.get("type")
        if kind == "ping":
            self.send(
                conn,
                msgs.pong(
                    pid=os.getpid(),
                    fingerprint=self.fingerprint,
                    python=sys.executable,
                    version=__version__,
                    started=int(self.started),
                    sessions=self.sessions,
                    warm=self.warm,
                    stale=self.stale_files()[:20],
                    env=self.env_identity,
                    idle=self.idle_for(),
                    idle_timeout=self.effective_idle_timeout(),
                    rootdir=self.rootdir,
                    prefork=self.prefork_info(),
                ),
            )
        elif kind == "stop":
            self.send(conn, msgs.stopping())
            log("stop requested")
            self.stopping = True
            self.drop(conn)
        elif kind == "run":
            self.start_run(conn, req)
        else:
            self.send(conn, msgs.error("unknown request type %r" % (kind,)))
            self.drop(conn)

    def start_run(self, conn: Conn, req: Dict[str, Any]) -> None:
        if req.get("protocol") != PROTOCOL_VERSION:
            self.send(conn, msgs.error("protocol %r not supported (daemon speaks %d)" % (req.get("protocol"), PROTOCOL_VERSION)))
            self.drop(conn)
            return
        # stdin, stdout, stderr, and for a distributed run's sessions the CLI's control pipe.
        if len(conn.fds) not in (3, 4) or not isinstance(req.get("cwd"), str):
            self.send(conn, msgs.error("run needs cwd and 3 or 4 fds (got %d)" % len(conn.fds)))
            self.drop(conn)
            return
        if self.stopping:
            self.send(conn, msgs.error("daemon is stopping"))
            self.drop(conn)
            return
        stdio = conn.fds
        conn.fds = []
        if self.hand_to_prefork(conn, req, stdio):
            return
        self.fork_session(conn, req, stdio)

    def fork_session(self, conn: Conn, req: Dict[str, Any], stdio: List[int]) -> None:
        """A plain session: forked now, from the daemon."""
        go_r, go_w = os.pipe()
        for s in (sys.stdout, sys.stderr):
            s.flush()
        gc.freeze()
        pid = os.fork()
        if pid == 0:  # session child: never returns
            try:
                self._in_child(conn, req, stdio, go_r, go_w)
            finally:
                os._exit(3)
        os.close(go_r)
        for fd in stdio:
            os.close(fd)
        conn.child = pid
        self.children[pid] = conn
        self.sessions += 1
        self.send(conn, msgs.started(pid))
        os.close(go_w)  # lets the child start writing events
        log("session %d started (pid %d)" % (self.sessions, pid))

    def _in_child(self, conn: Conn, req: Dict[str, Any], stdio: List[int], go_r: int, go_w: int) -> None:
        from rpytest import session

        os.close(go_w)
        daemon_pid = os.getppid()
        _own_process_group()
        try:
            signal.set_wakeup_fd(-1)
        except ValueError:
            pass
        event_fd = conn.sock.detach()
        self._close_daemon_fds(conn)
        sys.stderr.flush()
        session.child_main(req, stdio, event_fd, go_r, daemon_pid, self.base_pythonpath)

    def _close_daemon_fds(self, keep: Optional[Conn]) -> None:
        """In a forked child: close the daemon's sockets, pipes and selector
        (all but `keep`'s connection)."""
        for p in [self.prefork, self.spec] + list(self.running.values()):
            if p is not None:
                try:
                    p.sock.close()
                except OSError:
                    pass
        others = [c.sock for c in self.conns.values() if c is not keep and not c.done]
        if self.listener is not None:
            others.append(self.listener)
        for s in others:
            try:
                os.close(s.detach())
            except OSError:
                pass
        for c in self.conns.values():
            if c is not keep:
                c.close_fds()
        for fd in (self.wake_r, self.wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            self.sel.close()
        except Exception:
            pass

    # ---- the pre-forked session child (rpytest.prefork) ---------------------

    def prefork_info(self) -> Dict[str, Any]:
        p = self.prefork
        return {
            "enabled": self.prefork_on,
            "pid": p.pid if p is not None else None,
            "ready": bool(p is not None and p.ready is not None),
            "env_read": sorted(p.ready) if p is not None and p.ready is not None else [],
            "files": sorted(p.files) if p is not None else [],
            "spawned": self.prefork_spawned,
            "sessions": self.prefork_sessions,
            "fallbacks": self.prefork_fallbacks,
            "last_fallback": self.prefork_last_fallback,
            "speculative": {
                "pid": self.spec.pid if self.spec is not None else None,
                "ready": bool(self.spec is not None and self.spec.ready is not None),
                "sessions": self.spec_sessions,
                "misses": self.spec_misses,
            },
        }

    def spawn_prefork(self, speculate: Optional[Dict[str, Any]] = None) -> None:
        """Fork the next session child ahead of its request: the plain one, or
        with `speculate` the speculative one for that request (one of each)."""
        if not self.prefork_on or self.stopping or self.listener is None:
            return
        if (self.spec if speculate is not None else self.prefork) is not None:
            return
        if self.prefork_failures >= 3:
            return  # it keeps dying before use: plain sessions only
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        for s in (sys.stdout, sys.stderr):
            s.flush()
        gc.freeze()
        pid = os.fork()
        if pid == 0:  # pre-forked child: never returns
            try:
                daemon_pid = os.getppid()
                _own_process_group()
                try:
                    signal.set_wakeup_fd(-1)
                except ValueError:
                    pass
                ours.close()
                self._close_daemon_fds(None)
                prefork.child_main(theirs, EnvReads, daemon_pid, self.base_pythonpath, speculate, self.prefork_excluded)
            finally:
                os._exit(3)
        theirs.close()
        p = Preforked(pid, ours, speculate)
        if speculate is not None:
            log("speculative session child %d" % pid)
            self.spec = p
        else:
            log("pre-forked session child %d" % pid)
            self.prefork = p
        self.prefork_pids.add(pid)
        self.prefork_spawned += 1
        self.sel.register(ours, selectors.EVENT_READ, p)

    def spawn_idle(self) -> None:
        """With no session running: the speculative child for the last request
        first (the next request is most likely the same), then the plain one."""
        if any(pid not in self.ended for pid in self.children):
            return
        spec = self.last_request
        if spec is not None and spec != self.spec_failed and self.spec is None:
            self.spawn_prefork(spec)
        if self.spec is None or self.spec.ready is not None:
            self.spawn_prefork()

    def on_prefork_readable(self, p: Preforked) -> None:
        try:
            data = p.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if p.taken:
            self.on_session_notice(p, data)
            return
        if not data:
            log("pre-forked child %d went away before use" % p.pid)
            self.child_lost(p)
            return
        p.buf += data
        if b"\n" in p.buf and p.ready is None:
            line = p.buf.split(b"\n", 1)[0]
            try:
                info = json.loads(line)
                p.files = {str(k): list(v) for k, v in (info.get("files") or {}).items()}
                p.cpu = float(info.get("cpu") or 0.0)
                p.ready = {str(k): v for k, v in (info.get("env") or {}).items()}
                p.excluded = [str(n) for n in info.get("excluded") or ()]
            except (ValueError, AttributeError):
                log("pre-forked child %d sent a bad ready line" % p.pid)
                self.kill_prefork(p)
                self.child_lost(p)
                return
            self.prefork_failures = 0
            if self.pending is not None and self.pending[4] is p:
                self.serve_pending(None)
            elif p is self.spec:
                self.spawn_idle()

    def on_session_notice(self, p: Preforked, data: bytes) -> None:
        """From a pre-forked child running a session: its end notice, or EOF."""
        p.buf += data
        while b"\n" in p.buf:
            line, p.buf = p.buf.split(b"\n", 1)
            try:
                code = int(json.loads(line)["code"])
            except (ValueError, KeyError, TypeError):
                continue
            self.session_ended(p.pid, code)
        if not data or p.pid in self.ended:
            self.close_running(p.pid)

    def close_running(self, pid: int) -> None:
        p = self.running.pop(pid, None)
        if p is None:
            return
        try:
            self.sel.unregister(p.sock)
        except (KeyError, ValueError):
            pass
        p.sock.close()

    def session_ended(self, pid: int, code: int) -> None:
        """A session child said its session ended with `code` (atexit handlers
        run, output flushed; only `os._exit` is left): the client hears it now,
        not once the process is gone, and the next children prepare."""
        conn = self.children.get(pid)
        if conn is None or pid in self.ended:
            return
        self.ended.add(pid)
        log("session pid %d ended (code %d)" % (pid, code))
        if not conn.done:
            self.send(conn, msgs.session_exit(code=code & 0xFF))
            self.drop(conn)
        self.last_used = time.monotonic()
        self.spawn_idle()

    def child_lost(self, p: Preforked) -> None:
        """`p` ended before it was used."""
        if p.ready is None:
            if p.request is not None:
                # Its speculation stopped (a usage error, output, a racy
                # file): that request gets the plain child from now on.
                self.spec_failed = p.request
            else:
                self.prefork_failures += 1
        self.forget_prefork(p)
        if self.pending is not None and self.pending[4] is p:
            self.serve_pending("the pre-forked child went away")
        if p.request is not None:
            self.spawn_idle()  # the plain one, if there is none yet

    def forget_prefork(self, p: Optional["Preforked"] = None) -> None:
        p = self.prefork if p is None else p
        if p is None:
            return
        if self.prefork is p:
            self.prefork = None
        if self.spec is p:
            self.spec = None
        try:
            self.sel.unregister(p.sock)
        except (KeyError, ValueError):
            pass
        p.sock.close()

    def kill_prefork(self, p: Optional["Preforked"] = None, wait: bool = True) -> None:
        """Stop and reap a pre-forked child (the daemon stops, idles out, or it is unusable).
        With `wait` False (a request is waiting) it is reaped later, by `reap`."""
        p = self.prefork if p is None else p
        if p is None:
            return
        self.forget_prefork(p)
        _kill(p.pid, signal.SIGKILL)
        if not wait:
            return
        try:
            os.waitpid(p.pid, 0)
        except ChildProcessError:
            pass
        self.prefork_pids.discard(p.pid)

    def hand_to_prefork(self, conn: Conn, req: Dict[str, Any], stdio: List[int]) -> bool:
        """Give the run request to a pre-forked child prepared for it (the
        speculative one when the request is the one it speculated on, else
        the plain one), or make it wait for one still preparing; False
        (nothing done) means: fork a plain session."""
        if not self.prefork_on:
            return False
        if conn.line_size > PREFORK_MAX_REQUEST:
            self.note_exclusions(req)
            self.prefork_fallbacks += 1
            self.prefork_last_fallback = "a request of %d bytes" % conn.line_size
            log("plain session: a request of %d bytes" % conn.line_size)
            return False
        speculable = prefork.unspeculable(req, len(stdio)) is None
        spec = self.spec
        if speculable and req != self.last_request:
            if spec is not None:
                self.kill_prefork(spec, wait=False)  # it speculated on another request
                self.spec_misses += 1
                spec = None
            self.last_request = req
        env = {str(k): str(v) for k, v in (req.get("env") or {}).items()}
        self.note_exclusions(req)
        for p in (spec, self.prefork):
            if p is None or (p is spec and req != p.request):
                continue
            if p.ready is None:
                if self.pending is not None:
                    continue  # one request waits at a time; this one does not
                if p is not spec and ((req.get("session") or {}).get("sandbox") or prefork.refusal(list(req.get("argv") or []), env, {}, self.prefork_excluded)):
                    break  # it would not be taken: no reason to wait
                # Still preparing (a run right after the last one): what it
                # does a plain session would do too, so waiting costs less.
                self.pending = (conn, req, stdio, time.monotonic() + PENDING_TIMEOUT, p)
                log("request waits for pre-forked child %d" % p.pid)
                return True
            if self.hand_over(p, conn, req, stdio):
                return True
            if p is spec:
                continue  # then the plain one
            return False
        self.prefork_fallbacks += 1
        self.prefork_last_fallback = "no pre-forked child"
        return False

    def note_exclusions(self, req: Dict[str, Any]) -> None:
        """The next plain pre-forked child prepares for the `-p no:NAME`
        arguments of the last run request (`-p no:cacheprovider` on every
        run then finds a child prepared for it); a request with other
        plugin arguments leaves them as they were."""
        argv = req.get("argv")
        found = prefork.exclusions(list(argv)) if isinstance(argv, list) else None
        if found is not None:
            self.prefork_excluded = found

    def serve_pending(self, why: Optional[str]) -> None:
        """The waiting request: to its child once ready, else (`why`) a plain session."""
        pending, self.pending = self.pending, None
        if pending is None:
            return
        conn, req, stdio, _deadline, p = pending
        if conn.done:
            for fd in stdio:
                os.close(fd)
            return
        if why is None and self.hand_over(p, conn, req, stdio):
            return
        if why is None and p is self.spec and self.prefork is not None and self.prefork.ready is not None:
            if self.hand_over(self.prefork, conn, req, stdio):
                return
        if why is not None:
            self.prefork_fallbacks += 1
            self.prefork_last_fallback = "the pre-forked child: %s" % why
            log("plain session: the pre-forked child %s" % why)
        self.fork_session(conn, req, stdio)

    def hand_over(self, p: "Preforked", conn: Conn, req: Dict[str, Any], stdio: List[int]) -> bool:
        """Give the request to the ready child `p` when nothing it prepared
        could differ for it; False (nothing done) otherwise."""
        assert p.ready is not None
        env = {str(k): str(v) for k, v in (req.get("env") or {}).items()}
        why: Optional[str]
        if (req.get("session") or {}).get("sandbox"):
            why = "hermetic session"
        elif p.request is not None and req != p.request:
            why = "the request is not the one it speculated on"
        else:
            why = prefork.refusal(list(req.get("argv") or []), env, p.ready, p.excluded)
        stale = prefork.changed_files(p.files) if why is None else []
        if stale:
            why = "a file the pre-forked child read changed (%s)" % stale[0]
        if why is not None:
            self.prefork_fallbacks += 1
            self.prefork_last_fallback = why
            log("%s: %s" % ("not the speculative session" if p.request is not None else "plain session", why))
            if stale or p.request is not None or p.excluded != self.prefork_excluded:
                # A new one (forked after this session) reads the new file, or
                # prepares for the request's `-p no:NAME` arguments.
                self.kill_prefork(p, wait=False)
            return False
        try:
            prefork.send_request(p.sock, req, list(stdio) + [conn.sock.fileno()])
        except OSError as exc:
            log("pre-forked child %d did not take the request (%s)" % (p.pid, exc))
            self.prefork_fallbacks += 1
            self.prefork_last_fallback = "the pre-forked child did not take the request"
            self.kill_prefork(p)
            return False
        if self.prefork is p:
            self.prefork = None
        if self.spec is p:
            self.spec = None
        for fd in stdio:
            os.close(fd)
        self.prefork_pids.discard(p.pid)
        self.prepared_cpu[p.pid] = p.cpu
        conn.child = p.pid
        self.children[p.pid] = conn
        self.sessions += 1
        self.prefork_sessions += 1
        if p.request is not None:
            self.spec_sessions += 1
        self.send(conn, msgs.started(p.pid))
        try:
            p.sock.send(b"g")  # lets the child start writing events
        except OSError:
            pass
        # The socket stays registered: the child says on it when its session
        # ended (`session_ended`), before its process is gone.
        p.taken = True
        p.buf = b""  # what is left of its ready line
        self.running[p.pid] = p
        log("session %d started (pid %d, %s)" % (self.sessions, p.pid, "speculative" if p.request is not None else "pre-forked"))
        return True

    def reap(self) -> None:
        while self.children or self.prefork_pids:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            if pid in self.prefork_pids:
                self.prefork_pids.discard(pid)
                for p in (self.prefork, self.spec):
                    if p is not None and p.pid == pid:
                        log("pre-forked child %d exited before use" % pid)
                        self.child_lost(p)
                continue
            conn = self.children.pop(pid, None)
            self.close_running(pid)
            self.ended.discard(pid)
            if conn is None:
                continue
            if os.WIFSIGNALED(status):
                msg = msgs.session_exit(signal=os.WTERMSIG(status))
            else:
                msg = msgs.session_exit(code=os.WEXITSTATUS(status))
            # The CPU the session spent once its request had arrived (what a
            # pre-forked child did before it is not on the request's path).
            cpu = usage.ru_utime + usage.ru_stime - self.prepared_cpu.pop(pid, 0.0)
            log("session pid %d finished: %s (cpu after the request %.1f ms)" % (pid, msg, cpu * 1000))
            self.last_used = time.monotonic()
            conn.child = None
            if not conn.done:
                self.send(conn, msg)
                self.drop(conn)
            # The next ones prepare while nothing runs: forked beside a
            # session they would take the CPU that session needs.
            self.spawn_idle()


class Preforked:
    """A pre-forked child: its pid, the daemon's end of their socket pair,
    the request it speculates on (None: the plain one), and once it is
    prepared, the environment variables it read (name -> value)."""

    def __init__(self, pid: int, sock: socket.socket, request: Optional[Dict[str, Any]] = None) -> None:
        self.pid = pid
        self.sock = sock
        self.request = request
        self.buf = b""
        self.taken = False  # it runs a session (its end notice comes on `sock`)
        self.ready: Optional[Dict[str, Optional[str]]] = None
        # Files of the modules it imported (and files and directories it
        # consulted) while preparing, with their stat.
        self.files: Dict[str, List[int]] = {}
        self.cpu = 0.0  # CPU seconds the preparation took (before any request)
        self.excluded: List[str] = []  # the `-p no:NAME` arguments it prepared for


def _recv_fds(sock: socket.socket):
    flags = socket.MSG_DONTWAIT | getattr(socket, "MSG_CMSG_CLOEXEC", 0)
    fds_size = struct.calcsize("i") * 8
    msg, ancdata, mflags, addr = sock.recvmsg(1 << 20, socket.CMSG_SPACE(fds_size), flags)
    fds: List[int] = []
    for level, ctype, cdata in ancdata:
        if level == socket.SOL_SOCKET and ctype == socket.SCM_RIGHTS:
            cdata = cdata[: len(cdata) - (len(cdata) % struct.calcsize("i"))]
            fds.extend(struct.unpack("%di" % (len(cdata) // struct.calcsize("i")), cdata))
    return msg, fds, mflags, addr


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m rpytest.daemon")
    p.add_argument("--socket", required=True)
    p.add_argument("--rootdir", required=True)
    p.add_argument("--idle-timeout", type=float, default=900.0)
    p.add_argument("--fingerprint", default="")
    p.add_argument("--warm-file", default=None)
    p.add_argument("--ready-fd", type=int, default=None)
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    daemon = Daemon(args)
    daemon.load_warm()
    daemon.install_signals()
    daemon.bind()
    log("listening on %s (rootdir %s, python %s, pytest warm)" % (args.socket, daemon.rootdir, sys.executable))
    if args.ready_fd is not None:
        try:
            os.write(args.ready_fd, b"ready\n")
            os.close(args.ready_fd)
        except OSError as exc:
            log("could not signal readiness on fd %d: %s" % (args.ready_fd, exc))
    warm.prime(daemon.rootdir)  # after readiness: not on the first run's path
    daemon.spawn_prefork()
    try:
        return daemon.run()
    finally:
        daemon.close_listener()
        daemon.kill_prefork()
        log("exited")


if __name__ == "__main__":
    sys.exit(main())
