"""Collection warnings a module raises once per process, at its first import.

A helper that warns at import with `stacklevel=2` names the line of whoever
imported it first: under pytest one warning, at the first importer. When that
importer is replayed from the cache and another file imports the helper in
the running session, the stored warning and the live one name two importers
of the same statement. Such a stored warning is the live one again."""

import linecache
import os
from typing import Any, Iterable, Tuple


def _statement(filename: str, lineno: int) -> str:
    """The source line at `filename:lineno`, stripped ("" when unknown)."""
    if not filename or lineno <= 0:
        return ""
    return linecache.getline(filename, lineno).strip()


def raised_live_by_same_import(warning: Any, live: Iterable[Tuple[str, str, str, int]]) -> bool:
    """Whether the running session raised `warning` (a replayed collection
    warning) already: same category and message, raised at an import
    statement identical to the one the stored warning names (another file
    importing the same module, whose body warns once per process)."""
    category = getattr(warning.category, "__name__", "")
    message = str(warning.message)
    mine = _statement(os.path.abspath(str(warning.filename)), int(warning.lineno or 0))
    if not mine.startswith(("import ", "from ")):
        return False
    for cat, msg, filename, lineno in live:
        if cat == category and msg == message and _statement(filename, lineno) == mine:
            return True
    return False
