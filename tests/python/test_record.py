"""Recorded dependencies: imports, edges, file reads, environment reads, attribution."""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import clean_env, write_project

PROJECT = {
    "conftest.py": """
        import os
        import pytest
        from pkg import helpers

        os.environ.get("CONFTEST_VAR")

        @pytest.fixture(scope="session")
        def settings():
            with open("data/session.json") as f:
                return f.read()
    """,
    "pkg/__init__.py": "",
    "pkg/helpers.py": "from . import inner\n",
    "pkg/inner.py": "X = 1\n",
    "pkg/lazy.py": "Y = 2\n",
    "pkg/config.py": """
        import os
        with open(os.path.join(os.path.dirname(__file__), "..", "data", "module_level.txt")) as f:
            VALUE = f.read()
    """,
    "pkg/dyn.py": "Z = 3\n",
    "data/a.txt": "a",
    "data/session.json": "{}",
    "data/module_level.txt": "m",
    "data/unused.txt": "u",
    "tests/test_reads.py": """
        import os
        from pathlib import Path

        def test_read_file():
            assert Path("data/a.txt").read_text() == "a"

        def test_env():
            assert os.environ.get("MY_FLAG") is None
            assert os.getenv("OTHER_FLAG", "x") == "x"
            assert ("THIRD" in os.environ) is False
            os.environ["WRITTEN_ONLY"] = "1"

        def test_writes_then_reads(tmp_path):
            out = Path("data/generated.txt")
            out.write_text("g")
            assert out.read_text() == "g"
            out.unlink()
    """,
    "tests/test_imports.py": """
        import importlib
        from pkg import helpers
        import pkg.config

        def test_dynamic():
            mod = importlib.import_module("pkg.dyn")
            assert mod.Z == 3

        def test_lazy():
            from pkg import lazy
            assert lazy.Y == 2
    """,
    "tests/test_session_fixture.py": """
        def test_uses_settings(settings):
            assert settings == "{}"
    """,
}


def run_project(project: Path, start_daemon, **env: str):
    write_project(project, PROJECT)
    d = start_daemon(project)
    r = d.run(["-q", "-p", "no:cacheprovider"], env=clean_env(**env))
    assert r.exit_code == 0, r.stdout + r.stderr
    return r


def test_reads_env_and_imports_are_attributed(project: Path, start_daemon) -> None:
    r = run_project(project, start_daemon)
    deps = r.deps()
    assert set(deps) == {None, "tests/test_reads.py", "tests/test_imports.py", "tests/test_session_fixture.py"}

    reads = deps["tests/test_reads.py"]
    assert "data/a.txt" in reads["reads"]
    assert "data/generated.txt" not in reads["reads"]  # written by the session
    assert "data/unused.txt" not in reads["reads"]
    assert {"MY_FLAG", "OTHER_FLAG", "THIRD"} <= set(reads["env"])
    assert "WRITTEN_ONLY" not in reads["env"]

    imports = deps["tests/test_imports.py"]
    for f in ("pkg/__init__.py", "pkg/helpers.py", "pkg/config.py", "pkg/dyn.py", "pkg/lazy.py"):
        assert f in imports["imports"], (f, imports)
    assert "tests/test_imports.py" not in imports["imports"]
    assert not any(p.startswith(("/", "..")) for p in imports["imports"])

    glob = deps[None]
    # conftest import and the session-scoped fixture are global
    assert "pkg/helpers.py" in glob["imports"] and "pkg/inner.py" in glob["imports"]
    assert "CONFTEST_VAR" in glob["env"]
    assert "data/session.json" in glob["reads"]
    assert "data/session.json" not in deps["tests/test_session_fixture.py"]["reads"]
    # a module body that ran under an import caches its reads for every importer: global
    assert "data/module_level.txt" in glob["reads"]
    # nothing from site-packages, caches or pytest's own files
    everything = [p for d in deps.values() for k in ("imports", "reads") for p in d[k]]
    assert not [p for p in everything if "site-packages" in p or "__pycache__" in p or ".pytest_cache" in p]
    # output-only variables pytest reads itself do not enter every key
    assert "COLUMNS" not in glob["env"] and "TERM" not in glob["env"]


def test_edges(project: Path, start_daemon) -> None:
    r = run_project(project, start_daemon)
    edges = {tuple(e) for e in r.one("edges")["edges"]}
    assert ("conftest.py", "pkg/helpers.py") in edges
    assert ("pkg/helpers.py", "pkg/inner.py") in edges
    assert ("pkg/helpers.py", "pkg/__init__.py") in edges
    assert ("tests/test_imports.py", "pkg/dyn.py") in edges
    assert ("tests/test_imports.py", "pkg/lazy.py") in edges


def test_record_false_emits_no_deps(project: Path, start_daemon) -> None:
    write_project(project, {"test_x.py": "def test_x(): pass\n"})
    d = start_daemon(project)
    r = d.run(["-q"], session={"record": False})
    assert r.exit_code == 0
    assert r.of("deps") == [] and r.of("edges") == []
    assert r.of("finish")


def test_environ_stays_the_same_object(project: Path, start_daemon) -> None:
    write_project(project, {"test_env.py": """
        import os, subprocess, sys
        def test_env(monkeypatch):
            assert isinstance(os.environ, os._Environ)
            before = dict(os.environ)
            monkeypatch.setenv("ADDED", "1")
            assert os.environ["ADDED"] == "1" and os.getenv("ADDED") == "1"
            out = subprocess.run([sys.executable, "-c", "import os; print(os.environ['ADDED'])"],
                                 stdout=subprocess.PIPE, check=True).stdout
            assert out.strip() == b"1"
            monkeypatch.delenv("ADDED")
            assert dict(os.environ) == before
            assert os.environb[b"HOME"] == os.environ["HOME"].encode()
    """})
    d = start_daemon(project)
    r = d.run(["-q", "-p", "no:cacheprovider"])
    assert r.exit_code == 0, r.stdout


def test_warm_file_written_and_preloaded(project: Path, start_daemon, sockdir: str) -> None:
    write_project(project, {
        "mymod.py": "X = 1\n",
        "test_w.py": """
            import packaging.version
            import mymod
            def test_w():
                assert packaging.version.Version("1.0")
        """,
    })
    d = start_daemon(project)
    assert d.run(["-q", "-p", "no:cacheprovider"]).exit_code == 0
    warm = json.loads(Path(d.warm_file).read_text())
    assert "packaging" in warm
    assert not {"mymod", "test_w", "pytest", "_pytest", "rpytest", "pluggy"} & set(warm)
    d.stop()
    # a module that raises and one that does not exist are dropped; the rest are preloaded
    Path(d.warm_file).write_text(json.dumps(warm + ["no_such_module_xyz", "mymod"]))
    d2 = start_daemon(project)
    pong = d2.ping()
    assert "packaging" in pong["warm"]
    assert "no_such_module_xyz" not in pong["warm"]
    assert "mymod" not in pong["warm"]  # project code is never imported by the daemon
    log = d2.log()
    assert "dropped no_such_module_xyz" in log and "dropped mymod" in log, log
    assert d2.run(["-q", "-p", "no:cacheprovider"]).exit_code == 0


def test_directory_listings_are_inputs_but_pytests_own_are_not(project: Path, start_daemon) -> None:
    write_project(project, {
        "data/a.csv": "1",
        "data/sub/b.csv": "2",
        "tests/test_listing.py": """
            import glob, os
            from pathlib import Path

            def test_listdir():
                assert os.listdir("data")

            def test_glob_and_walk():
                assert glob.glob("data/*.csv")
                assert list(os.walk("data"))
                assert list(Path("data").iterdir())
        """,
        "tests/test_plain.py": "def test_plain():\n    pass\n",
    })
    d = start_daemon(project)
    r = d.run(["-q", "-p", "no:cacheprovider"], env=clean_env())
    assert r.exit_code == 0, r.stdout + r.stderr
    deps = r.deps()
    assert deps["tests/test_listing.py"]["lists"] == ["data", "data/sub"]
    assert deps["tests/test_plain.py"]["lists"] == []
    # pytest walking the tree to collect, and the import system, list nothing that counts
    assert deps[None]["lists"] == []
