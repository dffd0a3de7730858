"""CPU seconds of one command plus what the rpytest daemons serving DIR spent meanwhile.

usage: python tests/bench/cpu_total.py DIR PREPARE COMMAND

The daemons' own and their reaped children's (the session processes') CPU
is read from /proc/PID/stat (utime, stime, cutime, cstime) before and after;
the command's from its rusage. Linux only.
"""
import os
import resource
import subprocess
import sys
import time


def daemons(root):
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = open("/proc/%s/cmdline" % pid, "rb").read().split(b"\0")
            if b"rpytest.daemon" in cmd and os.readlink("/proc/%s/cwd" % pid) == root:
                out.append(pid)
        except OSError:
            pass
    return out


def ticks(pids):
    total = 0
    for pid in pids:
        try:
            fields = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15])
        except OSError:
            pass
    return total / os.sysconf("SC_CLK_TCK")


def main():
    root, prepare, command = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3]
    subprocess.run(prepare, shell=True, check=True)
    pids = daemons(root)
    before = ticks(pids)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(command, shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cli = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    daemon = ticks(pids) - before
    print("wall %.2f s, CPU %.2f s (command %.2f s, daemons and sessions %.2f s), load %s" % (
        wall, cli + daemon, cli, daemon, open("/proc/loadavg").read().split()[0]))


if __name__ == "__main__":
    main()
