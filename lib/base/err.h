/* err.h -- psfleet's one error enum (STYLE.md §3).
 *
 * The enum, its names and its messages come from one X-macro list so they cannot
 * drift. Foreign codes (NNG, LMDB, errno, protobuf-c's NULL) are translated once,
 * in the wrapper that calls the library. */
#ifndef PSF_ERR_H
#define PSF_ERR_H

#define PSF_NODISCARD __attribute__((warn_unused_result))
#define PSF_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* X(name, message) */
#define PSF_ERR_MAP(X)                    \
	X(OK, "success")                  \
	X(ENOMEM, "out of memory")        \
	X(EINVAL, "invalid argument")     \
	X(ENOENT, "not found")            \
	X(EPROTO, "malformed message")    \
	X(ETIMEDOUT, "deadline exceeded") \
	X(ECLOSED, "closed")              \
	X(ENOSPC, "no space left")        \
	X(ESTORE, "store error")          \
	X(ESYS, "system error")           \
	X(EUNAVAIL, "unavailable")        \
	X(EEXIST, "already exists")       \
	X(ERANGE, "out of range")         \
	X(ETOOBIG, "message too large")   \
	X(EAUTH, "unauthenticated")       \
	X(ENOTIMPL, "not implemented")    \
	X(ESTATE, "failed precondition")  \
	X(EINTERNAL, "internal error")    \
	X(ECONFIG, "configuration error") \
	X(EBUSY, "resource exhausted")    \
	X(ELOCKED, "in use by another process")

typedef enum psf_err {
#define PSF_ERR_ENUM(name, msg) PSF_##name,
	PSF_ERR_MAP(PSF_ERR_ENUM)
#undef PSF_ERR_ENUM
	    PSF_ERR_COUNT
} psf_err;

/* psf_strerror returns a static message for err (never NULL). Cannot fail. */
const char *psf_strerror(psf_err err);

/* psf_err_name returns the enum's name without prefix, e.g. "ENOENT". Cannot fail. */
const char *psf_err_name(psf_err err);

/* psf_err_from_errno maps an errno value to the closest psf_err. Cannot fail. */
psf_err psf_err_from_errno(int errnum);

#endif
