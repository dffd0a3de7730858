#!/bin/bash
# BENCHMARK.md section 34: -n 2 against pytest-xdist -n 2, serial pytest and the previous main, one
# hyperfine run per suite, every test executed (--no-cache), under nice, PYTHONDONTWRITEBYTECODE unset.
#   C=/work/wt-par-corpus: copies of /work/wt-part-corpus/{structlog,click,attrs,tree10000} (pytest 8.4.2,
#   pytest-xdist 3.8.0) whose rpytest .pth names this checkout's python/ (tree10000 runs with $C/xv8);
#   $C/main/*: the same copies whose .pth names /work/main/python, run with main's binary $C/main/rpytest-main.
# usage: tests/bench/par10.sh OUTDIR [SUITES...]
set -u
OUT=${1:?outdir}; shift
SUITES=${*:-structlog click attrs tree10000}
C=${C:-/work/wt-par-corpus}
B=$(cd "$(dirname "$0")" && pwd)
R=${R:-$B/../../target/release/rpytest}
RM=$C/main/rpytest-main
E="env -u PYTHONDONTWRITEBYTECODE -u HYPERFINE_RANDOMIZED_ENVIRONMENT_OFFSET"
for s in $SUITES; do
  D=$C/$s; DM=$C/main/$s
  if [ "$s" = tree10000 ]; then P=$C/xv8/bin/python; PM=$C/main/xv8/bin/python; RUNS=2; WARM=0
  else P=$D/.venv/bin/python; PM=$DM/.venv/bin/python; RUNS=3; WARM=1; fi
  EX=""; [ "$s" = attrs ] && EX="-p no:randomly"
  A="-q -p no:cacheprovider $EX"
  # Start each daemon (and record durations) outside the measurement.
  (cd $DM && $E $RM --python $PM $A -n 2 --no-cache >/dev/null 2>&1)
  (cd $D && $E $R --python $P $A -n 2 --no-cache >/dev/null 2>&1)
  echo "== $s $(date -u +%H:%M:%S) $(uptime)"
  cd $D
  $E nice hyperfine -N --style basic -i --warmup $WARM --runs $RUNS --export-json $OUT/par10-$s.json \
    -n pytest "$P -m pytest $A" \
    -n pytest-xdist-n2 "$P -m pytest $A -n 2" \
    -n main-rpytest-n2 "bash -c 'cd $DM && exec $RM --python $PM $A -n 2 --no-cache'" \
    -n rpytest-n2 "$R --python $P $A -n 2 --no-cache" \
    -n rpytest-n2-partitioned "env RPYTEST_PARTITION=1 $R --python $P $A -n 2 --no-cache" 2>&1 | grep -v "^ *$"
  echo "== $s end $(date -u +%H:%M:%S) $(uptime)"
  # CPU of every process (the warm daemon's sessions are not hyperfine's children): one --no-daemon run each.
  PC="python3 $B/proc_cpu.py"
  echo "cpu pytest-xdist-n2: $($E nice $PC $P -m pytest $A -n 2 2>&1 | grep '^wall')"
  echo "cpu main-rpytest-n2 --no-daemon: $(cd $DM && $E nice $PC $RM --python $PM $A -n 2 --no-cache --no-daemon 2>&1 | grep '^wall')"
  echo "cpu rpytest-n2 --no-daemon: $($E nice $PC $R --python $P $A -n 2 --no-cache --no-daemon 2>&1 | grep '^wall')"
  echo "cpu rpytest-n2-partitioned --no-daemon: $($E RPYTEST_PARTITION=1 nice $PC $R --python $P $A -n 2 --no-cache --no-daemon 2>&1 | grep '^wall')"
  $E $R --python $P $A -n 2 --no-cache 2>&1 | tail -1
  (cd $DM && $RM --python $PM --daemon stop >/dev/null 2>&1)
  $R --python $P --daemon stop >/dev/null 2>&1
done
