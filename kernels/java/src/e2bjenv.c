/*
 * e2bjenv: JNI helpers for the Java runner (e2bci.Native). The JVM caches the
 * environment at startup for System.getenv, but children spawned without an
 * explicit environment get the C environ, so the env helper changes both:
 * the Java maps by reflection (E2b.java) and environ here. unignoreSigint0
 * resets an inherited SIG_IGN for SIGINT, which HotSpot would otherwise
 * honour by never installing the handler the runner registers.
 * waitReadable0 waits until the request pipe has bytes (or its end), so the
 * runner can take them off the pipe under its lock: a SIGINT then always
 * finds a request in the pipe or in the runner, never in between.
 * Called from Java threads; setenv/unsetenv are not thread-safe against
 * concurrent getenv in native code, which the runner accepts (helper cells
 * run between user cells).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <jni.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "e2bci_Native.h"

/* Copies a NUL-terminated byte[] into a malloc'd C string; NULL on failure. */
static char *e2bjenv_cstr(JNIEnv *env, jbyteArray a)
{
	jsize n;
	char *s;

	if (a == NULL)
		return NULL;
	n = (*env)->GetArrayLength(env, a);
	s = malloc((size_t)n + 1);
	if (s == NULL)
		return NULL;
	(*env)->GetByteArrayRegion(env, a, 0, n, (jbyte *)s);
	s[n] = '\0';
	return s;
}

JNIEXPORT jint JNICALL Java_e2bci_Native_setenv0(JNIEnv *env, jclass cls,
						 jbyteArray name,
						 jbyteArray value)
{
	char *k = e2bjenv_cstr(env, name), *v = e2bjenv_cstr(env, value);
	int rc = 0;

	(void)cls;
	if (k == NULL || v == NULL)
		rc = ENOMEM;
	else if (setenv(k, v, 1) < 0)
		rc = errno;
	free(k);
	free(v);
	return rc;
}

JNIEXPORT jint JNICALL Java_e2bci_Native_unsetenv0(JNIEnv *env, jclass cls,
						   jbyteArray name)
{
	char *k = e2bjenv_cstr(env, name);
	int rc = 0;

	(void)cls;
	if (k == NULL)
		rc = ENOMEM;
	else if (unsetenv(k) < 0)
		rc = errno;
	free(k);
	return rc;
}

JNIEXPORT jboolean JNICALL Java_e2bci_Native_unignoreSigint0(JNIEnv *env,
							     jclass cls)
{
	struct sigaction sa;

	(void)env;
	(void)cls;
	if (sigaction(SIGINT, NULL, &sa) < 0 || sa.sa_handler != SIG_IGN)
		return JNI_FALSE;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGINT, &sa, NULL) == 0 ? JNI_TRUE : JNI_FALSE;
}

JNIEXPORT jint JNICALL Java_e2bci_Native_waitReadable0(JNIEnv *env, jclass cls,
							 jint fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int rc;

	(void)env;
	(void)cls;
	do
		rc = poll(&p, 1, -1);
	while (rc < 0 && errno == EINTR);
	return rc < 0 ? -errno : 0;
}
