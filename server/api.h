/*
 * api: the HTTP contract. A route table (method, path pattern, handler) and
 * the handlers that turn requests into context operations and answers with
 * the "Status codes" of docs/http-contract.md. Loop thread.
 */
#ifndef E2BCI_API_H
#define E2BCI_API_H

struct server;
struct http_req;

/* The http_handler for every request; arg is the struct server. */
void api_handle(void *arg, struct http_req *r);

#endif
