"""What the session's own parser knows of the options plugins and conftest
files registered, for the CLI: how many values each takes (so it can read a
command line with plugin options), the group it sits in and its help (so it
can tell a report's option from one that changes outcomes)."""

from typing import Any, Dict, List

# argparse actions that take no value.
_FLAGS = {"store_true", "store_false", "store_const", "append_const", "count", "help", "version"}


def _arity(attrs: Dict[str, Any]) -> Any:
    action = attrs.get("action")
    if isinstance(action, str) and action in _FLAGS:
        return "none"
    nargs = attrs.get("nargs")
    if nargs is None:
        return "one"
    if nargs == "?":
        return "optional"
    if nargs in ("+", "*") or not isinstance(nargs, int):
        return "many"
    if nargs == 0:
        return "none"
    return {"exactly": nargs}


def describe(config: Any) -> List[Dict[str, Any]]:
    """Every option of the session's parser: names, arity, group, dest, help."""
    parser = getattr(config, "_parser", None)
    if parser is None:
        return []
    groups = [("", getattr(parser, "_anonymous", None))] + [(g.name, g) for g in getattr(parser, "_groups", [])]
    out: List[Dict[str, Any]] = []
    for name, group in groups:
        for opt in getattr(group, "options", None) or ():
            try:
                attrs = opt.attrs()
                names = list(opt.names())
            except Exception:
                continue
            if not names:
                continue
            out.append({
                "names": names,
                "arity": _arity(attrs),
                "group": str(name or ""),
                "dest": str(attrs.get("dest") or ""),
                "help": str(attrs.get("help") or "")[:300],
            })
    return out
