#!/usr/bin/env bash
# k8s_test.sh -- `psfleet deploy kubernetes`: renders examples/fleet.yaml,
# examples/multihost.yaml (with a data claim, and --train-only) and a test fleet,
# and checks each with a real YAML parser against its config
# (tests/integration/k8s_check.py: the API schema of the objects used, the
# cross-references, ids/ports/mounts/probes); shows the checker fails on broken
# manifests; runs the pods' own command lines from the manifests (the ps picked
# by its StatefulSet pod name, a trainer by its Job completion index, the data
# made by the init container) and asks their probe paths; renders a TLS + token
# fleet (Secret from the files, or --secret NAME), runs its ps pod on the rendered
# config with the Secret's files and completes a mutual-TLS handshake with it;
# checks the committed
# deploy/kubernetes/demo.yaml is what the renderer writes today, that the
# Containerfile's runtime packages hold every library psfleet links, and that
# bad input exits 2 with one line. Usage: k8s_test.sh PSFLEET
PSFLEET=${PSFLEET:-$1}
SRC=${PSF_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init k8s psf-k8s
CHECK="python3 $SRC/tests/integration/k8s_check.py"
python3 -c 'import yaml' 2>/dev/null || { say "SKIP: python3-yaml is not installed"; exit 77; }

# 1. render and check examples/fleet.yaml and examples/multihost.yaml
"$PSFLEET" deploy kubernetes "$SRC/examples/fleet.yaml" --image psfleet:test --namespace ml \
	--out "$W/fleet.k8s.yaml" || fail "render fleet.yaml: exit $?"
out=$($CHECK "$W/fleet.k8s.yaml" "$SRC/examples/fleet.yaml" ml demo 2>&1) || fail "fleet.yaml: $out"
say "$out"
"$PSFLEET" deploy kubernetes "$SRC/examples/multihost.yaml" --image reg.example/psfleet:1 \
	--data-claim prices --storage 5Gi --storage-class fast >"$W/mh.yaml" || fail "render multihost: exit $?"
out=$($CHECK "$W/mh.yaml" "$SRC/examples/multihost.yaml" default multihost --data-claim prices 2>&1) ||
	fail "multihost.yaml: $out"
say "$out"
grep -q 'storageClassName: "fast"' "$W/mh.yaml" && grep -q 'storage: "5Gi"' "$W/mh.yaml" ||
	fail "multihost: --storage/--storage-class not in the volume claim"
"$PSFLEET" deploy kubernetes "$SRC/examples/multihost.yaml" --image x --data-claim prices \
	--train-only --name mh >"$W/mh-train.yaml" || fail "render --train-only: exit $?"
out=$($CHECK "$W/mh-train.yaml" "$SRC/examples/multihost.yaml" default mh --data-claim prices \
	--train-only 2>&1) || fail "multihost --train-only: $out"
say "$out"

"$PSFLEET" deploy kubernetes "$SRC/examples/tiny.yaml" --image x --set security.token_env=PSF_TOKEN \
	>"$W/tok.yaml" || fail "render with token_env: exit $?"
$CHECK "$W/tok.yaml" "$SRC/examples/tiny.yaml" default tiny >/dev/null || fail "token_env render refused"
[ "$(grep -c 'name: "PSF_TOKEN"' "$W/tok.yaml")" -eq 4 ] &&
	[ "$(grep -c 'secretKeyRef: {name: tiny-secrets, key: token}' "$W/tok.yaml")" -eq 4 ] ||
	fail "security.token_env: not every pod gets PSF_TOKEN from Secret tiny-secrets"

# 2. the committed example is what the renderer writes today
(cd "$SRC" && "$PSFLEET" deploy kubernetes examples/fleet.yaml --image psfleet:latest \
	--namespace psfleet) | cmp -s - "$SRC/deploy/kubernetes/demo.yaml" ||
	fail "deploy/kubernetes/demo.yaml is stale: regenerate it (docs/kubernetes.md)"

# 3. the checker is no rubber stamp: each broken copy must be refused
broken() { # broken DESCRIPTION SED-SCRIPT WANT-REGEX
	sed -e "$2" "$W/fleet.k8s.yaml" >"$W/broken.yaml"
	cmp -s "$W/broken.yaml" "$W/fleet.k8s.yaml" && fail "broken: '$2' changes nothing"
	if $CHECK "$W/broken.yaml" "$SRC/examples/fleet.yaml" ml demo >"$W/broken.out" 2>&1; then
		fail "the checker accepts manifests with $1"
	elif ! grep -Eq -- "$3" "$W/broken.out"; then
		fail "manifests with $1: the checker says '$(head -3 "$W/broken.out")', not '$3'"
	fi
}
broken "a readiness probe on /health" 's|path: /healthz|path: /health|' "readiness probe is not /healthz"
broken "a wrong container port" '0,/containerPort: 7101/s//containerPort: 7102/' \
	"listen port 7101 disagrees"
broken "a misspelt field" 's/readinessProbe:/readynessProbe:/' "unknown field 'readynessProbe'"
broken "a missing volume" 's/name: store, mountPath/name: stor, mountPath/' "unknown volume stor"
broken "a Service selecting no pod" '/^  publishNotReadyAddresses/,/component/s/"ps"/"pss"/' \
	"Service demo-ps: selector .* selects no pods"
broken "a Job of too few trainers" 's/completions: 4/completions: 3/' "want an Indexed Job of 4"
broken "a changed setting" 's/epochs: 3,/epochs: 4,/' "'training' is"
broken "an unknown kind" 's/^kind: Job/kind: Jobs/' "unexpected apiVersion/kind batch/v1/Jobs"
broken "a string where a number goes" 's/replicas: 2/replicas: "2"/' "must be int"
broken "a bad quantity" 's/memory: "512Mi"/memory: "512 MB"/' "quantity '512 MB' is malformed"
say "the checker refuses 10 kinds of broken manifests, each for its reason"

# 4. offline, kubectl can read the stream as objects (kustomize needs no cluster;
#    it checks each document has apiVersion, kind and a name)
if command -v kubectl >/dev/null; then
	mkdir -p "$W/kz" && cp "$W/fleet.k8s.yaml" "$W/kz/fleet.yaml"
	printf 'resources: [fleet.yaml]\n' >"$W/kz/kustomization.yaml"
	n=$(kubectl kustomize "$W/kz" 2>"$W/kz.err" | grep -c '^kind: ') || fail "kubectl kustomize: $(cat "$W/kz.err")"
	[ "$n" = "$(grep -c '^kind: ' "$W/fleet.k8s.yaml")" ] || fail "kubectl kustomize read $n objects"
	say "kubectl kustomize (offline) reads all $n objects"
else
	say "kubectl not installed: kustomize read skipped"
fi

# 5. the pods' command lines, from the manifests, run the right nodes: a test
#    fleet with free ports; the ps by POD_NAME, a trainer by JOB_COMPLETION_INDEX
read -r P1 P2 M1 M2 MT PI MI PG MG < <(free_ports 9)
cat >"$W/t.yaml" <<YAML
name: Kube_Test
run_dir: runs/kt
nodes:
  ps:
    - {id: ps-a, listen: "tcp://127.0.0.1:$P1", metrics: "127.0.0.1:$M1"}
    - {id: ps-b, listen: "tcp://127.0.0.1:$P2", metrics: "127.0.0.1:$M2"}
  trainers:
    - {id: t0, metrics: "127.0.0.1:$MT"}
    - {id: t1}
  inferers:
    - {id: Inf_0, listen: "tcp://127.0.0.1:$PI", metrics: "127.0.0.1:$MI"}
  gateway: {id: gw, listen: "tcp://127.0.0.1:$PG", metrics: "127.0.0.1:$MG"}
data:
  path: data/kt.csv
  generate: {symbols: 6, days: 50, seed: 3}
features: ["return:1", "range"]
model: {kind: linear}
training: {epochs: 1, batch_size: 16}
YAML
"$PSFLEET" deploy kubernetes "$W/t.yaml" --image psfleet:test --namespace kt >"$W/t.k8s.yaml" ||
	fail "render test fleet: exit $?"
out=$($CHECK "$W/t.k8s.yaml" "$W/t.yaml" kt kube-test 2>&1) || fail "test fleet: $out"
say "$out"
# pod_args KIND NAME [init]: the args of the workload's (init) container, one a line
pod_args() {
	pod_args_of "$W/t.k8s.yaml" "$@"
}
pod_args_of() { # pod_args_of MANIFESTS KIND NAME [init]
	python3 - "$1" "$2" "$3" "${4:-}" <<'PY'
import sys, yaml
path, kind, name, init = sys.argv[1:]
for d in yaml.safe_load_all(open(path)):
    if d and d["kind"] == kind and d["metadata"]["name"] == name:
        spec = d["spec"]["template"]["spec"]
        for a in spec["initContainers" if init else "containers"][0]["args"]:
            print(a)
PY
}
python3 -c 'import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d["kind"] == "ConfigMap":
        open(sys.argv[2], "w").write(d["data"]["fleet.yaml"])' "$W/t.k8s.yaml" "$W/fleet.yaml"
# The container paths become the test's: the config, run_dir and the data dir.
local_args() {
	sed -e "s|^/etc/psfleet/fleet.yaml$|$W/fleet.yaml|" -e "s|^/srv/psfleet/data/|$W/data/|"
}
mapfile -t gen < <(pod_args Job kube-test-trainer init | local_args)
mkdir -p "$W/data" && "$PSFLEET" "${gen[@]}" >/dev/null 2>"$W/gen.err" || fail "data-gen init container: $(cat "$W/gen.err")"
[ -s "$W/data/kt.csv" ] || fail "the init container's args made no $W/data/kt.csv"
SETS=(--set "run_dir=$W/run" --set "data.path=$W/data/kt.csv")
mapfile -t ps_args < <(pod_args StatefulSet kube-test-ps | local_args)
POD_NAME=kube-test-ps-1 "$PSFLEET" "${ps_args[@]}" "${SETS[@]}" >"$W/ps.log" 2>&1 &
PS_PID=$!
STARTED+=("$PS_PID")
probe() { # probe PORT PATH: the HTTP status code
	curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$1$2"
}
code=000
for _ in $(seq 100); do
	code=$(probe "$M1" /healthz)
	[ "$code" = 200 ] && break
	sleep 0.1
done
[ "$code" = 200 ] || fail "ps pod 1: readiness /healthz on the metrics port: $code: $(tail -3 "$W/ps.log")"
[ "$(probe "$M1" /metrics)" = 200 ] || fail "ps pod 1: liveness /metrics is not 200"
grep -q " ps-b " "$W/ps.log" || fail "pod kube-test-ps-1 did not run ps-b: $(head -3 "$W/ps.log")"
[ -d "$W/run/ps-b" ] || fail "ps-b's store is not under run_dir (the volume): $(ls "$W/run")"
kill -TERM "$PS_PID"
wait "$PS_PID" || fail "ps: exit $? on SIGTERM (terminationGracePeriod)"
untrack "$PS_PID"
mapfile -t tr_args < <(pod_args Job kube-test-trainer | local_args)
JOB_COMPLETION_INDEX=1 "$PSFLEET" "${tr_args[@]}" "${SETS[@]}" >"$W/tr.log" 2>&1 &
TR_PID=$!
STARTED+=("$TR_PID")
code=000
for _ in $(seq 100); do
	code=$(probe "$MT" /metrics)
	[ "$code" = 200 ] && break
	sleep 0.1
done
[ "$code" = 200 ] || fail "trainer index 1: liveness /metrics: $code: $(tail -3 "$W/tr.log")"
grep -q " t1 " "$W/tr.log" || fail "completion index 1 did not run trainer t1: $(head -3 "$W/tr.log")"
kill -TERM "$TR_PID"
wait "$TR_PID"
untrack "$TR_PID"
mapfile -t inf_args < <(pod_args Deployment kube-test-inf-0 | local_args)
[ "${inf_args[2]}" = --id ] && [ "${inf_args[3]}" = Inf_0 ] || fail "inferer args: ${inf_args[*]}"
say "pod args: kube-test-ps-1 ran ps-b (/healthz 200, /metrics 200), index 1 ran t1, init made the data"

# 5b. security files: a TLS + token fleet renders a Secret from the files, mounted
#     read-only in every pod, and the ConfigMap's config names the mounted paths;
#     the ps pod's command line runs on the rendered config with the Secret's
#     files (decoded from the manifest) where the pod would mount them, and
#     serves mutual TLS with the certificate from the Secret
bash "$SRC/scripts/make-certs.sh" "$W/certs" psfleet-node >/dev/null || fail "make-certs.sh failed"
echo "k8s-test-token" >"$W/token"
read -r SP SM SI SIM SG SGM < <(free_ports 6)
sed -e "s|tcp://127.0.0.1:$P1|tls+tcp://127.0.0.1:$SP|; s|127.0.0.1:$M1\"|127.0.0.1:$SM\"|" \
	-e "s|tcp://127.0.0.1:$PI|tls+tcp://127.0.0.1:$SI|; s|127.0.0.1:$MI\"|127.0.0.1:$SIM\"|" \
	-e "s|tcp://127.0.0.1:$PG|tls+tcp://127.0.0.1:$SG|; s|127.0.0.1:$MG\"|127.0.0.1:$SGM\"|" \
	-e "s|^name: Kube_Test|name: kube-sec|" "$W/t.yaml" >"$W/s.yaml"
cat >>"$W/s.yaml" <<YAML
security:
  token_file: $W/token
  tls_cert: $W/certs/node.pem
  tls_key: $W/certs/node.key
  tls_ca: $W/certs/ca.pem
  tls_server_name: psfleet-node
YAML
"$PSFLEET" deploy kubernetes "$W/s.yaml" --image psfleet:test --namespace kt >"$W/s.k8s.yaml" ||
	fail "render a TLS + token fleet: exit $?"
out=$($CHECK "$W/s.k8s.yaml" "$W/s.yaml" kt kube-sec 2>&1) || fail "TLS + token fleet: $out"
say "$out"
# the checker refuses a Secret that is not the files, and a writable mount
sed -e 's|^  token: "[^"]*"|  token: "b3RoZXIK"|' "$W/s.k8s.yaml" >"$W/s.bad.yaml"
$CHECK "$W/s.bad.yaml" "$W/s.yaml" kt kube-sec 2>&1 | grep -q "token is not the content of" ||
	fail "the checker accepts a Secret whose token is not the token file"
sed -e 's|{name: security, mountPath: /var/run/secrets/psfleet, readOnly: true}|{name: security, mountPath: /var/run/secrets/psfleet}|' \
	"$W/s.k8s.yaml" >"$W/s.bad.yaml"
$CHECK "$W/s.bad.yaml" "$W/s.yaml" kt kube-sec 2>&1 | grep -q "not mounted read-only" ||
	fail "the checker accepts a writable mount of the security files"
# the Secret's items, decoded, where the pods mount them; the rendered config
# with that mount point moved into the test's directory, as local_args does
python3 - "$W/s.k8s.yaml" "$W/mnt" "$W/s.fleet.yaml" <<'PY' || fail "cannot unpack the Secret"
import base64, os, sys, yaml
path, mnt, cfg = sys.argv[1:]
os.makedirs(mnt, exist_ok=True)
for d in yaml.safe_load_all(open(path)):
    if d and d["kind"] == "Secret":
        for k, v in d["data"].items():
            open(os.path.join(mnt, k), "wb").write(base64.b64decode(v))
    if d and d["kind"] == "ConfigMap":
        open(cfg, "w").write(d["data"]["fleet.yaml"].replace("/var/run/secrets/psfleet/", mnt + "/"))
PY
for f in token tls.crt tls.key ca.crt; do [ -s "$W/mnt/$f" ] || fail "the Secret has no $f"; done
cmp -s "$W/mnt/tls.key" "$W/certs/node.key" || fail "the Secret's tls.key is not the key file"
mapfile -t sps_args < <(pod_args_of "$W/s.k8s.yaml" StatefulSet kube-sec-ps |
	sed -e "s|^/etc/psfleet/fleet.yaml$|$W/s.fleet.yaml|")
POD_NAME=kube-sec-ps-0 "$PSFLEET" "${sps_args[@]}" --set "run_dir=$W/srun" >"$W/sps.log" 2>&1 &
SPS_PID=$!
STARTED+=("$SPS_PID")
code=000
for _ in $(seq 100); do
	code=$(probe "$SM" /healthz)
	[ "$code" = 200 ] && break
	sleep 0.1
done
[ "$code" = 200 ] || fail "TLS ps pod: /healthz: $code: $(tail -3 "$W/sps.log")"
grep -q "tls+tcp://0.0.0.0:$SP" <<<"${sps_args[*]}" || fail "TLS ps pod args: ${sps_args[*]}"
tls() { # tls [CLIENT-CERT-ARGS...]: openssl's verdict on a handshake with the ps
	timeout 10 openssl s_client -connect "127.0.0.1:$SP" -CAfile "$W/certs/ca.pem" \
		-verify_hostname psfleet-node -verify_return_error "$@" </dev/null 2>&1 | tr -d '\0'
}
out=$(tls -cert "$W/mnt/tls.crt" -key "$W/mnt/tls.key")
grep -q "Verify return code: 0 (ok)" <<<"$out" ||
	fail "the ps does not serve TLS with the Secret's certificate: $(grep -m2 -i 'verify\|error' <<<"$out")"
kill -TERM "$SPS_PID"
wait "$SPS_PID" || fail "TLS ps: exit $? on SIGTERM: $(tail -3 "$W/sps.log")"
untrack "$SPS_PID"
# --secret NAME: the Secret the user made is mounted, no key material is written
"$PSFLEET" deploy kubernetes "$W/s.yaml" --image psfleet:test --namespace kt --secret kt-tls \
	>"$W/s2.k8s.yaml" || fail "render with --secret: exit $?"
out=$($CHECK "$W/s2.k8s.yaml" "$W/s.yaml" kt kube-sec --secret kt-tls 2>&1) || fail "--secret: $out"
! grep -q "$(base64 -w0 "$W/certs/node.key" | cut -c1-60)" "$W/s2.k8s.yaml" ||
	fail "--secret: the key is still in the manifests"
say "security files: Secret kube-sec-security (or --secret kt-tls) mounted read-only in every pod; the ps pod serves mutual TLS on the rendered config"

# 6. the Containerfile's runtime packages provide every library psfleet loads
CF=$SRC/deploy/Containerfile
runtime=$(sed -n 's/^ARG RUNTIME_PACKAGES="\(.*\)"$/\1/p' "$CF")
[ -n "$runtime" ] || fail "no RUNTIME_PACKAGES line in $CF"
if command -v dpkg >/dev/null; then
	# an ASan/UBSan build also loads the sanitizers' runtimes, which the image's
	# RelWithDebInfo build does not
	extra="libc6 libgcc-s1"
	ldd "$PSFLEET" | grep -q libasan && extra="$extra libasan8 libubsan1 libstdc++6"
	for lib in $(ldd "$PSFLEET" | awk '$3 ~ /^\// {print $3}'); do
		real=$(readlink -f "$lib")
		pkg=$(dpkg -S "$lib" 2>/dev/null || dpkg -S "$real" 2>/dev/null) || continue # built here
		pkg=${pkg%%:*}
		case " $runtime $extra " in
		*" $pkg "*) ;;
		*) fail "psfleet loads $lib from $pkg, which $CF does not install" ;;
		esac
	done
	say "Containerfile runtime packages cover ldd psfleet ($(wc -w <<<"$runtime") packages)"
fi
[ "$(grep -c '^FROM ' "$CF")" -eq 2 ] && grep -q '^FROM .* AS build$' "$CF" &&
	grep -q '^COPY --from=build ' "$CF" || fail "$CF is not a two-stage build"
grep -q '^USER 10001:10001$' "$CF" && grep -q 'runAsUser: 10001, runAsGroup: 10001' "$W/fleet.k8s.yaml" ||
	fail "the image's user and the pods' runAsUser differ"
grep -q '^ENTRYPOINT \["/usr/local/bin/psfleet"\]$' "$CF" || fail "$CF: the entrypoint is not psfleet"
for p in $(sed -n 's/^ARG BUILD_PACKAGES="\(.*\)"$/\1/p' "$CF"); do
	grep -qw -- "$p" "$SRC/scripts/install-deps.sh" ||
		fail "Containerfile build package $p is not in scripts/install-deps.sh"
done

# 7. bad input: exit 2 and one line
bad() { # bad WANT-REGEX COMMAND...
	local want=$1 rc=0 err
	shift
	err=$("$@" 2>&1 >/dev/null) || rc=$?
	[ "$rc" -eq 2 ] || fail "$*: exit $rc, want 2"
	[ "$(wc -l <<<"$err")" -eq 1 ] || fail "$*: more than one line: $err"
	grep -Eq -- "$want" <<<"$err" || fail "$*: '$err' does not match '$want'"
}
bad "cannot read config" "$PSFLEET" deploy kubernetes "$W/none.yaml" --image x
printf 'name: x\nnodes: {ps: []}\n' >"$W/bad.yaml"
bad "bad.yaml:[0-9]+: " "$PSFLEET" deploy kubernetes "$W/bad.yaml" --image x
bad "--image are required" "$PSFLEET" deploy kubernetes "$SRC/examples/fleet.yaml"
bad "the one target is 'kubernetes'" "$PSFLEET" deploy nomad "$SRC/examples/fleet.yaml" --image x
bad "give --data-claim" "$PSFLEET" deploy kubernetes "$SRC/examples/multihost.yaml" --image x
bad "cannot read security.tls_key '$W/none.key'" "$PSFLEET" deploy kubernetes "$W/s.yaml" --image x \
	--set "security.tls_key=$W/none.key"
bad "names no security files" "$PSFLEET" deploy kubernetes "$W/t.yaml" --image x --secret kt-tls
bad "is no Secret name" "$PSFLEET" deploy kubernetes "$W/s.yaml" --image x --secret KT_tls
bad "no namespace name" "$PSFLEET" deploy kubernetes "$SRC/examples/fleet.yaml" --image x --namespace Prod
bad "tcp:// or tls\+tcp:// URL" "$PSFLEET" deploy kubernetes "$SRC/examples/fleet.yaml" --image x \
	--set "nodes.ps.0.listen=ipc:///tmp/x.ipc"
bad "makes no object name" "$PSFLEET" deploy kubernetes "$SRC/examples/fleet.yaml" --image x --name 9lives
sed 's/id: Inf_0/id: inf.0/; s/id: t1}/id: inf-0}/' "$W/t.yaml" >"$W/clash.yaml"
bad "make the same Kubernetes name" "$PSFLEET" deploy kubernetes "$W/clash.yaml" --image x
bad "rank 2 \(R\) is out of range: .* has 2 ps nodes" env R=kube-test-ps-2 "$PSFLEET" node "$W/fleet.yaml" --id-from-rank R --role ps
bad "--role takes ps, trainer or inferer" env R=0 "$PSFLEET" node "$W/fleet.yaml" --id-from-rank R --role gateway
bad "R='ps-x' is not a rank" env R=ps-x "$PSFLEET" node "$W/fleet.yaml" --id-from-rank R --role ps
bad "--role goes with --id-from-rank" "$PSFLEET" node "$W/fleet.yaml" --id ps-a --role ps
say "bad input: exit 2 with one line"

[ "$FAILS" -eq 0 ] || exit 1
say "all cases passed"
