#!/usr/bin/env bash
# layers_test.sh: the include rules of docs/architecture.md hold in the tree, and
# scripts/check-layers.sh does catch each kind of violation (a tree made here).
set -uo pipefail
src=${PSF_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
check="$src/scripts/check-layers.sh"
rc=0

if ! bash "$check" "$src"; then
	echo "layers_test: FAIL: the tree breaks the layer rules (above)" >&2
	rc=1
fi

tmp=$(mktemp -d /tmp/psf-layers-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lib/model" "$tmp/lib/base" "$tmp/ps" "$tmp/gateway" "$tmp/cli/experiment"
printf '#include "lib/model/model.h"\n#include "lib/base/err.h"\n' > "$tmp/lib/model/ok.c"
printf '#include "lib/data/data.h"\n' > "$tmp/lib/model/up.c"          # a layer above
printf '#include <lmdb.h>\n' > "$tmp/lib/base/lmdb_use.c"                # a foreign wrapper
printf '#include "lib/data/features.h"\n' > "$tmp/ps/feat.c"            # ps may not use data
printf '#include "inferer/internal.h"\n' > "$tmp/gateway/role.c"         # roles never include roles
printf '#include "log.h"\n' > "$tmp/lib/base/bare.c"                     # spelled from the root
printf '#include "cli/experiment/report.h"\n' > "$tmp/cli/cmd.c"        # cli/experiment is above cli
printf '#include "cli/supervisor.h"\n' > "$tmp/cli/experiment/ok.c"
out=$(bash "$check" "$tmp" 2>&1)
status=$?
if [ "$status" -ne 1 ]; then
	echo "layers_test: FAIL: check-layers.sh exited $status on a tree with violations" >&2
	rc=1
fi
for want in "lib/model/up.c:1: lib/model may not include lib/data" \
    "lib/base/lmdb_use.c:1: <lmdb.h> belongs to ps, not lib/base" \
    "ps/feat.c:1: ps may not include lib/data" \
    "gateway/role.c:1: gateway may not include inferer" \
    "cli/cmd.c:1: cli may not include cli/experiment" \
    "lib/base/bare.c:1: include \"log.h\": spell project includes from the root"; do
	if [[ $out != *"$want"* ]]; then
		echo "layers_test: FAIL: no '$want' in:" >&2
		echo "$out" >&2
		rc=1
	fi
done
if [[ $out == *"ok.c"* ]]; then
	echo "layers_test: FAIL: a good file was reported: $out" >&2
	rc=1
fi
[ "$rc" -eq 0 ] && echo "layers_test: ok"
exit "$rc"
