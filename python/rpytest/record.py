"""Records what a session actually used: first-party modules loaded (and import edges),
files opened for reading, directory listings, environment variables read, pytest
options read, and stdin. Installed only in session processes.

The recorder observes without being seen: it never wraps a function the recorded code
calls, so no frame of rpytest's sits on the stack while that code runs (warnings'
`stacklevel`, tracebacks and `inspect` see what they see under stock pytest). It
listens to audit events (`sys.addaudithook`): `open` (which also sees every module the
import system loads, from source or from its `.pyc`), `import`, directory listings,
subprocesses, `sqlite3.connect`, `builtins.input`; and to events of its own raised by
one-line prologues compiled into `os._Environ`'s methods and `importlib.import_module`
(same file name, same line numbers: their frames are the stock ones).

Attribution: everything goes to the "active" test file (set by the plugin around a
file's collection and its tests' setup/call), or to None (global: enters every file's
key). Reads and env lookups made while a module body other than the active test file's
runs under an import are global: the module caches their effect for every later
importer (e.g. `SETTINGS = json.load(open("settings.json"))` at module level).

Whole-environment reads (iteration of `os.environ`, `os.environ.copy()`, `len`, a
subprocess that inherits the environment) are recorded as the env name `*`.
"""

from __future__ import annotations

import ast
import copy
import functools
import importlib
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from rpytest import native
from rpytest import protocol as msgs

# Path components that never hold first-party inputs: version control internals
# of other systems' caches and tools' own state. (`.git` is an input: a test that
# reads `.git/HEAD` depends on the checked-out branch.)
EXCLUDED_PARTS = frozenset(
    {".hg", ".svn", ".rpytest", ".pytest_cache", "__pycache__", ".mypy_cache", ".ruff_cache"}
)
# Directories a walk for a directory descriptor does not enter: version
# control's and tools' own (a test that fsyncs the root reads none of them).
_UNWALKED = EXCLUDED_PARTS | {".git", ".tox", ".nox"}

# Variables left out of the whole-environment digest (`env:*`): a test that
# iterates os.environ depends on every variable, but these change from shell to
# shell and terminal to terminal. A variable read *by name* is always an input,
# whatever its name. Mirrored by the Rust side: change both together.
COSMETIC_ENV = frozenset(
    {
        # pytest's terminal output and its own variables
        "COLUMNS", "LINES", "TERM", "NO_COLOR", "FORCE_COLOR", "PY_COLORS", "PYTEST_THEME", "PYTEST_THEME_MODE",
        "PYTEST_CURRENT_TEST", "PYTEST_VERSION", "CI", "BUILD_NUMBER",
        # terminal emulators
        "COLORTERM", "COLORFGBG", "CLICOLOR", "CLICOLOR_FORCE", "LS_COLORS", "LSCOLORS", "TERM_PROGRAM",
        "TERM_PROGRAM_VERSION", "TERM_SESSION_ID", "LC_TERMINAL", "LC_TERMINAL_VERSION", "VTE_VERSION",
        "WINDOWID", "TMUX", "TMUX_PANE", "STY", "WINDOW", "WT_SESSION", "WT_PROFILE_ID", "INSIDE_EMACS",
        "TERMINAL_EMULATOR",
        # the shell's own state
        "PWD", "OLDPWD", "SHLVL", "_", "PS1", "PS2", "PS4", "PROMPT_COMMAND", "HISTFILE", "HISTSIZE",
        "HISTFILESIZE", "HISTCONTROL", "LESSOPEN", "LESSCLOSE", "MAIL", "MOTD_SHOWN",
        # the login/desktop session
        "DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY", "DBUS_SESSION_BUS_ADDRESS", "DESKTOP_SESSION",
        "SESSION_MANAGER", "GPG_AGENT_INFO", "GPG_TTY", "XDG_SEAT", "XDG_VTNR", "XDG_CURRENT_DESKTOP",
        "SECURITYSESSIONID", "XPC_SERVICE_NAME", "XPC_FLAGS", "__CFBundleIdentifier",
    }
)
COSMETIC_ENV_PREFIXES = (
    "SSH_", "XDG_SESSION_", "GNOME_TERMINAL_", "KONSOLE_", "ITERM_", "KITTY_", "ALACRITTY_", "WEZTERM_", "VSCODE_",
    "PYTEST_XDIST_",  # which worker runs a test is scheduling, not input
    "HYPERFINE_",  # hyperfine adds a variable of random length to every run it times
)


def is_cosmetic_env(name: str) -> bool:
    """Whether `name` is left out of the whole-environment digest (never of a read by name)."""
    return name in COSMETIC_ENV or name.startswith(COSMETIC_ENV_PREFIXES)


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)

_STDLIB = os.path.dirname(os.__file__) + os.sep
_STDLIB_SITE = (_STDLIB + "site-packages" + os.sep, _STDLIB + "dist-packages" + os.sep)
_IMPORTLIB_DIR = os.path.dirname(importlib.__file__ or "") + os.sep

_PYTEST_DIR = os.path.dirname(importlib.import_module("_pytest").__file__ or "")
_PLUGGY_DIR = os.path.dirname(importlib.import_module("pluggy").__file__ or "")
# Captured once: a test may delete `sys._getframe` (monkeypatch.delattr, to test a
# fallback), and the recorder keeps walking frames while it is gone.
_getframe = sys._getframe
_HERE = _getframe(0).f_code.co_filename
# This module's frames are told apart by their globals: reading a frame's
# `f_code` raises an audit event of its own (object.__getattr__), which every
# hop of a stack walk would send back through the audit hook.
_GLOBALS = globals()
_PLUGGY_PREFIX = _PLUGGY_DIR + os.sep
_PYTEST_PREFIX = _PYTEST_DIR + os.sep
_RPYTEST_DIR = os.path.dirname(_HERE) + os.sep
_PREFORK_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "prefork.py")

# Code whose directory listings, environment reads and subprocesses are
# machinery, not a test's input.
def _package_dir(name: str) -> str:
    try:
        return os.path.dirname(importlib.import_module(name).__file__ or "") + os.sep
    except Exception:
        return "<no %s>" % name


# pytest's own ini parser reads the ini file for pytest.
_MACHINERY = (
    "<frozen importlib", "<frozen zipimport", _PYTEST_DIR + os.sep, _PLUGGY_DIR + os.sep, _RPYTEST_DIR,
    _package_dir("iniconfig"),
)

# pytest code that runs on a test's behalf: pytester starts subprocesses with a copy
# of the environment.
_PYTESTER = os.path.join(_PYTEST_DIR, "pytester.py")
_FAST_MACHINERY = (_PYTEST_PREFIX, _PLUGGY_PREFIX)

# unittest.mock.patch.dict copies the dict it patches (and restores it): not a read.
_MOCK = os.path.join(os.path.dirname(os.__file__), "unittest", "mock.py")

# Frames that execute a module body on behalf of an import: the import system's,
# and pytest's assertion rewriter (test modules, conftests, registered modules).
_REWRITE = os.path.join(_PYTEST_DIR, "assertion", "rewrite.py")


def _is_import_frame(filename: str) -> bool:
    return filename.startswith("<frozen importlib") or filename == _REWRITE


def _is_library_frame(fn: str) -> bool:
    """Code of the standard library (glob, pathlib, os.walk, subprocess, "<frozen
    os>"...), which acts for its caller: the first frame beyond it decides.
    So does the pre-forked child's `open` wrapper: a module imported while a
    session was being prepared keeps it as its `open` (tokenize, and so
    linecache, binds `open` at import), and a read through it is its caller's."""
    v = _LIBRARY_FILES.get(fn)
    if v is None:
        v = _LIBRARY_FILES[fn] = (
            (fn.startswith(_STDLIB) and not fn.startswith(_STDLIB_SITE))
            or (fn.startswith("<frozen ") and not fn.startswith(_MACHINERY))
            or fn == _PREFORK_FILE
        )
    return v


_LIBRARY_FILES: Dict[str, bool] = {}

# The standard library's modules whose functions most events pass through
# (Path.stat, os.path.exists, os.environ): a frame with their globals is
# library code, known without reading its `f_code` (an audit event of its
# own). They were imported long before any session, so none of their
# frames is a module body.
import genericpath as _genericpath  # noqa: E402
import pathlib as _pathlib  # noqa: E402
import posixpath as _posixpath  # noqa: E402

_PATHLIB_GLOBALS = vars(_pathlib)
_OS_GLOBALS = vars(os)
_GENERICPATH_GLOBALS = vars(_genericpath)
_POSIXPATH_GLOBALS = vars(_posixpath)


def _is_machinery_module(g: Dict[str, Any]) -> bool:
    """Whether a frame with globals `g` runs pytest's or pluggy's code
    (machinery, pytester aside), known from its module without reading
    the frame's `f_code`."""
    f = g.get("__file__")
    return type(f) is str and f.startswith(_FAST_MACHINERY) and f != _PYTESTER


def _importer_frame() -> Any:
    """The frame that asked for the module being loaded: the first one outside
    this module, the import system and pytest's import helpers."""
    frame: Any = _getframe(2)
    while frame is not None:
        if frame.f_globals is not _GLOBALS:
            fn = frame.f_code.co_filename
            if not (fn.startswith("<frozen importlib") or fn.startswith(_IMPORTLIB_DIR)):
                return frame
        frame = frame.f_back
    return None


def _first_outside_frame(skip: Any = None) -> Any:
    """The first frame outside this module and the standard library (and
    outside code object `skip`): the code whose call raised the event."""
    frame: Any = _getframe(1)
    while frame is not None:
        if frame.f_globals is _GLOBALS:
            frame = frame.f_back
            continue
        code = frame.f_code
        if code is skip or _is_library_frame(code.co_filename):
            frame = frame.f_back
            continue
        return frame
    return None


def _find_spec_caller_is_machinery() -> bool:
    """Whether importlib.util.find_spec (whose frame raised the event) was called
    by machinery; its own frame, importlib's, does not decide."""
    import importlib.util

    frame = _first_outside_frame(skip=getattr(importlib.util.find_spec, "__code__", None))
    if frame is None:
        return False
    fn = frame.f_code.co_filename
    return fn.startswith(_MACHINERY) and fn != _PYTESTER


def _requested_by_rpytest() -> bool:
    """Whether the import being requested comes from rpytest's own package
    (through the standard library and the import system's frames). pytest's
    requests stay inputs: `pytest.importorskip("mod")` asks on a test's behalf."""
    frame: Any = _getframe(1)
    while frame is not None:
        fn = frame.f_code.co_filename
        if frame.f_globals is _GLOBALS or _is_library_frame(fn) or fn.startswith("<frozen importlib"):
            frame = frame.f_back
            continue
        return fn.startswith(_RPYTEST_DIR)
    return False


def source_of_pyc(path: str) -> Optional[str]:
    """`pkg/__pycache__/mod.cpython-311[-pytest-8.4.2][.opt-1].pyc` -> `pkg/mod.py`
    (what the cached bytecode was compiled from), else None."""
    head, name = os.path.split(path)
    if not name.endswith(".pyc"):
        return None
    prefix = getattr(sys, "pycache_prefix", None)
    if prefix:
        # PYTHONPYCACHEPREFIX: <prefix>/<source dir>/mod.cpython-311.pyc
        root = os.path.normpath(prefix).rstrip(os.sep) + os.sep
        if head.startswith(root) or head + os.sep == root:
            return os.path.join(os.sep + head[len(root):], name.split(".", 1)[0] + ".py")
    parent, cache = os.path.split(head)
    if cache != "__pycache__":
        return None
    return os.path.join(parent, name.split(".", 1)[0] + ".py")


Key = Optional[str]


class Recorder:
    def __init__(self, rootdir: str) -> None:
        roots = {os.path.normpath(rootdir), os.path.realpath(rootdir)}
        self.prefixes = tuple(sorted(r.rstrip(os.sep) + os.sep for r in roots))
        self.enabled = False
        self.active: Key = None
        self.imports: Dict[Key, Set[str]] = {None: set()}
        self.reads: Dict[Key, Set[str]] = {None: set()}
        self.env: Dict[Key, Set[str]] = {None: set()}
        # Variables each key set (os.environ[...] = ..., monkeypatch.setenv): its
        # later reads of them see its own value, not the caller's.
        self.env_set: Dict[Key, Set[str]] = {None: set(_SESSION_SET_ENV)}
        # Project code read PYTEST_XDIST_WORKER (-n: forks would share gw0's value).
        self.worker_id_read_by_project = False
        self.lists: Dict[Key, Set[str]] = {None: set()}
        # Paths each key wrote: a later read by the same key is of its own output.
        self.wrote: Dict[Key, Set[str]] = {None: set()}
        # Module names each key asked for that may not exist (checked at the end:
        # a failed import makes the paths it would have loaded inputs).
        self.requested: Dict[Key, Set[str]] = {None: set()}
        # Paths each key checked for existence (directories included).
        self.probes: Dict[Key, Set[str]] = {None: set()}
        # Keys that started a subprocess (which can read anything unseen).
        self.spawns: Set[Key] = set()
        # Keys whose tests read stdin or pytest's output options.
        self.volatile: Set[Key] = set()
        self.options: Set[Key] = set()
        self.written: Set[str] = set()
        # Python files written outside the project (tmp_path): a module the
        # session itself wrote is not code from outside.
        self.written_outside: Set[str] = set()
        self.edges: Set[Tuple[str, str]] = set()
        self._written_dirs: Optional[Set[str]] = None
        self._rel: Dict[str, Optional[str]] = {}
        self._venv_tops: Dict[str, bool] = {}
        self._sites: Dict[Tuple[Any, ...], Tuple[bool, Key]] = {}
        self._env_iter_sites: Set[Tuple[int, int]] = set()
        self._shown_env_frames: List[Any] = []
        # (key, directory) pairs whose modules a Python subprocess reaches.
        self._spawn_walked: Set[Tuple[Key, str]] = set()
        self._site_dirs: Optional[List[str]] = None
        excluded = []
        for p in {sys.prefix, sys.exec_prefix, getattr(sys, "base_prefix", sys.prefix)}:
            excluded.append(os.path.normpath(p).rstrip(os.sep) + os.sep)
            excluded.append(os.path.realpath(p).rstrip(os.sep) + os.sep)
        self.excluded_prefixes = tuple(excluded)
        # Code that is neither the project's, nor the interpreter's, nor an
        # installed distribution's (a $PYTHONPATH directory beside the project,
        # an editable install of a sibling checkout) cannot be named in a key:
        # a test that imports it is never cached.
        installed = list(excluded)
        try:
            import site

            for d in [*site.getsitepackages(), site.getusersitepackages()]:
                installed.append(os.path.realpath(d).rstrip(os.sep) + os.sep)
        except Exception:
            pass
        for mod in ("rpytest", "_pytest", "pluggy"):
            m = sys.modules.get(mod)
            f = getattr(m, "__file__", None)
            if f:
                installed.append(os.path.dirname(os.path.realpath(f)) + os.sep)
        self.installed_prefixes = tuple(installed)
        # Code loaded from outside the project and installed packages, per key.
        # What stays in sys.modules is keyed by content (rpytest.installed); a
        # module executed by path and never registered cannot be named: its
        # key is never cached.
        self.outside: Dict[Key, Set[str]] = {}
        self._outside_seen: Dict[str, bool] = {}
        # Reads of files outside the project, named by absolute path.
        self.external: Dict[Key, Set[str]] = {None: set()}
        self._external_seen: Dict[str, bool] = {}
        volatile = ["/proc/", "/sys/", "/dev/", "/run/", "/var/run/", "/var/tmp/", "/tmp/"]
        try:
            import tempfile

            volatile.append(os.path.realpath(tempfile.gettempdir()).rstrip(os.sep) + os.sep)
            volatile.append(os.path.normpath(tempfile.gettempdir()).rstrip(os.sep) + os.sep)
        except Exception:
            pass
        home = os.path.expanduser("~")
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")
        volatile.append(os.path.normpath(cache).rstrip(os.sep) + os.sep)
        self.volatile_prefixes = tuple(volatile)
        # The caller's environment: a variable a key set and later restored
        # (mock.patch.dict's exit) carries the caller's value again.
        self.original_env: Dict[bytes, bytes] = dict(getattr(os.environ, "_data", {}))

    # ---- paths ------------------------------------------------------------

    @staticmethod
    def absolute(path: Any) -> Optional[str]:
        """Normalized absolute path of `path` as the process sees it now (a
        relative path is relative to the current working directory)."""
        try:
            p = os.fsdecode(os.fspath(path))
        except Exception:
            return None
        if not os.path.isabs(p):
            try:
                p = os.path.join(os.getcwd(), p)
            except OSError:
                return None
        return os.path.normpath(p)

    def rel(self, path: Any) -> Optional[str]:
        """Rootdir-relative posix path of a first-party file, else None. Only
        absolute paths are memoized: a relative one means another file after a chdir."""
        if isinstance(path, str) and os.path.isabs(path):
            try:
                return self._rel[path]
            except KeyError:
                result = self._rel[path] = self._rel_abs(os.path.normpath(path))
                return result
        p = self.absolute(path)
        return None if p is None else self._rel_abs(p)

    def _rel_abs(self, p: str) -> Optional[str]:
        if p.startswith(self.excluded_prefixes):
            return None
        for prefix in self.prefixes:
            if p.startswith(prefix):
                rel = p[len(prefix):]
                parts = rel.split(os.sep)
                if EXCLUDED_PARTS.intersection(parts):
                    return None
                if len(parts) > 1 and self._is_venv(prefix + parts[0]):
                    return None
                return "/".join(parts)
        return None

    def _is_venv(self, top: str) -> bool:
        """A real virtualenv at the top of the project (not the running one, which
        excluded_prefixes covers): its files are installed code, not the project's."""
        v = self._venv_tops.get(top)
        if v is None:
            v = self._venv_tops[top] = os.path.isfile(os.path.join(top, "pyvenv.cfg")) and os.path.isdir(
                os.path.join(top, "bin" if os.name != "nt" else "Scripts")
            )
        return v

    # ---- attribution ------------------------------------------------------

    def set_active(self, key: Key) -> Key:
        prev = self.active
        self.active = key
        if key is not None and key not in self.imports:
            for table in (
                self.imports, self.reads, self.env, self.lists, self.wrote, self.requested, self.probes, self.external,
            ):
                table[key] = set()
            self.env_set[key] = set(_SESSION_SET_ENV)
        return prev

    def data_key(self) -> Key:
        """Who a data read (file, env, listing) belongs to: the active test file,
        or None while a module body other than the active file's runs under an
        import (the module keeps what it read for every later importer)."""
        if self.active is None:
            return None
        return self._data_key_from(_getframe(1))

    def _data_key_from(self, frame: Any) -> Key:
        active = self.active
        if active is None:
            return None
        while frame is not None:
            if frame.f_globals is _GLOBALS:
                frame = frame.f_back
                continue
            code = frame.f_code
            if code.co_name == "<module>":
                back = frame.f_back
                if back is not None and _is_import_frame(back.f_code.co_filename):
                    if self.rel(code.co_filename) == active:
                        return active
                    if frame.f_globals.get("__name__") != "__main__":
                        return None
            elif code.co_filename.startswith(_PLUGGY_PREFIX):
                # pytest calling a hook: everything further out is the session's
                # own machinery, never a module body that is being imported.
                return active
            frame = frame.f_back
        return active

    def site(self, resources: bool = False) -> Tuple[bool, Key]:
        """(from machinery, data key) of the event being recorded, in one look at
        the stack. The answer depends on the first caller outside the standard
        library and on the frames further out; it is remembered per call site
        (code, instruction, frame and parent frame identity) so a loop reading
        the same variable does not walk the stack every time. A call site whose
        standard-library callees run a module body is never remembered."""
        frame: Any = _getframe(1)
        while frame is not None and frame.f_globals is _GLOBALS:
            frame = frame.f_back
        top = frame
        simple = True
        while frame is not None:
            g = frame.f_globals
            if g is _PATHLIB_GLOBALS or g is _OS_GLOBALS or g is _GENERICPATH_GLOBALS or g is _POSIXPATH_GLOBALS:
                frame = frame.f_back  # the library's path functions, told apart without reading f_code
                continue
            if _is_machinery_module(g):
                return True, None
            code = frame.f_code
            fn = code.co_filename
            if _is_library_frame(fn) or (
                # A loader reading a package's data for its caller (pkgutil.get_data).
                resources and fn.startswith("<frozen importlib._bootstrap_external")
            ):
                if fn == _MOCK:
                    return True, None
                if code.co_name == "<module>":
                    simple = False
                frame = frame.f_back
                continue
            break
        if frame is None:
            return False, self._data_key_from(top)
        if fn.startswith(_MACHINERY) and fn != _PYTESTER:
            return True, None  # pytest, pluggy, the import system: the same answer anywhere
        back = frame.f_back
        # (hash() of a frame is its identity, as id() is, without id()'s audit event.)
        memo_key = (code, frame.f_lasti, hash(frame), hash(back), self.active, resources) if simple else None
        if memo_key is not None:
            hit = self._sites.get(memo_key)
            if hit is not None:
                return hit
        result = (False, self._data_key_from(top))
        if memo_key is not None:
            if len(self._sites) > 256:
                self._sites.clear()
            self._sites[memo_key] = result
        return result

    # ---- events -----------------------------------------------------------

    def on_open(self, args: Tuple[Any, ...]) -> None:
        path, mode, flags = args[0], args[1], args[2] or 0
        if isinstance(path, int):
            if path == 0 and _LIVE_STDIN:
                self.on_stdin()  # open(0) under -s: the process's stdin
            return  # fdopen
        if path is None:
            return
        if flags & _DIRECTORY or (mode is None and self._is_watched_dir(path)):
            # os.open of a directory: its descriptor can open anything below
            # it (`dir_fd=`, os.fwalk), where the path an event names is
            # relative to a directory it does not name.
            self._on_dir_descriptor(path)
            return
        if isinstance(mode, str):
            writes = "w" in mode or "a" in mode or "x" in mode or "+" in mode
            # r+ and a+ read what was there; w+ and x+ start empty.
            reads = "r" in mode or ("a" in mode and "+" in mode) or not writes
        else:
            writes = bool(flags & _WRITE_FLAGS)
            acc = flags & os.O_ACCMODE
            reads = (acc == os.O_RDONLY or acc == os.O_RDWR) and not flags & os.O_TRUNC
        p = self.absolute(path)
        if p is None:
            return
        module = False
        if p.endswith(".pyc"):
            if writes:
                return  # the import system caching bytecode
            src = source_of_pyc(p)
            # A .pyc outside __pycache__ is a sourceless module: it is the code.
            p, module = (src or p), True
        elif p.endswith(".py") and reads and not writes:
            module = True  # a module loaded from source, or source read as text: either way an input
        r = self._rel_abs(p)
        if r is None:
            if module:
                if p not in self.written_outside and self._is_outside_code(p):
                    self.outside.setdefault(self.active, set()).add(p)
            elif writes:
                self.written_outside.add(p)
            elif reads and p not in self.written_outside:
                # A link outside the project (a fixture directory linked into
                # tmp_path) reads the project's file; a link that stays (not
                # temporary) is an input itself too: it can be pointed elsewhere.
                linked = self._linked_project_path(p)
                external = self._is_external_input(p)
                if linked is not None or external:
                    machinery, k = self.site(resources=True)
                    if not machinery:
                        if linked is not None and linked not in self.wrote[k]:
                            self.reads[k].add(linked)
                        if external:
                            self.external[k].add(p)
            return
        if module:
            self._on_module(r)
            return
        machinery, k = self.site(resources=True)
        # A read of a file that does not exist is an input too (label "missing").
        # pytest's own reads (its ini file, a doctest text file it collects) are
        # not: the CLI keys what pytest reads itself.
        if reads and not machinery and r not in self.wrote[k] and not r.endswith("conftest.py"):
            self.reads[k].add(r)  # (conftest.py files are inputs of the tests below them, by the chain)
            self._module_body_edge(r)
        if writes:
            self.written.add(r)
            self.wrote[k].add(r)

    def _linked_project_path(self, p: str) -> Optional[str]:
        """The rootdir-relative path of the project file that `p`, a path
        outside the project, reaches through a symbolic link, else None.
        Installed code is not looked at (its links are the installer's)."""
        if p.startswith(self.installed_prefixes):
            return None
        try:
            real = os.path.realpath(p)
        except (OSError, ValueError):
            return None
        return None if real == p else self._rel_abs(real)

    def _is_watched_dir(self, path: Any) -> bool:
        """Whether `path` is a directory that is not installed code's (whose
        descriptor can reach project files: the project's, or one holding a
        link into it)."""
        p = self.absolute(path)
        if p is None or p.startswith(self.installed_prefixes):
            return False
        try:
            return os.path.isdir(p)
        except (OSError, ValueError):
            return False

    def _on_dir_descriptor(self, path: Any) -> None:
        """A descriptor of a directory was opened: every project file and
        listing reachable below it (through links too) is an input, since
        what is opened through the descriptor is named relative to it and
        that directory is not in the event. A tree too large to name makes
        the key volatile (never stored)."""
        p = self.absolute(path)
        if p is None or p.startswith(self.installed_prefixes):
            return
        machinery, k = self.site()
        if machinery:
            return
        budget = 5000
        seen: Set[str] = set()
        for top, dirs, files in os.walk(p, followlinks=True):
            real_top = os.path.realpath(top)
            seen.add(real_top)
            dirs[:] = [
                d for d in dirs if d not in _UNWALKED and os.path.realpath(os.path.join(top, d)) not in seen
            ]
            rel_top = "" if real_top + os.sep in self.prefixes else self._rel_abs(real_top)
            if rel_top is not None:
                self.lists[k].add(rel_top)
            for name in files:
                rel = self._rel_abs(os.path.realpath(os.path.join(top, name)))
                if rel is not None:
                    self._read_by(k, rel)
            budget -= len(files) + len(dirs)
            if budget < 0:
                self.volatile.add(k)
                return

    def on_link(self, args: Tuple[Any, ...]) -> None:
        """os.link(src, dst): what is read through a hard link of a project
        file is that file (reads name only the link)."""
        src = args[0] if args else None
        if src is None or isinstance(src, int):
            return
        p = self.absolute(src)
        if p is None:
            return
        r = self._rel_abs(p) or self._linked_project_path(p)
        if r is None:
            return
        machinery, k = self.site()
        if not machinery and r not in self.wrote[k]:
            self.reads[k].add(r)

    def _module_body_edge(self, rel: str) -> None:
        """A read made by a first-party module's body (`DATA = json.load(...)` at
        the top of a module, a test module included): the module keeps what it
        read, so whoever imports the module depends on the file. An edge from the
        module to the file puts it in every importer's closure."""
        frame = _first_outside_frame()
        if frame is None or frame.f_code.co_name != "<module>":
            return
        reader = self.rel(frame.f_code.co_filename)
        if reader is not None and reader != rel:
            self.edges.add((reader, rel))

    def _on_module(self, rel: str) -> None:
        """A first-party module's code was loaded (import, exec_module, runpy) or its
        source read: an input of the active key, and an edge from whoever asked."""
        if rel.endswith("conftest.py") and (rel == "conftest.py" or rel.endswith("/conftest.py")):
            return  # inputs of exactly the tests below them, by the chain
        self.imports[self.active].add(rel)
        frame = _importer_frame()
        if frame is not None:
            importer = self.rel(frame.f_code.co_filename)
            if importer is not None and importer != rel:
                self.edges.add((importer, rel))

    def on_import_request(self, name: Any, package: Any = None, probe: bool = False) -> None:
        """A module was asked for by name (an import statement of a module not yet
        loaded, or importlib.import_module): one already loaded is an input of the
        active key now; one that fails to load is checked in deps()."""
        if not isinstance(name, str):
            return
        if name.startswith("."):
            if not isinstance(package, str) or not package:
                return
            level = len(name) - len(name.lstrip("."))
            bits = package.rsplit(".", level - 1)
            if len(bits) < level:
                return
            rest = name[level:]
            name = bits[0] + ("." + rest if rest else "")
        mod = sys.modules.get(name)
        if mod is None:
            if probe and _find_spec_caller_is_machinery():
                return  # pytest and the import system looking for plugins and modules
            if _requested_by_rpytest():
                return  # rpytest's own modules asking whether pytest-xdist is installed
            self.requested[self.active].add(name)
            return
        f = getattr(mod, "__file__", None)
        if not f:
            return
        r = self.rel(f)
        if r is None:
            if self._is_outside_code(f):
                self.outside.setdefault(self.active, set()).add(os.path.normpath(f))
            return
        self._on_module(r)

    def _is_watchable_outside(self, p: str) -> bool:
        """Outside the project, and neither installed code, nor temporary, nor a
        cache, nor the kernel's: what such a path holds can be keyed."""
        return not p.startswith(self.installed_prefixes) and not p.startswith(self.volatile_prefixes)

    def _is_external_input(self, p: str) -> bool:
        """A file outside the project that a test's outcome can depend on (a
        config file in $HOME, /etc/...): not the interpreter's or an installed
        package's files, not the kernel's, not temporary files and not caches."""
        v = self._external_seen.get(p)
        if v is None:
            v = self._is_watchable_outside(p)
            if v:
                try:
                    v = os.path.isfile(p)
                except OSError:
                    v = False
            self._external_seen[p] = v
        return v

    def _is_outside_code(self, f: str) -> bool:
        v = self._outside_seen.get(f)
        if v is None:
            try:
                p = os.path.realpath(f)
            except Exception:
                p = f
            v = os.path.isabs(p) and not p.startswith(self.installed_prefixes) and not any(
                p.startswith(prefix) for prefix in self.prefixes
            )
            self._outside_seen[f] = v
        return v

    def on_sqlite(self, database: Any) -> None:
        """sqlite3.connect(database): a read of a first-party database file (a new
        one is being created: this key's own output)."""
        try:
            db = os.fsdecode(os.fspath(database))
        except Exception:
            return
        if not db or db == ":memory:":
            return
        if db.startswith("file:"):  # a URI (uri=True): file:path?query
            db = db[5:].split("?", 1)[0].split("#", 1)[0]
            if db.startswith("//"):
                db = db[2:]
                db = db[db.find("/"):] if "/" in db else ""
            if not db or db == ":memory:":
                return
        r = self.rel(db)
        if r is None:
            return
        k = self.site()[1]
        if r in self.wrote[k]:
            return
        if not os.path.exists(db):
            self.written.add(r)
            self.wrote[k].add(r)
            return
        self.reads[k].add(r)

    def on_spawn(self, inherits_env: bool, argv: Any = None, cwd: Any = None, env: Any = None) -> None:
        """A subprocess (subprocess.Popen, os.system, os.exec*, os.posix_spawn, os.fork).
        Its own reads are invisible; the project files and modules its command line
        names (`python script.py`, `python -m pkg.tool`, `cat data.txt`) are inputs."""
        machinery, k = self.site()
        if machinery:
            return
        self.spawns.add(k)
        if inherits_env and not self._by_plugin_session_hook():
            self.env[k].add("*")
        if argv is None:
            return
        if isinstance(argv, (str, bytes)):
            import shlex

            try:
                words: List[Any] = shlex.split(os.fsdecode(argv))
            except ValueError:
                words = os.fsdecode(argv).split()
        else:
            try:
                words = list(argv)
            except TypeError:
                return
        # `sh -c "cat data.txt | ..."`: the command string's words too.
        for w in list(words):
            if isinstance(w, (str, bytes)) and len(os.fsdecode(w).split()) > 1:
                import shlex

                try:
                    words.extend(shlex.split(os.fsdecode(w)))
                except ValueError:
                    words.extend(os.fsdecode(w).split())
        base = self.absolute(cwd) if cwd is not None else None
        self._python_search_path(k, words, base, None if inherits_env else env)
        after_m = False
        for i, w in enumerate(words):
            try:
                text = os.fsdecode(os.fspath(w))
            except (TypeError, ValueError):
                continue
            if after_m:
                self.requested[self.active].add(text)
                self.reads[k].update(self._run_module_files(text, base))
                after_m = False
                continue
            if text == "-m":
                after_m = True
                continue
            if text.startswith("-m") and len(text) > 2 and text[2] != "-":
                # `-mpkg.tool`: CPython takes the module joined to the option.
                self.requested[self.active].add(text[2:])
                self.reads[k].update(self._run_module_files(text[2:], base))
                continue
            if not text or text.startswith("-"):
                continue
            path = text if os.path.isabs(text) or base is None else os.path.join(base, text)
            p = self.absolute(path)
            if p is None or not os.path.isfile(p):
                continue
            r = self._rel_abs(p)
            if r is not None:
                self._read_by(k, r)
            elif i > 0 and not _is_python_command(text) and self._is_external_input(p):
                # A script or data file outside the project (`python
                # ~/tools/check.py`, `cat /etc/app.conf`): keyed by its absolute
                # path. The command itself is left out (a program's binary).
                self.external[k].add(p)

    def _python_search_path(self, k: Key, words: List[Any], base: Optional[str], env: Any) -> None:
        """A Python subprocess imports whatever its own search path reaches:
        the script's directory (the working directory for `-c`, `-m`, stdin),
        its environment's PYTHONPATH and the directories the interpreter's
        `.pth` files add (editable installs). Every project module below a
        project directory on that path is an input of `k` (a module it did
        not import yet, `python -c "import pkg.mod"`, included), and so is
        each directory listing there (a module added later). A tree too large
        to name makes the key volatile (never stored)."""
        texts: List[str] = []
        for w in words:
            try:
                texts.append(os.fsdecode(os.fspath(w)))
            except (TypeError, ValueError):
                texts.append("")
        found = False
        # `PYTHONPATH=src python ...` in a shell command or under `env`.
        inline = [t[len("PYTHONPATH=") :] for t in texts if t.startswith("PYTHONPATH=")]
        for i, t in enumerate(texts):
            if _is_python_command(t) and _at_command_position(texts, i):
                found = True
                texts = texts[i + 1 :]
                break
        if not found:
            return
        here = base or os.getcwd()
        first = here
        skip = False
        for t in texts:
            if skip:
                skip = False
                continue
            if t in ("-c", "-m", "-") or t.startswith(("-c", "-m")) and len(t) > 2:
                break
            if t in ("-W", "-X", "--check-hash-based-pycs"):
                skip = True
                continue
            if t.startswith("-"):
                continue
            script = t if os.path.isabs(t) else os.path.join(here, t)
            first = os.path.dirname(os.path.realpath(script))
            break
        dirs = [first]
        mapping: Any = env if env is not None else os.environ
        try:
            pythonpath = mapping.get("PYTHONPATH") or mapping.get(b"PYTHONPATH")
        except Exception:
            pythonpath = None
        for value in [os.fsdecode(pythonpath)] if pythonpath else []:
            inline.append(value)
        for value in inline:
            for entry in value.split(os.pathsep):
                dirs.append(entry if os.path.isabs(entry) else os.path.join(here, entry or "."))
        dirs.extend(self._site_project_dirs())
        # The subprocess may also extend its own search path (`sys.path.insert`
        # in `-c`, a script adding a sibling directory, `runpy`/`importlib` by
        # path, a `-` program from stdin): any project module can be reached,
        # so the project's whole tree is walked, whatever the path found above.
        dirs.extend(p.rstrip(os.sep) for p in self.prefixes)
        for d in dirs:
            real = os.path.realpath(d)
            if (k, real) in self._spawn_walked or k in self.volatile:
                continue
            self._spawn_walked.add((k, real))
            if not self._walk_modules(k, real):
                self.volatile.add(k)
                return

    def _walk_modules(self, k: Key, top_dir: str) -> bool:
        """Every project `.py` file and directory listing below `top_dir`
        becomes an input of `k`; False when the tree is too large to name."""
        inside = self._in_project(top_dir)
        if not inside:
            above = [pre for pre in self.prefixes if pre.startswith(top_dir.rstrip(os.sep) + os.sep)]
            if not above:
                # Neither the project's nor above it: installed code (keyed by
                # the installed packages), a temporary directory (the test's
                # own scratch, tmp_path), a directory that is not there, or
                # code elsewhere that no key can bound.
                return not self._unbounded_outside(top_dir)
            # A directory above the project reaches its modules by longer names.
            top_dir = above[0].rstrip(os.sep)
        budget = 5000
        seen: Set[str] = set()
        for top, dirs, files in os.walk(top_dir, followlinks=True):
            real_top = os.path.realpath(top)
            seen.add(real_top)
            rel_top = "" if real_top + os.sep in self.prefixes else self._rel_abs(real_top)
            if rel_top is None:
                dirs[:] = []  # a virtualenv's or a cache's: not the project's code
                continue
            # Hidden directories too (`.tools/`, `.ci/`): a subprocess imports
            # from them as from any other. Version control's and tools' own
            # trees are not walked, nor virtualenvs.
            kept = []
            for d in dirs:
                if d in _UNWALKED:
                    continue
                path = os.path.join(top, d)
                real = os.path.realpath(path)
                if real in seen:
                    continue
                if not self._in_project(real):
                    if real.startswith(self.installed_prefixes):
                        continue
                    return False  # a link out of the project: code no key names
                if self._is_venv(real):
                    continue
                kept.append(d)
            dirs[:] = kept
            if rel_top not in self.wrote[k]:
                self.lists[k].add(rel_top)
            for name in files:
                if name.endswith((".py", ".pth")):
                    real = os.path.realpath(os.path.join(top, name))
                    rel = self._rel_abs(real)
                    if rel is None and not self._in_project(real) and not real.startswith(self.installed_prefixes):
                        return False  # a module linked from outside the project
                    if rel is not None and rel not in self.wrote[k]:
                        self.reads[k].add(rel)
            # Modules and directories count, not data files beside them.
            budget -= len(dirs) + sum(1 for name in files if name.endswith((".py", ".pth")))
            if budget < 0:
                return False
        return True

    def _in_project(self, real: str) -> bool:
        """Whether the real path `real` is the project root or below it."""
        return real + os.sep in self.prefixes or real.startswith(self.prefixes)

    def _unbounded_outside(self, real: str) -> bool:
        """Whether a directory outside the project on a Python subprocess's
        search path may hold code that no key can name: not installed code,
        not a temporary directory (a test's tmp_path, whose files the session
        writes), and there."""
        if real.startswith(self.installed_prefixes) or real.startswith(self.volatile_prefixes):
            return False
        if (real + os.sep).startswith(self.installed_prefixes) or (real + os.sep).startswith(self.volatile_prefixes):
            return False
        return os.path.isdir(real)

    def _site_project_dirs(self) -> List[str]:
        """Project directories the interpreter's `.pth` files put on every
        Python's search path (editable installs, by path or by finder)."""
        if self._site_dirs is not None:
            return self._site_dirs
        out: List[str] = []
        try:
            import site

            sites = [*site.getsitepackages(), site.getusersitepackages()]
        except Exception:
            sites = []
        for sd in sites:
            try:
                names = os.listdir(sd)
            except OSError:
                continue
            for name in names:
                path = os.path.join(sd, name)
                try:
                    if name.endswith(".pth"):
                        with open(path, encoding="utf-8", errors="replace") as f:
                            for line in f:
                                line = line.strip()
                                if line and not line.startswith(("#", "import ", "import\t")):
                                    out.append(os.path.join(sd, line))
                    elif name.startswith("__editable__") and name.endswith(".py"):
                        with open(path, encoding="utf-8", errors="replace") as f:
                            text = f.read()
                        import re

                        for m in re.finditer(r"'(/[^'\n]+)'|\"(/[^\"\n]+)\"", text):
                            lit = m.group(1) or m.group(2)
                            out.append(os.path.dirname(lit) if lit.endswith(".py") else lit)
                except OSError:
                    continue
        self._site_dirs = [d for d in out if self._rel_abs(os.path.realpath(d)) is not None
                           or os.path.realpath(d) + os.sep in self.prefixes]
        return self._site_dirs

    def _read_by(self, k: Key, rel: str) -> None:
        """Project file `rel` was read for key `k`: a module is code (an
        import of the active key), anything else data (unless `k` wrote it)."""
        if rel.endswith(".py"):
            self._on_module(rel)
        elif rel not in self.wrote[k]:
            self.reads[k].add(rel)

    def on_probe(self, path: Any) -> None:
        """An existence or metadata check (os.path.exists/isfile/isdir/getsize...,
        Path.stat and so Path.exists/is_file/is_dir): whether the file is there is
        an input (a missing one keys as missing; a present one by its content)."""
        if isinstance(path, int) or path is None:
            return
        try:
            text = os.fsdecode(os.fspath(path))
        except (TypeError, ValueError):
            return
        r = self.rel(text)
        if r is None:
            # Outside the project: a tool looked up on PATH, a flag file in
            # $HOME; through a link, the project file it reaches too.
            p = self.absolute(text)
            if p is None or p in self.written_outside:
                return
            linked = self._linked_project_path(p)
            external = self._is_watchable_outside(p)
            if linked is None and not external:
                return
            machinery, k = self.site()
            if not machinery:
                if linked is not None and linked not in self.wrote[k]:
                    self.probes[k].add(linked)
                if external:
                    self.external[k].add(p)
            return
        machinery, k = self.site()
        if not machinery and r not in self.wrote[k]:
            self.probes[k].add(r)

    def on_env_all(self) -> None:
        """The whole environment was read (iteration, len, copy, repr)."""
        machinery, k = self.site()
        if machinery:
            return
        shown = self._by_plugin_session_hook()
        if not shown:
            self.env[k].add("*")
        # The items a copy or dict() reads next come from this very
        # instruction: they are part of this read, not reads by name.
        frame = _first_outside_frame()
        if frame is not None:
            self._env_iter_sites.add((hash(frame), frame.f_lasti))
            if shown:
                # Kept alive so that no later frame can take its id while
                # its site is exempt (see on_env).
                self._shown_env_frames.append(frame)

    def _by_plugin_session_hook(self, plugins: Optional[Tuple[str, ...]] = None) -> bool:
        """Whether the event comes from an installed plugin's session-level hook
        (configure, session start and finish, report header, terminal summary:
        pytest-metadata and pytest-benchmark list the environment to display
        it), with no project code in between. Tests and fixtures run under
        other hooks (pytest_runtest_*, pytest_fixture_setup), and project code
        (a conftest.py's hook) always records."""
        frame: Any = _getframe(2)
        while frame is not None:
            back = frame.f_back
            if frame.f_globals is _GLOBALS:
                frame = back
                continue
            fn = frame.f_code.co_filename
            if _is_library_frame(fn):
                frame = back
                continue
            if fn.startswith(_MACHINERY) or self.rel(fn) is not None:
                return False
            # Installed code: a hook implementation called by pluggy decides.
            if back is not None and back.f_code.co_filename.startswith(_PLUGGY_PREFIX):
                return _is_session_hook(frame.f_code.co_name) and str(
                    frame.f_globals.get("__name__", "")
                ).startswith(plugins or _DISPLAY_PLUGINS)
            frame = back
        return False

    def on_list(self, path: Any) -> None:
        """A directory listing (os.listdir/os.scandir, and so glob, os.walk,
        Path.iterdir): the set of names in it is an input."""
        if isinstance(path, int):
            return  # a listing by file descriptor: its directory is unknown
        if path is None:
            path = "."
        p = self.absolute(path)
        if p is None:
            return
        names: List[str] = []
        if p + os.sep in self.prefixes:
            names.append("")
        else:
            r = self._rel_abs(p)
            if r is not None:
                names.append(r)
            elif p not in self.written_outside:
                # Through a link into the project: the project directory's
                # names; a link that stays is an input itself (by absolute path).
                linked = self._linked_project_path(p)
                if linked is not None:
                    names.append(linked)
                if self._is_watchable_outside(p + os.sep):
                    names.append(p)
        if not names:
            return
        # Whoever called os.listdir, glob, pathlib, os.walk tells whether a test
        # or the machinery wanted the listing.
        machinery, k = self.site()
        # (the import system's and pytest's own directory scans are not inputs,
        # nor pytest-cov's search for its data files when a session starts or ends)
        if not machinery and not self._by_plugin_session_hook(_DATA_FILE_PLUGINS):
            self.lists[k].update(names)

    def on_env(self, key: Any) -> None:
        """A variable read by name (os.environ[...], .get, `in`, os.getenv)."""
        try:
            name = key if isinstance(key, str) else os.fsdecode(key)
        except Exception:
            return
        machinery, k = self.site()
        if machinery:
            return  # pytest's own lookups (terminal width, CI for truncation, monkeypatch's undo)
        if name == "PYTEST_XDIST_WORKER" and not self.worker_id_read_by_project:
            self.worker_id_read_by_project = self._project_on_stack()
        if k is None and self.active is not None:
            reader = self._imported_module_body()
            if reader is not None:
                # A first-party module's body read it while a test file was
                # active (a lazy import inside a test, an import of the test
                # module): the module keeps what it read, so the variable is an
                # input of every key whose closure reaches the module (its
                # importers, directly or through other modules), not of every test.
                self.edges.add((reader, ENV_EDGE + name))
                return
        env = self.env[k]
        if name in env:
            return
        if self._shown_env_frames and self._in_shown_env_copy():
            return  # an item of a copy a display plugin's session hook made
        if "*" in env:
            if not is_cosmetic_env(name):
                return  # covered by the whole-environment read
            # A cosmetic name is left out of "*": an input when asked for by
            # name, not when an iteration (a copy, dict(), items()) reads it.
            frame = _first_outside_frame()
            if frame is not None and (hash(frame), frame.f_lasti) in self._env_iter_sites:
                return
        if name in self.env_set[k] and _raw_env(name) != self.original_env.get(_env_key(name)):
            return  # the value this key itself set (monkeypatch.setenv), not the caller's
        env.add(name)

    def _imported_module_body(self) -> Optional[str]:
        """The rootdir-relative path of the first-party module (not a
        conftest.py, not `__main__`) whose body runs under an import on the
        current stack, innermost first, when first-party code asked for it
        (directly or through other first-party module bodies): its static
        closure then reaches the module. None otherwise (a module imported
        by an installed package's code, such as a settings module a
        framework loads lazily: no importer's closure names it)."""
        frame: Any = _getframe(2)
        found: Optional[str] = None
        while frame is not None:
            code = frame.f_code
            fn = code.co_filename
            if frame.f_globals is _GLOBALS or _is_import_frame(fn) or fn.startswith(_IMPORTLIB_DIR):
                frame = frame.f_back
                continue
            back = frame.f_back
            body = code.co_name == "<module>" and back is not None and _is_import_frame(back.f_code.co_filename)
            if found is None:
                if not body:
                    frame = back
                    continue  # the stack above the module body (os.environ's own frames)
                if frame.f_globals.get("__name__") == "__main__":
                    return None
                rel = self.rel(fn)
                if rel is None or rel == self.active or rel.rsplit("/", 1)[-1] == "conftest.py":
                    return None
                found = rel
                frame = back
                continue
            if _is_library_frame(fn):
                frame = back
                continue
            # The code that asked: a first-party module body under import
            # (its own importer is checked next), else the caller itself.
            rel = self.rel(fn)
            if rel is None:
                return None
            if body and frame.f_globals.get("__name__") != "__main__" and rel != self.active:
                frame = back
                continue
            return found
        return None

    def _in_shown_env_copy(self) -> bool:
        frame = _first_outside_frame()
        return (
            frame is not None
            and any(frame is f for f in self._shown_env_frames)
            and (hash(frame), frame.f_lasti) in self._env_iter_sites
        )

    def _project_on_stack(self) -> bool:
        """Whether project code (a test module, a conftest.py, a first-party
        module) is on the stack: an installed plugin asking whether it runs
        in a worker (syrupy, pytest-benchmark) is not."""
        frame: Any = _getframe(2)
        while frame is not None:
            if frame.f_globals is not _GLOBALS:
                fn = frame.f_code.co_filename
                if not _is_library_frame(fn) and self.rel(fn) is not None:
                    return True
            frame = frame.f_back
        return False

    def on_env_set(self, key: Any) -> None:
        try:
            name = key if isinstance(key, str) else os.fsdecode(key)
        except Exception:
            return
        self.env_set[self.data_key()].add(name)

    def on_stdin(self) -> None:
        """A test read standard input: its results depend on what was typed or piped."""
        self.volatile.add(self.data_key())

    def on_terminal_output(self) -> None:
        """A test wrote past pytest's capture (`capsys.disabled()`): no stored
        result holds what it wrote, so it is never stored."""
        self.volatile.add(self.data_key())

    def on_option(self) -> None:
        """Test or conftest code read a pytest option (any of them may be an
        output-only one the key leaves out, such as -v)."""
        self.options.add(self.data_key())

    # ---- results ----------------------------------------------------------

    def _is_input(self, rel: str) -> bool:
        """Directories (rmtree opens them) and session-created trees are not inputs."""
        if self._written_dirs is None:
            dirs: Set[str] = set()
            for w in self.written:
                parts = w.split("/")
                for i in range(1, len(parts)):
                    dirs.add("/".join(parts[:i]))
            self._written_dirs = dirs
        if rel in self._written_dirs:
            return False
        return not os.path.isdir(self.prefixes[0] + rel.replace("/", os.sep))

    def _run_module_files(self, name: str, cwd: Optional[str]) -> List[str]:
        """The project files `python -m name` in a subprocess runs or looks
        for, whether this session imported them or not: each package's
        `__init__.py` on the way, then `name.py`, `name/__init__.py` and
        `name/__main__.py`, in its working directory and each `sys.path`
        location inside the project."""
        parts = [p for p in name.split(".") if p]
        if not parts:
            return []
        locations = [cwd or os.getcwd()] + [p or os.getcwd() for p in sys.path if isinstance(p, str)]
        out: List[str] = []
        for d in locations:
            root = self.absolute(d) or d
            candidates = [os.path.join(root, *parts[:i], "__init__.py") for i in range(1, len(parts))]
            full = os.path.join(root, *parts)
            candidates += [full + ".py", os.path.join(full, "__init__.py"), os.path.join(full, "__main__.py")]
            for c in candidates:
                r = self._rel_abs(os.path.normpath(c))
                if r is not None and r not in out:
                    out.append(r)
        return out

    def missing_candidates(self, name: str) -> List[str]:
        """First-party paths that would have been loaded for module `name`, had
        they existed: `name.py`, `name/__init__.py` and `name/` (a namespace
        package) in each search location inside the project."""
        parent, _, leaf = name.rpartition(".")
        if parent:
            pm = sys.modules.get(parent)
            locations = list(getattr(pm, "__path__", None) or ()) if pm is not None else []
        else:
            locations = [p or os.getcwd() for p in sys.path if isinstance(p, str)]
        out: List[str] = []
        for d in locations:
            base = os.path.join(self.absolute(d) or d, *leaf.split("/"))
            for c in (base + ".py", os.path.join(base, "__init__.py"), base):
                r = self._rel_abs(os.path.normpath(c))
                if r is not None and r not in out:
                    out.append(r)
        return out

    def deps(self, key: Key) -> msgs.Deps:
        own = {key} if key else set()
        reads = set(self.reads.get(key, ()))
        for name in self.requested.get(key, ()):
            if name not in sys.modules:
                # Not loaded: what would have been found (or not) for it is the input.
                reads.update(self.missing_candidates(name))
        reads = {r for r in reads if self._is_input(r)}
        # Existence checks: a directory stays an input (it keys as a directory).
        reads.update(r for r in self.probes.get(key, ()) if r not in self._written_dir_set())
        # Files outside the project, by absolute path: such a key only matches
        # where the same path holds the same bytes.
        reads.update(p for p in self.external.get(key, ()) if p not in self.written_outside)
        imports = self.imports.get(key, set()) - own
        paths: Optional[List[str]] = None
        if key is None:
            # sys.path entries inside the project (a conftest may add some): the
            # CLI's static import resolution searches them from now on.
            paths = []
            for entry in sys.path:
                if not isinstance(entry, str):
                    continue
                p = self.absolute(entry or ".")
                if p is None:
                    continue
                r = "" if p + os.sep in self.prefixes else self._rel_abs(p)
                if r is not None and r not in paths and os.path.isdir(p):
                    paths.append(r)
        return msgs.deps(
            key,
            imports=sorted(imports),
            reads=sorted(reads),
            env=sorted(self.env.get(key, set())),
            lists=sorted(d for d in self.lists.get(key, set()) if d not in self._written_dir_set()),
            spawns=key in self.spawns,
            # Imported code outside the project and outside installed packages.
            outside=self._unnamed_outside_code(key),
            # Read stdin: never stored.
            volatile=key in self.volatile,
            # Read pytest's options: every argument is an input.
            options=key in self.options,
            # Inputs this session itself produced (some key wrote them): their
            # state at the end of the run says nothing about the next run, so
            # results that depend on them are never stored.
            # A listing of a directory the session wrote into is one too.
            generated=sorted(r for r in reads | imports if r in self.written)
            + sorted(d for d in self.lists.get(key, set()) if d in self._written_dir_set()),
            paths=paths,
        )

    def _unnamed_outside_code(self, key: Key) -> bool:
        """Whether the key ran outside code that no module in sys.modules stands for."""
        paths = self.outside.get(key)
        if not paths:
            return False
        loaded = set()
        for module in list(sys.modules.values()):
            f = getattr(module, "__file__", None)
            if isinstance(f, str):
                loaded.add(os.path.normpath(f))
        return any(p not in loaded for p in paths)

    def _written_dir_set(self) -> Set[str]:
        self._is_input("")  # fills _written_dirs
        return self._written_dirs or set()


# Target of a recorded edge that stands for an environment variable a module's
# body read while it was imported (the CLI's inputs::key::ENV_EDGE).
ENV_EDGE = "?env:"

# Hooks that run once per session, around the tests rather than for them.
_SESSION_HOOKS = frozenset({
    "pytest_configure", "pytest_unconfigure", "pytest_sessionstart", "pytest_sessionfinish",
    "pytest_report_header", "pytest_report_collectionfinish", "pytest_terminal_summary",
    "pytest_addoption", "pytest_plugin_registered", "pytest_metadata", "pytest_load_initial_conftests",
})

# Installed plugins whose session-level hooks list directories only to manage
# their own data files: pytest-cov erasing and combining `.coverage.*`.
_DATA_FILE_PLUGINS = ("pytest_cov",)


# Installed plugins known to list the environment only to display it (the
# report header, the HTML report's and the benchmark's machine information).
# Another plugin's session hook may turn what it lists into test settings (a
# fixture returning `APP_*` variables gathered in pytest_configure): its
# listing stays an input of every test.
_DISPLAY_PLUGINS = ("pytest_metadata", "pytest_benchmark", "pytest_html")


# Commands that run the command given in their arguments (a wrapper, a
# shell): after one of them, a word naming Python may be the command run.
_WRAPPERS = frozenset(
    (
        "env", "exec", "nice", "nohup", "sudo", "command", "time", "stdbuf", "setsid",
        "timeout", "taskset", "ionice", "chrt", "flock", "xargs", "strace", "valgrind",
        "sh", "bash", "dash", "zsh", "ksh", "fish", "busybox", "unbuffer", "catchsegv",
    )
)
_SEPARATORS = frozenset(("&&", "||", ";", "|", "(", "&"))


def _at_command_position(words: List[str], i: int) -> bool:
    """Whether `words[i]` may be a command a process runs, not an argument of
    another command (`file -b /usr/bin/python3`, which `platform.architecture()`
    runs, names Python without running it). When unsure it says yes (a module
    too many is an input, never one too few): the first word; any word when
    the command is a wrapper or a shell (`/usr/bin/env python3`, `timeout 5
    python`, `sh -c "..."`); the first word of a shell string (its words follow
    the command line's); a word after a separator or an environment assignment."""
    if i == 0 or os.path.basename(words[0]) in _WRAPPERS:
        return True
    before = words[i - 1]
    if before in _SEPARATORS or before.endswith(";") or os.path.basename(before) in _WRAPPERS:
        return True
    if "=" in before and not before.startswith("-"):
        return True
    for w in words:
        parts = w.split()
        if len(parts) > 1 and parts[0] == words[i]:
            return True
    return False


def _is_python_command(word: str) -> bool:
    """Whether a command-line word starts a Python interpreter."""
    if not word or word.startswith("-"):
        return False
    if word == sys.executable:
        return True
    name = os.path.basename(word)
    return name.startswith(("python", "pypy")) and not name.endswith((".py", ".txt", ".cfg"))


def _is_session_hook(name: str) -> bool:
    return name in _SESSION_HOOKS or name.startswith(("pytest_html_", "pytest_benchmark_"))


def _env_key(name: str) -> Any:
    try:
        return os.environ.encodekey(name)  # type: ignore[attr-defined]
    except Exception:
        return name


def _raw_env(name: str) -> Any:
    return getattr(os.environ, "_data", {}).get(_env_key(name))


_RECORDER: Optional[Recorder] = None
# The process's stdin as the tests see it under -s (see install_stdin_reader).
_LIVE_STDIN: List[Any] = []
# Set when a prologue could not be compiled: what it would have seen is unknown.
_blind = False
# What each installed interception needs to be undone, by installer name.
_UNDO: Dict[str, Callable[[], None]] = {}


def is_blind() -> bool:
    """Whether some event source could not be installed (nothing may be stored)."""
    return _blind


def installed() -> List[str]:
    """The names of the interceptions in place, in installation order."""
    return list(_UNDO)


# Recompiled code objects by (original code, statement): compiled once in the
# daemon (prepare_prologues, at import) and swapped in by each session.
_PROLOGUES: Dict[Tuple[Any, str], Any] = {}


def add_prologue(func: Any, statement: str, source_file: str) -> bool:
    """Recompile `func` from its own source with `statement` as the first line of
    its body, keeping its file name, qualified name and line numbers, and swap the
    code in place. The frame the function runs in stays the stock one."""
    code = func.__code__
    new = _PROLOGUES.get((code, statement))
    if new is None:
        new = _compile_prologue(func, statement, source_file)
        if new is None:
            return False
        _PROLOGUES[(code, statement)] = new
    try:
        func.__code__ = new
    except (ValueError, TypeError):
        return False
    return True


_PARSED: Dict[str, Any] = {}


def _parsed(source_file: str) -> Any:
    tree = _PARSED.get(source_file)
    if tree is None:
        try:
            with open(source_file, encoding="utf-8") as f:
                tree = _PARSED[source_file] = ast.parse(f.read())
        except (OSError, SyntaxError, ValueError):
            return None
    return tree


def _compile_prologue(func: Any, statement: str, source_file: str) -> Any:
    """`func`'s code with `statement` first in its body, or None."""
    code = func.__code__
    namespace = getattr(func, "__globals__", {})
    if namespace.get("sys") is not sys:
        # A module without `import sys` (genericpath): reach it through os, never
        # through builtins (tests patch builtins.__import__).
        if namespace.get("os") is not os or not statement.startswith("sys."):
            return None
        statement = "os." + statement
    tree = _parsed(source_file)
    if tree is None:
        return None
    found = None
    outer: List[str] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == code.co_name:
            lines = [node.lineno] + [d.lineno for d in node.decorator_list]
            if code.co_firstlineno in lines:
                found = node
                break
    if found is None:
        return None
    found = copy.deepcopy(found)  # the parsed module is shared
    qual = func.__qualname__.split(".")
    outer = qual[:-1]
    body = found.body
    at = 1 if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str) else 0
    if at >= len(body):
        return None
    anchor = body[at]
    stmt = ast.parse(statement).body[0]
    for n in ast.walk(stmt):
        if hasattr(n, "lineno"):
            n.lineno = n.end_lineno = anchor.lineno  # type: ignore[attr-defined]
            n.col_offset = n.end_col_offset = anchor.col_offset  # type: ignore[attr-defined]
    found.body = body[:at] + [stmt] + body[at:]
    node: ast.stmt = found
    for name in reversed(outer):
        cls = ast.ClassDef(name=name, bases=[], keywords=[], body=[node], decorator_list=[])
        ast.copy_location(cls, found)
        cls.end_lineno = found.end_lineno  # type: ignore[attr-defined]
        node = cls
    module = ast.Module(body=[node], type_ignores=[])
    try:
        compiled = compile(module, code.co_filename, "exec", dont_inherit=True)
    except (SyntaxError, ValueError, TypeError):
        return None

    def find(c: Any) -> Any:
        for const in c.co_consts:
            if hasattr(const, "co_name"):
                if const.co_name == code.co_name and const.co_firstlineno == code.co_firstlineno:
                    return const
                inner = find(const)
                if inner is not None:
                    return inner
        return None

    new = find(compiled)
    if new is None or new.co_freevars != code.co_freevars:
        return None
    return new


# Variables pytest sets and deletes around every phase of every test (the
# value names the running test): every key counts them as set by itself from
# the start (Recorder.env_set), so their writes raise no event.
_SESSION_SET_ENV = ("PYTEST_CURRENT_TEST",)


def _environ_methods() -> List[Tuple[str, str]]:
    env_set = 'if key not in %r: sys.audit("rpytest.env.set", key)' % (_SESSION_SET_ENV,)
    return [
        ("__getitem__", 'sys.audit("rpytest.env", key)'),
        ("__setitem__", env_set),
        ("__delitem__", env_set),
        ("__iter__", 'sys.audit("rpytest.env.all")'),
        ("__len__", 'sys.audit("rpytest.env.all")'),
        ("__repr__", 'sys.audit("rpytest.env.all")'),
    ]


def _probe_functions() -> List[Tuple[Any, str]]:
    """Python-level functions that look at a path without opening it (os.stat
    itself is C and raises no audit event), with the prologue for each."""
    import genericpath
    import importlib.util
    import pathlib
    import posixpath

    out: List[Tuple[Any, str]] = [(importlib.util.find_spec, 'sys.audit("rpytest.find_spec", name, package)')]
    for mod, names in ((genericpath, ("exists", "isfile", "isdir", "getsize", "getmtime", "getctime", "getatime")),
                       (posixpath, ("islink", "lexists"))):
        for name in names:
            func = getattr(mod, name, None)
            code = getattr(func, "__code__", None)
            if code is not None and code.co_varnames[:1]:
                out.append((func, 'sys.audit("rpytest.probe", %s)' % code.co_varnames[0]))
    for name in ("stat", "lstat"):
        func = getattr(pathlib.Path, name, None)
        if getattr(func, "__code__", None) is not None:
            out.append((func, 'sys.audit("rpytest.probe", self)'))
    return out


def _with_prologues(name: str, funcs: List[Tuple[Any, str, str]]) -> None:
    """Give each function its prologue (func, statement, source file); the
    undo puts every original code object back."""
    global _blind
    if name in _UNDO:
        return
    swapped: List[Tuple[Any, Any]] = []
    for func, stmt, source in funcs:
        code = func.__code__
        if add_prologue(func, stmt, source):
            swapped.append((func, code))
        else:
            _blind = True

    def undo() -> None:
        for func, code in reversed(swapped):
            func.__code__ = code

    _UNDO[name] = undo


def _uninstall(name: str) -> None:
    undo = _UNDO.pop(name, None)
    if undo is not None:
        undo()


def _environ_targets() -> List[Tuple[Any, str, str]]:
    environ_cls = type(os.environ)
    os_source = getattr(sys.modules.get("os"), "__file__", None) or ""
    return [(getattr(environ_cls, n), stmt, os_source) for n, stmt in _environ_methods()]


def install_environ_prologues() -> None:
    """`os.environ` reads, writes and whole listings raise rpytest.env* events."""
    _with_prologues("environ", _environ_targets())


def uninstall_environ_prologues() -> None:
    _uninstall("environ")


def install_import_module_prologue() -> None:
    """`importlib.import_module` raises rpytest.import_module (the import
    system's own `import` event does not see a name it finds in sys.modules)."""
    _with_prologues("import_module", _import_module_targets())


def _import_module_targets() -> List[Tuple[Any, str, str]]:
    stmt = 'sys.audit("rpytest.import_module", name, package)'
    return [(importlib.import_module, stmt, importlib.__file__ or "")]


def uninstall_import_module_prologue() -> None:
    _uninstall("import_module")


def install_probe_prologues() -> None:
    """Path probes that open nothing (exists, isfile, stat, find_spec) raise rpytest.probe / rpytest.find_spec."""
    _with_prologues("probes", _probe_targets())


def _probe_targets() -> List[Tuple[Any, str, str]]:
    funcs = []
    for func, stmt in _probe_functions():
        module = sys.modules.get(func.__module__)
        funcs.append((func, stmt, getattr(module, "__file__", None) or ""))
    return funcs


def uninstall_probe_prologues() -> None:
    _uninstall("probes")


def _audit_handlers() -> Dict[str, Callable[[Recorder, Tuple[Any, ...]], None]]:
    def env_all(rec: Recorder, args: Tuple[Any, ...]) -> None:
        rec.on_env_all()

    return {
        "open": Recorder.on_open,
        "import": lambda rec, args: rec.on_import_request(args[0]),
        "rpytest.import_module": lambda rec, args: rec.on_import_request(args[0], args[1]),
        "rpytest.env": lambda rec, args: rec.on_env(args[0]),
        "rpytest.env.set": lambda rec, args: rec.on_env_set(args[0]),
        "rpytest.env.all": env_all,
        # input() reads the process's stdin only when sys.stdin is still it
        # (under -s); a test's own stdin (click's CliRunner) is the test's.
        "builtins.input": lambda rec, args: rec.on_stdin() if _LIVE_STDIN and sys.stdin is _LIVE_STDIN[0] else None,
        "rpytest.option": lambda rec, args: _on_option_event(rec),
        "os.link": lambda rec, args: rec.on_link(args),
        "os.listdir": lambda rec, args: rec.on_list(args[0] if args else None),
        "os.scandir": lambda rec, args: rec.on_list(args[0] if args else None),
        "sqlite3.connect": lambda rec, args: rec.on_sqlite(args[0]),
        "rpytest.find_spec": lambda rec, args: rec.on_import_request(args[0], args[1], probe=True),
        "rpytest.probe": lambda rec, args: rec.on_probe(args[0]),
        # (executable, args, cwd, env): env None inherits the whole environment
        "subprocess.Popen": lambda rec, args: rec.on_spawn(args[3] is None, args[1], args[2], args[3]),
        "os.system": lambda rec, args: rec.on_spawn(True, args[0]),
        "os.exec": lambda rec, args: rec.on_spawn(args[2] is None, args[1], None, args[2]),  # (path, args, env)
        "os.posix_spawn": lambda rec, args: rec.on_spawn(False, args[1], None, args[2]),  # env is iterated
        "os.fork": lambda rec, args: rec.on_spawn(False),
        "os.forkpty": lambda rec, args: rec.on_spawn(False),
    }


# The audit hook's table: emptied by uninstall_audit_hook (CPython keeps an
# audit hook for the life of the process).
_AUDIT_HANDLERS: Dict[str, Callable[[Recorder, Tuple[Any, ...]], None]] = {}
_audit_hook_added = False
# Which hook this process added: "native" (rpytest_native's C hook, which
# calls `audit` only for the events named in the table), "python"
# (sys.addaudithook: `audit` is called for every event), or None.
AUDIT_HOOK: Optional[str] = None


def install_audit_hook() -> None:
    """Opens, imports, listings, subprocesses, sqlite and input() reach the recorder."""
    global _audit_hook_added, AUDIT_HOOK
    if "audit" in _UNDO:
        return
    _AUDIT_HANDLERS.update(_audit_handlers())
    _UNDO["audit"] = _AUDIT_HANDLERS.clear
    if _audit_hook_added:
        return
    _audit_hook_added = True
    get_handler = _AUDIT_HANDLERS.get

    def audit(event: str, args: Tuple[Any, ...]) -> None:
        handler = get_handler(event)
        if handler is not None:
            rec = _RECORDER
            if rec is not None and rec.enabled:
                try:
                    handler(rec, args)
                except Exception:
                    pass

    if not _add_native_audit_hook(audit):
        sys.addaudithook(audit)
        AUDIT_HOOK = "python"


def _add_native_audit_hook(audit: Callable[[str, Tuple[Any, ...]], None]) -> bool:
    """Hands `audit` to the native module's hook, which compares each event's
    name with the table's in native code and calls `audit` only for those
    (with tracing paused, as CPython calls a Python hook). The other events
    of a session, dozens per test, then cost no Python call. False when
    there is no native module or it cannot add its hook here."""
    global AUDIT_HOOK
    module = native.MODULE
    if module is None:
        return False
    try:
        added = bool(module.set_audit_hook(tuple(_audit_handlers()), audit))
    except Exception:
        return False
    if added:
        AUDIT_HOOK = "native"
    return added


def uninstall_audit_hook() -> None:
    _uninstall("audit")


def install(recorder: Recorder) -> None:
    """Listen to imports, opens, environment reads and the rest for the rest of this process."""
    global _RECORDER
    _RECORDER = recorder
    recorder.enabled = True
    install_environ_prologues()
    install_import_module_prologue()
    install_probe_prologues()
    install_audit_hook()


def uninstall() -> None:
    """Undo every interception, the most recent first; the recorder stops."""
    global _RECORDER
    for name in reversed(list(_UNDO)):
        _uninstall(name)
    if _RECORDER is not None:
        _RECORDER.enabled = False
    _RECORDER = None


def _pytest_is_third_party() -> bool:
    """Whether pytest's own modules are outside the project (they are not
    when the project is pytest): then their reads of options are never a
    test's, and are told apart before the audit hook is asked."""
    rec = _RECORDER
    return rec is not None and rec.rel(_PYTEST_CONFIG) is None


def install_worker_checks(config_class: Any) -> None:
    """Outside `-n`, code that asks whether it runs in a pytest-xdist worker
    (`hasattr(config, "workerinput")`, as the `worker_id` fixture does) finds
    no `workerinput`: recorded as a read of PYTEST_XDIST_WORKER, which the
    CLI keys as the run sets it, so a result that depends on not being in a
    worker is not reused by `-n` (workers record their `workerinput` reads
    the same way, rpytest.parallel). Defined here so that the recorder's
    stack walk passes over it to the code that asked."""
    if "__getattr__" in vars(config_class):
        return

    def __getattr__(self: Any, name: str) -> Any:
        if name in ("workerinput", "workeroutput"):
            sys.audit("rpytest.env", "PYTEST_XDIST_WORKER")
        raise AttributeError("%r object has no attribute %r" % (type(self).__name__, name))

    config_class.__getattr__ = __getattr__


def install_option_prologues(config: Any) -> None:
    """Reads of pytest's options through getoption/getvalue/get_verbosity raise
    rpytest.option, unless pytest's own code asks (the terminal reporter, the
    runner: a dozen reads per test that no recorder needs to see)."""
    _with_prologues("options", _option_targets(type(config), _pytest_is_third_party()))


def _option_targets(cls: Any, skip_pytest: bool) -> List[Tuple[Any, str, str]]:
    source = getattr(sys.modules.get(cls.__module__), "__file__", None) or ""
    funcs = [getattr(cls, n, None) for n in ("getoption", "getvalue", "get_verbosity")]
    stmt = 'sys.audit("rpytest.option")'
    if skip_pytest:
        stmt = 'if getattr(sys, "_getframe", None) is None or not (sys._getframe(1).f_globals.get("__file__") or "").startswith(%r): %s' % (_PYTEST_PREFIX, stmt)
    return [(f, stmt, source) for f in funcs if f is not None]


def prepare_prologues() -> None:
    """Compile every prologue now (the daemon imports this module once; each
    session it forks then only swaps code objects in)."""
    from _pytest.config import Config

    targets = _environ_targets() + _import_module_targets() + _probe_targets() + _option_targets(Config, True)
    for func, stmt, source in targets:
        code = func.__code__
        if (code, stmt) not in _PROLOGUES:
            new = _compile_prologue(func, stmt, source)
            if new is not None:
                _PROLOGUES[(code, stmt)] = new
    _PARSED.clear()


def uninstall_option_prologues() -> None:
    _uninstall("options")


def install_option_attribute_reads(config: Any) -> None:
    """Direct attribute reads of `config.option` and `config.invocation_params`
    by first-party code (a test, a conftest) reach the recorder."""
    global _blind
    first_party: Dict[str, bool] = {}
    switched: List[Tuple[Any, type]] = []
    for attr in ("option", "invocation_params"):
        target = getattr(config, attr, None)
        if target is None or getattr(type(target), "_rpytest_recording", False):
            continue
        base = type(target)
        if _record_attribute_reads(target, first_party):
            switched.append((target, base))
        else:
            _blind = True

    earlier = _UNDO.pop("option_attributes", None)  # another config's (pytest.main run twice)

    def undo() -> None:
        for target, base in switched:
            object.__setattr__(target, "__class__", base)
        if earlier is not None:
            earlier()

    _UNDO["option_attributes"] = undo


def uninstall_option_attribute_reads() -> None:
    _uninstall("option_attributes")


def _record_attribute_reads(target: Any, first_party: Dict[str, bool]) -> bool:
    """Switch `target` to a subclass of its class that tells the recorder when
    first-party code (a test, a conftest) reads one of its attributes."""
    base = type(target)
    skip_pytest = _pytest_is_third_party()

    def __getattribute__(self: Any, name: str) -> Any:
        rec = _RECORDER
        if rec is not None and rec.enabled and (name == "__dict__" or not name.startswith("__")):
            caller = _getframe(1)
            if skip_pytest and (caller.f_globals.get("__file__") or "").startswith(_PYTEST_PREFIX):
                return base.__getattribute__(self, name)  # pytest's own read
            fn = caller.f_code.co_filename
            v = first_party.get(fn)
            if v is None:
                v = first_party[fn] = rec.rel(fn) is not None
            if v:
                rec.on_option()
        return base.__getattribute__(self, name)

    def __reduce_ex__(self: Any, protocol: Any) -> Any:
        # Pickle and copy as the original class (nothing of rpytest's travels).
        import copyreg

        return (copyreg._reconstructor, (base, object, None), dict(base.__getattribute__(self, "__dict__")))

    try:
        recording = type(
            base.__name__,
            (base,),
            {"__getattribute__": __getattribute__, "__reduce_ex__": __reduce_ex__, "_rpytest_recording": True},
        )
        recording.__module__ = base.__module__
        recording.__qualname__ = base.__qualname__
        object.__setattr__(target, "__class__", recording)
    except TypeError:
        return False
    return True


_PYTEST_CONFIG = os.path.join(_PYTEST_DIR, "config", "__init__.py")


def _on_option_event(rec: Recorder) -> None:
    # The prologue's frame is pytest's getoption (or get_verbosity, which calls
    # getoption); the code that called them decides. pytest's own helpers that
    # a test calls (the assertion rewriter sizing a repr) are pytest's reads.
    frame: Any = _getframe(1)
    while frame is not None and (frame.f_globals is _GLOBALS or frame.f_code.co_filename == _PYTEST_CONFIG):
        frame = frame.f_back
    if frame is not None and rec.rel(frame.f_code.co_filename) is not None:
        rec.on_option()


def install_capture_disabled_check() -> None:
    """`capsys.disabled()` (capfd's, capsysbinary's...) lets a test print to the
    terminal past capture, as under pytest; a replayed result would print
    nothing, so the recorder hears of each use (`on_terminal_output`)."""
    if "capture_disabled" in _UNDO:
        return
    try:
        from _pytest.capture import CaptureFixture
    except Exception:
        return
    original = CaptureFixture.disabled

    @functools.wraps(original)
    def disabled(self: Any, *args: Any, **kwargs: Any) -> Any:
        rec = _RECORDER
        if rec is not None:
            try:
                rec.on_terminal_output()
            except Exception:
                pass
        return original(self, *args, **kwargs)

    CaptureFixture.disabled = disabled  # type: ignore[method-assign]

    def undo() -> None:
        CaptureFixture.disabled = original  # type: ignore[method-assign]

    _UNDO["capture_disabled"] = undo


def install_stdin_reader() -> None:
    """Stdin is live for the tests (`-s`): put a reader in front of it that tells
    the recorder when a test reads it (input() is seen by its audit event; this
    covers sys.stdin.read/readline). sys.stdin stays sys.__stdin__, as under pytest."""
    import io

    if "stdin" in _UNDO:
        return
    old = sys.stdin
    old_dunder = sys.__stdin__
    try:
        fd = old.fileno()
    except (AttributeError, OSError, ValueError):
        return

    class StdinReader(io.RawIOBase):
        name = "<stdin>"

        def readable(self) -> bool:
            return True

        def fileno(self) -> int:
            return fd

        def isatty(self) -> bool:
            return os.isatty(fd)

        def readinto(self, buffer: Any) -> int:
            rec = _RECORDER
            if rec is not None and rec.enabled:
                try:
                    rec.on_stdin()
                except Exception:
                    pass
            data = os.read(fd, len(buffer))
            buffer[: len(data)] = data
            return len(data)

    raw = StdinReader()
    stream = io.TextIOWrapper(
        io.BufferedReader(raw),
        encoding=getattr(old, "encoding", None) or "utf-8",
        errors=getattr(old, "errors", None) or "strict",
        line_buffering=bool(getattr(old, "line_buffering", False)),
    )
    try:
        stream.mode = "r"  # type: ignore[misc]
    except AttributeError:
        pass
    if sys.__stdin__ is old:
        sys.__stdin__ = stream
    sys.stdin = stream
    _LIVE_STDIN[:] = [stream]

    def undo() -> None:
        if sys.stdin is stream:
            sys.stdin = old
        if sys.__stdin__ is stream:
            sys.__stdin__ = old_dunder
        _LIVE_STDIN.clear()

    _UNDO["stdin"] = undo


def uninstall_stdin_reader() -> None:
    _uninstall("stdin")


try:
    prepare_prologues()
except Exception:  # compiled on demand by each installer instead
    _PROLOGUES.clear()
