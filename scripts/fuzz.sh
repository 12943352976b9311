#!/usr/bin/env bash
# Long fuzzing campaigns with the libFuzzer targets of tests/fuzz (docs/security.md).
#
#   scripts/fuzz.sh                      every target, 600 s each, one after the other
#   scripts/fuzz.sh -t 3600 rpc wire     chosen targets, one hour each
#   scripts/fuzz.sh -j 2 -t 600 rpc      two fuzzing jobs for the target (2 cores here)
#   scripts/fuzz.sh --merge              also merge what was found back into the seed
#                                        corpus (tests/fuzz/corpus/<target>, minimised)
#   scripts/fuzz.sh --smoke              5 s each (what CI runs through ctest -L fuzz)
#
# Builds build-fuzz with clang (-DPSF_FUZZ=ON: -fsanitize=fuzzer,address,undefined).
# The working corpus grows in build-fuzz/corpus/<target> (seeded from the checked-in
# one), crashes land in build-fuzz/artifacts/<target>/; the script ends with one line
# per target (runs, corpus size, crashes) and exits 1 when any target crashed.
# Reproduce a crash:  build-fuzz/tests/fuzz/fuzz_<target> build-fuzz/artifacts/<target>/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=600
jobs=1
merge=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    -t) seconds=$2; shift 2 ;;
    -j) jobs=$2; shift 2 ;;
    --merge) merge=1; shift ;;
    --smoke) seconds=5; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(wire rpc config csv)

command -v clang >/dev/null || { echo "fuzz.sh: needs clang (scripts/install-deps.sh installs it)" >&2; exit 2; }
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPSF_FUZZ=ON -DPSF_WERROR=OFF >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target "${targets[@]/#/fuzz_}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:suppressions=$PWD/tests/fuzz/ubsan.supp}
export OPENBLAS_NUM_THREADS=1
status=0
summary=()
for t in "${targets[@]}"; do
  bin=build-fuzz/tests/fuzz/fuzz_$t
  work=build-fuzz/corpus/$t
  art=build-fuzz/artifacts/$t
  mkdir -p "$work" "$art"
  cp -rn tests/fuzz/corpus/"$t"/. "$work"/ 2>/dev/null || true
  log=build-fuzz/fuzz-$t.log
  echo "== fuzz_$t: $seconds s, $jobs job(s), log $log"
  rc=0
  if [ "$jobs" -gt 1 ]; then
    "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=3072 -print_final_stats=1 \
      -artifact_prefix="$art/" -jobs="$jobs" -workers="$jobs" "$work" >"$log" 2>&1 || rc=$?
    cat fuzz-*.log >>"$log" 2>/dev/null && rm -f fuzz-*.log
  else
    "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=3072 -print_final_stats=1 \
      -artifact_prefix="$art/" "$work" >"$log" 2>&1 || rc=$?
  fi
  runs=$(grep -h '^stat::number_of_executed_units' "$log" | awk '{s += $2} END {print s + 0}')
  crashes=$(find "$art" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
  size=$(find "$work" -type f | wc -l)
  if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    status=1
    grep -E 'ERROR|SUMMARY|runtime error' "$log" | head -5 || true
  fi
  summary+=("fuzz_$t runs=$runs corpus=$size crashes=$crashes rc=$rc")
  if [ "$merge" -eq 1 ]; then
    mkdir -p "$work.min"
    "$bin" -merge=1 "$work.min" tests/fuzz/corpus/"$t" "$work" >/dev/null 2>&1 || true
    cp -n "$work.min"/* tests/fuzz/corpus/"$t"/ 2>/dev/null || true
    rm -rf "$work.min"
  fi
done
echo "== summary"
printf '%s\n' "${summary[@]}"
exit $status
