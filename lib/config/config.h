/* config.h -- the fleet configuration (one YAML file describes a whole fleet).
 *
 * psf_config_load parses and validates a file once at start-up; afterwards the
 * struct is read-only and may be shared between threads without locking.
 * docs/config.md documents every key and its default. */
#ifndef PSF_CONFIG_H
#define PSF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"

/* PSF_MAX_TRAINERS is the most trainers a fleet may have: the size of a ps
 * node's worker table (ps/internal.h, PS_MAX_WORKERS, where each worker's index
 * + 1 is the top byte of its gradient accumulator keys). The config loader
 * refuses more, so a fleet it accepts never fails at run time for this. */
#define PSF_MAX_TRAINERS 250

/* PSF_MAX_REPLICATION is the most copies a ps shard may have (config key
 * replication). */
#define PSF_MAX_REPLICATION 3

typedef enum psf_role {
	PSF_ROLE_PS = 0,
	PSF_ROLE_TRAINER,
	PSF_ROLE_INFERER,
	PSF_ROLE_GATEWAY,
} psf_role;

typedef enum psf_consistency {
	PSF_CONS_SYNC = 0,
	PSF_CONS_ASYNC,
	PSF_CONS_SSP,
	PSF_CONS_LOCAL, /* local SGD: sync rounds over model deltas every sync_every steps */
} psf_consistency;

typedef enum psf_durability {
	PSF_DUR_INTERVAL = 0, /* mdb_env_sync every interval_ms (default) */
	PSF_DUR_EVERY_COMMIT, /* fsync on every commit */
	PSF_DUR_NONE,         /* leave it to the OS */
} psf_durability;

typedef enum psf_model_kind {
	PSF_MODEL_LINEAR = 0, /* ridge regression */
	PSF_MODEL_LOGISTIC,   /* next-day direction */
	PSF_MODEL_MLP,        /* hidden layers, ReLU */
	PSF_MODEL_GRU,        /* 1-2 GRU layers over a window of days */
	PSF_MODEL_LSTM,       /* 1-2 LSTM layers over a window of days */
} psf_model_kind;

/* psf_model_kind_is_recurrent tells whether kind reads a window of days (gru,
 * lstm). */
#define psf_model_kind_is_recurrent(kind) ((kind) == PSF_MODEL_GRU || (kind) == PSF_MODEL_LSTM)

/* psf_model_kind_has_hidden tells whether kind reads model.hidden (mlp, gru,
 * lstm). */
#define psf_model_kind_has_hidden(kind) \
	((kind) == PSF_MODEL_MLP || psf_model_kind_is_recurrent(kind))

typedef enum psf_optim_kind {
	PSF_OPTIM_SGD = 0,
	PSF_OPTIM_MOMENTUM,
	PSF_OPTIM_ADAM,
	PSF_OPTIM_ADAGRAD,
	PSF_OPTIM_EXACT, /* closed-form least squares, no gradient steps (linear only) */
} psf_optim_kind;

typedef enum psf_lr_schedule {
	PSF_LR_CONSTANT = 0,
	PSF_LR_STEP,   /* lr * gamma^(floor(step / step_size)) */
	PSF_LR_COSINE, /* lr * 0.5 * (1 + cos(pi * min(step, total) / total)) */
} psf_lr_schedule;

typedef enum psf_target_kind {
	PSF_TARGET_NEXT_CLOSE = 0,
	PSF_TARGET_NEXT_RETURN,
	PSF_TARGET_NEXT_DIRECTION,
} psf_target_kind;

typedef enum psf_feature_kind {
	PSF_FEAT_LAG = 0,   /* lag:N    close N days back (lag:0 = today's close) */
	PSF_FEAT_RETURN,    /* return:N close / close N days back - 1 (pct_change(N)) */
	PSF_FEAT_SMA,       /* sma:N    rolling mean of close over N days */
	PSF_FEAT_STD,       /* std:N    rolling sample std (ddof=1) of close */
	PSF_FEAT_RATIO_SMA, /* ratio_sma:N close / sma:N */
	PSF_FEAT_EWM,       /* ewm:N    exponentially weighted mean, span N, adjust=True */
	PSF_FEAT_RANGE,     /* range    (high - low) / close */
	PSF_FEAT_DOW,       /* dow      day of week, 0 = Monday .. 4 = Friday */
	PSF_FEAT_VOLUME,    /* volume:N log(volume) rolling mean over N days (needs volume) */
} psf_feature_kind;

typedef enum psf_shard_by {
	PSF_SHARD_BY_HASH = 0,
	PSF_SHARD_BY_ROWS,
} psf_shard_by;

typedef enum psf_bad_rows {
	PSF_BAD_ROWS_FAIL = 0,
	PSF_BAD_ROWS_SKIP,
} psf_bad_rows;

typedef enum psf_gateway_route {
	PSF_ROUTE_SYMBOL = 0,  /* symbol hash -> inferer shard, round robin among its replicas */
	PSF_ROUTE_ROUND_ROBIN, /* any inferer serves any symbol */
} psf_gateway_route;

/* One feature column, e.g. "sma:10" -> {PSF_FEAT_SMA, 10}. */
typedef struct psf_feature_cfg {
	psf_feature_kind kind;
	uint32_t window; /* N; 0 for range/dow */
	char name[32];   /* canonical spelling, e.g. "sma:10" */
} psf_feature_cfg;

/* One node of the fleet. Strings are owned by the config. */
typedef struct psf_node_cfg {
	char *id; /* unique in the fleet, e.g. "ps0", "trainer-1" */
	psf_role role;
	char *listen;    /* NNG URL the node serves RPCs on (ps, inferer, gateway: required;
	                 * trainers: optional, Admin only); NULL = none. Only binding uses it. */
	char *advertise; /* the URL every other node and the CLI dial; NULL = listen */
	char *metrics;   /* host:port of the /metrics + /healthz HTTP endpoint; NULL = none */
	char *data_dir;  /* ps: LMDB directory; default <run_dir>/<id> */
	uint32_t shard;  /* inferers: the symbol shard served (replicas share it); default 0 */
	uint32_t index;  /* position within its role's list (0-based), set by the loader */
} psf_node_cfg;

typedef struct psf_datagen_cfg {
	uint32_t symbols; /* default 100 */
	uint32_t days;    /* default 500 */
	uint64_t seed;    /* default: the fleet seed */
	int skew;         /* 0/1: some symbols get far more history */
} psf_datagen_cfg;

typedef struct psf_data_cfg {
	char *path;       /* CSV file, or a directory made by `psfleet data partition`;
	                        * required unless generate is set (then <run_dir>/data.csv) */
	int has_generate; /* generate the CSV at `path` when it is missing ("generate:" present) */
	psf_datagen_cfg generate;
	psf_bad_rows bad_rows; /* default fail */
	double test_fraction;  /* last fraction of dates held out; default 0.2, in (0, 1) */
	psf_shard_by shard_by; /* default rows */
	int cache;             /* 0/1: keep a binary cache of the parsed input; default 1 */
	char *train_end;       /* YYYY-MM-DD: trainers use only rows dated before it
	                        * (backtests); NULL = every row */
} psf_data_cfg;

typedef struct psf_model_cfg {
	psf_model_kind kind; /* default linear */
	uint32_t hidden[8];  /* mlp layer sizes; gru/lstm: state size of each layer */
	uint32_t n_hidden;   /* number of hidden layers (mlp: >= 1, gru/lstm: 1..2; default [32]) */
	uint32_t
	    window; /* gru/lstm: days per input sequence, 1..PSF_MODEL_MAX_WINDOW; default 10 */
	uint32_t embedding_dim; /* per-symbol embedding size appended to the input; 0 = none */
	int symbol_bias;        /* per-symbol output bias */
	double l2;              /* ridge / weight decay on dense weights; default 0 */
	double init_scale;      /* init weights ~ U(-s, s) * sqrt(3/fan_in)-style; default 1.0 */
	uint32_t
	    chunk_floats; /* dense tensors are split into chunks of this many floats; default 65536 */
} psf_model_cfg;

typedef struct psf_optim_cfg {
	psf_optim_kind kind;      /* default adam */
	double learning_rate;     /* default 0.01 */
	double momentum;          /* momentum: default 0.9 */
	double beta1, beta2;      /* adam: 0.9, 0.999 */
	double epsilon;           /* adam/adagrad: 1e-8 */
	psf_lr_schedule schedule; /* default constant */
	uint64_t step_size;       /* step schedule: updates between decays; default 1000 */
	double gamma;             /* step schedule factor; default 0.5 */
	uint64_t total_steps;     /* cosine schedule horizon; 0 = derive from training */
	double clip_norm;         /* clip each pushed gradient's L2 norm; 0 = off */
	int skip_nonfinite;       /* 1: NaN/Inf gradients are skipped and counted; 0: rejected */
} psf_optim_cfg;

/* Fine-tuning after Ingest (docs/training.md "Fine-tuning after Ingest"). */
typedef struct psf_finetune_cfg {
	uint32_t steps;      /* steps per round over newly ingested rows; 0 = off (default) */
	uint32_t batch_size; /* rows per step; 0 = training.batch_size (fewer when a round
	                      * has fewer rows) */
	uint32_t poll_ms;    /* how often the fine-tuner asks ps0 for new rows; default 100 */
} psf_finetune_cfg;

typedef struct psf_training_cfg {
	uint32_t epochs;     /* default 5 */
	uint32_t batch_size; /* default 256 */
	uint64_t max_steps;  /* stop after this many steps per trainer; 0 = no limit */
	int shuffle;         /* default 1 */
	double target_loss;  /* experiments: loss that counts as "reached"; 0 = none */
	double clip_norm;    /* trainer side: clip each step's whole gradient (every key, every
	                      * ps) to this L2 norm before pushing; 0 = off */
	psf_finetune_cfg finetune;
} psf_training_cfg;

typedef struct psf_consistency_cfg {
	psf_consistency mode;          /* default sync */
	uint32_t staleness;            /* ssp: s; default 2 */
	uint32_t sync_every;           /* local: local steps per averaging round; default 8 */
	uint32_t straggler_timeout_ms; /* default 10000 */
	uint32_t heartbeat_ms;         /* default 1000 */
} psf_consistency_cfg;

typedef struct psf_durability_cfg {
	psf_durability mode;  /* default interval */
	uint32_t interval_ms; /* default 1000 */
	uint64_t map_size; /* initial LMDB map size in bytes; default 64 MiB (doubles as needed) */
} psf_durability_cfg;

typedef struct psf_limits_cfg {
	uint64_t max_message_bytes;    /* default 80 MiB (fits a 64 MiB tensor + envelope) */
	uint32_t max_keys_per_request; /* default 1,000,000 */
	uint32_t request_timeout_ms;   /* client default deadline; default 30000 */
	uint32_t rpc_workers;          /* concurrent requests per server; default 64 */
	uint32_t max_connections;      /* 0 = unlimited */
} psf_limits_cfg;

typedef struct psf_security_cfg {
	char *token_file; /* shared secret read from this file; NULL = none */
	char *token_env;  /* ... or from this environment variable; NULL = none */
	char *tls_cert;   /* PEM certificate + key for tls+tcp:// listeners/dialers */
	char *tls_key;
	char *tls_ca;          /* CA bundle: peers must present a certificate it signed */
	char *tls_server_name; /* name dialers expect in the server's certificate
	                          (needs tls_ca); NULL = the host of the URL dialed */
} psf_security_cfg;

typedef struct psf_inference_cfg {
	uint32_t refresh_ms;   /* snapshot refresh period; default 1000 */
	uint32_t history_days; /* recent days of history kept per symbol; default 64 */
	uint32_t shards;       /* number of symbol shards over inferers; default 1 */
	char *interval_scale;  /* "price" (default, NULL) or "none": residuals of
	                        * next_close intervals are relative to the close */
} psf_inference_cfg;

typedef struct psf_gateway_cfg {
	psf_gateway_route route;     /* default symbol */
	uint32_t health_interval_ms; /* default 500 */
} psf_gateway_cfg;

typedef struct psf_config {
	char *path;           /* the file it was loaded from */
	char *name;           /* fleet name; default "psfleet" */
	uint64_t seed;        /* default 42 */
	char *run_dir;        /* logs + ps data; default "runs/<name>" relative to the CWD */
	char *log_level;      /* err|warn|info|debug; default info */
	uint32_t replication; /* copies of each ps shard (1..3); default 1 = no replication */
	size_t n_shards;      /* ps shards: n_ps / replication, set by the loader */

	psf_node_cfg *nodes; /* every node: ps first, then trainers, inferers, gateway */
	size_t n_nodes;
	size_t n_ps, n_trainers, n_inferers, n_gateways;

	psf_data_cfg data;
	psf_feature_cfg *features;
	size_t n_features;
	psf_target_kind target; /* default next_close */
	psf_model_cfg model;
	psf_optim_cfg optimizer;
	psf_training_cfg training;
	psf_consistency_cfg consistency;
	psf_durability_cfg durability;
	psf_limits_cfg limits;
	psf_security_cfg security;
	psf_inference_cfg inference;
	psf_gateway_cfg gateway;
} psf_config;

/* psf_config_load reads and validates a fleet YAML file. On success *out gets a new
 * config the caller frees with psf_config_free. On failure it returns PSF_ECONFIG
 * (or PSF_ENOENT / PSF_ENOMEM) and, when errbuf is not NULL, writes one line such as
 * "fleet.yaml:12: unknown key 'lerning_rate' in optimizer" into errbuf (truncated to
 * errlen, always NUL-terminated); with errbuf NULL the line is logged at error level
 * instead. A file that cannot be read gives "<path>: cannot read config: <reason>"
 * (no line number). Relative paths in the config (run_dir, data.path, data_dir) are
 * kept as written: they are relative to the current working directory. Files over
 * 1 MiB are rejected. Thread-safe (no shared state). */
PSF_NODISCARD psf_err psf_config_load(const char *path, char *errbuf, size_t errlen,
    psf_config **out);

/* psf_config_parse is psf_config_load for YAML text already in memory (len bytes, no
 * NUL needed). name stands for the file in error messages and becomes cfg->path.
 * Same results and error format as psf_config_load. */
PSF_NODISCARD psf_err psf_config_parse(const char *name, const char *text, size_t len, char *errbuf,
    size_t errlen, psf_config **out);

/* psf_config_load_ex is psf_config_load with overrides: n_overrides strings of the
 * form "KEY=VALUE" (overrides may be NULL when n_overrides is 0), applied in order
 * (a later one wins) to the YAML document before anything is parsed or validated,
 * so the result is exactly that of a file edited that way: defaults derived from
 * an overridden key follow it (run_dir=X moves every default data_dir under X),
 * and every check applies to overridden values.
 *   - KEY is a dotted path of mapping keys from the top level, e.g.
 *     "consistency.mode", "training.epochs", "run_dir". Missing keys and sections
 *     are created. In a list, a component is a 0-based index or, for node lists,
 *     a node id: "nodes.ps.0.listen", "nodes.trainers.trainer-1.metrics".
 *   - VALUE is parsed as one YAML value, so "ssp", "3", "[64, 32]" and
 *     "{mode: ssp, staleness: 1}" all work; quote it ("'a #b'") to keep YAML
 *     characters literal. An empty VALUE ("KEY=") removes the key, so it takes
 *     its default (a list entry cannot be removed: give the whole list).
 * An error about an overridden value, or about a malformed override, names the
 * override instead of a line: "fleet.yaml: override 'consistency.mode=bsp':
 * 'mode' must be one of sync, async, ssp". The overrides are borrowed for the
 * call only. Same results and error format as psf_config_load otherwise. */
PSF_NODISCARD psf_err psf_config_load_ex(const char *path, const char *const *overrides,
    size_t n_overrides, char *errbuf, size_t errlen, psf_config **out);

/* psf_config_parse_ex is psf_config_parse with overrides, as psf_config_load_ex. */
PSF_NODISCARD psf_err psf_config_parse_ex(const char *name, const char *text, size_t len,
    const char *const *overrides, size_t n_overrides, char *errbuf, size_t errlen,
    psf_config **out);

/* psf_config_emit loads and checks the file at path as psf_config_load_ex does
 * (same overrides, errors and codes), then writes the document it parsed, with
 * ${VAR} placeholders expanded and the overrides applied, as YAML text into *text
 * (a new NUL-terminated string the caller frees). Keys, values and their order are
 * kept; comments are not. Loading the text gives the same config. Used to hand a
 * config with rewritten addresses to other machines (psfleet deploy).
 * moved (n_moved strings, may be NULL when n_moved is 0) are more overrides, for
 * paths valid only where the config will run (security.token_file, tls_* of a
 * pod, where a Secret is mounted): they are applied after the overrides, and the
 * result is checked again like the first time except that the files under
 * security are not opened (the first check read them at their paths here). */
PSF_NODISCARD psf_err psf_config_emit(const char *path, const char *const *overrides,
    size_t n_overrides, const char *const *moved, size_t n_moved, char *errbuf, size_t errlen,
    char **text);

/* psf_config_log writes a one-line summary of the effective config (name, nodes,
 * mode, model, optimizer, fingerprint) at info level. Cannot fail. */
void psf_config_log(const psf_config *cfg);

/* psf_config_free releases a config. NULL is fine. */
void psf_config_free(psf_config *cfg);

/* psf_config_interval_by_price tells whether prediction-interval residuals are
 * divided by the close they are predicted from (target next_close with
 * inference.interval_scale price, the default), so one quantile serves symbols
 * whose prices differ 100x. Cannot fail. */
int psf_config_interval_by_price(const psf_config *cfg);

/* psf_model_cfg_dense_floats returns how many dense floats (every layer's weights
 * and biases; not the per-symbol rows) a model of cfg with n_features inputs has:
 * the count the config check and psf_model_new compare with
 * PSF_MODEL_MAX_DENSE_FLOATS (psf_model_new asserts its layout reaches the same
 * count). Sizes may be beyond the limits; the result saturates at UINT64_MAX.
 * Cannot fail. */
uint64_t psf_model_cfg_dense_floats(const psf_model_cfg *cfg, uint32_t n_features);

/* psf_node_dial_url returns the URL other nodes and the CLI dial to reach node:
 * its advertise URL when set, else its listen URL (NULL when it has neither).
 * Host names in it are resolved by NNG at every dial and redial. */
const char *psf_node_dial_url(const psf_node_cfg *node);

/* psf_config_find_node returns the node with this id, or NULL. */
const psf_node_cfg *psf_config_find_node(const psf_config *cfg, const char *id);

/* psf_config_role_node returns the index-th node of a role (0-based), or NULL. */
const psf_node_cfg *psf_config_role_node(const psf_config *cfg, psf_role role, size_t index);

/* Replication topology (docs/reliability.md "Replication"). The fleet's n_ps ps
 * nodes form n_shards = n_ps / replication shards: shard j lives on the ps nodes
 * of ps index j, j + n_shards, ..., j + (replication - 1) * n_shards, its replica
 * group, whose first member (ps index j) is its initial primary. Keys map to
 * shards by rendezvous hashing over the first n_shards ps nodes' ids, exactly as
 * in an unreplicated fleet of those nodes. With replication 1 every ps node is
 * its own shard. */

/* psf_config_ps_shard returns the shard a ps node (by ps index) belongs to.
 * Cannot fail. */
size_t psf_config_ps_shard(const psf_config *cfg, size_t ps_index);

/* psf_config_shard_replica returns replica r (0..replication-1) of shard j: the
 * ps node of ps index j + r * n_shards, or NULL when out of range. */
const psf_node_cfg *psf_config_shard_replica(const psf_config *cfg, size_t shard, size_t r);

/* psf_config_shard_urls fills urls[0..replication) with the dial URLs of shard
 * j's replicas in replica order (borrowed from cfg) and returns how many it
 * wrote (0 when j is out of range or max is too small). Cannot fail. */
size_t psf_config_shard_urls(const psf_config *cfg, size_t shard, const char **urls, size_t max);

/* psf_config_fingerprint writes a hex digest of everything that decides the model's
 * tensors and their sharding (features, target, model, the ids of the ps nodes
 * that name the shards -- the first n_shards --, seed) into buf
 * (at least 17 bytes). Two configs with the same fingerprint may share ps stores.
 * The digest is XXH3-64 of a canonical text, printed as 16 lowercase hex digits; a
 * shorter buf gets a NUL-terminated prefix. Formatting, comments, trainers, optimizer
 * and training settings do not change it. Cannot fail. */
void psf_config_fingerprint(const psf_config *cfg, char *buf, size_t len);

/* Enum spellings, one table per enum (config_names.c), as the YAML spells them:
 * psf_<enum>_name returns the spelling of a value ("unknown" for a value out of
 * range) and cannot fail; psf_<enum>_parse sets *out from an exact spelling and
 * returns PSF_OK, or PSF_EINVAL (NULL or an unknown spelling; *out untouched).
 *   role         "ps", "trainer", "inferer", "gateway"
 *   consistency  "sync", "async", "ssp", "local"
 *   durability   "interval", "every-commit", "none"
 *   model_kind   "linear", "logistic", "mlp"
 *   optim_kind   "sgd", "momentum", "adam", "adagrad", "exact"
 *   lr_schedule  "constant", "step", "cosine"
 *   target       "next_close", "next_return", "next_direction"
 *   shard_by     "hash", "rows"
 *   bad_rows     "fail", "skip"
 *   route        "symbol", "round_robin" */
const char *psf_role_name(psf_role v);
const char *psf_consistency_name(psf_consistency v);

/* psf_consistency_rounds tells whether a mode runs sync rounds on the ps (sync,
 * and local, whose rounds average model deltas). Cannot fail. */
static inline bool
psf_consistency_rounds(psf_consistency v)
{
	return v == PSF_CONS_SYNC || v == PSF_CONS_LOCAL;
}

/* psf_clock_step returns how many steps one push of a worker covers: sync_every
 * in local mode, else 1. A worker's clock on the ps counts steps, and a local-mode
 * round closes sync_every steps at once. Cannot fail. */
static inline int64_t
psf_clock_step(const psf_consistency_cfg *c)
{
	return c->mode == PSF_CONS_LOCAL ? (int64_t)c->sync_every : 1;
}
const char *psf_durability_name(psf_durability v);
const char *psf_model_kind_name(psf_model_kind v);
const char *psf_optim_kind_name(psf_optim_kind v);
const char *psf_lr_schedule_name(psf_lr_schedule v);
const char *psf_target_name(psf_target_kind v);
const char *psf_shard_by_name(psf_shard_by v);
const char *psf_bad_rows_name(psf_bad_rows v);
const char *psf_route_name(psf_gateway_route v);
PSF_NODISCARD psf_err psf_role_parse(const char *s, psf_role *out);
PSF_NODISCARD psf_err psf_consistency_parse(const char *s, psf_consistency *out);
PSF_NODISCARD psf_err psf_durability_parse(const char *s, psf_durability *out);
PSF_NODISCARD psf_err psf_model_kind_parse(const char *s, psf_model_kind *out);
PSF_NODISCARD psf_err psf_optim_kind_parse(const char *s, psf_optim_kind *out);
PSF_NODISCARD psf_err psf_lr_schedule_parse(const char *s, psf_lr_schedule *out);
PSF_NODISCARD psf_err psf_target_parse(const char *s, psf_target_kind *out);
PSF_NODISCARD psf_err psf_shard_by_parse(const char *s, psf_shard_by *out);
PSF_NODISCARD psf_err psf_bad_rows_parse(const char *s, psf_bad_rows *out);
PSF_NODISCARD psf_err psf_route_parse(const char *s, psf_gateway_route *out);

/* New addresses of one node for psf_config_write_nodes; NULL leaves a key as it
 * is written. */
typedef struct psf_node_addrs {
	const char *listen;
	const char *advertise; /* "" removes the key (the node is dialed at listen) */
	const char *metrics;
} psf_node_addrs;

/* psf_config_write_nodes writes to out_path the YAML document of the file cfg was
 * loaded from (cfg->path), with the listen, advertise and metrics keys of node i
 * (cfg->nodes order) set as addrs[i] says; every other key stays as written, ${VAR}
 * placeholders unexpanded (comments are not kept). header (NULL: none) goes first,
 * each of its lines as a "# " comment. Returns PSF_OK, or PSF_ESYS / PSF_ECONFIG /
 * PSF_ENOMEM with one line in errbuf. */
PSF_NODISCARD psf_err psf_config_write_nodes(const psf_config *cfg, const psf_node_addrs *addrs,
    const char *out_path, const char *header, char *errbuf, size_t errlen);

/* psf_feature_parse parses one feature spelling such as "sma:10" or "dow".
 * Returns PSF_OK and fills *out, or PSF_EINVAL. */
PSF_NODISCARD psf_err psf_feature_parse(const char *spec, psf_feature_cfg *out);

#endif
