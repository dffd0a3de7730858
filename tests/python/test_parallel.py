"""The worker and controller sides of `-n` (rpytest.parallel), driven over their real
pipes the way the CLI drives them: fresh `python -m rpytest.session` processes,
real pytest, no mocks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

from conftest import TIMEOUT, clean_env, config_pipe, write_project

from rpytest.protocol import LineBuffer, decode, encode

FILES = {
    "pytest.ini": "[pytest]\n",
    "test_a.py": """
        import pytest

        def test_pass():
            pass

        def test_fail():
            assert 1 == 2

        @pytest.mark.skip(reason="because")
        def test_skip():
            pass
    """,
    "test_b.py": """
        import os
        import pytest

        @pytest.mark.xdist_group(name="g")
        def test_grouped(worker_id):
            assert worker_id == os.environ["PYTEST_XDIST_WORKER"] == "gw3"
    """,
}


class Session:
    """One session process with its event pipe (fd 3) and control pipe (fd 4)."""

    def __init__(self, root: Path, cfg: Dict[str, Any], env: Dict[str, str], stdout: Any) -> None:
        cfg_fd = config_pipe(cfg)
        ev_r, ev_w = os.pipe()
        ctl_r, ctl_w = os.pipe()

        env = dict(env, RPYTEST_SESSION_CONFIG_FD=str(cfg_fd), RPYTEST_EVENT_FD=str(ev_w), RPYTEST_CONTROL_FD=str(ctl_r))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rpytest.session", "-p", "no:xdist", "-p", "no:cacheprovider"],
            cwd=root, env=env, pass_fds=(ev_w, ctl_r, cfg_fd), stdout=stdout, stderr=subprocess.PIPE,
        )
        os.close(ev_w)
        os.close(ctl_r)
        os.close(cfg_fd)
        self.events = ev_r
        self.control = ctl_w
        self.buf = LineBuffer()
        self.pending: List[Dict[str, Any]] = []
        self.seen: List[Dict[str, Any]] = []

    def send(self, msg: Dict[str, Any]) -> None:
        os.write(self.control, encode(msg))

    def next(self, kind: str) -> Dict[str, Any]:
        """Reads events until one of `kind` (earlier ones are kept in `seen`)."""
        while True:
            while self.pending:
                msg = self.pending.pop(0)
                if msg.get("type") == kind:
                    return msg
                self.seen.append(msg)
            data = os.read(self.events, 1 << 16)
            assert data, "session ended before a %r event: %s" % (kind, self.proc.stderr.read().decode())
            self.pending.extend(decode(line) for line in self.buf.feed(data))

    def finish(self) -> int:
        """Tells a controller the run is done; its exit code."""
        self.send({"type": "done"})
        self.rest()
        return self.proc.wait(timeout=TIMEOUT)

    def rest(self) -> List[Dict[str, Any]]:
        """Every event not returned by `next`, up to the end of the session."""
        out = self.seen + self.pending
        while True:
            data = os.read(self.events, 1 << 16)
            if not data:
                return out
            out.extend(decode(line) for line in self.buf.feed(data))


def workerinput(worker: str, count: int) -> Dict[str, Any]:
    """What the CLI hands a worker session first: its `workerinput`, as the
    controller's `pytest_configure_node` left it."""
    data = {"workerid": worker, "workercount": count, "testrunuid": "u1", "mainargv": ["pytest"]}
    return {"type": "workerinput", "data": data}


def controller(project: Path, stdout: Any) -> Session:
    cfg = {"rootdir": str(project), "record": False, "events": True, "role": "controller", "xdist_compat": True}
    return Session(project, cfg, clean_env(), stdout)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "proj", FILES)


def test_worker_collects_then_runs_only_what_it_is_given(project: Path) -> None:
    cfg = {"rootdir": str(project), "record": False, "events": True, "role": "worker",
           "worker_id": "gw3", "worker_count": 4, "testrun_uid": "u1", "xdist_compat": True}
    env = clean_env(PYTEST_XDIST_WORKER="gw3")
    w = Session(project, cfg, env, subprocess.DEVNULL)
    w.send(workerinput("gw3", 4))
    collection = w.next("collection")
    ids = [i[0] for i in collection["items"]]
    assert ids == ["test_a.py::test_pass", "test_a.py::test_fail", "test_a.py::test_skip", "test_b.py::test_grouped"]
    assert collection["items"][3][2] == "g" and collection["items"][0][2] is None
    w.next("want")
    w.send({"type": "run", "indexes": [1, 3]})
    w.next("want")  # asked for more before its last test
    w.send({"type": "stop"})
    rest = w.rest()
    w.proc.wait(timeout=TIMEOUT)
    reports = [m["data"] for m in rest if m["type"] == "report"]
    ran = {(r["nodeid"], r["when"], r["outcome"]) for r in reports}
    assert ("test_a.py::test_fail", "call", "failed") in ran
    assert ("test_b.py::test_grouped", "call", "passed") in ran
    assert not any(r["nodeid"] == "test_a.py::test_pass" for r in reports)
    assert [m["type"] for m in rest].count("logfinish") == 2


def test_controller_reports_forwarded_reports_like_pytest(project: Path, tmp_path: Path) -> None:
    worker_cfg = {"rootdir": str(project), "record": False, "events": True, "role": "worker",
                  "worker_id": "gw3", "worker_count": 1, "testrun_uid": "u1", "xdist_compat": True}
    w = Session(project, worker_cfg, clean_env(PYTEST_XDIST_WORKER="gw3"), subprocess.DEVNULL)
    w.send(workerinput("gw3", 1))
    out = tmp_path / "controller.out"
    with open(out, "wb") as f:
        c = controller(project, f)
        collection = w.next("collection")
        c.send(collection)
        w.next("want")
        w.send({"type": "run", "indexes": [0, 1, 2, 3]})
        w.next("want")
        w.send({"type": "stop"})
        for msg in w.rest():
            if msg["type"] in ("logstart", "report", "logfinish", "warning"):
                c.send(dict(msg, worker="gw3"))
        code = c.finish()
    text = out.read_text()
    assert code == 1, text
    assert " [4 items]" in text, text  # pytest-xdist's status line, not "collected 4 items"
    assert "1 failed, 2 passed, 1 skipped" in text, text
    assert "[gw3] linux" in text, text
    assert "FAILED test_a.py::test_fail" in text


def test_controller_turns_a_crash_into_a_failure(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "controller.out"
    with open(out, "wb") as f:
        c = controller(project, f)
        c.send({"type": "collection", "items": [["test_a.py::test_pass", "test_a.py", None]],
                "numcollected": 1, "stop": False, "reports": [], "deselected": [], "replay": [],
                "warnings": []})
        c.send({"type": "logstart", "worker": "gw0", "nodeid": "test_a.py::test_pass",
                "location": ["test_a.py", 0, "test_pass"]})
        c.send({"type": "crash", "worker": "gw0", "nodeid": "test_a.py::test_pass",
                "location": ["test_a.py", 0, "test_pass"],
                "message": "worker 'gw0' crashed while running 'test_a.py::test_pass': signal 11"})
        code = c.finish()
    text = out.read_text()
    assert code == 1, text
    assert "crashed while running 'test_a.py::test_pass': signal 11" in text
    assert "1 failed" in text


def test_collector_forks_workers_that_run_by_index_without_collecting(project: Path, tmp_path: Path) -> None:
    import socket

    path = str(tmp_path / "fork.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()
    listener.settimeout(TIMEOUT)
    cfg = {"rootdir": str(project), "record": False, "events": True, "role": "worker", "worker_id": "gw0",
           "worker_count": 4, "testrun_uid": "u1", "xdist_compat": True, "fork_socket": path}
    # (The pid from /proc/self: os.getpid() called while collecting makes every worker collect.)
    (project / "conftest.py").write_text(
        "import os\n"
        "def pytest_collection_finish(session):\n"
        "    with open(os.path.join(str(session.config.rootpath), 'collected.log'), 'a') as f:\n"
        "        f.write('%d\\n' % int(os.readlink('/proc/self')))\n"
    )
    collector = Session(project, cfg, clean_env(PYTEST_XDIST_WORKER="gw0"), subprocess.DEVNULL)
    collector.send(workerinput("gw0", 4))
    collection = collector.next("collection")
    assert collection["fork"] is True
    collector.send({"type": "fork", "worker": "gw3", "idx": 7})
    conn, _ = listener.accept()
    conn.settimeout(TIMEOUT)
    stream = conn.makefile("rb")

    def next_msg() -> Dict[str, Any]:
        line = stream.readline()
        assert line, "the fork closed its socket early"
        return decode(line.rstrip(b"\n"))

    assert next_msg() == {"type": "hello", "idx": 7, "worker": "gw3"}
    started = next_msg()
    assert started["type"] == "started" and started["pid"] != collector.proc.pid
    assert next_msg()["type"] == "ready"  # pytest_testnodeready on the controller
    assert next_msg()["type"] == "want"
    conn.sendall(encode({"type": "run", "indexes": [1, 3]}))
    rest: List[Dict[str, Any]] = []
    while True:
        msg = next_msg()
        rest.append(msg)
        if msg["type"] == "want":
            conn.sendall(encode({"type": "stop"}))
        if msg["type"] == "finish":
            break
    forked = collector.next("forked")
    assert forked["idx"] == 7 and forked["pid"] == started["pid"]
    exited = collector.next("worker_exit")
    assert exited["idx"] == 7 and exited["code"] == 1 and exited["signal"] is None  # test_fail failed
    collector.send({"type": "stop"})
    tail = collector.rest()
    assert collector.proc.wait(timeout=TIMEOUT) == 0
    reports = [m["data"] for m in rest if m["type"] == "report"]
    ran = {(r["nodeid"], r["when"], r["outcome"]) for r in reports}
    assert ("test_a.py::test_fail", "call", "failed") in ran
    assert ("test_b.py::test_grouped", "call", "passed") in ran  # worker_id and env are the fork's
    assert not any(m["type"] == "report" for m in collector.seen + tail)
    assert (project / "collected.log").read_text().split() == [str(collector.proc.pid)]


XDIST_HOOKS_CONFTEST = """
import json
import os

import pytest


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    node.workerinput["seed"] = 42


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    output = getattr(node, "workeroutput", None)
    record = [node.gateway.id, error, None if output is None else repr(output.get("blob"))]
    with open(os.path.join(str(node.config.rootpath), "down.log"), "a") as f:
        f.write(json.dumps(record) + "\\n")
"""


def test_controller_plays_xdists_controller_hooks(project: Path, tmp_path: Path) -> None:
    from rpytest.parallel import pack

    (project / "conftest.py").write_text(XDIST_HOOKS_CONFTEST)
    cfg = {"rootdir": str(project), "record": False, "events": True, "role": "controller",
           "xdist_compat": True, "worker_count": 2, "testrun_uid": "u1"}
    with open(tmp_path / "controller.out", "wb") as f:
        c = Session(project, cfg, clean_env(), f)
        nodes = c.next("nodes")["nodes"]
        assert sorted(nodes) == ["gw0", "gw1"]
        assert nodes["gw1"]["seed"] == 42 and nodes["gw1"]["workerid"] == "gw1"
        assert nodes["gw1"]["workercount"] == 2 and nodes["gw1"]["testrunuid"] == "u1"
        c.send({"type": "configure_node", "worker": "gw2"})  # a replacement worker
        assert c.next("nodes")["nodes"]["gw2"]["seed"] == 42
        c.send({"type": "collection", "items": [["test_a.py::test_pass", "test_a.py", None]],
                "numcollected": 1, "stop": False, "reports": [], "deselected": [], "replay": [],
                "warnings": []})
        output = {"exitstatus": 0, "shouldfail": False, "shouldstop": False, "blob": b"\x00\xff"}
        c.send({"type": "workerfinished", "worker": "gw0", "workeroutput": pack(output)})
        c.send({"type": "nodedown", "worker": "gw1", "error": "signal 9 (SIGKILL)"})
        code = c.finish()
    assert code == 0
    down = [json.loads(line) for line in (project / "down.log").read_text().splitlines()]
    assert down == [["gw0", None, repr(b"\x00\xff")], ["gw1", "signal 9 (SIGKILL)", None]]


def test_controller_ends_like_xdist_when_a_worker_was_interrupted(project: Path, tmp_path: Path) -> None:
    from rpytest.parallel import pack

    out = tmp_path / "controller.out"
    cfg = {"rootdir": str(project), "record": False, "events": True, "role": "controller",
           "xdist_compat": True, "worker_count": 1, "testrun_uid": "u1"}
    with open(out, "wb") as f:
        c = Session(project, cfg, clean_env(), f)
        c.send({"type": "collection", "items": [["test_a.py::test_pass", "test_a.py", None]],
                "numcollected": 1, "stop": False, "reports": [], "deselected": [], "replay": [],
                "warnings": []})
        c.send({"type": "logstart", "worker": "gw0", "nodeid": "test_a.py::test_pass",
                "location": ["test_a.py", 0, "test_pass"]})
        output = {"exitstatus": 2, "shouldfail": False, "shouldstop": False}
        c.send({"type": "workerfinished", "worker": "gw0", "workeroutput": pack(output)})
        stop = c.next("stop")  # the CLI is asked to stop the other workers
        assert stop == {"type": "stop"}
        code = c.finish()
    text = out.read_text()
    assert code == 2, text
    assert "worker 'gw0' crashed while running 'test_a.py::test_pass'" in text, text
    assert "xdist.dsession.Interrupted: <WorkerController gw0> received keyboard-interrupt" in text, text


def test_values_cross_as_pytest_xdist_carries_them() -> None:
    from rpytest.parallel import pack, unpack

    value = {"b": b"\x00\xff", "t": (1, "a", [2, (3,)]), "s": {1, 2}, "k": {1: "int key"},
             "n": None, "f": 1.5, "nested": {"__rpytest_xdist__": "not a tag"}}
    wire = json.loads(json.dumps(pack(value)))
    assert unpack(wire) == value
