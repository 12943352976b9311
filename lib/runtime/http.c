#define _GNU_SOURCE
#include "lib/runtime/http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "lib/base/log.h"
#include "lib/base/util.h"

#define METRICS_CTYPE "text/plain; version=0.0.4"
#define TEXT_CTYPE "text/plain; charset=utf-8"
#define CLOSE_WAIT_MS 5000
#define REASON_LEN 256

/* The part of an endpoint that NNG's handlers point at. NNG frees handlers
 * on its reaper thread some time after the server is released, so the core is
 * reference counted: one reference for the psf_http, one per handler. */
typedef struct core {
	pthread_mutex_t mu; /* guards everything below */
	pthread_cond_t cv;  /* signalled when busy or refs drop */
	int refs;
	int busy;         /* handler callbacks using reg/health right now */
	bool is_closing;  /* set by psf_http_close: reg/health must not be used */
	psf_metrics *reg; /* borrowed */
	psf_health_fn health;
	void *health_arg;
} core;

struct psf_http {
	core *core;
	nng_http_server *server;
	bool is_started; /* we started server (so we stop it) */
	uint16_t port;
};

static psf_err
err_from_nng(int rv)
{
	switch (rv) {
	case 0: return PSF_OK;
	case NNG_ENOMEM: return PSF_ENOMEM;
	case NNG_EINVAL:
	case NNG_EADDRINVAL: return PSF_EINVAL;
	case NNG_EADDRINUSE: return PSF_EEXIST;
	default: return PSF_ESYS;
	}
}

/* --- core lifetime --- */

static psf_err
core_new(psf_metrics *reg, psf_health_fn health, void *arg, core **out)
{
	pthread_condattr_t attr;
	core *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return PSF_ENOMEM;
	if (pthread_condattr_init(&attr) != 0) {
		free(c);
		return PSF_ESYS;
	}
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (pthread_mutex_init(&c->mu, NULL) != 0) {
		pthread_condattr_destroy(&attr);
		free(c);
		return PSF_ESYS;
	}
	if (pthread_cond_init(&c->cv, &attr) != 0) {
		pthread_condattr_destroy(&attr);
		pthread_mutex_destroy(&c->mu);
		free(c);
		return PSF_ESYS;
	}
	pthread_condattr_destroy(&attr);
	c->refs = 1;
	c->reg = reg;
	c->health = health;
	c->health_arg = arg;
	*out = c;
	return PSF_OK;
}

static void
core_ref(core *c)
{
	pthread_mutex_lock(&c->mu);
	c->refs++;
	pthread_mutex_unlock(&c->mu);
}

/* Also the handlers' data destructor, run by NNG when it frees a handler. */
static void
core_unref(void *arg)
{
	core *c = arg;
	bool is_last;

	pthread_mutex_lock(&c->mu);
	is_last = --c->refs == 0;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	if (!is_last)
		return;
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

/* A handler may use reg/health only between enter and leave. */
static bool
core_enter(core *c)
{
	bool ok;

	pthread_mutex_lock(&c->mu);
	ok = !c->is_closing;
	if (ok)
		c->busy++;
	pthread_mutex_unlock(&c->mu);
	return ok;
}

static void
core_leave(core *c)
{
	pthread_mutex_lock(&c->mu);
	if (--c->busy == 0)
		pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

/* Waits until no callback runs, then until NNG dropped the handlers (bounded:
 * if NNG is slow the last handler frees the core instead). */
static void
core_shutdown(core *c)
{
	pthread_mutex_lock(&c->mu);
	c->is_closing = true;
	while (c->busy > 0)
		pthread_cond_wait(&c->cv, &c->mu);
	pthread_mutex_unlock(&c->mu);
}

static void
core_release(core *c)
{
	struct timespec until;
	uint64_t ns = psf_now_ns() + (uint64_t)CLOSE_WAIT_MS * 1000000u;

	until.tv_sec = (time_t)(ns / 1000000000u);
	until.tv_nsec = (long)(ns % 1000000000u);
	pthread_mutex_lock(&c->mu);
	while (c->refs > 1) {
		if (pthread_cond_timedwait(&c->cv, &c->mu, &until) == ETIMEDOUT) {
			psf_log_warn("http", "handlers still held after %d ms", CLOSE_WAIT_MS);
			break;
		}
	}
	pthread_mutex_unlock(&c->mu);
	core_unref(c);
}

/* --- handlers (run on NNG threads) --- */

static void
respond(nng_aio *aio, uint16_t status, const char *ctype, const char *body, size_t len)
{
	nng_http_res *res = NULL;
	int rv;

	if ((rv = nng_http_res_alloc(&res)) != 0 ||
	    (rv = nng_http_res_set_status(res, status)) != 0 ||
	    (rv = nng_http_res_set_header(res, "Content-Type", ctype)) != 0 ||
	    (len > 0 && (rv = nng_http_res_copy_data(res, body, len)) != 0)) {
		if (res != NULL)
			nng_http_res_free(res);
		nng_aio_finish(aio, rv);
		return;
	}
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

static core *
handler_core(nng_aio *aio)
{
	return nng_http_handler_get_data(nng_aio_get_input(aio, 1));
}

static void
handle_metrics(nng_aio *aio)
{
	core *c = handler_core(aio);
	char *text = NULL;
	size_t len = 0;
	psf_err rv = PSF_OK;

	if (!core_enter(c)) {
		nng_aio_finish(aio, NNG_ECLOSED);
		return;
	}
	if (c->reg != NULL)
		rv = psf_metrics_render(c->reg, &text, &len);
	core_leave(c);
	if (rv != PSF_OK) {
		psf_log_err("http", "render /metrics: %s", psf_strerror(rv));
		respond(aio, NNG_HTTP_STATUS_INTERNAL_SERVER_ERROR, TEXT_CTYPE, "render failed\n",
		    strlen("render failed\n"));
		return;
	}
	respond(aio, NNG_HTTP_STATUS_OK, METRICS_CTYPE, text != NULL ? text : "", len);
	free(text);
}

static void
handle_healthz(nng_aio *aio)
{
	core *c = handler_core(aio);
	char reason[REASON_LEN] = "";
	char body[REASON_LEN + 16];
	bool is_ready = true;
	int n;

	if (!core_enter(c)) {
		nng_aio_finish(aio, NNG_ECLOSED);
		return;
	}
	if (c->health != NULL)
		is_ready = c->health(c->health_arg, reason, sizeof(reason));
	core_leave(c);
	if (is_ready) {
		respond(aio, NNG_HTTP_STATUS_OK, TEXT_CTYPE, "ok\n", 3);
		return;
	}
	reason[sizeof(reason) - 1] = '\0';
	reason[strcspn(reason, "\r\n")] = '\0'; /* keep it one line */
	n = snprintf(body, sizeof(body), "not ready: %s\n",
	    reason[0] != '\0' ? reason : "unspecified");
	respond(aio, NNG_HTTP_STATUS_SERVICE_UNAVAILABLE, TEXT_CTYPE, body, (size_t)n);
}

/* --- server --- */

static int
add_handler(psf_http *h, const char *path, void (*cb)(nng_aio *))
{
	nng_http_handler *hd;
	int rv;

	if ((rv = nng_http_handler_alloc(&hd, path, cb)) != 0)
		return rv;
	core_ref(h->core);
	if ((rv = nng_http_handler_set_data(hd, h->core, core_unref)) != 0) {
		core_unref(h->core);
		nng_http_handler_free(hd);
		return rv;
	}
	/* GET only: refuse request bodies (400) instead of reading them. */
	if ((rv = nng_http_handler_collect_body(hd, true, 0)) != 0 ||
	    (rv = nng_http_server_add_handler(h->server, hd)) != 0) {
		nng_http_handler_free(hd); /* drops the core reference */
		return rv;
	}
	return 0;
}

static bool
valid_port(const char *s, unsigned long *port)
{
	char *end;

	if (s[0] == '\0' || strlen(s) > 5 || strspn(s, "0123456789") != strlen(s))
		return false;
	*port = strtoul(s, &end, 10);
	return *port <= 65535;
}

bool
psf_http_split_hostport(const char *hp, char *host, size_t hostlen, unsigned long *port)
{
	const char *colon, *hbeg = hp, *hend;

	if (hp == NULL)
		return false;
	if (hp[0] == '[') {
		hbeg = hp + 1;
		if ((hend = strchr(hbeg, ']')) == NULL || hend[1] != ':')
			return false;
		colon = hend + 1;
	} else {
		if ((colon = strrchr(hp, ':')) == NULL || memchr(hp, ':', (size_t)(colon - hp)))
			return false;
		hend = colon;
	}
	if ((size_t)(hend - hbeg) >= hostlen)
		return false;
	for (const char *p = hbeg; p < hend; p++)
		if (!isalnum((unsigned char)*p) && strchr(".-_:%", *p) == NULL)
			return false;
	memcpy(host, hbeg, (size_t)(hend - hbeg));
	host[hend - hbeg] = '\0';
	return valid_port(colon + 1, port);
}

static psf_err
start_server(psf_http *h, const char *hostport)
{
	char host[256], url[300];
	unsigned long port;
	nng_url *u = NULL;
	nng_sockaddr sa;
	int rv;

	if (!psf_http_split_hostport(hostport, host, sizeof(host), &port)) {
		psf_log_err("http", "bad metrics address '%s' (want host:port)",
		    hostport != NULL ? hostport : "(null)");
		return PSF_EINVAL;
	}
	snprintf(url, sizeof(url), strchr(host, ':') ? "http://[%s]:%lu" : "http://%s:%lu", host,
	    port);
	if ((rv = nng_url_parse(&u, url)) != 0 || (rv = nng_http_server_hold(&h->server, u)) != 0)
		goto out;
	if ((rv = add_handler(h, "/metrics", handle_metrics)) != 0 ||
	    (rv = add_handler(h, "/healthz", handle_healthz)) != 0 ||
	    (rv = nng_http_server_start(h->server)) != 0)
		goto out;
	h->is_started = true;
	if ((rv = nng_http_server_get_addr(h->server, &sa)) != 0)
		goto out;
	if (sa.s_family == NNG_AF_INET)
		h->port = ntohs(sa.s_in.sa_port);
	else if (sa.s_family == NNG_AF_INET6)
		h->port = ntohs(sa.s_in6.sa_port);
out:
	nng_url_free(u);
	if (rv != 0)
		psf_log_err("http", "serve %s: %s", hostport, nng_strerror(rv));
	return err_from_nng(rv);
}

psf_err
psf_http_open(const char *hostport, psf_metrics *reg, psf_health_fn health, void *arg,
    psf_http **out)
{
	psf_http *h;
	psf_err rv;

	if (out == NULL)
		return PSF_EINVAL;
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return PSF_ENOMEM;
	if ((rv = core_new(reg, health, arg, &h->core)) != PSF_OK) {
		free(h);
		return rv;
	}
	if ((rv = start_server(h, hostport)) != PSF_OK) {
		psf_http_close(h);
		return rv;
	}
	psf_log_info("http", "serving /metrics and /healthz on port %u", (unsigned)h->port);
	*out = h;
	return PSF_OK;
}

uint16_t
psf_http_port(const psf_http *h)
{
	return h->port;
}

void
psf_http_close(psf_http *h)
{
	if (h == NULL)
		return;
	/* A server held but not started by us may be another endpoint's (NNG
	 * shares servers by address): only release our hold on it. */
	if (h->is_started)
		nng_http_server_stop(h->server);
	core_shutdown(h->core);
	if (h->server != NULL)
		nng_http_server_release(h->server);
	core_release(h->core);
	free(h);
}
