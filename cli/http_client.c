/* http_client.c -- the HTTP/1.1 client of `psfleet up` and `psfleet status`
 * (http_client.h): plain POSIX sockets, one request per connection. */
#define _GNU_SOURCE /* asprintf */
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/http_client.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/runtime/http.h"

#define MAX_REPLY_BYTES (64u << 20)

/* Waits until fd is ready for events or the deadline (psf_now_ms) passes. */
static psf_err
wait_fd(int fd, short events, uint64_t deadline)
{
	struct pollfd pfd = {.fd = fd, .events = events};

	for (;;) {
		uint64_t now = psf_now_ms();
		int rv;

		if (now >= deadline)
			return PSF_ETIMEDOUT;
		rv = poll(&pfd, 1, (int)(deadline - now));
		if (rv > 0)
			return PSF_OK;
		if (rv < 0 && errno != EINTR)
			return psf_err_from_errno(errno);
	}
}

static psf_err
connect_addr(const struct addrinfo *ai, uint64_t deadline, int *fd_out)
{
	int fd, soerr = 0;
	socklen_t len = sizeof(soerr);
	psf_err rv;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
		return psf_err_from_errno(errno);
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		if (errno != EINPROGRESS) {
			rv = errno == ECONNREFUSED ? PSF_EUNAVAIL : psf_err_from_errno(errno);
			close(fd);
			return rv;
		}
		if ((rv = wait_fd(fd, POLLOUT, deadline)) != PSF_OK) {
			close(fd);
			return rv;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr != 0) {
			close(fd);
			return PSF_EUNAVAIL;
		}
	}
	*fd_out = fd;
	return PSF_OK;
}

static psf_err
dial(const char *host, unsigned long port, uint64_t deadline, int *fd_out)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
	    .ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG};
	struct addrinfo *res = NULL;
	char portstr[8];
	psf_err rv = PSF_EUNAVAIL;
	int gai;

	snprintf(portstr, sizeof(portstr), "%lu", port);
	gai = getaddrinfo(host[0] != '\0' ? host : "127.0.0.1", portstr, &hints, &res);
	if (gai != 0) {
		psf_log_debug("http", "resolve %s: %s", host, gai_strerror(gai));
		return PSF_EUNAVAIL;
	}
	for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		if ((rv = connect_addr(ai, deadline, fd_out)) == PSF_OK || rv == PSF_ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	return rv;
}

static psf_err
send_all(int fd, const char *buf, size_t len, uint64_t deadline)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		psf_err rv;

		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return PSF_EUNAVAIL;
		if ((rv = wait_fd(fd, POLLOUT, deadline)) != PSF_OK)
			return rv;
	}
	return PSF_OK;
}

/* Reads until the peer closes. *buf_out gets a new NUL-terminated buffer. */
static psf_err
recv_all(int fd, uint64_t deadline, char **buf_out, size_t *len_out)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	psf_err rv;

	for (;;) {
		if (cap - len < 4096 + 1) {
			char *nb;

			cap = cap == 0 ? 16384 : cap * 2;
			if (cap > MAX_REPLY_BYTES + 8192) {
				free(buf);
				return PSF_ETOOBIG;
			}
			if ((nb = realloc(buf, cap)) == NULL) {
				free(buf);
				return PSF_ENOMEM;
			}
			buf = nb;
		}
		ssize_t n = recv(fd, buf + len, cap - len - 1, 0);

		if (n > 0) {
			len += (size_t)n;
			continue;
		}
		if (n == 0)
			break;
		if (errno != EAGAIN && errno != EINTR) {
			free(buf);
			return PSF_EUNAVAIL;
		}
		if ((rv = wait_fd(fd, POLLIN, deadline)) != PSF_OK) {
			free(buf);
			return rv;
		}
	}
	buf[len] = '\0';
	*buf_out = buf;
	*len_out = len;
	return PSF_OK;
}

static psf_err
parse_status(const char *buf, size_t len, int *status)
{
	if (len < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)buf[7]) ||
	    buf[8] != ' ')
		return PSF_EPROTO;
	for (int i = 9; i < 12; i++)
		if (!isdigit((unsigned char)buf[i]))
			return PSF_EPROTO;
	if (len > 12 && buf[12] != ' ' && buf[12] != '\r')
		return PSF_EPROTO;
	*status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	return PSF_OK;
}

static bool
header_is(const char *name, size_t len, const char *want)
{
	return len == strlen(want) && strncasecmp(name, want, len) == 0;
}

/* Reads the header lines in [h, end): Content-Type, Content-Length (-1 when
 * absent); a Transfer-Encoding other than identity is not supported. */
static psf_err
parse_headers(const char *h, const char *end, char **ctype, long long *clen)
{
	*clen = -1;
	while (h < end) {
		const char *eol = memmem(h, (size_t)(end - h), "\r\n", 2);
		const char *colon, *v, *ve;

		if (eol == NULL)
			eol = end;
		if ((colon = memchr(h, ':', (size_t)(eol - h))) == NULL)
			return PSF_EPROTO;
		for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++)
			;
		for (ve = eol; ve > v && (ve[-1] == ' ' || ve[-1] == '\t'); ve--)
			;
		if (header_is(h, (size_t)(colon - h), "Content-Type")) {
			free(*ctype);
			if ((*ctype = strndup(v, (size_t)(ve - v))) == NULL)
				return PSF_ENOMEM;
		} else if (header_is(h, (size_t)(colon - h), "Content-Length")) {
			if (ve == v || ve - v > 18 || strspn(v, "0123456789") < (size_t)(ve - v))
				return PSF_EPROTO;
			*clen = strtoll(v, NULL, 10);
		} else if (header_is(h, (size_t)(colon - h), "Transfer-Encoding") &&
		    !(ve - v == 8 && strncasecmp(v, "identity", 8) == 0)) {
			return PSF_EPROTO;
		}
		h = eol + 2;
	}
	return PSF_OK;
}

static psf_err
parse_response(const char *buf, size_t len, bool is_head, psf_http_reply *out)
{
	psf_http_reply r = {0};
	const char *line_end = memmem(buf, len, "\r\n", 2);
	const char *hdr_end = memmem(buf, len, "\r\n\r\n", 4);
	long long clen;
	size_t body_len;
	psf_err rv;

	if (line_end == NULL || hdr_end == NULL)
		return PSF_EPROTO;
	if ((rv = parse_status(buf, (size_t)(line_end - buf), &r.status)) != PSF_OK ||
	    (rv = parse_headers(line_end + 2, hdr_end, &r.content_type, &clen)) != PSF_OK)
		goto out;
	body_len = len - (size_t)(hdr_end + 4 - buf);
	if (is_head)
		body_len = 0;
	else if (clen >= 0 && (size_t)clen > body_len) {
		rv = PSF_EPROTO; /* cut short */
		goto out;
	} else if (clen >= 0)
		body_len = (size_t)clen;
	if ((r.body = malloc(body_len + 1)) == NULL) {
		rv = PSF_ENOMEM;
		goto out;
	}
	memcpy(r.body, hdr_end + 4, body_len);
	r.body[body_len] = '\0';
	r.body_len = body_len;
	*out = r;
	return PSF_OK;
out:
	psf_http_reply_fini(&r);
	return rv;
}

static bool
valid_request(const char *method, const char *path)
{
	if (method == NULL || method[0] == '\0' || strlen(method) > 16 ||
	    strspn(method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(method))
		return false;
	if (path == NULL || path[0] != '/' || strlen(path) > 2048)
		return false;
	for (const char *p = path; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return false;
	return true;
}

psf_err
psf_http_request(const char *hostport, const char *method, const char *path, int timeout_ms,
    psf_http_reply *out)
{
	char host[256];
	unsigned long port;
	char *req = NULL, *raw = NULL;
	size_t raw_len = 0;
	int fd = -1;
	uint64_t deadline;
	psf_err rv;

	if (out == NULL || timeout_ms <= 0 || !valid_request(method, path) ||
	    !psf_http_split_hostport(hostport, host, sizeof(host), &port))
		return PSF_EINVAL;
	deadline = psf_now_ms() + (uint64_t)timeout_ms;
	if (asprintf(&req,
	        "%s %s HTTP/1.1\r\nHost: %s%s\r\nConnection: close\r\n"
	        "User-Agent: psfleet\r\n\r\n",
	        method, path, host[0] == '\0' ? "127.0.0.1" : "", hostport) < 0)
		return PSF_ENOMEM;
	if ((rv = dial(host, port, deadline, &fd)) != PSF_OK ||
	    (rv = send_all(fd, req, strlen(req), deadline)) != PSF_OK ||
	    (rv = recv_all(fd, deadline, &raw, &raw_len)) != PSF_OK)
		goto out;
	rv = parse_response(raw, raw_len, strcmp(method, "HEAD") == 0, out);
	if (rv == PSF_EPROTO)
		psf_log_warn("http", "%s %s%s: not an HTTP response", method, hostport, path);
out:
	if (fd >= 0)
		close(fd);
	free(raw);
	free(req);
	if (rv != PSF_OK)
		psf_log_debug("http", "%s %s%s: %s", method, hostport, path, psf_strerror(rv));
	return rv;
}

void
psf_http_reply_fini(psf_http_reply *r)
{
	if (r == NULL)
		return;
	free(r->content_type);
	free(r->body);
	r->content_type = NULL;
	r->body = NULL;
	r->body_len = 0;
}

psf_err
psf_http_get(const char *hostport, const char *path, int timeout_ms, int *status_out,
    char **body_out)
{
	psf_http_reply r;
	psf_err rv;

	if (status_out == NULL)
		return PSF_EINVAL;
	if ((rv = psf_http_request(hostport, "GET", path, timeout_ms, &r)) != PSF_OK)
		return rv;
	*status_out = r.status;
	if (body_out != NULL) {
		*body_out = r.body;
		r.body = NULL;
	}
	psf_http_reply_fini(&r);
	return PSF_OK;
}
