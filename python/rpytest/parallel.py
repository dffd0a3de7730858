"""`-n N`: the worker and controller sides of a distributed run (docs/protocol.md).

The rpytest CLI starts one controller session and one **collecting** worker
session, both real pytest sessions forked from the warm daemon. The collector
collects the suite once (pytest's own selection and the plugin's cache
handling included) and reports its collection; then, if it runs no thread, it
forks the N workers the CLI asks for: each fork inherits every collected item
copy-on-write, connects to the CLI on a socket of its own, and asks for work:
lists of indexes into the collected item list, scheduled longest-first from
recorded durations. The collector stays idle until the run ends and forks a
replacement for a worker that crashed. (A collector that cannot fork, because
a thread is running, is an ordinary worker and the CLI starts the others,
each collecting, as pytest-xdist's workers do.)

Workers stream their serialized reports; the CLI forwards them to the
controller, which feeds them to its own hooks, so the terminal reporter,
`--junitxml`, `--durations`, the warnings summary and plugins' summaries are
pytest's own. The controller never collects and never runs a test.
"""

from __future__ import annotations

import gc
import os
import random
import select
import signal
import socket
import sys
import threading
import time
import warnings
import zlib
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Tuple

import pytest
from _pytest.reports import TestReport

from rpytest import protocol as msgs
from rpytest.protocol import EventWriter, LineBuffer, decode, encode

_Message = Dict[str, Any]



# Plugins known to use the worker id they read before the workers fork only
# as a label (pytest-cov names its data with it; its data files are named by
# pid): forks may share gw0's.
_ID_AS_LABEL = ("pytest_cov.",)
_getframe = sys._getframe  # captured: a test may delete sys._getframe


class _WorkerInput(dict):
    """`config.workerinput` as pytest-xdist gives it (a dict), noting whether code
    read the worker id: read while collecting, it would be gw0's in every fork."""

    id_read = False

    def _note(self, key: Any) -> None:
        # Which worker runs a test, and how many there are, is what a test
        # reading them depends on: recorded as the variables xdist sets
        # (the CLI keys them as the run will set them).
        if key == "workerid":
            sys.audit("rpytest.env", "PYTEST_XDIST_WORKER")
        elif key == "workercount":
            sys.audit("rpytest.env", "PYTEST_XDIST_WORKER_COUNT")
        if key == "workerid" and not self.id_read:
            caller = str(_getframe(2).f_globals.get("__name__", ""))
            if not caller.startswith(_ID_AS_LABEL):
                self.id_read = True

    def __getitem__(self, key: Any) -> Any:
        self._note(key)
        return dict.__getitem__(self, key)

    def get(self, key: Any, default: Any = None) -> Any:
        self._note(key)
        return dict.get(self, key, default)

class _XdistHookspecs:
    """pytest-xdist's hooks, declared when pytest-xdist is not installed (its
    own declarations are used when it is): plugins written for xdist implement
    them, and rpytest's controller calls the controller-side ones."""

    @pytest.hookspec()
    def pytest_xdist_setupnodes(self, config: Any, specs: Any) -> None:
        """Before the workers are set up."""

    @pytest.hookspec()
    def pytest_xdist_newgateway(self, gateway: Any) -> None:
        """A worker's gateway was made."""

    @pytest.hookspec()
    def pytest_xdist_rsyncstart(self, source: Any, gateways: Any) -> None:
        """Unused: rpytest syncs no directories."""

    @pytest.hookspec()
    def pytest_xdist_rsyncfinish(self, source: Any, gateways: Any) -> None:
        """Unused: rpytest syncs no directories."""

    @pytest.hookspec(firstresult=True)
    def pytest_xdist_getremotemodule(self) -> Any:
        """Unused: rpytest's workers are pytest sessions of their own."""

    @pytest.hookspec()
    def pytest_configure_node(self, node: Any) -> None:
        """On the controller, before worker `node` starts: fill `node.workerinput`."""

    @pytest.hookspec()
    def pytest_testnodeready(self, node: Any) -> None:
        """On the controller: worker `node` started its session."""

    @pytest.hookspec()
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """On the controller: worker `node` ended (`node.workeroutput` is what it handed back)."""

    @pytest.hookspec()
    def pytest_xdist_node_collection_finished(self, node: Any, ids: Any) -> None:
        """On the controller: worker `node` collected `ids`."""

    @pytest.hookspec(firstresult=True)
    def pytest_xdist_make_scheduler(self, config: Any, log: Any) -> Any:
        """Unused: rpytest schedules the work itself."""

    @pytest.hookspec(firstresult=True)
    def pytest_xdist_auto_num_workers(self, config: Any) -> Any:
        """Unused: `-n auto` is resolved by the rpytest CLI."""

    @pytest.hookspec(firstresult=True)
    def pytest_handlecrashitem(self, crashitem: Any, report: Any, sched: Any) -> Any:
        """Unused: a crashed test is reported by rpytest."""


def add_xdist_hookspecs(pluginmanager: Any) -> None:
    """Declares xdist's hooks unless they are: pytest-xdist's own module when
    it is installed (importing it does not activate xdist), else ours."""
    caller = getattr(pluginmanager.hook, "pytest_configure_node", None)
    if caller is not None and getattr(caller, "spec", None) is not None:
        return
    import importlib.util

    try:
        installed = importlib.util.find_spec("xdist.newhooks") is not None
    except Exception:
        installed = False
    if installed:
        from xdist import newhooks  # type: ignore[import-not-found]

        pluginmanager.add_hookspecs(newhooks)
    else:
        pluginmanager.add_hookspecs(_XdistHookspecs)


class _XdistPresent:
    """Registered as plugin `xdist` in the sessions of a distributed run:
    plugins ask `pluginmanager.hasplugin("xdist")` before they register their
    xdist hooks (pytest-randomly does). The sessions run with `-p no:xdist`,
    so pytest-xdist's own machinery stays off."""


def claim_xdist_name(pluginmanager: Any) -> None:
    if pluginmanager.has_plugin("xdist"):
        return
    if pluginmanager.is_blocked("xdist"):
        if hasattr(pluginmanager, "unblock"):
            pluginmanager.unblock("xdist")
        else:
            pluginmanager._name2plugin.pop("xdist", None)
    pluginmanager.register(_XdistPresent(), "xdist")


class XdistInterop:
    """Before any plugin's `pytest_configure` (once pytest parsed its
    arguments and loaded the plugins, so pytest-xdist, if installed, is
    imported after pytest marked it for assertion rewriting): xdist's hooks
    are declared and `hasplugin("xdist")` is true."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        add_xdist_hookspecs(config.pluginmanager)
        claim_xdist_name(config.pluginmanager)


def _register_interop(pluginmanager: Any) -> None:
    if pluginmanager.get_plugin("rpytest-xdist-interop") is None:
        pluginmanager.register(XdistInterop(), "rpytest-xdist-interop")


# Values handed between controller and workers (`workerinput`, `workeroutput`)
# travel as JSON; what JSON lacks and pytest-xdist's channel carries (bytes,
# tuples, sets, non-string keys) is tagged.
_TAG = "__rpytest_xdist__"


def pack(obj: Any) -> Any:
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (bytes, bytearray)):
        import base64

        return {_TAG: "bytes", "v": base64.b64encode(bytes(obj)).decode("ascii")}
    if isinstance(obj, list):
        return [pack(v) for v in obj]
    if isinstance(obj, tuple):
        return {_TAG: "tuple", "v": [pack(v) for v in obj]}
    if isinstance(obj, (set, frozenset)):
        return {_TAG: "set", "v": [pack(v) for v in obj]}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and _TAG not in obj:
            return {k: pack(v) for k, v in obj.items()}
        return {_TAG: "dict", "v": [[pack(k), pack(v)] for k, v in obj.items()]}
    return str(obj)


def unpack(obj: Any) -> Any:
    if isinstance(obj, list):
        return [unpack(v) for v in obj]
    if not isinstance(obj, dict):
        return obj
    tag = obj.get(_TAG)
    if tag is None:
        return {k: unpack(v) for k, v in obj.items()}
    v = obj.get("v")
    if tag == "bytes":
        import base64

        return base64.b64decode(v)
    if tag == "tuple":
        return tuple(unpack(x) for x in v)
    if tag == "set":
        return {unpack(x) for x in v}
    return {unpack(k): unpack(x) for k, x in v}


class ControlChannel:
    """Messages from the CLI: one JSON object per line on a pipe."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = LineBuffer()
        self.pending: Deque[_Message] = deque()
        self.eof = False

    def _fill(self, timeout: Optional[float]) -> None:
        if self.eof:
            return
        if timeout is not None:
            r, _, _ = select.select([self.fd], [], [], timeout)
            if not r:
                return
        try:
            data = os.read(self.fd, 1 << 16)
        except InterruptedError:
            return
        if not data:
            self.eof = True
            return
        for line in self.buf.feed(data):
            self.pending.append(decode(line))

    def reset(self) -> None:
        """Forget what was read: a forked worker's fd now names another channel."""
        self.buf = LineBuffer()
        self.pending.clear()
        self.eof = False

    def wait_for(self, kind: str) -> Optional[_Message]:
        """Blocks for the next message of type `kind`; the others stay queued.
        None once the CLI closed the pipe or asked this session to stop."""
        held: List[_Message] = []
        found: Optional[_Message] = None
        while True:
            msg = self.get()
            if msg is None:
                break
            if msg.get("type") == kind:
                found = msg
                break
            held.append(msg)
            if msg.get("type") == "stop":
                break
        self.pending.extendleft(reversed(held))
        return found

    def get(self) -> Optional[_Message]:
        """Blocks for the next message; None once the CLI closed the pipe."""
        while not self.pending and not self.eof:
            self._fill(None)
        return self.pending.popleft() if self.pending else None

    def poll(self) -> Optional[_Message]:
        """The next message if one is already there."""
        if not self.pending:
            self._fill(0)
        return self.pending.popleft() if self.pending else None


def _user_args(config: pytest.Config) -> List[str]:
    """The session's arguments as the user gave them (the CLI puts `-p no:xdist` first)."""
    args = [str(a) for a in config.invocation_params.args]
    if args[:2] == ["-p", "no:xdist"]:
        del args[:2]
    return args


def _xdist_group(item: pytest.Item) -> Optional[str]:
    mark = item.get_closest_marker("xdist_group")
    if mark is None:
        return None
    name = mark.args[0] if mark.args else mark.kwargs.get("name", "default")
    return str(name)


def _serialize_warning(warning_message: warnings.WarningMessage, when: str, nodeid: str, location: Any) -> msgs.WarningMsg:
    category = warning_message.category
    return msgs.warning(
        message=str(warning_message.message),
        category=[getattr(category, "__module__", "builtins"), getattr(category, "__qualname__", "UserWarning")],
        filename=str(warning_message.filename),
        lineno=warning_message.lineno,
        when=when,
        nodeid=nodeid,
        location=list(location) if location else None,
    )


def _warning_category(module: str, qualname: str) -> type:
    try:
        obj: Any = __import__(module, fromlist=["_"])
        for part in qualname.split("."):
            obj = getattr(obj, part)
        if isinstance(obj, type) and issubclass(obj, Warning):
            return obj
    except Exception:
        pass
    return type(qualname.rsplit(".", 1)[-1], (UserWarning,), {"__module__": module})


class _Share:
    """Which test files a collector of a partitioned `-n` run collects: its
    own, and each file no run has timed whose path hashes to its share
    (src/parallel/partition.rs)."""

    def __init__(self, partition: Dict[str, Any]) -> None:
        self.index = int(partition.get("index") or 0)
        self.count = max(1, int(partition.get("count") or 1))
        self.mine = {str(f) for f in partition.get("files") or ()}
        self.others = {str(f) for f in partition.get("others") or ()}

    def collects(self, rel: str) -> bool:
        if rel in self.mine:
            return True
        if rel in self.others:
            return False
        return zlib.crc32(rel.encode("utf-8")) % self.count == self.index


# The collection hooks whose implementations see the whole item list, or
# run once for the whole collection: a collector that makes the items of its
# share of the files only gives them that share. Per-item hooks
# (`pytest_itemcollected`, `pytest_generate_tests`, ...) see what they would
# see in a full collection.
_WHOLE_LIST_HOOKS = (
    "pytest_collection",
    "pytest_collection_modifyitems",
    "pytest_collection_finish",
    "pytest_deselected",
)

# Modules whose implementations of those hooks give each share what the whole
# list would give it: pytest's own (`-k`/`-m`/`--deselect` deselect item by
# item; fixtures' reordering and the terminal only order or count), rpytest's,
# pytest-randomly (a permutation sorted by per-module and per-class keys: a
# share's order is the whole order restricted to it, the seed is the
# controller's), hypothesis (marks each item on its own) and time-machine
# (adds its fixture to each marked item on its own).
_PER_SHARE_MODULES = ("_pytest", "pytest", "rpytest", "pytest_randomly", "_hypothesis_pytestplugin", "time_machine")


class _OtherShare(pytest.Collector):
    """Another share's test module in a partitioned collection: collecting it
    imports the module (where and when pytest would) and makes no item. Not a
    `pytest.File`: this share's session does not list the file as collected
    (its own share does, with its tests). What the import reads is credited
    to the module's file, as a whole collection credits it, not to every test."""

    module: Any = None
    credit: Any = None

    def collect(self) -> List[Any]:
        credit = self.credit
        prev = credit[0].set_active(credit[1]) if credit is not None else None
        try:
            self.module.obj
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:
            pass  # its own share reports the error or skip
        finally:
            if credit is not None:
                credit[0].active = prev
        return []


def _import_only(module: Any, credit: Any) -> Any:
    """Stands for `module` (see `_OtherShare`); `credit`: (recorder, file) or None."""
    node = _OtherShare.from_parent(module.parent, name=module.name, nodeid=module.nodeid)
    node.module = module
    node.credit = credit
    return node


def _hookimpl_module(impl: Any) -> Tuple[str, str]:
    """(module name, file) of a hookimpl's function."""
    fn = impl.function
    code = getattr(fn, "__code__", None)
    return str(getattr(fn, "__module__", "") or ""), str(getattr(code, "co_filename", "") or "")


def _unpartitionable_hook(config: Any) -> Optional[str]:
    """The first implementation of a whole-list collection hook that is
    neither pytest's, rpytest's nor a plugin known to act item by item (a
    conftest's, an unknown plugin's): then the suite is collected once."""
    hook = config.pluginmanager.hook
    for name in _WHOLE_LIST_HOOKS:
        caller = getattr(hook, name, None)
        if caller is None:
            continue
        for impl in caller.get_hookimpls():
            module, filename = _hookimpl_module(impl)
            top = module.split(".", 1)[0]
            if top in _PER_SHARE_MODULES and os.path.basename(filename) != "conftest.py":
                continue
            return "%s in %s" % (name, filename or module or impl.plugin_name)
    return None


class _PidWatch:
    """Whether code other than the interpreter's, installed packages' and
    rpytest's called `os.getpid()` while this session collected (a conftest
    keeping the session's pid at import to tell fork children apart, as
    filelock's does): a worker forked from it would see another pid, where
    each pytest-xdist worker imported the code itself. Then every worker
    collects. A module that bound `getpid` while watched keeps a wrapper that
    only passes the call on once the watch stopped."""

    def __init__(self) -> None:
        self.read = False
        self.active = True
        skip = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.dirname(msgs.__file__))}
        try:
            import site

            skip.update(site.getsitepackages())
        except Exception:
            pass
        skipped = tuple(os.path.realpath(p).rstrip(os.sep) + os.sep for p in skip) + tuple(
            os.path.normpath(p).rstrip(os.sep) + os.sep for p in skip
        )
        real = self._real = os.getpid
        watch = self

        def getpid() -> int:
            if watch.active and not watch.read:
                fn = sys._getframe(1).f_code.co_filename
                if not fn.startswith(skipped) and not fn.startswith("<"):
                    watch.read = True
            return real()

        self._wrapper = getpid
        os.getpid = getpid

    def stop(self) -> bool:
        """Stops watching; whether such code read the pid."""
        self.active = False
        if os.getpid is self._wrapper:
            os.getpid = self._real
        return self.read


def _collection_stops(session: pytest.Session) -> bool:
    """Whether collection errors end the run before any test. As under
    pytest-xdist, only once they reach `--maxfail` (`-x`): the tests that
    were collected run, and the errors count as failures. `--collect-only`
    keeps pytest's own rule (pytest-xdist stands aside there)."""
    if session.shouldfail or session.shouldstop:
        return True
    config = session.config
    return bool(config.option.collectonly and session.testsfailed and not config.option.continue_on_collection_errors)



# A worker's (or collector's) session has ended: what escapes it later (a
# plugin's pytest_unconfigure raising) is no test's, and pytest-xdist's
# controller shows nothing of it (session.child_main).
WORKER_FINISHED = False


def _own_fd_capture_files(capturing: Any) -> bool:
    """Puts a file of this process's own behind each of the global capture's
    fd 1 and fd 2 temporary files (same descriptor numbers, same Python
    objects), and points fds 1 and 2 at them where capture is on. False when
    the capture is not pytest's fd capture as known (nothing changed)."""
    import tempfile

    caps = [c for c in (getattr(capturing, "out", None), getattr(capturing, "err", None)) if c is not None]
    for cap in caps:
        if getattr(cap, "targetfd", None) not in (1, 2):
            continue  # sys capture: its buffers are in memory, copied by the fork
        tmp = getattr(cap, "tmpfile", None)
        if tmp is None or not hasattr(tmp, "fileno") or getattr(cap, "_state", None) not in ("started", "suspended"):
            return False
    for cap in caps:
        if getattr(cap, "targetfd", None) not in (1, 2):
            continue
        old = cap.tmpfile.fileno()
        with tempfile.TemporaryFile(buffering=0) as fresh:
            os.dup2(fresh.fileno(), old)
        if cap._state == "started":
            os.dup2(old, cap.targetfd)
    return True

class WorkerPlugin:
    """Runs in a worker session next to RpytestPlugin."""

    def __init__(self, rp: Any, writer: EventWriter, control: ControlChannel, cfg: Dict[str, Any]) -> None:
        self.rp = rp
        self.writer = writer
        self.control = control
        self.worker_id = str(cfg.get("worker_id") or "gw0")
        self.worker_count = int(cfg.get("worker_count") or 1)
        self.testrun_uid = str(cfg.get("testrun_uid") or "")
        self.collect_reports: List[_Message] = []
        self.deselected: List[str] = []
        self.early_warnings: List[_Message] = []
        self.collection_sent = False
        self.config: Optional[pytest.Config] = None
        # Set: this session collects once and forks the workers (a Unix socket of the CLI's).
        self.fork_socket: Optional[str] = cfg.get("fork_socket") or None
        self.forks = False
        self._pid_watch: Optional[_PidWatch] = _PidWatch() if self.fork_socket else None
        partition = cfg.get("partition")
        self.share: Optional[_Share] = _Share(partition) if isinstance(partition, dict) else None
        # A collector of share 0 that found the collection unpartitionable
        # before collecting (why): it collects every file, once, for every worker.
        self.whole: Optional[str] = None

    def emit(self, msg: _Message) -> None:
        self.writer.emit(msg)

    def flush(self) -> None:
        self.writer.release()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_load_initial_conftests(self, early_config: Any, parser: Any, args: Any) -> Any:
        # pytest-cov starts a worker as it starts a controller (from `-n`), and
        # that erases every `.coverage.*` data file. Under pytest-xdist every
        # worker starts at once, before any saved its data; a worker that
        # starts later here (one that collects for itself, a replacement)
        # would erase what finished workers saved. The controller erases once,
        # before any worker runs a test.
        ns = getattr(early_config, "known_args_namespace", None)
        if ns is not None and getattr(ns, "cov_source", None) and hasattr(ns, "cov_append"):
            ns.cov_append = True
        yield

    def pytest_addhooks(self, pluginmanager: Any) -> None:
        _register_interop(pluginmanager)

    @pytest.hookimpl(tryfirst=True)
    def pytest_cmdline_main(self, config: pytest.Config) -> None:
        # pytest-xdist's workers have `workerinput`/`workeroutput` before any
        # plugin's `pytest_configure` runs (pytest-metadata's, itself
        # tryfirst and registered after this plugin, fills `workeroutput`
        # there), so they are given here, before pytest configures.
        self._give_worker_values(config)

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        if not hasattr(config, "workeroutput"):
            self._give_worker_values(config)
        self.config = config

    def _give_worker_values(self, config: pytest.Config) -> None:
        # What pytest-xdist gives its workers: plugins that must act once per
        # run (junitxml, the last-failed cache, stepwise) leave it to the
        # controller. The values are the controller's: its plugins fill them
        # in `pytest_configure_node` (the CLI hands them over).
        given = self.control.wait_for("workerinput")
        values = unpack(given.get("data")) if given is not None else None
        if not isinstance(values, dict):
            values = {
                "workerid": self.worker_id,
                "workercount": self.worker_count,
                "testrunuid": self.testrun_uid,
                "mainargv": [sys.argv[0]] + _user_args(config),
            }
        config.workerinput = _WorkerInput(values)  # type: ignore[attr-defined]
        config.workeroutput = {}  # type: ignore[attr-defined]

    @pytest.hookimpl(hookwrapper=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: Any) -> Any:
        """What a pytest-xdist worker hands back as it ends: `config.workeroutput`
        (plugins fill it in their own `pytest_sessionfinish`), with the exit
        status and why the session stopped. The collector is no worker."""
        self.flush()  # a test that never ended (pytest.exit, Ctrl-C) left its events held
        if not self.collection_sent and session.shouldfail and not session.config.option.collectonly:
            # Collection errors reached --maxfail (-x): pytest stopped
            # collecting; the controller still shows the errors and stops.
            self._send_collection(session)
        output = getattr(session.config, "workeroutput", None)
        if isinstance(output, dict):
            output["exitstatus"] = int(exitstatus)
            output["shouldfail"] = session.shouldfail
            output["shouldstop"] = session.shouldstop
        yield
        global WORKER_FINISHED
        WORKER_FINISHED = True
        if isinstance(output, dict) and not self.forks:
            self.emit(msgs.workerfinished(pack(output)))

    def pytest_internalerror(self, excrepr: Any) -> None:
        """The controller shows it: this session's terminal is /dev/null."""
        self.emit(msgs.internal_error(str(excrepr)))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed or report.skipped:
            assert self.config is not None
            data = self.config.hook.pytest_report_to_serializable(config=self.config, report=report)
            self.collect_reports.append(data)

    @pytest.hookimpl(wrapper=True)
    def pytest_collect_file(self, file_path: Any, parent: Any) -> Any:
        """A partitioned collection: another share's test module stays in the
        tree, but collecting it only imports it and makes no item. So it is
        imported where and when pytest imports it (in the collection's order,
        credited to its own file as a whole collection credits it), as every
        pytest-xdist worker imports every test module: module-level side
        effects and the order they happen in stay. Files named on the command
        line are collected by every share (the CLI runs their tests once)."""
        result = yield
        share = self.share
        if not result or share is None or share.collects(self.rp.relpath(file_path)):
            return result
        if parent.session.isinitpath(file_path):
            return result
        recorder = getattr(self.rp, "recorder", None)
        credit = (recorder, self.rp.relpath(file_path)) if recorder is not None else None
        return [_import_only(node, credit) if isinstance(node, pytest.Module) else node for node in result]

    def _unpartitionable(self, config: Any) -> Optional[str]:
        """Why this collection must not be split (see `_WHOLE_LIST_HOOKS`),
        or project code read the pid or the worker id while collecting
        (every worker then collects the whole suite, and pytest-xdist's
        check that they collected the same tests applies)."""
        reason = _unpartitionable_hook(config)
        if reason is None and self._pid_watch is not None and self._pid_watch.read:
            reason = "os.getpid() read while collecting"
        if reason is None and (
            self.rp.worker_id_was_read() or getattr(getattr(config, "workerinput", None), "id_read", False)
        ):
            reason = "the worker id read while collecting"
        return reason

    def _abandon(self, reason: str, early: bool) -> None:
        """This share's collection is of no use: the CLI collects once."""
        self.emit({"type": "unpartitionable", "reason": reason, "early": early})  # type: ignore[arg-type,typeddict-item]
        self.flush()
        self.share = None
        raise pytest.exit.Exception("collected once instead: " + reason, returncode=0)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self, session: pytest.Session) -> None:
        """A partitioned collection checks, before collecting, the hooks that
        the plugins and the initial conftests implement: share 0's collector
        then collects every file (once, for every worker), the others end."""
        share = self.share
        if share is None:
            return
        reason = self._unpartitionable(session.config)
        if reason is None:
            return
        if share.index == 0:
            self.share = None
            self.whole = reason
            return
        self._abandon(reason, True)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection_modifyitems(self, session: Any, config: Any, items: List[Any]) -> Any:
        """Conftests of subdirectories register while the files are
        collected: checked again before any whole-list hook sees a share."""
        if self.share is not None:
            reason = self._unpartitionable(config)
            if reason is not None:
                self._abandon(reason, False)
        return (yield)

    def pytest_deselected(self, items: List[Any]) -> None:
        self.deselected.extend(str(i.nodeid) for i in items)

    def pytest_warning_recorded(self, warning_message: warnings.WarningMessage, when: str, nodeid: str, location: Any) -> None:
        if when == "config":
            return  # the controller parses the same configuration and warns itself
        msg = _serialize_warning(warning_message, when, nodeid, location)
        if self.collection_sent:
            self.emit(msg)
        else:
            self.early_warnings.append(msg)

    def _send_collection(self, session: pytest.Session) -> None:
        config = session.config
        tr = config.pluginmanager.get_plugin("terminalreporter")
        items = [[item.nodeid, self.rp.relpath(item.path), _xdist_group(item)] for item in getattr(session, "items", None) or ()]
        stop = _collection_stops(session)
        # fork() with a thread running can deadlock the child (a lock held by
        # that thread stays held): then this session is an ordinary worker.
        # Code that read the worker id while collecting (a per-worker database
        # name at import) would see gw0's in every fork: then every worker collects.
        id_read = self.rp.worker_id_was_read() or getattr(config, "workerinput", None) is not None and getattr(
            config.workerinput, "id_read", False
        )
        pid_read = self._pid_watch is not None and self._pid_watch.stop()
        self.forks = bool(
            self.fork_socket and hasattr(os, "fork") and not stop and not config.option.collectonly
            and threading.active_count() == 1 and not id_read and not pid_read
        )
        collection = msgs.collection(
            worker=self.worker_id,
            items=items,
            numcollected=int(getattr(tr, "_numcollected", len(items))),
            stop=stop,
            fork=self.forks,
            reports=self.collect_reports,
            deselected=self.deselected,
            replay=self.rp.pending_replays(),
            warnings=self.early_warnings,
        )
        if self.whole:
            collection["whole"] = self.whole  # type: ignore[typeddict-unknown-key]
        self.emit(collection)
        self.collection_sent = True
        self.early_warnings = []

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        self._send_collection(session)
        config = session.config
        if _collection_stops(session):
            raise session.Interrupted(
                "%d error%s during collection" % (session.testsfailed, "s" if session.testsfailed != 1 else "")
            )
        if config.option.collectonly:
            return True
        if self.forks and not self._serve_forks(session):
            return True  # the collector, once the run is over
        self.emit(msgs.ready())  # pytest_testnodeready on the controller
        items = session.items
        queue: Deque[pytest.Item] = deque()
        def fetch() -> bool:
            self.flush()
            self.emit(msgs.want())
            while True:
                msg = self.control.get()
                if msg is None or msg.get("type") == "stop":
                    return False
                if msg.get("type") == "run":
                    queue.extend(items[int(i)] for i in msg.get("indexes") or ())
                    return True

        more = fetch()
        while queue:
            item = queue.popleft()
            if not queue and more:
                # Ask before running the last queued item: its nextitem decides
                # which fixtures are torn down (session fixtures stay up).
                more = fetch()
            nextitem = queue[0] if queue else None
            item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
            if session.shouldfail or session.shouldstop:
                break
            msg = self.control.poll()
            if msg is not None and msg.get("type") == "stop":
                break
        return True

    def _serve_forks(self, session: pytest.Session) -> bool:
        """The collector's loop: fork a worker per `fork` request, report each
        worker's exit, until `stop` or EOF and every worker ended.

        Returns True in a forked worker (which goes on to run its share), False
        in the collector. Ctrl-C: the workers got SIGINT too; wait for them to
        end their sessions, then end this one as interrupted."""
        rp_cfg = getattr(self.rp, "cfg", None)
        warm_file = rp_cfg.get("warm_file") if isinstance(rp_cfg, dict) else None
        if isinstance(rp_cfg, dict):
            rp_cfg["warm_file"] = None  # written by worker gw0, which imports what the tests import
        # The forks' garbage collections then never walk (and so never copy)
        # the pages of what was collected: it moves to the permanent
        # generation. (No gc.collect() first: finalizers would run here, not
        # where pytest runs them.)
        gc.freeze()
        children: Dict[int, Tuple[int, Optional[int]]] = {}  # pid -> (CLI index, pidfd)
        stopping = False
        interrupted = False
        while not (stopping and not children):
            try:
                pidfds = [fd for _, fd in children.values() if fd is not None]
                waits = [self.control.fd] if not stopping else []
                polled = len(pidfds) < len(children)
                if not self.control.pending:
                    select.select(waits + pidfds, [], [], 0.05 if polled else None)
                for pid, (idx, fd) in list(children.items()):
                    done, status = os.waitpid(pid, os.WNOHANG)
                    if done == 0:
                        continue
                    del children[pid]
                    if fd is not None:
                        os.close(fd)
                    code = os.waitstatus_to_exitcode(status)
                    self.emit(msgs.worker_exit(idx, code if code >= 0 else None, -code if code < 0 else None))
                while not stopping:
                    msg = self.control.poll()
                    if msg is None:
                        stopping = self.control.eof
                        break
                    kind = msg.get("type")
                    if kind == "stop":
                        stopping = True
                    elif kind == "fork":
                        child = self._fork(msg, children, warm_file)
                        if child:
                            return True
            except KeyboardInterrupt:
                interrupted = True
                stopping = True
        if interrupted:
            raise KeyboardInterrupt
        return False

    def _fork(self, msg: _Message, children: Dict[int, Tuple[int, Optional[int]]], warm_file: Any) -> bool:
        """Forks worker `msg["worker"]`; True in the child."""
        idx = int(msg.get("idx") or 0)
        wid = str(msg.get("worker") or "gw0")
        assert self.fork_socket is not None
        # Connected before the fork: the CLI sees the worker's channel (and its
        # end) even when the child dies at once.
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # Room for many tests' events: a worker does not wait for a CLI
            # that a busy machine has not scheduled yet (the kernel caps it).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        except OSError:
            pass
        try:
            sock.connect(self.fork_socket)
            sock.sendall(encode(msgs.hello(idx, wid)))
        except OSError as exc:
            sock.close()
            self.emit(msgs.worker_exit(idx, None, None, error=str(exc)))
            return False
        for s in (sys.stdout, sys.stderr):
            try:
                s.flush()
            except Exception:
                pass
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            for _, fd in children.values():
                if fd is not None:
                    os.close(fd)
            children.clear()
            self._become_worker(sock, wid, parent, warm_file, msg.get("workerinput"))
            return True
        sock.close()
        pidfd: Optional[int] = None
        if hasattr(os, "pidfd_open"):
            try:
                pidfd = os.pidfd_open(pid)
            except OSError:
                pidfd = None
        children[pid] = (idx, pidfd)
        self.emit(msgs.forked(idx, wid, pid))
        return False

    def _become_worker(self, sock: socket.socket, wid: str, parent: int, warm_file: Any, msg_input: Any) -> None:
        """In a fresh fork of the collector: talk to the CLI on `sock`, be worker `wid`."""
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
            except Exception:
                pass
            if os.getppid() != parent:
                os._exit(3)
        random.seed()
        # Exit handlers the collection registered (a conftest's mkdtemp + atexit
        # rmtree) belong to the collector, which runs them once, after every
        # worker ended; a worker running them would delete state the others use.
        import atexit

        atexit._clear()
        fd = sock.fileno()
        assert self.writer.fd is not None
        # The events and the control channel keep their fd numbers, now naming this worker's socket.
        os.dup2(fd, self.writer.fd, inheritable=False)
        os.dup2(fd, self.control.fd, inheritable=False)
        sock.close()
        self.control.reset()
        self.writer._pid = os.getpid()
        self.writer.closed = False
        self.writer._held = None
        self.worker_id = wid
        self.forks = False
        if self.rp.recorder is not None and not self.rp.recording:
            self.rp.recorder.enabled = False  # it only watched the collection
        os.environ["PYTEST_XDIST_WORKER"] = wid
        if self.config is not None:
            given = unpack(msg_input) if msg_input is not None else None
            workerinput = self.config.workerinput  # type: ignore[attr-defined]
            if isinstance(given, dict):
                workerinput.clear()
                workerinput.update(given)
            workerinput["workerid"] = wid
        rp_cfg = getattr(self.rp, "cfg", None)
        if isinstance(rp_cfg, dict) and wid == "gw0":
            rp_cfg["warm_file"] = warm_file
        self._own_capture_files()
        self.emit(msgs.started(os.getpid()))

    def _own_capture_files(self) -> None:
        """pytest's global capture writes fds 1 and 2 into temporary files
        the collector opened; every fork shares their open file descriptions
        (one offset, one content), so a worker read the other's output as
        its test's. Each worker gives the same capture objects files of its
        own: `sys.stdout` stays the object it was while the collector
        collected (a parametrize value `sys.stdout` is still `sys.stdout` in
        the test, as in a pytest-xdist worker, which collects itself). What
        the collector captured stays the collector's."""
        capman = self.config.pluginmanager.getplugin("capturemanager") if self.config is not None else None
        shared = getattr(capman, "_global_capturing", None)
        if capman is None or shared is None:
            return
        if _own_fd_capture_files(shared):
            return
        # An unknown capture layout: new capture objects (files of their own,
        # in the state found).
        suspended = getattr(shared, "_state", None) == "suspended"
        try:
            shared.stop_capturing()
        except Exception:
            return
        capman._global_capturing = None
        capman.start_global_capturing()
        if suspended:
            capman.suspend_global_capture()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        # A test's events (its start, reports, warnings, result, end) leave in
        # two writes: up to its call as its teardown begins, the rest when it
        # ends. A worker that dies before its teardown loses them: the CLI
        # reports its first unfinished item as the crashed test.
        self.writer.hold()
        self.emit(msgs.logstart(nodeid, list(location)))

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> None:
        # Before any finalizer runs: a worker that dies in the teardown keeps
        # the test's setup and call reports, as a pytest-xdist worker does.
        self.writer.release()
        self.writer.hold()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        assert self.config is not None
        data = self.config.hook.pytest_report_to_serializable(config=self.config, report=report)
        self.emit(msgs.report(data))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> Any:
        yield  # the other plugins' events first (the cache's result)
        self.emit(msgs.logfinish(nodeid, list(location)))
        self.flush()


def _from_json(config: pytest.Config, data: Any) -> Any:
    """A report sent as JSON: JSON has no tuples, pytest's reporters expect them
    (a skip's longrepr is `(path, lineno, reason)`, locations are tuples)."""
    report = config.hook.pytest_report_from_serializable(config=config, data=data)
    if report is None:
        return None
    if isinstance(report.longrepr, list):
        report.longrepr = tuple(report.longrepr)
    if isinstance(getattr(report, "location", None), list):
        report.location = tuple(report.location)
    if isinstance(getattr(report, "sections", None), list):
        report.sections = [tuple(s) for s in report.sections]
    if isinstance(getattr(report, "user_properties", None), list):
        report.user_properties = [tuple(p) for p in report.user_properties]
    return report


def _freeze_replayed() -> None:
    """The controller after the last report: pytest ends a session with five
    full garbage collections (for the unraisable exceptions of the tests'
    garbage), each walking every report the terminal keeps for its summary.
    No test runs in the controller: one collection here (a plugin's garbage
    is still finalized, and its unraisable exceptions still reported), then
    what survives is moved out of the collector's sight."""
    gc.collect()
    gc.freeze()


class Interrupted(KeyboardInterrupt):
    """Ends a distributed run that a worker or the failure count stopped, as
    pytest-xdist's controller ends it (exit code 2, the same summary line)."""


Interrupted.__module__ = "xdist.dsession"


class _Node:
    """A worker as the controller's plugins see it under pytest-xdist (its
    `WorkerController`): `gateway.id`, `workerinput` (filled by
    `pytest_configure_node` before the worker starts), `workeroutput` (what
    the worker handed back, set when it ended), and `.node` of its reports,
    from which the terminal reporter prefixes verbose lines with `[gw0]`."""

    class _Info:
        def __init__(self, values: Dict[str, Any]) -> None:
            self.__dict__.update(values)

    class _Gateway:
        def __init__(self, ident: str, info: Dict[str, Any]) -> None:
            self.id = ident
            self._info = info

        def _rinfo(self, update: bool = False) -> Any:
            return _Node._Info(self._info)

    class _NodeManager:
        def __init__(self, config: Any, count: int, uid: str) -> None:
            self.config = config
            self.roots: List[Any] = []  # nothing is synced: workers share the controller's directory
            self.specs = ["popen"] * count
            self.testrunuid = uid

    def __init__(self, ident: str, config: Any, nodemanager: Any) -> None:
        self.config = config
        self.nodemanager = nodemanager
        # Failure reports print "[gw0] linux -- Python 3.x.y /path/python" from this.
        self.workerinfo = {
            "id": ident,
            "sysplatform": sys.platform,
            "version_info": tuple(sys.version_info),
            "executable": sys.executable,
            "cwd": os.getcwd(),
        }
        self.gateway = self._Gateway(
            ident,
            {
                "platform": sys.platform,
                "version_info": tuple(sys.version_info),
                "executable": sys.executable,
                "cwd": os.getcwd(),
            },
        )
        args = _user_args(config) if config is not None else []
        self.workerinput: Dict[str, Any] = {
            "workerid": ident,
            "workercount": len(nodemanager.specs) if nodemanager is not None else 1,
            "testrunuid": nodemanager.testrunuid if nodemanager is not None else "",
            "mainargv": [sys.argv[0]] + args,
        }
        self.down = False

    @property
    def shutting_down(self) -> bool:
        return self.down

    def __repr__(self) -> str:
        return "<WorkerController %s>" % self.gateway.id


class _Deselected:
    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid
        self.location = (nodeid.split("::", 1)[0], None, nodeid.split("::", 1)[-1])


# The class names pytest-xdist's `-v` header gives each `--dist` mode.
_SCHEDULERS = {
    "load": "LoadScheduling",
    "loadscope": "LoadScopeScheduling",
    "loadfile": "LoadFileScheduling",
    "loadgroup": "LoadGroupScheduling",
    "worksteal": "WorkStealingScheduling",
    "each": "EachScheduling",
}


def max_worker_restart(config: Any, workers: int) -> Optional[int]:
    """`--max-worker-restart`, else four restarts per worker (pytest-xdist's default)."""
    given = getattr(config.option, "maxworkerrestart", None)
    if given is not None:
        try:
            return int(given)
        except ValueError:
            return None
    return workers * 4 if workers else None


class _StatusLine:
    """pytest-xdist's status line of the workers: rewritten in place on a
    terminal, written as a line otherwise; `-q` shows "bringing up nodes..."."""

    def __init__(self, owner: Any) -> None:
        self.owner = owner
        self.lastlen = 0

    def show(self, line: str) -> None:
        config = self.owner.config
        tr = config.pluginmanager.get_plugin("terminalreporter") if config is not None else None
        if tr is None:
            return
        if config.option.verbose < 0:
            line = "bringing up nodes..."
        if getattr(tr, "isatty", getattr(tr, "hasmarkup", False)):
            padded = line + " " * max(self.lastlen - len(line), 0)
            self.lastlen = len(line)
            tr.rewrite(padded, bold=True)
        else:
            tr.write_line(line)


class ControllerPlugin:
    """Runs in the controller session: replays the workers' reports into
    pytest's hooks, and plays pytest-xdist's controller for plugins written
    for it (`pytest_configure_node`, `pytest_testnodeready`,
    `pytest_testnodedown`, the failure count and stop of its `DSession`)."""

    def __init__(self, rp: Any, writer: EventWriter, control: ControlChannel) -> None:
        self.rp = rp
        self.writer = writer
        self.control = control
        self.config: Optional[pytest.Config] = None
        self.replay: List[Dict[str, Any]] = []
        self.nodes: Dict[str, _Node] = {}
        self.nodemanager: Any = None
        self.stop_sent = False
        # pytest-xdist's controller: why the run stops (a worker's -x or
        # Ctrl-C, the failure count), and each worker's test in progress.
        self.shouldstop: Any = False
        self.countfailures = 0
        self.maxfail = 0
        self.running: Dict[str, Tuple[str, Any]] = {}
        self.internal_errors = 0
        self.collected_ids: List[str] = []
        self.status = _StatusLine(self)
        # pytest-xdist's `--max-worker-restart`: workers that went down with an
        # error, and what ended the run when they were too many.
        self.failed_nodes = 0
        self.summary_report: Optional[str] = None
        self.restart_line: Optional[Tuple[str, str]] = None

    def pytest_addhooks(self, pluginmanager: Any) -> None:
        _register_interop(pluginmanager)

    @pytest.hookimpl(trylast=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        self.config = config
        self.maxfail = int(config.getvalue("maxfail") or 0)
        cfg = getattr(self.rp, "cfg", None) or {}
        self.nodemanager = _Node._NodeManager(
            config, int(cfg.get("worker_count") or 1), str(cfg.get("testrun_uid") or "")
        )
        tr = config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.showfspath = False  # lines of several workers interleave

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Where pytest-xdist sets up its workers: each node's `workerinput`
        is configured by the plugins and handed to the CLI for that worker."""
        count = len(self.nodemanager.specs) if self.nodemanager is not None else 1
        self._configure_nodes(["gw%d" % i for i in range(count)])

    def _configure_nodes(self, idents: List[str]) -> None:
        assert self.config is not None
        out: Dict[str, Any] = {}
        for ident in idents:
            node = self._node(ident)
            out[ident] = pack(node.workerinput)
        self.writer.emit(msgs.nodes(out))

    def _node(self, worker: Optional[str]) -> _Node:
        """The node of `worker`, configured (`pytest_configure_node`) when new."""
        ident = worker or "gw?"
        node = self.nodes.get(ident)
        if node is None:
            node = self.nodes[ident] = _Node(ident, self.config, self.nodemanager)
            if self.config is not None and worker:
                self.config.hook.pytest_configure_node(node=node)
        return node

    def _warning(self, msg: _Message) -> None:
        assert self.config is not None
        module, qualname = (msg.get("category") or ["builtins", "UserWarning"])[:2]
        category = _warning_category(str(module), str(qualname))
        wm = warnings.WarningMessage(
            message=str(msg.get("message")), category=category,
            filename=str(msg.get("filename")), lineno=int(msg.get("lineno") or 0),
        )
        loc = msg.get("location")
        self.config.hook.pytest_warning_recorded.call_historic(
            kwargs=dict(warning_message=wm, when=str(msg.get("when") or "runtest"),
                        nodeid=str(msg.get("nodeid") or ""), location=tuple(loc) if loc else None)
        )

    def _node_message(self, msg: _Message) -> bool:
        """Messages about the workers as nodes, wherever they arrive; True if `msg` was one."""
        assert self.config is not None
        kind = msg.get("type")
        if kind == "configure_node":
            self._configure_nodes([str(msg.get("worker"))])
        elif kind == "ready":
            # A worker asks for work once it has its collection (inherited or its own).
            node = self._node(msg.get("worker"))
            self.config.hook.pytest_testnodeready(node=node)
            self.config.hook.pytest_xdist_node_collection_finished(node=node, ids=list(self.collected_ids))
        elif kind == "workerfinished":
            self._workerfinished(msg)
        elif kind == "nodedown":
            node = self._node(msg.get("worker"))
            if not node.down:
                node.down = True
                self.config.hook.pytest_testnodedown(node=node, error=msg.get("error"))
                self._node_errordown(str(msg.get("worker")), msg.get("error"))
        elif kind == "internal_error":
            self._internal_error(str(msg.get("formatted_error")))
        else:
            return False
        return True

    def _node_errordown(self, worker: str, error: Any) -> None:
        """A worker died: pytest-xdist's lines for it. The line on what follows
        (a replacement, or the end of restarts) comes after its crashed test's
        report, which the CLI sends next."""
        assert self.config is not None
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None and error:
            tr.write_line("[%s] node down: %s" % (worker, error))
        self.failed_nodes += 1
        limit = max_worker_restart(self.config, len(self.nodemanager.specs) if self.nodemanager is not None else 1)
        if limit is not None and self.failed_nodes > limit:
            if limit == 0:
                line = "worker %s crashed and worker restarting disabled" % worker
            else:
                line = "maximum crashed workers reached: %d" % limit
            self.summary_report = line
        else:
            line = "replacing crashed worker %s" % worker
        self.restart_line = (worker, line)

    def _flush_restart_line(self) -> None:
        if self.restart_line is None:
            return
        _, line = self.restart_line
        self.restart_line = None
        assert self.config is not None
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None and self.config.option.verbose >= 0:
            tr.write_line("\n" + line)

    @pytest.hookimpl(tryfirst=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.summary_report and terminalreporter.config.option.verbose >= 0:
            terminalreporter.write_sep("=", "xdist: %s" % self.summary_report)

    def _workerfinished(self, msg: _Message) -> None:
        """A worker ended its session: hand its `workeroutput` to the plugins;
        a worker that was interrupted (Ctrl-C, `pytest.exit()`, a test raising
        KeyboardInterrupt) or stopped by its own -x / --maxfail stops the run."""
        assert self.config is not None
        worker = str(msg.get("worker"))
        node = self._node(worker)
        output = unpack(msg.get("workeroutput"))
        node.workeroutput = output if isinstance(output, dict) else {}  # type: ignore[attr-defined]
        node.down = True
        self.config.hook.pytest_testnodedown(node=node, error=None)
        status = node.workeroutput.get("exitstatus")  # type: ignore[attr-defined]
        if status not in (None, 0, 1, 2, 5):
            # `pytest.exit(returncode=N)` in a worker: pytest-xdist ends such a
            # run as an internal error (exit 3), and so does this one.
            self.internal_errors += 1
        if status not in (None, 0, 1, 5):
            self.shouldstop = "%r received keyboard-interrupt" % node
            running = self.running.pop(worker, None)
            if running is not None:
                nodeid, location = running
                self._crash({"worker": worker, "nodeid": nodeid, "location": location,
                             "message": "worker %r crashed while running %r" % (worker, nodeid)})
            self._request_stop()
            return
        for why in (node.workeroutput.get("shouldfail"), node.workeroutput.get("shouldstop")):  # type: ignore[attr-defined]
            if why:
                if not self.shouldstop:
                    self.shouldstop = why
                break

    def _internal_error(self, formatted: str) -> None:
        """A worker's INTERNALERROR, shown as pytest-xdist shows it: through
        the controller's own `pytest_internalerror`."""
        assert self.config is not None
        self.internal_errors += 1
        try:
            raise AssertionError(formatted)
        except AssertionError:
            excinfo = pytest.ExceptionInfo.from_current()
        self.config.hook.pytest_internalerror(excrepr=excinfo.getrepr(), excinfo=excinfo)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.internal_errors:
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR  # as pytest-xdist ends such a run

    def _count_failure(self, report: Any) -> None:
        if report.failed:
            self.countfailures += 1
            if self.maxfail and self.countfailures >= self.maxfail and not self.shouldstop:
                self.shouldstop = "stopping after %d failures" % self.countfailures

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self, session: pytest.Session) -> bool:
        config = session.config
        count = len(self.nodemanager.specs) if self.nodemanager is not None else 1
        if not config.option.collectonly:
            # pytest-xdist's first status line, as its workers are set up.
            self.status.show("created: %d/%d %s" % (count, count, "worker" if count == 1 else "workers"))
        msg = self.control.get()
        while msg is not None and msg.get("type") not in ("collection", "abort"):
            self._node_message(msg)
            msg = self.control.get()
        if msg is None or msg.get("type") == "abort":
            text = (msg or {}).get("message") or "no worker reported its collection"
            from _pytest.reports import CollectReport

            report = CollectReport("", "failed", str(text), [])
            config.hook.pytest_collectreport(report=report)
            return True
        for data in msg.get("reports") or ():
            report = _from_json(config, data)
            if report is not None:
                config.hook.pytest_collectreport(report=report)
        self._different_collections(config, msg)
        for w in msg.get("warnings") or ():
            self._warning(w)
        self.replay = [e for e in msg.get("replay") or () if isinstance(e, dict)]
        self.collected_ids = [str(i[0]) for i in msg.get("items") or ()]
        total = len(msg.get("items") or ()) + len(self.replay)
        session.testscollected = total
        tr = config.pluginmanager.get_plugin("terminalreporter")
        if config.option.collectonly:
            # pytest-xdist stands aside under --collect-only: pytest's own lines.
            deselected = [_Deselected(str(n)) for n in msg.get("deselected") or ()]
            if deselected:
                config.hook.pytest_deselected(items=deselected)
            if tr is not None and hasattr(tr, "_numcollected"):
                tr._numcollected = int(msg.get("numcollected") or 0)
                tr.report_collect(True)
            return True
        # pytest-xdist's controller: the workers' count of what they will run
        # (deselection happened in them: no "collected ... deselected" line, and
        # no deselected count in the summary), then a blank line.
        self.status.show(
            "%d %s [%d %s]" % (count, "worker" if count == 1 else "workers", total, "item" if total == 1 else "items")
        )
        if tr is not None:
            tr.write_line("")
            if config.option.verbose > 0:
                tr.write_line("scheduling tests via %s" % _SCHEDULERS.get(str(config.option.dist), "LoadScheduling"))
        return True

    def _different_collections(self, config: Any, msg: _Message) -> None:
        """Workers that collected other tests than the first (a test ID made
        from the pid): pytest-xdist's collection error per such worker, and
        no test runs (the CLI schedules none)."""
        import difflib

        from _pytest.reports import CollectReport

        first = [str(i[0]) for i in msg.get("items") or ()]
        for d in msg.get("different") or ():
            theirs = [str(n) for n in d.get("items") or ()]
            diff = difflib.unified_diff(first, theirs, fromfile=str(d.get("first")), tofile=str(d.get("worker")))
            text = (
                "Different tests were collected between %s and %s. The difference is:\n%s\n"
                "To see why this happens see 'Known limitations' in documentation for pytest-xdist"
                % (d.get("first"), d.get("worker"), "\n".join(diff))
            )
            text = "\n".join(line.rstrip() for line in text.split("\n"))
            config.hook.pytest_collectreport(report=CollectReport(str(d.get("worker")), "failed", text, []))

    def _request_stop(self) -> None:
        if not self.stop_sent:
            self.stop_sent = True
            self.writer.emit(msgs.stop())

    def _crash(self, msg: _Message) -> None:
        assert self.config is not None
        nodeid = str(msg.get("nodeid"))
        # pytest-xdist's crash report: located at the file, in no phase
        # (`when="???"`: the terminal shows a failure, JUnit XML an error).
        fspath = nodeid.split("::")[0]
        location = (fspath, None, fspath)
        now = time.time()
        report = TestReport(
            nodeid, location, {}, "failed", str(msg.get("message")), "???",  # type: ignore[arg-type]
            sections=[], duration=0.0, start=now, stop=now, user_properties=[],
        )
        report.node = self._node(msg.get("worker"))  # type: ignore[attr-defined]
        self._count_failure(report)
        self.config.hook.pytest_runtest_logreport(report=report)
        self.config.hook.pytest_runtest_logfinish(nodeid=nodeid, location=location)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        config = session.config
        if session.shouldfail and not config.option.collectonly:
            # Collection errors reached --maxfail (-x): pytest-xdist's end.
            self._request_stop()
            raise Interrupted(str(session.shouldfail))
        if _collection_stops(session):
            self._request_stop()
            raise session.Interrupted(
                "%d error%s during collection" % (session.testsfailed, "s" if session.testsfailed != 1 else "")
            )
        if config.option.collectonly:
            return True
        self.rp._replay_many(list(self.replay))
        hook = config.hook
        while True:
            msg = self.control.get()
            if msg is None:
                break
            kind = msg.get("type")
            if self.restart_line is not None and not (kind == "crash" and msg.get("worker") == self.restart_line[0]):
                self._flush_restart_line()
            if kind == "report":
                report = _from_json(config, msg.get("data"))
                if report is None:
                    continue
                report.node = self._node(msg.get("worker"))
                self._count_failure(report)
                hook.pytest_runtest_logreport(report=report)
            elif kind == "logstart":
                loc = tuple(msg.get("location") or [None, None, None])
                self.running[str(msg.get("worker"))] = (str(msg.get("nodeid")), list(loc))
                hook.pytest_runtest_logstart(nodeid=msg.get("nodeid"), location=loc)
            elif kind == "logfinish":
                loc = tuple(msg.get("location") or [None, None, None])
                self.running.pop(str(msg.get("worker")), None)
                hook.pytest_runtest_logfinish(nodeid=msg.get("nodeid"), location=loc)
            elif kind == "warning":
                self._warning(msg)
            elif kind == "crash":
                self.running.pop(str(msg.get("worker")), None)
                self._crash(msg)
                self._flush_restart_line()
            elif kind == "done":
                break
            else:
                self._node_message(msg)
            if session.shouldfail or session.shouldstop or self.shouldstop:
                self._request_stop()
        _freeze_replayed()
        self._flush_restart_line()
        if session.shouldfail and not self.shouldstop:
            self.shouldstop = session.shouldfail  # failures replayed from the cache count too
        if self.shouldstop:
            raise Interrupted(str(self.shouldstop))
        if session.shouldfail:
            raise session.Failed(session.shouldfail)
        if session.shouldstop:
            raise session.Interrupted(session.shouldstop)
        return True
