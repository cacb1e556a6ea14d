/*
 * idem.h: the in-memory half of Idempotency-Key. The ledger keeps the
 * durable records (the reply a retry gets back); this module checks the
 * header, digests a purchase into its canonical form, and keeps the set of
 * keys whose first request is still in flight in this process, so that a
 * retry racing it gets 409 in_progress instead of a second sale.
 *
 * Threads: idem_header runs on a loop (it reads evhttp headers); the set is
 * shared by every worker and the ledger thread, striped into buckets that
 * each have a mutex guarding only that bucket's chain. The set allocates
 * nothing: a key is the job's own copy (struct idem_link), linked in place.
 */
#ifndef TICKETD_IDEM_H
#define TICKETD_IDEM_H

#include <stddef.h>

#include "ledger.h"
#include "request.h"

#define IDEM_KEY_MAX LEDGER_IDEM_KEY_MAX   /* 255 bytes */

struct evkeyvalq;
struct catalog_event;
struct idem;

/* A purchase's key as the in-flight set sees it: embedded in the request's
 * job, linked in by idem_begin, so the set allocates nothing. */
struct idem_link {
	char key[IDEM_KEY_MAX + 1];           /* "" if none */
	unsigned char hash[LEDGER_HASH_LEN];  /* its purchase's digest (idem_digest) */
	struct idem_link *next;               /* in-flight set link */
	int held;                             /* the key is in the in-flight set */
};

int idem_create(struct idem **out);
void idem_destroy(struct idem *s);

/* Reads the Idempotency-Key header of a request into key (IDEM_KEY_MAX + 1
 * bytes): 1 if present and valid, 0 if absent (key = ""), or -EINVAL with
 * err filled (400) for an empty, too long, repeated or non-visible-ASCII
 * key. */
int idem_header(const struct evkeyvalq *headers, char *key, struct request_error *err);

/* The digest of a purchase that "same body" compares: SHA-256 over the
 * event id, the tier asked for, the quantity and the buyer (the decoded
 * fields, so JSON spacing, key order and defaults do not matter; vip_code
 * is not part of it: a vip purchase only gets this far with the right one). */
void idem_digest(const struct catalog_event *ev, const struct request_purchase *in,
		 unsigned char out[LEDGER_HASH_LEN]);

/* Marks l->key in flight: 0, or -EBUSY if another request holds it. */
int idem_begin(struct idem *s, struct idem_link *l);
/* Drops l's key from the set (no-op unless idem_begin gave 0). */
void idem_end(struct idem *s, struct idem_link *l);

#endif /* TICKETD_IDEM_H */
