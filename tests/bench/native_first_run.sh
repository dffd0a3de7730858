#!/usr/bin/env bash
# First run (fresh cache, warm daemon) with the native audit hook, with the
# Python hook (RPYTEST_NATIVE=0) and stock pytest, in one hyperfine run.
# usage: tests/bench/native_first_run.sh DIR PY NAME [RUNS]
#   DIR: a project (a copy of /work/corpus/SUITE whose .pth names this
#   tree's python/, or a gen_tree.py tree); PY: its interpreter.
# Exports tests/bench/results/native-NAME.json (wall, user and system time per run).
set -euo pipefail
DIR=$1 PY=$2 NAME=$3 RUNS=${4:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$ROOT/target/release/rpytest
NOHF="env -u HYPERFINE_RANDOMIZED_ENVIRONMENT_OFFSET -u PYTHONDONTWRITEBYTECODE"
env -u PYTHONDONTWRITEBYTECODE nice hyperfine -N -i --warmup 1 --runs "$RUNS" \
  --prepare "rm -rf $DIR/.rpytest" --export-json "$ROOT/tests/bench/results/native-$NAME.json" \
  -n pytest        "bash -c 'cd $DIR && $NOHF $PY -m pytest -q -p no:cacheprovider'" \
  -n rpytest-python "bash -c 'cd $DIR && $NOHF RPYTEST_NATIVE=0 $BIN --python $PY -q -p no:cacheprovider'" \
  -n rpytest-native "bash -c 'cd $DIR && $NOHF $BIN --python $PY -q -p no:cacheprovider'"
(cd "$DIR" && "$BIN" --python "$PY" --daemon stop >/dev/null 2>&1 || true)
