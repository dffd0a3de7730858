"""The replay plugin: drops or deselects the test files and nodes whose results
are cached and replays those results through pytest's reporting hooks, in
pytest's order (the bulk paths live in rpytest.replay)."""

from __future__ import annotations

import fnmatch
import gc
import json
import operator
import os
import time
from typing import Any, Dict, List, Optional, Set, Tuple

import _pytest
import pytest
from _pytest.pathlib import fnmatch_ex
from _pytest.reports import CollectReport, TestReport

from rpytest import protocol as msgs
from rpytest.stream import collect_warning_key
from rpytest.warnonce import raised_live_by_same_import
from rpytest.replay import (
    _DURATION_LINE,
    _PHASES,
    CACHED_PROPERTY,
    DirectCalls,
    Keywords,
    ReportMaker,
    TerminalBulk,
    replayed_warning,
    sections_of,
)

_Entry = Dict[str, Any]


def entry_file(entry: _Entry) -> str:
    """The rootdir-relative test file a cached entry belongs to."""
    f = entry.get("file") or str(entry["nodeid"]).split("::")[0]
    return str(f).strip("/")


def untracked_parts(entries: List[_Entry]) -> None:
    """Makes the lists of plain values in cached entries tuples, in place.
    The entries live as long as the session, and the garbage collector's
    full collections (pytest runs several as the session ends) stop visiting
    a tuple or dict of plain values once they have seen it: thousands of
    cached entries then cost those collections nothing."""
    for e in entries:
        loc = e.get("location")
        if type(loc) is list:
            e["location"] = tuple(loc)
        lr = e.get("longrepr")
        if type(lr) is list:
            e["longrepr"] = tuple(lr)
        out = e.get("output")
        if type(out) is dict:
            phases = out.get("phases")
            if type(phases) is list:
                out["phases"] = tuple(phases)


def _as_it_ran(report: Any, data: Dict[str, Any]) -> None:
    """A skip's location is a tuple again (JSON kept a list). A subtest's context holds its values as text (`repr` of each, taken
    when the test ran); rebuilding the report would `repr` that text again
    (`i='0'` for `i=0`, as pytest-xdist shows it). The replay shows them as
    the run did."""
    if isinstance(report.longrepr, (list, tuple)) and len(report.longrepr) == 3:
        # A skip's (path, line, reason): a tuple, as pytest made it (JSON kept a list).
        path, line, reason = report.longrepr
        report.longrepr = (str(path), line, str(reason))
    stored = data.get("_subtest.context")
    context = getattr(report, "context", None)
    if not isinstance(stored, dict) or context is None or not isinstance(stored.get("kwargs"), dict):
        return
    try:
        object.__setattr__(context, "kwargs", dict(stored["kwargs"]))
    except Exception:
        pass


def _closing_collections_in_cleanup() -> bool:
    """Whether pytest runs its closing garbage collections (pytest 8.4: five
    full ones) among the session's cleanups, where letting go of replayed
    reports first spares them; pytest 9 runs one in its pytest_unconfigure,
    before any cleanup."""
    try:
        import _pytest.unraisableexception as unraisable
    except ImportError:
        return False
    return hasattr(unraisable, "gc_collect_harder") and not hasattr(unraisable, "pytest_unconfigure")


class _DeselectedNode:
    """Stands for a node of a cached file that the selection left out (only
    its node ID is known; nothing of it was collected)."""

    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid
        self.location = (nodeid.split("::", 1)[0], None, nodeid.split("::", 1)[-1])

    def __repr__(self) -> str:
        return "<cached deselected %s>" % self.nodeid


class CachedResults:
    """Replays the session's cached results; `owner` is the session's
    RpytestPlugin (paths, events, the recording window)."""

    def __init__(self, owner: Any, session_config: Dict[str, Any]) -> None:
        self.owner = owner
        self.skip_files = {str(p).strip("/") for p in session_config.get("skip_files") or ()}
        # Files of other `--shard`s: never collected, never replayed.
        self.exclude_files = {str(p).strip("/") for p in session_config.get("exclude_files") or ()}
        self.excluded_args: Set[str] = set()
        # Files whose import skipped (module-level pytest.skip): replayed as a
        # skipped collect report when dropped. file -> [path, lineno, reason]
        self.skipped_files: Dict[str, Any] = {
            str(e.get("file")): e.get("longrepr")
            for e in session_config.get("skipped_files") or ()
            if isinstance(e, dict) and e.get("file")
        }
        self.deselected_ids: List[str] = [str(n) for n in session_config.get("deselected") or ()]
        sent = session_config.get("cached") or ()
        cached: List[_Entry] = [e for e in sent if isinstance(e, dict) and e.get("nodeid")]
        untracked_parts(cached)
        # The CLI reads replayed nodes back as positions in the list it sent
        # (docs/protocol.md, `cached_replayed`): entry's id -> its position.
        self._positions: Optional[Dict[int, int]] = None
        self._sent: List[Any] = sent if isinstance(sent, list) else []
        if session_config.get("replay_indices") and isinstance(sent, list):
            self._positions = {id(e): i for i, e in enumerate(sent)}
        # The replayed reports the terminal reporter keeps are let go as
        # the session's cleanups begin (_release_replayed).
        self._release_registered = False
        self.skip_replays: List[_Entry] = []
        self.cached_collected: Dict[str, _Entry] = {}
        skip_files = self.skip_files
        for e in cached:
            if entry_file(e) in skip_files:
                self.skip_replays.append(e)
            else:
                self.cached_collected[e["nodeid"]] = e
        self.replay_before: Dict[str, List[_Entry]] = {}
        self.replay_tail: List[_Entry] = []
        self.replayed = 0
        self.dropped_files: Set[str] = set()
        self.config: Optional[pytest.Config] = None
        # True while a cached node goes through the hooks (its warnings are not stored again).
        self.replaying = False
        self._calls: Optional[DirectCalls] = None
        self._bulk: Optional[TerminalBulk] = None
        # Cached node IDs whose reports carry the stored durations (--durations marks them).
        self._cached_ids: Set[str] = set()
        # `python_files` patterns when pytest's python plugin is on (else none).
        self._python_files: Optional[Tuple[str, ...]] = None
        # Directories that may hold only cached files (None: not worked out yet).
        self._cached_dirs: Optional[Set[str]] = None
        # A matcher of file names for `python_files` (see _python_files_by_name).
        self._by_name: Optional[Tuple[Any]] = None
        self._make: Optional[ReportMaker] = None
        self._keywords = Keywords(os.path.basename(owner.rootdir))

    # ---- what the session replays -------------------------------------------

    def cached_files(self) -> List[str]:
        files = set(self.skip_files)
        files.update(entry_file(e) for e in self.cached_collected.values())
        return sorted(files)

    def uncache(self, rel: str) -> None:
        self.skip_files.discard(rel)
        self.skip_replays = [e for e in self.skip_replays if entry_file(e) != rel]
        self.cached_collected = {n: e for n, e in self.cached_collected.items() if entry_file(e) != rel}
        self.skipped_files.pop(rel, None)
        self.deselected_ids = [n for n in self.deselected_ids if n.split("::", 1)[0] != rel]

    def _dropped_replays(self) -> List[_Entry]:
        """The cached entries of the files whose collection was dropped, in
        their order. Every entry of `skip_replays` is of a file in
        `skip_files`: when all of those were dropped (the usual case), that
        is the whole list."""
        if self.skip_files <= self.dropped_files:
            return list(self.skip_replays)
        dropped = self.dropped_files
        return [e for e in self.skip_replays if entry_file(e) in dropped]

    def pending_replays(self) -> List[_Entry]:
        out = self._dropped_replays()
        for entries in self.replay_before.values():
            out.extend(entries)
        out.extend(self.replay_tail)
        return out

    # ---- collection -----------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(wrapper=True)
    def pytest_ignore_collect(self, collection_path: Any, config: pytest.Config) -> Any:
        # The cheap way out for most cached files: pytest never makes their
        # `Module` node. Only where the outcome is provably the one of
        # pytest_collect_file below: every other plugin's and conftest's
        # ignore verdict comes first (--ignore, collect_ignore, their hooks),
        # pytest never asks this for a command-line argument, and pytest's
        # own python plugin would collect the file (a `.py` file matching
        # `python_files` always gives a Module, which the wrapper below would
        # drop with whatever other collectors add).
        ignored = yield
        if ignored or not (self.skip_files or self.exclude_files):
            return ignored
        if collection_path.suffix != ".py":
            if self._cached_directory(collection_path, config):
                return True
            return ignored
        rel = self.owner.relpath(collection_path)
        excluded = rel in self.exclude_files
        if not excluded and rel not in self.skip_files:
            return ignored
        if not self._python_collects(collection_path, config):
            return ignored
        if not excluded:
            if (config.option.maxfail or 0) > 0:
                return ignored
            self.dropped_files.add(rel)
        return True

    def _cached_directory(self, path: Any, config: pytest.Config) -> bool:
        """Whether pytest, walking directory `path`, would collect nothing but
        cached files and drop them: then the directory is not walked at all.
        Only when that is certain: the directory holds no conftest.py, no
        `__init__.py` and nothing but cached `.py` files matching
        `python_files` (and `__pycache__`); pytest's own implementation of
        pytest_ignore_collect ignores none of them and is the only one
        besides rpytest's; and the hooks a directory node goes through
        (pytest_collect_directory, the collect report hooks) are pytest's
        and rpytest's own, so that no plugin misses the node."""
        dirs = self._cached_dirs
        if dirs is None:
            dirs = self._cached_dirs = self._directories_to_skip(config)
        if not dirs:
            return False
        rel = self.owner.relpath(path)
        if rel not in dirs:
            return False
        # Asked again for every directory: a conftest loaded since may hook in.
        if not self._only_own_collection_hooks(config):
            return False
        from _pytest.main import pytest_ignore_collect as pytests_verdict

        # pytest's verdict on a regular file is "ignored" only by
        # collect_ignore(_glob) of the conftests above it or --ignore(-glob)
        # (a file is no virtualenv and no directory); when none is set, it
        # is asked for no file.
        ask = True
        try:
            ask = bool(
                config.getoption("ignore")
                or config.getoption("ignore_glob")
                or config._getconftest_pathlist("collect_ignore", path=path)
                or config._getconftest_pathlist("collect_ignore_glob", path=path)
            )
        except (AttributeError, ValueError, TypeError):
            pass
        found: List[str] = []
        names: List[str] = []
        try:
            with os.scandir(path) as entries:
                for entry in entries:
                    name = entry.name
                    if name == "__pycache__" and entry.is_dir():
                        continue
                    if name in ("conftest.py", "__init__.py") or not name.endswith(".py") or not entry.is_file():
                        return False
                    f = rel + "/" + name
                    if f not in self.skip_files and f not in self.exclude_files:
                        return False
                    names.append(name)
                    found.append(f)
        except OSError:
            return False
        by_name = self._python_files_by_name(config)
        for name in names:
            if by_name is not None:
                if by_name(os.path.normcase(name)) is None:
                    return False
            elif not self._python_collects(path / name, config):
                return False
            if ask and pytests_verdict(collection_path=path / name, config=config):
                return False
        self.dropped_files.update(f for f in found if f not in self.exclude_files)
        return True

    def _directories_to_skip(self, config: pytest.Config) -> Set[str]:
        """The directories holding cached files (none under -x/--maxfail)."""
        if (config.option.maxfail or 0) > 0:
            return set()
        files = set(self.skip_files) | self.exclude_files
        return {f.rsplit("/", 1)[0] for f in files if "/" in f}

    def _only_own_collection_hooks(self, config: pytest.Config) -> bool:
        """Whether pytest's and rpytest's plugins alone implement the hooks a
        directory's walk goes through (see _cached_directory), conftests
        loaded so far included."""
        import _pytest.main

        def ours(plugin: Any) -> bool:
            mod = plugin.__name__ if isinstance(plugin, type(_pytest)) else type(plugin).__module__
            return str(mod).startswith(("_pytest.", "rpytest."))

        hook = config.pluginmanager.hook
        for impl in hook.pytest_ignore_collect.get_hookimpls():
            if impl.plugin is not _pytest.main and impl.plugin is not self:
                return False
        for name in ("pytest_collect_directory", "pytest_collectstart", "pytest_make_collect_report", "pytest_collectreport"):
            caller = getattr(hook, name, None)
            if caller is None or not all(ours(impl.plugin) for impl in caller.get_hookimpls()):
                return False
        return True

    def _python_files_by_name(self, config: pytest.Config) -> Optional[Any]:
        """One matcher of file names standing for _python_collects when every
        `python_files` pattern matches a bare file name (none names a
        directory); None otherwise."""
        if self._by_name is None:
            self._python_collects(config.rootpath, config)  # works out the patterns
            patterns = self._python_files or ()
            if patterns and all(p and "/" not in p and os.sep not in p for p in patterns):
                import re

                rx = "|".join("(?:%s)" % fnmatch.translate(os.path.normcase(p)) for p in patterns)
                self._by_name = (re.compile(rx).match,)
            else:
                self._by_name = (None,)
        return self._by_name[0]

    def _python_collects(self, path: Any, config: pytest.Config) -> bool:
        """Whether pytest's python plugin collects `path` as a module of
        tests (it does for every `.py` file matching `python_files`)."""
        patterns = self._python_files
        if patterns is None:
            patterns = ()
            if config.pluginmanager.get_plugin("python") is not None:
                patterns = tuple(str(p) for p in config.getini("python_files") or ())
            self._python_files = patterns
        name = path.name
        for p in patterns:
            # A pattern without a separator matches the file name (as fnmatch_ex does, cheaper).
            if p and "/" not in p and os.sep not in p:
                if fnmatch.fnmatch(name, p):
                    return True
            elif fnmatch_ex(p, path):
                return True
        return False

    @pytest.hookimpl(wrapper=True)
    def pytest_collect_file(self, file_path: Any, parent: Any) -> Any:
        # A wrapper, not pytest_ignore_collect: explicit file arguments never
        # reach pytest_ignore_collect, and only a file some plugin would
        # collect may have its cached results replayed. Creating the File
        # node imports nothing, so dropping it here costs nothing.
        result = yield
        if result and self.exclude_files:
            rel = self.owner.relpath(file_path)
            if rel in self.exclude_files:
                if parent.session.isinitpath(file_path):
                    # Named on the command line: its items are dropped after collection.
                    self.excluded_args.add(rel)
                    return result
                return []
        if result and self.skip_files:
            rel = self.owner.relpath(file_path)
            if rel in self.skip_files:
                # Named on the command line, dropping it would make pytest report
                # "not found"; under -x/--maxfail its cached results must come in
                # pytest's order, so that none is reported after the run stops.
                # Either way: let it collect and replay per node.
                if parent.session.isinitpath(file_path) or (parent.config.option.maxfail or 0) > 0:
                    for e in self.skip_replays:
                        if entry_file(e) == rel:
                            self.cached_collected[e["nodeid"]] = e
                    return result
                self.dropped_files.add(rel)
                return []
        return result

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        config = session.config
        relpath = self.owner.relpath
        if self.excluded_args:
            session.items[:] = [i for i in session.items if relpath(i.path) not in self.excluded_args]
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
        if self.owner.role is None and self.dropped_files:
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
        dropped = self._dropped_replays()
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and isinstance(getattr(reporter, "_numcollected", None), int):
            reporter._numcollected += len(dropped) + deselected
        nf = config.pluginmanager.get_plugin("nfplugin")
        if nf is not None and isinstance(getattr(nf, "cached_nodeids", None), set) and not config.option.collectonly:
            nf.cached_nodeids.update(str(e["nodeid"]) for e in dropped)

    # ---- running ----------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Any:
        config = session.config
        replay = self.owner.role is None and not config.option.collectonly and not (
            session.testsfailed and not config.option.continue_on_collection_errors
        )
        if replay:
            pending = sum(len(v) for v in self.replay_before.values()) + len(self.replay_tail)
            # Progress percentages and the exit status (no 5 when something was replayed) use this.
            skipped = self._dropped_replays()
            session.testscollected += len(skipped) + pending
            self.replay_many(skipped)
        result = yield
        if replay and not (session.shouldstop or session.shouldfail):
            self.replay_many(self.replay_tail)
        return result

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: Optional[pytest.Item]) -> None:
        if self.owner.role is not None:
            return
        before = self.replay_before.pop(item.nodeid, None)
        if before:
            self.replay_many(before)

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: Any, config: pytest.Config) -> Optional[Tuple[str, str, str]]:
        if getattr(report, "rpytest_cached", False) and report.when == "call" and report.passed:
            return "passed", "c", "CACHED"
        return None

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: Any, config: Any) -> Any:
        marked = self._mark_cached_durations(terminalreporter, config)
        try:
            return (yield)
        finally:
            if marked:
                terminalreporter.__dict__.pop("write_line", None)

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

    def fix_exit_status(self, session: pytest.Session) -> None:
        """A session whose every result was replayed collected something."""
        if int(session.exitstatus) == int(pytest.ExitCode.NO_TESTS_COLLECTED) and self.replayed:
            session.exitstatus = pytest.ExitCode.OK

    # ---- replaying ------------------------------------------------------------

    def replay_many(self, entries: List[_Entry]) -> None:
        """Replays cached results in order. What pytest's hooks do with them
        (the terminal reporter's stats, formatting) is no test's input:
        recording is paused; their events reach the CLI in one write."""
        if not entries:
            return
        assert self.config is not None
        owner = self.owner
        was_on = owner._pause()
        nodes: List[Tuple[str, str, str, float]] = []
        positions = self._positions
        if not self._release_registered:
            self._release_registered = True
            if _closing_collections_in_cleanup():
                self.config.add_cleanup(self._release_replayed)
        # Replayed reports are no cyclic garbage: no collection pauses while
        # thousands of them are made.
        gc_was = gc.isenabled()
        gc.disable()
        parts = owner.reporting_parts() + self._passive_reporters()
        self._bulk = TerminalBulk.make(self.config, parts)
        if self._make is None:
            self._make = ReportMaker(TestReport)
        if self._bulk is None:
            self._calls = DirectCalls.make(self.config, parts)
        plain = self._replay_plain if self._bulk is not None and self._bulk.lean and not self._bulk.verbose else None
        try:
            for entry in entries:
                got = plain(entry) if plain is not None else None
                nodes.append(got if got is not None else self._replay(entry))
        finally:
            if self._bulk is not None:
                self._bulk.close()
                self._bulk = None
            if self._calls is not None:
                self._calls.close()
                self._calls = None
            if gc_was:
                gc.enable()
            owner._resume(was_on)
            if owner.events and nodes:
                ranges = self._ranges(entries[: len(nodes)]) if positions is not None else None
                if ranges is not None:
                    owner.writer.emit(msgs.cached_replayed(ranges))
                else:
                    owner.writer.emit(msgs.cached_results(nodes))

    def _ranges(self, entries: List[_Entry]) -> Optional[List[List[int]]]:
        """The replayed entries as runs of their positions in the list the
        CLI sent ([start, end) each); None if one is not from that list."""
        positions = self._positions
        assert positions is not None
        if not entries:
            return []
        first = positions.get(id(entries[0]))
        sent = self._sent
        n = len(entries)
        if first is not None and first + n <= len(sent) and all(map(operator.is_, entries, sent[first : first + n])):
            return [[first, first + n]]  # the usual case: one run
        ranges: List[List[int]] = []
        last: Optional[List[int]] = None
        for e in entries:
            i = positions.get(id(e))
            if i is None:
                return None
            if last is not None and last[1] == i:
                last[1] = i + 1
            else:
                last = [i, i + 1]
                ranges.append(last)
        return ranges

    def _release_replayed(self) -> None:
        """The first of the session's cleanups (registered last, run first),
        after every hook and the terminal summary: the terminal reporter lets
        go of the replayed reports. Nothing reads them any more; pytest's
        closing garbage collections (five full ones in pytest 8.4) then do
        not visit tens of thousands of live reports that cannot be garbage."""
        assert self.config is not None
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        stats = getattr(tr, "stats", None)
        if not isinstance(stats, dict):
            return
        for reports in stats.values():
            if type(reports) is list:
                reports[:] = [r for r in reports if not getattr(r, "rpytest_cached", False)]

    def _passive_reporters(self) -> List[Any]:
        """rpytest's plugins whose per-node reporting hooks do nothing with a
        replayed report (ThirdParty acts on pytest-rerunfailures' "rerun"
        reports only): they leave the bulk replay paths open."""
        from rpytest.thirdparty import ThirdParty

        assert self.config is not None
        return [p for p in self.config.pluginmanager.get_plugins() if type(p) is ThirdParty]

    def _subtest_reports(self, output: Optional[Dict[str, Any]]) -> List[Any]:
        """The stored subtest reports of a test, rebuilt by their plugin."""
        stored = (output or {}).get("subtests")
        if not stored:
            return []
        assert self.config is not None
        config = self.config
        reports = []
        for data in stored:
            rep = config.hook.pytest_report_from_serializable(config=config, data=dict(data))
            if rep is None:
                continue
            _as_it_ran(rep, data)
            # Not `rpytest_cached`: the subtest plugin's letters and words
            # stay; the result stream knows it by this mark.
            rep.rpytest_replayed = True
            reports.append(rep)
        return reports

    def _replay_plain(self, entry: _Entry) -> Optional[Tuple[str, str, str, float]]:
        """The common case of `_replay` under the terminal reporter's bulk
        path (default layout, lean): a passed node whose stored output is
        its phases' durations alone (no sections, warnings or subtests).
        The same call report `_replay` makes, made and reported with less
        work per node; None (nothing reported) for anything else."""
        output = entry.get("output")
        phases = None
        plus = None
        if output:
            phases = output.get("phases")
            plus = output.get("kw")
            if phases is None or len(output) != (1 if plus is None else 2):
                return None
        outcome = entry.get("outcome")
        if outcome is not None and outcome != "passed":
            return None
        nodeid = entry["nodeid"]
        location = entry.get("location")
        if type(nodeid) is not str or type(location) is not tuple or len(location) != 3:
            return None
        line = location[1]
        if type(location[0]) is not str or type(location[2]) is not str or (line is not None and type(line) is not int):
            return None
        bulk = self._bulk
        make = self._make
        if bulk is None or make is None:
            return None
        prefix, _, name = nodeid.rpartition("::")
        # The keywords as self._keywords makes them, with less work per node.
        parents = self._keywords.parents.get(prefix) or self._keywords.of_parents(prefix)
        if plus:
            keywords = {name: 1}
            for k in plus:
                keywords[str(k)] = 1
            keywords.update(parents)
        else:
            keywords = {name: 1, **parents}
        duration = float(entry.get("duration") or 0.0)
        dur = float(phases[1]) if phases is not None else duration
        rep = make(nodeid, location, keywords, "passed", None, "call", [], dur, time.time())
        # (`_cached_ids` serves --durations only, which the lean layout excludes.)
        self.replaying = True
        try:
            if not bulk.node(nodeid, location, [rep]):
                return None  # nothing reported: `_replay` takes it through the hooks
        finally:
            self.replaying = False
        self.replayed += 1
        file = entry.get("file")
        return (nodeid, file if type(file) is str and file and file[0] != "/" and file[-1] != "/" else entry_file(entry), "passed", duration)

    def _replay(self, entry: _Entry) -> Tuple[str, str, str, float]:
        assert self.config is not None
        hook = self.config.hook
        nodeid = str(entry["nodeid"])
        file = entry_file(entry)
        name = nodeid.rsplit("::", 1)[-1]
        loc = entry.get("location")
        if type(loc) is tuple and len(loc) == 3 and type(loc[0]) is str and type(loc[1]) in (int, type(None)) and type(loc[2]) is str:
            location = loc  # as the CLI sent it (untracked_parts made it a tuple)
        else:
            loc = loc or [file, None, nodeid.split("::", 1)[-1]]
            location = (str(loc[0]), None if loc[1] is None else int(loc[1]), str(loc[2]))
        outcome = entry.get("outcome")
        duration = float(entry.get("duration") or 0.0)
        output = entry.get("output") or None
        phases = output.get("phases") if output else None
        keywords = self._keywords(nodeid, name, output.get("kw"), output.get("kw_not")) if output else self._keywords(nodeid, name)
        # The test's `record_property` pairs per phase, and the attributes
        # plugins set on its reports (JSON text: rpytest.replay.node_output).
        stored_props = output.get("props") if output else None
        props_by_phase = json.loads(stored_props) if stored_props else None
        stored_attrs = output.get("attrs") if output else None
        attrs = json.loads(stored_attrs) if stored_attrs else {}
        now = time.time()
        make = self._make
        if make is None:
            make = self._make = ReportMaker(TestReport)

        def report(when: str, out: str, longrepr: Any = None, dur: float = 0.0, **extra: Any) -> TestReport:
            phase = _PHASES[when]
            if phases is not None:
                dur = float(phases[phase])
            added = attrs.get(when)
            if added:
                extra = dict(added, **extra)
            # JUnit XML marks the test case as served from the cache, after its own properties.
            props = [(str(p[0]), p[1]) for p in props_by_phase[phase]] if props_by_phase else []
            props.append(CACHED_PROPERTY)
            return make(nodeid, location, keywords, out, longrepr, when, sections_of(output, phase), dur, now, extra, props)

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
        subtests = self._subtest_reports(output)
        if subtests:
            # A test's subtests report before its call report, as they ran.
            at = next(i for i, r in enumerate(reports) if r.when != "setup")
            reports[at:at] = subtests
        self._cached_ids.add(nodeid)
        self.replaying = True
        calls = self._calls
        bulk = self._bulk
        try:
            if bulk is not None and not subtests and bulk.node(nodeid, location, reports):
                pass
            elif calls is not None and not subtests:
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
            stored_warnings = (output or {}).get("warnings") or ()
            # The file's collection warnings first, as pytest shows them
            # before its tests' (each once: another file's collection in this
            # session may have raised it already).
            for stored in sorted(stored_warnings, key=lambda w: not w.get("at_collection")):
                collected = bool(stored.get("at_collection"))
                warning = replayed_warning(stored, self.owner.rootdir)
                if collected:
                    seen = self.owner.stream.live_collect_warnings
                    key = collect_warning_key(warning)
                    if key in seen or raised_live_by_same_import(warning, seen):
                        continue
                    seen.add(key)
                hook.pytest_warning_recorded.call_historic(
                    kwargs=dict(
                        warning_message=warning,
                        when="collect" if collected else "runtest",
                        nodeid="" if collected else nodeid,
                        location=None,
                    )
                )
        finally:
            self.replaying = False
        self.replayed += 1
        return (nodeid, file, outcome or "passed", duration)
