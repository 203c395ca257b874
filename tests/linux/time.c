/*
 * time.c: the clocks. Times differ between runs, so only facts about them
 * are printed: monotonic never goes back, the wall clock is after 2020 and
 * agrees with gettimeofday and time(), a 1 ms sleep lasts at least 1 ms.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static const char *yes(int c) { return c ? "yes" : "no"; }

static long long ns(const struct timespec *t) { return t->tv_sec * 1000000000LL + t->tv_nsec; }

int main(void)
{
	struct timespec a, b, r, res;
	int rc;
	int mono_ok = 1;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < 200; i++) {
		clock_gettime(CLOCK_MONOTONIC, &b);
		mono_ok &= ns(&b) >= ns(&a);
		a = b;
	}
	printf("monotonic non-decreasing: %s\n", yes(mono_ok));

	clock_gettime(CLOCK_REALTIME, &r);
	struct timeval tv;
	gettimeofday(&tv, NULL);
	time_t t = time(NULL);
	printf("realtime after 2020: %s\n", yes(r.tv_sec > 1577836800));
	printf("realtime nsec in range: %s\n", yes(r.tv_nsec >= 0 && r.tv_nsec < 1000000000));
	printf("gettimeofday within 10 s of realtime: %s\n", yes(tv.tv_sec - r.tv_sec < 10 && r.tv_sec - tv.tv_sec < 10));
	printf("gettimeofday usec in range: %s\n", yes(tv.tv_usec >= 0 && tv.tv_usec < 1000000));
	printf("time() within 10 s of realtime: %s\n", yes(t - r.tv_sec < 10 && r.tv_sec - t < 10));
	time_t t2;
	printf("time(&t) agrees: %s\n", yes(time(&t2) == t2));

	printf("getres monotonic ok: %s\n",
	       yes(clock_getres(CLOCK_MONOTONIC, &res) == 0 && res.tv_sec == 0 && res.tv_nsec > 0 && res.tv_nsec <= 1000000));
	printf("boottime ok: %s\n", yes(clock_gettime(CLOCK_BOOTTIME, &b) == 0));
	printf("monotonic_coarse ok: %s\n", yes(clock_gettime(CLOCK_MONOTONIC_COARSE, &b) == 0));
	printf("realtime_coarse ok: %s\n", yes(clock_gettime(CLOCK_REALTIME_COARSE, &b) == 0));
	errno = 0;
	rc = clock_gettime((clockid_t)12345, &b);
	printf("bad clock: %d (%s)\n", rc, strerror(errno));

	struct timespec d = {0, 1000000};
	clock_gettime(CLOCK_MONOTONIC, &a);
	rc = nanosleep(&d, NULL);
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("nanosleep 1 ms: rc %d, slept >= 1 ms: %s\n", rc, yes(ns(&b) - ns(&a) >= 1000000));
	clock_gettime(CLOCK_MONOTONIC, &a);
	rc = clock_nanosleep(CLOCK_MONOTONIC, 0, &d, NULL);
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("clock_nanosleep 1 ms: rc %d, slept >= 1 ms: %s\n", rc, yes(ns(&b) - ns(&a) >= 1000000));
	struct timespec bad = {0, 2000000000};
	errno = 0;
	rc = nanosleep(&bad, NULL);
	printf("nanosleep bad nsec: %d (%s)\n", rc, strerror(errno));

	/* Calendar arithmetic on fixed times, in UTC: no zone files read. */
	time_t fixed[] = {0, 951782400, 1700000000, 4102444800LL};
	for (unsigned i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
		struct tm tm;
		char buf[64];
		gmtime_r(&fixed[i], &tm);
		strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %a yday %j", &tm);
		printf("gmtime %lld: %s, back %lld\n", (long long)fixed[i], buf, (long long)timegm(&tm));
	}
	return 0;
}
