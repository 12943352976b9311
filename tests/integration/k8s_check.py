#!/usr/bin/env python3
"""k8s_check.py -- checks the manifests `psfleet deploy kubernetes` wrote, with a real
YAML parser (PyYAML), against the fleet config they were rendered from.

Usage: k8s_check.py MANIFESTS CONFIG NAMESPACE PREFIX [--data-claim PVC] [--train-only]
                    [--secret NAME]

1. Schema: every document is one of the kinds used (ConfigMap, Secret, Service,
   StatefulSet, Job, Deployment) at its API version, with the fields Kubernetes requires, every
   field known to that API (a typo is an error: the subset of the v1.27 API these
   objects use is spelled out below) and of the right type, names valid DNS names.
2. References: selectors match the pod labels, Services select pods that have the
   target ports, probes and Prometheus annotations name container ports,
   volumeMounts name volumes, the ConfigMap holds the key the pods read,
   StatefulSet.serviceName and Job subdomain are headless Services.
3. The config: the ConfigMap's fleet.yaml has the same nodes (ids, order, roles,
   shards) and settings as CONFIG, every address is the DNS name its pod gets,
   ports agree with containerPorts, Services, --listen/--metrics arguments and
   probes; replicas and completions match the node counts; each pod's arguments
   pick its node; the store and data paths are the mounted volumes; the files the
   security section names are the Secret's (its data decodes to each file's
   content, or it is the --secret NAME the user made, and then none is rendered),
   mounted read-only in every pod where the rendered config names them.
Prints one line per problem and exits 1 if there is any, else prints a summary."""
import base64
import re
import sys

import yaml

errors = []


def err(where, msg):
    errors.append(f"{where}: {msg}")


# ---- 1. a schema of the API subset used: field -> type, or a nested dict ----
S, I, B = str, int, bool
ANY = object  # free-form (labels, annotations, ConfigMap data: map of strings)
STRMAP = {"*": S}
META = {"name": S, "namespace": S, "labels": STRMAP, "annotations": STRMAP}
PROBE = {"httpGet": {"path": S, "port": (I, S)}, "tcpSocket": {"port": (I, S)},
         "initialDelaySeconds": I, "periodSeconds": I, "timeoutSeconds": I,
         "failureThreshold": I, "successThreshold": I}
VOLMOUNT = {"name": S, "mountPath": S, "readOnly": B, "subPath": S}
CONTAINER = {
    "name": S, "image": S, "imagePullPolicy": S, "command": [S], "args": [S],
    "env": [{"name": S, "value": S,
             "valueFrom": {"fieldRef": {"fieldPath": S},
                           "secretKeyRef": {"name": S, "key": S}}}],
    "ports": [{"name": S, "containerPort": I, "protocol": S}],
    "readinessProbe": PROBE, "livenessProbe": PROBE,
    "resources": {"requests": STRMAP, "limits": STRMAP},
    "securityContext": {"allowPrivilegeEscalation": B, "readOnlyRootFilesystem": B,
                        "runAsNonRoot": B, "capabilities": {"drop": [S], "add": [S]}},
    "volumeMounts": [VOLMOUNT],
}
VOLUME = {"name": S, "emptyDir": {}, "configMap": {"name": S},
          "secret": {"secretName": S, "defaultMode": I, "optional": B,
                     "items": [{"key": S, "path": S, "mode": I}]},
          "persistentVolumeClaim": {"claimName": S, "readOnly": B}}
PODSPEC = {
    "containers": [CONTAINER], "initContainers": [CONTAINER], "volumes": [VOLUME],
    "restartPolicy": S, "subdomain": S, "hostname": S, "terminationGracePeriodSeconds": I,
    "securityContext": {"runAsNonRoot": B, "runAsUser": I, "runAsGroup": I, "fsGroup": I},
}
TEMPLATE = {"metadata": META, "spec": PODSPEC}
SELECTOR = {"matchLabels": STRMAP}
SCHEMA = {
    ("v1", "ConfigMap"): {"apiVersion": S, "kind": S, "metadata": META, "data": STRMAP},
    ("v1", "Secret"): {"apiVersion": S, "kind": S, "metadata": META, "type": S,
                       "data": STRMAP, "stringData": STRMAP, "immutable": B},
    ("v1", "Service"): {"apiVersion": S, "kind": S, "metadata": META, "spec": {
        "clusterIP": S, "publishNotReadyAddresses": B, "type": S, "selector": STRMAP,
        "ports": [{"name": S, "port": I, "targetPort": (I, S), "protocol": S}]}},
    ("apps/v1", "StatefulSet"): {"apiVersion": S, "kind": S, "metadata": META, "spec": {
        "serviceName": S, "replicas": I, "podManagementPolicy": S, "selector": SELECTOR,
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": S, "whenScaled": S},
        "template": TEMPLATE, "volumeClaimTemplates": [{"metadata": META, "spec": {
            "accessModes": [S], "storageClassName": S,
            "resources": {"requests": STRMAP}}}]}},
    ("batch/v1", "Job"): {"apiVersion": S, "kind": S, "metadata": META, "spec": {
        "completionMode": S, "completions": I, "parallelism": I, "backoffLimit": I,
        "ttlSecondsAfterFinished": I, "template": TEMPLATE,
        "podFailurePolicy": {"rules": [{"action": S, "onExitCodes": {
            "containerName": S, "operator": S, "values": [I]}}]}}},
    ("apps/v1", "Deployment"): {"apiVersion": S, "kind": S, "metadata": META, "spec": {
        "replicas": I, "selector": SELECTOR, "template": TEMPLATE}},
}
REQUIRED = {  # paths Kubernetes refuses an object without
    "ConfigMap": ["metadata.name"],
    "Secret": ["metadata.name"],
    "Service": ["metadata.name", "spec.ports"],
    "StatefulSet": ["metadata.name", "spec.selector", "spec.template", "spec.serviceName"],
    "Job": ["metadata.name", "spec.template"],
    "Deployment": ["metadata.name", "spec.selector", "spec.template"],
}
ENUMS = {
    "imagePullPolicy": {"Always", "IfNotPresent", "Never"},
    "restartPolicy": {"Always", "OnFailure", "Never"},
    "completionMode": {"Indexed", "NonIndexed"},
    "podManagementPolicy": {"OrderedReady", "Parallel"},
    "whenDeleted": {"Retain", "Delete"}, "whenScaled": {"Retain", "Delete"},
    "action": {"FailJob", "Ignore", "Count", "FailIndex"}, "operator": {"In", "NotIn"},
}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
B64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")
SECRET_DIR = "/var/run/secrets/psfleet"
SECRET_ITEMS = {"token_file": "token", "tls_cert": "tls.crt", "tls_key": "tls.key",
                "tls_ca": "ca.crt"}
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$")


def check_schema(where, val, schema):
    if schema is ANY:
        return
    if isinstance(schema, dict) and "*" in schema:
        if not isinstance(val, dict):
            return err(where, f"must be a map, is {type(val).__name__}")
        for k, v in val.items():
            check_schema(f"{where}.{k}", v, schema["*"])
        return
    if isinstance(schema, dict):
        if not isinstance(val, dict):
            return err(where, f"must be an object, is {type(val).__name__}")
        for k, v in val.items():
            if k not in schema:
                err(where, f"unknown field '{k}'")
            else:
                if k in ENUMS and v not in ENUMS[k]:
                    err(f"{where}.{k}", f"'{v}' is not one of {sorted(ENUMS[k])}")
                check_schema(f"{where}.{k}", v, schema[k])
        return
    if isinstance(schema, list):
        if not isinstance(val, list):
            return err(where, f"must be a list, is {type(val).__name__}")
        for i, v in enumerate(val):
            check_schema(f"{where}[{i}]", v, schema[0])
        return
    types = schema if isinstance(schema, tuple) else (schema,)
    if isinstance(val, bool) and B not in types or not isinstance(val, types):
        err(where, f"must be {'/'.join(t.__name__ for t in types)}, is {val!r}")


def get(obj, path, default=None):
    for k in path.split("."):
        if not isinstance(obj, dict) or k not in obj:
            return default
        obj = obj[k]
    return obj


def load(path):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    objs = {}
    for i, d in enumerate(docs):
        kind, api = d.get("kind"), d.get("apiVersion")
        where = f"{path} document {i + 1} ({kind} {get(d, 'metadata.name')})"
        if (api, kind) not in SCHEMA:
            err(where, f"unexpected apiVersion/kind {api}/{kind}")
            continue
        check_schema(where, d, SCHEMA[(api, kind)])
        for p in REQUIRED[kind]:
            if get(d, p) is None:
                err(where, f"required field {p} is missing")
        name = get(d, "metadata.name", "")
        rx = DNS_LABEL if kind in ("Service", "StatefulSet", "Job") else DNS_SUBDOMAIN
        if not rx.match(str(name)):
            err(where, f"name '{name}' is not a valid DNS name for a {kind}")
        if (kind, name) in objs:
            err(where, f"duplicate {kind} '{name}'")
        objs[(kind, name)] = d
    return docs, objs


def containers(obj):
    spec = get(obj, "spec.template.spec", {})
    return spec.get("containers", []) + spec.get("initContainers", [])


def check_refs(objs, ns, external_secret):
    pods = {k: o for k, o in objs.items() if k[0] in ("StatefulSet", "Job", "Deployment")}
    for (kind, name), o in objs.items():
        where = f"{kind} {name}"
        if get(o, "metadata.namespace") != ns:
            err(where, f"namespace is {get(o, 'metadata.namespace')!r}, want {ns!r}")
        if kind == "Secret":
            for k, v in (o.get("data") or {}).items():
                if not B64.match(v) or len(v) % 4 != 0:
                    err(where, f"data {k} is not base64")
        if kind not in ("StatefulSet", "Job", "Deployment"):
            continue
        labels = get(o, "spec.template.metadata.labels", {})
        sel = get(o, "spec.selector.matchLabels", {})
        if any(labels.get(k) != v for k, v in sel.items()):
            err(where, f"selector {sel} does not match the pod labels {labels}")
        spec = get(o, "spec.template.spec", {})
        vols = {v["name"] for v in spec.get("volumes", [])}
        vols |= {get(t, "metadata.name") for t in get(o, "spec.volumeClaimTemplates", [])}
        for v in spec.get("volumes", []):
            cm = get(v, "configMap.name")
            if cm is not None and ("ConfigMap", cm) not in objs:
                err(where, f"volume {v['name']} names ConfigMap {cm}, which is not there")
            sn = get(v, "secret.secretName")
            if sn is None:
                continue
            sec = objs.get(("Secret", sn))
            if sec is None and sn != external_secret:
                err(where, f"volume {v['name']} names Secret {sn}, which is neither rendered nor --secret")
            for it in get(v, "secret.items", []):
                if sec is not None and it["key"] not in (sec.get("data") or {}):
                    err(where, f"volume {v['name']}: Secret {sn} has no key {it['key']}")
        for c in containers(o):
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            for m in c.get("volumeMounts", []):
                if m["name"] not in vols:
                    err(where, f"container {c['name']} mounts unknown volume {m['name']}")
            for probe in ("readinessProbe", "livenessProbe"):
                port = get(c, f"{probe}.httpGet.port")
                if port is not None and port not in ports and port not in ports.values():
                    err(where, f"{probe} port {port} is no container port")
            for q in get(c, "resources.requests", {}).values():
                if not QUANTITY.match(str(q)):
                    err(where, f"resource quantity {q!r} is malformed")
        ann = get(o, "spec.template.metadata.annotations", {})
        mports = [p["containerPort"] for c in spec.get("containers", []) for p in c.get("ports", [])]
        if ann.get("prometheus.io/scrape") == "true" and int(ann.get("prometheus.io/port", 0)) not in mports:
            err(where, f"prometheus.io/port {ann.get('prometheus.io/port')} is no container port")
    for (kind, name), o in objs.items():
        if kind != "Service":
            continue
        sel = get(o, "spec.selector", {})
        hit = [k for k, p in pods.items()
               if all(get(p, "spec.template.metadata.labels", {}).get(a) == b for a, b in sel.items())]
        if not hit:
            err(f"Service {name}", f"selector {sel} selects no pods")
        for port in get(o, "spec.ports", []):
            for k in hit:
                names = {p["name"] for c in get(pods[k], "spec.template.spec.containers", [])
                         for p in c.get("ports", [])}
                if port["targetPort"] not in names:
                    err(f"Service {name}", f"targetPort {port['targetPort']} is no port of {k[0]} {k[1]}")
    for (kind, name), o in objs.items():
        svc = get(o, "spec.serviceName") if kind == "StatefulSet" else \
            get(o, "spec.template.spec.subdomain") if kind == "Job" else None
        if svc is not None and get(objs.get(("Service", svc), {}), "spec.clusterIP") != "None":
            err(f"{kind} {name}", f"needs a headless Service {svc}")


def hostport(s):
    s = s.split("://", 1)[-1]
    host, port = s.rsplit(":", 1)
    return host, int(port)


def arg_after(args, flag):
    return args[args.index(flag) + 1] if flag in args else None


def nodes_of(cfg):
    n = cfg["nodes"]
    out = [("ps", x) for x in n.get("ps", [])] + [("trainer", x) for x in n.get("trainers", [])]
    out += [("inferer", x) for x in n.get("inferers", [])]
    if n.get("gateway"):
        out.append(("gateway", n["gateway"]))
    return out


def check_security(objs, osec, rsec, prefix, secret):
    """The security section: file paths moved to the Secret's mount, the rest as
    written; the Secret rendered from the files' content (or only named). Returns
    the Secret items the pods must mount."""
    items = {}
    for k, v in osec.items():
        if k in SECRET_ITEMS:
            items[SECRET_ITEMS[k]] = v
            want = f"{SECRET_DIR}/{SECRET_ITEMS[k]}"
            if rsec.get(k) != want:
                err("fleet.yaml", f"security.{k} is {rsec.get(k)!r}, want the mounted {want}")
        elif rsec.get(k) != v:
            err("fleet.yaml", f"security.{k} is {rsec.get(k)!r}, the config says {v!r}")
    for k in rsec:  # others may come from --set (token_env)
        if k in SECRET_ITEMS and k not in osec:
            err("fleet.yaml", f"security.{k} is not in the config")
    secrets = [n for kind, n in objs if kind == "Secret"]
    if secret is not None or not items:
        if secrets:
            err("manifests", f"Secret {secrets} rendered, want none"
                + (f" (--secret {secret})" if secret else " (no security files)"))
        return items
    name = f"{prefix}-security"
    if secrets != [name]:
        return err("manifests", f"Secrets {secrets}, want [{name}]") or items
    data = objs[("Secret", name)].get("data") or {}
    if set(data) != set(items):
        err(f"Secret {name}", f"keys {sorted(data)}, want {sorted(items)}")
    for item, path in items.items():
        with open(path, "rb") as f:
            if item in data and base64.b64decode(data[item]) != f.read():
                err(f"Secret {name}", f"{item} is not the content of {path}")
    return items


def check_config(objs, cfg_path, ns, prefix, claim, train_only, secret):
    with open(cfg_path) as f:
        orig = yaml.safe_load(f)
    cm = objs.get(("ConfigMap", f"{prefix}-config"))
    if cm is None:
        return err("ConfigMap", f"{prefix}-config is missing")
    rend = yaml.safe_load(get(cm, "data", {}).get("fleet.yaml", "{}"))
    dom = "cluster.local"
    for key in orig:  # every setting but addresses and paths kept as written
        if key not in ("nodes", "run_dir", "data", "security") and orig[key] != rend.get(key):
            err("fleet.yaml", f"'{key}' is {rend.get(key)!r}, the config says {orig[key]!r}")
    for key, v in (orig.get("data") or {}).items():
        if key != "path" and rend["data"].get(key) != v:
            err("fleet.yaml", f"data.{key} changed")
    files = check_security(objs, orig.get("security") or {}, rend.get("security") or {},
                           prefix, secret)
    on, rn = nodes_of(orig), nodes_of(rend)
    if [(r, x["id"], x.get("shard")) for r, x in on] != [(r, x["id"], x.get("shard")) for r, x in rn]:
        return err("fleet.yaml", "the nodes differ from the config's")
    ps, tr = f"{prefix}-ps", f"{prefix}-trainer"
    sts, job = objs.get(("StatefulSet", ps)), objs.get(("Job", tr))
    if sts is None or job is None:
        return err("manifests", f"StatefulSet {ps} or Job {tr} is missing")
    n_ps = sum(r == "ps" for r, _ in rn)
    n_tr = sum(r == "trainer" for r, _ in rn)
    if get(sts, "spec.replicas") != n_ps:
        err(f"StatefulSet {ps}", f"replicas {get(sts, 'spec.replicas')}, config has {n_ps} ps")
    if get(job, "spec.completions") != n_tr or get(job, "spec.parallelism") != n_tr or \
            get(job, "spec.completionMode") != "Indexed":
        err(f"Job {tr}", f"want an Indexed Job of {n_tr} completions, all in parallel")
    run_dir = rend.get("run_dir")
    data = rend["data"]["path"]
    idx = {"ps": 0, "trainer": 0}
    for role, x in rn:
        where = f"node {x['id']}"
        if role in ("ps", "trainer"):
            i = idx[role]
            idx[role] += 1
            wl, svc, pod = (sts, ps, f"{ps}-{i}") if role == "ps" else (job, tr, f"{tr}-{i}")
            host = f"{pod}.{svc}.{ns}.svc.{dom}"
        else:
            label = re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", x["id"].lower())).strip("-")
            svc = f"{prefix}-{label}"
            wl = objs.get(("Deployment", svc))
            host = f"{svc}.{ns}.svc.{dom}"
            if train_only:
                if wl is not None or ("Service", svc) in objs:
                    err(where, "--train-only renders no inferer or gateway")
                continue
            if wl is None:
                err(where, f"no Deployment {svc}")
                continue
        service = objs.get(("Service", svc))
        if service is None:
            err(where, f"no Service {svc}")
            continue
        if x.get("advertise") is not None:
            err(where, "advertise is left in the rendered config")
        c = get(wl, "spec.template.spec.containers")[0]
        args = c["args"]
        cports = {p["name"]: p["containerPort"] for p in c["ports"]}
        sports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
        mhost, mport = hostport(x["metrics"])
        if mhost != host:
            err(where, f"metrics host {mhost}, want {host}")
        if cports.get("metrics") != mport or sports.get("metrics") != mport or \
                arg_after(args, "--metrics") != f"0.0.0.0:{mport}":
            err(where, f"metrics port {mport} disagrees with the pod {cports}, Service {sports}, args {args}")
        ann = get(wl, "spec.template.metadata.annotations", {})
        if ann.get("prometheus.io/port") != str(mport) or ann.get("prometheus.io/path") != "/metrics":
            err(where, "Prometheus annotations do not name the metrics port and /metrics")
        if role != "trainer":
            lhost, lport = hostport(x["listen"])
            scheme = x["listen"].split("://")[0]
            if lhost != host:
                err(where, f"listen host {lhost}, want {host}")
            if cports.get("rpc") != lport or sports.get("rpc") != lport or \
                    arg_after(args, "--listen") != f"{scheme}://0.0.0.0:{lport}":
                err(where, f"listen port {lport} disagrees with the pod {cports}, Service {sports}, args {args}")
            if get(c, "readinessProbe.httpGet.path") != "/healthz" or \
                    get(c, "readinessProbe.httpGet.port") != "metrics":
                err(where, "readiness probe is not /healthz on the metrics port")
        elif x.get("listen") is not None:
            err(where, "a trainer keeps a listen address no pod binds")
        if get(c, "livenessProbe.httpGet.path") != "/metrics":
            err(where, "liveness probe is not /metrics")
        if args[:2] != ["node", "/etc/psfleet/fleet.yaml"]:
            err(where, f"args {args} do not run psfleet node on the mounted config")
        want = {"ps": ["--id-from-rank", "POD_NAME", "--role", "ps"],
                "trainer": ["--id-from-rank", "JOB_COMPLETION_INDEX", "--role", "trainer"]
                }.get(role, ["--id", x["id"]])
        if args[2:2 + len(want)] != want:
            err(where, f"args {args} do not pick the node ({want})")
        if role == "ps" and {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} not in c["env"]:
            err(where, "POD_NAME does not come from metadata.name")
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        if "/etc/psfleet" not in mounts:
            err(where, "the config is not mounted at /etc/psfleet")
        sm = mounts.get(SECRET_DIR)
        vols = {v["name"]: v for v in get(wl, "spec.template.spec.volumes")}
        if files:
            sv = vols.get(sm["name"], {}) if sm else {}
            want = secret if secret is not None else f"{prefix}-security"
            got = {it["key"]: it["path"] for it in get(sv, "secret.items", [])}
            if sm is None or sm.get("readOnly") is not True:
                err(where, f"the security files are not mounted read-only at {SECRET_DIR}")
            elif get(sv, "secret.secretName") != want:
                err(where, f"{SECRET_DIR} is not Secret {want}")
            elif got != {k: k for k in files}:
                err(where, f"Secret items {got}, want each of {sorted(files)} at its own name")
        elif sm is not None:
            err(where, f"{SECRET_DIR} is mounted, but the config names no security files")
        if role == "ps":
            if x.get("data_dir") is not None or mounts.get(run_dir, {}).get("name") != "store":
                err(where, f"the store (run_dir {run_dir}/{x['id']}) is not on the 'store' volume")
        if role in ("trainer", "inferer"):
            dm = [m for p, m in mounts.items() if data.startswith(p + "/")]
            if not dm:
                err(where, f"data.path {data} is on no mounted volume")
            vols = {v["name"]: v for v in get(wl, "spec.template.spec.volumes")}
            v = vols.get(dm[0]["name"]) if dm else None
            if claim is not None and get(v or {}, "persistentVolumeClaim.claimName") != claim:
                err(where, f"data volume is not claim {claim}")
            if claim is None and (v is None or "emptyDir" not in v or
                                  arg_after(get(wl, "spec.template.spec.initContainers")[0]["args"], "--out") != data):
                err(where, "no data-gen init container writing data.path into an emptyDir")
    n_dep = sum(1 for k in objs if k[0] == "Deployment")
    want_dep = 0 if train_only else sum(r in ("inferer", "gateway") for r, _ in rn)
    if n_dep != want_dep:
        err("manifests", f"{n_dep} Deployments, want {want_dep}")
    return len(rn)


def main():
    a = sys.argv[1:]
    claim = arg_after(a, "--data-claim")
    train_only = "--train-only" in a
    secret = arg_after(a, "--secret")
    path, cfg, ns, prefix = a[:4]
    docs, objs = load(path)
    check_refs(objs, ns, secret)
    n_nodes = check_config(objs, cfg, ns, prefix, claim, train_only, secret)
    for e in errors:
        print(e)
    if errors:
        return 1
    kinds = sorted({k for k, _ in objs})
    print(f"k8s_check: {path}: {len(docs)} objects ({', '.join(kinds)}), {n_nodes} nodes: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
