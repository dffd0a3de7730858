#!/usr/bin/env bash
# Reproduces the numbers in BENCHMARK.md. Needs hyperfine (Debian: apt-get install hyperfine),
# the repo's .venv (bash tests/run-all.sh creates it, or the README's first command), and for the
# corpus rows the suites built by ../shared/corpus/setup.sh into $CORPUS (default /work/corpus)
# with rpytest installed into each suite's venv (.venv/bin/pip install <this repo>).
#
# usage: tests/bench/run.sh OUTDIR [section ...]   sections: warm cache scale (default: all)
# Every command runs with PYTHONDONTWRITEBYTECODE unset, as on users' machines.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=$(mkdir -p "$1" && cd "$1" && pwd); shift
SECTIONS=${*:-warm cache scale}
CORPUS=${CORPUS:-/work/corpus}
PY=$ROOT/.venv/bin/python
RP=$ROOT/.venv/bin/rpytest
[[ -x $RP ]] || RP=$ROOT/target/release/rpytest
export XDG_RUNTIME_DIR=$OUT/run; mkdir -p "$XDG_RUNTIME_DIR"
unset PYTHONDONTWRITEBYTECODE
HF=(hyperfine --style basic --export-json)

one_test() {  # a one-test project
  local d=$OUT/one
  mkdir -p "$d/tests"; printf '[pytest]\n' > "$d/pytest.ini"
  printf 'def test_one():\n    assert 1 + 1 == 2\n' > "$d/tests/test_one.py"
  echo "$d"
}

# warm_bench DIR PYTHON WARMUP RUNS NAME: stock pytest vs rpytest with a cold daemon vs a warm daemon,
# cache off so every test runs.
warm_bench() {
  (cd "$1" && "${HF[@]}" "$OUT/warm-$5.json" --warmup "$3" --runs "$4" \
    --prepare true --prepare "$RP --python $2 --daemon stop" --prepare true \
    -n pytest "$2 -m pytest -q -p no:cacheprovider" \
    -n rpytest-cold "$RP --python $2 -q -p no:cacheprovider --no-cache" \
    -n rpytest-warm "$RP --python $2 -q -p no:cacheprovider --no-cache")
}

if [[ " $SECTIONS " == *" warm "* ]]; then
  for proj in "$(one_test)" "$ROOT/examples/demo"; do
    warm_bench "$proj" "$PY" 2 15 "$(basename "$proj")"
  done
  [[ -d $CORPUS/structlog ]] && warm_bench "$CORPUS/structlog" "$CORPUS/structlog/.venv/bin/python" 1 5 structlog
fi

if [[ " $SECTIONS " == *" cache "* ]]; then
  # No-change rerun vs stock pytest (and pytest-xdist -n 2) on the corpus suites and the demo.
  for s in structlog click attrs; do
    [[ -d $CORPUS/$s ]] || continue
    sp=$CORPUS/$s/.venv/bin/python
    (cd "$CORPUS/$s" && "$RP" --python "$sp" -q -p no:cacheprovider >/dev/null 2>&1 || true
     "$RP" --python "$sp" -q -p no:cacheprovider >/dev/null 2>&1 || true
     "${HF[@]}" "$OUT/cache-$s.json" -i --warmup 1 --runs 5 \
       -n pytest "$sp -m pytest -q -p no:cacheprovider" \
       -n pytest-xdist-n2 "$sp -m pytest -q -p no:cacheprovider -n 2" \
       -n rpytest-nochange "$RP --python $sp -q -p no:cacheprovider")
  done
fi

if [[ " $SECTIONS " == *" scale "* ]]; then
  # Generated trees: cost of a no-change run as the number of test files grows, and one edited leaf.
  for n in 1000 5000 10000; do
    t=$OUT/tree$n
    [[ -d $t ]] || "$PY" tests/gen_tree.py "$t" "$n"
    (cd "$t" && "$RP" --python "$PY" -q >/dev/null 2>&1; "$RP" --python "$PY" -q >/dev/null 2>&1
     "${HF[@]}" "$OUT/scale-$n.json" --warmup 1 --runs 10 -n "rpytest-nochange-$n" "$RP --python $PY -q")
  done
  t=$OUT/tree10000
  (cd "$t" && "${HF[@]}" "$OUT/scale-pytest-10000.json" --runs 1 -n pytest-10000 "$PY -m pytest -q -p no:cacheprovider")
  # One edited leaf module: app/mod0 is imported by mod1..mod9 (a chain), and each of mod0..mod9 by
  # 10 of the 10,000 test files, so exactly 100 files (300 tests) depend on it.
  (cd "$t" && echo "# edit $(date +%s%N)" >> app/mod0.py && "$RP" --python "$PY" -q 2>&1 | tail -2 | tee "$OUT/edit-leaf.txt")
fi
echo "results in $OUT"
