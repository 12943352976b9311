/* deploy.h -- `psfleet deploy kubernetes`: the plan (names, ports, the rewritten
 * config) made by cmd_deploy.c and the manifests deploy_k8s.c writes from it.
 * Private to cli/. */
#ifndef PSF_CLI_DEPLOY_H
#define PSF_CLI_DEPLOY_H

#include <stdbool.h>
#include <stdio.h>

#include "lib/config/config.h"

/* Paths inside the containers (docs/kubernetes.md). */
#define DEPLOY_CONFIG_DIR "/etc/psfleet"
#define DEPLOY_CONFIG_KEY "fleet.yaml"
#define DEPLOY_STORE_DIR "/var/lib/psfleet"
#define DEPLOY_DATA_DIR "/srv/psfleet/data"
#define DEPLOY_SECRET_DIR "/var/run/secrets/psfleet" /* the security files, read-only */
#define DEPLOY_MAX_FILES 4

/* One file the config's security section names, mounted into every pod from a
 * Secret at DEPLOY_SECRET_DIR/<item>. */
typedef struct deploy_file {
	const char *key;   /* the config key: token_file, tls_cert, tls_key, tls_ca */
	const char *item;  /* its key in the Secret and its file name in the pods */
	const char *local; /* the path the config names (read at render time) */
	char *data;        /* its content, for a rendered Secret; NULL with --secret */
	size_t len;
} deploy_file;

/* The ports one pod template serves: every pod of a StatefulSet or Job shares them. */
typedef struct deploy_ports {
	unsigned rpc;     /* 0 = no RPC listener (trainers) */
	unsigned metrics; /* /metrics and /healthz */
	char scheme[16];  /* of the RPC URL: tcp, tls+tcp, ... */
} deploy_ports;

typedef struct deploy_plan {
	const psf_config *cfg;
	const char *config_path;
	const char *image;
	const char *ns;
	const char *domain;     /* cluster domain, e.g. cluster.local */
	const char *data_claim; /* PVC holding the data; NULL = generate into emptyDir */
	const char *storage;    /* ps store size, e.g. 1Gi */
	const char *storage_class;
	const char *pull_policy;
	bool train_only;
	const char *secret_name; /* --secret: mount this existing Secret, render none */
	char secret[256];        /* the Secret the pods mount; "" = no security files */
	deploy_file files[DEPLOY_MAX_FILES];
	size_t n_files;
	char prefix[40];     /* DNS label every object name starts with */
	char data_file[256]; /* data.path inside the pods */
	deploy_ports ps, trainer;
	deploy_ports *inferer; /* one per inferer, in config order */
	deploy_ports gateway;
	char (*label)[64];       /* per node: DNS label of its id (cfg->nodes order) */
	char *config_text;       /* the rewritten config (the ConfigMap's fleet.yaml) */
	unsigned long long hash; /* of config_text: pods roll when it changes */
} deploy_plan;

/* deploy_k8s_write writes every Kubernetes object of the plan to out as a stream of
 * YAML documents. Returns 0, or -1 when writing failed. */
int deploy_k8s_write(const deploy_plan *p, FILE *out);

/* deploy_host writes into buf the DNS name node i of the plan's config gets in the
 * cluster: <prefix>-ps-N.<prefix>-ps.NS.svc.DOMAIN for ps nodes (StatefulSet pod N),
 * <prefix>-trainer-N.<prefix>-trainer.NS.svc.DOMAIN for trainers (Indexed Job pod N),
 * <prefix>-<id>.NS.svc.DOMAIN (a Service) for the inferers and the gateway. */
void deploy_host(const deploy_plan *p, size_t i, char *buf, size_t len);

#endif
