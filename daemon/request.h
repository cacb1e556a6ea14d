/*
 * request.h: pure decoding of ticketd's HTTP API, with no I/O and no
 * libevent: a request target to a route, and a purchase body to a struct,
 * with every validation rule and the error a client gets back. The daemon
 * calls it on its event-loop threads; the fuzz targets call it directly.
 * Nothing here allocates beyond jansson's parse of the body, and nothing
 * keeps state between calls.
 */
#ifndef TICKETD_REQUEST_H
#define TICKETD_REQUEST_H

#include <stddef.h>

#include "seller.h"

#define REQUEST_ID_MAX 64          /* event and order ids in paths, bytes */
#define REQUEST_BUYER_MAX 128      /* buyer name, bytes of UTF-8 */
#define REQUEST_VIP_CODE_MAX 128   /* vip_code, bytes */
/* A buyer as a JSON string: quotes plus at most 6 bytes ("\u001f") per byte. */
#define REQUEST_BUYER_JSON_MAX (2 + 6 * REQUEST_BUYER_MAX)

/* HTTP methods as a bit set, independent of libevent's numbering. */
enum request_method {
	REQ_GET = 1u << 0,
	REQ_HEAD = 1u << 1,
	REQ_POST = 1u << 2,
	REQ_PUT = 1u << 3,
	REQ_DELETE = 1u << 4,
	REQ_PATCH = 1u << 5,
	REQ_OPTIONS = 1u << 6,
	REQ_OTHER = 1u << 7,
};

enum request_route_kind {
	ROUTE_NOT_FOUND = 0,
	ROUTE_HEALTHZ,     /* /healthz */
	ROUTE_EVENTS,      /* /v1/events */
	ROUTE_EVENT,       /* /v1/events/{id} */
	ROUTE_PURCHASE,    /* /v1/events/{id}/purchase */
	ROUTE_ORDER,       /* /v1/orders/{id} */
	ROUTE_METRICS,     /* /metrics (Prometheus) */
	ROUTE_REFUND,      /* /v1/orders/{id}/refund (operator) */
};

struct request_route {
	enum request_route_kind kind;
	const char *id;        /* into the path given to request_route; not NUL-terminated */
	size_t id_len;         /* 1..REQUEST_ID_MAX when the route has an id */
	unsigned allowed;      /* enum request_method bits the route answers */
	const char *allow;     /* the same as an Allow header value, e.g. "GET" */
};

/* Matches path (no query string; percent-escapes are not decoded, so an id
 * holding one never matches) to a route. Ids are 1..REQUEST_ID_MAX bytes of
 * [A-Za-z0-9_-]. Returns the route kind, ROUTE_NOT_FOUND for anything else. */
enum request_route_kind request_route(const char *path, size_t len,
				      struct request_route *out);

/* True if s[0..len) is a well-formed id (the same rule as in paths). */
int request_id_valid(const char *s, size_t len);

/* True if the UTF-8 s[0..len) holds a control character, Unicode's Cc:
 * C0 (U+0000..U+001F), DEL (U+007F) or C1 (U+0080..U+009F, the bytes 0xC2
 * 0x80..0x9F). Other invisible characters (U+2028, U+200B...) are not Cc.
 * The one rule for buyers, vip codes and every string of the config. */
int request_has_control(const char *s, size_t len);

/* A decoded purchase body. */
struct request_purchase {
	unsigned quantity;                 /* 1..max_quantity; default 1 */
	enum seller_pool tier;             /* default SELLER_GENERAL */
	char buyer[REQUEST_BUYER_MAX + 1]; /* UTF-8, NUL-terminated, no NUL inside */
	size_t buyer_len;                  /* 1..REQUEST_BUYER_MAX */
	char buyer_json[REQUEST_BUYER_JSON_MAX + 1]; /* buyer as a JSON string */
	size_t buyer_json_len;
	char vip_code[REQUEST_VIP_CODE_MAX + 1];     /* "" when absent */
	int has_vip_code;
};

/* Why a request was refused: the HTTP status, a stable machine code and a
 * sentence for a person (plain text; escape it before putting it in JSON). */
struct request_error {
	int status;
	const char *code;
	char message[192];
};

/* Decodes a purchase body (body[0..len), need not be NUL-terminated).
 * Fields: quantity (integer 1..max_quantity, default 1), tier ("general" or
 * "vip", default "general"), buyer (string of 1..128 bytes, required, no
 * control characters: request_has_control), vip_code (string); anything
 * else is refused.
 * Returns 0, or -EINVAL with err filled (status 400). */
int request_decode_purchase(const char *body, size_t len, unsigned max_quantity,
			    struct request_purchase *out, struct request_error *err);

/* The request headers ticketd reads itself, fed one at a time, in arrival
 * order, into a zeroed struct (evhttp has framed the request already). */
struct request_headers {
	unsigned content_lengths;          /* Content-Length headers seen */
};

/* Checks one header. A second Content-Length is refused even when both
 * agree: evhttp framed the body by the first, and a proxy in front may have
 * used the other (request smuggling). Returns 0, or -EINVAL with err filled
 * (400 invalid_request; the connection should be closed). */
int request_header(struct request_headers *st, const char *name, const char *value,
		   struct request_error *err);

/* Writes s[0..len) (UTF-8) as a JSON string, quotes included, into out.
 * Returns the length written (out is NUL-terminated), or -ENOSPC / -EINVAL
 * (not UTF-8, or allocation failure). */
int request_json_string(const char *s, size_t len, char *out, size_t outlen);

#endif /* TICKETD_REQUEST_H */
