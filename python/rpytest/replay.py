"""Replaying cached results: what a result keeps beside its outcome
(per-phase durations, report sections, warnings), and the cheap ways of
feeding replayed reports to pytest's reporting (docs/protocol.md)."""

from __future__ import annotations

import json
import linecache
import os
import re
import sys
import warnings
from typing import Any, Dict, List, Optional, Tuple

_PHASES = {"setup": 0, "call": 1, "teardown": 2}
_WHENS = ("setup", "call", "teardown")
# A line of pytest's `--durations` list: "0.12s call     path::test".
_DURATION_LINE = re.compile(r"^\d+\.\d\ds (?:setup|call|teardown) +(.+)$")


def node_output(st: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """What a result keeps beside its outcome (docs/protocol.md, "output"):
    per-phase durations, a skip's phase, and the report sections of each
    phase. Sections accumulate over the phases (the call report repeats
    setup's), so each distinct section is stored once with a bit mask of
    the phases whose report holds it, in the order the reports list them."""
    out: Dict[str, Any] = {"phases": [round(d, 6) for d in st["phases"]]}
    if st.get("skip_when") == "call":
        out["skip_when"] = "call"
    if st["sections"]:
        entries: List[List[Any]] = []
        for phase, sections in st["sections"]:
            bit = 1 << phase
            j = 0
            for title, content in sections:
                k = j
                while k < len(entries) and (entries[k][0] != title or entries[k][1] != content or entries[k][2] & bit):
                    k += 1
                if k < len(entries):
                    entries[k][2] |= bit
                    j = k + 1
                else:
                    entries.append([str(title), str(content), bit])
                    j = len(entries)
        out["sections"] = entries
    if st.get("subtests"):
        out["subtests"] = st["subtests"]  # serialized reports (rpytest.stream)
    if st.get("kw"):
        out["kw"] = st["kw"]
    if st.get("kw_not"):
        out["kw_not"] = st["kw_not"]
    # As JSON text: the store keeps a JSON object's keys sorted, a
    # replayed dict must have them in the order the live one had.
    props = st.get("props")
    if props and any(props):
        out["props"] = json.dumps([p or [] for p in props], allow_nan=False)
    if st.get("attrs"):
        out["attrs"] = json.dumps(st["attrs"], allow_nan=False)
    return out


# What pytest's TestReport constructor sets (`_id` is pytest 9's node ID),
# `wasxfail` (pytest's skipping plugin, stored as the outcome) and rpytest's
# own marks: any other attribute of a report is a plugin's or a conftest's.
_REPORT_FIELDS = frozenset((
    "nodeid", "_id", "location", "keywords", "outcome", "longrepr", "when", "user_properties",
    "sections", "duration", "start", "stop", "wasxfail", "rpytest_cached", "rpytest_replayed",
))
# The JUnit property a replayed test case carries after the test's own.
CACHED_PROPERTY = ("rpytest_cached", "true")


def storable(value: Any, depth: int = 0) -> bool:
    """Whether JSON keeps `value` as it is: None, bool, int (64 bits), finite
    float, str (UTF-8), and lists and str-keyed dicts of those. A tuple
    would come back a list; an object cannot be written at all."""
    t = type(value)
    if value is None or t is bool or t is str and _utf8(value):
        return True
    if t is int:
        return -(1 << 63) <= value < (1 << 64)
    if t is float:
        return value == value and value not in (float("inf"), float("-inf"))
    if depth > 32:
        return False
    if t is list:
        return all(storable(v, depth + 1) for v in value)
    if t is dict:
        return all(type(k) is str and _utf8(k) and storable(v, depth + 1) for k, v in value.items())
    return False


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def report_extras(report: Any) -> Optional[Dict[str, Any]]:
    """The attributes a plugin or conftest set on a test report (a
    `pytest_runtest_makereport` wrapper's `rep.my_attr = ...`), which
    pytest's report serialization (pytest-xdist) keeps; {} for none, None
    when one cannot be stored as it is."""
    extras: Dict[str, Any] = {}
    for name, value in report.__dict__.items():
        if name in _REPORT_FIELDS:
            continue
        if not storable(value):
            return None
        extras[name] = value
    return extras


def stored_properties(props: Any) -> Optional[List[List[Any]]]:
    """A report's `user_properties` (`record_property`'s (name, value)
    pairs) as stored; None when one cannot be stored as it is."""
    out: List[List[Any]] = []
    for p in props:
        if type(p) is not tuple or len(p) != 2 or type(p[0]) is not str or not storable(p[0]) or not storable(p[1]):
            return None
        out.append([p[0], p[1]])
    return out


def parent_keywords(prefix: str, rootname: str) -> List[str]:
    """The keywords a test's parents give it, as pytest's collection tree
    has them: the classes of `prefix` (its node ID without the test's own
    name) from the innermost, the file, its directories up to rootdir, the
    rootdir's name and the session's ("")."""
    parts = prefix.split("::")
    names = parts[:0:-1]
    names.extend(reversed(parts[0].split("/")))
    names.append(rootname)
    names.append("")
    return names


def keywords_diff(nodeid: str, live: Any, rootname: str) -> Tuple[List[str], List[str]]:
    """How a test's live `report.keywords` differ from what a replay derives
    from its node ID (parent_keywords): the names it adds (markers,
    parameter IDs, attributes of the function) and the derived names it
    lacks."""
    prefix, sep, name = nodeid.rpartition("::")
    derived = [name] + (parent_keywords(prefix, rootname) if sep else [rootname, ""])
    have = set(derived)
    plus = [str(k) for k in live if k not in have]
    names = set(live)
    minus = [k for k in derived if k not in names]
    return plus, minus


class Keywords:
    """The `report.keywords` of replayed tests: what the node ID gives
    (parent_keywords, worked out once per file or class), with the stored
    difference from the live ones (rpytest.stream)."""

    def __init__(self, rootname: str) -> None:
        self.rootname = rootname
        self.parents: Dict[str, Dict[str, int]] = {}

    def of_parents(self, prefix: str) -> Dict[str, int]:
        """The keywords the parents of a test whose node ID starts with
        `prefix` (then "::" and its name) give it."""
        parents = self.parents.get(prefix)
        if parents is None:
            names = parent_keywords(prefix, self.rootname) if prefix else [self.rootname, ""]
            parents = self.parents[prefix] = dict.fromkeys(names, 1)
        return parents

    def __call__(self, nodeid: str, name: str, plus: Any = None, minus: Any = None) -> Dict[str, int]:
        prefix = nodeid[: -len(name) - 2] if len(nodeid) > len(name) + 2 else ""
        parents = self.parents.get(prefix) or self.of_parents(prefix)
        if not plus and not minus:
            return {name: 1, **parents}
        kw = {name: 1}
        if plus:
            for k in plus:
                kw[str(k)] = 1
        kw.update(parents)
        if minus:
            for k in minus:
                kw.pop(k, None)
        return kw


def sections_of(output: Optional[Dict[str, Any]], phase: int) -> List[Tuple[str, str]]:
    if not output:
        return []
    bit = 1 << phase
    return [(str(e[0]), str(e[1])) for e in output.get("sections") or () if int(e[2]) & bit]


def store_warning(wm: Any, prefixes: Tuple[str, ...]) -> Dict[str, Any]:
    """A recorded warning as stored: what pytest's warnings summary prints
    (its category, message, location, the source line, and whether the
    warning carried a source object), with a path under rootdir made
    relative so the entry means the same in another clone."""
    from _pytest.warnings import warning_record_to_str

    text = warning_record_to_str(wm)
    filename = str(wm.filename)
    line = wm.line
    if line is None:
        line = linecache.getline(filename, wm.lineno)
    cat = wm.category
    stored: Dict[str, Any] = {
        "category": "%s.%s" % (getattr(cat, "__module__", "builtins"), getattr(cat, "__qualname__", cat.__name__)),
        "name": cat.__name__,
        "message": str(wm.message),
        "filename": filename,
        "lineno": wm.lineno,
        "line": line,
        "source": wm.source is not None,
        "text": text,
    }
    for prefix in prefixes:
        if filename.startswith(prefix):
            stored["filename"] = filename[len(prefix):]
            stored["rootdir"] = True
            break
    if stored.get("rootdir") and text.startswith(filename):
        stored["text"] = text[len(filename):]
    elif stored.get("rootdir"):
        stored.pop("text")  # recomputed on replay
    return stored


def warning_category(dotted: str, name: str) -> type:
    module, _, qualname = dotted.rpartition(".")
    if module == "builtins":
        cat = getattr(__import__("builtins"), qualname, None)
    else:
        # Never import for a replay: a category whose module is not loaded
        # is stood for by a Warning subclass of the same name.
        cat = sys.modules.get(module)
        for part in qualname.split("."):
            cat = getattr(cat, part, None) if cat is not None else None
    if isinstance(cat, type) and issubclass(cat, Warning):
        return cat
    return type(name, (Warning,), {"__module__": module or "builtins", "__qualname__": qualname})


def replayed_warning(stored: Dict[str, Any], rootdir: str) -> warnings.WarningMessage:
    filename = str(stored.get("filename") or "")
    if stored.get("rootdir"):
        filename = os.path.join(rootdir, filename)
    category = warning_category(str(stored.get("category") or "builtins.UserWarning"), str(stored.get("name") or "UserWarning"))
    text = str(stored.get("message") or "")
    try:
        message: Any = category(text)
    except Exception:
        message = text
    return warnings.WarningMessage(
        message, category, filename, int(stored.get("lineno") or 0),
        source=object() if stored.get("source") else None, line=str(stored.get("line") or ""),
    )




# Plugins whose pytest_report_teststatus answers from a report's phase,
# outcome and xfail mark alone (pytest's own and rpytest's). pytest 9's
# subtests plugin also looks at the test's failed subtests: none for a
# replayed test, which did not run in this session.
_PURE_TESTSTATUS = {"_pytest.terminal", "_pytest.runner", "_pytest.skipping", "_pytest.subtests", "rpytest.cached"}


def _impl_key(impl: Any) -> str:
    plugin = impl.plugin
    name = getattr(plugin, "__name__", None)
    return name if isinstance(name, str) else type(plugin).__module__


class DirectCalls:
    """Calls the implementations of the per-node reporting hooks directly,
    in pluggy's order with pluggy's arguments, for replayed reports: the
    same functions run, without pluggy's dispatch per call. Only when no
    implementation wraps the hook and hook calls are not being traced.
    pytest_report_teststatus (asked by the terminal reporter for every
    report) is answered once per kind of replayed report while every
    implementation of it is one whose answer depends on that kind alone."""

    def __init__(self, config: Any, lists: Dict[str, List[Tuple[Any, Tuple[str, ...]]]], memo_status: bool) -> None:
        self.config = config
        self._start = lists["pytest_runtest_logstart"]
        self._report = lists["pytest_runtest_logreport"]
        self._finish = lists["pytest_runtest_logfinish"]
        self._status_caller = None
        if memo_status:
            original = config.hook.pytest_report_teststatus
            memo: Dict[Tuple[Any, ...], Any] = {}

            def status(**kwargs: Any) -> Any:
                rep = kwargs["report"]
                if type(rep).__name__.lower() == "subtestreport":
                    return original(**kwargs)  # its words hold its own description
                key = (rep.when, rep.outcome, hasattr(rep, "wasxfail"), getattr(rep, "rpytest_cached", False))
                got = memo.get(key)
                if got is None:
                    got = memo[key] = original(**kwargs)
                return got

            self._status_caller = original
            config.hook.pytest_report_teststatus = status

    @classmethod
    def make(cls, config: Any, owner: Any) -> Optional["DirectCalls"]:
        if getattr(config.option, "debug", None) or getattr(config.option, "traceconfig", False):
            return None
        lists: Dict[str, List[Tuple[Any, Tuple[str, ...]]]] = {}
        for name in ("pytest_runtest_logstart", "pytest_runtest_logreport", "pytest_runtest_logfinish"):
            caller = getattr(config.hook, name, None)
            if caller is None:
                return None
            impls = caller.get_hookimpls()
            if any(i.hookwrapper or i.wrapper for i in impls):
                return None
            # pluggy calls the last registered (and tryfirst) first.
            lists[name] = [(i.function, tuple(i.argnames)) for i in reversed(impls)]
        status_impls = config.hook.pytest_report_teststatus.get_hookimpls()
        pure = all(_impl_key(i) in _PURE_TESTSTATUS and not (i.hookwrapper or i.wrapper) for i in status_impls)
        return cls(config, lists, pure)

    def logstart(self, nodeid: str, location: Any) -> None:
        kw = {"nodeid": nodeid, "location": location}
        for f, names in self._start:
            f(*[kw[n] for n in names])

    def logreport(self, report: Any) -> None:
        for f, names in self._report:
            f(*[report for _ in names])

    def logfinish(self, nodeid: str, location: Any) -> None:
        kw = {"nodeid": nodeid, "location": location}
        for f, names in self._finish:
            f(*[kw[n] for n in names])

    def close(self) -> None:
        if self._status_caller is not None:
            self.config.hook.pytest_report_teststatus = self._status_caller
            self._status_caller = None




class TerminalBulk:
    """Feeds replayed reports to pytest's terminal reporter in its default
    (non-verbose) layout as its own hooks would, without a hook call per
    report: the same stats entries in the same order, the same letters,
    file names and progress columns, the same `lastfailed` entries popped.
    Used only when every implementation of the per-node reporting hooks is
    one this class stands for (the terminal reporter, pytest's last-failed
    cache, logging and session plugins, rpytest's own) and the terminal
    reporter is pytest's own class; anything else goes through the hooks."""

    def __init__(self, config: Any, reporter: Any, lastfailed: Optional[Dict[str, Any]], logging_calls: List[Any]) -> None:
        self.config = config
        self.tr = reporter
        self.tw = reporter._tw
        self.markup = bool(getattr(self.tw, "hasmarkup", False))
        self.lastfailed = lastfailed
        self.logging_calls = logging_calls
        self.show_progress = reporter._show_progress_info
        self.showfspath = bool(reporter.showfspath)
        self.progress = reporter._progress_nodeids_reported
        self.session = reporter._session
        self.status: Dict[Tuple[Any, ...], Tuple[str, str, Any]] = {}
        self.fsid: Optional[str] = None
        self.width = reporter._width_of_current_line
        self.buf: List[str] = []
        self.last: Optional[Tuple[str, Any]] = None
        self.fullwidth = self.tw.fullwidth
        self.same_start = reporter.startpath == config.rootpath
        # Only the reports that print a letter are needed (see plugin._replay).
        self.lean = getattr(config.option, "durations", None) is None and not reporter.hasopt("P")
        self.changed = False
        self.verbose = False

    @classmethod
    def make(cls, config: Any, owner: Any) -> Optional["TerminalBulk"]:
        try:
            from _pytest.config import Config
            from _pytest.terminal import TerminalReporter
        except ImportError:
            return None
        if getattr(config.option, "debug", None) or getattr(config.option, "traceconfig", False):
            return None
        pm = config.pluginmanager
        tr = pm.get_plugin("terminalreporter")
        if type(tr) is not TerminalReporter:
            return None
        level = getattr(Config, "VERBOSITY_TEST_CASES", None)
        verbosity = config.get_verbosity(level) if level is not None else config.get_verbosity()
        # -v lines (not -vv, whose lines and reasons are longer).
        if verbosity > 1 or getattr(tr, "_show_progress_info", None) not in (False, "progress"):
            return None
        if not all(hasattr(tr, a) for a in ("_tw", "_progress_nodeids_reported", "_session", "_add_stats", "_get_main_color", "_screen_width")):
            return None
        lf = pm.get_plugin("lfplugin")
        lp = pm.get_plugin("logging-plugin")
        owners = list(owner) if isinstance(owner, (list, tuple)) else [owner]
        known = [p for p in (tr, lf, lp, pm.get_plugin("session"), *owners) if p is not None]
        logging_calls: List[Any] = []
        for name in ("pytest_runtest_logstart", "pytest_runtest_logreport", "pytest_runtest_logfinish"):
            for impl in getattr(config.hook, name).get_hookimpls():
                if impl.hookwrapper or impl.wrapper or not any(impl.plugin is p for p in known):
                    return None
                if lp is not None and impl.plugin is lp:
                    logging_calls.append((impl.function, tuple(impl.argnames)))
        for impl in config.hook.pytest_report_teststatus.get_hookimpls():
            if impl.hookwrapper or impl.wrapper or _impl_key(impl) not in _PURE_TESTSTATUS:
                return None
        lastfailed = getattr(lf, "lastfailed", None) if lf is not None else None
        bulk = cls(config, tr, lastfailed if isinstance(lastfailed, dict) else None, logging_calls)
        bulk.verbose = verbosity > 0
        return bulk

    def _status(self, rep: Any) -> Tuple[str, str, Any, str]:
        key = (rep.when, rep.outcome, hasattr(rep, "wasxfail"))
        got = self.status.get(key)
        if got is None:
            category, letter, word = self.config.hook.pytest_report_teststatus(report=rep, config=self.config)
            markup = word[1] if isinstance(word, tuple) else None
            if isinstance(word, tuple):
                word = word[0]
            if markup is None:
                was_xfail = hasattr(rep, "wasxfail")
                if rep.passed and not was_xfail:
                    markup = {"green": True}
                elif rep.passed and was_xfail:
                    markup = {"yellow": True}
                elif rep.failed:
                    markup = {"red": True}
                elif rep.skipped:
                    markup = {"yellow": True}
                else:
                    markup = {}
            if (letter and (len(letter) != 1 or not letter.isascii())) or not str(word).isascii():
                return category, letter, None, word  # width unknown: the slow way
            got = self.status[key] = (category, letter, markup, word)
        return got

    def _verbose_node(self, nodeid: str, location: Any, reports: List[Any], statuses: List[Any]) -> bool:
        """The terminal reporter's `-v` line: location, status word, progress.
        A skip or xfail (its reason is wrapped by pytest) goes through the hooks."""
        if any(rep.skipped or hasattr(rep, "wasxfail") for rep in reports):
            return False
        tr, tw = self.tr, self.tw
        fspath, _, domain = location
        if not fspath:
            return False
        line = nodeid if self.same_start else self.config.cwd_relative_nodeid(nodeid)
        if domain and line.endswith(domain):
            values = domain.split("[")
            values[0] = values[0].replace(".", "::")
            line = line[: -len(domain)] + "[".join(values)
        line += " "
        if tr.currentfspath != line:
            tw.line()
            tr.currentfspath = line
            tw.write(line)
        for rep, (category, letter, markup, word) in zip(reports, statuses):
            tr._add_stats(category, [rep])
            if not letter and not word:
                continue
            self.progress.add(nodeid)
            if word:
                tw.write(word, **markup)
                tr.currentfspath = -2
            if self.show_progress:
                color, _ = tr._get_main_color()
                msg = tr._get_progress_information_message()
                w = len(line) + len(word) if line.isascii() else tw.width_of_current_line
                tw.write(msg.rjust(self.fullwidth - w - 1), **{color: True})
        tr._tests_ran = True
        if self.lastfailed is not None:
            self.lastfailed.pop(nodeid, None)
        self.last = (nodeid, location)
        return True

    def _new_file(self, fsid: str) -> None:
        """The terminal reporter's `write_fspath_result` at a file change,
        with the file compared by name (pytest compares the same paths)."""
        self._flush()
        tr = self.tr
        if self.fsid is None:
            # The first node of the batch: pytest's own method knows where it stands.
            tr.write_fspath_result(fsid, "")
            self.fsid = fsid
            self.width = tr._width_of_current_line
            return
        if self.show_progress:
            color, _ = tr._get_main_color()
            msg = tr._get_progress_information_message()
            # pytest flushes here; the bytes are the same when flushed at the end.
            self.tw.write(msg.rjust(self.fullwidth - self.width - 1), **{color: True})
        if self.same_start:
            rel = fsid
        else:
            from _pytest.pathlib import bestrelpath

            rel = bestrelpath(tr.startpath, self.config.rootpath / fsid)
        self.tw.line()
        self.tw.write(rel + " ")
        self.width = len(rel) + 1 if rel.isascii() else self.tw.width_of_current_line
        self.fsid = fsid
        self.changed = True

    def _flush(self) -> None:
        if self.buf:
            self.tw.write("".join(self.buf))
            self.buf.clear()

    def node(self, nodeid: str, location: Any, reports: List[Any]) -> bool:
        """Reports one replayed node; False when it must go through the hooks
        (nothing of it was reported then)."""
        if len(reports) == 1 and not self.verbose:
            return self._one(nodeid, location, reports[0])
        statuses = [self._status(rep) for rep in reports]
        if any((st[1] or st[3]) and st[2] is None for st in statuses):
            return False
        if self.verbose:
            return self._verbose_node(nodeid, location, reports, statuses)
        for rep, status in zip(reports, statuses):
            self._default_report(nodeid, location, rep, status)
        return True

    def _one(self, nodeid: str, location: Any, rep: Any) -> bool:
        """`node` for a node of one report in the default layout (the usual
        replayed node: its call report alone)."""
        status = self._status(rep)
        if (status[1] or status[3]) and status[2] is None:
            return False
        self._default_report(nodeid, location, rep, status)
        return True

    def _default_report(self, nodeid: str, location: Any, rep: Any, status: Tuple[str, str, Any, str]) -> None:
        """One report of a node in the default layout: the file's name when
        the node is in another file, its letter if it has one, and the
        progress column when the line is full."""
        tr = self.tr
        if self.showfspath:
            fsid = nodeid.split("::", 1)[0]
            if fsid != self.fsid:
                self._new_file(fsid)
        category, letter, markup, _ = status
        tr._add_stats(category, [rep])
        if letter:
            progress = self.progress
            progress.add(nodeid)
            if self.markup:
                self._flush()
                self.tw.write(letter, **markup)
            else:
                self.buf.append(letter)
            self.width += 1
            if self.show_progress and len(progress) != self.session.testscollected:
                if self.width + len(" [100%]") + 1 >= tr._screen_width:
                    self._flush()
                    color, _ = tr._get_main_color()
                    self.tw.write(tr._get_progress_information_message() + "\n", **{color: True})
                    self.width = 0
        tr._tests_ran = True
        if self.lastfailed is not None:
            self.lastfailed.pop(nodeid, None)
        self.last = (nodeid, location)

    def before_hooks(self) -> None:
        """A node is about to go through the hooks: the terminal reporter
        sees what was written so far and the file it is in."""
        self._flush()
        self._set_current()

    def after_hooks(self) -> None:
        self.fsid = None
        self.width = self.tr._width_of_current_line
        self.changed = False

    def _set_current(self) -> None:
        if self.changed and self.fsid is not None:
            self.tr.currentfspath = self.config.rootpath / self.fsid
            self.changed = False

    def close(self) -> None:
        self._flush()
        self._set_current()
        self.tr.flush()
        if self.last is not None:
            # The logging plugin's per-node state ends as its hooks leave it.
            nodeid, location = self.last
            kw = {"nodeid": nodeid, "location": location}
            for f, names in self.logging_calls:
                f(*[kw.get(n) for n in names])


class ReportMaker:
    """Makes the TestReports of replayed nodes. pytest's constructor copies
    its arguments into the report's attributes; where this process's
    TestReport is pytest's own class with that constructor, a report is made
    by filling its attribute dictionary directly (the same attributes, values
    and order: checked once against the constructor before use), which costs
    a fraction of the call. Anything else (a constructor that does more, such
    as pytest 9's parsed node IDs) goes through the constructor."""

    def __init__(self, cls: Any) -> None:
        self.cls = cls
        self.direct = self._direct_matches(cls)

    @staticmethod
    def _fill(cls: Any, nodeid: str, location: Any, keywords: Any, outcome: str, longrepr: Any, when: str,
              sections: List[Tuple[str, str]], duration: float, start: float, extra: Optional[Dict[str, Any]],
              props: List[Tuple[str, Any]]) -> Any:
        rep = cls.__new__(cls)
        d = rep.__dict__
        d["nodeid"] = nodeid
        d["location"] = location
        d["keywords"] = keywords
        d["outcome"] = outcome
        d["longrepr"] = longrepr
        d["when"] = when
        d["user_properties"] = props
        d["sections"] = sections
        d["duration"] = duration
        d["start"] = start
        d["stop"] = start + duration
        d["rpytest_cached"] = True
        if extra:
            d.update(extra)
        return rep

    def _construct(self, nodeid: str, location: Any, keywords: Any, outcome: str, longrepr: Any, when: str,
                   sections: List[Tuple[str, str]], duration: float, start: float, extra: Optional[Dict[str, Any]],
                   props: List[Tuple[str, Any]]) -> Any:
        return self.cls(
            nodeid, location, keywords, outcome, longrepr, when,
            sections=sections, duration=duration, start=start, stop=start + duration,
            user_properties=props, rpytest_cached=True, **(extra or {}),
        )

    def _direct_matches(self, cls: Any) -> bool:
        init = getattr(cls, "__init__", None)
        if getattr(init, "__module__", None) != "_pytest.reports" or getattr(init, "__qualname__", None) != "TestReport.__init__":
            return False
        if type(cls).__new__ is not type.__new__ or cls.__new__ is not object.__new__:
            return False
        args = ("a.py::t[1]", ("a.py", 2, "t[1]"), {"t": 1, "t[1]": 1}, "skipped", ("a.py", 3, "r"), "call",
                [("Captured stdout call", "x")], 0.25, 10.0, {"wasxfail": "w"}, [("k", 1), CACHED_PROPERTY])
        try:
            made = self._construct(*args)
            filled = self._fill(cls, *args)
        except Exception:
            return False
        return type(made) is type(filled) and list(made.__dict__.items()) == list(filled.__dict__.items())

    def __call__(self, nodeid: str, location: Any, keywords: Any, outcome: str, longrepr: Any, when: str,
                 sections: List[Tuple[str, str]], duration: float, start: float, extra: Optional[Dict[str, Any]] = None,
                 props: Optional[List[Tuple[str, Any]]] = None) -> Any:
        # JUnit XML marks the test case as served from the cache, after the test's own properties.
        if props is None:
            props = [CACHED_PROPERTY]
        if self.direct:
            return self._fill(self.cls, nodeid, location, keywords, outcome, longrepr, when, sections, duration, start, extra, props)
        return self._construct(nodeid, location, keywords, outcome, longrepr, when, sections, duration, start, extra, props)
