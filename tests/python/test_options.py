"""The session describes its parser's options (rpytest.options), and a
plugin's session-level hooks listing the environment are not test inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

from conftest import clean_env, run_session_process, write_project

PLUGIN = '''
import os


def pytest_addoption(parser):
    group = parser.getgroup("demo")
    group.addoption("--demo-flag", action="store_true", help="a flag")
    group.addoption("--demo-value", help="one value")
    group.addoption("--demo-pair", nargs=2, help="two values")
    group.addoption("--demo-maybe", nargs="?", const="x", help="maybe a value")
    group.addoption("--demo-many", nargs="+", help="values")
    parser.getgroup("terminal reporting").addoption("--demo-report", help="write a report")


def pytest_configure(config):
    # As pytest-metadata and pytest-benchmark do: the environment, to display it.
    config._demo_env = dict(os.environ)


def pytest_report_header(config):
    return "demo: %d variables" % len(list(os.environ))
'''


def _session(project: Path, argv: List[str], plugin_dir: Path, plugin: str = "demo_plugin") -> List[Dict[str, Any]]:
    env = clean_env(PYTHONPATH=str(plugin_dir))
    code, messages, out, err = run_session_process(
        project, ["-p", plugin] + argv,
        {"rootdir": str(project), "record": True, "events": True, "describe_options": True}, env=env,
    )
    assert code == 0, out + err
    return messages


def test_options_are_described_with_their_arity_and_group(tmp_path: Path) -> None:
    plugin_dir = write_project(tmp_path / "plugins", {"demo_plugin.py": PLUGIN})
    project = write_project(tmp_path / "proj", {"test_a.py": "def test_a():\n    pass\n"})
    messages = _session(project, ["-q"], plugin_dir)
    described = [m for m in messages if m.get("type") == "options"]
    assert len(described) == 1
    by_name = {o["names"][0]: o for o in described[0]["options"]}
    assert by_name["--demo-flag"]["arity"] == "none"
    assert by_name["--demo-value"]["arity"] == "one"
    assert by_name["--demo-pair"]["arity"] == {"exactly": 2}
    assert by_name["--demo-maybe"]["arity"] == "optional"
    assert by_name["--demo-many"]["arity"] == "many"
    assert by_name["--demo-report"]["group"] == "terminal reporting"
    assert by_name["--demo-flag"]["group"] == "demo"
    # pytest's own are there too.
    assert "--junitxml" in by_name or "--junit-xml" in by_name


def _global_env(messages: List[Dict[str, Any]]) -> List[str]:
    deps = [m for m in messages if m.get("type") == "deps" and m.get("file") is None]
    return [e for d in deps for e in d.get("env", [])]


def _file_env(messages: List[Dict[str, Any]], file: str) -> List[str]:
    deps = [m for m in messages if m.get("type") == "deps" and m.get("file") == file]
    return [e for d in deps for e in d.get("env", [])]


def test_an_unknown_plugins_session_hooks_listing_the_environment_are_inputs(tmp_path: Path) -> None:
    # Only plugins known to list the environment to display it (pytest-metadata,
    # pytest-benchmark, pytest-html: tests/options.rs runs them for real) are
    # left out; another plugin may turn what it lists into test settings.
    plugin_dir = write_project(tmp_path / "plugins", {"demo_plugin.py": PLUGIN})
    project = write_project(tmp_path / "proj", {
        "test_a.py": "def test_a():\n    pass\n",
        "test_iter.py": "import os\n\ndef test_iter():\n    assert list(os.environ) is not None\n",
    })
    messages = _session(project, ["-q"], plugin_dir)
    assert "*" in _global_env(messages)


def test_a_display_plugins_session_hooks_listing_the_environment_are_not_inputs(tmp_path: Path) -> None:
    plugin_dir = write_project(tmp_path / "plugins", {"pytest_metadata_demo.py": PLUGIN})
    project = write_project(tmp_path / "proj", {
        "test_a.py": "def test_a():\n    pass\n",
        "test_iter.py": "import os\n\ndef test_iter():\n    assert list(os.environ) is not None\n",
    })
    messages = _session(project, ["-q"], plugin_dir, plugin="pytest_metadata_demo")
    assert "*" not in _global_env(messages)
    # A test that iterates the environment still depends on all of it.
    assert "*" in _file_env(messages, "test_iter.py")


def test_a_conftest_listing_the_environment_still_is_an_input(tmp_path: Path) -> None:
    plugin_dir = write_project(tmp_path / "plugins", {"demo_plugin.py": PLUGIN})
    project = write_project(tmp_path / "proj", {
        "conftest.py": "import os\n\ndef pytest_configure(config):\n    config._all = dict(os.environ)\n",
        "test_a.py": "def test_a():\n    pass\n",
    })
    messages = _session(project, ["-q"], plugin_dir)
    assert "*" in _global_env(messages)
