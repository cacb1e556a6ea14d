/*
 * catalog.h: the events on sale. One entry per configured event, holding
 * its seller (the inventory, guarded by the event's core), its names and its
 * VIP rules. Entries are created at start-up or by a reload and never move
 * or die before shutdown, so any thread may keep a pointer to one; the
 * seller inside is the only mutable part, and the core guards it. Which
 * events are on sale can change on reload (catalog_update): readers on other
 * threads see the old set or the new one, never a mix.
 */
#ifndef TICKETD_CATALOG_H
#define TICKETD_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "seller.h"

struct catalog_event {
	char *id;                 /* [A-Za-z0-9_-]{1,64}: safe in JSON and URLs as is */
	size_t id_len;
	char *name_json;          /* the display name as a JSON string */
	const struct seller_core *core;
	struct seller *seller;    /* the inventory; thread-safe by its core */
	int has_vip;              /* the event has a vip tier */
	char *vip_code;           /* NULL without a vip tier */
	size_t vip_code_len;
	int vip_first;            /* VIP purchases take the pool's priority lane */
	unsigned seq;             /* 0, 1, 2, ... in the order events were made
				   * (reloads included): a dense index for
				   * per-event counters (metrics.c) */
};

struct catalog;

/* Already-sold tickets of (event, pool), e.g. from the ledger; may be NULL
 * (nothing sold). Returns the count, or a negative errno. */
typedef int64_t (*catalog_sold_fn)(void *arg, const char *event,
				   enum seller_pool pool);

/* Creates one seller per event of c, starting from sold(). sold and arg are
 * kept: catalog_update calls them again for events new to this run, so arg
 * must outlive the catalog. Returns 0, or -errno with the cause in err
 * (naming the event, e.g. when more was sold than the capacity now allows). */
int catalog_create(const struct conf *c, catalog_sold_fn sold, void *arg,
		   struct catalog **out, char *err, size_t errlen);
void catalog_destroy(struct catalog *cat);

/* Reload, on the thread that created the catalog: puts exactly c's events on
 * sale, in c's order. An event already made (on sale, or dropped by an
 * earlier update) keeps its seller and inventory and grows to c's
 * capacities where they are larger; an event new to this run gets a seller
 * that starts from sold(). Events c drops leave the index but stay
 * allocated: jobs in flight keep their pointer. The caller checks first
 * that nothing shrinks (see daemon/service.c). Returns 0, or -errno with
 * err, and then nothing changed. */
int catalog_update(struct catalog *cat, const struct conf *c,
		   char *err, size_t errlen);
/* The event ever made with this id, on sale or dropped, or NULL; the
 * updating thread only. */
struct catalog_event *catalog_find_made(const struct catalog *cat, const char *id);

/* The events on sale: an array of *n pointers that stays valid and
 * unchanged until catalog_destroy, whatever reloads happen. Any thread;
 * use it to walk the events from a thread other than the updating one. */
struct catalog_event *const *catalog_events(const struct catalog *cat, size_t *n);
/* Count and i-th event of the current set (NULL past the end); two calls
 * may see two sets unless made on the updating thread. */
size_t catalog_count(const struct catalog *cat);
struct catalog_event *catalog_at(const struct catalog *cat, size_t i);
/* Finds an event on sale by id (id[0..len)); NULL if none. Any thread. */
struct catalog_event *catalog_find(const struct catalog *cat, const char *id,
				   size_t len);
/* Finds an event ever made by id, on sale or dropped by a reload (a refund
 * of its order must still return the tickets to its seller); NULL if none.
 * Any thread. */
struct catalog_event *catalog_find_any(const struct catalog *cat, const char *id,
				       size_t len);
/* True if code[0..len) is the event's vip_code (constant time in len). */
int catalog_vip_code_ok(const struct catalog_event *ev, const char *code,
			size_t len);

#endif /* TICKETD_CATALOG_H */
