/* http_client_test.c -- the HTTP client of the psfleet command
 * (cli/http_client.h) against raw servers that misbehave; its happy paths
 * against the nodes' own server are in metrics_test.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/http_client.h"

#define TIMEOUT_MS 5000

typedef struct raw_server {
	int lfd;
	const char *reply; /* NULL: accept, read, never answer until closed */
} raw_server;

static void *
raw_serve(void *p)
{
	raw_server *rs = p;
	char buf[1024];
	int fd = accept(rs->lfd, NULL, NULL);

	if (fd < 0)
		return NULL;
	if (read(fd, buf, sizeof(buf)) > 0 && rs->reply != NULL)
		(void)!write(fd, rs->reply, strlen(rs->reply));
	else
		(void)!read(fd, buf, sizeof(buf)); /* until the client gives up */
	close(fd);
	return NULL;
}

static void
raw_exchange(const char *reply, int timeout_ms, psf_err want)
{
	raw_server rs = {-1, reply};
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	pthread_t th;
	psf_http_reply r;
	char addr[64];

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	rs.lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(rs.lfd >= 0);
	assert_int_equal(bind(rs.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(rs.lfd, 4), 0);
	assert_int_equal(getsockname(rs.lfd, (struct sockaddr *)&sa, &sl), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
	assert_int_equal(pthread_create(&th, NULL, raw_serve, &rs), 0);
	assert_int_equal(psf_http_request(addr, "GET", "/x", timeout_ms, &r), want);
	if (want == PSF_OK) {
		assert_int_equal(r.status, 200);
		assert_string_equal(r.body, "abc");
		psf_http_reply_fini(&r);
	}
	pthread_join(th, NULL);
	close(rs.lfd);
}

static void
test_http_client_reports_bad_responses(void **state)
{
	int status;

	(void)state;
	raw_exchange("HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabcdef", TIMEOUT_MS, PSF_OK);
	raw_exchange("HTTP/1.1 200 OK\r\ncontent-length:3\r\n\r\nabc", TIMEOUT_MS, PSF_OK);
	raw_exchange("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", TIMEOUT_MS, PSF_EPROTO);
	raw_exchange("SSH-2.0-OpenSSH\r\n\r\n", TIMEOUT_MS, PSF_EPROTO);
	raw_exchange("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n", TIMEOUT_MS, PSF_EPROTO);
	raw_exchange("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	    TIMEOUT_MS, PSF_EPROTO);
	raw_exchange(NULL, 200, PSF_ETIMEDOUT);
	assert_int_equal(psf_http_get("127.0.0.1:1", "/", TIMEOUT_MS, &status, NULL), PSF_EUNAVAIL);
	assert_int_equal(psf_http_get("127.0.0.1:80", "nopath", TIMEOUT_MS, &status, NULL),
	    PSF_EINVAL);
	assert_int_equal(psf_http_get("127.0.0.1:80", "/a b", TIMEOUT_MS, &status, NULL),
	    PSF_EINVAL);
	assert_int_equal(psf_http_get("127.0.0.1:80", "/", 0, &status, NULL), PSF_EINVAL);
	assert_int_equal(psf_http_get("127.0.0.1:80", "/", TIMEOUT_MS, NULL, NULL), PSF_EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_http_client_reports_bad_responses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
