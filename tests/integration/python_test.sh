#!/usr/bin/env bash
# python_test.sh -- the Python package (python/) as a user meets it: installed with
# `pip install ./python` into a venv of Debian's /usr/bin/python3 (offline, no
# registry), then its unittest suite (python/tests) run against a real fleet
# started here with `psfleet up`: a ps, a trainer, an inferer (ipc://) and the
# gateway on tls+tcp://127.0.0.1 (a free port; mutual TLS with certificates made
# by scripts/make-certs.sh), with a shared-secret token. The suite compares
# what the package returns with what `psfleet predict --json` prints; the fleet
# fine-tunes (training.finetune.steps: 3) on the rows the suite ingests.
#
# Env: PSFLEET = the psfleet binary, PSFLEET_CLIENT_LIB = libpsfleet_client.so of
# the same build (both set by ctest); PSF_PYTHON_PRELOAD = the sanitizer runtimes
# to preload into python3 when the library is an ASan build. Exit 77 (skipped) when /usr/bin/python3 or
# its venv module is missing. Every process started here is killed by PID at exit.
set -u

PSFLEET=${PSFLEET:?set PSFLEET to the psfleet binary}
export PSFLEET PSFLEET_CLIENT_LIB=${PSFLEET_CLIENT_LIB:?set PSFLEET_CLIENT_LIB to libpsfleet_client.so}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PY=/usr/bin/python3
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init python_test psf-python # W: this run's temp dir; STARTED: PIDs killed at exit

lib_on_exit() {
	[ "$FAILS" -gt 0 ] || return 0
	echo "--- psfleet up (last 20 lines)"
	tail -n 20 "$W/up.out" 2>/dev/null
}

if ! [ -x "$PY" ] || ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
	say "skipped: $PY with venv is missing (scripts/install-deps.sh installs python3-venv)"
	exit 77
fi

# 1. pip install ./python into a venv (a copy of the tree, so the build leaves
# nothing in the source tree), with Debian's setuptools and no index.
cp -r "$SRC/python" "$W/pkg"
"$PY" -m venv --system-site-packages "$W/venv" || exit 1
if ! "$W/venv/bin/pip" install -q --no-index --no-build-isolation "$W/pkg" >"$W/pip.log" 2>&1; then
	fail "pip install ./python: $(tail -5 "$W/pip.log")"
	exit 1
fi
(cd "$W" && "$W/venv/bin/python" -c 'import psfleet, sys; sys.exit(0 if "/venv/" in psfleet.__file__ else 1)') ||
	fail "the venv does not import the installed package"
say "installed: $("$W/venv/bin/pip" list 2>/dev/null | grep -E '^psfleet ')"

# 2. the fleet
read -r GWPORT CLOSED <<<"$(free_ports 2)"
"$PSFLEET" data gen --symbols 30 --days 150 --seed 3 --out "$W/data.csv" >/dev/null || exit 1
echo "py-test-secret" >"$W/token"
bash "$SRC/scripts/make-certs.sh" "$W/certs" psfleet-node >/dev/null || exit 1
cat >"$W/fleet.yaml" <<YAML
name: python-test
seed: 42
run_dir: $W/run
nodes:
  ps:
    - {id: ps0, listen: "ipc://$W/ps0.ipc"}
  trainers:
    - {id: trainer-0}
  inferers:
    - {id: inferer-0, listen: "ipc://$W/inferer-0.ipc", shard: 0}
  gateway: {id: gateway, listen: "tls+tcp://127.0.0.1:$GWPORT"}
data: {path: $W/data.csv, test_fraction: 0.2}
features: ["return:1", "return:2", "ratio_sma:5", "range", "dow"]
target: next_return
model: {kind: linear, symbol_bias: true}
optimizer: {kind: adam, learning_rate: 0.01}
training: {epochs: 2, batch_size: 64, finetune: {steps: 3, poll_ms: 20}}
consistency: {mode: sync, straggler_timeout_ms: 5000, heartbeat_ms: 200}
durability: {mode: none, map_size: 67108864}
limits: {request_timeout_ms: 5000}
inference: {refresh_ms: 100, history_days: 32}
security:
  token_file: $W/token
  tls_cert: $W/certs/node.pem
  tls_key: $W/certs/node.key
  tls_ca: $W/certs/ca.pem
  tls_server_name: psfleet-node
YAML
start_up "$W/up.out" "$W/fleet.yaml"
if ! wait_for "$W/up.out" "serving; try: " 240; then
	fail "the fleet is not serving"
	exit 1
fi
for p in $(node_pids "$W/up.out"); do STARTED+=("$p"); done

# 3. the package's tests, from outside the source tree (the installed package).
export PSFLEET_TEST_URL="tls+tcp://127.0.0.1:$GWPORT" PSFLEET_TEST_CERTS="$W/certs" PSFLEET_TEST_INFERER="ipc://$W/inferer-0.ipc"
export PSFLEET_TEST_TOKEN_FILE="$W/token" PSFLEET_TEST_DATA="$W/data.csv"
export PSFLEET_TEST_CLOSED_URL="tcp://127.0.0.1:$CLOSED"
run_tests() {
	cd "$W" && timeout 300 "$W/venv/bin/python" -m unittest discover -v -s "$W/pkg/tests" -t "$W/pkg/tests"
}
if [ -n "${PSF_PYTHON_PRELOAD:-}" ]; then
	# An ASan build: python3 is not instrumented, so the sanitizer runtimes must be
	# loaded first; the interpreter's own memory held at exit is not a leak of ours
	# (client_test checks the library's leaks).
	(LD_PRELOAD="$PSF_PYTHON_PRELOAD" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 run_tests) >"$W/unittest.log" 2>&1
else
	(run_tests) >"$W/unittest.log" 2>&1
fi
rc=$?
cat "$W/unittest.log"
[ "$rc" -eq 0 ] || fail "python unittest exited $rc"
grep -Eq '^Ran [1-9][0-9]* tests' "$W/unittest.log" || fail "no tests ran"

kill -TERM "$UP_PID"
wait_exit "$UP_PID" 60 || fail "psfleet up did not exit on SIGTERM"
[ "$FAILS" -eq 0 ] && say "ok: pip install ./python, and its tests against a real fleet" && exit 0
exit 1
