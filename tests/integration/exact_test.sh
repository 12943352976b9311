#!/usr/bin/env bash
# exact_test.sh -- the exact solver (optimizer kind "exact") with real processes
# (`psfleet up --train-only`, 2 ps nodes, ipc:// URLs, free metrics ports):
#  1. with 1, 2 and 4 trainers (sync), and 2 trainers in async, the weights the
#     ps nodes store (mdb_dump -s weights) are the same bytes;
#  2. they equal an independent dgelsd solve on the same features (exact_ref) to
#     float32 precision, and the fleet's test RMSE is that optimum's;
#  2b. with a per-symbol bias (fixed effects) the same, against dgelsd with one
#     dummy column per symbol;
#  3. collinear features (lag:0 and sma:1 are the same column) give a warning
#     that names them, and the run still completes;
#  4. a non-linear model with kind exact is refused with a clear error;
#  5. the seed chapter's shape (1000 symbols x 1000 days, its features, target
#     next_close, last 20% test): the fleet's test RMSE is within 0.1% of the
#     optimum (run once, 4 trainers).
#
# Usage: exact_test.sh EXACT_REF (the helper binary). Env: PSFLEET.
set -u

PSFLEET=${PSFLEET:?set PSFLEET to the psfleet binary}
REF=${1:?usage: exact_test.sh EXACT_REF}
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init exact_test psf-exact
command -v mdb_dump >/dev/null || {
	echo "exact_test: mdb_dump not found (apt-get install lmdb-utils)"
	exit 1
}

SEED_FEATURES='["lag:1", "lag:5", "sma:10", "std:20", "lag:0"]'

# write_cfg FILE DIR N_TRAINERS MODE DATA FEATURES [MODEL [SYMBOL_BIAS]]
write_cfg() {
	local file=$1 dir=$2 ntr=$3 mode=$4 data=$5 feats=$6 model=${7:-linear} bias=${8:-false}
	local ports
	read -r -a ports <<<"$(free_ports $((2 + ntr)))"
	{
		echo "name: ex"
		echo "seed: 42"
		echo "run_dir: $dir/run"
		echo "log_level: info"
		yaml_ps_trainers "$dir" 2 "$ntr" "${ports[@]}"
		echo "data: {path: $data, test_fraction: 0.2}"
		echo "features: $feats"
		echo "target: next_close"
		echo "model: {kind: $model, l2: 0, symbol_bias: $bias}"
		echo "optimizer: {kind: exact}"
		echo "consistency: {mode: $mode, straggler_timeout_ms: 60000, heartbeat_ms: 500}"
		echo "durability: {mode: interval, interval_ms: 200, map_size: 268435456}"
		echo "limits: {request_timeout_ms: 30000, rpc_workers: 4}"
	} >"$file"
}

# run_fleet NAME N_TRAINERS MODE DATA FEATURES [SYMBOL_BIAS]: runs it under
# $W/NAME; sets OUT.
run_fleet() {
	local dir=$W/$1
	mkdir -p "$dir"
	write_cfg "$dir/fleet.yaml" "$dir" "$2" "$3" "$4" "$5" linear "${6:-false}"
	OUT=$dir/up.out
	start_up "$OUT" "$dir/fleet.yaml" --train-only --metrics-out "$dir/m.json"
	wait_exit "$UP_PID" 300
	untrack "$UP_PID"
	[ "$RC" = 0 ] || {
		fail "$1: psfleet up exited $RC: $(tail -5 "$OUT")"
		return 1
	}
	mdb_dump -s weights "$dir/run/ps0" >"$dir/w0.dump" 2>/dev/null || fail "$1: mdb_dump ps0"
	mdb_dump -s weights "$dir/run/ps1" >"$dir/w1.dump" 2>/dev/null || fail "$1: mdb_dump ps1"
	grep '^ ' "$dir/w0.dump" "$dir/w1.dump" | sed 's/^[^:]*://' >"$dir/weights"
}

json_num() { grep -Eo "\"$2\": *[-0-9.e+]+" "$1" | head -1 | sed 's/.*: *//'; }
kv() { awk -v k="$2" '$1 == k { print $2 }' "$1"; }
# within A B REL: |A - B| <= REL * |B|
within() { awk -v a="$1" -v b="$2" -v r="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; if (b < 0) b = -b; exit !(d <= r * b) }'; }

"$PSFLEET" data gen --symbols 48 --days 300 --seed 11 --out "$W/small.csv" >/dev/null 2>&1 ||
	fail "data gen small"

# 1 + 2: the same bytes over 1, 2 and 4 trainers, and in async; equal to dgelsd.
for run in "t1 1 sync" "t2 2 sync" "t4 4 sync" "a2 2 async"; do
	read -r name ntr mode <<<"$run"
	run_fleet "$name" "$ntr" "$mode" "$W/small.csv" "$SEED_FEATURES" || continue
	[ -s "$W/$name/weights" ] || fail "$name: no weights stored"
	grep -q "exact solver: weights assigned as model version" "$W/$name/run/logs/trainer-0.log" ||
		fail "$name: trainer-0 did not assign the weights"
done
for name in t2 t4 a2; do
	cmp -s "$W/t1/weights" "$W/$name/weights" ||
		fail "weights of $name differ from those of 1 trainer: $(diff "$W/t1/weights" "$W/$name/weights" | head -4)"
done
say "weights identical over 1, 2, 4 trainers (sync) and 2 (async): $(wc -l <"$W/t1/weights") lines"
(cd "$W" && "$REF" "$W/t1/fleet.yaml" "$W/t1/w0.dump" "$W/t1/w1.dump" >"$W/t1/ref" 2>/dev/null) ||
	fail "exact_ref failed"
ref=$(kv "$W/t1/ref" ref_rmse)
served=$(kv "$W/t1/ref" served_rmse)
relerr=$(kv "$W/t1/ref" max_rel_err)
fleet=$(json_num "$W/t1/m.json" test_rmse)
say "small: optimum rmse $ref, served weights $served, fleet reports $fleet, weights rel err $relerr"
[ "$(kv "$W/t1/ref" dump_keys)" = 2 ] || fail "expected 2 weight keys in the dumps"
awk -v e="$relerr" 'BEGIN { exit !(e != "" && e <= 1e-6) }' ||
	fail "served weights differ from dgelsd's by $relerr (relative)"
within "$served" "$ref" 1e-6 || fail "served weights' rmse $served != optimum $ref"
within "$fleet" "$ref" 1e-5 || fail "fleet's test rmse $fleet != optimum $ref"
grep -q "model version 1," "$W/t1/up.out" || fail "psfleet up does not show model version 1"

# 2b: a per-symbol bias (fixed effects): the same bytes over 1 and 3 trainers,
# and the test RMSE of dgelsd with one dummy column per symbol.
run_fleet fe1 1 sync "$W/small.csv" "$SEED_FEATURES" true
run_fleet fe3 3 sync "$W/small.csv" "$SEED_FEATURES" true
cmp -s "$W/fe1/weights" "$W/fe3/weights" || fail "symbol bias: weights of 3 trainers differ from 1's"
[ "$(wc -l <"$W/fe1/weights")" -gt 50 ] || fail "symbol bias: expected the symbols' bias rows in the store"
(cd "$W" && "$REF" "$W/fe1/fleet.yaml" >"$W/fe1/ref" 2>/dev/null) || fail "exact_ref fe"
ref=$(kv "$W/fe1/ref" ref_rmse)
fleet=$(json_num "$W/fe3/m.json" test_rmse)
say "symbol bias: fixed-effects optimum rmse $ref, fleet (3 trainers) $fleet"
within "$fleet" "$ref" 1e-5 || fail "symbol bias: fleet's rmse $fleet != fixed-effects optimum $ref"

# 3: collinear features are named in a warning; the run completes.
if run_fleet col 2 sync "$W/small.csv" '["lag:0", "sma:1", "lag:1"]'; then
	grep -h "collinear" "$W"/col/run/logs/trainer-*.log | grep -q "lag:0, sma:1" ||
		fail "no warning naming lag:0 and sma:1: $(grep -h exact "$W"/col/run/logs/trainer-0.log | head -3)"
fi

# 4: exact with an mlp is refused at load time.
mkdir -p "$W/bad"
write_cfg "$W/bad/fleet.yaml" "$W/bad" 1 sync "$W/small.csv" "$SEED_FEATURES" mlp
if "$PSFLEET" up "$W/bad/fleet.yaml" --train-only >"$W/bad/out" 2>&1; then
	fail "an mlp with optimizer kind exact was accepted"
fi
grep -q "optimizer kind 'exact' solves the linear model only" "$W/bad/out" ||
	fail "no clear error for exact + mlp: $(head -3 "$W/bad/out")"

# 5: the seed chapter's shape, once.
t0=$SECONDS
"$PSFLEET" data gen --symbols 1000 --days 1000 --seed 7 --out "$W/seed.csv" >/dev/null 2>&1 ||
	fail "data gen seed"
if run_fleet seed 4 sync "$W/seed.csv" "$SEED_FEATURES"; then
	(cd "$W" && "$REF" "$W/seed/fleet.yaml" >"$W/seed/ref" 2>/dev/null) || fail "exact_ref seed"
	ref=$(kv "$W/seed/ref" ref_rmse)
	naive=$(kv "$W/seed/ref" ref_naive)
	fleet=$(json_num "$W/seed/m.json" test_rmse)
	say "seed shape: optimum rmse $ref, naive $naive, psfleet $fleet ($(grep -o 'training done in [0-9.]* s' "$W/seed/up.out")); case took $((SECONDS - t0)) s"
	within "$fleet" "$ref" 0.001 || fail "seed shape: rmse $fleet is not within 0.1% of the optimum $ref"
fi

[ "$FAILS" -eq 0 ] || exit 1
say "ok"
