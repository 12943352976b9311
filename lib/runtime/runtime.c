#include "lib/runtime/runtime.h"

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/runtime/http.h"

struct psf_runtime {
	char id[128];
	char role[32];
	psf_metrics *reg;
	psf_http *http;
	uint64_t start_ns;
	/* mu guards ready/reason and is the condition's mutex for stop waits. */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool ready;
	char reason[256];
	psf_counter *bytes_in, *bytes_out;
	psf_counter *unauthenticated, *conns_refused;
	psf_gauge *conns_open;
};

/* The one signal-to-node link (signal handlers cannot take arguments). */
static atomic_int stop_flag;

static void
on_signal(int sig)
{
	(void)sig;
	atomic_store(&stop_flag, 1);
}

static bool
health_cb(void *arg, char *reason, size_t len)
{
	return psf_runtime_is_ready(arg, reason, len);
}

psf_err
psf_runtime_new(const char *id, const char *role, const char *metrics_addr, psf_runtime **out)
{
	psf_runtime *n = calloc(1, sizeof(*n));
	struct sigaction sa;
	psf_err err;

	if (n == NULL)
		return PSF_ENOMEM;
	snprintf(n->id, sizeof(n->id), "%s", id);
	snprintf(n->role, sizeof(n->role), "%s", role);
	snprintf(n->reason, sizeof(n->reason), "starting");
	n->start_ns = psf_now_ns();
	pthread_mutex_init(&n->mu, NULL);
	{
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&n->cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	atomic_store(&stop_flag, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if ((err = psf_metrics_new(&n->reg)) != PSF_OK ||
	    (err = psf_metrics_add_process(n->reg)) != PSF_OK ||
	    (err = psf_metrics_counter(n->reg, "psfleet_rpc_bytes_in_total",
	         "Bytes of RPC requests received", NULL, 0, &n->bytes_in)) != PSF_OK ||
	    (err = psf_metrics_counter(n->reg, "psfleet_rpc_bytes_out_total",
	         "Bytes of RPC replies sent", NULL, 0, &n->bytes_out)) != PSF_OK ||
	    (err = psf_metrics_counter(n->reg, "psfleet_rpc_unauthenticated_total",
	         "RPC requests refused for a missing or wrong token", NULL, 0,
	         &n->unauthenticated)) != PSF_OK ||
	    (err = psf_metrics_counter(n->reg, "psfleet_rpc_connections_refused_total",
	         "Connections closed on arrival: limits.max_connections were open", NULL, 0,
	         &n->conns_refused)) != PSF_OK ||
	    (err = psf_metrics_gauge(n->reg, "psfleet_rpc_connections", "RPC connections open",
	         NULL, 0, &n->conns_open)) != PSF_OK)
		goto fail;
	if (metrics_addr != NULL &&
	    (err = psf_http_open(metrics_addr, n->reg, health_cb, n, &n->http)) != PSF_OK) {
		psf_log_err("node", "metrics endpoint %s: %s", metrics_addr, psf_strerror(err));
		goto fail;
	}
	*out = n;
	return PSF_OK;
fail:
	psf_runtime_free(n);
	return err;
}

void
psf_runtime_free(psf_runtime *n)
{
	if (n == NULL)
		return;
	psf_http_close(n->http);
	psf_metrics_free(n->reg);
	pthread_cond_destroy(&n->cv);
	pthread_mutex_destroy(&n->mu);
	free(n);
}

psf_metrics *
psf_runtime_metrics(psf_runtime *n)
{
	return n->reg;
}

const char *
psf_runtime_id(const psf_runtime *n)
{
	return n->id;
}

const char *
psf_runtime_role(const psf_runtime *n)
{
	return n->role;
}

uint16_t
psf_runtime_http_port(const psf_runtime *n)
{
	return n->http != NULL ? psf_http_port(n->http) : 0;
}

void
psf_runtime_set_ready(psf_runtime *n, bool ready, const char *reason)
{
	pthread_mutex_lock(&n->mu);
	if (ready != n->ready)
		psf_log_info("node", "%s%s%s", ready ? "ready" : "not ready", ready ? "" : ": ",
		    ready ? "" : reason);
	n->ready = ready;
	snprintf(n->reason, sizeof(n->reason), "%s", ready ? "" : reason);
	pthread_mutex_unlock(&n->mu);
}

bool
psf_runtime_is_ready(psf_runtime *n, char *reason, size_t len)
{
	bool ready;

	pthread_mutex_lock(&n->mu);
	ready = n->ready;
	if (!ready && reason != NULL && len > 0)
		snprintf(reason, len, "%s", n->reason);
	pthread_mutex_unlock(&n->mu);
	return ready;
}

static void
observe(const char *method, psf_status status, uint64_t latency_ns, size_t bytes_in,
    size_t bytes_out, void *arg)
{
	psf_runtime *n = arg;
	psf_counter *c;
	psf_hist *h;
	size_t nb;
	const double *bounds = psf_metrics_latency_bounds(&nb);
	psf_label labels[2] = {{"method", method}, {"status", psf_status_name(status)}};

	/* get-or-create is a hash lookup; cheap next to an RPC */
	if (psf_metrics_counter(n->reg, "psfleet_rpc_requests_total", "RPCs served", labels, 2,
	        &c) == PSF_OK)
		psf_counter_inc(c);
	if (psf_metrics_hist(n->reg, "psfleet_rpc_latency_seconds", "RPC service time", labels, 1,
	        bounds, nb, &h) == PSF_OK)
		psf_hist_observe(h, (double)latency_ns / 1e9);
	psf_counter_add(n->bytes_in, bytes_in);
	psf_counter_add(n->bytes_out, bytes_out);
	if (status == PSF_STATUS_UNAUTHENTICATED)
		psf_counter_inc(n->unauthenticated);
}

static void
observe_conn(psf_rpc_conn_event ev, uint32_t n_open, void *arg)
{
	psf_runtime *n = arg;

	if (ev == PSF_RPC_CONN_REFUSED)
		psf_counter_inc(n->conns_refused);
	psf_gauge_set(n->conns_open, (double)n_open);
}

void
psf_runtime_observe_rpc(psf_runtime *n, psf_rpc_server *srv)
{
	psf_rpc_server_set_observer(srv, observe, n);
	psf_rpc_server_set_conn_observer(srv, observe_conn, n);
}

void
psf_runtime_request_stop(psf_runtime *n)
{
	atomic_store(&stop_flag, 1);
	pthread_mutex_lock(&n->mu);
	pthread_cond_broadcast(&n->cv);
	pthread_mutex_unlock(&n->mu);
}

bool
psf_runtime_stop_requested(const psf_runtime *n)
{
	(void)n;
	return atomic_load(&stop_flag) != 0;
}

bool
psf_runtime_wait(psf_runtime *n, uint32_t ms)
{
	struct timespec ts;
	uint64_t until = psf_now_ns() + (uint64_t)ms * 1000000ull;

	/* Signals only set the flag, so wake at least every 100 ms to see it. */
	pthread_mutex_lock(&n->mu);
	while (!psf_runtime_stop_requested(n)) {
		uint64_t now = psf_now_ns();
		if (now >= until)
			break;
		uint64_t step = until - now < 100000000ull ? until - now : 100000000ull;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += (time_t)(step / 1000000000ull);
		ts.tv_nsec += (long)(step % 1000000000ull);
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&n->cv, &n->mu, &ts);
	}
	pthread_mutex_unlock(&n->mu);
	return psf_runtime_stop_requested(n);
}

double
psf_runtime_uptime(const psf_runtime *n)
{
	return (double)(psf_now_ns() - n->start_ns) / 1e9;
}

/* read_token loads the shared secret: the first line of token_file, or the value
 * of the environment variable token_env. Never from the command line. */
static psf_err
read_token(const psf_security_cfg *sec, char *buf, size_t len, const char **out)
{
	char *data = NULL;
	const char *v;

	*out = NULL;
	if (sec->token_file != NULL) {
		psf_err err = psf_read_file(sec->token_file, &data, NULL);
		if (err != PSF_OK) {
			psf_log_err("node", "cannot read token_file %s: %s", sec->token_file,
			    psf_strerror(err));
			return err;
		}
		data[strcspn(data, "\r\n")] = '\0';
		snprintf(buf, len, "%s", data);
		free(data);
	} else if (sec->token_env != NULL) {
		if ((v = getenv(sec->token_env)) == NULL || v[0] == '\0') {
			psf_log_err("node", "token_env %s is not set", sec->token_env);
			return PSF_ECONFIG;
		}
		snprintf(buf, len, "%s", v);
	} else {
		return PSF_OK;
	}
	if (buf[0] == '\0') {
		psf_log_err("node", "the shared-secret token is empty");
		return PSF_ECONFIG;
	}
	*out = buf;
	return PSF_OK;
}

psf_err
psf_runtime_server_opts(const psf_config *cfg, char *tokbuf, size_t toklen,
    psf_rpc_server_opts *out)
{
	psf_rpc_server_opts o = {0};
	psf_err err = read_token(&cfg->security, tokbuf, toklen, &o.token);

	if (err != PSF_OK)
		return err;
	o.workers = cfg->limits.rpc_workers;
	o.max_msg = cfg->limits.max_message_bytes;
	o.max_conns = cfg->limits.max_connections;
	o.tls.cert_file = cfg->security.tls_cert;
	o.tls.key_file = cfg->security.tls_key;
	o.tls.ca_file = cfg->security.tls_ca;
	*out = o;
	return PSF_OK;
}

psf_err
psf_runtime_client_opts(const psf_config *cfg, char *tokbuf, size_t toklen,
    psf_rpc_client_opts *out)
{
	psf_rpc_client_opts o = {0};
	psf_err err = read_token(&cfg->security, tokbuf, toklen, &o.token);

	if (err != PSF_OK)
		return err;
	o.timeout_ms = cfg->limits.request_timeout_ms;
	o.max_msg = cfg->limits.max_message_bytes * 2;
	o.tls.cert_file = cfg->security.tls_cert;
	o.tls.key_file = cfg->security.tls_key;
	o.tls.ca_file = cfg->security.tls_ca;
	o.tls.server_name = cfg->security.tls_server_name;
	*out = o;
	return PSF_OK;
}

psf_err
psf_runtime_shard_group(const psf_config *cfg, size_t shard, const char *const *ps_urls,
    const psf_rpc_client_opts *opts, psf_rpc_group **out)
{
	const char *urls[PSF_MAX_REPLICATION], *names[PSF_MAX_REPLICATION];
	char label[32];
	size_t n = 0;

	if (shard >= cfg->n_shards)
		return PSF_EINVAL;
	for (size_t r = 0; r < cfg->replication && r < PSF_MAX_REPLICATION; r++) {
		const psf_node_cfg *node = psf_config_shard_replica(cfg, shard, r);
		if (node == NULL)
			return PSF_EINVAL;
		urls[n] = ps_urls != NULL ? ps_urls[node->index] : psf_node_dial_url(node);
		names[n++] = node->id;
	}
	snprintf(label, sizeof(label), "ps shard %zu", shard);
	return psf_rpc_group_open(label, urls, names, n, opts, out);
}
