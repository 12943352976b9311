/* apply_par.c -- the optimizer pass of a large update on two threads.
 *
 * A push of many megabytes spends most of its apply in one memory-bound loop
 * (psf_optim_apply_to: read the old weights and the gradient, write the new
 * weights). apply.c queues the keys it updates where the store keeps them
 * (psf_store_txn_rewrite on a WRITEMAP store) and runs the queue here once every
 * key of the update is reserved: this thread takes about half of the floats, a
 * helper thread the other half, and both finish before the transaction goes on.
 * Every update rule is element-wise (optim.c), so any split gives bit-identical
 * weights and state; a split inside a key is only made where the state (if any)
 * is indexed like the weights (Adam keeps m then v, so its keys go whole).
 *
 * A queued value must stay where it is until it is filled, across the rewrites
 * of the other keys of the same transaction. psf_store_txn_rewrite promises that
 * only until the next write to the same db, because a small value may move
 * within its leaf page. Only values of at least PS_PAR_MIN_KEY_BYTES are queued:
 * LMDB keeps such a value on overflow pages of its own, which a write to
 * another key never moves (a page split moves the node naming them, not the
 * pages), and WRITEMAP stores never spill dirty pages; the old value's pages
 * stay untouched until the commit (store.h). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "ps/internal.h"
#include "ps/optim.h"

/* The helper thread and the one share it works on (guarded by mu). */
struct ps_par {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop, busy;
	/* the share: jobs[0..n) of the batch, with the rule's settings */
	const ps_par_batch *batch;
	size_t first, n;
	size_t split_at; /* floats of jobs[first] the main thread took */
	psf_err err;
};

void
ps_par_batch_init(ps_par_batch *b, const psf_optim_cfg *cfg, uint64_t step, float scale,
    bool check_finite, size_t state_floats)
{
	memset(b, 0, sizeof(*b));
	b->cfg = cfg;
	b->step = step;
	b->scale = scale;
	b->check_finite = check_finite;
	b->state_floats = state_floats;
}

void
ps_par_batch_fini(ps_par_batch *b)
{
	free(b->jobs);
	b->jobs = NULL;
	b->n = b->cap = 0;
}

psf_err
ps_par_batch_add(ps_par_batch *b, const ps_par_job *job)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		ps_par_job *j = realloc(b->jobs, cap * sizeof(*j));
		if (j == NULL)
			return PSF_ENOMEM;
		b->jobs = j;
		b->cap = cap;
	}
	b->jobs[b->n++] = *job;
	b->floats += job->n;
	return PSF_OK;
}

/* run_part applies floats [from, from + n) of one job. */
static psf_err
run_part(const ps_par_batch *b, const ps_par_job *j, size_t from, size_t n)
{
	size_t sf = b->state_floats;

	return psf_optim_apply_to(b->cfg, b->step, j->w_out + from, j->w_in + from,
	    j->s_out != NULL ? j->s_out + from * sf : NULL,
	    j->s_in != NULL ? j->s_in + from * sf : NULL, (const uint8_t *)j->g + from * 4, n,
	    b->scale, 0.0, b->check_finite);
}

/* run_jobs applies jobs [first, first + n), skipping the first `skip` floats of
 * jobs[first] (the other thread's part of a split key). First error wins; a
 * PSF_ERANGE (NaN/Inf) stops early: the caller aborts the txn anyway. */
static psf_err
run_jobs(const ps_par_batch *b, size_t first, size_t n, size_t skip)
{
	for (size_t i = first; i < first + n; i++) {
		const ps_par_job *j = &b->jobs[i];
		size_t from = i == first ? skip : 0;
		psf_err err = run_part(b, j, from, j->n - from);
		if (err != PSF_OK)
			return err;
	}
	return PSF_OK;
}

static void *
helper_main(void *arg)
{
	ps_par *p = arg;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->stop && (!p->busy || p->batch == NULL))
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->stop)
			break;
		const ps_par_batch *b = p->batch;
		size_t first = p->first, n = p->n, skip = p->split_at;
		pthread_mutex_unlock(&p->mu);
		psf_err err = run_jobs(b, first, n, skip);
		pthread_mutex_lock(&p->mu);
		p->err = err;
		p->batch = NULL;
		p->busy = false;
		pthread_cond_broadcast(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

psf_err
ps_par_start(ps_par **out)
{
	ps_par *p = calloc(1, sizeof(*p));

	*out = NULL;
	if (p == NULL)
		return PSF_ENOMEM;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if (pthread_create(&p->thread, NULL, helper_main, p) != 0) {
		pthread_mutex_destroy(&p->mu);
		pthread_cond_destroy(&p->cv);
		free(p);
		return PSF_ESYS;
	}
	*out = p;
	return PSF_OK;
}

void
ps_par_stop(ps_par *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
}

/* splittable: a key may be cut at any float (the state, if any, is indexed
 * like the weights). */
static bool
splittable(const ps_par_batch *b)
{
	return b->state_floats <= 1;
}

psf_err
ps_par_run(ps_par *p, const ps_par_batch *b)
{
	size_t half = b->floats / 2, acc = 0, cut = 0, skip = 0;
	psf_err mine, theirs;

	if (b->n == 0)
		return PSF_OK;
	if (p == NULL || b->floats < PS_PAR_MIN_FLOATS)
		return run_jobs(b, 0, b->n, 0);
	/* The main thread takes jobs [0, cut) and the first `skip` floats of job
	 * `cut` (a split key); the helper the rest. */
	while (cut < b->n && acc + b->jobs[cut].n <= half)
		acc += b->jobs[cut++].n;
	if (cut < b->n && splittable(b) && half > acc)
		skip = half - acc;
	else if (cut == 0) /* a first key over half that cannot be cut: it is ours */
		cut = 1;
	if (cut == b->n) /* one key that cannot be cut: nothing to share */
		return run_jobs(b, 0, b->n, 0);
	pthread_mutex_lock(&p->mu);
	p->batch = b;
	p->first = cut;
	p->n = b->n - cut;
	p->split_at = skip;
	p->busy = true;
	p->err = PSF_OK;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);

	mine = run_jobs(b, 0, cut, 0);
	if (mine == PSF_OK && skip > 0)
		mine = run_part(b, &b->jobs[cut], 0, skip);

	pthread_mutex_lock(&p->mu);
	while (p->busy)
		pthread_cond_wait(&p->cv, &p->mu);
	theirs = p->err;
	pthread_mutex_unlock(&p->mu);
	return mine != PSF_OK ? mine : theirs;
}
