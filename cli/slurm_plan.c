/* slurm_plan.c -- psfleet slurm plan: place the nodes of a fleet on the hosts of
 * a Slurm allocation and write the config they run with.
 *
 * Every node gets a host of the allocation (by role, or as --place says); its
 * listen URL and metrics address are rewritten to that host's address (with the
 * config's ports, or consecutive ones from --port-base), and `advertise` is
 * dropped (the listen URL is the node's real address). The result is a config
 * every node, `psfleet status` and `psfleet slurm watch` can load as it is,
 * written with libyaml from the original document (other keys, `${VAR}`
 * placeholders included, stay as they were), plus a `nodes` file with one line
 * "ID ROLE SLURM_NODE" per node in config order for the batch script. */
#define _GNU_SOURCE /* asprintf */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lib/base/util.h"
#include "lib/config/config.h"

#define MAX_HOSTS 4096
#define MAX_PLACE 64

typedef struct plan_args {
	const char *config;
	const char *out;
	char *nodes;                  /* --nodes, split in place */
	char *addrs;                  /* --addrs, split in place */
	unsigned port_base;           /* 0: keep the config's ports */
	const char *place[MAX_PLACE]; /* --place WHO=LIST, in order */
	size_t n_place;
} plan_args;

typedef struct plan {
	plan_args a;
	char *host[MAX_HOSTS]; /* Slurm node names */
	char *addr[MAX_HOSTS]; /* their addresses */
	size_t n_hosts;
	psf_config *cfg;
	size_t *at;     /* per config node: host index */
	char **listen;  /* per config node: new listen URL or NULL */
	char **metrics; /* per config node: new metrics address or NULL */
} plan;

static void
plan_usage(FILE *out)
{
	fprintf(out,
	    "usage: psfleet slurm plan CONFIG --nodes NODE[,NODE...] --out DIR\n"
	    "                          [--addrs ADDR[,ADDR...]] [--place WHO=LIST]...\n"
	    "                          [--port-base PORT]\n"
	    "\n"
	    "Places the nodes of CONFIG on the hosts of a Slurm allocation and writes\n"
	    "DIR/fleet.yaml (CONFIG with each node's listen URL and metrics address on its\n"
	    "host) and DIR/nodes (one line \"ID ROLE SLURM_NODE\" per node, in config order).\n"
	    "  --nodes LIST       the allocation's node names, in order (e.g. from\n"
	    "                     `scontrol show hostnames $SLURM_JOB_NODELIST`)\n"
	    "  --addrs LIST       the address each node is reached at, same order (default:\n"
	    "                     the node names; e.g. their NodeAddr from scontrol)\n"
	    "  --place WHO=LIST   put WHO (ps, trainers, inferers, gateway, or a node id) on\n"
	    "                     the hosts LIST (0-based indexes into --nodes, e.g. 0 or\n"
	    "                     1,2 or 1-3), round-robin (repeatable). Default: ps on host\n"
	    "                     0, trainers on hosts 1..N-2, inferers and gateway on host\n"
	    "                     N-1 (with 2 hosts: ps on 0, the rest on 1; with 1: all on 0)\n"
	    "  --port-base PORT   give the nodes consecutive ports from PORT (config order:\n"
	    "                     each node's listen port, then its metrics port) instead of\n"
	    "                     the config's, e.g. to run two fleets on the same hosts\n"
	    "Exit status: 0 written; 2 bad options, config, or placement (e.g. two nodes on\n"
	    "one host with the same port); 1 DIR cannot be written.\n");
}

static int
parse_args(int argc, char **argv, plan_args *a)
{
	memset(a, 0, sizeof(*a));
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];

		if (strcmp(arg, "--nodes") == 0 && i + 1 < argc) {
			a->nodes = argv[++i];
		} else if (strcmp(arg, "--addrs") == 0 && i + 1 < argc) {
			a->addrs = argv[++i];
		} else if (strcmp(arg, "--out") == 0 && i + 1 < argc) {
			a->out = argv[++i];
		} else if (strcmp(arg, "--place") == 0 && i + 1 < argc) {
			if (a->n_place == MAX_PLACE) {
				fprintf(stderr, "psfleet slurm plan: at most %d --place options\n",
				    MAX_PLACE);
				return -1;
			}
			a->place[a->n_place++] = argv[++i];
		} else if (strcmp(arg, "--port-base") == 0 && i + 1 < argc) {
			char *end;
			unsigned long p = strtoul(argv[++i], &end, 10);

			if (*end != '\0' || p < 1 || p > 65535) {
				fprintf(stderr, "psfleet slurm plan: --port-base takes 1..65535\n");
				return -1;
			}
			a->port_base = (unsigned)p;
		} else if (arg[0] == '-') {
			fprintf(stderr,
			    "psfleet slurm plan: unknown or incomplete option '%s' (see --help)\n",
			    arg);
			return -1;
		} else if (a->config == NULL) {
			a->config = arg;
		} else {
			fprintf(stderr, "psfleet slurm plan: unexpected argument '%s'\n", arg);
			return -1;
		}
	}
	if (a->config == NULL || a->nodes == NULL || a->out == NULL) {
		fprintf(stderr,
		    "psfleet slurm plan: CONFIG, --nodes and --out are required "
		    "(see --help)\n");
		return -1;
	}
	return 0;
}

/* split cuts s at commas into out (at most max); returns the count, or 0 after a
 * message when an item is empty or there are too many. */
static size_t
split(char *s, char **out, size_t max, const char *what)
{
	size_t n = 0;

	for (char *p = s;; p++) {
		char *c = strchr(p, ',');

		if (c != NULL)
			*c = '\0';
		if (*p == '\0' || n == max) {
			fprintf(stderr, "psfleet slurm plan: %s: %s\n", what,
			    n == max ? "too many entries" : "an empty entry");
			return 0;
		}
		out[n++] = p;
		if (c == NULL)
			return n;
		p = c;
	}
}

/* parse_list reads LIST (0, 1,2 or 1-3, comma-separated) of host indexes below n
 * into idx; returns the count, or 0 after a message. */
static size_t
parse_list(const char *list, size_t n, size_t *idx, size_t max)
{
	size_t k = 0;
	const char *p = list;

	while (*p != '\0') {
		char *end;
		unsigned long lo = strtoul(p, &end, 10), hi = lo;

		if (end == p)
			goto bad;
		if (*end == '-') {
			p = end + 1;
			hi = strtoul(p, &end, 10);
			if (end == p || hi < lo)
				goto bad;
		}
		for (unsigned long h = lo; h <= hi; h++) {
			if (h >= n) {
				fprintf(stderr,
				    "psfleet slurm plan: --place ...=%s: host %lu is out of range "
				    "(--nodes has %zu: 0-%zu)\n",
				    list, h, n, n - 1);
				return 0;
			}
			if (k == max)
				goto bad;
			idx[k++] = h;
		}
		if (*end != ',' && *end != '\0')
			goto bad;
		p = *end == ',' ? end + 1 : end;
	}
	if (k > 0)
		return k;
bad:
	fprintf(stderr,
	    "psfleet slurm plan: --place: '%s' is not a list of host indexes (e.g. 0, 1,2, 1-3)\n",
	    list);
	return 0;
}

/* matches tells whether --place's WHO names node n. */
static bool
matches(const char *who, size_t len, const psf_node_cfg *n)
{
	const char *role = psf_role_name(n->role);
	size_t rl = strlen(role);

	if (strlen(n->id) == len && strncmp(who, n->id, len) == 0)
		return true;
	return strncmp(who, role, rl) == 0 && (len == rl || (len == rl + 1 && who[rl] == 's'));
}

/* place sets p->at: the defaults, then each --place in order. */
static int
place(plan *p)
{
	const psf_config *cfg = p->cfg;
	size_t h = p->n_hosts, idx[MAX_HOSTS];
	size_t seen[8] = {0}; /* per role: nodes placed so far by the current rule */

	for (size_t i = 0; i < cfg->n_nodes; i++) {
		const psf_node_cfg *n = &cfg->nodes[i];

		switch (n->role) {
		case PSF_ROLE_PS: p->at[i] = 0; break;
		case PSF_ROLE_TRAINER: p->at[i] = h <= 2 ? h - 1 : 1 + n->index % (h - 2); break;
		default: p->at[i] = h - 1; break;
		}
	}
	for (size_t r = 0; r < p->a.n_place; r++) {
		const char *rule = p->a.place[r], *eq = strchr(rule, '=');
		size_t k, hit = 0;

		if (eq == NULL || eq == rule) {
			fprintf(stderr, "psfleet slurm plan: --place takes WHO=LIST, not '%s'\n",
			    rule);
			return -1;
		}
		if ((k = parse_list(eq + 1, h, idx, MAX_HOSTS)) == 0)
			return -1;
		memset(seen, 0, sizeof(seen));
		for (size_t i = 0; i < cfg->n_nodes; i++) {
			const psf_node_cfg *n = &cfg->nodes[i];

			if (!matches(rule, (size_t)(eq - rule), n))
				continue;
			p->at[i] = idx[seen[n->role % 8]++ % k];
			hit++;
		}
		if (hit == 0) {
			fprintf(stderr,
			    "psfleet slurm plan: --place %s: '%.*s' is neither a role (ps, trainers, "
			    "inferers, gateway) nor a node id of %s\n",
			    rule, (int)(eq - rule), rule, p->a.config);
			return -1;
		}
	}
	return 0;
}

/* endpoint builds the node's new address on host address addr: for a URL
 * (scheme != NULL) "scheme://addr:port", else "addr:port"; an IPv6 address goes in
 * brackets. The port is the next from --port-base, or the one after the last ':'
 * of old. Returns a malloc'd string, or NULL after a message. */
static char *
endpoint(plan *p, const psf_node_cfg *n, const char *what, const char *old, const char *scheme,
    const char *addr, unsigned *next)
{
	const char *colon = strrchr(old, ':');
	unsigned long port;
	char *end, *s;
	bool v6 = strchr(addr, ':') != NULL;

	if (p->a.port_base != 0) {
		port = (*next)++;
		if (port > 65535) {
			fprintf(stderr,
			    "psfleet slurm plan: --port-base %u: ports run past 65535\n",
			    p->a.port_base);
			return NULL;
		}
	} else {
		port = colon != NULL ? strtoul(colon + 1, &end, 10) : 0;
		if (colon == NULL || *end != '\0' || port == 0 || port > 65535) {
			fprintf(stderr,
			    "psfleet slurm plan: %s: %s '%s' has no fixed port: give one in the "
			    "config or use --port-base\n",
			    n->id, what, old);
			return NULL;
		}
	}
	if (asprintf(&s, "%s%s%s%s%s:%lu", scheme != NULL ? scheme : "",
	        scheme != NULL ? "://" : "", v6 ? "[" : "", addr, v6 ? "]" : "", port) < 0)
		return NULL;
	return s;
}

/* addresses computes every node's new listen URL and metrics address. */
static int
addresses(plan *p)
{
	unsigned next = p->a.port_base;

	for (size_t i = 0; i < p->cfg->n_nodes; i++) {
		const psf_node_cfg *n = &p->cfg->nodes[i];
		const char *addr = p->addr[p->at[i]];

		if (n->listen != NULL) {
			const char *sep = strstr(n->listen, "://");
			char scheme[16];

			if (sep == NULL || sep - n->listen >= (long)sizeof(scheme) ||
			    (strncmp(n->listen, "tcp://", 6) != 0 &&
			        strncmp(n->listen, "tls+tcp://", 10) != 0)) {
				fprintf(stderr,
				    "psfleet slurm plan: %s listens on '%s': nodes on other hosts "
				    "need tcp:// or tls+tcp://\n",
				    n->id, n->listen);
				return -1;
			}
			snprintf(scheme, sizeof(scheme), "%.*s", (int)(sep - n->listen), n->listen);
			if ((p->listen[i] = endpoint(p, n, "listen", n->listen, scheme, addr,
			         &next)) == NULL)
				return -1;
		}
		if (n->metrics != NULL && n->metrics[0] != '\0' &&
		    (p->metrics[i] = endpoint(p, n, "metrics", n->metrics, NULL, addr, &next)) ==
		        NULL)
			return -1;
	}
	return 0;
}

/* rewrite writes the placed config to path (lib/config/config_rewrite.c). */
static int
rewrite(plan *p, const char *path)
{
	psf_node_addrs *a = calloc(p->cfg->n_nodes, sizeof(*a));
	char header[600], errbuf[512];
	psf_err err;

	if (a == NULL) {
		fprintf(stderr, "psfleet slurm plan: out of memory\n");
		return -1;
	}
	for (size_t i = 0; i < p->cfg->n_nodes; i++) {
		a[i].listen = p->listen[i];
		a[i].advertise = ""; /* dropped: the listen URL is the node's address */
		a[i].metrics = p->metrics[i];
	}
	snprintf(header, sizeof(header),
	    "Written by psfleet slurm plan from %.200s: every node's listen and metrics\n"
	    "address on its host of the allocation. Edit %.200s, not this file.",
	    p->a.config, p->a.config);
	err = psf_config_write_nodes(p->cfg, a, path, header, errbuf, sizeof(errbuf));
	free(a);
	if (err != PSF_OK) {
		fprintf(stderr, "psfleet slurm plan: %s\n", errbuf);
		return -1;
	}
	return 0;
}

/* write_nodes writes DIR/nodes: "ID ROLE SLURM_NODE" per node, in config order. */
static int
write_nodes(plan *p, const char *path)
{
	FILE *f = fopen(path, "w");

	if (f == NULL) {
		fprintf(stderr, "psfleet slurm plan: cannot write %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < p->cfg->n_nodes; i++)
		fprintf(f, "%s %s %s\n", p->cfg->nodes[i].id, psf_role_name(p->cfg->nodes[i].role),
		    p->host[p->at[i]]);
	if (fclose(f) != 0) {
		fprintf(stderr, "psfleet slurm plan: cannot write %s\n", path);
		return -1;
	}
	return 0;
}

/* run places, writes and checks; returns the exit code. */
static int
run(plan *p)
{
	char yaml[4200], nodes[4200], errbuf[512];
	psf_config *check = NULL;
	size_t n = p->cfg->n_nodes;

	if ((p->at = calloc(n, sizeof(*p->at))) == NULL ||
	    (p->listen = calloc(n, sizeof(*p->listen))) == NULL ||
	    (p->metrics = calloc(n, sizeof(*p->metrics))) == NULL) {
		fprintf(stderr, "psfleet slurm plan: out of memory\n");
		return 1;
	}
	if (place(p) != 0 || addresses(p) != 0)
		return 2;
	if (psf_mkdir_p(p->a.out) != PSF_OK) {
		fprintf(stderr, "psfleet slurm plan: cannot create %s: %s\n", p->a.out,
		    strerror(errno));
		return 1;
	}
	snprintf(yaml, sizeof(yaml), "%s/fleet.yaml", p->a.out);
	snprintf(nodes, sizeof(nodes), "%s/nodes", p->a.out);
	if (rewrite(p, yaml) != 0 || write_nodes(p, nodes) != 0)
		return 1;
	/* The written config gets every check a node will make (port clashes of
	 * nodes that now share a host, above all). */
	if (psf_config_load_ex(yaml, NULL, 0, errbuf, sizeof(errbuf), &check) != PSF_OK) {
		fprintf(stderr, "psfleet slurm plan: the placed config is not valid: %s%s\n",
		    errbuf,
		    p->a.port_base == 0 && strstr(errbuf, "clash") != NULL
		        ? " (nodes that share a host need distinct ports: --port-base)"
		        : "");
		(void)unlink(yaml);
		return 2;
	}
	psf_config_free(check);
	for (size_t i = 0; i < n; i++)
		printf("psfleet slurm: %-12s %-8s on %s (%s)%s%s\n", p->cfg->nodes[i].id,
		    psf_role_name(p->cfg->nodes[i].role), p->host[p->at[i]],
		    p->listen[i] != NULL ? p->listen[i] : "no listen URL",
		    p->metrics[i] != NULL ? ", metrics " : "",
		    p->metrics[i] != NULL ? p->metrics[i] : "");
	printf("psfleet slurm: wrote %s and %s\n", yaml, nodes);
	if (p->cfg->n_trainers + p->cfg->n_inferers > 0 && access(p->cfg->data.path, R_OK) != 0)
		printf("psfleet slurm: note: the data %s is not on this host (%s); the trainer "
		       "and inferer hosts must have it\n",
		    p->cfg->data.path, strerror(errno));
	return 0;
}

int
psf_slurm_plan(int argc, char **argv)
{
	plan p;
	char errbuf[512];
	size_t n_addrs;
	int rc;

	if (psf_cli_wants_help(argc, argv)) {
		plan_usage(stdout);
		return 0;
	}
	memset(&p, 0, sizeof(p));
	if (parse_args(argc, argv, &p.a) != 0)
		return 2;
	if ((p.n_hosts = split(p.a.nodes, p.host, MAX_HOSTS, "--nodes")) == 0)
		return 2;
	if (p.a.addrs != NULL) {
		if ((n_addrs = split(p.a.addrs, p.addr, MAX_HOSTS, "--addrs")) == 0)
			return 2;
		if (n_addrs != p.n_hosts) {
			fprintf(stderr,
			    "psfleet slurm plan: --addrs has %zu entries, --nodes %zu: give one "
			    "address per node\n",
			    n_addrs, p.n_hosts);
			return 2;
		}
	} else {
		memcpy(p.addr, p.host, sizeof(p.addr));
	}
	if (psf_config_load_ex(p.a.config, NULL, 0, errbuf, sizeof(errbuf), &p.cfg) != PSF_OK) {
		fprintf(stderr, "psfleet slurm plan: %s\n", errbuf);
		return 2;
	}
	rc = run(&p);
	for (size_t i = 0; p.listen != NULL && p.metrics != NULL && i < p.cfg->n_nodes; i++) {
		free(p.listen[i]);
		free(p.metrics[i]);
	}
	free(p.at);
	free(p.listen);
	free(p.metrics);
	psf_config_free(p.cfg);
	return rc;
}
