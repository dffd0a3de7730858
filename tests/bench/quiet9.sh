#!/bin/bash
# Quiet-machine measurements of session 9's main (run after CI, nothing else running).
set -u
R=/work/main/target/release/rpytest
OUT=/work/main/tests/bench/results
E="env -u PYTHONDONTWRITEBYTECODE -u HYPERFINE_RANDOMIZED_ENVIRONMENT_OFFSET"
for s in structlog click attrs; do
  D=/work/wt-part-corpus/$s; P=$D/.venv/bin/python
  echo /work/main/python > $(ls -d $D/.venv/lib/python3.11/site-packages)/rpytest_dev.pth
  cd $D
  EX=""; [ $s = attrs ] && EX="-p no:randomly"
  $E $R --python $P -q -p no:cacheprovider -n 2 --no-cache $EX >/dev/null 2>&1
  uptime
  $E hyperfine -N --style basic -i --warmup 1 --runs 3 --export-json $OUT/quiet9-n2-$s.json \
    -n pytest "$P -m pytest -q -p no:cacheprovider $EX" \
    -n pytest-xdist-n2 "$P -m pytest -q -p no:cacheprovider -n 2 $EX" \
    -n rpytest-n2 "$R --python $P -q -p no:cacheprovider -n 2 --no-cache $EX" 2>&1 | grep -v "^ *$"
  $E $R --python $P -q -p no:cacheprovider -n 2 --no-cache $EX 2>&1 | tail -1
  $R --python $P --daemon stop >/dev/null 2>&1
done
# the 10,000-file tree: -n 2 vs xdist vs serial
D=/work/wt-part-corpus/tree10000; P=/work/wt-part-corpus/xv8/bin/python
grep -l "/work/wt-par[a-z]*/python" /work/wt-part-corpus/xv8/lib/python3.11/site-packages/*.pth 2>/dev/null | xargs -r sed -i 's#/work/wt-par[a-z]*/python#/work/main/python#'
cat /work/wt-part-corpus/xv8/lib/python3.11/site-packages/rpytest*.pth
cd $D
$E $R --python $P -q -p no:cacheprovider -n 2 --no-cache >/dev/null 2>&1
uptime
$E hyperfine -N --style basic -i --warmup 0 --runs 2 --export-json $OUT/quiet9-n2-tree10000.json \
  -n pytest "$P -m pytest -q -p no:cacheprovider" \
  -n pytest-xdist-n2 "$P -m pytest -q -p no:cacheprovider -n 2" \
  -n rpytest-n2 "$R --python $P -q -p no:cacheprovider -n 2 --no-cache" \
  -n rpytest-n2-partitioned "env RPYTEST_PARTITION=1 $R --python $P -q -p no:cacheprovider -n 2 --no-cache" 2>&1 | grep -v "^ *$"
$R --python $P --daemon stop >/dev/null 2>&1
# no change and one changed file at 10,000 files (re-recorded by this main first)
cd /work/quiet; P=/work/main/.venv/bin/python
$E bash -c "cd tree10k && $R --python $P -p no:cacheprovider -q" | tail -1
uptime
$E hyperfine -N --style basic --warmup 2 --runs 10 --export-json $OUT/quiet9-nochange-10k-after.json \
  -n nochange "$E bash -c 'cd tree10k && $R --python $P -p no:cacheprovider -q'" 2>&1 | grep -v "^ *$"
$E hyperfine -N --style basic --warmup 1 --runs 5 --export-json $OUT/quiet9-onefile-10k-after.json \
  --prepare 'sh -c "echo \"# t\" >> tree10k/tests/d3/test_f1500.py"' -n onefile "$E bash -c 'cd tree10k && $R --python $P -p no:cacheprovider -q'" \
  --prepare true -n stock-file "$E bash -c 'cd tree10k-stock && $P -m pytest -q -p no:cacheprovider tests/d3/test_f1500.py'" 2>&1 | grep -v "^ *$"
$R --python $P --daemon stop >/dev/null 2>&1
# the warm one-test floor, with and without -p no:cacheprovider (the pre-forked child takes no -p)
W=/work/quiet/one; rm -rf $W; mkdir -p $W; printf 'def test_one():\n    assert True\n' > $W/test_one.py; printf '[pytest]\n' > $W/pytest.ini
cd $W
$E $R --python $P -q --no-cache >/dev/null 2>&1
uptime
$E hyperfine -N --style basic --warmup 5 --runs 40 --export-json $OUT/quiet9-warm-one.json \
  -n pytest "$P -m pytest -q" \
  -n rpytest-warm-no-cache "$R --python $P -q --no-cache" \
  -n pytest-no-cacheprovider "$P -m pytest -q -p no:cacheprovider" \
  -n rpytest-warm-no-cache-no-cacheprovider "$R --python $P -q -p no:cacheprovider --no-cache" 2>&1 | grep -v "^ *$"
$R --python $P --daemon stop >/dev/null 2>&1
uptime
