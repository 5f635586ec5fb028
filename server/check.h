/*
 * check: the kernel checks of `e2b-ci --check`, for every default language:
 * a kernelspec resolves, its argv[0] is executable, and the check commands
 * its kernel.json lists (metadata["e2b-ci"]["check"]) exit 0. Starts no
 * kernel. Startup only; blocking.
 */
#ifndef E2BCI_CHECK_H
#define E2BCI_CHECK_H

#include <stdio.h>

/* Checks each language of the NULL-terminated list (normalized names) with
 * the kernelspec search path given. Prints one "ok" line per good language
 * to out and one reason per failed one to err. Returns the number of
 * languages that failed. */
int check_kernels(char *const *path, char *const *languages, FILE *out,
		  FILE *err);

#endif
