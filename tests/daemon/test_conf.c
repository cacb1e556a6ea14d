/*
 * test_conf.c: daemon/conf.c without a daemon: the defaults a minimal file
 * gets, every value read back, listen address parsing, the --seller and
 * --state-dir overrides, what counts as a control character in a name,
 * and that errors name the file, the key path and the position.
 * (tests/daemon/test_cli.py runs the same checks through ticketd -t.)
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "tap.h"

static int load(const char *text, struct conf **c, char *err, size_t len)
{
	return conf_load_buffer(text, strlen(text), "t.conf", 0, c, err, len);
}

static void defaults(void)
{
	struct conf *c = NULL;
	char err[512] = "";

	ok(load("{\"events\":[{\"id\":\"e\",\"tiers\":{\"general\":5}}]}", &c, err,
		sizeof(err)) == 0, "a minimal config loads (%s)", err);
	if (!c)
		return;
	ok(c->nlisten == 1 && strcmp(c->listen[0].text, "127.0.0.1:8080") == 0,
	   "listen defaults to 127.0.0.1:8080");
	ok(c->io_threads == 2 && c->workers == 2 && c->queue_depth == 1024,
	   "threads and queue defaults");
	ok(c->payment.latency_ms == 0 && c->payment.decline_rate == 0.0 &&
	   c->payment.mode == CONF_PAYMENT_ASYNC, "payment defaults");
	ok(c->limits.max_body_bytes == 4096 && c->limits.max_quantity == 10 &&
	   c->limits.request_timeout_ms == 10000 && c->limits.drain_timeout_ms == 5000,
	   "limit defaults");
	ok(c->log_level == LOGL_INFO && strcmp(c->core->name, "mutex") == 0 &&
	   c->events[0].core == c->core, "log level and seller defaults");
	ok(strcmp(c->events[0].name, "e") == 0 && !c->events[0].has_vip &&
	   c->events[0].capacity[SELLER_GENERAL] == 5 && !c->events[0].vip_code,
	   "an event's name defaults to its id");
	ok(c->metrics.enabled == 1, "metrics are on by default");
	conf_free(c);
}

static void values(void)
{
	struct conf *c = NULL;
	char err[512] = "";
	const char *text =
		"{\"listen\":[\"0.0.0.0:1\",\"[::]:65535\"],\"io_threads\":3,\"workers\":7,"
		"\"queue_depth\":9,\"seller\":\"mutex\",\"payment\":{\"latency_ms\":12,"
		"\"decline_rate\":1,\"mode\":\"blocking\"},\"limits\":{\"max_body_bytes\":64,"
		"\"max_header_bytes\":1024,\"max_quantity\":1000,\"request_timeout_ms\":100,"
		"\"max_connections\":1,\"drain_timeout_ms\":0},\"state_dir\":\"s\","
		"\"log_level\":\"debug\",\"metrics\":{\"enabled\":false},"
		"\"events\":[{\"id\":\"A-b_9\",\"name\":\"N\","
		"\"tiers\":{\"general\":0,\"vip\":1000000000000},\"vip_code\":\"c\"}]}";

	ok(load(text, &c, err, sizeof(err)) == 0, "every key set (%s)", err);
	if (!c)
		return;
	ok(c->nlisten == 2 && c->listen[1].addr.ss_family == AF_INET6 &&
	   ntohs(((struct sockaddr_in6 *)&c->listen[1].addr)->sin6_port) == 65535,
	   "two listen addresses, the second IPv6");
	ok(c->io_threads == 3 && c->workers == 7 && c->queue_depth == 9, "threads");
	ok(c->payment.latency_ms == 12 && c->payment.decline_rate == 1.0 &&
	   c->payment.mode == CONF_PAYMENT_BLOCKING, "payment");
	ok(c->limits.max_body_bytes == 64 && c->limits.max_header_bytes == 1024 &&
	   c->limits.max_quantity == 1000 && c->limits.request_timeout_ms == 100 &&
	   c->limits.max_connections == 1 && c->limits.drain_timeout_ms == 0, "limits");
	ok(strcmp(c->state_dir, "s") == 0 && c->log_level == LOGL_DEBUG, "state_dir, log_level");
	ok(c->metrics.enabled == 0, "metrics.enabled false");
	ok(c->events[0].has_vip && c->events[0].capacity[SELLER_VIP] == 1000000000000LL &&
	   strcmp(c->events[0].vip_code, "c") == 0, "the vip tier");
	ok(conf_set_seller(c, "no-such-core", 0, err, sizeof(err)) == -EINVAL &&
	   strstr(err, "unknown seller core") && strcmp(c->core->name, "mutex") == 0,
	   "an unknown --seller is refused and changes nothing");
	ok(conf_set_state_dir(c, "", err, sizeof(err)) == -EINVAL &&
	   strcmp(err, "must be 1 to 4095 bytes long, got 0") == 0 &&
	   strcmp(c->state_dir, "s") == 0, "an empty --state-dir is refused (%s)", err);
	char dir[4097];
	memset(dir, 'd', sizeof(dir) - 1);
	dir[4096] = '\0';
	ok(conf_set_state_dir(c, dir, err, sizeof(err)) == -EINVAL &&
	   strcmp(err, "must be 1 to 4095 bytes long, got 4096") == 0 &&
	   strcmp(c->state_dir, "s") == 0, "a 4096-byte --state-dir is refused");
	ok(conf_set_state_dir(c, "a\x1b", err, sizeof(err)) == -EINVAL &&
	   strcmp(err, "must not contain control characters") == 0 &&
	   strcmp(c->state_dir, "s") == 0, "a --state-dir with a control character is refused");
	dir[4095] = '\0';
	ok(conf_set_state_dir(c, dir, err, sizeof(err)) == 0 && strlen(c->state_dir) == 4095,
	   "a 4095-byte --state-dir replaces state_dir");
	ok(conf_set_listen(c, "[::1]:0") == 0 && c->nlisten == 1, "--listen replaces the list");
	ok(conf_set_listen(c, "nope") == -EINVAL && c->nlisten == 1, "a bad --listen is refused");
	conf_free(c);
}

static void addresses(void)
{
	static const struct { const char *s; int okay; } cases[] = {
		{ "127.0.0.1:0", 1 }, { "0.0.0.0:65535", 1 }, { "[::1]:80", 1 },
		{ "[fe80::1]:8080", 1 }, { "127.0.0.1", 0 }, { "127.0.0.1:", 0 },
		{ "127.0.0.1:65536", 0 }, { "127.0.0.1:+1", 0 }, { "127.0.0.1:1x", 0 },
		{ "::1:80", 0 }, { "[::1]80", 0 }, { "[::1]:", 0 }, { "localhost:80", 0 },
		{ "1.2.3:80", 0 }, { ":80", 0 }, { "", 0 },
	};
	struct conf_listen l;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ok((conf_parse_listen(cases[i].s, &l) == 0) == cases[i].okay,
		   "listen \"%s\" is %s", cases[i].s, cases[i].okay ? "valid" : "refused");
}

/* An out-of-range decline_rate is printed as given, not rounded to %g's 6
 * digits ("got 1" would read as in range); so is one in range in -t's
 * summary. */
static void numbers(void)
{
	static const struct { const char *rate; const char *msg; } cases[] = {
		{ "1.0000001", "t.conf: payment.decline_rate: must be between 0 and 1, got 1.0000001" },
		{ "-1e-9", "t.conf: payment.decline_rate: must be between 0 and 1, got -1e-09" },
		{ "1.5", "t.conf: payment.decline_rate: must be between 0 and 1, got 1.5" },
		{ "1e300", "t.conf: payment.decline_rate: must be between 0 and 1, got 1e+300" },
	};
	struct conf *c = NULL;
	char text[256], err[512], *out = NULL;
	size_t outlen = 0;
	FILE *f;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "{\"payment\":{\"decline_rate\":%s},"
			 "\"events\":[{\"id\":\"e\",\"tiers\":{\"general\":1}}]}",
			 cases[i].rate);
		err[0] = '\0';
		ok(load(text, &c, err, sizeof(err)) == -EINVAL && strcmp(err, cases[i].msg) == 0,
		   "decline_rate %s: \"%s\"", cases[i].rate, err);
	}
	err[0] = '\0';
	ok(load("{\"payment\":{\"decline_rate\":0.12345678},"
		"\"events\":[{\"id\":\"e\",\"tiers\":{\"general\":1}}]}",
		&c, err, sizeof(err)) == 0, "decline_rate 0.12345678 loads (%s)", err);
	f = open_memstream(&out, &outlen);
	if (c && f) {
		conf_summary(c, f);
		fclose(f);
		ok(strstr(out, "decline rate 0.12345678\n") != NULL,
		   "the summary shows decline rate 0.12345678");
	} else {
		ok(0, "the summary shows decline rate 0.12345678");
	}
	free(out);
	conf_free(c);
}

/* Only Cc is a control character: U+2028, U+2029 and U+00A0 are not. */
static void names(void)
{
	struct conf *c = NULL;
	char err[512] = "";

	ok(load("{\"events\":[{\"id\":\"e\",\"name\":\"a\\u2028\\u2029\\u00a0b\","
		"\"tiers\":{\"general\":1}}]}", &c, err, sizeof(err)) == 0 && c &&
	   strcmp(c->events[0].name, "a\xe2\x80\xa8\xe2\x80\xa9\xc2\xa0" "b") == 0,
	   "a name with U+2028, U+2029 and U+00A0 loads (%s)", err);
	conf_free(c);
}

static void errors(void)
{
	static const struct { const char *text; const char *msg; } cases[] = {
		{ "{\"events\":[{\"id\":\"e\",\"tiers\":{\"general\":1}},"
		  "{\"id\":\"f\",\"tiers\":{\"general\":1,\"vipp\":2}}]}",
		  "t.conf: events[1].tiers.vipp: unknown key" },
		{ "{\"x\":1}", "t.conf: x: unknown key" },
		{ "{\n\"workers\": 2,\n  \"events\": oops\n}", "t.conf:3:" },
		{ "{\"workers\":1025,\"events\":[]}", "t.conf: workers: must be between 0 and 1024" },
		{ "{\"workers\":0,\"payment\":{\"mode\":\"blocking\"},\"events\":[]}",
		  "t.conf: workers: 0 (reserve on the event loops) needs payment.mode" },
		{ "{\"events\":[{\"id\":\"e\",\"tiers\":{\"general\":1.5}}]}",
		  "t.conf: events[0].tiers.general: must be an integer" },
		{ "{\"metrics\":{\"enabled\":1},\"events\":[]}",
		  "t.conf: metrics.enabled: must be true or false" },
		{ "{\"metrics\":{\"on\":true},\"events\":[]}",
		  "t.conf: metrics.on: unknown key" },
		{ "{\"metrics\":true,\"events\":[]}", "t.conf: metrics: must be an object" },
		{ "{\"listen\":[\"127.0.0.1:9000\",\"127.0.0.1:9000\"],\"events\":[]}",
		  "t.conf: listen[1]: \"127.0.0.1:9000\" is the same address and port as "
		  "listen[0] (\"127.0.0.1:9000\")" },
		{ "{\"listen\":[\"[::1]:80\",\"1.2.3.4:80\",\"1.2.3.4:0080\"],\"events\":[]}",
		  "t.conf: listen[2]: \"1.2.3.4:0080\" is the same address and port as "
		  "listen[1] (\"1.2.3.4:80\")" },
		{ "{\"listen\":[\"[::1]:80\",\"[0:0:0::1]:80\"],\"events\":[]}",
		  "t.conf: listen[1]: \"[0:0:0::1]:80\" is the same address and port as "
		  "listen[0] (\"[::1]:80\")" },
		{ "{\"listen\":[\"127.0.0.1:0\",\"127.0.0.1:0\"],\"events\":[]}",
		  "t.conf: listen[1]: \"127.0.0.1:0\" is the same address and port as" },
		{ "{\"events\":[{\"id\":\"e\",\"name\":\"a\\u0085b\",\"tiers\":{\"general\":1}}]}",
		  "t.conf: events[0].name: must not contain control characters" },
		{ "{\"events\":[{\"id\":\"e\",\"name\":\"a\xc2\x80\",\"tiers\":{\"general\":1}}]}",
		  "t.conf: events[0].name: must not contain control characters" },
	};
	struct conf *c = NULL;
	char err[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		ok(load(cases[i].text, &c, err, sizeof(err)) < 0 &&
		   strncmp(err, cases[i].msg, strlen(cases[i].msg)) == 0,
		   "error %zu: %s", i, err);
	}
}

int main(void)
{
	defaults();
	values();
	addresses();
	names();
	numbers();
	errors();
	return tap_done();
}
