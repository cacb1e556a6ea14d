/*
 * ledger_sqlite_read.c: the SQLite engine's read path, its ledger_ops
 * get_order, idem_lookup, foreach_sold and stats. Reads run on a small
 * pool of query_only connections, each behind its own mutex, which WAL
 * lets run while the ledger thread writes; a caller takes its thread's
 * own connection first, any free one next. Crossing its border: the
 * readers (under their locks), the stats (under stats_lock) and, to
 * ledger_sqlite.c, the opening and closing of the pool.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "ledger_sqlite_db.h"

/* A read connection's statements (enum rstmt), prepared at open. */
static const char *const rsql[R_COUNT] = {
	[R_ORDER] = "SELECT id, event, tier, pool, quantity, buyer, idem_key, state,"
		    " created_ms, updated_ms FROM orders WHERE id = ?1",
	[R_IDEM] = "SELECT req_hash, status, body, order_id, created_ms FROM idempotency"
		   " WHERE key = ?1 AND created_ms >= ?2",
	[R_SOLD] = LEDGER_SOLD_SQL,
};

/* Opens a read connection to l->path; 0 or -errno with err filled. */
static int reader_open(struct ledger_sqlite *l, struct ledger_reader *rd, char *err, size_t errlen)
{
	int rc = sqlite3_open_v2(l->path, &rd->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(rd->db, "PRAGMA query_only = 1", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_busy_timeout(rd->db, 5000);
	for (int i = 0; i < R_COUNT && rc == SQLITE_OK; i++)
		rc = sqlite3_prepare_v3(rd->db, rsql[i], -1, SQLITE_PREPARE_PERSISTENT,
					&rd->st[i], NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: cannot open a read connection: %s", l->path,
			 rd->db ? sqlite3_errmsg(rd->db) : sqlite3_errstr(rc));
		return sql_errno(rc) ? sql_errno(rc) : -EIO;
	}
	return 0;
}

/* Opens n read connections to l->path into l->readers; 0 or -errno with
 * err filled. On failure the ones made stay for
 * ledger_sqlite_reader_close, which copes with half-open ones. */
int ledger_sqlite_open_readers(struct ledger_sqlite *l, unsigned n, char *err, size_t errlen)
{
	int rc;

	l->nreaders = n;
	l->readers = calloc(l->nreaders, sizeof(*l->readers));
	if (!l->readers) {
		l->nreaders = 0;
		snprintf(err, errlen, "ledger: out of memory");
		return -ENOMEM;
	}
	for (unsigned i = 0; i < l->nreaders; i++)
		pthread_mutex_init(&l->readers[i].lock, NULL);
	for (unsigned i = 0; i < l->nreaders; i++) {
		rc = reader_open(l, &l->readers[i], err, errlen);
		if (rc < 0)
			return rc;
	}
	return 0;
}

void ledger_sqlite_reader_close(struct ledger_reader *rd)
{
	for (int i = 0; i < R_COUNT; i++)
		sqlite3_finalize(rd->st[i]);
	if (rd->db)
		sqlite3_close(rd->db);
	pthread_mutex_destroy(&rd->lock);
}

/* Takes a free read connection (the thread's own first); returns it locked. */
static struct ledger_reader *reader_get(struct ledger_sqlite *l)
{
	unsigned start = seller_thread_index() % l->nreaders;
	struct ledger_reader *rd;

	for (unsigned i = 0; i < l->nreaders; i++) {
		rd = &l->readers[(start + i) % l->nreaders];
		if (pthread_mutex_trylock(&rd->lock) == 0)
			return rd;
	}
	rd = &l->readers[start];
	pthread_mutex_lock(&rd->lock);
	return rd;
}

static void reader_put(struct ledger_reader *rd)
{
	pthread_mutex_unlock(&rd->lock);
}

/* A growable string area; pointers are offsets until the result is built. */
struct strbuf {
	char *p;
	size_t len, cap;
};

/* Appends s with its NUL; returns its offset, or (size_t)-1 on ENOMEM. */
static size_t strbuf_add(struct strbuf *b, const char *s)
{
	size_t n = strlen(s) + 1, at = b->len;

	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->len + n)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p)
			return (size_t)-1;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + at, s, n);
	b->len += n;
	return at;
}

int ledger_sqlite_get_order(struct ledger *base, const char *id, struct ledger_order **out)
{
	struct ledger_sqlite *l = sqlite_of(base);
	enum { F_ID, F_EVENT, F_BUYER, F_KEY, F_N };
	size_t off[F_N] = { 0 }, *codes = NULL, ncodes = 0;
	char code[LEDGER_CODE_MAX + 1];
	struct strbuf sb = { 0 };
	struct ledger_reader *rd;
	struct ledger_order *o = NULL, tmp = { 0 };
	int has_key = 0, rc;
	sqlite3_stmt *st;

	rd = reader_get(l);
	st = rd->st[R_ORDER];
	bind_text(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		off[F_ID] = strbuf_add(&sb, col_text(st, 0));
		off[F_EVENT] = strbuf_add(&sb, col_text(st, 1));
		tmp.tier = pool_of(col_text(st, 2));
		tmp.pool = pool_of(col_text(st, 3));
		tmp.quantity = (unsigned)sqlite3_column_int(st, 4);
		off[F_BUYER] = strbuf_add(&sb, col_text(st, 5));
		has_key = sqlite3_column_type(st, 6) != SQLITE_NULL;
		off[F_KEY] = strbuf_add(&sb, col_text(st, 6));
		tmp.state = strcmp(col_text(st, 7), "refunded") == 0 ? LEDGER_REFUNDED
								     : LEDGER_CONFIRMED;
		tmp.created_ms = sqlite3_column_int64(st, 8);
		tmp.updated_ms = sqlite3_column_int64(st, 9);
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_NOTFOUND;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_OK)
		goto out;
	for (int i = 0; i < F_N; i++)
		if (off[i] == (size_t)-1) {
			rc = SQLITE_NOMEM;
			goto out;
		}

	/* The codes are derived: "<id>-1" .. "<id>-<quantity>". */
	if (tmp.quantity < 1 || tmp.quantity > SELLER_MAX_QUANTITY) {
		rc = SQLITE_CORRUPT; /* the schema's CHECK and ledger_submit keep it so */
		goto out;
	}
	codes = malloc(tmp.quantity * sizeof(*codes));
	if (!codes) {
		rc = SQLITE_NOMEM;
		goto out;
	}
	for (unsigned n = 1; n <= tmp.quantity; n++) {
		int w = ledger_ticket_code(sb.p + off[F_ID], n, code, sizeof(code));

		codes[ncodes] = w < 0 ? (size_t)-1 : strbuf_add(&sb, code);
		if (codes[ncodes] == (size_t)-1) {
			rc = w < 0 ? SQLITE_CORRUPT : SQLITE_NOMEM; /* an id too long */
			goto out;
		}
		ncodes++;
	}

	/* One block: the struct, the ticket pointers, then the strings. */
	o = malloc(sizeof(*o) + ncodes * sizeof(char *) + sb.len);
	if (!o) {
		rc = SQLITE_NOMEM;
		goto out;
	}
	*o = tmp;
	o->tickets = (char **)(o + 1);
	{
		char *strs = (char *)(o->tickets + ncodes);

		memcpy(strs, sb.p, sb.len);
		o->id = strs + off[F_ID];
		o->event = strs + off[F_EVENT];
		o->buyer = strs + off[F_BUYER];
		o->idem_key = has_key ? strs + off[F_KEY] : NULL;
		for (size_t i = 0; i < ncodes; i++)
			o->tickets[i] = strs + codes[i];
	}
	o->ntickets = (unsigned)ncodes;
out:
	reader_put(rd);
	free(codes);
	free(sb.p);
	if (rc == SQLITE_NOTFOUND)
		return -ENOENT;
	if (rc != SQLITE_OK) {
		free(o);
		return sql_errno(rc);
	}
	*out = o;
	return 0;
}

int ledger_sqlite_idem_lookup(struct ledger *base, const char *key, struct ledger_idem **out)
{
	struct ledger_sqlite *l = sqlite_of(base);
	struct ledger_reader *rd;
	struct ledger_idem *r = NULL;
	sqlite3_stmt *st;
	int rc;

	rd = reader_get(l);
	st = rd->st[R_IDEM];
	bind_text(st, 1, key);
	sqlite3_bind_int64(st, 2, l->now_ms() - l->ttl_ms);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const void *hash = sqlite3_column_blob(st, 0);
		int hlen = sqlite3_column_bytes(st, 0);
		int has_body = sqlite3_column_type(st, 2) != SQLITE_NULL;
		int has_order = sqlite3_column_type(st, 3) != SQLITE_NULL;
		const char *body = col_text(st, 2), *order = col_text(st, 3);
		size_t blen = strlen(body) + 1, olen = strlen(order) + 1;

		r = malloc(sizeof(*r) + blen + olen);
		if (r) {
			memset(r->req_hash, 0, sizeof(r->req_hash));
			if (hash)
				memcpy(r->req_hash, hash, hlen < LEDGER_HASH_LEN ? (size_t)hlen
										 : LEDGER_HASH_LEN);
			r->status = sqlite3_column_int(st, 1);
			r->created_ms = sqlite3_column_int64(st, 4);
			r->body = (char *)(r + 1);
			memcpy(r->body, body, blen);
			r->order_id = r->body + blen;
			memcpy(r->order_id, order, olen);
			if (!has_body)
				r->body = NULL;
			if (!has_order)
				r->order_id = NULL;
			rc = SQLITE_OK;
		} else {
			rc = SQLITE_NOMEM;
		}
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_NOTFOUND;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	reader_put(rd);
	if (rc == SQLITE_NOTFOUND)
		return -ENOENT;
	if (rc != SQLITE_OK)
		return sql_errno(rc);
	*out = r;
	return 0;
}

int ledger_sqlite_foreach_sold(struct ledger *base,
			       int (*cb)(void *arg, const char *event, enum seller_pool pool,
					 int64_t sold),
			       void *arg)
{
	struct ledger_reader *rd = reader_get(sqlite_of(base));
	sqlite3_stmt *st = rd->st[R_SOLD];
	int rc, stop = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		stop = cb(arg, col_text(st, 0), pool_of(col_text(st, 1)),
			  sqlite3_column_int64(st, 2));
		if (stop)
			break;
	}
	sqlite3_reset(st);
	reader_put(rd);
	if (stop)
		return stop;
	return rc == SQLITE_DONE ? 0 : sql_errno(rc);
}

void ledger_sqlite_stats(struct ledger *base, struct ledger_stats *out)
{
	struct ledger_sqlite *l = sqlite_of(base);

	pthread_mutex_lock(&l->stats_lock);
	*out = l->stats;
	pthread_mutex_unlock(&l->stats_lock);
	pthread_mutex_lock(&l->qlock);
	out->queued = l->queued;
	pthread_mutex_unlock(&l->qlock);
}
