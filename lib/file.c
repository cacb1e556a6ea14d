/*
 * file.c: bounded, non-blocking reads of small operator files (see file.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"

ssize_t file_read_small(int dirfd, const char *path, char *buf, size_t len)
{
	struct stat st;
	size_t n = 0;
	ssize_t r;
	int fd, rc = 0;

	if (len == 0)
		return -EINVAL;
	fd = openat(dirfd, path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		goto out;
	}
	/* Up to len bytes: a file that fills buf has no room for the NUL. */
	while (n < len) {
		r = read(fd, buf + n, len - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n >= len)
		rc = -EFBIG;
	else
		buf[n] = '\0';
out:
	close(fd);
	return rc < 0 ? rc : (ssize_t)n;
}
