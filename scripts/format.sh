#!/usr/bin/env bash
# format.sh [--check]: apply .clang-format to every C file git tracks (or, with
# --check, list the files that differ and exit 1). Generated code is not tracked.
set -euo pipefail
cd "$(dirname "$0")/.."
cf=${CLANG_FORMAT:-clang-format}
if ! command -v "$cf" >/dev/null; then
	echo "format.sh: $cf not found (apt-get install clang-format; scripts/install-deps.sh does)" >&2
	exit 2
fi
mapfile -t files < <(git ls-files '*.c' '*.h')
if [ "${1:-}" = --check ]; then
	bad=0
	for f in "${files[@]}"; do
		if ! "$cf" --dry-run --Werror "$f" >/dev/null 2>&1; then
			echo "format.sh: $f differs from .clang-format (scripts/format.sh fixes it)" >&2
			bad=1
		fi
	done
	[ "$bad" -eq 0 ] && echo "format.sh: ${#files[@]} files follow .clang-format"
	exit "$bad"
fi
"$cf" -i "${files[@]}"
echo "format.sh: formatted ${#files[@]} files"
