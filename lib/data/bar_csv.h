/* bar_csv.h -- one CSV of daily bars (date, symbol, OHLCV), read line by line.
 *
 * What `psfleet ingest` sends and what an inferer's ingest journal holds
 * (docs/forecasting.md): a header naming the columns (date, symbol and close
 * required; open, high, low, volume optional; any order, unknown columns are an
 * error), then one bar per line. Unlike psf_data_load, which reads a whole data
 * set, this checks one line at a time so that each bad line gets its own error. */
#ifndef PSF_BAR_CSV_H
#define PSF_BAR_CSV_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"
#include "lib/data/data.h"

#define PSF_BAR_MAX_COLS 7

/* The columns of a bar CSV: col[k] is what field k of a line holds. */
typedef struct psf_bar_cols {
	int col[PSF_BAR_MAX_COLS]; /* 0 date, 1 symbol, 2 close, 3 open, 4 high, 5 low, 6 volume */
	size_t n;
} psf_bar_cols;

/* One bar. Optional values are NaN when absent. */
typedef struct psf_bar {
	char symbol[PSF_SYMBOL_MAX + 1];
	int32_t date;
	double close, open, high, low, volume;
} psf_bar;

/* The header psf_bar_csv_write_row's lines follow. */
#define PSF_BAR_CSV_HEADER "date,symbol,open,high,low,close,volume"

/* psf_bar_csv_header reads a header line (len bytes, no newline). PSF_EINVAL
 * with a reason in msg for a missing, repeated or unknown column. */
PSF_NODISCARD psf_err psf_bar_csv_header(const char *line, size_t len, psf_bar_cols *cols,
    char *msg, size_t msg_len);

/* psf_bar_csv_row parses one line (len bytes, no newline) into *out: the date
 * must be YYYY-MM-DD, the symbol valid (data.h), every present number must
 * parse. The values are not checked here (psf_bar_check does). PSF_EINVAL with
 * a reason in msg. */
PSF_NODISCARD psf_err psf_bar_csv_row(const psf_bar_cols *cols, const char *line, size_t len,
    psf_bar *out, char *msg, size_t msg_len);

/* psf_bar_check refuses a bar whose values cannot be a day's prices: a close
 * that is not a finite number > 0, an open, high or low present but not > 0
 * and finite, a volume present but negative or not finite, a high below the
 * low. PSF_EINVAL with a reason in msg. */
PSF_NODISCARD psf_err psf_bar_check(const psf_bar *b, char *msg, size_t msg_len);

/* psf_bar_symbol_valid tells whether s (len bytes) is a valid symbol (data.h). */
int psf_bar_symbol_valid(const char *s, size_t len);

/* psf_bar_same tells whether two bars hold the same date and values (NaN, the
 * absent value, equals NaN). Symbols are not compared. */
int psf_bar_same(const psf_bar *a, const psf_bar *b);

/* psf_bar_csv_format writes b as one line in PSF_BAR_CSV_HEADER's order, with a
 * newline (empty fields for absent values, numbers with 17 digits). Returns the
 * length, or 0 when len is too small. */
size_t psf_bar_csv_format(const psf_bar *b, char *buf, size_t len);

#endif
