"""What a first (recording) run costs beyond stock pytest's own work: how
many writes its events take, and which audit events the recorder raises."""

from __future__ import annotations

from pathlib import Path

from conftest import clean_env, run_driver, write_project

# Runs pytest with the session plugin, its events on one end of a
# SOCK_SEQPACKET pair (which keeps each write a message of its own), and
# counts the recorder's own `rpytest.env.set` audit events.
DRIVER = r'''
import json, os, socket, sys
sys.path.insert(0, sys.argv[1])
import pytest
from rpytest.plugin import RpytestPlugin
from rpytest.protocol import EventWriter

ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
counts = {"rpytest.env.set": 0}

def count(event, args):
    if event in counts:
        counts[event] += 1

cfg = json.loads(sys.argv[2])
cfg["rootdir"] = os.getcwd()
rp = RpytestPlugin(cfg, EventWriter(ours.fileno()))
rp.start()
sys.addaudithook(count)
code = pytest.main(["-q", "-p", "no:cacheprovider"], plugins=[rp])
rp.stop()
theirs.setblocking(False)
writes = []
while True:
    try:
        data = theirs.recv(1 << 20)
    except BlockingIOError:
        break
    writes.append([json.loads(line)["type"] for line in data.decode().splitlines()])
print("RESULT " + json.dumps({"code": int(code), "writes": writes, "counts": counts}))
'''

TESTS = 30


def _run(tmp_path: Path, cfg: dict, files: dict) -> dict:
    return run_driver(tmp_path, DRIVER, cfg, files)


PLAIN = {"test_many.py": "".join("def test_%d():\n    pass\n\n" % i for i in range(TESTS))}


def test_results_leave_in_batches_not_one_write_per_test(tmp_path: Path) -> None:
    got = _run(tmp_path, {"record": True}, PLAIN)
    assert got["code"] == 0
    types = [t for w in got["writes"] for t in w]
    # Every result arrives, in order, before the session's end and its dependencies.
    assert types.count("result") == TESTS
    assert types.index("edges") > max(i for i, t in enumerate(types) if t == "result")
    assert types[-1] == "finish"
    writes_with_results = [w for w in got["writes"] if "result" in w]
    assert len(writes_with_results) < TESTS / 3, got["writes"]


def test_a_distributed_worker_is_not_batched_by_the_stream(tmp_path: Path) -> None:
    # A worker's role sends each result as it comes (rpytest.parallel holds
    # and releases per test itself); here no worker plugin is registered, so
    # every result is a write of its own.
    got = _run(tmp_path, {"record": False, "role": "worker"}, PLAIN)
    writes_with_results = [w for w in got["writes"] if "result" in w]
    assert len(writes_with_results) == TESTS
    assert all(w == ["result"] for w in writes_with_results)


def test_pytests_current_test_variable_raises_no_event_per_phase(tmp_path: Path) -> None:
    # pytest sets PYTEST_CURRENT_TEST three times and deletes it once per
    # test: the recorder hears of none of it (pytest's PYTEST_VERSION, set
    # once per session, is all it hears).
    got = _run(tmp_path, {"record": True}, PLAIN)
    assert got["code"] == 0
    assert got["counts"]["rpytest.env.set"] < TESTS


def test_reading_pytests_current_test_is_still_no_input(tmp_path: Path) -> None:
    files = {
        "test_reads.py": """
            import os

            def test_reads_current():
                assert os.environ["PYTEST_CURRENT_TEST"].endswith("(call)")

            def test_sets_own():
                os.environ["OWN_VAR"] = "1"
                assert os.environ["OWN_VAR"] == "1"
        """,
    }
    got = _run(tmp_path, {"record": True}, files)
    assert got["code"] == 0
    plain = _run(tmp_path / "plain", {"record": True}, {"test_one.py": "def test_one():\n    pass\n"})
    # OWN_VAR, the test's own variable, is the one more.
    assert got["counts"]["rpytest.env.set"] == plain["counts"]["rpytest.env.set"] + 1


def test_what_a_test_reads_of_pytests_current_test_is_not_recorded(tmp_path: Path, start_daemon) -> None:
    project = write_project(tmp_path / "q", {
        "test_reads.py": """
            import os

            def test_reads_current():
                assert "test_reads.py" in os.environ["PYTEST_CURRENT_TEST"]
                assert os.environ.get("READ_BY_NAME") is None
        """,
    })
    d = start_daemon(project)
    r = d.run(["-q", "-p", "no:cacheprovider"], env=clean_env())
    assert r.exit_code == 0, r.stdout + r.stderr
    env = r.deps()["test_reads.py"]["env"]
    assert "READ_BY_NAME" in env
    assert "PYTEST_CURRENT_TEST" not in env
