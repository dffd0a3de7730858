"""Median CPU after the request of speculative / pre-forked / plain sessions in a daemon log, from line N on."""
import re, statistics, sys
path, start = sys.argv[1], int(sys.argv[2])
lines = open(path).read().splitlines()[start:]
kind = {}
for l in lines:
    m = re.search(r"started \(pid (\d+)(?:, (pre-forked|speculative))?\)", l)
    if m:
        kind[int(m.group(1))] = m.group(2) or "plain"
cpu = {int(m.group(1)): float(m.group(2)) for l in lines for m in [re.search(r"session pid (\d+) finished: .*cpu after the request ([\d.]+) ms", l)] if m}
for name in ("speculative", "pre-forked", "plain"):
    v = [c for p, c in cpu.items() if kind.get(p) == name]
    if v:
        print("%-12s sessions %3d  CPU after the request: median %.1f ms (min %.1f, max %.1f)" % (name, len(v), statistics.median(v), min(v), max(v)))
