/*
 * fuzz_conf.c: libFuzzer target for the configuration loader. The input is
 * a configuration file's bytes, given to conf_load_buffer (the same path
 * conf_load takes after reading the file), with and without
 * CONF_ALLOW_UNSAFE. A config that loads must be complete and in range, as
 * conf.h promises (every default filled in, every core resolved); an error
 * must come with a one-line message. The overrides the command line applies
 * (-l, -s, --seller) and the -t summary run on every config that loads.
 * Any violation aborts. Nothing crosses its border but the fuzzer's bytes.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "request.h"

#define CHECK(cond)                                                           \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "fuzz_conf: %s:%d: %s\n", __FILE__,    \
				__LINE__, #cond);                             \
			abort();                                              \
		}                                                             \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *devnull;

/* Checks every promise conf.h makes about a loaded config. */
static void check_conf(const struct conf *c, unsigned flags)
{
	CHECK(c->path && strcmp(c->path, "fuzz.conf") == 0);
	CHECK(c->nlisten >= 1 && c->nlisten <= CONF_MAX_LISTEN && c->listen);
	for (size_t i = 0; i < c->nlisten; i++) {
		CHECK(memchr(c->listen[i].text, '\0', sizeof(c->listen[i].text)));
		CHECK(c->listen[i].addr.ss_family == AF_INET ||
		      c->listen[i].addr.ss_family == AF_INET6);
		for (size_t j = 0; j < i; j++) /* no address and port twice */
			CHECK(c->listen[j].addrlen != c->listen[i].addrlen ||
			      memcmp(&c->listen[j].addr, &c->listen[i].addr,
				     c->listen[i].addrlen) != 0);
	}
	CHECK(c->io_threads >= 1 && c->io_threads <= 64);
	CHECK(c->workers <= 1024);
	/* workers 0 reserves on the loops, where a blocking payment would
	 * stall one: the loader refuses the pair. */
	CHECK(c->workers > 0 || c->payment.mode == CONF_PAYMENT_ASYNC);
	CHECK(c->queue_depth >= 1 && c->queue_depth <= 1000000);
	CHECK(c->seller && c->core && strcmp(c->core->name, c->seller) == 0);
	CHECK(c->payment.latency_ms <= 60000);
	CHECK(c->payment.decline_rate >= 0.0 && c->payment.decline_rate <= 1.0);
	CHECK(c->payment.mode == CONF_PAYMENT_ASYNC ||
	      c->payment.mode == CONF_PAYMENT_BLOCKING);
	CHECK(c->limits.max_body_bytes >= 64 && c->limits.max_body_bytes <= (1u << 20));
	CHECK(c->limits.max_header_bytes >= 1024 &&
	      c->limits.max_header_bytes <= (1u << 20));
	CHECK(c->limits.max_quantity >= 1 &&
	      c->limits.max_quantity <= SELLER_MAX_QUANTITY);
	CHECK(c->limits.request_timeout_ms >= 100 &&
	      c->limits.request_timeout_ms <= 3600000);
	CHECK(c->limits.max_connections >= 1 && c->limits.max_connections <= 1000000);
	CHECK(c->limits.drain_timeout_ms <= 600000);
	CHECK(c->limits.idle_timeout_ms >= 100 && c->limits.idle_timeout_ms <= 3600000);
	CHECK(c->limits.max_url_bytes >= 16 && c->limits.max_url_bytes <= (1u << 20));
	CHECK(c->state_dir && c->state_dir[0]);
	CHECK(c->nevents >= 1 && c->nevents <= CONF_MAX_EVENTS && c->events);
	for (size_t i = 0; i < c->nevents; i++) {
		const struct conf_event *e = &c->events[i];

		CHECK(e->id && request_id_valid(e->id, strlen(e->id)));
		CHECK(conf_find_event(c, e->id) == e); /* ids are unique */
		CHECK(e->name && strlen(e->name) >= 1 && strlen(e->name) <= CONF_NAME_MAX);
		CHECK(e->core);
		CHECK(!(e->core->flags & SELLER_CORE_UNSAFE) || (flags & CONF_ALLOW_UNSAFE));
		for (int pool = 0; pool < SELLER_NPOOLS; pool++)
			CHECK(e->capacity[pool] >= 0 && e->capacity[pool] <= CONF_MAX_TICKETS);
		CHECK(!!e->has_vip == !!e->vip_code);
		CHECK(e->has_vip || e->capacity[SELLER_VIP] == 0);
		if (e->vip_code)
			CHECK(strlen(e->vip_code) >= 1 &&
			      strlen(e->vip_code) <= REQUEST_VIP_CODE_MAX);
	}
}

/* Loads the input with flags; on success applies the overrides. */
static void load(const char *buf, size_t len, unsigned flags)
{
	struct conf *c = NULL;
	char err[512];
	int rc;

	memset(err, 0, sizeof(err));
	rc = conf_load_buffer(buf, len, "fuzz.conf", flags, &c, err, sizeof(err));
	if (rc < 0) {
		CHECK(c == NULL);
		CHECK(rc == -EINVAL || rc == -EFBIG || rc == -ENOMEM);
		CHECK(err[0] && memchr(err, '\0', sizeof(err)));
		CHECK(strncmp(err, "fuzz.conf", 9) == 0);
		return;
	}
	CHECK(rc == 0 && c);
	check_conf(c, flags);
	conf_summary(c, devnull);
	CHECK(conf_set_listen(c, "[::1]:0") == 0);
	CHECK(conf_set_listen(c, "1.2.3.4:99999") == -EINVAL);
	CHECK(conf_set_state_dir(c, "", err, sizeof(err)) == -EINVAL);
	CHECK(c->state_dir && c->state_dir[0]);
	CHECK(conf_set_state_dir(c, "/tmp/x", err, sizeof(err)) == 0);
	CHECK(conf_set_seller(c, "naive", 0, err, sizeof(err)) == -EINVAL);
	CHECK(conf_set_seller(c, "mutex", 0, err, sizeof(err)) == 0);
	check_conf(c, flags);
	conf_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!devnull)
		devnull = fopen("/dev/null", "w");
	CHECK(devnull);
	load((const char *)data, size, 0);
	load((const char *)data, size, CONF_ALLOW_UNSAFE);
	return 0;
}
