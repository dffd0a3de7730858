"""The warm set: what a session counts as third-party, primed in the daemon or not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import TIMEOUT, clean_env

SCRIPT = r"""
import json, os, sys
root = sys.argv[1]
sys.path.insert(0, root)
sys.path.insert(0, os.path.join(root, "env", "site-packages"))
import pytest  # what the daemon imports
from rpytest import warm
had_sysconfig = "sysconfig" in sys.modules
warm.prime(root)
primed_sysconfig = "sysconfig" in sys.modules
primed = warm.candidates(root)
warm._SITE_DIRS = None
warm._KNOWN.clear()
cold = warm.candidates(root)
warm.prime(root)
import thirdmod  # third-party, imported after the daemon primed (by a session)
import projmod  # project code: never warm
after = warm.candidates(root)
warm._SITE_DIRS = None
warm._KNOWN.clear()
unprimed_after = warm.candidates(root)
print(json.dumps({"had_sysconfig": had_sysconfig, "primed_sysconfig": primed_sysconfig, "cold": cold,
                  "primed": primed, "after": after, "unprimed_after": unprimed_after}))
"""


def test_priming_changes_no_answer_and_keeps_no_module(tmp_path: Path) -> None:
    (tmp_path / "projmod.py").write_text("X = 1\n")
    site = tmp_path / "env" / "site-packages"
    site.mkdir(parents=True)
    (site / "thirdmod.py").write_text("Y = 2\n")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        capture_output=True, text=True, timeout=TIMEOUT, env=clean_env(), cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["primed"] == got["cold"]
    assert "thirdmod" not in got["cold"]
    assert "thirdmod" in got["after"] and "projmod" not in got["after"]
    assert got["after"] == got["unprimed_after"]
    # What priming imported is dropped again: sessions see the modules they saw before.
    assert got["primed_sysconfig"] == got["had_sysconfig"]
