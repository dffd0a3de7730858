"""Modules the daemon holds that a fresh `pytest` would not have imported yet.

A session forked from the daemon inherits its `sys.modules`: pytest's own
modules (a fresh `pytest` has those too before it collects) and the warm set
(third-party modules, plus the standard-library modules they pulled in). A
fresh `pytest` imports the latter only when the project does, and then the
import searches `sys.path` as it is at that moment, where a first-party
module of the same name (`code.py`, `six.py`) may come first.

So before pytest starts, the session hides every module outside the
baseline (what the daemon had after importing pytest) in a stash, and a
meta-path finder hands a stashed module back on the session's first import
of it only when the import system would find the very same file there;
otherwise the stash is dropped and the import proceeds as in a fresh
process. Warmth is kept for what the project really imports, and a
shadowing first-party module wins exactly when it would under `pytest`.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Dict, FrozenSet, List, Optional

# Top-level modules a fresh `pytest` has imported when it starts collecting:
# set by the daemon after it imported pytest (inherited by forked sessions).
# None outside a daemon: a fresh process needs no hiding.
BASELINE: Optional[FrozenSet[str]] = None

# The daemon imports these for itself; stock `pytest` does not (measured
# against `pytest` 8.4: sys.modules at collection time).
NOT_BASELINE = frozenset({"ctypes", "_ctypes", "runpy"})

# Never hidden: rpytest runs the session; `__main__` is the session's own.
NEVER_HIDDEN = frozenset({"rpytest", "__main__"})


def set_baseline() -> None:
    """Called by the daemon once pytest is imported: what is loaded now is the baseline."""
    global BASELINE
    BASELINE = frozenset(n.partition(".")[0] for n in list(sys.modules)) - NOT_BASELINE


class _Restore:
    """Loader that returns a stashed module object as it is (no re-execution)."""

    def __init__(self, finder: "WarmFinder", top: str, module: ModuleType) -> None:
        self.finder = finder
        self.top = top
        self.module = module
        self.original_spec = getattr(module, "__spec__", None)

    def create_module(self, spec):  # noqa: ANN001 - importlib protocol
        return self.module

    def exec_module(self, module: ModuleType) -> None:
        # module_from_spec replaced __spec__ with ours: give the module back its own.
        if self.original_spec is not None:
            module.__spec__ = self.original_spec
        self.finder.restore(self.top)


class WarmFinder:
    """Meta-path finder holding the hidden modules (first on `sys.meta_path`)."""

    def __init__(self, stash: Dict[str, ModuleType]) -> None:
        self.stash = stash

    def find_spec(self, name: str, path=None, target=None):  # noqa: ANN001 - importlib protocol
        module = self.stash.get(name)
        if module is None:
            return None
        top = name.partition(".")[0]
        if self._found_elsewhere(name, path, module):
            self.drop(top)
            return None
        from importlib.machinery import ModuleSpec

        old = getattr(module, "__spec__", None)
        spec = ModuleSpec(
            name,
            _Restore(self, top, module),
            origin=getattr(old, "origin", None),
            is_package=hasattr(module, "__path__"),
        )
        if old is not None:
            spec.submodule_search_locations = old.submodule_search_locations
            spec.has_location = old.has_location
            spec.cached = old.cached
        return spec

    def _found_elsewhere(self, name: str, path, module: ModuleType) -> bool:  # noqa: ANN001
        """Would the rest of the import system load another file for `name`?"""
        old = getattr(module, "__spec__", None)
        if old is None:
            return False
        me = sys.meta_path.index(self) if self in sys.meta_path else -1
        for finder in sys.meta_path[me + 1 :]:
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            try:
                spec = find(name, path, None)
            except Exception:
                continue
            if spec is not None:
                return spec.origin != old.origin
        return True  # nothing finds it any more (the file went away)

    def restore(self, top: str) -> None:
        """Put back `top` and its submodules, as the daemon had them."""
        for name in [n for n in self.stash if n == top or n.startswith(top + ".")]:
            sys.modules.setdefault(name, self.stash.pop(name))
        self._done_if_empty()

    def drop(self, top: str) -> None:
        for name in [n for n in self.stash if n == top or n.startswith(top + ".")]:
            del self.stash[name]
        self._done_if_empty()

    def _done_if_empty(self) -> None:
        if not self.stash:
            try:
                sys.meta_path.remove(self)
            except ValueError:
                pass


def hide_non_baseline() -> List[str]:
    """Hide every module outside the baseline; returns the hidden top-level names."""
    if BASELINE is None:
        return []
    builtin = set(sys.builtin_module_names)
    stash: Dict[str, ModuleType] = {}
    tops = set()
    for name, module in list(sys.modules.items()):
        top = name.partition(".")[0]
        if top in BASELINE or top in NEVER_HIDDEN or top in builtin or module is None:
            continue
        stash[name] = module
        tops.add(top)
    if not stash:
        return []
    for name in stash:
        del sys.modules[name]
    sys.meta_path.insert(0, WarmFinder(stash))
    return sorted(tops)
