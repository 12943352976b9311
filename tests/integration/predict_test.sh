#!/usr/bin/env bash
# predict_test.sh -- inferers and the gateway as real `psfleet node` processes,
# called with `psfleet predict`: before any ps is up the gateway answers
# UNAVAILABLE at once; after training every symbol is served through the
# gateway (both shards, one batch); unknown symbols are NOT_FOUND; killing one
# of shard 0's two replicas changes nothing for the caller; every node stops
# cleanly (exit 0) on SIGTERM.
#
# Env: PSFLEET = the psfleet binary (set by ctest). ipc:// URLs in a temp dir,
# no metrics ports, so parallel runs do not collide. Every process started here
# is killed by PID at exit.
set -u

PSFLEET=${PSFLEET:?set PSFLEET to the psfleet binary}
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init predict_test psf-predict # W: this run's temp dir; STARTED: PIDs killed at exit
declare -A PID=() # node ID -> PID

lib_on_exit() { # on failure the logs say why; they go with the temp dir
	local f
	[ "$FAILS" -gt 0 ] || return 0
	for f in "$W"/*.log; do
		[ -f "$f" ] && { echo "--- $(basename "$f") (last 15 lines)"; tail -n 15 "$f"; }
	done
}

start() { # start ID: run node ID in the background, log to $W/ID.log
	"$PSFLEET" node "$W/fleet.yaml" --id "$1" >"$W/$1.log" 2>&1 &
	PID[$1]=$!
	STARTED+=($!)
}

stop() { # stop ID: SIGTERM, wait, check exit 0
	local rc
	kill -TERM "${PID[$1]}" 2>/dev/null
	wait "${PID[$1]}"
	rc=$?
	untrack "${PID[$1]}"
	unset "PID[$1]"
	[ "$rc" -eq 0 ] || fail "$1 exited $rc on SIGTERM (log: $(tail -3 "$W/$1.log"))"
}

GW="ipc://$W/gateway.sock"
SYMS=$(for i in $(seq 0 29); do printf 'S%04d ' "$i"; done)

"$PSFLEET" data gen --symbols 30 --days 150 --seed 3 --out "$W/data.csv" >/dev/null || exit 1
cat >"$W/fleet.yaml" <<EOF
name: predict-test
seed: 42
run_dir: $W/run
nodes:
  ps:
    - {id: ps0, listen: "ipc://$W/ps0.sock"}
  trainers:
    - {id: trainer-0}
  inferers:
    - {id: inferer-0, listen: "ipc://$W/inferer-0.sock", shard: 0}
    - {id: inferer-1, listen: "ipc://$W/inferer-1.sock", shard: 1}
    - {id: inferer-2, listen: "ipc://$W/inferer-2.sock", shard: 0}
  gateway: {id: gateway, listen: "$GW"}
data: {path: $W/data.csv, test_fraction: 0.2}
features: ["return:1", "return:2", "ratio_sma:5", "range", "dow"]
target: next_return
model: {kind: linear, symbol_bias: true}
optimizer: {kind: adam, learning_rate: 0.01}
training: {epochs: 2, batch_size: 64}
consistency: {mode: sync, straggler_timeout_ms: 5000, heartbeat_ms: 200}
durability: {mode: none, map_size: 67108864}
limits: {request_timeout_ms: 5000, rpc_workers: 16}
inference: {refresh_ms: 100, history_days: 32, shards: 2}
gateway_options: {route: symbol, health_interval_ms: 100}
EOF

# 0. nothing listens: a refused connection fails at once (not after the 10 s
# default deadline), with a clear message; on ipc:// and on a closed tcp port
closed=$(free_ports 1)
for url in "$GW" "tcp://127.0.0.1:$closed"; do
	t0=$(date +%s%N)
	out=$("$PSFLEET" predict --connect "$url" S0000 2>&1)
	rc=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	[ "$rc" -eq 1 ] && [ "$out" = "psfleet predict: cannot connect to $url: connection refused (nothing serves there)" ] ||
		fail "closed $url: want one line 'connection refused', got rc $rc: $out"
	[ "$ms" -lt 10000 ] || fail "closed $url: took $ms ms, not less than the 10 s deadline"
	say "closed $url: refused in $ms ms"
done

# 1. inferers and gateway first: no ps yet -> UNAVAILABLE, at once
for n in inferer-0 inferer-1 inferer-2 gateway; do start "$n"; done
sleep 1
t0=$(date +%s%N)
out=$("$PSFLEET" predict --connect "$GW" S0000 --timeout-ms 4000 2>&1)
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$rc" -eq 1 ] && [[ "$out" == *UNAVAILABLE* ]] || fail "no ps: want UNAVAILABLE, got rc $rc: $out"
[ "$ms" -lt 3000 ] || fail "no ps: UNAVAILABLE took $ms ms (deadline 4000 ms)"

# 2. ps up, train, then every symbol through the gateway at the trained version
start ps0
"$PSFLEET" node "$W/fleet.yaml" --id trainer-0 >"$W/trainer-0.log" 2>&1 ||
	fail "trainer-0 failed: $(tail -3 "$W/trainer-0.log")"
want=$(grep -o 'done after [0-9]* steps' "$W/trainer-0.log" | grep -o '[0-9]*')
ok=0
for _ in $(seq 1 100); do
	# shellcheck disable=SC2086
	out=$("$PSFLEET" predict --connect "$GW" $SYMS --json 2>&1)
	if [ "$(grep -c '"status": "OK"' <<<"$out")" -eq 30 ] &&
	    [ "$(grep -c "\"model_version\": ${want:-x}," <<<"$out")" -eq 30 ]; then
		ok=1
		break
	fi
	sleep 0.1
done
say "trained to version ${want:-?}; no-ps UNAVAILABLE came in $ms ms"
[ "$ok" -eq 1 ] || fail "want 30 OK predictions at version ${want:-?}, got: $(head -c 600 <<<"$out")"

# The table says what the number is and the day it is for: S0001's last bar is
# the generator's last day, 2024-12-31 (a Tuesday), so FOR_DATE is 2025-01-01.
out=$("$PSFLEET" predict --connect "$GW" S0001 2>&1) || fail "table: $out"
[[ "$(head -1 <<<"$out")" == "PREDICTION (next_return) is the return from the close of AS_OF to the close of FOR_DATE"* ]] ||
	fail "table: no line saying what PREDICTION is: $out"
grep -Eq '^SYMBOL +FOR_DATE +PREDICTION ' <<<"$out" || fail "table header: $out"
grep -Eq '^S0001 +2025-01-01 +[-0-9.e]+ +[0-9.e]+ +[0-9.e]+ +2024-12-31 ' <<<"$out" || fail "table row: $out"
out=$("$PSFLEET" predict --connect "$GW" S0001 --json 2>&1)
grep -q '"as_of": "2024-12-31", "for_date": "2025-01-01"' <<<"$out" || fail "json for_date: $out"

# 3. errors come back per symbol; the exit status says one failed
out=$("$PSFLEET" predict --connect "$GW" S0001 NOPE 2>&1)
[ $? -eq 1 ] && [[ "$out" == *"NOT_FOUND: unknown symbol 'NOPE'"* ]] ||
	fail "unknown symbol: $out"
"$PSFLEET" predict --connect "$GW" --info >"$W/info.txt" 2>&1 || fail "--info: $(cat "$W/info.txt")"
grep -q "linear -> next_return" "$W/info.txt" || fail "--info: $(cat "$W/info.txt")"

# 4. one of shard 0's replicas dies: every call still succeeds. First make sure
# both replicas serve (the 30 answers above may all have come from inferer-2
# while inferer-0 was still fetching its first snapshot), and that the gateway's
# health probes (every 100 ms) have seen inferer-0 up.
for n in inferer-0 inferer-2; do
	for _ in $(seq 1 200); do
		"$PSFLEET" predict --connect "ipc://$W/$n.sock" --info >/dev/null 2>&1 && break
		sleep 0.1
	done
	"$PSFLEET" predict --connect "ipc://$W/$n.sock" --info >/dev/null 2>&1 ||
		fail "$n never served a model"
done
sleep 0.5
stop inferer-2
for _ in $(seq 1 5); do
	# shellcheck disable=SC2086
	"$PSFLEET" predict --connect "$GW" $SYMS >"$W/after.txt" 2>&1 ||
		fail "after inferer-2 stopped: $(grep -v ' next_return' "$W/after.txt" | head -3)"
done

# 5. everything stops cleanly
for n in gateway inferer-0 inferer-1 ps0; do stop "$n"; done
if [ "$FAILS" -gt 0 ]; then
	say "$FAILS failure(s)"
	exit 1
fi
say "all passed"
