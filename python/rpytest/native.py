"""rpytest's native module (`native/` in the source tree): an audit hook that
filters events in native code and a recorder of the code objects a thread
enters. The rpytest binary carries it and hands its path to the Python
processes it starts in RPYTEST_NATIVE_MODULE; this module takes the variable
out of the environment at import (the tests never see it) and loads it.

`MODULE` is the loaded module, or None: no path given, `RPYTEST_NATIVE=0`,
not CPython, a free-threaded build, or any failure to load. Everything that
uses it has a Python fallback that records the same inputs.

The module's functions (all called with the GIL; none raises an audit event):

* `set_audit_hook(events, callback) -> bool`: `callback(event, args)` is
  called for each audit event named in `events`, with tracing paused (as
  CPython calls a Python hook); its exceptions propagate into the audited
  operation. The C hook is added once per process; later calls replace the
  names and callback, `callback=None` stops. False when the interpreter
  cannot pause tracing (CPython < 3.11): use `sys.addaudithook` then.
* `audit_hook_added() -> bool`.
* `calls_start() -> bool`: a C profile function on the calling thread keeps
  each distinct code object entered (Python functions, resumed generators,
  module and class bodies; not C functions), holding a reference to each.
  `sys.getprofile()` stays None.
* `calls_take() -> list`: the code objects entered since the last take, each
  once, in no order; forgets them.
* `calls_active() -> bool`: whether our profile function is still the
  calling thread's (sys.setprofile, cProfile or a test may have replaced it).
* `calls_stop() -> bool`: removes it if it is still the thread's (another
  profiler in its place is left alone); says whether it was.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Optional

PATH_VAR = "RPYTEST_NATIVE_MODULE"
SWITCH_VAR = "RPYTEST_NATIVE"

_path = os.environ.pop(PATH_VAR, None)


def disabled() -> bool:
    """`RPYTEST_NATIVE=0` (read once, when rpytest starts the process)."""
    return os.environ.get(SWITCH_VAR, "").strip() == "0"


def load(path: Optional[str]) -> Optional[Any]:
    """The module in the file `path`, or None if it cannot be used here."""
    if not path or sys.implementation.name != "cpython":
        return None
    try:
        import sysconfig

        if sysconfig.get_config_var("Py_GIL_DISABLED"):
            return None  # abi3 modules do not load into a free-threaded build
        from importlib.machinery import ExtensionFileLoader
        from importlib.util import module_from_spec, spec_from_file_location

        loader = ExtensionFileLoader("rpytest_native", path)
        spec = spec_from_file_location("rpytest_native", path, loader=loader)
        if spec is None:
            return None
        module = module_from_spec(spec)
        loader.exec_module(module)
        return module
    except Exception:  # a module that does not load is no module
        return None


_DISABLED = disabled()
MODULE: Optional[Any] = None if _DISABLED else load(_path)
