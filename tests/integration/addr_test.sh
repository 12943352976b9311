#!/usr/bin/env bash
# addr_test.sh -- addresses that work on a cluster: the ps binds a wildcard
# address (tcp://0.0.0.0:PORT) and advertises a host name (tcp://localhost:PORT,
# resolved when dialed); the data path comes from a ${PSF_TEST_DATA} placeholder;
# `psfleet up` runs the fleet, then the same config runs node by node with
# `psfleet node --id-from-env` / `--id-from-rank`, and `psfleet status` reaches
# the ps by its advertise URL. Usage: addr_test.sh PSFLEET
PSFLEET=${PSFLEET:-$1}
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init addr psf-addr

read -r P < <(free_ports 1)
"$PSFLEET" data gen --symbols 8 --days 60 --out "$W/d.csv" >/dev/null || fail "data gen"
cat >"$W/f.yaml" <<YAML
name: addr
seed: 3
run_dir: $W/run
nodes:
  ps:
    - {id: ps0, listen: "tcp://0.0.0.0:$P", advertise: "tcp://localhost:$P"}
  trainers:
    - {id: trainer-0}
    - {id: trainer-1}
data: {path: "\${PSF_TEST_DATA}"}
features: ["return:1", "return:2", "range"]
model: {kind: linear}
training: {epochs: 2, batch_size: 32}
consistency: {mode: sync, straggler_timeout_ms: 5000, heartbeat_ms: 200}
YAML
export PSF_TEST_DATA=$W/d.csv

# 1. the placeholder must be set: without it the config is refused with file:line
rc=0
err=$(env -u PSF_TEST_DATA "$PSFLEET" status "$W/f.yaml" 2>&1 >/dev/null) || rc=$?
[ "$rc" -eq 2 ] || fail "unset placeholder: exit $rc, want 2"
grep -q "f.yaml:10: environment variable 'PSF_TEST_DATA' is not set" <<<"$err" ||
	fail "unset placeholder: '$err'"

# 2. psfleet up: the trainers dial the ps by its advertise URL
(cd "$W" && timeout -s TERM 120 "$PSFLEET" up f.yaml --train-only >"$W/up.out" 2>&1)
rc=$?
[ "$rc" -eq 0 ] || fail "up: exit $rc: $(tail -5 "$W/up.out")"
say "up --train-only with ps on 0.0.0.0 advertising localhost: exit $rc"

# 3. node by node, one command line per role: the ps by --id-from-env, the
#    trainers by rank (rank 0 is ps0, 1 trainer-0, 2 trainer-1)
PSF_ID=ps0 "$PSFLEET" node "$W/f.yaml" --id-from-env PSF_ID >"$W/ps.log" 2>&1 &
PS_PID=$!
STARTED+=("$PS_PID")
ok=0
for _ in $(seq 150); do
	"$PSFLEET" status "$W/f.yaml" --json >"$W/st.json" 2>/dev/null
	if grep -q '"id": "ps0"[^}]*"reachable": true' "$W/st.json"; then
		ok=1
		break
	fi
	sleep 0.1
done
[ "$ok" -eq 1 ] || fail "status did not reach ps0 at tcp://localhost:$P: $(cat "$W/st.json")"
grep -q "\"listen\": \"tcp://localhost:$P\"" "$W/st.json" ||
	fail "status does not name the advertise URL: $(cat "$W/st.json")"
T_PIDS=()
for r in 1 2; do
	SLURM_PROCID=$r "$PSFLEET" node "$W/f.yaml" --id-from-rank SLURM_PROCID >"$W/t$r.log" 2>&1 &
	T_PIDS+=("$!")
	STARTED+=("$!")
done
for p in "${T_PIDS[@]}"; do
	timeout 120 tail --pid="$p" -f /dev/null
	wait "$p" || fail "trainer pid $p: exit $?: $(tail -3 "$W"/t*.log)"
done
"$PSFLEET" status "$W/f.yaml" >"$W/st2.out" 2>&1 || fail "status after training: $(cat "$W/st2.out")"
grep -q "tcp://localhost:$P" "$W/st2.out" || fail "status table: $(cat "$W/st2.out")"
kill -TERM "$PS_PID"
wait "$PS_PID" || fail "ps: exit $? on SIGTERM"
say "node --id-from-env / --id-from-rank: trained; status reached ps0 at tcp://localhost:$P"

# 4. bad ids: unset variable, unknown id, rank out of range -> exit 2, one line
bad() { # bad WANT-REGEX ENV... -- ARGS...
	local want=$1 rc=0 out
	shift
	out=$(env "$@" 2>&1) || rc=$?
	[ "$rc" -eq 2 ] || fail "$*: exit $rc, want 2 ($out)"
	grep -Eq "$want" <<<"$out" || fail "$*: '$out' does not match /$want/"
}
bad "environment variable 'PSF_NO_ID' is not set" -u PSF_NO_ID "$PSFLEET" node "$W/f.yaml" --id-from-env PSF_NO_ID
bad "has no node with id 'ps9'" PSF_ID=ps9 "$PSFLEET" node "$W/f.yaml" --id-from-env PSF_ID
bad "rank 3 \(R\) is out of range: .* has 3 nodes" R=3 "$PSFLEET" node "$W/f.yaml" --id-from-rank R
bad "R='x' is not a rank" R=x "$PSFLEET" node "$W/f.yaml" --id-from-rank R
bad "one of --id, --id-from-env, --id-from-rank" "$PSFLEET" node "$W/f.yaml" --id ps0 --id-from-rank R
say "node: bad ids exit 2 with a message"

if [ "$FAILS" -ne 0 ]; then
	say "$FAILS failure(s)"
	exit 1
fi
