/*
 * fuzz.h: what every libFuzzer target here shares.
 *
 * FUZZ_CHECK is an invariant, not a programmer-error assert: it stays on in
 * every build, names the broken condition and aborts, which libFuzzer turns
 * into a crash file. Targets are single-threaded and keep no state between
 * inputs, so a crash file replays on its own (`fuzz_<t> crash-...`).
 */
#ifndef E2BCI_FUZZ_H
#define E2BCI_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: invariant failed: %s\n",       \
				__FILE__, __LINE__, #cond);                    \
			abort();                                               \
		}                                                              \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
