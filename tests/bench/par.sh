#!/usr/bin/env bash
# BENCHMARK.md section 26: -n 2 against pytest-xdist -n 2 and serial pytest, every test executed,
# each suite's commands in ONE hyperfine run (the ratio is within one run), under nice.
# rpytest-n2-no-daemon is timed too: its sessions are the command's children, so hyperfine's
# user/system seconds are all of rpytest's CPU (a warm daemon's sessions are not the command's).
#
# usage: [NAME=par-n2] [RUNS=3] tests/bench/par.sh OUTDIR CORPUS [SUITES...]  (raw JSON: OUTDIR/NAME-SUITE.json)
#   CORPUS holds structlog click attrs (each with .venv: pytest 8.4.2, pytest-xdist 3.8.0, and
#   this checkout's rpytest package through a .pth) and tree10000 (PY10K: its python).
set -u
OUT=$(mkdir -p "$1" && cd "$1" && pwd); C=$2; shift 2
R=$(cd "$(dirname "$0")/../.." && pwd)/target/release/rpytest
SUITES=${*:-structlog click attrs tree10000}
for s in $SUITES; do
  D=$C/$s; P=$D/.venv/bin/python; RUNS=${RUNS:-3}; WARM=1; ND=1
  [ $s = tree10000 ] && { P=${PY10K:?}; WARM=0; ND=0; }
  EX=""; [ $s = attrs ] && EX="-p no:randomly"
  cd $D
  env -u PYTHONDONTWRITEBYTECODE $R --python $P -q -p no:cacheprovider -n 2 --no-cache $EX >/dev/null 2>&1
  uptime
  NDCMD=(); [ $ND = 1 ] && NDCMD=(-n rpytest-n2-no-daemon "$R --python $P -q -p no:cacheprovider -n 2 --no-cache --no-daemon $EX")
  env -u PYTHONDONTWRITEBYTECODE nice hyperfine -N --style basic -i --warmup $WARM --runs $RUNS --export-json $OUT/${NAME:-par-n2}-$s.json \
    -n pytest "$P -m pytest -q -p no:cacheprovider $EX" \
    -n pytest-xdist-n2 "$P -m pytest -q -p no:cacheprovider -n 2 $EX" \
    -n rpytest-n2 "$R --python $P -q -p no:cacheprovider -n 2 --no-cache $EX" "${NDCMD[@]}" 2>&1 | grep -v "^ *$"
  uptime
  $R --python $P --daemon stop >/dev/null 2>&1
done
