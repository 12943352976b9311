/* rpc_group.c -- a server reached over several replica URLs (rpc_group.h). */
#include "lib/net/rpc_group.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "lib/base/util.h"

#define GROUP_MAX 8
#define GROUP_LOG_MS 5000

struct psf_rpc_group {
	char label[64];
	size_t n;
	psf_rpc_client *clients[GROUP_MAX];
	char names[GROUP_MAX][64];
	atomic_size_t current;
	atomic_uint_fast64_t log_ms;     /* last "no primary" line */
	atomic_uint_fast64_t fail_since; /* first call in a row no replica answered; 0 = none */
};

psf_err
psf_rpc_group_open(const char *label, const char *const *urls, const char *const *names, size_t n,
    const psf_rpc_client_opts *opts, psf_rpc_group **out)
{
	psf_rpc_group *g;
	psf_err err = PSF_OK;

	if (urls == NULL || n == 0 || n > GROUP_MAX)
		return PSF_EINVAL;
	if ((g = calloc(1, sizeof(*g))) == NULL)
		return PSF_ENOMEM;
	snprintf(g->label, sizeof(g->label), "%s", label != NULL ? label : "group");
	for (size_t i = 0; i < n && err == PSF_OK; i++) {
		snprintf(g->names[i], sizeof(g->names[i]), "%s",
		    names != NULL && names[i] != NULL ? names[i]
		        : urls[i] != NULL             ? urls[i]
		                                      : "?");
		err = urls[i] != NULL ? psf_rpc_client_open(urls[i], opts, &g->clients[i])
		                      : PSF_EINVAL;
		if (err == PSF_OK)
			g->n++;
	}
	if (err != PSF_OK) {
		psf_rpc_group_close(g);
		return err;
	}
	atomic_init(&g->current, 0);
	atomic_init(&g->log_ms, 0);
	atomic_init(&g->fail_since, 0);
	*out = g;
	return PSF_OK;
}

void
psf_rpc_group_close(psf_rpc_group *g)
{
	if (g == NULL)
		return;
	for (size_t i = 0; i < g->n; i++)
		psf_rpc_client_close(g->clients[i]);
	free(g);
}

void
psf_rpc_group_shutdown(psf_rpc_group *g)
{
	for (size_t i = 0; g != NULL && i < g->n; i++)
		psf_rpc_client_shutdown(g->clients[i]);
}

psf_rpc_client *
psf_rpc_group_client(psf_rpc_group *g)
{
	return g->clients[atomic_load(&g->current) % g->n];
}

size_t
psf_rpc_group_size(const psf_rpc_group *g)
{
	return g->n;
}

size_t
psf_rpc_group_current(const psf_rpc_group *g)
{
	return atomic_load(&((psf_rpc_group *)g)->current) % g->n;
}

const char *
psf_rpc_group_name(const psf_rpc_group *g, size_t i)
{
	return i < g->n ? g->names[i] : "?";
}

bool
psf_rpc_group_switchable(const psf_rpc_status *st)
{
	return st->code == PSF_STATUS_UNAVAILABLE || st->code == PSF_STATUS_DEADLINE_EXCEEDED;
}

/* hinted returns the member a backup's answer names as primary ("primary
 * <name>," or at the end), or n when there is none. */
static size_t
hinted(const psf_rpc_group *g, const char *msg)
{
	const char *p = strstr(msg, "primary ");

	if (p == NULL)
		return g->n;
	p += strlen("primary ");
	size_t len = strcspn(p, ", ;)");
	for (size_t i = 0; i < g->n; i++)
		if (strlen(g->names[i]) == len && strncmp(g->names[i], p, len) == 0)
			return i;
	return g->n;
}

bool
psf_rpc_group_failed(psf_rpc_group *g, psf_rpc_client *c, const psf_rpc_status *st)
{
	size_t cur = atomic_load(&g->current), idx = cur % g->n, next;

	if (g->n < 2 || g->clients[idx] != c || !psf_rpc_group_switchable(st))
		return false;
	next = hinted(g, st->message);
	if (next >= g->n || next == idx)
		next = (idx + 1) % g->n;
	/* Only the first to notice moves it: a concurrent caller that failed on
	 * the same replica finds current changed and leaves it. */
	return atomic_compare_exchange_strong(&g->current, &cur, next);
}

psf_rpc_call_opts
psf_rpc_group_call_opts(const psf_rpc_group *g, const psf_rpc_call_opts *o)
{
	psf_rpc_call_opts r = {0, 0, 0};

	if (o != NULL)
		r = *o;
	if (g->n > 1) {
		r.fail_fast = 1;
		r.idempotent = 0;
	}
	return r;
}

/* reason writes a short reason for replica i's failure. */
static void
reason(const psf_rpc_group *g, size_t i, const psf_rpc_status *st, char *buf, size_t len)
{
	if (!psf_rpc_client_connected(g->clients[i]))
		snprintf(buf, len, "%s: no connection (down or unreachable)", g->names[i]);
	else
		snprintf(buf, len, "%s: %.120s", g->names[i], st->message);
}

psf_err
psf_rpc_group_call(psf_rpc_group *g, const char *method, const ProtobufCMessage *req,
    const ProtobufCMessageDescriptor *reply_desc, const psf_rpc_call_opts *o,
    ProtobufCMessage **reply_out, psf_rpc_status *st)
{
	psf_rpc_call_opts go = psf_rpc_group_call_opts(g, o);
	char why[GROUP_MAX][160];
	psf_rpc_status local;
	psf_err err = PSF_EUNAVAIL;
	size_t tried = 0;

	if (st == NULL)
		st = &local;
	if (g->n == 1)
		return psf_rpc_client_call(g->clients[0], method, req, reply_desc, o, reply_out,
		    st);
	while (tried < g->n) {
		psf_rpc_client *c = psf_rpc_group_client(g);
		size_t idx = psf_rpc_group_current(g);
		err = psf_rpc_client_call(c, method, req, reply_desc, &go, reply_out, st);
		if (err == PSF_OK || err == PSF_ECLOSED || !psf_rpc_group_switchable(st)) {
			atomic_store(&g->fail_since, 0);
			return err;
		}
		reason(g, idx, st, why[tried], sizeof(why[tried]));
		tried++;
		(void)psf_rpc_group_failed(g, c, st);
	}
	/* Every replica failed: one message naming each reason. */
	{
		char msg[sizeof(st->message)];
		size_t off = (size_t)snprintf(msg, sizeof(msg), "%s: no primary (", g->label);
		for (size_t i = 0; i < tried && off < sizeof(msg); i++)
			off += (size_t)snprintf(msg + off, sizeof(msg) - off, "%s%s",
			    i > 0 ? "; " : "", why[i]);
		if (off < sizeof(msg))
			snprintf(msg + off, sizeof(msg) - off, ")");
		memcpy(st->message, msg, sizeof(msg));
		st->code = PSF_STATUS_UNAVAILABLE;
	}
	/* Logged once the replicas stayed silent for a second (not while the first
	 * connections are being made), then every GROUP_LOG_MS. */
	uint64_t now = psf_now_ms(), last = atomic_load(&g->log_ms), zero = 0;
	(void)atomic_compare_exchange_strong(&g->fail_since, &zero, now);
	if (now - atomic_load(&g->fail_since) >= 1000 && now - last >= GROUP_LOG_MS &&
	    atomic_compare_exchange_strong(&g->log_ms, &last, now))
		psf_log_warn("rpc", "%s", st->message);
	return PSF_EUNAVAIL;
}
