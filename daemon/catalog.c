/*
 * catalog.c: builds the events from the config and finds them by id. The
 * events on sale are an immutable index (an array of event pointers)
 * published through one atomic pointer: readers (every loop, any worker)
 * load it and never lock; catalog_update, on the main thread, builds a new
 * index and publishes it. A second index, published the same way, holds
 * every event ever made (on sale or dropped), for catalog_find_any. Events
 * and old indexes are never freed before catalog_destroy, so a pointer any
 * thread got stays valid. The sellers it
 * creates are the cores' business (each guards its own counters).
 */
#include "config.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "log.h"
#include "request.h"

/* The events on sale at one moment; immutable once published. */
struct catalog_index {
	size_t n;
	struct catalog_event *ev[];
};

struct catalog {
	_Atomic(struct catalog_index *) cur; /* published: acquire/release */
	_Atomic(struct catalog_index *) made; /* every event made, published */
	/* Below: the updating thread's alone. */
	struct catalog_index **old;          /* indexes replaced, freed at destroy */
	size_t nold;
	struct catalog_event **all;          /* every event ever made (made's source) */
	size_t nall, capall;
	catalog_sold_fn sold;                /* what the ledger says was sold */
	void *sold_arg;
};

static void event_free(struct catalog_event *e)
{
	if (!e)
		return;
	seller_destroy(e->seller);
	free(e->id);
	free(e->name_json);
	free(e->vip_code);
	free(e);
}

static struct catalog_index *index_new(size_t n)
{
	struct catalog_index *x = calloc(1, sizeof(*x) + n * sizeof(x->ev[0]));

	if (x)
		x->n = n;
	return x;
}

/* A new "made" index: the first n events of cat->all; NULL if no memory. */
static struct catalog_index *made_index(const struct catalog *cat, size_t n)
{
	struct catalog_index *x = index_new(n);

	if (x)
		memcpy(x->ev, cat->all, n * sizeof(x->ev[0]));
	return x;
}

static struct catalog_index *cur_index(const struct catalog *cat)
{
	/* The catalog's own field is atomic; the cast drops only the const. */
	return atomic_load_explicit(&((struct catalog *)cat)->cur, memory_order_acquire);
}

/* Builds one entry from its config; 0 or -errno with the cause in err. */
static int event_init(struct catalog_event *e, const struct conf *c,
		      const struct conf_event *ce, catalog_sold_fn sold, void *arg,
		      char *err, size_t errlen)
{
	/* The request decoder enforces limits.max_quantity, which a reload may
	 * raise: the seller itself only keeps the absolute bound. */
	struct seller_params params = { .max_quantity = SELLER_MAX_QUANTITY };
	char name[2 + 6 * CONF_NAME_MAX + 1];
	const char *why = NULL;
	int rc;

	e->id = strdup(ce->id);
	e->id_len = strlen(ce->id);
	e->vip_code = ce->vip_code ? strdup(ce->vip_code) : NULL;
	rc = request_json_string(ce->name, strlen(ce->name), name, sizeof(name));
	e->name_json = rc > 0 ? strdup(name) : NULL;
	if (!e->id || !e->name_json || (ce->vip_code && !e->vip_code)) {
		snprintf(err, errlen, "event %s: out of memory", ce->id);
		return -ENOMEM;
	}
	e->vip_code_len = e->vip_code ? strlen(e->vip_code) : 0;
	e->has_vip = ce->has_vip;
	e->core = ce->core;
	e->vip_first = strcmp(ce->core->name, "priority") == 0;
	for (int p = 0; p < SELLER_NPOOLS; p++) {
		params.capacity[p] = ce->capacity[p];
		params.sold[p] = sold ? sold(arg, ce->id, (enum seller_pool)p) : 0;
		if (params.sold[p] < 0) {
			snprintf(err, errlen, "event %s: cannot read what was sold: %s",
				 ce->id, strerror((int)-params.sold[p]));
			return (int)params.sold[p];
		}
		if (params.sold[p] > params.capacity[p]) {
			snprintf(err, errlen, "event %s: %lld %s tickets were sold but the "
				 "capacity is now %lld", ce->id, (long long)params.sold[p],
				 seller_pool_name((enum seller_pool)p),
				 (long long)params.capacity[p]);
			return -ERANGE;
		}
	}
	if (seller_params_check(&params, &why) < 0) {
		snprintf(err, errlen, "event %s: %s", ce->id, why);
		return -EINVAL;
	}
	rc = seller_create(ce->core, &params, &e->seller);
	if (rc < 0) {
		snprintf(err, errlen, "event %s: cannot create a %s seller: %s", ce->id,
			 ce->core->name, strerror(-rc));
		return rc;
	}
	return 0;
}

/* Makes one event from its config and records it in cat->all; 0 or -errno. */
static int event_make(struct catalog *cat, const struct conf *c,
		      const struct conf_event *ce, struct catalog_event **out,
		      char *err, size_t errlen)
{
	struct catalog_event *e;
	int rc;

	if (cat->nall == cat->capall) {
		size_t cap = cat->capall ? cat->capall * 2 : 16;
		struct catalog_event **a = realloc(cat->all, cap * sizeof(*a));

		if (!a) {
			snprintf(err, errlen, "event %s: out of memory", ce->id);
			return -ENOMEM;
		}
		cat->all = a;
		cat->capall = cap;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		snprintf(err, errlen, "event %s: out of memory", ce->id);
		return -ENOMEM;
	}
	rc = event_init(e, c, ce, cat->sold, cat->sold_arg, err, errlen);
	if (rc < 0) {
		event_free(e);
		return rc;
	}
	e->seq = (unsigned)cat->nall;
	cat->all[cat->nall++] = e;
	*out = e;
	return 0;
}

int catalog_create(const struct conf *c, catalog_sold_fn sold, void *arg,
		   struct catalog **out, char *err, size_t errlen)
{
	struct catalog *cat = calloc(1, sizeof(*cat));
	struct catalog_index *x = index_new(c->nevents), *made;
	int rc = -ENOMEM;

	if (!cat || !x) {
		snprintf(err, errlen, "out of memory");
		free(x);
		goto fail;
	}
	cat->sold = sold;
	cat->sold_arg = arg;
	atomic_init(&cat->cur, x);
	for (size_t i = 0; i < c->nevents; i++) {
		rc = event_make(cat, c, &c->events[i], &x->ev[i], err, errlen);
		if (rc < 0)
			goto fail;
	}
	made = made_index(cat, cat->nall);
	if (!made) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto fail;
	}
	atomic_init(&cat->made, made);
	*out = cat;
	return 0;
fail:
	catalog_destroy(cat);
	return rc;
}

/* An event ever made with this id, on sale or dropped; NULL if none. */
struct catalog_event *catalog_find_made(const struct catalog *cat, const char *id)
{
	for (size_t i = 0; i < cat->nall; i++)
		if (strcmp(cat->all[i]->id, id) == 0)
			return cat->all[i];
	return NULL;
}

int catalog_update(struct catalog *cat, const struct conf *c,
		   char *err, size_t errlen)
{
	struct catalog_index *x = index_new(c->nevents), *prev, *newmade = NULL;
	struct catalog_index **old;
	size_t made = cat->nall;
	int rc = -ENOMEM;

	/* Room for the two indexes this update may replace. */
	old = realloc(cat->old, (cat->nold + 2) * sizeof(*old));
	if (old)
		cat->old = old;
	if (!x || !old) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	/* First everything that can fail: events new to this run. */
	for (size_t i = 0; i < c->nevents; i++) {
		x->ev[i] = catalog_find_made(cat, c->events[i].id);
		if (!x->ev[i]) {
			rc = event_make(cat, c, &c->events[i], &x->ev[i], err, errlen);
			if (rc < 0)
				goto fail;
		}
	}
	if (cat->nall > made && !(newmade = made_index(cat, cat->nall))) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto fail;
	}
	/* Then what cannot: growth the caller checked (seller_grow refuses
	 * only add <= 0 and overflow, and capacities are at most 10^12). */
	for (size_t i = 0; i < c->nevents; i++) {
		struct catalog_event *e = x->ev[i];
		struct seller_snapshot snap;

		seller_snapshot(e->seller, &snap);
		for (int p = 0; p < SELLER_NPOOLS; p++) {
			int64_t add = c->events[i].capacity[p] - snap.capacity[p];

			/* A vip tier added to an existing event waits for a
			 * restart: its code and its place in replies are fixed. */
			if (p == SELLER_VIP && !e->has_vip)
				continue;
			if (add > 0 && (rc = seller_grow(e->seller, (enum seller_pool)p,
							  add)) < 0)
				log_err("event %s: cannot grow the %s capacity by %lld: %s",
					e->id, seller_pool_name((enum seller_pool)p),
					(long long)add, strerror(-rc));
		}
	}
	/* made first: whoever finds a new event through cur (and sells it)
	 * then finds it through made too (a refund of that sale). */
	if (newmade) {
		prev = atomic_exchange_explicit(&cat->made, newmade, memory_order_acq_rel);
		cat->old[cat->nold++] = prev;
	}
	prev = atomic_exchange_explicit(&cat->cur, x, memory_order_acq_rel);
	cat->old[cat->nold++] = prev;
	return 0;
fail:
	/* Events made for this update are not on sale anywhere yet. */
	while (cat->nall > made)
		event_free(cat->all[--cat->nall]);
	free(x);
	return rc;
}

void catalog_destroy(struct catalog *cat)
{
	if (!cat)
		return;
	for (size_t i = 0; i < cat->nall; i++)
		event_free(cat->all[i]);
	for (size_t i = 0; i < cat->nold; i++)
		free(cat->old[i]);
	free(cat->old);
	free(cat->all);
	free(atomic_load(&cat->cur));
	free(atomic_load(&cat->made));
	free(cat);
}

struct catalog_event *const *catalog_events(const struct catalog *cat, size_t *n)
{
	struct catalog_index *x = cur_index(cat);

	*n = x->n;
	return x->ev;
}

size_t catalog_count(const struct catalog *cat)
{
	return cur_index(cat)->n;
}

struct catalog_event *catalog_at(const struct catalog *cat, size_t i)
{
	struct catalog_index *x = cur_index(cat);

	return i < x->n ? x->ev[i] : NULL;
}

struct catalog_event *catalog_find(const struct catalog *cat, const char *id,
				   size_t len)
{
	struct catalog_index *x = cur_index(cat);

	for (size_t i = 0; i < x->n; i++) {
		struct catalog_event *e = x->ev[i];

		if (e->id_len == len && memcmp(e->id, id, len) == 0)
			return e;
	}
	return NULL;
}

struct catalog_event *catalog_find_any(const struct catalog *cat, const char *id,
				       size_t len)
{
	struct catalog_index *x = atomic_load_explicit(&((struct catalog *)cat)->made,
						       memory_order_acquire);

	for (size_t i = 0; i < x->n; i++) {
		struct catalog_event *e = x->ev[i];

		if (e->id_len == len && memcmp(e->id, id, len) == 0)
			return e;
	}
	return NULL;
}

int catalog_vip_code_ok(const struct catalog_event *ev, const char *code, size_t len)
{
	unsigned char diff = 0;

	if (!ev->vip_code || len != ev->vip_code_len)
		return 0;
	for (size_t i = 0; i < len; i++)
		diff |= (unsigned char)(code[i] ^ ev->vip_code[i]);
	return diff == 0;
}
