"""CPU cost of a pytest session in which all but a few test files are cached.

usage: python tests/bench/onefile_session.py TREE RUN_FILE [--freeze] [--profile OUT] [pytest args...]

Runs a real pytest session with the rpytest plugin in TREE (a tree from
tests/gen_tree.py): every `tests/**/test_*.py` file but RUN_FILE is handed
to the plugin as cached (three passed tests each, as gen_tree.py writes
them), as the CLI hands a plan's skipped files, with the plugins every session has. Prints the session's wall
and CPU time. Events go to /dev/null, the terminal output to a file.
`--freeze`: `gc.freeze()` after the cached entries are made, as the daemon
freezes its heap (the decoded request) before it forks a session.
"""
import os
import sys
import time

import pytest

from rpytest.plugin import RpytestPlugin
from rpytest.protocol import EventWriter
from rpytest.thirdparty import ThirdParty


class Phases:
    """Process CPU time at the session's phase boundaries."""

    def __init__(self):
        self.marks = [("start", time.process_time())]

    def mark(self, name):
        self.marks.append((name, time.process_time()))

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self, session):
        self.mark("configure")

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session):
        self.mark("collection")

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session):
        try:
            return (yield)
        finally:
            self.mark("run and replay")

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config):
        self.mark("summary")

    def show(self, end):
        self.marks.append(("cleanup (gc)", end))
        return ", ".join("%s %.3f" % (n, t - p) for (_, p), (n, t) in zip(self.marks, self.marks[1:]))


def main():
    tree, run_file = os.path.abspath(sys.argv[1]), sys.argv[2]
    args = sys.argv[3:]
    profile = None
    freeze = args[:1] == ["--freeze"]
    if freeze:
        args = args[1:]
    if args[:1] == ["--profile"]:
        profile, args = args[1], args[2:]
    files = []
    for d, _, names in os.walk(os.path.join(tree, "tests")):
        files += [os.path.relpath(os.path.join(d, n), tree) for n in names if n.startswith("test_") and n.endswith(".py")]
    skip = sorted(f for f in files if f != run_file)
    cached = [
        {"nodeid": "%s::test_%d" % (f, i), "file": f, "outcome": "passed", "duration": 0.001,
         "location": [f, 3 + 4 * i, "test_%d" % i], "output": {"phases": [0.0001, 0.001, 0.0001]}}
        for f in skip for i in range(3)
    ]
    os.chdir(tree)
    if freeze:
        import gc

        gc.freeze()
    null = os.open(os.devnull, os.O_WRONLY)
    t0, c0 = time.perf_counter(), time.process_time()
    phases = Phases()
    rp = RpytestPlugin({"rootdir": tree, "record": False, "skip_files": skip, "cached": cached}, EventWriter(null))
    out = open("/tmp/onefile_session.out", "w")
    saved = os.dup(1)
    os.dup2(out.fileno(), 1)
    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    try:
        rp.start()
        pytest.main(["-p", "no:cacheprovider", *args], plugins=[rp, ThirdParty(rp), phases])
        rp.stop()
    finally:
        if prof is not None:
            prof.disable()
            prof.dump_stats(profile)
        sys.stdout.flush()
        os.dup2(saved, 1)
    took, cpu = time.perf_counter() - t0, time.process_time() - c0
    with open("/tmp/onefile_session.out") as f:
        tail = f.read().strip().splitlines()[-1:]
    print("%d cached files: session %.3f s wall, %.3f s CPU; %s" % (len(skip), took, cpu, tail))
    print("CPU seconds: " + phases.show(c0 + cpu))


if __name__ == "__main__":
    main()
