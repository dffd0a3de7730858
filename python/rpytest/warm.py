"""The warm set: third-party top-level modules a session imported, for the daemon to preload."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Dict, Iterable, List, Optional, Set, Tuple

MAX_WARM = 400

# Already imported by the daemon, or must be imported by the session itself.
ALWAYS_EXCLUDED = frozenset({"__main__", "rpytest", "pytest", "_pytest", "pluggy", "py", "iniconfig", "conftest"})
# coverage.py (pytest-cov): its C tracer does not survive being hidden from a
# session and handed back (`coverage.tracer` loses `CTracer`), so the
# session imports it itself.
NEVER_WARM = frozenset({"coverage"})


# The site directories, computed once in the daemon (`prime`) for every
# session it forks; `sysconfig` takes ~6 ms to answer in a fresh child.
_SITE_DIRS: Optional[List[str]] = None


def prime(rootdir: Optional[str] = None) -> None:
    """In the daemon, before any session is forked: compute the site
    directories once, and how each module already loaded counts for the
    warm set of `rootdir`. What that imports (`sysconfig` and its data module) is
    dropped again, so sessions see the modules they saw before. The answer
    is the same in every session: `site` fixed the user site directory when
    the interpreter started, and the rest comes from `sys.prefix`."""
    global _SITE_DIRS, _KNOWN_ROOT
    before = set(sys.modules)
    _SITE_DIRS = _compute_site_dirs()
    for name in set(sys.modules) - before:
        sys.modules.pop(name, None)
    if rootdir is not None:
        sites, roots = tuple(_SITE_DIRS), _roots(rootdir)
        _KNOWN.clear()
        for name, mod in list(sys.modules.items()):
            if mod is not None:
                _KNOWN[name] = (mod, _classify(mod, sites, roots))
        _KNOWN_ROOT = rootdir


def _site_dirs() -> List[str]:
    if _SITE_DIRS is not None:
        return list(_SITE_DIRS)
    return _compute_site_dirs()


def _compute_site_dirs() -> List[str]:
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


def _classify(mod: object, sites: Tuple[str, ...], roots: Tuple[str, ...]) -> Optional[bool]:
    """True: rewritten by pytest; False: a third-party module; None: neither."""
    loader = getattr(mod, "__loader__", None)
    if type(loader).__name__ == "AssertionRewritingHook":
        return True
    f = getattr(mod, "__file__", None)
    if not isinstance(f, str):
        return None
    f = os.path.normpath(f)
    in_site = f.startswith(sites) or (os.sep + "site-packages" + os.sep) in f
    if not in_site:
        return None
    if f.startswith(roots) and not (os.sep + "site-packages" + os.sep) in f:
        return None
    return False


# What `prime` found for the daemon's own modules (name -> (module, class)),
# for the daemon's rootdir: a session classifies only what it imported itself.
_KNOWN: Dict[str, Tuple[object, Optional[bool]]] = {}
_KNOWN_ROOT: Optional[str] = None


def _roots(rootdir: str) -> Tuple[str, ...]:
    return tuple({os.path.normpath(rootdir).rstrip(os.sep) + os.sep, os.path.realpath(rootdir).rstrip(os.sep) + os.sep})


def candidates(rootdir: str) -> List[str]:
    """Top-level names of imported third-party modules that are safe to preload (cheap part)."""
    sites = tuple(_site_dirs())
    roots = _roots(rootdir)
    known = _KNOWN if rootdir == _KNOWN_ROOT else {}
    rewritten: Set[str] = set()
    tops: Set[str] = set()
    for name, mod in list(sys.modules.items()):
        if mod is None:
            continue
        seen = known.get(name)
        kind = seen[1] if seen is not None and seen[0] is mod else _classify(mod, sites, roots)
        if kind is None:
            continue
        (rewritten if kind else tops).add(name.partition(".")[0])
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
