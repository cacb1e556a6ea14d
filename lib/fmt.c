/*
 * fmt.c: decimal formatting without printf (see fmt.h).
 */
#include "config.h"

#include <string.h>

#include "fmt.h"

size_t fmt_u64(char *buf, uint64_t v)
{
	char tmp[FMT_U64_LEN];
	size_t i = sizeof(tmp) - 1, n;

	tmp[i] = '\0';
	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	n = sizeof(tmp) - 1 - i;
	memcpy(buf, tmp + i, n + 1);
	return n;
}
