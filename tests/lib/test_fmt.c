/*
 * test_fmt.c: lib/fmt.c's decimal formatting against snprintf, at the
 * edges (0, one digit to the next, UINT64_MAX).
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "fmt.h"
#include "tap.h"

int main(void)
{
	static const uint64_t vals[] = { 0, 7, 9, 10, 99, 100, 4294967295u, 4294967296u,
					 10000000000000000000u, UINT64_MAX };

	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		char got[FMT_U64_LEN + 4], want[32];
		size_t n;

		memset(got, 'x', sizeof(got));
		n = fmt_u64(got, vals[i]);
		snprintf(want, sizeof(want), "%" PRIu64, vals[i]);
		ok(n == strlen(want) && strcmp(got, want) == 0 && got[FMT_U64_LEN] == 'x',
		   "fmt_u64(%s): \"%s\", %zu digits, nothing past FMT_U64_LEN", want, got, n);
	}
	return tap_done();
}
