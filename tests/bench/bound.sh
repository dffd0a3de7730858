#!/usr/bin/env bash
# The 2-core bound for `-n 2` (BENCHMARK.md section 22): serial pytest split into collection
# (--collect-only) and the rest, pytest-xdist -n 2 and rpytest -n 2 (warm daemon, and --no-daemon
# so that the sessions' CPU is the command's), every test executed, in one hyperfine run.
#
# usage: [BASE=OTHER_RPYTEST] [WARMUP=1] [EXTRA="pytest args"] tests/bench/bound.sh OUTDIR NAME DIR PYTHON RUNS [RPYTEST]
# DIR's PYTHON must have pytest-xdist and this checkout's rpytest package (a .pth or PYTHONPATH).
# BASE: another rpytest binary (one that collects once) timed too, as rpytest-n2-base.
set -euo pipefail
OUT=$(mkdir -p "$1" && cd "$1" && pwd); NAME=$2; DIR=$3; PY=$4; RUNS=$5
RP=${6:-$(cd "$(dirname "$0")/../.." && pwd)/target/release/rpytest}
unset PYTHONDONTWRITEBYTECODE
NOHF="env -u HYPERFINE_RANDOMIZED_ENVIRONMENT_OFFSET"
A="-q -p no:cacheprovider -p no:randomly ${EXTRA:-}"
cd "$DIR"
"$RP" --python "$PY" $A -n 2 --no-cache >/dev/null 2>&1 || true
BASECMD=()
if [[ -n ${BASE:-} ]]; then
  "$BASE" --python "$PY" --daemon stop >/dev/null 2>&1 || true
  BASECMD=(-n rpytest-n2-base "$NOHF $BASE --python $PY $A -n 2 --no-cache --no-daemon")
fi
nice hyperfine --style basic -N -i --warmup "${WARMUP:-1}" --runs "$RUNS" --export-json "$OUT/bound-$NAME.json" \
  -n pytest "$NOHF $PY -m pytest $A" \
  -n pytest-collect-only "$NOHF $PY -m pytest $A --collect-only" \
  -n pytest-xdist-n2 "$NOHF $PY -m pytest $A -n 2" \
  -n rpytest-n2 "$NOHF $RP --python $PY $A -n 2 --no-cache" \
  -n rpytest-n2-no-daemon "$NOHF $RP --python $PY $A -n 2 --no-cache --no-daemon" "${BASECMD[@]}"
"$RP" --python "$PY" --daemon stop >/dev/null 2>&1 || true
