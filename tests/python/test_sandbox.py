"""The hermetic sandbox, entered for real in a forked child: what it shows,
what it denies, and what it explains."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any, Callable, Dict

import pytest

from rpytest import sandbox


def in_sandbox(cfg: Dict[str, Any], cwd: Path, probe: Callable[[sandbox.Plan], Any]) -> Any:
    """Forks, enters the sandbox in the child, returns `probe(plan)` (JSON) or raises its error."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.chdir(cwd)
            plan = sandbox.enter(cfg)
            out = {"ok": probe(plan)}
        except BaseException as exc:  # reported to the parent
            out = {"error": "%s: %s" % (type(exc).__name__, exc)}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    result = json.loads(data)
    if "error" in result:
        raise AssertionError(result["error"])
    return result["ok"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "sub" / "__init__.py").write_text("")
    (root / "pkg" / "sub" / "mod.py").write_text("X = 1\n")
    (root / "pkg" / "notes.txt").write_text("undeclared\n")
    (root / "data").mkdir()
    (root / "data" / "a.csv").write_text("a\n")
    (root / "data" / "b.csv").write_text("b\n")
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref\n")
    return root


def test_shows_code_and_declared_files_only(project: Path) -> None:
    cfg = {"rootdir": str(project), "files": ["data/a.csv"]}

    def probe(plan: sandbox.Plan) -> Dict[str, Any]:
        exists = {rel: os.path.exists(rel) for rel in
                  ["pkg/__init__.py", "pkg/sub/mod.py", "pytest.ini", "data/a.csv", "data/b.csv",
                   "pkg/notes.txt", ".git/HEAD"]}
        try:
            with open("pkg/sub/mod.py", "a"):
                writable = True
        except OSError:
            writable = False
        return {"exists": exists, "code_writable": writable, "binds": [b for b, _ in plan.binds]}

    got = in_sandbox(cfg, project, probe)
    assert got["exists"] == {
        "pkg/__init__.py": True, "pkg/sub/mod.py": True, "pytest.ini": True, "data/a.csv": True,
        "data/b.csv": False, "pkg/notes.txt": False, ".git/HEAD": False,
    }
    assert not got["code_writable"]
    # pkg/sub holds only code: one mount for the directory, not one per file.
    assert str(project / "pkg" / "sub") in got["binds"]
    assert str(project / "pkg" / "sub" / "mod.py") not in got["binds"]


def test_no_network_but_own_loopback(project: Path) -> None:
    outside = socket.socket()
    outside.bind(("127.0.0.1", 0))
    outside.listen(1)
    port = outside.getsockname()[1]

    def probe(plan: sandbox.Plan) -> Dict[str, Any]:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            reached = True
        except OSError:
            reached = False
        own = socket.socket()
        own.bind(("127.0.0.1", 0))
        own.listen(1)
        socket.create_connection(own.getsockname(), timeout=5).close()
        return {"reached_outside": reached, "uid": os.getuid()}

    try:
        got = in_sandbox({"rootdir": str(project), "files": []}, project, probe)
    finally:
        outside.close()
    assert got == {"reached_outside": False, "uid": os.getuid()}


def test_denied_reads_are_explained_with_the_rule(project: Path) -> None:
    def probe(plan: sandbox.Plan) -> Any:
        d = sandbox.Denials(plan, {"pkg/test_x.py": "catalog"})
        d.start()
        d.current = "pkg/test_x.py::test_one"
        for rel in ("data/b.csv", "pkg/__init__.py", "nowhere.txt"):
            try:
                open(rel).close()
            except OSError:
                pass
        d.current = None
        return d.explain("pkg/test_x.py::test_one")

    assert in_sandbox({"rootdir": str(project), "files": []}, project, probe) == [
        'rpytest: test read undeclared input data/b.csv (declare it in rule "catalog" files)'
    ]
