/*
 * request.c: route matching and purchase-body decoding for the HTTP API.
 * Pure functions over caller-owned bytes: the only thing that crosses the
 * border is the caller's buffer in and a filled struct (or an error) out.
 * jansson parses the body in place (json_loadb, no copy) and the parse tree
 * is freed before returning.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "request.h"

/* Fills err with a 400 and a formatted message; returns -EINVAL. */
__attribute__((format(printf, 3, 4)))
static int fail(struct request_error *err, const char *code, const char *fmt, ...)
{
	va_list ap;

	err->status = 400;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int request_id_valid(const char *s, size_t len)
{
	if (len < 1 || len > REQUEST_ID_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* If path[*pos..) starts with lit, advances *pos past it; returns 1 or 0. */
static int eat(const char *path, size_t len, size_t *pos, const char *lit)
{
	size_t n = strlen(lit);

	if (len - *pos < n || memcmp(path + *pos, lit, n) != 0)
		return 0;
	*pos += n;
	return 1;
}

/* Takes one id segment at *pos (up to the next '/' or the end); returns 1 if
 * it is a valid id, 0 otherwise. */
static int take_id(const char *path, size_t len, size_t *pos,
		   struct request_route *out)
{
	size_t start = *pos, end = start;

	while (end < len && path[end] != '/')
		end++;
	if (!request_id_valid(path + start, end - start))
		return 0;
	out->id = path + start;
	out->id_len = end - start;
	*pos = end;
	return 1;
}

/* Sets out's kind and methods; returns kind. */
static enum request_route_kind route(struct request_route *out,
				     enum request_route_kind kind)
{
	out->kind = kind;
	switch (kind) {
	case ROUTE_PURCHASE:
	case ROUTE_REFUND:
		out->allowed = REQ_POST;
		out->allow = "POST";
		break;
	case ROUTE_NOT_FOUND:
		out->allowed = 0;
		out->allow = "";
		out->id = NULL;
		out->id_len = 0;
		break;
	default:
		out->allowed = REQ_GET;
		out->allow = "GET";
		break;
	}
	return kind;
}

enum request_route_kind request_route(const char *path, size_t len,
				      struct request_route *out)
{
	size_t pos = 0;

	out->id = NULL;
	out->id_len = 0;
	if (len == 8 && memcmp(path, "/healthz", 8) == 0)
		return route(out, ROUTE_HEALTHZ);
	if (len == 8 && memcmp(path, "/metrics", 8) == 0)
		return route(out, ROUTE_METRICS);
	if (eat(path, len, &pos, "/v1/events")) {
		if (pos == len)
			return route(out, ROUTE_EVENTS);
		if (!eat(path, len, &pos, "/") || !take_id(path, len, &pos, out))
			return route(out, ROUTE_NOT_FOUND);
		if (pos == len)
			return route(out, ROUTE_EVENT);
		if (eat(path, len, &pos, "/purchase") && pos == len)
			return route(out, ROUTE_PURCHASE);
		return route(out, ROUTE_NOT_FOUND);
	}
	if (eat(path, len, &pos, "/v1/orders/")) {
		if (!take_id(path, len, &pos, out))
			return route(out, ROUTE_NOT_FOUND);
		if (pos == len)
			return route(out, ROUTE_ORDER);
		if (eat(path, len, &pos, "/refund") && pos == len)
			return route(out, ROUTE_REFUND);
		return route(out, ROUTE_NOT_FOUND);
	}
	return route(out, ROUTE_NOT_FOUND);
}

/* Copies a JSON object key into buf for a message: at most 40 bytes, and
 * anything but printable ASCII (or a quote or backslash) becomes '?'. */
static const char *printable_key(const char *key, char *buf, size_t len)
{
	size_t i;

	for (i = 0; key[i] && i + 1 < len && i < 40; i++) {
		unsigned char c = (unsigned char)key[i];

		buf[i] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? (char)c : '?';
	}
	buf[i] = '\0';
	if (key[i] && i == 40 && i + 4 < len)
		strcpy(buf + i, "...");
	return buf;
}

int request_has_control(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			return 1;
		/* C1: U+0080..U+009F is 0xC2 followed by 0x80..0x9F. */
		if (c == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] >= 0x80 &&
		    (unsigned char)s[i + 1] <= 0x9f)
			return 1;
	}
	return 0;
}

/* Checks and copies one field of the purchase object; 0 or -EINVAL. */
static int purchase_field(const char *key, json_t *v, unsigned max_quantity,
			  struct request_purchase *out, int *have_buyer,
			  struct request_error *err)
{
	char kb[48];

	if (strcmp(key, "quantity") == 0) {
		json_int_t q;

		if (!json_is_integer(v))
			return fail(err, "invalid_quantity",
				    "quantity must be an integer between 1 and %u",
				    max_quantity);
		q = json_integer_value(v);
		if (q < 1 || q > (json_int_t)max_quantity)
			return fail(err, "invalid_quantity",
				    "quantity must be between 1 and %u, got %lld",
				    max_quantity, (long long)q);
		out->quantity = (unsigned)q;
		return 0;
	}
	if (strcmp(key, "tier") == 0) {
		const char *t = json_string_value(v);

		if (!json_is_string(v))
			return fail(err, "invalid_field", "tier must be a string");
		if (strcmp(t, "general") == 0 && json_string_length(v) == 7)
			out->tier = SELLER_GENERAL;
		else if (strcmp(t, "vip") == 0 && json_string_length(v) == 3)
			out->tier = SELLER_VIP;
		else
			return fail(err, "unknown_tier",
				    "tier must be \"general\" or \"vip\"");
		return 0;
	}
	if (strcmp(key, "buyer") == 0) {
		size_t n;
		size_t jn;

		if (!json_is_string(v))
			return fail(err, "invalid_field", "buyer must be a string");
		n = json_string_length(v);
		if (n < 1 || n > REQUEST_BUYER_MAX)
			return fail(err, "invalid_field",
				    "buyer must be 1 to %d bytes long, got %zu",
				    REQUEST_BUYER_MAX, n);
		if (request_has_control(json_string_value(v), n))
			return fail(err, "invalid_field",
				    "buyer must not contain control characters");
		memcpy(out->buyer, json_string_value(v), n);
		out->buyer[n] = '\0';
		out->buyer_len = n;
		jn = json_dumpb(v, out->buyer_json, sizeof(out->buyer_json) - 1,
				JSON_ENCODE_ANY);
		if (jn == 0 || jn >= sizeof(out->buyer_json))
			return fail(err, "invalid_field", "buyer cannot be encoded");
		out->buyer_json[jn] = '\0';
		out->buyer_json_len = jn;
		*have_buyer = 1;
		return 0;
	}
	if (strcmp(key, "vip_code") == 0) {
		size_t n;

		if (!json_is_string(v))
			return fail(err, "invalid_field", "vip_code must be a string");
		n = json_string_length(v);
		if (n > REQUEST_VIP_CODE_MAX ||
		    request_has_control(json_string_value(v), n))
			return fail(err, "invalid_field",
				    "vip_code must be at most %d printable bytes",
				    REQUEST_VIP_CODE_MAX);
		memcpy(out->vip_code, json_string_value(v), n);
		out->vip_code[n] = '\0';
		out->has_vip_code = 1;
		return 0;
	}
	return fail(err, "unknown_field", "unknown field \"%s\"",
		    printable_key(key, kb, sizeof(kb)));
}

/* jansson's reason for refusing a body, worded for a client: no library
 * flag names, and nothing invisible echoed back (a byte outside printable
 * ASCII in the excerpt jansson quotes is shown as \xHH). */
static const char *parse_problem(const char *body, size_t len, const json_error_t *jerr,
				 char *out, size_t outlen)
{
	static const char bom[] = "\xef\xbb\xbf";
	size_t n = 0;

	if ((len >= 3 && memcmp(body, bom, 3) == 0) || strstr(jerr->text, bom))
		return "a byte-order mark is not allowed";
	if (strstr(jerr->text, "JSON_ALLOW_NUL"))
		return "\\u0000 (a NUL character) is not allowed in a string";
	for (const char *t = jerr->text; *t && n + 5 < outlen; t++) {
		unsigned char c = (unsigned char)*t;

		if (c >= 0x20 && c < 0x7f)
			out[n++] = (char)c;
		else
			n += (size_t)snprintf(out + n, outlen - n, "\\x%02x", c);
	}
	out[n] = '\0';
	return out;
}

int request_decode_purchase(const char *body, size_t len, unsigned max_quantity,
			    struct request_purchase *out, struct request_error *err)
{
	json_error_t jerr;
	json_t *root, *v;
	const char *key;
	int have_buyer = 0;
	char why[JSON_ERROR_TEXT_LENGTH * 4];
	int rc = 0;

	out->quantity = 1;
	out->tier = SELLER_GENERAL;
	out->buyer[0] = '\0';
	out->buyer_len = 0;
	out->buyer_json[0] = '\0';
	out->buyer_json_len = 0;
	out->vip_code[0] = '\0';
	out->has_vip_code = 0;

	if (len == 0)
		return fail(err, "invalid_json",
			    "the body is empty: send a JSON object such as {\"buyer\":\"alice\"}");
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return fail(err, "invalid_json",
			    "the body is not valid JSON: %s (line %d, column %d)",
			    parse_problem(body, len, &jerr, why, sizeof(why)), jerr.line,
			    jerr.column);
	if (!json_is_object(root)) {
		rc = fail(err, "invalid_body", "the body must be a JSON object");
		goto out;
	}
	json_object_foreach(root, key, v) {
		rc = purchase_field(key, v, max_quantity, out, &have_buyer, err);
		if (rc < 0)
			goto out;
	}
	if (!have_buyer)
		rc = fail(err, "missing_field", "buyer is required");
out:
	json_decref(root);
	return rc;
}

int request_header(struct request_headers *st, const char *name, const char *value,
		   struct request_error *err)
{
	(void)value;
	if (strcasecmp(name, "Content-Length") == 0 && ++st->content_lengths > 1)
		return fail(err, "invalid_request",
			    "more than one Content-Length header");
	return 0;
}

int request_json_string(const char *s, size_t len, char *out, size_t outlen)
{
	json_t *j = json_stringn(s, len);
	size_t n;

	if (!j)
		return -EINVAL;
	n = json_dumpb(j, out, outlen, JSON_ENCODE_ANY);
	json_decref(j);
	if (n == 0 || n >= outlen)
		return -ENOSPC;
	out[n] = '\0';
	return (int)n;
}
