/*
 * reply.c: the JSON bodies (see reply.h). The ORDER and the sold-out body
 * are on the 201/409 hot path: their pieces are copied into a small stack
 * buffer without printf and reach the evbuffer in one evbuffer_add. Ticket
 * codes come from ledger_ticket_code, the one place they are made.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "fmt.h"
#include "ledger.h"
#include "reply.h"
#include "request.h"

/* A small output buffer: pieces are copied in and the whole goes to the
 * evbuffer with one evbuffer_add. */
struct obuf {
	struct evbuffer *out;
	size_t n;
	char buf[2048];
};

static void ob_flush(struct obuf *ob)
{
	if (ob->n)
		evbuffer_add(ob->out, ob->buf, ob->n);
	ob->n = 0;
}

static void ob_add(struct obuf *ob, const char *s, size_t len)
{
	if (ob->n + len > sizeof(ob->buf)) {
		ob_flush(ob);
		if (len > sizeof(ob->buf)) {
			evbuffer_add(ob->out, s, len);
			return;
		}
	}
	memcpy(ob->buf + ob->n, s, len);
	ob->n += len;
}

#define ob_lit(ob, lit) ob_add((ob), (lit), sizeof(lit) - 1)

static void ob_str(struct obuf *ob, const char *s)
{
	ob_add(ob, s, strlen(s));
}

/* Appends v in decimal. */
static void ob_i64(struct obuf *ob, int64_t v)
{
	char tmp[FMT_U64_LEN];

	if (v < 0)
		ob_add(ob, "-", 1);
	ob_add(ob, tmp, fmt_u64(tmp, v < 0 ? 0 - (uint64_t)v : (uint64_t)v));
}

void reply_order(struct evbuffer *out, const struct reply_order *o)
{
	struct obuf ob = { .out = out };
	char code[LEDGER_CODE_MAX + 1];

	ob_lit(&ob, "{\"order\":\"");
	ob_str(&ob, o->id);
	ob_lit(&ob, "\",\"event\":\"");
	ob_str(&ob, o->event);
	ob_lit(&ob, "\",\"tier\":\"");
	ob_str(&ob, o->tier);
	ob_lit(&ob, "\",\"quantity\":");
	ob_i64(&ob, o->quantity);
	ob_lit(&ob, ",\"tickets\":[");
	for (unsigned i = 0; i < o->quantity; i++) {
		const char *c = o->codes ? o->codes[i] : code;

		if (!o->codes && ledger_ticket_code(o->id, i + 1, code, sizeof(code)) < 0)
			code[0] = '\0'; /* ids are short: orders_next_id, the ledger */
		if (i)
			ob_lit(&ob, ",");
		ob_lit(&ob, "\"");
		ob_str(&ob, c);
		ob_lit(&ob, "\"");
	}
	ob_lit(&ob, "],\"buyer\":");
	ob_str(&ob, o->buyer_json);
	ob_lit(&ob, ",\"state\":\"");
	ob_str(&ob, o->state);
	ob_lit(&ob, "\"}");
	ob_flush(&ob);
}

/* Writes one tier's ,"<name>":{"capacity","available","sold"} (lead: ","). */
static void tier_counts(struct obuf *ob, const char *lead,
			const struct seller_snapshot *snap, enum seller_pool p)
{
	ob_str(ob, lead);
	ob_lit(ob, "\"");
	ob_str(ob, seller_pool_name(p));
	ob_lit(ob, "\":{\"capacity\":");
	ob_i64(ob, snap->capacity[p]);
	ob_lit(ob, ",\"available\":");
	ob_i64(ob, snap->available[p]);
	ob_lit(ob, ",\"sold\":");
	ob_i64(ob, snap->sold[p]);
	ob_lit(ob, "}");
}

void reply_event(struct evbuffer *out, const struct catalog_event *ev)
{
	struct obuf ob = { .out = out };
	struct seller_snapshot snap;

	seller_snapshot(ev->seller, &snap);
	ob_lit(&ob, "{\"id\":\"");
	ob_str(&ob, ev->id);
	ob_lit(&ob, "\",\"name\":");
	ob_str(&ob, ev->name_json);
	ob_lit(&ob, ",\"seller\":\"");
	ob_str(&ob, ev->core->name);
	ob_lit(&ob, "\",\"tiers\":{");
	tier_counts(&ob, "", &snap, SELLER_GENERAL);
	if (ev->has_vip)
		tier_counts(&ob, ",", &snap, SELLER_VIP);
	ob_lit(&ob, "}}");
	ob_flush(&ob);
}

void reply_events(struct evbuffer *out, struct catalog_event *const *evs, size_t n)
{
	evbuffer_add(out, "{\"events\":[", 11);
	for (size_t i = 0; i < n; i++) {
		if (i)
			evbuffer_add(out, ",", 1);
		reply_event(out, evs[i]);
	}
	evbuffer_add(out, "]}", 2);
}

void reply_sold_out(struct evbuffer *out, enum seller_pool tier, unsigned quantity,
		    int64_t available)
{
	struct obuf ob = { .out = out };

	ob_lit(&ob, "{\"error\":\"sold_out\",\"message\":\"not enough ");
	ob_str(&ob, tier == SELLER_VIP ? "vip or general" : "general");
	ob_lit(&ob, " tickets left for ");
	ob_i64(&ob, quantity);
	ob_lit(&ob, ": ");
	ob_i64(&ob, available);
	ob_lit(&ob, " available\",\"available\":");
	ob_i64(&ob, available);
	ob_lit(&ob, "}");
	ob_flush(&ob);
}

void reply_verror(struct evbuffer *out, const char *code, const char *fmt, va_list ap)
{
	char msg[256], esc[2 + 6 * sizeof(msg)];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (request_json_string(msg, strlen(msg), esc, sizeof(esc)) < 0)
		strcpy(esc, "\"\"");
	evbuffer_add_printf(out, "{\"error\":\"%s\",\"message\":%s}", code, esc);
}

void reply_error(struct evbuffer *out, const char *code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	reply_verror(out, code, fmt, ap);
	va_end(ap);
}

void reply_healthz(struct evbuffer *out)
{
	evbuffer_add(out, "{\"status\":\"ok\"}", 15);
}
