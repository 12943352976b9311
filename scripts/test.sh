#!/usr/bin/env bash
# The README's test command: install deps, build (normal + ASan/UBSan), run every test.
#   scripts/test.sh            every configuration of the default list
#   PSF_TEST_CONFIGS=normal scripts/test.sh    only one
#   release (in the default list): -DCMAKE_BUILD_TYPE=Release (-O3) is only built, not
#   tested: GCC's -O3 inlining finds warnings (-Werror) the other builds do not.
#   fuzz (in the default list): clang + libFuzzer targets, a few seconds each
#   (PSF_FUZZ_SMOKE_SECONDS, default 5); scripts/fuzz.sh runs long campaigns.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

jobs=$(nproc 2>/dev/null || echo 2)
configs=${PSF_TEST_CONFIGS:-"normal asan release fuzz"}
status=0
for c in $configs; do
  case "$c" in
    normal) dir=build; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
    asan)   dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=Debug -DPSF_SANITIZE=ON) ;;
    release) dir=build-release; flags=(-DCMAKE_BUILD_TYPE=Release) ;;
    fuzz)   dir=build-fuzz; flags=(-DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo
              -DPSF_FUZZ=ON -DPSF_WERROR=OFF -DPSF_FUZZ_SMOKE_SECONDS="${PSF_FUZZ_SMOKE_SECONDS:-5}") ;;
    *) echo "test.sh: unknown config '$c'" >&2; exit 2 ;;
  esac
  echo "== $c: configure + build ($dir)"
  cmake -S . -B "$dir" "${flags[@]}" >/dev/null
  if [ "$c" = fuzz ]; then
    cmake --build "$dir" -j "$jobs" --target fuzz_wire fuzz_rpc fuzz_config fuzz_csv
    echo "== $c: ctest -L fuzz"
    ctest --test-dir "$dir" --output-on-failure -L fuzz || status=1
    continue
  fi
  if [ "$c" = release ]; then
    cmake --build "$dir" -j "$jobs" || status=1
    continue
  fi
  cmake --build "$dir" -j "$jobs"
  echo "== $c: ctest"
  # ASan: leaks are errors; abort on the first report so ctest sees a failure.
  if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
       UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
       ctest --test-dir "$dir" --output-on-failure -j "$jobs" ${PSF_CTEST_ARGS:-}; then
    status=1
  fi
done
exit $status
