#define _GNU_SOURCE /* RTLD_NEXT */
#include "lib/net/rpc.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>

#include "lib/net/wire.h"

/* One table, both directions (STYLE.md §3: translate once). */
static const struct {
	psf_err err;
	psf_status status;
} err_status[] = {
    {PSF_OK, PSFLEET__V1__STATUS_CODE__OK},
    {PSF_EINVAL, PSFLEET__V1__STATUS_CODE__INVALID_ARGUMENT},
    {PSF_EPROTO, PSFLEET__V1__STATUS_CODE__INVALID_ARGUMENT},
    {PSF_ERANGE, PSFLEET__V1__STATUS_CODE__OUT_OF_RANGE},
    {PSF_ENOENT, PSFLEET__V1__STATUS_CODE__NOT_FOUND},
    {PSF_ETIMEDOUT, PSFLEET__V1__STATUS_CODE__DEADLINE_EXCEEDED},
    {PSF_EUNAVAIL, PSFLEET__V1__STATUS_CODE__UNAVAILABLE},
    {PSF_ECLOSED, PSFLEET__V1__STATUS_CODE__UNAVAILABLE},
    {PSF_EEXIST, PSFLEET__V1__STATUS_CODE__ALREADY_EXISTS},
    {PSF_ETOOBIG, PSFLEET__V1__STATUS_CODE__RESOURCE_EXHAUSTED},
    {PSF_EBUSY, PSFLEET__V1__STATUS_CODE__RESOURCE_EXHAUSTED},
    {PSF_ENOSPC, PSFLEET__V1__STATUS_CODE__RESOURCE_EXHAUSTED},
    {PSF_EAUTH, PSFLEET__V1__STATUS_CODE__UNAUTHENTICATED},
    {PSF_ENOTIMPL, PSFLEET__V1__STATUS_CODE__UNIMPLEMENTED},
    {PSF_ESTATE, PSFLEET__V1__STATUS_CODE__FAILED_PRECONDITION},
    {PSF_ECONFIG, PSFLEET__V1__STATUS_CODE__FAILED_PRECONDITION},
    {PSF_ENOMEM, PSFLEET__V1__STATUS_CODE__RESOURCE_EXHAUSTED},
    {PSF_EINTERNAL, PSFLEET__V1__STATUS_CODE__INTERNAL},
    {PSF_ESTORE, PSFLEET__V1__STATUS_CODE__INTERNAL},
    {PSF_ESYS, PSFLEET__V1__STATUS_CODE__INTERNAL},
};

psf_status
psf_status_from_err(psf_err err)
{
	for (size_t i = 0; i < PSF_ARRAY_LEN(err_status); i++) {
		if (err_status[i].err == err)
			return err_status[i].status;
	}
	return PSFLEET__V1__STATUS_CODE__INTERNAL;
}

psf_err
psf_err_from_status(psf_status status)
{
	/* First match wins, so the table's order picks the canonical psf_err. */
	for (size_t i = 0; i < PSF_ARRAY_LEN(err_status); i++) {
		if (err_status[i].status == status)
			return err_status[i].err;
	}
	switch (status) {
	case PSFLEET__V1__STATUS_CODE__ABORTED:
	case PSFLEET__V1__STATUS_CODE__CANCELLED: return PSF_ESTATE;
	case PSFLEET__V1__STATUS_CODE__PERMISSION_DENIED: return PSF_EAUTH;
	default: return PSF_EINTERNAL;
	}
}

const char *
psf_status_name(psf_status status)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
	    &psfleet__v1__status_code__descriptor, (int)status);

	return v != NULL ? v->name : "UNKNOWN_STATUS";
}

psf_err
psf_err_from_nng(int rv)
{
	switch (rv) {
	case 0: return PSF_OK;
	case NNG_ENOMEM: return PSF_ENOMEM;
	case NNG_EINVAL:
	case NNG_EADDRINVAL:
	case NNG_ENOTSUP:
	case NNG_EBADTYPE: return PSF_EINVAL;
	case NNG_ETIMEDOUT: return PSF_ETIMEDOUT;
	case NNG_ECLOSED:
	case NNG_ECANCELED: return PSF_ECLOSED;
	case NNG_ECONNREFUSED:
	case NNG_ECONNRESET:
	case NNG_ECONNSHUT:
	case NNG_EUNREACHABLE:
	case NNG_EAGAIN: return PSF_EUNAVAIL;
	case NNG_EADDRINUSE: return PSF_EEXIST;
	case NNG_EMSGSIZE: return PSF_ETOOBIG;
	case NNG_EPEERAUTH:
	case NNG_ECRYPTO:
	case NNG_EPERM: return PSF_EAUTH;
	case NNG_ENOENT: return PSF_ENOENT;
	case NNG_EPROTO: return PSF_EPROTO;
	default: return PSF_ESYS;
	}
}

/* walk_strings visits every string and nested message of m: with fix false it
 * returns false at the first invalid string; with fix true it replaces each
 * invalid string by a sanitized heap copy (m was unpacked with the default
 * allocator, so free_unpacked frees it) and returns false only when out of
 * memory. */
static bool
walk_strings(ProtobufCMessage *m, bool fix)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		uint8_t *base = (uint8_t *)m + f->offset;
		void **items = (void **)base;
		size_t n = 1;

		if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			memcpy(&n, (uint8_t *)m + f->quantifier_offset, sizeof(n));
			memcpy(&items, base, sizeof(items));
		} else if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0) {
			uint32_t which;
			memcpy(&which, (uint8_t *)m + f->quantifier_offset, sizeof(which));
			if (which != f->id)
				continue;
		}
		for (size_t k = 0; k < n; k++) {
			if (items[k] == NULL)
				continue;
			if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
				if (!walk_strings(items[k], fix))
					return false;
				continue;
			}
			size_t len = strlen(items[k]);
			if (psf_wire_utf8_valid(items[k], len))
				continue;
			if (!fix)
				return false;
			char *clean = malloc(3 * len + 1); /* each stray byte: 3 bytes */
			if (clean == NULL)
				return false;
			clean[psf_wire_utf8_sanitize(clean, 3 * len, items[k], len)] = '\0';
			free(items[k]); /* an invalid string is never the static default */
			items[k] = clean;
		}
	}
	return true;
}

bool
psf_rpc_msg_utf8_valid(const ProtobufCMessage *m)
{
	return walk_strings((ProtobufCMessage *)m, false); /* not written when !fix */
}

psf_err
psf_rpc_msg_utf8_copy(const ProtobufCMessage *m, ProtobufCMessage **out)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(len > 0 ? len : 1);
	ProtobufCMessage *copy;

	if (buf == NULL)
		return PSF_ENOMEM;
	protobuf_c_message_pack(m, buf);
	copy = protobuf_c_message_unpack(m->descriptor, NULL, len, buf);
	free(buf);
	if (copy == NULL)
		return PSF_ENOMEM; /* what it packed, it unpacks: only memory can fail */
	if (!walk_strings(copy, true)) {
		protobuf_c_message_free_unpacked(copy, NULL);
		return PSF_ENOMEM;
	}
	*out = copy;
	return PSF_OK;
}

/* ---- sendmsg(2) for NNG: EPIPE is ECONNRESET (see rpc.h) ------------------- */

_Atomic(psf_rpc_sendmsg_fn) psf_rpc_sendmsg_next;

ssize_t
sendmsg(int fd, const struct msghdr *msg, int flags)
{
	static _Atomic(psf_rpc_sendmsg_fn) libc_sendmsg;
	psf_rpc_sendmsg_fn next = atomic_load(&psf_rpc_sendmsg_next);
	psf_rpc_sendmsg_fn real = atomic_load(&libc_sendmsg);
	ssize_t n;

	if (next == NULL && real == NULL) {
		/* The next definition after this program's: libc's. Two threads may
		 * both look it up; they store the same pointer. */
		real = (psf_rpc_sendmsg_fn)dlsym(RTLD_NEXT, "sendmsg");
		if (real == NULL) {
			errno = ENOSYS;
			return -1;
		}
		atomic_store(&libc_sendmsg, real);
	}
	n = next != NULL ? next(fd, msg, flags) : real(fd, msg, flags);
	if (n < 0 && errno == EPIPE)
		errno = ECONNRESET;
	return n;
}
