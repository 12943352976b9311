# shellcheck shell=bash
# lib.sh -- helpers the integration scripts share (bash). Source it by the
# script's own directory, then call lib_init:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   lib_init NAME PREFIX
#
# lib_init sets W to a fresh temp dir /tmp/PREFIX-XXXXXX and FAILS to 0, and
# installs the traps: at exit every PID in STARTED is SIGKILLed and waited for,
# the script's own lib_on_exit runs if it defines one (namespaces, printing
# logs), and W is removed unless KEEP_W is set; SIGINT/SIGTERM print
# "NAME: interrupted" and exit 1.

# lib_init NAME PREFIX: see above.
lib_init() {
	LIB_NAME=$1
	W=$(mktemp -d "/tmp/$2-XXXXXX") || exit 1
	FAILS=0
	STARTED=() # PIDs of everything the script started and has not reaped
	trap lib_cleanup EXIT
	trap 'echo "$LIB_NAME: interrupted"; exit 1' INT TERM
}

lib_cleanup() {
	local p
	for p in "${STARTED[@]}"; do
		kill -KILL "$p" 2>/dev/null
	done
	{ wait; } 2>/dev/null
	if declare -F lib_on_exit >/dev/null; then
		lib_on_exit
	fi
	[ -n "${KEEP_W:-}" ] || rm -rf "$W"
}

say() { echo "$LIB_NAME: $*"; }
fail() { # fail MSG: report a failed check and go on (the script exits 1 at the end)
	say "FAIL: $*"
	FAILS=$((FAILS + 1))
}

# untrack PID: the script reaped PID itself; do not kill that number at exit
# (it may belong to another process by then).
untrack() {
	local i
	for i in "${!STARTED[@]}"; do
		[ "${STARTED[$i]}" = "$1" ] && unset "STARTED[$i]"
	done
}

# free_ports N: N distinct TCP ports in 20000..31999 (below the kernel's
# ephemeral range) on which nothing listens right now.
free_ports() {
	local ports=() p
	while [ ${#ports[@]} -lt "$1" ]; do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
		[[ " ${ports[*]} " == *" $p "* ]] && continue
		if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			continue # something listens there
		fi
		ports+=("$p")
	done
	echo "${ports[*]}"
}

# yaml_ps_trainers DIR N_PS N_TRAINERS PORT...: the "nodes:" line and the ps and
# trainers of a test fleet: ps<i> listens on ipc://DIR/ps<i>.ipc; each node's
# metrics take the next PORT (ps first, then trainers: N_PS + N_TRAINERS ports).
yaml_ps_trainers() {
	local dir=$1 nps=$2 ntr=$3 i
	shift 3
	echo "nodes:"
	echo "  ps:"
	for ((i = 0; i < nps; i++)); do
		echo "    - {id: ps$i, listen: \"ipc://$dir/ps$i.ipc\", metrics: \"127.0.0.1:$1\"}"
		shift
	done
	echo "  trainers:"
	for ((i = 0; i < ntr; i++)); do
		echo "    - {id: trainer-$i, metrics: \"127.0.0.1:$1\"}"
		shift
	done
}

# procs_with TEXT: PIDs whose command line contains TEXT (from /proc; no procps needed).
procs_with() {
	local f cmd
	for f in /proc/[0-9]*/cmdline; do
		cmd=$(tr '\0' ' ' <"$f" 2>/dev/null) || continue
		if [[ $cmd == *"$1"* ]]; then
			f=${f#/proc/}
			echo "${f%/cmdline}"
		fi
	done
}

# wait_for FILE REGEX SECONDS: wait until FILE has a line matching REGEX.
wait_for() {
	local deadline=$((SECONDS + $3))
	while [ $SECONDS -lt "$deadline" ]; do
		grep -Eq "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# wait_exit PID SECONDS: wait for a child of this shell; sets RC (124 = timed out).
# shellcheck disable=SC2034 # RC is for the caller
wait_exit() {
	local deadline=$((SECONDS + $2))
	while kill -0 "$1" 2>/dev/null && [ $SECONDS -lt "$deadline" ]; do
		sleep 0.1
	done
	if kill -0 "$1" 2>/dev/null; then
		RC=124
		return 1
	fi
	wait "$1"
	RC=$?
	return 0
}

# start_up OUT ARGS...: run `$PSFLEET up ARGS` in the background (stdout+stderr
# to OUT) under a hard timeout of UP_TIMEOUT seconds (default 300); sets UP_PID
# (the timeout process, which passes SIGTERM on to psfleet up and returns its
# exit status).
start_up() {
	local out=$1
	shift
	timeout -s TERM "${UP_TIMEOUT:-300}" "$PSFLEET" up "$@" >"$out" 2>&1 &
	UP_PID=$!
	STARTED+=("$UP_PID")
}

# node_pids FILE [ID]: the PIDs of every node start `psfleet up` printed to
# FILE, oldest first (of node ID only, when given).
node_pids() {
	grep -Eo "${2:+$2 }(started|restarted) \(pid [0-9]+" "$1" | grep -Eo '[0-9]+$'
}
