#include "lib/base/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The log sink: the one global psfleet keeps (STYLE.md §4.5). Written during
 * start-up only; read afterwards. */
static struct {
	psf_log_level level;
	char node[64];
	FILE *stream;
} sink = {PSF_LOG_INFO, "-", NULL};

static const char *const level_names[] = {"err", "warn", "info", "debug"};

int
psf_log_level_parse(const char *name, psf_log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (name != NULL && strcmp(name, level_names[i]) == 0) {
			*out = (psf_log_level)i;
			return 0;
		}
	}
	return -1;
}

void
psf_log_setup(psf_log_level level, const char *node)
{
	psf_log_level env_level;
	const char *env = getenv("PSF_LOG_LEVEL");

	sink.level = level;
	if (env != NULL && psf_log_level_parse(env, &env_level) == 0)
		sink.level = env_level;
	snprintf(sink.node, sizeof(sink.node), "%s", node != NULL ? node : "-");
}

void
psf_log_set_stream(FILE *stream)
{
	sink.stream = stream;
}

int
psf_log_enabled(psf_log_level level)
{
	return level <= sink.level;
}

void
psf_log_write(psf_log_level level, const char *tag, const char *fmt, ...)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	size_t n;
	va_list ap;
	FILE *out = sink.stream != NULL ? sink.stream : stderr;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof(line) - n,
	    ".%03ldZ %s %s %s: ", ts.tv_nsec / 1000000, level_names[level], sink.node, tag);
	if (n < sizeof(line)) {
		va_start(ap, fmt);
		vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		va_end(ap);
	}
	/* One fputs per line keeps lines whole across threads (stdio locks). */
	n = strlen(line);
	if (n + 1 < sizeof(line)) {
		line[n] = '\n';
		line[n + 1] = '\0';
	} else {
		line[sizeof(line) - 2] = '\n';
	}
	fputs(line, out);
	fflush(out);
}
