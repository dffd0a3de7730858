"""`python -m rpytest`: runs the rpytest binary installed beside this
interpreter (maturin puts it in the environment's scripts directory) with
the same arguments, and exits with its exit code."""

import os
import shutil
import subprocess
import sys
import sysconfig
from typing import List, Optional, Tuple


def _candidates() -> List[str]:
    name = "rpytest.exe" if os.name == "nt" else "rpytest"
    dirs: List[str] = []
    try:
        # A `pip install --user`: the user scheme's scripts directory.
        user = sysconfig.get_path("scripts", f"{os.name}_user")
    except KeyError:
        user = None
    for scheme_dir in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable), user):
        if scheme_dir and scheme_dir not in dirs:
            dirs.append(scheme_dir)
    return [os.path.join(d, name) for d in dirs]


def find_binary() -> Tuple[Optional[str], bool]:
    """The rpytest binary of this environment, else the first on PATH; and
    whether it is this environment's own."""
    for path in _candidates():
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path, True
    return shutil.which("rpytest"), False


def main(argv: Optional[List[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    binary, own = find_binary()
    if binary is None:
        sys.stderr.write(
            "ERROR: the rpytest binary is not installed beside %s (looked in %s) nor on PATH.\n"
            "  Install it there: %s -m pip install rpytest\n"
            % (sys.executable, ", ".join(os.path.dirname(c) for c in _candidates()), sys.executable)
        )
        return 4
    env = None
    if not own and "VIRTUAL_ENV" not in os.environ and sys.prefix != sys.base_prefix:
        # A binary from elsewhere on PATH: `python -m rpytest` still names the
        # environment that runs the tests (as an activated virtualenv would).
        env = dict(os.environ, VIRTUAL_ENV=sys.prefix)
    if os.name != "nt":
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            if env is None:
                os.execv(binary, [binary] + args)
            else:
                os.execve(binary, [binary] + args, env)
        except OSError as e:
            sys.stderr.write("ERROR: could not run %s: %s\n" % (binary, e))
            return 4
    return subprocess.call([binary] + args, env=env)


if __name__ == "__main__":
    sys.exit(main())
