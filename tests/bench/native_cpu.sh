#!/usr/bin/env bash
# CPU seconds (the command's, plus the daemon's and its sessions') and wall
# time of a first run (fresh cache, warm daemon): stock pytest, rpytest with
# the Python audit hook (RPYTEST_NATIVE=0) and with the native one, rounds
# interleaved. The Python hook's daemon serves a copy DIR-pyhook (without
# .venv): a daemon per setting, so neither is restarted between runs.
# usage: tests/bench/native_cpu.sh DIR PY NAME [ROUNDS]
# Writes tests/bench/results/native-cpu-NAME.txt.
set -euo pipefail
DIR=$1 PY=$2 NAME=$3 ROUNDS=${4:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$ROOT/target/release/rpytest
CPU="nice env -u PYTHONDONTWRITEBYTECODE python3 $ROOT/tests/bench/cpu_total.py"
PYDIR=$DIR-pyhook
if [[ ! -d $PYDIR ]]; then mkdir -p "$PYDIR" && tar -C "$DIR" --exclude=./.venv --exclude=./.rpytest -cf - . | tar -C "$PYDIR" -xf -; fi
OUT=$ROOT/tests/bench/results/native-cpu-$NAME.txt
: > "$OUT"
export -n PYTHONDONTWRITEBYTECODE
unset PYTHONDONTWRITEBYTECODE
# Daemons of their own socket directory: other users' CLIs on a shared
# machine stop idle daemons beyond RPYTEST_MAX_DAEMONS in theirs.
export XDG_RUNTIME_DIR=${BENCH_RUNTIME_DIR:-/tmp/rpytest-native-bench}
mkdir -p -m 700 "$XDG_RUNTIME_DIR"
# A daemon used once exits after 300 s idle; stock pytest on a large suite
# can take longer than that between the daemon's runs at load.
export RPYTEST_IDLE_TIMEOUT=3600
# warm both daemons (and the .pyc files), started under nice as every timed command is
(cd "$DIR" && nice $PY -m pytest -q -p no:cacheprovider >/dev/null 2>&1 || true)
(cd "$DIR" && nice "$BIN" --python "$PY" -q -p no:cacheprovider >/dev/null 2>&1 || true)
(cd "$PYDIR" && RPYTEST_NATIVE=0 nice "$BIN" --python "$PY" -q -p no:cacheprovider >/dev/null 2>&1 || true)
for r in $(seq "$ROUNDS"); do
  echo "pytest  $($CPU "$DIR" "true" "cd $DIR && $PY -m pytest -q -p no:cacheprovider")" >> "$OUT"
  echo "python  $($CPU "$PYDIR" "rm -rf $PYDIR/.rpytest" "cd $PYDIR && RPYTEST_NATIVE=0 $BIN --python $PY -q -p no:cacheprovider")" >> "$OUT"
  echo "native  $($CPU "$DIR" "rm -rf $DIR/.rpytest" "cd $DIR && $BIN --python $PY -q -p no:cacheprovider")" >> "$OUT"
done
(cd "$DIR" && "$BIN" --python "$PY" --daemon stop >/dev/null 2>&1 || true)
(cd "$PYDIR" && RPYTEST_NATIVE=0 "$BIN" --python "$PY" --daemon stop >/dev/null 2>&1 || true)
cat "$OUT"
