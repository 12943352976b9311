/* config_names.c -- the spelling of every config enum, one table each (config.h).
 *
 * The schema reads YAML through these tables and every other module names or
 * parses an enum value through the functions below, so a spelling is written
 * once. Tables are indexed by value and end with NULL. */
#include <string.h>

#include "lib/config/config_internal.h"

const char *const config_role_names[] = {"ps", "trainer", "inferer", "gateway", NULL};
const char *const config_cons_names[] = {"sync", "async", "ssp", "local", NULL};
const char *const config_dur_names[] = {"interval", "every-commit", "none", NULL};
const char *const config_model_names[] = {"linear", "logistic", "mlp", "gru", "lstm", NULL};
const char *const config_optim_names[] = {"sgd", "momentum", "adam", "adagrad", "exact", NULL};
const char *const config_sched_names[] = {"constant", "step", "cosine", NULL};
const char *const config_target_names[] = {"next_close", "next_return", "next_direction", NULL};
const char *const config_shard_by_names[] = {"hash", "rows", NULL};
const char *const config_bad_rows_names[] = {"fail", "skip", NULL};
const char *const config_route_names[] = {"symbol", "round_robin", NULL};

/* name_of returns names[v], or "unknown" past the table's end. */
static const char *
name_of(const char *const *names, unsigned v)
{
	for (unsigned i = 0; names[i] != NULL; i++)
		if (i == v)
			return names[i];
	return "unknown";
}

/* parse_in finds s in names: PSF_OK with *out its index, or PSF_EINVAL. */
static psf_err
parse_in(const char *const *names, const char *s, unsigned *out)
{
	if (s == NULL || out == NULL)
		return PSF_EINVAL;
	for (unsigned i = 0; names[i] != NULL; i++) {
		if (strcmp(names[i], s) == 0) {
			*out = i;
			return PSF_OK;
		}
	}
	return PSF_EINVAL;
}

/* One name and one parse function per enum. */
#define NAMES(fn, type, table)                             \
	const char *psf_##fn##_name(type v)                \
	{                                                  \
		return name_of(table, (unsigned)v);        \
	}                                                  \
	psf_err psf_##fn##_parse(const char *s, type *out) \
	{                                                  \
		unsigned v;                                \
		psf_err err = parse_in(table, s, &v);      \
		if (err == PSF_OK)                         \
			*out = (type)v;                    \
		return err;                                \
	}

NAMES(role, psf_role, config_role_names)
NAMES(consistency, psf_consistency, config_cons_names)
NAMES(durability, psf_durability, config_dur_names)
NAMES(model_kind, psf_model_kind, config_model_names)
NAMES(optim_kind, psf_optim_kind, config_optim_names)
NAMES(lr_schedule, psf_lr_schedule, config_sched_names)
NAMES(target, psf_target_kind, config_target_names)
NAMES(shard_by, psf_shard_by, config_shard_by_names)
NAMES(bad_rows, psf_bad_rows, config_bad_rows_names)
NAMES(route, psf_gateway_route, config_route_names)
