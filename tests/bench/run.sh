#!/usr/bin/env bash
# Reproduces the numbers in BENCHMARK.md. Needs hyperfine (Debian: apt-get install hyperfine),
# the repo's .venv (bash tests/run-all.sh creates it, or the README's first command), and for the
# corpus rows the suites built by ../shared/corpus/setup.sh into $CORPUS (default /work/corpus)
# with rpytest installed into each suite's venv (.venv/bin/pip install <this repo>).
#
# usage: tests/bench/run.sh OUTDIR [section ...]   sections: warm cache scale parallel remote fork bound (default: all)
# Every command runs with PYTHONDONTWRITEBYTECODE unset, as on users' machines.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=$(mkdir -p "$1" && cd "$1" && pwd); shift
SECTIONS=${*:-warm cache scale parallel remote fork bound}
CORPUS=${CORPUS:-/work/corpus}
PY=$ROOT/.venv/bin/python
RP=$ROOT/.venv/bin/rpytest
[[ -x $RP ]] || RP=$ROOT/target/release/rpytest
export XDG_RUNTIME_DIR=$OUT/run; mkdir -p "$XDG_RUNTIME_DIR"
unset PYTHONDONTWRITEBYTECODE
HF=(hyperfine --style basic --export-json)
NOHF="env -u HYPERFINE_RANDOMIZED_ENVIRONMENT_OFFSET"

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
     # hyperfine gives each run a variable of random length; click's CliRunner
     # tests read every variable, so it would be an input that changes on
     # every timed run. No user's run has it: all three commands run without it.
     "${HF[@]}" "$OUT/cache-$s.json" -i --warmup 1 --runs 5 \
       -n pytest "$NOHF $sp -m pytest -q -p no:cacheprovider" \
       -n pytest-xdist-n2 "$NOHF $sp -m pytest -q -p no:cacheprovider -n 2" \
       -n rpytest-nochange "$NOHF $RP --python $sp -q -p no:cacheprovider")
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
if [[ " $SECTIONS " == *" parallel "* ]]; then
  # -n 2, every test executed: stock pytest vs pytest-xdist -n 2 vs rpytest -n 2 (warm daemon,
  # cache off). Needs pytest-xdist in the interpreter: the corpus venvs have it (PYX overrides).
  PYX=${PYX:-$CORPUS/structlog/.venv/bin/python}
  par_bench() {  # DIR PYTHON WARMUP RUNS NAME
    (cd "$1" && "$RP" --python "$2" -q -p no:cacheprovider -n 2 --no-cache >/dev/null 2>&1 || true
     "${HF[@]}" "$OUT/parallel-$5.json" -i --warmup "$3" --runs "$4" \
       -n pytest "$2 -m pytest -q -p no:cacheprovider -p no:randomly" \
       -n pytest-xdist-n2 "$2 -m pytest -q -p no:cacheprovider -p no:randomly -n 2" \
       -n rpytest-n2 "$RP --python $2 -q -p no:cacheprovider -p no:randomly -n 2 --no-cache"
     # Schedule balance: time each worker spent in tests (RPYTEST_TRACE).
     RPYTEST_TRACE=1 "$RP" --python "$2" -q -p no:cacheprovider -p no:randomly -n 2 --no-cache 2>&1 \
       | grep "trace: worker" > "$OUT/parallel-$5-workers.txt" || true)
  }
  if [[ -x $PYX ]]; then
    par_bench "$(one_test)" "$PYX" 2 10 one
    par_bench "$ROOT/examples/demo" "$PYX" 2 10 demo
  fi
  for s in structlog click attrs; do
    [[ -d $CORPUS/$s ]] && par_bench "$CORPUS/$s" "$CORPUS/$s/.venv/bin/python" 1 5 "$s"
  done
fi
if [[ " $SECTIONS " == *" remote "* ]]; then
  # A second CI machine (empty local cache) with a warm remote cache vs without one, against
  # nginx WebDAV on 127.0.0.1, on examples/monorepo and a generated 5,000-file tree.
  NG=$OUT/nginx; rm -rf "$NG"; mkdir -p "$NG/store"; PORT=${RPYTEST_BENCH_PORT:-18481}
  cat > "$NG/nginx.conf" <<CONF
worker_processes 1; daemon off; master_process off; pid $NG/nginx.pid; error_log $NG/error.log;
events { worker_connections 1024; }
http { access_log $NG/access.log; client_body_temp_path $NG/body; proxy_temp_path $NG/proxy;
  fastcgi_temp_path $NG/fcgi; uwsgi_temp_path $NG/uwsgi; scgi_temp_path $NG/scgi;
  server { listen 127.0.0.1:$PORT; root $NG/store; client_max_body_size 64m;
    location / { dav_methods PUT; create_full_put_path on; } } }
CONF
  /usr/sbin/nginx -p "$NG" -c "$NG/nginx.conf" -e "$NG/error.log" & NGPID=$!
  trap 'kill $NGPID 2>/dev/null' EXIT
  sleep 0.5
  URL=http://127.0.0.1:$PORT/cache
  t=$OUT/tree5000
  [[ -d $t ]] || "$PY" tests/gen_tree.py "$t" 5000
  for src in "$ROOT/examples/monorepo" "$t"; do
    name=$(basename "$src")
    A=$OUT/remote-A-$name; B=$OUT/remote-B-$name
    rm -rf "$A" "$B"; cp -r "$src" "$A"; cp -r "$src" "$B"; rm -rf "$A/.rpytest" "$B/.rpytest"
    # Same arguments on both machines: outcome-changing arguments (-p ...) are part of every key.
    (cd "$A" && "$RP" --python "$PY" -q -p no:cacheprovider --remote-cache "$URL" --remote-cache-upload 2>&1 | tail -2 > "$OUT/remote-$name-A.txt")
    # Requests of one second-machine run (access log lines).
    before=$(wc -l < "$NG/access.log")
    (cd "$B" && rm -rf .rpytest && "$RP" --python "$PY" -q -p no:cacheprovider --remote-cache "$URL" 2>&1 | tail -2 > "$OUT/remote-$name-B.txt")
    echo "$(( $(wc -l < "$NG/access.log") - before )) requests" >> "$OUT/remote-$name-B.txt"
    (cd "$B" && "${HF[@]}" "$OUT/remote-$name.json" -i --warmup 1 --runs 5 --prepare "rm -rf $B/.rpytest" \
      -n "no-remote-cache" "$RP --python $PY -q -p no:cacheprovider" \
      -n "warm-remote-cache" "$RP --python $PY -q -p no:cacheprovider --remote-cache $URL")
  done
  kill $NGPID 2>/dev/null || true
fi
if [[ " $SECTIONS " == *" fork "* ]]; then
  # -n 2 that collects once (issue 14), every test executed: stock pytest vs pytest-xdist -n 2 vs
  # rpytest -n 2, on copies of the corpus suites (their venvs' python; this checkout's rpytest
  # package through PYTHONPATH, which wins over a .pth in the venv) and on the 10,000-file tree.
  export PYTHONPATH=$ROOT/python
  fork_bench() {  # DIR PYTHON RUNS NAME
    (cd "$1" && "$RP" --python "$2" -q -p no:cacheprovider -p no:randomly -n 2 --no-cache >/dev/null 2>&1 || true
     "${HF[@]}" "$OUT/fork-$4.json" -i --warmup 1 --runs "$3" \
       -n pytest "$NOHF $2 -m pytest -q -p no:cacheprovider -p no:randomly" \
       -n pytest-xdist-n2 "$NOHF $2 -m pytest -q -p no:cacheprovider -p no:randomly -n 2" \
       -n rpytest-n2 "$NOHF $RP --python $2 -q -p no:cacheprovider -p no:randomly -n 2 --no-cache"
     RPYTEST_TRACE=1 "$RP" --python "$2" -q -p no:cacheprovider -p no:randomly -n 2 --no-cache 2>&1 \
       | grep -E "trace: (worker|collection)" > "$OUT/fork-$4-workers.txt" || true)
  }
  for s in structlog click attrs; do
    [[ -d $CORPUS/$s ]] || continue
    rm -rf "$OUT/corpus-$s"; mkdir -p "$OUT/corpus-$s"
    (cd "$CORPUS/$s" && tar --exclude=./.venv --exclude=./.rpytest --exclude=.pytest_cache --exclude=__pycache__ -cf - .) \
      | (cd "$OUT/corpus-$s" && tar xf -)
    fork_bench "$OUT/corpus-$s" "$CORPUS/$s/.venv/bin/python" 5 "$s"
  done
  t=$OUT/tree10000
  [[ -d $t ]] || "$PY" tests/gen_tree.py "$t" 10000
  fork_bench "$t" "${PYX:-$CORPUS/structlog/.venv/bin/python}" 3 tree10000
  unset PYTHONPATH
fi
if [[ " $SECTIONS " == *" bound "* ]]; then
  # The 2-core bound for -n 2 (serial pytest split into --collect-only and the rest) beside
  # pytest-xdist -n 2 and rpytest -n 2 with partitioned collection (BENCHMARK.md section 22).
  for s in structlog click attrs; do
    [[ -d $CORPUS/$s ]] || continue
    d=$OUT/bound-$s; rm -rf "$d"; mkdir -p "$d"
    (cd "$CORPUS/$s" && tar --exclude=./.venv --exclude=.pytest_cache --exclude=__pycache__ -cf - .) | (cd "$d" && tar xf -)
    PYTHONPATH=$ROOT/python tests/bench/bound.sh "$OUT" "$s" "$d" "$CORPUS/$s/.venv/bin/python" 3 "$RP"
  done
fi
echo "results in $OUT"
