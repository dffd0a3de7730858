#!/bin/sh
# The warm one-test floor (BENCHMARK.md section 28): stock pytest, main's
# rpytest and this branch's, on a one-test project, three ways: --no-cache
# (the session runs), the default run of a cached test (answered by the CLI),
# and the default run of a test that must run (it fails: a failure always
# runs again). Then the CPU of each part: the CLI (hyperfine's user+sys), the
# daemon (its /proc stat over the runs) and the session (the daemon log).
#
# usage: tests/bench/warm-floor.sh OUT_PREFIX [RUNS]
#   MAIN_R/MAIN_PY: main's binary and a venv whose rpytest is main's python/
#   R/PY: this branch's binary and venv
set -eu
OUT=$1
RUNS=${2:-40}
HERE=$(cd "$(dirname "$0")/../.." && pwd)
R=${R:-$HERE/target/release/rpytest}
PY=${PY:-$HERE/.venv/bin/python}
MAIN_R=${MAIN_R:-/work/main/target/release/rpytest}
MAIN_PY=${MAIN_PY:-/work/main/.venv/bin/python}
NOHF="env -u HYPERFINE_RANDOMIZED_ENVIRONMENT_OFFSET -u PYTHONDONTWRITEBYTECODE"
ONE=${ONE:-/tmp/warm-floor-one}
FAIL=${FAIL:-/tmp/warm-floor-fail}
for d in "$ONE" "$FAIL"; do
  # A daemon whose directory was removed cannot prepare children: stop it first.
  if [ -d "$d" ]; then
    (cd "$d" && "$R" --python "$PY" --daemon stop >/dev/null 2>&1 || true;
     "$MAIN_R" --python "$MAIN_PY" --daemon stop >/dev/null 2>&1 || true)
  fi
  rm -rf "$d"; mkdir -p "$d"
done
printf 'def test_one():\n    assert 1\n' > "$ONE/test_one.py"
printf 'def test_one():\n    assert 0\n' > "$FAIL/test_one.py"

status() {  # field $4 of `--daemon status` for project $1, python $2, binary $3
  (cd "$1" && "$3" --python "$2" --daemon status 2>/dev/null | sed -n "s/^$4: *//p" | head -1)
}
daemon_cpu() {  # utime+stime ticks of the daemon serving $1 with python $2
  awk '{print $14+$15}' "/proc/$(status "$1" "$2" "$3" pid)/stat"
}
session_cpu() {  # sessions' CPU after the request, from line $4 of the log on
  python3 "$HERE/tests/bench/warm-cpu.py" "$(status "$1" "$2" "$3" log)" "$4"
}
lines() { wc -l < "$(status "$1" "$2" "$3" log)"; }

for d in "$ONE" "$FAIL"; do
  (cd "$d" && for i in 1 2 3; do $NOHF "$R" --python "$PY" -q >/dev/null 2>&1 || true;
     $NOHF "$MAIN_R" --python "$MAIN_PY" -q >/dev/null 2>&1 || true; done)
done

cd "$ONE"
AL=$(lines "$ONE" "$PY" "$R"); ML=$(lines "$ONE" "$MAIN_PY" "$MAIN_R")
A0=$(daemon_cpu "$ONE" "$PY" "$R"); M0=$(daemon_cpu "$ONE" "$MAIN_PY" "$MAIN_R")
nice hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$OUT-one.json" \
  -n pytest "$NOHF $PY -m pytest -q -p no:cacheprovider" \
  -n main-no-cache "$NOHF $MAIN_R --python $MAIN_PY -q --no-cache" \
  -n warm-no-cache "$NOHF $R --python $PY -q --no-cache" \
  -n main-cached "$NOHF $MAIN_R --python $MAIN_PY -q" \
  -n warm-cached "$NOHF $R --python $PY -q"
A1=$(daemon_cpu "$ONE" "$PY" "$R"); M1=$(daemon_cpu "$ONE" "$MAIN_PY" "$MAIN_R")
echo "daemon CPU ticks (10 ms) over the runs (one-test project): warm $((A1 - A0)), main $((M1 - M0))"
echo "sessions, this branch:"; session_cpu "$ONE" "$PY" "$R" "$AL"
echo "sessions, main:"; session_cpu "$ONE" "$MAIN_PY" "$MAIN_R" "$ML"

cd "$FAIL"
AL=$(lines "$FAIL" "$PY" "$R"); ML=$(lines "$FAIL" "$MAIN_PY" "$MAIN_R")
nice hyperfine -N -i --warmup 5 --runs "$RUNS" --export-json "$OUT-fail.json" \
  -n pytest "$NOHF $PY -m pytest -q -p no:cacheprovider" \
  -n main-must-run "$NOHF $MAIN_R --python $MAIN_PY -q" \
  -n warm-must-run "$NOHF $R --python $PY -q"
echo "sessions (must run), this branch:"; session_cpu "$FAIL" "$PY" "$R" "$AL"
echo "sessions (must run), main:"; session_cpu "$FAIL" "$MAIN_PY" "$MAIN_R" "$ML"
