"""The rpytest pytest plugin: skips and replays cached results, streams events to the CLI
and records what each test file used (docs/protocol.md)."""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import time
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

import pytest
from _pytest.reports import CollectReport, TestReport

from rpytest import record
from rpytest.protocol import EventWriter
from rpytest.replay import (
    _DURATION_LINE,
    _PHASES,
    DirectCalls,
    TerminalBulk,
    node_output,
    replayed_warning,
    sections_of,
    store_warning,
)

_Entry = Dict[str, Any]

class _DeselectedNode:
    """Stands for a node of a cached file that the selection left out (only
    its node ID is known; nothing of it was collected)."""

    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid
        self.location = (nodeid.split("::", 1)[0], None, nodeid.split("::", 1)[-1])

    def __repr__(self) -> str:
        return "<cached deselected %s>" % self.nodeid


def _note_worker_checks(config_class: Any) -> None:
    """Outside `-n`, code that asks whether it runs in a pytest-xdist worker
    (`hasattr(config, "workerinput")`, as the `worker_id` fixture does) finds
    no `workerinput`: recorded as a read of PYTEST_XDIST_WORKER, which the
    CLI keys as the run sets it, so a result that depends on not being in a
    worker is not reused by `-n` (workers record their `workerinput` reads
    the same way, rpytest.parallel)."""
    if "__getattr__" in vars(config_class):
        return

    def __getattr__(self: Any, name: str) -> Any:
        if name in ("workerinput", "workeroutput"):
            sys.audit("rpytest.env", "PYTEST_XDIST_WORKER")
        raise AttributeError("%r object has no attribute %r" % (type(self).__name__, name))

    config_class.__getattr__ = __getattr__


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
        self.skip_files = {str(p).strip("/") for p in session_config.get("skip_files") or ()}
        # Files of other `--shard`s: never collected, never replayed.
        self.exclude_files = {str(p).strip("/") for p in session_config.get("exclude_files") or ()}
        self.excluded_args: Set[str] = set()
        # Rules' per-test timeouts: file -> seconds.
        self.timeouts: Dict[str, float] = {
            str(k): float(v) for k, v in (session_config.get("timeouts") or {}).items()
        }
        # Files whose import skipped (module-level pytest.skip): replayed as a
        # skipped collect report when dropped. file -> [path, lineno, reason]
        self.skipped_files: Dict[str, Any] = {
            str(e.get("file")): e.get("longrepr")
            for e in session_config.get("skipped_files") or ()
            if isinstance(e, dict) and e.get("file")
        }
        self.file_skips: Dict[str, Any] = {}
        self.deselected_ids: List[str] = [str(n) for n in session_config.get("deselected") or ()]
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
        cached: List[_Entry] = [e for e in session_config.get("cached") or () if isinstance(e, dict) and e.get("nodeid")]
        self.skip_replays = [e for e in cached if self._entry_file(e) in self.skip_files]
        self.cached_collected = {e["nodeid"]: e for e in cached if self._entry_file(e) not in self.skip_files}
        self.replay_before: Dict[str, List[_Entry]] = {}
        self.replay_tail: List[_Entry] = []
        self.replayed = 0
        self.dropped_files: Set[str] = set()
        self.config: Optional[pytest.Config] = None
        self.files: Dict[str, str] = {}  # collected file -> collect outcome, in collection order
        self.collected_sent = False
        self.results: Dict[str, Dict[str, Any]] = {}
        self.started = time.time()
        self._rel_cache: Dict[str, str] = {}
        self._replaying = False
        self._calls: Optional[DirectCalls] = None
        self._bulk: Optional[TerminalBulk] = None
        # Cached node IDs whose reports carry the stored durations (--durations marks them).
        self._cached_ids: Set[str] = set()

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

    @staticmethod
    def _entry_file(entry: _Entry) -> str:
        f = entry.get("file") or str(entry["nodeid"]).split("::")[0]
        return str(f).strip("/")

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

    def _activate(self, key: Optional[str]) -> Optional[str]:
        rec = self.recorder
        return rec.set_active(key) if rec is not None else None

    def _restore(self, prev: Optional[str]) -> None:
        if self.recorder is not None:
            self.recorder.active = prev

    # ---- configuration ------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        self.config = config
        self._describe_options(config)
        if self.recorder is not None:
            record.record_options(config)
            if getattr(config.option, "capture", None) in ("no", "tee-sys"):
                record.watch_stdin()  # stdin is live for the tests (-s)
            if self.role is None:
                _note_worker_checks(type(config))

    def _describe_options(self, config: pytest.Config) -> None:
        """Tells the CLI the options plugins and conftest files registered,
        when it met one it did not know (rpytest.options)."""
        if self.cfg.get("describe_options"):
            from rpytest import options

            self.emit({"type": "options", "options": options.describe(config)})

    def _pause(self) -> bool:
        """Stop recording (pytest formatting a report, showing an interrupt):
        what that reads is not an input of any test. Returns whether it was on."""
        rec = self.recorder
        if rec is None or not rec.enabled:
            return False
        rec.enabled = False
        return True

    def _resume(self, was_on: bool) -> None:
        if was_on and self.recorder is not None:
            self.recorder.enabled = True

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.started = time.time()

    # ---- collection -----------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_collect_file(self, file_path: Any, parent: Any) -> Any:
        # A wrapper, not pytest_ignore_collect: explicit file arguments never
        # reach pytest_ignore_collect, and only a file some plugin would
        # collect may have its cached results replayed. Creating the File
        # node imports nothing, so dropping it here costs nothing.
        result = yield
        if result and self.exclude_files:
            rel = self.relpath(file_path)
            if rel in self.exclude_files:
                if parent.session.isinitpath(file_path):
                    # Named on the command line: its items are dropped after collection.
                    self.excluded_args.add(rel)
                    return result
                return []
        if result and self.skip_files:
            rel = self.relpath(file_path)
            if rel in self.skip_files:
                # Named on the command line, dropping it would make pytest report
                # "not found"; under -x/--maxfail its cached results must come in
                # pytest's order, so that none is reported after the run stops.
                # Either way: let it collect and replay per node.
                if parent.session.isinitpath(file_path) or (parent.config.option.maxfail or 0) > 0:
                    for e in self.skip_replays:
                        if self._entry_file(e) == rel:
                            self.cached_collected[e["nodeid"]] = e
                    return result
                self.dropped_files.add(rel)
                return []
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector: pytest.Collector) -> Any:
        if not isinstance(collector, pytest.File):
            return (yield)
        rel = self.relpath(collector.path)
        prev = self._activate(rel)
        try:
            report = yield
        finally:
            self._restore(prev)
        if rel not in self.files or report.outcome != "passed":
            self.files[rel] = report.outcome
        if report.outcome == "skipped" and isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
            path, lineno, reason = report.longrepr
            self.file_skips[rel] = [str(path), lineno, str(reason)]
        return report

    @pytest.hookimpl(wrapper=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config, items: List[pytest.Item]) -> Any:
        # Before any deselection: the complete item list of every collected file.
        self._send_collected(items)
        return (yield)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        config = session.config
        if self.excluded_args:
            session.items[:] = [i for i in session.items if self.relpath(i.path) not in self.excluded_args]
        # Dropped files whose import skips: their skipped collect report, before
        # the terminal reporter sums up collection (it runs after this hook).
        for rel in sorted(self.dropped_files):
            if rel in self.skipped_files:
                lr = self.skipped_files[rel]
                longrepr = (str(lr[0]), int(lr[1]), str(lr[2])) if lr else (rel, 1, "Skipped: cached")
                report = CollectReport(rel, "skipped", longrepr, [])
                config.hook.pytest_collectreport(report=report)
                self.replayed += 1
        # Nodes of dropped files that the same selection deselected last time:
        # counted by the terminal reporter as pytest would have.
        dropped_deselected = [
            _DeselectedNode(n) for n in self.deselected_ids if n.split("::", 1)[0] in self.dropped_files
        ]
        if self.role is None and self.dropped_files:
            self._count_dropped(config, len(dropped_deselected))
        if dropped_deselected and not config.option.collectonly:
            config.hook.pytest_deselected(items=dropped_deselected)
        # After every plugin's selection (-k, -m, --deselect, --lf's wrapper,
        # node IDs): only cached items pytest itself kept are replayed.
        if not self.cached_collected or config.option.collectonly:
            return
        items = session.items
        kept: List[pytest.Item] = []
        pending: List[_Entry] = []
        for item in items:
            entry = self.cached_collected.get(item.nodeid)
            if entry is not None:
                pending.append(entry)
                continue
            if pending:
                self.replay_before.setdefault(item.nodeid, []).extend(pending)
                pending = []
            kept.append(item)
        self.replay_tail = pending
        items[:] = kept

    def _count_dropped(self, config: pytest.Config, deselected: int) -> None:
        """The nodes of files that were not collected are still pytest's
        items: the "collected N items" header counts them (with the ones the
        selection leaves out), and pytest's own cache (`cache/nodeids`)
        lists the selected ones, as a session that collected them would."""
        dropped = [str(e["nodeid"]) for e in self.skip_replays if self._entry_file(e) in self.dropped_files]
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and isinstance(getattr(reporter, "_numcollected", None), int):
            reporter._numcollected += len(dropped) + deselected
        nf = config.pluginmanager.get_plugin("nfplugin")
        if nf is not None and isinstance(getattr(nf, "cached_nodeids", None), set) and not config.option.collectonly:
            nf.cached_nodeids.update(dropped)

    def _send_collected(self, items: Iterable[pytest.Item]) -> None:
        if self.collected_sent:
            return
        self.collected_sent = True
        nodes: Dict[str, List[str]] = {f: [] for f in self.files}
        for item in items:
            rel = self.relpath(item.path)
            nodes.setdefault(rel, []).append(item.nodeid)
        files = [
            {"file": f, "outcome": self.files.get(f, "passed"), "nodes": n, "skip": self.file_skips.get(f)}
            for f, n in nodes.items()
        ]
        self.emit({"type": "collected", "files": files})

    # ---- running ----------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Any:
        config = session.config
        replay = self.role is None and not config.option.collectonly and not (
            session.testsfailed and not config.option.continue_on_collection_errors
        )
        if replay:
            pending = sum(len(v) for v in self.replay_before.values()) + len(self.replay_tail)
            # Progress percentages and the exit status (no 5 when something was replayed) use this.
            skipped = [e for e in self.skip_replays if self._entry_file(e) in self.dropped_files]
            session.testscollected += len(skipped) + pending
            self._replay_many(skipped)
        result = yield
        if replay and not (session.shouldstop or session.shouldfail):
            self._replay_many(self.replay_tail)
        return result

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: Optional[pytest.Item]) -> None:
        if self.role is not None:
            return
        before = self.replay_before.pop(item.nodeid, None)
        if before:
            self._replay_many(before)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Any:
        prev = self._activate(self.relpath(item.path))
        try:
            return (yield)
        finally:
            self._restore(prev)

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: Any, request: Any) -> Any:
        # A broader-scoped fixture's inputs affect every test that uses it: global.
        if getattr(fixturedef, "scope", "function") == "function":
            return (yield)
        prev = self._activate(None)
        try:
            return (yield)
        finally:
            self._restore(prev)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Any:
        rel = self.relpath(item.path)
        prev = self._activate(rel)
        limit = self.timeouts.get(rel) if self.timeouts else None
        timed = bool(limit) and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
        if timed:
            # A rule's per-test timeout: SIGALRM fails the test where it is.
            def expired(signum: int, frame: Any) -> None:
                pytest.fail("Timeout: the test ran longer than %ss (rpytest rule timeout)" % limit, pytrace=False)

            previous = signal.signal(signal.SIGALRM, expired)
            signal.setitimer(signal.ITIMER_REAL, float(limit or 0))
        try:
            return (yield)
        finally:
            if timed:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
            self._restore(prev)

    # teardown stays global: it also finalizes broader-scoped fixtures.

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: Any) -> Any:
        # Failure reprs read source files (linecache) and CI/BUILD_NUMBER (truncation):
        # formatting a report is not what the test depends on.
        was_on = self._pause()
        try:
            return (yield)
        finally:
            self._resume(was_on)

    @pytest.hookimpl(wrapper=True)
    def pytest_exception_interact(self, node: Any, call: Any, report: Any) -> Any:
        was_on = self._pause()
        try:
            return (yield)
        finally:
            self._resume(was_on)

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: Any, config: Any) -> Any:
        was_on = self._pause()
        marked = self._mark_cached_durations(terminalreporter, config)
        try:
            return (yield)
        finally:
            if marked:
                terminalreporter.__dict__.pop("write_line", None)
            self._resume(was_on)

    def _mark_cached_durations(self, reporter: Any, config: Any) -> bool:
        """`--durations` lists stored times of cached tests as pytest lists
        measured ones, with ` (cached)` after the node ID. Only the lines of
        that list are touched, and only while the summary hooks run (inside
        the terminal reporter's own summary wrapper)."""
        if getattr(config.option, "durations", None) is None or not self._cached_ids:
            return False
        cached = self._cached_ids
        write_line = reporter.write_line

        def marking(line: Any, **markup: bool) -> None:
            if isinstance(line, str):
                m = _DURATION_LINE.match(line)
                if m is not None and m.group(1) in cached:
                    line += " (cached)"
            write_line(line, **markup)

        reporter.write_line = marking
        return True

    @pytest.hookimpl(tryfirst=True)
    def pytest_keyboard_interrupt(self, excinfo: Any) -> None:
        # The interrupt's traceback is formatted now and printed later: nothing
        # read from here on belongs to a test (the session is not stored anyway).
        self._pause()

    @pytest.hookimpl(tryfirst=True)
    def pytest_internalerror(self, excrepr: Any, excinfo: Any) -> None:
        self._pause()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if getattr(report, "rpytest_cached", False) or self.role == "controller":
            return  # a controller's reports come from workers, which report results themselves
        st = self.results.get(report.nodeid)
        if st is None:
            st = self.results[report.nodeid] = {
                "outcome": None,
                "duration": 0.0,
                "location": list(report.location),
                "longrepr": None,
                "wasxfail": None,
                "phases": [0.0, 0.0, 0.0],
                "sections": [],
                "skip_when": None,
            }
        duration = float(getattr(report, "duration", 0.0) or 0.0)
        st["duration"] += duration
        phase = _PHASES.get(report.when)
        if phase is not None:
            st["phases"][phase] += duration
            if report.sections:
                st["sections"].append((phase, report.sections))
        wasxfail = getattr(report, "wasxfail", None)
        current = st["outcome"]
        if report.failed:
            if current not in ("failed", "error"):
                st["outcome"] = "failed" if report.when == "call" else "error"
        elif current in ("failed", "error"):
            pass
        elif report.skipped:
            if wasxfail is not None:
                st["outcome"] = "xfailed"
                st["wasxfail"] = str(wasxfail)
            else:
                st["outcome"] = "skipped"
                st["skip_when"] = report.when
                lr = report.longrepr
                if isinstance(lr, tuple) and len(lr) == 3:
                    st["longrepr"] = [str(lr[0]), lr[1], str(lr[2])]
        elif report.when == "call" and report.passed:
            if wasxfail is not None:
                st["outcome"] = "xpassed"
                st["wasxfail"] = str(wasxfail)
            else:
                st["outcome"] = "passed"

    def pytest_runtest_logfinish(self, nodeid: str, location: Tuple[str, Optional[int], str]) -> None:
        st = self.results.pop(nodeid, None)
        if st is None or st["outcome"] is None:
            return  # replayed, or never ran (e.g. --setup-only)
        path = nodeid.split("::")[0]
        self.emit(
            {
                "type": "result",
                "nodeid": nodeid,
                "file": path,
                "outcome": st["outcome"],
                "duration": st["duration"],
                "location": st["location"],
                "longrepr": st["longrepr"],
                "wasxfail": st["wasxfail"],
                "output": node_output(st),
            }
        )

    @pytest.hookimpl(tryfirst=True)
    def pytest_warning_recorded(self, warning_message: Any, when: str, nodeid: str, location: Any) -> None:
        # A test's warnings are stored with its result and replayed with it.
        # Formatting reads the warning's source line: with recording paused
        # (and linecache warm for the terminal reporter after this), that
        # read is no test's input.
        if self._replaying or when != "runtest" or not nodeid or self.role == "controller":
            return
        was_on = self._pause()
        try:
            stored = store_warning(warning_message, self._prefixes)
        except Exception:
            stored = None
        finally:
            self._resume(was_on)
        if stored is not None:
            self.emit({"type": "node_warning", "nodeid": nodeid, "warning": stored})

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: Any, config: pytest.Config) -> Optional[Tuple[str, str, str]]:
        if getattr(report, "rpytest_cached", False) and report.when == "call" and report.passed:
            return "passed", "c", "CACHED"
        return None

    def cached_files(self) -> List[str]:
        """The test files whose results this session replays (rpytest.coverage)."""
        files = set(self.skip_files)
        files.update(self._entry_file(e) for e in self.cached_collected.values())
        return sorted(files)

    def uncache(self, rel: str) -> None:
        """Run `rel` instead of replaying it (before collection): its cached
        results lack something this session reports (rpytest.coverage)."""
        self.skip_files.discard(rel)
        self.skip_replays = [e for e in self.skip_replays if self._entry_file(e) != rel]
        self.cached_collected = {n: e for n, e in self.cached_collected.items() if self._entry_file(e) != rel}
        self.skipped_files.pop(rel, None)
        self.deselected_ids = [n for n in self.deselected_ids if n.split("::", 1)[0] != rel]

    def pending_replays(self) -> List[_Entry]:
        """What this session would replay: cached nodes of dropped files and cached
        items pytest's selection kept (a worker hands them to the controller)."""
        out = [e for e in self.skip_replays if self._entry_file(e) in self.dropped_files]
        for entries in self.replay_before.values():
            out.extend(entries)
        out.extend(self.replay_tail)
        return out

    def _replay_many(self, entries: List[_Entry]) -> None:
        """Replays cached results in order. What pytest's hooks do with them
        (the terminal reporter's stats, formatting) is no test's input:
        recording is paused; their events reach the CLI in one write."""
        if not entries:
            return
        assert self.config is not None
        was_on = self._pause()
        nodes: List[Tuple[str, str, str, float]] = []
        # Replayed reports are no cyclic garbage: no collection pauses while
        # thousands of them are made.
        gc_was = gc.isenabled()
        gc.disable()
        self._bulk = TerminalBulk.make(self.config, self)
        if self._bulk is None:
            self._calls = DirectCalls.make(self.config, self)
        try:
            for entry in entries:
                nodes.append(self._replay(entry))
        finally:
            if self._bulk is not None:
                self._bulk.close()
                self._bulk = None
            if self._calls is not None:
                self._calls.close()
                self._calls = None
            if gc_was:
                gc.enable()
            self._resume(was_on)
            if self.events and nodes:
                self.writer.emit({"type": "cached_results", "nodes": nodes})

    def _replay(self, entry: _Entry) -> Tuple[str, str, str, float]:
        assert self.config is not None
        hook = self.config.hook
        nodeid = str(entry["nodeid"])
        file = self._entry_file(entry)
        loc = entry.get("location") or [file, None, nodeid.split("::", 1)[-1]]
        location = (str(loc[0]), None if loc[1] is None else int(loc[1]), str(loc[2]))
        keywords = {nodeid.split("::")[-1].split("[")[0]: 1, nodeid.split("::")[-1]: 1}
        outcome = entry.get("outcome")
        duration = float(entry.get("duration") or 0.0)
        output = entry.get("output") or None
        phases = (output or {}).get("phases") or None
        now = time.time()

        def report(when: str, out: str, longrepr: Any = None, dur: float = 0.0, **extra: Any) -> TestReport:
            phase = _PHASES[when]
            if phases is not None:
                dur = float(phases[phase])
            return TestReport(
                nodeid, location, keywords, out, longrepr, when,  # type: ignore[arg-type]
                # JUnit XML marks the test case as served from the cache.
                sections=sections_of(output, phase), duration=dur, start=now, stop=now + dur,
                user_properties=[("rpytest_cached", "true")], rpytest_cached=True, **extra,
            )

        # Passed setup and teardown reports only enter the terminal reporter's
        # stats under "" (read by --durations and -rP's teardown sections):
        # the bulk path leaves them out when neither is asked for.
        lean = self._bulk is not None and self._bulk.lean
        if outcome == "skipped":
            lr = entry.get("longrepr")
            longrepr = (str(lr[0]), int(lr[1]) if lr[1] is not None else 0, str(lr[2])) if lr else (location[0], (location[1] or 0) + 1, "Skipped: cached")
            if (output or {}).get("skip_when") == "call":
                if lean:
                    reports = [report("call", "skipped", longrepr, duration)]
                else:
                    reports = [report("setup", "passed"), report("call", "skipped", longrepr, duration), report("teardown", "passed")]
            elif lean:
                reports = [report("setup", "skipped", longrepr, duration)]
            else:
                reports = [report("setup", "skipped", longrepr, duration), report("teardown", "passed")]
        elif outcome == "xfailed":
            xfail = report("call", "skipped", None, duration, wasxfail=str(entry.get("wasxfail") or ""))
            reports = [xfail] if lean else [report("setup", "passed"), xfail, report("teardown", "passed")]
        elif lean:
            reports = [report("call", "passed", None, duration)]
        else:
            reports = [report("setup", "passed"), report("call", "passed", None, duration), report("teardown", "passed")]
        self._cached_ids.add(nodeid)
        self._replaying = True
        calls = self._calls
        bulk = self._bulk
        try:
            if bulk is not None and bulk.node(nodeid, location, reports):
                pass
            elif calls is not None:
                calls.logstart(nodeid, location)
                for rep in reports:
                    calls.logreport(rep)
                calls.logfinish(nodeid, location)
            else:
                if bulk is not None:
                    bulk.before_hooks()
                hook.pytest_runtest_logstart(nodeid=nodeid, location=location)
                for rep in reports:
                    hook.pytest_runtest_logreport(report=rep)
                hook.pytest_runtest_logfinish(nodeid=nodeid, location=location)
                if bulk is not None:
                    bulk.after_hooks()
            for stored in (output or {}).get("warnings") or ():
                hook.pytest_warning_recorded.call_historic(
                    kwargs=dict(
                        warning_message=replayed_warning(stored, self.rootdir),
                        when="runtest", nodeid=nodeid, location=None,
                    )
                )
        finally:
            self._replaying = False
        self.replayed += 1
        return (nodeid, file, outcome or "passed", duration)

    # ---- end of session -------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: Any) -> None:
        if int(session.exitstatus) == int(pytest.ExitCode.NO_TESTS_COLLECTED) and self.replayed:
            session.exitstatus = pytest.ExitCode.OK
        self._send_collected(())
        rec = self.recorder
        if rec is not None and self.recording:
            rec.enabled = False
            for key in [None] + [f for f in self.files]:
                deps = rec.deps(key)
                if key is None and record.is_blind():
                    deps["volatile"] = True  # an event source is missing: store nothing
                self.emit(deps)
            self.emit({"type": "edges", "edges": sorted([a, b] for a, b in rec.edges)})
            rec.enabled = True  # recording continues until the process ends (unconfigure, atexit)
        status = int(session.exitstatus)
        self.emit(
            {
                "type": "finish",
                "exitstatus": status,
                "interrupted": status == int(pytest.ExitCode.INTERRUPTED),
                "shouldstop": bool(session.shouldstop or session.shouldfail),
                "duration": time.time() - self.started,
            }
        )
