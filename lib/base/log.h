/* log.h -- one line per event on stderr: `ts level node tag: msg key=value...`
 * (DESIGN.md §9). The level is checked before formatting. The sink is the only
 * process-wide state in psfleet; it is set once at start-up, before threads. */
#ifndef PSF_LOG_H
#define PSF_LOG_H

#include <stdio.h>

typedef enum psf_log_level {
	PSF_LOG_ERR = 0,
	PSF_LOG_WARN = 1,
	PSF_LOG_INFO = 2,
	PSF_LOG_DEBUG = 3,
} psf_log_level;

/* psf_log_setup sets the minimum level and the node name printed on every line.
 * node may be NULL ("-"). The string is copied. Call before starting threads.
 * The environment variable PSF_LOG_LEVEL (err|warn|info|debug), when set,
 * overrides level. Cannot fail. */
void psf_log_setup(psf_log_level level, const char *node);

/* psf_log_set_stream redirects output (default stderr). Cannot fail. */
void psf_log_set_stream(FILE *stream);

/* psf_log_level_parse parses "err", "warn", "info" or "debug".
 * Returns 0 and writes *out on success, -1 when the name is unknown. */
int psf_log_level_parse(const char *name, psf_log_level *out);

/* psf_log_enabled tells whether a message at level would be printed. */
int psf_log_enabled(psf_log_level level);

void psf_log_write(psf_log_level level, const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define psf_log_at(lvl, tag, ...)                             \
	do {                                                  \
		if (psf_log_enabled(lvl))                     \
			psf_log_write(lvl, tag, __VA_ARGS__); \
	} while (0)
#define psf_log_err(tag, ...) psf_log_at(PSF_LOG_ERR, tag, __VA_ARGS__)
#define psf_log_warn(tag, ...) psf_log_at(PSF_LOG_WARN, tag, __VA_ARGS__)
#define psf_log_info(tag, ...) psf_log_at(PSF_LOG_INFO, tag, __VA_ARGS__)
#define psf_log_debug(tag, ...) psf_log_at(PSF_LOG_DEBUG, tag, __VA_ARGS__)

#endif
