#!/bin/sh
# First run (recording) on the 10,000-file tree: stock pytest, main's CLI, this branch's CLI.
# Setup: python3 tests/gen_tree.py /tmp/speed-t10k 10000, copied to speed-t10k-main and
# speed-t10k-stock (stock run once untimed for its .pyc files); /tmp/speed-rp-main and
# /tmp/speed-rp-new are copies of main's and this branch's release binaries.
cd /tmp
PY=/work/wt-speed/.venv/bin/python
E="env -u PYTHONDONTWRITEBYTECODE -u HYPERFINE_RANDOMIZED_ENVIRONMENT_OFFSET"
hyperfine -N --style basic --runs 1 --export-json /tmp/speed-bench/first10k.json \
  --prepare "rm -rf /tmp/speed-t10k/.rpytest /tmp/speed-t10k-main/.rpytest" \
  -n stock  "$E bash -c 'cd speed-t10k-stock && $PY -m pytest -q -p no:cacheprovider'" \
  -n main   "$E bash -c 'cd speed-t10k-main && /tmp/speed-rp-main --python $PY -q -p no:cacheprovider'" \
  -n speed  "$E bash -c 'cd speed-t10k && /tmp/speed-rp-new --python $PY -q -p no:cacheprovider'"
