/* bench_util.h -- what the benchmarks share: the raw NNG req0/rep0 baseline that
 * psfleet's RPC layer is measured against, process CPU time, and medians.
 *
 * The raw protocol: every request starts with a PSF_BENCH_RAW_HDR-byte header,
 * u64 op then u64 size (host order). A PSF_BENCH_RAW_DOWN request asks for `size`
 * bytes back; any other request is swallowed whole. Every reply is the header
 * (zeroed) followed by the asked bytes, copied into a fresh message as a
 * server copies a value out of its store. */
#ifndef PSF_BENCH_UTIL_H
#define PSF_BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

#include "lib/base/err.h"

#define PSF_BENCH_RAW_HDR 16  /* u64 op, u64 size */
#define PSF_BENCH_RAW_CTXS 16 /* server contexts, as many as psf_rpc_server's workers */

enum { PSF_BENCH_RAW_UP = 1, PSF_BENCH_RAW_DOWN = 2 };

typedef struct psf_bench_raw_server psf_bench_raw_server;

/* psf_bench_raw_server_open starts a plain rep0 server on url with
 * PSF_BENCH_RAW_CTXS contexts, each with its own aio (NNG's demo/async shape, as
 * psf_rpc_server). Downloads are served from src (borrowed: it must outlive the
 * server); a request for more than src_len bytes gets the header alone. max_msg
 * is NNG_OPT_RECVMAXSZ (0 keeps NNG's default). A tcp:// URL may use port 0:
 * psf_bench_raw_server_url tells the real one. Returns PSF_OK, PSF_ENOMEM or
 * the translated NNG error (the caller reports it). */
PSF_NODISCARD psf_err psf_bench_raw_server_open(const char *url, const uint8_t *src, size_t src_len,
    size_t max_msg, psf_bench_raw_server **out);

/* psf_bench_raw_server_url returns the URL clients dial: url with a tcp port 0
 * replaced by the bound port. Valid until the server is freed. */
const char *psf_bench_raw_server_url(const psf_bench_raw_server *s);

/* psf_bench_raw_server_free closes the socket and stops every context. NULL is
 * fine. Cannot fail. */
void psf_bench_raw_server_free(psf_bench_raw_server *s);

/* Client socket options. psfleet's own client sets no_resend (no resend timer
 * armed per request); a zero field keeps NNG's default. */
typedef struct psf_bench_raw_dial_opts {
	size_t max_msg; /* NNG_OPT_RECVMAXSZ */
	int timeout_ms; /* NNG_OPT_SENDTIMEO and NNG_OPT_RECVTIMEO */
	bool no_resend; /* NNG_OPT_REQ_RESENDTIME infinite */
} psf_bench_raw_dial_opts;

/* psf_bench_raw_dial opens a req0 socket with o (may be NULL) and dials url,
 * waiting for the connection. On success *out is the socket the caller closes
 * with nng_close; on failure nothing is left open. */
PSF_NODISCARD psf_err psf_bench_raw_dial(const char *url, const psf_bench_raw_dial_opts *o,
    nng_socket *out);

/* One thread's end of a raw req0 socket: plain nng_sendmsg/nng_recvmsg, or its
 * own context and aio when several threads share the socket. Not thread-safe:
 * one per thread. */
typedef struct psf_bench_raw_client {
	nng_socket sock;
	nng_ctx ctx;
	nng_aio *aio; /* NULL: no context */
} psf_bench_raw_client;

/* psf_bench_raw_client_init binds c to sock (borrowed; it must outlive c). With
 * use_ctx it opens a context and an aio whose timeout is timeout_ms (0: none).
 * Returns PSF_OK or the translated NNG error, leaving nothing to release. */
PSF_NODISCARD psf_err psf_bench_raw_client_init(psf_bench_raw_client *c, nng_socket sock,
    bool use_ctx, int timeout_ms);

/* psf_bench_raw_client_fini closes c's context and frees its aio. Cannot fail. */
void psf_bench_raw_client_fini(psf_bench_raw_client *c);

/* psf_bench_raw_call makes one exchange: a request of the header and up_len bytes
 * from up (up may be NULL when up_len is 0) that asks for down_len bytes back.
 * A request with down_len > 0 is a PSF_BENCH_RAW_DOWN one. Returns PSF_OK,
 * PSF_EPROTO when the reply is not PSF_BENCH_RAW_HDR + down_len bytes long, or
 * the translated NNG error. */
PSF_NODISCARD psf_err psf_bench_raw_call(psf_bench_raw_client *c, const uint8_t *up, size_t up_len,
    size_t down_len);

/* psf_bench_cpu_ns returns the CPU time (user + system) of the whole process
 * so far, in nanoseconds; 0 if getrusage fails. */
uint64_t psf_bench_cpu_ns(void);

/* psf_bench_median sorts v[0..n) in place and returns its median (the mean of
 * the middle two when n is even). n must be > 0. Cannot fail. */
double psf_bench_median(double *v, size_t n);

#endif
