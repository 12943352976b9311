#!/usr/bin/env bash
# ps_slots_test.sh -- more sync trainers than the ps has RPC worker contexts
# (limits.rpc_workers: 2, 6 trainers) still train every step: a Pull or the
# start-up Reduce waiting at the ps must not hold a context (once they did, and
# the pushes that would release them could not get in: 64 trainers with
# rpc_workers 8 never made a step). Real `psfleet up --train-only`; the check is
# the step count, and a stall fails by this script's own timeout (the straggler
# and request timeouts are far beyond it, so nothing else can unblock a stall).
#
# Env: PSFLEET = the psfleet binary (set by ctest).
set -u

PSFLEET=${PSFLEET:?set PSFLEET to the psfleet binary}
SRC=${PSF_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init ps_slots_test psf-slots

N_TRAINERS=6
lib_on_exit() {
	[ "$FAILS" -eq 0 ] && return
	for f in "$W"/up.log "$W"/run/logs/ps0.log; do
		[ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }
	done
}

{
	echo "name: slots"
	echo "seed: 42"
	echo "run_dir: $W/run"
	echo "nodes:"
	echo "  ps:"
	echo "    - {id: ps0, listen: \"ipc://$W/ps0.ipc\"}"
	echo "  trainers:"
	for ((i = 0; i < N_TRAINERS; i++)); do
		echo "    - {id: trainer-$i}"
	done
	echo "data:"
	echo "  path: $W/data.csv"
	echo "  generate: {symbols: 24, days: 120, seed: 7}"
	echo "  shard_by: rows"
	sed -n '/^features:/,/^optimizer:/p' "$SRC/examples/tiny.yaml"
	echo "training: {epochs: 2, batch_size: 32}"
	echo "consistency: {mode: sync, straggler_timeout_ms: 3600000, heartbeat_ms: 500}"
	echo "limits: {request_timeout_ms: 3600000, rpc_workers: 2}"
} >"$W/fleet.yaml"

UP_TIMEOUT=240 start_up "$W/up.log" "$W/fleet.yaml" --train-only --metrics-out "$W/m.json"
wait_exit "$UP_PID" 250
untrack "$UP_PID"
if [ "$RC" -ne 0 ]; then
	fail "psfleet up exited $RC (124: stalled, killed by the test's timeout)"
else
	# Every trainer announces "<s> steps per epoch (...), <N> in all"; a sync round
	# closes once per step, so the fleet's step count and model version are N.
	want=$(grep -hEo '[0-9]+ in all' "$W"/run/logs/trainer-0.log | grep -Eo '^[0-9]+' | head -n 1)
	steps=$(grep -Eo '"steps": *[0-9]+' "$W/m.json" | grep -Eo '[0-9]+$')
	version=$(grep -Eo '"model_version": *[0-9]+' "$W/m.json" | grep -Eo '[0-9]+$')
	done_n=$(grep -c ' (done)' <(tr ',' '\n' <"$W/up.log"))
	say "$N_TRAINERS trainers, rpc_workers 2: steps $steps, model version $version (want $want), $done_n trainers done"
	[ -n "$want" ] && [ "$want" -gt 0 ] || fail "no step count in trainer-0.log"
	[ "${steps:-x}" = "$want" ] || fail "steps ${steps:-none}, want $want"
	[ "${version:-x}" = "$want" ] || fail "model version ${version:-none}, want $want"
	[ "$done_n" -eq "$N_TRAINERS" ] || fail "$done_n of $N_TRAINERS trainers done"
fi

if [ "$FAILS" -eq 0 ]; then
	say "PASS"
	echo "1 passed, 0 failed"
	exit 0
fi
echo "0 passed, 1 failed"
exit 1
