"""What third-party plugins need from a partly cached session.

* syrupy judges the session as a whole: a snapshot no test used fails it
  (exit 1, "snapshot unused"). Which snapshots a test file uses is only known
  by running it, so a test file whose tests use syrupy's `snapshot` fixture is
  never stored: it runs on every run syrupy judges, and its report and
  verdict are syrupy's own.
* pytest-benchmark prints a table of what it measured: a test file with a
  test that uses the `benchmark` fixture is never stored while benchmarks run
  (not `--benchmark-disable`/`--benchmark-skip`), so the table is complete.
* pytest-rerunfailures counts the reruns in the summary ("2 rerun"): a test
  file where a test needed a rerun (a flaky test) is never stored, so every
  run reruns it as pytest would.
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
            self._run_always(session.items, "snapshot")
        benchmarks = getattr(config, "_benchmarksession", None)
        if benchmarks is not None and not getattr(benchmarks, "disabled", False) and not getattr(benchmarks, "skip", False):
            self._run_always(session.items, "benchmark")
        reporter = config.pluginmanager.getplugin("terminalreporter")
        if reporter is not None and config.pluginmanager.has_plugin("sugar") and hasattr(reporter, "tests_count"):
            # pytest-sugar set its total from session.items, which holds only what runs.
            if self.rpytest.role is None and not config.option.collectonly:
                reporter.tests_count += len(self.rpytest.pending_replays())

    def _run_always(self, items: List[pytest.Item], fixture: str) -> None:
        """Never store the test files with a test that uses `fixture`."""
        recorder = self.rpytest.recorder
        if recorder is None:
            return
        for item in items:
            if fixture in getattr(item, "fixturenames", ()):
                recorder.volatile.add(self.rpytest.relpath(item.path))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.outcome == "rerun" and self.rpytest.recorder is not None:
            self.rpytest.recorder.volatile.add(report.nodeid.split("::", 1)[0])
