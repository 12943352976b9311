/* datagen.h -- synthetic price data and the per-symbol partition layout
 * (DESIGN.md §7, docs/data.md).
 *
 * psf_datagen_write makes a CSV that data.h loads: business days (Mon-Fri)
 * ending on PSF_DATAGEN_END_DATE, one row per symbol and day, columns
 * date,symbol,open,high,low,close,volume. Each symbol follows a log-price walk
 * with a shared market factor, its own drift, volatility, AR(1) return
 * persistence and pull toward a moving level, and volume that rises with the
 * size of the move: structure a model can learn and the naive "tomorrow =
 * today" forecast cannot. docs/data.md gives the exact model. The output depends
 * only on the config: the same seed gives the same bytes on a given platform.
 *
 * psf_data_partition lays a CSV out as DIR/symbol=XYZ/data.csv, one file per
 * symbol sorted by date, plus DIR/dates.csv and DIR/manifest.csv (data.h), so a
 * trainer reads only its own symbols' files.
 *
 * Both are thread-safe (no shared state). */
#ifndef PSF_DATAGEN_H
#define PSF_DATAGEN_H

#include <stddef.h>

#include "lib/base/bounds.h"
#include "lib/base/err.h"
#include "lib/config/config.h"

/* The last business day of generated data. */
#define PSF_DATAGEN_END_DATE "2024-12-31"

/* Limits checked by psf_datagen_write: PSF_DATAGEN_MAX_SYMBOLS and
 * PSF_DATAGEN_MAX_DAYS, in bounds.h (the config loader checks them too). */

/* psf_datagen_write writes cfg->symbols x cfg->days rows (fewer with cfg->skew:
 * then about 10% of the symbols have the full history and the others start
 * later, keeping 20-60% of it) to path, through a temporary file renamed into
 * place, so path is either complete or untouched. Symbols are named S0000,
 * S0001, ... (more digits past 10000 symbols).
 * Returns PSF_OK; PSF_EINVAL (NULL argument, symbols not in
 * 1..PSF_DATAGEN_MAX_SYMBOLS, days not in 2..PSF_DATAGEN_MAX_DAYS); the errno
 * translation (PSF_ENOENT, PSF_ESYS, ...) when the file cannot be written; or
 * PSF_ENOMEM. With errbuf not NULL, one line saying why goes to errbuf
 * (truncated to errlen, always NUL-terminated). Does not log. */
PSF_NODISCARD psf_err psf_datagen_write(const psf_datagen_cfg *cfg, const char *path, char *errbuf,
    size_t errlen);

/* psf_data_partition loads csv (a file or another partition directory) with the
 * bad_rows policy and writes outdir as described above; the columns written are
 * those the input had. outdir must not exist or be an empty directory. The
 * manifest is written last: a directory without one is incomplete. Returns
 * PSF_OK, the psf_data_load errors, PSF_EEXIST (outdir not empty), PSF_ESYS /
 * PSF_ENOENT (cannot write) or PSF_ENOMEM; with errbuf not NULL one line saying
 * why goes to errbuf (truncated to errlen, always NUL-terminated). */
PSF_NODISCARD psf_err psf_data_partition(const char *csv, const char *outdir, psf_bad_rows bad_rows,
    char *errbuf, size_t errlen);

#endif
