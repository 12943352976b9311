/* config_emit_test.c -- psf_config_emit: the config written back as YAML loads to
 * the same config, with the overrides and ${VAR} placeholders applied, and errors
 * are the loader's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/base/util.h"
#include "lib/config/config.h"

static const char fleet[] =
    "# a comment the emitted text drops\n"
    "name: emit\n"
    "run_dir: runs/emit\n"
    "nodes:\n"
    "  ps:\n"
    "    - {id: ps0, listen: \"tcp://127.0.0.1:7101\", advertise: \"tcp://a:7101\"}\n"
    "    - {id: ps1, listen: \"tcp://127.0.0.1:7102\", metrics: \"127.0.0.1:7202\"}\n"
    "  trainers:\n"
    "    - {id: trainer-0}\n"
    "data: {path: \"${PSF_EMIT_DATA:-d.csv}\", test_fraction: 0.25}\n"
    "features: [\"return:1\", \"sma:5\", range]\n"
    "model: {kind: mlp, hidden: [8, 4]}\n"
    "optimizer: {kind: sgd, learning_rate: 0.05}\n";

static char dir[] = "/tmp/psf_emit_test.XXXXXX";
static char path[128];

static int
setup(void **state)
{
	FILE *f;

	(void)state;
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/f.yaml", dir);
	if ((f = fopen(path, "w")) == NULL)
		return -1;
	fputs(fleet, f);
	return fclose(f);
}

static int
teardown(void **state)
{
	(void)state;
	return psf_rm_rf(dir) == PSF_OK ? 0 : -1;
}

static void
test_config_emit_round_trip(void **state)
{
	const char *sets[] = {"nodes.ps.1.listen='tcp://ps-1.ps.ns.svc:7101'",
	    "nodes.ps.0.advertise=", "run_dir=/var/lib/psfleet"};
	char err[512], fp1[17], fp2[17];
	psf_config *a = NULL, *b = NULL;
	char *text = NULL;

	(void)state;
	setenv("PSF_EMIT_DATA", "/srv/x y.csv", 1);
	assert_int_equal(psf_config_emit(path, sets, 3, NULL, 0, err, sizeof(err), &text), PSF_OK);
	assert_null(strstr(text, "comment"));
	assert_null(strstr(text, "${"));
	assert_non_null(strstr(text, "/srv/x y.csv"));
	assert_int_equal(psf_config_load_ex(path, sets, 3, err, sizeof(err), &a), PSF_OK);
	unsetenv("PSF_EMIT_DATA"); /* the text no longer needs it */
	assert_int_equal(psf_config_parse("emitted", text, strlen(text), err, sizeof(err), &b),
	    PSF_OK);
	psf_config_fingerprint(a, fp1, sizeof(fp1));
	psf_config_fingerprint(b, fp2, sizeof(fp2));
	assert_string_equal(fp1, fp2);
	assert_int_equal(b->n_nodes, 3);
	assert_string_equal(b->nodes[1].listen, "tcp://ps-1.ps.ns.svc:7101");
	assert_string_equal(b->nodes[1].metrics, "127.0.0.1:7202");
	assert_null(b->nodes[0].advertise);
	assert_string_equal(b->run_dir, "/var/lib/psfleet");
	assert_string_equal(b->data.path, "/srv/x y.csv");
	assert_true(b->data.test_fraction == 0.25);
	assert_int_equal(b->model.n_hidden, 2);
	assert_true(b->optimizer.learning_rate == 0.05);
	psf_config_free(a);
	psf_config_free(b);
	free(text);
}

static void
test_config_emit_errors_are_the_loaders(void **state)
{
	const char *bad[] = {"nodes.ps.0.listen=ipc://"};
	char err[512];
	char *text = NULL;

	(void)state;
	assert_int_equal(
	    psf_config_emit("/nonexistent/f.yaml", NULL, 0, NULL, 0, err, sizeof(err), &text),
	    PSF_ENOENT);
	assert_string_equal(err, "/nonexistent/f.yaml: cannot read config: not found");
	assert_int_equal(psf_config_emit(path, bad, 1, NULL, 0, err, sizeof(err), &text),
	    PSF_ECONFIG);
	assert_non_null(strstr(err, "override 'nodes.ps.0.listen=ipc://'"));
	assert_null(text);
}

/* Paths valid only where the config runs (a pod's mounted Secret) are moved in
 * after the check that reads the files here. */
static void
test_config_emit_moved_security_files(void **state)
{
	char tok[160], set[256], none[256], err[512];
	const char *sets[1] = {set};
	const char *moved[] = {"security.token_file=/var/run/secrets/psfleet/token"};
	const char *half[] = {"security.tls_cert=/var/run/secrets/psfleet/tls.crt"};
	psf_config *cfg = NULL;
	char *text = NULL;
	FILE *f;

	(void)state;
	snprintf(tok, sizeof(tok), "%s/token", dir);
	assert_non_null(f = fopen(tok, "w"));
	fputs("s3cret\n", f);
	assert_int_equal(fclose(f), 0);
	snprintf(set, sizeof(set), "security.token_file=%s", tok);
	assert_int_equal(psf_config_emit(path, sets, 1, moved, 1, err, sizeof(err), &text), PSF_OK);
	assert_non_null(strstr(text, "/var/run/secrets/psfleet/token"));
	assert_null(strstr(text, tok));
	/* The text is what a pod reads: here the moved file is absent, so loading it
	 * here is refused for that reason (and only that one). */
	assert_int_equal(psf_config_parse("emitted", text, strlen(text), err, sizeof(err), &cfg),
	    PSF_ECONFIG);
	assert_non_null(
	    strstr(err, "cannot read security.token_file '/var/run/secrets/psfleet/token'"));
	free(text);
	text = NULL;
	/* The files are read where they are now: a missing one is the loader's error. */
	snprintf(none, sizeof(none), "security.token_file=%s/none", dir);
	sets[0] = none;
	assert_int_equal(psf_config_emit(path, sets, 1, moved, 1, err, sizeof(err), &text),
	    PSF_ECONFIG);
	assert_non_null(strstr(err, "cannot read security.token_file"));
	assert_null(text);
	/* A moved value is checked like any other: tls_cert without tls_key. */
	sets[0] = set;
	assert_int_equal(psf_config_emit(path, sets, 1, half, 1, err, sizeof(err), &text),
	    PSF_ECONFIG);
	assert_non_null(strstr(err, "must be set together"));
	assert_null(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_config_emit_round_trip),
	    cmocka_unit_test(test_config_emit_errors_are_the_loaders),
	    cmocka_unit_test(test_config_emit_moved_security_files),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
