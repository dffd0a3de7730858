#!/bin/bash
# rpytest against pytest-testmon on a copy of a corpus suite (BENCHMARK.md section 21).
#   tests/bench/testmon.sh run S [RUNS] [TESTMON_ARGS]   nothing changed, then one broken function
#   tests/bench/testmon.sh prepare S [broken|orig]       (hyperfine --prepare) caches as in the
#                                                        no-change state, then the edit
# COPIES (default /work/wt-warm-corpus) holds S/ (a copy of the suite with pytest-testmon in its
# .venv), edits/S.orig and edits/S.broken (the edited file before/after), snap/ (made here).
# R: the rpytest binary; OUT: where the hyperfine exports go.
set -u
MODE=$1; S=$2
COPIES=${COPIES:-/work/wt-warm-corpus}
R=${R:-$(cd "$(dirname "$0")/../.." && pwd)/target/release/rpytest}
OUT=${OUT:-$(cd "$(dirname "$0")" && pwd)/results}
case $S in
  structlog) F=src/structlog/processors.py;;  # LogfmtRenderer: a None value renders as "key= "
  attrs) F=src/attr/validators.py;;           # _InstanceOfValidator.__repr__: "instance-of"
esac
cd "$COPIES/$S" || exit 1
if [[ $MODE == prepare ]]; then
  rm -rf .rpytest .testmondata .testmondata-shm .testmondata-wal
  cp -a "../snap/$S/.rpytest" .
  cp -a "../snap/$S/".testmondata* .
  cp "../edits/$S.${3:-broken}" "$F"
  exit 0
fi
RUNS=${3:-5}; TM=${4:-}
SELF="$(cd "$(dirname "$0")" && pwd)/testmon.sh"
PY=$PWD/.venv/bin/python
NOHF="env -u HYPERFINE_RANDOMIZED_ENVIRONMENT_OFFSET -u PYTHONDONTWRITEBYTECODE"
cp "../edits/$S.orig" "$F"
$NOHF $PY -m pytest -q --testmon $TM >/dev/null 2>&1
$NOHF $R --python $PY -q >/dev/null 2>&1
$NOHF $R --python $PY -q >/dev/null 2>&1
echo "== $S nothing changed $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
nice hyperfine -N -i --warmup 1 --runs "$RUNS" --export-json "$OUT/testmon-$S-nochange.json" \
  -n pytest "$NOHF $PY -m pytest -q" \
  -n testmon "$NOHF $PY -m pytest -q --testmon $TM" \
  -n rpytest "$NOHF $R --python $PY -q"
rm -rf "../snap/$S" && mkdir -p "../snap/$S" && cp -a .rpytest .testmondata* "../snap/$S/"
for tool in pytest testmon rpytest; do   # the failures each reports, first run after the edit
  "$SELF" prepare "$S"
  case $tool in
    pytest) $NOHF $PY -m pytest -q > "../$S-$tool.out" 2>&1;;
    testmon) $NOHF $PY -m pytest -q --testmon $TM > "../$S-$tool.out" 2>&1;;
    rpytest) $NOHF $R --python $PY -q > "../$S-$tool.out" 2>&1;;
  esac
  grep -oE '^FAILED [^ ]+' "../$S-$tool.out" | sort > "../$S-$tool.failed"
done
diff "../$S-pytest.failed" "../$S-rpytest.failed" && echo "pytest and rpytest: the same failures"
diff "../$S-pytest.failed" "../$S-testmon.failed"
echo "== $S one broken function $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
nice hyperfine -N -i --warmup 0 --runs "$RUNS" --export-json "$OUT/testmon-$S-broken.json" \
  --prepare "$SELF prepare $S" \
  -n pytest "$NOHF $PY -m pytest -q" \
  -n testmon "$NOHF $PY -m pytest -q --testmon $TM" \
  -n rpytest "$NOHF $R --python $PY -q"
"$SELF" prepare "$S" orig
