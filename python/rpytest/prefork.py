"""The pre-forked session: a child the daemon forks *before* a request arrives.

It does the part of a session's start-up that no argument, environment
variable or working directory of a request can change: it imports the rpytest
modules every session imports before pytest starts, and creates the plugin
manager and the `Config` object and registers pytest's default plugins (what
`_pytest.config.get_config` does for arguments without `-p`; their option
hooks run, their hook implementations are validated). Then it waits on a
socket pair for the daemon to hand it a `run` request with its file
descriptors, and carries on as a plain session child, except that the first
`get_config` of the session returns the prepared `Config` (with the request's
own invocation parameters) instead of building an identical one.

Everything after `get_config` — PYTEST_ADDOPTS, the ini file and rootdir,
`-p`, entry-point plugins, PYTEST_PLUGINS, conftests — still runs at request
time, from the request's arguments, environment and working directory. The
daemon hands a request to the pre-forked child only when nothing it read
while preparing could differ (`refusal` is None, and no file it imported or
read changed since); otherwise the session is forked the plain way, exactly
as without a pre-fork.

A second, *speculative* child goes further for the request the daemon saw
last (`speculate`): with that request's environment, working directory,
umask, arguments and session configuration, and placeholders for its
descriptors, it starts the session and lets pytest read PYTEST_ADDOPTS, the
ini file and rootdir, parse the arguments, install the assertion hook and
load entry-point plugins, then stops in the outermost
`pytest_load_initial_conftests` hook: before conftests (project code),
capture or anything that writes. The daemon hands it a request only when the
request equals the speculated one exactly and no file or directory it
consulted changed; the child then puts the request's descriptors in place of
the placeholders and carries on. Any other request takes the plain pre-forked
child or a plain session.

`RPYTEST_PREFORK=0` in the daemon's or the request's environment turns the
pre-fork off (the plain session path, e.g. to measure the difference);
`RPYTEST_PREFORK=plain` keeps the pre-forked child but never speculates.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import struct
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

# Arguments and environment variables that change which plugins pytest
# registers: a request with any of them always gets a plain session.
PLUGIN_ENV = ("PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_DEBUG")
AUTOLOAD_FLAG = "--disable-plugin-autoload"
SWITCH = "RPYTEST_PREFORK"

_HEADER = struct.Struct("!Q")
MAX_FDS = 8


def enabled(env: Dict[str, str]) -> bool:
    return env.get(SWITCH, "1").strip() not in ("0", "no", "off", "false")


def speculation_enabled(env: Dict[str, str]) -> bool:
    return enabled(env) and env.get(SWITCH, "1").strip() != "plain"


def plugin_args(args: Sequence[Any]) -> List[str]:
    """The `-p` plugin arguments in `args`, read the way pytest reads them for
    its start-up (`-p NAME`, `-pNAME`), plus `--disable-plugin-autoload`."""
    found: List[str] = []
    i = 0
    while i < len(args):
        opt = args[i]
        i += 1
        if not isinstance(opt, str):
            continue
        if opt == "-p":
            found.append("-p " + (str(args[i]) if i < len(args) else ""))
            i += 1
        elif opt.startswith("-p"):
            found.append(opt)
        elif opt == AUTOLOAD_FLAG or opt.startswith(AUTOLOAD_FLAG + "="):
            found.append(opt)
    return found


def exclusions(args: Sequence[Any]) -> Optional[List[str]]:
    """The `-p no:NAME` arguments of `args` as pytest's `get_config` reads
    them (`no:NAME`, in order), when every plugin argument is one of those;
    None when there is another (`-p NAME`, `--disable-plugin-autoload`)."""
    found: List[str] = []
    for arg in plugin_args(args):
        if arg.startswith("-p "):
            name = arg[3:].strip()
        elif arg.startswith("-p"):
            name = arg[2:].strip()
        else:
            return None
        if not name.startswith("no:"):
            return None
        found.append(name)
    return found


def refusal(
    argv: Sequence[Any], env: Dict[str, str], seen_env: Dict[str, Optional[str]], excluded: Sequence[str] = ()
) -> Optional[str]:
    """Why a request with `argv` and `env` must not use a child prepared while
    the environment had `seen_env` (the variables the preparation read) and
    with the `-p no:NAME` arguments `excluded`; None when it may."""
    if not enabled(env):
        return "%s=%s" % (SWITCH, env.get(SWITCH))
    found = plugin_args(argv)
    if found and exclusions(argv) != list(excluded):
        return "plugin arguments %s" % " ".join(found)
    if not found and excluded:
        return "no plugin arguments (prepared with %s)" % " ".join(excluded)
    addopts = env.get("PYTEST_ADDOPTS")
    if addopts:
        try:
            found = plugin_args(shlex.split(addopts))
        except ValueError:
            return "PYTEST_ADDOPTS cannot be split"
        if found:
            return "plugin arguments in PYTEST_ADDOPTS"
    for name in PLUGIN_ENV:
        if env.get(name):
            return "%s is set" % name
    if "*" in seen_env:
        return "the preparation read the whole environment"
    for name, value in seen_env.items():
        if env.get(name) != value:
            return "%s differs from the daemon's" % name
    return None


class OpenReads:
    """Records the files Python code opens for reading (`open`, `io.open`,
    and so `pathlib`'s reads) into `files`, as absolute paths, while entered.
    Reads by C code are not seen."""

    def __init__(self, files: Set[str]) -> None:
        self.files = files
        self._real: Any = None

    def __enter__(self) -> "OpenReads":
        import builtins
        import io

        real_open = self._real = io.open
        files = self.files

        # A module imported while this is entered keeps `recording_open` as its
        # `open` for good (tokenize binds it at import): after the exit it only
        # passes calls on. (record.py treats its frame as the caller's.)
        def recording_open(file: Any, *args: Any, **kwargs: Any) -> Any:
            if self._real is None:
                return real_open(file, *args, **kwargs)
            mode = args[0] if args else kwargs.get("mode", "r")
            reading = isinstance(mode, str) and not set(mode) & set("wax+")
            if reading and isinstance(file, (str, bytes, os.PathLike)):
                try:
                    files.add(os.path.abspath(os.fsdecode(file)))
                except (TypeError, ValueError):
                    pass
            return real_open(file, *args, **kwargs)

        builtins.open = io.open = recording_open
        return self

    def __exit__(self, *exc: Any) -> None:
        import builtins
        import io

        if self._real is not None:
            builtins.open = io.open = self._real
            self._real = None


def _cpu_seconds() -> float:
    """This process's CPU time so far (user + system), as wait4 will count it."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def file_stats(paths: Sequence[Any]) -> Dict[str, List[int]]:
    """(size, mtime, ctime, inode) of each absolute path; -1s for a missing one."""
    out: Dict[str, List[int]] = {}
    for f in paths:
        if not isinstance(f, str) or f in out or not os.path.isabs(f):
            continue
        try:
            st = os.stat(f)
            out[f] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        except OSError:
            out[f] = [-1, -1, -1, -1]
    return out


def changed_files(files: Dict[str, List[int]]) -> List[str]:
    """The files (modules the preparation imported, files it read) that changed since."""
    now = file_stats(list(files))
    return [f for f, st in files.items() if now.get(f) != list(st)]


# ---- the pre-forked child ---------------------------------------------------


class Prepared:
    """What the child made before the request: the `Config` of `get_config`
    and the keyword arguments it was made for (pytest 9 passes `prog`)."""

    def __init__(self, config: Any, kwargs: Dict[str, Any], excluded: Sequence[str] = ()) -> None:
        self.config = config
        self.kwargs = kwargs
        # The `-p no:NAME` arguments it was made with (`get_config` reads only those).
        self.excluded = list(excluded)
        self.used = False


def _get_config_kwargs() -> Dict[str, Any]:
    """The keyword arguments the session's `pytest_main` passes to `get_config`."""
    import inspect

    from _pytest import config as pytest_config

    try:
        params = inspect.signature(pytest_config.get_config).parameters
    except (TypeError, ValueError):
        return {}
    if "prog" in params:
        # pytest >= 9 names the program in usage errors; the session runs as
        # the `pytest` command does (session.pytest_main).
        return {"prog": "pytest"}
    return {}


# rpytest's modules every session imports before pytest starts (session.run_pytest).
SESSION_MODULES = ("rpytest.coverage", "rpytest.thirdparty")


def prepare(excluded: Sequence[str] = ()) -> Prepared:
    """Import what every session imports before pytest starts, and build what
    `get_config` builds for arguments whose only plugin arguments are the
    `-p no:NAME` ones in `excluded` (none: arguments without `-p`). When
    pytest refuses those (an essential plugin), what it builds without."""
    import importlib

    from _pytest import config as pytest_config

    for name in SESSION_MODULES:
        importlib.import_module(name)
    kwargs = _get_config_kwargs()
    if excluded:
        args: List[str] = []
        for name in excluded:
            args += ["-p", name]
        try:
            return Prepared(pytest_config.get_config(args, None, **kwargs), kwargs, excluded)
        except Exception:
            pass
    config = pytest_config.get_config(None, None, **kwargs)
    return Prepared(config, kwargs)


def install(prepared: Prepared, on_fresh: Optional[Callable[[], None]] = None) -> None:
    """Make the session's first `get_config` return the prepared config when
    it is asked for what was prepared (no `-p` in the arguments, the same
    keyword arguments); any other call builds a fresh one as usual (after
    calling `on_fresh`, when given)."""
    import pathlib

    from _pytest import config as pytest_config

    original = pytest_config.get_config

    def get_config(args: Any = None, plugins: Any = None, **kwargs: Any) -> Any:
        pytest_config.get_config = original  # one use: later sessions (pytester) build their own
        asked = exclusions(list(args)) if args is not None else []
        if prepared.used or kwargs != prepared.kwargs or asked != prepared.excluded:
            if on_fresh is not None:
                on_fresh()
            return original(args, plugins, **kwargs)
        prepared.used = True
        config = prepared.config
        config.invocation_params = pytest_config.Config.InvocationParams(
            args=args or (), plugins=plugins, dir=pathlib.Path.cwd()
        )
        return config

    pytest_config.get_config = get_config


def send_request(sock: socket.socket, req: Dict[str, Any], fds: Sequence[int]) -> None:
    """Daemon side: the request and its descriptors (stdio, control, then the client connection)."""
    data = json.dumps(req, separators=(",", ":")).encode("utf-8")
    payload = _HEADER.pack(len(data)) + data
    sent = sock.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("%di" % len(fds), *fds))])
    if sent < len(payload):
        sock.sendall(payload[sent:])


def _recv_exact(sock: socket.socket, n: int, fds: List[int]) -> bytes:
    buf = b""
    fds_size = struct.calcsize("i") * MAX_FDS
    while len(buf) < n:
        msg, anc, _flags, _addr = sock.recvmsg(min(n - len(buf), 1 << 20), socket.CMSG_SPACE(fds_size),
                                              getattr(socket, "MSG_CMSG_CLOEXEC", 0))
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                cdata = cdata[: len(cdata) - (len(cdata) % struct.calcsize("i"))]
                fds.extend(struct.unpack("%di" % (len(cdata) // struct.calcsize("i")), cdata))
        if not msg:
            raise EOFError("the daemon closed the pre-fork socket")
        buf += msg
    return buf


def receive_request(sock: socket.socket) -> Tuple[Dict[str, Any], List[int]]:
    fds: List[int] = []
    (size,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size, fds))
    req = json.loads(_recv_exact(sock, size, fds).decode("utf-8"))
    return req, fds


def child_main(
    sock: socket.socket,
    env_reads: Callable[[], Any],
    daemon_pid: int,
    base_pythonpath: Optional[str],
    speculate: Optional[Dict[str, Any]] = None,
    excluded: Sequence[str] = (),
) -> None:
    """Body of the pre-forked child (never returns). `env_reads` makes the
    daemon's recorder of environment reads; `speculate` is the request to
    speculate on (None: the plain pre-forked child); `excluded` the
    `-p no:NAME` arguments the plain child prepares for."""
    from rpytest import session

    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        session.set_parent_death_signal(daemon_pid)
        before = set(sys.modules)
        with env_reads() as reads:
            prepared = prepare(() if speculate is not None else excluded)
        seen: Dict[str, Optional[str]] = {n: os.environ.get(n) for n in sorted(reads.names) if n != "*"}
        if "*" in reads.names:
            seen["*"] = None
        added = sorted(set(sys.modules) - before)
        files = [getattr(sys.modules.get(n), "__file__", None) for n in added] + sorted(reads.files)
        info = {"type": "ready", "env": seen, "modules": added, "files": file_stats(files),
                "cpu": _cpu_seconds(), "excluded": prepared.excluded}
        if speculate is not None:
            speculative_main(sock, prepared, info, speculate, daemon_pid, base_pythonpath)
        sock.sendall((json.dumps(info) + "\n").encode("utf-8"))
        try:
            req, fds = receive_request(sock)
        except (EOFError, OSError, ValueError):
            os._exit(0)  # stopped, or the daemon is gone
        # The request (tens of thousands of cached entries) was decoded
        # here, after the fork: like the daemon's heap in a plain session,
        # it is kept out of the session's garbage collections. No project
        # code has run in this process yet.
        import gc

        gc.freeze()
        # The last descriptor is the client connection (the event channel).
        event_fd = fds.pop()
        install(prepared)
        go_fd = os.dup(sock.fileno())
        sock.close()
        session.child_main(req, fds, event_fd, go_fd, daemon_pid, base_pythonpath, done_fd=go_fd)
    except BaseException:
        import traceback

        try:
            sys.stderr.write("rpytest-daemon[%d]: pre-forked session failed:\n%s" % (os.getpid(), traceback.format_exc()))
            sys.stderr.flush()
        except Exception:
            pass
    finally:
        os._exit(3)


# ---- the speculative child ---------------------------------------------------

# Session settings that make a request unfit for speculation: a distributed
# run's sessions (their own channel, a per-run id) and hermetic sessions.
UNSPECULATED_SESSION_KEYS = ("role", "sandbox", "fork_socket", "testrun_uid", "worker_id")
# The ini files pytest looks for in each directory on the way up (pytest 8
# and 9), and setup.py (rootdir when there is no ini file).
INI_NAMES = ("pytest.toml", ".pytest.toml", "pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg",
             "setup.py")
# File times come from the kernel's coarse clock: a change this close to the
# speculation may not show in the stat the speculation took.
RACY_NS = 20_000_000


def unspeculable(req: Dict[str, Any], fd_count: int) -> Optional[str]:
    """Why a request must never be speculated on (None: it may be)."""
    env = req.get("env") or {}
    if not isinstance(env, dict) or not speculation_enabled({str(k): str(v) for k, v in env.items()}):
        return "%s=%s" % (SWITCH, env.get(SWITCH) if isinstance(env, dict) else None)
    if fd_count != 3:
        return "a control channel"
    session = req.get("session") or {}
    if not isinstance(session, dict):
        return "no session configuration"
    for key in UNSPECULATED_SESSION_KEYS:
        if session.get(key):
            return "session %s" % key
    if env.get("RPYTEST_STDOUT_CLOSED"):
        return "stdout closed"
    if not isinstance(req.get("cwd"), str) or not isinstance(req.get("argv"), list):
        return "no cwd or argv"
    # What the plain pre-forked child refuses, whatever it read.
    return refusal(req["argv"], {str(k): str(v) for k, v in env.items()}, {})


def consulted_paths(cwd: str, argv: Sequence[Any]) -> List[str]:
    """What `_preparse` may look at on disk for these arguments, beyond the
    modules it imports: the path-like arguments, the files of rootdir and ini
    discovery in every ancestor of them and of the working directory (a
    missing one is stat'ed too: its creation shows), and the directories on
    sys.path (a new distribution there brings entry points)."""
    dirs: Dict[str, None] = {}
    paths: List[str] = []

    def up(path: str) -> None:
        path = os.path.normpath(path)
        while path not in dirs:
            dirs[path] = None
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent

    up(cwd)
    for a in argv:
        if not isinstance(a, str):
            continue
        for part in (a, a.split("=", 1)[1] if a.startswith("-") and "=" in a else ""):
            part = part.split("::", 1)[0]
            if part and not part.startswith("-"):
                p = os.path.normpath(os.path.join(cwd, part))
                if os.path.exists(p):
                    paths.append(p)
                    up(p)
    paths.extend(os.path.join(d, n) for d in dirs for n in INI_NAMES)
    paths.extend(p for p in sys.path if isinstance(p, str) and os.path.isabs(p))
    return paths


def racy(stats: Dict[str, List[int]], since_ns: int) -> Optional[str]:
    """A file that changed so shortly before `since_ns` (or after it) that the
    speculation may have read another version than the one stat saw."""
    for f, st in stats.items():
        if st[1] >= since_ns - RACY_NS or st[2] >= since_ns - RACY_NS:
            return f
    return None


def _make_pause(sock: socket.socket, spec: Dict[str, Any], writer: Any, event_fd: int, info: Dict[str, Any],
                before: Any, consulted: Dict[str, List[int]], started_ns: int, reads: OpenReads) -> Any:
    """The plugin that stops the speculative session where the request is
    needed, and resumes it once the request arrived."""
    import pytest

    class Pause:
        taken = False

        @pytest.hookimpl(wrapper=True, tryfirst=True)
        def pytest_load_initial_conftests(self, early_config: Any) -> Any:
            self.wait(early_config)
            try:
                return (yield)
            finally:
                early_config.pluginmanager.unregister(self)

        def wait(self, config: Any) -> None:
            for s in (sys.stdout, sys.stderr):
                if s is not None:
                    s.flush()
            # Whatever was written went to a placeholder, not to the user:
            # this session cannot be the user's.
            if any(os.fstat(fd).st_size for fd in (1, 2)):
                os._exit(0)
            # What the preparation read (a plugin's data file at import) is
            # watched like the modules it imported.
            reads.__exit__()
            added = sorted(set(sys.modules) - before)
            files = [getattr(sys.modules.get(n), "__file__", None) for n in added] + sorted(reads.files)
            inipath = getattr(config, "inipath", None)
            if inipath is not None:
                files.append(str(inipath))
            stats = dict(consulted)
            stats.update(file_stats(files))
            stats.update(info["files"])
            if racy(stats, started_ns) is not None:
                os._exit(0)  # the daemon keeps the plain child for the request
            ready = dict(info, files=stats, speculated=True, cpu=_cpu_seconds())
            ready["modules"] = list(info.get("modules") or []) + added
            sock.sendall((json.dumps(ready) + "\n").encode("utf-8"))
            try:
                req, fds = receive_request(sock)
            except (EOFError, OSError, ValueError):
                os._exit(0)
            conn_fd = fds.pop()
            if req != spec or len(fds) != 3:
                os.write(fds[2] if len(fds) > 2 else 2, b"rpytest: internal error: the speculative session got another request\n")
                os._exit(3)
            for target, fd in enumerate(fds):
                os.dup2(fd, target, inheritable=True)
                os.close(fd)
            os.dup2(conn_fd, event_fd, inheritable=False)
            os.close(conn_fd)
            # What install_stdio decides from the descriptors themselves.
            unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
            if sys.stdin is not None:
                sys.stdin.reconfigure(line_buffering=_tty(0))
            if sys.stdout is not None and not unbuffered:
                sys.stdout.reconfigure(line_buffering=_tty(1))
            while True:  # the daemon's go: it told the client the session started
                try:
                    go = sock.recv(1)
                except InterruptedError:
                    continue
                if not go:
                    os._exit(0)
                break
            self.taken = True
            writer.release()

    return Pause()


def _tty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def speculative_main(sock: socket.socket, prepared: Prepared, info: Dict[str, Any], spec: Dict[str, Any],
                     daemon_pid: int, base_pythonpath: Optional[str]) -> None:
    """The speculative child, from its preparation on (never returns): the
    session of `spec` up to the pause, then the request's session."""
    import copy
    import random
    import time

    from rpytest import session
    from rpytest.protocol import EventWriter

    started_ns = time.time_ns()
    me = os.getpid()
    before = set(sys.modules)
    env = session.ordered_environment(spec.get("env") or {}, spec.get("env_order") or ())
    cwd = str(spec["cwd"])
    argv = [str(a) for a in spec.get("argv") or []]
    consulted = file_stats(consulted_paths(cwd, argv))
    pause = None
    code = 3
    try:
        session.reset_signals(
            [int(x) for x in spec.get("ignored_signals") or ()],
            [int(x) for x in spec.get("blocked_signals") or ()],
        )
        random.seed()
        argv0 = spec.get("argv0") or env.pop("RPYTEST_ARGV0", None) or session.default_argv0()
        env.pop("RPYTEST_ARGV0", None)
        # Placeholders until the request brings the client's descriptors:
        # what lands in them is checked (nothing may) before the hand-over.
        placeholders = [os.open(os.devnull, os.O_RDONLY), os.memfd_create("rpytest-stdout"),
                        os.memfd_create("rpytest-stderr")]
        session.install_stdio(placeholders, env)
        session.apply_environment(cwd, env, spec.get("umask"))
        session.setup_sys_path(argv0, env, base_pythonpath)
        session.install_main_module(argv0)
        event_fd = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        writer = EventWriter(event_fd)
        writer.hold()  # nothing reaches the client before the hand-over
        reads = OpenReads(set()).__enter__()
        pause = _make_pause(sock, spec, writer, event_fd, info, before, consulted, started_ns, reads)
        prepared.config.pluginmanager.register(pause, "rpytest-speculation")
        # Without the prepared config there is no pause: never run on.
        install(prepared, on_fresh=lambda: os._exit(0))
        # The session may change its settings in place (replay makes the
        # cached entries' lists tuples); the pause compares the request with
        # `spec` as it came.
        code = session.run_pytest(argv, copy.deepcopy(spec.get("session") or {}), writer, argv0, None)
    except KeyboardInterrupt:
        code = 2
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:
        if pause is None or not pause.taken:
            os._exit(0)  # never the user's session: nobody is told
        if getattr(exc, "_rpytest_pytest_own", False) or not session._raised_by_rpytest(exc):
            session._uncaught_like_python(exc)
            code = 1
        else:
            session._report_internal_error("running pytest")
            code = 3
    finally:
        if pause is None or not pause.taken:
            os._exit(0)
        session._end_like_python()
        if os.getpid() == me:
            session.tell_ended(sock.fileno(), code)
        os._exit(code)
