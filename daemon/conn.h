/*
 * conn.h: one loop's accepting and its table of connections. It counts
 * every connection evhttp accepts (for max_connections, shared by the
 * loops), stops accepting at the cap or on EMFILE and starts again from a
 * timer, gives each connection its guard (guard.h), and knows which one is
 * busy: from the loop getting a request until its reply is written. All of
 * it belongs to the loop's thread; what crosses is the shared connection
 * count (an atomic) and the config snapshot (read through the loop's
 * atomic pointer).
 */
#ifndef TICKETD_CONN_H
#define TICKETD_CONN_H

#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

#include "conf.h"

struct bufferevent;
struct event;
struct event_base;
struct evhttp;
struct evhttp_bound_socket;
struct evhttp_connection;
struct evhttp_request;
struct guard;
struct guard_set;

/* One accepted connection of a loop, indexed by its fd. */
struct conn_slot {
	struct evhttp_connection *evcon;  /* NULL: slot free */
	int busy;                         /* a request is in our hands or its
					   * reply is being written */
	struct guard *guard;              /* its deadlines (guard.h) */
};

struct conn_table {
	unsigned index;                   /* the loop's, for logs */
	atomic_uint *nconn;               /* open connections, all loops */
	_Atomic(const struct conf *) *conf; /* the loop's config snapshot */
	void (*changed)(void *arg);       /* a connection went, or got idle */
	void *arg;
	struct evhttp *evh;
	struct evhttp_bound_socket **bound; /* one per listening fd; NULL once removed */
	size_t nbound;
	struct event *newconn_ev;         /* registers newly accepted connections */
	struct event *resume_ev;          /* re-enables accepting */
	struct guard_set *guards;         /* the connections' deadlines */
	int entered;                      /* the loop's thread runs (conn_enter) */

	/* The loop's thread alone, from here on. */
	int draining;                     /* no more accepting, ever */
	unsigned busy;                    /* busy connections */
	unsigned open;                    /* open connections */
	unsigned long long accepted;      /* connections accepted, ever */
	struct bufferevent **fresh;       /* accepted, not yet registered */
	size_t nfresh, freshcap;
	struct conn_slot *slots;
	size_t nslots;
	int paused;                       /* listeners disabled (cap, EMFILE) */
	time_t paused_logged;             /* last time a pause was logged */
	int pause_loud;                   /* this pause was logged as a warning */
};

/* Sets t up on base and evh (the fields up to evh are the caller's, filled
 * in before), and binds evh to fds[0..nfds) with t's accept hooks. 0, or
 * -ENOMEM with err. */
int conn_table_init(struct conn_table *t, struct event_base *base, const int *fds,
		    size_t nfds, char *err, size_t errlen);
/* Marks the calling thread as t's loop (at the loop's start). */
void conn_enter(struct conn_table *t);
/* Before evhttp_free: keeps the closes it causes off the listeners. */
void conn_table_detach(struct conn_table *t);
/* After evhttp_free (which closed every connection): frees the rest. */
void conn_table_free(struct conn_table *t);

/* Sets the deadlines of connections from c (guard.h). */
void conn_set_limits(struct conn_table *t, const struct conf *c);
/* Stops accepting for good and closes the idle connections. */
void conn_drain(struct conn_table *t);

/* req's connection is the loop's now (busy, its guard held), until its
 * reply is written. */
void conn_request_held(struct conn_table *t, struct evhttp_request *req);
/* req's reply is being sent: its guard times the write. */
void conn_replying(struct conn_table *t, struct evhttp_request *req);

/* Connections cut off at a deadline, ever. */
unsigned long long conn_expired(const struct conn_table *t);

#endif /* TICKETD_CONN_H */
