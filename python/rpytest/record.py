"""Records what a session actually used: first-party imports (and import edges), files
opened for reading, and environment variables read. Installed only in session processes.

Attribution: everything goes to the "active" test file (set by the plugin around a
file's collection and its tests' setup/call), or to None (global: enters every file's
key). Reads and env lookups made while a module body is being executed for the first
time by an import statement are global: the module caches their effect for every later
importer (e.g. `SETTINGS = json.load(open("settings.json"))` at module level).

Whole-environment reads (iteration of `os.environ`, `os.environ.copy()`, `len`, a
subprocess that inherits the environment) are recorded as the env name `*`.
"""

from __future__ import annotations

import builtins
import importlib
import os
import sys
from typing import Any, Dict, List, Optional, Set, Tuple

# Path components that never hold first-party inputs.
EXCLUDED_PARTS = frozenset(
    {".git", ".hg", ".svn", ".rpytest", ".pytest_cache", "__pycache__", "site-packages", "dist-packages",
     ".tox", ".nox", ".venv", "venv", ".mypy_cache", ".ruff_cache", ".eggs"}
)

# Output-only or per-shell/per-terminal variables. Not recorded when read outside a
# test file's window (pytest's own terminal machinery reads some of them), recorded
# when a test reads them by name. The CLI keys the env name `*` (a whole-environment
# read) on the environment minus these: exact names, and names starting with a prefix
# in COSMETIC_ENV_PREFIXES. Mirrored by the Rust side: change both together.
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
    return name in COSMETIC_ENV or name.startswith(COSMETIC_ENV_PREFIXES)


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

_DIRECTORY = getattr(os, "O_DIRECTORY", 0)

_STDLIB = os.path.dirname(os.__file__) + os.sep
_STDLIB_SITE = (_STDLIB + "site-packages" + os.sep, _STDLIB + "dist-packages" + os.sep)

_PYTEST_DIR = os.path.dirname(importlib.import_module("_pytest").__file__ or "")

# Code whose directory listings, environment iteration and subprocesses are
# machinery, not a test's input.
_MACHINERY = (
    "<frozen importlib",
    "<frozen zipimport",
    _PYTEST_DIR + os.sep,
    os.path.dirname(importlib.import_module("pluggy").__file__ or "") + os.sep,
    os.path.dirname(__file__) + os.sep,
)

# pytest code that runs on a test's behalf: pytester starts subprocesses with a copy
# of the environment.
_PYTESTER = os.path.join(_PYTEST_DIR, "pytester.py")

# unittest.mock.patch.dict copies the dict it patches (and restores it): not a read.
_MOCK = os.path.join(os.path.dirname(os.__file__), "unittest", "mock.py")


_HERE = sys._getframe(0).f_code.co_filename


def from_machinery() -> bool:
    """Whether the event being recorded (an audit event, an os.environ method) comes
    from machinery (the import system, pytest, pluggy, rpytest) rather than from a
    test or a module it uses: the first caller outside this module and the standard
    library (glob, pathlib, os.walk, subprocess, os.environ.copy...) decides."""
    frame: Any = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == _HERE:
        frame = frame.f_back
    while frame is not None:
        fn = frame.f_code.co_filename
        if fn.startswith(_STDLIB) and not fn.startswith(_STDLIB_SITE):
            if fn == _MOCK:
                return True
        elif not fn.startswith("<frozen ") or fn.startswith(_MACHINERY):  # "<frozen os>" is stdlib
            return fn.startswith(_MACHINERY) and fn != _PYTESTER
        frame = frame.f_back
    return False


Key = Optional[str]


class Recorder:
    def __init__(self, rootdir: str) -> None:
        roots = {os.path.normpath(rootdir), os.path.realpath(rootdir)}
        self.prefixes = tuple(sorted(r.rstrip(os.sep) + os.sep for r in roots))
        self.enabled = False
        self.active: Key = None
        self.import_depth = 0  # >0 while a new module body runs under an import statement
        self.imports: Dict[Key, Set[str]] = {None: set()}
        self.reads: Dict[Key, Set[str]] = {None: set()}
        self.env: Dict[Key, Set[str]] = {None: set()}
        self.lists: Dict[Key, Set[str]] = {None: set()}
        # Paths each key wrote: a later read by the same key is of its own output.
        self.wrote: Dict[Key, Set[str]] = {None: set()}
        # .py files read while a module body ran under an import, with the key active
        # then: the import system loading a module (recorded as an import of that key,
        # which the CLI closes over edges), else a module loaded by path
        # (spec_from_file_location + exec_module: no import, no edge), a read;
        # decided in deps().
        self.py_reads: Dict[Key, Set[Tuple[Key, str]]] = {None: set()}
        # Keys that started a subprocess (which can read anything unseen).
        self.spawns: Set[Key] = set()
        # Environment iteration in progress: the name just yielded, and the names a
        # finished iteration yielded (dict(os.environ) reads them all next, in order).
        # Those item reads are part of the whole-environment read, not reads by name.
        self.env_next: Optional[Any] = None
        self.env_queue: List[Any] = []
        self.env_pos = 0
        # True while pytest walks directories to collect: its own listings are
        # not inputs of any test (a new test file is found by the CLI's discovery).
        self.collecting = False
        self.written: Set[str] = set()
        self.edges: Set[Tuple[str, str]] = set()
        self._written_dirs: Optional[Set[str]] = None
        self._rel: Dict[str, Optional[str]] = {}
        self._seen: Set[Tuple[Any, ...]] = set()
        self._venv_tops: Dict[str, bool] = {}
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
        self.outside: Set[Key] = set()
        self._outside_seen: Dict[str, bool] = {}

    # ---- paths ------------------------------------------------------------

    def rel(self, path: Any) -> Optional[str]:
        """Rootdir-relative posix path of a first-party file, else None (cached)."""
        try:
            return self._rel[path]
        except (KeyError, TypeError):
            pass
        result = None
        try:
            p = os.fsdecode(os.fspath(path))
            if not os.path.isabs(p):
                p = os.path.join(os.getcwd(), p)
            p = os.path.normpath(p)
            result = self._rel_abs(p)
        except Exception:
            result = None
        if isinstance(path, str):
            self._rel[path] = result
        return result

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
        v = self._venv_tops.get(top)
        if v is None:
            v = self._venv_tops[top] = os.path.isfile(os.path.join(top, "pyvenv.cfg"))
        return v

    # ---- attribution ------------------------------------------------------

    def set_active(self, key: Key) -> Key:
        prev = self.active
        self.active = key
        self.env_next = None
        self.env_queue = []
        if key is not None and key not in self.imports:
            self.imports[key] = set()
            self.reads[key] = set()
            self.env[key] = set()
            self.lists[key] = set()
            self.wrote[key] = set()
            self.py_reads[key] = set()
        return prev

    def _data_key(self) -> Key:
        return None if self.import_depth else self.active

    # ---- events -----------------------------------------------------------

    def on_modules(self, importer_file: Any, names: List[str]) -> None:
        importer = self.rel(importer_file) if importer_file else None
        bucket = self.imports[self.active]
        modules = sys.modules
        for n in names:
            m = modules.get(n)
            f = getattr(m, "__file__", None) if m is not None else None
            if not f:
                continue
            r = self.rel(f)
            if r is None:
                if self._is_outside_code(f):
                    self.outside.add(self.active)
                continue
            bucket.add(r)
            if importer is not None and importer != r:
                self.edges.add((importer, r))

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

    def on_open(self, args: Tuple[Any, ...]) -> None:
        path, mode, flags = args[0], args[1], args[2]
        if isinstance(path, int) or path is None or (flags or 0) & _DIRECTORY:
            return  # fdopen, or a directory (listings are not tracked)
        r = self.rel(path)
        if r is None:
            return
        if isinstance(mode, str):
            write = "w" in mode or "a" in mode or "x" in mode or "+" in mode
        else:
            write = bool((flags or 0) & _WRITE_FLAGS)
        k = self._data_key()
        if write:
            self.written.add(r)
            self.wrote[k].add(r)
        elif r.endswith("conftest.py"):
            return  # conftest.py files are inputs of exactly the tests below them, by the chain
        elif r in self.wrote[k]:
            return  # this key's own output, written before it read it
        elif self.import_depth and r.endswith((".py", ".pyc")):
            # The import system (or pytest's assertion rewriter) reading a module's
            # source, or a module loaded by path: told apart in deps().
            self.py_reads[k].add((self.active, r))
        else:
            self.reads[k].add(r)

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
        k = self._data_key()
        if r in self.wrote[k]:
            return
        if not os.path.exists(db):
            self.written.add(r)
            self.wrote[k].add(r)
            return
        self.reads[k].add(r)

    def on_spawn(self, inherits_env: bool) -> None:
        """A subprocess (subprocess.Popen, os.system, os.exec*, os.posix_spawn, os.fork)."""
        if from_machinery():
            return
        k = self._data_key()
        self.spawns.add(k)
        if inherits_env:
            self.env[k].add("*")

    def on_env_all(self) -> None:
        """The whole environment was read (iteration, len, copy, repr)."""
        if from_machinery():
            return
        self.env[self._data_key()].add("*")

    def on_list(self, path: Any) -> None:
        """A directory listing (os.listdir/os.scandir, and so glob, os.walk,
        Path.iterdir): the set of names in it is an input."""
        if self.collecting and self.active is None:
            return
        if isinstance(path, int):
            return  # a listing by file descriptor: its directory is unknown
        if path is None:
            path = "."
        r = self.rel(path)
        if r is None:
            # rel() is for files under rootdir; the rootdir itself is ''.
            try:
                p = os.path.normpath(os.path.abspath(os.fsdecode(os.fspath(path))))
            except Exception:
                return
            if p + os.sep not in self.prefixes:
                return
            r = ""
        # Whoever called os.listdir, glob, pathlib, os.walk tells whether a test
        # or the machinery wanted the listing.
        if from_machinery():
            return  # the import system's and pytest's own directory scans
        self.lists[self._data_key()].add(r)

    def on_env(self, key: Any) -> None:
        if self.env_next is not None or self.env_queue:
            if key == self.env_next:
                self.env_next = None
                return  # an item of an iteration (items(), values(), `for k in environ: environ[k]`)
            q = self.env_queue
            if q:
                if self.env_pos < len(q) and q[self.env_pos] == key:
                    self.env_pos += 1
                    return  # dict(os.environ) reading what its iteration listed
                self.env_queue = []
        name = key if isinstance(key, str) else os.fsdecode(key)
        k = self._data_key()
        if k is None and is_cosmetic_env(name):
            return
        self.env[k].add(name)

    def env_iter(self, it: Any) -> Any:
        """Wraps os.environ's key iterator (see on_env)."""
        seen = []
        for name in it:
            self.env_next = name
            seen.append(name)
            yield name
        self.env_next = None
        self.env_queue = seen
        self.env_pos = 0

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

    def deps(self, key: Key) -> Dict[str, Any]:
        own = {key} if key else set()
        reads = set(self.reads.get(key, ()))
        for active, r in self.py_reads.get(key, ()):
            if r not in self.imports.get(active, ()) and r[:-1] not in self.imports.get(active, ()):
                reads.add(r)  # no import of it was recorded: loaded by path
        return {
            "type": "deps",
            "file": key,
            "imports": sorted(self.imports.get(key, set()) - own),
            "reads": sorted(r for r in reads if self._is_input(r)),
            "env": sorted(self.env.get(key, set())),
            "lists": sorted(d for d in self.lists.get(key, set()) if d not in self._written_dir_set()),
            "spawns": key in self.spawns,
            # Imported code outside the project and outside installed packages.
            "outside": key in self.outside,
            # Inputs this session itself produced (some key wrote them): their
            # state at the end of the run says nothing about the next run, so
            # results that depend on them are never stored.
            "generated": sorted(r for r in reads if r in self.written),
        }

    def _written_dir_set(self) -> Set[str]:
        self._is_input("")  # fills _written_dirs
        return self._written_dirs or set()


_RECORDER: Optional[Recorder] = None
_installed = False


def _resolve(name: str, globals_: Any, level: int) -> Optional[str]:
    if level <= 0:
        return name
    if not globals_:
        return None
    package = globals_.get("__package__")
    if package is None:
        spec = globals_.get("__spec__")
        package = getattr(spec, "parent", None)
        if package is None:
            package = globals_.get("__name__", "")
            if "__path__" not in globals_:
                package = package.rpartition(".")[0]
    bits = package.rsplit(".", level - 1)
    if len(bits) < level:
        return None
    base = bits[0]
    return "%s.%s" % (base, name) if name else base


def _requested(full: str, fromlist: Any, module: Any) -> List[str]:
    parts = full.split(".")
    names = [".".join(parts[: i + 1]) for i in range(len(parts))]
    if fromlist:
        items = list(fromlist)
        if "*" in items:
            items = [i for i in items if i != "*"] + list(getattr(module, "__all__", ()) or ())
        base = getattr(module, "__name__", full) if module is not None else full
        names.extend("%s.%s" % (base, i) for i in items if isinstance(i, str))
    return names


def install(recorder: Recorder) -> None:
    """Hook imports, opens and environ reads for the rest of this process."""
    global _RECORDER, _installed
    _RECORDER = recorder
    recorder.enabled = True
    if _installed:
        return
    _installed = True
    orig_import = builtins.__import__
    orig_import_module = importlib.import_module
    modules = sys.modules

    def recording_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        rec = _RECORDER
        if rec is None or not rec.enabled:
            return orig_import(name, globals, locals, fromlist, level)
        full = _resolve(name, globals, level) if level else name
        mod = modules.get(full) if full is not None else None
        if mod is None:
            new = True
        elif fromlist:
            new = False
            for item in fromlist:
                if item != "*" and not hasattr(mod, item):
                    new = True  # `from pkg import sub` may run sub's body now
                    break
        else:
            new = False
        if new:
            rec.import_depth += 1
            try:
                module = orig_import(name, globals, locals, fromlist, level)
            finally:
                rec.import_depth -= 1
        else:
            module = orig_import(name, globals, locals, fromlist, level)
        try:
            importer = globals.get("__file__") if globals else None
            fl = tuple(fromlist) if fromlist else ()
            key = (rec.active, importer, full, fl)
            if key not in rec._seen or new:
                rec._seen.add(key)
                if full is None:
                    full = getattr(module, "__name__", name)
                rec.on_modules(importer, _requested(full, fl, module))
        except Exception:
            pass
        return module

    def recording_import_module(name: str, package: Optional[str] = None) -> Any:
        rec = _RECORDER
        if rec is None or not rec.enabled:
            return orig_import_module(name, package)
        caller = sys._getframe(1).f_globals
        from_pytest = str(caller.get("__name__", "")).startswith(("_pytest", "pluggy"))
        new = name not in modules
        if new and not from_pytest:
            rec.import_depth += 1
            try:
                module = orig_import_module(name, package)
            finally:
                rec.import_depth -= 1
        else:
            module = orig_import_module(name, package)
        try:
            full = getattr(module, "__name__", name)
            rec.on_modules(caller.get("__file__"), _requested(full, (), module))
        except Exception:
            pass
        return module

    recording_import_module.__doc__ = orig_import_module.__doc__
    recording_import_module.__wrapped__ = orig_import_module  # type: ignore[attr-defined]
    builtins.__import__ = recording_import
    importlib.import_module = recording_import_module

    handlers = {
        "open": Recorder.on_open,
        "os.listdir": lambda rec, args: rec.on_list(args[0] if args else None),
        "os.scandir": lambda rec, args: rec.on_list(args[0] if args else None),
        "sqlite3.connect": lambda rec, args: rec.on_sqlite(args[0]),
        # (executable, args, cwd, env): env None inherits the whole environment
        "subprocess.Popen": lambda rec, args: rec.on_spawn(args[3] is None),
        "os.system": lambda rec, args: rec.on_spawn(True),
        "os.exec": lambda rec, args: rec.on_spawn(args[2] is None),  # (path, args, env)
        "os.posix_spawn": lambda rec, args: rec.on_spawn(False),  # env is a mapping: iterated
        "os.fork": lambda rec, args: rec.on_spawn(False),
        "os.forkpty": lambda rec, args: rec.on_spawn(False),
    }
    get_handler = handlers.get

    def audit(event: str, args: Tuple[Any, ...]) -> None:
        handler = get_handler(event)
        if handler is not None:
            rec = _RECORDER
            if rec is not None and rec.enabled:
                try:
                    handler(rec, args)
                except Exception:
                    pass

    sys.addaudithook(audit)

    # os.environ must stay the same object: switch its class to a recording subclass.
    environ_cls = type(os.environ)

    def _note_whole_environment() -> None:
        rec = _RECORDER
        if rec is not None and rec.enabled:
            try:
                rec.on_env_all()
            except Exception:
                pass

    class RecordingEnviron(environ_cls):  # type: ignore[misc, valid-type]
        def __getitem__(self, key: Any) -> Any:
            rec = _RECORDER
            if rec is not None and rec.enabled:
                try:
                    rec.on_env(key)
                except Exception:
                    pass
            return environ_cls.__getitem__(self, key)

        # Whole-environment reads. items()/keys()/values(), dict(os.environ),
        # os.environ.copy(), `|`, `==` all go through __iter__ (+ __getitem__).
        def __iter__(self) -> Any:
            rec = _RECORDER
            if rec is not None and rec.enabled:
                try:
                    rec.on_env_all()
                    return rec.env_iter(environ_cls.__iter__(self))
                except Exception:
                    pass
            return environ_cls.__iter__(self)

        def __len__(self) -> int:
            _note_whole_environment()
            return environ_cls.__len__(self)

        def __repr__(self) -> str:
            _note_whole_environment()
            return environ_cls.__repr__(self)

        def clear(self) -> None:
            # MutableMapping.clear pops items one by one (iterating each time);
            # emptying the environment reads nothing.
            for k in list(self._data):
                try:
                    environ_cls.__delitem__(self, self.decodekey(k))
                except KeyError:
                    pass

    RecordingEnviron.__name__ = environ_cls.__name__
    RecordingEnviron.__qualname__ = environ_cls.__qualname__
    RecordingEnviron.__module__ = environ_cls.__module__
    os.environ.__class__ = RecordingEnviron
    if hasattr(os, "environb") and type(os.environb) is environ_cls:
        os.environb.__class__ = RecordingEnviron
