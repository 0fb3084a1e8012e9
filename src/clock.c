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

/* Year, month and day of the proleptic Gregorian calendar for a count of
 * days since 1970-01-01 (counting in 400-year eras of 146,097 days, with
 * years starting on 1 March so the leap day comes last). */
static void civil_from_days(long long z, long long *y, unsigned *m, unsigned *d) {
    long long era;
    unsigned doe, yoe, doy, mp;
    z += 719468;   /* days from 0000-03-01 to 1970-01-01 */
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (long long)yoe + era * 400 + (*m <= 2);
}

static char *put_digits(char *o, unsigned v, int width) {
    for (int i = width - 1; i >= 0; i--, v /= 10)
        o[i] = (char)('0' + v % 10);
    return o + width;
}

/* Every quote and order carries a time: written digit by digit, not with
 * gmtime_r and snprintf (a tenth of a get_quote reply's cost). */
void im_clock_format_utc(double t, char *out, unsigned outlen) {
    double fl = floor(t);
    long long secs, days, y;
    unsigned m, d, sod;
    int ms = (int)((t - fl) * 1000.0);
    char *o = out;

    if (ms > 999)
        ms = 999;
    if (!isfinite(t) || outlen < 25 || fl < 0 || fl >= 253402300800.0) {
        /* Outside years 1970..9999 or a short buffer: the library's way. */
        struct tm tm;
        time_t tt = isfinite(t) ? (time_t)fl : 0;
        gmtime_r(&tt, &tm);
        snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
        return;
    }
    secs = (long long)fl;
    days = secs / 86400;
    sod = (unsigned)(secs % 86400);
    civil_from_days(days, &y, &m, &d);
    o = put_digits(o, (unsigned)y, 4);
    *o++ = '-';
    o = put_digits(o, m, 2);
    *o++ = '-';
    o = put_digits(o, d, 2);
    *o++ = 'T';
    o = put_digits(o, sod / 3600, 2);
    *o++ = ':';
    o = put_digits(o, sod / 60 % 60, 2);
    *o++ = ':';
    o = put_digits(o, sod % 60, 2);
    *o++ = '.';
    o = put_digits(o, (unsigned)ms, 3);
    *o++ = 'Z';
    *o = '\0';
}
