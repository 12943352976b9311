/* consistency.c -- who may proceed: the worker table, sync rounds, the SSP gate,
 * parked calls and straggler/lease timeouts (DESIGN.md §6). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "lib/base/util.h"
#include "ps/internal.h"

ps_worker *
ps_worker_find(psf_ps *ps, const char *id)
{
	for (size_t i = 0; i < ps->n_workers; i++) {
		if (strcmp(ps->workers[i].id, id) == 0)
			return &ps->workers[i];
	}
	return NULL;
}

ps_worker *
ps_lock_worker(psf_ps *ps, const char *id, void *call)
{
	ps_worker *w;

	pthread_mutex_lock(&ps->mu);
	w = ps_worker_find(ps, id);
	if (w == NULL || !w->registered) {
		pthread_mutex_unlock(&ps->mu);
		psf_rpc_fail(call, PSF_STATUS_FAILED_PRECONDITION,
		    "worker '%s' is not registered (call RegisterWorker first)", id);
		return NULL;
	}
	w->last_seen_ms = psf_now_ms(); /* any call from a worker renews its lease */
	return w;
}

psf_err
ps_worker_add(psf_ps *ps, const char *id, ps_worker **out)
{
	ps_worker *w = ps_worker_find(ps, id);
	uint32_t index = 0;
	bool expected = false;
	const psf_node_cfg *n;

	if (w != NULL) {
		*out = w;
		return PSF_OK;
	}
	if (strlen(id) == 0 || strlen(id) >= sizeof(w->id))
		return PSF_EINVAL;
	if (ps->n_workers >= PS_MAX_WORKERS)
		return PSF_EBUSY;
	n = psf_config_find_node(ps->cfg, id);
	if (n != NULL && n->role == PSF_ROLE_TRAINER) {
		index = n->index;
		expected = true;
	} else {
		/* Elastic workers get indexes after the configured trainers. */
		index = (uint32_t)ps->cfg->n_trainers;
		for (size_t i = 0; i < ps->n_workers; i++) {
			if (ps->workers[i].index >= index)
				index = ps->workers[i].index + 1;
		}
		if (index >= PS_MAX_WORKERS)
			return PSF_EBUSY;
	}
	/* workers[] never moves: it is allocated at PS_MAX_WORKERS up front. */
	w = &ps->workers[ps->n_workers++];
	memset(w, 0, sizeof(*w));
	snprintf(w->id, sizeof(w->id), "%s", id);
	w->index = index;
	w->expected = expected;
	w->live = true;
	w->last_seen_ms = psf_now_ms();
	*out = w;
	return PSF_OK;
}

int64_t
ps_min_clock(const psf_ps *ps)
{
	int64_t min = INT64_MAX;

	for (size_t i = 0; i < ps->n_workers; i++) {
		const ps_worker *w = &ps->workers[i];
		if (w->live && !w->done && w->clock < min)
			min = w->clock;
	}
	return min;
}

bool
ps_pull_may_proceed(const psf_ps *ps, int64_t clock)
{
	switch (ps->cfg->consistency.mode) {
	case PSF_CONS_SYNC:
	case PSF_CONS_LOCAL: return clock <= ps->round;
	case PSF_CONS_SSP: {
		int64_t min = ps_min_clock(ps);
		return min == INT64_MAX || clock <= min + (int64_t)ps->cfg->consistency.staleness;
	}
	default: return true;
	}
}

bool
ps_round_complete(const psf_ps *ps)
{
	size_t pushed = 0;

	for (size_t i = 0; i < ps->n_workers; i++) {
		const ps_worker *w = &ps->workers[i];
		if (w->clock > ps->round)
			pushed++;
		else if (w->live && !w->done)
			return false; /* still waiting for this one */
	}
	return pushed > 0;
}

psf_err
ps_park(psf_ps *ps, const parked *p)
{
	parked *pp = malloc(sizeof(*pp));

	if (pp == NULL)
		return PSF_ENOMEM;
	*pp = *p;
	pp->next = ps->parked;
	ps->parked = pp;
	return PSF_OK;
}

static bool
parked_ready(const psf_ps *ps, const parked *p, uint64_t now_ns)
{
	if (ps->stopping || now_ns >= p->deadline_ns)
		return true;
	if (p->kind == PARK_REDUCE)
		return p->reduce->complete;
	return ps_pull_may_proceed(ps, p->clock);
}

parked *
ps_take_ready(psf_ps *ps)
{
	parked *ready = NULL, **pp = &ps->parked;
	uint64_t now = psf_now_ns();

	while (*pp != NULL) {
		parked *p = *pp;
		if (parked_ready(ps, p, now)) {
			*pp = p->next;
			p->next = ready;
			ready = p;
		} else {
			pp = &p->next;
		}
	}
	return ready;
}

void
ps_answer_parked(psf_ps *ps, parked *list)
{
	while (list != NULL) {
		parked *next = list->next;
		if (list->kind == PARK_REDUCE)
			ps_serve_reduce(ps, list);
		else
			ps_serve_pull(ps, list);
		if (list->release != NULL)
			list->release(list);
		free(list);
		list = next;
	}
}

void
ps_unlock_and_answer(psf_ps *ps)
{
	parked *ready = ps_take_ready(ps);

	pthread_mutex_unlock(&ps->mu);
	ps_answer_parked(ps, ready);
}

/* ps_check_timeouts: (1) a worker silent for straggler_timeout_ms loses its lease
 * (SSP/async gates stop waiting for it); (2) in sync mode, a round open longer
 * than straggler_timeout_ms with at least one push drops the workers that have
 * not pushed, so one dead trainer never hangs the fleet. */
bool
ps_check_timeouts(psf_ps *ps, uint64_t now_ms)
{
	uint64_t timeout = ps->cfg->consistency.straggler_timeout_ms;
	bool sync = psf_consistency_rounds(ps->cfg->consistency.mode);
	bool any_pushed = false;

	for (size_t i = 0; i < ps->n_workers; i++) {
		ps_worker *w = &ps->workers[i];
		if (w->live && !w->done && now_ms - w->last_seen_ms > timeout && !sync) {
			w->live = false;
			ps->n_dropped++;
			psf_counter_inc(ps->c_dropped);
			psf_log_warn("ps", "worker %s silent for %llu ms: dropped (clock %lld)",
			    w->id, (unsigned long long)(now_ms - w->last_seen_ms),
			    (long long)w->clock);
		}
		if (w->clock > ps->round)
			any_pushed = true;
	}
	if (!sync || !any_pushed || now_ms - ps->round_open_ms <= timeout)
		return false;
	for (size_t i = 0; i < ps->n_workers; i++) {
		ps_worker *w = &ps->workers[i];
		if (w->live && !w->done && w->clock <= ps->round) {
			w->live = false;
			ps->n_dropped++;
			psf_counter_inc(ps->c_dropped);
			psf_log_warn("ps",
			    "worker %s missed round %lld for %llu ms: dropped from sync rounds",
			    w->id, (long long)ps->round,
			    (unsigned long long)(now_ms - ps->round_open_ms));
		}
	}
	return ps_round_complete(ps);
}
