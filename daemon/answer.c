/*
 * answer.c: replies built off the loop (see answer.h). Bodies come from
 * reply.c, written into a private evbuffer and kept as a string, so an
 * ORDER is the very body the loop writes itself for a 201. Only
 * answer_write runs on a loop, and it does no I/O of its own: it hands the
 * body to evhttp's output buffer.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "answer.h"
#include "reply.h"
#include "request.h"
#include "seller.h"

/* The body b holds, as a malloc'd NUL-terminated string; frees b. NULL if
 * b is NULL or on ENOMEM. */
static char *body_of(struct evbuffer *b)
{
	size_t len = b ? evbuffer_get_length(b) : 0;
	char *s = b ? malloc(len + 1) : NULL;

	if (s) {
		evbuffer_remove(b, s, len);
		s[len] = '\0';
	}
	if (b)
		evbuffer_free(b);
	return s;
}

void answer_take(struct answer *a, int status, char *body, unsigned flags,
		 const char *order)
{
	free(a->body);
	a->status = status;
	a->body = body;
	a->len = body ? strlen(body) : 0;
	a->flags = flags;
	if (order)
		snprintf(a->order, sizeof(a->order), "%s", order);
	else
		a->order[0] = '\0';
}

int answer_error(struct answer *a, int status, const char *code, const char *fmt, ...)
{
	struct evbuffer *b = evbuffer_new();
	va_list ap;

	va_start(ap, fmt);
	if (b)
		reply_verror(b, code, fmt, ap);
	va_end(ap);
	answer_take(a, status, body_of(b), status == 503 ? ANSWER_RETRY_AFTER : 0, NULL);
	return status;
}

int answer_sold_out(struct answer *a, enum seller_pool tier, unsigned quantity,
		    int64_t available)
{
	struct evbuffer *b = evbuffer_new();

	if (b)
		reply_sold_out(b, tier, quantity, available);
	answer_take(a, 409, body_of(b), 0, NULL);
	return 409;
}

/* The ORDER body of o (buyer as stored: made a JSON string here), or NULL
 * on ENOMEM or a buyer that is not UTF-8. */
static char *order_body(struct reply_order *o, const char *buyer)
{
	char buyer_json[REQUEST_BUYER_JSON_MAX + 1];
	struct evbuffer *b;

	if (request_json_string(buyer, strlen(buyer), buyer_json, sizeof(buyer_json)) < 0)
		return NULL;
	o->buyer_json = buyer_json;
	b = evbuffer_new();
	if (b)
		reply_order(b, o);
	return body_of(b);
}

char *answer_order_json(const char *id, const char *event, const char *pool,
			unsigned quantity, const char *buyer)
{
	struct reply_order o = {
		.id = id, .event = event, .tier = pool, .quantity = quantity,
		.state = "confirmed",
	};

	return order_body(&o, buyer);
}

int answer_order(struct answer *a, int status, const struct ledger_order *o,
		 int state_override)
{
	int state = state_override >= 0 ? state_override : (int)o->state;
	struct reply_order r = {
		.id = o->id, .event = o->event, .tier = seller_pool_name(o->pool),
		.quantity = o->ntickets, .codes = o->tickets,
		.state = state == LEDGER_REFUNDED ? "refunded" : "confirmed",
	};
	char *body = order_body(&r, o->buyer);

	if (!body)
		return -ENOMEM;
	answer_take(a, status, body, 0, o->id);
	return 0;
}

void answer_clear(struct answer *a)
{
	free(a->body);
	a->body = NULL;
	a->len = 0;
	a->status = 0;
	a->flags = 0;
}

int answer_write(struct answer *a, struct evhttp_request *req)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	int status = a->status ? a->status : 500;
	char loc[16 + LEDGER_ID_MAX];

	if (a->body)
		evbuffer_add(out, a->body, a->len);
	else
		reply_error(out, "internal_error", "out of memory while building the reply");
	if (!a->body)
		status = 500;
	if ((a->flags & ANSWER_LOCATION) && a->order[0]) {
		snprintf(loc, sizeof(loc), "/v1/orders/%s", a->order);
		evhttp_add_header(h, "Location", loc);
	}
	if (a->flags & ANSWER_REPLAYED)
		evhttp_add_header(h, "Idempotent-Replayed", "true");
	if (a->flags & ANSWER_RETRY_AFTER)
		evhttp_add_header(h, "Retry-After", "1");
	if (a->flags & ANSWER_AUTH)
		evhttp_add_header(h, "WWW-Authenticate", "Bearer realm=\"ticketd\"");
	answer_clear(a);
	return status;
}
