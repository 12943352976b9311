#!/usr/bin/env bash
# ingest_test.sh -- daily updates on a real fleet (`psfleet node` processes):
# `psfleet ingest` appends bars to every replica of a symbol's shard; the next
# Predict uses the new bar (as_of moves on) and its value equals the prediction
# made before with the same bar passed as `recent`; bad rows (unparsable, NaN,
# negative price, bad date or symbol, duplicate date, older date) get one error
# each and change nothing; a new symbol is accepted and served; the same through
# the gateway (--connect); Predicts running during a run of Ingests always
# answer; inferers restarted keep the ingested rows (journal); exit codes are 0
# (all stored), 1 (some refused), 2 (usage, config, file).
#
# Env: PSFLEET, INGEST_PROBE (set by ctest). ipc:// URLs in a temp dir, no
# metrics ports, so parallel runs do not collide. Every process started here is
# killed by PID at exit.
set -u

PSFLEET=${PSFLEET:?set PSFLEET to the psfleet binary}
PROBE=${INGEST_PROBE:?set INGEST_PROBE to the ingest_probe binary}
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init ingest_test psf-ingest
declare -A PID=()

lib_on_exit() {
	local f
	[ "$FAILS" -gt 0 ] || return 0
	for f in "$W"/*.log; do
		[ -f "$f" ] && { echo "--- $(basename "$f") (last 15 lines)"; tail -n 15 "$f"; }
	done
}

start() {
	"$PSFLEET" node "$W/fleet.yaml" --id "$1" >>"$W/$1.log" 2>&1 &
	PID[$1]=$!
	STARTED+=($!)
}

stop() {
	local rc
	kill -TERM "${PID[$1]}" 2>/dev/null
	wait "${PID[$1]}"
	rc=$?
	untrack "${PID[$1]}"
	unset "PID[$1]"
	[ "$rc" -eq 0 ] || fail "$1 exited $rc on SIGTERM (log: $(tail -3 "$W/$1.log"))"
}

url() { echo "ipc://$W/$1.sock"; }
GW=$(url gateway)
INFERERS="inferer-0 inferer-1 inferer-2"

serves() { # serves ID: wait until inferer ID answers ModelInfo
	local _
	for _ in $(seq 1 300); do
		"$PSFLEET" predict --connect "$(url "$1")" --info >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	fail "$1 never served a model"
	return 1
}

"$PSFLEET" data gen --symbols 20 --days 150 --seed 5 --out "$W/data.csv" >/dev/null || exit 1
cat >"$W/fleet.yaml" <<EOF
name: ingest-test
seed: 42
run_dir: $W/run
nodes:
  ps:
    - {id: ps0, listen: "$(url ps0)"}
  trainers:
    - {id: trainer-0}
  inferers:
    - {id: inferer-0, listen: "$(url inferer-0)", shard: 0}
    - {id: inferer-1, listen: "$(url inferer-1)", shard: 1}
    - {id: inferer-2, listen: "$(url inferer-2)", shard: 0}
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

# 1. train, then serve
start ps0
"$PSFLEET" node "$W/fleet.yaml" --id trainer-0 >"$W/trainer-0.log" 2>&1 ||
	fail "trainer-0 failed: $(tail -3 "$W/trainer-0.log")"
for n in $INFERERS gateway; do start "$n"; done
for n in $INFERERS; do serves "$n"; done
sleep 0.3 # the gateway's health probes see them

last_close() { awk -F, -v s="$1" '$2 == s { c = $6 } END { print c }' "$W/data.csv"; }
c1=$(last_close S0001)
bar1=$(awk -v c="$c1" 'BEGIN { printf "%.4f %.4f %.4f %.4f 123456", c * 1.01, c, c * 1.02, c * 0.99 }')
read -r close1 open1 high1 low1 vol1 <<<"$bar1"

# 2. before: the stored history ends 2024-12-31; the same bar as `recent`
before=$("$PROBE" "$GW" S0001) || fail "probe before: $before"
[[ "$before" == "2024-12-31 "* ]] || fail "before: want as_of 2024-12-31, got $before"
with_recent=$("$PROBE" "$GW" S0001 2025-01-01 "$close1" "$open1" "$high1" "$low1" "$vol1") ||
	fail "probe with recent: $with_recent"
[[ "$with_recent" == "2025-01-01 "* ]] || fail "recent: want as_of 2025-01-01, got $with_recent"

# 3. ingest (straight to the config's inferers): every row stored, exit 0
cat >"$W/day1.csv" <<EOF
symbol,date,close,open,high,low,volume
S0001,2025-01-01,$close1,$open1,$high1,$low1,$vol1
S0000,2025-01-01,50,49,51,48,1000
S0000,2025-01-02,51,50,52,49,1000
S0002,2025-01-01,20,,,,
EOF
out=$("$PSFLEET" ingest "$W/fleet.yaml" "$W/day1.csv" 2>&1)
rc=$?
[ "$rc" -eq 0 ] && [[ "$out" == "ingested 4 of 4 rows in "* ]] || fail "ingest day1: rc $rc: $out"
say "$out"
after=$("$PROBE" "$GW" S0001) || fail "probe after: $after"
# same as_of and the very same number as with the bar passed as recent
[ "${after% *}" = "${with_recent% *}" ] || fail "after ingest: want '${with_recent% *}', got '${after% *}'"
for n in $INFERERS; do # every replica of the symbols' shards has them
	for s in S0000 S0001; do
		got=$("$PROBE" "$(url "$n")" "$s") || {
			[[ "$got" == *"belongs to inference shard"* ]] || fail "$n $s: $got"
			continue
		}
		want=2025-01-01
		[ "$s" = S0000 ] && want=2025-01-02
		[[ "$got" == "$want "* ]] || fail "$n $s: want as_of $want, got $got"
	done
done
# S0002's bar had no high/low: the `range` feature cannot be computed at it
got=$("$PROBE" "$GW" S0002)
[[ "$got" == *"not a finite number"* ]] || fail "S0002 without high/low: $got"

# 4. bad rows, through the gateway: one error each, nothing stored changes
cat >"$W/bad.csv" <<EOF
date,symbol,open,high,low,close,volume
2025-01-02,S0001,1,2,1,abc,10
2025-01-02,S0001,1,2,1,nan,10
2025-01-02,S0001,1,2,1,-5,10
2025-01-02,S0001,1,2,1,5,-10
2025-13-01,S0001,1,2,1,5,10
2025-01-02,BAD SYM,1,2,1,5,10
2025-01-01,S0001,$open1,$high1,$low1,$close1,$vol1
2025-01-01,S0001,$open1,$high1,$low1,99,$vol1
2024-12-01,S0001,1,2,1,5,10
2025-01-02,S0003,1,2,1,5,10
2025-01-02,S0003,1,2,1,5,10
EOF
out=$("$PSFLEET" ingest "$W/fleet.yaml" "$W/bad.csv" --connect "$GW" 2>&1)
rc=$?
[ "$rc" -eq 1 ] || fail "bad rows: want exit 1, got $rc: $out"
expect() { # expect LINE TEXT: the report has an error for line LINE containing TEXT
	grep -F "bad.csv:$1: " <<<"$out" | grep -qF "$2" || fail "bad.csv line $1: want '$2' in: $(grep -F "bad.csv:$1:" <<<"$out")"
}
expect 2 "INVALID_ARGUMENT: close 'abc' is not a number"
expect 3 "INVALID_ARGUMENT: S0001 2025-01-02: close nan: must be a finite number > 0"
expect 4 "close -5: must be a finite number > 0"
expect 5 "volume -10: must be a finite number >= 0"
expect 6 "date '2025-13-01' is not a YYYY-MM-DD date"
expect 7 "symbol 'BAD SYM' is not valid"
expect 8 "ALREADY_EXISTS: S0001 2025-01-01: the identical bar is already stored; nothing changed"
expect 9 "ALREADY_EXISTS: S0001 2025-01-01: a different bar for that date is already stored"
expect 10 "FAILED_PRECONDITION: S0001 2024-12-01: older than the last date 2025-01-01"
expect 12 "ALREADY_EXISTS: S0003 2025-01-02: the identical bar is already stored"
grep -qF "bad.csv:11:" <<<"$out" && fail "line 11 (a good row) was refused: $out"
[[ "$out" == *"ingested 1 of 11 rows"* ]] || fail "bad rows summary: $out"
got=$("$PROBE" "$GW" S0001)
[ "${got% *}" = "${with_recent% *}" ] || fail "after the bad rows S0001 changed: $got (was $with_recent)"

# 5. a new listing: accepted by its shard, served once it has enough history
{
	echo "date,symbol,open,high,low,close,volume"
	for d in 02 03 04 05 06 09 10 11 12 13; do
		echo "2024-12-$d,NEWCO,10,10.5,9.5,10.$d,5000"
	done
} >"$W/newco.csv"
out=$("$PSFLEET" ingest "$W/fleet.yaml" "$W/newco.csv" --json 2>&1) ||
	fail "new symbol: $out"
[[ "$out" == '{"rows": 10, "accepted": 10, "already_stored": 0, "ms": '*', "errors": []}' ]] ||
	fail "new symbol json: $out"
newco=$("$PROBE" "$GW" NEWCO) || fail "NEWCO not served: $newco"
[[ "$newco" == "2024-12-13 "* ]] || fail "NEWCO: $newco"

# 6. Predicts keep answering while Ingests swap books under them
(
	for _ in $(seq 1 150); do
		"$PROBE" "$GW" S0000 >"$W/hammer.out" 2>&1 || cat "$W/hammer.out" >>"$W/hammer.err"
	done
) &
hammer=$!
STARTED+=($hammer)
for d in 03 06 07 08 09 10 13 14 15 16; do
	printf 'date,symbol,close,high,low\n2025-01-%s,S0000,5%s,60,40\n' "$d" "$d" >"$W/d$d.csv"
	"$PSFLEET" ingest "$W/fleet.yaml" "$W/d$d.csv" >/dev/null 2>&1 || fail "ingest 2025-01-$d failed"
done
wait "$hammer"
untrack "$hammer"
[ -s "$W/hammer.err" ] && fail "Predicts failed during Ingests: $(head -3 "$W/hammer.err")"
got=$("$PROBE" "$GW" S0000)
[[ "$got" == "2025-01-16 "* ]] || fail "S0000 after 10 daily ingests: $got"

# 7. freshness: the reply comes after the swap, so the next Predict sees it
printf 'date,symbol,close,open,high,low\n2025-01-02,S0001,%s,%s,%s,%s\n' "$close1" "$close1" \
	"$high1" "$low1" >"$W/fresh.csv"
t0=$(date +%s%N)
out=$("$PSFLEET" ingest "$W/fleet.yaml" "$W/fresh.csv" 2>&1) || fail "fresh: $out"
got=$("$PROBE" "$GW" S0001)
ms=$((($(date +%s%N) - t0) / 1000000))
[[ "$got" == "2025-01-02 "* ]] || fail "fresh: $got"
say "freshness: $out; ingest command + next Predict (two processes) took $ms ms"

# 8. restart every inferer: the journal brings the rows back, same predictions
s0001=$("$PROBE" "$GW" S0001)
for n in $INFERERS; do stop "$n"; done
for n in $INFERERS; do start "$n"; done
for n in $INFERERS; do serves "$n"; done
sleep 0.3
got=$("$PROBE" "$GW" S0001)
[ "$got" = "$s0001" ] || fail "after restart S0001: want '$s0001', got '$got'"
got=$("$PROBE" "$GW" NEWCO)
[ "$got" = "$newco" ] || fail "after restart NEWCO: want '$newco', got '$got'"
grep -Eq "replayed .*inferer-0.csv: [1-9][0-9]* rows restored" "$W/inferer-0.log" ||
	fail "inferer-0 did not log its replay: $(grep replayed "$W/inferer-0.log")"
# sending a file again after a restart: everything already stored, exit 1
out=$("$PSFLEET" ingest "$W/fleet.yaml" "$W/day1.csv" 2>&1)
[ $? -eq 1 ] && [[ "$out" == *"(4 refused, 4 of them already stored)"* ]] ||
	fail "day1 again: $out"

# 9. usage, config and file errors: exit 2
"$PSFLEET" ingest >/dev/null 2>&1
[ $? -eq 2 ] || fail "no arguments: want exit 2"
"$PSFLEET" ingest "$W/fleet.yaml" "$W/nope.csv" >/dev/null 2>&1
[ $? -eq 2 ] || fail "missing file: want exit 2"
"$PSFLEET" ingest "$W/nope.yaml" "$W/day1.csv" >/dev/null 2>&1
[ $? -eq 2 ] || fail "missing config: want exit 2"
printf 'date,ticker,close\n' >"$W/hdr.csv"
out=$("$PSFLEET" ingest "$W/fleet.yaml" "$W/hdr.csv" 2>&1)
[ $? -eq 2 ] && [[ "$out" == *"unknown column 'ticker'"* ]] || fail "bad header: $out"

for n in gateway $INFERERS ps0; do stop "$n"; done
if [ "$FAILS" -gt 0 ]; then
	say "$FAILS failure(s)"
	exit 1
fi
say "all passed"
