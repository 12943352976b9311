/* A full store: LMDB's map at its maximum (store API) and a full disk under a real
 * ps process (a tiny tmpfs this test mounts, as root). Either way a write fails
 * with a clear status (PSF_ENOSPC / RESOURCE_EXHAUSTED), nothing is half-written
 * (reopen works, earlier data intact, the failed push is not recorded), and writing
 * resumes once there is room (a bigger max map, a bigger filesystem).
 * The tmpfs cases are skipped (with a line saying so) where mounting is refused. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli/http_client.h"
#include "lib/base/util.h"
#include "lib/config/config.h"
#include "lib/model/model.h"
#include "lib/net/methods.h"
#include "lib/net/rpc_client.h"
#include "ps/store.h"

#include "tests/integration/itest.h"

/* ------------------------------------------------------------ store: map full */

typedef struct fill {
	uint64_t first, n; /* keys first .. first + n - 1 */
	uint32_t floats;
} fill;

static psf_err
fill_txn(psf_store_txn *txn, void *arg)
{
	fill *f = arg;
	float buf[1024];
	psf_err err = PSF_OK;

	for (uint64_t k = f->first; k < f->first + f->n && err == PSF_OK; k++) {
		for (uint32_t j = 0; j < f->floats; j++)
			buf[j] = (float)k + (float)j / 1024.0f;
		err = psf_store_txn_put_floats(txn, PSF_STORE_WEIGHTS, k, buf, f->floats);
	}
	return err;
}

static psf_err
check_txn(psf_store_txn *txn, void *arg)
{
	fill *f = arg;
	const void *data;
	size_t len;

	for (uint64_t k = f->first; k < f->first + f->n; k++) {
		psf_err err = psf_store_txn_get(txn, PSF_STORE_WEIGHTS, k, &data, &len);
		if (err != PSF_OK)
			return err;
		if (len != f->floats * sizeof(float))
			return PSF_ERANGE;
		for (uint32_t j = 0; j < f->floats; j++) {
			float v;
			memcpy(&v, (const uint8_t *)data + j * sizeof(float), sizeof(v));
			if (v != (float)k + (float)j / 1024.0f)
				return PSF_ERANGE;
		}
	}
	return PSF_OK;
}

static psf_err
absent_txn(psf_store_txn *txn, void *arg)
{
	fill *f = arg;
	const void *data;
	size_t len;

	for (uint64_t k = f->first; k < f->first + f->n; k++)
		if (psf_store_txn_get(txn, PSF_STORE_WEIGHTS, k, &data, &len) != PSF_ENOENT)
			return PSF_EEXIST;
	return PSF_OK;
}

static void
test_store_map_full_then_bigger_map(void **state)
{
	char dir[64];
	psf_store_opts o = {PSF_DUR_EVERY_COMMIT, 0, 256 << 10, 1 << 20, 0};
	psf_store *st;
	fill f = {1, 64, 1024}; /* 256 KiB of values per update */
	uint64_t batches = 0;
	psf_err err;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/psf-mapfull-XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(psf_store_open(dir, &o, &st), PSF_OK);
	/* Grows 256 KiB -> 512 KiB -> 1 MiB, then refuses. */
	while ((err = psf_store_update(st, fill_txn, &f)) == PSF_OK) {
		batches++;
		f.first += f.n;
		assert_true(batches < 64);
	}
	assert_int_equal(err, PSF_ENOSPC);
	assert_true(batches >= 1);
	print_message("map full after %llu updates of 256 KiB at max_map_size 1 MiB\n",
	    (unsigned long long)batches);
	/* Nothing of the failed update is visible; everything before is intact. */
	assert_int_equal(psf_store_read(st, absent_txn, &f), PSF_OK);
	fill before = {1, f.first - 1, 1024};
	assert_int_equal(psf_store_read(st, check_txn, &before), PSF_OK);
	psf_store_close(st);

	/* Reopen with the same limit: intact, still full. */
	assert_int_equal(psf_store_open(dir, &o, &st), PSF_OK);
	assert_int_equal(psf_store_read(st, check_txn, &before), PSF_OK);
	assert_int_equal(psf_store_update(st, fill_txn, &f), PSF_ENOSPC);
	psf_store_close(st);

	/* Room again: a bigger max map on restart. */
	o.max_map_size = 8 << 20;
	assert_int_equal(psf_store_open(dir, &o, &st), PSF_OK);
	assert_int_equal(psf_store_update(st, fill_txn, &f), PSF_OK);
	fill all = {1, f.first + f.n - 1, 1024};
	assert_int_equal(psf_store_read(st, check_txn, &all), PSF_OK);
	psf_store_close(st);
	assert_int_equal(psf_rm_rf(dir), PSF_OK);
}

/* ---------------------------------------------------- a ps on a full tmpfs */

typedef struct pscase {
	psf_itest_dir d; /* its dir, fleet.yaml and ps0's url */
	char mnt[96];
	bool mounted;
	pid_t ps;
	psf_config *config;
	psf_model *model;
	uint64_t emb_tensor;
	uint32_t emb_len;
	psf_rpc_client *c;
} pscase;

static pscase *live;

static pid_t
spawn_ps(pscase *p)
{
	return psf_itest_spawn_node(p->d.dir, p->d.cfg, "ps0", NULL, NULL);
}

static void
case_cleanup(pscase *p)
{
	psf_rpc_client_close(p->c);
	p->c = NULL;
	psf_itest_stop(&p->ps, SIGKILL);
	if (p->mounted && umount2(p->mnt, MNT_DETACH) == 0)
		p->mounted = false;
	psf_model_free(p->model);
	p->model = NULL;
	psf_config_free(p->config);
	p->config = NULL;
	if (p->d.dir[0] != '\0' && getenv("PSF_KEEP") == NULL && psf_rm_rf(p->d.dir) != PSF_OK)
		fprintf(stderr, "store_full_test: cannot remove %s\n", p->d.dir);
	p->d.dir[0] = '\0';
}

static int
teardown(void **state)
{
	(void)state;
	if (live != NULL)
		case_cleanup(live);
	live = NULL;
	return 0;
}

/* case_setup mounts a tmpfs of size_kib and writes a config whose ps keeps its
 * LMDB there. Returns false (the caller skips) when the mount is refused. */
static bool
case_setup_mode(pscase *p, const char *durability, unsigned size_kib, const char *mode,
    const char *metrics)
{
	char opts[64], err[256], metrics_kv[64] = "";
	FILE *f;

	memset(p, 0, sizeof(*p));
	live = p;
	psf_itest_dir_make(&p->d, "diskfull");
	snprintf(p->mnt, sizeof(p->mnt), "%s/mnt", p->d.dir);
	assert_int_equal(mkdir(p->mnt, 0755), 0);
	snprintf(opts, sizeof(opts), "size=%uk,mode=0755", size_kib);
	if (mount("psf-test", p->mnt, "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0) {
		print_message("skipped: cannot mount a tmpfs here (needs root): %s\n",
		    strerror(errno));
		return false;
	}
	p->mounted = true;
	f = fopen(p->d.cfg, "w");
	assert_non_null(f);
	if (metrics != NULL)
		snprintf(metrics_kv, sizeof(metrics_kv), ", metrics: \"%s\"", metrics);
	fprintf(f,
	    "name: full\nseed: 5\nrun_dir: %s\nnodes:\n"
	    "  ps:\n    - {id: ps0, listen: \"%s\", data_dir: %s/ps0%s}\n"
	    "  trainers:\n    - {id: trainer-0}\n"
	    "data: {path: %s/none.csv}\n"
	    "features: [\"lag:0\", \"lag:1\"]\n"
	    "model: {kind: linear, embedding_dim: 64}\n"
	    "optimizer: {kind: adam, learning_rate: 0.01}\n"
	    "consistency: {mode: %s, straggler_timeout_ms: 600000}\n"
	    "durability: {mode: %s, map_size: 1048576}\n"
	    "limits: {request_timeout_ms: 5000}\n",
	    p->d.dir, p->d.url, p->mnt, metrics_kv, p->d.dir, mode, durability);
	fclose(f);
	if (psf_config_load(p->d.cfg, err, sizeof(err), &p->config) != PSF_OK)
		fail_msg("config: %s", err);
	assert_int_equal(psf_model_new(&p->config->model, (uint32_t)p->config->n_features,
	                     p->config->target, p->config->seed, &p->model),
	    PSF_OK);
	for (size_t i = 0; i < psf_model_n_tensors(p->model); i++) {
		psf_tensor_info t;
		assert_int_equal(psf_model_tensor_info(p->model, i, &t), PSF_OK);
		if (t.is_per_symbol && t.cols > p->emb_len) {
			p->emb_tensor = t.id;
			p->emb_len = t.cols;
		}
	}
	assert_int_equal(p->emb_len, 64);
	p->ps = spawn_ps(p);
	assert_int_equal(psf_rpc_client_open(p->d.url, NULL, &p->c), PSF_OK);
	return true;
}

static bool
case_setup(pscase *p, const char *durability, unsigned size_kib)
{
	return case_setup_mode(p, durability, size_kib, "async", NULL);
}

static psf_err
call(pscase *p, const char *method, const ProtobufCMessage *req,
    const ProtobufCMessageDescriptor *rd, ProtobufCMessage **out, psf_rpc_status *st)
{
	psf_rpc_call_opts o = {10000, 1, 0}; /* retried while the ps starts */
	ProtobufCMessage *r = NULL;
	psf_err err = psf_rpc_client_call(p->c, method, req, rd, &o, &r, st);

	if (out != NULL)
		*out = r;
	else if (r != NULL)
		protobuf_c_message_free_unpacked(r, NULL);
	return err;
}

static void
register_worker(pscase *p)
{
	Psfleet__V1__RegisterRequest reg = PSFLEET__V1__REGISTER_REQUEST__INIT;
	psf_rpc_status st;

	reg.worker = "trainer-0";
	assert_int_equal(
	    call(p, PSF_M_REGISTER, &reg.base, &psfleet__v1__register_reply__descriptor, NULL, &st),
	    PSF_OK);
}

#define ROWS_PER_PUSH 1024

/* push_rows pushes gradients for ROWS_PER_PUSH new symbol rows (batch b) as seq. */
static psf_err
push_rows(pscase *p, uint64_t seq, uint64_t b, psf_rpc_status *st, int *duplicate)
{
	Psfleet__V1__PushRequest req = PSFLEET__V1__PUSH_REQUEST__INIT;
	Psfleet__V1__PushReply *r = NULL;
	uint64_t keys[ROWS_PER_PUSH];
	uint32_t lens[ROWS_PER_PUSH];
	float *g = malloc((size_t)ROWS_PER_PUSH * p->emb_len * sizeof(float));
	psf_err err;

	for (size_t i = 0; i < ROWS_PER_PUSH; i++) {
		keys[i] = psf_key((uint16_t)p->emb_tensor, b * ROWS_PER_PUSH + i + 1);
		lens[i] = p->emb_len;
	}
	for (size_t i = 0; i < (size_t)ROWS_PER_PUSH * p->emb_len; i++)
		g[i] = 0.001f * (float)(i % 13);
	req.worker = "trainer-0";
	req.seq = seq;
	req.clock = (int64_t)seq - 1;
	req.keys = keys;
	req.n_keys = ROWS_PER_PUSH;
	req.lens = lens;
	req.n_lens = ROWS_PER_PUSH;
	req.values.data = (uint8_t *)g;
	req.values.len = (size_t)ROWS_PER_PUSH * p->emb_len * sizeof(float);
	req.n_samples = 1;
	err = call(p, PSF_M_PUSH, &req.base, &psfleet__v1__push_reply__descriptor,
	    (ProtobufCMessage **)&r, st);
	if (duplicate != NULL)
		*duplicate = r != NULL && r->duplicate;
	if (r != NULL)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	free(g);
	return err;
}

/* pull_first reads the values of batch 0's first rows (what a full disk must not
 * damage) into buf (at least 8 * emb_len floats). */
static void
pull_first(pscase *p, float *buf, uint64_t *version)
{
	Psfleet__V1__PullRequest req = PSFLEET__V1__PULL_REQUEST__INIT;
	Psfleet__V1__PullReply *r = NULL;
	uint64_t keys[8];
	psf_rpc_status st;

	for (size_t i = 0; i < 8; i++)
		keys[i] = psf_key((uint16_t)p->emb_tensor, i + 1);
	req.worker = "trainer-0";
	req.keys = keys;
	req.n_keys = 8;
	assert_int_equal(call(p, PSF_M_PULL, &req.base, &psfleet__v1__pull_reply__descriptor,
	                     (ProtobufCMessage **)&r, &st),
	    PSF_OK);
	assert_int_equal(r->values.len, 8 * p->emb_len * sizeof(float));
	memcpy(buf, r->values.data, r->values.len);
	*version = r->model_version;
	protobuf_c_message_free_unpacked(&r->base, NULL);
}

static void
disk_full_case(const char *durability)
{
	static pscase p;
	psf_rpc_status st;
	float before[8 * 64], after[8 * 64];
	uint64_t v0, v1, seq, applied = 0;
	int dup = 0, status;
	psf_err err = PSF_OK;

	if (!case_setup(&p, durability, 3072)) {
		case_cleanup(&p);
		skip();
		return;
	}
	register_worker(&p);
	/* Fill the 3 MiB filesystem with new symbol rows until a push is refused. */
	for (seq = 1; seq <= 200; seq++) {
		err = push_rows(&p, seq, seq - 1, &st, NULL);
		if (err != PSF_OK)
			break;
		applied++;
		if (seq == 1)
			pull_first(&p, before, &v0);
	}
	assert_int_not_equal(err, PSF_OK);
	assert_true(applied >= 1);
	/* The ps must answer, not die: interval durability (MDB_WRITEMAP) once
	 * died of SIGBUS here, writing into a sparse file the full filesystem could
	 * not back; the store now allocates the map's blocks up front. */
	if (waitpid(p.ps, &status, WNOHANG) == p.ps) {
		p.ps = 0;
		fail_msg("durability %s: the ps died when the disk filled (%s) after %llu pushes; "
		         "it must answer RESOURCE_EXHAUSTED",
		    durability, WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "exit",
		    (unsigned long long)applied);
	}
	print_message("durability %s: disk full after %llu pushes of %d new rows: %s (%s)\n",
	    durability, (unsigned long long)applied, ROWS_PER_PUSH, psf_status_name(st.code),
	    st.message);
	/* every-commit once got INTERNAL ("store error"): LMDB reports a short
	 * write as EIO; the store maps EIO on a full filesystem to PSF_ENOSPC. */
	if (st.code != PSF_STATUS_RESOURCE_EXHAUSTED)
		fail_msg("durability %s: a push on a full disk got %s (%s), not "
		         "RESOURCE_EXHAUSTED",
		    durability, psf_status_name(st.code), st.message);
	/* The ps still serves; the failed push was not recorded (refused again,
	 * not acknowledged as a duplicate); earlier data is intact. */
	assert_int_not_equal(push_rows(&p, seq, seq - 1, &st, &dup), PSF_OK);
	assert_int_equal(st.code, PSF_STATUS_RESOURCE_EXHAUSTED);
	pull_first(&p, after, &v1);
	assert_int_equal(v1, applied);
	assert_memory_equal(before, after, sizeof(before));
	assert_int_not_equal(psf_itest_stop(&p.ps, SIGTERM), -1);

	/* Restart on the full disk: LMDB reopens, version and data intact. */
	p.ps = spawn_ps(&p);
	register_worker(&p);
	pull_first(&p, after, &v1);
	assert_int_equal(v1, applied);
	assert_memory_equal(before, after, sizeof(before));

	/* Free space (grow the filesystem): the same push now goes through, once. */
	assert_int_equal(
	    mount("psf-test", p.mnt, "tmpfs", MS_REMOUNT | MS_NOSUID | MS_NODEV, "size=65536k"), 0);
	assert_int_equal(push_rows(&p, seq, seq - 1, &st, &dup), PSF_OK);
	assert_false(dup);
	assert_int_equal(push_rows(&p, seq, seq - 1, &st, &dup), PSF_OK);
	assert_true(dup);
	pull_first(&p, after, &v1);
	assert_int_equal(v1, applied + 1);
	status = psf_itest_stop(&p.ps, SIGTERM);
	assert_int_not_equal(status, -1);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	case_cleanup(&p);
	live = NULL;
}

static void
test_ps_disk_full_every_commit(void **state)
{
	(void)state;
	disk_full_case("every-commit");
}

static void
test_ps_disk_full_interval(void **state)
{
	(void)state;
	disk_full_case("interval");
}

/* ------------------------------------- a sync round that cannot be written */

/* free_tcp_port returns a port nothing listens on right now (bound, then let go). */
static int
free_tcp_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* health calls Admin/Health and Admin/Status; *ready and reason (len >= 256)
 * are Health's, *status_ready Status's. */
static void
health(pscase *p, bool *ready, char *reason, bool *status_ready, uint64_t *version)
{
	Psfleet__V1__HealthRequest hq = PSFLEET__V1__HEALTH_REQUEST__INIT;
	Psfleet__V1__StatusRequest sq = PSFLEET__V1__STATUS_REQUEST__INIT;
	Psfleet__V1__HealthReply *h = NULL;
	Psfleet__V1__StatusReply *st = NULL;
	psf_rpc_status rs;

	assert_int_equal(call(p, PSF_M_HEALTH, &hq.base, &psfleet__v1__health_reply__descriptor,
	                     (ProtobufCMessage **)&h, &rs),
	    PSF_OK);
	*ready = h->ready;
	snprintf(reason, 256, "%s", h->reason);
	*version = h->model_version;
	protobuf_c_message_free_unpacked(&h->base, NULL);
	assert_int_equal(call(p, PSF_M_STATUS, &sq.base, &psfleet__v1__status_reply__descriptor,
	                     (ProtobufCMessage **)&st, &rs),
	    PSF_OK);
	*status_ready = st->ready;
	protobuf_c_message_free_unpacked(&st->base, NULL);
}

/* count_lines counts the lines of path that contain text. */
static int
count_lines(const char *path, const char *text)
{
	char line[1024];
	FILE *f = fopen(path, "r");
	int n = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL)
		n += strstr(line, text) != NULL;
	fclose(f);
	return n;
}

/* run_capture runs argv to its end with stdout and stderr in out (len bytes);
 * returns its exit code. */
static int
run_capture(char *const argv[], const char *log, char *out, size_t len)
{
	pid_t pid = psf_itest_spawn(argv, log, true);
	int rc = psf_itest_wait_exit(pid, 60, 0);
	FILE *f = fopen(log, "r");
	size_t n;

	assert_non_null(f);
	n = fread(out, 1, len - 1, f);
	out[n] = '\0';
	fclose(f);
	return rc;
}

/* A sync round whose update does not fit on the disk: the ps once logged
 * "closing round N: no space left (will retry)" 50 times a second while
 * /healthz, Health and `psfleet status` said ready. Now it is not ready with the
 * reason, logs once (then every 30 s), and closes the round once there is room. */
static void
test_ps_disk_full_sync_round_reported(void **state)
{
	static pscase p;
	char metrics[32], reason[256], url[64], out[8192], log[200], *argv[5];
	bool ready = true, st_ready = true;
	uint64_t version = 0, seq;
	psf_rpc_status st;
	psf_err err = PSF_OK;
	int status, body_status;
	char *body = NULL;

	(void)state;
	snprintf(metrics, sizeof(metrics), "127.0.0.1:%d", free_tcp_port());
	if (!case_setup_mode(&p, "every-commit", 3072, "sync", metrics)) {
		case_cleanup(&p);
		skip();
		return;
	}
	register_worker(&p);
	/* Each step pushes 1024 new rows; the round's update (weights and Adam's
	 * two moments) needs about 3 times the accumulated gradient's room. */
	for (seq = 1; seq <= 200; seq++) {
		err = push_rows(&p, seq, seq - 1, &st, NULL);
		if (err != PSF_OK)
			break;
		for (int i = 0; i < 100; i++) { /* the round closes at once, or fails */
			health(&p, &ready, reason, &st_ready, &version);
			if (version == seq || !ready)
				break;
			psf_sleep_ms(20);
		}
		if (!ready)
			break;
	}
	print_message("sync: after %llu pushes: push %s, version %llu, ready %d: %s\n",
	    (unsigned long long)seq, psf_strerror(err), (unsigned long long)version, ready, reason);
	if (ready)
		fail_msg("the disk filled without a round failing to close (push: %s %s)",
		    psf_status_name(st.code), st.message);
	assert_int_equal(version, seq - 1);
	assert_non_null(strstr(reason, "cannot write the store"));
	assert_false(st_ready);
	/* /healthz says so too. */
	assert_int_equal(psf_http_get(metrics, "/healthz", 2000, &body_status, &body), PSF_OK);
	assert_int_equal(body_status, 503);
	assert_non_null(strstr(body, "cannot write the store"));
	free(body);
	/* `psfleet status` prints it (and exits 1: not healthy). */
	snprintf(log, sizeof(log), "%s/status.out", p.d.dir);
	argv[0] = getenv("PSFLEET");
	argv[1] = "status";
	argv[2] = p.d.cfg;
	argv[3] = NULL;
	status = run_capture(argv, log, out, sizeof(out));
	if (status != 1 || strstr(out, "cannot write the store") == NULL)
		fail_msg("psfleet status exited %d without the reason:\n%s", status, out);
	/* While it lasts (the timer retries every 500 ms), the log says it once. */
	psf_sleep_ms(2000);
	snprintf(log, sizeof(log), "%s/ps0.log", p.d.dir);
	status = count_lines(log, "closing round");
	print_message("sync: %d log lines about the round in ~2 s of failing\n", status);
	assert_int_equal(status, 1);
	assert_true(count_lines(log, "disk full") <= 1);

	/* Room again: the round closes by itself and the ps is ready again. */
	assert_int_equal(
	    mount("psf-test", p.mnt, "tmpfs", MS_REMOUNT | MS_NOSUID | MS_NODEV, "size=65536k"), 0);
	for (int i = 0; i < 250 && !(ready && version == seq); i++) {
		psf_sleep_ms(20);
		health(&p, &ready, reason, &st_ready, &version);
	}
	assert_true(ready);
	assert_true(st_ready);
	assert_int_equal(version, seq);
	snprintf(url, sizeof(url), "%s", metrics);
	assert_int_equal(psf_http_get(url, "/healthz", 2000, &body_status, &body), PSF_OK);
	assert_int_equal(body_status, 200);
	free(body);
	status = psf_itest_stop(&p.ps, SIGTERM);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	case_cleanup(&p);
	live = NULL;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_store_map_full_then_bigger_map),
	    cmocka_unit_test_teardown(test_ps_disk_full_every_commit, teardown),
	    cmocka_unit_test_teardown(test_ps_disk_full_interval, teardown),
	    cmocka_unit_test_teardown(test_ps_disk_full_sync_round_reported, teardown),
	};

	if (!psf_itest_has_psfleet("store_full_test"))
		return 1;
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
