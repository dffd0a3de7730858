"""Runs a command and samples the CPU time of it and every descendant process (/proc, every 0.1 s);
prints each process's user and system seconds and context switches (voluntary+involuntary, all threads,
as last sampled). Used for BENCHMARK.md section 26: run rpytest with --no-daemon so the controller, the
collector and the forked workers are all descendants."""
import os, subprocess, sys, time
tick = os.sysconf("SC_CLK_TCK")
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
root = p.pid
seen = {}  # pid -> [ppid, utime, stime, name, start, last]
t0 = time.time()
def scan():
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        r = s.rfind(")")
        name = s[s.find("(")+1:r]
        f = s[r+2:].split()
        ppid = int(f[1]); ut = int(f[11]); st = int(f[12])
        pid = int(d)
        if pid in seen or ppid in seen or pid == root:
            e = seen.setdefault(pid, [ppid, 0, 0, name, time.time()-t0, 0])
            e[1] = max(e[1], ut); e[2] = max(e[2], st); e[5] = time.time()-t0
            try:
                vc = nv = 0
                for t in os.listdir(f"/proc/{d}/task"):
                    for l in open(f"/proc/{d}/task/{t}/status"):
                        if l.startswith("voluntary_ctxt"): vc += int(l.split()[1])
                        elif l.startswith("nonvoluntary_ctxt"): nv += int(l.split()[1])
                if len(e) < 8: e += [0, 0]
                e[6] = max(e[6], vc); e[7] = max(e[7], nv)
            except OSError:
                pass
            # children's own cumulated time of waited children
while p.poll() is None:
    scan(); time.sleep(0.1)
wall = time.time()-t0
tot_u = tot_s = 0
for pid, e in sorted(seen.items(), key=lambda kv: kv[1][4]):
    ppid, ut, st, name, start, last = e[:6]
    vc, nv = (e[6], e[7]) if len(e) > 7 else (0, 0)
    print(f"{pid:>7} ppid {ppid:>7} {name:<16} user {ut/tick:6.2f} sys {st/tick:6.2f} seen {start:6.1f}-{last:6.1f}s ctxsw {vc}+{nv}")
    tot_u += ut; tot_s += st
print(f"wall {wall:.2f} s; sampled user {tot_u/tick:.2f} sys {tot_s/tick:.2f}; rusage children", os.times()[2:4])
