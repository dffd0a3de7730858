"""The daemon: requests, session children, concurrency, failure modes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TIMEOUT, Daemon, clean_env, gone, read_messages, wait_for, write_project

BASIC = {
    "test_a.py": """
        import pytest

        def test_ok():
            assert 1

        def test_bad():
            assert 0

        @pytest.mark.skip(reason="nope")
        def test_skip():
            pass

        @pytest.mark.xfail(reason="known")
        def test_xfail():
            assert 0

        @pytest.mark.xfail(reason="fixed")
        def test_xpass():
            pass

        @pytest.fixture
        def broken():
            raise RuntimeError("boom")

        def test_error(broken):
            pass
    """,
    "test_empty.py": "X = 1\n",
    "test_importerr.py": "import does_not_exist_anywhere\n",
}


def test_ping_and_stop(project: Path, start_daemon) -> None:
    write_project(project, {"test_x.py": "def test_x(): pass\n"})
    d = start_daemon(project)
    pong = d.ping()
    assert pong["type"] == "pong"
    assert pong["protocol"] == 1
    assert pong["pid"] == d.proc.pid
    assert pong["fingerprint"] == "fp-test"
    assert pong["version"] == "0.1.0"
    assert pong["python"] == sys.executable
    assert pong["sessions"] == 0
    assert isinstance(pong["warm"], list)
    assert d.request({"type": "stop"}) == [{"type": "stopping"}]
    assert d.proc.wait(TIMEOUT) == 0
    assert not os.path.exists(d.socket_path)


def test_ping_then_run_on_one_connection(project: Path, start_daemon) -> None:
    write_project(project, {"test_x.py": "def test_x(): pass\n"})
    d = start_daemon(project)
    with d.connect() as s:
        s.sendall(b'{"type":"ping"}\n')
        line = b""
        while not line.endswith(b"\n"):
            line += s.recv(4096)
        assert json.loads(line)["type"] == "pong"
        req = {"type": "run", "protocol": 1, "argv": ["-q"], "cwd": str(project), "env": clean_env(), "umask": 18,
               "session": {"rootdir": str(project)}}
        devnull = os.open(os.devnull, os.O_RDWR)
        socket.send_fds(s, [(json.dumps(req) + "\n").encode()], [devnull, devnull, devnull])
        os.close(devnull)
        msgs = read_messages(s)
    assert msgs[0]["type"] == "started"
    assert msgs[-1] == {"type": "exit", "code": 0}


def test_run_outcomes_and_events(project: Path, start_daemon) -> None:
    write_project(project, BASIC)
    d = start_daemon(project)
    r = d.run(["-rA"])
    assert r.exit_code == 2, r.stdout  # collection error
    assert r.messages[0]["type"] == "started"
    assert r.messages[-1]["type"] == "exit"
    collected = {f["file"]: f for f in r.one("collected")["files"]}
    assert collected["test_empty.py"] == {"file": "test_empty.py", "outcome": "passed", "nodes": [], "skip": None}
    assert collected["test_importerr.py"]["outcome"] == "failed"
    assert collected["test_a.py"]["nodes"] == [
        "test_a.py::test_ok", "test_a.py::test_bad", "test_a.py::test_skip",
        "test_a.py::test_xfail", "test_a.py::test_xpass", "test_a.py::test_error",
    ]
    assert r.of("result") == []  # interrupted by the collection error, like pytest
    assert r.one("finish")["exitstatus"] == 2
    assert "1 error" in r.stdout

    r = d.run(["-rA", "--continue-on-collection-errors", "test_a.py"])
    assert r.exit_code == 1
    assert r.results() == {
        "test_a.py::test_ok": "passed",
        "test_a.py::test_bad": "failed",
        "test_a.py::test_skip": "skipped",
        "test_a.py::test_xfail": "xfailed",
        "test_a.py::test_xpass": "xpassed",
        "test_a.py::test_error": "error",
    }
    res = {m["nodeid"]: m for m in r.of("result")}
    skip = res["test_a.py::test_skip"]
    assert skip["file"] == "test_a.py"
    assert skip["longrepr"][0].endswith("test_a.py") and skip["longrepr"][2] == "Skipped: nope"
    assert res["test_a.py::test_xfail"]["wasxfail"] == "known"
    assert res["test_a.py::test_ok"]["location"] == ["test_a.py", 2, "test_ok"]
    fin = r.one("finish")
    assert fin["exitstatus"] == 1 and fin["interrupted"] is False and fin["shouldstop"] is False
    kinds = [m["type"] for m in r.messages]
    assert kinds.index("collected") < kinds.index("result") < kinds.index("deps") < kinds.index("edges") < kinds.index("finish")
    assert "1 failed, 1 passed, 1 skipped, 1 xfailed, 1 xpassed, 1 error" in r.stdout
    assert set(r.deps()) == {None, "test_a.py"}


def test_exit_status_usage_error_and_no_tests(project: Path, start_daemon) -> None:
    write_project(project, {"test_x.py": "def test_x(): pass\n"})
    d = start_daemon(project)
    assert d.run(["--definitely-not-an-option"]).exit_code == 4
    r = d.run(["-k", "nothing_matches"])
    assert r.exit_code == 5
    assert r.one("finish")["exitstatus"] == 5


def test_session_sees_client_state(project: Path, start_daemon) -> None:
    write_project(project, {
        "sub/test_state.py": """
            import os, sys, random

            def test_state():
                assert os.getcwd() == os.environ["EXPECT_CWD"]
                assert os.environ["MY_VAR"] == "hello"
                assert "ONLY_IN_DAEMON" not in os.environ
                old = os.umask(0); os.umask(old)
                assert old == 0o027
                assert sys.argv[0].endswith("pytest")
                assert sys.argv[1:] == ["-q", "-s", "-p", "no:cacheprovider"]
                # the daemon ran in the project root; stock `pytest` does not have it on sys.path
                assert os.environ["EXPECT_ROOT"] not in sys.path and "" not in sys.path
                assert sys.path[1] == os.path.dirname(os.path.realpath(sys.argv[0]))
                print("RANDOM", random.random())
        """,
    })
    d = start_daemon(project)
    env = clean_env(MY_VAR="hello", EXPECT_CWD=str(project / "sub"), EXPECT_ROOT=str(project))
    outs = [
        d.run(["-q", "-s", "-p", "no:cacheprovider"], cwd=project / "sub", env=env, session={"record": False}, umask=0o027)
        for _ in range(2)
    ]
    for r in outs:
        assert r.exit_code == 0, r.stdout + r.stderr
        assert "1 passed" in r.stdout
    # reseeded after fork: two sessions do not share random state
    rnd = [line for r in outs for line in r.stdout.splitlines() if line.startswith("RANDOM")]
    assert len(rnd) == 2 and len(set(rnd)) == 2


def test_umask_applied(project: Path, start_daemon) -> None:
    write_project(project, {"test_u.py": """
        import os
        def test_u():
            old = os.umask(0); os.umask(old)
            assert old == 0o022
    """})
    d = start_daemon(project)
    assert d.run(["-q"]).exit_code == 0


def test_fresh_state_per_session(project: Path, start_daemon) -> None:
    write_project(project, {
        "conftest.py": """
            import pytest
            COUNT = []

            def pytest_configure(config):
                COUNT.append(1)
                assert len(COUNT) == 1, "plugin state leaked from an earlier session"
        """,
        "mylib.py": "VALUE = 1\n",
        "test_v.py": """
            import mylib, sys
            def test_v():
                assert mylib.VALUE == 1
        """,
    })
    d = start_daemon(project)
    r = d.run(["-q", "-p", "no:cacheprovider"])
    assert r.exit_code == 0, r.stdout + r.stderr
    assert d.run(["-q", "-p", "no:cacheprovider"]).exit_code == 0
    (project / "mylib.py").write_text("VALUE = 2\n")
    r = d.run(["-q", "-p", "no:cacheprovider"])
    assert r.exit_code == 1  # the edited module is seen by the next session
    assert "assert 2 == 1" in r.stdout
    # the daemon itself never imported project code
    assert "mylib" not in d.log()


def test_terminal_is_the_clients(project: Path, start_daemon, tmp_path: Path) -> None:
    write_project(project, {"test_io.py": """
        import sys
        def test_io():
            sys.__stdout__.write("TO-CLIENT-STDOUT\\n")
            sys.__stderr__.write("TO-CLIENT-STDERR\\n")
            assert input() == "typed line"
    """})
    d = start_daemon(project)
    stdin = tmp_path / "stdin.txt"
    stdin.write_text("typed line\n")
    fd = os.open(stdin, os.O_RDONLY)
    try:
        r = d.run(["-q", "-s"], stdin=fd)
    finally:
        os.close(fd)
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "TO-CLIENT-STDOUT" in r.stdout
    assert "TO-CLIENT-STDERR" in r.stderr
    assert "1 passed" in r.stdout


SLOW = {
    "test_slow.py": """
        import os, time
        def test_slow():
            open(os.environ["MARKER"], "w").write(str(os.getpid()))
            deadline = time.time() + float(os.environ.get("SLEEP", "0"))
            while not os.path.exists(os.environ["RELEASE"]) and time.time() < deadline:
                time.sleep(0.01)
    """,
}


def test_two_runs_at_once(project: Path, start_daemon, tmp_path: Path) -> None:
    write_project(project, SLOW)
    d = start_daemon(project)
    release = tmp_path / "release"
    handles = []
    for i in range(2):
        env = clean_env(MARKER=str(tmp_path / ("m%d" % i)), RELEASE=str(release), SLEEP="60")
        handles.append(d.start_run(["-q", "-p", "no:cacheprovider"], env=env, session={"record": False}))
    # both sessions are running at the same time before either is released
    assert wait_for(lambda: (tmp_path / "m0").exists() and (tmp_path / "m1").exists())
    release.write_text("go")
    results = [Daemon.finish_run(h) for h in handles]
    pids = [r.one("started")["pid"] for r in results]
    assert len(set(pids)) == 2
    for r in results:
        assert r.exit_code == 0, r.stdout + r.stderr
    assert d.ping()["sessions"] == 2


def test_daemon_killed_mid_run_client_sees_eof(project: Path, start_daemon, tmp_path: Path) -> None:
    write_project(project, SLOW)
    d = start_daemon(project)
    marker = tmp_path / "m"
    env = clean_env(MARKER=str(marker), RELEASE=str(tmp_path / "never"), SLEEP="600")
    h = d.start_run(["-q", "-p", "no:cacheprovider"], env=env, session={"record": False})
    assert wait_for(lambda: marker.exists() and marker.read_text())  # written, not only created
    child = int(marker.read_text())
    os.kill(d.proc.pid, signal.SIGKILL)
    d.proc.wait(TIMEOUT)
    t0 = time.monotonic()
    r = Daemon.finish_run(h, timeout=30)
    assert r.eof_without_exit
    assert time.monotonic() - t0 < 30
    # the orphaned session died with the daemon
    assert wait_for(lambda: gone(child), 30)


def test_client_disconnect_terminates_session(project: Path, start_daemon, tmp_path: Path) -> None:
    write_project(project, SLOW)
    d = start_daemon(project)
    marker = tmp_path / "m"
    env = clean_env(MARKER=str(marker), RELEASE=str(tmp_path / "never"), SLEEP="600")
    s, out, err = d.start_run(["-q", "-p", "no:cacheprovider"], env=env, session={"record": False})
    assert wait_for(lambda: marker.exists() and marker.read_text())  # written, not only created
    child = int(marker.read_text())
    s.close()
    out.close()
    err.close()
    assert wait_for(lambda: "session pid %d finished: {'type': 'exit', 'signal': 15}" % child in d.log())
    assert d.ping()["type"] == "pong"  # the daemon carries on


def test_sigint_forwarded_gives_partial_summary(project: Path, start_daemon, tmp_path: Path) -> None:
    write_project(project, SLOW)
    d = start_daemon(project)
    marker = tmp_path / "m"
    env = clean_env(MARKER=str(marker), RELEASE=str(tmp_path / "never"), SLEEP="600")
    h = d.start_run(["-p", "no:cacheprovider"], env=env, session={"record": False})
    assert wait_for(lambda: marker.exists() and marker.read_text())  # written, not only created
    os.kill(int(marker.read_text()), signal.SIGINT)
    r = Daemon.finish_run(h)
    assert r.exit_code == 2
    assert "KeyboardInterrupt" in r.stdout
    assert r.one("finish")["interrupted"] is True


def test_idle_timeout(project: Path, start_daemon) -> None:
    write_project(project, {"test_x.py": "def test_x(): pass\n"})
    d = start_daemon(project, idle_timeout=1)
    assert d.run(["-q"], session={"record": False}).exit_code == 0
    assert d.proc.wait(TIMEOUT) == 0
    assert not os.path.exists(d.socket_path)
    assert "idle" in d.log()


def test_stale_socket_is_replaced_live_one_is_not(project: Path, sockdir: str) -> None:
    write_project(project, {"test_x.py": "def test_x(): pass\n"})
    path = os.path.join(sockdir, "d.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # a socket file nobody listens on
    d = Daemon(sockdir, project)
    try:
        assert d.ping()["pid"] == d.proc.pid
        second = subprocess.run(
            [sys.executable, "-m", "rpytest.daemon", "--socket", path, "--rootdir", str(project)],
            env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT,
        )
        assert second.returncode != 0
        assert "another daemon" in second.stderr.decode()
        assert d.ping()["pid"] == d.proc.pid
    finally:
        d.stop()
        d.kill()


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another uid")
def test_peer_of_another_uid_is_refused(project: Path, start_daemon, sockdir: str) -> None:
    write_project(project, {"test_x.py": "def test_x(): pass\n"})
    d = start_daemon(project)
    os.chmod(sockdir, 0o755)
    os.chmod(d.socket_path, 0o777)
    code = r'''
import os, socket, sys
os.setgid(65534); os.setuid(65534)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(30)
s.connect(sys.argv[1])
try:
    s.sendall(b'{"type":"ping"}\n')
    data = s.recv(4096)
except OSError as e:
    data = b""
print("GOT:%r" % data)
'''
    out = subprocess.run([sys.executable, "-c", code, d.socket_path], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=TIMEOUT)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout.decode().strip() == "GOT:b''"
    assert "refused a peer with uid 65534" in d.log()
    assert d.ping()["type"] == "pong"


def test_bad_requests(project: Path, start_daemon) -> None:
    write_project(project, {"test_x.py": "def test_x(): pass\n"})
    d = start_daemon(project)
    assert d.request({"type": "nope"})[0]["type"] == "error"
    # run without fds is refused, not crashed on
    msgs = d.request({"type": "run", "protocol": 1, "argv": [], "cwd": str(project), "env": {}, "umask": 18, "session": {}})
    assert msgs[0]["type"] == "error"
    msgs = d.request({"type": "run", "protocol": 99, "argv": [], "cwd": str(project), "env": {}, "umask": 18, "session": {}})
    assert msgs[0]["type"] == "error" and "protocol" in msgs[0]["message"]
    assert d.ping()["type"] == "pong"


def test_warm_pytest_modules_do_not_break_rewriting(project: Path, start_daemon) -> None:
    # The daemon imported _pytest.pytester; `-p pytester` must not warn "already imported".
    write_project(project, {"test_p.py": """
        pytest_plugins = ["pytester"]
        def test_p(pytester):
            pytester.makepyfile(test_inner_mod="def test_inner(): assert 1")
            pytester.runpytest_inprocess().assert_outcomes(passed=1)
    """})
    d = start_daemon(project)
    r = d.run(["-q", "-p", "no:cacheprovider", "-W", "error", "-p", "pytester"])
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "already imported" not in r.stdout + r.stderr
