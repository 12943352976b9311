/* config_check.c -- the cross-field checks, run on the parsed config (with the
 * document still alive, so every message names a line or the override that set
 * the value). The --set overrides, applied to the document before parsing, are
 * config_override.c. */
#include "lib/config/config_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/base/bounds.h"

/* The longest ipc:// path: a Unix socket's sun_path, less its terminating NUL
 * (107 bytes on Linux). NNG refuses a longer one only when it listens. */
#define IPC_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

/* ---- cross-field validation ---- */

/* An endpoint a node binds: a TCP host:port, or a named one (ipc, inproc). */
typedef struct endpoint {
	int is_tcp;
	char host[128];   /* normalised: "*" = any address, localhost = 127.0.0.1 */
	unsigned port;    /* 0 = the OS picks one: never clashes */
	const char *name; /* non-TCP: the whole URL */
} endpoint;

static int
parse_hostport(const char *s, size_t len, endpoint *ep)
{
	const char *colon = NULL;
	size_t hlen;
	char port[8];
	uint64_t v;

	for (size_t i = 0; i < len; i++)
		if (s[i] == ':')
			colon = s + i;
	hlen = colon != NULL ? (size_t)(colon - s) : 0;
	if (colon == NULL || len - hlen - 1 == 0 || len - hlen - 1 >= sizeof(port) ||
	    hlen >= sizeof(ep->host))
		return -1;
	memcpy(port, colon + 1, len - hlen - 1);
	port[len - hlen - 1] = '\0';
	if (port[0] == '+' || config_parse_u64(port, &v) != 0 || v > 65535)
		return -1;
	for (size_t i = 0; i < hlen; i++) {
		int bracketed = hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']';
		char ch = s[i];

		if (!(ch == '.' || ch == '-' || ch == '_' || ch == '*' ||
		        (ch >= '0' && ch <= '9') || ((ch | 32) >= 'a' && (ch | 32) <= 'z') ||
		        (bracketed && (ch == ':' || ch == '[' || ch == ']'))))
			return -1;
	}
	memcpy(ep->host, s, hlen);
	ep->host[hlen] = '\0';
	if (hlen == 0 || strcmp(ep->host, "0.0.0.0") == 0 || strcmp(ep->host, "[::]") == 0)
		strcpy(ep->host, "*");
	else if (strcmp(ep->host, "localhost") == 0)
		strcpy(ep->host, "127.0.0.1");
	ep->is_tcp = 1;
	ep->port = (unsigned)v;
	return 0;
}

/* parse_url accepts the NNG URLs psfleet listens on. */
static int
parse_url(const char *url, endpoint *ep)
{
	static const char *const tcp[] = {"tcp", "tcp4", "tcp6", "tls+tcp", "ws", "wss", NULL};
	static const char *const named[] = {"ipc", "inproc", "abstract", NULL};
	const char *sep = strstr(url, "://");
	const char *rest, *slash;
	char scheme[16];

	if (sep == NULL || (size_t)(sep - url) >= sizeof(scheme))
		return -1;
	memcpy(scheme, url, (size_t)(sep - url));
	scheme[sep - url] = '\0';
	rest = sep + 3;
	if (config_name_index(named, scheme) >= 0) {
		ep->is_tcp = 0;
		ep->name = url;
		return *rest != '\0' ? 0 : -1;
	}
	if (config_name_index(tcp, scheme) < 0)
		return -1;
	slash = strchr(rest, '/');
	return parse_hostport(rest, slash != NULL ? (size_t)(slash - rest) : strlen(rest), ep);
}

static int
endpoints_clash(const endpoint *a, const endpoint *b)
{
	if (a->is_tcp != b->is_tcp)
		return 0;
	if (!a->is_tcp)
		return strcmp(a->name, b->name) == 0;
	return a->port != 0 && a->port == b->port &&
	    (strcmp(a->host, b->host) == 0 || strcmp(a->host, "*") == 0 ||
	        strcmp(b->host, "*") == 0);
}

/* One bound address: which node, which key, and where the key is. */
typedef struct bound {
	endpoint ep;
	size_t node;
	const char *what; /* "listen" or "metrics" */
	size_t line;
} bound;

/* clash names both nodes, the one later in the file first, at its line. */
static psf_err
clash(ctx *c, const bound *a, const bound *b)
{
	char where[160];

	if (a->line > b->line) {
		const bound *t = a;

		a = b;
		b = t;
	}
	if (!b->ep.is_tcp)
		snprintf(where, sizeof(where), "%.150s", b->ep.name);
	else if (strcmp(a->ep.host, "*") == 0 || strcmp(b->ep.host, "*") == 0)
		snprintf(where, sizeof(where), "port %u", b->ep.port);
	else
		snprintf(where, sizeof(where), "%.128s:%u", b->ep.host, b->ep.port);
	return config_fail(c, b->line, "port clash: '%s' %s and '%s' %s both use %s",
	    c->cfg->nodes[b->node].id, b->what, c->cfg->nodes[a->node].id, a->what, where);
}

/* validate_ports checks every listen and metrics address, and that no two bind the
 * same endpoint (port 0 = chosen by the OS, never a clash). */
static psf_err
validate_ports(ctx *c)
{
	psf_config *cfg = c->cfg;
	bound *b = calloc(cfg->n_nodes * 2 + 1, sizeof(*b));
	size_t n = 0;
	psf_err rv = PSF_OK;

	if (b == NULL)
		return config_oom(c);
	for (size_t i = 0; i < cfg->n_nodes && rv == PSF_OK; i++) {
		const psf_node_cfg *node = &cfg->nodes[i];

		if (node->listen != NULL) {
			b[n] = (bound){.node = i,
			    .what = "listen",
			    .line = config_node_line(c, i, "listen")};
			if (parse_url(node->listen, &b[n++].ep) != 0)
				rv = config_fail(c, b[n - 1].line,
				    "'listen' of node '%s' must be an NNG URL "
				    "like tcp://host:port or ipc:///path",
				    node->id);
			else if (strncmp(node->listen, "ipc://", 6) == 0 &&
			    strlen(node->listen + 6) > IPC_PATH_MAX)
				rv = config_fail(c, b[n - 1].line,
				    "'listen' of node '%s': the ipc path has "
				    "%zu characters, more than the %zu a Unix socket path can hold; use a "
				    "shorter path",
				    node->id, strlen(node->listen + 6), IPC_PATH_MAX);
		}
		if (node->metrics != NULL && rv == PSF_OK) {
			b[n] = (bound){.node = i,
			    .what = "metrics",
			    .line = config_node_line(c, i, "metrics")};
			if (parse_hostport(node->metrics, strlen(node->metrics), &b[n++].ep) != 0)
				rv = config_fail(c, b[n - 1].line,
				    "'metrics' of node '%s' must be host:port "
				    "with a port in [0, 65535]",
				    node->id);
		}
	}
	for (size_t i = 0; i < n && rv == PSF_OK; i++)
		for (size_t j = 0; j < i && rv == PSF_OK; j++)
			if (endpoints_clash(&b[j].ep, &b[i].ep))
				rv = clash(c, &b[j], &b[i]);
	free(b);
	return rv;
}

/* scheme_family: tcp, tcp4 and tcp6 are one family; every other scheme its own. */
static size_t
scheme_family(const char *url, char *out, size_t len)
{
	const char *sep = strstr(url, "://");
	size_t n = sep != NULL ? (size_t)(sep - url) : 0;

	if (n >= len)
		n = 0;
	memcpy(out, url, n);
	out[n] = '\0';
	if (strcmp(out, "tcp4") == 0 || strcmp(out, "tcp6") == 0)
		strcpy(out, "tcp");
	return n;
}

/* validate_advertise checks each node's dial URL: 'advertise' parses, is of the
 * listen URL's scheme family, has a port and no wildcard host; a wildcard listen
 * without 'advertise' is refused (nobody can dial 0.0.0.0). */
static psf_err
validate_advertise(ctx *c)
{
	for (size_t i = 0; i < c->cfg->n_nodes; i++) {
		const psf_node_cfg *n = &c->cfg->nodes[i];
		char fa[16], fl[16];
		endpoint ep;

		if (n->advertise == NULL) {
			if (n->listen != NULL && parse_url(n->listen, &ep) == 0 && ep.is_tcp &&
			    strcmp(ep.host, "*") == 0)
				return config_fail(c, config_node_line(c, i, "listen"),
				    "node '%s' listens on a wildcard address (%s) that others cannot "
				    "dial; set 'advertise' to the URL they should dial (e.g. "
				    "tcp://host-name:port)",
				    n->id, n->listen);
			continue;
		}
		size_t line = config_node_line(c, i, "advertise");
		if (n->listen == NULL)
			return config_fail(c, line, "node '%s' has 'advertise' but no 'listen'",
			    n->id);
		if (parse_url(n->advertise, &ep) != 0)
			return config_fail(c, line,
			    "'advertise' of node '%s' must be an NNG URL like tcp://host:port",
			    n->id);
		if (scheme_family(n->advertise, fa, sizeof(fa)) == 0 ||
		    scheme_family(n->listen, fl, sizeof(fl)) == 0 || strcmp(fa, fl) != 0)
			return config_fail(c, line,
			    "'advertise' of node '%s' (%s://) must use the scheme of its 'listen' (%s://)",
			    n->id, fa, fl);
		if (ep.is_tcp && (strcmp(ep.host, "*") == 0 || ep.port == 0))
			return config_fail(c, line,
			    "'advertise' of node '%s' must name a host others can dial and a port "
			    "(not a wildcard host like 0.0.0.0 or port 0)",
			    n->id);
	}
	return PSF_OK;
}

static int
valid_id(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > MAX_ID_LEN || s[0] == '.')
		return 0;
	for (; *s != '\0'; s++)
		if (!((*s >= '0' && *s <= '9') || ((*s | 32) >= 'a' && (*s | 32) <= 'z') ||
		        *s == '.' || *s == '_' || *s == '-'))
			return 0;
	return 1;
}

static psf_err
validate_nodes(ctx *c)
{
	psf_config *cfg = c->cfg;

	if (cfg->n_ps == 0)
		return config_fail(c, config_line_of(c, "nodes", "ps"),
		    "at least one ps node is required in nodes.ps");
	if (cfg->replication > 1 && cfg->n_ps % cfg->replication != 0)
		return config_fail(c, config_line_of(c, "replication", NULL),
		    "replication %u needs a number of ps nodes that is a multiple of %u (each "
		    "shard lives on %u of them); nodes.ps has %zu",
		    cfg->replication, cfg->replication, cfg->replication, cfg->n_ps);
	if (cfg->replication > 1 && cfg->n_ps < 3)
		return config_fail(c, config_line_of(c, "replication", NULL),
		    "replication %u needs at least 3 ps nodes (failover is decided by a majority "
		    "of the ps nodes); nodes.ps has %zu",
		    cfg->replication, cfg->n_ps);
	if (cfg->n_trainers == 0)
		return config_fail(c, config_line_of(c, "nodes", "trainers"),
		    "at least one trainer is required in nodes.trainers");
	if (cfg->n_trainers > PSF_MAX_TRAINERS) /* at the first one too many */
		return config_fail(c, config_node_line(c, cfg->n_ps + PSF_MAX_TRAINERS, "id"),
		    "too many trainers: %zu (a ps node serves at most %d)", cfg->n_trainers,
		    PSF_MAX_TRAINERS);
	for (size_t i = 0; i < cfg->n_nodes; i++) {
		const psf_node_cfg *n = &cfg->nodes[i];

		if (!valid_id(n->id))
			return config_fail(c, config_node_line(c, i, "id"),
			    "node id '%.64s' must be "
			    "1-%d characters of A-Z a-z 0-9 . _ - not starting with '.'",
			    n->id, MAX_ID_LEN);
		for (size_t j = 0; j < i; j++) /* report the later one in the file */
			if (strcmp(cfg->nodes[j].id, n->id) == 0)
				return config_fail(c,
				    config_node_line(c,
				        config_node_line(c, i, "id") > config_node_line(c, j, "id")
				            ? i
				            : j,
				        "id"),
				    "duplicate node id '%s'", n->id);
		if (n->role != PSF_ROLE_TRAINER && n->listen == NULL)
			return config_fail(c, config_node_line(c, i, "id"),
			    "%s node '%s' needs 'listen' "
			    "(an NNG URL like tcp://127.0.0.1:7101)",
			    psf_role_name(n->role), n->id);
		if (n->listen != NULL && cfg->security.tls_cert == NULL &&
		    (strncmp(n->listen, "tls+tcp://", 10) == 0 ||
		        strncmp(n->listen, "wss://", 6) == 0))
			return config_fail(c, config_node_line(c, i, "listen"),
			    "node '%s' listens with TLS but "
			    "security.tls_cert and security.tls_key are not set",
			    n->id);
	}
	psf_err rv = validate_ports(c);
	return rv != PSF_OK ? rv : validate_advertise(c);
}

static psf_err
validate_inference(ctx *c)
{
	psf_config *cfg = c->cfg;
	uint32_t shards = cfg->inference.shards;
	uint8_t covered[1024] = {0};

	for (size_t i = 0; i < cfg->n_nodes; i++) {
		const psf_node_cfg *n = &cfg->nodes[i];

		if (n->role != PSF_ROLE_INFERER)
			continue;
		if (n->shard >= shards)
			return config_fail(c, config_node_line(c, i, "shard"),
			    "inferer '%s' has shard %u but "
			    "inference.shards is %u (shards are 0..%u)",
			    n->id, n->shard, shards, shards - 1);
		covered[n->shard] = 1;
	}
	for (uint32_t s = 0; cfg->n_inferers > 0 && s < shards; s++)
		if (!covered[s])
			return config_fail(c, config_line_of(c, "inference", "shards"),
			    "inference shard %u has no "
			    "inferer (every shard 0..%u needs one)",
			    s, shards - 1);
	if (cfg->n_gateways > 0 && cfg->n_inferers == 0)
		return config_fail(c, config_node_line(c, cfg->n_nodes - 1, "id"),
		    "the gateway needs at least one inferer in nodes.inferers");
	for (size_t i = 0; i < cfg->n_features; i++)
		if (cfg->features[i].window >= cfg->inference.history_days)
			return config_fail(c, config_line_of(c, "inference", "history_days"),
			    "inference.history_days (%u) must be at least %u for feature '%s'",
			    cfg->inference.history_days, cfg->features[i].window + 1,
			    cfg->features[i].name);
	if (psf_model_kind_is_recurrent(cfg->model.kind) && cfg->n_inferers > 0) {
		/* The longest feature window bounds the earlier days a feature row needs. */
		size_t need = cfg->model.window;
		for (size_t i = 0; i < cfg->n_features; i++)
			if (cfg->features[i].window + (size_t)cfg->model.window > need)
				need = cfg->features[i].window + (size_t)cfg->model.window;
		if (need > cfg->inference.history_days)
			return config_fail(c, config_line_of(c, "inference", "history_days"),
			    "inference.history_days (%u) must be at least %zu: the features "
			    "need up to %zu earlier days and model.window is %u",
			    cfg->inference.history_days, need, need - cfg->model.window,
			    cfg->model.window);
	}
	return PSF_OK;
}

/* validate_exact: the exact solver (optimizer kind "exact") has a closed form
 * for the linear model only, without a per-symbol embedding (docs/models.md). */
static psf_err
validate_exact(ctx *c)
{
	const psf_config *cfg = c->cfg;

	if (cfg->model.kind != PSF_MODEL_LINEAR)
		return config_fail(c, config_line_of(c, "optimizer", "kind"),
		    "optimizer kind 'exact' solves the linear model only; model kind '%s' has "
		    "no closed form: use sgd, momentum, adam or adagrad (docs/models.md)",
		    psf_model_kind_name(cfg->model.kind));
	if (cfg->model.embedding_dim > 0)
		return config_fail(c, config_line_of(c, "model", "embedding_dim"),
		    "optimizer kind 'exact' cannot learn a per-symbol embedding (the loss is "
		    "not quadratic in it): set model.embedding_dim to 0");
	return PSF_OK;
}

/* validate_finetune refuses the settings where fine-tuning has no meaning. */
static psf_err
validate_finetune(ctx *c)
{
	const psf_config *cfg = c->cfg;

	if (cfg->training.finetune.steps == 0)
		return PSF_OK;
	if (cfg->optimizer.kind == PSF_OPTIM_EXACT)
		return config_fail(c, config_line_of(c, "training", "finetune"),
		    "training.finetune needs a gradient optimizer: optimizer kind 'exact' solves "
		    "once on every row and has no steps to continue (to take new rows in, "
		    "append them to the CSV and run psfleet up --fresh; docs/training.md)");
	if (cfg->consistency.mode == PSF_CONS_LOCAL)
		return config_fail(c, config_line_of(c, "training", "finetune"),
		    "training.finetune is not supported with consistency mode 'local' (one "
		    "trainer fine-tunes: use sync, async or ssp)");
	if (cfg->n_trainers == 0)
		return config_fail(c, config_line_of(c, "training", "finetune"),
		    "training.finetune needs a trainer (the first one fine-tunes)");
	return PSF_OK;
}

/* valid_day tells whether s looks like YYYY-MM-DD (month 01-12, day 01-31; the
 * trainers check the calendar when they parse it). */
static int
valid_day(const char *s)
{
	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return 0;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return 0;
	int m = (s[5] - '0') * 10 + (s[6] - '0'), d = (s[8] - '0') * 10 + (s[9] - '0');
	return m >= 1 && m <= 12 && d >= 1 && d <= 31;
}

static psf_err
validate_misc(ctx *c)
{
	psf_config *cfg = c->cfg;
	const psf_security_cfg *sec = &cfg->security;
	psf_err err;

	if (!valid_id(cfg->name))
		return config_fail(c, config_line_of(c, "name", NULL),
		    "'name' must be 1-%d characters of "
		    "A-Z a-z 0-9 . _ - not starting with '.'",
		    MAX_ID_LEN);
	if (cfg->data.path == NULL)
		return config_fail(c, config_line_of(c, "data", NULL),
		    "missing 'path' in data (required unless data.generate is set)");
	if (cfg->data.train_end != NULL && !valid_day(cfg->data.train_end))
		return config_fail(c, config_line_of(c, "data", "train_end"),
		    "data.train_end '%s' is not a date YYYY-MM-DD", cfg->data.train_end);
	if (cfg->n_features == 0)
		return config_fail(c, 1,
		    "missing 'features' (a list like [\"lag:0\", \"return:1\"])");
	if (cfg->model.kind == PSF_MODEL_LOGISTIC && cfg->target != PSF_TARGET_NEXT_DIRECTION)
		return config_fail(c, config_line_of(c, "model", "kind"),
		    "model kind 'logistic' needs target next_direction");
	if (cfg->optimizer.kind == PSF_OPTIM_EXACT && (err = validate_exact(c)) != PSF_OK)
		return err;
	if ((err = validate_finetune(c)) != PSF_OK)
		return err;
	if (psf_model_kind_is_recurrent(cfg->model.kind) &&
	    cfg->model.n_hidden > PSF_MODEL_MAX_RNN_LAYERS)
		return config_fail(c, config_line_of(c, "model", "hidden"),
		    "model kind '%s' takes 1 or %d layers in 'hidden', not %u",
		    psf_model_kind_name(cfg->model.kind), PSF_MODEL_MAX_RNN_LAYERS,
		    cfg->model.n_hidden);
	if (!psf_model_kind_is_recurrent(cfg->model.kind) && cfg->model.window != 10)
		config_warn(c, config_line_of(c, "model", "window"),
		    "model.window is only used by kinds gru and lstm; '%s' reads one day",
		    psf_model_kind_name(cfg->model.kind));
	if ((uint64_t)cfg->model.chunk_floats * 4 + 4096 > cfg->limits.max_message_bytes)
		return config_fail(c, config_line_of(c, "model", "chunk_floats"),
		    "model.chunk_floats (%u) * 4 bytes + 4096 must fit in "
		    "limits.max_message_bytes (%llu)",
		    cfg->model.chunk_floats, (unsigned long long)cfg->limits.max_message_bytes);
	if (cfg->consistency.mode == PSF_CONS_LOCAL &&
	    (cfg->model.embedding_dim > 0 || cfg->model.symbol_bias))
		return config_fail(c, config_line_of(c, "consistency", "mode"),
		    "consistency mode 'local' needs a model without per-symbol tensors "
		    "(embedding_dim 0, symbol_bias false): a trainer averages the whole model");
	if (cfg->consistency.heartbeat_ms >= cfg->consistency.straggler_timeout_ms)
		return config_fail(c, config_line_of(c, "consistency", "heartbeat_ms"),
		    "'heartbeat_ms' (%u) must be less than straggler_timeout_ms (%u)",
		    cfg->consistency.heartbeat_ms, cfg->consistency.straggler_timeout_ms);
	if (sec->token_file != NULL && sec->token_env != NULL)
		return config_fail(c, config_line_of(c, "security", "token_env"),
		    "set only one of 'token_file' and 'token_env' in security");
	if ((sec->tls_cert == NULL) != (sec->tls_key == NULL))
		return config_fail(c,
		    config_line_of(c, "security", sec->tls_cert != NULL ? "tls_cert" : "tls_key"),
		    "'tls_cert' and 'tls_key' must be set together in security");
	/* Without a CA the dialer verifies nothing, so a server name would be
	 * silently ignored: refuse rather than give a false sense of checking. */
	if (sec->tls_server_name != NULL && sec->tls_ca == NULL)
		return config_fail(c, config_line_of(c, "security", "tls_server_name"),
		    "'tls_server_name' needs 'tls_ca' in security: without a CA the server's "
		    "certificate, and so its name, is not verified");
	return PSF_OK;
}

/* validate_model_size refuses a model the ps would refuse (psf_model_new, with the
 * same count and limit), and warns about one that is legal but very large. */
static psf_err
validate_model_size(ctx *c)
{
	const psf_config *cfg = c->cfg;
	uint64_t n = psf_model_cfg_dense_floats(&cfg->model, (uint32_t)cfg->n_features);
	size_t ln = config_line_of(c, "model",
	    psf_model_kind_has_hidden(cfg->model.kind) ? "hidden" : "kind");

	if (n > PSF_MODEL_MAX_DENSE_FLOATS)
		return config_fail(c, ln,
		    "the model has %llu dense parameters (%llu bytes), more "
		    "than the limit of %llu (%llu bytes): use smaller 'hidden' layers",
		    (unsigned long long)n, (unsigned long long)n * 4,
		    (unsigned long long)PSF_MODEL_MAX_DENSE_FLOATS,
		    (unsigned long long)PSF_MODEL_MAX_DENSE_FLOATS * 4);
	if (n > PSF_MODEL_WARN_DENSE_FLOATS)
		config_warn(c, ln,
		    "the model has %llu dense parameters (%llu bytes): every trainer "
		    "and inferer holds a full copy, and the ps nodes the optimizer state too",
		    (unsigned long long)n, (unsigned long long)n * 4);
	return PSF_OK;
}

/* readable_file checks that path opens for reading and is a regular file; on
 * failure it writes why into buf and returns -1. *fd_out (may be NULL) gets the
 * open descriptor, which the caller closes. */
static int
readable_file(const char *path, char *buf, size_t len, int *fd_out)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0) {
		snprintf(buf, len, "%s",
		    errno == ENOENT       ? "not found"
		        : errno == EACCES ? "permission denied"
		                          : strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(buf, len, "not a regular file");
		close(fd);
		return -1;
	}
	if (fd_out != NULL)
		*fd_out = fd;
	else
		close(fd);
	return 0;
}

/* validate_security_files checks that the files under security can be read now,
 * relative to this process's directory as the nodes will read them, so a missing
 * token or certificate is a file:line error at start-up rather than a node that
 * exits later. The token file's first line must not be empty. */
static psf_err
validate_security_files(ctx *c)
{
	const psf_security_cfg *sec = &c->cfg->security;
	const struct {
		const char *key, *path;
	} files[] = {{"token_file", sec->token_file}, {"tls_cert", sec->tls_cert},
	    {"tls_key", sec->tls_key}, {"tls_ca", sec->tls_ca}};
	char why[128], first[2];
	int fd;

	if (c->skip_files)
		return PSF_OK;
	for (size_t i = 0; i < PSF_ARRAY_LEN(files); i++) {
		if (files[i].path == NULL)
			continue;
		if (readable_file(files[i].path, why, sizeof(why), i == 0 ? &fd : NULL) != 0)
			return config_fail(c, config_line_of(c, "security", files[i].key),
			    "cannot read security.%s '%.200s': %s", files[i].key, files[i].path,
			    why);
		if (i == 0) {
			ssize_t got = read(fd, first, 1);

			close(fd);
			if (got != 1 || first[0] == '\n' || first[0] == '\r')
				return config_fail(c, config_line_of(c, "security", "token_file"),
				    "security.token_file '%.200s' has an empty first line (the shared "
				    "secret)",
				    files[i].path);
		}
	}
	return PSF_OK;
}

/* config_validate holds every cross-field check; config_parse_map already checked each value. */
psf_err
config_validate(ctx *c)
{
	psf_err rv;

	if ((rv = validate_misc(c)) != PSF_OK || (rv = validate_model_size(c)) != PSF_OK ||
	    (rv = validate_nodes(c)) != PSF_OK || (rv = validate_security_files(c)) != PSF_OK)
		return rv;
	return validate_inference(c);
}
