/* handlers_finetune.c -- the AppendSamples and FineTune RPCs: the labelled rows
 * that ingested bars make, kept in the store's meta in arrival order, and the
 * fine-tuner's rounds over them (docs/training.md "Fine-tuning after Ingest").
 *
 * Records (meta):
 *   ft:n                    samples stored (u64): the next one's sequence number
 *   ft:k:<symbol>:<date>    the sequence number of that row's sample (dedup)
 *   ft:s:<seq, 16 hex>:<part, 2 hex>   the packed FineTuneSample, in parts of
 *                           at most FT_PART bytes (a meta value holds 400)
 *   ft:round                the latest round begun: ps_ft_round
 * Every update is one write transaction followed by a sync of the store, so an
 * acknowledged sample or round survives a crash of the process and of the host,
 * whatever the durability mode. A sample whose key is stored is kept as it was
 * (an inferer replica, or a replayed journal, sends the same row again), so a
 * row is in at most one round and is trained on in that round only. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "lib/model/model.h"
#include "ps/internal.h"

#define FT_N "ft:n"
#define FT_ROUND "ft:round"
#define FT_MAX_ROUND 50000u   /* samples in one round */
#define FT_MAX_APPEND 100000u /* samples in one AppendSamples */
#define FT_PART 384           /* bytes per meta record of a sample */
#define FT_MAX_SAMPLE_BYTES (255 * FT_PART)

/* The latest round begun, as stored under ft:round. */
typedef struct ps_ft_round {
	uint64_t round, from, upto;
	int64_t start_clock;
} ps_ft_round;

typedef struct append_ctx {
	const Psfleet__V1__AppendSamplesRequest *in;
	uint64_t stored, dups, total;
	uint8_t *buf; /* FT_MAX_SAMPLE_BYTES */
} append_ctx;

static uint64_t
meta_u64_or0(psf_store_txn *txn, const char *name)
{
	uint64_t v = 0;

	if (psf_store_txn_meta_get_u64(txn, name, &v) != PSF_OK)
		return 0;
	return v;
}

static psf_err
append_txn(psf_store_txn *txn, void *arg)
{
	append_ctx *a = arg;
	uint64_t n = meta_u64_or0(txn, FT_N);
	uint8_t *buf = a->buf;
	char key[160];
	psf_err err;

	a->stored = a->dups = 0; /* the store re-runs a txn that grew the map */
	for (size_t i = 0; i < a->in->n_samples; i++) {
		const Psfleet__V1__FineTuneSample *s = a->in->samples[i];
		Psfleet__V1__FineTuneSample c = *s;
		const void *old;
		size_t old_len;

		snprintf(key, sizeof(key), "ft:k:%s:%s", s->symbol, s->date);
		if (psf_store_txn_meta_get(txn, key, &old, &old_len) == PSF_OK) {
			a->dups++;
			continue;
		}
		c.base.unknown_fields = NULL;
		c.base.n_unknown_fields = 0;
		size_t len = psfleet__v1__fine_tune_sample__pack(&c, buf);
		if ((err = psf_store_txn_meta_put_u64(txn, key, n)) != PSF_OK)
			return err;
		for (size_t off = 0, part = 0; off < len; off += FT_PART, part++) {
			snprintf(key, sizeof(key), "ft:s:%016" PRIx64 ":%02zx", n, part);
			if ((err = psf_store_txn_meta_put(txn, key, buf + off,
			         len - off < FT_PART ? len - off : FT_PART)) != PSF_OK)
				return err;
		}
		n++;
		a->stored++;
	}
	a->total = n;
	if (a->stored == 0)
		return PSF_OK;
	return psf_store_txn_meta_put_u64(txn, FT_N, n);
}

/* check_sample says why sample s cannot be stored ("" when it can). */
static void
check_sample(const psf_ps *ps, const Psfleet__V1__FineTuneSample *s, char *why, size_t len)
{
	const psf_config *cfg = ps->cfg;
	size_t w = psf_model_kind_is_recurrent(cfg->model.kind) ? cfg->model.window : 1;
	size_t want = w * cfg->n_features;

	why[0] = '\0';
	if (s->symbol == NULL || s->symbol[0] == '\0' || strlen(s->symbol) > 64 ||
	    s->date == NULL || strlen(s->date) != 10)
		snprintf(why, len, "a sample needs a symbol and a YYYY-MM-DD date");
	else if (s->n_x != want)
		snprintf(why, len, "sample %.64s %.10s has %zu inputs; the model takes %zu",
		    s->symbol, s->date, s->n_x, want);
	else if (psfleet__v1__fine_tune_sample__get_packed_size(s) > FT_MAX_SAMPLE_BYTES)
		snprintf(why, len, "sample %.64s %.10s is over %d bytes packed", s->symbol, s->date,
		    FT_MAX_SAMPLE_BYTES);
}

void
psf_ps_rpc_append_samples(Psfleet__V1__ParameterServer_Service *svc,
    const Psfleet__V1__AppendSamplesRequest *in, Psfleet__V1__AppendSamplesReply_Closure done,
    void *call)
{
	psf_ps *ps = psf_rpc_call_user(call);
	Psfleet__V1__AppendSamplesReply r = PSFLEET__V1__APPEND_SAMPLES_REPLY__INIT;
	append_ctx a = {in, 0, 0, 0, NULL};
	char why[200];
	psf_err err;

	(void)svc;
	if (in->n_samples > FT_MAX_APPEND) {
		psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT, "%zu samples: at most %u per call",
		    in->n_samples, FT_MAX_APPEND);
		done(NULL, call);
		return;
	}
	for (size_t i = 0; i < in->n_samples; i++) {
		check_sample(ps, in->samples[i], why, sizeof(why));
		if (why[0] != '\0') {
			psf_rpc_fail(call, PSF_STATUS_INVALID_ARGUMENT, "%s", why);
			done(NULL, call);
			return;
		}
	}
	if ((a.buf = malloc(FT_MAX_SAMPLE_BYTES)) == NULL) {
		psf_rpc_fail(call, PSF_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		done(NULL, call);
		return;
	}
	pthread_mutex_lock(&ps->ft_mu);
	err = psf_store_update(ps->store, append_txn, &a);
	if (err == PSF_OK && a.stored > 0)
		err = psf_store_sync(ps->store);
	pthread_mutex_unlock(&ps->ft_mu);
	free(a.buf);
	if (err != PSF_OK) {
		psf_rpc_fail_err(call, err, "samples not stored: %s", psf_strerror(err));
		done(NULL, call);
		return;
	}
	if (a.stored > 0) {
		psf_counter_add(ps->c_ft_samples, a.stored);
		psf_log_info("ps",
		    "stored %llu fine-tuning rows (%llu already stored), %llu in all",
		    (unsigned long long)a.stored, (unsigned long long)a.dups,
		    (unsigned long long)a.total);
	}
	r.stored = a.stored;
	r.duplicates = a.dups;
	r.total = a.total;
	done(&r, call);
}

/* ------------------------------------------------------------------ rounds */

typedef struct round_ctx {
	const Psfleet__V1__FineTuneRequest *in;
	ps_ft_round cur;
	uint64_t total;
	bool began;
} round_ctx;

static void
read_round(psf_store_txn *txn, ps_ft_round *out)
{
	const void *p;
	size_t len;

	memset(out, 0, sizeof(*out));
	if (psf_store_txn_meta_get(txn, FT_ROUND, &p, &len) == PSF_OK && len == sizeof(*out))
		memcpy(out, p, sizeof(*out));
}

static psf_err
round_txn(psf_store_txn *txn, void *arg)
{
	round_ctx *c = arg;
	uint64_t want = c->in->begin_round;

	c->began = false;
	read_round(txn, &c->cur);
	c->total = meta_u64_or0(txn, FT_N);
	/* report only; a round begun already (a retried call); a round out of turn;
	 * no new samples: the reply says the latest round as it is */
	if (want != c->cur.round + 1 || c->total <= c->cur.upto)
		return PSF_OK;
	ps_ft_round nr = {want, c->cur.upto, c->total, c->in->start_clock};
	if (nr.upto - nr.from > FT_MAX_ROUND)
		nr.upto = nr.from + FT_MAX_ROUND;
	c->cur = nr;
	c->began = true;
	return psf_store_txn_meta_put(txn, FT_ROUND, &nr, sizeof(nr));
}

typedef struct samples_ctx {
	uint64_t from, upto;
	Psfleet__V1__FineTuneSample **out; /* [upto - from], unpacked */
	uint8_t *buf;                      /* FT_MAX_SAMPLE_BYTES */
} samples_ctx;

static psf_err
samples_txn(psf_store_txn *txn, void *arg)
{
	samples_ctx *c = arg;
	char key[64];

	for (uint64_t s = c->from; s < c->upto; s++) {
		size_t len = 0;
		psf_err err;

		for (size_t part = 0; part < 256; part++) {
			const void *p;
			size_t plen;
			snprintf(key, sizeof(key), "ft:s:%016" PRIx64 ":%02zx", s, part);
			if ((err = psf_store_txn_meta_get(txn, key, &p, &plen)) == PSF_ENOENT &&
			    part > 0)
				break;
			if (err != PSF_OK)
				return err == PSF_ENOENT ? PSF_EPROTO : err;
			if (len + plen > FT_MAX_SAMPLE_BYTES)
				return PSF_EPROTO;
			memcpy(c->buf + len, p, plen);
			len += plen;
		}
		c->out[s - c->from] = psfleet__v1__fine_tune_sample__unpack(NULL, len, c->buf);
		if (c->out[s - c->from] == NULL)
			return PSF_EPROTO;
	}
	return PSF_OK;
}

static void
free_samples(Psfleet__V1__FineTuneSample **v, size_t n)
{
	for (size_t i = 0; v != NULL && i < n; i++)
		if (v[i] != NULL)
			psfleet__v1__fine_tune_sample__free_unpacked(v[i], NULL);
	free(v);
}

void
psf_ps_rpc_fine_tune(Psfleet__V1__ParameterServer_Service *svc,
    const Psfleet__V1__FineTuneRequest *in, Psfleet__V1__FineTuneReply_Closure done, void *call)
{
	psf_ps *ps = psf_rpc_call_user(call);
	Psfleet__V1__FineTuneReply r = PSFLEET__V1__FINE_TUNE_REPLY__INIT;
	round_ctx c = {in, {0, 0, 0, 0}, 0, false};
	samples_ctx sc = {0, 0, NULL, NULL};
	psf_err err;

	(void)svc;
	pthread_mutex_lock(&ps->ft_mu);
	err = in->begin_round > 0 ? psf_store_update(ps->store, round_txn, &c)
	                          : psf_store_read(ps->store, round_txn, &c);
	if (err == PSF_OK && c.began)
		err = psf_store_sync(ps->store);
	pthread_mutex_unlock(&ps->ft_mu);
	if (err == PSF_OK && in->with_samples && c.cur.upto > c.cur.from) {
		sc.from = c.cur.from;
		sc.upto = c.cur.upto;
		if ((sc.out = calloc(sc.upto - sc.from, sizeof(*sc.out))) == NULL ||
		    (sc.buf = malloc(FT_MAX_SAMPLE_BYTES)) == NULL)
			err = PSF_ENOMEM;
		else
			err = psf_store_read(ps->store, samples_txn, &sc);
	}
	free(sc.buf);
	if (err != PSF_OK) {
		psf_rpc_fail_err(call, err, "fine-tuning round: %s", psf_strerror(err));
		done(NULL, call);
		free_samples(sc.out, sc.upto - sc.from);
		return;
	}
	if (c.began)
		psf_log_info("ps",
		    "fine-tuning round %llu begins at clock %lld over rows [%llu, %llu)",
		    (unsigned long long)c.cur.round, (long long)c.cur.start_clock,
		    (unsigned long long)c.cur.from, (unsigned long long)c.cur.upto);
	r.round = c.cur.round;
	r.from_seq = c.cur.from;
	r.upto_seq = c.cur.upto;
	r.start_clock = c.cur.start_clock;
	r.total = c.total;
	r.n_samples = sc.out != NULL ? sc.upto - sc.from : 0;
	r.samples = sc.out;
	done(&r, call);
	free_samples(sc.out, sc.upto - sc.from);
}
