/*
 * reply.h: every JSON body ticketd sends, one writer each: an ORDER, an
 * EVENT and the event list, the sold-out refusal, every error, the health
 * answer. They write into an evbuffer: a loop's output buffer on the hot
 * path, or a private one off the loop (answer.c turns that into a stored
 * body). Nothing here touches a request or a header; no state.
 */
#ifndef TICKETD_REPLY_H
#define TICKETD_REPLY_H

#include <stdarg.h>
#include <stdint.h>

#include "catalog.h"
#include "seller.h"

struct evbuffer;

/* An ORDER's fields, as reply_order writes them. */
struct reply_order {
	const char *id;          /* the order id (ASCII) */
	const char *event;       /* the event id (ASCII) */
	const char *tier;        /* the pool the tickets came from: "general", "vip" */
	unsigned quantity;
	char *const *codes;      /* quantity ticket codes, or NULL: "<id>-<n>" */
	const char *buyer_json;  /* the buyer as a JSON string, quotes included */
	const char *state;       /* "confirmed" or "refunded" */
};

/* Writes {"order","event","tier","quantity","tickets","buyer","state"}. */
void reply_order(struct evbuffer *out, const struct reply_order *o);

/* Writes one EVENT object: id, name, seller and its tiers' counts now. */
void reply_event(struct evbuffer *out, const struct catalog_event *ev);

/* Writes {"events":[EVENT, ...]} of evs[0..n). */
void reply_events(struct evbuffer *out, struct catalog_event *const *evs, size_t n);

/* Writes the 409 {"error":"sold_out","message":...,"available":n} of a
 * purchase of quantity tier tickets when only available could be had. */
void reply_sold_out(struct evbuffer *out, enum seller_pool tier, unsigned quantity,
		    int64_t available);

/* Writes {"error":code,"message":...}, the message formatted from fmt for a
 * person (made a JSON string here; "" if it is not UTF-8). */
__attribute__((format(printf, 3, 4)))
void reply_error(struct evbuffer *out, const char *code, const char *fmt, ...);
__attribute__((format(printf, 3, 0)))
void reply_verror(struct evbuffer *out, const char *code, const char *fmt, va_list ap);

/* Writes {"status":"ok"} (GET /healthz). */
void reply_healthz(struct evbuffer *out);

#endif /* TICKETD_REPLY_H */
