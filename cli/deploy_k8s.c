/* deploy_k8s.c -- the Kubernetes objects of a deploy plan, written as YAML text.
 *
 *   <prefix>-config       ConfigMap: fleet.yaml, the config rewritten for the cluster
 *   <prefix>-security     Secret: the files the security section names (token, TLS
 *                         certificate, key, CA), unless --secret names an existing one
 *   <prefix>-ps           headless Service + StatefulSet (pod N = the N-th ps node,
 *                         one PersistentVolumeClaim "store" each)
 *   <prefix>-trainer      headless Service + Indexed Job (completion index N = the
 *                         N-th trainer)
 *   <prefix>-<inferer id> Service + Deployment, one per inferer
 *   <prefix>-<gateway id> Service + Deployment
 *
 * Every string that comes from the config or the command line is written as a
 * double-quoted YAML scalar (yq), so no value can break the document. */
#include <stdio.h>
#include <string.h>

#include "cli/deploy.h"

/* yq writes s as a double-quoted YAML scalar. */
static void
yq(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			fprintf(f, "\\x%02x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

/* kv writes "<indent>key: "value"\n". */
static void
kv(FILE *f, int indent, const char *key, const char *val)
{
	fprintf(f, "%*s%s: ", indent, "", key);
	yq(f, val);
	fputc('\n', f);
}

static const char *
component(psf_role r)
{
	return psf_role_name(r);
}

/* labels writes the labels of a fleet object; node is NULL for objects of a whole
 * role. The selector of every workload is these labels without part-of. */
static void
labels(FILE *f, int indent, const deploy_plan *p, psf_role role, const char *node)
{
	fprintf(f, "%*sapp.kubernetes.io/name: psfleet\n", indent, "");
	kv(f, indent, "app.kubernetes.io/instance", p->prefix);
	kv(f, indent, "app.kubernetes.io/component", component(role));
	if (node != NULL)
		kv(f, indent, "psfleet.io/node", node);
}

static void
meta(FILE *f, const deploy_plan *p, const char *kind, const char *api, const char *name,
    psf_role role, const char *node)
{
	fprintf(f, "---\napiVersion: %s\nkind: %s\nmetadata:\n", api, kind);
	kv(f, 2, "name", name);
	kv(f, 2, "namespace", p->ns);
	fprintf(f, "  labels:\n");
	labels(f, 4, p, role, node);
}

/* service writes a Service; headless ones give the pods of a StatefulSet or Job
 * their DNS names (and publish them before the pods are ready, so peers that
 * retry can dial while a node starts). */
static void
service(FILE *f, const deploy_plan *p, const char *name, psf_role role, const char *node,
    const deploy_ports *dp, bool headless)
{
	meta(f, p, "Service", "v1", name, role, node);
	fprintf(f, "spec:\n");
	if (headless)
		fprintf(f, "  clusterIP: None\n  publishNotReadyAddresses: true\n");
	fprintf(f, "  selector:\n");
	labels(f, 4, p, role, node);
	fprintf(f, "  ports:\n");
	if (dp->rpc != 0)
		fprintf(f, "    - {name: rpc, port: %u, targetPort: rpc}\n", dp->rpc);
	fprintf(f, "    - {name: metrics, port: %u, targetPort: metrics}\n", dp->metrics);
}

/* Resource requests per role: what the demo fleet uses with headroom. Edit the
 * manifests (or patch them with kustomize) for bigger models. */
static const char *const requests[][2] = {
    [PSF_ROLE_PS] = {"500m", "512Mi"},
    [PSF_ROLE_TRAINER] = {"1", "1Gi"},
    [PSF_ROLE_INFERER] = {"250m", "512Mi"},
    [PSF_ROLE_GATEWAY] = {"100m", "128Mi"},
};

/* pod_meta writes a pod template's metadata: labels, the Prometheus scrape
 * annotations, and the config's hash (a changed ConfigMap rolls the pods). */
static void
pod_meta(FILE *f, const deploy_plan *p, psf_role role, const char *node, const deploy_ports *dp)
{
	fprintf(f, "    metadata:\n      labels:\n");
	labels(f, 8, p, role, node);
	fprintf(f,
	    "      annotations:\n"
	    "        prometheus.io/scrape: \"true\"\n"
	    "        prometheus.io/port: \"%u\"\n"
	    "        prometheus.io/path: /metrics\n"
	    "        psfleet.io/config-hash: \"%016llx\"\n",
	    dp->metrics, p->hash);
}

/* data_gen writes the init container that makes the data when the config has
 * data.generate and no claim holds it: every pod gets the same (seeded) file. */
static void
data_gen(FILE *f, const deploy_plan *p)
{
	const psf_datagen_cfg *g = &p->cfg->data.generate;

	fprintf(f, "      initContainers:\n        - name: data-gen\n");
	kv(f, 10, "image", p->image);
	kv(f, 10, "imagePullPolicy", p->pull_policy);
	fprintf(f,
	    "          args: [data, gen, --symbols, \"%u\", --days, \"%u\", --seed, \"%llu\", "
	    "--out, ",
	    g->symbols, g->days, (unsigned long long)g->seed);
	yq(f, p->data_file);
	fprintf(f, "%s]\n", g->skew ? ", --skew" : "");
	fprintf(f, "          volumeMounts:\n            - {name: data, mountPath: %s}\n",
	    DEPLOY_DATA_DIR);
}

/* container writes the pod's security context, its one container and its volumes.
 * id_args is the part of the command line that picks the node. */
static void
container(FILE *f, const deploy_plan *p, psf_role role, const char *id_args, const deploy_ports *dp)
{
	bool has_data = role == PSF_ROLE_TRAINER || role == PSF_ROLE_INFERER;
	bool serves = role != PSF_ROLE_TRAINER;

	fprintf(f,
	    "      securityContext: {runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, "
	    "fsGroup: 10001}\n"
	    "      terminationGracePeriodSeconds: 30\n");
	if (has_data && p->data_claim == NULL)
		data_gen(f, p);
	fprintf(f, "      containers:\n        - name: %s\n", component(role));
	kv(f, 10, "image", p->image);
	kv(f, 10, "imagePullPolicy", p->pull_policy);
	fprintf(f, "          args: [node, %s/%s, %s", DEPLOY_CONFIG_DIR, DEPLOY_CONFIG_KEY,
	    id_args);
	if (dp->rpc != 0)
		fprintf(f, ", --listen, \"%s://0.0.0.0:%u\"", dp->scheme, dp->rpc);
	fprintf(f, ", --metrics, \"0.0.0.0:%u\"]\n", dp->metrics);
	fprintf(f,
	    "          env:\n"
	    "            - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}\n"
	    "            - {name: OPENBLAS_NUM_THREADS, value: \"1\"}\n");
	if (p->cfg->security.token_env != NULL) {
		fprintf(f, "            - name: ");
		yq(f, p->cfg->security.token_env);
		fprintf(f,
		    "\n              valueFrom: {secretKeyRef: {name: %s-secrets, key: token}}\n",
		    p->prefix);
	}
	fprintf(f, "          ports:\n");
	if (dp->rpc != 0)
		fprintf(f, "            - {name: rpc, containerPort: %u}\n", dp->rpc);
	fprintf(f, "            - {name: metrics, containerPort: %u}\n", dp->metrics);
	/* /healthz answers 503 while a node is not ready (an inferer before its first
	 * snapshot, a gateway with no inferer up, a ps whose store cannot be written):
	 * a readiness signal. Liveness asks /metrics, which answers while the process
	 * works, so waiting for training never gets a pod killed. */
	if (serves)
		fprintf(f,
		    "          readinessProbe: {httpGet: {path: /healthz, port: metrics}, "
		    "periodSeconds: 5, failureThreshold: 3}\n");
	fprintf(f,
	    "          livenessProbe: {httpGet: {path: /metrics, port: metrics}, "
	    "initialDelaySeconds: 10, periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 6}\n");
	fprintf(f, "          resources:\n            requests: {cpu: \"%s\", memory: \"%s\"}\n",
	    requests[role][0], requests[role][1]);
	fprintf(f,
	    "          securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: "
	    "true, capabilities: {drop: [ALL]}}\n");
	fprintf(f,
	    "          volumeMounts:\n            - {name: config, mountPath: %s, readOnly: true}\n",
	    DEPLOY_CONFIG_DIR);
	if (p->secret[0] != '\0')
		fprintf(f, "            - {name: security, mountPath: %s, readOnly: true}\n",
		    DEPLOY_SECRET_DIR);
	if (role == PSF_ROLE_PS)
		fprintf(f, "            - {name: store, mountPath: %s}\n", DEPLOY_STORE_DIR);
	else /* run_dir: nodes other than ps keep nothing there, but may create it */
		fprintf(f, "            - {name: run, mountPath: %s}\n", DEPLOY_STORE_DIR);
	if (has_data)
		fprintf(f, "            - {name: data, mountPath: %s%s}\n", DEPLOY_DATA_DIR,
		    p->data_claim != NULL ? ", readOnly: true" : "");
	fprintf(f, "      volumes:\n");
	fprintf(f, "        - name: config\n          configMap: {name: %s-config}\n", p->prefix);
	if (p->secret[0] != '\0') {
		/* 0440 with fsGroup 10001: the pod's user reads the files by its group. */
		fprintf(f, "        - name: security\n          secret:\n            secretName: ");
		yq(f, p->secret);
		fprintf(f, "\n            defaultMode: 0440\n            items:\n");
		for (size_t i = 0; i < p->n_files; i++)
			fprintf(f, "              - {key: %s, path: %s}\n", p->files[i].item,
			    p->files[i].item);
	}
	if (role != PSF_ROLE_PS)
		fprintf(f, "        - {name: run, emptyDir: {}}\n");
	if (has_data && p->data_claim != NULL) {
		fprintf(f, "        - name: data\n          persistentVolumeClaim: {claimName: ");
		yq(f, p->data_claim);
		fprintf(f, ", readOnly: true}\n");
	} else if (has_data) {
		fprintf(f, "        - {name: data, emptyDir: {}}\n");
	}
}

static void
write_config(FILE *f, const deploy_plan *p)
{
	const char *s = p->config_text;

	fprintf(f, "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n");
	fprintf(f, "  name: %s-config\n", p->prefix);
	kv(f, 2, "namespace", p->ns);
	fprintf(f, "  labels:\n    app.kubernetes.io/name: psfleet\n");
	kv(f, 4, "app.kubernetes.io/instance", p->prefix);
	fprintf(f, "data:\n  %s: |\n", DEPLOY_CONFIG_KEY);
	fprintf(f, "    # Written by psfleet deploy kubernetes from %s: every address is\n",
	    p->config_path);
	fprintf(f,
	    "    # the node's name in the cluster; the pods bind 0.0.0.0 (--listen/--metrics).\n");
	while (*s != '\0') {
		const char *nl = strchr(s, '\n');
		size_t n = nl != NULL ? (size_t)(nl - s) : strlen(s);

		fprintf(f, n > 0 ? "    %.*s\n" : "\n", (int)n, s);
		s += n + (nl != NULL);
	}
}

/* base64 writes data[0..len) in standard base64 (RFC 4648, padded), as a
 * Secret's data values are. */
static void
base64(FILE *f, const unsigned char *data, size_t len)
{
	static const char abc[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)data[i] << 16;

		v |= i + 1 < len ? (unsigned)data[i + 1] << 8 : 0;
		v |= i + 2 < len ? (unsigned)data[i + 2] : 0;
		fputc(abc[(v >> 18) & 63], f);
		fputc(abc[(v >> 12) & 63], f);
		fputc(i + 1 < len ? abc[(v >> 6) & 63] : '=', f);
		fputc(i + 2 < len ? abc[v & 63] : '=', f);
	}
}

/* write_secret writes the Secret holding the security files' content (not
 * rendered with --secret, which names one the user created). */
static void
write_secret(FILE *f, const deploy_plan *p)
{
	if (p->secret[0] == '\0' || p->secret_name != NULL)
		return;
	fprintf(f, "---\napiVersion: v1\nkind: Secret\nmetadata:\n");
	kv(f, 2, "name", p->secret);
	kv(f, 2, "namespace", p->ns);
	fprintf(f, "  labels:\n    app.kubernetes.io/name: psfleet\n");
	kv(f, 4, "app.kubernetes.io/instance", p->prefix);
	fprintf(f, "type: Opaque\ndata:\n");
	for (size_t i = 0; i < p->n_files; i++) {
		fprintf(f, "  # security.%s: ", p->files[i].key);
		for (const char *c = p->files[i].local; *c != '\0'; c++) /* one comment line */
			fputc((unsigned char)*c < 0x20 ? '?' : *c, f);
		fprintf(f, "\n  %s: \"", p->files[i].item);
		base64(f, (const unsigned char *)p->files[i].data, p->files[i].len);
		fprintf(f, "\"\n");
	}
}

static void
write_ps(FILE *f, const deploy_plan *p)
{
	char name[64];

	snprintf(name, sizeof(name), "%s-ps", p->prefix);
	service(f, p, name, PSF_ROLE_PS, NULL, &p->ps, true);
	meta(f, p, "StatefulSet", "apps/v1", name, PSF_ROLE_PS, NULL);
	fprintf(f, "spec:\n  serviceName: %s\n  replicas: %zu\n", name, p->cfg->n_ps);
	fprintf(f, "  podManagementPolicy: Parallel\n");
	fprintf(f,
	    "  persistentVolumeClaimRetentionPolicy: {whenDeleted: Retain, whenScaled: Retain}\n");
	fprintf(f, "  selector:\n    matchLabels:\n");
	labels(f, 6, p, PSF_ROLE_PS, NULL);
	fprintf(f, "  template:\n");
	pod_meta(f, p, PSF_ROLE_PS, NULL, &p->ps);
	fprintf(f, "    spec:\n");
	container(f, p, PSF_ROLE_PS, "--id-from-rank, POD_NAME, --role, ps", &p->ps);
	fprintf(f,
	    "  volumeClaimTemplates:\n    - metadata:\n        name: store\n        labels:\n");
	labels(f, 10, p, PSF_ROLE_PS, NULL);
	fprintf(f, "      spec:\n        accessModes: [ReadWriteOnce]\n");
	if (p->storage_class != NULL) {
		fprintf(f, "        storageClassName: ");
		yq(f, p->storage_class);
		fputc('\n', f);
	}
	fprintf(f, "        resources:\n          requests: {storage: ");
	yq(f, p->storage);
	fprintf(f, "}\n");
}

static void
write_trainers(FILE *f, const deploy_plan *p)
{
	size_t n = p->cfg->n_trainers;
	char name[64];

	snprintf(name, sizeof(name), "%s-trainer", p->prefix);
	service(f, p, name, PSF_ROLE_TRAINER, NULL, &p->trainer, true);
	meta(f, p, "Job", "batch/v1", name, PSF_ROLE_TRAINER, NULL);
	/* All trainers at once (sync rounds need every one); a failed pod is replaced
	 * and resumes; exit 2 (config or data error) fails the Job, as a restart
	 * cannot help; a finished trainer exits 0 and is not restarted. No TTL: the
	 * completed Job (no pods left running) stays, so applying the same file again
	 * does not train again. */
	fprintf(f,
	    "spec:\n  completionMode: Indexed\n  completions: %zu\n  parallelism: %zu\n"
	    "  backoffLimit: %zu\n"
	    "  podFailurePolicy:\n    rules:\n"
	    "      - action: FailJob\n"
	    "        onExitCodes: {containerName: trainer, operator: In, values: [2]}\n",
	    n, n, 3 * n);
	fprintf(f, "  template:\n");
	pod_meta(f, p, PSF_ROLE_TRAINER, NULL, &p->trainer);
	fprintf(f, "    spec:\n      restartPolicy: Never\n      subdomain: %s\n", name);
	container(f, p, PSF_ROLE_TRAINER, "--id-from-rank, JOB_COMPLETION_INDEX, --role, trainer",
	    &p->trainer);
}

/* write_server writes the Service and Deployment of inferer or gateway node i. */
static void
write_server(FILE *f, const deploy_plan *p, size_t i, const deploy_ports *dp)
{
	const psf_node_cfg *n = &p->cfg->nodes[i];
	char name[128], id_args[256];

	snprintf(name, sizeof(name), "%s-%s", p->prefix, p->label[i]);
	service(f, p, name, n->role, p->label[i], dp, false);
	meta(f, p, "Deployment", "apps/v1", name, n->role, p->label[i]);
	if (n->role == PSF_ROLE_INFERER)
		fprintf(f, "  annotations:\n    psfleet.io/shard: \"%u\"\n", n->shard);
	fprintf(f, "spec:\n  replicas: 1\n  selector:\n    matchLabels:\n");
	labels(f, 6, p, n->role, p->label[i]);
	fprintf(f, "  template:\n");
	pod_meta(f, p, n->role, p->label[i], dp);
	fprintf(f, "    spec:\n");
	snprintf(id_args, sizeof(id_args), "--id, \"%s\"", n->id); /* ids are [A-Za-z0-9_.-] */
	container(f, p, n->role, id_args, dp);
}

int
deploy_k8s_write(const deploy_plan *p, FILE *f)
{
	const psf_config *cfg = p->cfg;
	size_t k = 0;

	fprintf(f,
	    "# psfleet fleet '%s' on Kubernetes, written by psfleet deploy kubernetes from %s.\n"
	    "# Apply with kubectl apply -f; docs/kubernetes.md explains every object.\n",
	    cfg->name, p->config_path);
	write_config(f, p);
	write_secret(f, p);
	write_ps(f, p);
	if (cfg->n_trainers > 0)
		write_trainers(f, p);
	for (size_t i = 0; i < cfg->n_nodes && !p->train_only; i++) {
		if (cfg->nodes[i].role == PSF_ROLE_INFERER)
			write_server(f, p, i, &p->inferer[k++]);
		else if (cfg->nodes[i].role == PSF_ROLE_GATEWAY)
			write_server(f, p, i, &p->gateway);
	}
	return ferror(f) ? -1 : 0;
}
