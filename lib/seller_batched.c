/*
 * seller_batched.c: the "batched" core, flat combining. Callers publish
 * their reserve in a per-thread slot and whoever holds the combiner lock
 * applies every pending request in one pass, writing each caller its own
 * exact answer (unlike the Go ticket-seller article's fire-and-forget batch
 * channel). The engine, its waiting rules and its correctness argument are in
 * seller_fc.c; this core serves a pass in slot order.
 */
#include "config.h"

#include "seller_fc.h"

static int batched_create(const struct seller_params *p, struct seller **out)
{
	return seller_fc_create(p, false, out);
}

const struct seller_core seller_core_batched = {
	.name = "batched",
	.summary = "flat combining: one lock holder serves every published request per pass",
	.create = batched_create,
	.destroy = seller_fc_destroy,
	.reserve = seller_fc_reserve,
	.release = seller_fc_release,
	.grow = seller_fc_grow,
	.snapshot = seller_fc_snapshot,
};
