"""The typed messages (`rpytest.protocol`) against the JSON fixtures in
`tests/protocol/`, which the Rust side's tests read too: a distributed run's
(`src/protocol/parallel.rs`), the session's events and the daemon's replies
(`src/protocol.rs`). Both sides agree on every message."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from rpytest import protocol

FIXTURES = Path(__file__).resolve().parents[1] / "protocol"


def _fixtures(direction: str) -> List[Tuple[str, Dict[str, Any]]]:
    return [(p.stem, json.loads(p.read_text())) for p in sorted((FIXTURES / direction).glob("*.json"))]


WORKER = _fixtures("worker")
CONTROL = _fixtures("control")
SESSION = _fixtures("session")
DAEMON = _fixtures("daemon")

# Builders not named after their message's type.
_BUILDER_NAMES = {"exit": "session_exit"}


def _check_keys(kinds: Dict[str, Any], name: str, msg: Dict[str, Any]) -> None:
    typed = kinds.get(msg["type"])
    assert typed is not None, "%s: no type for %r" % (name, msg["type"])
    missing = set(typed.__required_keys__) - set(msg)
    extra = set(msg) - set(typed.__required_keys__) - set(typed.__optional_keys__)
    assert not missing and not extra, "%s: missing %s, unexpected %s" % (name, sorted(missing), sorted(extra))


def _check_built(kinds: Dict[str, Any], name: str, msg: Dict[str, Any]) -> None:
    _check_keys(kinds, name, msg)
    build = getattr(protocol, _BUILDER_NAMES.get(msg["type"], msg["type"]))
    fields = {k: v for k, v in msg.items() if k != "type"}
    # Keyword arguments by name: every field of the message is a parameter.
    assert set(fields) <= set(inspect.signature(build).parameters), name
    built = build(**fields)
    assert built == msg
    assert list(built)[0] == "type"
    assert protocol.decode(protocol.encode(built).rstrip(b"\n")) == msg


@pytest.mark.parametrize("name,msg", WORKER, ids=[n for n, _ in WORKER])
def test_worker_message_is_built_by_its_function(name: str, msg: Dict[str, Any]) -> None:
    _check_built(protocol.WORKER_MESSAGES, name, msg)


@pytest.mark.parametrize("name,msg", SESSION, ids=[n for n, _ in SESSION])
def test_session_event_is_built_by_its_function(name: str, msg: Dict[str, Any]) -> None:
    _check_built(protocol.SESSION_EVENTS, name, msg)


@pytest.mark.parametrize("name,msg", DAEMON, ids=[n for n, _ in DAEMON])
def test_daemon_reply_is_built_by_its_function(name: str, msg: Dict[str, Any]) -> None:
    _check_built(protocol.DAEMON_REPLIES, name, msg)


@pytest.mark.parametrize("name,msg", CONTROL, ids=[n for n, _ in CONTROL])
def test_control_message_parses_as_its_type(name: str, msg: Dict[str, Any]) -> None:
    line = json.dumps(msg, separators=(",", ":")).encode()
    parsed = protocol.decode(line)
    assert parsed == msg
    _check_keys(protocol.CONTROL_MESSAGES, name, parsed)


def test_every_message_type_has_a_fixture() -> None:
    assert {m["type"] for _, m in WORKER} == set(protocol.WORKER_MESSAGES)
    assert {m["type"] for _, m in CONTROL} == set(protocol.CONTROL_MESSAGES)
    assert {m["type"] for _, m in SESSION} == set(protocol.SESSION_EVENTS)
    assert {m["type"] for _, m in DAEMON} == set(protocol.DAEMON_REPLIES)
