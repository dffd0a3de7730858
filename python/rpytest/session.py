"""Session process setup: turn a forked daemon child (or a fresh `python -m rpytest.session`)
into what a stock `pytest` process would be, then run pytest.main with the rpytest plugin."""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and not getattr(sys.flags, "safe_path", False) and sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]  # stock `pytest` does not have the cwd on sys.path

import atexit
import builtins
import io
import json
import random
import signal
import traceback
import types
from typing import Any, Dict, List, Optional, Sequence

from rpytest.protocol import EventWriter, decode


def default_argv0() -> str:
    """What stock `pytest` has in sys.argv[0]: the script beside the interpreter, else "pytest"."""
    candidate = os.path.join(os.path.dirname(sys.executable), "pytest")
    return candidate if os.path.isfile(candidate) else "pytest"


def _split_pythonpath(value: Optional[str]) -> List[str]:
    return [p for p in (value or "").split(os.pathsep) if p]


def setup_sys_path(argv0: str, env: Dict[str, str], base_pythonpath: Optional[str]) -> None:
    """Make sys.path what `pytest` started with `env` would have (script dir + PYTHONPATH)."""
    old = _split_pythonpath(base_pythonpath)
    new = _split_pythonpath(env.get("PYTHONPATH"))
    insert_at = 0
    if old != new:
        drop = set(old) | {os.path.abspath(p) for p in old}
        sys.path[:] = [p for p in sys.path if p not in drop]
        for i, p in enumerate(new):
            sys.path.insert(i, p)
        insert_at = 0
    if os.path.isfile(argv0):
        sys.path.insert(insert_at, os.path.dirname(os.path.realpath(argv0)))


def install_main_module(argv0: str) -> None:
    """Give the session a `__main__` like stock pytest's (multiprocessing spawn re-runs it)."""
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = builtins
    main.__dict__["__spec__"] = None
    if os.path.isfile(argv0):
        main.__dict__["__file__"] = argv0
    sys.modules["__main__"] = main


def reset_signals(ignored: Sequence[int] = (), blocked: Sequence[int] = ()) -> None:
    """Signal state of a fresh CPython process started by the client
    (SIGPIPE/SIGXFSZ ignored as CPython does; the signals the client ignores,
    e.g. SIGHUP under `nohup`, SIGINT under `trap '' INT` or in a script's
    background job, stay ignored across exec as they would: CPython installs
    its KeyboardInterrupt handler only where SIGINT is not ignored; the
    client's signal mask is inherited across exec too)."""
    try:
        signal.set_wakeup_fd(-1)
    except ValueError:
        pass
    int_ignored = int(signal.SIGINT) in ignored
    signal.signal(signal.SIGINT, signal.SIG_IGN if int_ignored else signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN if int(sig) in ignored and sig != signal.SIGCHLD else signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        valid = signal.valid_signals()
        signal.pthread_sigmask(signal.SIG_SETMASK, [s for s in blocked if s in valid])


def set_parent_death_signal(expected_ppid: int) -> None:
    """Die with the daemon (Linux): a SIGKILLed daemon must not leave a session holding the client."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        return
    if os.getppid() != expected_ppid:
        os._exit(3)


def _text_stream(fd: int, name: str, write: bool, encoding: str, errors: str, line_buffering: bool, unbuffered: bool):
    raw = io.FileIO(fd, "wb" if write else "rb", closefd=False)
    try:
        raw.name = name  # type: ignore[misc]
    except (AttributeError, TypeError):
        pass
    buf: Any
    if write:
        buf = raw if unbuffered else io.BufferedWriter(raw)
    else:
        buf = io.BufferedReader(raw)
    stream = io.TextIOWrapper(
        buf,
        encoding=encoding,
        errors=errors,
        newline="\n",
        line_buffering=line_buffering,
        write_through=write and unbuffered,
    )
    try:
        stream.mode = "w" if write else "r"  # type: ignore[misc]
    except AttributeError:
        pass
    return stream


def install_stdio(fds: Sequence[int], env: Dict[str, str]) -> None:
    """dup2 the client's stdin/stdout/stderr onto 0/1/2 and rebuild sys.std* like CPython."""
    import fcntl

    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except Exception:
            pass
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in fds]
    for fd in fds:
        os.close(fd)
    for target, fd in enumerate(high):
        os.dup2(fd, target, inheritable=True)
        os.close(fd)

    base = sys.__stdout__
    encoding = getattr(base, "encoding", None) or "utf-8"
    errors = getattr(base, "errors", None) or "strict"
    ioenc = env.get("PYTHONIOENCODING")
    if ioenc:
        enc, _, errs = ioenc.partition(":")
        encoding = enc or encoding
        errors = errs or errors
    unbuffered = bool(env.get("PYTHONUNBUFFERED"))

    def tty(fd: int) -> bool:
        try:
            return os.isatty(fd)
        except OSError:
            return False

    sys.stdin = sys.__stdin__ = _text_stream(0, "<stdin>", False, encoding, errors, tty(0), False)
    sys.stdout = sys.__stdout__ = _text_stream(1, "<stdout>", True, encoding, errors, tty(1) or unbuffered, unbuffered)
    sys.stderr = sys.__stderr__ = _text_stream(2, "<stderr>", True, encoding, "backslashreplace", True, unbuffered)


def ordered_environment(env: Dict[str, Any], order: Sequence[str]) -> Dict[str, str]:
    """The request's environment in the order the client's process held it
    (`order`; names it leaves out follow in the order received)."""
    out = {str(k): str(env[k]) for k in order if k in env}
    for k, v in env.items():
        out.setdefault(str(k), str(v))
    return out


_COERCION_TARGETS = ("C.UTF-8", "C.utf8", "UTF-8")


def coerce_c_locale(env: Dict[str, str]) -> None:
    """What CPython makes of a C locale at start-up (PEP 538), on `env`: with
    `LC_ALL` unset or empty, `PYTHONCOERCECLOCALE` not `0`, and the `LC_CTYPE`
    locale the environment selects being C (none set, `C`, `POSIX`, or a name
    the C library does not know), `LC_CTYPE` is set to the first of C.UTF-8,
    C.utf8, UTF-8 the C library accepts, appended to the environment. A forked
    session inherits the daemon's C locale but takes the client's variables."""
    if env.get("PYTHONCOERCECLOCALE") == "0" or env.get("LC_ALL"):
        return
    if sys.flags.ignore_environment:
        return
    import locale

    name = env.get("LC_CTYPE") or env.get("LANG") or ""
    previous = locale.setlocale(locale.LC_CTYPE)
    try:
        if name not in ("", "C", "POSIX"):
            try:
                if locale.setlocale(locale.LC_CTYPE, name) not in ("C", "POSIX"):
                    return
            except locale.Error:
                pass
        for target in _COERCION_TARGETS:
            try:
                locale.setlocale(locale.LC_CTYPE, target)
            except locale.Error:
                continue
            env["LC_CTYPE"] = target  # in place when set (setenv)
            return
    finally:
        locale.setlocale(locale.LC_CTYPE, previous)


def apply_environment(cwd: str, env: Dict[str, str], umask: Optional[int]) -> None:
    """cwd, environment (same os.environ object) and umask of the client."""
    os.chdir(cwd)
    coerce_c_locale(env)
    os.environ.clear()
    os.environ.update(env)
    # The C library's LC_CTYPE, as a fresh interpreter sets it from these
    # variables at start-up (the daemon's was set from its own).
    import locale

    try:
        locale.setlocale(locale.LC_CTYPE, "")
    except locale.Error:
        pass
    if umask is not None:
        os.umask(int(umask))
    # The C library read TZ when the daemon started; a fresh process reads the
    # client's (time.localtime, time.tzname, datetime's local time).
    import time

    if hasattr(time, "tzset"):
        time.tzset()


def forget_tempdir() -> None:
    """The directory of temporary files, which `tempfile` computes once per
    process from TMPDIR, TEMP and TMP when first asked (the daemon's
    process, rpytest's own start-up): asked again in the session, from the
    client's variables, as in a fresh process."""
    tempfile = sys.modules.get("tempfile")
    if tempfile is not None:
        tempfile.tempdir = None


def enter_sandbox(cfg: Dict[str, Any], writer: EventWriter) -> Any:
    """The sandbox's pytest plugin once the session is inside it; None (after
    saying why on stderr) when it cannot be entered: the session must not run."""
    from rpytest import sandbox

    try:
        plan = sandbox.enter(cfg)
    except (sandbox.SandboxError, OSError) as exc:
        msg = "rpytest: cannot run hermetic tests in a sandbox: %s\nrpytest: hermetic tests never run unsandboxed\n" % exc
        try:
            sys.stderr.flush()
            os.write(2, msg.encode("utf-8", "backslashreplace"))
        except OSError:
            pass
        return None
    sandbox.apply_env(cfg.get("env") or dict(os.environ))
    denials = sandbox.Denials(plan, cfg.get("rules") or {})
    denials.start()
    return sandbox.SandboxPlugin(denials, writer)


def run_pytest(
    argv: List[str], session_config: Dict[str, Any], writer: EventWriter, argv0: str, control_fd: Optional[int] = None
) -> int:
    """Run one real pytest session with the rpytest plugin; returns its exit code.

    In a distributed run (`role` worker or controller, rpytest.parallel) the
    CLI's messages arrive on `control_fd`."""
    import pytest

    from rpytest.plugin import RpytestPlugin

    sys.argv = [argv0] + list(argv)
    rootdir = session_config.get("rootdir") or os.getcwd()
    plugin = RpytestPlugin(session_config, writer)
    plugins: List[Any] = [plugin]
    if session_config.get("xdist_compat"):
        from rpytest import compat

        plugins.append(compat)
    role = session_config.get("role")
    if role in ("worker", "controller"):
        from rpytest.parallel import ControlChannel, ControllerPlugin, WorkerPlugin

        if control_fd is None:
            raise RuntimeError("a %s session needs a control channel" % role)
        channel = ControlChannel(control_fd)
        if role == "worker":
            plugins.append(WorkerPlugin(plugin, writer, channel, session_config))
        else:
            plugins.append(ControllerPlugin(plugin, writer, channel))
    from rpytest import coverage

    plugins.extend(coverage.plugins(plugin, session_config.get("coverage") or {}))
    from rpytest.thirdparty import ThirdParty

    plugins.append(ThirdParty(plugin))
    from rpytest import shadow

    if session_config.get("sandbox") and role != "controller":
        # Hermetic tests: enter the sandbox before anything of the project is
        # imported; workers forked after collection inherit it.
        cfg = dict(session_config["sandbox"])
        if session_config.get("fork_socket"):
            # The collector connects the workers it forks to the CLI through it.
            cfg["writable"] = list(cfg.get("writable") or []) + [session_config["fork_socket"]]
        sandboxed = enter_sandbox(cfg, writer)
        if sandboxed is None:
            return 4
        plugins.append(sandboxed)
    if session_config.get("record") and session_config.get("events", True):
        from rpytest.installed import InstalledReport

        plugins.append(InstalledReport(writer, str(rootdir)))
    from rpytest import bytecode

    bytecode.install(rootdir)
    # Warm modules a fresh `pytest` would not have yet: importable again only
    # where the session's own sys.path leads to the same file.
    shadow.hide_non_baseline()
    plugin.start()
    forget_tempdir()
    # What the `pytest` command does around main() (console_main): a reader that
    # went away, during the session or at the final flush, is exit 1 with stdout
    # pointed at /dev/null for the interpreter's own final flush; anything else
    # escapes as pytest's.
    try:
        try:
            code = pytest_main(list(argv), plugins)
        finally:
            plugin.stop()
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
        return 1
    except BaseException as exc:
        exc._rpytest_pytest_own = True  # type: ignore[attr-defined]
        raise
    return int(code)


def _flush_std() -> None:
    for s in (sys.stdout, sys.stderr):
        try:
            if s is not None:
                s.flush()
        except Exception:
            pass


def _end_like_python() -> None:
    """What CPython does before a process exits: wait for non-daemon threads
    (`threading._shutdown`), then run the atexit handlers. A forked session
    leaves with `os._exit`, which would skip both and lose a background
    thread's work that stock pytest keeps."""
    _flush_std()
    import threading

    try:
        threading._shutdown()  # type: ignore[attr-defined]
    except BaseException:
        pass
    try:
        atexit._run_exitfuncs()
    except BaseException:
        pass
    try:
        _flush_open_files()
    except BaseException:
        pass
    _flush_std()


# The modules the process had when the session began: the files their globals
# hold are the daemon's, not the session's.
_MODULES_BEFORE: "frozenset[str]" = frozenset()


def _flush_open_files() -> None:
    """CPython's teardown clears the modules, and a file a test left open in
    one (`LOG = open(...)` in a conftest, a list a test module keeps) is
    flushed as it is freed. `os._exit` frees nothing: flush the buffered
    files the globals of the session's modules hold, and those in their
    lists, tuples, sets and dicts (one level), without walking the heap."""
    import io

    # Exact types: isinstance would ask a lazy proxy for its `__class__`
    # (Django's settings import the settings module then).
    kinds = {io.BufferedWriter, io.BufferedRandom, io.TextIOWrapper}

    def flush(obj: Any) -> None:
        if type(obj) in kinds:
            try:
                if not obj.closed and obj.writable():
                    obj.flush()
            except Exception:
                pass

    import types

    for name, module in list(sys.modules.items()):
        if name in _MODULES_BEFORE or not issubclass(type(module), types.ModuleType):
            continue
        try:
            values = types.ModuleType.__dict__["__dict__"].__get__(module)
            for value in list(values.values()):
                t = type(value)
                if t is list or t is tuple or t is set:
                    for item in list(value):
                        flush(item)
                elif t is dict:
                    for item in list(value.values()):
                        flush(item)
                else:
                    flush(value)
        except Exception:
            continue


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _in_rpytest(filename: str) -> bool:
    return os.path.dirname(os.path.abspath(filename)) == _PACKAGE_DIR


def _raised_by_rpytest(exc: BaseException) -> bool:
    """Whether the innermost frame of `exc` is rpytest's code (our bug, exit 3)."""
    tb = exc.__traceback__
    if tb is None:
        return True
    while tb.tb_next is not None:
        tb = tb.tb_next
    return _in_rpytest(tb.tb_frame.f_code.co_filename)


def _uncaught_like_python(exc: BaseException) -> None:
    """Print `exc` through sys.excepthook as CPython does for an uncaught
    exception, without the frames of rpytest's session setup above pytest."""
    tb = exc.__traceback__
    while tb is not None and _in_rpytest(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    try:
        sys.excepthook(type(exc), exc.with_traceback(tb), tb)
    except BaseException:
        _report_internal_error("reporting an exception")


def _report_internal_error(what: str) -> None:
    msg = "rpytest: internal error in the session process (%s):\n%s" % (what, traceback.format_exc())
    try:
        os.write(2, msg.encode("utf-8", "backslashreplace"))
    except OSError:
        pass


def pytest_main(argv: List[str], plugins: List[Any]) -> Any:
    """`pytest.main`, named as the `pytest` command names itself: pytest 9
    prints the program in usage errors, and `pytest.main` calls itself
    "pytest.main()" where the command says "pytest"."""
    import pytest
    from _pytest import config as pytest_config

    inner = getattr(pytest_config, "_main", None)
    if inner is not None:
        import inspect

        try:
            if "prog" in inspect.signature(inner).parameters:
                return inner(args=argv, plugins=plugins, prog="pytest")
        except (TypeError, ValueError):
            pass
    return pytest.main(argv, plugins=plugins)


def child_main(
    request: Dict[str, Any],
    stdio_fds: Sequence[int],
    event_fd: int,
    go_fd: int,
    daemon_pid: int,
    base_pythonpath: Optional[str],
    done_fd: Optional[int] = None,
) -> None:
    """Body of a forked session child. Never returns: always ends with os._exit.
    `done_fd` (a pre-forked child's socket to the daemon, which may also be
    `go_fd`) hears when the session ended (`tell_ended`)."""
    me = os.getpid()  # a test that forks and returns through here is not the session
    global _MODULES_BEFORE
    _MODULES_BEFORE = frozenset(sys.modules)
    code = 3
    stage = "setting up the session process"
    try:
        reset_signals(
            [int(x) for x in request.get("ignored_signals") or ()],
            [int(x) for x in request.get("blocked_signals") or ()],
        )
        set_parent_death_signal(daemon_pid)
        # The daemon writes "started" before we may write events on the shared connection.
        while True:
            try:
                os.read(go_fd, 1)
                break
            except InterruptedError:
                continue
        if go_fd != done_fd:
            os.close(go_fd)
        random.seed()
        env = ordered_environment(request.get("env") or {}, request.get("env_order") or ())
        control_fd: Optional[int] = None
        if len(stdio_fds) > 3:
            import fcntl

            control_fd = fcntl.fcntl(stdio_fds[3], fcntl.F_DUPFD_CLOEXEC, 10)
            os.close(stdio_fds[3])
        stdout_closed = env.pop("RPYTEST_STDOUT_CLOSED", None) == "1"
        # rpytest's own messages in the environment are not the tests' to see.
        argv0 = request.get("argv0") or env.pop("RPYTEST_ARGV0", None) or default_argv0()
        env.pop("RPYTEST_ARGV0", None)
        install_stdio(stdio_fds[:3], env)
        if stdout_closed:
            # The user ran us with stdout closed: pytest's process has no sys.stdout.
            os.close(1)
            sys.stdout = sys.__stdout__ = None  # type: ignore[assignment]
        apply_environment(request["cwd"], env, request.get("umask"))
        setup_sys_path(argv0, env, base_pythonpath)
        install_main_module(argv0)
        writer = EventWriter(event_fd)
        stage = "running pytest"
        code = run_pytest(
            [str(a) for a in request.get("argv") or []], request.get("session") or {}, writer, argv0, control_fd
        )
        stage = "exiting"
    except KeyboardInterrupt:
        code = 2
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:
        own = getattr(exc, "_rpytest_pytest_own", False)
        parallel = sys.modules.get("rpytest.parallel")
        if stage == "running pytest" and getattr(parallel, "WORKER_FINISHED", False):
            code = 1  # after a worker's session: not shown, as under pytest-xdist
        elif stage == "running pytest" and (own or not _raised_by_rpytest(exc)):
            # pytest's own crash (a --junitxml path too long, a closed stdout):
            # report it as the `pytest` process would, uncaught: exit 1.
            _uncaught_like_python(exc)
            code = 1
        else:
            _report_internal_error(stage)
            code = 3
    finally:
        _end_like_python()
        if os.getpid() == me:
            tell_ended(done_fd, code)
        os._exit(code)


def tell_ended(done_fd: Optional[int], code: int) -> None:
    """Tell the daemon that the session ended with `code`: what the process
    does once its atexit handlers ran and its output is flushed, with only
    `os._exit` left. The daemon then answers the client at once instead of
    after the process is gone (tearing down a forked interpreter, the
    SIGCHLD, the reap), and prepares the next child."""
    if done_fd is None:
        return
    try:
        os.write(done_fd, b'{"code": %d}\n' % int(code))
    except (OSError, ValueError, TypeError):
        pass


def main() -> None:
    """`python -m rpytest.session`: the --no-daemon fallback (a fresh process per session)."""
    cfg_fd_s = os.environ.pop("RPYTEST_SESSION_CONFIG_FD", None)
    event_fd_s = os.environ.pop("RPYTEST_EVENT_FD", None)
    control_fd_s = os.environ.pop("RPYTEST_CONTROL_FD", None)
    argv0 = os.environ.pop("RPYTEST_ARGV0", None) or default_argv0()
    try:
        session_config: Dict[str, Any] = {}
        if cfg_fd_s:
            # An inherited pipe, never a file in a shared temp directory.
            with os.fdopen(int(cfg_fd_s), "rb") as f:
                session_config = decode(f.read())
        event_fd: Optional[int] = None
        if event_fd_s:
            event_fd = int(event_fd_s)
            os.set_inheritable(event_fd, False)
        if os.path.isfile(argv0):
            sys.path.insert(0, os.path.dirname(os.path.realpath(argv0)))
        install_main_module(argv0)
        writer = EventWriter(event_fd)
        control_fd: Optional[int] = None
        if control_fd_s:
            control_fd = int(control_fd_s)
            os.set_inheritable(control_fd, False)
    except Exception:
        _report_internal_error("setting up the session process")
        sys.exit(3)
    try:
        code = run_pytest(sys.argv[1:], session_config, writer, argv0, control_fd)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        if getattr(exc, "_rpytest_pytest_own", False) or not _raised_by_rpytest(exc):
            _uncaught_like_python(exc)  # as the `pytest` process would end
            code = 1
        else:
            _report_internal_error("running pytest")
            code = 3
    _flush_std()
    sys.exit(code)


if __name__ == "__main__":
    main()
