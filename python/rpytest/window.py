"""The recording window: which test file the recorder (rpytest.record) credits
what runs, switched around each file's collection and each test's setup and
call, and paused while pytest formats reports, warnings and interrupts (what
that reads is no test's input)."""

from __future__ import annotations

from typing import Any, Dict, Generator, List, Optional

import pytest

from rpytest import protocol as msgs
from rpytest import record

# The hook wrappers here sit on the call path of fixtures and tests: pytest
# leaves their frames out of tracebacks, as it does its own and pluggy's.
# Those around a test's setup and call are old-style wrappers
# (`hookwrapper=True`), which an exception does not pass through: a frame of
# theirs in the traceback, even hidden, changes what pytest prints when the
# test's own frame is not there (an `async def` test without a plugin gained
# "All traceback entries are hidden").
__tracebackhide__ = True


class RecordingWindow:
    """Opens and closes the recorder's window around each phase; registered
    only when the session has a recorder."""

    def __init__(self, recorder: record.Recorder, relpath: Any, role: Optional[str]) -> None:
        self.recorder = recorder
        self.relpath = relpath
        self.role = role

    # ---- switching the active file ------------------------------------------

    def pause(self) -> bool:
        """Stop recording; returns whether it was on."""
        rec = self.recorder
        if not rec.enabled:
            return False
        rec.enabled = False
        return True

    def resume(self, was_on: bool) -> None:
        if was_on:
            self.recorder.enabled = True

    # Both are the body of a hook wrapper (`return (yield from ...)`): the
    # hooks inside run with the window switched, whatever they return or
    # raise, and the window is put back after them.

    def _crediting(self, key: Optional[str]) -> Generator[None, Any, Any]:
        """Credit what the wrapped hooks read to `key` (None: every file)."""
        rec = self.recorder
        prev = rec.set_active(key)
        try:
            return (yield)
        finally:
            rec.active = prev

    def _paused(self) -> Generator[None, Any, Any]:
        """Record nothing while the wrapped hooks run."""
        was_on = self.pause()
        try:
            return (yield)
        finally:
            self.resume(was_on)

    # ---- hooks ------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        record.install_option_prologues(config)
        record.install_option_attribute_reads(config)
        if getattr(config.option, "capture", None) in ("no", "tee-sys"):
            record.install_stdin_reader()  # stdin is live for the tests (-s)
        record.install_capture_disabled_check()
        if self.role is None:
            record.install_worker_checks(type(config))

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector: pytest.Collector) -> Any:
        if not isinstance(collector, pytest.File):
            return (yield)
        return (yield from self._crediting(self.relpath(collector.path)))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Any:
        return (yield from self._crediting(self.relpath(item.path)))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef: Any, request: Any) -> Any:
        # A broader-scoped fixture's inputs affect every test that uses it: global.
        if getattr(fixturedef, "scope", "function") == "function":
            return (yield)
        return (yield from self._crediting(None))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Any:
        return (yield from self._crediting(self.relpath(item.path)))

    # teardown stays global: it also finalizes broader-scoped fixtures.

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: Any) -> Any:
        # Failure reprs read source files (linecache) and CI/BUILD_NUMBER (truncation):
        # formatting a report is not what the test depends on.
        return (yield from self._paused())

    @pytest.hookimpl(wrapper=True)
    def pytest_exception_interact(self, node: Any, call: Any, report: Any) -> Any:
        return (yield from self._paused())

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: Any, config: Any) -> Any:
        return (yield from self._paused())

    @pytest.hookimpl(tryfirst=True)
    def pytest_keyboard_interrupt(self, excinfo: Any) -> None:
        # The interrupt's traceback is formatted now and printed later: nothing
        # read from here on belongs to a test (the session is not stored anyway).
        self.pause()

    @pytest.hookimpl(tryfirst=True)
    def pytest_internalerror(self, excrepr: Any, excinfo: Any) -> None:
        self.pause()

    # ---- the end --------------------------------------------------------------

    def dependencies(self, files: Any) -> List[Dict[str, Any]]:
        """The `deps` events (global first, then per collected file) and the
        import edges, gathered with recording off."""
        rec = self.recorder
        rec.enabled = False
        try:
            events: List[Dict[str, Any]] = []
            for key in [None] + list(files):
                deps: Dict[str, Any] = rec.deps(key)
                if key is None and record.is_blind():
                    deps["volatile"] = True  # an event source is missing: store nothing
                events.append(deps)
            events.append(msgs.edges(sorted([a, b] for a, b in rec.edges)))
            return events
        finally:
            rec.enabled = True  # recording continues until the process ends (unconfigure, atexit)
