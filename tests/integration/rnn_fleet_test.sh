#!/usr/bin/env bash
# rnn_fleet_test.sh -- gru and lstm fleets through `psfleet up --train-only`, real
# processes on ipc:// (no ports):
#   1. a gru (window 8, embedding, symbol bias, keys sharded over two ps nodes,
#      the step's whole gradient clipped by the trainer) trained in sync on generated data with per-symbol autocorrelated returns
#      beats the naive forecast on the test rows; the trainers log how many rows
#      have a full window;
#   2. async and ssp runs of a gru, and a two-layer lstm, train to the end;
#   3. the stored model refuses a run with another window (fingerprint/settings);
#   4. config errors name the file and line: three layers, window 0, an inferer
#      whose history_days cannot hold the window.
#
# Env: PSFLEET = the psfleet binary (set by ctest). Every case has its own dir
# in this run's temp dir; every process started here is killed by PID at exit.
set -u

PSFLEET=${PSFLEET:?set PSFLEET to the psfleet binary}
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init rnn_fleet_test psf-rnn # W: this run's temp dir; STARTED: PIDs killed at exit

lib_on_exit() {
	local f
	[ "$FAILS" -gt 0 ] || return 0
	for f in "$W"/*/run/logs/trainer-0.log; do
		[ -f "$f" ] && { echo "--- $f (last 10 lines)"; tail -n 10 "$f"; }
	done
}

"$PSFLEET" data gen --symbols 40 --days 300 --seed 7 --out "$W/data.csv" >/dev/null ||
	{ fail "data gen failed"; exit 1; }

# write_cfg DIR MODE MODEL [EPOCHS]: two ps, two trainers on ipc in DIR.
write_cfg() {
	local dir=$1 mode=$2 model=$3 epochs=${4:-3}
	mkdir -p "$dir"
	cat >"$dir/f.yaml" <<EOC
name: rnn
seed: 42
run_dir: $dir/run
log_level: info
nodes:
  ps:
    - {id: ps0, listen: "ipc://$dir/ps0.ipc"}
    - {id: ps1, listen: "ipc://$dir/ps1.ipc"}
  trainers:
    - {id: trainer-0}
    - {id: trainer-1}
data: {path: $W/data.csv, test_fraction: 0.2}
features: ["return:1", "return:2", "range"]
target: next_return
model: {$model, chunk_floats: 256}
optimizer: {kind: adam, learning_rate: 0.01, clip_norm: 5.0}
training: {epochs: $epochs, batch_size: 32, clip_norm: 1.0}
consistency: {mode: $mode, staleness: 2, straggler_timeout_ms: 20000, heartbeat_ms: 1000}
durability: {mode: none}
limits: {request_timeout_ms: 20000}
EOC
}

# run_up DIR ARGS...: psfleet up on DIR/f.yaml under a hard timeout; sets RC.
run_up() {
	local dir=$1 p
	shift
	timeout -s TERM 300 "$PSFLEET" up "$dir/f.yaml" "$@" >"$dir/out" 2>"$dir/err"
	RC=$?
	for p in $(grep -Eo '\(pid [0-9]+' "$dir/out" | awk '{print $2}'); do
		STARTED+=("$p")
	done
}

# rmse DIR KIND: the test ("test") or naive ("naive") RMSE psfleet up printed.
rmse() {
	grep -Eo "$2 RMSE [-0-9.e+]+" "$1/out" | tail -1 | awk '{print $3}'
}

# trains DIR LABEL: the run ended with exit 0 and printed a finite test RMSE.
trains() {
	local r
	[ "$RC" -eq 0 ] || { fail "$2: exit $RC: $(tail -3 "$1/err") $(tail -3 "$1/out")"; return 1; }
	r=$(rmse "$1" test)
	awk -v r="$r" 'BEGIN { exit !(r + 0 > 0 && r + 0 < 1) }' ||
		{ fail "$2: test RMSE '$r' is not a finite error"; return 1; }
	return 0
}

# 1. gru in sync beats naive
d="$W/gru-sync"
write_cfg "$d" sync "kind: gru, hidden: [16], window: 8, embedding_dim: 4, symbol_bias: true"
run_up "$d" --train-only
if trains "$d" "gru sync"; then
	t=$(rmse "$d" test)
	n=$(rmse "$d" naive)
	awk -v t="$t" -v n="$n" 'BEGIN { exit !(t < n) }' ||
		fail "gru sync: test RMSE $t does not beat naive $n"
	say "gru sync: test RMSE $t, naive $n"
	grep -q "window of 8 days: [0-9]* of [0-9]* train rows" "$d/run/logs/trainer-0.log" ||
		fail "gru sync: the trainer does not log the rows with a window"
	grep -q "gru window of 8 days: the first 7 feature rows of each symbol" "$d/out" ||
		fail "gru sync: up does not say which rows have no window"
fi

# 2. async, ssp, a two-layer lstm
for mode in async ssp; do
	d="$W/gru-$mode"
	write_cfg "$d" $mode "kind: gru, hidden: [8], window: 5, embedding_dim: 2" 1
	run_up "$d" --train-only
	trains "$d" "gru $mode" && say "gru $mode: test RMSE $(rmse "$d" test), naive $(rmse "$d" naive)"
done
d="$W/lstm"
write_cfg "$d" sync "kind: lstm, hidden: [12, 8], window: 6, symbol_bias: true" 2
run_up "$d" --train-only
trains "$d" "lstm" && say "lstm 2 layers: test RMSE $(rmse "$d" test), naive $(rmse "$d" naive)"

# 3. another window on the stored model is refused, naming the key
sed -i 's/window: 6/window: 7/' "$d/f.yaml"
run_up "$d" --train-only
[ "$RC" -eq 2 ] || fail "window change: exit $RC, want 2: $(cat "$d/err")"
grep -q "model.window 6 -> 7" "$d/err" || fail "window change: $(cat "$d/err")"

# 4. config errors with file:line
d="$W/bad"
write_cfg "$d" sync "kind: gru, hidden: [8, 8, 8]"
run_up "$d" --train-only
[ "$RC" -eq 2 ] && grep -Eq "f\.yaml:[0-9]+: model kind 'gru' takes 1 or 2 layers" "$d/err" ||
	fail "three layers: exit $RC: $(cat "$d/err")"
write_cfg "$d" sync "kind: lstm, window: 0"
run_up "$d" --train-only
[ "$RC" -eq 2 ] && grep -Eq "f\.yaml:[0-9]+: 'window' must be an integer in \[1, 512\]" "$d/err" ||
	fail "window 0: exit $RC: $(cat "$d/err")"
write_cfg "$d" sync "kind: gru, window: 30"
sed -i "s|    - {id: trainer-1}|    - {id: trainer-1}\n  inferers:\n    - {id: inferer-0, listen: \"ipc://$d/inf.ipc\"}|" "$d/f.yaml"
echo "inference: {history_days: 20}" >>"$d/f.yaml"
run_up "$d" --train-only
[ "$RC" -eq 2 ] && grep -Eq "f\.yaml:[0-9]+: inference.history_days \(20\) must be at least 32" "$d/err" ||
	fail "history_days: exit $RC: $(cat "$d/err")"

[ "$FAILS" -eq 0 ] && say "ok" || say "$FAILS failure(s)"
exit $((FAILS > 0))
