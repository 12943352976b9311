#!/usr/bin/env bash
# split_test.sh -- how work is split over trainers and ps nodes, with real
# processes on 127.0.0.1 (psfleet up and psfleet node):
#  1. a trainer with no training rows (more trainers than symbols; a symbol of
#     one row) leaves cleanly and the fleet completes, in sync, async and ssp,
#     under `psfleet up --train-only` and with nodes started by hand;
#  2. the default split balances rows (4 symbols over 2 trainers: 2 each) and
#     `psfleet up` prints it;
#  3. a fault-free sync run where one ps holds no model key logs no warning and
#     no ABORTED push, and `psfleet up` prints how keys are spread.
#
# Env: PSFLEET = the psfleet binary (set by ctest). Every case has its own temp
# dir, ipc:// listen URLs and free metrics ports; every process started here is
# killed by PID at exit.
set -u

PSFLEET=${PSFLEET:?set PSFLEET to the psfleet binary}
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init split_test psf-split # W: this run's temp dir; STARTED: PIDs killed at exit

# write_cfg FILE DIR N_PS N_TRAINERS MODE DATA-LINES: a fleet under DIR with
# ipc listen URLs and free metrics ports; DATA-LINES is the body of `data:`.
write_cfg() {
	local file=$1 dir=$2 nps=$3 ntr=$4 mode=$5 data=$6
	local ports cons="{mode: $mode, straggler_timeout_ms: 20000, heartbeat_ms: 500}"
	[ "$mode" = ssp ] && cons="{mode: ssp, staleness: 2, straggler_timeout_ms: 20000, heartbeat_ms: 500}"
	read -r -a ports <<<"$(free_ports $((nps + ntr)))"
	{
		echo "name: st"
		echo "seed: 42"
		echo "run_dir: $dir/run"
		echo "log_level: info"
		yaml_ps_trainers "$dir" "$nps" "$ntr" "${ports[@]}"
		echo "data:"
		echo "$data"
		echo 'features: ["return:1", "return:2", "return:5", "ratio_sma:5", "range", "dow"]'
		echo "target: next_return"
		echo "model: {kind: linear, symbol_bias: false}"
		echo "optimizer: {kind: adam, learning_rate: 0.01}"
		echo "training: {epochs: 2, batch_size: 32}"
		echo "consistency: $cons"
		echo "durability: {mode: interval, interval_ms: 200, map_size: 67108864}"
		echo "limits: {request_timeout_ms: 10000, rpc_workers: 8}"
	} >"$file"
}

# gen_data FILE SYMBOLS DAYS: psfleet data gen.
gen_data() {
	mkdir -p "$(dirname "$1")"
	"$PSFLEET" data gen --symbols "$2" --days "$3" --seed 7 --out "$1" >/dev/null 2>&1 ||
		fail "data gen $1"
}

# check_warnings DIR WHAT: no warn/err line and no ABORTED push in any node log.
check_warnings() {
	local bad
	bad=$(grep -E ' (warn|err) |ABORTED|re-register' "$1"/run/logs/*.log 2>/dev/null | grep -v 'has no training rows' | head -3)
	[ -z "$bad" ] || fail "$2: warnings in a fault-free run: $bad"
}

# up_train DIR WHAT: psfleet up --train-only on DIR/f.yaml; it must exit 0 with
# metrics. Sets OUT to its output file.
up_train() {
	local dir=$1 what=$2
	OUT="$dir/up.out"
	UP_TIMEOUT=${SPLIT_TIMEOUT:-150} start_up "$OUT" "$dir/f.yaml" --train-only --metrics-out "$dir/m.json"
	wait_exit "$UP_PID" $((${SPLIT_TIMEOUT:-150} + 10))
	rc=$RC
	untrack "$UP_PID"
	if ! grep -q "stopped:" "$OUT"; then
		fail "$what: psfleet up --train-only did not return: $(tail -3 "$OUT")"
		return 1
	fi
	grep -q '"test_rmse"' "$dir/m.json" 2>/dev/null ||
		fail "$what: no metrics written: $(tail -3 "$OUT")"
	grep -q "training done" "$OUT" || fail "$what: no 'training done' line: $(tail -3 "$OUT")"
	return $rc
}

# ------------------------------------------------- 1. trainers without rows

# case_empty NAME N_SYMBOLS N_TRAINERS MODE: psfleet up with more trainers than
# the data can feed; every trainer must end "done" and the run report metrics.
case_empty() {
	local name=$1 nsym=$2 ntr=$3 mode=$4 dir="$W/$1"
	mkdir -p "$dir"
	gen_data "$dir/data/d.csv" "$nsym" 100
	write_cfg "$dir/f.yaml" "$dir" 1 "$ntr" "$mode" "  path: $dir/data/d.csv
  test_fraction: 0.2"
	up_train "$dir" "$name"
	grep -q "stopped:.*(done)" "$dir/up.out" || fail "$name: stop line: $(grep stopped: "$dir/up.out")"
	grep -Eq "\((exit [1-9]|signal|killed)" <<<"$(grep stopped: "$dir/up.out")" &&
		fail "$name: a node did not end cleanly: $(grep stopped: "$dir/up.out")"
	grep -lq "no training rows" "$dir"/run/logs/trainer-*.log ||
		fail "$name: no trainer says it has no training rows"
	check_warnings "$dir" "$name"
	say "$name: $(grep -E 'training done' "$dir/up.out" | head -1)"
}

# case_one_row: four trainers; three symbols of 100 days and one symbol of a
# single row, which yields no training sample.
case_one_row() {
	local dir="$W/one_row"
	mkdir -p "$dir"
	gen_data "$dir/data/d.csv" 3 100
	tail -1 "$dir/data/d.csv" | sed -E 's/^([^,]*),[^,]*,/\1,ONEROW,/' >>"$dir/data/d.csv"
	write_cfg "$dir/f.yaml" "$dir" 1 4 sync "  path: $dir/data/d.csv
  test_fraction: 0.2"
	up_train "$dir" one_row
	grep -q "stopped:.*(done)" "$dir/up.out" || fail "one_row: stop line: $(grep stopped: "$dir/up.out")"
	grep -lq "no training rows" "$dir"/run/logs/trainer-*.log ||
		fail "one_row: no trainer says it has no training rows"
	say "one_row: $(grep -E 'training done' "$dir/up.out" | head -1)"
}

# case_by_hand MODE: ps and both trainers started with psfleet node (as on other
# hosts); 1 symbol, 2 trainers: both trainers exit 0 and the ps's version moves.
case_by_hand() {
	local mode=$1 dir="$W/hand-$1" pids=() i rc bad
	mkdir -p "$dir"
	gen_data "$dir/data/d.csv" 1 100
	write_cfg "$dir/f.yaml" "$dir" 1 2 "$mode" "  path: $dir/data/d.csv
  test_fraction: 0.2"
	mkdir -p "$dir/run"
	"$PSFLEET" node "$dir/f.yaml" --id ps0 >"$dir/ps0.log" 2>&1 &
	STARTED+=($!)
	local ps=$!
	for i in 0 1; do
		timeout -s TERM "${SPLIT_TIMEOUT:-120}" "$PSFLEET" node "$dir/f.yaml" --id "trainer-$i" >"$dir/t$i.log" 2>&1 &
		pids+=($!)
		STARTED+=($!)
	done
	for i in 0 1; do
		wait_exit "${pids[$i]}" $((${SPLIT_TIMEOUT:-120} + 10))
		rc=$RC
		untrack "${pids[$i]}"
		[ "$rc" -eq 0 ] || fail "hand-$mode: trainer-$i exited $rc: $(tail -2 "$dir/t$i.log")"
	done
	grep -q "no training rows" "$dir/t0.log" "$dir/t1.log" ||
		fail "hand-$mode: no trainer says it has no training rows"
	grep -q "done after" "$dir/t0.log" "$dir/t1.log" || fail "hand-$mode: no trainer finished"
	"$PSFLEET" status "$dir/f.yaml" >"$dir/status.out" 2>&1 || fail "hand-$mode: status failed"
	kill -TERM "$ps"
	wait_exit "$ps" 30
	untrack "$ps"
	bad=$(grep -E ' (warn|err) |ABORTED' "$dir"/t*.log "$dir/ps0.log" | grep -v 'has no training rows')
	[ -z "$bad" ] || fail "hand-$mode: warnings: $(head -2 <<<"$bad")"
	say "hand-$mode: $(grep -h 'no training rows' "$dir"/t*.log | head -1)"
}

# ------------------------------------------------- 2. the default split

case_balanced() {
	local dir="$W/balanced" line
	mkdir -p "$dir"
	gen_data "$dir/data/d.csv" 4 100
	write_cfg "$dir/f.yaml" "$dir" 1 2 sync "  path: $dir/data/d.csv
  test_fraction: 0.2"
	up_train "$dir" balanced
	line=$(grep -E "trainer-0: 2 symbols" "$dir/up.out")
	[ -n "$line" ] || fail "balanced: no 'trainer-0: 2 symbols' split line: $(grep -i split "$dir/up.out")"
	grep -Eq "trainer-1: 2 symbols" "$dir/up.out" || fail "balanced: trainer-1 does not get 2 symbols"
	grep -Eq "owns 2 of 4 symbols" "$dir/run/logs/trainer-1.log" ||
		fail "balanced: trainer-1's log does not say it owns 2 of 4 symbols"
	say "balanced: $(grep -E 'split|trainer-[01]:' "$dir/up.out" | tr '\n' ' ')"
}

# ------------------------------------------------- 3. a ps without keys

# case_keyless NPS: a fault-free sync run of a linear model over NPS ps nodes
# (with ids ps0, ps1 both keys hash to ps1, as in examples/fleet.yaml).
case_keyless() {
	local nps=$1 dir="$W/keyless-$1"
	mkdir -p "$dir"
	gen_data "$dir/data/d.csv" 40 300
	write_cfg "$dir/f.yaml" "$dir" "$nps" 4 sync "  path: $dir/data/d.csv
  test_fraction: 0.2"
	sed -i 's/epochs: 2, batch_size: 32/epochs: 3, batch_size: 64/' "$dir/f.yaml"
	up_train "$dir" "keyless-$nps"
	check_warnings "$dir" "keyless-$nps"
	grep -Eq "ps0: 0 keys" "$dir/up.out" ||
		fail "keyless-$nps: no 'ps0: 0 keys' line: $(grep -i keys "$dir/up.out")"
	say "keyless-$nps: $(grep -E 'keys' "$dir/up.out" | tr '\n' ' ')"
}

"$PSFLEET" data gen --help >/dev/null 2>&1 || { say "psfleet data gen is missing"; exit 1; }
# Arguments (for a quicker look): run only these cases, e.g. "case_balanced".
if [ $# -gt 0 ]; then
	for c in "$@"; do
		eval "$c"
	done
else
	case_empty sync_3x4 3 4 sync
	case_empty async_3x4 3 4 async
	case_empty ssp_3x4 3 4 ssp
	case_empty sync_1x2 1 2 sync
	case_one_row
	case_by_hand sync
	case_by_hand ssp
	case_by_hand async
	case_balanced
	case_keyless 2
fi

if [ "$FAILS" -gt 0 ]; then
	say "$FAILS check(s) failed"
	exit 1
fi
say "all passed"
