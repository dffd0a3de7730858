"""The warm set: third-party top-level modules a session imported, for the daemon to preload."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Iterable, List, Optional, Set

MAX_WARM = 400

# Already imported by the daemon, or must be imported by the session itself.
ALWAYS_EXCLUDED = frozenset({"__main__", "rpytest", "pytest", "_pytest", "pluggy", "py", "iniconfig", "conftest"})
# coverage.py (pytest-cov): its C tracer does not survive being hidden from a
# session and handed back (`coverage.tracer` loses `CTracer`), so the
# session imports it itself.
NEVER_WARM = frozenset({"coverage"})


def _site_dirs() -> List[str]:
    import site
    import sysconfig

    dirs: Set[str] = set()
    try:
        dirs.update(site.getsitepackages())
    except Exception:
        pass
    try:
        dirs.add(site.getusersitepackages())
    except Exception:
        pass
    for key in ("purelib", "platlib"):
        try:
            dirs.add(sysconfig.get_paths()[key])
        except Exception:
            pass
    return sorted(os.path.normpath(d).rstrip(os.sep) + os.sep for d in dirs if d)


def candidates(rootdir: str) -> List[str]:
    """Top-level names of imported third-party modules that are safe to preload (cheap part)."""
    sites = tuple(_site_dirs())
    roots = tuple({os.path.normpath(rootdir).rstrip(os.sep) + os.sep, os.path.realpath(rootdir).rstrip(os.sep) + os.sep})
    rewritten: Set[str] = set()
    tops: Set[str] = set()
    for name, mod in list(sys.modules.items()):
        if mod is None:
            continue
        top = name.partition(".")[0]
        loader = getattr(mod, "__loader__", None)
        if type(loader).__name__ == "AssertionRewritingHook":
            rewritten.add(top)
            continue
        f = getattr(mod, "__file__", None)
        if not isinstance(f, str):
            continue
        f = os.path.normpath(f)
        in_site = f.startswith(sites) or (os.sep + "site-packages" + os.sep) in f
        if not in_site:
            continue
        if f.startswith(roots) and not (os.sep + "site-packages" + os.sep) in f:
            continue
        tops.add(top)
    return sorted(t for t in tops - rewritten - ALWAYS_EXCLUDED - NEVER_WARM if t.isidentifier())


def pytest_plugin_tops() -> Set[str]:
    """Top-level modules of distributions with a pytest11 entry point (pytest rewrites them)."""
    from importlib import metadata

    out: Set[str] = set()
    for dist in metadata.distributions():
        try:
            eps = [ep for ep in dist.entry_points if ep.group == "pytest11"]
        except Exception:
            continue
        if not eps:
            continue
        for ep in eps:
            out.add(ep.value.split(":")[0].split(".")[0].strip())
        for f in dist.files or ():
            first = str(f).split("/")[0]
            if first.endswith(".py"):
                first = first[:-3]
            if first.isidentifier():
                out.add(first)
    return out


def cold_path(warm_file: str) -> str:
    """Where the modules the daemon refused to preload are remembered, beside the warm file."""
    base = warm_file[: -len(".json")] if warm_file.endswith(".json") else warm_file
    return base + ".cold.json"


def read_names(path: Optional[str]) -> List[str]:
    if not path:
        return []
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return []
    except Exception:  # an unreadable list is an empty one: it only saves time
        return []
    return [n for n in data if isinstance(n, str) and n not in NEVER_WARM] if isinstance(data, list) else []


def update_warm_file(path: str, rootdir: str) -> None:
    """Merge this session's candidates into the warm file (temp file + rename)."""
    try:
        with open(path, encoding="utf-8") as f:
            existing = [n for n in json.load(f) if isinstance(n, str)]
    except Exception:
        existing = []
    # Modules the daemon refused to preload (they read the environment at
    # import, warned, started a thread) stay with the sessions.
    cold = set(read_names(cold_path(path)))
    new = [n for n in candidates(rootdir) if n not in existing and n not in cold]
    if not new:
        return
    plugin_tops = pytest_plugin_tops()
    merged = [n for n in existing if n not in plugin_tops] + [n for n in new if n not in plugin_tops]
    merged = merged[:MAX_WARM]
    if merged == existing:
        return
    _atomic_write(path, merged)


def _atomic_write(path: str, names: Iterable[str]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".warm-", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(list(names), f)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
