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

    def feed(self, data: bytes) -> Iterator[bytes]:
        self._buf += data
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > self._limit:
                    raise ValueError("message line too long")
                return
            line = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
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
