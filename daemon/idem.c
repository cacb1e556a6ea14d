/*
 * idem.c: Idempotency-Key's header check, request digest and in-flight set
 * (see idem.h). The set is a fixed table of buckets; each bucket's mutex
 * guards its chain of jobs (linked by idem_link.next) and nothing else, and
 * is held for a walk of that chain only: no I/O, no allocation.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/keyvalq_struct.h>

#include "catalog.h"
#include "idem.h"

#define IDEM_BUCKETS 256u

struct idem_bucket {
	pthread_mutex_t lock;         /* guards head and the chain behind it */
	struct idem_link *head;
};

struct idem {
	struct idem_bucket b[IDEM_BUCKETS];
};

int idem_create(struct idem **out)
{
	struct idem *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	for (unsigned i = 0; i < IDEM_BUCKETS; i++)
		pthread_mutex_init(&s->b[i].lock, NULL);
	*out = s;
	return 0;
}

void idem_destroy(struct idem *s)
{
	if (!s)
		return;
	for (unsigned i = 0; i < IDEM_BUCKETS; i++)
		pthread_mutex_destroy(&s->b[i].lock);
	free(s);
}

/* Sets err to a 400 invalid_idempotency_key; returns -EINVAL. */
static int bad_key(struct request_error *err, const char *why)
{
	err->status = 400;
	err->code = "invalid_idempotency_key";
	snprintf(err->message, sizeof(err->message), "Idempotency-Key %s", why);
	return -EINVAL;
}

int idem_header(const struct evkeyvalq *headers, char *key, struct request_error *err)
{
	const struct evkeyval *h;
	const char *v = NULL;
	size_t n;

	key[0] = '\0';
	for (h = headers->tqh_first; h; h = h->next.tqe_next) {
		if (strcasecmp(h->key, "Idempotency-Key") != 0)
			continue;
		if (v)
			return bad_key(err, "must be sent once");
		v = h->value;
	}
	if (!v)
		return 0;
	n = strlen(v);
	if (n == 0)
		return bad_key(err, "must not be empty");
	if (n > IDEM_KEY_MAX)
		return bad_key(err, "must be at most 255 characters");
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x21 || (unsigned char)v[i] > 0x7e)
			return bad_key(err, "must be visible ASCII characters only");
	memcpy(key, v, n + 1);
	return 1;
}

void idem_digest(const struct catalog_event *ev, const struct request_purchase *in,
		 unsigned char out[LEDGER_HASH_LEN])
{
	/* Fields separated by '\n', which none of them can hold (ids are
	 * [A-Za-z0-9_-], buyers have no control characters). */
	char buf[64 + REQUEST_ID_MAX + REQUEST_BUYER_MAX];
	int n = snprintf(buf, sizeof(buf), "purchase v1\n%s\n%s\n%u\n%s", ev->id,
			 seller_pool_name(in->tier), in->quantity, in->buyer);

	ledger_hash(buf, n > 0 && (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1, out);
}

/* FNV-1a of the key, for its bucket. */
static unsigned bucket_of(const char *key)
{
	uint32_t h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h % IDEM_BUCKETS;
}

int idem_begin(struct idem *s, struct idem_link *l)
{
	struct idem_bucket *b = &s->b[bucket_of(l->key)];
	int rc = 0;

	pthread_mutex_lock(&b->lock);
	for (struct idem_link *o = b->head; o; o = o->next)
		if (strcmp(o->key, l->key) == 0) {
			rc = -EBUSY;
			break;
		}
	if (!rc) {
		l->next = b->head;
		b->head = l;
		l->held = 1;
	}
	pthread_mutex_unlock(&b->lock);
	return rc;
}

void idem_end(struct idem *s, struct idem_link *l)
{
	struct idem_bucket *b;

	if (!l->held)
		return;
	b = &s->b[bucket_of(l->key)];
	pthread_mutex_lock(&b->lock);
	for (struct idem_link **pp = &b->head; *pp; pp = &(*pp)->next)
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	pthread_mutex_unlock(&b->lock);
	l->held = 0;
	l->next = NULL;
}
