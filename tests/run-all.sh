#!/usr/bin/env bash
# Runs every rpytest test from a clean clone: installs what it needs, then
#   1. the Rust unit and integration tests (real binary, real daemon, real pytest 8.4.2; the options
#      tests install pinned real plugins from PyPI into a venv of their own under target/; the output
#      tests compare rpytest's own output with the insta snapshots in tests/snapshots/),
#   2. the Python tests of the daemon and plugin under pytest 8.4.2,
#   3. the Python tests and the soundness matrix again with the Python audit hook (RPYTEST_NATIVE=0),
#   4. the same Python tests and the drop-in, cache, soundness, faults, verify, parallel, remote, hermetic,
#      replay, speed and output integration tests under the newest pytest 9, with pytest-xdist installed (rpytest's -n must not depend on it, nor be disturbed by it).
# The plugin matrix (tests/plugins.rs, part of 1.) runs with .venv-plugins: pytest 8.4.2 and the pinned
# third-party plugins of tests/plugin-matrix.txt, installed together (about a minute on a fresh machine).
# Needs: a Rust toolchain and python3 with venv/pip. Everything else comes from crates.io, PyPI and
# Debian's packages (nginx-light, the real server of the remote-cache tests, when it is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

# venv DIR PYTEST_REQUIREMENT: a venv with that pytest, maturin, the fixture
# plugin and rpytest itself (binary + Python package) installed.
make_venv() {
  local dir=$1 pytest_req=$2
  [[ -x $dir/bin/python ]] || "$PY" -m venv "$dir"
  "$dir/bin/pip" install -q "$pytest_req" "maturin>=1.5,<2"
  "$dir/bin/pip" install -q "$ROOT/tests/fixtures/plugins/rpytest_fixture_plugin"
  PATH="$dir/bin:$PATH" "$dir/bin/pip" install -q --no-build-isolation "$ROOT"
}

# plugin_matrix_venv DIR: pytest 8.4.2 with the pinned plugins of the plugin
# matrix, and rpytest's Python package from this tree (the tests run the
# binary cargo builds).
plugin_matrix_venv() {
  local dir=$1
  [[ -x $dir/bin/python ]] || "$PY" -m venv "$dir"
  "$dir/bin/pip" install -q "pytest==8.4.2" -r "$ROOT/tests/plugin-matrix.txt"
  local site
  site=$("$dir/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$ROOT/python" > "$site/rpytest-dev.pth"
}

if ! command -v nginx >/dev/null 2>&1 && [[ ! -x /usr/sbin/nginx ]]; then
  echo "== installing nginx-light (the remote cache tests start it as their server)"
  SUDO=""; [[ $(id -u) == 0 ]] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx-light >/dev/null \
    || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx >/dev/null
fi
# The remote cache tests fail (never skip) without nginx.
export RPYTEST_REQUIRE_NGINX=1

echo "== installing (pytest 8.4.2 venv: .venv, pytest 9 venv: .venv-pytest9)"
make_venv "$ROOT/.venv" "pytest==8.4.2"
make_venv "$ROOT/.venv-pytest9" "pytest>=9,<10"
"$ROOT/.venv-pytest9/bin/pip" install -q "pytest-xdist>=3.6,<4"
plugin_matrix_venv "$ROOT/.venv-plugins"
"$ROOT/.venv/bin/python" -m pytest --version
"$ROOT/.venv-pytest9/bin/python" -m pytest --version

echo "== Rust tests (pytest 8.4.2; the plugin matrix with .venv-plugins)"
RPYTEST_TEST_PYTHON="$ROOT/.venv/bin/python" RPYTEST_PLUGINS_PYTHON="$ROOT/.venv-plugins/bin/python" cargo test --locked -- --test-threads=2

echo "== Python tests (pytest 8.4.2)"
"$ROOT/.venv/bin/python" -m pytest tests/python -q -p no:cacheprovider

echo "== Python tests and the soundness matrix with the Python audit hook (RPYTEST_NATIVE=0, pytest 8.4.2)"
RPYTEST_NATIVE=0 "$ROOT/.venv/bin/python" -m pytest tests/python -q -p no:cacheprovider
RPYTEST_NATIVE=0 RPYTEST_TEST_PYTHON="$ROOT/.venv/bin/python" cargo test --locked --test soundness -- --test-threads=2

echo "== Python tests (pytest 9)"
"$ROOT/.venv-pytest9/bin/python" -m pytest tests/python -q -p no:cacheprovider

echo "== drop-in, cache, soundness, faults, verify, parallel, remote, hermetic, replay and speed integration tests (pytest 9 + pytest-xdist)"
RPYTEST_TEST_PYTHON="$ROOT/.venv-pytest9/bin/python" cargo test --locked --test dropin --test cache --test soundness --test faults --test verify --test parallel --test remote --test hermetic --test replay --test speed --test output --test native -- --test-threads=2
