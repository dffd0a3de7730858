"""JSON-line framing shared by the daemon, the session child and the plugin (docs/protocol.md)."""

from __future__ import annotations

import json
import os
import select
from typing import Any, Dict, Iterator, List, Optional

PROTOCOL_VERSION = 1

# Longest request line the daemon accepts (a run request carries env + cached list).
MAX_LINE = 64 * 1024 * 1024


# File names that are not UTF-8 reach Python as str with lone surrogates
# (surrogateescape: byte 0xXY -> U+DCXY), which neither UTF-8 nor the CLI's
# JSON parser accepts. On the wire each such surrogate is the code point
# U+10FFXY instead (the last 128 code points of plane 16, private use), which
# both sides carry as text; decoding maps them back, so a path makes the
# round trip CLI <-> session byte for byte.
_WIRE_BASE = 0x10FF00
_SURROGATE_BASE = 0xDC00
_TO_WIRE = {_SURROGATE_BASE + b: chr(_WIRE_BASE + b) for b in range(0x80, 0x100)}
_FROM_WIRE = {_WIRE_BASE + b: chr(_SURROGATE_BASE + b) for b in range(0x80, 0x100)}
# UTF-8 of U+10FF80..U+10FFFF starts with one of these.
_WIRE_PREFIXES = (b"\xf4\x8f\xbe", b"\xf4\x8f\xbf")


def _map_strings(obj: Any, table: Dict[int, str]) -> Any:
    if isinstance(obj, str):
        return obj.translate(table)
    if isinstance(obj, dict):
        return {_map_strings(k, table): _map_strings(v, table) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_map_strings(v, table) for v in obj]
    return obj


def to_wire(obj: Any) -> Any:
    """`obj` with every surrogate-escaped byte in its strings as its wire code point."""
    return _map_strings(obj, _TO_WIRE)


def from_wire(obj: Any) -> Any:
    """The inverse of `to_wire`."""
    return _map_strings(obj, _FROM_WIRE)


# One encoder for every message: `json.dumps` with arguments builds a new
# encoder per call, which costs more than encoding a test's result.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode(obj: Dict[str, Any]) -> bytes:
    """One message as a `\\n`-terminated UTF-8 JSON line."""
    text = _ENCODER.encode(obj) + "\n"
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # Rare (a non-UTF-8 file name): only then walk the message.
        return (_ENCODER.encode(to_wire(obj)) + "\n").encode("utf-8", "backslashreplace")


def decode(line: bytes) -> Dict[str, Any]:
    """Parse one line; raises ValueError unless it is a JSON object."""
    obj = json.loads(line.decode("utf-8"))
    if not isinstance(obj, dict):
        raise ValueError("message is not a JSON object")
    if any(p in line for p in _WIRE_PREFIXES):
        obj = from_wire(obj)
    return obj


class LineBuffer:
    """Accumulates bytes and yields complete lines (without the newline)."""

    def __init__(self, limit: int = MAX_LINE) -> None:
        self._buf = bytearray()
        self._limit = limit
        # Bytes at the start of the buffer already known to hold no newline
        # (a long line arrives in many pieces: each is searched once).
        self._scanned = 0

    def feed(self, data: bytes) -> Iterator[bytes]:
        self._buf += data
        while True:
            nl = self._buf.find(b"\n", self._scanned)
            if nl < 0:
                self._scanned = len(self._buf)
                if len(self._buf) > self._limit:
                    raise ValueError("message line too long")
                return
            line = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
            self._scanned = 0
            yield line


def write_all(fd: int, data: bytes, timeout: Optional[float] = None) -> None:
    """Write everything to fd, waiting on EAGAIN (the fd may be shared and non-blocking)."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            _, w, _ = select.select([], [fd], [], timeout)
            if not w:
                raise TimeoutError("write timed out")
            continue
        except InterruptedError:
            continue
        view = view[n:]


class EventWriter:
    """Writes one JSON line per event to an fd; goes quiet for good if the reader went away.

    Events are written unbuffered so the CLI sees them as they happen. Only the
    process that created the writer emits (a test that forks must not duplicate events).
    """

    # A held batch is written once it grows past this many bytes.
    HOLD_LIMIT = 1 << 18

    def __init__(self, fd: Optional[int]) -> None:
        self.fd = fd
        self.closed = fd is None
        self._pid = os.getpid()
        self._held: Optional[List[bytes]] = None
        self._held_size = 0

    def emit(self, event: Dict[str, Any]) -> bool:
        if self.closed or os.getpid() != self._pid:
            return False
        data = encode(event)
        if self._held is not None:
            self._held.append(data)
            self._held_size += len(data)
            if self._held_size < self.HOLD_LIMIT:
                return True
            data = b"".join(self._held)
            self._held = []
            self._held_size = 0
        return self._write(data)

    def _write(self, data: bytes) -> bool:
        try:
            write_all(self.fd, data)  # type: ignore[arg-type]
            return True
        except OSError:
            # EPIPE/ECONNRESET: the CLI went away. Keep the session alive, stop talking.
            self.closed = True
            return False

    def hold(self) -> None:
        """Batch the events from here on, until `release` (one write instead of
        one per event: a distributed worker sends a test's events at once)."""
        if self._held is None:
            self._held = []
            self._held_size = 0

    def release(self) -> None:
        """Write what was held, and write each event as it comes again."""
        held, self._held = self._held, None
        self._held_size = 0
        if held and not self.closed and os.getpid() == self._pid:
            self._write(b"".join(held))

    def emit_many(self, events: List[Dict[str, Any]]) -> bool:
        """Writes several events in one write (replayed results: one
        syscall per batch instead of one per node); joins a held batch
        when one is open, so the order of events is kept."""
        if not events or self.closed or os.getpid() != self._pid:
            return False
        data = b"".join(encode(e) for e in events)
        if self._held is not None:
            self._held.append(data)
            self._held_size += len(data)
            return True
        return self._write(data)

    def close(self) -> None:
        self.closed = True


def read_lines(fd: int) -> List[Dict[str, Any]]:
    """Read every message from fd until EOF (used by tests and tools)."""
    buf = LineBuffer()
    out: List[Dict[str, Any]] = []
    while True:
        data = os.read(fd, 65536)
        if not data:
            return out
        out.extend(decode(line) for line in buf.feed(data))


# ---------------------------------------------------------------------------
# The messages of a distributed (`-n`) run, as `src/protocol/parallel.rs`
# types them: a session's to the CLI (`WorkerMsg`) and the CLI's on a
# session's control channel (`ControlMsg`). Each is a TypedDict (plain dicts
# at run time: no cost on the hot path) with the function that builds it.
# Messages the CLI forwards to the controller carry `worker`, set by the CLI.

from typing import Literal, TypedDict, Union

# What pytest's `pytest_report_to_serializable` (and xdist's values) make: carried as is.
Json = Any


class Hello(TypedDict):
    type: Literal["hello"]
    idx: int
    worker: str


class Forked(TypedDict):
    type: Literal["forked"]
    idx: int
    worker: str
    pid: int


class _WorkerExitError(TypedDict, total=False):
    error: str  # why the worker could not be forked


class WorkerExit(_WorkerExitError):
    type: Literal["worker_exit"]
    idx: int
    code: Optional[int]
    signal: Optional[int]


class Started(TypedDict):
    type: Literal["started"]
    pid: int


class Collection(TypedDict):
    type: Literal["collection"]
    worker: str
    items: List[List[Optional[str]]]  # [nodeid, file, xdist_group or None]
    numcollected: int
    stop: bool
    fork: bool
    reports: List[Json]
    deselected: List[str]
    replay: List[Json]
    warnings: List["WarningMsg"]


class _Forwarded(TypedDict, total=False):
    worker: str  # set by the CLI as it forwards the message to the controller


class Want(TypedDict):
    type: Literal["want"]


class Ready(_Forwarded):
    type: Literal["ready"]


class LogPoint(_Forwarded):
    type: Literal["logstart", "logfinish"]
    nodeid: str
    location: List[Any]


class Report(_Forwarded):
    type: Literal["report"]
    data: Json


class WarningMsg(_Forwarded):
    type: Literal["warning"]
    message: str
    category: List[str]  # [module, qualname]
    filename: str
    lineno: Optional[int]
    when: str
    nodeid: str
    location: Optional[List[Any]]


class WorkerFinished(_Forwarded):
    type: Literal["workerfinished"]
    workeroutput: Json


class InternalError(_Forwarded):
    type: Literal["internal_error"]
    formatted_error: str


class Nodes(TypedDict):
    type: Literal["nodes"]
    nodes: Dict[str, Json]


class Stop(TypedDict):
    type: Literal["stop"]


class WorkerInputMsg(TypedDict):
    type: Literal["workerinput"]
    data: Json


class Fork(TypedDict):
    type: Literal["fork"]
    worker: str
    idx: int
    workerinput: Json


class Run(TypedDict):
    type: Literal["run"]
    indexes: List[int]


class ConfigureNode(TypedDict):
    type: Literal["configure_node"]
    worker: str


class Crash(TypedDict):
    type: Literal["crash"]
    worker: str
    nodeid: str
    location: Optional[List[Any]]
    message: str


class NodeDown(TypedDict):
    type: Literal["nodedown"]
    worker: str
    error: str


class Abort(TypedDict):
    type: Literal["abort"]
    message: str


class Done(TypedDict):
    type: Literal["done"]


WorkerMsg = Union[
    Hello, Forked, WorkerExit, Started, Collection, Want, Ready, LogPoint, Report, WarningMsg,
    WorkerFinished, InternalError, Nodes, Stop,
]
ControlMsg = Union[
    WorkerInputMsg, Fork, Run, Stop, ConfigureNode, Collection, LogPoint, Report, WarningMsg, Ready,
    WorkerFinished, InternalError, Crash, NodeDown, Abort, Done,
]


def hello(idx: int, worker: str) -> Hello:
    return {"type": "hello", "idx": idx, "worker": worker}


def forked(idx: int, worker: str, pid: int) -> Forked:
    return {"type": "forked", "idx": idx, "worker": worker, "pid": pid}


def worker_exit(idx: int, code: Optional[int], signal: Optional[int], error: Optional[str] = None) -> WorkerExit:
    msg: WorkerExit = {"type": "worker_exit", "idx": idx, "code": code, "signal": signal}
    if error is not None:
        msg["error"] = error
    return msg


def started(pid: int) -> Started:
    return {"type": "started", "pid": pid}


def collection(worker: str, items: List[List[Optional[str]]], numcollected: int, stop: bool, fork: bool,
               reports: List[Json], deselected: List[str], replay: List[Json],
               warnings: List[WarningMsg]) -> Collection:
    return {"type": "collection", "worker": worker, "items": items, "numcollected": numcollected,
            "stop": stop, "fork": fork, "reports": reports, "deselected": deselected,
            "replay": replay, "warnings": warnings}


def want() -> Want:
    return {"type": "want"}


def ready() -> Ready:
    return {"type": "ready"}


def logstart(nodeid: str, location: List[Any]) -> LogPoint:
    return {"type": "logstart", "nodeid": nodeid, "location": location}


def logfinish(nodeid: str, location: List[Any]) -> LogPoint:
    return {"type": "logfinish", "nodeid": nodeid, "location": location}


def report(data: Json) -> Report:
    return {"type": "report", "data": data}


def warning(message: str, category: List[str], filename: str, lineno: Optional[int], when: str,
            nodeid: str, location: Optional[List[Any]]) -> WarningMsg:
    return {"type": "warning", "message": message, "category": category, "filename": filename,
            "lineno": lineno, "when": when, "nodeid": nodeid, "location": location}


def workerfinished(workeroutput: Json) -> WorkerFinished:
    return {"type": "workerfinished", "workeroutput": workeroutput}


def internal_error(formatted_error: str) -> InternalError:
    return {"type": "internal_error", "formatted_error": formatted_error}


def nodes(nodes: Dict[str, Json]) -> Nodes:
    return {"type": "nodes", "nodes": nodes}


def stop() -> Stop:
    return {"type": "stop"}


# The TypedDict of each message `type`, by direction (a forwarded message
# shares its worker's type, with `worker` set).
WORKER_MESSAGES: Dict[str, Any] = {
    "hello": Hello, "forked": Forked, "worker_exit": WorkerExit, "started": Started,
    "collection": Collection, "want": Want, "ready": Ready, "logstart": LogPoint,
    "logfinish": LogPoint, "report": Report, "warning": WarningMsg,
    "workerfinished": WorkerFinished, "internal_error": InternalError, "nodes": Nodes,
    "stop": Stop,
}
CONTROL_MESSAGES: Dict[str, Any] = {
    "workerinput": WorkerInputMsg, "fork": Fork, "run": Run, "stop": Stop,
    "configure_node": ConfigureNode, "collection": Collection, "logstart": LogPoint,
    "logfinish": LogPoint, "report": Report, "warning": WarningMsg, "ready": Ready,
    "workerfinished": WorkerFinished, "internal_error": InternalError, "crash": Crash,
    "nodedown": NodeDown, "abort": Abort, "done": Done,
}


# ---------------------------------------------------------------------------
# The session's events and the daemon's replies, as `Event` and `Pong` in
# `src/protocol.rs` read them (docs/protocol.md, "Events"): what a session
# child (and the daemon around it) sends the CLI. TypedDicts with the
# function that builds each, as above; `started` is the same message.


class CollectedFile(TypedDict):
    file: str
    outcome: str
    nodes: List[str]
    skip: Optional[List[Any]]  # [path, lineno, reason] when importing the file skipped


class Collected(TypedDict):
    type: Literal["collected"]
    files: List[CollectedFile]


class Result(TypedDict):
    type: Literal["result"]
    nodeid: str
    file: str
    outcome: str
    duration: float
    location: List[Any]
    longrepr: Optional[List[Any]]  # a skip's [path, lineno, reason]
    wasxfail: Optional[str]
    output: Json  # rpytest.replay.node_output


class NodeWarning(TypedDict):
    type: Literal["node_warning"]
    nodeid: str
    warning: Json  # rpytest.replay.store_warning


class CachedResults(TypedDict):
    type: Literal["cached_results"]
    nodes: List[Any]  # [nodeid, file, outcome, duration] per replayed node


class CachedReplayed(TypedDict):
    type: Literal["cached_replayed"]
    # [start, end) runs of indices into the session config's `cached` list,
    # in the order the nodes were replayed.
    ranges: List[List[int]]


class _DepsPaths(TypedDict, total=False):
    paths: List[str]  # the session's own event (file None): sys.path entries inside the project


class Deps(_DepsPaths):
    type: Literal["deps"]
    file: Optional[str]
    imports: List[str]
    reads: List[str]
    env: List[str]
    lists: List[str]
    spawns: bool
    outside: bool
    volatile: bool
    options: bool
    generated: List[str]


class Edges(TypedDict):
    type: Literal["edges"]
    edges: List[List[str]]  # [importer, imported]


class Sandbox(TypedDict):
    type: Literal["sandbox"]
    visible: int
    denied: Dict[str, List[str]]


class Installed(TypedDict):
    type: Literal["installed"]
    files: List[List[str]]  # [portable name, path on this machine]


class Finish(TypedDict):
    type: Literal["finish"]
    exitstatus: int
    interrupted: bool
    shouldstop: bool
    duration: float
    project_hooks: List[str]  # `file: hook` of the project's own plugins


class Coverage(TypedDict):
    type: Literal["coverage"]
    file: str
    sig: str
    data: str  # JSON text of the file's coverage data


class LearnedOption(TypedDict):
    names: List[str]
    arity: Any  # "none" | "one" | "optional" | "many" | {"exactly": N}
    group: str
    dest: str
    help: str


class Options(TypedDict):
    type: Literal["options"]
    options: List[LearnedOption]


class _ExitHow(TypedDict, total=False):
    code: int  # the session exited with this code...
    signal: int  # ...or was killed by this signal


class Exit(_ExitHow):
    type: Literal["exit"]


class Pong(TypedDict):
    type: Literal["pong"]
    protocol: int
    pid: int
    fingerprint: str
    python: str
    version: str
    started: int
    sessions: int
    warm: List[str]
    stale: List[str]
    env: Dict[str, Optional[str]]
    idle: float
    idle_timeout: float
    rootdir: str
    prefork: Json


class Stopping(TypedDict):
    type: Literal["stopping"]


class Error(TypedDict):
    type: Literal["error"]
    message: str


def collected(files: List[CollectedFile]) -> Collected:
    return {"type": "collected", "files": files}


def collected_file(file: str, outcome: str, nodes: List[str], skip: Optional[List[Any]]) -> CollectedFile:
    return {"file": file, "outcome": outcome, "nodes": nodes, "skip": skip}


def result(nodeid: str, file: str, outcome: str, duration: float, location: List[Any],
           longrepr: Optional[List[Any]], wasxfail: Optional[str], output: Json) -> Result:
    return {"type": "result", "nodeid": nodeid, "file": file, "outcome": outcome, "duration": duration,
            "location": location, "longrepr": longrepr, "wasxfail": wasxfail, "output": output}


def node_warning(nodeid: str, warning: Json) -> NodeWarning:
    return {"type": "node_warning", "nodeid": nodeid, "warning": warning}


def cached_results(nodes: List[Any]) -> CachedResults:
    return {"type": "cached_results", "nodes": nodes}


def cached_replayed(ranges: List[List[int]]) -> CachedReplayed:
    return {"type": "cached_replayed", "ranges": ranges}


def deps(file: Optional[str], imports: List[str], reads: List[str], env: List[str], lists: List[str],
         spawns: bool, outside: bool, volatile: bool, options: bool, generated: List[str],
         paths: Optional[List[str]] = None) -> Deps:
    msg: Deps = {"type": "deps", "file": file, "imports": imports, "reads": reads, "env": env,
                 "lists": lists, "spawns": spawns, "outside": outside, "volatile": volatile,
                 "options": options, "generated": generated}
    if paths is not None:
        msg["paths"] = paths
    return msg


def edges(edges: List[List[str]]) -> Edges:
    return {"type": "edges", "edges": edges}


def sandbox(visible: int, denied: Dict[str, List[str]]) -> Sandbox:
    return {"type": "sandbox", "visible": visible, "denied": denied}


def installed(files: List[List[str]]) -> Installed:
    return {"type": "installed", "files": files}


def finish(exitstatus: int, interrupted: bool, shouldstop: bool, duration: float,
           project_hooks: Optional[List[str]] = None) -> Finish:
    return {"type": "finish", "exitstatus": exitstatus, "interrupted": interrupted,
            "shouldstop": shouldstop, "duration": duration, "project_hooks": project_hooks or []}


def coverage(file: str, sig: str, data: str) -> Coverage:
    return {"type": "coverage", "file": file, "sig": sig, "data": data}


def options(options: List[LearnedOption]) -> Options:
    return {"type": "options", "options": options}


def session_exit(code: int = 0, signal: Optional[int] = None) -> Exit:
    """The daemon's last line of a run: the child's exit code, or the signal that killed it."""
    if signal is not None:
        return {"type": "exit", "signal": signal}
    return {"type": "exit", "code": code}


def pong(pid: int, fingerprint: str, python: str, version: str, started: int, sessions: int,
         warm: List[str], stale: List[str], env: Dict[str, Optional[str]], idle: float,
         idle_timeout: float, rootdir: str, prefork: Json, protocol: int = PROTOCOL_VERSION) -> Pong:
    return {"type": "pong", "protocol": protocol, "pid": pid, "fingerprint": fingerprint,
            "python": python, "version": version, "started": started, "sessions": sessions,
            "warm": warm, "stale": stale, "env": env, "idle": idle, "idle_timeout": idle_timeout,
            "rootdir": rootdir, "prefork": prefork}


def stopping() -> Stopping:
    return {"type": "stopping"}


def error(message: str) -> Error:
    return {"type": "error", "message": message}


# The TypedDict of each session event and daemon reply, by `type`.
SESSION_EVENTS: Dict[str, Any] = {
    "started": Started, "collected": Collected, "result": Result, "node_warning": NodeWarning,
    "cached_results": CachedResults, "cached_replayed": CachedReplayed, "deps": Deps, "edges": Edges, "sandbox": Sandbox,
    "installed": Installed, "finish": Finish, "coverage": Coverage, "options": Options,
    "exit": Exit,
}
DAEMON_REPLIES: Dict[str, Any] = {"pong": Pong, "stopping": Stopping, "error": Error}
