#!/usr/bin/env bash
# The README's main command: install deps, build, and run the demo fleet
# (examples/fleet.yaml: 2 ps, 4 trainers, 2 inferers, 1 gateway on 127.0.0.1).
# `psfleet up` generates the demo data on first run, trains, prints test RMSE
# against the naive forecast, then serves predictions until Ctrl-C.
# Extra arguments go to `psfleet up` (e.g. --train-only --metrics-out m.json).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc 2>/dev/null || echo 2)" --target psfleet
exec build/cli/psfleet up "${PSF_DEMO_CONFIG:-examples/fleet.yaml}" "$@"
