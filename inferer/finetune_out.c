/* finetune_out.c -- the samples of ingested bars, on their way to ps0 for the
 * fine-tuning trainer (docs/training.md "Fine-tuning after Ingest").
 *
 * Ingest (and the journal replay at start-up) queues one sample per accepted
 * bar that has a day before it with a full model input: that day's input and
 * the target the bar makes. A thread sends the queue to ps0 (AppendSamples)
 * and drops what ps0 acknowledged; a call that fails is tried again every
 * 200 ms. The queue is not durable and need not be: every accepted row is in
 * the journal first, the replay at start-up queues them all again, and ps0
 * keeps a sample per (symbol, date) once, so a row is never lost and never
 * trained on twice (every replica of a shard sends its rows too). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "inferer/internal.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/net/methods.h"

#define FT_SEND_MAX 10000u /* samples per AppendSamples */
#define FT_RETRY_MS 200u

psf_err
inf_ft_queue(psf_inferer *inf, inf_ft_sample **v, size_t n)
{
	inf_ftq *q = &inf->ftq;
	psf_err err = PSF_OK;

	if (n == 0)
		return PSF_OK;
	pthread_mutex_lock(&q->mu);
	if (q->n + n > q->cap) {
		size_t cap = q->cap ? q->cap : 256;
		while (cap < q->n + n)
			cap *= 2;
		inf_ft_sample **nv = realloc(q->v, cap * sizeof(*nv));
		if (nv == NULL)
			err = PSF_ENOMEM;
		else {
			q->v = nv;
			q->cap = cap;
		}
	}
	if (err == PSF_OK) {
		memcpy(q->v + q->n, v, n * sizeof(*v));
		q->n += n;
		psf_gauge_set(inf->g_ft_pending, (double)q->n);
		pthread_cond_broadcast(&q->cv);
	}
	pthread_mutex_unlock(&q->mu);
	return err;
}

/* send_some sends samples v[0..n), the queue's first n (only this thread
 * removes samples, so they stay first while mu is not held). */
static psf_err
send_some(psf_inferer *inf, inf_ft_sample **v, size_t n, char *why, size_t len)
{
	Psfleet__V1__AppendSamplesRequest req = PSFLEET__V1__APPEND_SAMPLES_REQUEST__INIT;
	Psfleet__V1__FineTuneSample *s = calloc(n, sizeof(*s));
	Psfleet__V1__FineTuneSample **sp = calloc(n, sizeof(*sp));
	Psfleet__V1__AppendSamplesReply *r = NULL;
	psf_rpc_call_opts o = {10000, 1, 0};
	psf_rpc_status st;
	psf_err err;

	if (s == NULL || sp == NULL) {
		free(s);
		free(sp);
		snprintf(why, len, "out of memory");
		return PSF_ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		psfleet__v1__fine_tune_sample__init(&s[i]);
		s[i].symbol = v[i]->symbol;
		s[i].date = v[i]->date;
		s[i].n_x = v[i]->n_x;
		s[i].x = v[i]->x;
		s[i].y = v[i]->y;
		sp[i] = &s[i];
	}
	req.n_samples = n;
	req.samples = sp;
	err = psf_rpc_group_call(inf->ps[0], PSF_M_APPEND_SAMPLES, &req.base,
	    &psfleet__v1__append_samples_reply__descriptor, &o, (ProtobufCMessage **)&r, &st);
	if (err == PSF_OK)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	else
		snprintf(why, len, "%s", st.message[0] != '\0' ? st.message : psf_strerror(err));
	free(s);
	free(sp);
	return err;
}

static void *
ft_main(void *arg)
{
	psf_inferer *inf = arg;
	inf_ftq *q = &inf->ftq;
	bool told = false;
	char why[256];

	pthread_mutex_lock(&q->mu);
	for (;;) {
		while (!q->stop && q->n == 0)
			pthread_cond_wait(&q->cv, &q->mu);
		if (q->stop)
			break;
		size_t n = q->n < FT_SEND_MAX ? q->n : FT_SEND_MAX;
		inf_ft_sample *head[FT_SEND_MAX]; /* the array may move while mu is free */
		memcpy(head, q->v, n * sizeof(*head));
		pthread_mutex_unlock(&q->mu);
		psf_err err = send_some(inf, head, n, why, sizeof(why));
		pthread_mutex_lock(&q->mu);
		if (err == PSF_OK) {
			for (size_t i = 0; i < n; i++)
				free(q->v[i]);
			memmove(q->v, q->v + n, (q->n - n) * sizeof(*q->v));
			q->n -= n;
			psf_gauge_set(inf->g_ft_pending, (double)q->n);
			psf_counter_add(inf->c_ft_sent, n);
			if (told)
				psf_log_info("inferer", "fine-tuning rows reach ps shard 0 again");
			told = false;
			continue;
		}
		if (!told)
			psf_log_warn("inferer",
			    "cannot send %zu fine-tuning rows to ps shard 0 (%s); trying again every %u ms",
			    n, why, FT_RETRY_MS);
		told = true;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)FT_RETRY_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (!q->stop)
			pthread_cond_timedwait(&q->cv, &q->mu, &ts);
		if (q->stop)
			break;
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

psf_err
inf_ft_start(psf_inferer *inf)
{
	if (inf->cfg->training.finetune.steps == 0)
		return PSF_OK;
	if (pthread_create(&inf->ftq.thread, NULL, ft_main, inf) != 0)
		return PSF_ESYS;
	inf->ftq.started = true;
	return PSF_OK;
}

void
inf_ft_stop(psf_inferer *inf)
{
	inf_ftq *q = &inf->ftq;

	pthread_mutex_lock(&q->mu);
	q->stop = true;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
	if (q->started)
		pthread_join(q->thread, NULL);
	q->started = false;
	for (size_t i = 0; i < q->n; i++)
		free(q->v[i]);
	free(q->v);
	q->v = NULL;
	q->n = q->cap = 0;
}
