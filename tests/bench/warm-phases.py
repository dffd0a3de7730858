"""CPU per phase of a one-test session in a pre-forked-like child (fork of a process that imported what the daemon imports): which phases the speculative child leaves for after the request. Usage: PY tests/bench/warm-phases.py PROJECT_DIR"""
import os, sys, time, gc, importlib, statistics
proj = sys.argv[1]
from rpytest import daemon, prefork, session
for n in daemon.PYTEST_MODULES:
    try: importlib.import_module(n)
    except Exception: pass
gc.collect(); gc.freeze()
import pytest
marks = []
class Marks:
    def mark(self, name): marks.append((name, time.process_time()))
    @pytest.hookimpl(tryfirst=True, wrapper=True)
    def pytest_load_initial_conftests(self, early_config):
        self.mark("preparse (up to the pause)"); r = yield; self.mark("initial conftests + capture"); return r
    @pytest.hookimpl(tryfirst=True)
    def pytest_cmdline_main(self, config): self.mark("rest of parsing (parse_setoption)")
    @pytest.hookimpl(trylast=True)
    def pytest_configure(self, config): self.mark("configure")
    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session): self.mark("sessionstart (fixture manager, header)")
    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session): self.mark("collection")
    @pytest.hookimpl(trylast=True)
    def pytest_runtestloop(self, session): pass
    @pytest.hookimpl(tryfirst=True)
    def pytest_terminal_summary(self, terminalreporter): self.mark("run the test")
    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config): self.mark("summary, sessionfinish, unconfigure")
results = {}
for i in range(7):
    pid = os.fork()
    if pid == 0:
        prepared = prefork.prepare()
        prepared.config.pluginmanager.register(Marks(), "marks")
        env = dict(os.environ)
        out = os.open("/dev/null", os.O_WRONLY); os.dup2(out, 1)
        prefork.install(prepared)
        session.apply_environment(proj, env, None)
        from rpytest.protocol import EventWriter
        t0 = time.process_time(); marks.append(("start", t0))
        session.run_pytest(["-q"], {"rootdir": proj, "record": False, "events": True}, EventWriter(os.open(os.devnull, os.O_WRONLY)), session.default_argv0())
        marks.append(("end", time.process_time()))
        with open("/tmp/warm-phases.%d" % i, "w") as f:
            for (a, ta), (b, tb) in zip(marks, marks[1:]):
                f.write("%s\t%.2f\n" % (b, (tb - ta) * 1000))
        os._exit(0)
    os.waitpid(pid, 0)
agg = {}
order = []
for i in range(7):
    for line in open("/tmp/warm-phases.%d" % i):
        k, v = line.rstrip("\n").split("\t"); agg.setdefault(k, []).append(float(v))
        if k not in order: order.append(k)
for k in order: print("%-45s median %6.2f ms" % (k, statistics.median(agg[k])))
