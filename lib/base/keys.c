/* keys.c -- the row of a symbol in the parameter-key layout (keys.h). */
#include "lib/base/keys.h"

#include <string.h>

#include <xxhash.h>

uint64_t
psf_symbol_row(const char *symbol)
{
	if (symbol == NULL)
		symbol = "";
	return XXH3_64bits(symbol, strlen(symbol)) & PSF_KEY_ROW_MASK;
}
