#!/usr/bin/env bash
# Installs the Debian packages psfleet builds, tests and benchmarks with, only when
# missing. Runs as root (or through sudo when available). Idempotent.
set -euo pipefail

pkgs=(
  build-essential cmake pkg-config
  libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
  libnng-dev nng-utils
  liblmdb-dev lmdb-utils
  libopenblas-dev liblapacke-dev
  libcmocka-dev
  libcyaml-dev libyaml-dev
  libxxhash-dev
  curl iproute2 openssl procps
  python3-yaml
  clang libclang-rt-14-dev clang-format
  python3 python3-pip python3-venv python3-setuptools python3-pandas
  slurm-wlm munge # tests/integration/slurm_test.sh runs a 3-node cluster on this machine
)

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
fi
echo "install-deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
