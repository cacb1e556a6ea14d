/*
 * payment.h: the simulated payment provider. It has a latency and a decline
 * rate; it runs after a reservation and outside every core lock. Settings are
 * atomics so a reload can change them while purchases run; each purchase
 * takes a snapshot (a plan) when its payment starts and keeps to it.
 * In async mode the daemon waits on a timer of the connection's own event
 * loop; in blocking mode the worker sleeps, as in the Go ticket-seller article.
 */
#ifndef TICKETD_PAYMENT_H
#define TICKETD_PAYMENT_H

#include <stdint.h>

#include "conf.h"

/* One purchase's payment settings, fixed when its payment starts. */
struct payment_plan {
	unsigned latency_ms;
	enum conf_payment_mode mode;
	uint64_t threshold;   /* decline when a 64-bit draw is below it */
	int always;           /* decline_rate 1.0: decline every payment */
};

struct payment;

/* Allocates the provider with the config's settings; 0 or -ENOMEM. */
int payment_create(unsigned latency_ms, double decline_rate,
		   enum conf_payment_mode mode, struct payment **out);
void payment_destroy(struct payment *p);
/* Changes the settings for payments that start from now on (reload). */
void payment_configure(struct payment *p, unsigned latency_ms, double decline_rate,
		       enum conf_payment_mode mode);
/* Snapshots the current settings. */
void payment_plan(struct payment *p, struct payment_plan *out);
/* Sleeps the calling thread for the plan's latency (blocking mode). */
void payment_sleep(const struct payment_plan *plan);
/* Draws the provider's answer: 1 if the payment is declined, 0 if it is
 * accepted. Any thread; each thread has its own random state. */
int payment_declined(const struct payment_plan *plan);

#endif /* TICKETD_PAYMENT_H */
