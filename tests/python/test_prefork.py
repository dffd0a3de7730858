"""The pre-forked session child: taken for a plain request, refused (plain
session, stock behaviour) whenever the request could change what it prepared,
replaced after use and never left behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

from conftest import PYTHON_DIR, TIMEOUT, clean_env, gone, wait_for, write_project

PROJECT = {
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

        def test_entry_point_plugin(plugin_value):
            # rpytest_fixture_plugin (a pytest11 entry point) provides the fixture
            assert plugin_value == "unset"
    """,
    "localplug.py": """
        import pytest

        @pytest.fixture
        def plugin_value():
            return "unset"

        def pytest_report_header(config):
            return "localplug loaded"
    """,
}

SUMMARY = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (.*?)(?: - .*)?$")


def prefork_info(d) -> Dict:
    return d.ping()["prefork"]


def wait_prefork_ready(d) -> Dict:
    info: Dict = {}

    def ready() -> bool:
        info.update(prefork_info(d))
        return bool(info["ready"])

    assert wait_for(ready), "the pre-forked child never became ready:\n" + d.log()
    return info


def summary(stdout: str) -> List[Tuple[str, str]]:
    out = []
    for line in stdout.splitlines():
        m = SUMMARY.match(line)
        if m:
            out.append((m.group(1), m.group(2)))
    return sorted(out)


def stock(project: Path, argv: List[str], env: Dict[str, str], cwd: Optional[Path] = None) -> Tuple[int, str]:
    """The `pytest` command itself, same arguments, environment and directory."""
    exe = os.path.join(os.path.dirname(sys.executable), "pytest")
    p = subprocess.run([exe] + argv, cwd=str(cwd or project), env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=TIMEOUT)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def assert_like_stock(project: Path, result, argv: List[str], env: Dict[str, str], cwd: Optional[Path] = None) -> None:
    code, out = stock(project, argv, env, cwd)
    assert summary(result.stdout) == summary(out), (result.stdout, result.stderr, out)
    assert summary(out), out
    assert result.exit_code == code, (result.stdout, result.stderr, out)


def test_plain_request_takes_the_preforked_child_and_it_is_replaced(project: Path, start_daemon) -> None:
    write_project(project, PROJECT)
    d = start_daemon(project)
    first = wait_prefork_ready(d)
    assert first["enabled"] and first["sessions"] == 0 and first["pid"]
    # what the preparation read is what it is checked against
    assert "PYTEST_DEBUG" in first["env_read"]
    env = clean_env()
    r = d.run(["-rA"], env=env, session={"record": False})
    assert r.one("started")["pid"] == first["pid"], d.log()
    assert_like_stock(project, r, ["-rA"], env)
    assert "localplug loaded" not in r.stdout
    # replaced after use: a new child, ready for the next request; the used one is gone
    second = wait_prefork_ready(d)
    assert second["pid"] != first["pid"]
    assert second["sessions"] == 1 and second["fallbacks"] == 0
    assert wait_for(lambda: gone(first["pid"]))
    r2 = d.run(["-rA"], env=env, session={"record": True})
    assert r2.one("started")["pid"] == second["pid"]
    assert_like_stock(project, r2, ["-rA"], env)
    assert prefork_info(d)["sessions"] == 2
    assert d.ping()["sessions"] == 2


def test_other_cwd_and_ini_still_behave_like_pytest(project: Path, start_daemon) -> None:
    """The pre-fork assumes no cwd, rootdir or ini: those are read at request time."""
    write_project(project, PROJECT)
    write_project(project / "sub", {
        "pytest.ini": "[pytest]\naddopts = -rA --fixture-plugin-flag=from-ini\n",
        "test_sub.py": "def test_flag(plugin_value):\n    assert plugin_value == 'from-ini'\n",
    })
    d = start_daemon(project)
    pid = wait_prefork_ready(d)["pid"]
    env = clean_env()
    r = d.run([], cwd=project / "sub", env=env, session={"record": False})
    assert r.one("started")["pid"] == pid
    assert_like_stock(project, r, [], env, cwd=project / "sub")
    assert ("PASSED", "test_sub.py::test_flag") in summary(r.stdout)
    assert "rootdir: %s" % (project / "sub") in r.stdout


FALLBACKS = [
    # (argv, extra environment, what the fallback names)
    (["-p", "no:rpytest_fixture_plugin"], {}, "-p no:rpytest_fixture_plugin"),
    (["-pno:rpytest_fixture_plugin"], {}, "-pno:rpytest_fixture_plugin"),
    (["-p", "localplug"], {"PYTHONPATH": "{python}:{project}"}, "-p localplug"),
    (["--disable-plugin-autoload"], {}, "--disable-plugin-autoload"),
    ([], {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}, "PYTEST_DISABLE_PLUGIN_AUTOLOAD"),
    ([], {"PYTEST_PLUGINS": "localplug", "PYTHONPATH": "{python}:{project}"}, "PYTEST_PLUGINS"),
    ([], {"PYTEST_ADDOPTS": "-p no:rpytest_fixture_plugin"}, "PYTEST_ADDOPTS"),
    ([], {"RPYTEST_PREFORK": "0"}, "RPYTEST_PREFORK=0"),
]


@pytest.mark.parametrize("argv, extra, why", FALLBACKS, ids=[w for _, _, w in FALLBACKS])
def test_fallback_is_a_plain_session_like_pytest(project: Path, start_daemon, argv, extra, why) -> None:
    if "--disable-plugin-autoload" in argv:
        version = tuple(int(x) for x in re.findall(r"\d+", pytest.__version__)[:2])
        if version < (8, 4):
            pytest.skip("--disable-plugin-autoload is pytest >= 8.4")
    write_project(project, PROJECT)
    d = start_daemon(project)
    pid = wait_prefork_ready(d)["pid"]
    env = clean_env(**{k: v.format(python=PYTHON_DIR, project=project) for k, v in extra.items()})
    r = d.run(["-rA"] + argv, env=env, session={"record": False})
    started = r.one("started")["pid"]
    assert started != pid, "the pre-forked child took a request it must refuse"
    info = prefork_info(d)
    assert info["sessions"] == 0 and info["fallbacks"] == 1
    assert why in info["last_fallback"], info
    assert_like_stock(project, r, ["-rA"] + argv, env)
    if "localplug" in str(argv) + str(extra):
        assert "localplug loaded" in r.stdout
    if "no:" in why and not extra:
        # The next child prepares for the request's `-p no:NAME` (see
        # test_the_last_requests_plugin_exclusions_are_prepared_for).
        return
    # the pre-forked child is kept for the next plain request
    assert info["pid"] == pid
    plain = d.run(["-rA"], env=clean_env(), session={"record": False})
    assert plain.one("started")["pid"] == pid


@pytest.mark.parametrize("form", [["-p", "no:rpytest_fixture_plugin"], ["-pno:rpytest_fixture_plugin"]], ids=["-p no:", "-pno:"])
def test_the_last_requests_plugin_exclusions_are_prepared_for(project: Path, start_daemon, form) -> None:
    """`-p no:NAME` on every run (`-p no:cacheprovider`): the first such
    request gets a plain session, the pre-forked child made after it prepares
    for the same exclusions and takes the next one (with pytest's output), a
    request without them or with others gets a plain session again."""
    write_project(project, PROJECT)
    d = start_daemon(project)
    first = wait_prefork_ready(d)["pid"]
    env = clean_env()
    argv = ["-rA"] + form
    r = d.run(argv, env=env, session={"record": False})
    assert r.one("started")["pid"] != first
    assert_like_stock(project, r, argv, env)

    def new_child_ready() -> bool:
        info = prefork_info(d)
        return info["pid"] not in (None, first) and info["ready"]

    assert wait_for(new_child_ready), d.log()
    second = prefork_info(d)["pid"]
    r = d.run(argv, env=env, session={"record": False})
    assert r.one("started")["pid"] == second, d.log()
    assert_like_stock(project, r, argv, env)
    info = prefork_info(d)
    assert info["sessions"] == 1 and info["fallbacks"] == 1, info

    third = wait_prefork_ready(d)["pid"]
    plain = d.run(["-rA"], env=env, session={"record": False})
    assert plain.one("started")["pid"] != third, "a child prepared without the plugin took a request with it"
    assert_like_stock(project, plain, ["-rA"], env)
    assert "no plugin arguments" in prefork_info(d)["last_fallback"]


def test_changed_environment_read_by_the_preparation_falls_back(project: Path, start_daemon) -> None:
    """PYTEST_DEBUG is read when the plugin manager is made: a request that sets it gets a fresh one."""
    write_project(project, {"test_x.py": "def test_x():\n    pass\n"})
    d = start_daemon(project)
    pid = wait_prefork_ready(d)["pid"]
    r = d.run(["-q"], env=clean_env(PYTEST_DEBUG="1"), session={"record": False})
    assert r.one("started")["pid"] != pid
    assert r.exit_code == 0
    # pytest's plugin-manager trace went to the session's stderr, as under `pytest`
    assert "pytest_plugin_registered" in r.stderr or "pytest_plugin_registered" in r.stdout
    assert "PYTEST_DEBUG" in prefork_info(d)["last_fallback"]


def test_dead_preforked_child_is_noticed_and_replaced(project: Path, start_daemon) -> None:
    write_project(project, PROJECT)
    d = start_daemon(project)
    pid = wait_prefork_ready(d)["pid"]
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: prefork_info(d)["pid"] is None), d.log()
    assert wait_for(lambda: gone(pid))
    env = clean_env()
    r = d.run(["-rA"], env=env, session={"record": False})
    assert r.one("started")["pid"] != pid
    assert_like_stock(project, r, ["-rA"], env)
    fresh = wait_prefork_ready(d)
    assert fresh["pid"] != pid
    # the same request again: the speculative child forked after that session, or the plain one
    started = d.run(["-rA"], env=env, session={"record": False}).one("started")["pid"]
    assert started in (fresh["pid"], fresh["speculative"]["pid"])


def test_preforked_child_goes_with_the_daemon(project: Path, start_daemon) -> None:
    write_project(project, {"test_x.py": "def test_x():\n    pass\n"})
    d = start_daemon(project)
    pid = wait_prefork_ready(d)["pid"]
    d.stop()
    assert d.proc.returncode == 0
    assert gone(pid)
    d2 = start_daemon(project)
    pid2 = wait_prefork_ready(d2)["pid"]
    d2.proc.kill()  # no chance to clean up: the child notices on its own
    d2.proc.wait(TIMEOUT)
    assert wait_for(lambda: gone(pid2))


def test_preforked_child_is_not_a_busy_session(project: Path, start_daemon) -> None:
    write_project(project, {"test_x.py": "def test_x():\n    pass\n"})
    d = start_daemon(project, idle_timeout=3)
    assert d.run(["-q"], session={"record": False}).exit_code == 0
    # A pre-forked child waits (forked at start, or again when the session
    # ended if the session took the first), yet the daemon is idle: it exits
    # on its idle timeout and takes every child it forked along.
    d.proc.wait(TIMEOUT)
    assert d.proc.returncode == 0
    log = d.log()
    assert "idle for" in log
    pids = [int(p) for p in re.findall(r"pre-forked session child (\d+)", log)]
    assert pids, log
    assert all(gone(p) for p in pids)


def test_blocked_default_plugin_like_pytest(project: Path, start_daemon) -> None:
    """`-p no:cacheprovider` must keep the default plugin from ever registering
    its options (what the prepared plugin manager has done): `--lf` is then
    unknown, as under `pytest`."""
    write_project(project, {"test_x.py": "def test_x():\n    pass\n"})
    d = start_daemon(project)
    pid = wait_prefork_ready(d)["pid"]
    env = clean_env()
    argv = ["-p", "no:cacheprovider", "--lf"]
    r = d.run(argv, env=env, session={"record": False})
    code, out = stock(project, argv, env)
    assert code == 4 and "unrecognized arguments: --lf" in out, out
    assert r.exit_code == code, (r.stdout, r.stderr)
    assert "unrecognized arguments: --lf" in r.stderr + r.stdout
    assert r.one("started")["pid"] != pid


def test_changed_module_of_the_preforked_child_falls_back(project: Path, start_daemon, tmp_path: Path, monkeypatch) -> None:
    """The child imported rpytest's session modules while preparing: when one
    of them changes on disk, the request gets a plain session (which imports
    the new file) and the child is replaced."""
    import shutil

    import conftest

    copy = tmp_path / "pkg"
    shutil.copytree(PYTHON_DIR / "rpytest", copy / "rpytest", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(conftest, "PYTHON_DIR", copy)
    write_project(project, {"test_x.py": "def test_x():\n    pass\n"})
    d = start_daemon(project)
    info = wait_prefork_ready(d)
    module = str(copy / "rpytest" / "coverage.py")
    assert module in info["files"], info
    with open(module, "a") as f:
        f.write("\nEDITED = True\n")
    r = d.run(["-q"], env=conftest.clean_env(), session={"record": False})
    assert r.exit_code == 0, r.stdout + r.stderr
    assert r.one("started")["pid"] != info["pid"]
    assert "coverage.py" in prefork_info(d)["last_fallback"]
    assert wait_for(lambda: gone(info["pid"]))
    fresh = wait_prefork_ready(d)
    assert fresh["pid"] != info["pid"]
    # the same request again: the speculative child forked after that session, or the plain one
    started = d.run(["-q"], env=conftest.clean_env(), session={"record": False}).one("started")["pid"]
    assert started in (fresh["pid"], fresh["speculative"]["pid"])


# ---- the speculative child: the last request, prepared further -------------


def wait_speculative_ready(d) -> Dict:
    info: Dict = {}

    def ready() -> bool:
        info.update(prefork_info(d))
        return bool(info["speculative"]["ready"])

    assert wait_for(ready), "the speculative child never became ready:\n" + d.log()
    return info["speculative"]


@pytest.mark.parametrize("record", [False, True], ids=["no-cache", "recording"])
def test_same_request_again_takes_the_speculative_child(project: Path, start_daemon, record: bool) -> None:
    write_project(project, PROJECT)
    d = start_daemon(project)
    wait_prefork_ready(d)
    env = clean_env()
    first = d.run(["-rA"], env=env, session={"record": record})
    spec = wait_speculative_ready(d)
    second = d.run(["-rA"], env=env, session={"record": record})
    assert second.one("started")["pid"] == spec["pid"], d.log()
    assert prefork_info(d)["speculative"]["sessions"] == 1
    assert_like_stock(project, second, ["-rA"], env)
    # what the session told the CLI is what the first (not speculative) one told it
    assert second.results() == first.results() and len(first.results()) == 5
    assert [m["type"] for m in second.messages if m["type"] != "started"] == [
        m["type"] for m in first.messages if m["type"] != "started"]
    if record:
        assert second.deps() == first.deps() and first.deps()


def test_a_request_replaying_cached_results_takes_the_speculative_child(project: Path, start_daemon) -> None:
    """A run that replays cached results beside one that runs (the everyday
    rerun with a failing test): the session turns the cached entries' lists
    into tuples, and the speculative child must still see its request as the
    one it prepared for."""
    write_project(project, PROJECT)
    write_project(project, {"test_c.py": "def test_c1():\n    pass\n\ndef test_c2():\n    pass\n"})
    d = start_daemon(project)
    wait_prefork_ready(d)
    env = clean_env()
    first = d.run(["-rA", "test_c.py"], env=env, session={"record": False})
    cached = [{k: m[k] for k in ("nodeid", "file", "outcome", "duration", "location", "longrepr", "wasxfail")}
              for m in first.of("result")]
    assert len(cached) == 2
    session = {"record": False, "skip_files": ["test_c.py"], "cached": cached}
    runs = []
    for _ in range(2):
        runs.append(d.run(["-rA"], env=env, session=session))
        spec = wait_speculative_ready(d)
    third = d.run(["-rA"], env=env, session=session)
    assert third.one("started")["pid"] == spec["pid"], d.log()
    assert "internal error" not in third.stderr, third.stderr
    for r in runs + [third]:
        assert r.exit_code == 1, r.stdout + r.stderr
        assert set(r.replayed()) == {"test_c.py::test_c1", "test_c.py::test_c2"}
    assert third.results() == runs[0].results()


def test_a_file_an_entry_point_plugin_read_at_import_is_watched(project: Path, tmp_path: Path, start_daemon) -> None:
    """An entry-point plugin that reads a data file when it is imported: the
    speculative child imported it before the edit, so the edit must send the
    request elsewhere, where pytest imports the plugin again."""
    plugins = tmp_path / "plugins"
    write_project(plugins, {
        "myplug.py": """
            import os
            import pytest

            with open(os.path.join(os.path.dirname(__file__), "plug.cfg")) as f:
                MODE = f.read().strip()

            def pytest_collection_modifyitems(items):
                if MODE == "strict":
                    for item in items:
                        item.add_marker(pytest.mark.xfail(strict=True, reason="myplug"))
        """,
        "plug.cfg": "normal\n",
        "myplug-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: myplug\nVersion: 1.0\n",
        "myplug-1.0.dist-info/entry_points.txt": "[pytest11]\nmyplug = myplug\n",
    })
    write_project(project, {"test_a.py": "def test_one():\n    pass\n"})
    d = start_daemon(project)
    env = clean_env(PYTHONPATH=os.pathsep.join([str(PYTHON_DIR), str(plugins)]))
    d.run(["-rA"], env=env, session={"record": False})
    spec = wait_speculative_ready(d)
    (plugins / "plug.cfg").write_text("strict\n")
    r = d.run(["-rA"], env=env, session={"record": False})
    assert r.one("started")["pid"] != spec["pid"], d.log()
    assert_like_stock(project, r, ["-rA"], env)
    assert r.exit_code == 1, r.stdout


def test_request_unlike_the_speculated_one_takes_the_plain_child(project: Path, start_daemon) -> None:
    write_project(project, PROJECT)
    d = start_daemon(project)
    env = clean_env()
    d.run(["-rA"], env=env, session={"record": False})
    spec = wait_speculative_ready(d)
    for argv, env2 in ((["-rA", "-k", "ok"], env), (["-rA"], clean_env(SOME_VARIABLE="1"))):
        r = d.run(argv, env=env2, session={"record": False})
        assert r.one("started")["pid"] != spec["pid"], d.log()
        assert_like_stock(project, r, argv, env2)
    assert prefork_info(d)["speculative"]["sessions"] == 0


@pytest.mark.parametrize("change", ["edit-ini", "new-ini", "new-ini-above"])
def test_changed_ini_after_the_speculation_falls_back_like_pytest(project: Path, start_daemon, change: str) -> None:
    """The speculation read the ini file (or found none): a change since then
    means another session, exactly what stock pytest does with the new file."""
    write_project(project, PROJECT)
    sub = project / "sub"
    write_project(sub, {"test_sub.py": "def test_one():\n    pass\n\ndef test_two():\n    pass\n"})
    if change == "edit-ini":
        write_project(sub, {"pytest.ini": "[pytest]\naddopts = -rA\n"})
    d = start_daemon(project)
    env = clean_env()
    d.run(["-rA"], cwd=sub, env=env, session={"record": False})
    spec = wait_speculative_ready(d)
    ini = {"edit-ini": sub, "new-ini": sub, "new-ini-above": project}[change] / "pytest.ini"
    ini.write_text("[pytest]\naddopts = -k one\n")
    r = d.run(["-rA"], cwd=sub, env=env, session={"record": False})
    assert r.one("started")["pid"] != spec["pid"], d.log()
    assert_like_stock(project, r, ["-rA"], env, cwd=sub)
    assert ("PASSED", "test_sub.py::test_one") in summary(r.stdout) or ("PASSED", "sub/test_sub.py::test_one") in summary(r.stdout)
    assert not any("test_two" in n for _, n in summary(r.stdout)), r.stdout


def test_usage_error_before_the_pause_is_never_speculated_and_stays_pytests(project: Path, start_daemon) -> None:
    """A request pytest rejects while it reads the ini file stops its
    speculation before the pause (its error went to a placeholder): the same
    request again gets a session that reports the error to the user."""
    write_project(project, dict(PROJECT, **{"pytest.ini": "[pytest]\nminversion = 99\n"}))
    d = start_daemon(project)
    env = clean_env()
    first = d.run(["-rA"], env=env, session={"record": False})
    assert first.exit_code == 4
    code, out = stock(project, ["-rA"], env)
    assert wait_prefork_ready(d)["pid"]
    assert wait_for(lambda: prefork_info(d)["speculative"]["pid"] is None)
    second = d.run(["-rA"], env=env, session={"record": False})
    assert second.exit_code == code == 4
    assert "minversion" in second.stderr and "minversion" in out
    assert prefork_info(d)["speculative"]["sessions"] == 0


def test_requests_arriving_while_the_child_prepares_are_all_served(project: Path, start_daemon) -> None:
    """One request waits for a child still preparing; the others arriving
    meanwhile get sessions of their own, never a lost request."""
    write_project(project, {"test_x.py": "def test_x():\n    pass\n"})
    d = start_daemon(project)
    env = clean_env()
    handles = [d.start_run(["-q"], env=env, session={"record": False}) for _ in range(4)]
    results = [d.finish_run(h) for h in handles]
    assert [r.exit_code for r in results] == [0, 0, 0, 0], d.log()
    assert len({r.one("started")["pid"] for r in results}) == 4


ENDING = {
    "conftest.py": """
        import atexit
        import sys

        atexit.register(lambda: print("atexit handler ran"))
    """,
    "test_a.py": """
        import os

        def test_forks_a_child_that_goes_on_through_pytest():
            pid = os.fork()
            if pid == 0:
                os.environ["IN_FORKED_CHILD"] = "1"
                return  # this process runs the rest of the session too, then ends
            os.waitpid(pid, 0)

        def test_fails_only_in_the_forked_child():
            assert "IN_FORKED_CHILD" not in os.environ
    """,
}


def test_a_preforked_session_tells_its_end_before_its_process_is_gone(project: Path, start_daemon) -> None:
    """The client hears `exit` when the session said it ended (atexit
    handlers run, output flushed), not after the process is reaped; a
    process the tests forked that ends through the same code is not the
    session (its exit code is not the client's)."""
    write_project(project, ENDING)
    d = start_daemon(project)
    wait_prefork_ready(d)
    env = clean_env()
    first = d.run(["-q"], env=env, session={"record": False})
    spec = wait_speculative_ready(d)
    second = d.run(["-q"], env=env, session={"record": False})
    assert second.one("started")["pid"] == spec["pid"], d.log()
    code, out = stock(project, ["-q"], env)
    assert code == 0 and "atexit handler ran" in out, out
    for r in (first, second):
        pid = r.one("started")["pid"]
        assert r.exit_code == code, (r.stdout, r.stderr, d.log())
        assert r.stdout.count("atexit handler ran") == out.count("atexit handler ran"), r.stdout
        assert wait_for(lambda: "session pid %d finished" % pid in d.log())
        log = d.log()
        told = "session pid %d ended (code 0)" % pid
        assert told in log, log
        assert log.index(told) < log.index("session pid %d finished" % pid), log


UNRAISABLE = {
    "test_leak.py": (
        "import gc\n"
        "# Only pytest's closing collections find the cycles (no automatic\n"
        "# collection mid-run, whose timing depends on allocation counts).\n"
        "gc.disable()\n"
        "class Boom:\n"
        "    def __del__(self):\n"
        "        raise RuntimeError('boom in __del__')\n"
        "def test_cycle_with_raising_finalizer():\n"
        "    a = Boom()\n"
        "    a.me = a\n"
        "    del a\n"
        "def test_unclosed_file_in_a_cycle(tmp_path):\n"
        "    p = tmp_path / 'f.txt'\n"
        "    p.write_text('x')\n"
        "    holder = [open(p)]\n"
        "    holder.append(holder)\n"
        "    del holder\n"
    ),
}


def test_preforked_session_collects_the_tests_garbage_like_pytest(project: Path, start_daemon) -> None:
    """The pre-forked child freezes what it holds before the session (the
    request it decoded): objects the tests make are still collected by
    pytest's closing collections, and their finalizers' errors and
    ResourceWarnings reach pytest's unraisable-exception plugin as under
    stock pytest."""
    write_project(project, UNRAISABLE)
    d = start_daemon(project)
    pid = wait_prefork_ready(d)["pid"]
    env = clean_env()
    argv = ["-rA", "-W", "default"]
    r = d.run(argv, env=env, session={"record": False})
    assert r.one("started")["pid"] == pid, d.log()
    code, out = stock(project, argv, env, None)
    assert "boom in __del__" in out and "ResourceWarning" in out, out
    both = r.stdout + r.stderr  # stock's stderr is in `out`
    for text in ("PytestUnraisableExceptionWarning", "boom in __del__", "ResourceWarning", "warnings summary"):
        assert both.count(text) == out.count(text), (text, r.stdout, r.stderr, out)
    assert summary(r.stdout) == summary(out), (r.stdout, out)
    assert r.exit_code == code


def test_a_request_over_a_megabyte_gets_a_plain_session(project: Path, start_daemon) -> None:
    """The cached results of thousands of files make a request of megabytes:
    handing it to the pre-forked child would have the daemon encode it again
    and the child decode it once more; a plain fork shares the daemon's copy."""
    write_project(project, PROJECT)
    d = start_daemon(project)
    pid = wait_prefork_ready(d)["pid"]
    env = clean_env()
    # Session settings no session reads, as bulky as 5,000 files' cached results.
    r = d.run(["-rA"], env=env, session={"record": False, "padding": ["x" * 200] * 6000})
    assert r.one("started")["pid"] != pid
    assert_like_stock(project, r, ["-rA"], env)
    info = prefork_info(d)
    assert "a request of" in info["last_fallback"], info
    assert info["pid"] == pid and info["sessions"] == 0
    small = d.run(["-rA"], env=env, session={"record": False})
    assert small.one("started")["pid"] == pid
