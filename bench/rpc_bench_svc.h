/* rpc_bench_svc.h -- the psfleet services rpc_bench measures (its own file so
 * that rpc_bench.c keeps to the measuring). */
#ifndef PSF_RPC_BENCH_SVC_H
#define PSF_RPC_BENCH_SVC_H

#include <stddef.h>
#include <stdint.h>

#include "lib/net/rpc_server.h"
#include "psfleet.pb-c.h"

#define MIB ((size_t)1 << 20)
#define BIG (16 * MIB) /* the largest payload, and the size of the Pull source */

/* rpc_bench_services_init fills admin and ps with the bench's handlers. They
 * answer at once: Admin/Health says ready; ParameterServer/Push unpacks its
 * request and answers with staleness = the value bytes received (so the client
 * can check they arrived); ParameterServer/Pull answers with `clock` bytes (at
 * most BIG) of the source its service was registered with (the psf_rpc_call_user
 * pointer, BIG bytes). Every other method fails with UNIMPLEMENTED. The structs
 * must outlive the servers they are added to. Cannot fail. */
void rpc_bench_services_init(Psfleet__V1__Admin_Service *admin,
    Psfleet__V1__ParameterServer_Service *ps);

/* rpc_bench_zc_push is the zero-copy Push, for psf_rpc_server_add_raw: it walks
 * the serialized PushRequest in place (the values are never copied) and answers
 * like the generated Push. arg is unused. */
void rpc_bench_zc_push(psf_rpc_call *call, const uint8_t *payload, size_t len, void *arg);

#endif
