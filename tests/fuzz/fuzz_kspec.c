/*
 * fuzz_kspec: kernel.json parsing (kspec_parse) and argv substitution
 * (kspec_argv) on arbitrary file contents.
 *
 * The input is the file as read, not NUL-terminated. The environment holds
 * one variable (E2BCI_FUZZ=<v>) so that ${VAR} expansion has something to
 * find. Invariants:
 *   - NULL comes with a non-empty reason that names the file, within errlen
 *     also when errlen is tiny;
 *   - a spec has the name and absolute dir it was given, argc >= 1, a
 *     non-empty argv[0], NULL-terminated argv (argc strings) and env (nenv
 *     "KEY=VALUE" strings, KEY non-empty), non-NULL display_name and
 *     language; with no "${" in the file, env values are the file's own;
 *   - kspec_argv gives argc strings, none holding a placeholder that was
 *     not substituted, and argv[i] unchanged when it has no '{';
 *   - parsing twice gives the same result.
 */
#include "fuzz.h"

#include "kspec.h"

#include <jansson.h>
#include <string.h>

#define DIR_ "/usr/share/jupyter/kernels/fuzz"
#define CONN "/run/e2b-ci/kernel-fuzz.json"

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	setenv("E2BCI_FUZZ", "expanded", 1);
	return 0;
}

static void check_spec(const struct kspec *k, const char *json, size_t len)
{
	size_t i;
	char **v;

	FUZZ_CHECK(strcmp(k->name, "fuzz") == 0 && strcmp(k->dir, DIR_) == 0);
	FUZZ_CHECK(k->argc >= 1 && k->argv != NULL && k->argv[0][0] != '\0');
	for (i = 0; i < k->argc; i++)
		FUZZ_CHECK(k->argv[i] != NULL);
	FUZZ_CHECK(k->argv[k->argc] == NULL);
	FUZZ_CHECK(k->env != NULL && k->env[k->nenv] == NULL);
	for (i = 0; i < k->nenv; i++) {
		const char *eq = strchr(k->env[i], '=');
		FUZZ_CHECK(eq != NULL && eq != k->env[i]);
	}
	FUZZ_CHECK(k->display_name != NULL && k->language != NULL);
	if (memmem(json, len, "${", 2) == NULL && k->nenv > 0) {
		/* No expansion possible: each value is in the file verbatim. */
		json_t *root = json_loadb(json, len, 0, NULL), *e;
		FUZZ_CHECK(root != NULL);
		e = json_object_get(root, "env");
		for (i = 0; i < k->nenv; i++) {
			const char *eq = strchr(k->env[i], '=');
			char *key =
			    strndup(k->env[i], (size_t)(eq - k->env[i]));
			json_t *val = json_object_get(e, key);
			FUZZ_CHECK(json_is_string(val) &&
				   strcmp(json_string_value(val), eq + 1) == 0);
			free(key);
		}
		json_decref(root);
	}
	v = kspec_argv(k, CONN);
	FUZZ_CHECK(v != NULL);
	for (i = 0; i < k->argc; i++) {
		FUZZ_CHECK(v[i] != NULL);
		FUZZ_CHECK(strstr(v[i], "{connection_file}") == NULL &&
			   strstr(v[i], "{resource_dir}") == NULL &&
			   strstr(v[i], "{prefix}") == NULL);
		if (strchr(k->argv[i], '{') == NULL)
			FUZZ_CHECK(strcmp(v[i], k->argv[i]) == 0);
	}
	FUZZ_CHECK(v[k->argc] == NULL);
	kspec_strv_free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *json = malloc(size ? size : 1), err[512], tiny[8];
	struct kspec *k, *k2;

	FUZZ_CHECK(json != NULL);
	if (size)
		memcpy(json, data, size);
	err[0] = '\0';
	k = kspec_parse(json, size, DIR_ "/", "fuzz", err, sizeof(err));
	if (k == NULL) {
		FUZZ_CHECK(strncmp(err, DIR_ "/kernel.json: ",
				   strlen(DIR_ "/kernel.json: ")) == 0);
		FUZZ_CHECK(strlen(err) > strlen(DIR_ "/kernel.json: "));
	} else {
		check_spec(k, json, size);
	}
	memset(tiny, 'x', sizeof(tiny));
	k2 = kspec_parse(json, size, DIR_, "fuzz", tiny, 5);
	FUZZ_CHECK((k == NULL) == (k2 == NULL));
	if (k == NULL)
		FUZZ_CHECK(strlen(tiny) == 4 && tiny[5] == 'x');
	if (k != NULL) {
		size_t i;
		FUZZ_CHECK(k->argc == k2->argc && k->nenv == k2->nenv &&
			   k->interrupt_message == k2->interrupt_message &&
			   strcmp(k->language, k2->language) == 0 &&
			   strcmp(k->display_name, k2->display_name) == 0);
		for (i = 0; i < k->argc; i++)
			FUZZ_CHECK(strcmp(k->argv[i], k2->argv[i]) == 0);
		for (i = 0; i < k->nenv; i++)
			FUZZ_CHECK(strcmp(k->env[i], k2->env[i]) == 0);
	}
	kspec_free(k2);
	kspec_free(k);
	free(json);
	return 0;
}
