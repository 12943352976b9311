/* admin.h -- the Admin service (proto/psfleet.proto `service Admin`), one
 * implementation for every role that serves RPCs (ps, trainer with a listen URL,
 * inferer, gateway).
 *
 * What every role answers the same way, from its psf_runtime:
 *   Health   ready and its reason (psf_runtime_set_ready), node id, role name;
 *            model_version from the role's health_version hook (0 without one).
 *   Status   node id, role name, ready, uptime_seconds; model_version, workers
 *            and extra (key/value pairs, in the order added) from the role's
 *            status hook.
 *   Shutdown logs "shutdown requested: <reason>" under the role's name, answers,
 *            then psf_runtime_request_stop: the role's main loop ends as on SIGTERM.
 * Authentication is the server's (a wrong token never reaches these handlers).
 *
 * The hooks run on the RPC server's threads, concurrently with the role's own
 * threads and with each other: they take the role's locks themselves. */
#ifndef PSF_ADMIN_H
#define PSF_ADMIN_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/base/err.h"
#include "lib/net/rpc_server.h"
#include "lib/runtime/runtime.h"

typedef struct psf_admin psf_admin;

/* psf_admin_status is a Status reply being filled by a role's status hook. It
 * copies every string it is given, so the hook may pass its own buffers and
 * release its locks when it returns. */
typedef struct psf_admin_status psf_admin_status;

/* psf_admin_role is what a role adds to the common replies. Every member may be
 * NULL. arg is passed to the hooks and must outlive the psf_admin. */
typedef struct psf_admin_role {
	/* health_version returns the model version a Health reply reports. */
	uint64_t (*health_version)(void *arg);
	/* status fills the role's part of a Status reply with psf_admin_status_*.
	 * An error it returns (PSF_ENOMEM from those functions) fails the call. */
	psf_err (*status)(void *arg, psf_admin_status *st);
	void *arg;
} psf_admin_role;

/* psf_admin_new adds the Admin service to srv (before it starts) for the node of
 * rt, with the role's hooks (copied). The psf_admin must outlive srv: free it
 * after psf_rpc_server_free. Returns PSF_ENOMEM, or an error of
 * psf_rpc_server_add_service (a second Admin service on srv). */
PSF_NODISCARD psf_err psf_admin_new(psf_runtime *rt, const psf_admin_role *role,
    psf_rpc_server *srv, psf_admin **out);

/* psf_admin_free frees the service. NULL is fine. */
void psf_admin_free(psf_admin *a);

/* psf_admin_status_version sets the reply's model_version (default 0). Cannot fail. */
void psf_admin_status_version(psf_admin_status *st, uint64_t version);

/* psf_admin_status_worker appends one worker's row (ps nodes). Returns PSF_ENOMEM. */
PSF_NODISCARD psf_err psf_admin_status_worker(psf_admin_status *st, const char *worker,
    int64_t clock, bool live, uint64_t last_seq, uint64_t pushes);

/* psf_admin_status_extra appends the pair key = printf(fmt, ...) to the reply's
 * extra. Returns PSF_ENOMEM. */
PSF_NODISCARD psf_err psf_admin_status_extra(psf_admin_status *st, const char *key, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

#endif
