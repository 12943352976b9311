/* data_internal.h -- private declarations shared by common/data.c and
 * common/datagen.c only. Not part of the contract: include common/data.h or
 * common/datagen.h instead. */
#ifndef PSF_DATA_INTERNAL_H
#define PSF_DATA_INTERNAL_H

/* Bytes of the error line a load, scan or write builds before copying it to the
 * caller's errbuf. */
#define DATA_MSG_LEN 320

/* data_msgf formats an error line into msg (DATA_MSG_LEN bytes), truncating;
 * always NUL-terminated. Cannot fail. */
void data_msgf(char *msg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
