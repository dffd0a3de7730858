"""pytest-xdist's command-line surface when rpytest runs `-n` itself.

Sessions that rpytest distributes run with `-p no:xdist`, so the options a
suite may carry in `addopts` (`-n auto`, `--dist loadgroup`, ...), the
`xdist_group` marker and the `worker_id` / `testrun_uid` fixtures would
otherwise be unknown. This module declares them; their values are read by the
rpytest CLI, never here.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("xdist", "distributed testing (run by rpytest)")
    # Lowercase short options are reserved for pytest; pytest-xdist registers these the same way.
    group._addoption("-n", "--numprocesses", dest="numprocesses", metavar="numprocesses", default=None,
                    help="Number of workers (a number, 'auto' or 'logical'); rpytest distributes the tests.")
    group.addoption("--maxprocesses", dest="maxprocesses", metavar="maxprocesses", type=int, default=None,
                    help="Limit the number of workers of -n auto.")
    group.addoption("--max-worker-restart", dest="maxworkerrestart", default=None,
                    help="Crashed workers replaced before the run stops (default: 4 per worker).")
    group.addoption("--dist", dest="dist", metavar="distmode", default="no",
                    choices=["each", "load", "loadscope", "loadfile", "loadgroup", "worksteal", "no"],
                    help="How tests are distributed over workers.")
    group.addoption("--loadscope-reorder", dest="loadscopereorder", action="store_true", default=True,
                    help="Accepted for pytest-xdist compatibility.")
    group.addoption("--no-loadscope-reorder", dest="loadscopereorder", action="store_false",
                    help="Accepted for pytest-xdist compatibility.")
    group._addoption("-d", "--distload", action="store_true", dest="distload", default=False,
                    help="Same as --dist=load.")
    group.addoption("--tx", dest="tx", action="append", default=[], metavar="xspec",
                    help="Accepted for pytest-xdist compatibility (ignored).")
    group.addoption("--px", dest="px", action="append", default=[], metavar="xspec",
                    help="Accepted for pytest-xdist compatibility (ignored).")
    group.addoption("--rsyncdir", action="append", default=[], metavar="DIR",
                    help="Accepted for pytest-xdist compatibility (ignored).")
    group.addoption("--rsyncignore", action="append", default=[], metavar="GLOB",
                    help="Accepted for pytest-xdist compatibility (ignored).")
    group.addoption("--testrunuid", action="store", default=None,
                    help="Accepted for pytest-xdist compatibility.")
    group.addoption("--maxschedchunk", action="store", type=int, default=None,
                    help="Accepted for pytest-xdist compatibility (ignored).")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "xdist_group(name): tests with the same group name run on the same worker.",
    )


@pytest.fixture(scope="session")
def worker_id(request: Any) -> str:
    """`gw0`, `gw1`, ... in an rpytest worker; `master` when not distributed (as pytest-xdist)."""
    workerinput = getattr(request.config, "workerinput", None)
    if workerinput is None:
        return "master"
    return str(workerinput["workerid"])


@pytest.fixture(scope="session")
def testrun_uid(request: Any) -> str:
    """One id shared by every worker of a run (as pytest-xdist)."""
    workerinput = getattr(request.config, "workerinput", None)
    if workerinput is None:
        return uuid.uuid4().hex
    return str(workerinput["testrunuid"])
