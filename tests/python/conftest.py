"""Helpers for the Python-side tests: a real daemon on a temp socket, real `run` requests
with real fds, real pytest in the session children. No mocks."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]
PYTHON_DIR = REPO / "python"
TIMEOUT = 60.0

sys.path.insert(0, str(PYTHON_DIR))


def clean_env(**extra: str) -> Dict[str, str]:
    """The environment a user's shell would give the CLI (no traces of the outer pytest)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_", "RPYTEST_"))}
    env["PYTHONPATH"] = str(PYTHON_DIR)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("COLUMNS", None)
    _hand_native_module(env)
    env.update(extra)
    return env


def native_module_path() -> Optional[str]:
    """The native module cargo built last (`target/*/build/rpytest-*/out`),
    as the rpytest binary would hand it to the daemon; None when none was built."""
    found = [p for p in REPO.glob("target/*/build/rpytest-*/out/rpytest_native.so") if p.stat().st_size > 0]
    if not found:
        return None
    return str(max(found, key=lambda p: p.stat().st_mtime))


def _hand_native_module(env: Dict[str, str]) -> None:
    """The daemons and sessions these tests start load the native module, as
    under the binary, unless the tests run with RPYTEST_NATIVE=0 (then none
    is handed, as the binary hands none)."""
    if os.environ.get("RPYTEST_NATIVE", "").strip() == "0":
        return
    path = native_module_path()
    if path:
        env["RPYTEST_NATIVE_MODULE"] = path


def write_project(root: Path, files: Dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


class RunResult:
    def __init__(self, messages: List[Dict[str, Any]], stdout: str, stderr: str, eof_without_exit: bool) -> None:
        self.messages = messages
        self.stdout = stdout
        self.stderr = stderr
        self.eof_without_exit = eof_without_exit

    def of(self, kind: str) -> List[Dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    def one(self, kind: str) -> Dict[str, Any]:
        found = self.of(kind)
        assert len(found) == 1, (kind, self.messages, self.stdout, self.stderr)
        return found[0]

    @property
    def exit_code(self) -> Optional[int]:
        ex = self.of("exit")
        return ex[-1].get("code") if ex else None

    def results(self) -> Dict[str, str]:
        return {m["nodeid"]: m["outcome"] for m in self.of("result") if not m.get("cached")}

    def replayed(self) -> Dict[str, str]:
        """Replayed nodes (the plugin sends them in bulk) and their outcomes."""
        return {n[0]: n[2] for m in self.of("cached_results") for n in m["nodes"]}

    def deps(self) -> Dict[Optional[str], Dict[str, Any]]:
        return {m["file"]: m for m in self.of("deps")}


def wait_for(pred: Callable[[], Any], timeout: float = TIMEOUT) -> bool:
    """Polls `pred` until it holds (True) or `timeout` seconds passed (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


def gone(pid: int) -> bool:
    """The process no longer runs (reaped, or a zombie nobody reaped yet)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            return any(line.startswith("State:") and "Z" in line.split()[1] for line in f)
    except FileNotFoundError:
        return True


def read_messages(sock: socket.socket, timeout: float = TIMEOUT) -> List[Dict[str, Any]]:
    sock.settimeout(timeout)
    buf = b""
    out: List[Dict[str, Any]] = []
    while True:
        data = sock.recv(65536)
        if not data:
            break
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            out.append(json.loads(line))
    assert not buf.strip(), buf
    return out


class Daemon:
    def __init__(self, sockdir: str, rootdir: Path, idle_timeout: float = 120, warm_file: Optional[Path] = None) -> None:
        self.sockdir = sockdir
        self.socket_path = os.path.join(sockdir, "d.sock")
        self.rootdir = rootdir
        self.log_path = os.path.join(sockdir, "daemon.log")
        self.warm_file = warm_file or Path(sockdir) / "warm.json"
        r, w = os.pipe()
        args = [
            sys.executable, "-m", "rpytest.daemon",
            "--socket", self.socket_path, "--rootdir", str(rootdir),
            "--idle-timeout", str(idle_timeout), "--fingerprint", "fp-test",
            "--warm-file", str(self.warm_file), "--ready-fd", str(w),
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                args, cwd=str(rootdir), env=clean_env(ONLY_IN_DAEMON="1"), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=log, pass_fds=(w,), start_new_session=True,
            )
        os.close(w)
        try:
            with os.fdopen(r, "rb") as ready:
                import select

                ok, _, _ = select.select([ready], [], [], TIMEOUT)
                line = ready.readline() if ok else b""
            assert line == b"ready\n", "daemon not ready: %r\n%s" % (line, self.log())
        except BaseException:
            self.kill()
            raise

    def log(self) -> str:
        try:
            return Path(self.log_path).read_text()
        except OSError:
            return ""

    def connect(self) -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(TIMEOUT)
        s.connect(self.socket_path)
        return s

    def request(self, msg: Dict[str, Any]) -> List[Dict[str, Any]]:
        with self.connect() as s:
            s.sendall((json.dumps(msg) + "\n").encode())
            return read_messages(s)

    def ping(self) -> Dict[str, Any]:
        with self.connect() as s:
            s.sendall(b'{"type":"ping"}\n')
            s.settimeout(TIMEOUT)
            line = b""
            while not line.endswith(b"\n"):
                chunk = s.recv(65536)
                assert chunk, "EOF before pong"
                line += chunk
            return json.loads(line)

    def start_run(self, argv: List[str], session: Optional[Dict[str, Any]] = None, cwd: Optional[Path] = None,
                  env: Optional[Dict[str, str]] = None, stdin: Optional[int] = None, umask: int = 0o22):
        """Send a run request; returns (socket, stdout file, stderr file) for finish_run."""
        cwd = cwd or self.rootdir
        cfg = {"rootdir": str(self.rootdir), "skip_files": [], "cached": [], "record": True, "events": True,
               "warm_file": str(self.warm_file)}
        cfg.update(session or {})
        req = {"type": "run", "protocol": 1, "argv": argv, "cwd": str(cwd), "env": env or clean_env(),
               "umask": umask, "session": cfg}
        out = tempfile.TemporaryFile()
        err = tempfile.TemporaryFile()
        devnull = os.open(os.devnull, os.O_RDONLY) if stdin is None else stdin
        s = self.connect()
        data = (json.dumps(req) + "\n").encode()
        n = socket.send_fds(s, [data], [devnull, out.fileno(), err.fileno()])
        if n < len(data):
            s.sendall(data[n:])
        if stdin is None:
            os.close(devnull)
        return s, out, err

    @staticmethod
    def finish_run(handle, timeout: float = TIMEOUT) -> RunResult:
        s, out, err = handle
        try:
            messages = read_messages(s, timeout)
        finally:
            s.close()
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
        out.close()
        err.close()
        return RunResult(messages, stdout, stderr, not any(m.get("type") == "exit" for m in messages))

    def run(self, argv: List[str], **kw: Any) -> RunResult:
        return self.finish_run(self.start_run(argv, **kw))

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.request({"type": "stop"})
            except OSError:
                pass
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(TIMEOUT)


@pytest.fixture
def sockdir():
    # Unix socket paths are limited to ~100 bytes: tmp_path can be too long.
    d = tempfile.mkdtemp(prefix="rpyt-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return tmp_path / "proj"


@pytest.fixture
def start_daemon(sockdir: str):
    started: List[Daemon] = []

    def start(rootdir: Path, **kw: Any) -> Daemon:
        d = Daemon(sockdir, rootdir, **kw)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()
        d.kill()


def config_pipe(session: Dict[str, Any]) -> int:
    """The read end of a pipe holding `session` as JSON (as the CLI passes it)."""
    data = json.dumps(session).encode()
    r, w = os.pipe()
    assert len(data) < 65536, "the test config must fit in a pipe's buffer"
    os.write(w, data)
    os.close(w)
    return r


def run_session_process(project: Path, argv: List[str], session: Dict[str, Any], env: Optional[Dict[str, str]] = None):
    """The --no-daemon fallback: `python -m rpytest.session` with its config on an inherited pipe and an event pipe."""
    cfg = config_pipe(session)
    r, w = os.pipe()
    e = dict(env or clean_env())
    e["RPYTEST_SESSION_CONFIG_FD"] = str(cfg)
    e["RPYTEST_EVENT_FD"] = str(w)
    proc = subprocess.Popen([sys.executable, "-m", "rpytest.session"] + argv, cwd=str(project), env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(w, cfg))
    os.close(w)
    os.close(cfg)
    with os.fdopen(r, "rb") as f:
        raw = f.read()
    out, err = proc.communicate(timeout=TIMEOUT)
    messages = [json.loads(l) for l in raw.decode().splitlines() if l.strip()]
    return proc.returncode, messages, out.decode(), err.decode()


def run_driver(tmp_path: Path, driver_text: str, cfg: Dict[str, Any], files: Dict[str, str]) -> Dict[str, Any]:
    """Runs `driver_text` (a script that drives one in-process pytest session
    and prints `RESULT <json>`) in a project made of `files`; returns the JSON."""
    project = write_project(tmp_path / "p", files)
    driver = tmp_path / "driver.py"
    driver.write_text(driver_text)
    proc = subprocess.run(
        [sys.executable, str(driver), str(PYTHON_DIR), json.dumps(cfg)],
        cwd=project, capture_output=True, text=True, env=clean_env(), timeout=120,
    )
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    assert line, proc.stdout + proc.stderr
    return json.loads(line[0][len("RESULT "):])
