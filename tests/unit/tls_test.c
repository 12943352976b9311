/* Security over real sockets: TLS (tls+tcp://) with certificates made at test time
 * by the openssl CLI, mutual TLS with a CA, the server name a client expects
 * (security.tls_server_name, psf_client_opts.server_name, else the URL's host), the
 * shared-secret token (from a file or an environment variable through the node's
 * config), UNAUTHENTICATED counted on /metrics, and listeners bound only to the
 * configured address. Skipped (exit 77) when openssl is missing. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <nng/nng.h>

#include "client/psfleet_client.h"
#include "lib/base/util.h"
#include "lib/config/config.h"
#include "lib/net/methods.h"
#include "lib/net/rpc_client.h"
#include "lib/net/rpc_server.h"
#include "lib/runtime/runtime.h"

static char dir[64];

static void
path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
run(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

/* make_pki: ca, a server cert for localhost, one for the name psfleet-node only
 * ("named"), a client cert signed by it, and a rogue CA with its own client cert. */
static int
make_pki(void)
{
	const char *q = ">/dev/null 2>&1";

	if (run("cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt "
	        "-days 1 -subj /CN=psf-test-ca %s",
	        dir, q) != 0 ||
	    run("cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout rogue.key -out rogue.crt "
	        "-days 1 -subj /CN=rogue-ca %s",
	        dir, q) != 0)
		return -1;
	static const char *const certs[][4] = {
	    {"server", "ca", "subjectAltName=DNS:localhost", "localhost"},
	    {"named", "ca", "subjectAltName=DNS:psfleet-node", "psfleet-node"},
	    {"client", "ca", "extendedKeyUsage=clientAuth", "localhost"},
	    {"badclient", "rogue", "extendedKeyUsage=clientAuth", "localhost"},
	};
	for (size_t i = 0; i < PSF_ARRAY_LEN(certs); i++) {
		if (run("cd %s && printf '%%s\\n' '%s' > %s.ext && "
		        "openssl req -newkey rsa:2048 -nodes -keyout %s.key -out %s.csr -subj /CN=%s %s && "
		        "openssl x509 -req -in %s.csr -CA %s.crt -CAkey %s.key -CAcreateserial -days 1 "
		        "-extfile %s.ext -out %s.crt %s",
		        dir, certs[i][2], certs[i][0], certs[i][0], certs[i][0], certs[i][3], q,
		        certs[i][0], certs[i][1], certs[i][1], certs[i][0], certs[i][0], q) != 0)
			return -1;
	}
	return 0;
}

static void
health(psf_rpc_call *call, const uint8_t *payload, size_t len, void *arg)
{
	Psfleet__V1__HealthReply r = PSFLEET__V1__HEALTH_REPLY__INIT;

	(void)payload;
	(void)len;
	(void)arg;
	r.ready = 1;
	r.node = "tls";
	psf_rpc_reply(call, &r.base);
}

/* model_info answers Inference/ModelInfo, so the client library has a call to make. */
static void
model_info(psf_rpc_call *call, const uint8_t *payload, size_t len, void *arg)
{
	Psfleet__V1__ModelInfoReply r = PSFLEET__V1__MODEL_INFO_REPLY__INIT;

	(void)payload;
	(void)len;
	(void)arg;
	r.model_version = 7;
	r.node = "tls";
	psf_rpc_reply(call, &r.base);
}

/* tls_server serves Health and ModelInfo on listen_url with the certificate
 * <who>.crt; with ca, clients need a certificate it signed. */
static psf_rpc_server *
tls_server(const char *who, const char *listen_url, const char *ca, const char *token, char *url,
    size_t len)
{
	char cert[128], key[128];
	psf_rpc_server_opts o = {.workers = 4, .token = token};
	psf_rpc_server *s;

	snprintf(cert, sizeof(cert), "%s/%s.crt", dir, who);
	snprintf(key, sizeof(key), "%s/%s.key", dir, who);
	o.tls.cert_file = cert;
	o.tls.key_file = key;
	o.tls.ca_file = ca;
	assert_int_equal(psf_rpc_server_new(&o, &s), PSF_OK);
	assert_int_equal(psf_rpc_server_add_raw(s, PSF_M_HEALTH,
	                     &psfleet__v1__health_reply__descriptor, health, NULL),
	    PSF_OK);
	assert_int_equal(psf_rpc_server_add_raw(s, PSF_M_MODEL_INFO,
	                     &psfleet__v1__model_info_reply__descriptor, model_info, NULL),
	    PSF_OK);
	assert_int_equal(psf_rpc_server_listen(s, listen_url, url, len), PSF_OK);
	assert_int_equal(psf_rpc_server_start(s), PSF_OK);
	return s;
}

/* health_with makes one Health call with client options o. Returns its error;
 * *st gets the status. */
static psf_err
health_with(const char *url, const psf_rpc_client_opts *o, uint32_t timeout_ms, psf_rpc_status *st)
{
	psf_rpc_call_opts co = {timeout_ms, 0, 0};
	Psfleet__V1__HealthRequest req = PSFLEET__V1__HEALTH_REQUEST__INIT;
	ProtobufCMessage *r = NULL;
	psf_rpc_client *c;
	psf_err err;

	memset(st, 0, sizeof(*st));
	assert_int_equal(psf_rpc_client_open(url, o, &c), PSF_OK);
	err = psf_rpc_client_call(c, PSF_M_HEALTH, &req.base,
	    &psfleet__v1__health_reply__descriptor, &co, &r, st);
	if (r != NULL)
		protobuf_c_message_free_unpacked(r, NULL);
	psf_rpc_client_close(c);
	return err;
}

/* call_health opens a client with the given TLS material, expected server name
 * (NULL = the URL's host) and token, and makes one Health call. */
static psf_err
call_health_named(const char *url, const char *ca, const char *name, const char *who,
    const char *token, uint32_t timeout_ms, psf_rpc_status *st)
{
	char cafile[128], cert[128], key[128];
	psf_rpc_client_opts o = {.token = token};

	if (ca != NULL) {
		path(cafile, sizeof(cafile), ca);
		o.tls.ca_file = cafile;
	}
	if (who != NULL) {
		snprintf(cert, sizeof(cert), "%s/%s.crt", dir, who);
		snprintf(key, sizeof(key), "%s/%s.key", dir, who);
		o.tls.cert_file = cert;
		o.tls.key_file = key;
	}
	o.tls.server_name = name;
	return health_with(url, &o, timeout_ms, st);
}

/* call_health: the same against the localhost certificate on 127.0.0.1. */
static psf_err
call_health(const char *url, const char *ca, const char *who, const char *token,
    uint32_t timeout_ms, psf_rpc_status *st)
{
	return call_health_named(url, ca, "localhost", who, token, timeout_ms, st);
}

static void
test_tls_server_auth_and_token(void **state)
{
	char url[256];
	psf_rpc_server *s =
	    tls_server("server", "tls+tcp://127.0.0.1:0", NULL, "s3cret-token", url, sizeof(url));
	psf_rpc_server_counts k;
	psf_rpc_status st;

	(void)state;
	/* The client verifies the server against the CA, and sends the token. */
	assert_int_equal(call_health(url, "ca.crt", NULL, "s3cret-token", 10000, &st), PSF_OK);
	/* Wrong and missing tokens: UNAUTHENTICATED, counted. */
	assert_int_equal(call_health(url, "ca.crt", NULL, "s3cret-tokem", 10000, &st), PSF_EAUTH);
	assert_int_equal(st.code, PSF_STATUS_UNAUTHENTICATED);
	assert_int_equal(call_health(url, "ca.crt", NULL, NULL, 10000, &st), PSF_EAUTH);
	assert_int_equal(st.code, PSF_STATUS_UNAUTHENTICATED);
	assert_int_equal(call_health(url, "ca.crt", NULL, "s3cret-token-and-more", 10000, &st),
	    PSF_EAUTH);
	/* A client that trusts another CA refuses this server: no reply at all. */
	assert_int_not_equal(call_health(url, "rogue.crt", NULL, "s3cret-token", 1500, &st),
	    PSF_OK);
	psf_rpc_server_get_counts(s, &k);
	assert_int_equal(k.unauthenticated, 3);
	psf_rpc_server_free(s);
}

static void
test_tls_mutual(void **state)
{
	char url[256], ca[128];
	psf_rpc_server *s;
	psf_rpc_server_counts k;
	psf_rpc_status st;

	(void)state;
	path(ca, sizeof(ca), "ca.crt");
	s = tls_server("server", "tls+tcp://127.0.0.1:0", ca, NULL, url, sizeof(url));
	assert_int_equal(call_health(url, "ca.crt", "client", NULL, 10000, &st), PSF_OK);
	/* No client certificate, or one from another CA: the handshake fails, no
	 * request is ever read (the call times out; NNG keeps redialing). */
	assert_int_not_equal(call_health(url, "ca.crt", NULL, NULL, 1500, &st), PSF_OK);
	assert_int_not_equal(call_health(url, "ca.crt", "badclient", NULL, 1500, &st), PSF_OK);
	/* Plain TCP to the TLS port: nothing served either. */
	{
		char plain[256];
		snprintf(plain, sizeof(plain), "tcp://%s", strstr(url, "://") + 3);
		psf_rpc_client *c;
		Psfleet__V1__HealthRequest req = PSFLEET__V1__HEALTH_REQUEST__INIT;
		ProtobufCMessage *r = NULL;
		psf_rpc_call_opts co = {1000, 0, 0};
		assert_int_equal(psf_rpc_client_open(plain, NULL, &c), PSF_OK);
		assert_int_not_equal(psf_rpc_client_call(c, PSF_M_HEALTH, &req.base,
		                         &psfleet__v1__health_reply__descriptor, &co, &r, &st),
		    PSF_OK);
		psf_rpc_client_close(c);
	}
	/* The right one still works after all that. */
	assert_int_equal(call_health(url, "ca.crt", "client", NULL, 10000, &st), PSF_OK);
	psf_rpc_server_get_counts(s, &k);
	assert_int_equal(k.conns_accepted, 2); /* only the two good clients got a pipe */
	psf_rpc_server_free(s);
}

/* The name a client expects: the server's certificate names only psfleet-node and
 * the client dials 127.0.0.1. Before tls_server_name, psfleet set no name at all on
 * its own TLS configs, and mbedTLS then checks none: every case below was served. */
static void
test_tls_server_name(void **state)
{
	char url[256];
	psf_rpc_server *s =
	    tls_server("named", "tls+tcp://127.0.0.1:0", NULL, NULL, url, sizeof(url));
	psf_rpc_server_counts k;
	psf_rpc_status st;

	(void)state;
	assert_non_null(strstr(url, "tls+tcp://127.0.0.1:"));
	assert_int_equal(call_health_named(url, "ca.crt", "psfleet-node", NULL, NULL, 10000, &st),
	    PSF_OK);
	/* No name: the URL's host, 127.0.0.1, is not in the certificate. */
	assert_int_not_equal(call_health_named(url, "ca.crt", NULL, NULL, NULL, 1500, &st), PSF_OK);
	/* A wrong name, and a right name for another server the same CA signed. */
	assert_int_not_equal(call_health_named(url, "ca.crt", "psfleet-nod", NULL, NULL, 1500, &st),
	    PSF_OK);
	assert_int_not_equal(call_health_named(url, "ca.crt", "localhost", NULL, NULL, 1500, &st),
	    PSF_OK);
	/* Without a CA nothing is verified, the name included (documented). */
	assert_int_equal(call_health_named(url, NULL, "wrong", NULL, NULL, 10000, &st), PSF_OK);
	/* The right name still works after the refusals. */
	assert_int_equal(call_health_named(url, "ca.crt", "psfleet-node", NULL, NULL, 10000, &st),
	    PSF_OK);
	psf_rpc_server_get_counts(s, &k);
	assert_int_equal(k.conns_accepted, 3); /* refused handshakes never became connections */
	psf_rpc_server_free(s);
}

/* Without tls_server_name the name is the URL's host: a server listening on
 * localhost with a certificate for localhost is served as tls+tcp://localhost. */
static void
test_tls_server_name_defaults_to_url_host(void **state)
{
	char url[256];
	psf_rpc_server *s =
	    tls_server("server", "tls+tcp://localhost:0", NULL, NULL, url, sizeof(url));
	psf_rpc_status st;

	(void)state;
	assert_non_null(strstr(url, "tls+tcp://localhost:"));
	assert_int_equal(call_health_named(url, "ca.crt", NULL, NULL, NULL, 10000, &st), PSF_OK);
	assert_int_not_equal(
	    call_health_named(url, "ca.crt", "psfleet-node", NULL, NULL, 1500, &st), PSF_OK);
	psf_rpc_server_free(s);
}

/* The config path every node's dialer takes (trainer -> ps, inferer -> ps,
 * gateway -> inferer, psfleet status/up): security.tls_server_name through
 * psf_runtime_client_opts. */
static void
test_tls_server_name_from_config(void **state)
{
	char text[1024], err[256], tok[256], url[256];
	const char *const names[] = {"\n  tls_server_name: psfleet-node", ""};
	psf_rpc_server *s =
	    tls_server("named", "tls+tcp://127.0.0.1:0", NULL, NULL, url, sizeof(url));
	psf_rpc_client_opts co;
	psf_rpc_status st;

	(void)state;
	for (size_t i = 0; i < PSF_ARRAY_LEN(names); i++) {
		psf_config *cfg;

		snprintf(text, sizeof(text),
		    "name: sec\nrun_dir: %s\nnodes:\n  ps:\n    - {id: ps0, listen: \"%s\"}\n"
		    "  trainers:\n    - {id: trainer-0}\ndata: {path: %s/none.csv}\n"
		    "features: [\"lag:0\"]\nsecurity:\n  tls_cert: %s/client.crt\n"
		    "  tls_key: %s/client.key\n  tls_ca: %s/ca.crt%s\n",
		    dir, url, dir, dir, dir, dir, names[i]);
		if (psf_config_parse("sec.yaml", text, strlen(text), err, sizeof(err), &cfg) !=
		    PSF_OK)
			fail_msg("config: %s", err);
		assert_int_equal(psf_runtime_client_opts(cfg, tok, sizeof(tok), &co), PSF_OK);
		if (i == 0) {
			assert_string_equal(co.tls.server_name, "psfleet-node");
			assert_int_equal(health_with(cfg->nodes[0].listen, &co, 10000, &st),
			    PSF_OK);
		} else {
			assert_null(co.tls.server_name);
			assert_int_not_equal(health_with(cfg->nodes[0].listen, &co, 1500, &st),
			    PSF_OK);
		}
		psf_config_free(cfg);
	}
	psf_rpc_server_free(s);
}

/* The public client library (libpsfleet_client): psf_client_opts.server_name. */
static void
test_tls_server_name_client_library(void **state)
{
	char url[256], ca[128], errbuf[256];
	psf_rpc_server *s =
	    tls_server("named", "tls+tcp://127.0.0.1:0", NULL, NULL, url, sizeof(url));
	psf_client_opts o = {.timeout_ms = 10000, .ca_file = ca, .server_name = "psfleet-node"};
	psf_model_info info;
	psf_client *c;

	(void)state;
	path(ca, sizeof(ca), "ca.crt");
	assert_int_equal(psf_client_open(url, &o, &c), PSF_CLIENT_OK);
	assert_int_equal(psf_client_model_info(c, errbuf, sizeof(errbuf), &info), PSF_CLIENT_OK);
	assert_string_equal(info.node, "tls");
	assert_int_equal(info.model_version, 7);
	psf_client_close(c);
	o.server_name = NULL; /* the URL's host, 127.0.0.1: refused */
	o.timeout_ms = 1500;
	assert_int_equal(psf_client_open(url, &o, &c), PSF_CLIENT_OK);
	assert_int_not_equal(psf_client_model_info(c, errbuf, sizeof(errbuf), &info),
	    PSF_CLIENT_OK);
	psf_client_close(c);
	o.server_name = "other-node";
	assert_int_equal(psf_client_open(url, &o, &c), PSF_CLIENT_OK);
	assert_int_not_equal(psf_client_model_info(c, errbuf, sizeof(errbuf), &info),
	    PSF_CLIENT_OK);
	psf_client_close(c);
	psf_rpc_server_free(s);
}

/* The client library against a server that wants client certificates (mutual
 * TLS): psf_client_opts.cert_file / key_file (psfleet predict --cert / --key). */
static void
test_tls_mutual_client_library(void **state)
{
	char url[256], ca[128], crt[128], key[128], errbuf[256];
	psf_rpc_server *s;
	psf_client_opts o = {.timeout_ms = 10000,
	    .ca_file = ca,
	    .server_name = "localhost",
	    .cert_file = crt,
	    .key_file = key};
	psf_model_info info;
	psf_client *c;

	(void)state;
	path(ca, sizeof(ca), "ca.crt");
	path(crt, sizeof(crt), "client.crt");
	path(key, sizeof(key), "client.key");
	s = tls_server("server", "tls+tcp://127.0.0.1:0", ca, NULL, url, sizeof(url));
	assert_int_equal(psf_client_open(url, &o, &c), PSF_CLIENT_OK);
	assert_int_equal(psf_client_model_info(c, errbuf, sizeof(errbuf), &info), PSF_CLIENT_OK);
	assert_int_equal(info.model_version, 7);
	psf_client_close(c);
	/* Without a client certificate the handshake fails: nothing is served. */
	o.cert_file = o.key_file = NULL;
	o.timeout_ms = 1500;
	assert_int_equal(psf_client_open(url, &o, &c), PSF_CLIENT_OK);
	assert_int_not_equal(psf_client_model_info(c, errbuf, sizeof(errbuf), &info),
	    PSF_CLIENT_OK);
	/* ... and the error says where to look (NNG itself reports nothing). */
	assert_non_null(strstr(errbuf, "TLS handshake failed"));
	psf_client_close(c);
	/* A certificate without its key is a caller's error, not a silent plain dial. */
	o.cert_file = crt;
	assert_int_equal(psf_client_open(url, &o, &c), PSF_CLIENT_INVALID_ARGUMENT);
	psf_rpc_server_free(s);
}

/* http_get fetches http://127.0.0.1:port/path into buf (raw response). */
static size_t
http_get(int port, const char *what, char *buf, size_t len)
{
	struct sockaddr_in a = {0};
	char req[256];
	size_t n = 0;
	ssize_t got;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", what);
	assert_int_equal(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
	while (n + 1 < len && (got = recv(fd, buf + n, len - 1 - n, 0)) > 0)
		n += (size_t)got;
	buf[n] = '\0';
	close(fd);
	return n;
}

/* refused tells whether a TCP connect to addr:port is refused. */
static int
refused(const char *addr, int port)
{
	struct sockaddr_in a = {0};
	int fd = socket(AF_INET, SOCK_STREAM, 0), rv;

	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, addr, &a.sin_addr);
	rv = connect(fd, (struct sockaddr *)&a, sizeof(a));
	close(fd);
	return rv != 0 && errno == ECONNREFUSED;
}

/* The node's path: token from token_env (or token_file) in the config, counted
 * on /metrics; listeners bound to the configured address only. */
static void
node_token_case(const char *security_yaml)
{
	char text[1024], err[256], tok[256], url[256], body[16384];
	psf_config *cfg;
	psf_rpc_server_opts so;
	psf_rpc_server *s;
	psf_runtime *n;
	psf_rpc_status st;
	int port;

	snprintf(text, sizeof(text),
	    "name: sec\nrun_dir: %s\nnodes:\n  ps:\n    - {id: ps0, listen: \"tcp://127.0.0.1:0\"}\n"
	    "  trainers:\n    - {id: trainer-0}\ndata: {path: %s/none.csv}\n"
	    "features: [\"lag:0\"]\nsecurity: %s\n",
	    dir, dir, security_yaml);
	if (psf_config_parse("sec.yaml", text, strlen(text), err, sizeof(err), &cfg) != PSF_OK)
		fail_msg("config: %s", err);
	assert_int_equal(psf_runtime_server_opts(cfg, tok, sizeof(tok), &so), PSF_OK);
	assert_string_equal(so.token, "from-the-config-source");
	assert_int_equal(psf_runtime_new("ps0", "ps", "127.0.0.1:0", &n), PSF_OK);
	assert_int_equal(psf_rpc_server_new(&so, &s), PSF_OK);
	assert_int_equal(psf_rpc_server_add_raw(s, PSF_M_HEALTH,
	                     &psfleet__v1__health_reply__descriptor, health, NULL),
	    PSF_OK);
	psf_runtime_observe_rpc(n, s);
	assert_int_equal(psf_rpc_server_listen(s, "tcp://127.0.0.1:0", url, sizeof(url)), PSF_OK);
	assert_int_equal(psf_rpc_server_start(s), PSF_OK);
	assert_int_equal(call_health(url, NULL, NULL, "from-the-config-source", 10000, &st),
	    PSF_OK);
	assert_int_equal(call_health(url, NULL, NULL, "guess", 10000, &st), PSF_EAUTH);
	assert_int_equal(call_health(url, NULL, NULL, NULL, 10000, &st), PSF_EAUTH);
	http_get(psf_runtime_http_port(n), "/metrics", body, sizeof(body));
	assert_non_null(strstr(body, "\npsfleet_rpc_unauthenticated_total 2\n"));
	assert_non_null(strstr(body, "\npsfleet_rpc_connections "));
	/* Bound to 127.0.0.1 only: another loopback address is refused. The RPC port
	 * answered on 127.0.0.1 above; the control for refused() is the HTTP port.
	 * Not the RPC port: a bare TCP connection that is still in NNG's SP header
	 * exchange when the socket closes leaks the listener in NNG 1.5.2
	 * (tcptran_pipe_nego_cb does not check ep->closed and restarts I/O on a
	 * closed aio, which then never completes; docs/reliability.md). */
	port = atoi(strrchr(url, ':') + 1);
	assert_true(refused("127.0.0.2", port));
	assert_true(refused("127.0.0.2", psf_runtime_http_port(n)));
	assert_false(refused("127.0.0.1", psf_runtime_http_port(n)));
	psf_rpc_server_free(s);
	psf_runtime_free(n);
	psf_config_free(cfg);
}

static void
test_tls_token_from_env_counted(void **state)
{
	(void)state;
	setenv("PSF_TEST_TOKEN", "from-the-config-source", 1);
	node_token_case("{token_env: PSF_TEST_TOKEN}");
	unsetenv("PSF_TEST_TOKEN");
}

static void
test_tls_token_from_file_counted(void **state)
{
	char file[128], yaml[256];
	FILE *f;

	(void)state;
	path(file, sizeof(file), "token");
	f = fopen(file, "w");
	assert_non_null(f);
	fputs("from-the-config-source\n", f);
	fclose(f);
	snprintf(yaml, sizeof(yaml), "{token_file: %s}", file);
	node_token_case(yaml);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tls_server_auth_and_token),
	    cmocka_unit_test(test_tls_mutual),
	    cmocka_unit_test(test_tls_server_name),
	    cmocka_unit_test(test_tls_server_name_defaults_to_url_host),
	    cmocka_unit_test(test_tls_server_name_from_config),
	    cmocka_unit_test(test_tls_server_name_client_library),
	    cmocka_unit_test(test_tls_mutual_client_library),
	    cmocka_unit_test(test_tls_token_from_env_counted),
	    cmocka_unit_test(test_tls_token_from_file_counted),
	};
	int rv;

	snprintf(dir, sizeof(dir), "/tmp/psf-tls-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 1;
	if (make_pki() != 0) {
		fprintf(stderr,
		    "tls_test: skipped: cannot make certificates with the openssl CLI\n");
		if (psf_rm_rf(dir) != PSF_OK)
			return 1;
		return 77;
	}
	rv = cmocka_run_group_tests(tests, NULL, NULL);
	/* NNG releases servers (HTTP ones especially) on its own threads: let them
	 * finish before LeakSanitizer looks at the heap at exit. */
	nng_fini();
	if (psf_rm_rf(dir) != PSF_OK)
		return 1;
	return rv;
}
