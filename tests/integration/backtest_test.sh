#!/usr/bin/env bash
# backtest_test.sh -- `psfleet backtest` with real fleets (ps, 2 trainers, an
# inferer as `psfleet node` processes) on generated data: 60 symbols x 600
# business days, 4 origins x 20 days = 4800 one-step forecasts. Checks: the
# three files exist and parse; the overall metrics recomputed from results.csv
# (awk) match summary.json; each forecast's interval contains its forecast and
# the 95% one contains the 80% one; the empirical coverage of the split-conformal
# intervals is within 3 points of the nominal 80% and 95% (binomial standard
# error at n = 4800: 0.6 and 0.3 points); bad arguments exit 2 with one line.
# The fleet requires a shared-secret token (security.token_file), so the
# backtest's own client (the forecasts) must send it as the nodes do; a config
# whose token file went missing is refused with exit 2 before any fleet starts.
#
# Env: PSFLEET = the psfleet binary (set by ctest). ipc:// URLs in a temp dir, no
# ports. Every process is started by the backtest's supervisor and stopped by it.
set -u

PSFLEET=${PSFLEET:?set PSFLEET to the psfleet binary}
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init backtest_test psf-backtest

lib_on_exit() {
	local f
	[ "$FAILS" -gt 0 ] || return 0
	for f in "$W"/out/runs/*/*.log; do
		[ -f "$f" ] && { echo "--- $f (last 8 lines)"; tail -n 8 "$f"; }
	done
}

"$PSFLEET" data gen --symbols 60 --days 600 --seed 11 --out "$W/data.csv" >/dev/null || exit 1
echo "backtest-test-secret" >"$W/token"
cat >"$W/fleet.yaml" <<YAML
name: backtest-test
seed: 42
run_dir: $W/run
nodes:
  ps:
    - {id: ps0, listen: "ipc://$W/ps0.sock"}
  trainers:
    - {id: trainer-0}
    - {id: trainer-1}
  inferers:
    - {id: inferer-0, listen: "ipc://$W/inferer-0.sock", shard: 0}
data: {path: $W/data.csv, test_fraction: 0.2}
features: ["lag:0", "return:1", "return:2", "ratio_sma:5"]
target: next_close
model: {kind: linear}
optimizer: {kind: adam, learning_rate: 0.01}
training: {epochs: 3, batch_size: 128}
consistency: {mode: sync, straggler_timeout_ms: 5000, heartbeat_ms: 200}
durability: {mode: none, map_size: 67108864}
inference: {refresh_ms: 100, history_days: 32}
security: {token_file: $W/token}
YAML

# bad arguments: exit 2, one line
out=$("$PSFLEET" backtest "$W/fleet.yaml" 2>&1)
[ $? -eq 2 ] && [ "$(wc -l <<<"$out")" -eq 1 ] || fail "no --origins: want exit 2, got: $out"
out=$("$PSFLEET" backtest "$W/fleet.yaml" --origins 2 --coverage 1.2 2>&1)
[ $? -eq 2 ] || fail "--coverage 1.2: want exit 2, got: $out"
out=$("$PSFLEET" backtest "$W/fleet.yaml" --origins 100 --horizon 20 --out "$W/x" 2>&1)
[ $? -eq 2 ] && [[ "$out" == *"need at least"* ]] || fail "too many origins: want exit 2, got: $out"
out=$("$PSFLEET" backtest "$W/fleet.yaml" --origins 1 --set "security.token_file=$W/none" --out "$W/x" 2>&1)
[ $? -eq 2 ] && [[ "$out" == *"cannot read security.token_file"* ]] ||
	fail "a missing token file: want exit 2, got: $out"

t0=$(date +%s)
"$PSFLEET" backtest "$W/fleet.yaml" --origins 4 --horizon 20 --out "$W/out" >"$W/bt.log" 2>&1 ||
	fail "backtest failed: $(tail -3 "$W/bt.log")"
say "backtest of 4 origins (token-protected fleet) took $(($(date +%s) - t0)) s"
for f in results.csv summary.json report.html; do
	[ -s "$W/out/$f" ] || fail "$f missing or empty"
done
grep -q '<svg id="chart-coverage"' "$W/out/report.html" && grep -q '</html>' "$W/out/report.html" ||
	fail "report.html has no coverage chart"

# summary.json's overall block: "key": value pairs on one line
overall=$(grep -o '"overall": {[^}]*}[^}]*}[^}]*' "$W/out/summary.json")
field() { grep -o "\"$1\": [-0-9.e]*" <<<"$overall" | head -1 | awk '{print $2}'; }
cov_field() { grep -o "\"coverage\": {[^}]*}" <<<"$overall" | grep -o "\"$1\": [0-9.e-]*" | awk '{print $2}'; }

# recompute from results.csv: columns last_close 8, actual 9, forecast 10,
# lower_80 11, upper_80 12, lower_95 13, upper_95 14
read -r n rmse mae nrmse hit c80 c95 bad < <(awk -F, 'NR > 1 {
	e = $10 - $9; ne = $8 - $9; n++; sse += e * e; sae += (e < 0 ? -e : e); nsse += ne * ne
	if ($9 != $8) { moved++; if (($10 > $8) == ($9 > $8)) hits++ }
	if ($11 <= $9 && $9 <= $12) c80++
	if ($13 <= $9 && $9 <= $14) c95++
	if (!($11 <= $10 && $10 <= $12 && $13 <= $11 && $12 <= $14)) bad++
} END { printf "%d %.9g %.9g %.9g %.9g %.9g %.9g %d\n", n, sqrt(sse / n), sae / n,
	sqrt(nsse / n), hits / moved, c80 / n, c95 / n, bad }' "$W/out/results.csv")
say "n=$n rmse=$rmse naive_rmse=$nrmse mae=$mae hit=$hit coverage80=$c80 coverage95=$c95"
[ "$n" -eq 4800 ] || fail "want 4800 forecasts (60 symbols x 80 days), got $n"
[ "$n" = "$(field n)" ] || fail "n: results.csv $n, summary.json $(field n)"
close() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-6 * (b < 0 ? -b : b) + 1e-9) }'; }
close "$rmse" "$(field rmse)" || fail "rmse: results.csv $rmse, summary.json $(field rmse)"
close "$mae" "$(field mae)" || fail "mae: results.csv $mae, summary.json $(field mae)"
close "$nrmse" "$(field naive_rmse)" || fail "naive_rmse: results.csv $nrmse, summary.json $(field naive_rmse)"
close "$hit" "$(field hit_rate)" || fail "hit_rate: results.csv $hit, summary.json $(field hit_rate)"
close "$c80" "$(cov_field 0.8)" || fail "coverage 0.8: results.csv $c80, summary.json $(cov_field 0.8)"
close "$c95" "$(cov_field 0.95)" || fail "coverage 0.95: results.csv $c95, summary.json $(cov_field 0.95)"
[ "$bad" -eq 0 ] || fail "$bad forecasts with an interval not around the forecast or not nested"
awk -v c="$c80" 'BEGIN { exit !(c >= 0.77 && c <= 0.83) }' || fail "80% coverage is $c80"
awk -v c="$c95" 'BEGIN { exit !(c >= 0.92 && c <= 0.98) }' || fail "95% coverage is $c95"

[ "$FAILS" -eq 0 ] || exit 1
say "ok"
