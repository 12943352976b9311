/* train_bench.h -- what train_bench.c and train_bench_rnn.c share. */
#ifndef PSF_TRAIN_BENCH_H
#define PSF_TRAIN_BENCH_H

#include <stddef.h>

/* train_bench_time runs step(arg) until min_s seconds passed (at least 3
 * times); returns wall seconds per call, and the process CPU seconds per call
 * in *cpu_s (may be NULL). */
double train_bench_time(void (*step)(void *), void *arg, double min_s, double *cpu_s);

/* train_bench_rnn prints the gru/lstm figures and their ratio_ lines. */
void train_bench_rnn(size_t reps, double min_s);

#endif
