/*
 * envd: asynchronous fetch of the sandbox-wide environment variables.
 *
 * GET <envd_url>/envs, forwarding the request's X-Access-Token, over a
 * non-blocking socket driven by the loop; the answer is a JSON object of
 * string -> string. Every failure (nothing listening, timeout, non-200,
 * malformed body, non-string values) degrades quietly to an empty object and
 * a debug log line: executions never fail because envd is absent. Only
 * http:// URLs with a host (name or IPv4/IPv6 literal) and optional port are
 * supported. Loop thread only.
 */
#ifndef E2BCI_ENVD_H
#define E2BCI_ENVD_H

#include <jansson.h>

struct loop;
struct envd_req;

/* vars: a new reference to a JSON object (possibly empty); the callee owns it.
 */
typedef void (*envd_done_fn)(void *arg, json_t *vars);

/* Starts a fetch. done is called exactly once, from the loop (never from
 * inside envd_fetch itself), unless the request is cancelled first. token may
 * be NULL. Returns a handle valid until done runs or envd_cancel, or NULL on
 * ENOMEM. */
struct envd_req *envd_fetch(struct loop *l, const char *url, const char *token,
			    long timeout_ms, envd_done_fn done, void *arg);
/* Cancels a pending fetch; done is not called. Accepts NULL. */
void envd_cancel(struct envd_req *r);

#endif
