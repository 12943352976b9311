/* up_preflight.c -- psfleet up's pre-flight check (cli.h): before anything
 * starts, the data file must exist (or be generated) and the listen and metrics
 * addresses of the nodes to start must be free on this machine, so a clash is
 * one clear line instead of a node failing to bind later. Also the start-up
 * lines that show how the work is split over trainers and ps nodes. */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "lib/base/util.h"
#include "lib/config/config.h"
#include "lib/data/data.h"
#include "trainer/trainer.h"

/* split_hostport splits "host:port", "[v6]:port" or ":port" (followed by
 * nothing or a '/' path) into host and port. Returns -1 when malformed. */
static int
split_hostport(const char *s, char *host, size_t hlen, char *port, size_t plen)
{
	const char *colon, *end;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (rb == NULL || rb[1] != ':')
			return -1;
		snprintf(host, hlen, "%.*s", (int)(rb - s - 1), s + 1);
		colon = rb + 1;
	} else {
		const char *slash = strchr(s, '/');
		colon = NULL;
		for (const char *c = s; *c != '\0' && (slash == NULL || c < slash); c++)
			if (*c == ':')
				colon = c;
		if (colon == NULL)
			return -1;
		snprintf(host, hlen, "%.*s", (int)(colon - s), s);
	}
	end = colon + 1 + strcspn(colon + 1, "/");
	if (end == colon + 1)
		return -1;
	snprintf(port, plen, "%.*s", (int)(end - colon - 1), colon + 1);
	return 0;
}

/* try_bind tells whether a TCP listener could bind host:port here: "" when it
 * could, otherwise the reason. SO_REUSEADDR as a listener would use it, so a
 * port in TIME_WAIT is not reported. */
static const char *
try_bind(const char *host, const char *port, char *buf, size_t len)
{
	struct addrinfo hints, *res = NULL;
	int s, rv;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if (host[0] == '*')
		host = "";
	rv = getaddrinfo(host[0] != '\0' ? host : NULL, port, &hints, &res);
	if (rv != 0) {
		snprintf(buf, len, "cannot resolve '%.100s': %s", host, gai_strerror(rv));
		return buf;
	}
	buf[0] = '\0';
	if ((s = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(buf, len, "socket: %s", strerror(errno));
	} else {
		int one = 1;
		(void)setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(s, res->ai_addr, res->ai_addrlen) != 0) {
			if (errno == EADDRINUSE)
				snprintf(buf, len, "port %s is already in use on this machine",
				    port);
			else if (errno == EADDRNOTAVAIL)
				snprintf(buf, len, "address %.100s is not on this machine", host);
			else
				snprintf(buf, len, "cannot bind: %s", strerror(errno));
		}
		close(s);
	}
	freeaddrinfo(res);
	return buf;
}

/* ipc_in_use tells whether something accepts connections on a unix socket path. */
static bool
ipc_in_use(const char *path)
{
	struct sockaddr_un sa;
	struct stat st;
	bool used;
	int s;

	if (stat(path, &st) != 0 || !S_ISSOCK(st.st_mode) || strlen(path) >= sizeof(sa.sun_path))
		return false;
	if ((s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return false;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path));
	used = connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(s);
	return used;
}

/* check_address checks one listen URL or metrics address of a node; on a
 * problem writes one line to stderr and returns -1. */
static int
check_address(const char *config, const psf_node_cfg *n, const char *what, const char *addr,
    bool is_url)
{
	static const char *const tcp_schemes[] = {"tcp://", "tcp4://", "tcp6://", "tls+tcp://",
	    "ws://", "wss://"};
	char host[256], port[16], why[256];
	const char *hp = is_url ? NULL : addr;

	if (is_url && strncmp(addr, "ipc://", 6) == 0) {
		if (ipc_in_use(addr + 6)) {
			fprintf(stderr,
			    "psfleet up: %s: node '%s' %s %s: already in use (another process "
			    "listens on it)\n",
			    config, n->id, what, addr);
			return -1;
		}
		return 0;
	}
	for (size_t k = 0; is_url && k < PSF_ARRAY_LEN(tcp_schemes); k++) {
		if (strncmp(addr, tcp_schemes[k], strlen(tcp_schemes[k])) == 0)
			hp = addr + strlen(tcp_schemes[k]);
	}
	if (hp == NULL) /* inproc://, abstract://: nothing to check */
		return 0;
	if (split_hostport(hp, host, sizeof(host), port, sizeof(port)) != 0 ||
	    strcmp(port, "0") == 0)
		return 0; /* the loader validated it; port 0 never clashes */
	if (try_bind(host, port, why, sizeof(why))[0] != '\0') {
		fprintf(stderr, "psfleet up: %s: node '%s' %s %s: %s\n", config, n->id, what, addr,
		    why);
		return -1;
	}
	return 0;
}

int
psf_up_preflight(const char *config, const psf_config *cfg, const bool *selected)
{
	struct stat st;

	if (stat(cfg->data.path, &st) != 0 && !cfg->data.has_generate) {
		fprintf(stderr,
		    "psfleet up: %s: data file '%s' does not exist and data.generate is not "
		    "set (make one with: psfleet data gen --out %s)\n",
		    config, cfg->data.path, cfg->data.path);
		return -1;
	}
	for (size_t i = 0; i < cfg->n_nodes; i++) {
		const psf_node_cfg *n = &cfg->nodes[i];

		if (!selected[i])
			continue;
		if ((n->listen != NULL &&
		        check_address(config, n, "listen", n->listen, true) != 0) ||
		    (n->metrics != NULL &&
		        check_address(config, n, "metrics", n->metrics, false) != 0))
			return -1;
	}
	return 0;
}

/* The trainers scan the data for their shard plan (trainer/plan.c) and stop on
 * the first problem, every one of them the same way; scanning it here first turns
 * that into one line before anything starts. */
int
psf_up_check_data(const char *config, const psf_config *cfg)
{
	psf_data_index *idx = NULL;
	const int32_t *dates;
	size_t n_dates = 0;
	int32_t cutoff;
	char why[512], where[4200] = "";
	psf_data_opts dopts;
	uint64_t t0 = psf_now_ms();
	int rc = -1, had_cache;

	/* With data.cache this scan builds the cache once for the whole fleet. */
	psf_data_opts_config(cfg, &dopts);
	dopts.quiet = true; /* the lines below say what happened */
	had_cache = dopts.cache &&
	    psf_data_cache_check(cfg->data.path, dopts.cache_dir, NULL, 0, where, sizeof(where)) ==
	        PSF_OK;
	if (psf_data_scan_opts(cfg->data.path, &dopts, why, sizeof(why), &idx) != PSF_OK) {
		fprintf(stderr, "psfleet up: %s: bad data: %s\n", config, why);
		return -1;
	}
	if (had_cache)
		printf("psfleet up: data cache %s is valid: the CSV is not parsed\n", where);
	else if (dopts.cache &&
	    psf_data_cache_check(cfg->data.path, dopts.cache_dir, NULL, 0, where, sizeof(where)) ==
	        PSF_OK)
		printf("psfleet up: parsed %s and built its data cache %s in %.1f s\n",
		    cfg->data.path, where, (double)(psf_now_ms() - t0) / 1e3);
	dates = psf_data_index_dates(idx, &n_dates);
	if (psf_data_index_n_symbols(idx) == 0)
		fprintf(stderr, "psfleet up: %s: bad data: %s has no data rows (only a header?)\n",
		    config, cfg->data.path);
	else if (psf_data_cutoff_date(dates, n_dates, cfg->data.test_fraction, &cutoff) != PSF_OK)
		fprintf(stderr,
		    "psfleet up: %s: bad data: %s has %zu date(s); a train and a test "
		    "split need at least 2\n",
		    config, cfg->data.path, n_dates);
	else
		rc = 0;
	psf_data_index_free(idx);
	return rc;
}

void
psf_up_print_split(const psf_config *cfg, psf_progress *p)
{
	psf_trainer_split *s = NULL;
	char errbuf[512];

	if (psf_trainer_split_new(cfg, errbuf, sizeof(errbuf), &s) != PSF_OK) {
		psf_progress_note(p, "psfleet up: cannot show the split: %s", errbuf);
		return;
	}
	psf_progress_note(p, "psfleet up: %zu symbols, %llu rows over %zu trainers (shard_by: %s):",
	    s->total_symbols, (unsigned long long)s->total_rows, s->n_trainers,
	    psf_shard_by_name(cfg->data.shard_by));
	for (size_t i = 0; i < s->n_trainers; i++)
		psf_progress_note(p, "psfleet up:   %s: %zu symbol%s, %llu rows%s",
		    psf_config_role_node(cfg, PSF_ROLE_TRAINER, i)->id, s->symbols[i],
		    s->symbols[i] == 1 ? "" : "s", (unsigned long long)s->rows[i],
		    s->symbols[i] == 0 ? " (nothing to train: it will leave at once)" : "");
	if (psf_model_kind_is_recurrent(cfg->model.kind) && cfg->model.window > 1)
		psf_progress_note(p,
		    "psfleet up:   %s window of %u days: the first %u feature rows of each symbol "
		    "have no window and are neither trained on nor evaluated",
		    psf_model_kind_name(cfg->model.kind), cfg->model.window, cfg->model.window - 1);
	psf_progress_note(p, "psfleet up: model keys over %zu ps (rendezvous hashing):", s->n_ps);
	for (size_t i = 0; i < s->n_ps; i++)
		psf_progress_note(p, "psfleet up:   %s: %llu keys, %llu floats%s",
		    psf_config_role_node(cfg, PSF_ROLE_PS, i)->id, (unsigned long long)s->keys[i],
		    (unsigned long long)s->floats[i],
		    s->keys[i] == 0 && cfg->consistency.mode == PSF_CONS_SYNC
		        ? " (no keys: it still takes part in every sync round)"
		        : "");
	psf_trainer_split_free(s);
}
