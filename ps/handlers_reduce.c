/* handlers_reduce.c -- the Reduce RPC: a small all-reduce of double vectors among
 * the workers (e.g. feature statistics before training), and its records in the
 * store's meta, which bring completed results back after a restart. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "ps/internal.h"

#define PS_MAX_REDUCES 64

static reduce_entry *
reduce_find_or_add(psf_ps *ps, const char *name, uint32_t expected, size_t n)
{
	reduce_entry *e;

	for (e = ps->reduces; e != NULL; e = e->next) {
		if (strcmp(e->name, name) == 0)
			return e;
	}
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return NULL;
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->expected = expected;
	e->n_values = n;
	e->sums = calloc(n > 0 ? n : 1, sizeof(double));
	e->contrib = calloc((size_t)expected * (n > 0 ? n : 1), sizeof(double));
	e->contributors = calloc(expected, sizeof(*e->contributors));
	if (e->sums == NULL || e->contrib == NULL || e->contributors == NULL) {
		free(e->sums);
		free(e->contrib);
		free(e->contributors);
		free(e);
		return NULL;
	}
	e->next = ps->reduces;
	ps->reduces = e;
	return e;
}

/* A completed reduce as kept in the store's meta under "reduce:<name>"; the names
 * are listed, newline-separated, under "reduces". */
typedef struct reduce_rec {
	uint32_t expected;
	uint32_t contributors;
	uint64_t n_values;
} reduce_rec;

typedef struct persist_ctx {
	const reduce_entry *e;
} persist_ctx;

static psf_err
persist_txn(psf_store_txn *txn, void *arg)
{
	const reduce_entry *e = ((persist_ctx *)arg)->e;
	char key[160], list[PS_MAX_REDUCES * 130];
	const void *old;
	size_t old_len = 0, blob_len = sizeof(reduce_rec) + e->n_values * sizeof(double);
	reduce_rec rec = {e->expected, e->n_contrib, e->n_values};
	uint8_t *blob;
	psf_err err = psf_store_txn_meta_get(txn, "reduces", &old, &old_len);

	if (err == PSF_ENOENT)
		old_len = 0;
	else if (err != PSF_OK)
		return err;
	if (old_len + strlen(e->name) + 2 > sizeof(list))
		return PSF_ERANGE;
	if (old_len > 0)
		memcpy(list, old, old_len); /* copy before writing: the pointer is borrowed */
	snprintf(list + old_len, sizeof(list) - old_len, "%s\n", e->name);
	if ((err = psf_store_txn_meta_put(txn, "reduces", list, strlen(list))) != PSF_OK)
		return err;
	snprintf(key, sizeof(key), "reduce:%s", e->name);
	if ((blob = malloc(blob_len)) == NULL)
		return PSF_ENOMEM;
	memcpy(blob, &rec, sizeof(rec));
	if (e->n_values > 0)
		memcpy(blob + sizeof(rec), e->sums, e->n_values * sizeof(double));
	err = psf_store_txn_meta_put(txn, key, blob, blob_len);
	free(blob);
	return err;
}

/* reduce_persist records a completed reduce, so a trainer that starts after a ps
 * restart still gets the result instead of waiting for contributors that are long
 * past it. Holds mu. */
static void
reduce_persist(psf_ps *ps, const reduce_entry *e)
{
	persist_ctx c = {e};

	if (psf_store_update(ps->store, persist_txn, &c) != PSF_OK)
		psf_log_warn("ps", "could not record the result of reduce '%s'", e->name);
}

/* reduce_complete sums the contributions in the order of the contributors' ids,
 * not of their arrival, so the sums are the same bits on every run. Holds mu. */
static void
reduce_complete(psf_ps *ps, reduce_entry *e)
{
	uint32_t order[PS_MAX_WORKERS];

	for (uint32_t i = 0; i < e->n_contrib; i++) { /* insertion sort by id */
		uint32_t j = i;
		while (j > 0 && strcmp(e->contributors[order[j - 1]], e->contributors[i]) > 0) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = i;
	}
	for (uint32_t k = 0; k < e->n_contrib; k++)
		for (size_t i = 0; i < e->n_values; i++)
			e->sums[i] += e->contrib[(size_t)order[k] * e->n_values + i];
	e->complete = true;
	reduce_persist(ps, e);
}

/* reduce_restore brings back one completed reduce from its record.
 * PSF_EPROTO for a damaged record. */
static psf_err
reduce_restore(psf_ps *ps, const char *name, const void *blob, size_t len)
{
	reduce_rec rec;
	reduce_entry *e;

	if (len < sizeof(rec))
		return PSF_EPROTO;
	memcpy(&rec, blob, sizeof(rec));
	if (rec.expected == 0 || rec.expected > PS_MAX_WORKERS ||
	    len != sizeof(rec) + rec.n_values * sizeof(double))
		return PSF_EPROTO;
	if ((e = reduce_find_or_add(ps, name, rec.expected, rec.n_values)) == NULL)
		return PSF_ENOMEM;
	if (rec.n_values > 0)
		memcpy(e->sums, (const uint8_t *)blob + sizeof(rec), rec.n_values * sizeof(double));
	e->n_contrib = rec.contributors;
	e->complete = true;
	return PSF_OK;
}

psf_err
ps_reduces_restore(psf_ps *ps, psf_store_txn *txn)
{
	const void *list, *blob;
	size_t len, blen;
	char names[PS_MAX_REDUCES * 130], key[160];
	psf_err err = psf_store_txn_meta_get(txn, "reduces", &list, &len);

	if (err == PSF_ENOENT)
		return PSF_OK;
	if (err != PSF_OK)
		return err;
	if (len >= sizeof(names))
		len = sizeof(names) - 1;
	memcpy(names, list, len);
	names[len] = '\0';
	for (char *save = NULL, *name = strtok_r(names, "\n", &save); name != NULL;
	     name = strtok_r(NULL, "\n", &save)) {
		snprintf(key, sizeof(key), "reduce:%s", name);
		if (psf_store_txn_meta_get(txn, key, &blob, &blen) != PSF_OK ||
		    reduce_restore(ps, name, blob, blen) != PSF_OK)
			psf_log_warn("ps", "ignoring a damaged record of reduce '%s'", name);
	}
	return PSF_OK;
}

psf_err
ps_reduce_result(psf_ps *ps, const char *name, double **values_out, size_t *n_out)
{
	double *v = NULL;
	size_t n = 0;
	psf_err err = PSF_ENOENT;

	pthread_mutex_lock(&ps->mu);
	for (const reduce_entry *e = ps->reduces; e != NULL; e = e->next) {
		if (strcmp(e->name, name) != 0 || !e->complete)
			continue;
		n = e->n_values;
		err = PSF_OK;
		if (n > 0 && (v = malloc(n * sizeof(double))) == NULL)
			err = PSF_ENOMEM;
		else if (n > 0)
			memcpy(v, e->sums, n * sizeof(double));
		break;
	}
	pthread_mutex_unlock(&ps->mu);
	if (err == PSF_OK) {
		*values_out = v;
		*n_out = n;
	}
	return err;
}

void
ps_reduces_free(psf_ps *ps)
{
	while (ps->reduces != NULL) {
		reduce_entry *e = ps->reduces;
		ps->reduces = e->next;
		free(e->sums);
		free(e->contrib);
		free(e->contributors);
		free(e);
	}
}

void
ps_serve_reduce(psf_ps *ps, parked *p)
{
	Psfleet__V1__ReduceReply_Closure done = (Psfleet__V1__ReduceReply_Closure)p->done;
	Psfleet__V1__ReduceReply r = PSFLEET__V1__REDUCE_REPLY__INIT;

	pthread_mutex_lock(&ps->mu);
	if (!p->reduce->complete) {
		pthread_mutex_unlock(&ps->mu);
		psf_rpc_fail(p->call,
		    ps->stopping ? PSF_STATUS_UNAVAILABLE : PSF_STATUS_DEADLINE_EXCEEDED,
		    "reduce '%s': %u of %u workers contributed", p->reduce->name,
		    p->reduce->n_contrib, p->reduce->expected);
		done(NULL, p->call);
		return;
	}
	r.n_values = p->reduce->n_values;
	r.values = p->reduce->sums;
	r.contributors = p->reduce->n_contrib;
	done(&r, p->call);
	pthread_mutex_unlock(&ps->mu);
}

void
psf_ps_rpc_reduce(Psfleet__V1__ParameterServer_Service *svc, const Psfleet__V1__ReduceRequest *in,
    Psfleet__V1__ReduceReply_Closure done, void *call)
{
	psf_ps *ps = psf_rpc_call_user(call);
	parked p;
	reduce_entry *e;
	bool seen = false;

	(void)svc;
	if (in->expected == 0 || in->expected > PS_MAX_WORKERS || in->name[0] == '\0' ||
	    strlen(in->name) >= sizeof(e->name) ||
	    strlen(in->worker) >= sizeof(e->contributors[0]) ||
	    in->n_values > ps->cfg->limits.max_keys_per_request) {
		psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT,
		    "reduce needs a name, a worker, "
		    "1..%d expected workers and at most %u values",
		    PS_MAX_WORKERS, ps->cfg->limits.max_keys_per_request);
		done(NULL, call);
		return;
	}
	if (ps_lock_worker(ps, in->worker, call) == NULL) {
		done(NULL, call);
		return;
	}
	{
		size_t n_entries = 0;
		bool known = false;
		for (reduce_entry *x = ps->reduces; x != NULL; x = x->next, n_entries++)
			known = known || strcmp(x->name, in->name) == 0;
		if (!known && n_entries >= PS_MAX_REDUCES) {
			pthread_mutex_unlock(&ps->mu);
			psf_rpc_fail(call, PSF_STATUS_RESOURCE_EXHAUSTED, "at most %d reduce names",
			    PS_MAX_REDUCES);
			done(NULL, call);
			return;
		}
	}
	e = reduce_find_or_add(ps, in->name, in->expected, in->n_values);
	if (e == NULL || e->n_values != in->n_values || e->expected != in->expected) {
		pthread_mutex_unlock(&ps->mu);
		psf_rpc_fail(call,
		    e == NULL ? PSF_STATUS_RESOURCE_EXHAUSTED : PSF_STATUS_INVALID_ARGUMENT,
		    "reduce '%s': %s", in->name,
		    e == NULL ? "out of memory"
		              : "length or expected count differs from the first contribution");
		done(NULL, call);
		return;
	}
	for (uint32_t i = 0; i < e->n_contrib; i++)
		seen = seen || strcmp(e->contributors[i], in->worker) == 0;
	if (!seen && !e->complete) { /* a retried contribution is not added twice */
		if (e->n_values > 0) /* values is NULL when empty */
			memcpy(e->contrib + (size_t)e->n_contrib * e->n_values, in->values,
			    e->n_values * sizeof(double));
		snprintf(e->contributors[e->n_contrib++], sizeof(e->contributors[0]), "%s",
		    in->worker);
		if (e->n_contrib >= e->expected)
			reduce_complete(ps, e);
	}
	p = (parked){.kind = PARK_REDUCE,
	    .call = call,
	    .done = (void *)done,
	    .req = in,
	    .deadline_ns = psf_rpc_call_deadline_ns(call),
	    .reduce = e};
	if (e->complete) {
		pthread_mutex_unlock(&ps->mu);
		ps_serve_reduce(ps, &p);
		pthread_mutex_lock(&ps->mu);
		ps_unlock_and_answer(ps);
		return;
	}
	if (ps_park(ps, &p) != PSF_OK) {
		pthread_mutex_unlock(&ps->mu);
		psf_rpc_fail(call, PSF_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		done(NULL, call);
		return;
	}
	pthread_mutex_unlock(&ps->mu);
}
