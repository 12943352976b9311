#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <nng/nng.h>

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/http_client.h"
#include "lib/runtime/http.h"
#include "lib/runtime/metrics.h"

#define TIMEOUT_MS 5000

/* render renders reg into *text (the caller's variable, which it frees). Not a
 * "return text" helper: its own local's address would escape into
 * psf_metrics_render, and once inlined at -O3 GCC 12 can no longer tell the
 * returned buffer from that dead local (-Werror=dangling-pointer on every strstr
 * into the text). */
static void
render(psf_metrics *reg, char **text)
{
	size_t len = 0;

	*text = NULL;
	assert_int_equal(psf_metrics_render(reg, text, &len), PSF_OK);
	assert_non_null(*text);
	assert_int_equal(len, strlen(*text));
}

static void
test_metrics_render_exact_text(void **state)
{
	psf_metrics *reg = NULL;
	psf_counter *push = NULL, *pull = NULL;
	psf_gauge *ver = NULL;
	psf_hist *lat = NULL;
	const psf_label push_l[] = {{"status", "OK"}, {"method", "Push"}};
	const psf_label pull_l[] = {{"method", "Pull"}, {"status", "OK"}};
	const psf_label odd_l[] = {{"path", "a\\b\"c\nd"}};
	const double bounds[] = {0.001, 0.01, 0.1};
	char *text;

	(void)state;
	assert_int_equal(psf_metrics_new(&reg), PSF_OK);
	assert_int_equal(
	    psf_metrics_counter(reg, "rpc_requests_total", "Requests served.", push_l, 2, &push),
	    PSF_OK);
	assert_int_equal(
	    psf_metrics_counter(reg, "rpc_requests_total", "Requests served.", pull_l, 2, &pull),
	    PSF_OK);
	assert_int_equal(
	    psf_metrics_gauge(reg, "model_version", "Model version\nserved.", NULL, 0, &ver),
	    PSF_OK);
	assert_int_equal(
	    psf_metrics_hist(reg, "rpc_latency_seconds", "Latency.", odd_l, 1, bounds, 3, &lat),
	    PSF_OK);
	psf_counter_add(push, 5);
	psf_counter_inc(pull);
	psf_gauge_set(ver, 42);
	psf_gauge_add(ver, 0.5);
	psf_hist_observe(lat, 0.0005);
	psf_hist_observe(lat, 0.05);
	psf_hist_observe(lat, 3);
	render(reg, &text);
	assert_string_equal(text,
	    "# HELP model_version Model version\\nserved.\n"
	    "# TYPE model_version gauge\n"
	    "model_version 42.5\n"
	    "# HELP rpc_latency_seconds Latency.\n"
	    "# TYPE rpc_latency_seconds histogram\n"
	    "rpc_latency_seconds_bucket{path=\"a\\\\b\\\"c\\nd\",le=\"0.001\"} 1\n"
	    "rpc_latency_seconds_bucket{path=\"a\\\\b\\\"c\\nd\",le=\"0.01\"} 1\n"
	    "rpc_latency_seconds_bucket{path=\"a\\\\b\\\"c\\nd\",le=\"0.1\"} 2\n"
	    "rpc_latency_seconds_bucket{path=\"a\\\\b\\\"c\\nd\",le=\"+Inf\"} 3\n"
	    "rpc_latency_seconds_sum{path=\"a\\\\b\\\"c\\nd\"} 3.0505\n"
	    "rpc_latency_seconds_count{path=\"a\\\\b\\\"c\\nd\"} 3\n"
	    "# HELP rpc_requests_total Requests served.\n"
	    "# TYPE rpc_requests_total counter\n"
	    "rpc_requests_total{method=\"Pull\",status=\"OK\"} 1\n"
	    "rpc_requests_total{method=\"Push\",status=\"OK\"} 5\n");
	free(text);
	psf_metrics_free(reg);
}

static void
test_metrics_register_is_idempotent_and_checked(void **state)
{
	psf_metrics *reg = NULL;
	psf_counter *a = NULL, *b = NULL, *c = NULL;
	psf_gauge *g = NULL;
	psf_hist *h = NULL;
	const psf_label ab[] = {{"a", "1"}, {"b", "2"}};
	const psf_label ba[] = {{"b", "2"}, {"a", "1"}};
	const psf_label dup[] = {{"a", "1"}, {"a", "2"}};
	const psf_label five[] = {{"a", "1"}, {"b", "1"}, {"c", "1"}, {"d", "1"}, {"e", "1"}};
	const psf_label le[] = {{"le", "1"}};
	const psf_label bad[] = {{"__x", "1"}};
	const double bounds[] = {1, 2}, unsorted[] = {2, 1}, other[] = {1, 3};

	(void)state;
	assert_int_equal(psf_metrics_new(&reg), PSF_OK);
	assert_int_equal(psf_metrics_counter(reg, "x_total", "X.", ab, 2, &a), PSF_OK);
	assert_int_equal(psf_metrics_counter(reg, "x_total", "X.", ba, 2, &b), PSF_OK);
	assert_ptr_equal(a, b); /* label order does not make a new series */
	assert_int_equal(psf_metrics_gauge(reg, "x_total", "X.", NULL, 0, &g), PSF_EEXIST);
	assert_int_equal(psf_metrics_counter(reg, "1x", "", NULL, 0, &c), PSF_EINVAL);
	assert_int_equal(psf_metrics_counter(reg, "x-y", "", NULL, 0, &c), PSF_EINVAL);
	assert_int_equal(psf_metrics_counter(reg, NULL, "", NULL, 0, &c), PSF_EINVAL);
	assert_int_equal(psf_metrics_counter(reg, "y", "", dup, 2, &c), PSF_EINVAL);
	assert_int_equal(psf_metrics_counter(reg, "y", "", five, 5, &c), PSF_EINVAL);
	assert_int_equal(psf_metrics_counter(reg, "y", "", bad, 1, &c), PSF_EINVAL);
	assert_int_equal(psf_metrics_counter(reg, "y", "", NULL, 1, &c), PSF_EINVAL);
	assert_null(c); /* never written on failure */
	assert_int_equal(psf_metrics_hist(reg, "h", "", le, 1, bounds, 2, &h), PSF_EINVAL);
	assert_int_equal(psf_metrics_hist(reg, "h", "", NULL, 0, unsorted, 2, &h), PSF_EINVAL);
	assert_int_equal(psf_metrics_hist(reg, "h", "", NULL, 0, bounds, 0, &h), PSF_EINVAL);
	assert_int_equal(psf_metrics_hist(reg, "h", "", NULL, 0, bounds, 2, &h), PSF_OK);
	assert_int_equal(psf_metrics_hist(reg, "h", "", ab, 2, other, 2, &h), PSF_EEXIST);
	assert_int_equal(psf_metrics_counter(reg, "y", "", le, 1, &c), PSF_OK);
	psf_metrics_free(reg);
	psf_metrics_free(NULL);
}

#define N_THREADS 4
#define N_INCS 200000

typedef struct worker_arg {
	psf_counter *c;
	psf_gauge *g;
	psf_hist *h;
} worker_arg;

static void *
worker(void *p)
{
	worker_arg *w = p;

	for (int i = 0; i < N_INCS; i++) {
		psf_counter_inc(w->c);
		psf_gauge_add(w->g, 1.0);
		if (i % 100 == 0)
			psf_hist_observe(w->h, 0.5);
	}
	return NULL;
}

static void
test_metrics_concurrent_updates_sum_exactly(void **state)
{
	psf_metrics *reg = NULL;
	worker_arg w = {NULL, NULL, NULL};
	pthread_t th[N_THREADS];
	const double bounds[] = {1};
	char *text, want[256];

	(void)state;
	assert_int_equal(psf_metrics_new(&reg), PSF_OK);
	assert_int_equal(psf_metrics_counter(reg, "c_total", "", NULL, 0, &w.c), PSF_OK);
	assert_int_equal(psf_metrics_gauge(reg, "g", "", NULL, 0, &w.g), PSF_OK);
	assert_int_equal(psf_metrics_hist(reg, "h", "", NULL, 0, bounds, 1, &w.h), PSF_OK);
	for (int i = 0; i < N_THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, worker, &w), 0);
	for (int i = 0; i < N_THREADS; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(psf_counter_value(w.c), (uint64_t)N_THREADS * N_INCS);
	assert_true(psf_gauge_value(w.g) == (double)N_THREADS * N_INCS);
	render(reg, &text);
	snprintf(want, sizeof(want), "c_total %d\n", N_THREADS * N_INCS);
	assert_non_null(strstr(text, want));
	snprintf(want, sizeof(want), "h_count %d\n", N_THREADS * N_INCS / 100);
	assert_non_null(strstr(text, want));
	free(text);
	psf_metrics_free(reg);
}

static void
test_metrics_hist_buckets_are_cumulative(void **state)
{
	psf_metrics *reg = NULL;
	psf_hist *h = NULL;
	size_t n;
	const double *b = psf_metrics_latency_bounds(&n);
	const double obs[] = {0.00005, 0.0001, 0.0002, 0.003, 0.003, 0.7, 10, 11, NAN};
	char *text;

	(void)state;
	assert_int_equal(n, 16);
	assert_true(b[0] == 0.0001 && b[n - 1] == 10);
	assert_int_equal(psf_metrics_new(&reg), PSF_OK);
	assert_int_equal(psf_metrics_hist(reg, "lat_seconds", "", NULL, 0, b, n, &h), PSF_OK);
	for (size_t i = 0; i < PSF_ARRAY_LEN(obs); i++)
		psf_hist_observe(h, obs[i]);
	render(reg, &text);
	/* An observation equal to a bound counts in that bucket (le is <=). */
	assert_non_null(strstr(text, "lat_seconds_bucket{le=\"0.0001\"} 2\n"));
	assert_non_null(strstr(text, "lat_seconds_bucket{le=\"0.00025\"} 3\n"));
	assert_non_null(strstr(text, "lat_seconds_bucket{le=\"0.0025\"} 3\n"));
	assert_non_null(strstr(text, "lat_seconds_bucket{le=\"0.005\"} 5\n"));
	assert_non_null(strstr(text, "lat_seconds_bucket{le=\"1\"} 6\n"));
	assert_non_null(strstr(text, "lat_seconds_bucket{le=\"10\"} 7\n"));
	assert_non_null(strstr(text, "lat_seconds_bucket{le=\"+Inf\"} 8\n"));
	assert_non_null(strstr(text, "lat_seconds_count 8\n")); /* NaN ignored */
	assert_non_null(strstr(text, "lat_seconds_sum 21.70635\n"));
	free(text);
	psf_metrics_free(reg);
}

static double
read_counter_fn(void *arg)
{
	return (double)atomic_load((_Atomic int *)arg);
}

static double
parse_sample(const char *text, const char *name)
{
	char key[128];
	const char *p;

	snprintf(key, sizeof(key), "\n%s ", name);
	if ((p = strstr(text, key)) == NULL)
		return NAN;
	return strtod(p + strlen(key), NULL);
}

static void
test_metrics_gauge_fn_and_process_metrics(void **state)
{
	psf_metrics *reg = NULL;
	_Atomic int v = 7;
	char *text;

	(void)state;
	assert_int_equal(psf_metrics_new(&reg), PSF_OK);
	assert_int_equal(psf_metrics_gauge_fn(reg, "cb_value", "", NULL, 0, read_counter_fn, &v),
	    PSF_OK);
	assert_int_equal(psf_metrics_gauge_fn(reg, "cb_value", "", NULL, 0, read_counter_fn, &v),
	    PSF_EEXIST);
	assert_int_equal(psf_metrics_add_process(reg), PSF_OK);
	assert_int_equal(psf_metrics_add_process(reg), PSF_EEXIST);
	render(reg, &text);
	assert_true(parse_sample(text, "cb_value") == 7);
	assert_true(parse_sample(text, "process_resident_memory_bytes") > 1e5);
	assert_true(parse_sample(text, "process_open_fds") >= 3); /* stdio at least */
	assert_true(parse_sample(text, "process_uptime_seconds") >= 0);
	assert_non_null(strstr(text, "# TYPE process_open_fds gauge\n"));
	free(text);
	v = 8; /* evaluated at scrape time */
	render(reg, &text);
	assert_true(parse_sample(text, "cb_value") == 8);
	free(text);
	psf_metrics_free(reg);
}

/* --- HTTP endpoint --- */

typedef struct health_state {
	_Atomic bool is_ready;
	_Atomic int calls;
} health_state;

static bool
health_cb(void *arg, char *reason, size_t len)
{
	health_state *hs = arg;

	atomic_fetch_add(&hs->calls, 1);
	if (atomic_load(&hs->is_ready))
		return true;
	snprintf(reason, len, "loading snapshot\nsecond line");
	return false;
}

static void
local_addr(const psf_http *h, char *buf, size_t len)
{
	snprintf(buf, len, "127.0.0.1:%u", (unsigned)psf_http_port(h));
}

static void
test_http_serves_metrics(void **state)
{
	psf_metrics *reg = NULL;
	psf_http *h = NULL;
	psf_counter *c = NULL;
	psf_http_reply r;
	char addr[64], *text;

	(void)state;
	assert_int_equal(psf_metrics_new(&reg), PSF_OK);
	assert_int_equal(psf_metrics_counter(reg, "req_total", "Requests.", NULL, 0, &c), PSF_OK);
	psf_counter_add(c, 3);
	assert_int_equal(psf_http_open("127.0.0.1:0", reg, NULL, NULL, &h), PSF_OK);
	assert_true(psf_http_port(h) != 0);
	local_addr(h, addr, sizeof(addr));
	assert_int_equal(psf_http_request(addr, "GET", "/metrics", TIMEOUT_MS, &r), PSF_OK);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.content_type, "text/plain; version=0.0.4");
	render(reg, &text);
	assert_string_equal(r.body, text);
	assert_non_null(strstr(r.body, "\nreq_total 3\n"));
	free(text);
	psf_http_reply_fini(&r);
	/* HEAD: same status, no body. */
	assert_int_equal(psf_http_request(addr, "HEAD", "/metrics", TIMEOUT_MS, &r), PSF_OK);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, 0);
	psf_http_reply_fini(&r);
	psf_http_close(h);
	psf_metrics_free(reg);
}

static void
test_http_healthz_follows_callback(void **state)
{
	health_state hs = {false, 0};
	psf_http *h = NULL;
	char addr[64], *body = NULL;
	int status = 0;

	(void)state;
	assert_int_equal(psf_http_open("127.0.0.1:0", NULL, health_cb, &hs, &h), PSF_OK);
	local_addr(h, addr, sizeof(addr));
	assert_int_equal(psf_http_get(addr, "/healthz", TIMEOUT_MS, &status, &body), PSF_OK);
	assert_int_equal(status, 503);
	assert_string_equal(body, "not ready: loading snapshot\n");
	free(body);
	atomic_store(&hs.is_ready, true);
	assert_int_equal(psf_http_get(addr, "/healthz", TIMEOUT_MS, &status, &body), PSF_OK);
	assert_int_equal(status, 200);
	assert_string_equal(body, "ok\n");
	free(body);
	assert_int_equal(atomic_load(&hs.calls), 2);
	/* No registry: /metrics is served, empty. */
	assert_int_equal(psf_http_get(addr, "/metrics", TIMEOUT_MS, &status, &body), PSF_OK);
	assert_int_equal(status, 200);
	assert_string_equal(body, "");
	free(body);
	psf_http_close(h);
}

static void
test_http_unknown_path_and_method(void **state)
{
	psf_http *h = NULL;
	psf_http_reply r;
	char addr[64];
	int status = 0;

	(void)state;
	assert_int_equal(psf_http_open("127.0.0.1:0", NULL, NULL, NULL, &h), PSF_OK);
	local_addr(h, addr, sizeof(addr));
	assert_int_equal(psf_http_get(addr, "/nope", TIMEOUT_MS, &status, NULL), PSF_OK);
	assert_int_equal(status, 404);
	assert_int_equal(psf_http_get(addr, "/metrics/x", TIMEOUT_MS, &status, NULL), PSF_OK);
	assert_int_equal(status, 404);
	assert_int_equal(psf_http_request(addr, "POST", "/metrics", TIMEOUT_MS, &r), PSF_OK);
	assert_int_equal(r.status, 405);
	psf_http_reply_fini(&r);
	/* Query strings are ignored by the router. */
	assert_int_equal(psf_http_get(addr, "/healthz?x=1", TIMEOUT_MS, &status, NULL), PSF_OK);
	assert_int_equal(status, 200);
	psf_http_close(h);
}

static void
test_http_open_rejects_bad_addresses(void **state)
{
	const char *bad[] = {NULL, "", "nonsense", "127.0.0.1", "127.0.0.1:", "127.0.0.1:x",
	    "127.0.0.1:99999", "::1:80", "host/x:80", "[::1:80", "a b:80"};
	psf_http *h = NULL, *h2 = NULL;
	char addr[64];

	(void)state;
	for (size_t i = 0; i < PSF_ARRAY_LEN(bad); i++)
		assert_int_equal(psf_http_open(bad[i], NULL, NULL, NULL, &h), PSF_EINVAL);
	assert_null(h);
	assert_int_equal(psf_http_open("127.0.0.1:0", NULL, NULL, NULL, &h), PSF_OK);
	local_addr(h, addr, sizeof(addr));
	/* The same address twice in one process is refused, and the first
	 * endpoint keeps serving. */
	assert_int_equal(psf_http_open(addr, NULL, NULL, NULL, &h2), PSF_EEXIST);
	assert_null(h2);
	int status = 0;
	assert_int_equal(psf_http_get(addr, "/healthz", TIMEOUT_MS, &status, NULL), PSF_OK);
	assert_int_equal(status, 200);
	psf_http_close(h);
	psf_http_close(NULL);
}

static void
test_http_close_releases_and_stops_serving(void **state)
{
	psf_metrics *reg = NULL;
	psf_http *h = NULL;
	char addr[64];
	int status = 0, idle;
	struct sockaddr_in sa = {.sin_family = AF_INET};

	(void)state;
	assert_int_equal(psf_metrics_new(&reg), PSF_OK);
	assert_int_equal(psf_metrics_add_process(reg), PSF_OK);
	for (int round = 0; round < 10; round++) {
		assert_int_equal(psf_http_open("127.0.0.1:0", reg, NULL, NULL, &h), PSF_OK);
		local_addr(h, addr, sizeof(addr));
		assert_int_equal(psf_http_get(addr, "/metrics", TIMEOUT_MS, &status, NULL), PSF_OK);
		assert_int_equal(status, 200);
		/* An idle client connection must not keep close from returning. */
		sa.sin_port = htons(psf_http_port(h));
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		idle = socket(AF_INET, SOCK_STREAM, 0);
		assert_true(idle >= 0);
		assert_int_equal(connect(idle, (struct sockaddr *)&sa, sizeof(sa)), 0);
		psf_http_close(h);
		close(idle);
		assert_int_equal(psf_http_get(addr, "/metrics", TIMEOUT_MS, &status, NULL),
		    PSF_EUNAVAIL);
	}
	psf_metrics_free(reg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_metrics_render_exact_text),
	    cmocka_unit_test(test_metrics_register_is_idempotent_and_checked),
	    cmocka_unit_test(test_metrics_concurrent_updates_sum_exactly),
	    cmocka_unit_test(test_metrics_hist_buckets_are_cumulative),
	    cmocka_unit_test(test_metrics_gauge_fn_and_process_metrics),
	    cmocka_unit_test(test_http_serves_metrics),
	    cmocka_unit_test(test_http_healthz_follows_callback),
	    cmocka_unit_test(test_http_unknown_path_and_method),
	    cmocka_unit_test(test_http_open_rejects_bad_addresses),
	    cmocka_unit_test(test_http_close_releases_and_stops_serving),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);

	/* NNG releases servers (HTTP ones especially) on its own threads: let them
	 * finish before LeakSanitizer looks at the heap at exit. */
	nng_fini();
	return failed;
}
