/* up_hint.c -- the `try: psfleet predict ...` line psfleet up prints once the fleet
 * serves: a command a user can paste as it is. So it names the psfleet binary that
 * is running (a bare `psfleet` only when PATH finds this very binary, else its
 * absolute path), and carries
 * the token and TLS options the fleet's security section requires. */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lib/config/config.h"

/* on_path tells whether looking "psfleet" up in PATH finds the file self is. */
static bool
on_path(const struct stat *self)
{
	const char *path = getenv("PATH");
	char dir[PATH_MAX], file[PATH_MAX + 16];
	struct stat st;

	for (const char *p = path; p != NULL && *p != '\0';) {
		size_t n = strcspn(p, ":");

		snprintf(dir, sizeof(dir), "%.*s", (int)n, p);
		snprintf(file, sizeof(file), "%s/psfleet", n > 0 ? dir : ".");
		if (stat(file, &st) == 0 && access(file, X_OK) == 0) /* the first match runs */
			return st.st_dev == self->st_dev && st.st_ino == self->st_ino;
		p += n + (p[n] == ':');
	}
	return false;
}

/* exe_word writes how to run this binary: "psfleet" when PATH finds it, else its
 * absolute path. Not a path relative to our directory: the user's shell may be
 * elsewhere (scripts/demo.sh changes to the repository before it runs up). */
static void
exe_word(char *buf, size_t len)
{
	char exe[PATH_MAX];
	struct stat st;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n <= 0 || stat("/proc/self/exe", &st) != 0) {
		snprintf(buf, len, "psfleet");
		return;
	}
	exe[n] = '\0';
	snprintf(buf, len, "%s", on_path(&st) ? "psfleet" : exe);
}

/* add appends " opt 'value'" to buf (at *used), quoting value for a POSIX shell
 * unless it is plain. value NULL appends nothing. A file (is_file) is given by its
 * absolute path, which works from any directory (config paths are relative to the
 * directory up runs in; the config check made sure the files exist). */
static void
add(char *buf, size_t len, size_t *used, const char *opt, const char *value, bool is_file)
{
	char abs[PATH_MAX];
	bool plain;

	if (value == NULL || *used >= len)
		return;
	if (is_file && realpath(value, abs) != NULL)
		value = abs;
	plain = value[0] != '\0';
	for (const char *s = value; *s != '\0' && plain; s++)
		plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
		               "._-/:+=,@%",
		            *s) != NULL;
	*used += (size_t)snprintf(buf + *used, len - *used, " %s %s", opt, plain ? "" : "'");
	for (const char *s = value; *s != '\0' && *used < len; s++)
		*used +=
		    (size_t)snprintf(buf + *used, len - *used, *s == '\'' ? "'\\''" : "%c", *s);
	if (!plain && *used < len)
		*used += (size_t)snprintf(buf + *used, len - *used, "'");
}

void
psf_up_predict_hint(const struct psf_config *cfg, const char *url, const char *symbol, char *buf,
    size_t len)
{
	const psf_security_cfg *sec = &cfg->security;
	char exe[PATH_MAX], env[300];
	size_t used;

	exe_word(exe, sizeof(exe));
	used = (size_t)snprintf(buf, len, "%s predict", exe);
	add(buf, len, &used, "--connect", url, false);
	add(buf, len, &used, "--token-file", sec->token_file, true);
	if (sec->token_env != NULL && used < len) {
		/* predict reads a token only from a file; the shell makes one of the variable */
		snprintf(env, sizeof(env), "<(printenv %s)", sec->token_env);
		used += (size_t)snprintf(buf + used, len - used, " --token-file %s", env);
	}
	if (strncmp(url, "tls+tcp://", 10) == 0) {
		add(buf, len, &used, "--ca-file", sec->tls_ca, true);
		add(buf, len, &used, "--server-name", sec->tls_server_name, false);
		/* with a CA the servers verify their peers too: mutual TLS */
		if (sec->tls_ca != NULL) {
			add(buf, len, &used, "--cert", sec->tls_cert, true);
			add(buf, len, &used, "--key", sec->tls_key, true);
		}
	}
	if (used < len)
		snprintf(buf + used, len - used, " %s", symbol);
}

void
psf_up_first_symbol(const char *path, char *buf, size_t len)
{
	char line[4096];
	struct stat st;
	FILE *f;
	int col = -1, k = 0;

	snprintf(buf, len, "SYMBOL");
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		struct dirent **names = NULL;
		int n = scandir(path, &names, NULL, alphasort);

		for (int i = 0; i < n; i++) {
			if (strncmp(names[i]->d_name, "symbol=", 7) == 0 &&
			    strcmp(buf, "SYMBOL") == 0)
				snprintf(buf, len, "%s", names[i]->d_name + 7);
			free(names[i]);
		}
		free(names);
		return;
	}
	if ((f = fopen(path, "r")) == NULL)
		return;
	if (fgets(line, sizeof(line), f) != NULL) {
		for (char *save = NULL, *t = strtok_r(line, ",\r\n", &save); t != NULL;
		     t = strtok_r(NULL, ",\r\n", &save), k++)
			if (strcmp(t, "symbol") == 0)
				col = k;
	}
	if (col >= 0 && fgets(line, sizeof(line), f) != NULL) {
		char *p = line;
		for (k = 0; k < col && p != NULL; k++)
			p = strchr(p, ',') != NULL ? strchr(p, ',') + 1 : NULL;
		if (p != NULL && p[strcspn(p, ",\r\n")] != '\0' && strcspn(p, ",\r\n") > 0)
			snprintf(buf, len, "%.*s", (int)strcspn(p, ",\r\n"), p);
	}
	fclose(f);
}
