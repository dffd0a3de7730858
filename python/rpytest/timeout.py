"""The per-test timeout of rules (`timeout = N`): SIGALRM fails a test that
runs longer, where it is, as a failure of its call."""

from __future__ import annotations

import signal
import threading
from typing import Any, Dict

import pytest


class TestTimeout:
    """Registered when some rule gives its files a timeout."""

    __test__ = False  # not a test class, whatever collects rpytest's modules

    def __init__(self, timeouts: Dict[str, float], relpath: Any) -> None:
        self.timeouts = timeouts  # rootdir-relative file -> seconds
        self.relpath = relpath

    # Old-style: an exception does not pass through its frame (see window.py).
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Any:
        limit = self.timeouts.get(self.relpath(item.path))
        timed = bool(limit) and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
        if not timed:
            return (yield)

        def expired(signum: int, frame: Any) -> None:
            pytest.fail("Timeout: the test ran longer than %ss (rpytest rule timeout)" % limit, pytrace=False)

        previous = signal.signal(signal.SIGALRM, expired)
        signal.setitimer(signal.ITIMER_REAL, float(limit or 0))
        try:
            return (yield)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
