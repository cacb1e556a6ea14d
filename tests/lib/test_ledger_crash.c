/*
 * test_ledger_crash.c: no confirmed order is lost when the process dies.
 *
 * ROUNDS times, a child opens the ledger (sync "full"), and four threads
 * submit orders as fast as their windows allow; each done() with result 0
 * writes the order id to a pipe: that is the moment a daemon would answer
 * 201. The parent reads confirmations and SIGKILLs the child after a random
 * number of them, mid-batch. Then it reopens the ledger and checks that
 * every confirmed id is there with its tickets, that the boot epoch grew,
 * and that the audit passes.
 *
 * What it proves: done() runs only after COMMIT has handed the batch to the
 * kernel, and a killed process leaves a ledger SQLite recovers whole. It
 * does not cut the power, so it can't tell "full" from "off" (that needs a
 * VM); the fsync itself is SQLite's, with synchronous=FULL.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "ledger.h"
#include "tap.h"
#include "test_ledger_util.h"

#define ROUNDS 3
#define CHILD_THREADS 4
#define CHILD_WINDOW 8
#define ID_LEN 32                 /* one fixed-size record per confirmation */
#define MAX_CONFIRMED 100000

/* One request slot of a child thread. */
struct cslot {
	struct ledger_req req;
	struct cthread *t;
	char id[ID_LEN];
	int busy;                  /* guarded by t->lock */
};

struct cthread {
	struct ledger *l;
	int index, fd;
	uint64_t epoch;
	pthread_mutex_t lock;      /* guards free_slots and the slots' busy */
	pthread_cond_t cond;
	int free_slots;
	struct cslot slots[CHILD_WINDOW];
};

static void cslot_done(struct ledger_req *r, int result)
{
	struct cslot *s = (struct cslot *)r;
	struct cthread *t = s->t;

	/* Reported as confirmed only after its batch committed: this is the 201. */
	if (result == 0 && write(t->fd, s->id, ID_LEN) != ID_LEN)
		_exit(5);
	pthread_mutex_lock(&t->lock);
	s->busy = 0;
	t->free_slots++;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

/* A child thread: submits orders forever, CHILD_WINDOW at a time. */
static void *child_main(void *arg)
{
	struct cthread *t = arg;
	unsigned long n = 0;

	for (;;) {
		struct cslot *s = NULL;

		pthread_mutex_lock(&t->lock);
		while (t->free_slots == 0)
			pthread_cond_wait(&t->cond, &t->lock);
		for (int i = 0; i < CHILD_WINDOW && !s; i++)
			if (!t->slots[i].busy)
				s = &t->slots[i];
		s->busy = 1;
		t->free_slots--;
		pthread_mutex_unlock(&t->lock);

		memset(&s->req, 0, sizeof(s->req));
		snprintf(s->id, ID_LEN, "e%llu-t%d-%lu", (unsigned long long)t->epoch,
			 t->index, n++);
		s->t = t;
		s->req.op = LEDGER_OP_ORDER;
		s->req.done = cslot_done;
		s->req.order = (struct ledger_order_in){
			.id = s->id, .event = "crash", .tier = SELLER_GENERAL,
			.pool = SELLER_GENERAL, .quantity = 1 + (unsigned)(n % 3), .buyer = "k",
		};
		if (ledger_submit(t->l, &s->req) < 0)
			_exit(6);
	}
	return NULL;
}

/* The child: opens the ledger and sells until killed. */
static void child(const char *dir, int fd)
{
	static struct cthread ts[CHILD_THREADS];
	struct ledger_options o = { .state_dir = dir, .sync = LEDGER_SYNC_FULL };
	pthread_t th[CHILD_THREADS];
	char err[512];
	struct ledger *l;

	if (ledger_open(&o, &l, err, sizeof(err)) < 0) {
		fprintf(stderr, "child: %s\n", err);
		_exit(7);
	}
	for (int i = 0; i < CHILD_THREADS; i++) {
		ts[i].l = l;
		ts[i].index = i;
		ts[i].fd = fd;
		ts[i].epoch = ledger_epoch(l);
		ts[i].free_slots = CHILD_WINDOW;
		pthread_mutex_init(&ts[i].lock, NULL);
		pthread_cond_init(&ts[i].cond, NULL);
		pthread_create(&th[i], NULL, child_main, &ts[i]);
	}
	pause();
	_exit(8);
}

static int read_full(int fd, char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return got == 0 ? 0 : -1;
		got += (size_t)n;
	}
	return 1;
}

int main(void)
{
	static char ids[MAX_CONFIRMED][ID_LEN];
	char *dir = tmpdir_make(), err[512];
	int nids = 0;
	uint64_t last_epoch = 0;

	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	for (int round = 1; round <= ROUNDS; round++) {
		int fds[2], status, rc, target = 50 + rand() % 1500, got = 0, missing = 0, start;
		struct ledger_capacity cap = { .event = "crash",
					       .capacity = { INT64_MAX / 8, 0 } };
		struct ledger_audit_report rep;
		struct ledger *l;
		pid_t pid;
		FILE *devnull;

		if (pipe(fds) < 0)
			return 99;
		pid = fork();
		if (pid == 0) {
			close(fds[0]);
			child(dir, fds[1]);
		}
		close(fds[1]);
		start = nids;
		while (got < target && nids < MAX_CONFIRMED &&
		       read_full(fds[0], ids[nids], ID_LEN) == 1) {
			nids++;
			got++;
		}
		kill(pid, SIGKILL);
		/* Confirmations written before the kill count too. */
		while (nids < MAX_CONFIRMED && read_full(fds[0], ids[nids], ID_LEN) == 1)
			nids++;
		close(fds[0]);
		waitpid(pid, &status, 0);
		ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && got == target,
		   "round %d: child killed after %d confirmations (%d in all)", round, target,
		   nids - start);

		l = open_dir(dir, err, sizeof(err));
		if (!ok(l != NULL, "round %d: the ledger reopens after SIGKILL (%s)", round,
			l ? "ok" : err))
			break;
		for (int i = 0; i < nids; i++) {
			struct ledger_order *o = NULL;

			ids[i][ID_LEN - 1] = '\0';
			if (ledger_get_order(l, ids[i], &o) != 0 || o->ntickets != o->quantity)
				missing++;
			free(o);
		}
		ok(missing == 0, "round %d: all %d confirmed orders of all rounds are there "
		   "(%d missing)", round, nids, missing);
		ok(ledger_epoch(l) > last_epoch, "round %d: boot epoch %llu grew", round,
		   (unsigned long long)ledger_epoch(l));
		last_epoch = ledger_epoch(l);
		ledger_close(l);
		devnull = fopen("/dev/null", "w");
		rc = ledger_audit(&(struct ledger_options){ .state_dir = dir }, &cap, 1,
				  devnull, &rep, err, sizeof(err));
		ok(rc == 0, "round %d: audit passes (%llu orders, %llu tickets)", round,
		   (unsigned long long)rep.orders, (unsigned long long)rep.tickets);
		if (devnull)
			fclose(devnull);
	}
	tmpdir_remove(dir);
	return tap_done();
}
