#include "lib/base/err.h"

#include <errno.h>

static const char *const messages[] = {
#define PSF_ERR_MSG(name, msg) msg,
    PSF_ERR_MAP(PSF_ERR_MSG)
#undef PSF_ERR_MSG
};

static const char *const names[] = {
#define PSF_ERR_NAME(name, msg) #name,
    PSF_ERR_MAP(PSF_ERR_NAME)
#undef PSF_ERR_NAME
};

const char *
psf_strerror(psf_err err)
{
	if ((unsigned)err >= PSF_ARRAY_LEN(messages))
		return "unknown error";
	return messages[err];
}

const char *
psf_err_name(psf_err err)
{
	if ((unsigned)err >= PSF_ARRAY_LEN(names))
		return "EUNKNOWN";
	return names[err];
}

psf_err
psf_err_from_errno(int errnum)
{
	switch (errnum) {
	case 0: return PSF_OK;
	case ENOMEM: return PSF_ENOMEM;
	case EINVAL: return PSF_EINVAL;
	case ENOENT: return PSF_ENOENT;
	case ETIMEDOUT: return PSF_ETIMEDOUT;
	case ENOSPC:
	case EDQUOT: return PSF_ENOSPC;
	case EEXIST: return PSF_EEXIST;
	case ERANGE: return PSF_ERANGE;
	case EACCES:
	case EPERM: return PSF_EAUTH;
	default: return PSF_ESYS;
	}
}
