#!/usr/bin/env bash
# finetune_test.sh -- fine-tuning after Ingest on a real fleet (`psfleet node`
# processes; docs/training.md "Fine-tuning after Ingest"): training.finetune
# {steps: 5}; after training trainer-0 stays up. A day's rows ingested through
# the gateway move the model version by 5 per round (one round, or two when a
# shard's rows come later than one poll; every row in one), every inferer
# replica serves the new version and its predictions change; a duplicate, an
# older and a bad row get their per-row error and start no round; trainer-0
# killed in the middle of a round (--exit-at-step) and restarted finishes the
# round with no step applied twice (version + exactly 5 again); an inferer
# restarted replays its journal and resends its rows, which ps0 keeps once (no
# new round); a trainer started with training.finetune.steps=0 (what `psfleet
# up --train-only` passes) exits after training; a gru in async mode fine-tunes too.
#
# Env: PSFLEET, INGEST_PROBE (set by ctest). ipc:// URLs in a temp dir; the
# metrics ports come from free_ports (lib.sh). Every process started here is
# killed by PID at exit.
set -u

PSFLEET=${PSFLEET:?set PSFLEET to the psfleet binary}
PROBE=${INGEST_PROBE:?set INGEST_PROBE to the ingest_probe binary}
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init finetune_test psf-finetune
declare -A PID=()

lib_on_exit() {
	local f
	[ "$FAILS" -gt 0 ] || return 0
	for f in "$W"/*.log; do
		[ -f "$f" ] && { echo "--- $(basename "$f") (last 20 lines)"; tail -n 20 "$f"; }
	done
}

start() { # start ID [ARGS...]
	local id=$1
	shift
	"$PSFLEET" node "$W/fleet.yaml" --id "$id" "$@" >>"$W/$id.log" 2>&1 &
	PID[$id]=$!
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
read -r P_PS P_T0 <<<"$(free_ports 2)"

metric() { # metric PORT NAME: the sample's value as an integer ("" if absent)
	curl -s --max-time 2 "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { print int($2) }'
}
ps_version() { metric "$P_PS" psfleet_model_version; }
info_version() { # the model version inferer $1 serves
	"$PSFLEET" predict --connect "$(url "$1")" --info --json 2>/dev/null |
		sed -n 's/^{"model_version": \([0-9]*\),.*/\1/p'
}
wait_until() { # wait_until SECONDS CMD...: true once CMD succeeds
	local end=$((SECONDS + $1))
	shift
	while [ "$SECONDS" -le "$end" ]; do
		"$@" && return 0
		sleep 0.05
	done
	return 1
}
ps_at() { [ "$(ps_version)" = "$1" ]; }
all_serve() { # all_serve VERSION: every inferer serves it
	local n
	for n in $INFERERS; do [ "$(info_version "$n")" = "$1" ] || return 1; done
}
finetuning() { [ "$(metric "$P_T0" psfleet_trainer_finetuning)" = 1 ]; }

"$PSFLEET" data gen --symbols 20 --days 150 --seed 5 --out "$W/data.csv" >/dev/null || exit 1
cat >"$W/fleet.yaml" <<EOF
name: finetune-test
seed: 42
run_dir: $W/run
nodes:
  ps:
    - {id: ps0, listen: "$(url ps0)", metrics: "127.0.0.1:$P_PS"}
  trainers:
    - {id: trainer-0, metrics: "127.0.0.1:$P_T0"}
    - {id: trainer-1}
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
training: {epochs: 2, batch_size: 64, finetune: {steps: 5, batch_size: 16, poll_ms: 50}}
consistency: {mode: sync, straggler_timeout_ms: 5000, heartbeat_ms: 200}
durability: {mode: none, map_size: 67108864}
limits: {request_timeout_ms: 5000, rpc_workers: 16}
inference: {refresh_ms: 100, history_days: 32, shards: 2}
gateway_options: {route: symbol, health_interval_ms: 100}
EOF

# 1. train (sync, two trainers): trainer-1 exits, trainer-0 stays to fine-tune
start ps0
start trainer-0
"$PSFLEET" node "$W/fleet.yaml" --id trainer-1 >"$W/trainer-1.log" 2>&1 ||
	fail "trainer-1 failed: $(tail -3 "$W/trainer-1.log")"
wait_until 60 finetuning || fail "trainer-0 never reported fine-tuning"
kill -0 "${PID[trainer-0]}" 2>/dev/null || fail "trainer-0 exited after training"
for n in $INFERERS gateway; do start "$n"; done
v0=$(ps_version)
[ -n "$v0" ] && [ "$v0" -gt 0 ] || fail "no model version after training: '$v0'"
wait_until 30 all_serve "$v0" || fail "inferers never served version $v0"
sleep 0.3 # the gateway's health probes see the inferers
say "trained: model version $v0"

# 2. one day's rows through the gateway: one round of 5 steps
last_close() { awk -F, -v s="$1" '$2 == s { c = $6 } END { print c }' "$W/data.csv"; }
{
	echo "date,symbol,close,open,high,low,volume"
	for s in S0000 S0001 S0002 S0003 S0004 S0005; do
		c=$(last_close "$s")
		awk -v s="$s" -v c="$c" 'BEGIN { printf "2025-01-01,%s,%.4f,%.4f,%.4f,%.4f,1000\n", s, c * 1.03, c, c * 1.04, c * 0.99 }'
	done
} >"$W/day1.csv"
# the prediction of S0001 with the new bar and the trained weights (version v0)
read -r _ _ cl op hi lo vo <<<"$(grep ',S0001,' "$W/day1.csv" | tr ',' ' ')"
with_bar=$("$PROBE" "$GW" S0001 2025-01-01 "$cl" "$op" "$hi" "$lo" "$vo") ||
	fail "probe with recent: $with_bar"
[[ "$with_bar" == "2025-01-01 "*" $v0" ]] || fail "with the bar as recent: $with_bar"
out=$("$PSFLEET" ingest "$W/fleet.yaml" "$W/day1.csv" --connect "$GW" 2>&1) ||
	fail "ingest day1: $out"
[[ "$out" == *"fine-tuning: 6 new rows for the fine-tuner; model version $v0 moves on by 5 steps per round"* ]] ||
	fail "ingest day1 output: $out"
got=$("$PROBE" "$GW" S0001) # at once: the new bar (weights v0, or already v0 + 5)
[[ "$got" == "2025-01-01 "* ]] || fail "new bar not served at once: $got"
# The rows reach ps0 from each shard's inferers; the fine-tuner waits for their
# count to settle, so a day is one round, unless a shard's rows come later than
# one poll (then two rounds): every round is 5 steps, every row in one round.
trained6() { [ "$(metric "$P_T0" psfleet_trainer_finetune_rows_total)" = 6 ]; }
wait_until 20 trained6 || fail "day1: the 6 rows were not fine-tuned on"
sleep 0.3
k=$(metric "$P_T0" psfleet_trainer_finetune_round)
[ -n "$k" ] && [ "$k" -ge 1 ] && [ "$k" -le 2 ] || fail "day1: rounds '$k'"
v1=$((v0 + 5 * k))
[ "$(ps_version)" = "$v1" ] || fail "ps version after day1 ($k rounds): want $v1, got $(ps_version)"
[ "$(metric "$P_T0" psfleet_trainer_finetune_steps_total)" = $((5 * k)) ] ||
	fail "trainer-0 fine-tuning steps: want $((5 * k))"
wait_until 20 all_serve "$v1" || fail "inferers after day1: want $v1"
after=$("$PROBE" "$GW" S0001) || fail "probe after: $after"
[[ "$after" == "2025-01-01 "* ]] || fail "after fine-tuning: $after"
[ "${after#* }" != "${with_bar#* }" ] ||
	fail "fine-tuned prediction did not change: $with_bar -> $after"
for n in inferer-0 inferer-2; do # both replicas of shard 0 serve the same new prediction
	got=$("$PROBE" "$(url "$n")" S0001 2>&1)
	[[ "$got" == *"belongs to inference shard"* ]] && continue
	[ "$got" = "$after" ] || fail "$n S0001: want '$after', got '$got'"
done
[ "$(metric "$P_PS" psfleet_ps_finetune_rows_total)" = 6 ] ||
	fail "ps0 fine-tuning rows: want 6, got $(metric "$P_PS" psfleet_ps_finetune_rows_total)"
say "day1: version $v0 -> $v1 ($k round), S0001 ${with_bar#* } -> ${after#* }"

# 3. duplicate, older and bad rows: per-row errors, no round
c1=$(sed -n 3p "$W/day1.csv")
{
	echo "date,symbol,close,open,high,low,volume"
	echo "$c1"
	echo "2024-06-01,S0002,10,10,11,9,100"
	echo "2025-01-02,S0003,nan,1,1,1,1"
} >"$W/bad.csv"
out=$("$PSFLEET" ingest "$W/fleet.yaml" "$W/bad.csv" --connect "$GW" 2>&1)
rc=$?
[ "$rc" -eq 1 ] || fail "bad rows: want exit 1, got $rc: $out"
grep -qF "bad.csv:2: ALREADY_EXISTS" <<<"$out" || fail "duplicate row: $out"
grep -qF "bad.csv:3: FAILED_PRECONDITION" <<<"$out" || fail "older row: $out"
grep -qF "bad.csv:4: INVALID_ARGUMENT" <<<"$out" || fail "bad row: $out"
sleep 0.5
[ "$(ps_version)" = "$v1" ] || fail "refused rows moved the version: $(ps_version)"
[ "$(metric "$P_PS" psfleet_ps_finetune_rows_total)" = 6 ] || fail "refused rows reached ps0"
got=$("$PROBE" "$GW" S0001)
[ "$got" = "$after" ] || fail "refused rows changed S0001: $got"

# 4. trainer-0 dies in the middle of the next round and is restarted: the round
# is done once. The day's rows are those of shard 0 (both of its replicas send
# them; ps0 keeps one copy): one round.
r1=$(metric "$P_T0" psfleet_trainer_finetune_round)
clock=$(metric "$P_T0" psfleet_trainer_step)
stop trainer-0
start trainer-0 --exit-at-step $((clock + 3))
wait_until 60 finetuning || fail "trainer-0 did not come back to fine-tuning"
{
	head -1 "$W/day1.csv"
	tail -n +2 "$W/day1.csv" | while IFS=, read -r _ s rest; do
		"$PROBE" "$(url inferer-0)" "$s" >/dev/null 2>&1 && echo "2025-01-02,$s,$rest"
	done
} >"$W/day2.csv"
[ "$(wc -l <"$W/day2.csv")" -ge 2 ] || fail "no symbol of shard 0 in day1: $(cat "$W/day2.csv")"
out=$("$PSFLEET" ingest "$W/fleet.yaml" "$W/day2.csv" --connect "$GW" 2>&1) ||
	fail "ingest day2: $out"
wait "${PID[trainer-0]}"
rc=$?
untrack "${PID[trainer-0]}"
unset "PID[trainer-0]"
[ "$rc" -eq 3 ] || fail "trainer-0 with --exit-at-step: want exit 3, got $rc"
mid=$(ps_version)
[ "$mid" = $((v1 + 3)) ] || fail "killed after 3 steps of round 2: want $((v1 + 3)), got $mid"
start trainer-0
v2=$((v1 + 5))
wait_until 60 ps_at "$v2" || fail "round 2 after the restart: want $v2, got $(ps_version)"
grep -q "fine-tuning round $((r1 + 1)) resumes at step 3 of 5" "$W/trainer-0.log" ||
	fail "trainer-0 did not resume round $((r1 + 1)) at step 3"
wait_until 20 all_serve "$v2" || fail "inferers after day2: want $v2"
sleep 0.5
[ "$(ps_version)" = "$v2" ] || fail "round 2 applied more than 5 steps: $(ps_version)"
say "day2 with trainer-0 killed mid-round: $v1 -> $mid -> $v2"

# 5. an inferer restarted resends its journal: ps0 keeps each row once
stop inferer-0
start inferer-0
wait_until 30 all_serve "$v2" || fail "inferer-0 after restart"
wait_until 10 grep -q "replayed" "$W/inferer-0.log" || fail "inferer-0 did not replay"
sleep 1
n2=$((6 + $(wc -l <"$W/day2.csv") - 1))
[ "$(metric "$P_PS" psfleet_ps_finetune_rows_total)" = "$n2" ] ||
	fail "ps0 rows after the replay: want $n2, got $(metric "$P_PS" psfleet_ps_finetune_rows_total)"
[ "$(ps_version)" = "$v2" ] || fail "a replayed journal started a round: $(ps_version)"

# 5b. an inferer killed (SIGKILL) while ps0 is down, so its rows never left
# it, sends them from its journal when it restarts: one round, every row once
sed 's/2025-01-02/2025-01-03/' "$W/day2.csv" >"$W/day3.csv"
m=$(($(wc -l <"$W/day3.csv") - 1))
stop ps0
out=$("$PSFLEET" ingest "$W/fleet.yaml" "$W/day3.csv" --connect "$(url inferer-0)" 2>&1) ||
	fail "ingest day3 with ps0 down: $out"
kill -KILL "${PID[inferer-0]}"
wait "${PID[inferer-0]}" 2>/dev/null
untrack "${PID[inferer-0]}"
start ps0
up_again() { [ -n "$(ps_version)" ]; }
wait_until 30 up_again || fail "ps0 did not come back"
sleep 0.5
[ "$(metric "$P_PS" psfleet_ps_finetune_rows_total)" = 0 ] &&
	[ "$(ps_version)" = "$v2" ] || fail "ps0 after its restart: version $(ps_version)"
start inferer-0
n3=$((n2 + m))
sent_all() { # ps0 has every row (its counter restarted at 0: ask FineTune's total)
	[ "$(grep -c "stored $m fine-tuning rows" "$W/ps0.log")" -ge 1 ]
}
wait_until 30 sent_all || fail "day3 rows never reached ps0: $(grep 'fine-tuning rows' "$W/ps0.log" | tail -3)"
v3=$((v2 + 5))
wait_until 30 ps_at "$v3" || fail "day3: want version $v3, got $(ps_version)"
sleep 0.5
[ "$(ps_version)" = "$v3" ] || fail "day3: more than one round: $(ps_version)"
grep -q "stored $m fine-tuning rows ([0-9]* already stored), $n3 in all" "$W/ps0.log" ||
	fail "ps0 does not hold $n3 rows: $(grep 'fine-tuning rows' "$W/ps0.log" | tail -3)"
say "day3 through a killed inferer: $m rows from its journal, version $v2 -> $v3"

# 6. steps 0 (psfleet up --train-only): trainer-0 exits after training
stop trainer-0
timeout 60 "$PSFLEET" node "$W/fleet.yaml" --id trainer-0 --set training.finetune.steps=0 \
	>>"$W/trainer-0.log" 2>&1 || fail "trainer-0 with steps=0 did not exit 0"

# 7. the exact solver refuses fine-tuning with a clear error
sed 's/kind: adam, learning_rate: 0.01/kind: exact/' "$W/fleet.yaml" >"$W/exact.yaml"
out=$("$PSFLEET" node "$W/exact.yaml" --id trainer-0 2>&1)
[ $? -ne 0 ] && [[ "$out" == *"training.finetune needs a gradient optimizer"* ]] ||
	fail "exact + finetune: $out"

for n in gateway $INFERERS ps0; do stop "$n"; done

# 8. a gru (window 4, symbol embedding) in async mode: a round of 3 steps, and a
# new symbol's bar (no full window before it) makes no fine-tuning row
R=$W/rnn
mkdir -p "$R"
cat >"$R/f.yaml" <<EOF
name: finetune-rnn
seed: 42
run_dir: $R/run
nodes:
  ps:
    - {id: ps0, listen: "ipc://$R/ps0.sock", metrics: "127.0.0.1:$P_PS"}
  trainers:
    - {id: trainer-0, metrics: "127.0.0.1:$P_T0"}
  inferers:
    - {id: inferer-0, listen: "ipc://$R/inferer-0.sock", shard: 0}
data: {path: $W/data.csv, test_fraction: 0.2}
features: ["return:1", "return:2", "range"]
target: next_return
model: {kind: gru, hidden: [8], window: 4, embedding_dim: 2}
optimizer: {kind: adam, learning_rate: 0.01}
training: {epochs: 1, batch_size: 32, finetune: {steps: 3, poll_ms: 20}}
consistency: {mode: async, heartbeat_ms: 200}
durability: {mode: none}
inference: {refresh_ms: 100, history_days: 32, shards: 1}
EOF
url() { echo "ipc://$R/$1.sock"; }
for n in ps0 trainer-0 inferer-0; do
	"$PSFLEET" node "$R/f.yaml" --id "$n" >>"$R/$n.log" 2>&1 &
	PID[$n]=$!
	STARTED+=($!)
done
INFERERS=inferer-0
wait_until 120 finetuning || fail "gru: trainer-0 never fine-tuned"
r0=$(ps_version)
wait_until 30 all_serve "$r0" || fail "gru: inferer never served $r0"
c7=$(last_close S0007)
b=$("$PROBE" "$(url inferer-0)" S0007 2025-01-01 "$c7" 1 2 0.5 100) || fail "gru probe: $b"
{
	echo "date,symbol,close,open,high,low,volume"
	echo "2025-01-01,S0007,$c7,1,2,0.5,100"
	echo "2025-01-01,NEWCO,10,10,11,9,100"
} >"$R/day.csv"
out=$("$PSFLEET" ingest "$R/f.yaml" "$R/day.csv" --json 2>&1) || fail "gru ingest: $out"
[[ "$out" == *'"finetune_steps": 3, "finetune_rows": 1,'* ]] || fail "gru ingest: $out"
wait_until 20 ps_at $((r0 + 3)) || fail "gru: want version $((r0 + 3)), got $(ps_version)"
wait_until 20 all_serve $((r0 + 3)) || fail "gru: inferer never served $((r0 + 3))"
a=$("$PROBE" "$(url inferer-0)" S0007) || fail "gru probe after: $a"
[[ "$a" == "2025-01-01 "* ]] && [ "${a#* }" != "${b#* }" ] || fail "gru: $b -> $a"
say "gru: version $r0 -> $((r0 + 3)), S0007 ${b#* } -> ${a#* }"
for n in inferer-0 trainer-0 ps0; do stop "$n"; done
if [ "$FAILS" -gt 0 ]; then
	say "$FAILS failure(s)"
	exit 1
fi
say "all passed"
