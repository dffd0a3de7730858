"""What third-party plugins need from a partly cached session.

* syrupy judges the session as a whole: a snapshot no test used fails it
  (exit 1, "snapshot unused"). Which snapshots a test file uses is only known
  by running it, so a test file whose tests use syrupy's `snapshot` fixture is
  never stored: it runs on every run syrupy judges, and its report and
  verdict are syrupy's own.
* pytest-sugar counts progress against the items pytest runs; replayed
  results count too.

Each part does nothing unless its plugin is active in the session.
"""

from __future__ import annotations

from typing import Any, List

import pytest


class ThirdParty:
    """Registered in every session."""

    def __init__(self, rpytest: Any) -> None:
        self.rpytest = rpytest

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        config = session.config
        if getattr(config, "_syrupy", None) is not None:
            self._snapshot_files_run_always(session.items)
        reporter = config.pluginmanager.getplugin("terminalreporter")
        if reporter is not None and config.pluginmanager.has_plugin("sugar") and hasattr(reporter, "tests_count"):
            # pytest-sugar set its total from session.items, which holds only what runs.
            if self.rpytest.role is None and not config.option.collectonly:
                reporter.tests_count += len(self.rpytest.pending_replays())

    def _snapshot_files_run_always(self, items: List[pytest.Item]) -> None:
        recorder = self.rpytest.recorder
        if recorder is None:
            return
        for item in items:
            if "snapshot" in getattr(item, "fixturenames", ()):
                recorder.volatile.add(self.rpytest.relpath(item.path))
