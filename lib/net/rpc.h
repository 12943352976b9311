/* rpc.h -- definitions shared by the RPC server and client (DESIGN.md §3).
 *
 * Status codes are psfleet.v1.StatusCode (gRPC's numbers). psf_err values map onto
 * them in one table, both ways, so handlers return psf_err and clients get psf_err. */
#ifndef PSF_RPC_H
#define PSF_RPC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "lib/base/err.h"
#include "psfleet.pb-c.h"

typedef Psfleet__V1__StatusCode psf_status;

#define PSF_STATUS_OK PSFLEET__V1__STATUS_CODE__OK
#define PSF_STATUS_INVALID_ARGUMENT PSFLEET__V1__STATUS_CODE__INVALID_ARGUMENT
#define PSF_STATUS_DEADLINE_EXCEEDED PSFLEET__V1__STATUS_CODE__DEADLINE_EXCEEDED
#define PSF_STATUS_NOT_FOUND PSFLEET__V1__STATUS_CODE__NOT_FOUND
#define PSF_STATUS_ALREADY_EXISTS PSFLEET__V1__STATUS_CODE__ALREADY_EXISTS
#define PSF_STATUS_RESOURCE_EXHAUSTED PSFLEET__V1__STATUS_CODE__RESOURCE_EXHAUSTED
#define PSF_STATUS_FAILED_PRECONDITION PSFLEET__V1__STATUS_CODE__FAILED_PRECONDITION
#define PSF_STATUS_ABORTED PSFLEET__V1__STATUS_CODE__ABORTED
#define PSF_STATUS_UNIMPLEMENTED PSFLEET__V1__STATUS_CODE__UNIMPLEMENTED
#define PSF_STATUS_INTERNAL PSFLEET__V1__STATUS_CODE__INTERNAL
#define PSF_STATUS_UNAVAILABLE PSFLEET__V1__STATUS_CODE__UNAVAILABLE
#define PSF_STATUS_UNAUTHENTICATED PSFLEET__V1__STATUS_CODE__UNAUTHENTICATED

/* Default limits: a 64 MiB tensor plus its envelope fits. */
#define PSF_RPC_DEFAULT_MAX_MSG ((size_t)80 << 20)
#define PSF_RPC_DEFAULT_TIMEOUT_MS 30000u

/* The outcome of a call as the client sees it: status code and the server's text. */
typedef struct psf_rpc_status {
	psf_status code;
	char message[256];
} psf_rpc_status;

/* TLS material for tls+tcp:// URLs; file paths, NULL = unused. With ca_file set,
 * the peer must present a certificate signed by it (mutual TLS on servers). */
typedef struct psf_rpc_tls {
	const char *cert_file;
	const char *key_file;
	const char *ca_file;
	const char *server_name; /* clients: expected name in the server's certificate */
} psf_rpc_tls;

/* psf_status_from_err maps a psf_err to the status a server replies with. */
psf_status psf_status_from_err(psf_err err);

/* psf_err_from_status maps a reply's status to the psf_err a client returns. */
psf_err psf_err_from_status(psf_status status);

/* psf_status_name returns e.g. "NOT_FOUND". Cannot fail. */
const char *psf_status_name(psf_status status);

/* psf_rpc_msg_utf8_valid tells whether every string field of m (nested messages
 * included) is valid UTF-8, as proto3 requires of strings; protobuf-c neither
 * checks it on unpack nor on pack. Cannot fail. */
bool psf_rpc_msg_utf8_valid(const ProtobufCMessage *m);

/* psf_rpc_msg_utf8_copy makes a copy of m in which every string is valid UTF-8
 * (psf_wire_utf8_sanitize: each stray byte becomes U+FFFD). On success *out gets
 * a new message the caller frees with protobuf_c_message_free_unpacked(*out,
 * NULL). Returns PSF_OK or PSF_ENOMEM. */
PSF_NODISCARD psf_err psf_rpc_msg_utf8_copy(const ProtobufCMessage *m, ProtobufCMessage **out);

/* psf_err_from_nng translates an NNG error code (the only place that does). */
psf_err psf_err_from_nng(int nng_rv);

/* NNG 1.5.2 stops a dialer or a listener for good when a connection's handshake
 * fails with NNG_ECLOSED, and that is what it makes of EPIPE: the peer died
 * between connecting and the handshake write (a trainer SIGKILLed as it
 * connects to a ps, a ps killed as it accepts). A ps then never accepted another
 * connection; a trainer never dialed its ps again. rpc.c defines sendmsg(2),
 * which every program linking lib/net uses in place of libc's (libnng
 * included), and reports EPIPE as ECONNRESET, the same event in words NNG
 * recovers from (redial, accept the next). psf_rpc_sendmsg_next is what it
 * calls: libc's sendmsg when NULL; tests set it to inject failures. */
typedef ssize_t (*psf_rpc_sendmsg_fn)(int fd, const struct msghdr *msg, int flags);
extern _Atomic(psf_rpc_sendmsg_fn) psf_rpc_sendmsg_next;

#endif
