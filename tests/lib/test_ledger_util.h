/*
 * test_ledger_util.h: helpers shared by the ledger tests: a private temp
 * dir removed at the end, a whole-file reader, a fake wall clock, and a
 * synchronous wrapper that submits one request and waits for its done().
 */
#ifndef TICKETD_TEST_LEDGER_UTIL_H
#define TICKETD_TEST_LEDGER_UTIL_H

#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ledger_sqlite.h"

/* A fake clock the tests move by hand (unix ms). */
static _Atomic int64_t fake_now_ms = 1700000000000LL;

__attribute__((unused))
static int64_t fake_clock(void)
{
	return atomic_load(&fake_now_ms);
}

/* Makes a private temp dir; returns its malloc'd path (exits on failure:
 * a test that can't make its dir can't say anything). */
__attribute__((unused))
static char *tmpdir_make(void)
{
	const char *base = getenv("TMPDIR");
	char *p;

	if (asprintf(&p, "%s/ledger-test.XXXXXX", base && *base ? base : "/tmp") < 0 ||
	    !mkdtemp(p)) {
		perror("mkdtemp");
		exit(99);
	}
	return p;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Reads a whole (small) file into a malloc'd buffer of *len bytes (plus
 * one spare); NULL, with *len 0, on any error. */
__attribute__((unused))
static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	*len = 0;
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	*len = buf ? (size_t)n : 0;
	fclose(f);
	return buf;
}

/* rm -rf dir, then frees the string. */
__attribute__((unused))
static void tmpdir_remove(char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

/* One request plus what the test waits on. */
struct waiter {
	struct ledger_req req;
	pthread_mutex_t lock;        /* guards called, result */
	pthread_cond_t cond;
	int called;                  /* done() calls seen */
	int result;
};

static void waiter_done(struct ledger_req *r, int result)
{
	struct waiter *w = (struct waiter *)r;

	pthread_mutex_lock(&w->lock);
	w->called++;
	w->result = result;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

__attribute__((unused))
static void waiter_init(struct waiter *w, enum ledger_op op)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->req.op = op;
	w->req.done = waiter_done;
}

/* Waits for w's done(); returns its result. */
__attribute__((unused))
static int waiter_wait(struct waiter *w)
{
	int rc;

	pthread_mutex_lock(&w->lock);
	while (!w->called)
		pthread_cond_wait(&w->cond, &w->lock);
	rc = w->result;
	pthread_mutex_unlock(&w->lock);
	return rc;
}

__attribute__((unused))
static void waiter_fini(struct waiter *w)
{
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
}

/* Submits w and waits; returns the submit error or done()'s result. */
__attribute__((unused))
static int waiter_run(struct ledger *l, struct waiter *w)
{
	int rc = ledger_submit(l, &w->req);

	return rc < 0 ? rc : waiter_wait(w);
}

/* Records order id (tickets "<id>-n") synchronously; returns the result. */
__attribute__((unused))
static int put_order(struct ledger *l, const char *id, const char *event,
		     enum seller_pool tier, enum seller_pool pool, unsigned qty)
{
	struct waiter w;
	int rc;

	waiter_init(&w, LEDGER_OP_ORDER);
	w.req.order.id = id;
	w.req.order.event = event;
	w.req.order.tier = tier;
	w.req.order.pool = pool;
	w.req.order.quantity = qty;
	w.req.order.buyer = "alice";
	rc = waiter_run(l, &w);
	waiter_fini(&w);
	return rc;
}

/* Refunds order id synchronously; returns the result. */
__attribute__((unused))
static int refund_order(struct ledger *l, const char *id)
{
	struct waiter w;
	int rc;

	waiter_init(&w, LEDGER_OP_REFUND);
	w.req.refund_id = id;
	rc = waiter_run(l, &w);
	waiter_fini(&w);
	return rc;
}

/* Opens a ledger on dir with defaults (fake clock); NULL and a diag on error. */
__attribute__((unused))
static struct ledger *open_dir(const char *dir, char *err, size_t errlen)
{
	struct ledger_options o = { .state_dir = dir, .now_ms = fake_clock };
	struct ledger *l = NULL;

	if (ledger_open(&o, &l, err, errlen) < 0)
		return NULL;
	return l;
}

#endif
