"""The event stream to the CLI (docs/protocol.md): the collected files and
their nodes, each test's result with its output and warnings, and the end of
the session."""

from __future__ import annotations

import json
import os
import sys
import time
import types
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

import pytest

from rpytest import protocol as msgs
from rpytest.replay import _PHASES, keywords_diff, node_output, report_extras, store_warning, stored_properties


def _warning_log() -> Optional[List[Any]]:
    """The list pytest's `catch_warnings(record=True)` around the collection
    appends each warning to (None when warnings are not being recorded so)."""
    import warnings

    log = getattr(getattr(warnings, "_showwarnmsg_impl", None), "__self__", None)
    return log if type(log) is list else None


def collect_warning_key(wm: Any) -> Tuple[str, str, str, int]:
    """What tells one collection warning from another in the summary."""
    return (getattr(wm.category, "__name__", ""), str(wm.message), os.path.abspath(str(wm.filename)), int(wm.lineno or 0))


# Fixtures that write to pytest's JUnit XML directly (not through reports).
_JUNIT_DIRECT = frozenset(("record_xml_attribute", "record_testsuite_property"))


def _is_subtest(report: Any) -> bool:
    """A subtest's report: pytest 9's `SubtestReport`, pytest-subtests'
    `SubTestReport`."""
    return type(report).__name__.lower() == "subtestreport"


class ResultStream:
    """Sends what the session collected and ran; `owner` is the session's
    RpytestPlugin (paths, events, the recording window, the replay plugin)."""

    def __init__(self, owner: Any) -> None:
        self.owner = owner
        self.files: Dict[str, str] = {}  # collected file -> collect outcome, in collection order
        self.file_skips: Dict[str, Any] = {}
        self.collected_sent = False
        self.results: Dict[str, Dict[str, Any]] = {}
        self.started = time.time()
        # When the batch of results being held began (None: nothing held).
        self._batch_since: Optional[float] = None
        # Warnings raised while a test file was collected (its import: a
        # module-level warning, a deprecated helper it imports), by file:
        # stored with the file's first test and replayed with it.
        self.collect_warnings: Dict[str, List[Any]] = {}
        # What the warnings summary shows of this session's own collection.
        self.live_collect_warnings: Set[Tuple[str, str, str, int]] = set()

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        # The options plugins and conftest files registered, when the CLI met
        # one it did not know (rpytest.options).
        if self.owner.cfg.get("describe_options"):
            from rpytest import options

            self.owner.emit(msgs.options(options.describe(config)))

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.started = time.time()

    # ---- collection -----------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector: pytest.Collector) -> Any:
        log = _warning_log() if isinstance(collector, pytest.File) else None
        seen = len(log) if log is not None else 0
        report = yield
        if isinstance(collector, pytest.File):
            rel = self.owner.relpath(collector.path)
            if log is not None and len(log) > seen:
                self.collect_warnings.setdefault(rel, []).extend(log[seen:])
            if rel not in self.files or report.outcome != "passed":
                self.files[rel] = report.outcome
            if report.outcome == "skipped" and isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
                path, lineno, reason = report.longrepr
                self.file_skips[rel] = [str(path), lineno, str(reason)]
        return report

    @pytest.hookimpl(wrapper=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config, items: List[pytest.Item]) -> Any:
        # The complete item list of every collected file, as before any
        # deselection, plus the items the hooks added (a status item
        # appended to the session belongs to no test file: the CLI then never
        # answers a run alone, which would leave that item out).
        before = list(items)
        try:
            return (yield)
        finally:
            seen = {id(i) for i in before}
            self.send_collected(before + [i for i in items if id(i) not in seen])

    def send_collected(self, items: Iterable[pytest.Item]) -> None:
        if self.collected_sent:
            return
        self.collected_sent = True
        relpath = self.owner.relpath
        nodes: Dict[str, List[str]] = {f: [] for f in self.files}
        seen: Set[str] = set()
        recorder = self.owner.recorder
        for item in items:
            rel = relpath(item.path)
            nodes.setdefault(rel, []).append(item.nodeid)
            if recorder is not None and not _JUNIT_DIRECT.isdisjoint(getattr(item, "fixturenames", ())):
                # What these write goes to the JUnit writer, not into the
                # test's reports, and only when --junitxml is given (an
                # option outside the key): a replay could not write it.
                recorder.volatile.add(rel)
            if item.nodeid in seen:
                # Two items with one node ID (a custom collector can make
                # them): results are kept by node ID, so the file's would
                # come back as one. Never stored: the file always runs.
                recorder = self.owner.recorder
                if recorder is not None:
                    recorder.volatile.add(rel)
            seen.add(item.nodeid)
        files = [
            msgs.collected_file(f, self.files.get(f, "passed"), n, self.file_skips.get(f))
            for f, n in nodes.items()
        ]
        self.owner.emit(msgs.collected(files))
        self._send_collect_warnings(nodes)

    def _send_collect_warnings(self, nodes: Dict[str, List[str]]) -> None:
        """Each file's collection warnings, as warnings of its first test
        (marked `at_collection`): a replay of the file shows them again."""
        owner = self.owner
        if not self.collect_warnings or owner.role == "controller":
            return
        was_on = owner._pause()
        try:
            for rel, recorded in self.collect_warnings.items():
                if not nodes.get(rel):
                    continue
                for wm in recorded:
                    try:
                        stored = store_warning(wm, owner._prefixes)
                    except Exception:
                        continue
                    stored["at_collection"] = True
                    owner.emit(msgs.node_warning(nodes[rel][0], stored))
        finally:
            owner._resume(was_on)

    # ---- results ----------------------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if getattr(report, "rpytest_cached", False) or getattr(report, "rpytest_replayed", False) or self.owner.role == "controller":
            return  # a controller's reports come from workers, which report results themselves
        st = self.results.get(report.nodeid)
        if st is None:
            st = self.results[report.nodeid] = self._new_result(report)
        if not report.failed and _is_subtest(report):
            # A subtest's report (pytest 9's `subtests`, pytest-subtests) is
            # kept whole, as its plugin serializes it, and replayed before
            # the test's call report. A failed one counts as a failure of
            # the test (below): the test is never served from the cache.
            data = self._serialized(report)
            if data is not None:
                st.setdefault("subtests", []).append(data)
                return
            recorder = self.owner.recorder  # one the session cannot replay: never stored
            if recorder is not None:
                recorder.volatile.add(report.nodeid.split("::", 1)[0])
            return
        self._keep_extras(st, report)
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

    def _keep_extras(self, st: Dict[str, Any], report: pytest.TestReport) -> None:
        """What a replayed report must carry besides its outcome, as the live
        one had it: the attributes plugins set on it and the test's
        `user_properties` as they were when each phase's report was made,
        and its keywords (as they differ from what a replay derives from
        the node ID). What cannot be stored as it is keeps the file from
        being stored: it runs every time."""
        extras = report_extras(report)
        props = stored_properties(report.user_properties) if report.user_properties else []
        if extras is None or props is None:
            st["unstorable"] = True
            return
        if extras:
            st["attrs"][str(report.when)] = extras
        phase = _PHASES.get(report.when)
        if phase is not None:
            st["props"][phase] = props
        if st["kw"] is None:
            rootname = os.path.basename(self.owner.rootdir)
            st["kw"], st["kw_not"] = keywords_diff(report.nodeid, report.keywords, rootname)

    @staticmethod
    def _new_result(report: pytest.TestReport) -> Dict[str, Any]:
        return {
            "outcome": None,
            "duration": 0.0,
            "location": list(report.location),
            "longrepr": None,
            "wasxfail": None,
            "phases": [0.0, 0.0, 0.0],
            "sections": [],
            "skip_when": None,
            "attrs": {},
            "props": [None, None, None],
            "kw": None,
            "kw_not": None,
        }

    def _serialized(self, report: pytest.TestReport) -> Optional[Dict[str, Any]]:
        config = self.owner.cache.config
        try:
            data = config.hook.pytest_report_to_serializable(config=config, report=report)
            json.dumps(data)
        except Exception:
            return None
        return data if isinstance(data, dict) else None

    def pytest_runtest_logfinish(self, nodeid: str, location: Tuple[str, Optional[int], str]) -> None:
        st = self.results.pop(nodeid, None)
        if st is None or st["outcome"] is None:
            return  # replayed, or never ran (e.g. --setup-only)
        if st.get("unstorable"):
            recorder = self.owner.recorder
            if recorder is not None:
                recorder.volatile.add(nodeid.split("::", 1)[0])
        self._emit_result(
            msgs.result(
                nodeid,
                nodeid.split("::")[0],
                st["outcome"],
                st["duration"],
                st["location"],
                st["longrepr"],
                st["wasxfail"],
                node_output(st),
            )
        )

    # Results leave in batches, one write per BATCH_SECONDS instead of one per
    # test: fewer system calls here and fewer wake-ups of the CLI, which stores
    # them only once the session has ended. Other events emitted meanwhile
    # join the batch, so the order stays. A crash loses at most the last
    # batch of the run's history (results are stored only after the
    # session's end anyway). A distributed worker writes per test itself
    # (rpytest.parallel): there the CLI follows every test.
    BATCH_SECONDS = 0.25

    def _emit_result(self, event: Dict[str, Any]) -> None:
        owner = self.owner
        if not owner.events:
            return
        if self._batch_since is None:
            if owner.role is not None:
                owner.emit(event)
                return
            owner.writer.hold()
            self._batch_since = time.monotonic()
        owner.writer.emit(event)
        if time.monotonic() - self._batch_since >= self.BATCH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write the results held so far, and what joined them."""
        if self._batch_since is not None:
            self._batch_since = None
            self.owner.writer.release()

    @pytest.hookimpl(tryfirst=True)
    def pytest_warning_recorded(self, warning_message: Any, when: str, nodeid: str, location: Any) -> None:
        # A test's warnings are stored with its result and replayed with it.
        # Formatting reads the warning's source line: with recording paused
        # (and linecache warm for the terminal reporter after this), that
        # read is no test's input.
        owner = self.owner
        if when == "collect" and not owner.replaying():
            self.live_collect_warnings.add(collect_warning_key(warning_message))
        if owner.replaying() or when != "runtest" or not nodeid or owner.role == "controller":
            return
        was_on = owner._pause()
        try:
            stored = store_warning(warning_message, owner._prefixes)
        except Exception:
            stored = None
        finally:
            owner._resume(was_on)
        if stored is not None:
            owner.emit(msgs.node_warning(nodeid, stored))

    # ---- the end ----------------------------------------------------------------

    def finish(self, session: pytest.Session) -> None:
        status = int(session.exitstatus)
        self.owner.emit(
            msgs.finish(
                status,
                status == int(pytest.ExitCode.INTERRUPTED),
                bool(session.shouldstop or session.shouldfail),
                time.time() - self.started,
                project_hooks(session.config, self.owner.rootdir),
            )
        )


def project_hooks(config: pytest.Config, rootdir: str) -> List[str]:
    """The hooks the project's own plugins implement, each as `file: hook`:
    conftests, `-p` and `pytest_plugins` modules, plugin objects registered
    from them — every plugin whose code lies under rootdir outside installed
    packages. The CLI learns from them which fully cached runs need a session
    (a `pytest_terminal_summary` it cannot print, a `pytest_sessionfinish`
    that writes a report), whatever way the hook was defined or loaded."""
    pm = config.pluginmanager
    root = os.path.join(os.path.realpath(rootdir), "")
    out: Set[str] = set()
    for _name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        module = plugin if isinstance(plugin, types.ModuleType) else sys.modules.get(type(plugin).__module__)
        name = getattr(module, "__name__", "") or ""
        path = getattr(module, "__file__", None)
        if name == "rpytest" or name.startswith("rpytest.") or not isinstance(path, str):
            continue
        real = os.path.realpath(path)
        if not real.startswith(root) or any(
            part in ("site-packages", "dist-packages") for part in real[len(root):].split(os.sep)
        ):
            continue
        try:
            callers = pm.get_hookcallers(plugin) or []
        except Exception:
            continue
        rel = real[len(root):].replace(os.sep, "/")
        out.update("%s: %s" % (rel, c.name) for c in callers if c.name.startswith("pytest_"))
    return sorted(out)
