#!/bin/bash
# BENCHMARK.md §32: one changed file, main against this branch, in one hyperfine run each.
# Copies under $C (default /work/wt-replay-corpus): tree-main / tree-replay / tree-stock of the
# 10,000-file tree (tests/gen_tree.py), click-main / click-replay of the click corpus suite; each
# rpytest copy recorded once by its own binary before (not timed).
set -u
C=${C:-/work/wt-replay-corpus}
M=${M:-/work/main/target/release/rpytest}; PM=${PM:-/work/main/.venv/bin/python}
R=${R:-/work/wt-replay/target/release/rpytest}; PR=${PR:-/work/wt-replay/.venv/bin/python}
OUT=${OUT:-/work/wt-replay/tests/bench/results}
E="env -u PYTHONDONTWRITEBYTECODE"
cd "$C"
uptime
nice hyperfine -N --style basic --warmup 1 --runs ${RUNS:-5} --export-json $OUT/replay9-tree10k.json \
  --prepare 'sh -c "echo \"# t\" >> tree-main/tests/d3/test_f1500.py"' -n main \
    "$E bash -c 'cd tree-main && $M --python $PM -p no:cacheprovider -q'" \
  --prepare 'sh -c "echo \"# t\" >> tree-replay/tests/d3/test_f1500.py"' -n replay \
    "$E bash -c 'cd tree-replay && $R --python $PR -p no:cacheprovider -q'" \
  --prepare true -n stock-file \
    "$E bash -c 'cd tree-stock && $PM -m pytest -q -p no:cacheprovider tests/d3/test_f1500.py'"
uptime
nice hyperfine -N --style basic --warmup 1 --runs ${RUNS:-5} --export-json $OUT/replay9-click.json \
  --prepare 'sh -c "echo \"# t\" >> click-main/tests/test_compat.py"' -n main \
    "$E bash -c 'cd click-main && $M --python .venv/bin/python -p no:cacheprovider -q'" \
  --prepare 'sh -c "echo \"# t\" >> click-replay/tests/test_compat.py"' -n replay \
    "$E bash -c 'cd click-replay && $R --python .venv/bin/python -p no:cacheprovider -q'" \
  --prepare true -n stock-file \
    "$E bash -c 'cd click-main && .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_compat.py'"
uptime
