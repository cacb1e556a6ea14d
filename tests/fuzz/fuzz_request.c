/*
 * fuzz_request.c: libFuzzer target for the request decoding the daemon does
 * on its event loops. The input is one request as the daemon sees it after
 * evhttp has split it: a request target (the first line), header lines
 * ("Name: value") up to an empty line, and a body (the rest). The target is
 * parsed with libevent's URI parser as evhttp does (evhttp_uri_parse_with_
 * flags, NONCONFORMANT) and its path matched by request_route; the body is
 * decoded by request_decode_purchase with a max_quantity drawn from the
 * input; each header goes through request_header, as the daemon feeds it
 * evhttp's parsed headers. Beyond crashes and sanitizer reports, every result is checked
 * against the API's rules (docs/api.md): any violation aborts.
 * Nothing crosses its border but the fuzzer's bytes.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/http.h>
#include <jansson.h>

#include "request.h"

#define CHECK(cond)                                                           \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "fuzz_request: %s:%d: %s\n", __FILE__, \
				__LINE__, #cond);                             \
			abort();                                              \
		}                                                             \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Checks one route result against the path it came from. */
static void check_route(const char *path, size_t len)
{
	struct request_route rt;
	enum request_route_kind k = request_route(path, len, &rt);

	CHECK(k == rt.kind);
	switch (k) {
	case ROUTE_NOT_FOUND:
		CHECK(rt.allowed == 0);
		return;
	case ROUTE_HEALTHZ:
	case ROUTE_EVENTS:
		CHECK(rt.id == NULL && rt.id_len == 0);
		break;
	case ROUTE_EVENT:
	case ROUTE_PURCHASE:
	case ROUTE_ORDER:
		CHECK(rt.id >= path && rt.id + rt.id_len <= path + len);
		CHECK(request_id_valid(rt.id, rt.id_len));
		break;
	default:
		/* A route added later: it must still point inside the path. */
		CHECK(!rt.id || (rt.id >= path && rt.id + rt.id_len <= path + len));
		break;
	}
	CHECK(rt.allowed != 0 && rt.allow && rt.allow[0]);
	/* Nothing but [A-Za-z0-9_/-] and a known shape routes anywhere. */
	for (size_t i = 0; i < len; i++) {
		char c = path[i];

		CHECK((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '/');
	}
}

/* Parses the target as evhttp does and routes its path. */
static void check_target(const char *line, size_t len)
{
	char *target = malloc(len + 1);
	struct evhttp_uri *uri;

	if (!target)
		return;
	memcpy(target, line, len);
	target[len] = '\0';
	check_route(target, len);  /* raw bytes, NULs included */
	uri = evhttp_uri_parse_with_flags(target, EVHTTP_URI_NONCONFORMANT);
	if (uri) {
		const char *path = evhttp_uri_get_path(uri);

		if (path)
			check_route(path, strlen(path));
		evhttp_uri_free(uri);
	}
	free(target);
}

static int known_code(const char *code)
{
	static const char *const codes[] = {
		"invalid_json", "invalid_body", "unknown_field", "missing_field",
		"invalid_field", "invalid_quantity", "unknown_tier", NULL
	};

	for (const char *const *c = codes; *c; c++)
		if (strcmp(*c, code) == 0)
			return 1;
	return 0;
}

/* Decodes body and checks the result against the rules of docs/api.md. */
static void check_body(const char *body, size_t len, unsigned maxq)
{
	struct request_purchase p;
	struct request_error err;
	int rc;

	memset(&err, 0, sizeof(err));
	rc = request_decode_purchase(body, len, maxq, &p, &err);
	if (rc < 0) {
		CHECK(rc == -EINVAL);
		CHECK(err.status == 400);
		CHECK(err.code && known_code(err.code));
		CHECK(memchr(err.message, '\0', sizeof(err.message)) != NULL);
		CHECK(err.message[0] != '\0');
		return;
	}
	CHECK(rc == 0);
	CHECK(p.quantity >= 1 && p.quantity <= maxq);
	CHECK(p.tier == SELLER_GENERAL || p.tier == SELLER_VIP);
	CHECK(p.buyer_len >= 1 && p.buyer_len <= REQUEST_BUYER_MAX);
	CHECK(strlen(p.buyer) == p.buyer_len);
	for (size_t i = 0; i < p.buyer_len; i++) {
		unsigned char c = (unsigned char)p.buyer[i];

		CHECK(c >= 0x20 && c != 0x7f);
		/* No C1 control (U+0080..U+009F) either. */
		CHECK(c != 0xc2 || i + 1 == p.buyer_len ||
		      (unsigned char)p.buyer[i + 1] < 0x80 ||
		      (unsigned char)p.buyer[i + 1] > 0x9f);
	}
	CHECK(strlen(p.vip_code) <= REQUEST_VIP_CODE_MAX);
	CHECK(p.has_vip_code || p.vip_code[0] == '\0');
	/* buyer_json is exactly the buyer as one JSON string. */
	CHECK(strlen(p.buyer_json) == p.buyer_json_len);
	{
		json_error_t jerr;
		json_t *j = json_loadb(p.buyer_json, p.buyer_json_len,
				       JSON_DECODE_ANY, &jerr);

		CHECK(j && json_is_string(j));
		CHECK(json_string_length(j) == p.buyer_len);
		CHECK(memcmp(json_string_value(j), p.buyer, p.buyer_len) == 0);
		json_decref(j);
	}
	/* The daemon re-encodes stored buyers with request_json_string. */
	{
		char out[REQUEST_BUYER_JSON_MAX + 1];
		int n = request_json_string(p.buyer, p.buyer_len, out, sizeof(out));

		CHECK(n > 0 && (size_t)n == p.buyer_json_len);
		CHECK(memcmp(out, p.buyer_json, (size_t)n) == 0);
	}
}

/* Feeds one "Name: value" line to request_header, as the daemon feeds it
 * evhttp's parsed headers; returns 0 or -EINVAL (the request is refused). */
static int check_header(struct request_headers *st, const char *line, size_t len)
{
	const char *colon = memchr(line, ':', len);
	struct request_error err;
	char *name, *value;
	int rc;

	if (!colon)
		return 0;
	name = strndup(line, (size_t)(colon - line));
	value = strndup(colon + 1, len - (size_t)(colon - line) - 1);
	if (!name || !value) {
		free(name);
		free(value);
		return 0;
	}
	memset(&err, 0, sizeof(err));
	rc = request_header(st, name, value, &err);
	CHECK(rc == 0 || rc == -EINVAL);
	if (rc < 0) {
		CHECK(err.status == 400 && strcmp(err.code, "invalid_request") == 0);
		CHECK(memchr(err.message, '\0', sizeof(err.message)) && err.message[0]);
	}
	free(name);
	free(value);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	const char *nl = memchr(p, '\n', size);
	struct request_headers hs;
	unsigned maxq;

	if (!nl) {
		check_target(p, size);
		check_body(p, size, 10);
		return 0;
	}
	check_target(p, (size_t)(nl - p));
	p = nl + 1;
	/* Header lines up to an empty line. */
	memset(&hs, 0, sizeof(hs));
	while (p < end) {
		const char *e = memchr(p, '\n', (size_t)(end - p));
		size_t n = e ? (size_t)(e - p) : (size_t)(end - p);

		if (n && p[n - 1] == '\r')
			n--;
		if (n == 0) {
			p = e ? e + 1 : end;
			break;
		}
		check_header(&hs, p, n);
		p = e ? e + 1 : end;
	}
	/* The daemon refuses a request on a header error and never decodes
	 * its body; the fuzzer decodes it anyway. */
	maxq = 1 + (unsigned)(size % SELLER_MAX_QUANTITY);
	check_body(p, (size_t)(end - p), maxq);
	check_body(p, (size_t)(end - p), 10);
	return 0;
}
