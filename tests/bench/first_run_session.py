"""One session of a first run, in this process, for profilers.

usage: python tests/bench/first_run_session.py MODE [pytest args...]

Run from a project's rootdir. MODE:

* `imports`: only what a warm daemon has loaded before it forks a session
  (pytest's modules, rpytest's session modules): the baseline to subtract;
* `stock`: the same, then `pytest.main(args)` as the `pytest` command runs it;
* `record`: the same, then the session a first rpytest run forks
  (`rpytest.session.run_pytest` with `record: true`, events to /dev/null);
* `norecord`: the same session with `record: false` (nothing recorded).

The terminal output goes to /dev/null. Under `valgrind --tool=cachegrind`,
the session's instructions are the total minus the `imports` run's; under
`RPYTEST_PROFILE=FILE` the session runs under cProfile, written to FILE.
"""
import importlib
import os
import sys


def preload() -> None:
    from rpytest import daemon

    for name in daemon.PYTEST_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    import rpytest.plugin  # noqa: F401
    import rpytest.record  # noqa: F401
    import rpytest.session  # noqa: F401


def main() -> int:
    mode, args = sys.argv[1], sys.argv[2:]
    preload()
    if mode == "imports":
        return 0
    null = os.open(os.devnull, os.O_WRONLY)
    saved = os.dup(1)
    os.dup2(null, 1)
    profile = os.environ.pop("RPYTEST_PROFILE", None)
    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    try:
        if mode == "stock":
            import pytest

            code = pytest.main(args)
        else:
            from rpytest import session
            from rpytest.protocol import EventWriter

            cfg = {"rootdir": os.getcwd(), "record": mode == "record", "events": True, "skip_files": [], "cached": []}
            code = session.run_pytest(args, cfg, EventWriter(null), "pytest")
    finally:
        if prof is not None:
            prof.disable()
            prof.dump_stats(profile)
        sys.stdout.flush()
        os.dup2(saved, 1)
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
