"""Per-session cost of entering the hermetic sandbox, measured the way the
daemon pays it: a warm process (pytest and rpytest imported) forks a child;
the child enters the sandbox (or not) and exits. Reports, over N forks each,
the median wall time from fork to the parent's waitpid for plain children and
for sandboxed ones (their difference is the overhead a session pays, namespace
teardown at exit included), and the median time spent inside `sandbox.enter`.

usage: python tests/bench/sandbox_overhead.py PROJECT_DIR [N]
"""

import gc
import os
import statistics
import sys
import time

import pytest  # noqa: F401  (warm, as in the daemon)

from rpytest import sandbox


def run(root: str, sandboxed: bool, n: int):
    cfg = {"rootdir": root, "files": [], "env": {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "TZ": "UTC"}}
    walls, inside = [], []
    gc.freeze()
    for _ in range(n):
        r, w = os.pipe()
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            t = 0.0
            if sandboxed:
                a = time.perf_counter()
                sandbox.enter(cfg)
                sandbox.apply_env(cfg["env"])
                t = time.perf_counter() - a
            os.write(w, repr(t).encode())
            os._exit(0)
        os.close(w)
        data = os.read(r, 64)
        os.close(r)
        _, status = os.waitpid(pid, 0)
        walls.append(time.perf_counter() - t0)
        if status != 0:
            raise SystemExit("child failed: %r" % status)
        inside.append(float(data))
    return statistics.median(walls) * 1000, statistics.median(inside) * 1000


def main() -> None:
    root = os.path.realpath(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    os.chdir(root)
    plain, _ = run(root, False, n)
    boxed, enter = run(root, True, n)
    print("project %s, %d forks each" % (root, n))
    print("plain child: %.2f ms   sandboxed child: %.2f ms   overhead: %.2f ms   (inside enter: %.2f ms)"
          % (plain, boxed, boxed - plain, enter))


if __name__ == "__main__":
    main()
