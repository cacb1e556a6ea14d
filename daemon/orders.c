/*
 * orders.c: the daemon's side of the durable ledger. It opens the ledger
 * (above the epoch floor kept in the state dir's epoch file, which it then
 * moves up to the new epoch), reads what was sold for
 * the catalog, hands out order ids (boot epoch plus one atomic counter),
 * and turns commits, stored replies and refunds into ledger requests whose
 * done() calls the caller's. Everything else (holding, reads, counters)
 * callers ask of the ledger itself (ledger.h), through orders_ledger. Nothing here holds a lock of its own: the
 * sold table is written once at open and only read after; the sequence is
 * an atomic; the ledger guards its queue and its read connections.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"
#include "log.h"
#include "orders.h"

/* Sold tickets of one event, as the ledger had them at open. */
struct sold_row {
	char *event;
	int64_t sold[SELLER_NPOOLS];
};

struct orders {
	struct ledger *ledger;
	uint64_t epoch;
	atomic_uint_fast64_t next_seq;      /* last sequence handed out */
	struct sold_row *sold;              /* read-only after orders_open */
	size_t nsold, capsold;
};

#define EPOCH_TMP_FILE "epoch.tmp" /* written, then renamed to ORDERS_EPOCH_FILE */

#define commit_of_req(r) \
	((struct orders_commit *)((char *)(r) - offsetof(struct orders_commit, req)))

/* mkdir -p path with mode 0700 (the state is the owner's only); 0 or -errno. */
static int mkdirs(const char *path)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int orders_check_dir(const char *dir, char *err, size_t errlen)
{
	char buf[PATH_MAX];
	size_t len = strlen(dir);
	struct stat st;
	int rc = 0;

	if (len == 0 || len >= sizeof(buf)) {
		rc = -ENAMETOOLONG;
		goto fail;
	}
	memcpy(buf, dir, len + 1);
	/* Up from dir to the deepest part that exists. */
	while (stat(buf, &st) < 0) {
		char *slash = strrchr(buf, '/');

		if (errno != ENOENT) {
			rc = -errno;
			goto fail;
		}
		if (!slash) {
			snprintf(buf, sizeof(buf), ".");
			continue;
		}
		slash[slash == buf] = '\0'; /* "/x" -> "/" */
	}
	if (!S_ISDIR(st.st_mode))
		rc = -ENOTDIR;
	else if (access(buf, W_OK | X_OK) < 0)
		rc = -errno;
	if (rc == 0)
		return 0;
	if (strcmp(buf, dir) == 0 && rc != -ENOTDIR) {
		/* It exists: the ledger's own words for the same refusal. */
		snprintf(err, errlen, "state dir %s is not writable: %s", dir, strerror(-rc));
		return rc;
	}
fail:
	snprintf(err, errlen, "state_dir %s: cannot create it: %s", dir, strerror(-rc));
	return rc;
}

/* Reads the epoch file (0 if there is none): the highest boot epoch used
 * on this state dir, kept outside ledger.db. It must be a small regular
 * file (file_read_small: a FIFO of that name is refused, not waited on).
 * 0 or -errno with err filled. */
static int read_epoch_file(int dfd, const char *dir, uint64_t *out, char *err, size_t errlen)
{
	char buf[32], *end;
	/* At most 30 bytes: any epoch, with room to spare. */
	ssize_t n = file_read_small(dfd, ORDERS_EPOCH_FILE, buf, sizeof(buf) - 1);

	*out = 0;
	if (n == -ENOENT)
		return 0;
	if (n == -EINVAL || n == -EISDIR) {
		snprintf(err, errlen, "state_dir %s: %s is not a regular file; left untouched: "
			 "replace it with a file holding the ledger's boot epoch (docs/ledger.md)",
			 dir, ORDERS_EPOCH_FILE);
		return -EINVAL;
	}
	if (n < 0 && n != -EFBIG) {
		snprintf(err, errlen, "state_dir %s: cannot read its %s file: %s", dir,
			 ORDERS_EPOCH_FILE, strerror((int)-n));
		return (int)n;
	}
	if (n >= 0) { /* else -EFBIG: too long for one number */
		errno = 0;
		*out = strtoull(buf, &end, 10);
		if (!errno && end != buf && (!*end || strcmp(end, "\n") == 0) &&
		    *out < INT64_MAX)
			return 0;
	}
	*out = 0;
	snprintf(err, errlen, "state_dir %s: its %s file does not hold a boot epoch (one "
		 "number); left untouched: put the ledger's boot epoch in it "
		 "(docs/ledger.md)", dir, ORDERS_EPOCH_FILE);
	return -EBADMSG;
}

/* Writes epoch into the epoch file durably: a temporary file, fsync'ed,
 * renamed over it, then the directory fsync'ed. 0 or -errno. */
static int write_epoch_file(int dfd, uint64_t epoch)
{
	char buf[32];
	int len = snprintf(buf, sizeof(buf), "%" PRIu64 "\n", epoch), off = 0, fd = -1, rc;

	/* A stale temporary file (a crash here) is replaced. */
	if (unlinkat(dfd, EPOCH_TMP_FILE, 0) < 0 && errno != ENOENT)
		goto fail;
	/* 0600 like everything in the state dir. */
	fd = openat(dfd, EPOCH_TMP_FILE, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		    0600);
	if (fd < 0)
		goto fail;
	while (off < len) {
		ssize_t n = write(fd, buf + off, (size_t)(len - off));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		off += (int)n;
	}
	if (fsync(fd) < 0)
		goto fail;
	rc = close(fd);
	fd = -1;
	if (rc < 0 || renameat(dfd, EPOCH_TMP_FILE, dfd, ORDERS_EPOCH_FILE) < 0 ||
	    fsync(dfd) < 0)
		goto fail;
	return 0;
fail:
	rc = -errno;
	if (fd >= 0)
		close(fd);
	unlinkat(dfd, EPOCH_TMP_FILE, 0);
	return rc;
}

/* Adds one (event, pool) row of what was sold into o->sold. */
static int add_sold(void *arg, const char *event, enum seller_pool pool, int64_t sold)
{
	struct orders *o = arg;
	struct sold_row *row = NULL;

	for (size_t i = 0; i < o->nsold && !row; i++)
		if (strcmp(o->sold[i].event, event) == 0)
			row = &o->sold[i];
	if (!row) {
		if (o->nsold == o->capsold) {
			size_t cap = o->capsold ? o->capsold * 2 : 16;
			struct sold_row *p = realloc(o->sold, cap * sizeof(*p));

			if (!p)
				return -ENOMEM;
			o->sold = p;
			o->capsold = cap;
		}
		row = &o->sold[o->nsold];
		memset(row, 0, sizeof(*row));
		row->event = strdup(event);
		if (!row->event)
			return -ENOMEM;
		o->nsold++;
	}
	row->sold[pool] += sold;
	return 0;
}

/* What orders_open's sold_check needs. */
struct open_ctx {
	struct orders *o;
	const struct conf *conf;
};

/* The ledger's sold_check, before it writes anything: records the row and
 * refuses a capacity now below what was sold. */
static int check_sold(void *arg, const char *event, enum seller_pool pool, int64_t sold,
		      char *err, size_t errlen)
{
	struct open_ctx *ctx = arg;
	const struct conf_event *e = ctx->conf ? conf_find_event(ctx->conf, event) : NULL;

	if (ctx->conf && !e) {
		/* As a reload refuses to drop it: its capacity is unknown. */
		snprintf(err, errlen, "event %s: the ledger holds %lld %s tickets sold for "
			 "it, but the configuration has no such event; an event with "
			 "sales cannot be dropped: put it back in \"events\"", event,
			 (long long)sold, seller_pool_name(pool));
		return -ENOENT;
	}
	if (e && sold > e->capacity[pool]) {
		snprintf(err, errlen, "event %s: %lld %s tickets were sold but the capacity "
			 "is now %lld; the ledger is left untouched (raise the capacity "
			 "to at least what was sold)", event, (long long)sold,
			 seller_pool_name(pool), (long long)e->capacity[pool]);
		return -ERANGE;
	}
	if (add_sold(ctx->o, event, pool, sold) < 0) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

int orders_open(const struct orders_options *opt, struct orders **out,
		char *err, size_t errlen)
{
	struct open_ctx ctx = { .conf = opt->conf };
	struct ledger_options lo = {
		.state_dir = opt->state_dir,
		.sync = opt->sync,
		.idempotency_ttl_s = opt->idempotency_ttl_s,
		.max_db_bytes = opt->max_db_bytes,
		.readers = opt->readers,
		.sold_check = check_sold,
		.sold_arg = &ctx,
		.batch_begin = opt->batch_begin,
		.batch_end = opt->batch_end,
	};
	struct orders *o = NULL;
	uint64_t old_epoch = 0;
	int dfd = -1, rc;

	/* The ledger holds buyer names: what the process creates from here on
	 * (the dir, ledger.db, SQLite's -wal and -shm, which SQLite makes
	 * 0644 less the umask) is its owner's only, as UMask=0077 makes it
	 * under systemd. */
	umask(077);
	rc = mkdirs(opt->state_dir);
	if (rc < 0) {
		snprintf(err, errlen, "state_dir %s: cannot create it: %s", opt->state_dir,
			 strerror(-rc));
		return rc;
	}
	dfd = open(opt->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		rc = -errno;
		snprintf(err, errlen, "state_dir %s: %s", opt->state_dir, strerror(errno));
		return rc;
	}
	rc = read_epoch_file(dfd, opt->state_dir, &old_epoch, err, errlen);
	if (rc < 0)
		goto fail;
	lo.min_epoch = old_epoch ? old_epoch + 1 : 0;
	o = calloc(1, sizeof(*o));
	if (!o) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	ctx.o = o;
	rc = ledger_open(&lo, &o->ledger, err, errlen);
	if (rc < 0)
		goto fail;
	o->epoch = ledger_epoch(o->ledger);
	/* Before any id of this epoch is handed out, the floor moves up to it
	 * outside the database too. Without it a restored ledger.db could bring
	 * this epoch back, so a start that cannot write it is refused. */
	rc = write_epoch_file(dfd, o->epoch);
	if (rc < 0) {
		snprintf(err, errlen, "state_dir %s: cannot write the boot epoch %" PRIu64
			 " to its %s file (through %s): %s; not starting: without that file a "
			 "ledger.db restored from a backup could hand out order ids again",
			 opt->state_dir, o->epoch, ORDERS_EPOCH_FILE, EPOCH_TMP_FILE,
			 strerror(-rc));
		goto fail;
	}
	log_info("state_dir %s: boot epoch %" PRIu64 " (the %s file had %" PRIu64 ")",
		 opt->state_dir, o->epoch, ORDERS_EPOCH_FILE, old_epoch);
	close(dfd);
	*out = o;
	return 0;
fail:
	orders_close(o);
	close(dfd);
	return rc;
}

/* The value below which a fraction q of the histogram's counts lie: the
 * upper bound of the bucket that holds that count. */
static uint64_t hist_quantile(const uint64_t *h, double q)
{
	uint64_t total = 0, seen = 0, want;

	for (unsigned i = 0; i < LEDGER_HIST_BUCKETS; i++)
		total += h[i];
	want = (uint64_t)(q * (double)total + 0.5);
	if (want == 0)
		want = 1;
	for (unsigned i = 0; i < LEDGER_HIST_BUCKETS; i++) {
		seen += h[i];
		if (seen >= want)
			return ledger_hist_bound(i);
	}
	return UINT64_MAX;
}

/* Logs the ledger's work: how many commits, how large, how long. */
static void log_stats(const struct ledger_stats *s)
{
	struct ledger_stats st = *s;

	if (!st.batches) {
		log_info("ledger: nothing was committed");
		return;
	}
	log_notice("ledger: %" PRIu64 " orders (%" PRIu64 " tickets), %" PRIu64 " refunds, "
		   "%" PRIu64 " stored replies in %" PRIu64 " commits, %" PRIu64 " failed",
		   st.orders, st.tickets, st.refunds, st.results, st.batches,
		   st.failed_batches);
	log_notice("ledger: requests per commit: mean %.1f, p50 < %" PRIu64 ", p99 < %"
		   PRIu64 ", max %" PRIu64 "; commit time: mean %.0f us, p50 < %" PRIu64
		   " us, p99 < %" PRIu64 " us, max %" PRIu64 " us",
		   (double)st.requests / (double)st.batches,
		   hist_quantile(st.batch_hist, 0.5), hist_quantile(st.batch_hist, 0.99),
		   st.max_batch, (double)st.commit_ns_total / (double)st.batches / 1000.0,
		   hist_quantile(st.commit_us_hist, 0.5),
		   hist_quantile(st.commit_us_hist, 0.99), st.commit_ns_max / 1000);
}

void orders_close(struct orders *o)
{
	if (!o)
		return;
	if (o->ledger) {
		struct ledger_stats st;

		/* Commits what is queued (its done()s run), then the figures. */
		ledger_close_stats(o->ledger, &st);
		o->ledger = NULL;
		log_stats(&st);
	}
	for (size_t i = 0; i < o->nsold; i++)
		free(o->sold[i].event);
	free(o->sold);
	free(o);
}

struct ledger *orders_ledger(const struct orders *o)
{
	return o->ledger;
}

int64_t orders_sold(void *arg, const char *event, enum seller_pool pool)
{
	const struct orders *o = arg;

	for (size_t i = 0; i < o->nsold; i++)
		if (strcmp(o->sold[i].event, event) == 0)
			return o->sold[i].sold[pool];
	return 0;
}

void orders_next_id(struct orders *o, char *buf, size_t len)
{
	uint64_t seq = atomic_fetch_add_explicit(&o->next_seq, 1, memory_order_relaxed) + 1;

	snprintf(buf, len, "%" PRIu64 "-%" PRIu64, o->epoch, seq);
}

/* The ledger's done(): the caller's, on the ledger thread. */
static void ledger_done(struct ledger_req *r, int result)
{
	struct orders_commit *c = commit_of_req(r);

	c->done(c, result);
}

/* Queues c->req; if the ledger refuses it, answers at once. */
static void submit(struct orders *o, struct orders_commit *c)
{
	int rc;

	c->req.done = ledger_done;
	rc = ledger_submit(o->ledger, &c->req);
	if (rc < 0)
		c->done(c, rc);
}

void orders_commit(struct orders *o, struct orders_commit *c)
{
	struct ledger_req *r = &c->req;

	memset(r, 0, sizeof(*r));
	r->op = LEDGER_OP_ORDER;
	r->order.id = c->order.id;
	r->order.event = c->order.event;
	r->order.tier = c->order.tier;
	r->order.pool = c->order.pool;
	r->order.quantity = c->order.quantity;
	r->order.buyer = c->order.buyer;
	r->idem = c->idem;
	submit(o, c);
}

void orders_remember(struct orders *o, struct orders_commit *c)
{
	struct ledger_req *r = &c->req;

	memset(r, 0, sizeof(*r));
	r->op = LEDGER_OP_RESULT;
	r->idem = c->idem;
	submit(o, c);
}

void orders_refund(struct orders *o, struct orders_commit *c, const char *id)
{
	struct ledger_req *r = &c->req;

	memset(r, 0, sizeof(*r));
	r->op = LEDGER_OP_REFUND;
	r->refund_id = id;
	submit(o, c);
}

int orders_audit(const struct conf *c, FILE *out, FILE *errf)
{
	struct ledger_capacity *caps = calloc(c->nevents, sizeof(*caps));
	struct ledger_audit_report rep;
	char err[512];
	int rc;

	if (!caps) {
		fprintf(errf, "ticketd: --audit: out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < c->nevents; i++) {
		caps[i].event = c->events[i].id;
		for (int p = 0; p < SELLER_NPOOLS; p++)
			caps[i].capacity[p] = c->events[i].capacity[p];
	}
	rc = ledger_audit(&(struct ledger_options){ .state_dir = c->state_dir }, caps,
			  c->nevents, out, &rep, err, sizeof(err));
	free(caps);
	fflush(out);
	if (rc < 0) {
		fprintf(errf, "ticketd: --audit: %s\n", err);
		return 1;
	}
	return rc == 0 ? 0 : 1;
}
