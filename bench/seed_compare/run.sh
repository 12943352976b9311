#!/usr/bin/env bash
# bench/seed_compare/run.sh -- the seed pipeline three ways (+ two), in one run (issue 17):
#   dask     the seed chapter's Dask + xgb.dask pipeline (seed_dask.py, §85.8),
#   psfleet  `psfleet up --train-only examples/seed.yaml` (its default settings),
#   limit    bench/seed_limit: read, featurise, closed-form solve in one process,
#   parts    psfleet again, on the partition directory Dask reads (informational),
#   warm     psfleet again, its binary data cache of the CSV already built (informational),
# on the same generated CSV (1000 symbols x 1000 days by default), alternating
# the sides over several repetitions. Each figure is the wall time of the whole
# command (process start to exit), from the CSV to the test metrics. Prints
# per-stage times, test RMSEs, medians with ranges, and `ratio_` lines:
#   ratio_psfleet_vs_dask   dask time / psfleet time (speedup; target >= 10)
#   ratio_psfleet_vs_limit  psfleet time / limit time (target <= 3)
#   ratio_rmse_vs_optimum   psfleet RMSE / limit RMSE (target <= 1.001)
#
# It INSTALLS Debian's python3-dask, python3-distributed, python3-xgboost and
# python3-pandas with apt-get when /usr/bin/python3 cannot import them (root
# needed). They are the bench's own needs: not project dependencies, not in
# scripts/install-deps.sh, not used by any test.
#
# usage: bash bench/seed_compare/run.sh [--reps N] [--symbols N] [--days D]
#                                       [--workers N] [--threads N] [--keep]
# Env: BUILD (default build), the build directory with cli/psfleet and
# bench/seed_limit (built here when missing). The fleet uses examples/seed.yaml's
# ports (7601-7602, 7701-7714): nothing else may hold them during the run.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD:-$root/build}
reps=3 symbols=1000 days=1000 workers=2 threads=1 keep=0
while [ $# -gt 0 ]; do
	case "$1" in
	--reps) reps=$2; shift 2 ;;
	--symbols) symbols=$2; shift 2 ;;
	--days) days=$2; shift 2 ;;
	--workers) workers=$2; shift 2 ;;
	--threads) threads=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	*) echo "usage: $0 [--reps N] [--symbols N] [--days D] [--workers N] [--threads N] [--keep]" >&2
	   exit 2 ;;
	esac
done
py=/usr/bin/python3 # Debian's, with Debian's packages (the PATH python3 may be a pyenv shim)

if ! "$py" -c 'import dask.dataframe, distributed, xgboost, pandas' 2>/dev/null; then
	echo "# installing python3-dask python3-distributed python3-xgboost python3-pandas (apt-get)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
	    python3-dask python3-distributed python3-xgboost python3-pandas >/dev/null
fi
if [ ! -x "$build/cli/psfleet" ] || [ ! -x "$build/bench/seed_limit" ]; then
	cmake --build "$build" -j2 --target psfleet seed_limit >/dev/null
fi
psfleet=$build/cli/psfleet
limit=$build/bench/seed_limit

work=$(mktemp -d /tmp/seed_compare.XXXXXX)
cleanup() { if [ "$keep" = 1 ]; then echo "# kept $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
val() { awk -v k="$1" '$1 == k { print $2; exit }' "$2"; }

echo "# seed_compare: $symbols symbols x $days days, $reps repetitions, $(nproc) cpus"
echo "# load at start: $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min)"
echo "# versions: $("$py" -c 'import dask, distributed, xgboost, pandas; print("dask", dask.__version__, "distributed", distributed.__version__, "xgboost", xgboost.__version__, "pandas", pandas.__version__)')"

csv=$work/seed.csv
"$psfleet" data gen --out "$csv" --symbols "$symbols" --days "$days" --seed 7 >/dev/null
echo "csv_bytes $(stat -c %s "$csv") bytes"
# The chapter's pipeline reads data partitioned by symbol (§85.8 step 1); this is
# its layout in CSV. Preparation, like generating: not in the Dask time below.
t=$(now)
"$psfleet" data partition "$csv" --out "$work/parts" >/dev/null
echo "dask_prep_partition_seconds $(secs "$t" "$(now)") s (not counted)"
"$limit" "$csv" >"$work/limit_0.out"
cutoff=$(val limit_cutoff "$work/limit_0.out")
echo "# cutoff $cutoff: test rows are dated >= it (psf_data_cutoff_date, test_fraction 0.2)"

# timed SIDE REP CMD...: runs CMD (stdout to SIDE_REP.out, stderr to SIDE_REP.err)
# and appends its wall time and the CPU time (user + sys) of it and every process
# it waited for (Dask's workers, psfleet's nodes) as SIDE_wall_seconds and
# SIDE_cpu_seconds.
timed() {
	local side=$1 rep=$2 tf=$work/time.tmp TIMEFORMAT='%R %U %S' rc=0
	shift 2
	date +%s.%N >"$work/${side}_$rep.t0"
	{ time "$@" >"$work/${side}_$rep.out" 2>"$work/${side}_$rep.err" || rc=$?; } 2>"$tf"
	if [ "$rc" != 0 ]; then
		echo "$side failed (exit $rc): $*" >&2
		tail -20 "$work/${side}_$rep.err" >&2
		exit 1
	fi
	read -r wall user sys <"$tf"
	echo "${side}_wall_seconds $wall" >>"$work/${side}_$rep.out"
	echo "${side}_cpu_seconds $(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.3f", u + s }')" \
	    >>"$work/${side}_$rep.out"
}
run_dask() { # $1 = rep
	mkdir -p "$work/dask_$1"
	timed dask "$1" "$py" "$here/seed_dask.py" "$work/parts" --cutoff "$cutoff" \
	    --workers "$workers" --threads "$threads" --out "$work/dask_$1"
}
# fleet SIDE REP DATA: psfleet up --train-only on DATA; the config's relative
# paths are all overridden.
fleet() {
	timed "$1" "$2" "$psfleet" up "$root/examples/seed.yaml" --train-only \
	    --set "data.path=$3" --set "run_dir=$work/run_$1_$2" \
	    --metrics-out "$work/$1_$2.json"
	"$py" - "$1" "$work/$1_$2.json" >>"$work/$1_$2.out" <<'PY'
import json, sys
s, m = sys.argv[1], json.load(open(sys.argv[2]))
print("%s_train_seconds %.3f" % (s, m["train_seconds"]))
print("%s_test_rmse %.9g" % (s, m["test_rmse"]))
print("%s_naive_rmse %.9g" % (s, m["naive_rmse"]))
print("%s_test_n %d" % (s, m["test_n"]))
PY
}
# psfleet keeps a binary cache of the parsed data beside it (docs/data.md §9):
# `psfleet` starts without one (from the CSV: up parses it once, builds the
# cache, the trainers read their symbols from it); `warm` is a second run on the
# same CSV, its cache already there (informational).
run_psfleet() {
	rm -f "$csv.psfcache"
	fleet psfleet "$1" "$csv"
}
run_warm() {
	[ -f "$csv.psfcache" ] || "$psfleet" data cache build "$csv" >/dev/null
	fleet warm "$1" "$csv"
}
# The same fleet on the partition directory Dask reads (informational: the
# targets are about the CSV): the trainers' plan reads manifest.csv and
# dates.csv, and each trainer reads only its own symbols' files.
run_parts() {
	rm -f "$work/parts.psfcache"
	fleet parts "$1" "$work/parts"
}
run_limit() { # $1 = rep
	timed limit "$1" "$limit" "$csv"
}

sides=(dask psfleet limit parts warm)
for ((r = 1; r <= reps; r++)); do
	order=()
	for ((k = 0; k < 5; k++)); do order+=("${sides[$(((r - 1 + k) % 5))]}"); done
	for s in "${order[@]}"; do "run_$s" "$r"; done
	echo "# rep $r (${order[*]}): dask $(val dask_wall_seconds "$work/dask_$r.out") s," \
	    "psfleet $(val psfleet_wall_seconds "$work/psfleet_$r.out") s," \
	    "limit $(val limit_wall_seconds "$work/limit_$r.out") s," \
	    "psfleet on parts $(val parts_wall_seconds "$work/parts_$r.out") s," \
	    "psfleet warm $(val warm_wall_seconds "$work/warm_$r.out") s; load $(cut -d' ' -f1 /proc/loadavg)"
done
echo "# load at end: $(cut -d' ' -f1-3 /proc/loadavg)"

# Medians [min-max] of every key over the repetitions, then the ratios.
"$py" - "$work" "$reps" <<'PY'
import glob, os, statistics, sys
work, reps = sys.argv[1], int(sys.argv[2])
vals = {}
for side in ("dask", "psfleet", "limit", "parts", "warm"):
    for r in range(1, reps + 1):
        for line in open(os.path.join(work, "%s_%d.out" % (side, r))):
            f = line.split()
            try:
                x = float(f[1])
            except (IndexError, ValueError):
                continue
            vals.setdefault(f[0], []).append(x)
med = {}
for k, v in vals.items():
    med[k] = statistics.median(v)
    unit = " s" if k.endswith("_seconds") else (" rows" if k.endswith("_n") else "")
    print("%s %.9g%s  [%.9g-%.9g] over %d" % (k, med[k], unit, min(v), max(v), len(v)))
pw, dw, lw = med["psfleet_wall_seconds"], med["dask_wall_seconds"], med["limit_wall_seconds"]
per = lambda a, b, op: [op(x, y) for x, y in zip(vals[a], vals[b])]
sp = per("dask_wall_seconds", "psfleet_wall_seconds", lambda d, p: d / p)
lm = per("psfleet_wall_seconds", "limit_wall_seconds", lambda p, l: p / l)
print("ratio_psfleet_vs_dask %.2f  [%.2f-%.2f per rep] (target >= 10)" % (dw / pw, min(sp), max(sp)))
print("ratio_psfleet_vs_limit %.2f  [%.2f-%.2f per rep] (target <= 3)" % (pw / lw, min(lm), max(lm)))
print("ratio_rmse_vs_optimum %.7f (target <= 1.001)" %
      (med["psfleet_test_rmse"] / med["limit_test_rmse"]))
cp = lambda k: med[k + "_cpu_seconds"]
print("ratio_psfleet_vs_dask_cpu %.2f (CPU time)" % (cp("dask") / cp("psfleet")))
print("ratio_psfleet_vs_limit_cpu %.2f (CPU time)" % (cp("psfleet") / cp("limit")))
print("ratio_parts_vs_limit %.2f (psfleet on the partition directory; CPU %.2f)" %
      (med["parts_wall_seconds"] / lw, cp("parts") / cp("limit")))
print("ratio_warm_vs_limit %.2f (psfleet with its data cache already built; CPU %.2f)" %
      (med["warm_wall_seconds"] / lw, cp("warm") / cp("limit")))
print("ratio_dask_rmse_vs_optimum %.4f" % (med["dask_test_rmse"] / med["limit_test_rmse"]))
PY
echo "# psfleet's wall time by stage (bench/seed_compare/profile.py, from the node logs)"
"$py" "$here/profile.py" "$work" psfleet
echo "# the same, on the partition directory"
"$py" "$here/profile.py" "$work" parts
echo "# the same, with the data cache already built"
"$py" "$here/profile.py" "$work" warm
