"""The rpytest pytest plugin that a session registers: a facade over the plugins
that do the work, each with one job (docs/protocol.md):

* rpytest.cached.CachedResults: drops cached files and nodes, replays their results;
* rpytest.window.RecordingWindow: which test file the recorder credits, when it listens;
* rpytest.timeout.TestTimeout: rules' per-test timeouts;
* rpytest.stream.ResultStream: the collected files, results and the end, to the CLI.

Registering the facade registers them (right after it, so that they keep its
place among the session's other plugins); it ends the session in order."""

from __future__ import annotations

import os
import sys
from typing import Any, Dict, List, Optional, Set

import pytest

from rpytest import record
from rpytest.cached import CachedResults
from rpytest.protocol import EventWriter
from rpytest.stream import ResultStream
from rpytest.timeout import TestTimeout
from rpytest.window import RecordingWindow

_Entry = Dict[str, Any]


class RpytestPlugin:
    """One instance per session; pass it to pytest.main(plugins=[...])."""

    def __init__(self, session_config: Dict[str, Any], writer: EventWriter) -> None:
        self.cfg = session_config
        self.writer = writer
        rootdir = session_config.get("rootdir") or os.getcwd()
        self.rootdir = os.path.normpath(os.path.abspath(rootdir))
        self._prefixes = tuple(
            sorted({self.rootdir.rstrip(os.sep) + os.sep, os.path.realpath(self.rootdir).rstrip(os.sep) + os.sep})
        )
        self._rel_cache: Dict[str, str] = {}
        # "worker" / "controller" in a distributed run (rpytest.parallel): the
        # controller replays cached results, workers only report them.
        self.role = session_config.get("role")
        self.recording = bool(session_config.get("record", True))
        self.events = bool(session_config.get("events", True))
        # A collector whose items workers will inherit (rpytest.parallel) watches
        # what collection reads even when nothing is recorded: code that reads
        # the worker id at import cannot be shared by forks.
        watch = self.recording or bool(session_config.get("fork_socket"))
        self.recorder: Optional[record.Recorder] = record.Recorder(self.rootdir) if watch else None
        self.window = RecordingWindow(self.recorder, self.relpath, self.role) if self.recorder is not None else None
        timeouts = {str(k): float(v) for k, v in (session_config.get("timeouts") or {}).items()}
        self.timeout = TestTimeout(timeouts, self.relpath) if timeouts else None
        self.stream = ResultStream(self)
        self.cache = CachedResults(self, session_config)

    def parts(self) -> List[Any]:
        """The plugins this facade registers, in registration order."""
        return [p for p in (self.window, self.timeout, self.stream, self.cache) if p is not None]

    def reporting_parts(self) -> List[Any]:
        """This facade's plugins that implement the per-node reporting hooks
        (rpytest.replay stands for them when it replays in bulk)."""
        return [self.stream]

    def pytest_plugin_registered(self, plugin: Any, manager: Any) -> None:
        if plugin is self:
            for part in self.parts():
                if not manager.is_registered(part):
                    manager.register(part, "rpytest-%s" % type(part).__name__.lower())

    # ---- lifecycle (called by rpytest.session) -----------------------------

    def start(self) -> None:
        if self.recorder is not None:
            record.install(self.recorder)

    def worker_id_was_read(self) -> bool:
        """Whether project code read PYTEST_XDIST_WORKER (while collecting: a
        value forks of this session would share). Installed plugins that only
        ask whether they run in a worker (syrupy, pytest-benchmark) do not count."""
        rec = self.recorder
        return rec is not None and rec.worker_id_read_by_project

    def stop(self) -> None:
        self.stream.flush()  # a session that ended without pytest_sessionfinish
        if self.recorder is not None:
            self.recorder.enabled = False
        warm_file = self.cfg.get("warm_file")
        if warm_file:
            try:
                from rpytest.warm import update_warm_file

                update_warm_file(str(warm_file), self.rootdir)
            except Exception as exc:  # the warm set is an optimisation, never a failure
                try:
                    sys.stderr.write("rpytest: could not update the warm set: %s\n" % exc)
                except Exception:
                    pass

    def emit(self, event: Dict[str, Any]) -> None:
        if self.events:
            self.writer.emit(event)

    # ---- paths --------------------------------------------------------------

    def relpath(self, path: Any) -> str:
        """Rootdir-relative posix path (what the CLI names files by)."""
        s = os.fspath(path)
        r = self._rel_cache.get(s)
        if r is None:
            for prefix in self._prefixes:
                if s.startswith(prefix):
                    r = s[len(prefix):]
                    break
            else:
                r = os.path.relpath(s, self.rootdir)
            r = r.replace(os.sep, "/")
            self._rel_cache[s] = r
        return r

    # ---- the recording window (rpytest.coverage pauses it too) ----------------

    def _pause(self) -> bool:
        """Stop recording (pytest formatting a report, showing an interrupt):
        what that reads is not an input of any test. Returns whether it was on."""
        return self.window.pause() if self.window is not None else False

    def _resume(self, was_on: bool) -> None:
        if self.window is not None:
            self.window.resume(was_on)

    # ---- cached results (rpytest.coverage, rpytest.parallel) -------------------

    @property
    def files(self) -> Dict[str, str]:
        """Collected file -> collect outcome, in collection order."""
        return self.stream.files

    @property
    def skip_files(self) -> Set[str]:
        return self.cache.skip_files

    @property
    def skip_replays(self) -> List[_Entry]:
        return self.cache.skip_replays

    @property
    def cached_collected(self) -> Dict[str, _Entry]:
        return self.cache.cached_collected

    def replaying(self) -> bool:
        return self.cache.replaying

    def cached_files(self) -> List[str]:
        """The test files whose results this session replays (rpytest.coverage)."""
        return self.cache.cached_files()

    def uncache(self, rel: str) -> None:
        """Run `rel` instead of replaying it (before collection): its cached
        results lack something this session reports (rpytest.coverage)."""
        self.cache.uncache(rel)

    def pending_replays(self) -> List[_Entry]:
        """What this session would replay: cached nodes of dropped files and cached
        items pytest's selection kept (a worker hands them to the controller)."""
        return self.cache.pending_replays()

    def _replay_many(self, entries: List[_Entry]) -> None:
        """Replays cached results in order (an `-n` controller replays a worker's)."""
        self.cache.replay_many(entries)

    # ---- end of session -------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: Any) -> None:
        self.cache.fix_exit_status(session)
        self.stream.send_collected(())
        if self.window is not None and self.recording:
            for event in self.window.dependencies(self.stream.files):
                self.emit(event)
        self.stream.finish(session)
        self.stream.flush()
