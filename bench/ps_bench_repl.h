/* ps_bench_repl.h -- ps_bench's replication cases (ps_bench_repl.c). */
#ifndef PSF_BENCH_PS_BENCH_REPL_H
#define PSF_BENCH_PS_BENCH_REPL_H

#include <stdbool.h>

#include "lib/base/err.h"

/* psf_ps_bench_repl runs the replication cases with its stores under base and
 * prints their `name value unit` and `ratio_` lines (short with quick).
 * Returns PSF_OK or the first error (printed). */
PSF_NODISCARD psf_err psf_ps_bench_repl(const char *base, bool quick);

#endif
