/*
 * seller_fc.h: the flat-combining engine behind the "batched" and
 * "priority" cores (lib/seller_fc.c), and the test hooks that let a test
 * make requests wait together and then serve them in one combining pass.
 * Nothing here is needed by the daemon: it picks cores through seller.h.
 */
#ifndef TICKETD_SELLER_FC_H
#define TICKETD_SELLER_FC_H

#include <stdbool.h>

#include "seller.h"

/* Publication slots per seller; a thread uses slot seller_thread_index() % this. */
#define SELLER_FC_SLOTS 64

/* Engine entry points the two cores' vtables are made of. vip_first: each
 * combining pass serves the waiting VIP requests before the general ones. */
int seller_fc_create(const struct seller_params *p, bool vip_first, struct seller **out);
void seller_fc_destroy(struct seller *s);
int seller_fc_reserve(struct seller *s, enum seller_pool buyer, unsigned qty,
		      enum seller_pool *from);
int seller_fc_release(struct seller *s, enum seller_pool pool, unsigned qty);
int seller_fc_grow(struct seller *s, enum seller_pool pool, int64_t add);
void seller_fc_snapshot(struct seller *s, struct seller_snapshot *out);

/* Test hooks. seller_fc_hold takes the combiner lock (blocking) so that
 * reserves pile up as published requests; 0, or -EINVAL if s is not a
 * combining core. seller_fc_waiting counts the published, unserved requests
 * by buyer pool (call it while holding). seller_fc_unhold serves them all in
 * one pass and lets go of the lock. */
int seller_fc_hold(struct seller *s);
void seller_fc_waiting(struct seller *s, unsigned *vip, unsigned *general);
void seller_fc_unhold(struct seller *s);

#endif /* TICKETD_SELLER_FC_H */
