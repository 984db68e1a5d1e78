/* The timestamps conex signs: RFC 3339 without fractions (§7.3), read correctly. */
#include <string.h>
#include <time.h>

#include "conex/resource.h"

static int
digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int
days_in_month(int y, int m)
{
	static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : dm[m - 1];
}

/*
 * YYYY-MM-DDThh:mm:ss then Z, +hh:mm or -hh:mm.  Upstream adds the offset
 * where RFC 3339 subtracts it (§12.8); this subtracts.  Like upstream, no
 * fractional seconds, and the result must be after 1970.
 */
int
cx_time_parse(const char *s, int64_t *out)
{
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
	size_t n = strlen(s);
	int64_t t;

	if (n < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':')
		return CX_EPARSE;
	if (digits(s, 4, &y) || digits(s + 5, 2, &mo) || digits(s + 8, 2, &d) ||
	    digits(s + 11, 2, &h) || digits(s + 14, 2, &mi) || digits(s + 17, 2, &sec))
		return CX_EPARSE;
	if (n == 20 && s[19] == 'Z') {
		sign = 0;
	} else if (n == 25 && (s[19] == '+' || s[19] == '-') && s[22] == ':') {
		if (digits(s + 20, 2, &oh) || digits(s + 23, 2, &om) || oh > 23 || om > 59)
			return CX_EPARSE;
		sign = s[19] == '+' ? 1 : -1;
	} else {
		return CX_EPARSE;
	}
	if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60)
		return CX_EPARSE;
	t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
	t -= sign * (oh * 3600 + om * 60);
	if (t <= 0)
		return CX_EPARSE;
	*out = t;
	return 0;
}

void
cx_time_format(int64_t t, char out[21])
{
	struct tm tm;
	time_t tt = (time_t)t;

	gmtime_r(&tt, &tm);
	strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
