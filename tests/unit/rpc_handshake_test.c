/* rpc_handshake_test -- a peer that dies during the handshake stops neither a
 * client's dialer nor a server's listener.
 *
 * NNG 1.5.2 stops a dialer, or a listener, for good when a connection's
 * handshake ends in NNG_ECLOSED, and it reports EPIPE on the handshake write
 * (the peer died between connecting and the handshake: a ps SIGKILLed as a
 * trainer reconnects, a trainer SIGKILLed as it connects to the ps) as
 * NNG_ECLOSED. lib/net's sendmsg(2) reports EPIPE as ECONNRESET (rpc.h). These
 * tests make exactly that failure happen, deterministically, through
 * psf_rpc_sendmsg_next: the handshake write of one side (the 8-byte SP header;
 * protocol 0x0030 is req0, the client, 0x0031 rep0, the server) fails once with
 * EPIPE, as when the peer has just died. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/base/util.h"
#include "lib/net/methods.h"
#include "lib/net/rpc.h"
#include "lib/net/rpc_client.h"
#include "lib/net/rpc_server.h"

static uint8_t fail_proto;           /* 0x30 (client) or 0x31 (server) */
static atomic_int fail_handshakes;   /* how many more of its header writes fail */
static atomic_int failed_handshakes; /* how many did */

static ssize_t
failing_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	const uint8_t head[8] = {0, 'S', 'P', 0, 0, fail_proto, 0, 0};

	if (msg->msg_iovlen >= 1 && msg->msg_iov[0].iov_len == 8 &&
	    memcmp(msg->msg_iov[0].iov_base, head, 8) == 0) {
		int n = atomic_load(&fail_handshakes);
		while (n > 0 && !atomic_compare_exchange_weak(&fail_handshakes, &n, n - 1))
			;
		if (n > 0) {
			atomic_fetch_add(&failed_handshakes, 1);
			errno = EPIPE;
			return -1;
		}
	}
	return (ssize_t)syscall(SYS_sendmsg, fd, msg, flags);
}

static void
admin_health(Psfleet__V1__Admin_Service *svc, const Psfleet__V1__HealthRequest *in,
    Psfleet__V1__HealthReply_Closure done, void *call)
{
	Psfleet__V1__HealthReply r = PSFLEET__V1__HEALTH_REPLY__INIT;

	(void)svc;
	(void)in;
	r.role = "test";
	done(&r, call);
}

static void
admin_status(Psfleet__V1__Admin_Service *svc, const Psfleet__V1__StatusRequest *in,
    Psfleet__V1__StatusReply_Closure done, void *call)
{
	(void)svc;
	(void)in;
	psf_rpc_fail(call, PSF_STATUS_UNIMPLEMENTED, "not in this test");
	done(NULL, call);
}

static void
admin_shutdown(Psfleet__V1__Admin_Service *svc, const Psfleet__V1__ShutdownRequest *in,
    Psfleet__V1__ShutdownReply_Closure done, void *call)
{
	(void)svc;
	(void)in;
	psf_rpc_fail(call, PSF_STATUS_UNIMPLEMENTED, "not in this test");
	done(NULL, call);
}

static psf_err
call_health(psf_rpc_client *c, uint32_t timeout_ms, int fail_fast, psf_rpc_status *st)
{
	Psfleet__V1__HealthRequest req = PSFLEET__V1__HEALTH_REQUEST__INIT;
	Psfleet__V1__HealthReply *r = NULL;
	psf_rpc_call_opts o = {timeout_ms, 1, fail_fast};
	psf_err err = psf_rpc_client_call(c, PSF_M_HEALTH, &req.base,
	    &psfleet__v1__health_reply__descriptor, &o, (ProtobufCMessage **)&r, st);

	if (err == PSF_OK) {
		assert_string_equal(r->role, "test");
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	return err;
}

typedef struct fixture {
	char dir[64];
	char url[128];
	psf_rpc_server *srv;
	Psfleet__V1__Admin_Service admin;
} fixture;

static void
start_server(fixture *f)
{
	Psfleet__V1__Admin_Service admin = PSFLEET__V1__ADMIN__INIT(admin_);

	f->admin = admin;
	assert_int_equal(psf_rpc_server_new(NULL, &f->srv), PSF_OK);
	assert_int_equal(psf_rpc_server_add_service(f->srv, &f->admin.base, f), PSF_OK);
	assert_int_equal(psf_rpc_server_listen(f->srv, f->url, NULL, 0), PSF_OK);
	assert_int_equal(psf_rpc_server_start(f->srv), PSF_OK);
}

static int
setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/psf-handshake-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->url, sizeof(f->url), "ipc://%s/s.sock", f->dir);
	start_server(f);
	atomic_store(&fail_handshakes, 0);
	atomic_store(&failed_handshakes, 0);
	atomic_store(&psf_rpc_sendmsg_next, NULL);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	fixture *f = *state;

	psf_rpc_server_free(f->srv);
	atomic_store(&psf_rpc_sendmsg_next, NULL);
	assert_int_equal(psf_rm_rf(f->dir), PSF_OK);
	free(f);
	return 0;
}

/* setup_failing arms the next n handshake writes of one side to fail with EPIPE. */
static void
setup_failing(uint8_t proto, int n)
{
	fail_proto = proto;
	atomic_store(&fail_handshakes, n);
	atomic_store(&psf_rpc_sendmsg_next, failing_sendmsg);
}

/* The client's first handshake write fails as if the server had just died: the
 * client dials again and its call is answered (before, its dialer stopped for
 * good and the call, like every later one, ran into its deadline). */
static void
test_client_redials_after_epipe_in_handshake(void **state)
{
	fixture *f = *state;
	psf_rpc_client_opts co = {.reconnect_min_ms = 10, .reconnect_max_ms = 50};
	psf_rpc_status st;
	psf_rpc_client *c;

	setup_failing(0x30, 1);
	assert_int_equal(psf_rpc_client_open(f->url, &co, &c), PSF_OK);
	assert_int_equal(call_health(c, 20000, 0, &st), PSF_OK);
	assert_int_equal(atomic_load(&failed_handshakes), 1);
	psf_rpc_client_close(c);
}

/* The server's handshake write to a client fails as if that client had just
 * died: the server accepts the next connection and answers it (before, its
 * listener stopped for good: every later client got a connection that no one
 * read, and "deadline exceeded (no reply)"). */
static void
test_server_accepts_after_epipe_in_handshake(void **state)
{
	fixture *f = *state;
	psf_rpc_client_opts co = {.reconnect_min_ms = 10, .reconnect_max_ms = 50};
	psf_rpc_status st;
	psf_rpc_client *c;

	setup_failing(0x31, 1);
	assert_int_equal(psf_rpc_client_open(f->url, &co, &c), PSF_OK);
	assert_int_equal(call_health(c, 20000, 0, &st), PSF_OK);
	assert_int_equal(atomic_load(&failed_handshakes), 1);
	psf_rpc_client_close(c);
	/* and a new client too */
	assert_int_equal(psf_rpc_client_open(f->url, &co, &c), PSF_OK);
	assert_int_equal(call_health(c, 20000, 0, &st), PSF_OK);
	psf_rpc_client_close(c);
}

/* A fail_fast call (how a trainer registers) fails at once while the client has
 * no connection, and its connection count comes back to 0 once a connection
 * ends, however NNG orders the events. */
static void
test_fail_fast_without_connection(void **state)
{
	fixture *f = *state;
	psf_rpc_client_opts co = {.reconnect_min_ms = 10, .reconnect_max_ms = 50};
	psf_rpc_status st;
	psf_rpc_client *c;

	assert_int_equal(psf_rpc_client_open(f->url, &co, &c), PSF_OK);
	assert_int_equal(call_health(c, 20000, 0, &st), PSF_OK);
	assert_true(psf_rpc_client_connected(c));
	psf_rpc_server_free(f->srv);
	f->srv = NULL;
	for (int i = 0; i < 1000 && psf_rpc_client_connected(c); i++)
		psf_sleep_ms(10);
	assert_false(psf_rpc_client_connected(c));
	assert_int_equal(call_health(c, 20000, 1, &st), PSF_EUNAVAIL);
	start_server(f);
	assert_int_equal(call_health(c, 20000, 0, &st), PSF_OK);
	psf_rpc_client_close(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_client_redials_after_epipe_in_handshake, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(test_server_accepts_after_epipe_in_handshake, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(test_fail_fast_without_connection, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
