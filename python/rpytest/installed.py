"""Which installed code the session ran: every imported module file that is
neither first-party nor part of the standard library.

The CLI keys these files by content (src/inputs/installed.rs): a RECORD
digest says what pip installed, not what is on disk now, and it says nothing
about editable installs (source outside site-packages), modules a `.pth` file
imports, or `sitecustomize`. Names are machine-independent (the module's
dotted name and the file's basename); the path is for hashing on this
machine only.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from typing import Any, List, Tuple

from rpytest import protocol as msgs


def _dirs(*keys: str) -> Tuple[str, ...]:
    out = set()
    paths = sysconfig.get_paths()
    for key in keys:
        p = paths.get(key)
        if p:
            for q in (os.path.normpath(p), os.path.realpath(p)):
                out.add(q.rstrip(os.sep) + os.sep)
    return tuple(sorted(out))


def _under(path: str, prefixes: Tuple[str, ...]) -> bool:
    return path.startswith(prefixes)


def imported_files(rootdir: str) -> List[Tuple[str, str]]:
    """`(portable name, absolute path)` of every loaded module file outside the project
    and the standard library (site-packages inside the project count as installed)."""
    from rpytest.warm import _site_dirs

    sites = tuple(_site_dirs())
    stdlib = _dirs("stdlib", "platstdlib")
    roots = tuple({os.path.normpath(rootdir).rstrip(os.sep) + os.sep, os.path.realpath(rootdir).rstrip(os.sep) + os.sep})
    seen = set()
    out: List[Tuple[str, str]] = []
    own = _own_package_dir()
    for name, module in list(sys.modules.items()):
        f = getattr(module, "__file__", None) if module is not None else None
        if not isinstance(f, str) or not os.path.isabs(f) or name == "__main__":
            continue
        if own is not None and (name == "rpytest" or name.startswith("rpytest.")):
            continue  # the tool itself: keyed whole, below
        f = os.path.normpath(f)
        installed = _under(f, sites) or (os.sep + "site-packages" + os.sep) in f
        if not installed and (_under(f, roots) or _under(f, stdlib)):
            continue
        if f in seen:
            continue
        seen.add(f)
        out.append(("%s:%s" % (name, os.path.basename(f)), f))
    if own is not None:
        out.extend(_own_package_files(own))
    out.sort()
    return out


def _own_package_dir() -> "str | None":
    """rpytest's own package directory when it is outside the project (pip,
    or a `.pth` to a checkout); None when the project is rpytest itself."""
    import rpytest

    f = getattr(rpytest, "__file__", None)
    return os.path.dirname(os.path.abspath(f)) if isinstance(f, str) else None


def _own_package_files(own: str) -> List[Tuple[str, str]]:
    """Every module of rpytest's own package, whichever of them this session
    imported: a run under `-n` imports modules a serial run does not, and the
    set of keyed files must not change with that (it would re-run every test
    once). An edit of any of them still changes the key."""
    out = []
    try:
        names = sorted(os.listdir(own))
    except OSError:
        return out
    for n in names:
        if n.endswith(".py"):
            mod = "rpytest" if n == "__init__.py" else "rpytest." + n[:-3]
            out.append(("%s:%s" % (mod, n), os.path.join(own, n)))
    return out


class InstalledReport:
    """pytest plugin: sends the `installed` event when the session finishes, before the
    rpytest plugin's `finish` (its hook is trylast), after the tests imported what they use."""

    def __init__(self, writer: Any, rootdir: str) -> None:
        self.writer = writer
        self.rootdir = rootdir

    def pytest_sessionfinish(self) -> None:
        try:
            files = imported_files(self.rootdir)
        except Exception:  # never fail a session over it: the CLI then keys what it knew
            return
        self.writer.emit(msgs.installed([list(f) for f in files]))
