/*
 * catalog.c: builds the events from the config and finds them by id. Reads
 * only after start-up: no lock here. The sellers it creates are the cores'
 * business (each guards its own counters).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "request.h"

struct catalog {
	struct catalog_event *events;
	size_t n;
};

static void event_free(struct catalog_event *e)
{
	seller_destroy(e->seller);
	free(e->id);
	free(e->name_json);
	free(e->vip_code);
}

/* Builds one entry from its config; 0 or -errno with the cause in err. */
static int event_init(struct catalog_event *e, const struct conf *c,
		      const struct conf_event *ce, catalog_sold_fn sold, void *arg,
		      char *err, size_t errlen)
{
	struct seller_params params = { .max_quantity = c->limits.max_quantity };
	char name[2 + 6 * CONF_NAME_MAX + 1];
	const char *why = NULL;
	int rc;

	e->id = strdup(ce->id);
	e->id_len = strlen(ce->id);
	e->vip_code = ce->vip_code ? strdup(ce->vip_code) : NULL;
	rc = request_json_string(ce->name, strlen(ce->name), name, sizeof(name));
	e->name_json = rc > 0 ? strdup(name) : NULL;
	if (!e->id || !e->name_json || (ce->vip_code && !e->vip_code)) {
		snprintf(err, errlen, "event %s: out of memory", ce->id);
		return -ENOMEM;
	}
	e->vip_code_len = e->vip_code ? strlen(e->vip_code) : 0;
	e->has_vip = ce->has_vip;
	e->core = ce->core;
	e->vip_first = strcmp(ce->core->name, "priority") == 0;
	for (int p = 0; p < SELLER_NPOOLS; p++) {
		params.capacity[p] = ce->capacity[p];
		params.sold[p] = sold ? sold(arg, ce->id, (enum seller_pool)p) : 0;
		if (params.sold[p] < 0) {
			snprintf(err, errlen, "event %s: cannot read what was sold: %s",
				 ce->id, strerror((int)-params.sold[p]));
			return (int)params.sold[p];
		}
		if (params.sold[p] > params.capacity[p]) {
			snprintf(err, errlen, "event %s: %lld %s tickets were sold but the "
				 "capacity is now %lld", ce->id, (long long)params.sold[p],
				 seller_pool_name((enum seller_pool)p),
				 (long long)params.capacity[p]);
			return -ERANGE;
		}
	}
	if (seller_params_check(&params, &why) < 0) {
		snprintf(err, errlen, "event %s: %s", ce->id, why);
		return -EINVAL;
	}
	rc = seller_create(ce->core, &params, &e->seller);
	if (rc < 0) {
		snprintf(err, errlen, "event %s: cannot create a %s seller: %s", ce->id,
			 ce->core->name, strerror(-rc));
		return rc;
	}
	return 0;
}

int catalog_create(const struct conf *c, catalog_sold_fn sold, void *arg,
		   struct catalog **out, char *err, size_t errlen)
{
	struct catalog *cat = calloc(1, sizeof(*cat));
	int rc = -ENOMEM;

	if (!cat || !(cat->events = calloc(c->nevents, sizeof(*cat->events)))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < c->nevents; i++) {
		cat->n = i + 1;
		rc = event_init(&cat->events[i], c, &c->events[i], sold, arg, err, errlen);
		if (rc < 0)
			goto fail;
	}
	*out = cat;
	return 0;
fail:
	catalog_destroy(cat);
	return rc;
}

void catalog_destroy(struct catalog *cat)
{
	if (!cat)
		return;
	for (size_t i = 0; i < cat->n; i++)
		event_free(&cat->events[i]);
	free(cat->events);
	free(cat);
}

size_t catalog_count(const struct catalog *cat)
{
	return cat->n;
}

struct catalog_event *catalog_at(const struct catalog *cat, size_t i)
{
	return i < cat->n ? &cat->events[i] : NULL;
}

struct catalog_event *catalog_find(const struct catalog *cat, const char *id,
				   size_t len)
{
	for (size_t i = 0; i < cat->n; i++) {
		struct catalog_event *e = &cat->events[i];

		if (e->id_len == len && memcmp(e->id, id, len) == 0)
			return e;
	}
	return NULL;
}

int catalog_vip_code_ok(const struct catalog_event *ev, const char *code, size_t len)
{
	unsigned char diff = 0;

	if (!ev->vip_code || len != ev->vip_code_len)
		return 0;
	for (size_t i = 0; i < len; i++)
		diff |= (unsigned char)(code[i] ^ ev->vip_code[i]);
	return diff == 0;
}
