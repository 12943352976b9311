/* cmd_backup.c -- psfleet backup: an online copy of every ps shard of a running
 * fleet, each as of one model version, while it trains (ps/backup.c). In sync
 * mode every shard is copied at the same version, so the backup is the model
 * of one training step; in async and ssp modes each shard is copied at its
 * current version (see docs/operations.md, "Backup and restore"). */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/config/config.h"
#include "lib/net/methods.h"
#include "lib/net/rpc_client.h"
#include "lib/runtime/runtime.h"
#include "psfleet.pb-c.h"

#define MAX_SETS 64
#define MAX_ATTEMPTS 5

typedef struct backup_args {
	const char *config;
	const char *out;
	uint64_t at_version; /* 0: chosen here */
	uint32_t timeout_s;
	const char *sets[MAX_SETS];
	size_t n_sets;
} backup_args;

static void
backup_usage(FILE *out)
{
	fprintf(out,
	    "usage: psfleet backup CONFIG --out DIR [--at-version V] [--timeout SECONDS]\n"
	    "                      [--set KEY=VALUE]...\n"
	    "\n"
	    "Copies every ps shard of the running fleet described by CONFIG into DIR/<ps id>\n"
	    "while it trains (each ps writes its own copy: DIR must be a path every ps host\n"
	    "can write, e.g. shared storage, or local when the fleet runs on one machine),\n"
	    "and writes DIR/manifest.json. Training is not paused: each copy is taken at a\n"
	    "commit of the store and streamed out while updates go on.\n"
	    "  sync mode   every shard is copied at the same model version V (by default a\n"
	    "              version a few steps ahead of the current one), so the backup is\n"
	    "              the model after exactly V training steps\n"
	    "  async, ssp  each shard is copied at its own current version\n"
	    "A fleet starts from a backup with `psfleet up CONFIG --restore DIR` (or\n"
	    "`psfleet node ... --restore DIR` per ps) into an empty run_dir.\n"
	    "  --out DIR            where the copies go; must not exist yet\n"
	    "  --at-version V       copy every shard at version V (waits for it)\n"
	    "  --timeout SECONDS    how long to wait for the version (default 60)\n"
	    "  --set KEY=VALUE      config overrides, as given to the fleet's nodes\n"
	    "Exit status: 0 done; 1 the backup failed (the reason is printed; DIR is\n"
	    "removed); 2 usage or config error.\n");
}

static int
parse_args(int argc, char **argv, backup_args *a)
{
	memset(a, 0, sizeof(*a));
	a->timeout_s = 60;
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		char *end;

		if (strcmp(arg, "--out") == 0 && i + 1 < argc) {
			a->out = argv[++i];
		} else if (strcmp(arg, "--at-version") == 0 && i + 1 < argc) {
			a->at_version = strtoull(argv[++i], &end, 10);
			if (*end != '\0' || a->at_version == 0) {
				fprintf(stderr,
				    "psfleet backup: --at-version takes a version >= 1\n");
				return -1;
			}
		} else if (strcmp(arg, "--timeout") == 0 && i + 1 < argc) {
			unsigned long s = strtoul(argv[++i], &end, 10);

			if (*end != '\0' || s == 0 || s > 3600) {
				fprintf(stderr,
				    "psfleet backup: --timeout takes 1..3600 seconds\n");
				return -1;
			}
			a->timeout_s = (uint32_t)s;
		} else if (strcmp(arg, "--set") == 0 && i + 1 < argc) {
			if (a->n_sets == MAX_SETS) {
				fprintf(stderr, "psfleet backup: at most %d --set options\n",
				    MAX_SETS);
				return -1;
			}
			a->sets[a->n_sets++] = argv[++i];
		} else if (arg[0] == '-') {
			fprintf(stderr,
			    "psfleet backup: unknown or incomplete option '%s' (see --help)\n",
			    arg);
			return -1;
		} else if (a->config == NULL) {
			a->config = arg;
		} else {
			fprintf(stderr, "psfleet backup: unexpected argument '%s'\n", arg);
			return -1;
		}
	}
	if (a->config == NULL || a->out == NULL) {
		fprintf(stderr, "psfleet backup: CONFIG and --out DIR are required (see --help)\n");
		return -1;
	}
	return 0;
}

/* One ps shard: its replicas (one unless replicated), named by its first node. */
typedef struct shard {
	const psf_node_cfg *node;
	psf_rpc_group *rpc;
	Psfleet__V1__StatsReply *stats;
	Psfleet__V1__BackupReply *reply;
	psf_rpc_status st;
	psf_err err;
} shard;

typedef struct backup_run {
	backup_args a;
	psf_config *cfg;
	char out[PATH_MAX];
	shard *s;
	size_t n;
	bool sync;
} backup_run;

static void
shards_clear(backup_run *b)
{
	for (size_t i = 0; i < b->n; i++) {
		if (b->s[i].stats != NULL)
			protobuf_c_message_free_unpacked(&b->s[i].stats->base, NULL);
		if (b->s[i].reply != NULL)
			protobuf_c_message_free_unpacked(&b->s[i].reply->base, NULL);
		b->s[i].stats = NULL;
		b->s[i].reply = NULL;
	}
}

/* stats asks every shard for its version; ps0's reports tell whether every
 * trainer has finished. Returns 0, or -1 after a line on stderr. */
static int
stats(backup_run *b, uint64_t *max_version, bool *finished)
{
	Psfleet__V1__StatsRequest req = PSFLEET__V1__STATS_REQUEST__INIT;
	psf_rpc_call_opts o = {.timeout_ms = 5000, .idempotent = 1};
	size_t done = 0;

	*max_version = 0;
	for (size_t i = 0; i < b->n; i++) {
		shard *s = &b->s[i];
		ProtobufCMessage *rep = NULL;

		if (s->stats != NULL)
			protobuf_c_message_free_unpacked(&s->stats->base, NULL);
		s->stats = NULL;
		/* a replicated shard: its primary may take a moment to be found */
		for (int t = 0; t < 50; t++) {
			s->err = psf_rpc_group_call(s->rpc, PSF_M_STATS, &req.base,
			    &psfleet__v1__stats_reply__descriptor, &o, &rep, &s->st);
			if (s->err == PSF_OK || psf_rpc_group_size(s->rpc) == 1 ||
			    s->st.code != PSF_STATUS_UNAVAILABLE)
				break;
			psf_sleep_ms(100);
		}
		if (s->err != PSF_OK) {
			fprintf(stderr, "psfleet backup: %s (%s) did not answer Stats: %s\n",
			    s->node->id, psf_node_dial_url(s->node),
			    s->st.message[0] != '\0' ? s->st.message : psf_strerror(s->err));
			return -1;
		}
		s->stats = (Psfleet__V1__StatsReply *)rep;
		if (s->stats->model_version > *max_version)
			*max_version = s->stats->model_version;
	}
	for (size_t k = 0; k < b->s[0].stats->n_reports; k++)
		done += b->s[0].stats->reports[k]->finished ? 1 : 0;
	*finished = done >= b->cfg->n_trainers && b->cfg->n_trainers > 0;
	return 0;
}

/* attempt asks every shard at once for a copy at version v (0: current). */
static void
attempt(backup_run *b, uint64_t v)
{
	Psfleet__V1__BackupRequest req = PSFLEET__V1__BACKUP_REQUEST__INIT;
	psf_rpc_call_opts o = {.timeout_ms = b->a.timeout_s * 1000 + 600000};
	psf_rpc_pending **p = calloc(b->n, sizeof(*p));
	psf_rpc_client **c = calloc(b->n, sizeof(*c));

	req.dir = b->out;
	req.at_version = v;
	req.timeout_ms = b->a.timeout_s * 1000;
	for (size_t i = 0; i < b->n; i++) {
		/* the shard's current replica: the primary that answered Stats */
		c[i] = c != NULL ? psf_rpc_group_client(b->s[i].rpc) : NULL;
		b->s[i].err = p == NULL || c == NULL
		    ? PSF_ENOMEM
		    : psf_rpc_call_start(c[i], PSF_M_BACKUP, &req.base, &o, &p[i]);
		memset(&b->s[i].st, 0, sizeof(b->s[i].st));
	}
	for (size_t i = 0; i < b->n; i++) {
		ProtobufCMessage *rep = NULL;

		if (b->s[i].err != PSF_OK)
			continue;
		b->s[i].err = psf_rpc_pending_wait(p[i], &psfleet__v1__backup_reply__descriptor,
		    &rep, &b->s[i].st);
		b->s[i].reply = (Psfleet__V1__BackupReply *)rep;
		if (b->s[i].err != PSF_OK) /* a failover meanwhile: the next attempt moves on */
			(void)psf_rpc_group_failed(b->s[i].rpc, c[i], &b->s[i].st);
		psf_rpc_pending_free(p[i]);
	}
	free(p);
	free(c);
}

/* write_manifest writes DIR/manifest.json. */
static int
write_manifest(backup_run *b, uint64_t v)
{
	char path[PATH_MAX + 32], stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	FILE *f;

	snprintf(path, sizeof(path), "%s/manifest.json", b->out);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
	if ((f = fopen(path, "w")) == NULL) {
		fprintf(stderr, "psfleet backup: cannot write %s: %s\n", path, strerror(errno));
		return -1;
	}
	fprintf(f, "{\n  \"fleet\": ");
	psf_cli_json_str(f, b->cfg->name != NULL ? b->cfg->name : "");
	fprintf(f, ",\n  \"config\": ");
	psf_cli_json_str(f, b->a.config);
	fprintf(f, ",\n  \"created\": \"%s\",\n  \"consistency\": \"%s\",\n", stamp,
	    psf_consistency_name(b->cfg->consistency.mode));
	fprintf(f, "  \"one_version\": %s,\n", b->sync ? "true" : "false");
	if (b->sync)
		fprintf(f, "  \"model_version\": %" PRIu64 ",\n", v);
	fprintf(f, "  \"shards\": [\n");
	for (size_t i = 0; i < b->n; i++) {
		const Psfleet__V1__BackupReply *r = b->s[i].reply;

		fprintf(f, "    {\"id\": ");
		psf_cli_json_str(f, b->s[i].node->id);
		fprintf(f,
		    ", \"model_version\": %" PRIu64 ", \"trained_steps\": %" PRIu64
		    ", \"bytes\": %" PRIu64 ", \"entries\": %" PRIu64 ", \"path\": ",
		    r->model_version, r->trained_steps, r->bytes, r->entries);
		psf_cli_json_str(f, r->path);
		fprintf(f, "}%s\n", i + 1 < b->n ? "," : "");
	}
	fprintf(f, "  ]\n}\n");
	if (fclose(f) != 0) {
		fprintf(stderr, "psfleet backup: cannot write %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* remove_copies removes what an attempt left in DIR (the shards that succeeded). */
static void
remove_copies(backup_run *b)
{
	for (size_t i = 0; i < b->n; i++) {
		char path[PATH_MAX + 256];

		snprintf(path, sizeof(path), "%s/%s", b->out, b->s[i].node->id);
		if (psf_rm_rf(path) != PSF_OK)
			fprintf(stderr, "psfleet backup: cannot remove %s\n", path);
	}
}

/* run does the attempts; returns the exit status. */
static int
run(backup_run *b)
{
	for (int k = 0; k < MAX_ATTEMPTS; k++) {
		uint64_t top = 0, v;
		bool finished = false, ok = true, retry = false;

		if (stats(b, &top, &finished) != 0)
			return 1;
		/* Sync and still training: a version a few rounds ahead, which every
		 * shard is still below (a shard runs at most one round ahead of the
		 * slowest); finished, or not sync: what each shard holds now. */
		v = b->a.at_version != 0   ? b->a.at_version
		    : b->sync && !finished ? top + 2 + (uint64_t)k * 4
		                           : 0;
		attempt(b, v);
		for (size_t i = 0; i < b->n; i++) {
			shard *s = &b->s[i];

			if (s->err == PSF_OK)
				continue;
			ok = false;
			/* Past the version, or the fleet stopped short of it: ask again. */
			retry = retry ||
			    (b->a.at_version == 0 &&
			        (s->err == PSF_ESTATE || s->err == PSF_ETIMEDOUT)) ||
			    (psf_rpc_group_size(s->rpc) > 1 &&
			        s->st.code == PSF_STATUS_UNAVAILABLE);
			fprintf(stderr, "psfleet backup: %s: %s\n", s->node->id,
			    s->st.message[0] != '\0' ? s->st.message : psf_strerror(s->err));
		}
		if (ok && b->sync) {
			for (size_t i = 1; i < b->n; i++)
				ok = ok &&
				    b->s[i].reply->model_version == b->s[0].reply->model_version;
			if (!ok)
				fprintf(stderr,
				    "psfleet backup: the shards were copied at different "
				    "versions; trying again\n");
			retry = retry || !ok;
		}
		if (ok) {
			uint64_t total = 0;

			if (write_manifest(b, b->s[0].reply->model_version) != 0) {
				remove_copies(b);
				return 1;
			}
			for (size_t i = 0; i < b->n; i++) {
				const Psfleet__V1__BackupReply *r = b->s[i].reply;

				total += r->bytes;
				printf("%s: version %" PRIu64 " (%" PRIu64 " steps), %" PRIu64
				       " bytes, waited %.3f s, copied in %.3f s -> %s\n",
				    b->s[i].node->id, r->model_version, r->trained_steps, r->bytes,
				    r->wait_seconds, r->copy_seconds, r->path);
			}
			if (b->sync)
				printf("psfleet backup: %zu shard(s) at model version %" PRIu64
				       ", %" PRIu64 " bytes in %s\n",
				    b->n, b->s[0].reply->model_version, total, b->out);
			else
				printf(
				    "psfleet backup: %zu shard(s), each at its own version (%s mode), "
				    "%" PRIu64 " bytes in %s\n",
				    b->n, psf_consistency_name(b->cfg->consistency.mode), total,
				    b->out);
			return 0;
		}
		remove_copies(b);
		shards_clear(b);
		if (!retry)
			return 1;
	}
	fprintf(stderr, "psfleet backup: no consistent copy after %d attempts\n", MAX_ATTEMPTS);
	return 1;
}

/* prepare makes DIR absolute and creates it (it must not exist). */
static int
prepare_out(backup_run *b)
{
	char cwd[PATH_MAX];
	struct stat sb;
	int n;

	if (stat(b->a.out, &sb) == 0) {
		fprintf(stderr, "psfleet backup: %s already exists: back up into a new directory\n",
		    b->a.out);
		return -1;
	}
	if (b->a.out[0] == '/')
		n = snprintf(b->out, sizeof(b->out), "%s", b->a.out);
	else if (getcwd(cwd, sizeof(cwd)) != NULL)
		n = snprintf(b->out, sizeof(b->out), "%s/%s", cwd, b->a.out);
	else
		n = -1;
	if (n < 0 || (size_t)n >= sizeof(b->out) - 256) {
		fprintf(stderr, "psfleet backup: %s: path too long\n", b->a.out);
		return -1;
	}
	if (psf_mkdir_p(b->out) != PSF_OK) {
		fprintf(stderr, "psfleet backup: cannot create %s: %s\n", b->out, strerror(errno));
		return -1;
	}
	return 0;
}

int
psf_cmd_backup(int argc, char **argv)
{
	backup_run b;
	psf_rpc_client_opts copts;
	char token[512], errbuf[512];
	int rc = 1;

	if (psf_cli_wants_help(argc, argv)) {
		backup_usage(stdout);
		return 0;
	}
	memset(&b, 0, sizeof(b));
	if (parse_args(argc, argv, &b.a) != 0)
		return 2;
	psf_log_setup(PSF_LOG_ERR, "backup");
	if (psf_config_load_ex(b.a.config, b.a.sets, b.a.n_sets, errbuf, sizeof(errbuf), &b.cfg) !=
	    PSF_OK) {
		fprintf(stderr, "psfleet backup: %s\n", errbuf);
		return 2;
	}
	b.sync = b.cfg->consistency.mode == PSF_CONS_SYNC;
	if (access(b.a.out, F_OK) == 0) {
		fprintf(stderr, "psfleet backup: %s already exists: back up into a new directory\n",
		    b.a.out);
		psf_config_free(b.cfg);
		return 2;
	}
	if (psf_runtime_client_opts(b.cfg, token, sizeof(token), &copts) != PSF_OK) {
		fprintf(stderr, "psfleet backup: %s: cannot read the security settings\n",
		    b.a.config);
		psf_config_free(b.cfg);
		return 2;
	}
	copts.connect_now = true;
	copts.timeout_ms = 5000;
	if ((b.s = calloc(b.cfg->n_nodes, sizeof(*b.s))) == NULL) {
		fprintf(stderr, "psfleet backup: out of memory\n");
		goto out;
	}
	for (size_t j = 0; j < b.cfg->n_shards; j++) {
		const psf_node_cfg *n = psf_config_shard_replica(b.cfg, j, 0);
		psf_err err;

		b.s[b.n].node = n;
		/* one replica: connect now, so a fleet that is down is said at once;
		 * several: dial them all, the calls find the primary */
		copts.connect_now = b.cfg->replication == 1;
		if ((err = psf_runtime_shard_group(b.cfg, j, NULL, &copts, &b.s[b.n].rpc)) !=
		    PSF_OK) {
			fprintf(stderr,
			    "psfleet backup: cannot reach %s at %s: %s (is the fleet "
			    "running?)\n",
			    n->id, psf_node_dial_url(n), psf_strerror(err));
			b.n++;
			goto out;
		}
		b.n++;
	}
	if (b.n == 0) {
		fprintf(stderr, "psfleet backup: %s has no ps node\n", b.a.config);
		rc = 2;
		goto out;
	}
	if (prepare_out(&b) != 0) {
		rc = 2;
		goto out;
	}
	rc = run(&b);
	if (rc != 0)
		if (psf_rm_rf(b.out) != PSF_OK)
			fprintf(stderr, "psfleet backup: cannot remove %s\n", b.out);
out:
	shards_clear(&b);
	for (size_t i = 0; b.s != NULL && i < b.n; i++)
		psf_rpc_group_close(b.s[i].rpc);
	free(b.s);
	psf_config_free(b.cfg);
	return rc;
}
