"""The session plugin is a facade over plugins with one job each, and the
recorder's interceptions are installed (and undone) one by one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import PYTHON_DIR, clean_env, run_driver, write_project

PARTS_DRIVER = r'''
import json, os, sys
sys.path.insert(0, sys.argv[1])
import pytest
from rpytest.plugin import RpytestPlugin
from rpytest.protocol import EventWriter

seen = {}

class Probe:
    @pytest.hookimpl(trylast=True)
    def pytest_configure(self, config):
        pm = config.pluginmanager
        seen["names"] = sorted(n for n, p in pm.list_name_plugin() if n and n.startswith("rpytest-"))

cfg = json.loads(sys.argv[2])
cfg["rootdir"] = os.getcwd()
rp = RpytestPlugin(cfg, EventWriter(None))
rp.start()
code = pytest.main(["-q", "-p", "no:cacheprovider"], plugins=[rp, Probe()])
rp.stop()
print("RESULT " + json.dumps({"code": int(code), "names": seen["names"]}))
'''


def _parts(tmp_path: Path, cfg: dict) -> dict:
    return run_driver(tmp_path, PARTS_DRIVER, cfg, {"test_a.py": "def test_a():\n    pass\n"})


def test_registering_the_facade_registers_one_plugin_per_job(tmp_path: Path) -> None:
    got = _parts(tmp_path, {"record": True, "timeouts": {"test_a.py": 30}})
    assert got["code"] == 0
    assert got["names"] == [
        "rpytest-cachedresults", "rpytest-recordingwindow", "rpytest-resultstream", "rpytest-testtimeout",
    ]


def test_parts_without_a_job_are_not_registered(tmp_path: Path) -> None:
    # Nothing recorded and no rule timeouts: no window, no timer.
    got = _parts(tmp_path, {"record": False})
    assert got["code"] == 0
    assert got["names"] == ["rpytest-cachedresults", "rpytest-resultstream"]


INSTALL_DRIVER = r'''
import importlib, importlib.util, json, os, pathlib, sys
sys.path.insert(0, sys.argv[1])
from rpytest import record

environ_cls = type(os.environ)
watched = {
    "environ": environ_cls.__getitem__,
    "import_module": importlib.import_module,
    "find_spec": importlib.util.find_spec,
    "path_stat": pathlib.Path.stat,
}
before = {k: f.__code__ for k, f in watched.items()}
record.install(record.Recorder(os.getcwd()))
installed = record.installed()
swapped = sorted(k for k, f in watched.items() if f.__code__ is not before[k])
events = []
sys.addaudithook(lambda e, a: events.append(e) if e.startswith("rpytest.") else None)
os.environ.get("HOME")
heard = "rpytest.env" in events
record.uninstall()
restored = sorted(k for k, f in watched.items() if f.__code__ is before[k])
events.clear()
os.environ.get("HOME")
print("RESULT " + json.dumps({
    "installed": installed, "swapped": swapped, "heard": heard, "restored": restored,
    "after": record.installed(), "quiet": "rpytest.env" not in events,
}))
'''


def test_each_interception_has_its_own_installer_and_uninstaller(tmp_path: Path) -> None:
    driver = tmp_path / "driver.py"
    driver.write_text(INSTALL_DRIVER)
    proc = subprocess.run(
        [sys.executable, str(driver), str(PYTHON_DIR)],
        cwd=tmp_path, capture_output=True, text=True, env=clean_env(), timeout=120,
    )
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    assert line, proc.stdout + proc.stderr
    got = json.loads(line[0][len("RESULT "):])
    assert got["installed"] == ["environ", "import_module", "probes", "audit"]
    assert got["swapped"] == ["environ", "find_spec", "import_module", "path_stat"]
    assert got["heard"]
    assert got["restored"] == ["environ", "find_spec", "import_module", "path_stat"]
    assert got["after"] == []
    assert got["quiet"]


OPTION_DRIVER = r'''
import json, os, sys
sys.path.insert(0, sys.argv[1])
import pytest
from rpytest import record
from rpytest.plugin import RpytestPlugin
from rpytest.protocol import EventWriter

rp = RpytestPlugin({"rootdir": os.getcwd(), "record": True}, EventWriter(None))
rp.start()
events = []
sys.addaudithook(lambda e, a: events.append(e) if e == "rpytest.option" else None)
code = pytest.main(["-q", "-p", "no:cacheprovider", "-p", "no:randomly"], plugins=[rp])
rp.stop()
rec = rp.recorder
print("RESULT " + json.dumps({
    "code": int(code), "events": len(events),
    "options": sorted(k for k in rec.options if k is not None),
}))
'''


def test_only_project_reads_of_options_reach_the_recorder(tmp_path: Path) -> None:
    """pytest reads its options a dozen times per test; those reads raise no
    event at all, while a test's own read is recorded for its file."""
    project = write_project(tmp_path / "p", {
        "test_plain.py": "".join("def test_%d():\n    pass\n\n" % i for i in range(20)),
        "test_reads.py": """
            def test_reads(request):
                assert request.config.getoption("verbose") is not None

            def test_reads_attribute(pytestconfig):
                assert pytestconfig.option.verbose is not None
        """,
    })
    driver = tmp_path / "driver.py"
    driver.write_text(OPTION_DRIVER)
    proc = subprocess.run(
        [sys.executable, str(driver), str(PYTHON_DIR)],
        # Installed plugins (pytest-xdist) read options from their own hooks:
        # those reads reach the recorder, which leaves them out; this counts
        # pytest's own.
        cwd=project, capture_output=True, text=True, env=clean_env(PYTEST_DISABLE_PLUGIN_AUTOLOAD="1"), timeout=120,
    )
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    assert line, proc.stdout + proc.stderr
    got = json.loads(line[0][len("RESULT "):])
    assert got["code"] == 0
    assert got["options"] == ["test_reads.py"]
    # The test's own getoption() call: one event (its get_verbosity-free path).
    assert got["events"] == 1
