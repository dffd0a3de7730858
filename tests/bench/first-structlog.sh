#!/bin/sh
# First run (recording) on structlog: stock pytest against this branch's CLI, one hyperfine run.
# Setup: copies of /work/corpus/structlog (speed-structlog, speed-structlog-main, -stock), each
# .venv's _editable_impl_structlog.pth naming its own src/, rpytest-dev.pth naming this tree's python/
# in the two rpytest copies.
cd /tmp
E="env -u PYTHONDONTWRITEBYTECODE -u HYPERFINE_RANDOMIZED_ENVIRONMENT_OFFSET"
hyperfine -N --style basic --warmup 1 --runs 3 --export-json /tmp/speed-bench/first-structlog.json \
  --prepare "rm -rf /tmp/speed-structlog/.rpytest /tmp/speed-structlog-main/.rpytest" \
  -n stock "$E bash -c 'cd speed-structlog-stock && .venv/bin/python -m pytest -q -p no:cacheprovider'" \
  -n main  "$E bash -c 'cd speed-structlog-main && /tmp/speed-rp-main --python /tmp/speed-structlog-main/.venv/bin/python -q -p no:cacheprovider'" \
  -n speed "$E bash -c 'cd speed-structlog && /tmp/speed-rp-new --python /tmp/speed-structlog/.venv/bin/python -q -p no:cacheprovider'"
