"""Coverage of a partly cached run (pytest-cov).

Each test file's coverage data is measured apart (a coverage.py dynamic
context per test file, collection included) and stored by the CLI with the
file's cached results, under the same key and a signature of the coverage
configuration. A run that serves a file from the cache merges that file's
stored data into its own before pytest-cov combines and reports, so the
terminal report, `--cov-report=xml/html` and `--cov-fail-under` are those of a
run that executed everything. A cached file whose data is missing (another
coverage configuration, data never stored) runs.

Contexts are this module's own: they are removed from the measured data before
pytest-cov saves it, so the data file holds what stock pytest-cov writes.
Nothing here imports coverage unless pytest-cov is active in the session.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from typing import Any, Dict, List, Optional, Set, Tuple

import pytest

from rpytest import protocol as msgs

_PREFIX = "rpytest-file:"
_ROOT = "<rootdir>/"

# The coverage settings that decide what is measured (report settings do not).
_MEASURING = (
    "branch", "concurrency", "context", "dynamic_context", "core", "cover_pylib", "relative_files",
    "run_include", "run_omit", "source", "source_pkgs", "source_dirs", "timid", "plugins",
    "plugin_options", "patch", "paths", "include_namespace_packages", "_include", "_omit",
)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (set, frozenset)):
        return sorted(str(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def signature(cov: Any, controller: Any, rootdir: str, option: Any = None) -> str:
    """A name for the coverage configuration and the test selection (`-k`,
    `-m`, `--deselect`, `--lf`, node IDs): a file's data is valid only under
    the same ones."""
    config = cov.config
    settings = {name: _plain(getattr(config, name, None)) for name in _MEASURING}
    for name in ("keyword", "markexpr", "deselect", "lf"):
        settings["selection " + name] = _plain(getattr(option, name, None))
    # Node IDs select part of a file: its whole-file data would overstate
    # what ran (a selected file's data is then missing, and the file runs).
    settings["selection node ids"] = sorted(
        str(a) for a in (getattr(option, "file_or_dir", None) or []) if "::" in str(a)
    )
    settings["pytest-cov source"] = _plain(getattr(controller, "cov_source", None))
    settings["pytest-cov branch"] = _plain(getattr(controller, "cov_branch", None))
    settings["data file"] = _plain(os.path.basename(str(getattr(config, "data_file", "") or "")))
    text = json.dumps(settings, sort_keys=True)
    for root in {rootdir, os.path.realpath(rootdir)}:
        text = text.replace(root.rstrip(os.sep) + os.sep, _ROOT)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]


class CoverageCache:
    """Registered in every session; active only when pytest-cov measures it."""

    def __init__(self, rpytest: Any, stored: Dict[str, Dict[str, str]]) -> None:
        self.rpytest = rpytest
        self.stored = stored
        self.rootdir = rpytest.rootdir
        self.controller: Any = None
        self.cov: Any = None
        self.sig: Optional[str] = None
        self.measuring = False  # this process traces tests (not an -n controller)
        self.current: Optional[str] = None
        self.items: Dict[str, int] = {}
        self.ran: Dict[str, int] = {}
        self.cached_files: Set[str] = set()
        self.finished = False
        self.paused = False

    # ---- start --------------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        plugin = session.config.pluginmanager.getplugin("_cov")
        controller = getattr(plugin, "cov_controller", None) if plugin is not None else None
        cov = getattr(controller, "cov", None)
        if plugin is None or getattr(plugin, "_disabled", False) or cov is None:
            return
        self.controller = controller
        self.cov = cov
        role = self.rpytest.role
        self.measuring = role != "controller"
        contexts_free = not getattr(cov.config, "dynamic_context", None) and not getattr(
            getattr(plugin, "options", None), "cov_context", None
        )
        core = getattr(cov, "_core", None)
        traced = getattr(core, "supports_dynamic_contexts", True) if core is not None else True
        if contexts_free and traced:
            self.sig = signature(cov, controller, self.rootdir, session.config.option)
        elif self.rpytest.skip_files or self.rpytest.cached_collected or self.rpytest.skip_replays:
            why = "dynamic contexts are in use" if not contexts_free else "its core cannot measure per test file"
            sys.stderr.write("rpytest: every test runs: coverage of cached tests cannot be kept (%s)\n" % why)
        # A cached file whose coverage data is missing runs.
        for rel in self.rpytest.cached_files():
            if self.sig is None or self.data_of(rel) is None:
                self.rpytest.uncache(rel)
        self.cached_files = set(self.rpytest.cached_files())

    def data_of(self, rel: str) -> Optional[str]:
        if self.sig is None:
            return None
        return (self.stored.get(rel) or {}).get(self.sig)

    # ---- measuring per test file ------------------------------------------------

    def _switch(self, rel: Optional[str]) -> None:
        if not (self.measuring and self.sig) or self.finished:
            return
        label = None if rel is None else _PREFIX + rel
        if label == self.current:
            return
        # Switching writes the data measured so far to coverage's data file:
        # that is no test's input.
        was_on = self.rpytest._pause()
        try:
            if getattr(self.cov, "_started", True):
                self.cov.switch_context(label)
                self.current = label
        except Exception:
            self.sig = None  # measured data can no longer be told apart: store none
        finally:
            self.rpytest._resume(was_on)

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector: pytest.Collector) -> Any:
        if not isinstance(collector, pytest.File):
            return (yield)
        self._switch(self.rpytest.relpath(collector.path))
        try:
            return (yield)
        finally:
            self._switch(None)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            rel = self.rpytest.relpath(item.path)
            self.items[rel] = self.items.get(rel, 0) + 1

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: Any) -> Any:
        rel = self.rpytest.relpath(item.path)
        self._switch(rel)
        result = yield
        self.ran[rel] = self.ran.get(rel, 0) + 1
        return result

    # ---- end: split, merge ------------------------------------------------------

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Any:
        # Outside pytest-cov's wrapper: recording resumes once it has saved,
        # combined and reported (what it reads then is no test's input).
        try:
            return (yield)
        finally:
            self.rpytest._resume(self.paused)
            self.paused = False

    def loop_end(self, session: pytest.Session) -> None:
        """After the tests, before pytest-cov stops, combines and reports (`_LoopEnd`)."""
        if self.cov is None:
            return
        self.paused = self.rpytest._pause()
        stopped = bool(session.shouldstop or session.shouldfail)
        try:
            self._finish(stopped)
        except Exception as exc:
            sys.stderr.write("rpytest: coverage of cached tests could not be merged: %r\n" % (exc,))
            raise

    def _finish(self, stopped: bool) -> None:
        self.finished = True
        cov = self.cov
        cov.stop()
        replayed = [rel for rel in self.cached_files if self.data_of(rel) is not None]
        # coverage.py warns about what it did not measure ("Module x was never
        # imported", "No data was collected") when its data is first read:
        # with cached files, that is before their data is merged. It warns
        # after the merge instead, about what the merged data still lacks.
        deferred = _defer_warnings(cov) if replayed else None
        data = cov.get_data()
        static = getattr(cov.config, "context", None) or None
        split: Dict[str, Dict[str, Any]] = {}
        if self.measuring:
            split = self._split_and_strip(data, static)
        if replayed:
            data.set_context(static)
            arcs = data.has_arcs() or bool(getattr(cov.config, "branch", False))
            for rel in replayed:
                _add(data, json.loads(self.data_of(rel) or "{}"), self.rootdir, arcs)
        if deferred is not None:
            _warn_unmeasured(cov, data, *deferred)
        if self.sig is None or stopped:
            return
        for rel, outcome in self.rpytest.files.items():
            # Whole under this selection (the CLI stores nothing for a file that
            # node IDs or --lf narrowed).
            if rel in self.cached_files or self.ran.get(rel, 0) != self.items.get(rel, 0):
                continue
            chunk = split.get(rel, {"arcs": data.has_arcs(), "files": {}, "tracers": {}})
            self.rpytest.emit(msgs.coverage(rel, self.sig, json.dumps(chunk, separators=(",", ":"))))

    def _split_and_strip(self, data: Any, static: Optional[str]) -> Dict[str, Dict[str, Any]]:
        """Each test file's data (from its context); then the data again without those contexts."""
        arcs = data.has_arcs()
        files = sorted(data.measured_files())
        tracers = {f: data.file_tracer(f) or "" for f in files}
        split: Dict[str, Dict[str, Any]] = {}
        ours = sorted(c for c in data.measured_contexts() if _PREFIX in c)
        for context in ours:
            rel = context.split(_PREFIX, 1)[1]
            data.set_query_contexts(["^" + re.escape(context) + "$"])
            measured: Dict[str, Any] = {}
            for f in files:
                got = data.arcs(f) if arcs else data.lines(f)
                if got:
                    measured[_store_path(f, self.rootdir)] = sorted([list(a) for a in got] if arcs else got)
            split[rel] = {
                "arcs": arcs,
                "files": measured,
                "tracers": {_store_path(f, self.rootdir): t for f, t in tracers.items() if t and _store_path(f, self.rootdir) in measured},
            }
        if not ours:
            return split
        # The union of every context, written back under the static context only.
        data.set_query_contexts(None)
        union = {f: (data.arcs(f) if arcs else data.lines(f)) or [] for f in files}
        data.erase()
        data.set_context(static)
        if arcs:
            data.add_arcs({f: v for f, v in union.items() if v})
        else:
            data.add_lines({f: v for f, v in union.items() if v})
        by_tracer: Dict[str, List[str]] = {}
        for f, v in union.items():
            if not v:
                by_tracer.setdefault(tracers[f], []).append(f)
        for tracer, names in by_tracer.items():
            data.touch_files(names, tracer or None)
        traced = {f: t for f, t in tracers.items() if t}
        if traced:
            data.add_file_tracers(traced)
        return split


def _defer_warnings(cov: Any) -> Optional[Tuple[bool, bool]]:
    """Turns off coverage.py's warnings about unmeasured code; returns what
    they were (None when this coverage.py has no such switches)."""
    if not (hasattr(cov, "_warn_no_data") and hasattr(cov, "_warn_unimported_source")):
        return None
    was = (bool(cov._warn_no_data), bool(cov._warn_unimported_source))
    cov._warn_no_data = cov._warn_unimported_source = False
    return was


def _warn_unmeasured(cov: Any, data: Any, no_data: bool, unimported: bool) -> None:
    """coverage.py's own warnings about unmeasured code, about the merged data:
    a source package that a measured file belongs to is no longer unmatched."""
    cov._warn_no_data, cov._warn_unimported_source = no_data, unimported
    measured = [f.replace(os.sep, "/") for f in data.measured_files()]

    def covered(pkg: str) -> bool:
        path = "/" + pkg.replace(".", "/")
        return any(path + "/" in f or f.endswith(path + ".py") for f in measured)

    unmatched = getattr(getattr(cov, "_inorout", None), "source_pkgs_unmatched", None)
    if isinstance(unmatched, list):
        unmatched[:] = [pkg for pkg in unmatched if not covered(pkg)]
    post = getattr(cov, "_post_save_work", None)
    if post is not None:
        post()


def _store_path(path: str, rootdir: str) -> str:
    prefix = rootdir.rstrip(os.sep) + os.sep
    if path.startswith(prefix):
        return _ROOT + path[len(prefix):].replace(os.sep, "/")
    return path


def _load_path(path: str, rootdir: str) -> str:
    if path.startswith(_ROOT):
        return os.path.join(rootdir, *path[len(_ROOT):].split("/"))
    return path


def _add(data: Any, chunk: Dict[str, Any], rootdir: str, arcs: bool) -> None:
    files = {_load_path(f, rootdir): v for f, v in (chunk.get("files") or {}).items()}
    if arcs or chunk.get("arcs"):
        data.add_arcs({f: [tuple(a) for a in v] for f, v in files.items() if v})
    else:
        data.add_lines({f: list(v) for f, v in files.items() if v})
    tracers = {_load_path(f, rootdir): t for f, t in (chunk.get("tracers") or {}).items() if t}
    if tracers:
        data.add_file_tracers(tracers)


class _LoopEnd:
    """The innermost `pytest_runtestloop` wrapper: its code after the tests runs
    before pytest-cov's (a plugin object has one implementation per hook)."""

    def __init__(self, owner: CoverageCache) -> None:
        self.owner = owner

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Any:
        result = yield
        self.owner.loop_end(session)
        return result


def plugins(rpytest: Any, stored: Dict[str, Dict[str, str]]) -> List[Any]:
    """The plugin objects a session registers."""
    cache = CoverageCache(rpytest, stored)
    return [cache, _LoopEnd(cache)]
