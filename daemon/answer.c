/*
 * answer.c: replies built off the loop (see answer.h). Bodies are made with
 * jansson (compact, keys in insertion order), so an ORDER has the same
 * fields in the same order as the 201 the loop writes itself. Only
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
#include <jansson.h>

#include "answer.h"
#include "seller.h"

/* Dumps j compactly into a malloc'd string and drops j; NULL on ENOMEM. */
static char *dump(json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

	json_decref(j);
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
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* json_string refuses invalid UTF-8: messages are ASCII plus ids. */
	answer_take(a, status, dump(json_pack("{s:s,s:s}", "error", code, "message",
					      msg)),
		    status == 503 ? ANSWER_RETRY_AFTER : 0, NULL);
	return status;
}

int answer_sold_out(struct answer *a, const char *tiers, unsigned quantity,
		    long long available)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "not enough %s tickets left for %u: %lld available",
		 tiers, quantity, available);
	answer_take(a, 409, dump(json_pack("{s:s,s:s,s:I}", "error", "sold_out",
					   "message", msg, "available",
					   (json_int_t)available)), 0, NULL);
	return 409;
}

/* {"order","event","tier","quantity","tickets","buyer","state"}: tickets
 * from codes, or "<id>-<n>" when codes is NULL. NULL on ENOMEM. */
static char *order_json(const char *id, const char *event, const char *pool,
			unsigned quantity, char *const *codes, const char *buyer,
			const char *state)
{
	json_t *o = json_object(), *t = json_array();
	char code[LEDGER_CODE_MAX + 1];
	int bad = !o || !t;

	for (unsigned i = 0; !bad && i < quantity; i++) {
		if (!codes && ledger_ticket_code(id, i + 1, code, sizeof(code)) < 0)
			bad = 1;
		else
			bad = json_array_append_new(t, json_string(codes ? codes[i] : code)) < 0;
	}
	if (!bad)
		bad = json_object_set_new(o, "order", json_string(id)) < 0 ||
		      json_object_set_new(o, "event", json_string(event)) < 0 ||
		      json_object_set_new(o, "tier", json_string(pool)) < 0 ||
		      json_object_set_new(o, "quantity", json_integer(quantity)) < 0 ||
		      json_object_set(o, "tickets", t) < 0 ||
		      json_object_set_new(o, "buyer", json_string(buyer)) < 0 ||
		      json_object_set_new(o, "state", json_string(state)) < 0;
	json_decref(t);
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return dump(o);
}

char *answer_order_json(const char *id, const char *event, const char *pool,
			unsigned quantity, const char *buyer)
{
	return order_json(id, event, pool, quantity, NULL, buyer, "confirmed");
}

int answer_order(struct answer *a, int status, const struct ledger_order *o,
		 int state_override)
{
	int state = state_override >= 0 ? state_override : (int)o->state;
	char *body = order_json(o->id, o->event, seller_pool_name(o->pool), o->ntickets,
				o->tickets, o->buyer,
				state == LEDGER_REFUNDED ? "refunded" : "confirmed");

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
		evbuffer_add_printf(out, "{\"error\":\"internal_error\",\"message\":"
				    "\"out of memory while building the reply\"}");
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
