#!/usr/bin/env bash
# check-layers.sh [ROOT]: fails when a source file includes a header of a layer it may
# not use (docs/architecture.md). Run by ctest as "layers".
#
#   base <- {net, config} <- {runtime, data, model} <- roles <- cli <- cli/experiment <- cli/backtest
#
# Each folder below lists the folders whose headers it may include (its own always).
# Third-party headers are confined to the one layer that wraps them.
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"

# folder -> allowed include folders (space separated); "proto" is the generated psfleet.pb-c.h
declare -A allow=(
  [lib/base]=""
  [lib/net]="lib/base proto"
  [lib/config]="lib/base"
  [lib/runtime]="lib/base lib/net lib/config proto"
  [lib/data]="lib/base lib/config"
  [lib/model]="lib/base lib/config"
  [ps]="lib/base lib/net lib/config lib/runtime lib/model proto"
  [trainer]="lib/base lib/net lib/config lib/runtime lib/data lib/model proto"
  [inferer]="lib/base lib/net lib/config lib/runtime lib/data lib/model proto"
  [gateway]="lib/base lib/net lib/config lib/runtime proto"
  [client]="lib/base lib/net proto"
  [cli]="lib/base lib/net lib/config lib/runtime lib/data lib/model ps trainer inferer gateway client proto"
  [cli/experiment]="lib/base lib/net lib/config lib/runtime lib/data lib/model ps trainer inferer gateway client proto cli"
  [cli/backtest]="lib/base lib/net lib/config lib/runtime lib/data lib/model ps trainer inferer gateway client proto cli cli/experiment"
)
# third-party header (prefix) -> the folders that may include it
declare -A third=(
  [lmdb.h]="ps"
  [nng/]="lib/net lib/runtime"
  [cblas.h]="lib/model trainer"
  [lapacke.h]="lib/model"
  [yaml.h]="lib/config"
  [cyaml/]="lib/config"
)

folder_of() { # folder_of PATH: the layer folder a path belongs to, or ""
  case "$1" in
    lib/*/*) echo "${1%/*}" | cut -d/ -f1-2 ;;
    cli/experiment/*) echo cli/experiment ;;
    cli/backtest/*) echo cli/backtest ;;
    ps/*|trainer/*|inferer/*|gateway/*|client/*|cli/*) echo "${1%%/*}" ;;
    *) echo "" ;;
  esac
}

bad=0 n=0
while IFS= read -r f; do
  from=$(folder_of "$f")
  [ -n "$from" ] || continue
  [ -n "${allow[$from]+x}" ] || { echo "check-layers: $f: folder $from has no rule" >&2; bad=1; continue; }
  n=$((n + 1))
  while IFS=: read -r line text; do
    if [[ $text =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]*\"([^\"]+)\" ]]; then
      hdr=${BASH_REMATCH[1]}
      if [ "$hdr" = psfleet.pb-c.h ]; then
        to=proto
      elif [[ $hdr == */* ]]; then
        to=$(folder_of "$hdr")
        if [ -z "$to" ]; then
          echo "$f:$line: include \"$hdr\": not a project path (spell includes from the root)" >&2
          bad=1; continue
        fi
      else
        echo "$f:$line: include \"$hdr\": spell project includes from the root (e.g. \"$from/$hdr\")" >&2
        bad=1; continue
      fi
      [ "$to" = "$from" ] && continue
      if [[ " ${allow[$from]} " != *" $to "* ]]; then
        echo "$f:$line: $from may not include $to (\"$hdr\")" >&2
        bad=1
      fi
    elif [[ $text =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]*\<([^\>]+)\> ]]; then
      hdr=${BASH_REMATCH[1]}
      for t in "${!third[@]}"; do
        if [[ $hdr == "$t"* ]] && [[ " ${third[$t]} " != *" $from "* ]]; then
          echo "$f:$line: <$hdr> belongs to ${third[$t]}, not $from" >&2
          bad=1
        fi
      done
    fi
  done < <(grep -n '^[[:space:]]*#[[:space:]]*include' "$f" || true)
done < <(git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' | sed 's#^\./##')

if [ "$bad" -ne 0 ]; then
  echo "check-layers: FAILED (docs/architecture.md lists what each folder may include)" >&2
  exit 1
fi
echo "check-layers: $n files, every include follows the layers"
