/*
 * envd: asynchronous fetch of the sandbox-wide environment variables.
 *
 * GET <envd_url>/envs, forwarding the request's X-Access-Token, over a
 * non-blocking socket driven by the loop; the answer is a JSON object of
 * string -> string. Every failure (nothing listening, timeout, non-200,
 * malformed body, non-string values) degrades to an empty object and a
 * reason handed to the caller, who decides how loudly to say it: executions
 * never fail because envd is absent. Only http:// URLs with a host (name or
 * IPv4/IPv6 literal) and optional port are supported; envd_url_check lets
 * the option parser refuse any other at start. Loop thread only.
 */
#ifndef E2BCI_ENVD_H
#define E2BCI_ENVD_H

#include <jansson.h>

struct loop;
struct envd_req;

/* vars: a new reference to a JSON object (possibly empty); the callee owns
 * it. why: NULL when envd answered, else a static reason why vars is empty
 * (also logged here at debug level). */
typedef void (*envd_done_fn)(void *arg, json_t *vars, const char *why);

/* 0 when url is one envd_fetch can use (http://host[:port][/base], no
 * user info, query or fragment), else -1. Any thread. */
int envd_url_check(const char *url);

/* Starts a fetch. done is called exactly once, from the loop (never from
 * inside envd_fetch itself), unless the request is cancelled first. token may
 * be NULL. Returns a handle valid until done runs or envd_cancel, or NULL on
 * ENOMEM. */
struct envd_req *envd_fetch(struct loop *l, const char *url, const char *token,
			    long timeout_ms, envd_done_fn done, void *arg);
/* Cancels a pending fetch; done is not called. Accepts NULL. */
void envd_cancel(struct envd_req *r);

#endif
