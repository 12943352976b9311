/* util.h -- small helpers shared by every module: clocks, checked allocation,
 * temp directories. */
#ifndef PSF_UTIL_H
#define PSF_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"

/* psf_now_ns returns CLOCK_MONOTONIC in nanoseconds. Cannot fail. */
uint64_t psf_now_ns(void);

/* psf_now_ms returns CLOCK_MONOTONIC in milliseconds. Cannot fail. */
uint64_t psf_now_ms(void);

/* psf_wall_seconds returns CLOCK_REALTIME as seconds. Cannot fail. */
double psf_wall_seconds(void);

/* psf_plural returns "" when n is 1 and "s" otherwise, for messages such as
 * "%zu trainer%s" (no "1 trainers"). Cannot fail. */
static inline const char *
psf_plural(unsigned long long n)
{
	return n == 1 ? "" : "s";
}

/* psf_sleep_ms sleeps for ms milliseconds (restarting after signals). Cannot fail. */
void psf_sleep_ms(uint64_t ms);

/* psf_rm_rf removes path and everything below it. Missing path is not an error.
 * Returns PSF_OK or PSF_ESYS. */
PSF_NODISCARD psf_err psf_rm_rf(const char *path);

/* psf_mkdir_p creates path and its parents (mode 0755). Existing dirs are fine. */
PSF_NODISCARD psf_err psf_mkdir_p(const char *path);

/* psf_write_all writes n bytes at p to fd, resuming short writes and EINTR.
 * Returns PSF_OK, PSF_ENOSPC (the disk is full), or PSF_ESYS (errno says why). */
PSF_NODISCARD psf_err psf_write_all(int fd, const void *p, size_t n);

/* psf_read_file reads a whole file into a new NUL-terminated buffer the caller
 * frees; *len_out (may be NULL) gets its length without the NUL. */
PSF_NODISCARD psf_err psf_read_file(const char *path, char **data_out, size_t *len_out);

/* psf_tune_malloc keeps large message buffers in the heap instead of a fresh
 * mmap (and page faults) per message, and the heap from shrinking after each:
 * for processes that move MiB-sized messages all the time (psfleet nodes). Call
 * once at start-up, before threads. Cannot fail (a refused setting is ignored). */
void psf_tune_malloc(void);

#endif
