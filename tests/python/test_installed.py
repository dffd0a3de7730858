"""The daemon's view of installed code: env reads at import, module staleness,
hiding warm modules from sessions, and the installed files a session reports.
Each case runs in a fresh interpreter (they change sys.modules and os.environ)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import PYTHON_DIR, clean_env


def run_py(code: str, tmp_path: Path) -> dict:
    """Runs `code` in a fresh interpreter with tmp_path/lib importable; returns the JSON it prints."""
    env = clean_env(PYTHONPATH=str(PYTHON_DIR) + ":" + str(tmp_path / "lib"))
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def test_preload_drops_modules_that_read_the_environment(tmp_path: Path) -> None:
    write(tmp_path / "lib/reads_env.py", "import os\nMODE = os.environ.get('RPT_MODE', 'x')\n")
    write(tmp_path / "lib/lists_env.py", "import os\nN = len(dict(os.environ))\n")
    write(tmp_path / "lib/plain.py", "VALUE = 1\n")
    got = run_py(
        """
        import json, os, sys
        from rpytest.daemon import preload
        dropped = {}
        loaded = preload(["reads_env", "lists_env", "plain"], "/nonexistent", dropped)
        print(json.dumps({"loaded": loaded, "dropped": sorted(dropped), "why": dropped.get("reads_env", ""),
                          "in_modules": "reads_env" in sys.modules, "environ": type(os.environ).__name__}))
        """,
        tmp_path,
    )
    assert got["loaded"] == ["plain"]
    assert got["dropped"] == ["lists_env", "reads_env"]
    assert "RPT_MODE" in got["why"]
    assert not got["in_modules"]
    assert got["environ"] == "_Environ"  # the recording class is gone again


def test_stale_files_sees_an_in_place_edit(tmp_path: Path) -> None:
    write(tmp_path / "lib/inplace.py", "VALUE = 1\n")
    got = run_py(
        f"""
        import json, os, sys
        from rpytest import daemon
        old = daemon.time.time() - 10  # written well before this "daemon" started
        os.utime({str(tmp_path / "lib/inplace.py")!r}, (old, old))
        import inplace
        class D: pass
        d = D(); d.files_ns = daemon.time.time_ns(); d.files = daemon.module_files()
        before = daemon.Daemon.stale_files(d)
        with open({str(tmp_path / "lib/inplace.py")!r}, "w") as f:
            f.write("VALUE = 22\\n")
        after = daemon.Daemon.stale_files(d)
        print(json.dumps({{"before": before, "after": after}}))
        """,
        tmp_path,
    )
    assert got["before"] == []
    assert [Path(p).name for p in got["after"]] == ["inplace.py"]


def test_hidden_warm_module_comes_back_unless_shadowed(tmp_path: Path) -> None:
    write(tmp_path / "lib/warm_a.py", "VALUE = 'installed'\nimport warm_a_dep\n")
    write(tmp_path / "lib/warm_a_dep.py", "")
    write(tmp_path / "lib/warm_b.py", "VALUE = 'installed'\n")
    write(tmp_path / "project/warm_b.py", "VALUE = 'first-party'\n")
    got = run_py(
        f"""
        import json, sys
        from rpytest import shadow
        shadow.set_baseline()
        import warm_a, warm_b
        first_a = warm_a
        hidden = shadow.hide_non_baseline()
        sys.path.insert(0, {str(tmp_path / "project")!r})
        import warm_a, warm_b
        print(json.dumps({{"hidden": hidden, "same_a": warm_a is first_a, "b": warm_b.VALUE,
                          "spec_loader": type(warm_a.__spec__.loader).__name__}}))
        """,
        tmp_path,
    )
    assert got["hidden"] == ["warm_a", "warm_a_dep", "warm_b"]
    assert got["same_a"], "an unshadowed warm module is handed back as it was, not re-executed"
    assert got["spec_loader"] == "SourceFileLoader"
    assert got["b"] == "first-party"


def test_imported_files_are_installed_code_only(tmp_path: Path) -> None:
    write(tmp_path / "lib/site-packages/some_dist.py", "")
    write(tmp_path / "lib/outside_mod.py", "")
    write(tmp_path / "root/first_party.py", "")
    got = run_py(
        f"""
        import json, sys
        sys.path[:0] = [{str(tmp_path / "lib/site-packages")!r}, {str(tmp_path / "root")!r}]
        import some_dist, outside_mod, first_party, json as _j
        from rpytest.installed import imported_files
        print(json.dumps([n for n, _ in imported_files({str(tmp_path / "root")!r})]))
        """,
        tmp_path,
    )
    assert "some_dist:some_dist.py" in got
    assert "outside_mod:outside_mod.py" in got  # e.g. an editable source
    assert not any(n.startswith(("first_party:", "json:")) for n in got)


def test_preload_watches_files_read_at_import_and_drops_project_reads(tmp_path: Path) -> None:
    write(tmp_path / "conf.txt", "x")
    write(tmp_path / "root/settings.txt", "x")
    write(tmp_path / "lib/reads_conf.py", f"with open({str(tmp_path / 'conf.txt')!r}) as f:\n    f.read()\n")
    write(tmp_path / "lib/reads_project.py", f"import io\nwith io.open({str(tmp_path / 'root/settings.txt')!r}) as f:\n    f.read()\n")
    got = run_py(
        f"""
        import builtins, io, json
        from rpytest.daemon import preload
        dropped, files = {{}}, set()
        loaded = preload(["reads_conf", "reads_project"], {str(tmp_path / "root")!r}, dropped, files)
        print(json.dumps({{"loaded": loaded, "dropped": sorted(dropped), "files": sorted(files),
                          "restored": builtins.open is io.open and io.open.__module__ in ("io", "_io")}}))
        """,
        tmp_path,
    )
    assert got["loaded"] == ["reads_conf"]
    assert got["dropped"] == ["reads_project"]
    assert got["files"] == [str(tmp_path / "conf.txt")]
    assert got["restored"]
