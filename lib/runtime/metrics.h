/* metrics.h -- a registry of counters, gauges and histograms, rendered in the
 * Prometheus text exposition format 0.0.4 (DESIGN.md §9). lib/runtime/http.h serves
 * it on /metrics.
 *
 * A metric family has a name, help text and a type; each series of a family
 * has its own label set (at most PSF_METRICS_MAX_LABELS pairs), e.g.
 *   rpc_requests_total{method="Push",status="OK"} 12
 * Registering returns a handle; updating through a handle is lock-free (C11
 * atomics) and safe from any thread, so it is cheap enough for the RPC hot
 * path. Registration and rendering take the registry's mutex.
 *
 * Rendering is deterministic: families sorted by name, series by their label
 * text, labels inside a series by label name. */
#ifndef PSF_METRICS_H
#define PSF_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"

#define PSF_METRICS_MAX_LABELS 4

typedef struct psf_metrics psf_metrics;
typedef struct psf_counter psf_counter;
typedef struct psf_gauge psf_gauge;
typedef struct psf_hist psf_hist;

/* One label pair. Names match [a-zA-Z_][a-zA-Z0-9_]* and do not start with
 * "__"; values are any UTF-8 text (escaped when rendered). Both are copied. */
typedef struct psf_label {
	const char *name;
	const char *value;
} psf_label;

/* psf_gauge_fn computes a gauge's value at scrape time. It runs on the thread
 * that renders, with the registry's mutex held: it must not call back into
 * the registry. Return NAN when the value is unknown. */
typedef double (*psf_gauge_fn)(void *arg);

/* psf_metrics_new creates an empty registry. On success *out gets a new
 * registry the caller frees with psf_metrics_free. Returns PSF_OK, PSF_ENOMEM
 * or PSF_ESYS. */
PSF_NODISCARD psf_err psf_metrics_new(psf_metrics **out);

/* psf_metrics_free releases the registry and every handle it gave out. No
 * other thread may use the registry or its handles then (close the HTTP
 * endpoint first). NULL is fine. */
void psf_metrics_free(psf_metrics *reg);

/* psf_metrics_counter registers (or finds) the series of counter family name
 * with these labels and writes its handle to *out. Registering the same name
 * and labels again returns the same handle (the first help text stays), so
 * callers need not keep handles around. labels may be NULL when n_labels is 0;
 * their order does not matter. The handle is valid until psf_metrics_free.
 * Returns PSF_OK, PSF_EINVAL (bad name, label or count, duplicate label name),
 * PSF_EEXIST (name already registered with another type or buckets) or
 * PSF_ENOMEM. Thread-safe. */
PSF_NODISCARD psf_err psf_metrics_counter(psf_metrics *reg, const char *name, const char *help,
    const psf_label *labels, size_t n_labels, psf_counter **out);

/* psf_metrics_gauge is psf_metrics_counter for a gauge (a double, initially 0). */
PSF_NODISCARD psf_err psf_metrics_gauge(psf_metrics *reg, const char *name, const char *help,
    const psf_label *labels, size_t n_labels, psf_gauge **out);

/* psf_metrics_gauge_fn registers a gauge series whose value is fn(arg), called
 * at every render. arg must stay valid until psf_metrics_free. Registering a
 * series that already exists returns PSF_EEXIST. Other codes as for
 * psf_metrics_counter. Thread-safe. */
PSF_NODISCARD psf_err psf_metrics_gauge_fn(psf_metrics *reg, const char *name, const char *help,
    const psf_label *labels, size_t n_labels, psf_gauge_fn fn, void *arg);

/* psf_metrics_hist registers (or finds) a histogram series. bounds are the
 * buckets' upper bounds (copied): finite and strictly increasing, 1 to 64 of
 * them; the +Inf bucket is implicit. All series of a family share the bounds
 * (PSF_EEXIST otherwise). The label name "le" is reserved. Other codes as for
 * psf_metrics_counter. Thread-safe. */
PSF_NODISCARD psf_err psf_metrics_hist(psf_metrics *reg, const char *name, const char *help,
    const psf_label *labels, size_t n_labels, const double *bounds, size_t n_bounds,
    psf_hist **out);

/* psf_metrics_latency_bounds returns the standard latency buckets in seconds,
 * 0.0001 .. 10, and writes their count to *n. Cannot fail. */
const double *psf_metrics_latency_bounds(size_t *n);

/* psf_metrics_add_process registers the process gauges, computed at scrape
 * time from /proc/self: process_resident_memory_bytes, process_open_fds and
 * process_uptime_seconds. Returns PSF_OK, PSF_EEXIST (already added) or
 * PSF_ENOMEM. Thread-safe. */
PSF_NODISCARD psf_err psf_metrics_add_process(psf_metrics *reg);

/* psf_counter_add adds n; psf_counter_inc adds 1. Lock-free. Cannot fail. */
void psf_counter_add(psf_counter *c, uint64_t n);
void psf_counter_inc(psf_counter *c);

/* psf_counter_value reads the current value. Cannot fail. */
uint64_t psf_counter_value(const psf_counter *c);

/* psf_gauge_set sets, psf_gauge_add adds (may be negative). Lock-free.
 * Cannot fail. */
void psf_gauge_set(psf_gauge *g, double v);
void psf_gauge_add(psf_gauge *g, double delta);

/* psf_gauge_value reads the current value. Cannot fail. */
double psf_gauge_value(const psf_gauge *g);

/* psf_hist_observe records one observation (NaN is ignored). Lock-free.
 * Cannot fail. */
void psf_hist_observe(psf_hist *h, double v);

/* psf_metrics_render writes every series in the Prometheus text format 0.0.4
 * (# HELP, # TYPE, then the samples; histograms as _bucket{le=...}, _sum and
 * _count) into a new NUL-terminated buffer the caller frees with free().
 * *len_out (may be NULL) gets its length. Returns PSF_OK or PSF_ENOMEM.
 * Thread-safe; concurrent updates may or may not be included. */
PSF_NODISCARD psf_err psf_metrics_render(psf_metrics *reg, char **text_out, size_t *len_out);

#endif
