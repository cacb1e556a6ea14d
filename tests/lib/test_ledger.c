/*
 * test_ledger.c: the ledger's contract, one thread at a time: create and
 * reopen (the epoch grows, orders survive), orders with default and given
 * ticket codes, duplicates failing alone inside a batch, sold counts,
 * idempotency records (store, lookup, expiry, purge), refunds (twice, and
 * unknown), argument checks, close draining the queue, and one daemon per
 * state dir.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "ledger_sqlite.h"
#include "tap.h"
#include "test_ledger_util.h"

struct sold_row {
	char event[32];
	enum seller_pool pool;
	int64_t sold;
};

struct sold_list {
	struct sold_row rows[8];
	int n;
};

static int collect_sold(void *arg, const char *event, enum seller_pool pool, int64_t sold)
{
	struct sold_list *s = arg;

	if (s->n == 8)
		return 1;
	snprintf(s->rows[s->n].event, sizeof(s->rows[0].event), "%s", event);
	s->rows[s->n].pool = pool;
	s->rows[s->n].sold = sold;
	s->n++;
	return 0;
}

/* Sold of (event, pool) per ledger_foreach_sold; -1 if absent. */
/* sold_check that refuses more than 4 general tickets of "concert". */
static int cap4(void *arg, const char *event, enum seller_pool pool, int64_t sold,
		char *err, size_t errlen)
{
	(*(int *)arg)++;
	if (strcmp(event, "concert") == 0 && pool == SELLER_GENERAL && sold > 4) {
		snprintf(err, errlen, "event %s: %lld sold, capacity 4", event,
			 (long long)sold);
		return -ERANGE;
	}
	return 0;
}

static int64_t sold_of(struct ledger *l, const char *event, enum seller_pool pool)
{
	struct sold_list s = { .n = 0 };

	if (ledger_foreach_sold(l, collect_sold, &s) != 0)
		return -2;
	for (int i = 0; i < s.n; i++)
		if (s.rows[i].pool == pool && strcmp(s.rows[i].event, event) == 0)
			return s.rows[i].sold;
	return -1;
}

static void hex(const unsigned char *h, char *out)
{
	for (int i = 0; i < LEDGER_HASH_LEN; i++)
		sprintf(out + 2 * i, "%02x", h[i]);
}

/* SHA-256 against FIPS 180-4's examples and every padding boundary. */
static void test_hash(void)
{
	static const struct {
		const char *in, *want;
	} fips[] = {
		{ "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
		{ "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
		{ "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
	};
	static const struct {
		size_t n;
		const char *want;
	} as[] = {
		{ 55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318" },
		{ 56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a" },
		{ 63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34" },
		{ 64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb" },
		{ 119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb" },
		{ 120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c" },
		{ 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0" },
	};
	unsigned char h[LEDGER_HASH_LEN];
	char got[2 * LEDGER_HASH_LEN + 1];
	char *buf = malloc(1000000);
	int good = 1;

	for (size_t i = 0; i < sizeof(fips) / sizeof(fips[0]); i++) {
		ledger_hash(fips[i].in, strlen(fips[i].in), h);
		hex(h, got);
		ok(strcmp(got, fips[i].want) == 0, "sha256(\"%.10s\") = %.16s...", fips[i].in, got);
	}
	memset(buf, 'a', 1000000);
	for (size_t i = 0; i < sizeof(as) / sizeof(as[0]); i++) {
		ledger_hash(buf, as[i].n, h);
		hex(h, got);
		if (strcmp(got, as[i].want) != 0) {
			diag("sha256('a' x %zu) = %s, want %s", as[i].n, got, as[i].want);
			good = 0;
		}
	}
	ok(good, "sha256 of 55, 56, 63, 64, 119, 120 and 10^6 'a's");
	free(buf);
}

static void test_create_reopen(const char *dir)
{
	char err[512], sub[512];
	struct ledger_order *o = NULL;
	struct ledger *l;
	struct stat sb;
	uint64_t e1;

	snprintf(sub, sizeof(sub), "%s/a/b", dir);
	l = open_dir(sub, err, sizeof(err));
	if (!ok(l != NULL, "open creates state dir and ledger (%s)", l ? "ok" : err))
		return;
	ok(stat(sub, &sb) == 0 && S_ISDIR(sb.st_mode) && (sb.st_mode & 0777) == 0700,
	   "state dir created with mode 0700");
	e1 = ledger_epoch(l);
	ok(e1 == 1, "first epoch is 1 (got %llu)", (unsigned long long)e1);
	ok(put_order(l, "o1", "concert", SELLER_GENERAL, SELLER_GENERAL, 3) == 0,
	   "order o1 committed");
	ok(put_order(l, "o2", "concert", SELLER_VIP, SELLER_GENERAL, 2) == 0,
	   "order o2 (vip buyer, general pool) committed");
	ledger_close(l);

	l = open_dir(sub, err, sizeof(err));
	if (!ok(l != NULL, "reopen (%s)", l ? "ok" : err))
		return;
	ok(ledger_epoch(l) == e1 + 1, "epoch incremented at reopen (%llu)",
	   (unsigned long long)ledger_epoch(l));
	ok(ledger_get_order(l, "o1", &o) == 0 && o && o->quantity == 3 &&
	   strcmp(o->event, "concert") == 0 && strcmp(o->buyer, "alice") == 0 &&
	   o->state == LEDGER_CONFIRMED && o->ntickets == 3 &&
	   strcmp(o->tickets[0], "o1-1") == 0 && strcmp(o->tickets[2], "o1-3") == 0 &&
	   o->idem_key == NULL && o->created_ms == fake_clock(),
	   "o1 survived the restart with its tickets");
	free(o);
	ok(ledger_get_order(l, "o2", &o) == 0 && o && o->tier == SELLER_VIP &&
	   o->pool == SELLER_GENERAL, "o2 keeps tier vip and pool general");
	free(o);
	ok(sold_of(l, "concert", SELLER_GENERAL) == 5 && sold_of(l, "concert", SELLER_VIP) == -1,
	   "sold counts: concert general 5, no vip");
	ledger_close(l);
	l = open_dir(sub, err, sizeof(err));
	ok(l && ledger_epoch(l) == e1 + 2, "epoch grows on every open");
	ledger_close(l);
	{
		/* A migrated epoch (min_epoch) is a floor, never a step back. */
		struct ledger_options opt = { .state_dir = sub, .now_ms = fake_clock,
					      .min_epoch = 40 };

		ok(ledger_open(&opt, &l, err, sizeof(err)) == 0 && ledger_epoch(l) == 40,
		   "min_epoch 40 lifts the epoch to 40 (%s)", l ? "ok" : err);
		ledger_close(l);
		opt.min_epoch = 7;
		ok(ledger_open(&opt, &l, err, sizeof(err)) == 0 && ledger_epoch(l) == 41,
		   "a lower min_epoch is ignored: 41 (%s)", l ? "ok" : err);
		ledger_close(l);
	}
	{
		/* sold_check refuses before anything is written. */
		struct ledger_options opt = { .state_dir = sub, .now_ms = fake_clock,
					      .sold_check = cap4 };
		char path[600], *before, *after;
		size_t nb, na;
		int calls = 0, rc;

		opt.sold_arg = &calls;
		snprintf(path, sizeof(path), "%s/%s", sub, LEDGER_DB_NAME);
		before = read_file(path, &nb);
		rc = ledger_open(&opt, &l, err, sizeof(err));
		after = read_file(path, &na);
		ok(rc == -ERANGE && l == NULL && strstr(err, "event concert: 5 sold") &&
		   calls == 1, "sold_check refuses the open with its message (%d: %s)",
		   rc, err);
		ok(before && after && nb == na && memcmp(before, after, nb) == 0,
		   "the refused open left ledger.db byte for byte as it was");
		free(before);
		free(after);
		l = open_dir(sub, err, sizeof(err));
		ok(l && ledger_epoch(l) == 42, "the refused open did not use an epoch (%llu)",
		   l ? (unsigned long long)ledger_epoch(l) : 0ull);
		ledger_close(l);
	}
}

static void test_orders(struct ledger *l)
{
	struct ledger_order *o = NULL;
	struct waiter w[3];
	int rc;

	/* Tickets are "<id>-1" .. "<id>-<quantity>", derived on read. */
	ok(put_order(l, "given", "fest", SELLER_GENERAL, SELLER_GENERAL, 2) == 0,
	   "order of 2 committed");
	ok(ledger_get_order(l, "given", &o) == 0 && o->ntickets == 2 &&
	   strcmp(o->tickets[0], "given-1") == 0 && strcmp(o->tickets[1], "given-2") == 0,
	   "its codes read back in order: given-1, given-2");
	free(o);

	/* Three requests in one batch: the middle one reuses an order id and
	 * fails alone; the others commit. Submitting all before waiting puts
	 * them in one batch unless the thread wakes in between: both are fine
	 * for the property tested. */
	for (int i = 0; i < 3; i++) {
		waiter_init(&w[i], LEDGER_OP_ORDER);
		w[i].req.order = (struct ledger_order_in){
			.event = "fest", .tier = SELLER_GENERAL, .pool = SELLER_GENERAL,
			.quantity = 2, .buyer = "carol",
		};
	}
	w[0].req.order.id = "b1";
	w[1].req.order.id = "given"; /* taken above */
	w[1].req.order.buyer = "mallory";
	w[2].req.order.id = "b3";
	for (int i = 0; i < 3; i++)
		ledger_submit(l, &w[i].req);
	ok(waiter_wait(&w[0]) == 0 && waiter_wait(&w[2]) == 0,
	   "batch neighbours of a duplicate commit");
	ok(waiter_wait(&w[1]) == -EEXIST, "duplicate order id in the batch: -EEXIST");
	for (int i = 0; i < 3; i++)
		waiter_fini(&w[i]);
	rc = ledger_get_order(l, "given", &o);
	ok(rc == 0 && strcmp(o->buyer, "alice") == 0,
	   "nothing of the failed order is stored: given is still alice's (%s)",
	   o ? o->buyer : "?");
	free(o);
	ok(put_order(l, "b1", "fest", SELLER_GENERAL, SELLER_GENERAL, 1) == -EEXIST,
	   "duplicate order id: -EEXIST");
	ok(sold_of(l, "fest", SELLER_GENERAL) == 6, "sold counts only committed orders (6)");
	ok(ledger_get_order(l, "nope", &o) == -ENOENT, "unknown order: -ENOENT");
}

static void test_checks(struct ledger *l)
{
	struct waiter w;
	char id[LEDGER_ID_MAX + 2], code[16];

	waiter_init(&w, LEDGER_OP_ORDER);
	w.req.order = (struct ledger_order_in){ .id = "x", .event = "e", .buyer = "b",
						.quantity = 0 };
	ok(ledger_submit(l, &w.req) == -EINVAL, "quantity 0 refused");
	w.req.order.quantity = SELLER_MAX_QUANTITY + 1;
	ok(ledger_submit(l, &w.req) == -EINVAL, "quantity 1001 refused");
	w.req.order.quantity = 1;
	w.req.order.buyer = "";
	ok(ledger_submit(l, &w.req) == -EINVAL, "empty buyer refused");
	w.req.order.buyer = "b";
	memset(id, 'i', sizeof(id) - 1);
	id[sizeof(id) - 1] = '\0';
	w.req.order.id = id;
	ok(ledger_submit(l, &w.req) == -EINVAL, "order id over %d bytes refused",
	   LEDGER_ID_MAX);
	w.req.order.id = "x";
	w.req.order.pool = (enum seller_pool)7;
	ok(ledger_submit(l, &w.req) == -EINVAL, "bad pool refused");
	w.req.order.pool = SELLER_GENERAL;
	w.req.done = NULL;
	ok(ledger_submit(l, &w.req) == -EINVAL, "missing done refused");
	w.req.done = waiter_done;
	w.req.op = LEDGER_OP_RESULT;
	ok(ledger_submit(l, &w.req) == -EINVAL, "RESULT without a key refused");
	ok(w.called == 0, "done() never called for a refused submit");
	waiter_fini(&w);
	ok(ledger_ticket_code("abc", 12, code, sizeof(code)) == 6 &&
	   strcmp(code, "abc-12") == 0, "ledger_ticket_code: abc-12");
	ok(ledger_ticket_code("abcdefghijklmn", 1000, code, sizeof(code)) == -ENAMETOOLONG,
	   "ledger_ticket_code: too long");
}

static void test_idempotency(struct ledger *l)
{
	struct ledger_idem *k = NULL;
	struct ledger_order *o = NULL;
	struct waiter w;
	unsigned char h1[LEDGER_HASH_LEN], h2[LEDGER_HASH_LEN];

	memset(h1, 0xa1, sizeof(h1));
	memset(h2, 0xb2, sizeof(h2));
	ok(ledger_idem_lookup(l, "k-order", &k) == -ENOENT && k == NULL,
	   "unknown key: -ENOENT");

	waiter_init(&w, LEDGER_OP_ORDER);
	w.req.order = (struct ledger_order_in){
		.id = "idem-1", .event = "fest", .tier = SELLER_GENERAL,
		.pool = SELLER_GENERAL, .quantity = 1, .buyer = "dave",
	};
	w.req.idem.key = "k-order";
	memcpy(w.req.idem.req_hash, h1, sizeof(h1));
	w.req.idem.status = 201;
	w.req.idem.body = "{\"order\":\"idem-1\"}";
	ok(waiter_run(l, &w) == 0, "order with an idempotency key committed");
	waiter_fini(&w);
	ok(ledger_idem_lookup(l, "k-order", &k) == 0 && k &&
	   memcmp(k->req_hash, h1, sizeof(h1)) == 0 && k->status == 201 &&
	   k->body && strcmp(k->body, "{\"order\":\"idem-1\"}") == 0 &&
	   k->order_id && strcmp(k->order_id, "idem-1") == 0,
	   "lookup returns hash, status, body and order id");
	free(k);
	ok(ledger_get_order(l, "idem-1", &o) == 0 && o->idem_key &&
	   strcmp(o->idem_key, "k-order") == 0, "the order remembers its key");
	free(o);

	/* The same key again (a daemon bug or a race): refused, order rolled back. */
	waiter_init(&w, LEDGER_OP_ORDER);
	w.req.order = (struct ledger_order_in){
		.id = "idem-2", .event = "fest", .tier = SELLER_GENERAL,
		.pool = SELLER_GENERAL, .quantity = 1, .buyer = "dave",
	};
	w.req.idem.key = "k-order";
	w.req.idem.status = 201;
	ok(waiter_run(l, &w) == -EEXIST, "second order under a live key: -EEXIST");
	waiter_fini(&w);
	ok(ledger_get_order(l, "idem-2", &o) == -ENOENT, "and its order is not stored");

	/* A reply that sold nothing. */
	waiter_init(&w, LEDGER_OP_RESULT);
	w.req.idem.key = "k-soldout";
	memcpy(w.req.idem.req_hash, h2, sizeof(h2));
	w.req.idem.status = 409;
	w.req.idem.body = "{\"error\":\"sold_out\",\"available\":0}";
	ok(waiter_run(l, &w) == 0, "RESULT stored");
	waiter_fini(&w);
	ok(ledger_idem_lookup(l, "k-soldout", &k) == 0 && k->status == 409 &&
	   k->order_id == NULL && memcmp(k->req_hash, h2, sizeof(h2)) == 0,
	   "RESULT lookup: 409, no order");
	free(k);

	/* Expiry: past the TTL a key is gone for lookups, and may be reused. */
	atomic_fetch_add(&fake_now_ms, (int64_t)LEDGER_DEFAULT_TTL_S * 1000 + 1);
	ok(ledger_idem_lookup(l, "k-order", &k) == -ENOENT,
	   "key older than the TTL: -ENOENT before any purge");
	waiter_init(&w, LEDGER_OP_RESULT);
	w.req.idem.key = "k-order";
	w.req.idem.status = 402;
	ok(waiter_run(l, &w) == 0, "an expired key can be stored again");
	waiter_fini(&w);
	ok(ledger_idem_lookup(l, "k-order", &k) == 0 && k->status == 402,
	   "and lookup sees the new record");
	free(k);
	waiter_init(&w, LEDGER_OP_PURGE);
	ok(waiter_run(l, &w) == 1, "purge removes the one expired key (k-soldout)");
	waiter_fini(&w);
	ok(ledger_idem_lookup(l, "k-order", &k) == 0, "the fresh key stays");
	free(k);
	ok(ledger_get_order(l, "idem-1", &o) == 0, "purging keys keeps their orders");
	free(o);
}

static void test_refunds(struct ledger *l)
{
	struct ledger_order *o = NULL;
	struct waiter w;
	int64_t before = sold_of(l, "concert", SELLER_VIP);

	ok(put_order(l, "r1", "concert", SELLER_VIP, SELLER_VIP, 4) == 0, "order r1 (vip 4)");
	ok(sold_of(l, "concert", SELLER_VIP) == (before < 0 ? 0 : before) + 4,
	   "vip sold counts r1");
	atomic_fetch_add(&fake_now_ms, 5000);
	waiter_init(&w, LEDGER_OP_REFUND);
	w.req.refund_id = "r1";
	ok(waiter_run(l, &w) == 0, "refund r1: 0");
	ok(strcmp(w.req.refunded.event, "concert") == 0 && w.req.refunded.pool == SELLER_VIP &&
	   w.req.refunded.quantity == 4, "refund reports event, pool and quantity to release");
	waiter_fini(&w);
	ok(ledger_get_order(l, "r1", &o) == 0 && o->state == LEDGER_REFUNDED &&
	   o->updated_ms == o->created_ms + 5000 && o->ntickets == 4,
	   "r1 reads back refunded, updated later, tickets kept");
	free(o);
	ok(sold_of(l, "concert", SELLER_VIP) == (before < 0 ? -1 : before),
	   "refunded tickets no longer count as sold");
	ok(refund_order(l, "r1") == -EALREADY, "second refund: -EALREADY");
	ok(refund_order(l, "no-such") == -ENOENT, "unknown order: -ENOENT");
}

static void test_close_drains(const char *dir)
{
	enum { N = 200 };
	static struct waiter w[N];
	static char ids[N][16];
	struct ledger_stats st;
	char err[512];
	struct ledger *l = open_dir(dir, err, sizeof(err));
	int submitted = 0, called = 0, good = 0;

	if (!ok(l != NULL, "open for the drain test (%s)", l ? "ok" : err))
		return;
	for (int i = 0; i < N; i++) {
		snprintf(ids[i], sizeof(ids[i]), "d%d", i);
		waiter_init(&w[i], LEDGER_OP_ORDER);
		w[i].req.order = (struct ledger_order_in){
			.id = ids[i], .event = "drain", .tier = SELLER_GENERAL,
			.pool = SELLER_GENERAL, .quantity = 1, .buyer = "erin",
		};
		submitted += ledger_submit(l, &w[i].req) == 0;
	}
	ledger_close(l); /* without waiting: close must drain */
	for (int i = 0; i < N; i++) {
		called += w[i].called;
		good += w[i].called == 1 && w[i].result == 0;
		waiter_fini(&w[i]);
	}
	ok(submitted == N && called == N && good == N,
	   "close committed and completed every queued request (%d/%d/%d)",
	   submitted, called, good);
	l = open_dir(dir, err, sizeof(err));
	ok(l && sold_of(l, "drain", SELLER_GENERAL) == N, "all %d drained orders durable", N);
	ledger_stats(l, &st);
	ok(st.batches == 0 && st.requests == 0 && st.queued == 0,
	   "a fresh open starts with empty stats");
	ledger_close(l);
}

/* Leaves dir as a crash would: a child opens the ledger, commits an order
 * of 5 general concert tickets and exits without closing, so the commit is
 * in ledger.db-wal only. 0, or -1 if the child failed. */
static int crash_with_wal(const char *dir, const char *id)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		char err[512];
		struct ledger *l = open_dir(dir, err, sizeof(err));

		_exit(l && put_order(l, id, "concert", SELLER_GENERAL, SELLER_GENERAL, 5) == 0 ?
		      0 : 1);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* Whether path holds exactly the n bytes of want. */
static int same_bytes(const char *path, const char *want, size_t n)
{
	size_t got_n;
	char *got = read_file(path, &got_n);
	int same = got && want && got_n == n && memcmp(got, want, n) == 0;

	free(got);
	return same;
}

/* A refused open of a ledger that crashed with commits in its WAL leaves
 * ledger.db and ledger.db-wal byte for byte as they were: closing the
 * connection must not checkpoint the WAL into the file. */
static void test_refused_keeps_wal(const char *base)
{
	char dir[600], db[700], wal[720], err[512];
	struct ledger_options opt = { .now_ms = fake_clock, .sold_check = cap4 };
	struct ledger *l = NULL;
	size_t ndb = 0, nwal = 0;
	char *db0 = NULL, *wal0 = NULL;
	int calls = 0, rc;

	snprintf(dir, sizeof(dir), "%s/refused-wal", base);
	snprintf(db, sizeof(db), "%s/%s", dir, LEDGER_DB_NAME);
	snprintf(wal, sizeof(wal), "%s-wal", db);
	if (!ok(crash_with_wal(dir, "w1") == 0,
		"a child commits an order of 5 and exits without closing the ledger"))
		return;
	db0 = read_file(db, &ndb);
	wal0 = read_file(wal, &nwal);
	ok(db0 && ndb > 0 && wal0 && nwal > 0,
	   "it left ledger.db (%zu bytes) and ledger.db-wal (%zu bytes)", ndb, nwal);
	opt.state_dir = dir;
	opt.sold_arg = &calls;
	rc = ledger_open(&opt, &l, err, sizeof(err));
	ok(rc == -ERANGE && !l, "sold_check (capacity 4) refuses the open: %s", err);
	ok(same_bytes(db, db0, ndb) && same_bytes(wal, wal0, nwal),
	   "the refused open left ledger.db and ledger.db-wal byte for byte as they were");
	l = open_dir(dir, err, sizeof(err));
	ok(l && sold_of(l, "concert", SELLER_GENERAL) == 5,
	   "an open without the check finds the order of the WAL (%s)", l ? "ok" : err);
	ledger_close(l);
	free(db0);
	free(wal0);
}

/* Writes n bytes to path (created or truncated); 0 or -1. */
static int write_file(const char *path, const char *buf, size_t n)
{
	FILE *f = fopen(path, "wb");
	int rc = f && fwrite(buf, 1, n, f) == n ? 0 : -1;

	if (f && fclose(f) != 0)
		rc = -1;
	return rc;
}

/* A 0-byte or missing ledger.db next to a non-empty WAL (the file was lost
 * or truncated after a crash) is refused and left as it is: SQLite would
 * take it for a new database and delete the WAL, orders and all. */
static void test_lost_db(const char *base)
{
	char dir[600], db[700], wal[720], err[512];
	struct ledger *l = NULL;
	size_t ndb = 0, nwal = 0;
	char *db0 = NULL, *wal0 = NULL;
	struct stat sb;

	snprintf(dir, sizeof(dir), "%s/lost-db", base);
	snprintf(db, sizeof(db), "%s/%s", dir, LEDGER_DB_NAME);
	snprintf(wal, sizeof(wal), "%s-wal", db);
	if (!ok(crash_with_wal(dir, "lost-1") == 0,
		"a child commits an order and exits without closing the ledger"))
		return;
	db0 = read_file(db, &ndb);
	wal0 = read_file(wal, &nwal);
	if (!ok(db0 && ndb > 0 && wal0 && nwal > 0, "ledger.db %zu bytes, ledger.db-wal %zu bytes",
		ndb, nwal))
		goto done;

	ok(truncate(db, 0) == 0, "ledger.db truncated to 0 bytes");
	l = open_dir(dir, err, sizeof(err));
	ok(!l && strstr(err, "ledger.db is empty") && strstr(err, "ledger.db-wal") &&
	   strstr(err, "left untouched"),
	   "a 0-byte ledger.db next to a non-empty WAL is refused: %s", l ? "it opened" : err);
	ledger_close(l);
	ok(same_bytes(wal, wal0, nwal) && stat(db, &sb) == 0 && sb.st_size == 0,
	   "the WAL is kept, ledger.db still 0 bytes");

	ok(unlink(db) == 0, "ledger.db deleted");
	l = open_dir(dir, err, sizeof(err));
	ok(!l && strstr(err, "ledger.db is missing") && strstr(err, "ledger.db-wal"),
	   "a missing ledger.db next to a non-empty WAL is refused: %s", l ? "it opened" : err);
	ledger_close(l);
	ok(same_bytes(wal, wal0, nwal) && stat(db, &sb) < 0 && errno == ENOENT,
	   "the WAL is kept, and no new ledger.db was created");

	l = NULL;
	if (write_file(db, db0, ndb) == 0)
		l = open_dir(dir, err, sizeof(err));
	ok(l && sold_of(l, "concert", SELLER_GENERAL) == 5,
	   "with ledger.db put back, it opens with the order of the WAL (%s)", l ? "ok" : err);
	ledger_close(l);
done:
	free(db0);
	free(wal0);
}

/* One writer per state dir, even with ledger.lock deleted under it: the
 * lock is on the directory itself. */
static void test_one_owner(const char *dir)
{
	char err[512], lock[700];
	struct ledger *a = open_dir(dir, err, sizeof(err)), *b;

	b = open_dir(dir, err, sizeof(err));
	ok(a && !b && strstr(err, "another ticketd holds state_dir") &&
	   strstr(err, "in use by another process"),
	   "a second open of the same state dir is refused: %s", err);
	ledger_close(b);
	snprintf(lock, sizeof(lock), "%s/ledger.lock", dir);
	ok(unlink(lock) == 0, "ledger.lock deleted while the first one runs");
	b = open_dir(dir, err, sizeof(err));
	ok(a && !b && strstr(err, "another ticketd holds state_dir"),
	   "the second open is still refused: %s", b ? "it opened" : err);
	ledger_close(b);
	ledger_close(a);
	b = open_dir(dir, err, sizeof(err));
	ok(b != NULL, "once the first is closed, it opens (%s)", b ? "ok" : err);
	ledger_close(b);
}

static void test_stats(struct ledger *l)
{
	struct ledger_stats st;
	uint64_t hb = 0, hl = 0;

	ledger_stats(l, &st);
	for (int i = 0; i < LEDGER_HIST_BUCKETS; i++) {
		hb += st.batch_hist[i];
		hl += st.commit_us_hist[i];
	}
	ok(st.batches > 0 && hb == st.batches && hl == st.batches,
	   "histograms count every batch (%llu)", (unsigned long long)st.batches);
	ok(st.orders > 0 && st.refunds == 1 && st.errors >= 3 && st.failed_batches == 0,
	   "stats: %llu orders, %llu refunds, %llu errors",
	   (unsigned long long)st.orders, (unsigned long long)st.refunds,
	   (unsigned long long)st.errors);
	ok(ledger_hist_bound(0) == 1 && ledger_hist_bound(3) == 8 &&
	   ledger_hist_bound(LEDGER_HIST_BUCKETS - 1) == UINT64_MAX, "histogram bounds");
}

/* ledger_hold: submissions wait in the thread until the release, then
 * commit in one batch. */
static void test_hold(struct ledger *l)
{
	struct waiter w[3];
	struct ledger_stats before, after;
	char id[3][16];
	int called = 0, good = 1;

	ledger_stats(l, &before);
	ledger_hold(l);
	for (int i = 0; i < 3; i++) {
		waiter_init(&w[i], LEDGER_OP_ORDER);
		snprintf(id[i], sizeof(id[i]), "held-%d", i);
		w[i].req.order = (struct ledger_order_in){ .id = id[i], .event = "hold",
			.tier = SELLER_GENERAL, .pool = SELLER_GENERAL, .quantity = 1,
			.buyer = "h" };
		good &= ledger_submit(l, &w[i].req) == 0;
	}
	usleep(50000); /* the ledger thread has had every chance to run */
	for (int i = 0; i < 3; i++) {
		pthread_mutex_lock(&w[i].lock);
		called += w[i].called;
		pthread_mutex_unlock(&w[i].lock);
	}
	ok(good && called == 0, "held submissions are accepted and wait in the thread");
	ledger_release(l);
	for (int i = 0; i < 3; i++) {
		good &= waiter_wait(&w[i]) == 0;
		waiter_fini(&w[i]);
	}
	ledger_stats(l, &after);
	ok(good && after.batches == before.batches + 1 && after.orders == before.orders + 3,
	   "the release commits all three in one batch (%llu batch(es))",
	   (unsigned long long)(after.batches - before.batches));
}

int main(void)
{
	char *dir = tmpdir_make(), err[512], sub[600];
	struct ledger *l;
	enum ledger_sync s;

	umask(022);
	ok(ledger_sync_parse("full", &s) == 0 && s == LEDGER_SYNC_FULL &&
	   ledger_sync_parse("off", &s) == 0 && s == LEDGER_SYNC_OFF &&
	   ledger_sync_parse("fast", &s) == -EINVAL &&
	   strcmp(ledger_sync_name(LEDGER_SYNC_OFF), "off") == 0, "sync names");
	test_hash();
	test_create_reopen(dir);

	snprintf(sub, sizeof(sub), "%s/main", dir);
	l = open_dir(sub, err, sizeof(err));
	if (ok(l != NULL, "open main ledger (%s)", l ? "ok" : err)) {
		test_orders(l);
		test_checks(l);
		test_idempotency(l);
		test_refunds(l);
		test_hold(l);
		test_stats(l);
		ledger_close(l);
	}
	snprintf(sub, sizeof(sub), "%s/drain", dir);
	test_close_drains(sub);
	test_one_owner(sub);
	test_refused_keeps_wal(dir);
	test_lost_db(dir);
	tmpdir_remove(dir);
	return tap_done();
}
