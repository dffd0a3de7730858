"""A passive pytest plugin for `rpytest --verify-dropin`: records, under stock pytest,
each node's final outcome, the collectors that failed and the exit status.

Loaded with `PYTEST_PLUGINS=rpytest.observer`; writes JSON to the path in
`RPYTEST_OBSERVE_FILE`:

    {"exit_status": N | null, "nodes": {nodeid: outcome}, "collection_errors": [nodeid, ...]}

Outcomes use the vocabulary and phase merging of the `result` events of
rpytest.plugin (docs/protocol.md): any failed phase -> failed (call) or error
(setup/teardown); skipped -> skipped; `wasxfail` -> xfailed/xpassed; a
passed call -> passed. A node whose outcome stays unknown (`--setup-only`)
is not written. It changes nothing in the session.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional

import pytest

_outcomes: Dict[str, Optional[str]] = {}
_collection_errors: List[str] = []
_exit_status: Optional[int] = None


def _merge(current: Optional[str], report: Any) -> Optional[str]:
    wasxfail = getattr(report, "wasxfail", None)
    if report.failed:
        if current not in ("failed", "error"):
            return "failed" if report.when == "call" else "error"
        return current
    if current in ("failed", "error"):
        return current
    if report.skipped:
        return "xfailed" if wasxfail is not None else "skipped"
    if report.when == "call" and report.passed:
        return "xpassed" if wasxfail is not None else "passed"
    return current


def _is_xdist_worker(config: Any) -> bool:
    return hasattr(config, "workerinput")


def _write() -> None:
    path = os.environ.get("RPYTEST_OBSERVE_FILE")
    if not path:
        return
    doc = {
        "exit_status": _exit_status,
        "nodes": {k: v for k, v in _outcomes.items() if v is not None},
        "collection_errors": list(dict.fromkeys(_collection_errors)),
    }
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f)
    os.replace(tmp, path)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _outcomes[report.nodeid] = _merge(_outcomes.get(report.nodeid), report)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        _collection_errors.append(report.nodeid)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: Any) -> None:
    global _exit_status
    _exit_status = int(session.exitstatus)
    if not _is_xdist_worker(session.config):
        _write()


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if not _is_xdist_worker(config):
        _write()
