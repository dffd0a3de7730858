"""Replaying cached results without a hook call per report (rpytest.replay's
TerminalBulk and DirectCalls) prints exactly what pytest's hooks print."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PYTHON_DIR

DRIVER = r'''
import os, sys
sys.path.insert(0, sys.argv[1])
import pytest
from rpytest import replay
from rpytest.plugin import RpytestPlugin
from rpytest.protocol import EventWriter

if sys.argv[2] == "hooks":
    replay.TerminalBulk.make = classmethod(lambda cls, config, owner: None)
    replay.DirectCalls.make = classmethod(lambda cls, config, owner: None)

def entries():
    out = []
    sizes = [3, 1, 120, 7, 40, 2]
    for f, size in enumerate(sizes):
        file = "tests/sub/test_f%d.py" % f if f % 2 else "tests/test_f%d.py" % f
        for i in range(size):
            nodeid = "%s::test_%d" % (file, i)
            e = {"nodeid": nodeid, "file": file, "outcome": "passed", "duration": 0.001 * (i % 7),
                 "location": [file, i, "test_%d" % i], "longrepr": None, "wasxfail": None,
                 "output": {"phases": [0.0001, 0.001 * (i % 7), 0.0002]}}
            if i % 11 == 5:
                e["outcome"] = "skipped"
                e["longrepr"] = [file, i + 1, "Skipped: not here"]
            elif i % 13 == 7:
                e["outcome"] = "xfailed"
                e["wasxfail"] = "reason: known"
            elif i % 17 == 3:
                e["outcome"] = "skipped"
                e["longrepr"] = [file, i + 1, "Skipped: at run time"]
                e["output"]["skip_when"] = "call"
            if i % 9 == 4:
                e["output"]["sections"] = [["Captured stdout call", "out %d\n" % i, 6]]
            out.append(e)
    return out

class Replayer:
    def __init__(self, rp):
        self.rp = rp

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session):
        todo = entries()
        session.testscollected += len(todo)
        self.rp._replay_many(todo[:100])
        self.rp._replay_many(todo[100:])

rp = RpytestPlugin({"rootdir": os.getcwd(), "record": False}, EventWriter(None))
sys.exit(pytest.main(sys.argv[3:], plugins=[rp, Replayer(rp)]))
'''


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["-q"],
        ["-qq"],
        ["--color=yes"],
        ["-rA"],
        ["--durations=0", "--durations-min=0"],
        ["-v"],
        ["-vv"],
        ["-v", "--color=yes"],
        ["-p", "no:cacheprovider"],
    ],
    ids=lambda a: " ".join(a) or "default",
)
def test_bulk_replay_prints_what_the_hooks_print(tmp_path: Path, args) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_real.py").write_text("def test_real():\n    pass\n")
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)

    def run(mode: str) -> str:
        proc = subprocess.run(
            [sys.executable, str(driver), str(PYTHON_DIR), mode, "-p", "no:randomly", *args],
            cwd=tmp_path, capture_output=True, text=True, env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"}, timeout=120,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        # The one test that really runs takes its own time: its lines go.
        lines = [line for line in proc.stdout.splitlines() if "test_real" not in line or "::" not in line]
        return re.sub(r"in \d+\.\d+s", "in <t>", "\n".join(lines))

    hooks = run("hooks")
    assert "test_f2.py" in hooks or "-q" in " ".join(args) or "-v" in args
    assert run("bulk") == hooks
