/* settings.c -- the training settings a ps store was trained with (internal.h).
 *
 * A store keeps, next to its weights, the canonical list of every config key
 * that changes the trained weights: one "key=value" per line, in a fixed order.
 * On a restart the ps compares it with the config's: a store trained with other
 * settings is not resumed (its model would be passed off as the new config's),
 * and the refusal names each changed key with its old and new values.
 *
 * What counts (docs/operations.md, "Resuming"): the seed, the data (path as
 * written, split, bad-row policy, sharding, generator), features, target, the
 * model, the optimizer with its schedule (only the keys its kind and schedule
 * use), epochs, batch size, max_steps, shuffle, the consistency mode (and
 * staleness for ssp), and the trainer ids (they decide which trainer trains on
 * which symbols). What does not: names, paths of the run, ports, metrics,
 * logging, durability, limits, security, inference, the gateway, timeouts and
 * heartbeats, training.target_loss (read by experiment reports only),
 * training.finetune (steps taken after the run, on ingested rows). */
#define _GNU_SOURCE /* open_memstream */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/util.h"
#include "ps/internal.h"

static void
put_optimizer(FILE *f, const psf_optim_cfg *o)
{
	fprintf(f, "optimizer.kind=%s\noptimizer.learning_rate=%.17g\n",
	    psf_optim_kind_name(o->kind), o->learning_rate);
	if (o->kind == PSF_OPTIM_MOMENTUM)
		fprintf(f, "optimizer.momentum=%.17g\n", o->momentum);
	if (o->kind == PSF_OPTIM_ADAM)
		fprintf(f, "optimizer.beta1=%.17g\noptimizer.beta2=%.17g\n", o->beta1, o->beta2);
	if (o->kind == PSF_OPTIM_ADAM || o->kind == PSF_OPTIM_ADAGRAD)
		fprintf(f, "optimizer.epsilon=%.17g\n", o->epsilon);
	fprintf(f, "optimizer.schedule=%s\n", psf_lr_schedule_name(o->schedule));
	if (o->schedule == PSF_LR_STEP)
		fprintf(f, "optimizer.step_size=%llu\noptimizer.gamma=%.17g\n",
		    (unsigned long long)o->step_size, o->gamma);
	if (o->schedule == PSF_LR_COSINE)
		fprintf(f, "optimizer.total_steps=%llu\n", (unsigned long long)o->total_steps);
	fprintf(f, "optimizer.clip_norm=%.17g\noptimizer.skip_nonfinite=%s\n", o->clip_norm,
	    o->skip_nonfinite ? "true" : "false");
}

static void
put_model(FILE *f, const psf_config *cfg)
{
	const psf_model_cfg *m = &cfg->model;

	fprintf(f, "features=");
	for (size_t i = 0; i < cfg->n_features; i++)
		fprintf(f, "%s%s", i > 0 ? "," : "", cfg->features[i].name);
	fprintf(f, "\ntarget=%s\nmodel.kind=%s\n", psf_target_name(cfg->target),
	    psf_model_kind_name(m->kind));
	if (psf_model_kind_has_hidden(m->kind)) {
		fprintf(f, "model.hidden=");
		for (uint32_t i = 0; i < m->n_hidden; i++)
			fprintf(f, "%s%u", i > 0 ? "," : "", m->hidden[i]);
		fprintf(f, "\n");
	}
	if (psf_model_kind_is_recurrent(m->kind))
		fprintf(f, "model.window=%u\n", m->window);
	fprintf(f,
	    "model.embedding_dim=%u\nmodel.symbol_bias=%s\nmodel.l2=%.17g\n"
	    "model.init_scale=%.17g\n",
	    m->embedding_dim, m->symbol_bias ? "true" : "false", m->l2, m->init_scale);
}

char *
ps_train_settings(const psf_config *cfg)
{
	const psf_data_cfg *d = &cfg->data;
	const psf_training_cfg *t = &cfg->training;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (f == NULL)
		return NULL;
	fprintf(f,
	    "seed=%llu\ndata.path=%s\ndata.test_fraction=%.17g\ndata.bad_rows=%s\n"
	    "data.shard_by=%s\n",
	    (unsigned long long)cfg->seed, d->path, d->test_fraction,
	    psf_bad_rows_name(d->bad_rows), psf_shard_by_name(d->shard_by));
	if (d->has_generate)
		fprintf(f, "data.generate={symbols: %u, days: %u, seed: %llu, skew: %s}\n",
		    d->generate.symbols, d->generate.days, (unsigned long long)d->generate.seed,
		    d->generate.skew ? "true" : "false");
	put_model(f, cfg);
	put_optimizer(f, &cfg->optimizer);
	fprintf(f,
	    "training.epochs=%u\ntraining.batch_size=%u\ntraining.max_steps=%llu\n"
	    "training.shuffle=%s\nconsistency.mode=%s\n",
	    t->epochs, t->batch_size, (unsigned long long)t->max_steps,
	    t->shuffle ? "true" : "false", psf_consistency_name(cfg->consistency.mode));
	if (t->clip_norm > 0) /* absent when off: stores made before the key still match */
		fprintf(f, "training.clip_norm=%.17g\n", t->clip_norm);
	if (cfg->consistency.mode == PSF_CONS_SSP)
		fprintf(f, "consistency.staleness=%u\n", cfg->consistency.staleness);
	if (cfg->consistency.mode == PSF_CONS_LOCAL)
		fprintf(f, "consistency.sync_every=%u\n", cfg->consistency.sync_every);
	fprintf(f, "nodes.trainers=");
	for (size_t i = 0, k = 0; i < cfg->n_nodes; i++)
		if (cfg->nodes[i].role == PSF_ROLE_TRAINER)
			fprintf(f, "%s%s", k++ > 0 ? "," : "", cfg->nodes[i].id);
	fprintf(f, "\n");
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* find_value finds "key=" at the start of a line of text; returns its value
 * and its length in *len, or NULL. */
static const char *
find_value(const char *text, const char *key, size_t klen, size_t *len)
{
	for (const char *p = text; *p != '\0'; p += strcspn(p, "\n"), p += *p == '\n') {
		if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
			*len = strcspn(p + klen + 1, "\n");
			return p + klen + 1;
		}
	}
	return NULL;
}

/* add_change appends "key old -> new" to out (values cut at 40 bytes). */
static void
add_change(char *out, size_t len, size_t *used, size_t n, const char *key, size_t klen,
    const char *a, size_t alen, const char *b, size_t blen)
{
	int w;

	if (*used >= len)
		return;
	w = snprintf(out + *used, len - *used, "%s%.*s %.*s%s -> %.*s%s", n > 0 ? ", " : "",
	    (int)klen, key, a != NULL ? (int)(alen > 40 ? 40 : alen) : 6, a != NULL ? a : "(none)",
	    a != NULL && alen > 40 ? "..." : "", b != NULL ? (int)(blen > 40 ? 40 : blen) : 6,
	    b != NULL ? b : "(none)", b != NULL && blen > 40 ? "..." : "");
	*used += w > 0 ? (size_t)w : 0;
}

/* diff_pass lists the keys of from whose value in other differs (or is missing);
 * with from_is_stored, from is the stored side. */
static size_t
diff_pass(const char *from, const char *other, bool from_is_stored, bool missing_only, char *out,
    size_t len, size_t *used, size_t n)
{
	for (const char *p = from; *p != '\0'; p += strcspn(p, "\n"), p += *p == '\n') {
		size_t klen = strcspn(p, "=\n"), vlen, olen = 0;
		const char *v = p + klen + 1, *o;

		if (p[klen] != '=')
			continue;
		vlen = strcspn(v, "\n");
		o = find_value(other, p, klen, &olen);
		if (o != NULL && (missing_only || (olen == vlen && memcmp(o, v, vlen) == 0)))
			continue;
		if (from_is_stored)
			add_change(out, len, used, n, p, klen, v, vlen, o, olen);
		else
			add_change(out, len, used, n, p, klen, o, olen, v, vlen);
		n++;
	}
	return n;
}

size_t
ps_train_settings_diff(const char *stored, const char *want, char *out, size_t len)
{
	size_t used = 0, n;

	out[0] = '\0';
	n = diff_pass(want, stored, false, false, out, len, &used, 0);
	return diff_pass(stored, want, true, true, out, len, &used, n);
}
