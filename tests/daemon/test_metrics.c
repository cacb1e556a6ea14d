/*
 * test_metrics.c: daemon/metrics.c without a daemon. Threads count into
 * their own blocks while another thread scrapes over and over; once they
 * have joined, every sum in the exposition is exact. Threads that exit give
 * their block to the next ones (counts kept, no block per thread ever
 * started). Histogram buckets are cumulative, end in +Inf and equal _count.
 * Run under ThreadSanitizer by make check-stress.
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "conf.h"
#include "ledger.h"
#include "metrics.h"
#include "tap.h"

#define THREADS 4
#define ROUNDS 3               /* thread generations: blocks are reused */
#define PER_THREAD 20000

static struct catalog *cat;
static atomic_int stop;

/* The value of the exposition line that starts with prefix (a whole series
 * name with its labels), or -1 if there is none. */
static long long value_of(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtoll(p + n + 1, NULL, 10);
	}
	return -1;
}

static int count_lines(const char *text, const char *prefix)
{
	int n = 0;
	size_t len = strlen(prefix);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		n += strncmp(p, prefix, len) == 0;
	return n;
}

static void *counter_main(void *arg)
{
	struct catalog_event *ev = catalog_at(cat, (size_t)(uintptr_t)arg % 2);
	const struct seller_core *core = ev->core;

	for (int i = 0; i < PER_THREAD; i++) {
		uint64_t t = metrics_now();

		metrics_reply(METRICS_ROUTE_PURCHASE, i % 2 ? 201 : 409, t);
		metrics_purchase(ev, SELLER_GENERAL, i % 2 ? METRICS_SOLD : METRICS_SOLD_OUT,
				 SELLER_GENERAL, 2);
		t = metrics_queue_wait(t);
		metrics_reserve(core, t);
		metrics_payment(t);
		if (i % 100 == 0)
			metrics_refund(ev, SELLER_GENERAL, 1);
		metrics_busy(i % 2);
	}
	metrics_busy(0);
	return NULL;
}

/* A ledger that committed batches of 1, 1 and 5 requests, in 3, 700 and
 * 2500 µs. */
static void fake_ledger(void *arg, struct ledger_stats *out)
{
	(void)arg;
	out->batches = 3;
	out->requests = 7;
	out->batch_hist[1] = 2;          /* [1, 2) */
	out->batch_hist[3] = 1;          /* [4, 8) */
	out->commit_ns_total = 3203000;
	out->commit_us_hist[2] = 1;      /* [2, 4) µs */
	out->commit_us_hist[10] = 1;     /* [512, 1024) µs */
	out->commit_us_hist[12] = 1;     /* [2048, 4096) µs */
	out->failed_batches = 1;
	out->queued = 4;
}

static void *scraper_main(void *arg)
{
	struct metrics_sources src = { .cat = cat };
	long scrapes = 0;

	(void)arg;
	while (!atomic_load(&stop)) {
		char *text;
		size_t len;

		if (metrics_render(&src, &text, &len) == 0) {
			scrapes++;
			free(text);
		}
	}
	return (void *)scrapes;
}

/* Checks every histogram of text: buckets cumulative, the last one +Inf and
 * equal to _count (with the same labels). Returns the number of histograms
 * checked, or -1 at the first violation. */
static int check_histograms(const char *text)
{
	char key[512] = "";
	long long prev = -1;
	int checked = 0;

	for (const char *p = text; *p; p = strchr(p, '\n') + 1) {
		const char *b = strstr(p, "_bucket{"), *eol = strchr(p, '\n');
		const char *le = b ? strstr(b, "le=\"") : NULL;
		char series[600];
		long long v;
		int lablen;

		if (!eol)
			break;
		if (*p == '#' || !b || b > eol || !le || le > eol)
			continue;
		v = strtoll(strstr(le, "} ") + 2, NULL, 10);
		if (strncmp(key, p, (size_t)(le - p)) || key[le - p]) {
			snprintf(key, sizeof(key), "%.*s", (int)(le - p), p);
			prev = -1;
		}
		if (v < prev)
			return -1;
		prev = v;
		if (strncmp(le, "le=\"+Inf\"}", 10) != 0)
			continue;
		/* name_count{labels without le}, or name_count */
		lablen = (int)(le - (b + 8)) - 1;  /* minus the comma */
		if (lablen > 0)
			snprintf(series, sizeof(series), "%.*s_count{%.*s}", (int)(b - p), p,
				 lablen, b + 8);
		else
			snprintf(series, sizeof(series), "%.*s_count", (int)(b - p), p);
		if (value_of(text, series) != v)
			return -1;
		checked++;
	}
	return checked;
}

int main(void)
{
	static const char conf_text[] =
		"{\"events\":[{\"id\":\"a\",\"tiers\":{\"general\":100,\"vip\":5},"
		"\"vip_code\":\"x\"},{\"id\":\"b\",\"seller\":\"atomic\","
		"\"tiers\":{\"general\":7}}]}";
	struct metrics_sources src;
	struct conf *c = NULL;
	char err[256] = "", *text = NULL, series[256];
	pthread_t th[THREADS], scraper;
	void *scrapes;
	size_t len;
	int hists;
	long long want;

	if (conf_load_buffer(conf_text, sizeof(conf_text) - 1, "t.conf", 0, &c, err,
			     sizeof(err)) < 0 ||
	    catalog_create(c, NULL, NULL, &cat, err, sizeof(err)) < 0) {
		ok(0, "set up: %s", err);
		return tap_done();
	}
	ok(metrics_init(0) == 0 && metrics_now() == 0, "off: no clock read");
	metrics_reply(METRICS_ROUTE_HEALTHZ, 200, 0);
	src = (struct metrics_sources){ .cat = cat };
	ok(metrics_render(&src, &text, &len) == -ENOTSUP, "off: nothing to render");
	ok(metrics_init(1) == 0 && metrics_now() != 0, "on");

	pthread_create(&scraper, NULL, scraper_main, NULL);
	for (int r = 0; r < ROUNDS; r++) {
		for (uintptr_t i = 0; i < THREADS; i++)
			pthread_create(&th[i], NULL, counter_main, (void *)i);
		for (int i = 0; i < THREADS; i++)
			pthread_join(th[i], NULL);
	}
	atomic_store(&stop, 1);
	pthread_join(scraper, &scrapes);
	ok((long)scrapes > 0, "%ld scrapes ran while %d threads counted", (long)scrapes,
	   THREADS * ROUNDS);

	text = NULL;
	len = 0;
	if (!ok(metrics_render(&src, &text, &len) == 0 && text && len == strlen(text),
		"render after the threads joined"))
		return tap_done();
	diag("%zu bytes for 2 events", len);
	want = (long long)ROUNDS * THREADS * PER_THREAD / 2;
	ok(value_of(text, "ticketd_http_requests_total{route=\"purchase\",status=\"201\"}")
	   == want, "201s summed exactly over every thread and generation");
	ok(value_of(text, "ticketd_http_requests_total{route=\"purchase\",status=\"409\"}")
	   == want, "409s too");
	ok(value_of(text, "ticketd_http_request_duration_seconds_count{route=\"purchase\"}")
	   == 2 * want, "latency histogram count == requests");
	/* Threads 0 and 2 count event a, 1 and 3 event b. */
	want = (long long)ROUNDS * (THREADS / 2) * PER_THREAD / 2;
	ok(value_of(text, "ticketd_purchases_total{event=\"a\",tier=\"general\","
			  "outcome=\"sold\"}") == want, "sold purchases of a");
	ok(value_of(text, "ticketd_purchases_total{event=\"b\",tier=\"general\","
			  "outcome=\"sold_out\"}") == want, "sold-out purchases of b");
	ok(value_of(text, "ticketd_tickets_sold_total{event=\"a\",tier=\"general\"}")
	   == 2 * want, "tickets sold of a (2 per purchase)");
	ok(value_of(text, "ticketd_tickets_refunded_total{event=\"b\",tier=\"general\"}")
	   == (long long)ROUNDS * (THREADS / 2) * (PER_THREAD / 100), "refunds of b");
	ok(value_of(text, "ticketd_purchases_total{event=\"a\",tier=\"vip\","
			  "outcome=\"declined\"}") == 0 &&
	   value_of(text, "ticketd_purchases_total{event=\"b\",tier=\"vip\","
			  "outcome=\"declined\"}") == -1,
	   "every outcome of each tier an event has, and no vip series without one");
	ok(value_of(text, "ticketd_tickets_available{event=\"a\",tier=\"vip\"}") == 5 &&
	   value_of(text, "ticketd_tickets_capacity{event=\"b\",tier=\"general\"}") == 7,
	   "availability and capacity from the sellers");
	ok(value_of(text, "ticketd_workers_busy") == 0, "no worker busy after the threads");
	want = (long long)ROUNDS * THREADS * PER_THREAD;
	snprintf(series, sizeof(series),
		 "ticketd_reserve_duration_seconds_count{seller=\"%s\"}", "mutex");
	ok(value_of(text, series) == want / 2, "reserve histogram of mutex (event a)");
	ok(value_of(text, "ticketd_reserve_duration_seconds_count{seller=\"atomic\"}")
	   == want / 2, "reserve histogram of atomic (event b)");
	ok(value_of(text, "ticketd_queue_wait_seconds_count") == want &&
	   value_of(text, "ticketd_payment_duration_seconds_count") == want,
	   "queue wait and payment histograms");
	hists = check_histograms(text);
	ok(hists >= 5, "%d histograms cumulative, ending in +Inf == _count", hists);
	ok(count_lines(text, "# TYPE ") == count_lines(text, "# HELP "),
	   "a HELP for every TYPE");
	ok(strstr(text, "ticketd_ledger_") == NULL, "no ledger families without a ledger");
	free(text);

	metrics_set_ledger(fake_ledger, NULL);
	text = NULL;
	if (!ok(metrics_render(&src, &text, &len) == 0, "render with a ledger"))
		return tap_done();
	ok(value_of(text, "ticketd_ledger_batch_size_bucket{le=\"0\"}") == 0 &&
	   value_of(text, "ticketd_ledger_batch_size_bucket{le=\"1\"}") == 2 &&
	   value_of(text, "ticketd_ledger_batch_size_bucket{le=\"3\"}") == 2 &&
	   value_of(text, "ticketd_ledger_batch_size_bucket{le=\"7\"}") == 3 &&
	   value_of(text, "ticketd_ledger_batch_size_bucket{le=\"+Inf\"}") == 3 &&
	   value_of(text, "ticketd_ledger_batch_size_sum") == 7,
	   "ledger batch sizes: le 2^i - 1, cumulative, _sum the requests");
	ok(value_of(text, "ticketd_ledger_commit_duration_seconds_bucket"
			  "{le=\"0.000004000\"}") == 1 &&
	   value_of(text, "ticketd_ledger_commit_duration_seconds_bucket"
			  "{le=\"0.001024000\"}") == 2 &&
	   value_of(text, "ticketd_ledger_commit_duration_seconds_count") == 3 &&
	   strstr(text, "\nticketd_ledger_commit_duration_seconds_sum 0.003203000\n"),
	   "ledger commit times: le 2^i µs in seconds, _sum exact");
	ok(value_of(text, "ticketd_ledger_failed_batches_total") == 1 &&
	   value_of(text, "ticketd_ledger_queue_depth") == 4, "ledger failures and queue");
	hists = check_histograms(text);
	ok(hists >= 7, "%d histograms consistent with the ledger's", hists);
	free(text);
	metrics_set_ledger(NULL, NULL);

	metrics_shutdown();
	catalog_destroy(cat);
	conf_free(c);
	return tap_done();
}
