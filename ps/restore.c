/* restore.c -- start a ps from a backup made by `psfleet backup` (backup.c):
 * copy <backup>/<node id>/data.mdb into the node's empty data_dir before the
 * store is opened. A marker file records which backup was restored, so a node
 * restarted with the same --restore resumes what it trained since instead of
 * starting over, and an existing store is never overwritten. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base/log.h"
#include "lib/base/util.h"
#include "ps/internal.h"

#define MARKER "restored-from"

/* copy_file copies src to dst (created, must not exist) and fsyncs it. */
static psf_err
copy_file(const char *src, const char *dst)
{
	char buf[1 << 16];
	int in = open(src, O_RDONLY | O_CLOEXEC), out = -1;
	psf_err rv = PSF_OK;
	ssize_t n;

	if (in < 0)
		return PSF_ESYS;
	if ((out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0) {
		close(in);
		return errno == EEXIST ? PSF_EEXIST : PSF_ESYS;
	}
	while (rv == PSF_OK && (n = read(in, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno != EINTR)
				rv = PSF_ESYS;
			continue;
		}
		rv = psf_write_all(out, buf, (size_t)n);
	}
	if (rv == PSF_OK && fsync(out) != 0)
		rv = errno == ENOSPC ? PSF_ENOSPC : PSF_ESYS;
	close(in);
	if (close(out) != 0 && rv == PSF_OK)
		rv = PSF_ESYS;
	return rv;
}

psf_err
ps_restore(const char *data_dir, const char *backup_dir, const char *id)
{
	char src[4096], dst[4096 + 32], tmp[4096 + 32], marker[4096 + 32], want[8192];
	char *have = NULL;
	struct stat sb;
	psf_err rv;
	int n;

	n = snprintf(src, sizeof(src), "%s/%s/data.mdb", backup_dir, id);
	if (n < 0 || (size_t)n >= sizeof(src))
		return PSF_EINVAL;
	if (stat(src, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		psf_log_err("ps",
		    "--restore: %s has no backup of %s (no %s): run psfleet backup "
		    "first, or give the directory it wrote",
		    backup_dir, id, src);
		return PSF_ECONFIG;
	}
	snprintf(want, sizeof(want), "%s %lld %lld\n", src, (long long)sb.st_size,
	    (long long)sb.st_mtime);
	snprintf(dst, sizeof(dst), "%s/data.mdb", data_dir);
	snprintf(tmp, sizeof(tmp), "%s/data.mdb.restoring", data_dir);
	snprintf(marker, sizeof(marker), "%s/" MARKER, data_dir);
	if (stat(dst, &sb) == 0) {
		bool same = psf_read_file(marker, &have, NULL) == PSF_OK && strcmp(have, want) == 0;

		free(have);
		if (same) {
			psf_log_info("ps", "--restore: %s was restored from %s before; resuming it",
			    data_dir, backup_dir);
			return PSF_OK;
		}
		psf_log_err("ps",
		    "--restore: %s already holds a store: restore into an empty "
		    "data_dir (another run_dir, or remove it first)",
		    data_dir);
		return PSF_ECONFIG;
	}
	if ((rv = psf_mkdir_p(data_dir)) != PSF_OK)
		return rv;
	(void)unlink(tmp);
	if ((rv = copy_file(src, tmp)) != PSF_OK) {
		(void)unlink(tmp);
		psf_log_err("ps", "--restore: copying %s into %s: %s", src, data_dir,
		    psf_strerror(rv));
		return rv;
	}
	/* The marker first: a crash after it and before the rename leaves no
	 * data.mdb, so the next start copies again. */
	{
		FILE *f = fopen(marker, "w");

		if (f == NULL || fputs(want, f) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
			if (f != NULL)
				fclose(f);
			(void)unlink(tmp);
			psf_log_err("ps", "--restore: cannot write %s: %s", marker,
			    strerror(errno));
			return PSF_ESYS;
		}
		fclose(f);
	}
	if (rename(tmp, dst) != 0) {
		(void)unlink(tmp);
		psf_log_err("ps", "--restore: rename into %s: %s", dst, strerror(errno));
		return PSF_ESYS;
	}
	psf_log_info("ps", "--restore: %s restored from %s", data_dir, src);
	return PSF_OK;
}
