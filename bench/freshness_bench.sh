#!/usr/bin/env bash
# freshness_bench.sh -- how fresh the served model is after `Ingest`, on the demo
# fleet (examples/fleet.yaml: 1000 symbols x 1000 days, 2 ps, 4 trainers, 2
# inferer shards, a gateway) run by `psfleet up` with training.finetune.steps set:
# from the Ingest call of a full day (one bar per symbol) to (a) a Predict that
# starts from the new bar and (b) a Predict served by the fine-tuned weights
# (model version + steps). Target: under 2 s each (issue 18).
#
#   bench/freshness_bench.sh [--quick] [--reps N] [--steps S] [--psfleet PATH]
#                            [--probe PATH] [--config FILE]
#
# The demo config is used as written except: its URLs become ipc:// paths in a
# temp dir and its metrics ports are dropped (no clash with a running demo or
# another bench), run_dir and the data go to the temp dir, and
# training.finetune.steps is set (--steps, default 20). --quick: 100 symbols x
# 300 days, 1 epoch, 2 days ingested (the ctest bench run). Each rep ingests the
# next day through the gateway with bench/freshness_probe (the C client) and
# polls Predict every 2 ms; a Predict round trip measured before it is the
# baseline. Output: `name value unit` lines (medians over the reps), then
# `ratio_<name> value` against the 2 s target (< 1 meets it; DESIGN.md §10).
set -u
REPS=5
STEPS=20
QUICK=0
SRC=$(cd "$(dirname "$0")/.." && pwd)
CONFIG=$SRC/examples/fleet.yaml
PSFLEET=
PROBE=
while [ $# -gt 0 ]; do
	case $1 in
	--quick) QUICK=1 REPS=2 ;;
	--reps) REPS=$2 && shift ;;
	--steps) STEPS=$2 && shift ;;
	--psfleet) PSFLEET=$2 && shift ;;
	--probe) PROBE=$2 && shift ;;
	--config) CONFIG=$2 && shift ;;
	*) echo "usage: $0 [--quick] [--reps N] [--steps S] [--psfleet PATH] [--probe PATH] [--config FILE]" >&2 && exit 2 ;;
	esac
	shift
done
PSFLEET=${PSFLEET:-$SRC/build/cli/psfleet}
PROBE=${PROBE:-$SRC/build/bench/freshness_probe}
for x in "$PSFLEET" "$PROBE"; do
	[ -x "$x" ] || { echo "freshness_bench: no executable $x (--psfleet / --probe)" >&2 && exit 2; }
done
W=$(mktemp -d /tmp/freshness-bench-XXXXXX) || exit 1
UP=
cleanup() {
	if [ -n "$UP" ] && kill -0 "$UP" 2>/dev/null; then
		kill -TERM "$UP" 2>/dev/null
		wait "$UP" 2>/dev/null
	fi
	rm -rf "$W"
}
trap cleanup EXIT

# The demo, on ipc:// in $W, without metrics ports.
sed -E -e "s#\{id: ([a-z0-9-]+), listen: \"[^\"]*\", metrics: \"[^\"]*\"#{id: \1, listen: \"ipc://$W/\1.ipc\"#" \
	-e "s#\{id: ([a-z0-9-]+), metrics: \"[^\"]*\"\}#{id: \1}#" \
	-e "s#^run_dir: .*#run_dir: $W/run#" -e "s#^  path: .*#  path: $W/data.csv#" \
	"$CONFIG" >"$W/fleet.yaml"
grep -q "tcp://" "$W/fleet.yaml" && { echo "freshness_bench: $CONFIG has URLs this script cannot move to ipc://" >&2 && exit 2; }
SETS=(--set "training.finetune.steps=$STEPS")
[ "$QUICK" = 1 ] && SETS+=(--set data.generate.symbols=100 --set data.generate.days=300 --set training.epochs=1)

"$PSFLEET" up "$W/fleet.yaml" "${SETS[@]}" >"$W/up.log" 2>&1 &
UP=$!
for _ in $(seq 1 1800); do
	grep -q "serving; try: " "$W/up.log" && break
	kill -0 "$UP" 2>/dev/null || break
	sleep 0.5
done
grep -q "serving; try: " "$W/up.log" || {
	echo "freshness_bench: the fleet did not serve:" >&2 && tail -8 "$W/up.log" >&2 && exit 1
}
GW=$(sed -n 's/.*predict --connect \([^ ]*\) .*/\1/p' "$W/up.log" | head -1)

# Every symbol's last bar: date and close.
awk -F, 'NR > 1 { d[$2] = $1; c[$2] = $6 } END { for (s in d) print s, d[s], c[s] }' "$W/data.csv" |
	sort >"$W/last.txt"
LAST=$(awk '{ print $2 }' "$W/last.txt" | sort | tail -1)
SYM=$(head -1 "$W/last.txt" | awk '{ print $1 }')

: >"$W/results"
for rep in $(seq 1 "$REPS"); do
	day=$(date -u -d "$LAST + $rep day" +%F)
	# one bar per symbol, a small deterministic move from the previous close
	awk -v day="$day" -v rep="$rep" '{
		c = $3 * (1 + 0.01 * sin(NR * 7 + rep)); printf "%s,%s,%.4f,%.4f,%.4f,%.4f,%d\n", day, $1, c, $3, c * 1.01, c * 0.99, 1000
	}' "$W/last.txt" >"$W/day.csv"
	awk -F, '{ print $2, $1, $3 }' "$W/day.csv" >"$W/last.txt"
	"$PROBE" "$GW" "$W/day.csv" "$SYM" >"$W/probe.out" 2>&1 || {
		echo "freshness_bench: rep $rep failed: $(cat "$W/probe.out")" >&2 && exit 1
	}
	cat "$W/probe.out" >>"$W/results"
	awk -v r="$rep" '$1 == "versions" { printf "freshness_rep%d_versions %s -> %s\n", r, $2, $3 }
		$1 == "new_bar_ms" || $1 == "finetuned_ms" { printf "freshness_rep%d_%s %s ms\n", r, $1, $2 }' "$W/probe.out"
done

med() { # med NAME: the median of NAME's values in the results
	awk -v n="$1" '$1 == n { print $2 }' "$W/results" | sort -g |
		awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
NEW=$(med new_bar_ms)
FT=$(med finetuned_ms)
ROWS=$(wc -l <"$W/day.csv")
echo "freshness_rows_per_day $ROWS rows"
echo "freshness_finetune_steps $STEPS steps"
echo "freshness_reps $REPS reps"
echo "freshness_ingest_reply_ms $(med ingest_ms) ms"
echo "freshness_new_bar_ms $NEW ms"
echo "freshness_finetuned_ms $FT ms"
echo "predict_roundtrip_ms $(med predict_ms) ms"
awk -v a="$NEW" -v b="$FT" 'BEGIN {
	printf "ratio_freshness_new_bar %.4f\n", a / 2000
	printf "ratio_freshness_finetuned %.4f\n", b / 2000
}'
