/*
 * test_request.c: daemon/request.c without a daemon: every route and a wrong
 * one of each shape, and the purchase decoder on good bodies, every
 * rejection code, and bytes that are not NUL-terminated.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "request.h"
#include "tap.h"

static enum request_route_kind kind(const char *path, struct request_route *r)
{
	return request_route(path, strlen(path), r);
}

static void routes(void)
{
	struct request_route r;

	ok(kind("/healthz", &r) == ROUTE_HEALTHZ && r.allowed == REQ_GET &&
	   strcmp(r.allow, "GET") == 0, "/healthz: GET");
	ok(kind("/v1/events", &r) == ROUTE_EVENTS, "/v1/events");
	ok(kind("/v1/events/concert", &r) == ROUTE_EVENT && r.id_len == 7 &&
	   memcmp(r.id, "concert", 7) == 0, "/v1/events/{id} gives the id");
	ok(kind("/v1/events/flash-sale/purchase", &r) == ROUTE_PURCHASE &&
	   r.allowed == REQ_POST && strcmp(r.allow, "POST") == 0 && r.id_len == 10,
	   "/v1/events/{id}/purchase: POST");
	ok(kind("/v1/orders/12-34", &r) == ROUTE_ORDER && r.id_len == 5, "/v1/orders/{id}");
	ok(kind("/metrics", &r) == ROUTE_METRICS && r.allowed == REQ_GET &&
	   r.id == NULL, "/metrics: GET");

	static const char *const bad[] = {
		"", "/", "/healthz/", "/healthzz", "/HEALTHZ", "/v1", "/v1/",
		"/v1/events/", "/v1/events//purchase", "/v1/events/a/", "/v1/events/a/purchase/",
		"/v1/events/a/purchases", "/v1/events/a/b", "/v1/events/a%20b",
		"/v1/events/../healthz", "/v1/events/a.b", "/v1/orders", "/v1/orders/",
		"/v1/orders/1/2", "/v1/eventsx", "/v2/events", "v1/events",
		"/metrics/", "/metricsx", "/METRICS",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ok(kind(bad[i], &r) == ROUTE_NOT_FOUND && r.allowed == 0,
		   "\"%s\" is not a route", bad[i]);

	char longid[128] = "/v1/events/";
	memset(longid + 11, 'a', 64);
	ok(kind(longid, &r) == ROUTE_EVENT && r.id_len == 64, "a 64-character id");
	longid[11 + 64] = 'a';
	ok(kind(longid, &r) == ROUTE_NOT_FOUND, "a 65-character id is not");
	/* The length given wins over the NUL. */
	ok(request_route("/healthzXXX", 8, &r) == ROUTE_HEALTHZ, "the path length is honoured");
}

/* Decodes body (NUL-terminated here, but passed with its length only). */
static int decode(const char *body, unsigned maxq, struct request_purchase *p,
		  struct request_error *e)
{
	return request_decode_purchase(body, strlen(body), maxq, p, e);
}

static void bodies(void)
{
	struct request_purchase p;
	struct request_error e;

	ok(decode("{\"buyer\":\"alice\"}", 10, &p, &e) == 0 && p.quantity == 1 &&
	   p.tier == SELLER_GENERAL && strcmp(p.buyer, "alice") == 0 &&
	   strcmp(p.buyer_json, "\"alice\"") == 0 && !p.has_vip_code,
	   "defaults: quantity 1, general");
	ok(decode("{\"quantity\":10,\"tier\":\"vip\",\"buyer\":\"b\\\"\\u00fc\","
		  "\"vip_code\":\"k\"}", 10, &p, &e) == 0 && p.quantity == 10 &&
	   p.tier == SELLER_VIP && p.has_vip_code && strcmp(p.vip_code, "k") == 0 &&
	   strcmp(p.buyer, "b\"\xc3\xbc") == 0 && strcmp(p.buyer_json, "\"b\\\"\xc3\xbc\"") == 0,
	   "every field, and the buyer re-escaped as JSON");

	static const struct { const char *body; unsigned maxq; const char *code; } bad[] = {
		{ "", 10, "invalid_json" },
		{ "{", 10, "invalid_json" },
		{ "{\"buyer\":\"a\"} {}", 10, "invalid_json" },
		{ "{\"buyer\":\"a\",\"buyer\":\"b\"}", 10, "invalid_json" },
		{ "{\"buyer\":\"a\\u0000\"}", 10, "invalid_json" },
		{ "[]", 10, "invalid_body" },
		{ "{}", 10, "missing_field" },
		{ "{\"buyer\":\"a\",\"x\":1}", 10, "unknown_field" },
		{ "{\"buyer\":\"\"}", 10, "invalid_field" },
		{ "{\"buyer\":[]}", 10, "invalid_field" },
		{ "{\"buyer\":\"a\\tb\"}", 10, "invalid_field" },
		{ "{\"buyer\":\"a\\u0085b\"}", 10, "invalid_field" },
		{ "{\"buyer\":\"a\xc2\x9f\"}", 10, "invalid_field" },
		{ "{\"buyer\":\"a\",\"vip_code\":\"\\u0080\"}", 10, "invalid_field" },
		{ "{\"buyer\":\"a\",\"quantity\":0}", 10, "invalid_quantity" },
		{ "{\"buyer\":\"a\",\"quantity\":11}", 10, "invalid_quantity" },
		{ "{\"buyer\":\"a\",\"quantity\":2}", 1, "invalid_quantity" },
		{ "{\"buyer\":\"a\",\"quantity\":2.5}", 10, "invalid_quantity" },
		{ "{\"buyer\":\"a\",\"quantity\":true}", 10, "invalid_quantity" },
		{ "{\"buyer\":\"a\",\"tier\":\"VIP\"}", 10, "unknown_tier" },
		{ "{\"buyer\":\"a\",\"tier\":null}", 10, "invalid_field" },
		{ "{\"buyer\":\"a\",\"vip_code\":5}", 10, "invalid_field" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = decode(bad[i].body, bad[i].maxq, &p, &e);

		ok(rc == -EINVAL && e.status == 400 && strcmp(e.code, bad[i].code) == 0 &&
		   e.message[0] != '\0', "'%s' (max %u): 400 %s (%s)", bad[i].body,
		   bad[i].maxq, bad[i].code, rc ? e.code : "accepted");
	}

	/* C1 controls are refused exactly as C0 ones; U+00A0 (0xC2 0xA0, the
	 * byte after C1) and U+2028/U+2029 (not Cc) are not controls. */
	struct request_error c0;
	ok(decode("{\"buyer\":\"a\\u001bb\"}", 10, &p, &c0) == -EINVAL &&
	   decode("{\"buyer\":\"a\\u0085b\"}", 10, &p, &e) == -EINVAL &&
	   e.status == c0.status && strcmp(e.code, c0.code) == 0 &&
	   strcmp(e.message, c0.message) == 0,
	   "buyer with U+0085: the same 400 as with U+001B (%s: %s)", e.code, e.message);
	static const char *const fine[] = {
		"a\\u00a0b", "a\\u2028b", "a\\u2029b", "a\\u00c2b", "a\\u007eb",
	};
	for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++) {
		char b[64];

		snprintf(b, sizeof(b), "{\"buyer\":\"%s\"}", fine[i]);
		ok(decode(b, 10, &p, &e) == 0, "buyer \"%s\" is accepted", fine[i]);
	}
	ok(request_has_control("\x7f", 1) && request_has_control("\xc2\x80", 2) &&
	   request_has_control("\xc2\x9f", 2) && !request_has_control("\xc2\xa0", 2) &&
	   !request_has_control("\xc2", 1) && !request_has_control("~\xc3\x80", 3) &&
	   !request_has_control("\xe2\x80\xa8", 3), "request_has_control: C0, DEL, C1 only");

	/* 128 bytes is the most; 129 is too many. */
	char body[300];
	snprintf(body, sizeof(body), "{\"buyer\":\"%0128d\"}", 0);
	ok(decode(body, 10, &p, &e) == 0 && p.buyer_len == 128, "a 128-byte buyer");
	snprintf(body, sizeof(body), "{\"buyer\":\"%0129d\"}", 0);
	ok(decode(body, 10, &p, &e) == -EINVAL, "a 129-byte buyer is refused");

	/* Not NUL-terminated: only len bytes are read. */
	const char buf[] = "{\"buyer\":\"z\"}GARBAGE";
	ok(request_decode_purchase(buf, 13, 10, &p, &e) == 0 && strcmp(p.buyer, "z") == 0,
	   "only the given length is parsed");

	/* An unknown field's name is quoted safely in the message. */
	ok(decode("{\"buyer\":\"a\",\"\\\"\\\\x\":1}", 10, &p, &e) == -EINVAL &&
	   strstr(e.message, "\"??x\"") != NULL, "a hostile field name is neutralised (%s)",
	   e.message);

	char out[32];
	ok(request_json_string("a\"b\n", 4, out, sizeof(out)) == 8 &&
	   strcmp(out, "\"a\\\"b\\n\"") == 0, "request_json_string escapes");
	ok(request_json_string("\xff", 1, out, sizeof(out)) == -EINVAL,
	   "request_json_string refuses invalid UTF-8");
	ok(request_json_string("abcdef", 6, out, 4) == -ENOSPC, "and reports a short buffer");
}

int main(void)
{
	routes();
	bodies();
	return tap_done();
}
