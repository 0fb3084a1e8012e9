/* clock.c: the injected clock and New York calendar helpers.
 * Uses libuv's monotonic timer and the system tz database (tzdata). */
#include "clock.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "error.h"

void im_clock_init(im_clock *c, double start_epoch) {
    c->start = start_epoch;
    c->base_ns = uv_hrtime();
    c->offset = 0;
    c->frozen = 0;
}

void im_clock_init_frozen(im_clock *c, double start_epoch) {
    im_clock_init(c, start_epoch);
    c->frozen = 1;
}

double im_clock_now(const im_clock *c) {
    double t = c->start + c->offset;
    if (!c->frozen)
        t += (double)(uv_hrtime() - c->base_ns) / 1e9;
    return t;
}

void im_clock_advance(im_clock *c, double secs) {
    if (isfinite(secs) && secs > 0)
        c->offset += secs;
}

/* The process keeps TZ pointed at New York: the one zone the program ever
 * formats local time in. Log lines carry no local time, so nothing else
 * depends on it. */
static void clock_ny_zone(void) {
    static int done;
    if (!done) {
        setenv("TZ", "America/New_York", 1);
        tzset();
        done = 1;
    }
}

static int clock_ny_tm(double t, struct tm *tm) {
    time_t tt;
    if (!isfinite(t) || t < 0 || t > 4e10)
        return IM_EINVAL;
    clock_ny_zone();
    tt = (time_t)floor(t);
    if (localtime_r(&tt, tm) == NULL)
        return IM_EINVAL;
    return 0;
}

int im_clock_ny_date(double t, char *out, unsigned outlen) {
    struct tm tm;
    if (outlen < 11 || clock_ny_tm(t, &tm) != 0)
        return IM_EINVAL;
    snprintf(out, outlen, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday);
    return 0;
}

int im_clock_ny_seconds_of_day(double t, int *sod, int *weekday) {
    struct tm tm;
    if (clock_ny_tm(t, &tm) != 0)
        return IM_EINVAL;
    *sod = tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
    *weekday = tm.tm_wday;
    return 0;
}

int im_clock_parse_time(const char *s, double *out) {
    int y, mo, d, h, mi, sec, n = 0;
    char *end;
    double v;
    struct tm tm;
    time_t base;
    const char *rest;

    if (s == NULL || *s == '\0')
        return IM_EINVAL;
    v = strtod(s, &end);
    if (*end == '\0' && end != s) {
        if (!isfinite(v) || v < 0 || v > 4e10)
            return IM_EINVAL;
        *out = v;
        return 0;
    }
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6)
        return IM_EINVAL;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 ||
        y < 1970 || y > 2999)
        return IM_EINVAL;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    base = timegm(&tm);
    rest = s + n;
    if (strcmp(rest, "Z") == 0) {
        *out = (double)base;
        return 0;
    }
    if ((rest[0] == '+' || rest[0] == '-') && strlen(rest) == 6 && rest[3] == ':') {
        int oh, om;
        if (sscanf(rest + 1, "%2d:%2d", &oh, &om) != 2 || oh > 14 || om > 59)
            return IM_EINVAL;
        double off = oh * 3600.0 + om * 60.0;
        *out = rest[0] == '+' ? (double)base - off : (double)base + off;
        return 0;
    }
    return IM_EINVAL;
}

void im_clock_format_utc(double t, char *out, unsigned outlen) {
    struct tm tm;
    time_t tt = (time_t)floor(t);
    int ms = (int)((t - floor(t)) * 1000.0);
    if (ms > 999)
        ms = 999;
    gmtime_r(&tt, &tm);
    snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}
