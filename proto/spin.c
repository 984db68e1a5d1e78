#include "proto/spin.h"

#include <poll.h>
#include <sched.h>
#include <time.h>

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
cx_spin_readable(int fd, int64_t us)
{
	struct pollfd p = {fd, POLLIN, 0};
	int64_t until = now_us() + us;

	while (poll(&p, 1, 0) == 0) {
		if (now_us() >= until)
			return;
		sched_yield();
	}
}
