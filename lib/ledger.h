/*
 * ledger.h: the durable order ledger of libticket, whatever engine keeps it.
 * The ledger holds every confirmed order (its ticket codes derive from its
 * id), refunds and the idempotency keys. This header is the interface the
 * daemon and the tests use, and the seam (struct ledger_ops) where an
 * engine plugs in: today's one is SQLite (ledger_sqlite.h); docs/
 * architecture.md, "The store seam", says what another one must do.
 *
 * Threads. ledger_open starts what the engine needs (SQLite: one ledger
 * thread, which owns the only write connection). Any thread submits
 * requests (ledger_submit): the call hands a caller-owned struct ledger_req
 * to the engine and returns; it neither allocates nor does I/O. The engine
 * commits what was queued in as few transactions as it can (group commit)
 * and then calls each request's done() on its own thread. Reads
 * (ledger_get_order, ledger_idem_lookup, ledger_foreach_sold) run in the
 * calling thread, may block, and see only committed data.
 *
 * What crosses the border: pointers in a submitted request stay the caller's
 * and must stay valid until done() runs; done() gets the request back and
 * may free or reuse it. Reads return malloc'd results the caller frees.
 * The wrappers below check every argument before an engine sees it.
 */
#ifndef TICKETD_LEDGER_H
#define TICKETD_LEDGER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "seller.h"

#define LEDGER_ID_MAX 64                 /* order id, bytes */
#define LEDGER_EVENT_MAX 128             /* event id, bytes */
#define LEDGER_CODE_MAX 80               /* ticket code, bytes */
#define LEDGER_BUYER_MAX 128             /* buyer, bytes (1..128) */
#define LEDGER_IDEM_KEY_MAX 255          /* Idempotency-Key, bytes (1..255) */
#define LEDGER_HASH_LEN 32               /* request digest (SHA-256), bytes */
#define LEDGER_DEFAULT_TTL_S 86400       /* idempotency_ttl_s default */
#define LEDGER_DEFAULT_READERS 4         /* read connections */

/* When done() runs relative to the disk. */
enum ledger_sync {
	/* synchronous=FULL: the WAL is fsync'ed at every commit and done()
	 * runs after that, so a confirmed order survives a power loss. */
	LEDGER_SYNC_FULL = 0,
	/* synchronous=OFF: done() runs after COMMIT has written the batch to
	 * the WAL file (it survives a crash of the process) but before it
	 * reaches the disk: a power loss or kernel crash can lose the last
	 * batches. For benchmarks and demos only. */
	LEDGER_SYNC_OFF = 1,
};

struct ledger_ops;

struct ledger_options {
	const struct ledger_ops *engine; /* NULL = SQLite (ledger_sqlite_ops) */
	const char *state_dir;       /* created (mode 0750) if missing; required */
	enum ledger_sync sync;       /* LEDGER_SYNC_FULL unless told otherwise */
	int64_t idempotency_ttl_s;   /* keys older than this are gone; 0 = 86400 */
	unsigned readers;            /* read connections, 0 = LEDGER_DEFAULT_READERS */
	int64_t max_db_bytes;        /* size cap (PRAGMA max_page_count); 0 = none.
				      * Past it commits fail with -ENOSPC. */
	int64_t (*now_ms)(void);     /* wall clock in ms; NULL = CLOCK_REALTIME.
				      * Tests pass a fake one to expire keys. */
	uint64_t min_epoch;          /* the boot epoch this open gets is at least
				      * this (0 = no floor): the floor a caller
				      * keeps outside the database, which a
				      * ledger.db restored from a backup cannot
				      * bring back (ticketd's epoch file) */
	/* Optional: called for every (event, pool) with confirmed tickets,
	 * with their sum, after the checks and before anything is written
	 * (the epoch bump included). A negative return refuses the open with
	 * that -errno and the message the callback wrote into err, and
	 * leaves the file as it was: e.g. a capacity now below what was sold. */
	int (*sold_check)(void *arg, const char *event, enum seller_pool pool,
			  int64_t sold, char *err, size_t errlen);
	void *sold_arg;
	/* Optional, on the ledger thread: called before the first and after
	 * the last done() of each batch, so that the caller can hand all of a
	 * batch's completions on at once (one wakeup per batch, not per
	 * request). */
	void (*batch_begin)(void *arg);
	void (*batch_end)(void *arg);
	void *batch_arg;
};

struct ledger_stats;

/* An open ledger. Every engine's own struct starts with this header. */
struct ledger {
	const struct ledger_ops *ops;
	uint64_t epoch;              /* set by the engine's open, read-only after */
};

/* Opens opt->engine's ledger under opt->state_dir: it checks what is
 * stored, bumps the boot epoch durably and starts the engine's threads.
 * Returns 0, or -errno with the cause in err (-EINVAL for bad options; the
 * SQLite engine's other causes are in ledger_sqlite.h). */
int ledger_open(const struct ledger_options *opt, struct ledger **out,
		char *err, size_t errlen);
/* Commits everything already submitted, calls its done()s, stops the
 * engine's threads and closes the ledger. No submit or read may run
 * concurrently. */
void ledger_close(struct ledger *l);
/* The same, and copies the final counters (everything committed, the last
 * batches included) into *final first. */
void ledger_close_stats(struct ledger *l, struct ledger_stats *final);

/* The boot epoch: 1 on the first open of a new ledger, +1 at each open (or
 * options.min_epoch if that is larger), stored durably before ledger_open
 * returns. Order ids built from
 * (epoch, counter) are unique across restarts. */
uint64_t ledger_epoch(const struct ledger *l);
/* "full" or "off". */
const char *ledger_sync_name(enum ledger_sync s);
/* Parses "full" or "off"; 0 or -EINVAL. */
int ledger_sync_parse(const char *name, enum ledger_sync *out);

/* ---- writes --------------------------------------------------------------- */

enum ledger_op {
	/* Records a paid order (its tickets are "<id>-1" .. "<id>-<quantity>")
	 * and, when idem.key is set, its idempotency record. done(): 0, or
	 * -EEXIST if the order id or the key is taken (nothing of it is
	 * stored). */
	LEDGER_OP_ORDER = 1,
	/* Marks order refund_id refunded. done(): 0 and r->refunded filled,
	 * -ENOENT for an unknown order, -EALREADY if already refunded. The
	 * caller returns the tickets to stock only after done() says 0. */
	LEDGER_OP_REFUND,
	/* Stores a reply that sold nothing (402, 409 sold_out, ...) under
	 * idem.key so that a retry gets it again. done(): 0 or -EEXIST. */
	LEDGER_OP_RESULT,
	/* Forgets the idempotency keys older than the TTL now (the ledger
	 * thread also does it by itself, a chunk at a time). done(): the
	 * number of keys removed. */
	LEDGER_OP_PURGE,
};

/* The order of a LEDGER_OP_ORDER; strings NUL-terminated. */
struct ledger_order_in {
	const char *id;              /* 1..LEDGER_ID_MAX bytes, unique forever */
	const char *event;           /* 1..LEDGER_EVENT_MAX bytes */
	enum seller_pool tier;       /* the tier the buyer asked for */
	enum seller_pool pool;       /* the pool the tickets came from */
	unsigned quantity;           /* 1..SELLER_MAX_QUANTITY */
	const char *buyer;           /* 1..LEDGER_BUYER_MAX bytes */
};

/* An idempotency record: the reply a retry with the same key gets back. */
struct ledger_idem_in {
	const char *key;             /* 1..LEDGER_IDEM_KEY_MAX bytes; NULL = none */
	unsigned char req_hash[LEDGER_HASH_LEN]; /* digest of the request */
	int status;                  /* HTTP status to replay, 100..599 */
	const char *body;            /* reply body to replay, or NULL */
};

/* SHA-256 of data into out: the digest for ledger_idem_in.req_hash. Hash a
 * canonical form of the request (the event id and the parsed fields, e.g.
 * re-serialised with sorted keys) so that equivalent bodies match. */
void ledger_hash(const void *data, size_t len, unsigned char out[LEDGER_HASH_LEN]);

struct ledger_req;
/* Called once per accepted request, on the ledger thread, after its batch
 * committed (or failed); result is 0, a positive op result, or -errno.
 * Must be quick (post to an event loop and return). */
typedef void (*ledger_done_fn)(struct ledger_req *r, int result);

/* One write request. The caller fills the "in" part, owns the memory and may
 * embed it in its own job struct (container_of in done). */
struct ledger_req {
	enum ledger_op op;
	struct ledger_order_in order;    /* LEDGER_OP_ORDER */
	const char *refund_id;           /* LEDGER_OP_REFUND: the order id */
	struct ledger_idem_in idem;      /* ORDER (key optional), RESULT (key required) */
	ledger_done_fn done;             /* required */
	/* out, valid in done() when result == 0 (LEDGER_OP_REFUND) */
	struct {
		char event[LEDGER_EVENT_MAX + 1];
		enum seller_pool pool;   /* where to release the tickets */
		unsigned quantity;
	} refunded;
	/* private to the ledger: next chains the requests handed to an
	 * engine; after that both are the engine's */
	struct ledger_req *next;
	int result;
};

/* Queues r for the engine. 0: done() will be called exactly once.
 * -EINVAL (bad op, missing done, a field out of range) or -ESHUTDOWN (the
 * ledger is closing): done() is never called. Never blocks on I/O. */
int ledger_submit(struct ledger *l, struct ledger_req *r);

/* Between ledger_hold and ledger_release (same thread), ledger_submit only
 * checks a request and keeps it in a thread-local list; ledger_flush and
 * ledger_release hand the whole list to the engine in one call (SQLite:
 * one lock and one wakeup), so a worker that confirms a burst of orders
 * lands them in one batch instead of waking the engine for the first
 * alone; this is done here, above every engine. Requests accepted while
 * holding get their done() as usual (with -ESHUTDOWN, from the releasing
 * thread, if the ledger closed meanwhile). Hold around a short run of work,
 * never across a wait. */
void ledger_hold(struct ledger *l);
void ledger_flush(struct ledger *l);
void ledger_release(struct ledger *l);

/* Writes the code of ticket n (1-based) of order id: "<id>-<n>". Codes are
 * derived, not stored; they are unique because ids are and a code splits
 * at its last '-'. Returns its length, or -ENAMETOOLONG if it does not fit
 * in len. */
int ledger_ticket_code(const char *order_id, unsigned n, char *buf, size_t len);

/* ---- reads (any thread; see only committed data) ----------------------------- */

enum ledger_state {
	LEDGER_CONFIRMED = 0,
	LEDGER_REFUNDED = 1,
};

/* An order as stored; one malloc'd block, release with free(). */
struct ledger_order {
	char *id;
	char *event;
	enum seller_pool tier;       /* as asked */
	enum seller_pool pool;       /* tickets taken from */
	unsigned quantity;
	char *buyer;
	char *idem_key;              /* NULL if the purchase had none */
	enum ledger_state state;
	int64_t created_ms;          /* unix time, ms */
	int64_t updated_ms;          /* last change (the refund), ms */
	char **tickets;              /* the codes, "<id>-1" .. "<id>-<quantity>" */
	unsigned ntickets;           /* == quantity */
};

/* Reads order id with its tickets into *out (free() it). 0, -ENOENT, or
 * -errno (-EIO on a database error). */
int ledger_get_order(struct ledger *l, const char *id, struct ledger_order **out);

/* A stored idempotency record; one malloc'd block, release with free(). */
struct ledger_idem {
	unsigned char req_hash[LEDGER_HASH_LEN];
	int status;                  /* stored reply status */
	char *body;                  /* stored reply body, or NULL */
	char *order_id;              /* the order it created, or NULL */
	int64_t created_ms;
};

/* Looks up an unexpired key. 0 and *out (free() it), -ENOENT (unknown or
 * older than the TTL), or -errno. Keys still in the queue are not seen:
 * the caller tracks its in-flight keys itself (409 in_progress). */
int ledger_idem_lookup(struct ledger *l, const char *key, struct ledger_idem **out);

/* Calls cb for every (event, pool) with confirmed tickets, with the sum of
 * their quantities, to rebuild inventory at start-up. cb runs holding a read
 * connection and must not call the ledger. Returns 0, the first nonzero
 * value cb returned, or -errno. */
int ledger_foreach_sold(struct ledger *l,
			int (*cb)(void *arg, const char *event, enum seller_pool pool,
				  int64_t sold),
			void *arg);

/* ---- statistics ------------------------------------------------------------- */

/* Histogram bucket i counts values whose bit length is i: bucket 0 holds 0,
 * bucket i holds [2^(i-1), 2^i); the last bucket holds everything larger. */
#define LEDGER_HIST_BUCKETS 24

struct ledger_stats {
	uint64_t batches;            /* transactions attempted */
	uint64_t failed_batches;     /* of which failed (every request got -errno) */
	uint64_t requests;           /* requests completed */
	uint64_t errors;             /* requests completed with -errno */
	uint64_t orders;             /* orders committed */
	uint64_t tickets;            /* tickets committed */
	uint64_t refunds;            /* refunds committed */
	uint64_t results;            /* RESULT records committed */
	uint64_t purged;             /* idempotency keys expired */
	uint64_t queued;             /* requests waiting right now */
	uint64_t max_batch;          /* largest batch, requests */
	uint64_t commit_ns_total;    /* BEGIN..COMMIT time summed over batches */
	uint64_t commit_ns_max;
	uint64_t batch_hist[LEDGER_HIST_BUCKETS];     /* batch sizes, requests */
	uint64_t commit_us_hist[LEDGER_HIST_BUCKETS]; /* BEGIN..COMMIT, µs */
};

/* Copies a consistent snapshot of the counters into *out. */
void ledger_stats(struct ledger *l, struct ledger_stats *out);
/* The upper bound (exclusive) of histogram bucket i: 2^i; UINT64_MAX for
 * the last bucket. */
uint64_t ledger_hist_bound(unsigned i);
/* The bucket of value v: its bit length, capped at the last bucket. */
unsigned ledger_hist_bucket(uint64_t v);

/* ---- audit (offline) -------------------------------------------------------- */

/* One configured event's capacities, for the audit. */
struct ledger_capacity {
	const char *event;
	int64_t capacity[SELLER_NPOOLS];
};

/* Problems found by ledger_audit, by check. */
struct ledger_audit_report {
	uint64_t orders, confirmed, refunded, tickets; /* figures */
	unsigned integrity;          /* PRAGMA integrity_check lines != "ok" */
	unsigned oversold;           /* (event, pool) with sold > capacity */
	unsigned unknown_events;     /* events sold in the ledger, not in caps */
	/* Schema 1 files only (schema 2 derives the codes from the orders): */
	unsigned underived;          /* ticket rows not "<id>-<n>" (no upgrade) */
	unsigned dup_codes;          /* ticket codes held more than once */
	unsigned bad_ticket_counts;  /* orders whose ticket count != quantity */
	unsigned orphan_tickets;     /* tickets of no order */
	unsigned refund_mismatch;    /* refunds rows vs refunded orders */
	unsigned count_mismatch;     /* counts table vs the orders */
	unsigned bad_rows;           /* impossible values (state, quantity, pool) */
	unsigned idem_orphans;       /* idempotency records of missing orders */
};

/* Reads opt->engine's ledger under opt->state_dir read-only (the daemon may
 * be running; only engine and state_dir of opt are used) and checks it
 * against caps: sold <= capacity per event and pool, refunds consistent,
 * and what the engine keeps besides the orders (SQLite: the counts table;
 * in a schema 1 file, the stored ticket rows) consistent with them. Prints
 * the figures and every problem to out. Returns 0 if everything holds, 1
 * if a check failed (rep says which, if not NULL), or -errno with the cause
 * in err if the ledger can't be read. */
int ledger_audit(const struct ledger_options *opt, const struct ledger_capacity *caps,
		 size_t ncaps, FILE *out, struct ledger_audit_report *rep,
		 char *err, size_t errlen);

/* ---- the engine seam ------------------------------------------------------- */

/* One engine's operations. The ledger_* wrappers above check the options and
 * every request before an engine sees them, and keep the hold/flush/release
 * lists themselves: an engine only ever receives checked requests, chained
 * through their next field. docs/architecture.md, "The store seam", has who
 * calls what on which thread. */
struct ledger_ops {
	const char *name;            /* e.g. "sqlite" */
	/* Opens the ledger (options already checked), sets (*out)->ops and
	 * ->epoch (above opt->min_epoch), calls opt->sold_check for what was
	 * sold before it writes anything, starts its threads. 0 or -errno with
	 * err filled. Called once, with nothing else running. */
	int (*open)(const struct ledger_options *opt, struct ledger **out,
		    char *err, size_t errlen);
	/* Commits what it took, calls every owed done(), copies the final
	 * counters into *final if not NULL, and frees l. Nothing else runs. */
	void (*close)(struct ledger *l, struct ledger_stats *final);
	/* Takes the chain head..tail (n requests, linked by next, tail->next
	 * NULL): 0, and every done() will run once, on the engine's thread,
	 * after its batch committed or failed, between the options' batch_begin
	 * and batch_end; or -ESHUTDOWN (closing) and none of it was taken. Any
	 * thread; must not block on I/O. */
	int (*submit)(struct ledger *l, struct ledger_req *head, struct ledger_req *tail,
		      uint64_t n);
	/* The reads of ledger_get_order, ledger_idem_lookup (id and key already
	 * checked for length; *out already NULL), ledger_foreach_sold and
	 * ledger_stats. Any thread, concurrently; may block. */
	int (*get_order)(struct ledger *l, const char *id, struct ledger_order **out);
	int (*idem_lookup)(struct ledger *l, const char *key, struct ledger_idem **out);
	int (*foreach_sold)(struct ledger *l,
			    int (*cb)(void *arg, const char *event, enum seller_pool pool,
				      int64_t sold),
			    void *arg);
	void (*stats)(struct ledger *l, struct ledger_stats *out);
	/* ledger_audit, without an open ledger (rep never NULL, already
	 * zeroed; err already ""). */
	int (*audit)(const struct ledger_options *opt, const struct ledger_capacity *caps,
		     size_t ncaps, FILE *out, struct ledger_audit_report *rep,
		     char *err, size_t errlen);
};

/* The engines this build has (ledger_sqlite.h: SQLite, the default when
 * ledger_options.engine is NULL). */
extern const struct ledger_ops ledger_sqlite_ops;

#endif /* TICKETD_LEDGER_H */
