/*
 * service.h: the running daemon as systemd and the operator see it, on the
 * main thread: READY/STATUS/STOPPING (through daemon/sd.c), the watchdog
 * (WATCHDOG=1 only while every loop and the pool make progress), and the
 * SIGHUP reload (re-read the config, check it against what is on sale,
 * apply it or refuse it whole). It owns every config snapshot: the current
 * one and each one a reload replaced, kept until service_destroy because
 * other threads may still be reading them.
 */
#ifndef TICKETD_SERVICE_H
#define TICKETD_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "catalog.h"
#include "conf.h"
#include "http.h"
#include "payment.h"
#include "pool.h"

/* Re-reads the configuration the way start-up did (the file, then the
 * command-line overrides). Returns 0 and *out, or -errno with one line in
 * err. */
typedef int (*service_load_fn)(void *arg, struct conf **out, char *err,
			       size_t errlen);

struct service_params {
	struct event_base *base;     /* the main thread's; timers run there */
	struct conf *conf;           /* the running config; the service owns it */
	struct catalog *cat;
	struct http *http;
	struct pool *pool;
	struct payment *payment;
	service_load_fn load;
	void *load_arg;
	uint64_t watchdog_usec;      /* sysd_watchdog_usec(), read once; 0 = none */
	int sockets_passed;          /* systemd passed the sockets: listen is moot */
};

struct service;

/* How often loops and workers should beat for a watchdog of usec (an eighth
 * of it, so every half-interval check sees several beats); 0 for none. */
unsigned service_tick_ms(uint64_t watchdog_usec);

/* The test hook TICKETD_DEBUG_STALL_LOOP=<ms>: how long after start loop 0
 * should wedge itself (logged with a warning when set), or 0. */
unsigned service_debug_stall_ms(void);

/* Sets up the status and watchdog timers (not started yet). Returns 0, or
 * -errno with err; on failure the caller still owns p->conf. */
int service_create(const struct service_params *p, struct service **out,
		   char *err, size_t errlen);
/* Every loop accepts and the ledger is loaded: READY=1, the first STATUS,
 * and the timers start. */
void service_ready(struct service *s);
/* SIGHUP: RELOADING=1, re-read, check, apply or refuse (logged), READY=1. */
void service_reload(struct service *s);
/* Shutdown begins: STOPPING=1 and a last STATUS. */
void service_stopping(struct service *s);
/* The config in force (main thread). */
const struct conf *service_conf(const struct service *s);
/* Stops the timers and frees every config snapshot; call after the loops
 * and the pool have stopped. */
void service_destroy(struct service *s);

#endif /* TICKETD_SERVICE_H */
