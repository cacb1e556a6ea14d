/*
 * seller_priority.c: the "priority" core, VIP first. It is the flat-combining
 * engine of seller_fc.c with one rule added: each combining pass answers
 * every waiting VIP request before any waiting general one, so when VIP and
 * general buyers wait together for the last tickets, the VIPs get them.
 * General requests are still answered in the same pass (after the VIPs), so
 * they always progress, and nobody polls: a waiter spins briefly, then sleeps
 * on a futex until it is answered or woken to combine. This replaces the Go
 * ticket-seller article's dispatcher goroutine, which busy-polls two channels
 * with a 10 us sleep. VIP buyers fall back to the general pool when the VIP
 * pool cannot cover qty; general buyers never take VIP tickets.
 */
#include "config.h"

#include "seller_fc.h"

static int priority_create(const struct seller_params *p, struct seller **out)
{
	return seller_fc_create(p, true, out);
}

const struct seller_core seller_core_priority = {
	.name = "priority",
	.summary = "flat combining that serves waiting VIP requests before general ones",
	.create = priority_create,
	.destroy = seller_fc_destroy,
	.reserve = seller_fc_reserve,
	.release = seller_fc_release,
	.grow = seller_fc_grow,
	.snapshot = seller_fc_snapshot,
};
