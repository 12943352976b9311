#!/usr/bin/env bash
# up_test.sh -- `psfleet up` as a new user meets it, with real processes on
# 127.0.0.1 / ipc:
#   1. a fleet of more than 64 trainers trains to the end (it overflowed a
#      64-slot array), and the config refuses more trainers than a ps serves;
#   2. bad data (a bad row, a header-only CSV, a directory that is no data) and
#      an absurd learning rate are refused before any node starts: exit 2, one
#      line naming the problem;
#   3. a node failing on its input (a diverging trainer) is not restarted, and
#      `up` quotes its error line (exit 2);
#   4. a re-run resumes only with the same training settings: unchanged, it
#      reports the stored results (not zeros); changed, the ps refuses before
#      training, naming the changed keys, and is not restarted; --fresh trains
#      afresh.
#
# Env: PSFLEET = the psfleet binary (set by ctest). Every case has its own temp
# dir and ipc:// listen URLs (no metrics ports), so parallel runs do not
# collide. Every process started here is killed by PID at exit.
set -u

PSFLEET=${PSFLEET:?set PSFLEET to the psfleet binary}
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init up_test psf-up # W: this run's temp dir; STARTED: PIDs killed at exit

# write_cfg FILE DIR N_TRAINERS DATA MODE [KEY: VALUE lines for optimizer/training...]
# A one-ps fleet on ipc, small linear model; DATA is the data path (a
# data.generate section is added when it does not exist yet).
write_cfg() {
	local file=$1 dir=$2 ntr=$3 data=$4 mode=$5 i
	{
		echo "name: ut"
		echo "seed: 42"
		echo "run_dir: $dir/run"
		echo "log_level: info"
		echo "nodes:"
		echo "  ps:"
		echo "    - {id: ps0, listen: \"ipc://$dir/ps0.ipc\"}"
		echo "  trainers:"
		for ((i = 0; i < ntr; i++)); do
			echo "    - {id: trainer-$i}"
		done
		echo "data:"
		echo "  path: $data"
		[ -e "$data" ] || echo "  generate: {symbols: 30, days: 80, seed: 7}"
		echo "  test_fraction: 0.2"
		echo 'features: ["return:1", "return:2", "range"]'
		echo "target: next_return"
		echo "model: {kind: linear}"
		echo "optimizer: {kind: adam, learning_rate: 0.01}"
		echo "training: {epochs: 2, batch_size: 16}"
		echo "consistency: {mode: $mode, straggler_timeout_ms: 20000, heartbeat_ms: 1000}"
		echo "durability: {mode: none}"
		echo "limits: {request_timeout_ms: 20000, rpc_workers: 96}"
	} >"$file"
}

# run_up OUT ERR ARGS...: psfleet up in the foreground under a hard timeout;
# sets RC and tracks the node PIDs it printed.
run_up() {
	local out=$1 err=$2 p
	shift 2
	timeout -s TERM "${UP_TIMEOUT:-300}" "$PSFLEET" up "$@" >"$out" 2>"$err"
	RC=$?
	for p in $(node_pids "$out"); do
		STARTED+=("$p")
	done
}

json_num() { # json_num FILE KEY: the first number after "KEY":
	grep -Eo "\"$2\": [-0-9.eE+]+" "$1" | head -1 | awk '{print $2}'
}

starts_in() { # starts_in LOG: how many times the launcher started the node
	grep -c "^---- .* psfleet up: \(re\)\?starting" "$1" 2>/dev/null
}

# ---------------------------------------------------------------- 1. fleet size

test_many_trainers() {
	local dir="$W/many" n=70 done_n
	mkdir -p "$dir"
	# async: no sync rounds to wait for; 30 symbols over 70 trainers leaves
	# most trainers without rows, which must not hang them either.
	write_cfg "$dir/f.yaml" "$dir" $n "$dir/data.csv" async
	sed -i 's/training: {epochs: 2, batch_size: 16}/training: {epochs: 1, batch_size: 16, max_steps: 3}/' "$dir/f.yaml"
	run_up "$dir/out" "$dir/err" "$dir/f.yaml" --train-only --metrics-out "$dir/m.json"
	[ "$RC" -eq 0 ] || fail "many: exit $RC: $(tail -3 "$dir/err") $(tail -3 "$dir/out" | cut -c1-300)"
	done_n=$(grep -Eo "trainer-[0-9]+ \(done\)" "$dir/out" | sort -u | wc -l)
	[ "$done_n" -eq $n ] || fail "many: $done_n of $n trainers done"
	[ "$(json_num "$dir/m.json" n_trainers)" = "$n" ] || fail "many: m.json: $(head -c 600 "$dir/m.json")"
	[ "$(grep -c '"finished": true' "$dir/m.json")" -eq $n ] || fail "many: not every trainer reported finished"
	say "many: $n trainers trained and reported (exit $RC)"

	# More trainers than a ps serves: refused at load time, at the first one too many.
	write_cfg "$dir/big.yaml" "$dir/big" 251 "$dir/data.csv" async
	run_up "$dir/big.out" "$dir/big.err" "$dir/big.yaml" --train-only
	[ "$RC" -eq 2 ] || fail "too many: exit $RC, want 2"
	grep -Eq "^psfleet up: .*big\.yaml:259: too many trainers: 251 \(a ps node serves at most 250\)$" \
		"$dir/big.err" || fail "too many: $(cat "$dir/big.err")"
	[ ! -e "$dir/big/run" ] || fail "too many: the run dir was created"
	say "too many trainers: $(cat "$dir/big.err")"
}

# ---------------------------------------------------------------- 2. bad input

# case_bad NAME REGEX ARGS...: psfleet up on this config must exit 2 with one
# line matching REGEX, start no node and create no run dir.
case_bad() {
	local name=$1 want=$2 dir="$W/bad-$1"
	run_up "$dir/out" "$dir/err" "$dir/f.yaml" --train-only
	[ "$RC" -eq 2 ] || fail "bad $name: exit $RC, want 2: $(cat "$dir/err")"
	[ "$(wc -l <"$dir/err")" -eq 1 ] || fail "bad $name: want one line: $(cat "$dir/err")"
	grep -Eq "$want" "$dir/err" || fail "bad $name: '$(cat "$dir/err")' does not match /$want/"
	[ ! -e "$dir/run" ] || fail "bad $name: the run dir was created (nodes started)"
	[ -z "$(node_pids "$dir/out")" ] || fail "bad $name: nodes were started"
	say "bad $name: $(cat "$dir/err")"
}

test_bad_input() {
	local good="$W/good.csv" d
	"$PSFLEET" data gen --symbols 10 --days 60 --seed 3 --out "$good" >/dev/null ||
		fail "data gen failed"
	for d in row header dir lr; do
		mkdir -p "$W/bad-$d"
	done
	{ head -20 "$good"; echo "2020-13-45,S0001,1,1,1,1,1"; tail -n +21 "$good"; } >"$W/bad-row/data.csv"
	head -1 "$good" >"$W/bad-header/data.csv"
	write_cfg "$W/bad-row/f.yaml" "$W/bad-row" 2 "$W/bad-row/data.csv" sync
	write_cfg "$W/bad-header/f.yaml" "$W/bad-header" 2 "$W/bad-header/data.csv" sync
	write_cfg "$W/bad-dir/f.yaml" "$W/bad-dir" 2 /etc sync
	write_cfg "$W/bad-lr/f.yaml" "$W/bad-lr" 2 "$good" sync
	sed -i 's/learning_rate: 0.01/learning_rate: 1e30/' "$W/bad-lr/f.yaml"
	case_bad row "^psfleet up: .*f\.yaml: bad data: .*/bad-row/data\.csv:21: date '2020-13-45' is not a valid"
	case_bad header "^psfleet up: .*f\.yaml: bad data: .*/bad-header/data\.csv has no data rows"
	case_bad dir "^psfleet up: .*f\.yaml: bad data: /etc: "
	case_bad lr "^psfleet up: .*f\.yaml:[0-9]+: 'learning_rate' must be a number in \(0, 10\]$"
}

# ---------------------------------------------------------------- 3. no restart on input errors

test_diverging_trainer() {
	local dir="$W/diverge" n
	mkdir -p "$dir"
	"$PSFLEET" data gen --symbols 10 --days 60 --seed 3 --out "$dir/data.csv" >/dev/null
	write_cfg "$dir/f.yaml" "$dir" 2 "$dir/data.csv" sync
	# plain SGD at rate 10 on raw prices: the loss overflows within a few dozen steps
	sed -i -e 's/kind: adam, learning_rate: 0.01/kind: sgd, learning_rate: 10/' \
		-e 's/target: next_return/target: next_close/' "$dir/f.yaml"
	run_up "$dir/out" "$dir/err" "$dir/f.yaml" --train-only
	[ "$RC" -eq 2 ] || fail "diverge: exit $RC, want 2: $(cat "$dir/err")"
	grep -Eq "^psfleet up: trainer-[01] failed on its input or config \(exit 2, not restarted\): trainer: training diverged at step [0-9]+: the loss is (-?inf|-?nan)" \
		"$dir/err" || fail "diverge: $(cat "$dir/err")"
	! grep -q "restarting in" "$dir/out" || fail "diverge: a node was restarted: $(grep "restarting in" "$dir/out")"
	for n in 0 1; do
		[ "$(starts_in "$dir/run/logs/trainer-$n.log")" -le 1 ] || fail "diverge: trainer-$n started again"
	done
	say "diverging trainer: $(cat "$dir/err")"
}

# `psfleet node` exit codes: 2 for what a restart cannot fix.
test_node_exit_codes() {
	local dir="$W/node" rc
	mkdir -p "$dir"
	write_cfg "$dir/f.yaml" "$dir" 1 "$W/good.csv" sync
	"$PSFLEET" node "$dir/f.yaml" --id nobody >/dev/null 2>&1
	rc=$?
	[ "$rc" -eq 2 ] || fail "node: unknown id: exit $rc, want 2"
	"$PSFLEET" node "$dir/f.yaml" --id ps0 --reset --fresh >/dev/null 2>&1
	rc=$?
	[ "$rc" -eq 2 ] || fail "node: --reset --fresh: exit $rc, want 2"
	echo "bogus: [" >>"$dir/f.yaml"
	"$PSFLEET" node "$dir/f.yaml" --id ps0 >/dev/null 2>&1
	rc=$?
	[ "$rc" -eq 2 ] || fail "node: broken config: exit $rc, want 2"
	say "node: exit 2 for an unknown id, conflicting flags and a broken config"
}

# ---------------------------------------------------------------- 4. resume

test_resume_settings() {
	local dir="$W/resume" loss1 loss2 sps2
	mkdir -p "$dir"
	"$PSFLEET" data gen --symbols 10 --days 60 --seed 3 --out "$dir/data.csv" >/dev/null
	write_cfg "$dir/f.yaml" "$dir" 2 "$dir/data.csv" sync
	run_up "$dir/out1" "$dir/err1" "$dir/f.yaml" --train-only --metrics-out "$dir/m1.json"
	[ "$RC" -eq 0 ] || fail "resume: first run: exit $RC: $(cat "$dir/err1")"
	grep -q '"already_trained": false' "$dir/m1.json" || fail "resume: first run counts as already trained"

	# The same settings again: resumed, nothing to train, the stored results.
	run_up "$dir/out2" "$dir/err2" "$dir/f.yaml" --train-only --metrics-out "$dir/m2.json"
	[ "$RC" -eq 0 ] || fail "resume: second run: exit $RC: $(cat "$dir/err2")"
	grep -q "training was already complete" "$dir/out2" || fail "resume: no note that training was complete"
	grep -q '"already_trained": true' "$dir/m2.json" || fail "resume: m2.json: already_trained is not true"
	loss1=$(json_num "$dir/m1.json" train_loss)
	loss2=$(json_num "$dir/m2.json" train_loss)
	sps2=$(grep -Eo '"samples_per_sec": [-0-9.eE+]+' "$dir/m2.json" | head -1 | awk '{print $2}')
	[ "$loss1" = "$loss2" ] || fail "resume: train_loss $loss2 is not the stored $loss1"
	awk -v a="$loss2" -v b="$sps2" 'BEGIN { exit !(a > 0 && b > 0) }' ||
		fail "resume: zeros reported as results: train_loss $loss2, samples_per_sec $sps2"

	# Changed training settings: refused before training, naming the keys.
	sed -i -e 's/learning_rate: 0.01/learning_rate: 0.02/' -e 's/epochs: 2/epochs: 3/' \
		-e 's/"return:2"/"return:3"/' "$dir/f.yaml"
	run_up "$dir/out3" "$dir/err3" "$dir/f.yaml" --train-only --metrics-out "$dir/m3.json"
	[ "$RC" -eq 2 ] || fail "resume: changed settings: exit $RC, want 2: $(cat "$dir/err3")"
	[ "$(wc -l <"$dir/err3")" -eq 1 ] || fail "resume: changed settings: want one line: $(cat "$dir/err3")"
	grep -Eq "^psfleet up: ps0 failed on its input or config \(exit 2, not restarted\): ps: .* holds a model trained with other settings: features return:1,return:2,range -> return:1,return:3,range, optimizer.learning_rate 0.01 -> 0.02, training.epochs 2 -> 3; start with --fresh" \
		"$dir/err3" || fail "resume: changed settings: $(cat "$dir/err3")"
	[ "$(starts_in "$dir/run/logs/ps0.log")" -eq 3 ] || fail "resume: ps0 was restarted on refusal"
	[ ! -e "$dir/m3.json" ] || fail "resume: metrics written for a refused run"
	[ "$(starts_in "$dir/run/logs/trainer-0.log")" -eq 2 ] || fail "resume: trainers were started after the refusal"

	# --fresh: trains afresh with the new settings.
	run_up "$dir/out4" "$dir/err4" "$dir/f.yaml" --train-only --fresh --metrics-out "$dir/m4.json"
	[ "$RC" -eq 0 ] || fail "resume: --fresh: exit $RC: $(cat "$dir/err4")"
	grep -q '"already_trained": false' "$dir/m4.json" || fail "resume: --fresh did not train afresh"
	grep -q "\-\-fresh: discarding" "$dir/run/logs/ps0.log" || fail "resume: ps0 did not discard its store"
	grep -Eq '"epoch": 3, ' "$dir/m4.json" || fail "resume: --fresh run did not train 3 epochs"
	say "resume: same settings reuse the stored results; changed ones are refused: $(cut -c1-200 "$dir/err3")..."
}

test_many_trainers
test_bad_input
test_diverging_trainer
test_node_exit_codes
test_resume_settings

if [ "$FAILS" -ne 0 ]; then
	say "$FAILS failure(s)"
	exit 1
fi
say "all cases passed"
