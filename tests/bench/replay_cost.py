"""Per-node cost of replaying cached results inside a real pytest session.

usage: python tests/bench/replay_cost.py N [--kw] [pytest args...]

--kw: every result also stores keywords beyond its node ID's (a
parametrized test's `parametrize` and parameter ID), as a marked or
parametrized test's does.

Runs pytest on a one-test project with the rpytest plugin, replays N
synthetic cached results (passed, in files of 3 tests) through the
plugin's replay path, and prints the replay time per node in µs (wall clock and the process's
CPU time, which a busy machine disturbs less). Events
go to /dev/null, the terminal output to a file (as to a non-tty).
"""
import os
import sys
import tempfile
import time

import pytest

from rpytest.plugin import RpytestPlugin
from rpytest.protocol import EventWriter


class Timer:
    def __init__(self, rp, n):
        self.rp, self.n, self.took = rp, n, None

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session):
        entries = [
            {"nodeid": "tests/test_f%d.py::test_%d" % (i // 3, i % 3), "file": "tests/test_f%d.py" % (i // 3),
             "outcome": "passed", "duration": 0.001, "location": ["tests/test_f%d.py" % (i // 3), i % 3, "test_%d" % (i % 3)],
             "output": {"phases": [0.0001, 0.001, 0.0001]}}
            for i in range(self.n)
        ]
        if self.kw:
            for e in entries:
                e["output"]["kw"] = ["parametrize", "pytestmark", "1"]
        try:  # what the session does with the entries the CLI sent
            from rpytest.cached import untracked_parts
        except ImportError:
            pass
        else:
            untracked_parts(entries)
        session.testscollected += self.n
        t0, c0 = time.perf_counter(), time.process_time()
        if hasattr(self.rp, "_replay_many"):
            self.rp._replay_many(entries)
        else:  # rpytest before batched replay: one node at a time
            for e in entries:
                self.rp._replay(e)
        self.took = time.perf_counter() - t0
        self.cpu = time.process_time() - c0


def main():
    n = int(sys.argv[1])
    args = sys.argv[2:]
    kw = "--kw" in args
    if kw:
        args.remove("--kw")
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "test_one.py"), "w") as f:
            f.write("def test_one():\n    pass\n")
        os.chdir(d)  # run from the rootdir, as users do
        null = os.open(os.devnull, os.O_WRONLY)
        rp = RpytestPlugin({"rootdir": d, "record": False}, EventWriter(null))
        timer = Timer(rp, n)
        timer.kw = kw
        out = open(os.path.join(d, "out.txt"), "w")
        saved = os.dup(1)
        os.dup2(out.fileno(), 1)
        try:
            pytest.main(["-p", "no:cacheprovider", *args], plugins=[rp, timer])
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
        print("%d nodes: %.1f µs per node wall, %.1f µs CPU (%s)" % (
            n, timer.took * 1e6 / n, timer.cpu * 1e6 / n, " ".join(args + ["--kw"] * kw) or "default output"))


if __name__ == "__main__":
    main()
