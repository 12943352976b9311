#!/usr/bin/env bash
# cache_test.sh -- the binary data cache through `psfleet up` (docs/data.md §9),
# with real processes on ipc:
#   1. the first `up` parses the CSV once and builds DATA.psfcache; its trainers
#      read their symbols from the cache;
#   2. a second `up` on the same data does not parse the CSV (up says so, no
#      node logs a parse, the cache file is the same inode) and gives the same
#      results bit for bit;
#   3. with data.cache=false no cache is made and the results are the same;
#   4. `psfleet data cache check|build` report a stale cache after the CSV
#      changes, and build replaces it.
#
# Env: PSFLEET = the psfleet binary (set by ctest). ipc:// listen URLs only (no
# metrics ports), in this run's temp dir. Every process started here is killed
# by PID at exit.
set -u

PSFLEET=${PSFLEET:?set PSFLEET to the psfleet binary}
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init cache_test psf-cache

# write_cfg FILE DIR DATA: one ps, two trainers, sync (deterministic).
write_cfg() {
	cat >"$1" <<EOF
name: ct
seed: 42
run_dir: $2/run
log_level: info
nodes:
  ps:
    - {id: ps0, listen: "ipc://$2/ps0.ipc"}
  trainers:
    - {id: trainer-0}
    - {id: trainer-1}
data:
  path: $3
features: ["return:1", "return:2", "range", "volume:3"]
target: next_return
model: {kind: linear}
optimizer: {kind: adam, learning_rate: 0.01}
training: {epochs: 2, batch_size: 16}
consistency: {mode: sync, straggler_timeout_ms: 20000, heartbeat_ms: 1000}
durability: {mode: none}
EOF
}

run_up() { # run_up OUT ARGS...: sets RC
	local out=$1 p
	shift
	timeout -s TERM 300 "$PSFLEET" up "$@" >"$out" 2>"$out.err"
	RC=$?
	for p in $(node_pids "$out"); do
		STARTED+=("$p")
	done
}

# results FILE: the metrics that must not depend on the cache (no timings).
results() {
	grep -Eo '"(test_rmse|test_mae|naive_rmse|naive_mae|test_n|train_loss|steps)": [-0-9.eE+]+' "$1"
}

d="$W/c"
mkdir -p "$d"
"$PSFLEET" data gen --symbols 40 --days 250 --seed 3 --skew --out "$d/prices.csv" >/dev/null ||
	fail "data gen"
write_cfg "$d/f.yaml" "$d" "$d/prices.csv"

# 1. first run: parse once, build the cache
run_up "$d/o1" "$d/f.yaml" --train-only --fresh --metrics-out "$d/m1.json"
[ "$RC" -eq 0 ] || fail "run 1: exit $RC: $(tail -3 "$d/o1.err")"
grep -q "psfleet up: parsed .*prices.csv and built its data cache .*prices.csv.psfcache" "$d/o1" ||
	fail "run 1: no build line: $(head -5 "$d/o1")"
[ -f "$d/prices.csv.psfcache" ] || fail "run 1: no prices.csv.psfcache"
n=$(grep -l "rows from cache .*prices.csv.psfcache" "$d"/run/logs/trainer-*.log | wc -l)
[ "$n" -eq 2 ] || fail "run 1: $n of 2 trainers read the cache"
ino1=$(stat -c %i "$d/prices.csv.psfcache")

# 2. second run: no parse anywhere, the same results
run_up "$d/o2" "$d/f.yaml" --train-only --fresh --metrics-out "$d/m2.json"
[ "$RC" -eq 0 ] || fail "run 2: exit $RC: $(tail -3 "$d/o2.err")"
grep -q "psfleet up: data cache .*prices.csv.psfcache is valid: the CSV is not parsed" "$d/o2" ||
	fail "run 2: no 'not parsed' line: $(head -5 "$d/o2")"
parse_re="parsed [0-9]+ symbols|psfleet up: parsed"
if grep -Eq "$parse_re" "$d/o2" "$d/o2.err" "$d"/run/logs/*.log; then
	fail "run 2: something parsed the CSV: $(grep -Eh "$parse_re" "$d/o2" "$d"/run/logs/*.log | head -3)"
fi
[ "$(stat -c %i "$d/prices.csv.psfcache")" = "$ino1" ] || fail "run 2: the cache was rewritten"
[ -n "$(results "$d/m1.json")" ] || fail "run 1: no results in m1.json"
[ "$(results "$d/m1.json")" = "$(results "$d/m2.json")" ] ||
	fail "run 2: results differ: $(results "$d/m1.json" | tr '\n' ' ') vs $(results "$d/m2.json" | tr '\n' ' ')"
say "two runs: the second read the cache only, same results"

# 3. data.cache=false on a copy: no cache file, the same results
mkdir -p "$d/nc"
cp "$d/prices.csv" "$d/nc/prices.csv"
write_cfg "$d/nc/f.yaml" "$d/nc" "$d/nc/prices.csv"
run_up "$d/o3" "$d/nc/f.yaml" --train-only --fresh --set data.cache=false --metrics-out "$d/m3.json"
[ "$RC" -eq 0 ] || fail "no cache: exit $RC: $(tail -3 "$d/o3.err")"
ls "$d/nc/"*.psfcache "$d/nc/run/"*.psfcache >/dev/null 2>&1 && fail "no cache: a cache file was made"
grep -q "from cache" "$d"/nc/run/logs/*.log && fail "no cache: a node read a cache"
[ "$(results "$d/m1.json")" = "$(results "$d/m3.json")" ] ||
	fail "no cache: results differ: $(results "$d/m3.json" | tr '\n' ' ')"
say "data.cache=false: no cache, same results"

# 4. the CLI: check after a change says stale (exit 1), build fixes it
"$PSFLEET" data cache check "$d/prices.csv" >/dev/null || fail "check: valid cache not valid"
echo "2025-01-02,S0000,1,2,0.5,1.5,100" >>"$d/prices.csv"
"$PSFLEET" data cache check "$d/prices.csv" >/dev/null 2>"$d/chk.err" && fail "check: stale cache valid"
grep -q "the input changed" "$d/chk.err" || fail "check: $(cat "$d/chk.err")"
"$PSFLEET" data cache build "$d/prices.csv" >"$d/b.out" 2>/dev/null || fail "build: exit $?"
grep -q "prices.csv.psfcache is valid" "$d/b.out" || fail "build: $(cat "$d/b.out")"
"$PSFLEET" data cache check "$d/prices.csv" >/dev/null || fail "check after build: not valid"
"$PSFLEET" data cache frobnicate "$d/prices.csv" 2>/dev/null
[ $? -eq 2 ] || fail "cache: a bad verb is not a usage error"
say "data cache check/build"

[ "$FAILS" -eq 0 ] || exit 1
say "ok"
