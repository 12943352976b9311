#!/usr/bin/env bash
# cli_test.sh -- the small command-line contracts, with the real psfleet binary
# (no fleet but the last case's short one):
#   - psfleet --help names every command and every option of each command's --help;
#   - data gen keeps an existing --out file unless --force;
#   - up checks --metrics-out before it starts anything, and takes --set overrides
#     (an override's mistake names the override; exit 2, nothing started);
#   - up's plain progress with trainers that have no metrics address (one short
#     run of 5 trainers on 40 symbols: a few seconds).
#
# Env: PSFLEET = the psfleet binary (set by ctest).
set -u

PSFLEET=${PSFLEET:?set PSFLEET to the psfleet binary}
SRC=${PSF_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init cli_test psf-cli # W: this run's temp dir

# ---------------------------------------------------------------- 1. --help

top=$("$PSFLEET" --help) || fail "psfleet --help: exit $?"
for cmd in up node predict status experiment "data gen" "data partition" "data scan" \
	"deploy kubernetes"; do
	# shellcheck disable=SC2086
	own=$("$PSFLEET" $cmd --help) || fail "psfleet $cmd --help: exit $?"
	grep -q "psfleet $cmd" <<<"$top" || fail "psfleet --help does not show 'psfleet $cmd'"
	for opt in $(sed -n '1,/^$/p' <<<"$own" | grep -Eo -- '--[a-z][a-z-]*' | sort -u); do
		grep -q -- "$opt" <<<"$(grep -A3 "psfleet $cmd" <<<"$top")" ||
			fail "psfleet --help does not show '$cmd $opt' (from psfleet $cmd --help)"
	done
done
say "--help: every command and option"

# ---------------------------------------------------------------- 2. data gen

gen() { "$PSFLEET" data gen --symbols 2 --days 5 --out "$W/d.csv" "$@"; }
echo "my own data" >"$W/d.csv"
out=$(gen --seed 1 2>&1)
rc=$?
[ "$rc" -eq 1 ] || fail "data gen over a file: exit $rc, want 1"
[ "$out" = "psfleet data gen: $W/d.csv already exists; use --force to replace it" ] ||
	fail "data gen over a file: '$out'"
[ "$(cat "$W/d.csv")" = "my own data" ] || fail "data gen over a file changed it"
gen --seed 1 --force >/dev/null || fail "data gen --force: exit $?"
head -1 "$W/d.csv" | grep -q '^date,symbol,' || fail "data gen --force did not replace the file"
rm "$W/d.csv"
gen --seed 1 >/dev/null || fail "data gen to a new file: exit $?"
say "data gen: keeps an existing file, --force replaces it"

# ---------------------------------------------------------------- 3. up

# cfg FILE: examples/tiny.yaml with its nodes on ipc paths under W (no ports).
cfg() {
	sed -e "s|tcp://127.0.0.1:[0-9]*|ipc://$W/n\$RANDOM.ipc|" \
		-e 's|, metrics: "[^"]*"||' -e "s|run_dir: .*|run_dir: $W/run|" \
		-e "s|path: data/tiny.csv|path: $W/tiny.csv|" "$SRC/examples/tiny.yaml" |
		awk '{ while (sub(/\$RANDOM/, NR)) ; print }' >"$1"
}
cfg "$W/f.yaml"
"$PSFLEET" data gen --symbols 4 --days 40 --out "$W/tiny.csv" >/dev/null || fail "gen tiny.csv"

up_fails() { # up_fails NAME WANT-REGEX ARGS...: exit 2, one line, nothing started
	local name=$1 want=$2 rc err
	shift 2
	(cd "$W" && "$PSFLEET" up f.yaml "$@" >"$W/$name.out" 2>"$W/$name.err")
	rc=$?
	err=$(cat "$W/$name.err")
	[ "$rc" -eq 2 ] || fail "up $name: exit $rc, want 2 ($err)"
	[ "$(wc -l <"$W/$name.err")" -eq 1 ] || fail "up $name: want one line: $err"
	grep -Eq "$want" <<<"$err" || fail "up $name: '$err' does not match /$want/"
	[ ! -s "$W/$name.out" ] || fail "up $name: printed $(cat "$W/$name.out")"
	[ ! -e "$W/run" ] || fail "up $name: the run dir was created"
	say "up $name: $err"
}
up_fails metrics_out_dir "^psfleet up: --metrics-out $W/no/such/dir/m\.json: cannot write: No such file or directory$" \
	--train-only --metrics-out "$W/no/such/dir/m.json"
mkdir "$W/m.json"
up_fails metrics_out_isdir "^psfleet up: --metrics-out $W/m\.json: not a regular file$" \
	--train-only --metrics-out "$W/m.json"
up_fails set_bad_value "^psfleet up: f\.yaml: override 'training\.epochs=two': 'epochs' must be an integer >= 1$" \
	--set training.epochs=two
up_fails set_unknown_key "^psfleet up: f\.yaml: override 'training\.epoch=3': unknown key 'epoch' in training$" \
	--set training.epochs=3 --set training.epoch=3
# an override is applied before the checks: a data path that does not exist
up_fails set_data_path "data file 'no/such\.csv' does not exist" --set data.path=no/such.csv --set data.generate=

# ---------------------------------------------------------------- 4. progress

# Five trainers without a metrics address (the plain line then summarises them):
# no zeros standing for unknown figures, and singular counts ("1 inferer").
five='[{id: t0}, {id: t1}, {id: t2}, {id: t3}, {id: t4}]'
# (40 symbols: a trainer that owns none never finishes, a separate defect)
"$PSFLEET" data gen --symbols 40 --days 40 --out "$W/forty.csv" >/dev/null || fail "gen forty.csv"
(cd "$W" && timeout -s TERM 120 "$PSFLEET" up f.yaml --train-only --set "nodes.trainers=$five" \
	--set data.path=forty.csv --set training.epochs=10 >"$W/five.out" 2>&1)
rc=$?
[ "$rc" -eq 0 ] || fail "five trainers: exit $rc: $(tail -5 "$W/five.out")"
grep -q "1 ps, 5 trainers, 1 inferer, 1 gateway (--train-only" "$W/five.out" ||
	fail "five trainers: fleet line: $(grep "fleet 'tiny'" "$W/five.out")"
grep -q "| trainers: [0-5] done of 5, no metrics address (step, loss and speed unknown)" "$W/five.out" ||
	fail "five trainers: no progress line saying the figures are unknown: $(grep -m3 'trainers:' "$W/five.out")"
! grep -Eq "slowest step|mean loss|samples/s" "$W/five.out" ||
	fail "five trainers: figures without metrics: $(grep -m1 -E 'slowest step|samples/s' "$W/five.out")"
say "progress: five trainers without metrics addresses: no made-up figures"
rm -rf "$W/run"

if [ "$FAILS" -ne 0 ]; then
	say "$FAILS failure(s)"
	exit 1
fi
say "all cases passed"
