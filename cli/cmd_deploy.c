/* psfleet deploy kubernetes CONFIG --image IMG: the fleet as Kubernetes manifests.
 * This file reads the options and the config with the real loader, picks names and
 * ports, and rewrites the config's addresses and paths for the cluster; the objects
 * themselves are written by deploy_k8s.c. docs/kubernetes.md is the manual. */
#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/deploy.h"
#include "lib/base/util.h"
#include "lib/config/config.h"

enum { MAX_SETS = 64, MAX_OVERRIDES = 4 * 1024 + 16, DEFAULT_METRICS_PORT = 9100 };

static void
deploy_usage(FILE *out)
{
	fprintf(out,
	    "usage: psfleet deploy kubernetes CONFIG --image IMAGE [--namespace NS] [--name NAME]\n"
	    "             [--out FILE] [--data-claim PVC] [--storage SIZE] [--storage-class CLASS]\n"
	    "             [--cluster-domain DOMAIN] [--pull-policy POLICY] [--train-only]\n"
	    "             [--secret NAME] [--set KEY=VALUE]...\n"
	    "\n"
	    "Writes the fleet CONFIG as Kubernetes manifests (one YAML stream for\n"
	    "`kubectl apply -f`): the config as a ConfigMap with every address rewritten to\n"
	    "the cluster's DNS names, the ps nodes as a StatefulSet with a volume each, the\n"
	    "trainers as an Indexed Job, each inferer as a Deployment + Service, the\n"
	    "gateway as a Deployment + Service. docs/kubernetes.md explains the mapping.\n"
	    "  --image IMAGE          the psfleet container image (deploy/Containerfile)\n"
	    "  --namespace NS         namespace of every object (default: default)\n"
	    "  --name NAME            prefix of every object's name (default: the fleet's name)\n"
	    "  --out FILE             write to FILE instead of stdout\n"
	    "  --data-claim PVC       a PersistentVolumeClaim holding the data (data.path's last\n"
	    "                         component at its root), mounted read-only; without it the\n"
	    "                         config must have data.generate: each pod generates it\n"
	    "  --storage SIZE         each ps node's volume (default 1Gi)\n"
	    "  --storage-class CLASS  storage class of the ps volumes (default: the cluster's)\n"
	    "  --cluster-domain D     the cluster's DNS domain (default cluster.local)\n"
	    "  --pull-policy POLICY   imagePullPolicy: Always, IfNotPresent or Never\n"
	    "                         (default IfNotPresent)\n"
	    "  --train-only           only the ps nodes and the trainers (no serving)\n"
	    "  --secret NAME          mount the security files (token_file, tls_*) from the\n"
	    "                         existing Secret NAME (keys token, tls.crt, tls.key,\n"
	    "                         ca.crt) instead of rendering Secret <name>-security\n"
	    "                         with the files' content\n"
	    "  --set KEY=VALUE        override a config key before rendering (repeatable)\n"
	    "\n"
	    "The files under security are mounted read-only at " DEPLOY_SECRET_DIR " in\n"
	    "every pod, and the ConfigMap's config names them there.\n"
	    "\n"
	    "Exit status: 0 written; 2 bad options or a config that cannot run on Kubernetes,\n"
	    "or a security file that cannot be read (one line says why); 1 the output could\n"
	    "not be written.\n");
}

typedef struct deploy_args {
	const char *config, *out, *name;
	const char *sets[MAX_SETS];
	size_t n_sets;
} deploy_args;

static int
parse_args(int argc, char **argv, deploy_args *a, deploy_plan *p)
{
	const char **opt;

	if (argc < 2 || strcmp(argv[1], "kubernetes") != 0) {
		fprintf(stderr, "psfleet deploy: the one target is 'kubernetes' (see --help)\n");
		return -1;
	}
	for (int i = 2; i < argc; i++) {
		const char *arg = argv[i];

		opt = strcmp(arg, "--image") == 0          ? &p->image
		    : strcmp(arg, "--namespace") == 0      ? &p->ns
		    : strcmp(arg, "--name") == 0           ? &a->name
		    : strcmp(arg, "--out") == 0            ? &a->out
		    : strcmp(arg, "--data-claim") == 0     ? &p->data_claim
		    : strcmp(arg, "--storage") == 0        ? &p->storage
		    : strcmp(arg, "--storage-class") == 0  ? &p->storage_class
		    : strcmp(arg, "--cluster-domain") == 0 ? &p->domain
		    : strcmp(arg, "--pull-policy") == 0    ? &p->pull_policy
		    : strcmp(arg, "--secret") == 0         ? &p->secret_name
		                                           : NULL;
		if (opt != NULL && i + 1 < argc && argv[i + 1][0] != '\0') {
			*opt = argv[++i];
		} else if (strcmp(arg, "--set") == 0 && i + 1 < argc) {
			if (a->n_sets == MAX_SETS) {
				fprintf(stderr, "psfleet deploy: at most %d --set options\n",
				    MAX_SETS);
				return -1;
			}
			a->sets[a->n_sets++] = argv[++i];
		} else if (strcmp(arg, "--train-only") == 0) {
			p->train_only = true;
		} else if (arg[0] == '-') {
			fprintf(stderr, "psfleet deploy: unknown or incomplete option '%s'\n", arg);
			return -1;
		} else if (a->config == NULL) {
			a->config = arg;
		} else {
			fprintf(stderr, "psfleet deploy: unexpected argument '%s'\n", arg);
			return -1;
		}
	}
	if (a->config == NULL || p->image == NULL) {
		fprintf(stderr,
		    "psfleet deploy kubernetes: CONFIG and --image are required "
		    "(see --help)\n");
		return -1;
	}
	if (strcmp(p->pull_policy, "Always") != 0 && strcmp(p->pull_policy, "IfNotPresent") != 0 &&
	    strcmp(p->pull_policy, "Never") != 0) {
		fprintf(stderr,
		    "psfleet deploy: --pull-policy takes Always, IfNotPresent or Never\n");
		return -1;
	}
	if (p->secret_name != NULL &&
	    (strlen(p->secret_name) > 253 ||
	        strspn(p->secret_name, "abcdefghijklmnopqrstuvwxyz0123456789-.") !=
	            strlen(p->secret_name) ||
	        strchr("-.", p->secret_name[0]) != NULL ||
	        strchr("-.", p->secret_name[strlen(p->secret_name) - 1]) != NULL)) {
		fprintf(stderr,
		    "psfleet deploy: --secret '%s' is no Secret name (a-z, 0-9, '-', '.', at "
		    "most 253)\n",
		    p->secret_name);
		return -1;
	}
	if (strlen(p->ns) > 63 ||
	    strspn(p->ns, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(p->ns) ||
	    p->ns[0] == '-') {
		fprintf(stderr,
		    "psfleet deploy: --namespace '%s' is no namespace name (a-z, 0-9, "
		    "'-', at most 63)\n",
		    p->ns);
		return -1;
	}
	return 0;
}

/* dns_label writes s as a DNS label (RFC 1123: a-z, 0-9, '-', no '-' at either end)
 * into out; other characters become '-'. Returns -1 when nothing is left. */
static int
dns_label(const char *s, char *out, size_t len)
{
	size_t n = 0;

	for (; *s != '\0' && n + 1 < len; s++) {
		char ch = *s;

		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')))
			ch = '-';
		if (ch == '-' && (n == 0 || out[n - 1] == '-'))
			continue;
		out[n++] = ch;
	}
	while (n > 0 && out[n - 1] == '-')
		n--;
	out[n] = '\0';
	return n > 0 ? 0 : -1;
}

/* url_port reads the scheme and port of a tcp-family NNG URL ("tls+tcp://h:7101").
 * Returns -1 for any other URL (ipc://, no port, port 0). */
static int
url_port(const char *url, deploy_ports *dp)
{
	const char *sep = strstr(url, "://");
	const char *colon;
	char *end;
	unsigned long v;

	if (sep == NULL || (size_t)(sep - url) >= sizeof(dp->scheme))
		return -1;
	memcpy(dp->scheme, url, (size_t)(sep - url));
	dp->scheme[sep - url] = '\0';
	if (strcmp(dp->scheme, "tcp") != 0 && strcmp(dp->scheme, "tcp4") != 0 &&
	    strcmp(dp->scheme, "tls+tcp") != 0)
		return -1;
	if ((colon = strrchr(sep + 3, ':')) == NULL)
		return -1;
	errno = 0;
	v = strtoul(colon + 1, &end, 10);
	if (*end != '\0' || errno != 0 || v == 0 || v > 65535)
		return -1;
	dp->rpc = (unsigned)v;
	return 0;
}

/* hostport_port reads the port of "host:port"; 0 when absent or unreadable. */
static unsigned
hostport_port(const char *hp)
{
	const char *colon = hp != NULL ? strrchr(hp, ':') : NULL;
	char *end;
	unsigned long v;

	if (colon == NULL)
		return 0;
	v = strtoul(colon + 1, &end, 10);
	return *end == '\0' && v <= 65535 ? (unsigned)v : 0;
}

/* node_ports fills dp from node (the node whose ports a whole pod template uses).
 * A node without a metrics port gets DEFAULT_METRICS_PORT (or the next one, when
 * that is its RPC port): every pod needs one for its probes. */
static int
node_ports(const char *config, const psf_node_cfg *node, deploy_ports *dp)
{
	memset(dp, 0, sizeof(*dp));
	snprintf(dp->scheme, sizeof(dp->scheme), "tcp");
	if (node->role != PSF_ROLE_TRAINER && url_port(node->listen, dp) != 0) {
		fprintf(stderr,
		    "psfleet deploy: %s: node '%s' listens on '%s': in a pod it needs a "
		    "tcp:// or tls+tcp:// URL with a fixed port\n",
		    config, node->id, node->listen);
		return -1;
	}
	dp->metrics = hostport_port(node->metrics);
	if (dp->metrics == 0)
		dp->metrics = DEFAULT_METRICS_PORT + (dp->rpc == DEFAULT_METRICS_PORT);
	return 0;
}

void
deploy_host(const deploy_plan *p, size_t i, char *buf, size_t len)
{
	const psf_node_cfg *n = &p->cfg->nodes[i];

	if (n->role == PSF_ROLE_PS || n->role == PSF_ROLE_TRAINER) {
		const char *what = n->role == PSF_ROLE_PS ? "ps" : "trainer";

		snprintf(buf, len, "%s-%s-%u.%s-%s.%s.svc.%s", p->prefix, what, n->index, p->prefix,
		    what, p->ns, p->domain);
	} else {
		snprintf(buf, len, "%s-%s.%s.svc.%s", p->prefix, p->label[i], p->ns, p->domain);
	}
}

/* plan_names picks the object prefix and each node's DNS label, and refuses names
 * Kubernetes would: too long, clashing, or a Service name not starting with a letter. */
static int
plan_names(deploy_plan *p, const char *name)
{
	const psf_config *cfg = p->cfg;
	char tmp[128];

	if (dns_label(name != NULL ? name : cfg->name, tmp, sizeof(tmp)) != 0 || strlen(tmp) > 30 ||
	    tmp[0] < 'a' || tmp[0] > 'z') {
		fprintf(stderr,
		    "psfleet deploy: '%s' makes no object name (a letter first, then letters, "
		    "digits and '-', at most 30): give --name NAME\n",
		    name != NULL ? name : cfg->name);
		return -1;
	}
	memcpy(p->prefix, tmp, strlen(tmp) + 1); /* <= 30 characters, checked above */
	for (size_t i = 0; i < cfg->n_nodes; i++) {
		if (dns_label(cfg->nodes[i].id, tmp, sizeof(tmp)) != 0 ||
		    strlen(p->prefix) + 1 + strlen(tmp) > 63) {
			fprintf(stderr,
			    "psfleet deploy: node id '%s' makes no Kubernetes name with prefix "
			    "'%s' (at most 63 characters of a-z, 0-9, '-')\n",
			    cfg->nodes[i].id, p->prefix);
			return -1;
		}
		memcpy(p->label[i], tmp, strlen(tmp) + 1); /* <= 62 characters, checked above */
		for (size_t j = 0; j < i; j++) {
			if (strcmp(p->label[j], tmp) == 0) {
				fprintf(stderr,
				    "psfleet deploy: node ids '%s' and '%s' make the same "
				    "Kubernetes name '%s'\n",
				    cfg->nodes[j].id, cfg->nodes[i].id, tmp);
				return -1;
			}
		}
	}
	return 0;
}

/* plan_ports reads the ports of each pod template from the config. */
static int
plan_ports(deploy_plan *p)
{
	const psf_config *cfg = p->cfg;
	size_t k = 0;

	if (node_ports(p->config_path, psf_config_role_node(cfg, PSF_ROLE_PS, 0), &p->ps) != 0)
		return -1;
	if (cfg->n_trainers > 0 &&
	    node_ports(p->config_path, psf_config_role_node(cfg, PSF_ROLE_TRAINER, 0),
	        &p->trainer) != 0)
		return -1;
	for (size_t i = 0; i < cfg->n_nodes; i++) {
		const psf_node_cfg *n = &cfg->nodes[i];

		if (n->role == PSF_ROLE_INFERER &&
		    node_ports(p->config_path, n, &p->inferer[k++]) != 0)
			return -1;
		if (n->role == PSF_ROLE_GATEWAY && node_ports(p->config_path, n, &p->gateway) != 0)
			return -1;
	}
	return 0;
}

/* set adds one "KEY=VALUE" override (formatted) to sets. */
static int set(char **sets, size_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
set(char **sets, size_t *n, const char *fmt, ...)
{
	va_list ap;
	char buf[1024];

	if (*n == MAX_OVERRIDES)
		return -1;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return (sets[(*n)++] = strdup(buf)) != NULL ? 0 : -1;
}

/* node_key is the override path of node n: "nodes.ps.0", ..., "nodes.gateway". */
static void
node_key(const psf_node_cfg *n, char *buf, size_t len)
{
	static const char *const list[] = {"ps", "trainers", "inferers", "gateway"};

	if (n->role == PSF_ROLE_GATEWAY)
		snprintf(buf, len, "nodes.gateway");
	else
		snprintf(buf, len, "nodes.%s.%u", list[n->role], n->index);
}

/* plan_overrides rewrites the config for the cluster: every node by its DNS name
 * (the pods bind wildcards with --listen/--metrics), the ps stores on their volumes,
 * the data and security files where the pods mount them. */
static int
plan_overrides(deploy_plan *p, char **sets, size_t *n)
{
	const psf_config *cfg = p->cfg;
	char host[512], key[64], tmp[4096];
	size_t k = 0;
	int rv = 0;

	rv |= set(sets, n, "run_dir=%s", DEPLOY_STORE_DIR);
	snprintf(tmp, sizeof(tmp), "%s", cfg->data.path);
	snprintf(p->data_file, sizeof(p->data_file), "%s/%s", DEPLOY_DATA_DIR, basename(tmp));
	rv |= set(sets, n, "data.path='%s'", p->data_file);
	for (size_t i = 0; i < cfg->n_nodes && rv == 0; i++) {
		const psf_node_cfg *nd = &cfg->nodes[i];
		const deploy_ports *dp = nd->role == PSF_ROLE_PS ? &p->ps
		    : nd->role == PSF_ROLE_TRAINER               ? &p->trainer
		    : nd->role == PSF_ROLE_INFERER               ? &p->inferer[k++]
		                                                 : &p->gateway;

		deploy_host(p, i, host, sizeof(host));
		node_key(nd, key, sizeof(key));
		if (dp->rpc != 0)
			rv |=
			    set(sets, n, "%s.listen='%s://%s:%u'", key, dp->scheme, host, dp->rpc);
		else if (nd->listen != NULL) /* a trainer's Admin listener: not in pods */
			rv |= set(sets, n, "%s.listen=", key);
		if (nd->advertise != NULL)
			rv |= set(sets, n, "%s.advertise=", key);
		rv |= set(sets, n, "%s.metrics='%s:%u'", key, host, dp->metrics);
		if (nd->role == PSF_ROLE_PS && nd->data_dir != NULL)
			rv |= set(sets, n, "%s.data_dir=", key); /* <run_dir>/<id>: the volume */
	}
	if (rv != 0)
		fprintf(stderr, "psfleet deploy: out of memory\n");
	return rv;
}

/* plan_security lists the files the security section names, reads them (for the
 * Secret rendered with them, unless --secret names one that exists), and moves
 * each path to where the pods mount it: the overrides go to moved, applied after
 * the config is checked with the files where they are now. */
static int
plan_security(deploy_plan *p, char **moved, size_t *n_moved)
{
	const psf_security_cfg *sec = &p->cfg->security;
	const struct {
		const char *key, *item, *path;
	} all[DEPLOY_MAX_FILES] = {{"token_file", "token", sec->token_file},
	    {"tls_cert", "tls.crt", sec->tls_cert}, {"tls_key", "tls.key", sec->tls_key},
	    {"tls_ca", "ca.crt", sec->tls_ca}};
	size_t total = 0;

	for (size_t i = 0; i < DEPLOY_MAX_FILES; i++) {
		deploy_file *f = &p->files[p->n_files];
		psf_err err;

		if (all[i].path == NULL)
			continue;
		f->key = all[i].key;
		f->item = all[i].item;
		f->local = all[i].path;
		p->n_files++;
		if (p->secret_name == NULL &&
		    (err = psf_read_file(f->local, &f->data, &f->len)) != PSF_OK) {
			fprintf(stderr, "psfleet deploy: cannot read security.%s '%s': %s\n",
			    f->key, f->local, psf_strerror(err));
			return -1;
		}
		total += f->len;
		if (set(moved, n_moved, "security.%s='%s/%s'", f->key, DEPLOY_SECRET_DIR,
		        f->item) != 0) {
			fprintf(stderr, "psfleet deploy: out of memory\n");
			return -1;
		}
	}
	if (p->n_files == 0 && p->secret_name != NULL) {
		fprintf(stderr,
		    "psfleet deploy: --secret %s: %s names no security files (token_file, "
		    "tls_cert, tls_key, tls_ca) to mount\n",
		    p->secret_name, p->config_path);
		return -1;
	}
	/* A Secret holds at most 1 MiB; the base64 text in the manifest is 4/3 of it. */
	if (total > 700 * 1024) {
		fprintf(stderr,
		    "psfleet deploy: the security files hold %zu bytes, too many for one Secret: "
		    "create it yourself and give --secret NAME\n",
		    total);
		return -1;
	}
	if (p->n_files > 0 && p->secret_name != NULL)
		snprintf(p->secret, sizeof(p->secret), "%s", p->secret_name);
	else if (p->n_files > 0)
		snprintf(p->secret, sizeof(p->secret), "%s-security", p->prefix);
	return 0;
}

static unsigned long long
fnv1a(unsigned long long h, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
	return h;
}

/* render plans the deployment of cfg and writes it; returns the exit status. */
static int
render(deploy_plan *p, const deploy_args *a)
{
	const psf_config *cfg = p->cfg;
	char **sets = calloc(MAX_OVERRIDES, sizeof(char *));
	const char **all = calloc(MAX_OVERRIDES + MAX_SETS, sizeof(char *));
	char *moved[DEPLOY_MAX_FILES] = {NULL};
	size_t n = 0, n_all = 0, n_moved = 0;
	char errbuf[1024];
	FILE *out = stdout;
	int rc = 2;

	p->label = calloc(cfg->n_nodes, sizeof(*p->label));
	p->inferer = calloc(cfg->n_inferers + 1, sizeof(*p->inferer));
	if (sets == NULL || all == NULL || p->label == NULL || p->inferer == NULL) {
		fprintf(stderr, "psfleet deploy: out of memory\n");
		goto out;
	}
	if (plan_names(p, a->name) != 0 || plan_ports(p) != 0 || plan_overrides(p, sets, &n) != 0 ||
	    plan_security(p, moved, &n_moved) != 0)
		goto out;
	if (p->data_claim == NULL && !cfg->data.has_generate) {
		fprintf(stderr,
		    "psfleet deploy: %s reads data from '%s' and has no data.generate: give "
		    "--data-claim PVC, a PersistentVolumeClaim holding it\n",
		    a->config, cfg->data.path);
		goto out;
	}
	for (size_t i = 0; i < a->n_sets; i++) /* the user's first, ours win */
		all[n_all++] = a->sets[i];
	for (size_t i = 0; i < n; i++)
		all[n_all++] = sets[i];
	if (psf_config_emit(a->config, all, n_all, (const char *const *)moved, n_moved, errbuf,
	        sizeof(errbuf), &p->config_text) != PSF_OK) {
		fprintf(stderr, "psfleet deploy: the config rewritten for Kubernetes: %s\n",
		    errbuf);
		goto out;
	}
	/* The pods roll when the config or the security files change. */
	p->hash = fnv1a(1469598103934665603ULL, p->config_text, strlen(p->config_text));
	p->hash = fnv1a(p->hash, p->secret, strlen(p->secret));
	for (size_t i = 0; i < p->n_files; i++)
		if (p->files[i].data != NULL)
			p->hash = fnv1a(p->hash, p->files[i].data, p->files[i].len);
	if (a->out != NULL && (out = fopen(a->out, "w")) == NULL) {
		fprintf(stderr, "psfleet deploy: cannot write %s: %s\n", a->out, strerror(errno));
		rc = 1;
		goto out;
	}
	rc = deploy_k8s_write(p, out) == 0 ? 0 : 1;
	if (out != stdout && fclose(out) != 0)
		rc = 1;
	else if (out == stdout && fflush(stdout) != 0)
		rc = 1;
	if (rc != 0)
		fprintf(stderr, "psfleet deploy: cannot write %s: %s\n",
		    a->out != NULL ? a->out : "stdout", strerror(errno));
out:
	for (size_t i = 0; sets != NULL && i < n; i++)
		free(sets[i]);
	for (size_t i = 0; i < n_moved; i++)
		free(moved[i]);
	for (size_t i = 0; i < p->n_files; i++)
		free(p->files[i].data);
	free(sets);
	free(all);
	free(p->label);
	free(p->inferer);
	free(p->config_text);
	return rc;
}

int
psf_cmd_deploy(int argc, char **argv)
{
	deploy_args a = {0};
	deploy_plan p = {.ns = "default",
	    .domain = "cluster.local",
	    .storage = "1Gi",
	    .pull_policy = "IfNotPresent"};
	psf_config *cfg = NULL;
	char errbuf[1024];
	int rc;

	if (psf_cli_wants_help(argc, argv)) {
		deploy_usage(stdout);
		return 0;
	}
	if (parse_args(argc, argv, &a, &p) != 0)
		return 2;
	if (psf_config_load_ex(a.config, a.sets, a.n_sets, errbuf, sizeof(errbuf), &cfg) !=
	    PSF_OK) {
		fprintf(stderr, "psfleet deploy: %s\n", errbuf);
		return 2;
	}
	p.cfg = cfg;
	p.config_path = a.config;
	rc = render(&p, &a);
	psf_config_free(cfg);
	return rc;
}
