/*
 * test_pool_live.c: the worker pool's live controls, which the watchdog and
 * the SIGHUP reload rely on. pool_resize grows and shrinks the set of
 * threads while tasks run, and every task still runs exactly once; the
 * heartbeat moves for an idle pool once a tick is set and for a busy one
 * after each task, and stands still when every worker is stuck in a task.
 * With a cancel op, pool_stop cancels what has not begun instead of
 * running it. The invariants are exact (counts, peak concurrency); nothing
 * is timed except the waits for something that must happen.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "pool.h"
#include "tap.h"

struct task {
	struct pool_task t;   /* first: the pool hands us this */
	int hold;             /* wait for the gate before returning */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* guards gate, active, peak, ran */
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int gate;              /* 1: held tasks may return */
static unsigned active;       /* tasks running now */
static unsigned peak;         /* most tasks running at once */
static unsigned ran;          /* tasks finished */

static void run(struct pool_task *pt, void *arg)
{
	struct task *t = (struct task *)pt;

	(void)arg;
	pthread_mutex_lock(&lock);
	if (++active > peak)
		peak = active;
	pthread_cond_broadcast(&cond);
	while (t->hold && !gate)
		pthread_cond_wait(&cond, &lock);
	active--;
	ran++;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
}

static unsigned cancelled;    /* tasks cancelled; guarded by lock */

static void cancel(struct pool_task *pt, void *arg)
{
	(void)pt;
	(void)arg;
	pthread_mutex_lock(&lock);
	cancelled++;
	pthread_mutex_unlock(&lock);
}

static void *stop_main(void *arg)
{
	pool_stop(arg);
	return NULL;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Waits up to 10 s until cond_fn() holds (lock held while it is called). */
static int wait_for(int (*cond_fn)(unsigned), unsigned arg)
{
	struct timespec ts;
	int okay;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	pthread_mutex_lock(&lock);
	while (!(okay = cond_fn(arg)))
		if (pthread_cond_timedwait(&cond, &lock, &ts) == ETIMEDOUT)
			break;
	okay = cond_fn(arg);
	pthread_mutex_unlock(&lock);
	return okay;
}

/* Polls pool_workers until it is n, for up to 10 s (leavers go at their pace). */
static int workers_become(struct pool *p, unsigned n)
{
	for (int i = 0; i < 1000 && pool_workers(p) != n; i++)
		sleep_ms(10);
	return pool_workers(p) == n;
}

static int active_is(unsigned n) { return active == n; }
static int ran_is(unsigned n) { return ran == n; }

static void reset(void)
{
	pthread_mutex_lock(&lock);
	gate = 0;
	active = peak = ran = 0;
	pthread_mutex_unlock(&lock);
}

static void open_gate(void)
{
	pthread_mutex_lock(&lock);
	gate = 1;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
}

/* Submits n tasks (held or not) one at a time; returns how many were queued. */
static unsigned submit(struct pool *p, struct task *t, unsigned n, int hold)
{
	unsigned q = 0;

	for (unsigned i = 0; i < n; i++) {
		t[i].hold = hold;
		q += pool_submit(p, &t[i].t, POOL_NORMAL) == 0;
	}
	return q;
}

int main(void)
{
	const struct pool_ops ops = { .run = run };
	static struct task t[64];
	struct pool *p;
	unsigned long long b0, b1;

	if (!ok(pool_create(2, 1024, &ops, NULL, &p) == 0, "pool_create with 2 workers"))
		return tap_done();
	ok(pool_workers(p) == 2, "2 workers run");

	/* Grow: 5 held tasks all run at once only if 5 workers exist. */
	ok(pool_resize(p, 5) == 0, "pool_resize 2 -> 5");
	ok(pool_workers(p) == 5, "5 workers run after the resize");
	reset();
	ok(submit(p, t, 5, 1) == 5, "5 held tasks queued");
	ok(wait_for(active_is, 5), "all 5 run at once on the grown pool");

	/* Shrink while every worker is busy: nobody is waited for. */
	ok(pool_resize(p, 1) == 0, "pool_resize 5 -> 1 returns while all 5 are busy");
	ok(submit(p, t + 5, 20, 0) == 20, "20 more tasks queued behind them");
	open_gate();
	ok(wait_for(ran_is, 25), "every one of the 25 tasks ran exactly once");
	ok(workers_become(p, 1), "1 worker left after the shrink (%u)", pool_workers(p));
	reset();
	ok(submit(p, t, 8, 1) == 8, "8 held tasks on the shrunk pool");
	sleep_ms(100);
	pthread_mutex_lock(&lock);
	ok(peak == 1, "only one runs at a time on 1 worker (peak %u)", peak);
	pthread_mutex_unlock(&lock);
	open_gate();
	ok(wait_for(ran_is, 8), "and all 8 finish");

	/* Grow again past the leavers, then back: counts stay exact. */
	ok(pool_resize(p, 3) == 0 && workers_become(p, 3), "pool_resize 1 -> 3");
	ok(pool_resize(p, 0) == -EINVAL && pool_resize(p, POOL_MAX_WORKERS + 1) == -EINVAL,
	   "pool_resize refuses 0 and more than %u", POOL_MAX_WORKERS);

	/* Heartbeat: idle and untimed, it stands still... (after a pause, so the
	 * beat of the last batch's end, which lands just after its task counted
	 * as run, is not taken for idle beating) */
	sleep_ms(50);
	b0 = pool_heartbeat(p);
	sleep_ms(150);
	ok(pool_heartbeat(p) == b0, "an idle pool without a tick does not beat");
	/* ...with a tick, an idle pool beats... */
	pool_set_tick(p, 20);
	sleep_ms(50);
	b0 = pool_heartbeat(p);
	sleep_ms(200);
	b1 = pool_heartbeat(p);
	ok(b1 > b0, "an idle pool with a 20 ms tick beats (%llu -> %llu)", b0, b1);
	/* ...a busy one beats after each task... */
	reset();
	b0 = pool_heartbeat(p);
	ok(submit(p, t, 10, 0) == 10 && wait_for(ran_is, 10), "10 quick tasks run");
	/* Each task's beat lands just after its run() counted it as run. */
	for (int i = 0; i < 1000 && pool_heartbeat(p) < b0 + 10; i++)
		sleep_ms(10);
	ok(pool_heartbeat(p) >= b0 + 10, "the heartbeat moved by at least one per task");
	/* ...and a pool whose every worker is stuck does not. */
	reset();
	ok(submit(p, t, 3, 1) == 3 && wait_for(active_is, 3), "all 3 workers stuck in a task");
	sleep_ms(50); /* a batch end racing the check above */
	b0 = pool_heartbeat(p);
	sleep_ms(200);
	b1 = pool_heartbeat(p);
	ok(b1 == b0, "a wedged pool does not beat over 10 ticks (%llu -> %llu)", b0, b1);
	open_gate();
	ok(wait_for(ran_is, 3), "the stuck tasks finish once released");

	/* Stop runs what is queued, then joins every thread, leavers included. */
	reset();
	pool_resize(p, 1);
	ok(submit(p, t, 30, 0) == 30, "30 tasks queued before pool_stop");
	open_gate();
	pool_stop(p);
	pthread_mutex_lock(&lock);
	ok(ran == 30, "pool_stop ran every queued task (%u)", ran);
	pthread_mutex_unlock(&lock);
	pool_destroy(p);

	/* With a cancel op, stop cancels what has not begun, the rest of the
	 * batch a worker already took included, and runs nothing more. */
	{
		const struct pool_ops cops = { .run = run, .cancel = cancel };
		static struct task probe[64];
		pthread_t stopper;
		unsigned probes = 0;
		int rc;

		reset();
		if (!ok(pool_create(1, 1024, &cops, NULL, &p) == 0, "a pool with a cancel op"))
			return tap_done();
		ok(submit(p, t, 30, 1) == 30, "30 held tasks queued on 1 worker");
		ok(wait_for(active_is, 1), "the worker runs the first (its batch holds more)");
		ok(pthread_create(&stopper, NULL, stop_main, p) == 0, "pool_stop begins");
		/* A submit is refused once the stop has begun (the probes are
		 * spaced out so that 64 of them last at least 6 s). */
		for (int i = 0; i < 1000; i++) {
			probe[probes].hold = 0;
			rc = pool_submit(p, &probe[probes].t, POOL_NORMAL);
			if (rc == -ESHUTDOWN)
				break;
			probes += rc == 0;
			if (probes == 64)
				break;
			sleep_ms(100);
		}
		ok(rc == -ESHUTDOWN, "pool_submit: -ESHUTDOWN once stopping");
		open_gate();
		pthread_join(stopper, NULL);
		pthread_mutex_lock(&lock);
		ok(ran == 1 && cancelled == 29 + probes,
		   "stop ran only the task under way; cancelled the other %u (ran %u, "
		   "cancelled %u)", 29 + probes, ran, cancelled);
		pthread_mutex_unlock(&lock);
		pool_destroy(p);
	}
	return tap_done();
}
