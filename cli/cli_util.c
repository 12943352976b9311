/* cli_util.c -- the small helpers every psfleet subcommand shares (cli/cli.h), in
 * the fleet library so that cli/experiment needs nothing from main.c. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int
psf_cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return 1;
	}
	return 0;
}

/* psfleet up --metrics-out and the experiment's summary.json write JSON strings so. */
void
psf_cli_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++) {
		if (*c == '"' || *c == '\\')
			fprintf(f, "\\%c", *c);
		else if (*c < 0x20)
			fprintf(f, "\\u%04x", *c);
		else
			fputc(*c, f);
	}
	fputc('"', f);
}

void
psf_cli_yaml_quote(const char *s, char *out, size_t len)
{
	size_t n = 0;

	out[n++] = '\'';
	for (; *s != '\0' && n + 3 < len; s++) {
		if (*s == '\'')
			out[n++] = '\'';
		out[n++] = *s;
	}
	out[n++] = '\'';
	out[n] = '\0';
}
