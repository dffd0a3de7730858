"""Bytecode that may not be its source's: compiled again, never trusted.

CPython's `.pyc` files (and pytest's rewritten test modules) are checked
against their source by the mtime in whole seconds and the size. A source
edited again within the second it was compiled in, keeping its size, or
edited and given back its mtime (`touch -d`, `cp -p`, `rsync -t`,
`os.utime`), keeps its old `.pyc`: the interpreter runs the old code, under
stock pytest too. rpytest keys the source's bytes, so a result of the old
code would be stored under the new source's key, and replayed as a pass
after the `.pyc` is gone (a fresh clone, another machine) where the new
code fails.

A session therefore does not load a `.pyc` of a project file whose source's
inode changed (its ctime) later than two seconds before the `.pyc` was
written: the source may have changed after it was compiled. Such a module
is compiled from its source, as without the `.pyc`, and its `.pyc` is
written again (when bytecode is written at all), so the next session loads
it. Files under the interpreter's prefixes and site directories are left to
CPython: they are installed, not edited between runs, and a `.pyc` written
by an installer within two seconds of its source would be compiled again on
every session where the directory is read-only.

This is the one place where a session deliberately does not do what stock
pytest does: stock pytest runs the stale code."""

from __future__ import annotations

import os
import site
import sys
from typing import Any, Callable, Optional, Tuple

# A .pyc written less than this long after its source's last change may have
# been compiled from an earlier version of it (the source read, then changed,
# then the .pyc written; or an edit in the same second).
_MARGIN_NS = 2_000_000_000

_installed = False


def _prefixes() -> Tuple[str, ...]:
    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    try:
        dirs.update(site.getsitepackages())
        dirs.add(site.getusersitepackages())
    except Exception:  # a stripped site module
        pass
    return tuple(os.path.join(os.path.realpath(d), "") for d in dirs if d)


def untrusted(source: Any, pyc: Any, root: Tuple[str, ...], installed: Tuple[str, ...]) -> bool:
    """Whether the `.pyc` at `pyc` may hold an earlier version of `source`."""
    path = os.fspath(source)
    if path.startswith(installed) or "site-packages" in path or "dist-packages" in path:
        return False
    if not path.startswith(root):
        # Reached through a symbolic link (a sys.path entry under a linked
        # directory): the project's file all the same.
        path = os.path.realpath(path)
        if not path.startswith(root) or path.startswith(installed):
            return False
    try:
        changed = os.stat(path).st_ctime_ns
        written = os.stat(os.fspath(pyc)).st_mtime_ns
    except (OSError, ValueError):
        return False
    return changed + _MARGIN_NS > written


def install(rootdir: Optional[str]) -> None:
    """Guards the session's imports of the project's modules (plain imports
    and pytest's rewritten ones) against untrusted bytecode. Once per process."""
    global _installed
    if _installed or not rootdir:
        return
    root = tuple({os.path.join(os.path.realpath(rootdir), ""), os.path.join(os.path.abspath(rootdir), "")})
    # A venv inside the project is installed code, the project around it is not.
    installed = tuple(p for p in _prefixes() if not any(r.startswith(p) for r in root))
    _installed = True
    _guard_plain_imports(root, installed)
    _guard_rewritten_imports(root, installed)


def _guard_plain_imports(root: Tuple[str, ...], installed: Tuple[str, ...]) -> None:
    import importlib.machinery
    import importlib.util

    loader = importlib.machinery.SourceFileLoader
    original: Callable[[Any, str], Any] = loader.path_stats
    cache_from_source = importlib.util.cache_from_source

    def path_stats(self: Any, path: str) -> Any:
        st = original(self, path)
        try:
            pyc = cache_from_source(path)
        except (NotImplementedError, ValueError):
            return st
        if untrusted(path, pyc, root, installed):
            # A size no .pyc header holds: the loader compiles the source and
            # writes a .pyc of the real size.
            st = dict(st)
            st["size"] = -1
        return st

    loader.path_stats = path_stats  # type: ignore[method-assign]


def _guard_rewritten_imports(root: Tuple[str, ...], installed: Tuple[str, ...]) -> None:
    try:
        from _pytest.assertion import rewrite
    except ImportError:
        return
    original = getattr(rewrite, "_read_pyc", None)
    if original is None:
        return

    def _read_pyc(source: Any, pyc: Any, *args: Any, **kwargs: Any) -> Any:
        if untrusted(source, pyc, root, installed):
            return None  # rewritten and written again, as without the .pyc
        return original(source, pyc, *args, **kwargs)

    rewrite._read_pyc = _read_pyc  # type: ignore[attr-defined]
