/*
 * ledger.c: the ledger's engine-neutral half (ledger.h): the checks every
 * request and option pass before an engine sees them, the thread-local
 * hold/flush/release lists, and the dispatch to the engine's ledger_ops
 * (SQLite's by default, ledger_sqlite.h). Ticket codes, sync names and
 * histogram buckets are defined here once for every engine. Nothing here is
 * shared between threads: a held list is the holding thread's own.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "fmt.h"
#include "ledger.h"

const char *ledger_sync_name(enum ledger_sync s)
{
	return s == LEDGER_SYNC_OFF ? "off" : "full";
}

int ledger_sync_parse(const char *name, enum ledger_sync *out)
{
	if (strcmp(name, "full") == 0)
		*out = LEDGER_SYNC_FULL;
	else if (strcmp(name, "off") == 0)
		*out = LEDGER_SYNC_OFF;
	else
		return -EINVAL;
	return 0;
}

uint64_t ledger_epoch(const struct ledger *l)
{
	return l->epoch;
}

/* Written by hand, not with snprintf: replies and order reads make one code
 * per ticket, and snprintf's format parsing was 3.6% of the daemon's CPU at
 * full load when the ledger thread still stored every code
 * (docs/benchmarks.md, "What was tried"). */
int ledger_ticket_code(const char *order_id, unsigned n, char *buf, size_t len)
{
	char digits[FMT_U64_LEN];
	size_t idlen = strlen(order_id), nd = fmt_u64(digits, n);

	if (idlen + 1 + nd >= len) {
		if (len)
			buf[0] = '\0';
		return -ENAMETOOLONG;
	}
	memcpy(buf, order_id, idlen);
	buf[idlen] = '-';
	memcpy(buf + idlen + 1, digits, nd + 1);
	return (int)(idlen + 1 + nd);
}

uint64_t ledger_hist_bound(unsigned i)
{
	return i + 1 >= LEDGER_HIST_BUCKETS ? UINT64_MAX : (uint64_t)1 << i;
}

unsigned ledger_hist_bucket(uint64_t v)
{
	unsigned b = v ? 64u - (unsigned)__builtin_clzll(v) : 0;

	return b < LEDGER_HIST_BUCKETS ? b : LEDGER_HIST_BUCKETS - 1;
}

/* ---- checks ------------------------------------------------------------------- */

static size_t bounded_len(const char *s, size_t max)
{
	return s ? strnlen(s, max + 1) : 0;
}

static int len_ok(const char *s, size_t max)
{
	size_t n = bounded_len(s, max);

	return n >= 1 && n <= max;
}

static int pool_ok(int p)
{
	return p == SELLER_GENERAL || p == SELLER_VIP;
}

static int idem_ok(const struct ledger_idem_in *in, int required)
{
	if (!in->key)
		return !required;
	return len_ok(in->key, LEDGER_IDEM_KEY_MAX) && in->status >= 100 && in->status <= 599;
}

/* Checks a request's fields; 0 or -EINVAL. */
static int req_check(const struct ledger_req *r)
{
	const struct ledger_order_in *o = &r->order;

	if (!r->done)
		return -EINVAL;
	switch (r->op) {
	case LEDGER_OP_ORDER:
		if (!len_ok(o->id, LEDGER_ID_MAX) || !len_ok(o->event, LEDGER_EVENT_MAX) ||
		    !len_ok(o->buyer, LEDGER_BUYER_MAX) || !pool_ok((int)o->tier) ||
		    !pool_ok((int)o->pool) || o->quantity < 1 ||
		    o->quantity > SELLER_MAX_QUANTITY || !idem_ok(&r->idem, 0))
			return -EINVAL;
		if (strlen(o->id) + 1 + 4 > LEDGER_CODE_MAX)
			return -EINVAL; /* "<id>-1000" must fit */
		return 0;
	case LEDGER_OP_REFUND:
		return len_ok(r->refund_id, LEDGER_ID_MAX) ? 0 : -EINVAL;
	case LEDGER_OP_RESULT:
		return idem_ok(&r->idem, 1) ? 0 : -EINVAL;
	case LEDGER_OP_PURGE:
		return 0;
	}
	return -EINVAL;
}

static const struct ledger_ops *engine_of(const struct ledger_options *opt)
{
	return opt->engine ? opt->engine : &ledger_sqlite_ops;
}

/* ---- open and close ------------------------------------------------------------ */

int ledger_open(const struct ledger_options *opt, struct ledger **out, char *err,
		size_t errlen)
{
	*out = NULL;
	if (errlen)
		err[0] = '\0';
	if (!opt->state_dir || !opt->state_dir[0]) {
		snprintf(err, errlen, "ledger: state_dir is not set");
		return -EINVAL;
	}
	if (opt->idempotency_ttl_s < 0 || opt->idempotency_ttl_s > INT64_MAX / 1000 ||
	    opt->max_db_bytes < 0 || opt->readers > 64 ||
	    (opt->sync != LEDGER_SYNC_FULL && opt->sync != LEDGER_SYNC_OFF)) {
		snprintf(err, errlen, "ledger: invalid options");
		return -EINVAL;
	}
	return engine_of(opt)->open(opt, out, err, errlen);
}

void ledger_close_stats(struct ledger *l, struct ledger_stats *final)
{
	if (l)
		l->ops->close(l, final);
}

void ledger_close(struct ledger *l)
{
	ledger_close_stats(l, NULL);
}

/* ---- writes and the held lists -------------------------------------------------- */

/* What a thread holds between ledger_hold and ledger_release: requests
 * already checked, handed to the engine in one go. Thread-local. */
struct held_reqs {
	struct ledger *l;                /* NULL: not holding */
	struct ledger_req *head, *tail;
	uint64_t n;
};
static _Thread_local struct held_reqs held;

int ledger_submit(struct ledger *l, struct ledger_req *r)
{
	int rc = req_check(r);

	if (rc < 0)
		return rc;
	r->next = NULL;
	r->result = 0;
	if (held.l == l) {
		if (held.tail)
			held.tail->next = r;
		else
			held.head = r;
		held.tail = r;
		held.n++;
		return 0;
	}
	return l->ops->submit(l, r, r, 1);
}

void ledger_hold(struct ledger *l)
{
	if (held.l && held.l != l)
		ledger_release(held.l);
	held.l = l;
}

void ledger_flush(struct ledger *l)
{
	struct ledger_req *r, *next;

	if (held.l != l || !held.head)
		return;
	r = held.head;
	if (l->ops->submit(l, held.head, held.tail, held.n) < 0) {
		/* Accepted by ledger_submit: done() is owed, now. */
		for (; r; r = next) {
			next = r->next;
			r->result = -ESHUTDOWN;
			r->done(r, -ESHUTDOWN);
		}
	}
	held.head = held.tail = NULL;
	held.n = 0;
}

void ledger_release(struct ledger *l)
{
	ledger_flush(l);
	if (held.l == l)
		held.l = NULL;
}

/* ---- reads ---------------------------------------------------------------------- */

int ledger_get_order(struct ledger *l, const char *id, struct ledger_order **out)
{
	*out = NULL;
	if (!len_ok(id, LEDGER_ID_MAX))
		return -ENOENT;
	return l->ops->get_order(l, id, out);
}

int ledger_idem_lookup(struct ledger *l, const char *key, struct ledger_idem **out)
{
	*out = NULL;
	if (!len_ok(key, LEDGER_IDEM_KEY_MAX))
		return -ENOENT;
	return l->ops->idem_lookup(l, key, out);
}

int ledger_foreach_sold(struct ledger *l,
			int (*cb)(void *arg, const char *event, enum seller_pool pool,
				  int64_t sold),
			void *arg)
{
	return l->ops->foreach_sold(l, cb, arg);
}

void ledger_stats(struct ledger *l, struct ledger_stats *out)
{
	l->ops->stats(l, out);
}

int ledger_audit(const struct ledger_options *opt, const struct ledger_capacity *caps,
		 size_t ncaps, FILE *out, struct ledger_audit_report *rep,
		 char *err, size_t errlen)
{
	struct ledger_audit_report local;

	if (!rep)
		rep = &local;
	memset(rep, 0, sizeof(*rep));
	if (errlen)
		err[0] = '\0';
	return engine_of(opt)->audit(opt, caps, ncaps, out, rep, err, errlen);
}
