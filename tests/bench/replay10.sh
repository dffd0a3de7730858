#!/bin/bash
# BENCHMARK.md §36: one changed file, main against this branch, in one hyperfine run each.
# Not under `nice`: the daemon fingerprint and the cache keys include the niceness, and the copies
# were recorded at niceness 0 (a niced run would find no cached result and run everything).
# Copies under $C (default /work/wt-replay-corpus): tree-main / tree-replay / tree-stock of the
# 10,000-file tree (tests/gen_tree.py), click-main / click-replay of the click corpus suite; each
# rpytest copy recorded once by its own binary before (not timed).
set -u
C=${C:-/work/wt-replay-corpus10}
M=${M:-/work/main/target/release/rpytest}; PM=${PM:-/work/main/.venv/bin/python}
R=${R:-/work/wt-replay/target/release/rpytest}; PR=${PR:-/work/wt-replay/.venv/bin/python}
OUT=${OUT:-/work/wt-replay/tests/bench/results}
E="env -u PYTHONDONTWRITEBYTECODE"
cd "$C"
# one_file JSON MAIN_COPY REPLAY_COPY STOCK_COPY FILE MAIN_PY REPLAY_PY: the three commands of one
# hyperfine run, FILE touched in each rpytest copy before every run.
one_file() {
  local json=$1 cm=$2 cr=$3 cs=$4 file=$5 pm=$6 pr=$7
  uptime
  hyperfine -N --style basic --warmup 1 --runs ${RUNS:-5} --export-json $OUT/$json \
    --prepare "sh -c \"echo '# t' >> $cm/$file\"" -n main \
      "$E bash -c 'cd $cm && $M --python $pm -p no:cacheprovider -q'" \
    --prepare "sh -c \"echo '# t' >> $cr/$file\"" -n replay \
      "$E bash -c 'cd $cr && $R --python $pr -p no:cacheprovider -q'" \
    --prepare true -n stock-file \
      "$E bash -c 'cd $cs && $pm -m pytest -q -p no:cacheprovider $file'"
}
one_file replay10-tree10k.json tree-main tree-replay tree-stock tests/d3/test_f1500.py "$PM" "$PR"
one_file replay10-click.json click-main click-replay click-main tests/test_compat.py .venv/bin/python .venv/bin/python
uptime
