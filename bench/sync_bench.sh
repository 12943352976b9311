#!/usr/bin/env bash
# sync_bench.sh -- sync steps per second of a communication-bound fleet: a
# 5-weight linear model, 2 ps and 2 trainers (real `psfleet up --train-only`
# processes over ipc://), and the same fleet with the trainers' plain
# communication (PSF_TRAINER_PLAIN_COMM=1: a Push, then a Pull, per step, as
# before PushPull) measured in the same run, alternating, as the baseline; and
# the same fleet in consistency mode local with sync_every 8 (local SGD: one
# averaging round per 8 steps; a different algorithm, shown for its steps/s),
# and the same fleet in async mode, plain and fused (PushPull answers an async
# step's pull half at once), alternating too.
#
#   bench/sync_bench.sh [--quick] [--reps N] [--psfleet PATH]
#
# steps/s is trainer-0's steps over the wall time between its first and last
# step (start-up and data loading excluded), median over the reps; cpu_per_step
# is the CPU time (user + system) of the whole fleet (ps, trainers, launcher)
# per step, median. Output: `name value unit` lines, then `ratio_<name> value`
# (DESIGN.md §10); ratios are medians of per-repetition ratios.
set -u
REPS=5
EPOCHS=40
PSFLEET=${PSFLEET:-}
while [ $# -gt 0 ]; do
	case $1 in
	--quick) REPS=1 EPOCHS=4 ;;
	--reps) REPS=$2 && shift ;;
	--psfleet) PSFLEET=$2 && shift ;;
	*) echo "usage: $0 [--quick] [--reps N] [--psfleet PATH]" >&2 && exit 2 ;;
	esac
	shift
done
if [ -z "$PSFLEET" ]; then
	PSFLEET=$(cd "$(dirname "$0")/.." && pwd)/build/cli/psfleet
fi
[ -x "$PSFLEET" ] || { echo "sync_bench: no psfleet at $PSFLEET (--psfleet PATH)" >&2 && exit 2; }
W=$(mktemp -d /tmp/sync-bench-XXXXXX) || exit 1
trap 'rm -rf "$W"' EXIT

cat >"$W/fleet.yaml" <<EOF
name: sync-bench
seed: 42
run_dir: $W/run
log_level: warn
nodes:
  ps:
    - {id: ps0, listen: "ipc://$W/ps0.ipc"}
    - {id: ps1, listen: "ipc://$W/ps1.ipc"}
  trainers:
    - {id: trainer-0}
    - {id: trainer-1}
data:
  path: $W/data.csv
  generate: {symbols: 20, days: 300, seed: 7}
  test_fraction: 0.2
features: ["return:1", "return:2", "ratio_sma:5", "range"]
target: next_return
model: {kind: linear}
optimizer: {kind: sgd, learning_rate: 0.01}
training: {epochs: $EPOCHS, batch_size: 16}
consistency: {mode: sync, straggler_timeout_ms: 5000, heartbeat_ms: 500}
durability: {mode: interval, interval_ms: 200}
limits: {request_timeout_ms: 10000, rpc_workers: 8}
EOF
sed 's/consistency: {mode: sync,/consistency: {mode: local, sync_every: 8,/' "$W/fleet.yaml" >"$W/local.yaml"
sed 's/consistency: {mode: sync,/consistency: {mode: async,/' "$W/fleet.yaml" >"$W/async.yaml"

# cpu_of FILE: user + system CPU of the shell's finished children in a `times`
# output (run `times` in this shell: a command substitution's subshell has no
# children).
cpu_of() {
	tail -1 "$1" | awk '{ s = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]); s += a[1] * 60 + a[2] } print s }'
}

# run_one PLAIN [CONFIG]: one fleet run; writes "steps_per_s cpu_per_step_us
# test_rmse" to $W/out.
run_one() {
	local c0 c1
	rm -rf "$W/run" "$W/m.json"
	times >"$W/t0"
	PSF_TRAINER_PLAIN_COMM=$1 "$PSFLEET" up "${2:-$W/fleet.yaml}" --train-only \
		--metrics-out "$W/m.json" >"$W/up.log" 2>&1 || {
		echo "sync_bench: psfleet up failed:" >&2 && tail -5 "$W/up.log" >&2 && return 1
	}
	times >"$W/t1"
	c0=$(cpu_of "$W/t0")
	c1=$(cpu_of "$W/t1")
	awk -F, -v c0="$c0" -v c1="$c1" -v m="$W/m.json" '
		NR == 2 { t0 = $1 } NR > 1 { t1 = $1; n = NR - 1 }
		END {
			while ((getline l < m) > 0) if (l ~ /"test_rmse"/) { sub(/.*: */, "", l); sub(/,.*/, "", l); r = l }
			printf "%.1f %.1f %s\n", (n - 1) / (t1 - t0), (c1 - c0) / n * 1e6, r
		}' "$W/run/trace/trainer-0.csv" >"$W/out"
}

median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

: >"$W/plain" && : >"$W/fused" && : >"$W/ratio" && : >"$W/cpu_ratio" && : >"$W/local" && : >"$W/lratio"
: >"$W/aplain" && : >"$W/afused" && : >"$W/aratio"
"$PSFLEET" data gen --symbols 20 --days 300 --seed 7 --out "$W/data.csv" >/dev/null || exit 1
for ((r = 0; r < REPS; r++)); do
	# alternate the order so drifting load hits both alike
	if ((r % 2 == 0)); then order="1 0"; else order="0 1"; fi
	for plain in $order; do
		run_one "$plain" || exit 1
		out=$(cat "$W/out")
		if [ "$plain" = 1 ]; then echo "$out" >>"$W/plain"; else echo "$out" >>"$W/fused"; fi
	done
	p=$(tail -1 "$W/plain") f=$(tail -1 "$W/fused")
	awk -v p="$p" -v f="$f" 'BEGIN { split(p, a, " "); split(f, b, " "); print b[1] / a[1] }' >>"$W/ratio"
	awk -v p="$p" -v f="$f" 'BEGIN { split(p, a, " "); split(f, b, " "); print a[2] / b[2] }' >>"$W/cpu_ratio"
	run_one 0 "$W/local.yaml" || exit 1
	cat "$W/out" >>"$W/local"
	awk -v p="$p" -v l="$(cat "$W/out")" 'BEGIN { split(p, a, " "); split(l, b, " "); print b[1] / a[1] }' >>"$W/lratio"
	for plain in $order; do
		run_one "$plain" "$W/async.yaml" || exit 1
		if [ "$plain" = 1 ]; then cat "$W/out" >>"$W/aplain"; else cat "$W/out" >>"$W/afused"; fi
	done
	awk -v p="$(tail -1 "$W/aplain")" -v f="$(tail -1 "$W/afused")" \
		'BEGIN { split(p, a, " "); split(f, b, " "); print b[1] / a[1] }' >>"$W/aratio"
	if [ "$(echo "$p" | cut -d' ' -f3)" != "$(echo "$f" | cut -d' ' -f3)" ]; then
		echo "sync_bench: the two paths trained different models (test_rmse $p vs $f)" >&2
		exit 1
	fi
done
echo "sync_steps_per_s_plain $(cut -d' ' -f1 "$W/plain" | median) steps/s"
echo "sync_steps_per_s_pushpull $(cut -d' ' -f1 "$W/fused" | median) steps/s"
echo "sync_cpu_per_step_plain $(cut -d' ' -f2 "$W/plain" | median) us"
echo "sync_cpu_per_step_pushpull $(cut -d' ' -f2 "$W/fused" | median) us"
echo "local8_steps_per_s $(cut -d' ' -f1 "$W/local" | median) steps/s"
echo "local8_cpu_per_step $(cut -d' ' -f2 "$W/local" | median) us"
echo "sync_test_rmse $(head -1 "$W/fused" | cut -d' ' -f3) (identical in both paths)"
echo "local8_test_rmse $(head -1 "$W/local" | cut -d' ' -f3)"
echo "async_steps_per_s_plain $(cut -d' ' -f1 "$W/aplain" | median) steps/s"
echo "async_steps_per_s_pushpull $(cut -d' ' -f1 "$W/afused" | median) steps/s"
echo "async_cpu_per_step_plain $(cut -d' ' -f2 "$W/aplain" | median) us"
echo "async_cpu_per_step_pushpull $(cut -d' ' -f2 "$W/afused" | median) us"
echo "ratio_sync_steps_pushpull_vs_plain $(median <"$W/ratio")"
echo "ratio_sync_cpu_pushpull_vs_plain $(median <"$W/cpu_ratio")"
echo "ratio_local8_steps_vs_sync_plain $(median <"$W/lratio")"
echo "ratio_async_steps_pushpull_vs_plain $(median <"$W/aratio")"
