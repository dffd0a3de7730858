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

`RPYTEST_PREFORK=0` in the daemon's or the request's environment turns the
pre-fork off (the plain session path, e.g. to measure the difference).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import struct
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

# Arguments and environment variables that change which plugins pytest
# registers: a request with any of them always gets a plain session.
PLUGIN_ENV = ("PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_DEBUG")
AUTOLOAD_FLAG = "--disable-plugin-autoload"
SWITCH = "RPYTEST_PREFORK"

_HEADER = struct.Struct("!Q")
MAX_FDS = 8


def enabled(env: Dict[str, str]) -> bool:
    return env.get(SWITCH, "1").strip() not in ("0", "no", "off", "false")


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


def refusal(argv: Sequence[Any], env: Dict[str, str], seen_env: Dict[str, Optional[str]]) -> Optional[str]:
    """Why a request with `argv` and `env` must not use a child prepared while
    the environment had `seen_env` (the variables the preparation read); None
    when it may."""
    if not enabled(env):
        return "%s=%s" % (SWITCH, env.get(SWITCH))
    found = plugin_args(argv)
    if found:
        return "plugin arguments %s" % " ".join(found)
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

    def __init__(self, config: Any, kwargs: Dict[str, Any]) -> None:
        self.config = config
        self.kwargs = kwargs
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


def prepare() -> Prepared:
    """Import what every session imports before pytest starts, and build what
    `get_config` builds for arguments without `-p`."""
    import importlib

    from _pytest import config as pytest_config

    for name in SESSION_MODULES:
        importlib.import_module(name)
    kwargs = _get_config_kwargs()
    config = pytest_config.get_config(None, None, **kwargs)
    return Prepared(config, kwargs)


def install(prepared: Prepared) -> None:
    """Make the session's first `get_config` return the prepared config when
    it is asked for what was prepared (no `-p` in the arguments, the same
    keyword arguments); any other call builds a fresh one as usual."""
    import pathlib

    from _pytest import config as pytest_config

    original = pytest_config.get_config

    def get_config(args: Any = None, plugins: Any = None, **kwargs: Any) -> Any:
        pytest_config.get_config = original  # one use: later sessions (pytester) build their own
        if prepared.used or kwargs != prepared.kwargs or (args is not None and plugin_args(list(args))):
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
    sock: socket.socket, env_reads: Callable[[], Any], daemon_pid: int, base_pythonpath: Optional[str]
) -> None:
    """Body of the pre-forked child (never returns). `env_reads` makes the
    daemon's recorder of environment reads."""
    from rpytest import session

    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        session.set_parent_death_signal(daemon_pid)
        before = set(sys.modules)
        with env_reads() as reads:
            prepared = prepare()
        seen: Dict[str, Optional[str]] = {n: os.environ.get(n) for n in sorted(reads.names) if n != "*"}
        if "*" in reads.names:
            seen["*"] = None
        added = sorted(set(sys.modules) - before)
        files = [getattr(sys.modules.get(n), "__file__", None) for n in added] + sorted(reads.files)
        info = {"type": "ready", "env": seen, "modules": added, "files": file_stats(files),
                "cpu": _cpu_seconds()}
        sock.sendall((json.dumps(info) + "\n").encode("utf-8"))
        try:
            req, fds = receive_request(sock)
        except (EOFError, OSError, ValueError):
            os._exit(0)  # stopped, or the daemon is gone
        # The last descriptor is the client connection (the event channel).
        event_fd = fds.pop()
        install(prepared)
        go_fd = os.dup(sock.fileno())
        sock.close()
        session.child_main(req, fds, event_fd, go_fd, daemon_pid, base_pythonpath)
    except BaseException:
        import traceback

        try:
            sys.stderr.write("rpytest-daemon[%d]: pre-forked session failed:\n%s" % (os.getpid(), traceback.format_exc()))
            sys.stderr.flush()
        except Exception:
            pass
    finally:
        os._exit(3)
