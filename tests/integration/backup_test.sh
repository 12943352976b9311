#!/usr/bin/env bash
# backup_test.sh -- online backup and restore with real processes:
#  1. sync: `psfleet backup` while a 2 ps x 2 trainer fleet trains copies both
#     shards at one model version V; the copies hold exactly the weights and
#     optimizer state of a fleet trained for V steps only (mdb_dump, byte for
#     byte), and a fleet restored from the backup serves the same predictions as
#     that fleet;
#  2. a fleet restored from the backup trains on to the very weights of the
#     uninterrupted run (sync is deterministic);
#  3. async: each shard at its own version; a restored fleet trains to the end;
#  4. bad input: DIR exists (exit 2), fleet not running (exit 1), restore into a
#     run_dir that holds a store (exit 2 from the ps), a backup without the shard;
#  5. replication 2 (4 ps, 2 shards): `psfleet backup` finds each shard's primary
#     and copies both at one version V; the copies equal a fleet trained for V
#     steps, and a replicated fleet restored from them serves its predictions.
# Usage: backup_test.sh PSFLEET
PSFLEET=${PSFLEET:-$1}
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init backup psf-backup

command -v mdb_dump >/dev/null || {
	say "SKIP: mdb_dump (lmdb-utils) is not installed"
	exit 77
}
read -r P_INF P_M0 P_M1 P_M2 P_M3 < <(free_ports 5)
"$PSFLEET" data gen --symbols 24 --days 300 --seed 5 --out "$W/d.csv" >/dev/null || fail "data gen"
cat >"$W/f.yaml" <<YAML
name: backup
seed: 11
run_dir: $W/runA
nodes:
  ps:
    - {id: ps0, listen: "ipc://$W/ps0.ipc", metrics: "127.0.0.1:$P_M0"}
    - {id: ps1, listen: "ipc://$W/ps1.ipc", metrics: "127.0.0.1:$P_M1"}
  trainers:
    - {id: trainer-0, metrics: "127.0.0.1:$P_M2"}
    - {id: trainer-1, metrics: "127.0.0.1:$P_M3"}
  inferers:
    - {id: inferer-0, listen: "tcp://127.0.0.1:$P_INF", shard: 0}
data: {path: "$W/d.csv", test_fraction: 0.2}
features: ["return:1", "return:2", "return:5", "ratio_sma:5", "range"]
target: next_return
model: {kind: mlp, hidden: [8], l2: 0.0001}
optimizer: {kind: adam, learning_rate: 0.01}
training: {epochs: 3, batch_size: 32}
consistency: {mode: sync, straggler_timeout_ms: 20000, heartbeat_ms: 200}
durability: {mode: interval, interval_ms: 100}
inference: {refresh_ms: 100, history_days: 40, shards: 1}
YAML
F=$W/f.yaml

# start_fleet RUN_DIR DELAY_MS MODE: ps0, ps1 and both trainers by hand
start_fleet() {
	local i
	FLEET=()
	for i in 0 1; do
		"$PSFLEET" node "$F" --id "ps$i" --set "run_dir=$1" --set "consistency.mode=$3" \
			>"$W/$(basename "$1")-ps$i.log" 2>&1 &
		FLEET+=("$!")
		STARTED+=("$!")
	done
	for i in 0 1; do
		"$PSFLEET" node "$F" --id "trainer-$i" --delay-ms "$2" --set "run_dir=$1" \
			--set "consistency.mode=$3" >"$W/$(basename "$1")-t$i.log" 2>&1 &
		TRAINERS+=("$!")
		STARTED+=("$!")
	done
}
# stop_fleet: wait for the trainers, then SIGTERM the ps nodes
stop_fleet() {
	local p
	for p in "${TRAINERS[@]}"; do
		wait_exit "$p" 300 || fail "trainer $p did not finish"
		[ "$RC" -eq 0 ] || fail "trainer $p: exit $RC"
		untrack "$p"
	done
	for p in "${FLEET[@]}"; do
		kill -TERM "$p"
		wait_exit "$p" 30 || fail "ps $p did not stop"
		untrack "$p"
	done
	TRAINERS=()
}
# weights DIR: the weights and optimizer state of a store, as mdb_dump prints them
weights() {
	mdb_dump -s weights "$1" && mdb_dump -s optstate "$1" && mdb_dump -s meta "$1" | grep -A1 -E '^ 76657273696f6e$'
}
# predictions RUN_DIR [--restore DIR] -> W/pred-NAME.json from a fleet of ps + inferer
predictions() {
	local name=$1 run=$2 out
	shift 2
	out=$W/up-$name.out
	start_up "$out" "$F" --only ps,inferer --set "run_dir=$run" "$@"
	if ! wait_for "$out" "serving" 60; then
		fail "$name: fleet did not serve: $(tail -5 "$out")"
	fi
	for _ in $(seq 100); do
		"$PSFLEET" predict --connect "tcp://127.0.0.1:$P_INF" --json S0001 S0007 S0019 \
			>"$W/pred-$name.json" 2>"$W/pred-$name.err" && break
		sleep 0.1
	done
	kill -TERM "$UP_PID"
	wait_exit "$UP_PID" 30 || fail "$name: up did not stop"
	untrack "$UP_PID"
}

# ---- 1. sync: backup at one version while training ---------------------------
TRAINERS=()
start_fleet "$W/runA" 15 sync
for _ in $(seq 300); do
	v=$("$PSFLEET" status "$F" --json 2>/dev/null | grep -Eo '"model_version": [0-9]+' | head -1 | grep -Eo '[0-9]+$')
	[ "${v:-0}" -ge 30 ] && break
	sleep 0.1
done
"$PSFLEET" backup "$F" --out "$W/bk" >"$W/backup.out" 2>&1 || fail "backup: exit $?: $(cat "$W/backup.out")"
cat "$W/backup.out"
V=$(grep -Eo 'at model version [0-9]+' "$W/backup.out" | grep -Eo '[0-9]+$')
[ -n "$V" ] || fail "backup printed no version"
grep -q '"one_version": true' "$W/bk/manifest.json" || fail "manifest: $(cat "$W/bk/manifest.json")"
[ "$(grep -c "\"model_version\": $V," "$W/bk/manifest.json")" -eq 3 ] ||
	fail "manifest: not every shard at $V: $(cat "$W/bk/manifest.json")"
stop_fleet
weights "$W/runA/ps0" >"$W/a-final.dump"
weights "$W/bk/ps0" >"$W/bk-check.dump"
cmp -s "$W/a-final.dump" "$W/bk-check.dump" && fail "the backup equals the final model: not taken during training"
say "sync: backup at model version $V while training"

# The reference: the same training stopped after V steps.
TRAINERS=()
FLEET=()
for i in 0 1; do
	"$PSFLEET" node "$F" --id "ps$i" --set "run_dir=$W/runR" >"$W/runR-ps$i.log" 2>&1 &
	FLEET+=("$!")
	STARTED+=("$!")
done
for i in 0 1; do
	"$PSFLEET" node "$F" --id "trainer-$i" --set "run_dir=$W/runR" \
		--set "training.max_steps=$V" >"$W/runR-t$i.log" 2>&1 &
	TRAINERS+=("$!")
	STARTED+=("$!")
done
stop_fleet
for i in 0 1; do
	weights "$W/bk/ps$i" >"$W/bk-ps$i.dump" || fail "mdb_dump of the backup of ps$i"
	weights "$W/runR/ps$i" >"$W/ref-ps$i.dump" || fail "mdb_dump of the reference ps$i"
	cmp -s "$W/bk-ps$i.dump" "$W/ref-ps$i.dump" ||
		fail "ps$i: the backup differs from the fleet trained for $V steps"
done
say "sync: both shards of the backup equal, byte for byte, a fleet trained for exactly $V steps"

# Served: the reference fleet and a fleet restored from the backup predict the same.
predictions ref "$W/runR"
predictions restored "$W/runC1" --restore "$W/bk"
grep -q "\"prediction\"" "$W/pred-ref.json" || fail "no reference predictions: $(cat "$W/pred-ref.err")"
grep -q "\"prediction\"" "$W/pred-restored.json" || fail "no predictions from the restored fleet: $(cat "$W/pred-restored.err")"
grep -q "restored from" "$W/runC1/logs/ps0.log" || fail "ps0 log does not say it restored"
cmp -s "$W/pred-ref.json" "$W/pred-restored.json" ||
	fail "restored fleet predicts otherwise: $(cat "$W/pred-ref.json") vs $(cat "$W/pred-restored.json")"
say "sync: a fleet restored from the backup serves the predictions of version $V"

# ---- 2. a restored fleet trains on to the uninterrupted run's weights ---------
UP_TIMEOUT=300 start_up "$W/up-c2.out" "$F" --train-only --set "run_dir=$W/runC2" --restore "$W/bk"
wait_exit "$UP_PID" 300 || fail "restored training did not finish"
untrack "$UP_PID"
[ "$RC" -eq 0 ] || fail "restored training: exit $RC: $(tail -5 "$W/up-c2.out")"
for i in 0 1; do
	weights "$W/runA/ps$i" >"$W/a-ps$i.dump"
	weights "$W/runC2/ps$i" >"$W/c2-ps$i.dump"
	cmp -s "$W/a-ps$i.dump" "$W/c2-ps$i.dump" ||
		fail "ps$i: training resumed from the backup ends elsewhere than the uninterrupted run"
done
say "sync: resumed from version $V, training ends on the uninterrupted run's weights, bit for bit"

# ---- 3. async: each shard at its own version; restore and finish -------------
TRAINERS=()
start_fleet "$W/runD" 5 async
sleep 1
"$PSFLEET" backup "$F" --out "$W/bk-async" --set consistency.mode=async >"$W/backup-async.out" 2>&1 ||
	fail "async backup: exit $?: $(cat "$W/backup-async.out")"
grep -q '"one_version": false' "$W/bk-async/manifest.json" || fail "async manifest: $(cat "$W/bk-async/manifest.json")"
stop_fleet
start_up "$W/up-d2.out" "$F" --train-only --set "run_dir=$W/runD2" --set consistency.mode=async --restore "$W/bk-async"
wait_exit "$UP_PID" 300 || fail "async restored training did not finish"
untrack "$UP_PID"
[ "$RC" -eq 0 ] || fail "async restored training: exit $RC: $(tail -5 "$W/up-d2.out")"
say "async: $(tail -1 "$W/backup-async.out"); the restored fleet trained to the end"

# ---- 4. bad input -------------------------------------------------------------
rc=0
out=$("$PSFLEET" backup "$F" --out "$W/bk" 2>&1) || rc=$?
[ "$rc" -eq 2 ] && grep -q "already exists" <<<"$out" || fail "existing DIR: exit $rc: $out"
rc=0
out=$(timeout 60 "$PSFLEET" backup "$F" --out "$W/bk-none" 2>&1) || rc=$?
[ "$rc" -eq 1 ] && grep -q "ps0" <<<"$out" || fail "no fleet: exit $rc: $out"
[ ! -e "$W/bk-none" ] || fail "a failed backup left $W/bk-none"
rc=0
out=$(timeout 60 "$PSFLEET" node "$F" --id ps0 --set "run_dir=$W/runA" --restore "$W/bk" 2>&1) || rc=$?
[ "$rc" -eq 2 ] && grep -q "already holds a store" <<<"$out" || fail "restore over a store: exit $rc: $out"
mkdir -p "$W/bk-empty"
rc=0
out=$(timeout 60 "$PSFLEET" node "$F" --id ps0 --set "run_dir=$W/runE" --restore "$W/bk-empty" 2>&1) || rc=$?
[ "$rc" -eq 2 ] && grep -q "has no backup of ps0" <<<"$out" || fail "restore from nothing: exit $rc: $out"
rc=0
out=$("$PSFLEET" node "$F" --id ps0 --fresh --restore "$W/bk" 2>&1) || rc=$?
[ "$rc" -eq 2 ] || fail "--fresh with --restore: exit $rc: $out"
say "bad input: clear errors, exit 2 (usage, store present) or 1 (no fleet)"

# ---- 5. replication: a replicated fleet backed up, restored replicated ---------
F1=$F
F2=$W/f2.yaml
sed -e 's/^name: backup$/name: backup\nreplication: 2/' \
	-e "s|^    - {id: ps1, listen: \"ipc://$W/ps1.ipc\".*|&\n    - {id: ps2, listen: \"ipc://$W/ps2.ipc\"}\n    - {id: ps3, listen: \"ipc://$W/ps3.ipc\"}|" \
	"$F1" >"$F2"
grep -q "id: ps3" "$F2" && grep -q "^replication: 2" "$F2" || fail "f2.yaml: $(cat "$F2")"
F=$F2
TRAINERS=()
FLEET=()
for i in 0 1 2 3; do
	"$PSFLEET" node "$F" --id "ps$i" --set "run_dir=$W/runF" >"$W/runF-ps$i.log" 2>&1 &
	FLEET+=("$!")
	STARTED+=("$!")
done
for i in 0 1; do
	"$PSFLEET" node "$F" --id "trainer-$i" --delay-ms 15 --set "run_dir=$W/runF" \
		>"$W/runF-t$i.log" 2>&1 &
	TRAINERS+=("$!")
	STARTED+=("$!")
done
for _ in $(seq 300); do
	v=$("$PSFLEET" status "$F" --json 2>/dev/null | grep -Eo '"model_version": [0-9]+' | head -1 | grep -Eo '[0-9]+$')
	[ "${v:-0}" -ge 30 ] && break
	sleep 0.1
done
"$PSFLEET" backup "$F" --out "$W/bk-r2" >"$W/backup-r2.out" 2>&1 || fail "replicated backup: exit $?: $(cat "$W/backup-r2.out")"
V2=$(grep -Eo 'at model version [0-9]+' "$W/backup-r2.out" | grep -Eo '[0-9]+$')
[ -n "$V2" ] || fail "replicated backup printed no version: $(cat "$W/backup-r2.out")"
stop_fleet
# the reference: an unreplicated fleet of ps0, ps1 (the same shards) trained V2 steps
F=$F1
TRAINERS=()
FLEET=()
for i in 0 1; do
	"$PSFLEET" node "$F" --id "ps$i" --set "run_dir=$W/runR2" >"$W/runR2-ps$i.log" 2>&1 &
	FLEET+=("$!")
	STARTED+=("$!")
done
for i in 0 1; do
	"$PSFLEET" node "$F" --id "trainer-$i" --set "run_dir=$W/runR2" \
		--set "training.max_steps=$V2" >"$W/runR2-t$i.log" 2>&1 &
	TRAINERS+=("$!")
	STARTED+=("$!")
done
stop_fleet
for i in 0 1; do
	weights "$W/bk-r2/ps$i" >"$W/bk-r2-ps$i.dump" || fail "mdb_dump of the replicated backup of shard ps$i"
	weights "$W/runR2/ps$i" >"$W/ref2-ps$i.dump" || fail "mdb_dump of the reference ps$i"
	cmp -s "$W/bk-r2-ps$i.dump" "$W/ref2-ps$i.dump" ||
		fail "shard ps$i: the replicated backup differs from a fleet trained for $V2 steps"
done
predictions ref2 "$W/runR2"
F=$F2
predictions restored2 "$W/runF2" --restore "$W/bk-r2"
F=$F1
grep -q "\"prediction\"" "$W/pred-restored2.json" || fail "no predictions from the restored replicated fleet: $(cat "$W/pred-restored2.err")"
cmp -s "$W/pred-ref2.json" "$W/pred-restored2.json" ||
	fail "the restored replicated fleet predicts otherwise: $(cat "$W/pred-ref2.json") vs $(cat "$W/pred-restored2.json")"
say "replication 2: backup at version $V2 equals a fleet trained $V2 steps; restored replicated, it serves the same predictions"

if [ "$FAILS" -ne 0 ]; then
	say "$FAILS failure(s)"
	exit 1
fi
say "ok"
