#!/usr/bin/env bash
# slurm_test.sh -- examples/slurm/psfleet.sbatch on a real Slurm cluster: this
# test starts its own munged (own key and socket in its temp dir), a slurmctld
# and three slurmd (n1..n3, all 127.0.0.1, distinct ports; Debian's slurm-wlm),
# then submits the example three times at once, with a small data set:
#   ref    fault-free
#   fault  ps1's process gets SIGKILL mid-training; the batch script must start
#          a new job step for it and the run must end with the same results
#          (sync mode: model version, steps and test metrics equal to the last
#          bit, and the same Predict answers through the gateway)
#   bad    the data is missing: the trainers fail, and after 5 failures within
#          60 s the batch script ends the job by itself
# Each job must print the test metrics and the `psfleet up: serving; try:` line;
# the test runs that command (with --json) against the gateway. Then it
# scancels the jobs and checks that no process of theirs is left (anything
# whose command line holds this test's temp dir, Slurm's daemons aside). At exit
# the daemons are stopped by their pid files, on failure too.
#
# Needs root and slurm-wlm + munge (scripts/install-deps.sh); exits 77 (skipped)
# with the reason where Slurm cannot start. Env: PSFLEET, PSF_SOURCE_DIR;
# KEEP_W=1 keeps the temp dir.
PSFLEET=${PSFLEET:-$1}
SRC=${PSF_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
skip() {
	[ "$FAILS" -eq 0 ] || exit 1 # the plan checks above failed
	echo "slurm_test: skipped: $*"
	exit 77
}
[ -n "$PSFLEET" ] && [ -x "$PSFLEET" ] || {
	echo "slurm_test: set PSFLEET" >&2
	exit 1
}
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init slurm_test psf-slurm
chmod 700 "$W" # munged refuses a socket directory others can write to
JOBS=()

# ---------------------------------------------------------------- psfleet slurm plan
# (needs no Slurm) placement, addresses, ports, and what it refuses
EX=$SRC/examples/slurm/fleet.yaml
plan_out=$("$PSFLEET" slurm plan "$EX" --nodes a,b,c --addrs 10.0.0.1,10.0.0.2,10.0.0.3 \
	--out "$W/p1" 2>&1) || fail "plan: $plan_out"
[ "$(tr '\n' ' ' <"$W/p1/nodes")" = "ps0 ps a ps1 ps a trainer-0 trainer b trainer-1 trainer b inferer-0 inferer c gateway gateway c " ] ||
	fail "plan: default placement: $(cat "$W/p1/nodes")"
# shellcheck disable=SC2016 # the placeholder must stay unexpanded
for want in '{id: ps1, listen: "tcp://10.0.0.1:7102", metrics: "10.0.0.1:7202"}' \
	'{id: trainer-1, metrics: "10.0.0.2:7212"}' \
	'gateway: {id: gateway, listen: "tcp://10.0.0.3:7400", metrics: "10.0.0.3:7231"}' \
	'path: "${PSF_DATA:-data/slurm.csv}"'; do
	grep -qF "$want" "$W/p1/fleet.yaml" || fail "plan: no '$want' in $(cat "$W/p1/fleet.yaml")"
done
out=$("$PSFLEET" node "$W/p1/fleet.yaml" --id nosuch 2>&1)
[[ $out == *"has no node with id 'nosuch'"* ]] || fail "plan: the placed config does not load: $out"
"$PSFLEET" slurm plan "$EX" --nodes a,b,c,d --port-base 30000 --place trainers=1-2 \
	--place gateway=0 --out "$W/p2" >/dev/null 2>&1 || fail "plan --port-base --place: exit $?"
grep -qF '{id: trainer-1, metrics: "c:30005"}' "$W/p2/fleet.yaml" &&
	grep -qF 'gateway: {id: gateway, listen: "tcp://a:30008", metrics: "a:30009"}' "$W/p2/fleet.yaml" ||
	fail "plan --port-base --place: $(cat "$W/p2/fleet.yaml")"
plan_fails() { # plan_fails REGEX ARGS...: exit 2 with one line matching REGEX
	local want=$1 rc=0 err
	shift
	err=$("$PSFLEET" slurm plan "$@" 2>&1 >/dev/null) || rc=$?
	[ "$rc" -eq 2 ] && grep -Eq -- "$want" <<<"$err" || fail "plan $*: exit $rc: '$err' !~ /$want/"
}
plan_fails "port clash: 'ps1' listen and 'ps0' listen both use a:7101 .*--port-base" \
	"$SRC/examples/multihost.yaml" --nodes a --out "$W/p3"
[ ! -e "$W/p3/fleet.yaml" ] || fail "plan: left an invalid $W/p3/fleet.yaml"
plan_fails "'bogus' is neither a role" "$EX" --nodes a,b --place bogus=1 --out "$W/p4"
plan_fails "host 2 is out of range \(--nodes has 2: 0-1\)" "$EX" --nodes a,b --place ps=2 --out "$W/p4"
plan_fails "--addrs has 1 entries, --nodes 2" "$EX" --nodes a,b --addrs x --out "$W/p4"
sed 's|"tcp://127.0.0.1:7101"|"ipc:///tmp/x.ipc"|' "$EX" >"$W/ipc.yaml"
plan_fails "ps0 listens on 'ipc:///tmp/x.ipc': nodes on other hosts need tcp://" \
	"$W/ipc.yaml" --nodes a --out "$W/p4"
say "plan: placement, addresses, --port-base, --place and its errors"

[ "$(id -u)" -eq 0 ] || skip "needs root (slurmd runs jobs as any user)"
for c in munged mungekey slurmctld slurmd sbatch srun scontrol squeue scancel sinfo; do
	command -v "$c" >/dev/null || [ -x "/usr/sbin/$c" ] ||
		skip "no $c (apt-get install slurm-wlm munge; scripts/install-deps.sh does)"
done
export PATH=$PATH:/usr/sbin
export SLURM_CONF=$W/slurm.conf

# in_w [REGEX]: PIDs whose command line matches REGEX (default: holds this test's
# temp dir), from pgrep.
in_w() { pgrep -f -- "${1:-$W}"; }

# our_stepds: PIDs of the slurmstepd processes of this test's cluster (their
# command line is "slurmstepd: [JOB.STEP]"; their environment has our SLURM_CONF).
our_stepds() {
	local p
	for p in $(pgrep -x slurmstepd); do
		{ tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null | grep -qx "SLURM_CONF=$SLURM_CONF" &&
			echo "$p"
	done
}

# shellcheck disable=SC2317 # called by lib.sh at exit
lib_on_exit() {
	local j f p deadline
	# Jobs first, while slurmctld and slurmd still run to end their steps.
	for j in "${JOBS[@]}"; do scancel "$j" 2>/dev/null; done
	deadline=$((SECONDS + 30))
	while [ ${#JOBS[@]} -gt 0 ] && [ $SECONDS -lt $deadline ] &&
		[ -n "$(squeue -h -o %i 2>/dev/null)$(our_stepds)" ]; do
		sleep 0.2
	done
	for f in "$W"/slurmd-n?.pid "$W/slurmctld.pid" "$W/munged.pid"; do
		[ -s "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null
	done
	deadline=$((SECONDS + 15))
	while [ $SECONDS -lt $deadline ] && [ -n "$(in_w)$(our_stepds)" ]; do sleep 0.2; done
	for p in $(in_w) $(our_stepds); do kill -KILL "$p" 2>/dev/null; done
	if [ "$FAILS" -ne 0 ] || [ -n "${SLURM_TEST_VERBOSE:-}" ]; then
		for f in "$W"/*/job.out "$W"/*/plan/logs/ps1.log "$W/slurmctld.log"; do
			[ -f "$f" ] && { echo "---- $f (tail)"; tail -25 "$f"; }
		done
	fi
}

# ---------------------------------------------------------------- the cluster
read -r P_CTLD P_N1 P_N2 P_N3 < <(free_ports 4)
mungekey -c -k "$W/munge.key" >/dev/null 2>&1 || skip "mungekey cannot make a key"
/usr/sbin/munged --force --socket="$W/munge.sock" --key-file="$W/munge.key" \
	--pid-file="$W/munged.pid" --log-file="$W/munged.log" --seed-file="$W/munge.seed" \
	>"$W/munged.out" 2>&1 || skip "munged does not start: $(tail -2 "$W/munged.out")"
host=$(hostname)
mkdir -p "$W/state"
{
	cat <<CONF
ClusterName=psftest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$W/munge.sock
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SlurmctldPort=$P_CTLD
SlurmctldPidFile=$W/slurmctld.pid
SlurmctldLogFile=$W/slurmctld.log
SlurmdPidFile=$W/slurmd-%n.pid
SlurmdLogFile=$W/slurmd-%n.log
SlurmdSpoolDir=$W/spool-%n
StateSaveLocation=$W/state
ReturnToService=2
KillWait=10
InactiveLimit=0
MinJobAge=300
CONF
	i=0
	for p in "$P_N1" "$P_N2" "$P_N3"; do
		i=$((i + 1))
		echo "NodeName=n$i NodeHostname=$host NodeAddr=127.0.0.1 Port=$p CPUs=2 RealMemory=2000"
	done
	echo "PartitionName=debug Nodes=n[1-3] Default=YES OverSubscribe=FORCE:8 MaxTime=INFINITE State=UP"
} >"$SLURM_CONF"
slurmctld -f "$SLURM_CONF" >"$W/slurmctld.out" 2>&1 ||
	skip "slurmctld does not start: $(tail -2 "$W/slurmctld.out")"
for n in n1 n2 n3; do
	slurmd -f "$SLURM_CONF" -N "$n" >"$W/slurmd-$n.out" 2>&1 ||
		skip "slurmd -N $n does not start: $(tail -2 "$W/slurmd-$n.out")"
done
up=0
for _ in $(seq 100); do
	if [ "$(sinfo -h -N -t idle -o %N 2>/dev/null | sort -u | wc -l)" -eq 3 ]; then
		up=1
		break
	fi
	sleep 0.2
done
[ "$up" -eq 1 ] || skip "the three slurmd did not come up idle: $(sinfo -N 2>&1 | tail -4)"
say "Slurm up: slurmctld :$P_CTLD, slurmd n1 :$P_N1, n2 :$P_N2, n3 :$P_N3 (all 127.0.0.1)"

# ---------------------------------------------------------------- two jobs
# port_block N: a base port B with B..B+N-1 all free (and clear of the others).
port_block() {
	local b p ok
	while :; do
		b=$((20000 + (RANDOM * 32768 + RANDOM) % 11900))
		ok=1
		for ((p = b; p < b + $1; p++)); do
			if [[ " $P_CTLD $P_N1 $P_N2 $P_N3 ${USED_PORTS:-} " == *" $p "* ]] ||
				(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
				ok=0
				break
			fi
		done
		[ "$ok" -eq 1 ] && break
	done
	echo "$b"
}

"$PSFLEET" data gen --symbols 30 --days 300 --seed 7 --out "$W/d.csv" >/dev/null ||
	{ fail "data gen"; exit 1; }
submit() { # submit NAME: sbatch the example from $W/NAME; sets BASE_<NAME>, JOB_<NAME>
	local d=$W/$1 base j
	mkdir -p "$d"
	base=$(port_block 10)
	USED_PORTS="$USED_PORTS $(seq -s ' ' "$base" $((base + 9)))"
	j=$(cd "$d" && PSFLEET=$PSFLEET PSF_CONFIG=$SRC/examples/slurm/fleet.yaml \
		PSF_DATA=${PSF_DATA_OVERRIDE:-$W/d.csv} PSF_RUN_DIR=$d/run PSF_PLAN_DIR=$d/plan PSF_PORT_BASE=$base \
		PSF_METRICS_OUT=$d/m.json \
		sbatch --parsable --output="$d/job.out" "$SRC/examples/slurm/psfleet.sbatch" 2>&1) ||
		{ fail "sbatch $1: $j"; exit 1; }
	JOBS+=("$j")
	printf -v "BASE_$1" %s "$base"
	printf -v "JOB_$1" %s "$j"
	say "$1: job $j, ports $base.."
}
submit ref
submit fault
PSF_DATA_OVERRIDE=$W/missing.csv submit bad
# squeue's view of a job: its state, "" once it is gone
job_state() { squeue -h -j "$1" -o %T 2>/dev/null; }

# fault: SIGKILL ps1 once ps0 applied some steps, long before the last (ps0's
# metrics address is the second port of the job's block: listen, then metrics)
ps_version() { # ps_version PORT: ps0's model version, or 0
	local v
	v=$(curl -s --max-time 0.5 "http://127.0.0.1:$1/metrics" 2>/dev/null |
		grep -E '^psfleet_model_version(\{[^}]*\})? ' | awk '{print $2; exit}')
	echo "${v:-0}"
}
F=$W/fault
deadline=$((SECONDS + 120))
v=0
while [ $SECONDS -lt $deadline ] && [ "${v%.*}" -lt 20 ]; do
	# shellcheck disable=SC2154 # BASE_fault, JOB_bad: set by submit through printf -v
	v=$(ps_version $((BASE_fault + 1)))
	sleep 0.05
done
[ "${v%.*}" -ge 20 ] || { fail "fault: ps0 never reached model version 20 ($v)"; exit 1; }
pid=$(in_w "^$PSFLEET node $F/plan/fleet.yaml --id ps1\$" | head -1) # not its srun
[ -n "$pid" ] || { fail "fault: no ps1 process"; exit 1; }
[ ! -e "$F/m.json" ] || fail "fault: training was over before the kill: make it longer"
kill -KILL "$pid"
say "fault: SIGKILL to ps1 (pid $pid) at model version $v"
wait_for "$F/job.out" "ps1 ended with exit [0-9]+ on n1; restart 1 as a new job step" 60 ||
	fail "fault: the batch script did not restart ps1: $(tail -3 "$F/job.out")"

# both: the metrics and the try: line, then Predict through the gateway
for name in ref fault; do
	d=$W/$name
	wait_for "$d/job.out" "psfleet up: serving; try: " 180 ||
		{ fail "$name: no 'serving; try:' line: $(tail -5 "$d/job.out")"; exit 1; }
	grep -Eq "psfleet up: test RMSE [0-9.e-]+ +MAE" "$d/job.out" ||
		fail "$name: no test metrics in the job output"
	try=$(grep -o "psfleet up: serving; try: .*" "$d/job.out" | head -1)
	read -r -a cmd <<<"${try#psfleet up: serving; try: }"
	[ "${cmd[2]}" = --connect ] && [[ ${cmd[3]} == tcp://127.0.0.1:* ]] ||
		fail "$name: try line '$try'"
	want=$(grep -o '"model_version": [0-9]*' "$d/m.json" | grep -Eo '[0-9]+$')
	ok=0
	for _ in $(seq 100); do # the inferer loads the final snapshot within refresh_ms
		"${cmd[@]}" --json >"$d/predict.json" 2>"$d/predict.err" &&
			grep -q "\"model_version\": $want," "$d/predict.json" && { ok=1; break; }
		sleep 0.2
	done
	[ "$ok" -eq 1 ] || fail "$name: predict (${cmd[*]}) never answered from version $want: $(cat "$d/predict.json" "$d/predict.err")"
	say "$name: $(grep -o 'psfleet up: test RMSE.*' "$d/job.out"); predict ${cmd[*]:4}: ok"
done
grep -q "restart" "$W/ref/job.out" && fail "ref: a node was restarted in the fault-free run"
grep -h "watch failed" "$W/ref/job.out" "$F/job.out" && fail "psfleet slurm watch failed"

# bad: no data on the node hosts: the nodes that need it fail (exit 1) and are
# started again; after 5 failures of one node within 60 s the batch script ends the
# job by itself (which node gets there first depends on the load)
wait_for "$W/bad/job.out" "[a-z0-9-]+ failed 5 times within 60 s \(last: exit 1\): psfleet node [a-z0-9-]+: not found; ending the job" 90 ||
	fail "bad: the job did not give up on a failing node: $(tail -3 "$W/bad/job.out")"
grep -q "note: the data $W/missing.csv is not on this host" "$W/bad/job.out" ||
	fail "bad: plan did not note the missing data"
deadline=$((SECONDS + 60))
while [ $SECONDS -lt $deadline ] && [ -n "$(job_state "$JOB_bad")" ]; do sleep 0.2; done
[ -z "$(job_state "$JOB_bad")" ] || fail "bad: job $JOB_bad still $(job_state "$JOB_bad")"
say "bad: a trainer failing 5 times within 60 s ended its job"

# same results, to the last bit (sync): drop what differs by nature
strip() { grep -Ev '"(train_seconds|already_trained|samples_per_sec|config)"' "$1" |
	sed -E 's/, "samples_per_sec": [0-9.e+-]+//'; }
if ! diff <(strip "$W/ref/m.json") <(strip "$F/m.json") >"$W/m.diff"; then
	fail "fault: results differ from the fault-free run: $(cat "$W/m.diff")"
fi
if ! diff "$W/ref/predict.json" "$F/predict.json" >"$W/p.diff"; then
	fail "fault: predictions differ from the fault-free run: $(cat "$W/p.diff")"
fi
say "fault: same model version, steps, test metrics and predictions as the fault-free run"

# scancel: every step ends, nothing is left behind
for j in "${JOBS[@]}"; do scancel "$j" 2>/dev/null; done
deadline=$((SECONDS + 60))
for j in "${JOBS[@]}"; do
	while [ $SECONDS -lt $deadline ] && [ -n "$(job_state "$j" | grep -v COMPLETED)" ]; do
		sleep 0.2
	done
done
daemons=" $(cat "$W"/*.pid 2>/dev/null | tr '\n' ' ') "
left=()
for _ in $(seq 50); do
	left=()
	for p in $(in_w) $(our_stepds); do
		[[ $daemons == *" $p "* ]] || left+=("$p")
	done
	[ ${#left[@]} -eq 0 ] && break
	sleep 0.2
done
if [ ${#left[@]} -ne 0 ]; then
	for p in "${left[@]}"; do
		fail "left after scancel: pid $p: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"
	done
else
	say "scancel: every job ended, no process left"
fi
for name in ref fault; do
	grep -q "SIGTERM\|stopping\|stopped" "$W/$name/plan/logs/gateway.log" ||
		fail "$name: the gateway did not log a clean stop: $(tail -3 "$W/$name/plan/logs/gateway.log")"
done

if [ "$FAILS" -ne 0 ]; then
	say "$FAILS failure(s)"
	exit 1
fi
say "ok"
