#!/usr/bin/env bash
# Network faults between real processes: the ps in one network namespace, two
# trainers in another, joined by a veth pair this test creates, with addresses it
# assigns (10.231.77.1 and .2, which exist only inside these namespaces). While
# training runs (sync mode), the link is cut twice for a few seconds, once with
# `ip link set down` and once with `tc netem loss 100%` (when the kernel has netem),
# then restored. The fleet must recover by itself: no process restarted, every
# trainer exits 0, and the ps applied exactly one round per step (no lost update).
# Also: the ps is reachable only on its configured address.
#
# Needs root and `ip netns`; exits 77 (skipped) where namespaces cannot be made.
# Env: PSFLEET (the binary), PSF_NETNS_CUT_S (seconds per cut, default 3).
set -uo pipefail

skip() { echo "netns_test: skipped: $*"; exit 77; }

[ -n "${PSFLEET:-}" ] && [ -x "$PSFLEET" ] || { echo "netns_test: set PSFLEET" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || skip "needs root"
command -v ip >/dev/null || skip "no ip(8)"
command -v curl >/dev/null || skip "no curl"

tag=$$
NS_PS=psf-ps-$tag
NS_TR=psf-tr-$tag
V_PS=vps$tag
V_TR=vtr$tag
A_PS=10.231.77.1
A_TR=10.231.77.2
cut_s=${PSF_NETNS_CUT_S:-3}
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init netns_test psf-netns # W: this run's temp dir; STARTED: PIDs killed at exit
[ -z "${PSF_NETNS_KEEP:-}" ] || KEEP_W=1

# shellcheck disable=SC2317 # called by lib.sh at exit
lib_on_exit() {
  # Everything this test started runs inside its namespaces: kill by namespace.
  for ns in "$NS_PS" "$NS_TR"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
  done
  ip netns del "$NS_PS" 2>/dev/null
  ip netns del "$NS_TR" 2>/dev/null
}

ip netns add "$NS_PS" 2>/dev/null || skip "cannot create a network namespace"
ip netns add "$NS_TR" || skip "cannot create a second network namespace"
ip link add "$V_PS" type veth peer name "$V_TR" 2>/dev/null || skip "cannot create a veth pair"
ip link set "$V_PS" netns "$NS_PS" && ip link set "$V_TR" netns "$NS_TR" || skip "cannot move veth"
ip -n "$NS_PS" addr add "$A_PS/24" dev "$V_PS"
ip -n "$NS_TR" addr add "$A_TR/24" dev "$V_TR"
for ns in "$NS_PS" "$NS_TR"; do ip -n "$ns" link set lo up; done
ip -n "$NS_PS" link set "$V_PS" up
ip -n "$NS_TR" link set "$V_TR" up
inps() { ip netns exec "$NS_PS" "$@"; }
intr() { ip netns exec "$NS_TR" "$@"; }

# Data (generated here, outside the namespaces) and the config.
"$PSFLEET" data gen --symbols 24 --days 160 --seed 5 --out "$W/data.csv" >/dev/null || exit 1
cat >"$W/fleet.yaml" <<EOF
name: netns
seed: 13
run_dir: $W/run
nodes:
  ps:
    - {id: ps0, listen: "tcp://$A_PS:7101", metrics: "$A_PS:7201"}
  trainers:
    - {id: trainer-0}
    - {id: trainer-1}
data: {path: $W/data.csv}
features: ["return:1", "return:5", "ratio_sma:10"]
target: next_return
model: {kind: linear}
optimizer: {kind: adam, learning_rate: 0.01}
training: {epochs: 10, batch_size: 32}
consistency: {mode: sync, straggler_timeout_ms: 120000, heartbeat_ms: 200}
durability: {mode: every-commit}
limits: {request_timeout_ms: 1000}
EOF

version() {
  inps curl -s --max-time 2 "http://$A_PS:7201/metrics" | awk '$1 == "psfleet_model_version" {print int($2)}'
}

# Started with `ip netns exec` itself (it execs psfleet), not through a shell
# function, so $! is the node's own pid.
ip netns exec "$NS_PS" "$PSFLEET" node "$W/fleet.yaml" --id ps0 >/dev/null 2>"$W/ps0.log" &
STARTED+=($!); ps_pid=$!
for i in 0 1; do
  ip netns exec "$NS_TR" "$PSFLEET" node "$W/fleet.yaml" --id trainer-$i --delay-ms 20 \
    >/dev/null 2>"$W/trainer-$i.log" &
  STARTED+=($!)
done
tr_pids=("${STARTED[1]}" "${STARTED[2]}")

# Bound to its configured address only: not on the namespace's loopback.
sleep 0.5
if inps bash -c "exec 3<>/dev/tcp/127.0.0.1/7101" 2>/dev/null; then
  fail "the ps accepts connections on 127.0.0.1, not only on $A_PS"
fi
# Not reachable from the host's own network either (no route to the namespace).

wait_version() { # wait_version N: until the ps's version >= N (30 s bound)
  for _ in $(seq 300); do
    v=$(version); [ -n "$v" ] && [ "$v" -ge "$1" ] && return 0; sleep 0.1
  done
  return 1
}

cut() { # cut how: cut the link for cut_s seconds, check progress stopped, restore
  local how=$1 before after
  before=$(version)
  case "$how" in
    link-down) intr ip link set "$V_TR" down ;;
    netem) intr tc qdisc add dev "$V_TR" root netem loss 100% ;;
  esac
  sleep 1
  before=$(version)
  sleep "$cut_s"
  after=$(version)
  case "$how" in
    link-down) intr ip link set "$V_TR" up ;;
    netem) intr tc qdisc del dev "$V_TR" root ;;
  esac
  say "$how for $((cut_s + 1)) s: version $before -> $after during the cut"
  [ "$before" = "$after" ] || fail "the ps advanced ($before -> $after) while the trainers were cut off"
}

wait_version 20 || fail "no progress before the first cut"
cut link-down
wait_version $(( $(version) + 20 )) || fail "no recovery after the link came back"
if intr tc qdisc add dev "$V_TR" root netem loss 0% 2>/dev/null; then
  intr tc qdisc del dev "$V_TR" root
  cut netem
else
  say "tc netem unavailable (no sch_netem): second cut with link down"
  cut link-down
fi

for i in 0 1; do
  for _ in $(seq 1200); do kill -0 "${tr_pids[$i]}" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "${tr_pids[$i]}" 2>/dev/null; then fail "trainer-$i did not finish"; continue; fi
  wait "${tr_pids[$i]}"; rc=$?
  [ "$rc" -eq 0 ] || fail "trainer-$i exited with $rc (log: $W/trainer-$i.log)"
done
kill -0 "$ps_pid" 2>/dev/null || fail "the ps died"
final=$(version)
steps=$(( $(wc -l <"$W/run/trace/trainer-0.csv") - 1 ))
steps1=$(( $(wc -l <"$W/run/trace/trainer-1.csv") - 1 ))
say "$steps steps per trainer (trainer-1: $steps1), ps version $final"
[ "$steps" -eq "$steps1" ] || fail "trainers took different step counts"
[ "$final" = "$steps" ] || fail "version $final != $steps steps: an update was lost or applied twice"
if [ "$FAILS" -eq 0 ]; then
  say "1 passed, 0 failed"
  exit 0
fi
tail -5 "$W"/*.log
say "0 passed, 1 failed"
exit 1
