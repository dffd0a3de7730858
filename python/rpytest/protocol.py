"""JSON-line framing shared by the daemon, the session child and the plugin (docs/protocol.md)."""

from __future__ import annotations

import json
import os
import select
from typing import Any, Dict, Iterator, List, Optional

PROTOCOL_VERSION = 1

# Longest request line the daemon accepts (a run request carries env + cached list).
MAX_LINE = 64 * 1024 * 1024


def encode(obj: Dict[str, Any]) -> bytes:
    """One message as a `\\n`-terminated UTF-8 JSON line."""
    return (json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")


def decode(line: bytes) -> Dict[str, Any]:
    """Parse one line; raises ValueError unless it is a JSON object."""
    obj = json.loads(line.decode("utf-8"))
    if not isinstance(obj, dict):
        raise ValueError("message is not a JSON object")
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

    def __init__(self, fd: Optional[int]) -> None:
        self.fd = fd
        self.closed = fd is None
        self._pid = os.getpid()

    def emit(self, event: Dict[str, Any]) -> bool:
        if self.closed or os.getpid() != self._pid:
            return False
        try:
            write_all(self.fd, encode(event))  # type: ignore[arg-type]
            return True
        except OSError:
            # EPIPE/ECONNRESET: the CLI went away. Keep the session alive, stop talking.
            self.closed = True
            return False

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
