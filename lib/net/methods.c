/* methods.c -- checks the PSF_M_* names against the generated descriptors. */
#include "lib/net/methods.h"

#include <stdio.h>
#include <string.h>

#include "lib/base/log.h"
#include "psfleet.pb-c.h"

typedef struct method_name {
	const char *full;
	const ProtobufCServiceDescriptor *svc;
} method_name;

static const method_name methods[] = {
    {PSF_M_REGISTER, &psfleet__v1__parameter_server__descriptor},
    {PSF_M_PULL, &psfleet__v1__parameter_server__descriptor},
    {PSF_M_PUSH, &psfleet__v1__parameter_server__descriptor},
    {PSF_M_CLOCK, &psfleet__v1__parameter_server__descriptor},
    {PSF_M_SNAPSHOT, &psfleet__v1__parameter_server__descriptor},
    {PSF_M_STATS, &psfleet__v1__parameter_server__descriptor},
    {PSF_M_REDUCE, &psfleet__v1__parameter_server__descriptor},
    {PSF_M_REPORT, &psfleet__v1__parameter_server__descriptor},
    {PSF_M_BACKUP, &psfleet__v1__parameter_server__descriptor},
    {PSF_M_ASSIGN, &psfleet__v1__parameter_server__descriptor},
    {PSF_M_PUSH_PULL, &psfleet__v1__parameter_server__descriptor},
    {PSF_M_APPEND_SAMPLES, &psfleet__v1__parameter_server__descriptor},
    {PSF_M_FINE_TUNE, &psfleet__v1__parameter_server__descriptor},
    {PSF_M_PREDICT, &psfleet__v1__inference__descriptor},
    {PSF_M_PREDICT_BATCH, &psfleet__v1__inference__descriptor},
    {PSF_M_MODEL_INFO, &psfleet__v1__inference__descriptor},
    {PSF_M_INGEST, &psfleet__v1__inference__descriptor},
    {PSF_M_HEALTH, &psfleet__v1__admin__descriptor},
    {PSF_M_STATUS, &psfleet__v1__admin__descriptor},
    {PSF_M_SHUTDOWN, &psfleet__v1__admin__descriptor},
    {PSF_M_REPLICATE, &psfleet__v1__replication__descriptor},
    {PSF_M_REPL_HEARTBEAT, &psfleet__v1__replication__descriptor},
    {PSF_M_REPL_VOTE, &psfleet__v1__replication__descriptor},
    {PSF_M_REPL_JOIN, &psfleet__v1__replication__descriptor},
    {PSF_M_REPL_INSTALL, &psfleet__v1__replication__descriptor},
};
#define N_METHODS (sizeof(methods) / sizeof(methods[0]))

static const ProtobufCServiceDescriptor *const services[] = {
    &psfleet__v1__parameter_server__descriptor,
    &psfleet__v1__inference__descriptor,
    &psfleet__v1__admin__descriptor,
    &psfleet__v1__replication__descriptor,
};

/* resolves: does full ("pkg.Service/Method") name a method of svc? */
static int
resolves(const char *full, const ProtobufCServiceDescriptor *svc)
{
	const char *slash = strchr(full, '/');
	size_t n = strlen(svc->name);

	return slash != NULL && (size_t)(slash - full) == n && strncmp(full, svc->name, n) == 0 &&
	    protobuf_c_service_descriptor_get_method_by_name(svc, slash + 1) != NULL;
}

static int
has_constant(const char *full)
{
	for (size_t i = 0; i < N_METHODS; i++) {
		if (strcmp(methods[i].full, full) == 0)
			return 1;
	}
	return 0;
}

psf_err
psf_methods_check(void)
{
	psf_err err = PSF_OK;
	char full[256];

	for (size_t i = 0; i < N_METHODS; i++) {
		if (!resolves(methods[i].full, methods[i].svc)) {
			psf_log_err("rpc", "method %s: not in service %s (proto/psfleet.proto)",
			    methods[i].full, methods[i].svc->name);
			err = PSF_EPROTO;
		}
	}
	for (size_t s = 0; s < sizeof(services) / sizeof(services[0]); s++) {
		for (unsigned m = 0; m < services[s]->n_methods; m++) {
			snprintf(full, sizeof(full), "%s/%s", services[s]->name,
			    services[s]->methods[m].name);
			if (!has_constant(full)) {
				psf_log_err("rpc",
				    "method %s: no PSF_M_ constant (lib/net/methods.h)", full);
				err = PSF_EPROTO;
			}
		}
	}
	return err;
}
