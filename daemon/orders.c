/*
 * orders.c: order ids and the in-memory order store. The store is a page
 * table indexed by the order's sequence number: a commit takes the next
 * sequence with one atomic add, fills its own slot and publishes it with a
 * release store; a lookup parses the id and reads the slot with an acquire
 * load. The only lock guards the allocation of a new page (once per 4096
 * orders). Orders live until the daemon stops; after a restart only the
 * ledger (issue 4) remembers them, so a lookup of an older epoch is -ENOENT.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "orders.h"

#define PAGE_SLOTS 4096u
#define DIR_PAGES 65536u           /* 268 million orders per boot */

struct slot {
	atomic_int ready;          /* 1 once order is complete (release/acquire) */
	struct order order;
};

struct orders {
	uint64_t epoch;
	atomic_uint_fast64_t next_seq;      /* last sequence handed out */
	pthread_mutex_t grow;               /* guards page allocation */
	_Atomic(struct slot *) pages[DIR_PAGES];
};

/* mkdir -p path with mode 0750; 0 or -errno. */
static int mkdirs(const char *path)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0750) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0750) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Reads the stored epoch (0 if the file does not exist); 0 or -errno. */
static int read_epoch(int dfd, uint64_t *out)
{
	char buf[32];
	ssize_t n;
	char *end;
	int fd = openat(dfd, ORDERS_EPOCH_FILE, O_RDONLY | O_CLOEXEC);

	*out = 0;
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	errno = 0;
	*out = strtoull(buf, &end, 10);
	if (errno || end == buf || (*end && *end != '\n'))
		return -EBADMSG;
	return 0;
}

/* Stores epoch durably: tmp file, fsync, rename, fsync of the dir. */
static int write_epoch(int dfd, uint64_t epoch)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%" PRIu64 "\n", epoch);
	int fd = openat(dfd, ORDERS_EPOCH_FILE ".tmp",
			O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, buf, (size_t)n) != n || fsync(fd) < 0)
		rc = errno ? -errno : -EIO;
	if (close(fd) < 0 && !rc)
		rc = -errno;
	if (!rc && renameat(dfd, ORDERS_EPOCH_FILE ".tmp", dfd, ORDERS_EPOCH_FILE) < 0)
		rc = -errno;
	if (!rc && fsync(dfd) < 0)
		rc = -errno;
	if (rc)
		unlinkat(dfd, ORDERS_EPOCH_FILE ".tmp", 0);
	return rc;
}

int orders_open(const char *state_dir, struct orders **out, char *err, size_t errlen)
{
	struct orders *o = NULL;
	uint64_t epoch;
	int dfd = -1, rc;

	rc = mkdirs(state_dir);
	if (rc < 0) {
		snprintf(err, errlen, "state_dir %s: cannot create it: %s", state_dir,
			 strerror(-rc));
		return rc;
	}
	dfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		rc = -errno;
		snprintf(err, errlen, "state_dir %s: %s", state_dir, strerror(errno));
		return rc;
	}
	rc = read_epoch(dfd, &epoch);
	if (rc < 0) {
		snprintf(err, errlen, "state_dir %s: cannot read %s: %s", state_dir,
			 ORDERS_EPOCH_FILE, rc == -EBADMSG ? "not a number" : strerror(-rc));
		goto fail;
	}
	if (epoch == UINT64_MAX) {
		rc = -EOVERFLOW;
		snprintf(err, errlen, "state_dir %s: boot epoch exhausted", state_dir);
		goto fail;
	}
	epoch++;
	rc = write_epoch(dfd, epoch);
	if (rc < 0) {
		snprintf(err, errlen, "state_dir %s: cannot write %s: %s", state_dir,
			 ORDERS_EPOCH_FILE, strerror(-rc));
		goto fail;
	}
	o = calloc(1, sizeof(*o));
	if (!o) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	o->epoch = epoch;
	pthread_mutex_init(&o->grow, NULL);
	close(dfd);
	*out = o;
	return 0;
fail:
	close(dfd);
	return rc;
}

void orders_close(struct orders *o)
{
	if (!o)
		return;
	for (size_t i = 0; i < DIR_PAGES; i++)
		free(atomic_load_explicit(&o->pages[i], memory_order_relaxed));
	pthread_mutex_destroy(&o->grow);
	free(o);
}

uint64_t orders_epoch(const struct orders *o)
{
	return o->epoch;
}

/* The page holding sequence seq, allocated on first use; NULL on ENOMEM. */
static struct slot *page_for(struct orders *o, uint64_t seq, int create)
{
	uint64_t i = seq / PAGE_SLOTS;
	struct slot *page;

	if (i >= DIR_PAGES)
		return NULL;
	page = atomic_load_explicit(&o->pages[i], memory_order_acquire);
	if (page || !create)
		return page;
	pthread_mutex_lock(&o->grow);
	page = atomic_load_explicit(&o->pages[i], memory_order_relaxed);
	if (!page) {
		page = calloc(PAGE_SLOTS, sizeof(*page));
		if (page)
			atomic_store_explicit(&o->pages[i], page, memory_order_release);
	}
	pthread_mutex_unlock(&o->grow);
	return page;
}

void orders_commit(struct orders *o, struct orders_commit *c)
{
	uint64_t seq = atomic_fetch_add_explicit(&o->next_seq, 1, memory_order_relaxed) + 1;
	struct slot *page = page_for(o, seq, 1);
	struct timespec ts;
	struct slot *s;

	if (!page) {
		c->done(c, seq / PAGE_SLOTS >= DIR_PAGES ? -ENOSPC : -ENOMEM);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	c->order.created_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	snprintf(c->order.id, sizeof(c->order.id), "%" PRIu64 "-%" PRIu64, o->epoch, seq);
	s = &page[seq % PAGE_SLOTS];
	s->order = c->order;
	atomic_store_explicit(&s->ready, 1, memory_order_release);
	c->done(c, 0);
}

/* Parses a decimal u64 from s[0..len); 0 or -EINVAL. */
static int parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

int orders_find(struct orders *o, const char *id, size_t len, struct order *out)
{
	const char *dash = memchr(id, '-', len);
	uint64_t epoch, seq;
	struct slot *page, *s;

	if (!dash || parse_u64(id, (size_t)(dash - id), &epoch) < 0 ||
	    parse_u64(dash + 1, len - (size_t)(dash - id) - 1, &seq) < 0)
		return -ENOENT;
	if (epoch != o->epoch || seq == 0)
		return -ENOENT;
	page = page_for(o, seq, 0);
	if (!page)
		return -ENOENT;
	s = &page[seq % PAGE_SLOTS];
	if (!atomic_load_explicit(&s->ready, memory_order_acquire))
		return -ENOENT;
	*out = s->order;
	return 0;
}

int orders_ticket_code(const char *order_id, unsigned n, char *buf, size_t len)
{
	int w = snprintf(buf, len, "%s-%u", order_id, n);

	if (w < 0 || (size_t)w >= len)
		return -ENAMETOOLONG;
	return w;
}
