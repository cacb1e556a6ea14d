/*
 * conf.c: loads and checks ticketd's JSON configuration. One function per
 * object of the file (top level, payment, limits, one event, its tiers); each
 * refuses keys it does not know, and every error names the key's path; after
 * a bad value it reads on, so that one run reports every error (one a line).
 * Adding
 * a key means adding it to the object's allowed list and reading it in that
 * object's function. No global state: the result is a fresh struct conf.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "conf.h"
#include "request.h"

#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR "/var"
#endif

/* Parser state: where errors go and the path of the key being read. */
struct cp {
	const char *file;
	char *err;
	size_t errlen;
	unsigned flags;
	char path[256];
	size_t plen;
	unsigned nerr;          /* errors written to err so far, one a line */
};

/* Appends "FILE: path: message" to the error buffer, on a line of its own
 * after the errors before it (what does not fit is dropped); returns
 * -EINVAL. */
__attribute__((format(printf, 2, 3)))
static int cp_fail(struct cp *p, const char *fmt, ...)
{
	size_t used = p->nerr ? strlen(p->err) : 0;
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (used + 1 < p->errlen)
		snprintf(p->err + used, p->errlen - used, "%s%s: %s%s%s", used ? "\n" : "",
			 p->file, p->path, p->plen ? ": " : "", msg);
	p->nerr++;
	return -EINVAL;
}

/* Folds the result of one more check into rc: the first error is kept,
 * and the caller reads on after a bad value so that one run names every
 * error it can find; only running out of memory wins over it. */
static int cp_more(int rc, int next)
{
	if (rc == -ENOMEM || next == -ENOMEM)
		return -ENOMEM;
	return rc ? rc : next;
}

/* Appends ".key" (or "key" at the top, or "[i]" when key is NULL) to the
 * path; returns the previous length for cp_pop. */
static size_t cp_push(struct cp *p, const char *key, size_t index)
{
	size_t old = p->plen;
	int n;

	if (key)
		n = snprintf(p->path + old, sizeof(p->path) - old, "%s%s",
			     old ? "." : "", key);
	else
		n = snprintf(p->path + old, sizeof(p->path) - old, "[%zu]", index);
	if (n > 0)
		p->plen = old + (size_t)n < sizeof(p->path) ? old + (size_t)n
							    : sizeof(p->path) - 1;
	return old;
}

static void cp_pop(struct cp *p, size_t old)
{
	p->plen = old;
	p->path[old] = '\0';
}

/* "a string", "an integer", ... for messages. */
static const char *type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number with a fraction";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

/* Refuses every key of obj not in allowed (NULL-terminated); 0 or -EINVAL. */
static int check_keys(struct cp *p, json_t *obj, const char *const *allowed)
{
	const char *key;
	json_t *v;
	int rc = 0;

	json_object_foreach(obj, key, v) {
		int known = 0;

		for (const char *const *a = allowed; *a && !known; a++)
			known = strcmp(*a, key) == 0;
		if (!known) {
			size_t old = cp_push(p, key, 0);

			rc = cp_fail(p, "unknown key");
			cp_pop(p, old);
		}
	}
	return rc;
}

/* Reads obj.key as an integer in min..max into *out if present; 0 or -EINVAL. */
static int get_int(struct cp *p, json_t *obj, const char *key, int64_t min,
		   int64_t max, int64_t *out)
{
	json_t *v = json_object_get(obj, key);
	size_t old;
	int rc = 0;

	if (!v)
		return 0;
	old = cp_push(p, key, 0);
	if (!json_is_integer(v))
		rc = cp_fail(p, "must be an integer between %lld and %lld, got %s",
			     (long long)min, (long long)max, type_name(v));
	else if (json_integer_value(v) < min || json_integer_value(v) > max)
		rc = cp_fail(p, "must be between %lld and %lld, got %lld",
			     (long long)min, (long long)max,
			     (long long)json_integer_value(v));
	else
		*out = json_integer_value(v);
	cp_pop(p, old);
	return rc;
}

static int get_uint(struct cp *p, json_t *obj, const char *key, unsigned min,
		    unsigned max, unsigned *out)
{
	int64_t v = *out;
	int rc = get_int(p, obj, key, min, max, &v);

	*out = (unsigned)v;
	return rc;
}

static int get_size(struct cp *p, json_t *obj, const char *key, size_t min,
		    size_t max, size_t *out)
{
	int64_t v = (int64_t)*out;
	int rc = get_int(p, obj, key, (int64_t)min, (int64_t)max, &v);

	*out = (size_t)v;
	return rc;
}

/* Checks s[0..n) against the rules of a string key: minlen..maxlen bytes,
 * no control characters (C0, DEL or C1: request_has_control). Returns 0, or
 * -EINVAL with the problem in why. */
static int check_string(const char *s, size_t n, size_t minlen, size_t maxlen,
			char *why, size_t whylen)
{
	if (n < minlen || n > maxlen) {
		snprintf(why, whylen, "must be %zu to %zu bytes long, got %zu", minlen,
			 maxlen, n);
		return -EINVAL;
	}
	if (request_has_control(s, n)) {
		snprintf(why, whylen, "must not contain control characters");
		return -EINVAL;
	}
	return 0;
}

/* Reads obj.key as a string that passes check_string into a malloc'd *out
 * if present; 0 or -EINVAL/-ENOMEM. */
static int get_string(struct cp *p, json_t *obj, const char *key, size_t minlen,
		      size_t maxlen, char **out)
{
	json_t *v = json_object_get(obj, key);
	char why[128];
	size_t old;
	int rc = 0;

	if (!v)
		return 0;
	old = cp_push(p, key, 0);
	if (!json_is_string(v)) {
		rc = cp_fail(p, "must be a string, got %s", type_name(v));
		goto out;
	}
	if (check_string(json_string_value(v), json_string_length(v), minlen, maxlen,
			 why, sizeof(why)) < 0) {
		rc = cp_fail(p, "%s", why);
		goto out;
	}
	free(*out);
	*out = strdup(json_string_value(v));
	if (!*out)
		rc = -ENOMEM;
out:
	cp_pop(p, old);
	return rc;
}

/* Writes v with the fewest significant digits (at most 17) that read back
 * as exactly v: 1.0000001 stays "1.0000001" where %g would print "1". */
static const char *number_text(double v, char *buf, size_t len)
{
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, len, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	return buf;
}

/* Looks a core up by name in the whole registry; 0 or -EINVAL with why. */
static int find_core(const char *name, unsigned flags,
		     const struct seller_core **out, char *why, size_t len)
{
	char names[256];

	for (size_t i = 0; i < seller_core_count(); i++) {
		const struct seller_core *c = seller_core_at(i);

		if (strcmp(c->name, name) != 0)
			continue;
		if ((c->flags & SELLER_CORE_UNSAFE) && !(flags & CONF_ALLOW_UNSAFE)) {
			snprintf(why, len, "seller core \"%s\" is unsafe (it can sell "
				 "tickets that do not exist) and is refused", name);
			return -EINVAL;
		}
		*out = c;
		return 0;
	}
	snprintf(why, len, "unknown seller core \"%s\" (known: %s)", name,
		 seller_core_names(names, sizeof(names)));
	return -EINVAL;
}

/* True if a and b are the same address and port, however written
 * ("127.0.0.1:80" and "127.0.0.1:080", "[::1]:80" and "[0::1]:80"). */
static int same_listen(const struct conf_listen *a, const struct conf_listen *b)
{
	/* conf_parse_listen zeroes the whole address before filling it. */
	return a->addrlen == b->addrlen && memcmp(&a->addr, &b->addr, a->addrlen) == 0;
}

/* "listen": 1 to CONF_MAX_LISTEN addresses, no two the same (bound twice
 * with SO_REUSEPORT, a duplicate would be accepted silently). */
static int parse_listen(struct cp *p, json_t *root, struct conf *c)
{
	json_t *v = json_object_get(root, "listen");
	size_t old, i;
	json_t *item;
	int rc = 0;

	if (!v)
		return 0;
	old = cp_push(p, "listen", 0);
	if (!json_is_array(v) || json_array_size(v) < 1 ||
	    json_array_size(v) > CONF_MAX_LISTEN) {
		rc = cp_fail(p, "must be a list of 1 to %d \"addr:port\" strings",
			     CONF_MAX_LISTEN);
		goto out;
	}
	free(c->listen);
	c->nlisten = 0;
	c->listen = calloc(json_array_size(v), sizeof(*c->listen));
	if (!c->listen) {
		rc = -ENOMEM;
		goto out;
	}
	json_array_foreach(v, i, item) {
		size_t o2 = cp_push(p, NULL, i);

		if (!json_is_string(item))
			rc = cp_fail(p, "must be a string, got %s", type_name(item));
		else if (conf_parse_listen(json_string_value(item), &c->listen[i]) < 0)
			rc = cp_fail(p, "\"%s\" is not a numeric \"addr:port\" or "
				     "\"[v6addr]:port\"", json_string_value(item));
		for (size_t j = 0; !rc && j < i; j++)
			if (same_listen(&c->listen[j], &c->listen[i]))
				rc = cp_fail(p, "\"%s\" is the same address and port as "
					     "listen[%zu] (\"%s\")", c->listen[i].text, j,
					     c->listen[j].text);
		cp_pop(p, o2);
		if (rc < 0)
			goto out;
		c->nlisten++;
	}
out:
	cp_pop(p, old);
	return rc;
}

static int parse_payment(struct cp *p, json_t *root, struct conf *c)
{
	static const char *const keys[] = { "latency_ms", "decline_rate", "mode", NULL };
	json_t *obj = json_object_get(root, "payment"), *v;
	size_t old;
	int rc;

	if (!obj)
		return 0;
	old = cp_push(p, "payment", 0);
	if (!json_is_object(obj)) {
		rc = cp_fail(p, "must be an object, got %s", type_name(obj));
		goto out;
	}
	rc = check_keys(p, obj, keys);
	rc = cp_more(rc, get_uint(p, obj, "latency_ms", 0, 60000, &c->payment.latency_ms));
	if ((v = json_object_get(obj, "decline_rate"))) {
		size_t o2 = cp_push(p, "decline_rate", 0);
		char num[32];

		if (!json_is_number(v))
			rc = cp_fail(p, "must be a number between 0 and 1, got %s",
				     type_name(v));
		else if (!(json_number_value(v) >= 0.0 && json_number_value(v) <= 1.0))
			rc = cp_fail(p, "must be between 0 and 1, got %s",
				     number_text(json_number_value(v), num, sizeof(num)));
		else
			c->payment.decline_rate = json_number_value(v);
		cp_pop(p, o2);
	}
	if ((v = json_object_get(obj, "mode"))) {
		size_t o2 = cp_push(p, "mode", 0);
		const char *m = json_string_value(v);

		if (m && strcmp(m, "async") == 0)
			c->payment.mode = CONF_PAYMENT_ASYNC;
		else if (m && strcmp(m, "blocking") == 0)
			c->payment.mode = CONF_PAYMENT_BLOCKING;
		else
			rc = cp_fail(p, "must be \"async\" or \"blocking\"");
		cp_pop(p, o2);
	}
out:
	cp_pop(p, old);
	return rc;
}

static int parse_limits(struct cp *p, json_t *root, struct conf *c)
{
	static const char *const keys[] = {
		"max_body_bytes", "max_header_bytes", "max_quantity",
		"request_timeout_ms", "max_connections", "drain_timeout_ms",
		"idle_timeout_ms", "max_url_bytes", NULL
	};
	json_t *obj = json_object_get(root, "limits");
	size_t old;
	int rc;

	if (!obj)
		return 0;
	old = cp_push(p, "limits", 0);
	if (!json_is_object(obj)) {
		rc = cp_fail(p, "must be an object, got %s", type_name(obj));
		goto out;
	}
	rc = check_keys(p, obj, keys);
	rc = cp_more(rc, get_size(p, obj, "max_body_bytes", 64, 1u << 20,
				  &c->limits.max_body_bytes));
	rc = cp_more(rc, get_size(p, obj, "max_header_bytes", 1024, 1u << 20,
				  &c->limits.max_header_bytes));
	rc = cp_more(rc, get_uint(p, obj, "max_quantity", 1, SELLER_MAX_QUANTITY,
				  &c->limits.max_quantity));
	rc = cp_more(rc, get_uint(p, obj, "request_timeout_ms", 100, 3600000,
				  &c->limits.request_timeout_ms));
	rc = cp_more(rc, get_uint(p, obj, "max_connections", 1, 1000000,
				  &c->limits.max_connections));
	rc = cp_more(rc, get_uint(p, obj, "drain_timeout_ms", 0, 600000,
				  &c->limits.drain_timeout_ms));
	rc = cp_more(rc, get_uint(p, obj, "idle_timeout_ms", 100, 3600000,
				  &c->limits.idle_timeout_ms));
	rc = cp_more(rc, get_size(p, obj, "max_url_bytes", 16, 1u << 20,
				  &c->limits.max_url_bytes));
out:
	cp_pop(p, old);
	return rc;
}

static int parse_ledger(struct cp *p, json_t *root, struct conf *c)
{
	static const char *const keys[] = { "sync", "max_db_bytes", NULL };
	json_t *obj = json_object_get(root, "ledger"), *v;
	size_t old;
	int rc;

	if (!obj)
		return 0;
	old = cp_push(p, "ledger", 0);
	if (!json_is_object(obj)) {
		rc = cp_fail(p, "must be an object, got %s", type_name(obj));
		goto out;
	}
	rc = check_keys(p, obj, keys);
	if ((v = json_object_get(obj, "sync"))) {
		size_t o2 = cp_push(p, "sync", 0);

		if (!json_is_string(v) || ledger_sync_parse(json_string_value(v),
							    &c->ledger.sync) < 0)
			rc = cp_fail(p, "must be \"full\" or \"off\"");
		cp_pop(p, o2);
	}
	/* 0 = no cap; else at least 64 KiB (the schema alone takes ~40 KiB). */
	rc = cp_more(rc, get_int(p, obj, "max_db_bytes", 0, INT64_C(1) << 50,
				 &c->ledger.max_db_bytes));
	if (c->ledger.max_db_bytes > 0 && c->ledger.max_db_bytes < 65536) {
		size_t o2 = cp_push(p, "max_db_bytes", 0);

		rc = cp_fail(p, "must be 0 (no cap) or at least 65536");
		cp_pop(p, o2);
	}
out:
	cp_pop(p, old);
	return rc;
}

/* "metrics": {"enabled": BOOL}. */
static int parse_metrics(struct cp *p, json_t *root, struct conf *c)
{
	static const char *const keys[] = { "enabled", NULL };
	json_t *obj = json_object_get(root, "metrics"), *v;
	size_t old;
	int rc;

	if (!obj)
		return 0;
	old = cp_push(p, "metrics", 0);
	if (!json_is_object(obj)) {
		rc = cp_fail(p, "must be an object, got %s", type_name(obj));
		goto out;
	}
	rc = check_keys(p, obj, keys);
	if ((v = json_object_get(obj, "enabled"))) {
		size_t o2 = cp_push(p, "enabled", 0);

		if (json_is_boolean(v))
			c->metrics.enabled = json_is_true(v);
		else
			rc = cp_fail(p, "must be true or false, got %s", type_name(v));
		cp_pop(p, o2);
	}
out:
	cp_pop(p, old);
	return rc;
}

static int parse_tiers(struct cp *p, json_t *ev, struct conf_event *e)
{
	static const char *const keys[] = { "general", "vip", NULL };
	json_t *obj = json_object_get(ev, "tiers");
	size_t old = cp_push(p, "tiers", 0);
	int rc;

	if (!obj) {
		rc = cp_fail(p, "is required, e.g. {\"general\": 1000, \"vip\": 100}");
		goto out;
	}
	if (!json_is_object(obj)) {
		rc = cp_fail(p, "must be an object, got %s", type_name(obj));
		goto out;
	}
	rc = check_keys(p, obj, keys);
	if (!json_object_get(obj, "general"))
		rc = cp_fail(p, "needs a \"general\" capacity");
	rc = cp_more(rc, get_int(p, obj, "general", 0, CONF_MAX_TICKETS,
				 &e->capacity[SELLER_GENERAL]));
	if (json_object_get(obj, "vip")) {
		e->has_vip = 1;
		rc = cp_more(rc, get_int(p, obj, "vip", 0, CONF_MAX_TICKETS,
					 &e->capacity[SELLER_VIP]));
	}
out:
	cp_pop(p, old);
	return rc;
}

static int parse_event(struct cp *p, json_t *ev, struct conf *c, struct conf_event *e)
{
	static const char *const keys[] = { "id", "name", "seller", "tiers", "vip_code", NULL };
	char why[384];
	int rc;

	if (!json_is_object(ev))
		return cp_fail(p, "must be an object, got %s", type_name(ev));
	rc = check_keys(p, ev, keys);
	if (!json_object_get(ev, "id"))
		rc = cp_fail(p, "needs an \"id\"");
	rc = cp_more(rc, get_string(p, ev, "id", 1, REQUEST_ID_MAX, &e->id));
	if (e->id && !request_id_valid(e->id, strlen(e->id))) {
		size_t old = cp_push(p, "id", 0);

		rc = cp_fail(p, "\"%s\" may hold only letters, digits, '_' and '-'", e->id);
		cp_pop(p, old);
	}
	for (size_t i = 0; e->id && &c->events[i] != e; i++)
		if (c->events[i].id && strcmp(c->events[i].id, e->id) == 0) {
			size_t old = cp_push(p, "id", 0);

			rc = cp_fail(p, "\"%s\" is already used by events[%zu]", e->id, i);
			cp_pop(p, old);
			break;
		}
	rc = cp_more(rc, get_string(p, ev, "name", 1, CONF_NAME_MAX, &e->name));
	if (!rc && !e->name && !(e->name = strdup(e->id)))
		rc = -ENOMEM;
	rc = cp_more(rc, get_string(p, ev, "seller", 1, 64, &e->seller));
	if (e->seller &&
	    find_core(e->seller, p->flags, &e->core, why, sizeof(why)) < 0) {
		size_t old = cp_push(p, "seller", 0);

		rc = cp_fail(p, "%s", why);
		cp_pop(p, old);
	}
	rc = cp_more(rc, parse_tiers(p, ev, e));
	rc = cp_more(rc, get_string(p, ev, "vip_code", 1, REQUEST_VIP_CODE_MAX,
				    &e->vip_code));
	if (e->has_vip && !json_object_get(ev, "vip_code"))
		rc = cp_fail(p, "has a vip tier, so it needs a \"vip_code\"");
	if (!e->has_vip && e->vip_code) {
		size_t old = cp_push(p, "vip_code", 0);

		rc = cp_fail(p, "is set but tiers has no \"vip\"");
		cp_pop(p, old);
	}
	return rc;
}

static int parse_events(struct cp *p, json_t *root, struct conf *c)
{
	json_t *v = json_object_get(root, "events"), *item;
	size_t old = cp_push(p, "events", 0), i;
	int rc = 0;

	if (!v || !json_is_array(v) || json_array_size(v) < 1 ||
	    json_array_size(v) > CONF_MAX_EVENTS) {
		rc = cp_fail(p, "must be a list of 1 to %d events", CONF_MAX_EVENTS);
		goto out;
	}
	c->events = calloc(json_array_size(v), sizeof(*c->events));
	if (!c->events) {
		rc = -ENOMEM;
		goto out;
	}
	json_array_foreach(v, i, item) {
		size_t o2 = cp_push(p, NULL, i);

		c->nevents = i + 1;
		rc = cp_more(rc, parse_event(p, item, c, &c->events[i]));
		cp_pop(p, o2);
		if (rc == -ENOMEM)
			goto out;
	}
out:
	cp_pop(p, old);
	return rc;
}

/* Fills the defaults every key falls back to. */
static int conf_defaults(struct conf *c)
{
	c->io_threads = 2;
	c->workers = 2;
	c->queue_depth = 1024;
	c->payment.latency_ms = 0;
	c->payment.decline_rate = 0.0;
	c->payment.mode = CONF_PAYMENT_ASYNC;
	c->limits.max_body_bytes = 4096;
	c->limits.max_header_bytes = 8192;
	c->limits.max_quantity = 10;
	c->limits.request_timeout_ms = 10000;
	c->limits.max_connections = 4096;
	c->limits.drain_timeout_ms = 5000;
	c->limits.idle_timeout_ms = 5000;
	c->limits.max_url_bytes = 2048;
	c->log_level = LOGL_INFO;
	c->ledger.sync = LEDGER_SYNC_FULL;
	c->ledger.max_db_bytes = 0;
	c->idempotency_ttl_s = LEDGER_DEFAULT_TTL_S;
	c->metrics.enabled = 1;
	c->seller = strdup("mutex");
	c->state_dir = strdup(LOCALSTATEDIR "/lib/ticketd");
	c->listen = calloc(1, sizeof(*c->listen));
	if (!c->seller || !c->state_dir || !c->listen)
		return -ENOMEM;
	c->nlisten = 1;
	return conf_parse_listen("127.0.0.1:8080", c->listen);
}

static int parse_root(struct cp *p, json_t *root, struct conf *c)
{
	static const char *const keys[] = {
		"listen", "io_threads", "workers", "queue_depth", "seller",
		"payment", "limits", "state_dir", "log_level", "events",
		"ledger", "idempotency_ttl_s", "admin_token_file", "metrics", NULL
	};
	char *level = NULL;
	char why[384];
	int rc;

	if (!json_is_object(root))
		return cp_fail(p, "the configuration must be a JSON object");
	rc = check_keys(p, root, keys);
	rc = cp_more(rc, parse_listen(p, root, c));
	rc = cp_more(rc, get_uint(p, root, "io_threads", 1, 64, &c->io_threads));
	rc = cp_more(rc, get_uint(p, root, "workers", 0, 1024, &c->workers));
	rc = cp_more(rc, get_uint(p, root, "queue_depth", 1, 1000000, &c->queue_depth));
	rc = cp_more(rc, get_string(p, root, "seller", 1, 64, &c->seller));
	if (c->seller && find_core(c->seller, p->flags, &c->core, why, sizeof(why)) < 0) {
		size_t old = cp_push(p, "seller", 0);

		rc = cp_fail(p, "%s", why);
		cp_pop(p, old);
	}
	rc = cp_more(rc, parse_payment(p, root, c));
	/* workers 0 reserves on the loops: a blocking payment would stall one. */
	if (c->workers == 0 && c->payment.mode == CONF_PAYMENT_BLOCKING) {
		size_t old = cp_push(p, "workers", 0);

		rc = cp_fail(p, "0 (reserve on the event loops) needs payment.mode \"async\"");
		cp_pop(p, old);
	}
	rc = cp_more(rc, parse_limits(p, root, c));
	rc = cp_more(rc, get_string(p, root, "state_dir", 1, CONF_PATH_MAX, &c->state_dir));
	rc = cp_more(rc, parse_ledger(p, root, c));
	rc = cp_more(rc, get_int(p, root, "idempotency_ttl_s", 1, CONF_MAX_TTL_S,
				 &c->idempotency_ttl_s));
	rc = cp_more(rc, get_string(p, root, "admin_token_file", 1, CONF_PATH_MAX,
				    &c->admin_token_file));
	rc = cp_more(rc, parse_metrics(p, root, c));
	rc = cp_more(rc, get_string(p, root, "log_level", 1, 16, &level));
	if (level && log_level_parse(level, &c->log_level) < 0) {
		size_t old = cp_push(p, "log_level", 0);

		rc = cp_fail(p, "must be \"error\", \"warning\" (or \"warn\"), \"notice\", "
			     "\"info\" or \"debug\" (or a syslog name: \"err\", \"crit\", "
			     "\"alert\", \"emerg\")");
		cp_pop(p, old);
	}
	free(level);
	rc = cp_more(rc, parse_events(p, root, c));
	for (size_t i = 0; !rc && i < c->nevents; i++)
		if (!c->events[i].core)
			c->events[i].core = c->core;
	return rc;
}

int conf_load_buffer(const char *buf, size_t len, const char *name,
		       unsigned flags, struct conf **out, char *err, size_t errlen)
{
	struct cp p = { .file = name, .err = err, .errlen = errlen, .flags = flags };
	struct conf *c = NULL;
	json_error_t jerr;
	json_t *root = NULL;
	int rc;

	if (len > CONF_MAX_BYTES) {
		snprintf(err, errlen, "%s: larger than %u bytes", name, CONF_MAX_BYTES);
		return -EFBIG;
	}
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		snprintf(err, errlen, "%s:%d:%d: %s", name, jerr.line, jerr.column,
			 jerr.text);
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (!c || !(c->path = strdup(name))) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = conf_defaults(c);
	if (!rc)
		rc = parse_root(&p, root, c);
	if (rc)
		goto fail;
	json_decref(root);
	*out = c;
	return 0;
fail:
	if (rc == -ENOMEM)
		snprintf(err, errlen, "%s: out of memory", name);
	json_decref(root);
	conf_free(c);
	return rc;
}

int conf_load(const char *path, unsigned flags, struct conf **out,
		char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd, rc;

	/* O_NONBLOCK: opening a FIFO must not wait for a writer (at start-up
	 * or on a reload, on the main thread); the S_ISREG check below then
	 * refuses it. It has no effect on reading a regular file. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return rc;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		snprintf(err, errlen, "%s: not a regular file", path);
		goto fail;
	}
	if ((uint64_t)st.st_size > CONF_MAX_BYTES) {
		rc = -EFBIG;
		snprintf(err, errlen, "%s: larger than %u bytes", path, CONF_MAX_BYTES);
		goto fail;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		rc = -ENOMEM;
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	/* Read up to one byte past the size fstat gave, to catch growth. */
	while (got <= (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size + 1 - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	if (got > (size_t)st.st_size) {
		rc = -EAGAIN;
		snprintf(err, errlen, "%s: changed while being read", path);
		goto fail;
	}
	rc = conf_load_buffer(buf, got, path, flags, out, err, errlen);
fail:
	free(buf);
	close(fd);
	return rc;
}

void conf_free(struct conf *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nevents; i++) {
		free(c->events[i].id);
		free(c->events[i].name);
		free(c->events[i].seller);
		free(c->events[i].vip_code);
	}
	free(c->events);
	free(c->listen);
	free(c->seller);
	free(c->state_dir);
	free(c->admin_token_file);
	free(c->path);
	free(c);
}

int conf_set_state_dir(struct conf *c, const char *dir, char *err, size_t errlen)
{
	char *d;

	if (check_string(dir, strlen(dir), 1, CONF_PATH_MAX, err, errlen) < 0)
		return -EINVAL;
	d = strdup(dir);
	if (!d) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	free(c->state_dir);
	c->state_dir = d;
	return 0;
}

int conf_set_seller(struct conf *c, const char *name, unsigned flags,
		      char *err, size_t errlen)
{
	const struct seller_core *core;
	char *s;

	if (find_core(name, flags, &core, err, errlen) < 0)
		return -EINVAL;
	s = strdup(name);
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	free(c->seller);
	c->seller = s;
	c->core = core;
	for (size_t i = 0; i < c->nevents; i++)
		c->events[i].core = core;
	return 0;
}

const char *conf_payment_mode_name(enum conf_payment_mode m)
{
	return m == CONF_PAYMENT_BLOCKING ? "blocking" : "async";
}

const struct conf_event *conf_find_event(const struct conf *c, const char *id)
{
	for (size_t i = 0; i < c->nevents; i++)
		if (strcmp(c->events[i].id, id) == 0)
			return &c->events[i];
	return NULL;
}

void conf_summary(const struct conf *c, FILE *f)
{
	char num[32];

	fprintf(f, "configuration %s is valid\n", c->path);
	fprintf(f, "listen:    ");
	for (size_t i = 0; i < c->nlisten; i++)
		fprintf(f, "%s%s", i ? ", " : "", c->listen[i].text);
	fprintf(f, "\nthreads:   %u io, %u workers, queue depth %u\n",
		c->io_threads, c->workers, c->queue_depth);
	fprintf(f, "payment:   %s, latency %u ms, decline rate %s\n",
		conf_payment_mode_name(c->payment.mode), c->payment.latency_ms,
		number_text(c->payment.decline_rate, num, sizeof(num)));
	fprintf(f, "limits:    body %zu B, headers %zu B, URL %zu B, quantity %u, "
		"timeout %u ms, idle %u ms, %u connections, drain %u ms\n",
		c->limits.max_body_bytes, c->limits.max_header_bytes,
		c->limits.max_url_bytes, c->limits.max_quantity,
		c->limits.request_timeout_ms, c->limits.idle_timeout_ms,
		c->limits.max_connections, c->limits.drain_timeout_ms);
	fprintf(f, "state_dir: %s\n", c->state_dir);
	fprintf(f, "ledger:    sync %s, ", ledger_sync_name(c->ledger.sync));
	if (c->ledger.max_db_bytes)
		fprintf(f, "at most %lld bytes, ", (long long)c->ledger.max_db_bytes);
	fprintf(f, "idempotency keys kept %lld s\n", (long long)c->idempotency_ttl_s);
	fprintf(f, "admin:     token from $CREDENTIALS_DIRECTORY/admin-token if systemd "
		"passes one, else %s\n", c->admin_token_file ? c->admin_token_file
		: "none (operator routes off)");
	fprintf(f, "metrics:   %s\n", c->metrics.enabled ? "on (GET /metrics)" : "off");
	fprintf(f, "log_level: %s\n", log_level_name(c->log_level));
	fprintf(f, "events:    %zu\n", c->nevents);
	for (size_t i = 0; i < c->nevents; i++) {
		const struct conf_event *e = &c->events[i];

		fprintf(f, "  %s (%s): seller %s, general %lld", e->id, e->name,
			e->core->name, (long long)e->capacity[SELLER_GENERAL]);
		if (e->has_vip)
			fprintf(f, ", vip %lld", (long long)e->capacity[SELLER_VIP]);
		fprintf(f, "\n");
	}
}
