"""Cached results: skip_files, deselect-and-replay, reporting, exit status."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import run_session_process, write_project

FILES = {
    "test_a.py": """
        import pytest
        def test_one():
            pass
        @pytest.mark.parametrize("x", [1, 2])
        def test_two(x):
            pass
        @pytest.mark.skip(reason="later")
        def test_skip():
            pass
        @pytest.mark.xfail(reason="known bug")
        def test_xf():
            assert 0
    """,
    "test_b.py": """
        def test_b1():
            pass
        def test_b2():
            pass
    """,
}


@pytest.fixture
def cached_results(project: Path, start_daemon):
    """Run once for real and turn the result events into a SessionConfig `cached` list."""
    write_project(project, FILES)
    d = start_daemon(project)
    r = d.run(["-q", "-p", "no:cacheprovider"])
    assert r.exit_code == 0, r.stdout
    cached = []
    for m in r.of("result"):
        entry = {k: m[k] for k in ("nodeid", "file", "outcome", "duration", "location", "longrepr", "wasxfail")}
        cached.append(entry)
    return d, {e["nodeid"]: e for e in cached}


def test_all_cached_skip_files_exit_zero(cached_results, tmp_path: Path) -> None:
    d, cached = cached_results
    xml = tmp_path / "junit.xml"
    session = {"skip_files": ["test_a.py", "test_b.py"], "cached": list(cached.values())}
    r = d.run(["-rA", "-p", "no:cacheprovider", "--junitxml", str(xml)], session=session)
    assert r.exit_code == 0, r.stdout + r.stderr  # would be 5: nothing collected
    assert r.one("finish")["exitstatus"] == 0
    assert r.one("collected")["files"] == []  # not even imported
    replayed = r.replayed()
    assert r.of("result") == []  # nothing ran
    assert replayed == {n: e["outcome"] for n, e in cached.items()}
    assert "test_a.py cccsx" in r.stdout and "test_b.py cc" in r.stdout, r.stdout
    assert "CACHED test_b.py::test_b1" in r.stdout
    assert "CACHED test_a.py::test_two[2]" in r.stdout
    assert "SKIPPED [1] test_a.py" in r.stdout and "later" in r.stdout
    assert "XFAIL test_a.py::test_xf - known bug" in r.stdout
    assert "5 passed, 1 skipped, 1 xfailed" in r.stdout
    suite = ET.parse(xml).getroot().find("testsuite")
    assert suite.get("tests") == "7"
    assert suite.get("skipped") == "2" and suite.get("failures") == "0" and suite.get("errors") == "0"
    names = {tc.get("name") for tc in suite.iter("testcase")}
    assert {"test_one", "test_two[1]", "test_b2", "test_xf", "test_skip"} <= names


def test_verbose_shows_cached_word(cached_results) -> None:
    d, cached = cached_results
    session = {"skip_files": ["test_b.py"], "cached": [cached["test_b.py::test_b1"], cached["test_b.py::test_b2"]]}
    r = d.run(["-v", "-p", "no:cacheprovider"], session=session)
    assert r.exit_code == 0
    assert "test_b.py::test_b1 CACHED" in r.stdout
    assert "test_a.py::test_one PASSED" in r.stdout
    assert "[100%]" in r.stdout and "[1" + "28%]" not in r.stdout
    assert "5 passed, 1 skipped, 1 xfailed" in r.stdout
    # collected lists only what pytest collected; results only for nodes that ran
    assert [f["file"] for f in r.one("collected")["files"]] == ["test_a.py"]
    assert set(r.results()) == {n for n in cached if n.startswith("test_a.py")}


def test_cached_nodes_in_collected_file_are_deselected_and_replayed(cached_results) -> None:
    d, cached = cached_results
    session = {"cached": [cached["test_a.py::test_two[1]"], cached["test_a.py::test_one"]]}
    r = d.run(["-v", "-p", "no:cacheprovider", "test_a.py"], session=session)
    assert r.exit_code == 0
    collected = r.one("collected")["files"]
    # collected is reported before deselection: all nodes
    assert len(collected[0]["nodes"]) == 5
    assert set(r.results()) == {"test_a.py::test_two[2]", "test_a.py::test_skip", "test_a.py::test_xf"}
    assert "test_a.py::test_one CACHED" in r.stdout
    assert "test_a.py::test_two[1] CACHED" in r.stdout
    assert "test_a.py::test_two[2] PASSED" in r.stdout
    assert "deselected" not in r.stdout
    # order is preserved
    assert r.stdout.index("test_one CACHED") < r.stdout.index("test_two[1] CACHED") < r.stdout.index("test_two[2] PASSED")


def test_k_selection_applies_to_replayed_nodes(cached_results) -> None:
    d, cached = cached_results
    session = {"cached": [cached["test_a.py::test_one"], cached["test_a.py::test_two[1]"], cached["test_b.py::test_b1"]]}
    r = d.run(["-v", "-p", "no:cacheprovider", "-k", "two or b2"], session=session)
    assert r.exit_code == 0, r.stdout
    assert "test_a.py::test_two[1] CACHED" in r.stdout
    assert "test_one" not in r.stdout and "test_b1" not in r.stdout
    assert set(r.results()) == {"test_a.py::test_two[2]", "test_b.py::test_b2"}
    assert "3 passed" in r.stdout and "deselected" in r.stdout


def test_collect_only_is_untouched(cached_results) -> None:
    d, cached = cached_results
    r = d.run(["--collect-only", "-q", "-p", "no:cacheprovider"], session={"cached": list(cached.values())})
    assert r.exit_code == 0
    assert "test_a.py::test_one" in r.stdout and "CACHED" not in r.stdout


def test_failures_still_fail_next_to_cached(project: Path, start_daemon) -> None:
    write_project(project, {"test_a.py": "def test_ok():\n    pass\n", "test_f.py": "def test_f():\n    assert 0\n"})
    d = start_daemon(project)
    cached = [{"nodeid": "test_a.py::test_ok", "file": "test_a.py", "outcome": "passed", "duration": 0.5,
               "location": ["test_a.py", 0, "test_ok"], "longrepr": None, "wasxfail": None}]
    r = d.run(["-p", "no:cacheprovider", "--durations=5", "--durations-min=0"], session={"skip_files": ["test_a.py"], "cached": cached})
    assert r.exit_code == 1
    assert "1 failed, 1 passed" in r.stdout
    assert "0.50s call     test_a.py::test_ok" in r.stdout


def test_session_fallback_process(project: Path) -> None:
    write_project(project, FILES)
    cached = [{"nodeid": "test_b.py::test_b1", "file": "test_b.py", "outcome": "passed", "duration": 0.1,
               "location": ["test_b.py", 0, "test_b1"], "longrepr": None, "wasxfail": None}]
    session = {"rootdir": str(project), "skip_files": ["test_b.py"], "cached": cached, "record": True, "events": True}
    code, messages, out, err = run_session_process(project, ["-rA", "-p", "no:cacheprovider"], session)
    assert code == 0, out + err
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "collected" and kinds[-1] == "finish"
    assert "CACHED test_b.py::test_b1" in out
    assert "4 passed, 1 skipped, 1 xfailed" in out  # test_b2: skipped file, not cached
    results = {m["nodeid"]: m["outcome"] for m in messages if m["type"] == "result" and not m.get("cached")}
    assert results["test_a.py::test_xf"] == "xfailed"
    assert "test_b.py::test_b1" not in results
    replayed = [n[0] for m in messages if m["type"] == "cached_results" for n in m["nodes"]]
    assert replayed == ["test_b.py::test_b1"]


def test_session_fallback_hides_its_variables(project: Path) -> None:
    write_project(project, {"test_env.py": """
        import os, sys
        def test_env():
            assert not [k for k in os.environ if k.startswith("RPYTEST_")]
            assert sys.argv[0] == "/custom/argv0"
    """})
    from conftest import clean_env

    env = clean_env(RPYTEST_ARGV0="/custom/argv0")
    code, messages, out, err = run_session_process(project, ["-q"], {"rootdir": str(project)}, env=env)
    assert code == 0, out + err
    assert messages[-1]["type"] == "finish"


def test_replayed_nodes_go_back_as_positions_in_the_list_sent(project: Path) -> None:
    """Asked for (`replay_indices`), replayed nodes come back as runs of their
    positions in the session config's `cached` list, in replay order: a
    dropped file's nodes before the run, a collected file's around the test
    that runs between them; an entry the CLI did not send never is one."""
    write_project(project, {
        "test_a.py": "def test_1():\n    pass\ndef test_2():\n    pass\ndef test_3():\n    pass\n",
        "test_b.py": "def test_b1():\n    pass\ndef test_b2():\n    pass\n",
    })

    def entry(nodeid: str) -> dict:
        f = nodeid.split("::")[0]
        return {"nodeid": nodeid, "file": f, "outcome": "passed", "duration": 0.1,
                "location": [f, 0, nodeid.split("::")[1]], "longrepr": None, "wasxfail": None}

    # test_a.py is named on the command line: collected, its cached nodes
    # replayed around test_2, which runs; test_b.py is dropped.
    cached = [entry("test_a.py::test_3"), "not an entry", entry("test_b.py::test_b1"),
              entry("test_b.py::test_b2"), entry("test_a.py::test_1")]
    session = {"rootdir": str(project), "skip_files": ["test_b.py"], "cached": cached, "record": True,
               "events": True, "replay_indices": True}
    code, messages, out, err = run_session_process(project, ["-q", "-p", "no:cacheprovider", "test_a.py", "."], session)
    assert code == 0, out + err
    assert not [m for m in messages if m["type"] == "cached_results"]
    ranges = [r for m in messages if m["type"] == "cached_replayed" for r in m["ranges"]]
    assert ranges == [[2, 4], [4, 5], [0, 1]], messages
    ran = [m["nodeid"] for m in messages if m["type"] == "result" and not m.get("cached")]
    assert ran == ["test_a.py::test_2"]
    assert "5 passed" in out


def test_a_plugins_unconfigure_sees_the_replayed_reports(project: Path) -> None:
    """The terminal reporter lets go of replayed reports only after every
    plugin's pytest_unconfigure: one that reads its stats there counts the
    replayed tests as it counts the ones that ran."""
    write_project(project, {
        "conftest.py": """
            def pytest_unconfigure(config):
                tr = config.pluginmanager.get_plugin("terminalreporter")
                passed = tr.stats.get("passed", [])
                cached = sum(1 for r in passed if getattr(r, "rpytest_cached", False))
                with open("seen.txt", "w") as f:
                    f.write("%d %d" % (len(passed), cached))
        """,
        "test_a.py": "def test_1():\n    pass\n",
        "test_b.py": "def test_b1():\n    pass\ndef test_b2():\n    pass\n",
    })
    cached = [{"nodeid": "test_b.py::%s" % n, "file": "test_b.py", "outcome": "passed", "duration": 0.1,
               "location": ["test_b.py", 0, n], "longrepr": None, "wasxfail": None} for n in ("test_b1", "test_b2")]
    session = {"rootdir": str(project), "skip_files": ["test_b.py"], "cached": cached, "record": True,
               "events": True, "replay_indices": True}
    code, messages, out, err = run_session_process(project, ["-q", "-p", "no:cacheprovider"], session)
    assert code == 0, out + err
    assert "3 passed" in out
    assert (project / "seen.txt").read_text() == "3 2"


def test_only_what_json_keeps_as_it_is_is_storable() -> None:
    from rpytest.replay import report_extras, storable, stored_properties

    assert storable({"a": [1, 2.5, None, True, "é", {"b": -(1 << 63)}]})
    for value in [(1, 2), {1: "int key"}, float("nan"), float("inf"), 1 << 64, "\ud800", object(), [set()]]:
        assert not storable(value), value
    deep: list = []
    deep.append(deep)  # a cycle: refused, not a RecursionError
    assert not storable(deep)
    assert stored_properties([("k", 1), ("j", [1])]) == [["k", 1], ["j", [1]]]
    assert stored_properties([("k", (1,))]) is None
    from _pytest.reports import TestReport

    rep = TestReport("a.py::t", ("a.py", 0, "t"), {}, "passed", None, "call", user_properties=[("k", 1)])
    assert report_extras(rep) == {}
    rep.mine = {"x": 1}
    assert report_extras(rep) == {"mine": {"x": 1}}
    rep.other = ("tuple",)
    assert report_extras(rep) is None


def test_keywords_are_rebuilt_from_the_node_id_and_the_stored_difference() -> None:
    from rpytest.replay import Keywords, keywords_diff

    nodeid = "tests/sub/test_k.py::TestC::test_p[1]"
    live = ["test_p[1]", "parametrize", "pytestmark", "1", "TestC", "test_k.py", "slow", "sub", "tests", "proj", ""]
    plus, minus = keywords_diff(nodeid, dict.fromkeys(live, 1), "proj")
    assert plus == ["parametrize", "pytestmark", "1", "slow"] and minus == []
    assert set(Keywords("proj")(nodeid, "test_p[1]", plus, minus)) == set(live)
    # A live report lacking a name the node ID gives (a custom item's keywords).
    odd = {"test_p[1]": 1, "extra": 1}
    plus, minus = keywords_diff(nodeid, odd, "proj")
    assert Keywords("proj")(nodeid, "test_p[1]", plus, minus) == odd
