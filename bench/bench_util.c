/* bench_util.c -- the raw NNG baseline and the small measuring helpers the
 * benchmarks share (bench_util.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "bench/bench_util.h"
#include "lib/net/rpc.h"

/* ---------------------------------------------------------------- raw server */

typedef struct raw_worker {
	psf_bench_raw_server *srv;
	nng_aio *aio;
	nng_ctx ctx;
	bool is_sending;
} raw_worker;

struct psf_bench_raw_server {
	nng_socket sock;
	const uint8_t *src; /* download source, src_len bytes */
	size_t src_len;
	raw_worker w[PSF_BENCH_RAW_CTXS];
	char url[256];
};

/* raw_answer consumes a request and returns the reply (NULL when out of memory). */
static nng_msg *
raw_answer(psf_bench_raw_server *s, nng_msg *req)
{
	uint64_t hdr[2] = {0, 0};
	size_t size = 0;
	nng_msg *m;

	if (nng_msg_len(req) >= PSF_BENCH_RAW_HDR)
		memcpy(hdr, nng_msg_body(req), PSF_BENCH_RAW_HDR);
	nng_msg_free(req);
	if (hdr[0] == PSF_BENCH_RAW_DOWN && hdr[1] <= s->src_len)
		size = (size_t)hdr[1];
	if (nng_msg_alloc(&m, PSF_BENCH_RAW_HDR + size) != 0)
		return NULL;
	memset(nng_msg_body(m), 0, PSF_BENCH_RAW_HDR);
	if (size > 0)
		memcpy((uint8_t *)nng_msg_body(m) + PSF_BENCH_RAW_HDR, s->src, size);
	return m;
}

/* raw_cb is one context's RECV -> answer -> SEND loop. */
static void
raw_cb(void *arg)
{
	raw_worker *w = arg;
	int rv = nng_aio_result(w->aio);
	nng_msg *m;

	if (rv != 0) {
		if (w->is_sending)
			nng_msg_free(nng_aio_get_msg(w->aio));
		if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
			return;
		w->is_sending = false;
		nng_ctx_recv(w->ctx, w->aio);
		return;
	}
	if (w->is_sending || (m = raw_answer(w->srv, nng_aio_get_msg(w->aio))) == NULL) {
		w->is_sending = false;
		nng_ctx_recv(w->ctx, w->aio);
		return;
	}
	w->is_sending = true;
	nng_aio_set_msg(w->aio, m);
	nng_ctx_send(w->ctx, w->aio);
}

void
psf_bench_raw_server_free(psf_bench_raw_server *s)
{
	if (s == NULL)
		return;
	nng_close(s->sock);
	for (int i = 0; i < PSF_BENCH_RAW_CTXS; i++) {
		if (s->w[i].aio != NULL) {
			nng_aio_stop(s->w[i].aio);
			nng_aio_free(s->w[i].aio);
		}
	}
	free(s);
}

/* bound_url writes url with a tcp port replaced by the listener's real one. */
static void
bound_url(const char *url, nng_listener l, char *out, size_t len)
{
	int port = 0;
	const char *colon = strrchr(url, ':');

	if (strncmp(url, "tcp://", 6) != 0 ||
	    nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port) != 0 || colon == NULL) {
		snprintf(out, len, "%s", url);
		return;
	}
	snprintf(out, len, "%.*s:%d", (int)(colon - url), url, port);
}

psf_err
psf_bench_raw_server_open(const char *url, const uint8_t *src, size_t src_len, size_t max_msg,
    psf_bench_raw_server **out)
{
	psf_bench_raw_server *s = calloc(1, sizeof(*s));
	nng_listener l;
	int rv;

	if (s == NULL)
		return PSF_ENOMEM;
	s->src = src;
	s->src_len = src_len;
	if ((rv = nng_rep0_open(&s->sock)) != 0) {
		free(s);
		return psf_err_from_nng(rv);
	}
	if (max_msg > 0)
		nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, max_msg);
	for (int i = 0; i < PSF_BENCH_RAW_CTXS && rv == 0; i++) {
		s->w[i].srv = s;
		if ((rv = nng_aio_alloc(&s->w[i].aio, raw_cb, &s->w[i])) == 0)
			rv = nng_ctx_open(&s->w[i].ctx, s->sock);
	}
	if (rv == 0 && (rv = nng_listener_create(&l, s->sock, url)) == 0 &&
	    (rv = nng_listener_start(l, 0)) == 0)
		bound_url(url, l, s->url, sizeof(s->url));
	if (rv != 0) {
		psf_bench_raw_server_free(s);
		return psf_err_from_nng(rv);
	}
	for (int i = 0; i < PSF_BENCH_RAW_CTXS; i++)
		nng_ctx_recv(s->w[i].ctx, s->w[i].aio);
	*out = s;
	return PSF_OK;
}

const char *
psf_bench_raw_server_url(const psf_bench_raw_server *s)
{
	return s->url;
}

/* ---------------------------------------------------------------- raw client */

psf_err
psf_bench_raw_dial(const char *url, const psf_bench_raw_dial_opts *o, nng_socket *out)
{
	nng_socket sock = NNG_SOCKET_INITIALIZER;
	int rv;

	if ((rv = nng_req0_open(&sock)) != 0)
		return psf_err_from_nng(rv);
	if (o != NULL && o->max_msg > 0)
		rv = nng_socket_set_size(sock, NNG_OPT_RECVMAXSZ, o->max_msg);
	if (rv == 0 && o != NULL && o->no_resend)
		rv = nng_socket_set_ms(sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	if (rv == 0 && o != NULL && o->timeout_ms > 0 &&
	    (rv = nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, o->timeout_ms)) == 0)
		rv = nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, o->timeout_ms);
	if (rv == 0)
		rv = nng_dial(sock, url, NULL, 0);
	if (rv != 0) {
		nng_close(sock);
		return psf_err_from_nng(rv);
	}
	*out = sock;
	return PSF_OK;
}

psf_err
psf_bench_raw_client_init(psf_bench_raw_client *c, nng_socket sock, bool use_ctx, int timeout_ms)
{
	int rv;

	memset(c, 0, sizeof(*c));
	c->sock = sock;
	if (!use_ctx)
		return PSF_OK;
	if ((rv = nng_aio_alloc(&c->aio, NULL, NULL)) != 0) {
		c->aio = NULL;
		return psf_err_from_nng(rv);
	}
	if ((rv = nng_ctx_open(&c->ctx, sock)) != 0) {
		nng_aio_free(c->aio);
		c->aio = NULL;
		return psf_err_from_nng(rv);
	}
	if (timeout_ms > 0)
		nng_aio_set_timeout(c->aio, timeout_ms);
	return PSF_OK;
}

void
psf_bench_raw_client_fini(psf_bench_raw_client *c)
{
	if (c->aio == NULL)
		return;
	nng_ctx_close(c->ctx);
	nng_aio_free(c->aio);
	c->aio = NULL;
}

/* exchange sends m (consumed) and waits for the reply. */
static psf_err
exchange(psf_bench_raw_client *c, nng_msg *m, nng_msg **reply)
{
	int rv;

	if (c->aio == NULL) {
		if ((rv = nng_sendmsg(c->sock, m, 0)) != 0) {
			nng_msg_free(m);
			return psf_err_from_nng(rv);
		}
		return psf_err_from_nng(nng_recvmsg(c->sock, reply, 0));
	}
	nng_aio_set_msg(c->aio, m);
	nng_ctx_send(c->ctx, c->aio);
	nng_aio_wait(c->aio);
	if ((rv = nng_aio_result(c->aio)) != 0) {
		nng_msg_free(m);
		return psf_err_from_nng(rv);
	}
	nng_ctx_recv(c->ctx, c->aio);
	nng_aio_wait(c->aio);
	if ((rv = nng_aio_result(c->aio)) != 0)
		return psf_err_from_nng(rv);
	*reply = nng_aio_get_msg(c->aio);
	return PSF_OK;
}

psf_err
psf_bench_raw_call(psf_bench_raw_client *c, const uint8_t *up, size_t up_len, size_t down_len)
{
	uint64_t hdr[2] = {down_len > 0 ? PSF_BENCH_RAW_DOWN : PSF_BENCH_RAW_UP,
	    down_len > 0 ? down_len : up_len};
	nng_msg *m, *reply;
	psf_err err;
	int rv;

	if ((rv = nng_msg_alloc(&m, PSF_BENCH_RAW_HDR + up_len)) != 0)
		return psf_err_from_nng(rv);
	memcpy(nng_msg_body(m), hdr, PSF_BENCH_RAW_HDR);
	if (up_len > 0)
		memcpy((uint8_t *)nng_msg_body(m) + PSF_BENCH_RAW_HDR, up, up_len);
	if ((err = exchange(c, m, &reply)) != PSF_OK)
		return err;
	err = nng_msg_len(reply) == PSF_BENCH_RAW_HDR + down_len ? PSF_OK : PSF_EPROTO;
	nng_msg_free(reply);
	return err;
}

/* ---------------------------------------------------------------- measuring */

uint64_t
psf_bench_cpu_ns(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000ull +
	    ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000ull;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double
psf_bench_median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}
