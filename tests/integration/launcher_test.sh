#!/usr/bin/env bash
# launcher_test.sh -- `psfleet up` and `psfleet status` with real processes on
# 127.0.0.1: broken configs start nothing; SIGTERM (and SIGKILL) of the launcher
# leave no node running; a SIGKILLed ps is restarted and resumes its LMDB store;
# a fleet trains to a model that beats the naive forecast, also when a trainer
# is SIGKILLed mid-run (skipped while the trainer role is not built).
#
# Env: PSFLEET = the psfleet binary (set by ctest). Every case has its own temp
# dir, ipc:// listen URLs and freshly picked metrics ports, so parallel runs do
# not collide. Every process started here is killed by PID at exit.
set -u

PSFLEET=${PSFLEET:?set PSFLEET to the psfleet binary}
SRC=${PSF_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
TINY="$SRC/examples/tiny.yaml"
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init launcher_test psf-launch # W: this run's temp dir; STARTED: PIDs killed at exit

# children_of PID: PIDs whose parent is PID (from /proc; no procps needed).
children_of() {
	local f line pid ppid
	for f in /proc/[0-9]*/stat; do
		line=$(cat "$f" 2>/dev/null) || continue
		pid=${line%% *}
		read -r _ ppid _ <<<"${line##*) }"
		[ "$ppid" = "$1" ] && echo "$pid"
	done
}

# write_cfg FILE DIR N_PS N_TRAINERS EPOCHS [serving]: examples/tiny.yaml's
# model and data under DIR, with its own nodes: ipc listen URLs, free metrics
# ports; with "serving", an inferer and a gateway.
write_cfg() {
	local file=$1 dir=$2 nps=$3 ntr=$4 epochs=$5 serving=${6:-}
	local ports k=0
	read -r -a ports <<<"$(free_ports $((nps + ntr + 2)))"
	{
		echo "name: lt"
		echo "seed: 42"
		echo "run_dir: $dir/run"
		echo "log_level: info"
		yaml_ps_trainers "$dir" "$nps" "$ntr" "${ports[@]}"
		k=$((nps + ntr))
		if [ -n "$serving" ]; then
			echo "  inferers:"
			echo "    - {id: inferer-0, listen: \"ipc://$dir/inferer-0.ipc\", metrics: \"127.0.0.1:${ports[k]}\"}"
			echo "  gateway: {id: gateway, listen: \"ipc://$dir/gateway.ipc\", metrics: \"127.0.0.1:${ports[k + 1]}\"}"
		fi
		# data, features, model and training as in examples/tiny.yaml
		sed -n '/^data:/,$p' "$TINY" | sed -e "s|path: data/tiny.csv|path: $dir/data/tiny.csv|" \
			-e "s/epochs: [0-9]*/epochs: $epochs/"
	} >"$file"
}

# assert_gone PIDS...: none of these node processes may still run.
assert_gone() {
	local p deadline
	for p in "$@"; do
		deadline=$((SECONDS + 15))
		while [ -r "/proc/$p/cmdline" ] && tr '\0' ' ' <"/proc/$p/cmdline" | grep -q " node " &&
			[ $SECONDS -lt "$deadline" ]; do
			sleep 0.1
		done
		if [ -r "/proc/$p/cmdline" ] && tr '\0' ' ' <"/proc/$p/cmdline" | grep -q " node "; then
			fail "node pid $p is still running"
			kill -KILL "$p" 2>/dev/null
		fi
	done
}

# track FILE: remember node PIDs from a launcher's output for cleanup.
track() {
	local p
	for p in $(node_pids "$1"); do
		STARTED+=("$p")
	done
}

# built_or_skip CFG WHAT ID...: true when the role of every ID is built; else
# says "SKIP WHAT" (`psfleet node` said the role is not built yet) and is false.
built_or_skip() {
	local cfg=$1 what=$2 id
	shift 2
	for id in "$@"; do
		if timeout 3 "$PSFLEET" node "$cfg" --id "$id" 2>&1 | grep -q "not built yet"; then
			say "SKIP $what: the role of $id is not built yet"
			return 1
		fi
	done
}

# ---------------------------------------------------------------- 1. broken configs

case_broken() { # case_broken NAME EXPECTED-REGEX EDIT...: one broken config
	local name=$1 want=$2 dir="$W/broken-$1" out err rc lines
	shift 2
	mkdir -p "$dir"
	write_cfg "$dir/base.yaml" "$dir" 1 2 2
	"$@" "$dir/base.yaml" >"$dir/$name.yaml"
	(cd "$dir" && "$PSFLEET" up "$name.yaml" >stdout 2>stderr)
	rc=$?
	err=$(cat "$dir/stderr")
	lines=$(wc -l <"$dir/stderr")
	[ "$rc" -eq 2 ] || fail "broken $name: exit $rc, want 2 ($err)"
	[ "$lines" -eq 1 ] || fail "broken $name: $lines lines on stderr, want 1: $err"
	grep -Eq "$want" <<<"$err" || fail "broken $name: '$err' does not match /$want/"
	[ ! -e "$dir/run" ] || fail "broken $name: the run dir was created"
	[ ! -s "$dir/stdout" ] || fail "broken $name: printed $(cat "$dir/stdout")"
	if [ -n "$(procs_with "$dir/$name.yaml")" ]; then
		fail "broken $name: a process of this config is running"
	fi
	say "broken $name: $err"
}

ed_unknown_key() { sed 's/^seed: 42$/seed: 42\nbogus_key: 1/' "$1"; }
ed_wrong_type() { sed 's/epochs: 2,/epochs: two,/' "$1"; }
ed_duplicate_id() { sed 's/id: trainer-1,/id: trainer-0,/' "$1"; }
ed_port_clash() { # trainer-1's metrics port := trainer-0's
	local p0
	p0=$(grep -Eo 'trainer-0, metrics: "127.0.0.1:[0-9]+' "$1" | grep -Eo '[0-9]+$')
	sed -E "s/(trainer-1, metrics: \"127.0.0.1:)[0-9]+/\1$p0/" "$1"
}
ed_missing_data() { sed -e '/generate:/d' -e 's|path: .*/data/tiny.csv|path: no/such/file.csv|' "$1"; }

test_broken_configs() {
	case_broken unknown_key "^psfleet up: unknown_key\.yaml:[0-9]+: unknown key 'bogus_key'" ed_unknown_key
	case_broken wrong_type "^psfleet up: wrong_type\.yaml:[0-9]+: 'epochs' must be" ed_wrong_type
	case_broken duplicate_id "^psfleet up: duplicate_id\.yaml:[0-9]+: duplicate node id 'trainer-0'" ed_duplicate_id
	case_broken port_clash "^psfleet up: port_clash\.yaml:[0-9]+: port clash" ed_port_clash
	case_broken missing_data "^psfleet up: missing_data\.yaml: data file 'no/such/file.csv' does not exist" ed_missing_data

	# A port another process listens on: the error names the node.
	local dir="$W/broken-in-use" port holder rc
	mkdir -p "$dir"
	write_cfg "$dir/in_use.yaml" "$dir" 1 1 2
	port=$(grep -Eo 'ps0, listen: "[^"]*", metrics: "127.0.0.1:[0-9]+' "$dir/in_use.yaml" | grep -Eo '[0-9]+$')
	# the holder: a ps node of another fleet, with its metrics on that port (its
	# other ports drawn again until none is that one: they are random)
	while :; do
		write_cfg "$dir/holder.yaml" "$dir/holder" 1 1 2
		grep -q "127.0.0.1:$port\"" "$dir/holder.yaml" || break
	done
	sed -i -E "s/(ps0, listen: \"[^\"]*\", metrics: \"127.0.0.1:)[0-9]+/\1$port/" "$dir/holder.yaml"
	mkdir -p "$dir/holder"
	PSF_LOG_LEVEL=info "$PSFLEET" node "$dir/holder.yaml" --id ps0 >"$dir/holder.log" 2>&1 &
	holder=$!
	STARTED+=("$holder")
	if ! wait_for "$dir/holder.log" "serving /metrics and /healthz on port $port" 30; then
		# without the holder `up` would start a serving fleet and never return
		fail "in_use: the holder did not listen: $(cat "$dir/holder.log")"
		return
	fi
	(cd "$dir" && timeout -s TERM 120 "$PSFLEET" up in_use.yaml >stdout 2>stderr)
	rc=$?
	{ kill -KILL "$holder" && wait "$holder"; } 2>/dev/null
	[ "$rc" -eq 2 ] || fail "in_use: exit $rc, want 2"
	[ "$(wc -l <"$dir/stderr")" -eq 1 ] || fail "in_use: want one line: $(cat "$dir/stderr")"
	grep -Eq "node 'ps0' metrics 127\.0\.0\.1:$port: port $port is already in use" "$dir/stderr" ||
		fail "in_use: $(cat "$dir/stderr")"
	[ ! -e "$dir/run" ] || fail "in_use: the run dir was created"
	say "broken in_use: $(cat "$dir/stderr")"
}

# ---------------------------------------------------------------- 2. stop

test_sigterm_ps_only() {
	local dir="$W/sigterm" pids
	mkdir -p "$dir"
	write_cfg "$dir/f.yaml" "$dir" 2 1 2
	start_up "$dir/up.out" "$dir/f.yaml" --only ps
	wait_for "$dir/up.out" "ps1 ready" 60 || fail "sigterm: ps nodes not ready: $(cat "$dir/up.out")"
	track "$dir/up.out"
	pids=$(node_pids "$dir/up.out")
	[ "$(wc -w <<<"$pids")" -eq 2 ] || fail "sigterm: want 2 node pids, got '$pids'"
	grep -q "generating $dir/data/tiny.csv" "$dir/up.out" || fail "sigterm: data was not generated"
	[ -s "$dir/data/tiny.csv" ] || fail "sigterm: no data file"
	for p in $pids; do
		kill -0 "$p" 2>/dev/null || fail "sigterm: node pid $p is not running"
	done
	"$PSFLEET" status "$dir/f.yaml" --json >"$dir/status.json"
	[ $? -eq 1 ] || fail "sigterm: status should exit 1 (the trainer is not running)"
	grep -Eq '"id": "ps0", .*"health": "ready"' "$dir/status.json" || fail "sigterm: status: $(cat "$dir/status.json")"
	grep -Eq '"id": "ps1", .*"health": "ready"' "$dir/status.json" || fail "sigterm: status ps1"
	kill -TERM "$UP_PID"
	wait_exit "$UP_PID" 60 || fail "sigterm: psfleet up did not exit"
	[ "$RC" -eq 0 ] || fail "sigterm: exit $RC, want 0: $(cat "$dir/up.out")"
	grep -Eq "stopped: ps0 \(exit 0\), ps1 \(exit 0\)" "$dir/up.out" ||
		fail "sigterm: no exit status report: $(cat "$dir/up.out")"
	assert_gone $pids
	[ -s "$dir/run/logs/ps0.log" ] && grep -q "^---- .* starting ps0" "$dir/run/logs/ps0.log" ||
		fail "sigterm: ps0.log lacks the start marker"
	say "sigterm (ps only): every node stopped, exit 0"
}

test_sigkill_launcher() {
	local dir="$W/sigkill" pids up
	mkdir -p "$dir"
	write_cfg "$dir/f.yaml" "$dir" 1 1 2
	start_up "$dir/up.out" "$dir/f.yaml" --only ps
	wait_for "$dir/up.out" "ps0 ready" 60 || fail "sigkill: ps0 not ready: $(cat "$dir/up.out")"
	track "$dir/up.out"
	pids=$(node_pids "$dir/up.out")
	up=$(children_of "$UP_PID")
	[ -n "$up" ] || fail "sigkill: cannot find psfleet up under timeout"
	kill -KILL $up
	{ wait_exit "$UP_PID" 10; } 2>/dev/null
	assert_gone $pids
	grep -q "ps: stopping" "$dir/run/logs/ps0.log" || fail "sigkill: ps0 did not stop cleanly"
	say "sigkill of the launcher: its nodes stopped too (PR_SET_PDEATHSIG)"
}

# ---------------------------------------------------------------- 3. ps crash

test_ps_restart() {
	local dir="$W/restart" pid1 pid2 ino1 ino2 i
	mkdir -p "$dir"
	write_cfg "$dir/f.yaml" "$dir" 1 1 2
	start_up "$dir/up.out" "$dir/f.yaml" --only ps
	wait_for "$dir/up.out" "ps0 ready" 60 || fail "restart: ps0 not ready: $(cat "$dir/up.out")"
	track "$dir/up.out"
	pid1=$(node_pids "$dir/up.out" | head -1)
	ino1=$(stat -c %i "$dir/run/ps0/data.mdb" 2>/dev/null)
	kill -KILL "$pid1"
	wait_for "$dir/up.out" "ps0 restarted \(pid [0-9]+" 30 || fail "restart: ps0 was not restarted: $(cat "$dir/up.out")"
	grep -q "ps0 killed by SIGKILL; restarting in" "$dir/up.out" || fail "restart: no exit report"
	track "$dir/up.out"
	pid2=$(node_pids "$dir/up.out" | tail -1)
	[ "$pid2" != "$pid1" ] || fail "restart: same pid"
	for i in $(seq 1 100); do # until the new ps0 says ready
		"$PSFLEET" status "$dir/f.yaml" --json >"$dir/status.json" 2>/dev/null
		grep -Eq '"id": "ps0", .*"health": "ready"' "$dir/status.json" && break
		sleep 0.2
	done
	grep -Eq '"id": "ps0", .*"health": "ready"' "$dir/status.json" || fail "restart: ps0 not ready again"
	grep -q "restarting ps0 (start 2, last run: killed by SIGKILL)" "$dir/run/logs/ps0.log" ||
		fail "restart: no restart marker in the log"
	grep -q "resumed shard 0/1 from $dir/run/ps0" "$dir/run/logs/ps0.log" ||
		fail "restart: ps0 did not resume its store: $(tail -5 "$dir/run/logs/ps0.log")"
	ino2=$(stat -c %i "$dir/run/ps0/data.mdb" 2>/dev/null)
	[ -n "$ino1" ] && [ "$ino1" = "$ino2" ] || fail "restart: the LMDB file was replaced"
	kill -TERM "$UP_PID"
	wait_exit "$UP_PID" 60 || fail "restart: psfleet up did not exit"
	[ "$RC" -eq 0 ] || fail "restart: exit $RC: $(cat "$dir/up.out")"
	assert_gone "$pid1" "$pid2"
	say "ps restart: SIGKILLed ps0 came back with its store"
}

# ---------------------------------------------------------------- 4. training

json_num() { # json_num FILE KEY
	grep -Eo "\"$2\": [-0-9.eE+]+" "$1" | head -1 | awk '{print $2}'
}

check_metrics() { # check_metrics FILE CASE
	local rmse naive
	[ -s "$1" ] || { fail "$2: no metrics file"; return; }
	rmse=$(json_num "$1" test_rmse)
	naive=$(json_num "$1" naive_rmse)
	for k in model_version steps train_seconds test_rmse test_mae naive_rmse; do
		grep -q "\"$k\": " "$1" || fail "$2: $k missing from $1"
	done
	grep -Eq '"mode": "[a-z]+"' "$1" || fail "$2: mode missing"
	if awk -v a="$rmse" -v b="$naive" 'BEGIN { exit !(a > 0 && b > 0 && a < b) }'; then
		say "$2: test_rmse $rmse < naive_rmse $naive"
	else
		fail "$2: test_rmse $rmse is not below naive_rmse $naive"
	fi
}

test_train() {
	local dir="$W/train" pids
	mkdir -p "$dir"
	write_cfg "$dir/f.yaml" "$dir" 1 2 6
	built_or_skip "$dir/f.yaml" "training cases" trainer-0 || return
	# --set reaches up and every node: the run (logs, ps store) moves to run-set
	start_up "$dir/up.out" "$dir/f.yaml" --train-only --metrics-out "$dir/m.json" \
		--set run_dir="$dir/run-set"
	wait_exit "$UP_PID" 290
	track "$dir/up.out"
	[ "$RC" -eq 0 ] || fail "train: exit $RC: $(tail -20 "$dir/up.out")"
	# ($dir/run itself may exist: built_or_skip ran a trainer node without --set)
	[ ! -e "$dir/run/logs" ] && [ ! -e "$dir/run/ps0" ] ||
		fail "train: --set run_dir: logs or ps0's store went to $dir/run"
	[ -s "$dir/run-set/logs/trainer-0.log" ] || fail "train: --set run_dir: no $dir/run-set/logs/trainer-0.log"
	[ -s "$dir/run-set/ps0/data.mdb" ] || fail "train: --set run_dir: ps0 did not get it (no $dir/run-set/ps0/data.mdb)"
	grep -Eq "test RMSE .* naive RMSE" "$dir/up.out" || fail "train: no result line"
	check_metrics "$dir/m.json" train
	assert_gone $(node_pids "$dir/up.out")
}

test_train_trainer_crash() {
	local dir="$W/crash" pid
	mkdir -p "$dir"
	write_cfg "$dir/f.yaml" "$dir" 1 2 600
	built_or_skip "$dir/f.yaml" "trainer crash case" trainer-0 || return
	start_up "$dir/up.out" "$dir/f.yaml" --train-only --metrics-out "$dir/m.json"
	wait_for "$dir/up.out" "trainer-0 epoch [0-9]+ step [1-9]" 120 ||
		fail "crash: trainer-0 made no progress: $(tail -5 "$dir/up.out")"
	track "$dir/up.out"
	pid=$(grep -Eo 'trainer-0 started \(pid [0-9]+' "$dir/up.out" | grep -Eo '[0-9]+$')
	kill -KILL "$pid"
	wait_for "$dir/up.out" "trainer-0 restarted" 30 || fail "crash: trainer-0 was not restarted"
	track "$dir/up.out"
	wait_exit "$UP_PID" 290
	[ "$RC" -eq 0 ] || fail "crash: exit $RC: $(tail -20 "$dir/up.out")"
	check_metrics "$dir/m.json" crash
	grep -Eq '"restarts": [1-9]' "$dir/m.json" || fail "crash: m.json counts no restart"
	grep -q "restarting trainer-0 (start 2, last run: killed by SIGKILL)" "$dir/run/logs/trainer-0.log" ||
		fail "crash: no restart marker in trainer-0.log"
	assert_gone $(node_pids "$dir/up.out")
}

# After training without --train-only the fleet keeps serving; status counts
# the finished trainers (from ps0's reports) as healthy.
test_status_after_training() {
	local dir="$W/serve" pids
	mkdir -p "$dir"
	write_cfg "$dir/f.yaml" "$dir" 1 2 6
	built_or_skip "$dir/f.yaml" "status-after-training case" trainer-0 || return
	start_up "$dir/up.out" "$dir/f.yaml"
	wait_for "$dir/up.out" "no inferers configured; serving" 240 ||
		fail "serve: not serving after training: $(tail -10 "$dir/up.out")"
	track "$dir/up.out"
	"$PSFLEET" status "$dir/f.yaml" >"$dir/status.txt"
	[ $? -eq 0 ] || fail "serve: status exit is not 0: $(cat "$dir/status.txt")"
	grep -Eq "^trainer-0 +trainer .* done " "$dir/status.txt" || fail "serve: trainer-0 not done: $(cat "$dir/status.txt")"
	grep -Eq "^ps0 +ps .* ready +[1-9][0-9]* .*trainer-1 clock [0-9]+ lag [0-9]+" "$dir/status.txt" ||
		fail "serve: ps0 line: $(cat "$dir/status.txt")"
	grep -Eq "trainer-0 clock [0-9]+ lag [0-9]+ \(done\)" "$dir/status.txt" ||
		fail "serve: ps0 does not show trainer-0 as done: $(cat "$dir/status.txt")"
	pids=$(node_pids "$dir/up.out")
	kill -TERM "$UP_PID"
	wait_exit "$UP_PID" 60 || fail "serve: psfleet up did not exit"
	[ "$RC" -eq 0 ] || fail "serve: exit $RC: $(tail -5 "$dir/up.out")"
	assert_gone $pids
	say "status after training: exit 0, trainers done, ps0 ready with clocks"
}

# On a terminal, progress is a block redrawn in place (checked under script(1)).
test_tty_display() {
	local dir="$W/tty"
	command -v script >/dev/null || { say "SKIP tty case: no script(1)"; return; }
	mkdir -p "$dir"
	write_cfg "$dir/f.yaml" "$dir" 1 2 40
	built_or_skip "$dir/f.yaml" "tty case" trainer-0 || return
	timeout -s TERM 300 script -qfec "'$PSFLEET' up '$dir/f.yaml' --train-only" /dev/null \
		>"$dir/tty.out" 2>&1 </dev/null
	RC=$?
	track "$dir/tty.out"
	[ "$RC" -eq 0 ] || fail "tty: exit $RC: $(tail -5 "$dir/tty.out")"
	grep -q $'\033\[[0-9]*A\033\[J' "$dir/tty.out" || fail "tty: the block was never redrawn"
	grep -Eq "trainer-0 +done +epoch 40 step [0-9]+" "$dir/tty.out" || fail "tty: no final trainer row"
	grep -q "test RMSE" "$dir/tty.out" || fail "tty: no result line"
	assert_gone $(node_pids "$dir/tty.out")
	say "tty: live block redrawn, final rows and results shown"
}

# ---------------------------------------------------------------- 5. full fleet

# The fleet has a shared-secret token; the try: line is pasted as it is printed.
test_full_fleet() {
	local dir="$W/full" pids url sym try exe
	mkdir -p "$dir"
	write_cfg "$dir/f.yaml" "$dir" 1 2 6 serving
	echo "full-fleet-secret" >"$dir/token"
	echo "security: {token_file: $dir/token}" >>"$dir/f.yaml"
	built_or_skip "$dir/f.yaml" "full fleet case" trainer-0 inferer-0 gateway || return
	start_up "$dir/up.out" "$dir/f.yaml"
	wait_for "$dir/up.out" "serving; try: [^ ]*psfleet predict" 240 ||
		fail "full: not serving: $(tail -20 "$dir/up.out")"
	track "$dir/up.out"
	try=$(grep -Eo 'serving; try: .*' "$dir/up.out" | head -1 | sed 's/^serving; try: //')
	url=$(grep -Eo 'predict --connect [^ ]+' <<<"$try" | awk '{print $3}')
	sym=${try##* }
	exe=${try%% *}
	[ "$url" = "ipc://$dir/gateway.ipc" ] || fail "full: predict hint names '$url', not the gateway"
	grep -q ",$sym," "$dir/data/tiny.csv" || fail "full: symbol '$sym' is not in the data"
	[[ "$try" == *" --token-file $dir/token "* ]] || fail "full: the hint has no --token-file: $try"
	# the binary that runs: bare psfleet only when PATH finds this very file
	if [ "$exe" = psfleet ]; then
		[ "$(readlink -f "$(command -v psfleet)")" = "$(readlink -f "$PSFLEET")" ] ||
			fail "full: the hint says 'psfleet', which PATH does not resolve to $PSFLEET"
	else
		[ "$(readlink -f "$exe")" = "$(readlink -f "$PSFLEET")" ] ||
			fail "full: the hint's binary '$exe' is not $PSFLEET"
	fi
	bash -c "$try" >"$dir/try.out" 2>&1 || fail "full: the printed command failed: $try: $(cat "$dir/try.out")"
	grep -Eq "^$sym +[0-9-]+ +[-0-9.e]+ " "$dir/try.out" || fail "full: no prediction from: $try: $(cat "$dir/try.out")"
	say "full: the printed command works: $try"
	"$PSFLEET" status "$dir/f.yaml" >"$dir/status.txt"
	[ $? -eq 0 ] || fail "full: status is not all healthy: $(cat "$dir/status.txt")"
	pids=$(node_pids "$dir/up.out")
	[ "$(wc -w <<<"$pids")" -eq 5 ] || fail "full: want 5 node pids, got '$pids'"
	kill -TERM "$UP_PID"
	wait_exit "$UP_PID" 60 || fail "full: psfleet up did not exit"
	[ "$RC" -eq 0 ] || fail "full: exit $RC: $(tail -5 "$dir/up.out")"
	grep -Eq "stopped: .*inferer-0 \(exit 0\).*gateway \(exit 0\)" "$dir/up.out" ||
		fail "full: no clean exit report: $(tail -3 "$dir/up.out")"
	assert_gone $pids
	# A fault-free run logs no warning or error in any node's log (issue: an
	# inferer waiting for the trainers' statistics said "failed precondition").
	if grep -H " warn \| err " "$dir"/run/logs/*.log; then
		fail "full: a fault-free run logged warnings or errors (above)"
	fi
	say "full fleet: trained, served, status healthy, no warnings, SIGTERM stopped every node"
}

test_broken_configs
test_sigterm_ps_only
test_sigkill_launcher
test_ps_restart
test_train
test_train_trainer_crash
test_status_after_training
test_tty_display
test_full_fleet

if [ "$FAILS" -ne 0 ]; then
	say "$FAILS failure(s)"
	exit 1
fi
say "all cases passed"
