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
    # Modules this file loaded (pkg and pkg.helpers were loaded by the conftest
    # first: global, and the static import graph names them for this file).
    for f in ("pkg/config.py", "pkg/dyn.py", "pkg/lazy.py"):
        assert f in imports["imports"], (f, imports)
    assert "tests/test_imports.py" not in imports["imports"]
    assert not any(p.startswith(("/", "..")) for p in imports["imports"])

    glob = deps[None]
    # conftest import and the session-scoped fixture are global
    assert {"pkg/__init__.py", "pkg/helpers.py", "pkg/inner.py"} <= set(glob["imports"])
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
    assert ("conftest.py", "pkg/__init__.py") in edges
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


def test_a_file_written_by_one_test_file_is_an_input_of_another(project: Path, start_daemon) -> None:
    write_project(project, {
        "conftest.py": """
            import pytest
            from pathlib import Path

            @pytest.fixture(scope="session")
            def generated():
                Path("data/session_out.txt").write_text("s")  # global
        """,
        "data/pre.txt": "p",
        "tests/test_a_writer.py": """
            from pathlib import Path

            def test_writes():
                Path("data/gen.txt").write_text("g")
                assert Path("data/gen.txt").read_text() == "g"
        """,
        "tests/test_b_reader.py": """
            from pathlib import Path

            def test_reads_what_a_wrote():
                assert Path("data/gen.txt").read_text() == "g"

            def test_own_output_then_read():
                Path("data/own.txt").write_text("o")
                assert Path("data/own.txt").read_text() == "o"

            def test_read_then_rewritten():
                assert Path("data/pre.txt").read_text() == "p"
                Path("data/pre.txt").write_text("p")
        """,
        "tests/test_c_session.py": """
            from pathlib import Path

            def test_reads_session_output(generated):
                assert Path("data/session_out.txt").read_text() == "s"
        """,
    })
    d = start_daemon(project)
    r = d.run(["-q", "-p", "no:cacheprovider"], env=clean_env())
    assert r.exit_code == 0, r.stdout + r.stderr
    deps = {f: dict(d_, reads=[p for p in d_["reads"] if p != f]) for f, d_ in r.deps().items()}  # pytest reads f
    assert deps["tests/test_a_writer.py"]["reads"] == []  # its own output
    # written by another test file: an input (the CLI sees it changed during the run)
    assert deps["tests/test_b_reader.py"]["reads"] == ["data/gen.txt", "data/pre.txt"]
    # written by the global key, read by a test file: an input of that file
    assert deps["tests/test_c_session.py"]["reads"] == ["data/session_out.txt"]
    assert "data/session_out.txt" not in deps[None]["reads"]
    # inputs the session produced itself are flagged: their results are never stored
    assert deps["tests/test_b_reader.py"]["generated"] == ["data/gen.txt", "data/pre.txt"]
    assert deps["tests/test_c_session.py"]["generated"] == ["data/session_out.txt"]
    assert deps["tests/test_a_writer.py"]["generated"] == []
    # a tree the session created is still not an input as a directory
    assert all(d_["lists"] == [] for d_ in deps.values())


def test_a_module_loaded_by_path_is_a_read(project: Path, start_daemon) -> None:
    write_project(project, {
        "conftest.py": "",
        "plugins/by_path.py": "VALUE = 1\n",
        "plugins/registered.py": "VALUE = 2\n",
        "plugins/in_test.py": "VALUE = 3\n",
        "pkg/__init__.py": "",
        "pkg/normal.py": "N = 1\n",
        "pkg/loader.py": """
            import importlib.util, os, sys
            from pkg import normal

            HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

            def load(name, rel, register=False):
                spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, rel))
                mod = importlib.util.module_from_spec(spec)
                if register:
                    sys.modules[name] = mod
                spec.loader.exec_module(mod)
                return mod

            BY_PATH = load("anon_by_path", "plugins/by_path.py")
            REGISTERED = load("registered_by_path", "plugins/registered.py", register=True)
        """,
        "tests/test_loads.py": """
            from pkg import loader

            def test_loaded():
                assert loader.BY_PATH.VALUE == 1 and loader.REGISTERED.VALUE == 2
                assert loader.load("in_test", "plugins/in_test.py").VALUE == 3
        """,
        "tests/test_other.py": "def test_other():\n    pass\n",
    })
    d = start_daemon(project)
    r = d.run(["-q", "-p", "no:cacheprovider"], env=clean_env())
    assert r.exit_code == 0, r.stdout + r.stderr
    deps = r.deps()
    edges = {tuple(e) for e in r.one("edges")["edges"]}
    # A module loaded by path is a module input of the key that loaded it, with an
    # edge from the code that loaded it: every importer of pkg.loader depends on
    # what its body loaded, through the closure; whether or not it went into sys.modules.
    assert {("pkg/loader.py", "plugins/by_path.py"), ("pkg/loader.py", "plugins/registered.py")} <= edges
    assert ("pkg/loader.py", "plugins/in_test.py") in edges
    assert {"pkg/loader.py", "pkg/normal.py", "plugins/by_path.py", "plugins/in_test.py"} <= set(
        deps["tests/test_loads.py"]["imports"]
    )
    # modules are imports, never reads
    everything = [p for d_ in deps.values() for p in d_["reads"]]
    assert not [p for p in everything if p.endswith(".py")], everything
    assert deps["tests/test_other.py"]["reads"] == []


def test_environment_iteration_and_subprocesses(project: Path, start_daemon) -> None:
    write_project(project, {
        "tests/test_copy.py": """
            import os

            def test_copy():
                env = os.environ.copy()
                env2 = dict(os.environ, EXTRA="1")
                assert env["HOME"] == env2["HOME"]
        """,
        "tests/test_items.py": """
            import os

            def test_items():
                assert [k for k, v in os.environ.items() if k == "HOME"] == ["HOME"]
        """,
        "tests/test_keys.py": """
            import os

            def test_keys():
                assert "HOME" in list(os.environ)
                assert sorted(os.environ.keys())
        """,
        "tests/test_values.py": """
            import os

            def test_values():
                assert list(os.environ.values())
        """,
        "tests/test_len.py": """
            import os

            def test_len():
                assert len(os.environ) > 0
                assert os.environ.get("ASKED_BY_NAME") is None
        """,
        "tests/test_popen_inherits.py": """
            import subprocess, sys

            def test_popen():
                subprocess.run([sys.executable, "-c", "pass"], check=True)
        """,
        "tests/test_popen_explicit_env.py": """
            import subprocess, sys

            def test_popen():
                subprocess.run([sys.executable, "-c", "pass"], env={"PATH": "/usr/bin:/bin"}, check=True)
        """,
        "tests/test_system.py": """
            import os

            def test_system():
                assert os.system("true") == 0
        """,
        "tests/test_patch_dict.py": """
            import os
            from unittest import mock

            def test_patch_dict(monkeypatch):
                monkeypatch.setenv("SET_BY_MONKEYPATCH", "1")
                with mock.patch.dict(os.environ, {"PATCHED": "1"}):
                    assert os.environ["PATCHED"] == "1"
                with mock.patch.dict(os.environ, {"ONLY": "1"}, clear=True):
                    assert os.environ["ONLY"] == "1"
                assert "PATCHED" not in os.environ and os.environ["HOME"]
        """,
        "tests/test_plain.py": "def test_plain():\n    pass\n",
    })
    d = start_daemon(project)
    r = d.run(["-q", "-p", "no:cacheprovider"], env=clean_env())
    assert r.exit_code == 0, r.stdout + r.stderr
    deps = r.deps()
    # what pytest itself reads while importing any test module (PY_IGNORE_IMPORTMISMATCH)
    base = set(deps["tests/test_plain.py"]["env"])
    assert "*" not in base and not record_cosmetic_in(base)
    env = {f: set(d_["env"]) - base for f, d_ in deps.items()}
    for f in ("copy", "items", "keys", "values"):
        # the whole environment, and not every name it held (cosmetic ones included)
        assert env["tests/test_%s.py" % f] == {"*"}, (f, env["tests/test_%s.py" % f])
    # a name asked after the whole environment was read is covered by "*"
    assert env["tests/test_len.py"] == {"*"}
    assert "*" in env["tests/test_popen_inherits.py"]
    assert "*" in env["tests/test_system.py"]
    assert "*" not in env["tests/test_popen_explicit_env.py"]
    for f in ("popen_inherits", "popen_explicit_env", "system"):
        assert deps["tests/test_%s.py" % f]["spawns"] is True, f
    # patch.dict copies and restores os.environ: not a read of all of it
    assert "*" not in env["tests/test_patch_dict.py"]
    assert "HOME" in env["tests/test_patch_dict.py"]
    for f in ("patch_dict", "plain", "copy"):
        assert deps["tests/test_%s.py" % f]["spawns"] is False, f
    # pytest, pluggy, rpytest and the import system iterating os.environ do not count
    assert "*" not in deps[None]["env"] and deps[None]["spawns"] is False
    assert not record_cosmetic_in(deps[None]["env"])


def record_cosmetic_in(names):
    from rpytest.record import is_cosmetic_env

    return [n for n in names if is_cosmetic_env(n)]


def test_cosmetic_env_constants() -> None:
    from rpytest import record

    assert {"PWD", "OLDPWD", "SHLVL", "_", "TERM", "COLUMNS", "LINES", "DISPLAY"} <= record.COSMETIC_ENV
    assert "SSH_" in record.COSMETIC_ENV_PREFIXES
    assert record.is_cosmetic_env("SSH_AUTH_SOCK") and record.is_cosmetic_env("PWD")
    assert not record.is_cosmetic_env("HOME") and not record.is_cosmetic_env("PATH")
    assert not record.is_cosmetic_env("SSH") and not record.is_cosmetic_env("*")


def test_sqlite_databases_are_reads(project: Path, start_daemon) -> None:
    import sqlite3

    write_project(project, {
        "tests/test_db.py": """
            import sqlite3
            from pathlib import Path

            def test_existing():
                con = sqlite3.connect("data/app.db")
                assert con.execute("select x from t").fetchall() == [(1,)]
                con.close()

            def test_uri_and_path():
                sqlite3.connect("file:data/uri.db?mode=ro", uri=True).close()
                sqlite3.connect(Path("data") / "path.db").close()

            def test_memory_and_new():
                sqlite3.connect(":memory:").close()
                con = sqlite3.connect("data/new.db")  # created here: its own output
                con.execute("create table t(x)")
                con.close()
                Path("data/new.db").unlink()
        """,
    })
    (project / "data").mkdir()
    for name in ("app", "uri", "path"):
        con = sqlite3.connect(str(project / "data" / ("%s.db" % name)))
        con.execute("create table t(x)")
        con.execute("insert into t values (1)")
        con.commit()
        con.close()
    d = start_daemon(project)
    r = d.run(["-q", "-p", "no:cacheprovider"], env=clean_env())
    assert r.exit_code == 0, r.stdout + r.stderr
    reads = r.deps()["tests/test_db.py"]["reads"]
    assert [p for p in reads if p != "tests/test_db.py"] == ["data/app.db", "data/path.db", "data/uri.db"]


def test_pytester_subprocess_is_the_tests_own(project: Path, start_daemon) -> None:
    # pytester's code is pytest's, but it starts a subprocess with a copy of the
    # environment on the test's behalf.
    write_project(project, {
        "tests/test_pytester.py": """
            pytest_plugins = ["pytester"]

            def test_sub(pytester):
                pytester.makepyfile("def test_x(): pass")
                assert pytester.runpytest_subprocess("-p", "no:cacheprovider").ret == 0
        """,
        "tests/test_plain.py": "def test_plain():\n    pass\n",
    })
    d = start_daemon(project)
    r = d.run(["-q", "-p", "no:cacheprovider"], env=clean_env())
    assert r.exit_code == 0, r.stdout + r.stderr
    deps = r.deps()
    assert deps["tests/test_pytester.py"]["spawns"] is True
    assert "*" in deps["tests/test_pytester.py"]["env"]
    assert deps["tests/test_plain.py"]["spawns"] is False and "*" not in deps["tests/test_plain.py"]["env"]
    assert deps[None]["spawns"] is False and "*" not in deps[None]["env"]


def test_code_outside_the_project_is_keyed_or_flagged(project: Path, start_daemon, tmp_path_factory) -> None:
    shared = tmp_path_factory.mktemp("shared")
    (shared / "sharedlib.py").write_text("VALUE = 1\n")
    (shared / "loose.py").write_text("VALUE = 2\n")
    write_project(project, {
        "tests/test_uses_shared.py": """
            import sharedlib

            def test_shared():
                assert sharedlib.VALUE == 1
        """,
        "tests/test_by_path.py": """
            import importlib.util, os

            def test_loose():
                path = os.path.join(os.environ["PYTHONPATH"], "loose.py")
                spec = importlib.util.spec_from_file_location("loose_unregistered", path)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                assert module.VALUE == 2
        """,
        "tests/test_plain.py": "import json\n\ndef test_plain():\n    assert json.dumps(1) == '1'\n",
    })
    d = start_daemon(project)
    r = d.run(["-q", "-p", "no:cacheprovider"], env=clean_env(PYTHONPATH=str(shared)))
    assert r.exit_code == 0, r.stdout + r.stderr
    deps = r.deps()
    # A module that stays imported is named by the installed-code report, keyed by content.
    assert deps["tests/test_uses_shared.py"]["outside"] is False
    installed = [f for e in r.of("installed") for f in e["files"]]
    assert any(name.startswith("sharedlib:") for name, _ in installed), installed
    # Code executed by path and never registered cannot be named: never cached.
    assert deps["tests/test_by_path.py"]["outside"] is True
    assert deps["tests/test_plain.py"]["outside"] is False  # stdlib and installed packages are fine
    assert deps[None]["outside"] is False


def test_a_fixture_error_shows_no_frame_of_the_recorder(project: Path, start_daemon) -> None:
    """The recording window's hook wrappers wrap fixture setup and the test
    phases; like pytest's and pluggy's own frames, theirs stay out of the
    traceback the user reads."""
    write_project(project, {
        "conftest.py": """
            import pytest

            @pytest.fixture(autouse=True)
            def boom():
                raise RuntimeError("x")

            @pytest.fixture(scope="module")
            def wide():
                raise RuntimeError("y")
        """,
        "test_a.py": """
            def test_a():
                pass

            def test_b(wide):
                pass
        """,
    })
    d = start_daemon(project)
    for tb in ("auto", "long"):
        r = d.run(["-q", "-p", "no:cacheprovider", f"--tb={tb}"])
        assert r.exit_code == 1, r.stdout
        assert "RuntimeError" in r.stdout
        assert "rpytest" not in r.stdout, r.stdout
