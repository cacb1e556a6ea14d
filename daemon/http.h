/*
 * http.h: ticketd's HTTP front end. io_threads event loops, each a thread
 * with its own event_base and evhttp, each accepting on its own listening
 * sockets (SO_REUSEPORT: the kernel spreads new connections over them) or,
 * with sockets from systemd, all on the same ones. A loop routes each
 * request, answers what it can at once (health, events, every client error)
 * and hands purchases and order lookups to the worker pool as jobs; the job
 * comes back through the loop's completion queue (an MPSC list plus one
 * eventfd wakeup per batch) and the loop that owns the connection sends the
 * reply. Nothing else crosses threads. The pieces: http.c (the loops'
 * life), routes.c (requests), conn.c (connections), handoff.c (jobs back
 * to their loop), loop.c (a job's last step), listen.c (the sockets).
 */
#ifndef TICKETD_HTTP_H
#define TICKETD_HTTP_H

#define HTTP_MAX_LOOPS 64      /* io_threads' upper bound (conf.c) */

#include <stddef.h>

#include "catalog.h"
#include "conf.h"
#include "job.h"
#include "pool.h"

struct http;

struct http_options {
	const struct conf *conf;       /* limits, io_threads; read-only; replaced
					* by http_set_conf */
	struct catalog *catalog;
	struct pool *pool;
	const struct job_env *env;     /* handed to every job */
	const int *fds;                /* listening sockets: nsets sets of nfds, */
	size_t nfds;                   /*   loop i takes set i % nsets (1 set: */
	size_t nsets;                  /*   all share it); the caller closes them */
	/* Called once, from some loop thread, when every loop has drained
	 * after http_drain; must be thread-safe (e.g. event_active). */
	void (*drained)(void *arg);
	void *arg;
	unsigned tick_ms;              /* each loop bumps its heartbeat this often
					* (the watchdog's evidence); 0 = no timer */
	unsigned stall_ms;             /* test hook: loop 0 stalls this long after
					* start, until http_stop; 0 = never */
};

/* Builds the loops (bases, evhttp, listeners); no thread runs yet. Call
 * evthread_use_pthreads() first. Returns 0 or -errno with err. */
int http_create(const struct http_options *o, struct http **out,
		char *err, size_t errlen);
/* Starts the loop threads; returns once every loop is running. */
int http_start(struct http *h, char *err, size_t errlen);
/* Shutdown, step 1 (any thread): every loop stops accepting, closes its idle
 * connections, answers what is in flight with Connection: close, and reports
 * through o->drained once nothing is left. */
void http_drain(struct http *h);
/* Step 2: stops the loops and joins their threads (drained or not). */
void http_stop(struct http *h);
/* Step 3, after the pool and the order store have stopped: frees the loops.
 * Jobs still held are dropped without a reply; a reservation whose payment
 * never finished is released. */
void http_destroy(struct http *h);

/* Open connections over all loops. */
unsigned http_connections(struct http *h);
/* Requests routed over all loops since start (read without locks: each
 * loop's own count, relaxed). */
unsigned long long http_requests(struct http *h);

/* Reload (any thread): publishes c, which must stay valid until
 * http_destroy, and has every loop apply its limits. max_quantity and
 * max_connections take effect at once; body, header and time limits for
 * connections accepted from then on. */
void http_set_conf(struct http *h, const struct conf *c);
/* Liveness, for the watchdog: the number of loops, and loop i's heartbeat,
 * which moves every tick_ms while the loop runs its callbacks. */
unsigned http_loop_count(struct http *h);
unsigned long long http_heartbeat(struct http *h, unsigned i);

#endif /* TICKETD_HTTP_H */
