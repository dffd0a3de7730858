"""How long the command takes to return after the session's last line of
output (BENCHMARK.md section 28): main's and this branch's rpytest on a
one-test project, interleaved, stdout a pipe read here with a timestamp per
line. Usage: python3 warm-exit.py ROUNDS OUT.json [extra rpytest args...]
(environment: R, PY, MAIN_R, MAIN_PY, ONE as in warm-floor.sh)."""
import json, os, statistics, subprocess, sys, time

here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
rounds, out, extra = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
tools = {
    "main": [os.environ.get("MAIN_R", "/work/main/target/release/rpytest"), "--python",
             os.environ.get("MAIN_PY", "/work/main/.venv/bin/python")],
    "warm": [os.environ.get("R", here + "/target/release/rpytest"), "--python",
             os.environ.get("PY", here + "/.venv/bin/python")],
}
env = {k: v for k, v in os.environ.items() if k not in ("HYPERFINE_RANDOMIZED_ENVIRONMENT_OFFSET", "PYTHONDONTWRITEBYTECODE")}
cwd = os.environ.get("ONE", "/tmp/warm-floor-one")


def once(argv):
    t0 = time.monotonic()
    p = subprocess.Popen(argv + ["-q"] + extra, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    last = t0
    for _line in p.stdout:
        last = time.monotonic()
    p.wait()
    end = time.monotonic()
    return end - t0, end - last


for name, argv in tools.items():
    for _ in range(3):
        once(argv)
res = {name: [] for name in tools}
for _ in range(rounds):
    for name, argv in tools.items():
        res[name].append(once(argv))
        time.sleep(0.3)
json.dump({"rounds": rounds, "extra": extra, "runs": res, "load": os.getloadavg()}, open(out, "w"), indent=1)
for name, v in res.items():
    wall = [w * 1e3 for w, _ in v]
    tail = [t * 1e3 for _, t in v]
    print("%s: wall median %.1f ms (min %.1f); last output line -> command returned: median %.2f ms (min %.2f, max %.2f)"
          % (name, statistics.median(wall), min(wall), statistics.median(tail), min(tail), max(tail)))
