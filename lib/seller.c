/*
 * seller.c: the registry of seller cores and the argument-checking wrappers
 * every caller goes through. The cores themselves live in seller_<name>.c;
 * this file holds no inventory and takes no lock.
 */
#include "config.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "seller.h"

extern const struct seller_core seller_core_mutex;
extern const struct seller_core seller_core_atomic;
extern const struct seller_core seller_core_sharded;
extern const struct seller_core seller_core_batched;
extern const struct seller_core seller_core_priority;
extern const struct seller_core seller_core_naive;

/* Every core, safe ones first; naive carries SELLER_CORE_UNSAFE. */
static const struct seller_core *const cores[] = {
	&seller_core_mutex,
	&seller_core_atomic,
	&seller_core_sharded,
	&seller_core_batched,
	&seller_core_priority,
	&seller_core_naive,
};

/* Returns the core called name, or NULL; unsafe cores only if unsafe_ok. */
static const struct seller_core *core_lookup(const char *name, int unsafe_ok)
{
	for (size_t i = 0; i < sizeof(cores) / sizeof(cores[0]); i++) {
		if (strcmp(cores[i]->name, name) != 0)
			continue;
		if ((cores[i]->flags & SELLER_CORE_UNSAFE) && !unsafe_ok)
			return NULL;
		return cores[i];
	}
	return NULL;
}

const struct seller_core *seller_core_find(const char *name)
{
	return core_lookup(name, 0);
}

const struct seller_core *seller_core_find_unsafe(const char *name)
{
	return core_lookup(name, 1);
}

size_t seller_core_count(void)
{
	return sizeof(cores) / sizeof(cores[0]);
}

const struct seller_core *seller_core_at(size_t i)
{
	return i < seller_core_count() ? cores[i] : NULL;
}

/* Writes the safe cores' names, comma-separated, into buf; returns buf. */
char *seller_core_names(char *buf, size_t len)
{
	size_t used = 0;

	if (len == 0)
		return buf;
	buf[0] = '\0';
	for (size_t i = 0; i < seller_core_count(); i++) {
		if (cores[i]->flags & SELLER_CORE_UNSAFE)
			continue;
		int n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "",
				 cores[i]->name);
		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
	}
	return buf;
}

int seller_params_check(const struct seller_params *p, const char **why)
{
	const char *reason = NULL;

	if (p->max_quantity < 1 || p->max_quantity > SELLER_MAX_QUANTITY)
		reason = "max_quantity must be between 1 and 1000";
	for (int i = 0; i < SELLER_NPOOLS && !reason; i++) {
		if (p->capacity[i] < 0 || p->capacity[i] > INT64_MAX / 4)
			reason = "capacity must be between 0 and 2^61";
		else if (p->sold[i] < 0 || p->sold[i] > p->capacity[i])
			reason = "sold must be between 0 and capacity";
	}
	if (!reason && p->shards > 1024)
		reason = "shards must be at most 1024";
	if (why)
		*why = reason;
	return reason ? -EINVAL : 0;
}

int seller_create(const struct seller_core *core, const struct seller_params *p,
		  struct seller **out)
{
	int rc = seller_params_check(p, NULL);
	if (rc < 0)
		return rc;
	rc = core->create(p, out);
	if (rc < 0)
		return rc;
	(*out)->core = core;
	(*out)->max_quantity = p->max_quantity;
	for (int i = 0; i < SELLER_NPOOLS; i++)
		atomic_init(&(*out)->refused[i], 0);
	return 0;
}

void seller_destroy(struct seller *s)
{
	if (s)
		s->core->destroy(s);
}

static int pool_ok(int pool)
{
	return pool == SELLER_GENERAL || pool == SELLER_VIP;
}

/* Notes that a reserve of qty by buyer was refused: refused[buyer] drops
 * to qty if it is 0 or larger. Writes only when it changes. */
static void note_refused(struct seller *s, enum seller_pool buyer, unsigned qty)
{
	unsigned cur = atomic_load_explicit(&s->refused[buyer], memory_order_relaxed);

	while ((cur == 0 || qty < cur) &&
	       !atomic_compare_exchange_weak_explicit(&s->refused[buyer], &cur, qty,
						      memory_order_relaxed,
						      memory_order_relaxed))
		;
}

/* Tickets came back: forgets every refusal (a VIP buyer may also draw on
 * the general pool, so both tiers). Writes only what is set. */
static void forget_refused(struct seller *s)
{
	for (int i = 0; i < SELLER_NPOOLS; i++)
		if (atomic_load_explicit(&s->refused[i], memory_order_relaxed))
			atomic_store_explicit(&s->refused[i], 0, memory_order_relaxed);
}

int seller_reserve(struct seller *s, enum seller_pool buyer, unsigned qty,
		   enum seller_pool *from)
{
	enum seller_pool dummy;
	int rc;

	if (qty < 1 || qty > s->max_quantity || !pool_ok((int)buyer))
		return -EINVAL;
	rc = s->core->reserve(s, buyer, qty, from ? from : &dummy);
	if (rc == SELLER_SOLD_OUT)
		note_refused(s, buyer, qty);
	return rc;
}

int seller_release(struct seller *s, enum seller_pool pool, unsigned qty)
{
	int rc;

	if (qty < 1 || qty > SELLER_MAX_QUANTITY || !pool_ok((int)pool))
		return -EINVAL;
	rc = s->core->release(s, pool, qty);
	if (rc == 0)
		forget_refused(s);
	return rc;
}

int seller_grow(struct seller *s, enum seller_pool pool, int64_t add)
{
	int rc;

	if (add <= 0 || add > INT64_MAX / 4 || !pool_ok((int)pool))
		return -EINVAL;
	rc = s->core->grow(s, pool, add);
	if (rc == 0)
		forget_refused(s);
	return rc;
}

void seller_forget_hint(struct seller *s)
{
	forget_refused(s);
}

int seller_sold_out_hint(struct seller *s, enum seller_pool buyer, unsigned qty)
{
	unsigned r;

	if (!pool_ok((int)buyer))
		return 0;
	r = atomic_load_explicit(&s->refused[buyer], memory_order_relaxed);
	return r != 0 && qty >= r;
}

void seller_snapshot(struct seller *s, struct seller_snapshot *out)
{
	s->core->snapshot(s, out);
}

unsigned seller_thread_index(void)
{
	static atomic_uint next;
	static _Thread_local unsigned mine; /* index + 1; 0 = unassigned */

	if (mine == 0)
		mine = atomic_fetch_add_explicit(&next, 1, memory_order_relaxed) + 1;
	return mine - 1;
}

const char *seller_pool_name(enum seller_pool p)
{
	return p == SELLER_VIP ? "vip" : "general";
}
